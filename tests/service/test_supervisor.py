"""The local executor's supervisor (service.supervisor): restarts with a backoff, the dead executor's job handed on
at once, the state /healthz reads, and a clean stop.

The supervised process here is a plain Python child (sleeping, or exiting at once) rather than the executor:
the supervisor only starts, watches and signals a process, and the real executor, which takes seconds to
import torch, is supervised end to end in tests/worker/test_supervised_executor.py.
"""

from __future__ import annotations

import signal
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.db import session_factory
from service.jobs import service as jobs
from service.settings import Settings
from service.supervisor import Backoff, ExecutorState, Supervisor, exit_reason, read_state, unhealthy_reason
from service.tables import Event, Job, utcnow
from tests.service import tiny
from tests.service.factories import TenantKey

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
# ignores SIGTERM, like an executor stuck in a long step, and says so by creating the file named by argv[1]
STUBBORN = [sys.executable, "-c", "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "open(sys.argv[1], 'w').close(); time.sleep(600)"]  # fmt: skip
CRASHER = [sys.executable, "-c", "import sys; sys.exit(3)"]
WAIT_S = 30.0  # bounds every wait for a child process (a loaded 2-core machine)


class Log(list[str]):
    def __call__(self, message: str) -> None:
        self.append(message)


def _supervisor(
    database_url: str, tmp_path: Path, command: list[str], *, log: Log | None = None, **kwargs: Any
) -> Supervisor:
    return Supervisor(
        database_url=database_url,
        state_file=tmp_path / "var" / "executor.json",
        max_attempts=3,
        command=lambda owner: command,
        log=log if log is not None else Log(),
        **kwargs,
    )


def _kill(supervisor: Supervisor) -> None:
    """SIGKILL the executor and wait until it is dead, so that the next poll() sees it so."""
    assert supervisor.process is not None
    supervisor.process.send_signal(signal.SIGKILL)
    supervisor.process.wait(timeout=WAIT_S)


def _poll_until_running(supervisor: Supervisor) -> None:
    deadline = time.monotonic() + WAIT_S
    while supervisor.process is None:
        assert time.monotonic() < deadline, "no executor was started again"
        time.sleep(0.02)
        supervisor.poll()


def _events(database_url: str, job_id: str) -> list[Event]:
    with session_factory(database_url)() as session:
        return list(session.execute(select(Event).where(Event.subject_id == job_id).order_by(Event.seq)).scalars())


def _job(database_url: str, job_id: str) -> Job:
    with session_factory(database_url)() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        return job


def test_exit_reasons_name_the_signal_or_the_status() -> None:
    assert exit_reason(-9) == "exited with signal 9 (SIGKILL)"
    assert exit_reason(-15) == "exited with signal 15 (SIGTERM)"
    assert exit_reason(3) == "exited with status 3"


def test_backoff_doubles_while_executors_die_young_and_is_short_again_after_one_stayed_up() -> None:
    backoff = Backoff(first=1.0, longest=8.0, stable_after=60.0)
    assert [backoff.after_exit(uptime=2.0) for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff.after_exit(uptime=61.0) == 1.0
    assert backoff.after_exit(uptime=0.5) == 2.0


def test_health_reads_a_stale_or_missing_state_as_unknown() -> None:
    now = utcnow()
    running = ExecutorState("running", 1, "o", 0, None, None, written_at=now)
    assert unhealthy_reason(running, now=now) is None
    assert "has not reported for 20 s" in (unhealthy_reason(running, now=now + timedelta(seconds=20)) or "")
    assert unhealthy_reason(None, now=now) == "local executor state unknown: its supervisor has written none"


def test_a_killed_executor_makes_health_degraded_until_its_successor_runs(
    database_url: str, data_root: Path, tmp_path: Path
) -> None:
    supervisor = _supervisor(database_url, tmp_path, SLEEPER, backoff=Backoff(first=0.1))
    settings = Settings(database_url=database_url, data_root=data_root, executor_state_file=supervisor.state_file)
    supervisor.start()
    try:
        with TestClient(create_app(settings)) as client:
            healthy = client.get("/healthz")
            assert healthy.status_code == 200
            assert healthy.json()["executor"] == {"status": "running", "restarts": 0}
            first = supervisor.process
            _kill(supervisor)
            supervisor.poll()  # sees the death; the restart is due only at a later poll

            degraded = client.get("/healthz")
            assert degraded.status_code == 503
            assert degraded.headers["content-type"] == "application/problem+json"
            assert degraded.json()["detail"].startswith(
                "local executor not running: exited with signal 9 (SIGKILL), restarting in"
            )

            _poll_until_running(supervisor)
            assert supervisor.process is not first
            again = client.get("/healthz")
            assert again.status_code == 200
            assert again.json()["executor"] == {
                "status": "running", "restarts": 1, "last_exit": "exited with signal 9 (SIGKILL)"
            }  # fmt: skip
    finally:
        supervisor.stop()


def test_the_dead_executors_job_is_claimable_at_once_and_its_attempt_counted(
    client: TestClient, tenant: TenantKey, data_root: Path, database_url: str, tmp_path: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root)
    accepted = tiny.submit(client, tenant, model["id"], [tiny.sample_id(i) for i in range(3)]).json()
    job_id = accepted["job_id"]
    log = Log()
    supervisor = _supervisor(database_url, tmp_path, SLEEPER, log=log, backoff=Backoff(first=3600.0))
    supervisor.start()
    try:
        dead_owner = supervisor.owner
        assert dead_owner is not None
        # as the executor does: a lease far longer than the test, so only the supervisor can free the job
        assert tiny.claim(database_url, job_id, owner=dead_owner, lease_seconds=3600)
        _kill(supervisor)
        supervisor.poll()

        with session_factory(database_url)() as session:
            assert jobs.next_claimable(session, max_attempts=3) == uuid.UUID(job_id)
        job = _job(database_url, job_id)
        assert (job.status, job.attempts, job.lease_owner) == ("running", 1, dead_owner)
        requeued = [e for e in _events(database_url, job_id) if e.type == "job.requeued"]
        assert len(requeued) == 1 and requeued[0].actor == jobs.SUPERVISOR_ACTOR
        assert requeued[0].data["reason"] == "the local executor exited with signal 9 (SIGKILL)"
        assert requeued[0].data["previous_owner"] == dead_owner
        assert any(f"job {job_id}" in line for line in log)

        assert tiny.claim(database_url, job_id, owner="next-executor")
        assert _job(database_url, job_id).attempts == 2
        assert [e.type for e in _events(database_url, job_id)][-2:] == ["job.requeued", "job.reclaimed"]
    finally:
        supervisor.stop()


def test_a_dead_executor_on_the_last_attempt_fails_the_job_and_its_requests(
    client: TestClient, tenant: TenantKey, data_root: Path, database_url: str
) -> None:
    model = tiny.register_model(client, tenant, data_root)
    accepted = tiny.submit(client, tenant, model["id"], [tiny.sample_id(i) for i in range(3)]).json()
    job_id = accepted["job_id"]
    for attempt in range(3):
        assert tiny.claim(database_url, job_id, owner=f"executor-{attempt}", lease_seconds=3600)
        with session_factory(database_url)() as session, session.begin():
            handed = jobs.reclaim_from_dead_worker(
                session, owner=f"executor-{attempt}", reason="the local executor exited with signal 9 (SIGKILL)"
            )
        assert handed == [uuid.UUID(job_id)]
    job = client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert job["status"] == "failed" and job["attempts"] == 3
    assert job["error"] == "gave up after 3 attempts: the local executor exited with signal 9 (SIGKILL)"
    request = client.get(f"/v1/deletion-requests/{accepted['id']}", headers=tenant.headers).json()
    assert request["status"] == "failed"
    types = [e.type for e in _events(database_url, job_id)]
    assert types.count("job.requeued") == 2 and types[-1] == "job.failed"


def test_a_crash_looping_executor_is_restarted_after_longer_and_longer_waits(
    database_url: str, tmp_path: Path
) -> None:
    log = Log()
    supervisor = _supervisor(database_url, tmp_path, CRASHER, log=log, backoff=Backoff(first=0.05, longest=0.2))
    supervisor.start()
    deadline = time.monotonic() + WAIT_S
    # until the third successor has died too: a restart is never due in the poll that saw the death
    while supervisor.restarts < 3 or supervisor.process is not None:
        assert time.monotonic() < deadline, log
        time.sleep(0.01)
        supervisor.poll()
    state = read_state(supervisor.state_file)
    supervisor.stop()
    waits = [line.rsplit("starting another in ", 1)[1] for line in log if "starting another" in line]
    assert waits == ["0.05 s", "0.1 s", "0.2 s", "0.2 s"]
    assert state is not None and (state.status, state.last_exit) == ("restarting", "exited with status 3")


def test_stopping_kills_an_executor_that_ignores_sigterm_hands_its_job_on_and_starts_no_other(
    client: TestClient, tenant: TenantKey, data_root: Path, database_url: str, tmp_path: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root)
    job_id = tiny.submit(client, tenant, model["id"], [tiny.sample_id(0)]).json()["job_id"]
    ready = tmp_path / "ignoring-sigterm"
    supervisor = _supervisor(
        database_url, tmp_path, [*STUBBORN, str(ready)], backoff=Backoff(first=0.0), stop_timeout=0.5
    )
    supervisor.start()
    assert supervisor.owner is not None
    assert tiny.claim(database_url, job_id, owner=supervisor.owner, lease_seconds=3600)
    deadline = time.monotonic() + WAIT_S
    while not ready.exists():
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.02)
    process = supervisor.process
    assert process is not None
    supervisor.stop()
    assert process.returncode == -signal.SIGKILL
    supervisor.poll()
    assert supervisor.process is None
    state = read_state(supervisor.state_file)
    assert state is not None and state.status == "stopped"
    assert unhealthy_reason(state, now=utcnow()) == "local executor not running: the service is stopping"
    requeued = [e for e in _events(database_url, job_id) if e.type == "job.requeued"]
    assert [e.data["reason"] for e in requeued] == ["the local executor did not stop within 0.5 s and was killed"]


def test_the_watching_thread_restarts_a_killed_executor_by_itself(database_url: str, tmp_path: Path) -> None:
    supervisor = _supervisor(database_url, tmp_path, SLEEPER, backoff=Backoff(first=0.1))
    with supervisor:
        first = supervisor.process
        assert first is not None
        first.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + WAIT_S
        while supervisor.restarts == 0 or supervisor.process is None:
            assert time.monotonic() < deadline, "the killed executor was not replaced"
            time.sleep(0.05)
        second = supervisor.process
    assert second.poll() is not None  # stopped on the way out
    state = read_state(supervisor.state_file)
    assert state is not None and (state.status, state.restarts) == ("stopped", 1)
