"""Queries of jobs: coalescing, the atomic lease claim, heartbeats and progress.

Every state change a worker makes is a conditional UPDATE on (id, lease owner, status), so a worker that
lost its lease changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from service.jobs.schemas import JobQuery
from service.pagination import Sort, Window, fetch_page
from service.tables import DeletionRequest, Job, JobKind, JobStatus

NEWEST_FIRST = Sort("created_at", (Job.created_at, Job.id), descending=True)


def insert_job(*, session: Session, **columns: Any) -> Job:
    job = Job(id=uuid.uuid4(), **columns)
    session.add(job)
    session.flush()
    return job


def get_job(*, session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    return session.execute(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id)).scalar_one_or_none()


def list_jobs(
    *, session: Session, tenant_id: uuid.UUID, query: JobQuery, window: Window
) -> tuple[list[Job], str | None]:
    """One page of the tenant's jobs that pass every filter of `query`."""
    conditions = [Job.tenant_id == tenant_id]
    if query.model_id is not None:
        conditions.append(Job.model_id == query.model_id)
    if query.status:
        conditions.append(Job.status.in_(query.status))
    if query.kind:
        conditions.append(Job.kind.in_(query.kind))
    return fetch_page(session, select(Job).where(*conditions), window)


def get_job_any_tenant(*, session: Session, job_id: uuid.UUID) -> Job | None:
    """For workers, which act for every tenant."""
    return session.get(Job, job_id, populate_existing=True)


def touch_queued_unlearn_job(*, session: Session, model_id: uuid.UUID) -> uuid.UUID | None:
    """The model's waiting unlearning job, row-locked so that no worker claims it before this transaction ends.

    A no-op UPDATE rather than SELECT FOR UPDATE: on PostgreSQL a concurrent claim then either waits for
    this transaction (and sees the requests it adds) or has already claimed the job (and this finds none).
    """
    return session.execute(
        update(Job)
        .where(Job.model_id == model_id, Job.kind == JobKind.unlearn, Job.status == JobStatus.queued)
        .values(status=Job.status)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()


def lock_if_queued(*, session: Session, job_id: uuid.UUID) -> bool:
    """Row-lock the job if it is still waiting (a claim then waits for this transaction); False otherwise."""
    return (
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.queued)
            .values(status=Job.status)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        is not None
    )


def active_jobs(*, session: Session, model_id: uuid.UUID, kind: JobKind) -> list[Job]:
    return list(
        session.execute(
            select(Job).where(
                Job.model_id == model_id, Job.kind == kind, Job.status.in_([JobStatus.queued, JobStatus.running])
            )
        ).scalars()
    )


def has_job(*, session: Session, model_id: uuid.UUID, kind: JobKind) -> bool:
    """Whether the model has ever had a job of this kind, in any state."""
    return session.execute(select(exists().where(Job.model_id == model_id, Job.kind == kind))).scalar_one()


def _claimable(now: datetime, max_attempts: int) -> Any:
    """Queued jobs (an unlearning job only once its model's running one has finished), and running jobs
    whose lease has expired (their worker died) while attempts remain."""
    other = aliased(Job)
    model_busy = exists().where(
        other.model_id == Job.model_id,
        other.kind == JobKind.unlearn,
        other.status == JobStatus.running,
        other.id != Job.id,
    )
    return or_(
        and_(Job.status == JobStatus.queued, or_(Job.kind != JobKind.unlearn, ~model_busy)),
        and_(Job.status == JobStatus.running, Job.lease_expires_at < now, Job.attempts < max_attempts),
    )


def claim(
    *, session: Session, job_id: uuid.UUID, owner: str, now: datetime, lease_until: datetime, max_attempts: int
) -> bool:
    """Take the job's lease in one conditional UPDATE; False if another worker holds it or it is not claimable.

    On PostgreSQL a concurrent claim of the same row waits for this one and then re-checks the condition
    against the committed row, so exactly one claim succeeds; SQLite runs one writer at a time.
    """
    claimed = session.execute(
        update(Job)
        .where(Job.id == job_id, _claimable(now, max_attempts))
        .values(
            status=JobStatus.running,
            lease_owner=owner,
            lease_expires_at=lease_until,
            attempts=Job.attempts + 1,
            started_at=now,
            error=None,
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return claimed is not None


def next_claimable_job_id(*, session: Session, now: datetime, max_attempts: int) -> uuid.UUID | None:
    """The oldest job a worker could claim now, tuning jobs last (deletion requests wait for no tuning);
    claim() decides, so a race here only costs a retry."""
    return session.execute(
        select(Job.id)
        .where(_claimable(now, max_attempts))
        .order_by(Job.kind == JobKind.tuning, Job.created_at, Job.id)
        .limit(1)
    ).scalar_one_or_none()


def unlearning_waiting(*, session: Session, queued_before: datetime) -> bool:
    """Whether an unlearning job that could start has waited since before `queued_before` unclaimed."""
    other = aliased(Job)
    model_busy = exists().where(
        other.model_id == Job.model_id, other.kind == JobKind.unlearn, other.status == JobStatus.running
    )
    waiting = exists().where(
        Job.kind == JobKind.unlearn, Job.status == JobStatus.queued, Job.created_at < queued_before, ~model_busy
    )
    return session.execute(select(waiting)).scalar_one()


def save_partial(*, session: Session, job_id: uuid.UUID, owner: str, partial: dict[str, Any]) -> bool:
    """Keep work for the job's next claim; False if the lease is no longer this worker's."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.status == JobStatus.running)
        .values(partial=partial)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return row is not None


def queued_job_ids(*, session: Session, model_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        session.execute(
            select(Job.id).where(Job.model_id == model_id, Job.status == JobStatus.queued).order_by(Job.created_at)
        ).scalars()
    )


def unclaimed_jobs(
    *, session: Session, now: datetime, resend_before: datetime, max_attempts: int
) -> tuple[list[Job], list[Job]]:
    """Claimable jobs not sent again since `resend_before`: (running ones whose lease expired, queued ones
    created before `resend_before`), oldest first, row-locked (skipping rows a claim holds) on PostgreSQL."""
    not_resent = or_(Job.resent_at.is_(None), Job.resent_at < resend_before)
    rows = session.execute(
        select(Job)
        .where(
            _claimable(now, max_attempts),
            not_resent,
            or_(Job.status == JobStatus.running, Job.created_at < resend_before),
        )
        .order_by(Job.created_at, Job.id)
        .with_for_update(skip_locked=True, of=Job)
    ).scalars().all()
    expired = [j for j in rows if j.status == JobStatus.running]
    return expired, [j for j in rows if j.status == JobStatus.queued]


def abandoned_jobs(*, session: Session, now: datetime, max_attempts: int) -> list[Job]:
    """Running jobs whose lease expired after their last allowed attempt: nobody will ever finish them."""
    return list(
        session.execute(
            select(Job).where(
                Job.status == JobStatus.running, Job.lease_expires_at < now, Job.attempts >= max_attempts
            )
        ).scalars()
    )


def extend_lease(*, session: Session, job_id: uuid.UUID, owner: str, until: datetime) -> bool:
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.status == JobStatus.running)
        .values(lease_expires_at=until)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return row is not None


def report_progress(
    *,
    session: Session,
    job_id: uuid.UUID,
    owner: str,
    phase: str,
    progress: float,
    eta_at: datetime | None,
) -> bool | None:
    """Store phase and progress; returns the cancel flag, or None if the lease is no longer this worker's."""
    return session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.status == JobStatus.running)
        .values(phase=phase, progress=progress, eta_at=eta_at)
        .returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()


def release_lease(*, session: Session, job_id: uuid.UUID, owner: str, now: datetime) -> bool:
    """Let another worker re-claim the job at once; the interrupted attempt is not counted against it.
    False if the lease was no longer this worker's."""
    released = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.status == JobStatus.running)
        .values(lease_expires_at=now, attempts=Job.attempts - 1)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return released is not None


def end_leases_of(*, session: Session, owner: str, now: datetime) -> list[Job]:
    """End now the leases `owner` holds on running jobs (its process is known to be dead); those jobs.

    The attempts are left as they are: the dead worker's attempt counts, as when a lease runs out. Its ETA
    went with it: the next worker starts the job over.
    """
    ended = session.execute(
        update(Job)
        .where(Job.lease_owner == owner, Job.status == JobStatus.running)
        .values(lease_expires_at=now, eta_at=None)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalars().all()
    return [job for job_id in ended if (job := session.get(Job, job_id, populate_existing=True)) is not None]


def lock_own_job(*, session: Session, job_id: uuid.UUID, owner: str) -> Job | None:
    """The job if this worker still holds its lease, locked until commit (the recording transaction).

    A no-op UPDATE as the transaction's first statement: it takes the row lock on PostgreSQL and the
    write lock on SQLite, so the lease cannot change hands between this check and the writes after it.
    """
    held = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner, Job.status == JobStatus.running)
        .values(lease_owner=Job.lease_owner)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if held is None:
        return None
    return session.get(Job, job_id, populate_existing=True)


def requests_of_job(*, session: Session, job_id: uuid.UUID) -> list[DeletionRequest]:
    return list(
        session.execute(
            select(DeletionRequest)
            .where(DeletionRequest.job_id == job_id)
            .order_by(DeletionRequest.created_at, DeletionRequest.id)
        ).scalars()
    )


def request_ids_of_job(*, session: Session, job_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        session.execute(
            select(DeletionRequest.id)
            .where(DeletionRequest.job_id == job_id)
            .order_by(DeletionRequest.created_at, DeletionRequest.id)
        ).scalars()
    )
