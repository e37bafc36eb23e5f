"""A claimed job's plan, the one read a worker makes of the ledger before it computes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.db import session_factory
from service.jobs.plan import read_plan
from service.settings import Settings
from service.tables import JobKind
from tests.service import tiny
from tests.service.factories import TenantKey


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


def _plan(settings: Settings, job_id: str) -> Any:
    with session_factory(settings.database_url)() as session:
        return read_plan(session, job_id=uuid.UUID(job_id), settings=settings)


def test_the_plan_forgets_the_samples_of_the_requests_its_job_covers_from_the_newest_version(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings
) -> None:
    first = tiny.submit(client, tenant, model["id"], [tiny.sample_id(3), tiny.sample_id(1)]).json()
    second = tiny.submit(client, tenant, model["id"], [tiny.sample_id(2)]).json()  # coalesced into the same job
    assert tiny.claim(settings.database_url, first["job_id"])

    plan = _plan(settings, first["job_id"])

    assert (plan.kind, str(plan.model_id)) == (JobKind.unlearn, model["id"])
    assert [str(r) for r in plan.request_ids] == [first["id"], second["id"]]
    assert plan.forget_ids == sorted(tiny.sample_id(i) for i in (1, 2, 3))
    assert plan.parent.number == plan.original.number == 1 and plan.earlier == {}
    assert plan.job_config["unlearn_config"] == model["unlearn_config"]
    assert plan.dataset.path is not None and Path(plan.dataset.path).is_absolute()  # resolved in the data root
    assert plan.references is None and plan.partial is None
    assert plan.guard_max_acc_drop == settings.guard_max_acc_drop


def test_samples_a_later_request_claims_are_kept_out_of_the_running_jobs_remaining_data(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings
) -> None:
    running = tiny.submit(client, tenant, model["id"], [tiny.sample_id(0)]).json()
    assert tiny.claim(settings.database_url, running["job_id"])
    waiting = tiny.submit(client, tenant, model["id"], [tiny.sample_id(5)]).json()
    assert waiting["job_id"] != running["job_id"]

    plan = _plan(settings, running["job_id"])

    assert plan.forget_ids == [tiny.sample_id(0)]
    assert sorted(plan.claimed_ids) == sorted([tiny.sample_id(0), tiny.sample_id(5)])
