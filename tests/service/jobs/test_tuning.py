"""Tuning over HTTP: POST /v1/models/{id}/tuning queues a job of its own with a bounded grid; one at a time
per model; the paper's procedure only for models with a recipe; other tenants' models are not found."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service.db import session_factory
from service.tables import Job
from tests.service import tiny
from tests.service.factories import TenantKey

PROBLEM = "application/problem+json"


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


def _job_config(database_url: str, job_id: str) -> dict[str, Any]:
    with session_factory(database_url)() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        return job.config


def test_tuning_is_queued_as_a_job_of_its_own_with_the_default_grid_around_the_models_rate(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    response = client.post(f"/v1/models/{model['id']}/tuning", headers=tenant.headers)  # no body at all

    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["kind"], job["status"], job["model_id"]) == ("tuning", "queued", model["id"])
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    config = _job_config(database_url, job["id"])
    # the reference-free rule by default; the model's lr 0.05 x 0.1, 0.2, 0.5, 1, 2; 1% of 300 is below the floor
    assert (config["procedure"], config["step_sizes"]) == ("reference_free", [1])
    assert config["lrs"] == [0.005, 0.01, 0.025, 0.05, 0.1]
    assert (config["forget_size"], config["runs"]) == (20, 2)
    assert config["unlearn_config"] == model["unlearn_config"]  # frozen at enqueue
    assert client.get(f"/v1/models/{model['id']}", headers=tenant.headers).json()["tuning"] is None


def test_a_tuning_request_names_its_grid(client: TestClient, tenant: TenantKey, model: dict[str, Any],
                                         database_url: str) -> None:  # fmt: skip
    body = {"lrs": [0.1, 0.02], "step_sizes": [2, 1], "forget_size": 30, "runs": 1}
    job = client.post(f"/v1/models/{model['id']}/tuning", json=body, headers=tenant.headers).json()
    config = _job_config(database_url, job["id"])
    assert (config["lrs"], config["step_sizes"], config["forget_size"], config["runs"]) == ([0.02, 0.1], [1, 2], 30, 1)


def test_a_second_tuning_request_while_one_waits_is_409(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    first = client.post(f"/v1/models/{model['id']}/tuning", json={}, headers=tenant.headers)
    assert first.status_code == 202

    second = client.post(f"/v1/models/{model['id']}/tuning", json={"runs": 1}, headers=tenant.headers)

    assert second.status_code == 409 and second.headers["content-type"] == PROBLEM
    assert first.json()["id"] in second.json()["detail"]


def test_a_model_may_be_tuned_again_once_its_tuning_job_ended(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    first = client.post(f"/v1/models/{model['id']}/tuning", headers=tenant.headers).json()
    assert client.delete(f"/v1/jobs/{first['id']}", headers=tenant.headers).json()["status"] == "cancelled"
    assert client.post(f"/v1/models/{model['id']}/tuning", headers=tenant.headers).status_code == 202


def test_tuning_another_tenants_model_or_an_unknown_one_is_404(
    client: TestClient, tenant: TenantKey, other_tenant: TenantKey, model: dict[str, Any]
) -> None:
    theirs = client.post(f"/v1/models/{model['id']}/tuning", headers=other_tenant.headers)
    unknown = client.post(f"/v1/models/{uuid.uuid4()}/tuning", headers=tenant.headers)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.headers["content-type"] == PROBLEM


def test_tuning_needs_the_write_scope(client: TestClient, tenant: TenantKey, model: dict[str, Any]) -> None:
    key = client.post("/v1/api-keys", json={"name": "reader", "scopes": ["read"]}, headers=tenant.headers).json()
    response = client.post(f"/v1/models/{model['id']}/tuning", headers={"Authorization": f"Bearer {key['key']}"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"procedure": "guess"}, "#/procedure"),
        ({"procedure": "retrain"}, "#/procedure"),  # the model has no recipe to retrain with
        ({"lrs": []}, "#/lrs"),
        ({"lrs": [0.0]}, "#/lrs/0"),
        ({"lrs": [0.1, 0.1]}, "#/lrs"),
        ({"lrs": [11.0]}, "#/lrs/0"),
        ({"step_sizes": [0]}, "#/step_sizes/0"),
        ({"runs": 6}, "#/runs"),
        ({"forget_size": 5}, "#/forget_size"),
        ({"forget_size": 300}, "#/forget_size"),  # the whole training split: nothing left to unlearn with
        ({"lrs": [0.01, 0.02, 0.03, 0.04, 0.05, 0.06], "step_sizes": [1, 2, 3, 4], "runs": 2}, None),  # 48 runs
        ({"epochs": 3}, "#/epochs"),
    ],
)
def test_invalid_tuning_requests_are_422_naming_the_field(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], body: dict[str, Any], pointer: str | None
) -> None:
    response = client.post(f"/v1/models/{model['id']}/tuning", json=body, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    if pointer is not None:
        assert problem["errors"][0]["pointer"] == pointer
    else:
        assert "at most 40" in problem["detail"] or "at most 40" in problem["errors"][0]["detail"]


def test_the_papers_procedure_is_accepted_for_a_model_with_a_recipe(
    client: TestClient, tenant: TenantKey, data_root: Path
) -> None:
    config = {**tiny.UNLEARN, "recipe": {"epochs": 2, "lr": 0.05, "batch_size": 32}}
    model = tiny.register_model(client, tenant, data_root, unlearn_config=config)
    response = client.post(f"/v1/models/{model['id']}/tuning", json={"procedure": "retrain"}, headers=tenant.headers)
    assert response.status_code == 202, response.text
