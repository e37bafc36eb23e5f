"""Jobs over HTTP: coalescing of requests into the waiting job, one running job per model, progress with
phase, percent and ETA, cancellation, and reference-model jobs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.db import session_factory
from service.jobs import service as jobs
from service.tables import utcnow
from tests.service import tiny
from tests.service.factories import TenantKey, count_rows

IDS = [tiny.sample_id(i) for i in range(12)]


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


def test_requests_arriving_before_the_claim_are_coalesced_into_one_job(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    first = tiny.submit(client, tenant, model["id"], IDS[:3]).json()
    second = tiny.submit(client, tenant, model["id"], IDS[3:6]).json()
    assert first["job_id"] == second["job_id"]
    assert count_rows(database_url, "job") == 1
    job = client.get(f"/v1/jobs/{first['job_id']}", headers=tenant.headers).json()
    assert (job["status"], job["kind"]) == ("queued", "unlearn")
    assert job["request_ids"] == [first["id"], second["id"]]


def test_a_request_arriving_while_the_job_runs_waits_for_the_next_job(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    first = tiny.submit(client, tenant, model["id"], IDS[:3]).json()
    assert tiny.claim(database_url, first["job_id"])
    later = tiny.submit(client, tenant, model["id"], IDS[3:6]).json()
    assert later["job_id"] != first["job_id"] and later["status"] == "queued"
    running = client.get(f"/v1/jobs/{first['job_id']}", headers=tenant.headers).json()
    assert (running["status"], running["parent_version"], running["request_ids"]) == ("running", 1, [first["id"]])
    assert client.get(f"/v1/deletion-requests/{first['id']}", headers=tenant.headers).json()["status"] == "running"
    # the waiting job cannot be claimed while the model's running job holds it
    assert not tiny.claim(database_url, later["job_id"], owner="another-worker")


def test_job_shows_phase_percent_and_eta(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    job_id = tiny.submit(client, tenant, model["id"], IDS[:3]).json()["job_id"]
    assert tiny.claim(database_url, job_id, owner="w")
    with session_factory(database_url)() as session, session.begin():
        cancel = jobs.report_progress(
            session, job_id=uuid.UUID(job_id), owner="w", phase="fine-tune", fraction=0.25,
            eta_at=utcnow() + timedelta(seconds=30),
        )  # fmt: skip
    assert cancel is False
    job = client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert (job["phase"], job["percent"], job["attempts"]) == ("fine-tune", 25.0, 1)
    assert 20 < job["eta_seconds"] <= 30 and job["eta"] is not None


def test_another_tenants_job_is_404(
    client: TestClient, tenant: TenantKey, other_tenant: TenantKey, model: dict[str, Any]
) -> None:
    job_id = tiny.submit(client, tenant, model["id"], IDS[:3]).json()["job_id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=other_tenant.headers).status_code == 404
    assert client.delete(f"/v1/jobs/{job_id}", headers=other_tenant.headers).status_code == 404


def test_cancelling_a_waiting_job_cancels_its_requests(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    request = tiny.submit(client, tenant, model["id"], IDS[:3]).json()
    response = client.delete(f"/v1/jobs/{request['job_id']}", headers=tenant.headers)
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    read = client.get(f"/v1/deletion-requests/{request['id']}", headers=tenant.headers).json()
    assert read["status"] == "cancelled"
    assert count_rows(database_url, "forgotten_sample") == 0


def test_cancelling_a_running_job_asks_it_to_stop(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    job_id = tiny.submit(client, tenant, model["id"], IDS[:3]).json()["job_id"]
    assert tiny.claim(database_url, job_id, owner="w")
    response = client.delete(f"/v1/jobs/{job_id}", headers=tenant.headers)
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)
    with session_factory(database_url)() as session, session.begin():
        flag = jobs.report_progress(session, job_id=uuid.UUID(job_id), owner="w", phase="attack", fraction=0.1,
                                    eta_at=None)  # fmt: skip
    assert flag is True  # what the worker's progress callback sees next


def test_reference_models_are_trained_by_a_job_of_their_own(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    url = f"/v1/models/{model['id']}/reference-models"
    response = client.post(url, json={"k": 4, "recipe": {"epochs": 1}}, headers=tenant.headers)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["kind"], job["status"]) == ("reference_models", "queued")
    assert client.post(url, json={"k": 2}, headers=tenant.headers).status_code == 409


@pytest.mark.parametrize(
    ("body", "pointer"), [({"k": 3}, "#/k"), ({"k": 2, "recipe": {"schedule": "sometimes"}}, "#/recipe")]
)
def test_invalid_reference_model_requests_are_422(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], body: dict[str, Any], pointer: str
) -> None:
    response = client.post(f"/v1/models/{model['id']}/reference-models", json=body, headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == pointer


def test_cancelling_a_finished_job_is_409(client: TestClient, tenant: TenantKey, model: dict[str, Any]) -> None:
    job = client.post(f"/v1/models/{model['id']}/reference-models", json={"k": 2}, headers=tenant.headers).json()
    assert client.delete(f"/v1/jobs/{job['id']}", headers=tenant.headers).json()["status"] == "cancelled"
    again = client.delete(f"/v1/jobs/{job['id']}", headers=tenant.headers)
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]
