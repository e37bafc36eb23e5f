"""The job state machine's scheduling between kinds: deletion requests go before tuning, and a tuning job
learns when an unlearning job is waiting for its worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.db import session_factory
from service.jobs import service as jobs
from tests.service import tiny
from tests.service.factories import TenantKey


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


def _tune(client: TestClient, tenant: TenantKey, model_id: str) -> dict[str, Any]:
    response = client.post(f"/v1/models/{model_id}/tuning", headers=tenant.headers)
    assert response.status_code == 202, response.text
    return response.json()


def test_an_unlearning_job_is_claimed_before_an_older_tuning_job(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    tuning = _tune(client, tenant, model["id"])
    with session_factory(database_url)() as session:
        assert str(jobs.next_claimable(session)) == tuning["id"]  # alone, it runs
    request = tiny.submit(client, tenant, model["id"], [tiny.sample_id(0)]).json()

    with session_factory(database_url)() as session:
        assert str(jobs.next_claimable(session)) == request["job_id"]


def test_an_unlearning_job_is_waiting_once_it_has_waited_unclaimed_and_could_start(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    factory = session_factory(database_url)
    with factory() as session:
        assert not jobs.unlearning_waiting(session, waited_seconds=-60)  # none queued
    first = tiny.submit(client, tenant, model["id"], [tiny.sample_id(0)]).json()
    with factory() as session:
        assert not jobs.unlearning_waiting(session, waited_seconds=3600)  # queued just now
        assert jobs.unlearning_waiting(session, waited_seconds=-60)

    assert tiny.claim(database_url, first["job_id"])  # it runs; the next request's job waits for it
    tiny.submit(client, tenant, model["id"], [tiny.sample_id(1)])

    with factory() as session:
        assert not jobs.unlearning_waiting(session, waited_seconds=-60)  # it could not start: no worker helps it
