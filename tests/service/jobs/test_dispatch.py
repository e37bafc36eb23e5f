"""Sending jobs to Celery: the settings every producer and consumer shares, and a broker that is down."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from service.app import create_app
from service.jobs import dispatch
from service.settings import Settings
from tests.service import tiny
from tests.service.factories import TenantKey


def test_messages_are_acknowledged_late_one_at_a_time_and_outlive_the_longest_job() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:6379/0", job_time_limit_seconds=7200)
    config = dispatch.celery_config(settings)
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    for where in ("broker_transport_options", "result_backend_transport_options"):
        assert config[where]["visibility_timeout"] > settings.job_time_limit_seconds
    assert config["task_routes"][dispatch.RUN_JOB] == {"queue": dispatch.GPU_QUEUE}
    assert config["task_routes"][dispatch.SWEEP] == {"queue": dispatch.CPU_QUEUE}
    assert config["task_routes"][dispatch.DELIVER_CALLBACKS] == {"queue": dispatch.CPU_QUEUE}


def test_without_a_broker_the_local_dispatcher_is_used() -> None:
    assert isinstance(dispatch.configure(Settings()), dispatch.LocalDispatcher)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_a_request_is_accepted_when_the_broker_is_down_and_its_job_waits_in_the_ledger(
    settings: Settings, tenant: TenantKey, data_root: Path
) -> None:
    down = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{_closed_port()}/0"})
    try:
        with TestClient(create_app(down)) as client:
            model = tiny.register_model(client, tenant, data_root)
            response = tiny.submit(client, tenant, model["id"], [tiny.sample_id(0)])
            assert response.status_code == 202, response.text
            job = client.get(f"/v1/jobs/{response.json()['job_id']}", headers=tenant.headers).json()
            assert job["status"] == "queued"  # the sweeper will send it
            assert not dispatch.current().send(uuid.UUID(job["id"]))
    finally:
        dispatch.configure(Settings())
