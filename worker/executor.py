"""The embedded local worker: `python -m worker.executor` claims jobs from the ledger and runs them one at a
time, sleeping briefly when there is nothing to do. `python -m service run` starts it as a subprocess, and
another one whenever it dies (service/supervisor.py, which names its lease owner with --owner).

Each loop also fails the jobs whose worker died on their last allowed attempt; jobs whose worker died
earlier are simply claimed again (their lease has expired). Two threads send the webhook callbacks and run
the erasure sweep (service.erasure). SIGTERM or SIGINT stops the loop: a job in progress stops at its next
progress step and its lease is released for the next executor.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

from sqlalchemy.exc import SQLAlchemyError

from service.callbacks.service import run_delivery_loop
from service.db import dispose_engines, session_factory
from service.erasure.service import run_erasure_loop
from service.jobs import service as jobs
from service.observability import JsonFormatter
from service.settings import Settings, get_settings
from worker.jobs import Outcome, default_owner, run_job

log = logging.getLogger("worker.executor")


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("worker", "service"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)
        logger.propagate = False


def run_once(
    settings: Settings, *, owner: str, lease_seconds: float, max_attempts: int, stop: threading.Event
) -> Outcome | None:
    """Sweep, then claim and run the oldest claimable job; None when there was nothing to claim."""
    factory = session_factory(settings.database_url)
    with factory() as session, session.begin():
        failed = jobs.fail_abandoned(session, max_attempts=max_attempts)
    if failed:
        log.warning("failed abandoned jobs", extra={"count": failed})
    with factory() as session:
        job_id = jobs.next_claimable(session, max_attempts=max_attempts)
    if job_id is None:
        return None
    outcome = run_job(
        job_id, settings=settings, owner=owner, lease_seconds=lease_seconds, max_attempts=max_attempts, stop=stop
    )
    log.info("job finished", extra={"job_id": str(job_id), "outcome": outcome.value})
    return outcome


def serve(
    settings: Settings,
    *,
    owner: str,
    poll_interval: float,
    lease_seconds: float,
    max_attempts: int,
    stop: threading.Event,
) -> None:
    parent = os.getppid()
    log.info("executor started", extra={"owner": owner})
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("parent process exited; stopping")  # never outlive the service that started us
            break
        try:
            outcome = run_once(
                settings, owner=owner, lease_seconds=lease_seconds, max_attempts=max_attempts, stop=stop
            )
        except SQLAlchemyError:
            log.exception("database error; retrying after the poll interval")
            outcome = None
        if outcome in (None, Outcome.not_claimed):
            stop.wait(poll_interval)  # idle, or lost a race for the job: wait before looking again
    log.info("executor stopped", extra={"owner": owner})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker.executor",
        description="Claim and run unlearning jobs from the ledger (settings from UNLEARN_* variables).",
    )
    # a quarter second: a new job starts well within a second of its commit, for two cheap queries per look
    parser.add_argument("--poll-interval", type=float, default=0.25, help="seconds to wait when no job is ready")
    parser.add_argument(
        "--lease-seconds", type=float, default=None,
        help="lease length; a job whose worker dies is claimed again this long after its last heartbeat "
             "(default: UNLEARN_LEASE_SECONDS)",
    )  # fmt: skip
    parser.add_argument(
        "--max-attempts", type=int, default=None,
        help="claims of one job before it is failed (default: UNLEARN_MAX_ATTEMPTS)",
    )  # fmt: skip
    parser.add_argument("--owner", default=None, help="lease owner name (default: host:pid:random)")
    parser.add_argument("--once", action="store_true", help="run at most one job, then exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    owner = args.owner or default_owner()
    lease_seconds = args.lease_seconds or settings.lease_seconds
    max_attempts = args.max_attempts or settings.max_attempts
    try:
        if args.once:
            run_once(settings, owner=owner, lease_seconds=lease_seconds, max_attempts=max_attempts, stop=stop)
        else:
            # webhook callbacks go out from here: the outbox rows were written with each state change
            threading.Thread(target=run_delivery_loop, args=(stop,), kwargs={"settings": settings},
                             name="callbacks", daemon=True).start()
            # and the erasure sweep runs here: the embedded deployment's only periodic process besides the API
            threading.Thread(target=run_erasure_loop, args=(stop,), kwargs={"settings": settings},
                             name="erasure", daemon=True).start()
            serve(
                settings,
                owner=owner,
                poll_interval=args.poll_interval,
                lease_seconds=lease_seconds,
                max_attempts=max_attempts,
                stop=stop,
            )
    finally:
        dispose_engines()
    return 0


if __name__ == "__main__":
    sys.exit(main())
