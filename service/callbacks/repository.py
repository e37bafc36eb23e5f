"""Queries of the webhook outbox."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.tables import WebhookDelivery, WebhookStatus


def due_ids(session: Session, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """Pending messages whose next attempt is due, oldest due first."""
    query = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status == WebhookStatus.pending, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def claim(session: Session, delivery_id: uuid.UUID, *, now: datetime, until: datetime) -> bool:
    """Take a due message for one attempt by moving its next attempt to `until`; False if another sender
    took it first (the conditional UPDATE is the claim, on PostgreSQL and SQLite alike)."""
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == WebhookStatus.pending,
            WebhookDelivery.next_attempt_at <= now,
        )
        .values(next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def get(session: Session, delivery_id: uuid.UUID) -> WebhookDelivery | None:
    return session.get(WebhookDelivery, delivery_id)


def for_request(session: Session, request_id: uuid.UUID) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.request_id == request_id).order_by(WebhookDelivery.created_at)
    return list(session.scalars(query))
