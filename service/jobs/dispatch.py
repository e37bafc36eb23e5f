"""Telling workers that a job is ready: by Celery over Redis when a broker is configured, else not at all
(the embedded local executor polls the ledger).

Messages carry a job id and nothing else; the ledger stays the source of truth. A job id is sent only
after the transaction that made the job claimable commits (a session event below), so a worker never
receives an id it cannot yet see. A message may still be lost (the API dies before sending, Redis
restarts): the sweeper sends again whatever no worker claimed. A message may also arrive twice: the
claim in the ledger lets exactly one delivery run the job.

The Celery settings live here rather than in worker/ because the API sends tasks too and service/ never
imports worker/; producers and consumers must agree on them (the visibility timeout in particular).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session

from service.settings import Settings

log = logging.getLogger("service.jobs.dispatch")

GPU_QUEUE = "gpu"  # unlearning and reference-model jobs: one worker process per GPU
CPU_QUEUE = "cpu"  # the sweeps and callback delivery: no GPU, never behind a long job
RUN_JOB = "unlearning.run_job"
SWEEP = "unlearning.sweep"
DELIVER_CALLBACKS = "unlearning.deliver_callbacks"
ERASE = "unlearning.erase"  # the erasure sweep (service.erasure)

# The request that created the job has committed; a send that cannot reach Redis quickly gives up and
# leaves the job to the sweeper rather than holding the HTTP answer.
SEND_RETRY = {"max_retries": 2, "interval_start": 0.0, "interval_step": 0.1, "interval_max": 0.2}
SEND_TIMEOUTS = {"socket_connect_timeout": 2.0, "socket_timeout": 2.0}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings shared by every producer and consumer (API, workers, sweeper)."""
    # Redis hands an unacknowledged message to another worker after the visibility timeout; it must be
    # longer than the longest job (the hard time limit) or a running job's message would be re-delivered.
    visibility = {"visibility_timeout": settings.job_time_limit_seconds + 3600}
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": visibility,
        "result_backend_transport_options": visibility,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,  # outcomes are in the ledger
        "task_serializer": "json",
        "accept_content": ["json"],
        # a message is acknowledged only when its task returns, and put back if the worker process dies
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,  # a worker holds one job's message at a time, never a backlog
        "task_default_queue": CPU_QUEUE,
        "task_routes": {
            RUN_JOB: {"queue": GPU_QUEUE},
            SWEEP: {"queue": CPU_QUEUE},
            DELIVER_CALLBACKS: {"queue": CPU_QUEUE},
            ERASE: {"queue": CPU_QUEUE},
        },
    }


class Dispatcher(Protocol):
    def send(self, job_id: uuid.UUID) -> bool:
        """Tell a worker the job may be claimable; False if the message could not be sent."""
        ...


class LocalDispatcher:
    """The embedded default: the local executor finds claimable jobs in the ledger by itself."""

    def send(self, job_id: uuid.UUID) -> bool:
        return True


class CeleryDispatcher:
    def __init__(self, settings: Settings) -> None:
        from celery import Celery

        self.app = Celery("unlearning", set_as_current=False)
        config = celery_config(settings)
        # a broker that accepts connections but does not answer must not hold an HTTP request: give up in
        # seconds (workers keep the default, they block on the queue by design)
        config["broker_transport_options"] = {**config["broker_transport_options"], **SEND_TIMEOUTS}
        self.app.conf.update(config)

    def send(self, job_id: uuid.UUID) -> bool:
        try:
            self.app.send_task(RUN_JOB, args=[str(job_id)], queue=GPU_QUEUE, retry=True, retry_policy=SEND_RETRY)
        except Exception:  # the broker is down: the job is in the ledger, and the sweeper will send it
            log.warning("could not send job %s to the queue; the sweeper will", job_id, exc_info=True)
            return False
        return True


_current: Dispatcher = LocalDispatcher()
_celery: dict[tuple[str, int], CeleryDispatcher] = {}  # one producer (and connection pool) per broker


def configure(settings: Settings) -> Dispatcher:
    """Choose this process's dispatcher from its settings (the app, a worker and the sweeper call this)."""
    global _current
    if settings.broker_url is None:
        _current = LocalDispatcher()
    else:
        key = (settings.broker_url, settings.job_time_limit_seconds)
        _current = _celery.get(key) or _celery.setdefault(key, CeleryDispatcher(settings))
    return _current


def current() -> Dispatcher:
    return _current


_PENDING = "jobs_to_dispatch"


def send_after_commit(session: Session, job_id: uuid.UUID) -> None:
    """Send the job id once this session's transaction commits; nothing is sent if it rolls back."""
    session.info.setdefault(_PENDING, {})[job_id] = None  # a dict: insertion order, no duplicates


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    for job_id in session.info.pop(_PENDING, {}):
        _current.send(job_id)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
