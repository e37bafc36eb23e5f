"""End to end on the embedded default: `python -m service run` on a SQLite ledger; its local executor is killed
with SIGKILL in the middle of a job, the supervisor starts another and hands it the job at once, and the
request completes with exactly one new version. /healthz reports the restart afterwards.

Leases here are ten minutes long, far beyond the test's wait: the job can only be finished in time if the
supervisor ends the dead executor's lease itself instead of waiting for it to run out.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.db import session_factory
from service.supervisor import read_state
from service.tables import Event, Job
from tests.service import tiny
from tests.service.factories import TenantKey, make_tenant
from tests.worker.cluster import Proc, alive, free_port, wait_for

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 240.0  # the job twice (killed once) with its audit, on two busy cores
LONG_UNLEARN = {**tiny.UNLEARN, "epochs": 150, "lr": 0.01, "gamma": 1.0}  # seconds of fine-tuning to land in


@pytest.fixture
def home(sqlite_template: Path, tmp_path: Path) -> Path:
    """The service's home folder, with a migrated ledger of its own."""
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    shutil.copyfile(sqlite_template, home / "unlearning.db")
    return home


@pytest.fixture
def service(home: Path, tmp_path: Path) -> Iterator[tuple[Proc, str]]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("UNLEARN_")},
        "UNLEARN_HOME": str(home),
        "UNLEARN_LEASE_SECONDS": "600",
        "UNLEARN_GUARD_MAX_ACC_DROP": str(tiny.NO_GUARD),  # the kill must land mid-job: no early stop
        "UNLEARN_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",  # two busy cores: one intra-op thread per process
    }
    argv = [sys.executable, "-m", "service", "run", "--no-demo", "--host", "127.0.0.1", "--port", str(port)]
    proc = Proc("service", argv, env=env, log_dir=tmp_path)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.alive(), proc.tail()
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout=STARTUP_TIMEOUT_S, what="the service to answer /healthz", interval=0.3, logs=[proc])
        yield proc, base
    finally:
        state = read_state(home / "executor.json")
        proc.stop()
        if state is not None and state.pid is not None and alive(state.pid):
            os.kill(state.pid, signal.SIGKILL)  # only if the test failed before the service stopped it


def _job_events(database_url: str, job_id: str) -> list[Event]:
    with session_factory(database_url)() as session:
        query = select(Event).where(Event.subject_id == job_id).order_by(Event.seq)
        return list(session.execute(query).scalars())


def test_an_executor_killed_mid_job_is_replaced_and_the_request_completes_with_one_new_version(
    home: Path, service: tuple[Proc, str]
) -> None:
    proc, base = service
    database_url = f"sqlite:///{home / 'unlearning.db'}"
    tenant: TenantKey = make_tenant(database_url, "acme")
    with httpx.Client(base_url=base, headers=tenant.headers, timeout=30) as http:
        before = http.get("/healthz").json()
        assert before["executor"] == {"status": "running", "restarts": 0}
        model_id = tiny.register_model(http, tenant, home / "data", unlearn_config=LONG_UNLEARN)["id"]  # type: ignore[arg-type]
        accepted = tiny.submit(http, tenant, model_id, [tiny.sample_id(i) for i in range(5)])  # type: ignore[arg-type]
        assert accepted.status_code == 202, accepted.text
        request_id, job_id = accepted.json()["id"], accepted.json()["job_id"]

        def fine_tuning() -> dict[str, Any] | None:
            job = http.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] in ("queued", "running"), f"the job ended before it could be interrupted: {job}"
            return job if job["status"] == "running" and job["phase"] == "fine-tune" else None

        wait_for(fine_tuning, timeout=JOB_TIMEOUT_S, what="the job's fine-tuning", interval=0.1, logs=[proc])
        victim = read_state(home / "executor.json")
        assert victim is not None and victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)

        def finished() -> dict[str, Any] | None:
            request = http.get(f"/v1/deletion-requests/{request_id}").json()
            return request if request["status"] in ("completed", "failed", "cancelled") else None

        request = wait_for(finished, timeout=JOB_TIMEOUT_S, what="the request to finish", interval=0.3, logs=[proc])
        assert request["status"] == "completed", request
        versions = http.get(f"/v1/models/{model_id}/versions").json()["items"]
        assert [v["number"] for v in versions] == [1, 2]
        assert request["version"] == 2
        after = http.get("/healthz")
        assert after.status_code == 200
        assert after.json()["executor"] == {
            "status": "running", "restarts": 1, "last_exit": "exited with signal 9 (SIGKILL)"
        }  # fmt: skip
        successor = read_state(home / "executor.json")
        assert successor is not None and successor.pid not in (None, victim.pid)

    with session_factory(database_url)() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None and job.attempts == 2 and job.lease_owner == successor.owner
    events = _job_events(database_url, job_id)
    types = [e.type for e in events]
    assert types.count("job.started") == 1 and types.count("job.succeeded") == 1
    assert types.index("job.requeued") < types.index("job.reclaimed") < types.index("job.succeeded")
    requeued = events[types.index("job.requeued")]
    assert requeued.actor == "supervisor" and requeued.data["previous_owner"] == victim.owner
    assert requeued.data["reason"] == "the local executor exited with signal 9 (SIGKILL)"

    proc.signal_main(signal.SIGTERM)
    assert proc.popen.wait(timeout=60) == 0, proc.tail()
    wait_for(lambda: not alive(successor.pid), timeout=30, what="the executor to stop with the service")
    assert "executor stopped (exit 0)" in proc.log()
