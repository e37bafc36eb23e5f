"""Keeps `python -m service run`'s local executor alive: a dead executor is replaced within seconds (after a
backoff, so a crash loop does not spin), the job it held is handed to its successor at once, and its state is
written to a small file that /healthz reads in every API process.

The executor is started by module name (`python -m worker.executor`): the service never imports the worker.
The supervisor names each executor's lease owner, so once it has reaped a dead one it can end that owner's
leases instead of leaving its job stuck until the lease runs out.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from sqlalchemy.exc import SQLAlchemyError

from service.db import session_factory
from service.jobs import service as jobs
from service.settings import Settings

POLL_INTERVAL_S = 0.25  # how often the watching thread looks at the executor
HEARTBEAT_S = 2.0  # the state file is rewritten at least this often, so a reader can tell it is current
STALE_AFTER_S = 15.0  # a state file older than this means the supervisor itself has stopped (generous: 2 busy cores)
STOP_TIMEOUT_S = 30.0  # a job stops at its next progress step on SIGTERM; then the executor is killed
STATE_FILE_NAME = "executor.json"

Status = Literal["running", "restarting", "stopped"]


def default_state_file(settings: Settings) -> Path:
    """In the home folder, beside the embedded ledger."""
    return settings.home / STATE_FILE_NAME


def executor_command(owner: str) -> list[str]:
    return [sys.executable, "-m", "worker.executor", "--owner", owner]


def new_owner() -> str:
    return f"{socket.gethostname()}:local-executor:{uuid.uuid4().hex[:12]}"


def exit_reason(returncode: int) -> str:
    """Popen's return code in words: 'exited with signal 9 (SIGKILL)', 'exited with status 1'."""
    if returncode < 0:
        try:
            name = f" ({signal.Signals(-returncode).name})"
        except ValueError:
            name = ""
        return f"exited with signal {-returncode}{name}"
    return f"exited with status {returncode}"


@dataclass
class Backoff:
    """Seconds to wait before starting an executor again: `first` after one that had stayed up, doubling
    (up to `longest`) while each new one dies within `stable_after` seconds of its start."""

    first: float = 1.0
    longest: float = 60.0
    stable_after: float = 60.0
    _next: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._next = self.first

    def after_exit(self, uptime: float) -> float:
        if uptime >= self.stable_after:
            self._next = self.first
        delay = self._next
        self._next = min(delay * 2, self.longest)
        return delay


@dataclass(frozen=True)
class ExecutorState:
    """What the supervisor last wrote to the state file."""

    status: Status
    pid: int | None  # the executor's process while running
    owner: str | None  # its lease owner name while running
    restarts: int  # executors started after the first one
    last_exit: str | None  # how the previous executor ended, e.g. "exited with signal 9 (SIGKILL)"
    restart_at: datetime | None  # when the next one starts, while restarting
    written_at: datetime

    def to_json(self) -> str:
        fields = asdict(self)
        for name in ("restart_at", "written_at"):
            fields[name] = fields[name].isoformat() if fields[name] is not None else None
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> ExecutorState:
        fields = json.loads(text)
        for name in ("restart_at", "written_at"):
            fields[name] = datetime.fromisoformat(fields[name]) if fields[name] is not None else None
        return cls(**fields)


def write_state(path: Path, state: ExecutorState) -> None:
    # a temporary file renamed over the old one: a reader in another process sees one whole state or the other
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(state.to_json(), encoding="utf-8")
    os.replace(temporary, path)


def read_state(path: Path) -> ExecutorState | None:
    """The state last written, or None if there is none or it cannot be read."""
    try:
        return ExecutorState.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def unhealthy_reason(state: ExecutorState | None, *, now: datetime) -> str | None:
    """Why the supervised executor cannot run jobs now, for /healthz; None while one is running."""
    if state is None:
        return "local executor state unknown: its supervisor has written none"
    age = (now - state.written_at).total_seconds()
    if age > STALE_AFTER_S:
        return f"local executor state unknown: its supervisor has not reported for {age:.0f} s"
    if state.status == "running":
        return None
    if state.status == "stopped":
        return "local executor not running: the service is stopping"
    wait = max(0.0, (state.restart_at - now).total_seconds()) if state.restart_at is not None else 0.0
    return f"local executor not running: {state.last_exit}, restarting in {wait:.0f} s"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Supervisor:
    """One local executor process, started again whenever it ends until stop().

    poll() does one round of the work and is what the tests drive; `with supervisor:` starts the executor
    and a thread that polls until the block ends, then stops the executor (SIGTERM: it hands its job back).
    """

    def __init__(
        self,
        *,
        database_url: str,
        state_file: Path,
        max_attempts: int,
        command: Callable[[str], list[str]] = executor_command,
        backoff: Backoff | None = None,
        stop_timeout: float = STOP_TIMEOUT_S,
        log: Callable[[str], None] = _stderr,
    ) -> None:
        self.database_url, self.state_file, self.max_attempts = database_url, state_file, max_attempts
        self.command, self.backoff, self.stop_timeout, self.log = command, backoff or Backoff(), stop_timeout, log
        self.process: subprocess.Popen[bytes] | None = None
        self.owner: str | None = None
        self.restarts = 0
        self.last_exit: str | None = None
        self._started = 0.0  # monotonic time of the current executor's start
        self._restart_at: float | None = None  # monotonic time of the next start while none runs
        self._dead_owners: list[tuple[str, str]] = []  # (owner, reason) whose jobs are still to be handed on
        self._status: Status = "restarting"
        self._written = float("-inf")
        self._watching: threading.Thread | None = None
        self._stop_watching = threading.Event()

    # ---- one round ----

    def start(self) -> None:
        self._spawn()

    def poll(self) -> None:
        """Notice a dead executor (its jobs handed on, its successor scheduled), start one that is due, and
        keep the state file current."""
        if self.process is not None and (returncode := self.process.poll()) is not None:
            self._ended(exit_reason(returncode))
        self._hand_on_jobs()
        if self.process is None and self._restart_at is not None and time.monotonic() >= self._restart_at:
            self.restarts += 1
            self._spawn()
        if time.monotonic() - self._written >= HEARTBEAT_S:
            self._write()

    def stop(self) -> None:
        """SIGTERM the executor (its job stops at the next progress step and is released), kill it if it does
        not end in time, and start no other."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            reason = None
            try:
                returncode = self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                returncode = self.process.wait()
                reason = f"the local executor did not stop within {self.stop_timeout:g} s and was killed"
            self.log(f"executor stopped (exit {returncode})")
            if returncode != 0 and self.owner is not None:
                # it did not hand its job back itself (killed, or it crashed while stopping)
                self._dead_owners.append((self.owner, reason or f"the local executor {exit_reason(returncode)}"))
            self.process, self.owner = None, None
        self._restart_at = None
        self._hand_on_jobs()
        self._status = "stopped"
        self._write()

    # ---- the watching thread ----

    def __enter__(self) -> Supervisor:
        self.start()
        self._stop_watching.clear()
        self._watching = threading.Thread(target=self._watch, name="executor-supervisor", daemon=True)
        self._watching.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_watching.set()
        if self._watching is not None:
            self._watching.join()
        self.stop()

    def _watch(self) -> None:
        while not self._stop_watching.wait(POLL_INTERVAL_S):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001  (the watch must go on: a stale state file would say so)
                self.log(f"executor supervisor: {type(exc).__name__}: {exc}")

    # ---- steps ----

    def _spawn(self) -> None:
        owner = new_owner()
        try:
            # a process group of its own: a Ctrl-C at the terminal reaches the service, which then stops the
            # executor itself, instead of both at once (the executor would be restarted while shutting down)
            self.process = subprocess.Popen(self.command(owner), process_group=0)
        except OSError as exc:
            self.process, self.owner = None, None
            delay = self._schedule_restart(f"could not start: {exc}", uptime=0.0)
            self.log(f"executor could not start: {exc}; trying again in {delay:g} s")
            return
        self.owner, self._started, self._restart_at = owner, time.monotonic(), None
        self._status = "running"
        self.log(f"executor started (pid {self.process.pid})")
        self._write()

    def _ended(self, reason: str) -> None:
        assert self.process is not None and self.owner is not None
        pid, uptime = self.process.pid, time.monotonic() - self._started
        self._dead_owners.append((self.owner, f"the local executor {reason}"))
        self.process, self.owner = None, None
        delay = self._schedule_restart(reason, uptime=uptime)
        self.log(f"executor (pid {pid}) {reason} after {uptime:.0f} s; starting another in {delay:g} s")

    def _schedule_restart(self, reason: str, *, uptime: float) -> float:
        delay = self.backoff.after_exit(uptime)
        self.last_exit, self._restart_at, self._status = reason, time.monotonic() + delay, "restarting"
        self._write()  # /healthz says so at once, in every API process
        return delay

    def _hand_on_jobs(self) -> None:
        """End the leases of dead executors, so that their jobs are claimed again now. When the ledger is
        unreachable this is tried again at the next poll; the leases would also run out by themselves."""
        while self._dead_owners:
            owner, reason = self._dead_owners[0]
            try:
                with session_factory(self.database_url)() as session, session.begin():
                    handed = jobs.reclaim_from_dead_worker(
                        session, owner=owner, reason=reason, max_attempts=self.max_attempts
                    )
            except SQLAlchemyError as exc:
                self.log(f"executor supervisor: could not hand on the jobs of {owner} yet: {type(exc).__name__}")
                return
            self._dead_owners.pop(0)
            for job_id in handed:
                self.log(f"job {job_id} of the dead executor is handed to the next one")

    def _write(self) -> None:
        now = datetime.now(UTC)
        restart_at = None
        if self._restart_at is not None:
            restart_at = now + timedelta(seconds=max(0.0, self._restart_at - time.monotonic()))
        state = ExecutorState(
            status=self._status,
            pid=self.process.pid if self.process is not None else None,
            owner=self.owner,
            restarts=self.restarts,
            last_exit=self.last_exit,
            restart_at=restart_at,
            written_at=now,
        )
        write_state(self.state_file, state)
        self._written = time.monotonic()
