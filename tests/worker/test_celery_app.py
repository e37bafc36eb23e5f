"""The scaled-out service under faults: PostgreSQL, a private Redis, and the API, Celery worker and sweeper
processes started with docker-compose.yml's commands; the tests call the API through the Python client, and
read the ledger directly to see what the faults did. Each test is bounded in time and stops every process it
started by process id.

Jobs here are the tiny digits model with a long AMUN fine-tuning (hundreds of epochs over 300 samples:
seconds), so that a fault can land in the middle of it. Leases are 4 s and the sweeper runs every second,
so a dead worker's job is requeued within seconds.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from service.db import dispose_engines
from service.jobs import dispatch
from service.settings import Settings
from tests.service import tiny
from tests.service.conftest import _postgres_url
from tests.service.factories import TenantKey, make_tenant
from tests.service.tiny import UNLEARN, sample_id
from tests.worker.cluster import (
    Proc,
    free_port,
    start_api,
    start_blackhole,
    start_proxy,
    start_receiver,
    start_redis,
    start_sweeper,
    start_worker,
    wait_for,
)
from unlearning.specs import to_dict
from unlearning_client import NO_RETRIES, Client, DeletionRequestAccepted, UnlearningError

pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 240.0  # a whole job on two busy cores, retries included
# long enough to be caught mid-way on a fast machine, short enough for CI on two cores
LONG_UNLEARN = {**UNLEARN, "epochs": 400, "lr": 0.01, "gamma": 1.0}


@dataclass
class Cluster:
    database_url: str
    redis_port: int
    env: dict[str, str]
    settings: Settings
    api: Client  # the API process's, with the tenant's key
    tenant: TenantKey
    data_root: Path
    logs: Path
    engine: Engine
    procs: list[Proc]

    def worker(self, name: str, **env: str) -> Proc:
        return self._keep(start_worker(name, env={**self.env, **env}, log_dir=self.logs))

    def sweeper(self) -> Proc:
        return self._keep(start_sweeper(env=self.env, log_dir=self.logs))

    def _keep(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def model(self, *, retention_seconds: int | None = None, **unlearn: Any) -> str:
        """The tiny model with LONG_UNLEARN (`unlearn` overrides fields) on the tiny dataset, registered."""
        tiny.write_dataset(self.data_root)
        dataset = self.api.register_dataset(tiny.DATASET_NAME, "npz", tiny.DATASET_NAME)
        model = self.api.register_model("tiny", dataset.id, to_dict(tiny.ARCH), tiny.safetensors_bytes(),
                                        unlearn_config={**LONG_UNLEARN, **unlearn})  # fmt: skip
        if retention_seconds is not None:
            self.api.update_model(model.id, retention_seconds=retention_seconds)
        return str(model.id)

    def request(self, model_id: str, first: int, count: int = 5, **fields: Any) -> DeletionRequestAccepted:
        accepted = self.api.submit_deletion_request(model_id, [sample_id(i) for i in range(first, first + count)],
                                                    **fields)  # fmt: skip
        assert accepted.status == "queued", accepted
        return accepted

    # ---- the ledger, read directly ----

    def one(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).mappings().one_or_none()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params).mappings())

    def job(self, job_id: str) -> Any:
        return self.one("SELECT * FROM job WHERE id = :id", id=uuid.UUID(job_id))

    def job_of(self, request_id: uuid.UUID | str) -> str:
        row = self.one("SELECT job_id FROM deletion_request WHERE id = :id", id=uuid.UUID(str(request_id)))
        return str(row["job_id"])

    def wait_job(self, job_id: str, status: str = "succeeded", timeout: float = JOB_TIMEOUT_S) -> Any:
        def done() -> Any:
            job = self.job(job_id)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            return None

        job = wait_for(done, timeout=timeout, what=f"job {job_id} to finish", interval=0.3, logs=self.procs)
        assert job["status"] == status, f"job {job_id} {job['status']}: {job['error']}"
        return job

    def wait_phase(self, job_id: str, phase: str) -> Any:
        def in_phase() -> Any:
            job = self.job(job_id)
            assert job["status"] in ("queued", "running"), f"job ended before its {phase} phase: {dict(job)}"
            return job if job["status"] == "running" and job["phase"] == phase else None

        return wait_for(in_phase, timeout=JOB_TIMEOUT_S, what=f"job {job_id} in phase {phase}", interval=0.1,
                        logs=self.procs)  # fmt: skip

    def versions(self, model_id: str) -> list[Any]:
        return self.rows(
            "SELECT number, parent_id, id, job_id, sha256, status FROM model_version WHERE model_id = :m ORDER BY number",
            m=uuid.UUID(model_id),
        )

    def job_events(self, job_id: str) -> list[str]:
        return [
            r["event_type"]
            for r in self.rows("SELECT type AS event_type FROM event WHERE subject_id = :id ORDER BY seq", id=job_id)
        ]

    def request_status(self, request_id: uuid.UUID | str) -> str:
        return self.one("SELECT status FROM deletion_request WHERE id = :id", id=uuid.UUID(str(request_id)))["status"]


@pytest.fixture
def cluster(postgres_template: str, postgres_admin: Engine, tmp_path: Path) -> Iterator[Cluster]:
    name = f"unlearn_faults_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"'))
    database_url = _postgres_url(name)
    logs = tmp_path / "logs"
    logs.mkdir()
    data_root = tmp_path / "data"
    data_root.mkdir()
    redis_port = free_port()
    procs = [start_redis(redis_port, log_dir=logs)]
    signing_key = base64.b64encode(os.urandom(32)).decode()
    env = {
        **os.environ,
        "UNLEARN_DATABASE_URL": database_url,
        "UNLEARN_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "UNLEARN_STORAGE_URL": str(tmp_path / "checkpoints"),
        "UNLEARN_DATA_ROOT": str(data_root),
        "UNLEARN_SIGNING_KEY": signing_key,
        "UNLEARN_LEASE_SECONDS": "4",
        "UNLEARN_SWEEP_INTERVAL_SECONDS": "1",
        "UNLEARN_RESEND_AFTER_SECONDS": "3",
        "UNLEARN_MAX_ATTEMPTS": "3",
        "UNLEARN_ALLOW_PRIVATE_CALLBACKS": "true",  # the callback receiver listens on loopback
        "UNLEARN_LOG_LEVEL": "INFO",
        "OMP_NUM_THREADS": "1",  # several torch processes share two cores
        # the faults must land mid-job: jobs run their whole length, never stopped early by the guard
        "UNLEARN_GUARD_MAX_ACC_DROP": str(tiny.NO_GUARD),
    }
    settings = Settings(
        database_url=database_url,
        broker_url=env["UNLEARN_BROKER_URL"],
        storage_url=env["UNLEARN_STORAGE_URL"],
        data_root=data_root,
        signing_key=signing_key,
        allow_private_callbacks=True,
    )
    engine = create_engine(database_url)
    try:
        api_port = free_port()
        procs.append(start_api(api_port, env=env, log_dir=logs))
        dispatch.configure(settings)  # this process sends tasks too (test_d's extra deliveries)
        tenant = make_tenant(database_url, "acme")
        with Client(f"http://127.0.0.1:{api_port}", tenant.key) as api:
            yield Cluster(database_url, redis_port, env, settings, api, tenant, data_root, logs, engine, procs)
    finally:
        for proc in reversed(procs):
            proc.stop()
        dispatch.configure(Settings(database_url=database_url))  # back to the local dispatcher
        engine.dispose()
        dispose_engines()
        with postgres_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


def _lease_holder_pid(job: Any) -> int:
    """The pool process running the job: the lease owner is host:pid:random."""
    return int(job["lease_owner"].split(":")[1])


def test_a_worker_killed_mid_fine_tuning_is_replaced_and_exactly_one_version_appears(cluster: Cluster) -> None:
    workers = [cluster.worker("gpu1"), cluster.worker("gpu2")]
    cluster.sweeper()
    model_id = cluster.model()
    accepted = cluster.request(model_id, 0)
    job_id = cluster.job_of(accepted.id)

    running = cluster.wait_phase(job_id, "fine-tune")
    holder = _lease_holder_pid(running)
    victim = next(w for w in workers if os.getpgid(holder) == w.pid)
    victim.kill(signal.SIGKILL)  # the pool child and its parent, mid-step

    job = cluster.wait_job(job_id)
    assert job["attempts"] == 2
    assert _lease_holder_pid(job) != holder
    versions = cluster.versions(model_id)
    assert [v["number"] for v in versions] == [1, 2]
    assert str(versions[1]["job_id"]) == job_id
    assert cluster.request_status(accepted.id) == "completed"
    events = cluster.job_events(job_id)
    assert events.count("job.started") == 1
    assert "job.requeued" in events and "job.reclaimed" in events
    assert events.index("job.requeued") < events.index("job.reclaimed") < events.index("job.succeeded")


def test_b_two_jobs_of_one_model_never_overlap_and_the_second_starts_from_the_first(cluster: Cluster) -> None:
    cluster.worker("gpu1")
    cluster.worker("gpu2")
    model_id = cluster.model(epochs=150)
    first = cluster.request(model_id, 0)
    first_job = cluster.job_of(first.id)
    cluster.wait_phase(first_job, "fine-tune")
    second = cluster.request(model_id, 10)  # the first job is running: this one waits in a job of its own
    second_job = cluster.job_of(second.id)
    assert second_job != first_job

    one = cluster.wait_job(first_job)
    two = cluster.wait_job(second_job)
    assert one["finished_at"] <= two["started_at"]
    assert two["attempts"] == 1  # the early delivery found the model busy and did not count as an attempt
    versions = {v["number"]: v for v in cluster.versions(model_id)}
    assert sorted(versions) == [1, 2, 3]
    assert str(versions[2]["job_id"]) == first_job and str(versions[3]["job_id"]) == second_job
    assert versions[3]["parent_id"] == versions[2]["id"]
    assert two["parent_version_id"] == versions[2]["id"]


def test_c_a_job_queued_when_redis_restarts_still_runs(cluster: Cluster) -> None:
    sweeper = cluster.sweeper()
    model_id = cluster.model(epochs=5)
    accepted = cluster.request(model_id, 0)  # sent to Redis; no GPU worker is there to take it
    job_id = cluster.job_of(accepted.id)

    redis = cluster.procs[0]
    redis.kill(signal.SIGKILL)  # no persistence: the message is gone
    cluster.procs[0] = start_redis(cluster.redis_port, log_dir=cluster.logs)
    cluster.worker("gpu1")

    # compose restarts a sweeper that exits (restart: unless-stopped); so does this test, as kombu's Redis
    # transport can still crash a worker while it reconnects
    sweepers = [sweeper]

    def finished() -> bool:
        if not sweepers[-1].alive():
            sweepers.append(cluster.sweeper())
        return cluster.job(job_id)["status"] in ("succeeded", "failed", "cancelled")

    wait_for(finished, timeout=JOB_TIMEOUT_S, what=f"job {job_id} to finish", interval=0.3, logs=cluster.procs)
    job = cluster.wait_job(job_id)
    assert job["attempts"] == 1
    assert [v["number"] for v in cluster.versions(model_id)] == [1, 2]
    assert cluster.request_status(accepted.id) == "completed"
    assert any("re-sent (unclaimed)" in s.log() for s in sweepers)


def test_d_a_task_delivered_twice_runs_once(cluster: Cluster) -> None:
    workers = [cluster.worker("gpu1"), cluster.worker("gpu2")]
    model_id = cluster.model(epochs=100)
    accepted = cluster.request(model_id, 0)
    job_id = cluster.job_of(accepted.id)
    cluster.wait_phase(job_id, "fine-tune")
    # the same message again while the job runs (to the other worker), and once more after it finished
    assert dispatch.current().send(uuid.UUID(job_id))
    cluster.wait_job(job_id)
    assert dispatch.current().send(uuid.UUID(job_id))

    wait_for(lambda: sum(w.log().count("not_claimed") for w in workers) >= 2, timeout=60,
             what="both extra deliveries to end without effect", logs=workers)  # fmt: skip
    job = cluster.job(job_id)
    assert job["attempts"] == 1
    assert [v["number"] for v in cluster.versions(model_id)] == [1, 2]
    events = cluster.job_events(job_id)
    assert events.count("job.started") == 1 and "job.reclaimed" not in events
    assert events.count("job.succeeded") == 1


def test_e_a_job_committed_by_an_api_killed_before_dispatch_is_sent_by_the_sweeper(cluster: Cluster) -> None:
    cluster.worker("gpu1")
    cluster.sweeper()
    model_id = cluster.model(epochs=5)
    # The API's broker accepts connections and never answers: the request commits, then the send hangs,
    # and the API is killed in that window.
    hole_port = free_port()
    cluster.procs.append(start_blackhole(hole_port, log_dir=cluster.logs))
    api_port = free_port()
    api_env = {**cluster.env, "UNLEARN_BROKER_URL": f"redis://127.0.0.1:{hole_port}/0"}
    api = start_api(api_port, env=api_env, log_dir=cluster.logs)
    cluster.procs.append(api)

    ids = [sample_id(i) for i in range(5)]
    key = str(uuid.uuid4())
    outcome: dict[str, Any] = {}

    def post() -> None:
        # one try: this client must not get its answer from a retry before the API is killed
        with Client(f"http://127.0.0.1:{api_port}", cluster.tenant.key, retry=NO_RETRIES) as doomed:
            try:
                outcome["response"] = doomed.submit_deletion_request(model_id, ids, idempotency_key=key)
            except UnlearningError as exc:
                outcome["error"] = exc

    poster = threading.Thread(target=post)
    poster.start()
    committed = wait_for(
        lambda: cluster.one("SELECT id, job_id FROM deletion_request WHERE model_id = :m", m=uuid.UUID(model_id)),
        timeout=60, what="the request to commit", interval=0.05, logs=[api],
    )  # fmt: skip
    assert "response" not in outcome, "the API answered before it was killed: the window was missed"
    api.kill(signal.SIGKILL)
    poster.join(timeout=30)
    assert "error" in outcome  # the client never got its answer ...

    job = cluster.wait_job(str(committed["job_id"]))  # ... but nothing accepted is lost
    assert job["attempts"] == 1
    assert cluster.request_status(str(committed["id"])) == "completed"
    assert [v["number"] for v in cluster.versions(model_id)] == [1, 2]
    # the client's retry with its idempotency key gets the original answer
    retried = cluster.api.submit_deletion_request(model_id, ids, idempotency_key=key)
    assert retried.id == committed["id"]


def test_f_a_worker_cut_off_its_database_mid_job_is_retried_not_half_recorded(cluster: Cluster) -> None:
    db_port = int(cluster.database_url.rsplit(":", 1)[1].split("/")[0])
    proxy_port = free_port()
    proxy = start_proxy(proxy_port, db_port, log_dir=cluster.logs)
    via_proxy = cluster.database_url.replace(f":{db_port}/", f":{proxy_port}/")
    worker = cluster.worker("gpu1", UNLEARN_DATABASE_URL=via_proxy)
    cluster.sweeper()  # reaches the database directly
    model_id = cluster.model()
    accepted = cluster.request(model_id, 0)
    job_id = cluster.job_of(accepted.id)

    cluster.wait_phase(job_id, "fine-tune")
    proxy.kill(signal.SIGKILL)  # every connection of the worker drops, mid-job
    wait_for(lambda: "database_lost" in worker.log(), timeout=60, what="the worker to notice", logs=[worker])
    # nothing of the interrupted attempt was recorded
    assert [v["number"] for v in cluster.versions(model_id)] == [1]
    assert cluster.job(job_id)["status"] == "running"
    cluster.procs.append(start_proxy(proxy_port, db_port, log_dir=cluster.logs))  # the network comes back

    job = cluster.wait_job(job_id)
    assert job["attempts"] == 2
    versions = cluster.versions(model_id)
    assert [v["number"] for v in versions] == [1, 2]
    assert cluster.request_status(accepted.id) == "completed"
    events = cluster.job_events(job_id)
    assert events.count("job.succeeded") == 1 and "job.requeued" in events and "job.reclaimed" in events


def test_g_a_job_past_its_soft_time_limit_fails_with_that_reason(cluster: Cluster) -> None:
    cluster.worker("gpu1", UNLEARN_JOB_SOFT_TIME_LIMIT_SECONDS="3", UNLEARN_JOB_TIME_LIMIT_SECONDS="120")
    model_id = cluster.model(epochs=100_000)  # far longer than the limit
    accepted = cluster.request(model_id, 0)
    job = cluster.wait_job(cluster.job_of(accepted.id), status="failed")
    assert "time limit" in job["error"]
    assert job["attempts"] == 1
    assert [v["number"] for v in cluster.versions(model_id)] == [1]
    assert cluster.request_status(accepted.id) == "failed"


def test_h_callbacks_go_out_from_the_cpu_queue(cluster: Cluster) -> None:
    cluster.worker("gpu1")
    sweeper = cluster.sweeper()  # its beat schedule delivers callbacks on the cpu queue
    port = free_port()
    received = cluster.logs / "callbacks.jsonl"
    cluster.procs.append(start_receiver(port, received, log_dir=cluster.logs))
    model_id = cluster.model(epochs=5)
    accepted = cluster.request(model_id, 0, count=3, callback_url=f"http://127.0.0.1:{port}/hook")
    cluster.wait_job(cluster.job_of(accepted.id))

    def completed() -> list[dict[str, Any]]:
        lines = received.read_text().splitlines() if received.exists() else []
        bodies = [json.loads(json.loads(line)["body"]) for line in lines]
        return [b for b in bodies if b.get("type") == "deletion_request.completed"]

    [done] = wait_for(completed, timeout=60, what="the completed callback", logs=[sweeper])
    assert done["data"]["request_id"] == str(accepted.id)


def test_i_a_worker_stopped_mid_job_hands_it_over_without_using_an_attempt(cluster: Cluster) -> None:
    first = cluster.worker("gpu1")
    cluster.sweeper()
    model_id = cluster.model()
    accepted = cluster.request(model_id, 0)
    job_id = cluster.job_of(accepted.id)
    cluster.wait_phase(job_id, "fine-tune")
    first.signal_main(signal.SIGTERM)  # a warm shutdown, as `docker stop` or a deploy sends it
    wait_for(lambda: "interrupted" in first.log() and not first.alive(), timeout=60,
             what="the worker to hand the job back and exit", logs=[first])  # fmt: skip

    cluster.worker("gpu2")
    job = cluster.wait_job(job_id)
    assert job["attempts"] == 1  # the interrupted attempt was given back
    assert [v["number"] for v in cluster.versions(model_id)] == [1, 2]
    assert cluster.request_status(accepted.id) == "completed"
    events = cluster.job_events(job_id)
    assert events.index("job.released") < events.index("job.reclaimed") < events.index("job.succeeded")


def test_j_the_erasure_sweep_runs_from_the_beat_schedule(cluster: Cluster) -> None:
    cluster.worker("gpu1")
    sweeper = cluster._keep(start_sweeper(env={**cluster.env, "UNLEARN_ERASURE_SWEEP_INTERVAL_SECONDS": "1"},
                                          log_dir=cluster.logs))  # fmt: skip
    model_id = cluster.model(epochs=5, retention_seconds=0)
    accepted = cluster.request(model_id, 0, count=3)
    cluster.wait_job(cluster.job_of(accepted.id))

    def erased() -> Any:
        return cluster.one("SELECT erased_at FROM deletion_request WHERE id = :id AND erased_at IS NOT NULL",
                           id=accepted.id)  # fmt: skip

    wait_for(erased, timeout=60, what="the request's erasure by the beat's sweep", logs=[sweeper])
    assert [v["status"] for v in cluster.versions(model_id)] == ["destroyed", "ready"]
