"""GET /v1/jobs: the tenant's jobs, newest first, filtered by model, states and kinds, in cursor pages."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.db import session_factory
from service.tables import Job, JobKind, JobStatus
from tests.service import tiny
from tests.service.factories import TenantKey

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LIST = "/v1/jobs"

AddJobs = Callable[..., list[str]]


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


@pytest.fixture
def add_jobs(database_url: str, tenant: TenantKey, model: dict[str, Any]) -> AddJobs:
    """Jobs of `model` (audit jobs, queued, unless a row says otherwise), created a minute apart from T0 in the
    order given; their ids."""

    def add(*rows: dict[str, Any], model_id: str | None = None) -> list[str]:
        defaults = {"kind": JobKind.audit, "status": JobStatus.queued, "config": {}}
        jobs = [
            Job(id=uuid.uuid4(), tenant_id=tenant.tenant_id, model_id=uuid.UUID(model_id or model["id"]),
                created_at=T0 + timedelta(minutes=i), **{**defaults, **row})
            for i, row in enumerate(rows)
        ]  # fmt: skip
        with session_factory(database_url)() as session, session.begin():
            session.add_all(jobs)
        return [str(job.id) for job in jobs]

    return add


def _ids(client: TestClient, tenant: TenantKey, **params: Any) -> list[str]:
    ids, token = [], None
    while True:
        query = {"limit": 2, **params, **({"page_token": token} if token else {})}
        page = client.get(LIST, params=query, headers=tenant.headers)
        assert page.status_code == 200, page.text
        ids += [job["id"] for job in page.json()["items"]]
        token = page.json()["next_page_token"]
        if token is None:
            return ids


def test_jobs_are_listed_newest_first_each_once_across_pages(
    client: TestClient, tenant: TenantKey, add_jobs: AddJobs
) -> None:
    ids = add_jobs(*({} for _ in range(5)))
    assert _ids(client, tenant) == ids[::-1]


def test_an_unlearning_job_is_listed_with_the_request_it_carries(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    accepted = tiny.submit(client, tenant, model["id"], [tiny.sample_id(0)]).json()
    (job,) = client.get(LIST, headers=tenant.headers).json()["items"]
    assert (job["id"], job["kind"], job["status"]) == (accepted["job_id"], "unlearn", "queued")
    assert job["request_ids"] == [accepted["id"]]


def test_filter_by_model(client: TestClient, tenant: TenantKey, model: dict[str, Any], add_jobs: AddJobs) -> None:
    other = tiny.upload(client, tenant, tiny.manifest(model["dataset_id"], name="other"), tiny.safetensors_bytes())
    mine = add_jobs({}, {})
    theirs = add_jobs({}, model_id=other.json()["id"])
    assert _ids(client, tenant, model_id=model["id"]) == mine[::-1]
    assert _ids(client, tenant, model_id=other.json()["id"]) == theirs


def test_filter_by_several_states(client: TestClient, tenant: TenantKey, add_jobs: AddJobs) -> None:
    queued, failed, succeeded = add_jobs({}, {"status": JobStatus.failed}, {"status": JobStatus.succeeded})
    assert _ids(client, tenant, status=["queued", "failed"]) == [failed, queued]
    assert _ids(client, tenant, status="succeeded") == [succeeded]


def test_filter_by_kind(client: TestClient, tenant: TenantKey, add_jobs: AddJobs) -> None:
    audit, references, tuning = add_jobs({}, {"kind": JobKind.reference_models}, {"kind": JobKind.tuning})
    assert _ids(client, tenant, kind=["tuning", "reference_models"]) == [tuning, references]
    assert _ids(client, tenant, kind="audit") == [audit]


def test_an_unknown_kind_is_422(client: TestClient, tenant: TenantKey) -> None:
    response = client.get(LIST, params={"kind": "mining"}, headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == ["query", "kind", 0]


def test_another_tenants_jobs_are_never_listed(
    client: TestClient, tenant: TenantKey, other_tenant: TenantKey, add_jobs: AddJobs
) -> None:
    add_jobs({}, {})
    assert _ids(client, other_tenant) == []


def test_a_token_reused_with_another_kind_is_422(client: TestClient, tenant: TenantKey, add_jobs: AddJobs) -> None:
    add_jobs({}, {}, {})
    token = client.get(LIST, params={"limit": 1, "kind": "audit"}, headers=tenant.headers).json()["next_page_token"]
    response = client.get(LIST, params={"kind": "tuning", "page_token": token}, headers=tenant.headers)
    assert response.status_code == 422
    assert "other filters (kind differ)" in response.json()["detail"]
