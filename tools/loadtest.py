"""Load test of the deletion-request API: `python -m tools.loadtest` (see README, "Load test"; not part of CI).

It calls the API through unlearning_client, as an integration would, with retries off: every failure counts.
For each backend (the embedded default, and PostgreSQL + Redis) it makes a fresh ledger, starts the real
server as a subprocess on loopback, and measures: the claim latency of an idle worker; N concurrent
clients each posting deletion requests and reading them back (requests per second and p50/p95/p99
latency per endpoint), both closed-loop (no pause: the saturation throughput) and paced (a pause after
every call, like a data-governance system polling once a second); one 100,000-ID request. Every process
it starts is stopped by pid, every database and Redis db it used is dropped or flushed, also on Ctrl-C
or error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import platform
import random
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from unlearning_client import NO_RETRIES, ApiError, AsyncClient, Client, Conflict, UnlearningError

BACKENDS = ("embedded", "postgres+redis")
POST_ENDPOINT = "POST /v1/models/{id}/deletion-requests"
GET_ENDPOINT = "GET /v1/deletion-requests/{id}"
REPO_ROOT = Path(__file__).resolve().parent.parent  # tools/ sits in the repository root
CELERY_APP = REPO_ROOT / "worker" / "celery_app.py"
# The Celery worker as a GPU host runs it (one process, one job at a time); --loglevel INFO prints the
# "ready." line this tool waits for.
CELERY_WORKER = [
    "celery", "--app", "worker.celery_app", "worker", "--queues", "gpu", "--concurrency", "1",
    "--pool", "prefork", "--hostname", "gpu@%h", "--loglevel", "INFO",
]  # fmt: skip

IMAGE_SIZE = 8  # the smallest image small_cnn takes: the dataset file stays small, the ID space large
NUM_CLASSES = 10
# an untrained small CNN stands in for a real model: the load test measures the API, not unlearning
ARCHITECTURE: dict[str, Any] = {
    "name": "small_cnn", "num_classes": NUM_CLASSES, "in_channels": 1, "image_size": IMAGE_SIZE, "width": 8
}  # fmt: skip
CLAIM_SAMPLES = 1_000  # the claim-latency model's dataset: small, so a job that does run finishes soon
# cheap enough that a claimed job which is not cancelled in time still ends within seconds
CLAIM_UNLEARN_CONFIG = {"method": "amun", "epochs": 1, "batch_size": 64, "attack": {"eps_init": 0.2, "steps": 5}}

HEALTH_TIMEOUT_S = 120.0  # a cold server start on a busy 2-core machine (migrations, imports)
WORKER_READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0  # SIGTERM, then SIGKILL; the server stops its executor within this
CLAIM_TIMEOUT_S = 30.0  # a job not claimed by then counts as an error of the claim measurement
JOB_END_TIMEOUT_S = 120.0  # a cancelled job stops at its next progress step
CLAIM_POLL_S = 0.02
REQUEST_TIMEOUT_S = 120.0
# closed loop (the saturation throughput), then paced clients: POST, 1 s, GET, 1 s
DEFAULT_THINK_MS = [0.0, 1000.0]
# API processes per backend unless --server-workers says otherwise: both cores on PostgreSQL; one on
# SQLite, whose writers take turns on a lock of the process (service.requests.writer_lock)
DEFAULT_SERVER_WORKERS = {"embedded": 1, "postgres+redis": 2}


class LoadTestError(RuntimeError):
    """A step could not run (a server did not start, a set-up call failed); the message says why."""


class IdsExhausted(Exception):
    """The model's dataset has no unrequested sample ID left."""


# ---- statistics ----


def summarise(
    *,
    backend: str,
    endpoint: str,
    clients: int,
    latencies_s: Sequence[float],
    errors: int,
    seconds: float,
    think_ms: float | None = None,
) -> dict[str, Any]:
    """One row of the results: `requests` counts every attempt (errors included); rps and the latency
    percentiles count the successful ones (an error is often a fast failure, which would flatter them).
    `think_ms`, when given, is the clients' pause after each call (0: closed loop)."""
    ok = np.asarray(latencies_s, dtype=float) * 1000.0
    p50, p95, p99 = (float(v) for v in np.percentile(ok, [50, 95, 99])) if ok.size else (None, None, None)
    return {
        "backend": backend,
        "endpoint": endpoint,
        "clients": clients,
        **({} if think_ms is None else {"think_ms": think_ms}),
        "requests": int(ok.size) + errors,
        "errors": errors,
        "rps": round(ok.size / seconds, 2) if seconds > 0 else None,
        "p50_ms": _round(p50),
        "p95_ms": _round(p95),
        "p99_ms": _round(p99),
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class EndpointLog:
    """What the clients saw of one endpoint during the measured window."""

    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)

    def failure(self, reason: str) -> None:
        self.errors += 1
        if len(self.error_examples) < 5 and reason not in self.error_examples:
            self.error_examples.append(reason)


class IdPool:
    """Fresh sample IDs of one model's dataset, handed out once each ("s0", "s1", ...)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.next = 0

    def take(self, n: int) -> list[str]:
        if self.next + n > self.size:
            raise IdsExhausted(f"the dataset's {self.size} sample IDs are used up")
        start, self.next = self.next, self.next + n
        return [f"s{i}" for i in range(start, start + n)]


# ---- the data the server is given ----


def write_dataset(folder: Path, samples: int, *, seed: int = 0) -> None:
    """train.npz of `samples` random 8x8 grey images with IDs "s0", "s1", ... and a small test.npz.

    The images are noise: the load test measures the API, never what a model learns.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(samples, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)  # N, H, W
    y = np.arange(samples, dtype=np.int64) % NUM_CLASSES
    ids = np.char.add("s", np.arange(samples).astype(str))
    np.savez(folder / "train.npz", x=x, y=y, ids=ids)
    test = min(samples, 200)
    np.savez(folder / "test.npz", x=x[:test], y=y[:test])


def untrained_checkpoint() -> bytes:
    """An untrained small CNN for the 8x8 grey images, as safetensors bytes."""
    import torch  # imported here: only the set-up needs it

    from unlearning.models import build_model, checkpoint_bytes
    from unlearning.specs import ArchSpec

    torch.manual_seed(0)
    model = build_model(ArchSpec(**ARCHITECTURE))
    return checkpoint_bytes(model)


# ---- processes ----


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without any UNLEARN_* of its own, plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLEARN_")}
    env.update(settings)
    return env


class Process:
    """A child process in its own session, its output in a log file; stopped by pid (and its group)."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self._log_file = log.open("wb")
        # a new session: Ctrl-C in the terminal reaches only this tool, which then stops the child itself
        self.popen = subprocess.Popen(
            argv, env=env, cwd=REPO_ROOT, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (the server stops its executor on the way out), wait, then SIGKILL what is left."""
        try:
            if self.alive():
                self.popen.terminate()
                try:
                    self.popen.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait()
            # a child it started (the executor, Celery's pool process) must not outlive it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        finally:
            self._log_file.close()


def wait_healthy(base_url: str, server: Process, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    with Client(base_url, timeout=2.0, retry=NO_RETRIES) as api:
        while time.monotonic() < deadline:
            if not server.alive():
                raise LoadTestError(f"the server exited with {server.popen.returncode}:\n{server.tail()}")
            with contextlib.suppress(UnlearningError):
                api.health()
                return
            time.sleep(0.2)
    raise LoadTestError(f"the server did not answer /healthz within {timeout_s:.0f} s:\n{server.tail()}")


def wait_worker_ready(worker: Process, timeout_s: float = WORKER_READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not worker.alive():
            raise LoadTestError(f"the Celery worker exited with {worker.popen.returncode}:\n{worker.tail()}")
        if re.search(r"\bready\.", worker.tail(200)):
            return
        time.sleep(0.2)
    raise LoadTestError(f"the Celery worker was not ready within {timeout_s:.0f} s:\n{worker.tail()}")


def create_tenant(env: dict[str, str]) -> str:
    """A tenant made with the operator CLI; its admin API key."""
    done = subprocess.run(
        [sys.executable, "-m", "service", "create-tenant", "loadtest"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise LoadTestError(f"create-tenant failed: {done.stderr.strip()}")
    for line in done.stdout.splitlines():
        if line.startswith("admin_key: "):
            return line.removeprefix("admin_key: ").strip()
    raise LoadTestError(f"create-tenant printed no admin key: {done.stdout!r}")


# ---- ledgers and brokers ----


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (the server migrates it); dropped afterwards."""
    from sqlalchemy import create_engine, make_url, text

    name = f"unlearn_load_{secrets.token_hex(6)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def redis_db(url: str, db: int) -> Iterator[str]:
    """A Redis db that must be empty before (it may be someone else's) and is flushed after."""
    import redis

    client = redis.Redis.from_url(url, db=db)
    try:
        if client.dbsize():
            raise LoadTestError(f"Redis db {db} at {url} is not empty; choose a free one with --redis-db")
        try:
            yield f"{url.rstrip('/')}/{db}"
        finally:
            client.flushdb()
    finally:
        client.close()


def check_postgres_redis(postgres_url: str, redis_url: str) -> tuple[str | None, dict[str, str]]:
    """(why the backend cannot run, or None; the servers' versions)."""
    import redis
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    versions: dict[str, str] = {}
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            versions["postgres"] = str(conn.execute(text("SHOW server_version")).scalar_one())
    except SQLAlchemyError as exc:
        return f"PostgreSQL unreachable at {postgres_url}: {str(exc).splitlines()[0]}", versions
    finally:
        engine.dispose()
    client = redis.Redis.from_url(redis_url)
    try:
        versions["redis"] = str(client.info("server")["redis_version"])
    except redis.RedisError as exc:
        return f"Redis unreachable at {redis_url}: {exc}", versions
    finally:
        client.close()
    return None, versions


# ---- set-up over HTTP ----


def _client(base_url: str, key: str) -> Client:
    """The set-up's and the claim measurement's client; no retries, so a failure shows at once."""
    return Client(base_url, key, timeout=REQUEST_TIMEOUT_S, retry=NO_RETRIES)


def register_model(api: Client, name: str, dataset_id: str, checkpoint: bytes, unlearn_config: dict[str, Any]) -> str:
    return str(api.register_model(name, dataset_id, ARCHITECTURE, checkpoint, unlearn_config=unlearn_config).id)


def _failure(exc: Exception) -> str:
    """One line on a failed call, for the notes: the status and the problem's detail, or the exception."""
    if isinstance(exc, ApiError):
        return f"HTTP {exc.status}: {exc.detail or exc.title}"[:200]
    return f"{type(exc).__name__}: {exc}"[:200]


# ---- the measurements ----


@dataclass
class StepResult:
    rows: list[dict[str, Any]]
    error_examples: dict[str, list[str]]
    ids_exhausted: bool


async def _client_loop(
    api: AsyncClient,
    *,
    model_id: str,
    pool: IdPool,
    ids: int,
    think_s: float,
    measure_from: float,
    stop_at: float,
    logs: dict[str, EndpointLog],
    finished: list[float],
    exhausted: list[bool],
) -> None:
    """Post a request of fresh IDs, read it back once, repeat; record what started in the measured window.

    Paced (think_s > 0): pause think_s after the POST and after the GET, having first waited a random part
    of one such cycle, so that the clients do not all call at the same moments.
    """
    if think_s > 0:
        await asyncio.sleep(random.uniform(0.0, 2 * think_s))
    while time.perf_counter() < stop_at:
        try:
            sample_ids = pool.take(ids)
        except IdsExhausted:
            exhausted[0] = True
            return
        started = time.perf_counter()
        measured = started >= measure_from
        request_id = None
        try:
            request_id = (await api.submit_deletion_request(model_id, sample_ids)).id
            done = time.perf_counter()
            if measured:
                logs[POST_ENDPOINT].latencies_s.append(done - started)
        except Exception as exc:  # any failure of the call is the endpoint's error, counted, never fatal
            done = time.perf_counter()
            if measured:
                logs[POST_ENDPOINT].failure(_failure(exc))
        if request_id is not None:
            if think_s > 0:
                await asyncio.sleep(think_s)
            started = time.perf_counter()
            try:
                await api.get_deletion_request(request_id)
                done = time.perf_counter()
                if measured:
                    logs[GET_ENDPOINT].latencies_s.append(done - started)
            except Exception as exc:
                done = time.perf_counter()
                if measured:
                    logs[GET_ENDPOINT].failure(_failure(exc))
        if measured:
            finished.append(done)
        if think_s > 0:
            await asyncio.sleep(think_s)


async def run_step(
    *,
    base_url: str,
    key: str,
    backend: str,
    model_id: str,
    pool: IdPool,
    clients: int,
    ids: int,
    duration_s: float,
    warmup_s: float,
    think_ms: float,
) -> StepResult:
    """N clients on one shared connection pool, pausing `think_ms` after each call (0: closed loop);
    `duration_s` measured after `warmup_s`."""
    logs = {POST_ENDPOINT: EndpointLog(), GET_ENDPOINT: EndpointLog()}
    finished: list[float] = []
    exhausted = [False]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with AsyncClient(base_url, key, limits=limits, timeout=REQUEST_TIMEOUT_S, retry=NO_RETRIES) as api:
        begin = time.perf_counter()
        measure_from = begin + warmup_s
        stop_at = measure_from + duration_s
        await asyncio.gather(
            *(
                _client_loop(
                    api, model_id=model_id, pool=pool, ids=ids, think_s=think_ms / 1000.0,
                    measure_from=measure_from, stop_at=stop_at, logs=logs, finished=finished, exhausted=exhausted,
                )  # fmt: skip
                for _ in range(clients)
            )
        )
    # the window ends when the last iteration begun inside it has finished (or the IDs ran out)
    seconds = (max(finished) - measure_from) if finished else 0.0
    rows = [
        summarise(
            backend=backend, endpoint=name, clients=clients, latencies_s=log.latencies_s, errors=log.errors,
            seconds=seconds, think_ms=think_ms,
        )  # fmt: skip
        for name, log in logs.items()
    ]
    for row in rows:
        row["seconds"] = round(seconds, 2)
        if exhausted[0]:
            row["ids_exhausted"] = True
    return StepResult(rows, {k: v.error_examples for k, v in logs.items() if v.error_examples}, exhausted[0])


def large_request(api: Client, model_id: str, pool: IdPool, ids: int) -> tuple[float | None, str | None]:
    """(wall seconds from the call that sends one request of `ids` fresh IDs to its 2xx answer, or None; the
    error). The client's own work is timed too: encoding 100,000 IDs as JSON takes about 15 ms."""
    sample_ids = pool.take(ids)
    started = time.perf_counter()
    try:
        api.submit_deletion_request(model_id, sample_ids)
    except UnlearningError as exc:
        return None, _failure(exc)
    return time.perf_counter() - started, None


def measure_claims(api: Client, model_id: str, pool: IdPool, repeats: int) -> dict[str, Any]:
    """Post a one-ID request, read its job until a worker has started it, cancel it and wait for its end.

    The API's own timestamps give started_at - created_at; the client-observed time runs from the 202 to
    the first read that shows started_at (it includes up to one poll interval).
    """
    api_s: list[float] = []
    client_s: list[float] = []
    errors: list[str] = []
    for _ in range(repeats):
        # a random pause, so the posts fall at random points of an executor's poll cycle
        time.sleep(random.uniform(0.5, 1.5))
        accepted = api.submit_deletion_request(model_id, pool.take(1))
        accepted_at = time.perf_counter()
        job_id = accepted.job_id
        if job_id is None:
            raise LoadTestError(f"request {accepted.id} queued no job (status {accepted.status})")
        job = api.get_job(job_id)
        deadline = accepted_at + CLAIM_TIMEOUT_S
        while job.started_at is None and time.perf_counter() < deadline:
            time.sleep(CLAIM_POLL_S)
            job = api.get_job(job_id)
        if job.started_at is None:
            errors.append(f"job {job_id} was not claimed within {CLAIM_TIMEOUT_S:.0f} s")
        else:
            client_s.append(time.perf_counter() - accepted_at)
            api_s.append((job.started_at - job.created_at).total_seconds())
        with contextlib.suppress(Conflict):  # it had already finished
            api.cancel_job(job_id)
        deadline = time.perf_counter() + JOB_END_TIMEOUT_S
        while api.get_job(job_id).finished_at is None:  # the worker is idle again before the next one
            if time.perf_counter() > deadline:
                raise LoadTestError(f"job {job_id} did not end within {JOB_END_TIMEOUT_S:.0f} s of its cancellation")
            time.sleep(0.1)
    result: dict[str, Any] = {
        "median": _round(float(np.median(api_s)), 3) if api_s else None,
        "samples": [round(s, 3) for s in api_s],
        "client_observed_median": _round(float(np.median(client_s)), 3) if client_s else None,
        "client_observed_samples": [round(s, 3) for s in client_s],
    }
    if errors:
        result["errors"] = errors
    return result


# ---- one backend from start to end ----


@dataclass
class Plan:
    clients: list[int]
    duration_s: float
    warmup_s: float
    ids: int
    think_ms: list[float]
    samples: int
    large_ids: int
    claim_repeats: int
    postgres_url: str
    redis_url: str
    redis_db: int
    log_level: str
    server_workers: int | None = None  # None: DEFAULT_SERVER_WORKERS of the backend


@dataclass
class BackendResult:
    server_workers: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    large_request_seconds: float | None = None
    claim_latency: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _say(message: str) -> None:
    print(message, flush=True)


def run_backend(backend: str, plan: Plan, *, work: Path, data_root: Path, checkpoint: bytes) -> BackendResult:
    workers = plan.server_workers if plan.server_workers is not None else DEFAULT_SERVER_WORKERS[backend]
    result = BackendResult(server_workers=workers)
    with contextlib.ExitStack() as stack:
        settings = {
            "UNLEARN_STORAGE_URL": str(work / "checkpoints"),
            "UNLEARN_DATA_ROOT": str(data_root),
            "UNLEARN_SIGNING_KEY_FILE": str(work / "signing_key"),
            "UNLEARN_MAX_IDS_PER_REQUEST": str(max(100_000, plan.large_ids, plan.ids)),
            "UNLEARN_LOG_LEVEL": plan.log_level,
        }
        if backend == "embedded":
            settings["UNLEARN_DATABASE_URL"] = f"sqlite:///{work / 'ledger.db'}"
        else:
            settings["UNLEARN_DATABASE_URL"] = stack.enter_context(postgres_database(plan.postgres_url))
            settings["UNLEARN_BROKER_URL"] = stack.enter_context(redis_db(plan.redis_url, plan.redis_db))
            # a server database has no key file of its own: API and worker share one configured key
            settings["UNLEARN_SIGNING_KEY"] = base64.b64encode(os.urandom(32)).decode()
        env = child_env(settings)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        serve = [
            sys.executable, "-m", "service", "run", "--host", "127.0.0.1", "--port", str(port), "--no-demo",
            "--workers", str(workers),
        ]  # fmt: skip

        def start_server(extra: list[str], label: str) -> Process:
            server = Process(f"server ({label})", serve + extra, env=env, log=work / f"server-{label}.log")
            stack.callback(server.stop)
            wait_healthy(base_url, server)
            return server

        # 1. Claim latency first, on an idle ledger, with one idle worker and nothing else running.
        executor = " with its executor" if backend == "embedded" else ""
        _say(f"[{backend}] claim latency: starting the server{executor}")
        server = start_server([] if backend == "embedded" else ["--no-executor"], "claim")
        key = create_tenant(env)
        api = stack.enter_context(_client(base_url, key))
        claim_dataset = str(api.register_dataset("claim", "npz", "claim").id)
        claim_model = register_model(api, "claim", claim_dataset, checkpoint, CLAIM_UNLEARN_CONFIG)
        claim_pool = IdPool(CLAIM_SAMPLES)
        if plan.claim_repeats <= 0:
            result.claim_latency = {"skipped": "--claim-repeats 0"}
        elif backend == "embedded":
            result.claim_latency = measure_claims(api, claim_model, claim_pool, plan.claim_repeats)
        elif not CELERY_APP.is_file():
            result.claim_latency = {"skipped": f"{CELERY_APP.relative_to(REPO_ROOT)} does not exist yet"}
        else:
            worker = Process("celery worker", CELERY_WORKER, env=env, log=work / "worker.log")
            try:
                wait_worker_ready(worker)
                result.claim_latency = measure_claims(api, claim_model, claim_pool, plan.claim_repeats)
            except LoadTestError as exc:
                result.claim_latency = {"skipped": str(exc).splitlines()[0]}
                _say(str(exc))
            finally:
                worker.stop()
        _say(f"[{backend}] claim latency: {json.dumps(result.claim_latency)}")

        # 2. Throughput: no worker and no executor, so no training competes with the API for the CPU.
        if backend == "embedded":
            server.stop()
            server = start_server(["--no-executor"], "load")
        dataset = str(api.register_dataset("load", "npz", "load").id)
        _say(f"[{backend}] dataset of {plan.samples} samples registered")
        steps = [(think, n) for think in plan.think_ms for n in plan.clients]
        models = {
            (think, n): register_model(api, f"load-{n}-clients-{think:g}ms", dataset, checkpoint, {})
            for think, n in steps
        }
        pools = {step: IdPool(plan.samples) for step in steps}
        api.submit_deletion_request(models[steps[0]], pools[steps[0]].take(1))  # loads the ID cache: not measured
        for think, n in steps:
            step = asyncio.run(
                run_step(
                    base_url=base_url, key=key, backend=backend, model_id=models[think, n], pool=pools[think, n],
                    clients=n, ids=plan.ids, duration_s=plan.duration_s, warmup_s=plan.warmup_s, think_ms=think,
                )  # fmt: skip
            )
            result.runs.extend(step.rows)
            _say(format_rows(step.rows, header=(think, n) == steps[0]))
            label = f"{backend}, {n} {pacing(think)} clients"
            for endpoint, examples in step.error_examples.items():
                note = f"{label}, {endpoint}: errors such as {examples}"
                result.notes.append(note)
                _say(f"  {note}")
            if step.ids_exhausted:
                note = f"{label}: the {plan.samples} sample IDs ran out; the step ended early"
                result.notes.append(note)
                _say(f"  {note} (raise --samples)")

        # 3. One large request, on a model of its own.
        large_model = register_model(api, "load-large", dataset, checkpoint, {})
        seconds, error = large_request(api, large_model, IdPool(plan.samples), plan.large_ids)
        result.large_request_seconds = _round(seconds, 3)
        if error is not None:
            result.notes.append(f"{backend}: the {plan.large_ids}-ID request failed: {error}")
        _say(f"[{backend}] one request of {plan.large_ids} IDs: " + (f"{seconds:.3f} s" if error is None else error))
    return result


# ---- output ----

_COLUMNS = ("backend", "endpoint", "clients", "think_ms", "requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms")


def pacing(think_ms: float) -> str:
    return "closed-loop" if think_ms == 0 else f"paced ({think_ms:g} ms pauses)"


def _cell(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1000, not 1000.0
    return "-" if value is None else str(value)


def format_rows(rows: list[dict[str, Any]], *, header: bool = True) -> str:
    widths = {"backend": 14, "endpoint": 38, "clients": 7, "requests": 8, "errors": 6}
    lines = []
    if header:
        lines.append("  ".join(c.ljust(widths.get(c, 8)) for c in _COLUMNS))
    for row in rows:
        lines.append("  ".join(_cell(row.get(c)).ljust(widths.get(c, 8)) for c in _COLUMNS))
    return "\n".join(lines)


def machine_info(versions: dict[str, str], backends: list[str]) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "note": "the load generator, the API server and its worker"
        + (", PostgreSQL and Redis" if "postgres+redis" in backends else "")
        + " all share this machine",
    }
    info.update(versions)
    return info


def targets(report: dict[str, Any]) -> list[str]:
    """The issue's targets, read from the results (never asserted anywhere); each only for the sizes it names."""
    lines = []
    rows = [
        r for r in report["runs"]
        if r["backend"] == "postgres+redis" and r["endpoint"] == POST_ENDPOINT and r["clients"] == 50
    ]  # fmt: skip
    for r in rows if report["ids_per_request"] == 100 else []:  # closed-loop and paced clients alike
        met = r["p99_ms"] is not None and r["p99_ms"] <= 50 and r["errors"] == 0
        lines.append(
            f"POST of a {report['ids_per_request']}-ID request, 50 {pacing(r.get('think_ms', 0))} clients, "
            f"postgres+redis: p99 {r['p99_ms']} ms, {r['errors']} errors (target p99 <= 50 ms, no errors): "
            f"{'met' if met else 'not met'}"
        )
    large = report["large_request_seconds"] if report["large_request_ids"] == 100_000 else {}
    for backend, seconds in large.items():
        met = seconds is not None and seconds <= 2.0
        lines.append(
            f"{report['large_request_ids']}-ID request on {backend}: {_cell(seconds)} s (target <= 2 s): "
            f"{'met' if met else 'not met'}"
        )
    for backend, claim in report["claim_latency_seconds"].items():
        if claim.get("median") is None:
            lines.append(f"claim latency on {backend}: {claim.get('skipped') or claim.get('errors')}")
            continue
        met = claim["median"] <= 1.0 and not claim.get("errors")
        lines.append(
            f"claim latency on {backend}: median {claim['median']} s (target <= 1 s): {'met' if met else 'not met'}"
        )
    return lines


def markdown(report: dict[str, Any], figure: str | None = None) -> str:
    """The report as Markdown; `figure` is the latency picture's file name, beside the Markdown file."""
    m = report["machine"]
    out = [
        "# Load test: deletion requests",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['os']}"
        + "".join(f", {name} {m[name]}" for name in ("postgres", "redis") if name in m)
        + f"; {m['date']}. Note: {m['note']}.",
        "",
        "## Requests per second and latency",
        "",
        f"Each client posts a deletion request of {report['ids_per_request']} fresh sample IDs, then reads it back "
        f"once, and repeats; {report['duration_seconds']} s measured per step after {report['warmup_seconds']} s "
        "of warm-up. `think_ms` is the client's pause after each call: 0 is a closed loop (the saturation "
        "throughput); paced clients (POST, pause, GET, pause) poll as a data-governance system would. "
        "rps and percentiles count successful requests; `requests` includes errors. API server processes: "
        + ", ".join(f"{b} {n}" for b, n in report.get("server_workers", {}).items())
        + ".",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    out += ["| " + " | ".join(_cell(r.get(c)) for c in _COLUMNS) + " |" for r in report["runs"]]
    if figure:
        out += ["", f"![POST latency against concurrent clients]({figure})"]
    out += ["", f"## One request of {report['large_request_ids']} IDs", ""]
    out += ["| backend | seconds to the 2xx |", "|---|---|"]
    out += [f"| {b} | {_cell(s)} |" for b, s in report["large_request_seconds"].items()]
    out += [
        "",
        "## Claim latency with an idle worker",
        "",
        "job.started_at - job.created_at from the API's own timestamps (median of the samples); client-observed: "
        "from the 202 to the first read of the job that shows it started.",
        "",
        "| backend | median s | samples | client-observed median s | note |",
        "|---|---|---|---|---|",
    ]
    for backend, c in report["claim_latency_seconds"].items():
        note = c.get("skipped") or "; ".join(c.get("errors", [])) or ""
        out.append(
            f"| {backend} | {_cell(c.get('median'))} | {c.get('samples', '-')} | "
            f"{_cell(c.get('client_observed_median'))} | {note} |"
        )
    out += ["", "## Targets", ""] + [f"- {line}" for line in targets(report)]
    if report.get("notes"):
        out += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(out) + "\n"


# ---- command line ----


def latency_figure(report: dict[str, Any], path: Path) -> None:
    """POST latency (p50 and p99) against the number of clients, one panel per pacing, with the target."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    posts = [r for r in report["runs"] if r["endpoint"].startswith("POST") and r["p99_ms"] is not None]
    paces = sorted({r["think_ms"] for r in posts})
    fig, axes = plt.subplots(1, len(paces), figsize=(5.5 * len(paces), 4), squeeze=False, sharey=True)
    for ax, think in zip(axes[0], paces, strict=True):
        for backend in sorted({r["backend"] for r in posts}):
            rows = sorted((r for r in posts if r["backend"] == backend and r["think_ms"] == think),
                          key=lambda r: r["clients"])  # fmt: skip
            clients = [r["clients"] for r in rows]
            (line,) = ax.plot(clients, [r["p99_ms"] for r in rows], marker="o", label=f"{backend} p99")
            ax.plot(clients, [r["p50_ms"] for r in rows], marker=".", linestyle="--", color=line.get_color(),
                    label=f"{backend} p50")  # fmt: skip
        ax.axhline(50, color="grey", linewidth=0.8, linestyle=":", label="target p99 50 ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent clients")
        ax.set_title(f"POST of {report['ids_per_request']} IDs, {pacing(think)}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("latency (ms)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _ms_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated milliseconds, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected milliseconds not below 0, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.loadtest",
        description="Load-test the deletion-request API on loopback: concurrent clients post requests and read "
        "them back; prints requests per second and p50/p95/p99 latency per endpoint, the time of one large "
        "request and an idle worker's claim latency, and writes OUT.json and OUT.md.",
    )
    parser.add_argument(
        "--backend", choices=(*BACKENDS, "both"), default="both",
        help="embedded (SQLite, local executor), postgres+redis, or both (default)",
    )  # fmt: skip
    parser.add_argument(
        "--clients", type=_int_list, default=[1, 10, 50], help="client counts, one step each per --think-ms (1,10,50)"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per step (20)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each step (2)")
    parser.add_argument("--ids", type=int, default=100, help="sample IDs per deletion request (100)")
    parser.add_argument(
        "--think-ms", type=_ms_list, default=DEFAULT_THINK_MS,
        help="client pauses to measure, a step each: every client pauses this long after its POST and after its "
        "GET; 0 = closed loop (0,1000: closed-loop clients, then paced ones polling once a second)",
    )  # fmt: skip
    parser.add_argument(
        "--server-workers", type=int, default=None, metavar="N",
        help="API server processes (`service run --workers N`); default 1 on embedded (SQLite's writers take turns "
        "within one process), 2 on postgres+redis (both cores of a 2-core machine)",
    )  # fmt: skip
    parser.add_argument(
        "--samples", type=int, default=1_000_000,
        help="training samples of the synthetic dataset: every step has a model of its own and never requests "
        "an ID twice for it, so one step can post at most SAMPLES/IDS requests (1000000)",
    )  # fmt: skip
    parser.add_argument("--large-ids", type=int, default=100_000, help="IDs of the one large request (100000)")
    parser.add_argument(
        "--claim-repeats", type=int, default=5, help="claim-latency measurements per backend; 0 skips them (5)"
    )
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="an admin connection to PostgreSQL; a fresh database is created there and dropped after",
    )  # fmt: skip
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379", help="Redis server, without a db number")
    parser.add_argument(
        "--redis-db", type=int, default=14, help="an empty Redis db for the broker; flushed after (14)"
    )
    parser.add_argument(
        "--log-level", default="INFO", help="the server's UNLEARN_LOG_LEVEL (INFO, the service default)"
    )
    parser.add_argument("--out", default="bench/results/load", help="writes OUT.json and OUT.md (bench/results/load)")
    parser.add_argument("--work-dir", default=None, help="keep ledgers and server logs here instead of a temp dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.ids < 1 or args.large_ids < 1 or args.duration <= 0 or args.warmup < 0:
        print("error: --ids, --large-ids and --duration must be positive, --warmup not negative", file=sys.stderr)
        return 2
    if args.server_workers is not None and args.server_workers < 1:
        print("error: --server-workers must be at least 1", file=sys.stderr)
        return 2
    if args.samples < max(args.ids, args.large_ids) + 1:
        print("error: --samples must exceed --ids and --large-ids", file=sys.stderr)
        return 2
    plan = Plan(
        clients=args.clients, duration_s=args.duration, warmup_s=args.warmup, ids=args.ids, think_ms=args.think_ms,
        samples=args.samples, large_ids=args.large_ids, claim_repeats=args.claim_repeats,
        postgres_url=args.postgres_url, redis_url=args.redis_url, redis_db=args.redis_db, log_level=args.log_level,
        server_workers=args.server_workers,
    )  # fmt: skip
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    report: dict[str, Any] = {
        "machine": {},
        "command": shlex.join([Path(sys.executable).name, "-m", "tools.loadtest", *argv]),
        "runs": [],
        "large_request_seconds": {},
        "claim_latency_seconds": {},
        "ids_per_request": args.ids,
        "large_request_ids": args.large_ids,
        "duration_seconds": args.duration,
        "warmup_seconds": args.warmup,
        "think_ms": args.think_ms,
        "server_workers": {},
        "notes": [],
    }
    versions: dict[str, str] = {}
    try:
        with contextlib.ExitStack() as stack:
            if args.work_dir:
                root = Path(args.work_dir).resolve()
                root.mkdir(parents=True, exist_ok=True)
            else:
                root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="unlearn-load-")))
            data_root = root / "data"
            _say(f"writing the synthetic datasets ({args.samples} samples) under {data_root}")
            write_dataset(data_root / "load", args.samples)
            write_dataset(data_root / "claim", CLAIM_SAMPLES, seed=1)
            checkpoint = untrained_checkpoint()
            for backend in backends:
                if backend == "postgres+redis":
                    reason, versions = check_postgres_redis(args.postgres_url, args.redis_url)
                    if reason is not None:
                        report["notes"].append(f"postgres+redis skipped: {reason}")
                        _say(f"[{backend}] skipped: {reason}")
                        continue
                work = root / backend.replace("+", "-")
                work.mkdir(parents=True, exist_ok=True)
                outcome = run_backend(backend, plan, work=work, data_root=data_root, checkpoint=checkpoint)
                report["runs"].extend(outcome.runs)
                report["server_workers"][backend] = outcome.server_workers
                report["large_request_seconds"][backend] = outcome.large_request_seconds
                report["claim_latency_seconds"][backend] = outcome.claim_latency
                report["notes"].extend(outcome.notes)
    except KeyboardInterrupt:
        print("interrupted: every process started was stopped, no results written", file=sys.stderr)
        return 130
    except (LoadTestError, UnlearningError) as exc:  # UnlearningError: a set-up call the service refused
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report["machine"] = machine_info(versions, backends)
    if not report["notes"]:
        del report["notes"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(report, figure=out.with_suffix(".png").name), encoding="utf-8")
    latency_figure(report, out.with_suffix(".png"))
    written = f"wrote {out.with_suffix('.json')}, {out.with_suffix('.md')} and {out.with_suffix('.png')}"
    _say("\n".join(["", *targets(report), written]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
