"""The Celery app of the scaled-out service: `celery --app worker.celery_app worker --queues gpu ...`.

Tasks carry a job id and nothing else, and call the same run_job as the local executor: the ledger's
lease decides who runs a job, so a message delivered twice, or to a worker that is not free to run it
yet (the model's previous job still runs), ends without effect. What a lost message leaves undone the
sweeper (this app's beat schedule, on the cpu queue) sends again.

Start one worker process per GPU (`CUDA_VISIBLE_DEVICES=N`, `--concurrency 1`): the prefork pool runs
tasks in a child process, which is the only one that initialises CUDA (importing torch does not), and
which the hard time limit can kill. Settings come from UNLEARN_* as everywhere else (see celery_config).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import uuid

from billiard.process import active_children
from celery import Celery
from celery.signals import worker_process_init, worker_shutting_down

from service.callbacks.service import deliver_due
from service.db import session_factory
from service.erasure import service as erasure
from service.jobs import dispatch
from service.jobs import service as jobs
from service.settings import get_settings
from worker.jobs import run_job

log = logging.getLogger("worker.celery")

# Set in a pool process when its worker is shutting down: the running job stops at its next progress step
# and releases its lease, so another worker takes it over at the sweeper's next pass and the attempt is
# not counted (a deploy that restarts workers does not use up a long job's attempts).
_stopping = threading.Event()
STOP_SIGNAL = signal.SIGUSR2  # free in the pool processes: billiard uses SIGUSR1 for the soft time limit

settings = get_settings()
dispatch.configure(settings)  # a finishing job sends its model's next one

app = Celery("unlearning")
app.conf.update(dispatch.celery_config(settings))
app.conf.beat_schedule = {
    # a late sweep or delivery is simply superseded by the next one: expire rather than pile up
    "sweep": {"task": dispatch.SWEEP, "schedule": settings.sweep_interval_seconds,
              "options": {"expires": settings.sweep_interval_seconds}},
    "deliver-callbacks": {"task": dispatch.DELIVER_CALLBACKS, "schedule": 2.0, "options": {"expires": 2.0}},
    "erase": {"task": dispatch.ERASE, "schedule": settings.erasure_sweep_interval_seconds,
              "options": {"expires": settings.erasure_sweep_interval_seconds}},
}  # fmt: skip


@worker_process_init.connect
def _stop_on_signal(**_: object) -> None:
    signal.signal(STOP_SIGNAL, lambda _signum, _frame: _stopping.set())


@worker_shutting_down.connect
def _stop_running_jobs(**_: object) -> None:
    # in the worker's main process: a warm shutdown would otherwise wait for the job to finish, which for
    # an unlearning job can take hours; pool processes are the main process's children
    for child in active_children():
        try:
            os.kill(child.pid, STOP_SIGNAL)
        except ProcessLookupError:
            pass


@app.task(name=dispatch.RUN_JOB, soft_time_limit=settings.job_soft_time_limit_seconds,
          time_limit=settings.job_time_limit_seconds)  # fmt: skip
def run_job_task(job_id: str) -> str:
    outcome = run_job(
        uuid.UUID(job_id), settings=settings, lease_seconds=settings.lease_seconds,
        max_attempts=settings.max_attempts, stop=_stopping,
    )  # fmt: skip
    log.info("job %s: %s", job_id, outcome.value)
    return outcome.value


# The periodic tasks are acked on receipt, not after they ran: one lost mid-run is re-sent by the next beat
# tick anyway, and an ack still pending when the broker dies can crash the worker as kombu closes the
# connection (seen in CI: AttributeError in the redis transport's _connparams during a Redis restart).
@app.task(name=dispatch.SWEEP, acks_late=False)
def sweep_task() -> dict[str, int]:
    with session_factory(settings.database_url)() as session, session.begin():
        swept = jobs.sweep(session, resend_after=settings.resend_after_seconds, max_attempts=settings.max_attempts)
    if swept.failed or swept.requeued or swept.resent:
        log.warning("sweep: %d failed, %d requeued (lease expired), %d re-sent (unclaimed)",
                    swept.failed, len(swept.requeued), len(swept.resent))  # fmt: skip
    return {"failed": swept.failed, "requeued": len(swept.requeued), "resent": len(swept.resent)}


@app.task(name=dispatch.DELIVER_CALLBACKS, acks_late=False)
def deliver_callbacks_task() -> int:
    return deliver_due(session_factory(settings.database_url), settings=settings)


@app.task(name=dispatch.ERASE, acks_late=False)
def erase_task() -> dict[str, int]:
    swept = erasure.sweep(session_factory(settings.database_url), settings=settings)
    return {"versions": len(swept.destroyed_versions), "reference_sets": len(swept.destroyed_reference_sets),
            "orphans": len(swept.orphans_removed), "receipts": len(swept.receipts)}  # fmt: skip
