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
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from service.db import session_factory
from service.supervisor import read_state
from service.tables import Event, Job
from tests.service import tiny
from tests.service.factories import TenantKey, make_tenant
from tests.worker.cluster import Proc, alive, free_port, healthy, wait_for
from unlearning.specs import to_dict
import unlearning_client
from unlearning_client import FINAL_REQUEST_STATUSES, Client, DeletionRequest

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

    def ready() -> bool:
        assert proc.alive(), proc.tail()
        return healthy(base)

    try:
        wait_for(ready, timeout=STARTUP_TIMEOUT_S, what="the service to answer /healthz", interval=0.3, logs=[proc])
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
    tiny.write_dataset(home / "data")
    with Client(base, tenant.key) as api:
        before = api.health()
        assert before.executor is not None
        assert (before.executor.status, before.executor.restarts, before.executor.last_exit) == ("running", 0, None)
        dataset = api.register_dataset(tiny.DATASET_NAME, "npz", tiny.DATASET_NAME)
        model_id = api.register_model("tiny", dataset.id, to_dict(tiny.ARCH), tiny.safetensors_bytes(),
                                      unlearn_config=LONG_UNLEARN).id  # fmt: skip
        accepted = api.submit_deletion_request(model_id, [tiny.sample_id(i) for i in range(5)])
        assert accepted.job_id is not None
        job_id = accepted.job_id

        def fine_tuning() -> unlearning_client.Job | None:
            job = api.get_job(job_id)
            assert job.status in ("queued", "running"), f"the job ended before it could be interrupted: {job}"
            return job if job.status == "running" and job.phase == "fine-tune" else None

        wait_for(fine_tuning, timeout=JOB_TIMEOUT_S, what="the job's fine-tuning", interval=0.1, logs=[proc])
        victim = read_state(home / "executor.json")
        assert victim is not None and victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)

        def finished() -> DeletionRequest | None:
            request = api.get_deletion_request(accepted.id)
            return request if request.status in FINAL_REQUEST_STATUSES else None

        request = wait_for(finished, timeout=JOB_TIMEOUT_S, what="the request to finish", interval=0.3, logs=[proc])
        assert request.status == "completed", request
        assert [v.number for v in api.iter_versions(model_id)] == [1, 2]
        assert request.version == 2
        after = api.health()  # a 503 would raise ServiceUnavailable
        assert after.executor is not None
        assert (after.executor.status, after.executor.restarts, after.executor.last_exit) == (
            "running", 1, "exited with signal 9 (SIGKILL)"
        )  # fmt: skip
        successor = read_state(home / "executor.json")
        assert successor is not None and successor.pid not in (None, victim.pid)

    with session_factory(database_url)() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.attempts == 2 and job.lease_owner == successor.owner
    events = _job_events(database_url, str(job_id))
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
