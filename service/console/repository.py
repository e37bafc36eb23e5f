"""The console's own read-only queries: counts and summaries across a tenant's ledger that no API list gives
(the lists themselves come from the domains' services)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, case, func, or_, select
from sqlalchemy.orm import Session

from service.lifecycle.states import IN_FLIGHT
from service.requests.repository import overdue_at
from service.tables import DeletionRequest, Model, ModelVersion, RequestStatus


def count_requests_by_status(*, session: Session, tenant_id: uuid.UUID) -> dict[str, int]:
    rows = session.execute(
        select(DeletionRequest.status, func.count())
        .where(DeletionRequest.tenant_id == tenant_id)
        .group_by(DeletionRequest.status)
    )
    return {str(getattr(status, "value", status)): int(count) for status, count in rows}


def count_overdue(*, session: Session, tenant_id: uuid.UUID, now: datetime) -> int:
    return session.execute(
        select(func.count()).where(DeletionRequest.tenant_id == tenant_id, overdue_at(now))
    ).scalar_one()


def count_due_between(*, session: Session, tenant_id: uuid.UUID, start: datetime, end: datetime) -> int:
    """Requests still in flight whose due date falls in [start, end)."""
    return session.execute(
        select(func.count()).where(
            DeletionRequest.tenant_id == tenant_id,
            DeletionRequest.status.in_(sorted(IN_FLIGHT)),
            DeletionRequest.due_at >= start,
            DeletionRequest.due_at < end,
        )
    ).scalar_one()


def requests_per_week(
    *, session: Session, tenant_id: uuid.UUID, week_starts: list[datetime], now: datetime
) -> list[tuple[int, str, int]]:
    """(week index, standing, count) of the tenant's requests received in the weeks starting at `week_starts`
    (ascending; the last week ends 7 days after its start). Standing: on_time (completed by its due date, or
    without one), late (completed after it, or in flight past it) or open (in flight, not yet due); failed,
    rejected and cancelled requests forgot nothing and are not counted. Counted in the database: a ledger of
    10,000 requests returns a few dozen rows, not 10,000."""
    received = DeletionRequest.received_at
    week = case(*((received < start, index - 1) for index, start in enumerate(week_starts[1:], start=1)),
                else_=len(week_starts) - 1)  # fmt: skip
    completed = DeletionRequest.status == RequestStatus.completed
    late_completion = and_(DeletionRequest.due_at.is_not(None), DeletionRequest.completed_at > DeletionRequest.due_at)
    standing = case(
        (and_(completed, late_completion), "late"),
        (completed, "on_time"),
        (DeletionRequest.due_at < now, "late"),
        else_="open",
    )
    rows = session.execute(
        select(week.label("week"), standing.label("standing"), func.count())
        .where(
            DeletionRequest.tenant_id == tenant_id,
            received >= week_starts[0],
            received < week_starts[-1] + timedelta(weeks=1),
            or_(completed, DeletionRequest.status.in_(sorted(IN_FLIGHT))),
        )
        .group_by("week", "standing")
    )
    return [(int(index), str(kind), int(count)) for index, kind, count in rows]


def recent_audits(*, session: Session, tenant_id: uuid.UUID, limit: int) -> list[Row[Any]]:
    """The tenant's newest audited versions: (model_id, model_name, number, verdict, ready_at)."""
    return list(
        session.execute(
            select(
                Model.id.label("model_id"),
                Model.name.label("model_name"),
                ModelVersion.number,
                ModelVersion.metrics,
                ModelVersion.ready_at,
            )
            .join(Model, Model.id == ModelVersion.model_id)
            .where(Model.tenant_id == tenant_id, ModelVersion.audit_html_sha256.is_not(None))
            .order_by(ModelVersion.ready_at.desc().nulls_last(), ModelVersion.id)
            .limit(limit)
        ).all()
    )


def model_names(*, session: Session, tenant_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = session.execute(select(Model.id, Model.name).where(Model.tenant_id == tenant_id).order_by(Model.name))
    return {row.id: row.name for row in rows}
