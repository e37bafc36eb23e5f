"""The sweeper's pass over the ledger (SQLite and PostgreSQL): which jobs it sends again, how often, and
when it gives up."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.db import session_factory
from service.jobs import dispatch
from service.jobs import service as jobs
from service.settings import Settings
from service.tables import Event, Job, utcnow
from tests.service import tiny
from tests.service.factories import TenantKey

IDS = [tiny.sample_id(i) for i in range(12)]


class Queue:
    """The job ids waiting in the broker's gpu queue (a Redis list; the newest message is pushed left)."""

    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url)
        self.redis.flushdb()

    def ids(self) -> list[uuid.UUID]:
        bodies = [json.loads(base64.b64decode(json.loads(raw)["body"])) for raw in self.redis.lrange("gpu", 0, -1)]
        return [uuid.UUID(args[0]) for args, _kwargs, _embed in reversed(bodies)]

    def clear(self) -> None:
        self.redis.flushdb()


@pytest.fixture
def sent(client: TestClient) -> Iterator[Queue]:
    """A real broker for the app's dispatcher (after the app configured its own, hence `client`)."""
    url = os.environ.get("UNLEARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    try:
        queue = Queue(url)
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis not reachable at {url}: {exc}")
    dispatch.configure(Settings(broker_url=url))
    yield queue
    dispatch.configure(Settings())
    queue.clear()


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


def _sweep(database_url: str, resend_after: float = 30.0) -> jobs.Sweep:
    with session_factory(database_url)() as session, session.begin():
        return jobs.sweep(session, resend_after=resend_after, max_attempts=3)


def _age(database_url: str, job_id: str, **columns: Any) -> None:
    """Move a job's timestamps into the past, as if time had passed."""
    with session_factory(database_url)() as session, session.begin():
        session.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(**columns))


def _events(database_url: str, job_id: str) -> list[Event]:
    with session_factory(database_url)() as session:
        return list(session.query(Event).filter(Event.subject_id == job_id).order_by(Event.seq))


def test_a_new_job_is_sent_once_its_transaction_commits(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], sent: Queue
) -> None:
    job_id = tiny.submit(client, tenant, model["id"], IDS[:3]).json()["job_id"]
    tiny.submit(client, tenant, model["id"], IDS[3:6])  # joins the waiting job: nothing new to send
    assert sent.ids() == [uuid.UUID(job_id)]


def test_a_job_whose_lease_expired_is_requeued_with_an_event_and_not_again_at_once(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str, sent: Queue
) -> None:
    job_id = tiny.submit(client, tenant, model["id"], IDS[:3]).json()["job_id"]
    assert tiny.claim(database_url, job_id, owner="dead-worker")
    _age(database_url, job_id, lease_expires_at=utcnow() - timedelta(seconds=1))  # the worker died
    sent.clear()
    swept = _sweep(database_url)
    assert swept.requeued == [uuid.UUID(job_id)] and swept.resent == [] and swept.failed == 0
    assert sent.ids() == [uuid.UUID(job_id)]
    requeued = [e for e in _events(database_url, job_id) if e.type == "job.requeued"]
    assert requeued[0].data["previous_owner"] == "dead-worker" and requeued[0].data["reason"] == "lease expired"
    assert _sweep(database_url).requeued == []  # sent moments ago: the message is on its way
    _age(database_url, job_id, resent_at=utcnow() - timedelta(seconds=31))
    assert _sweep(database_url).requeued == [uuid.UUID(job_id)]


def test_a_queued_job_nobody_claimed_is_sent_again_after_the_wait(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str, sent: Queue
) -> None:
    job_id = tiny.submit(client, tenant, model["id"], IDS[:3]).json()["job_id"]
    sent.clear()
    assert _sweep(database_url).resent == []  # just created: its first message may still be on its way
    _age(database_url, job_id, created_at=utcnow() - timedelta(seconds=31))
    assert _sweep(database_url).resent == [uuid.UUID(job_id)]
    assert sent.ids() == [uuid.UUID(job_id)]
    assert not [e for e in _events(database_url, job_id) if e.type == "job.requeued"]  # not a retry


def test_a_job_waiting_behind_its_models_running_job_is_not_sent(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str, sent: Queue
) -> None:
    first = tiny.submit(client, tenant, model["id"], IDS[:3]).json()["job_id"]
    assert tiny.claim(database_url, first)
    waiting = tiny.submit(client, tenant, model["id"], IDS[3:6]).json()["job_id"]
    _age(database_url, waiting, created_at=utcnow() - timedelta(seconds=31))
    sent.clear()
    assert _sweep(database_url) == jobs.Sweep(0, [], [])
    assert sent.ids() == []


def test_the_running_job_finishing_sends_its_models_waiting_job(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str, sent: Queue
) -> None:
    first = tiny.submit(client, tenant, model["id"], IDS[:3]).json()["job_id"]
    assert tiny.claim(database_url, first, owner="w")
    waiting = tiny.submit(client, tenant, model["id"], IDS[3:6]).json()["job_id"]
    sent.clear()
    with session_factory(database_url)() as session, session.begin():
        assert jobs.fail(session, job_id=uuid.UUID(first), owner="w", error="boom")
    assert sent.ids() == [uuid.UUID(waiting)]


def test_a_job_whose_last_attempt_expired_fails_with_the_reason_and_its_requests_too(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str, sent: Queue
) -> None:
    accepted = tiny.submit(client, tenant, model["id"], IDS[:3]).json()
    job_id = accepted["job_id"]
    assert tiny.claim(database_url, job_id)
    _age(database_url, job_id, attempts=3, lease_expires_at=utcnow() - timedelta(seconds=1))
    assert _sweep(database_url).failed == 1
    job = client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert job["status"] == "failed" and "gave up after 3 attempts" in job["error"]
    request = client.get(f"/v1/deletion-requests/{accepted['id']}", headers=tenant.headers).json()
    assert request["status"] == "failed"


def test_nothing_is_sent_when_the_transaction_rolls_back(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str, sent: Queue
) -> None:
    job_id = tiny.submit(client, tenant, model["id"], IDS[:3]).json()["job_id"]
    _age(database_url, job_id, created_at=utcnow() - timedelta(seconds=31))
    sent.clear()
    with session_factory(database_url)() as session:
        with pytest.raises(RuntimeError), session.begin():
            assert jobs.sweep(session, resend_after=30, max_attempts=3).resent
            raise RuntimeError("the sweep's transaction fails")
    assert sent.ids() == []
