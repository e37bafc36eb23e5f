"""Queries of the webhook outbox and of the callback state of deletion requests."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.pagination import Sort, Window, fetch_page
from service.tables import DeletionRequest, WebhookDelivery, WebhookStatus

OLDEST_FIRST = Sort("created_at", (WebhookDelivery.created_at, WebhookDelivery.id))


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
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.request_id == request_id)
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
    )
    return list(session.scalars(query))


def page_of_request(
    session: Session, *, request_id: uuid.UUID, window: Window
) -> tuple[list[WebhookDelivery], str | None]:
    """One page of a request's deliveries and the next page's token (None on the last)."""
    return fetch_page(session, select(WebhookDelivery).where(WebhookDelivery.request_id == request_id), window)


def delivery_of_request(
    session: Session, *, request_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery | None:
    query = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.request_id == request_id
    )
    return session.scalars(query).one_or_none()


def request_of_tenant(session: Session, *, tenant_id: uuid.UUID, request_id: uuid.UUID) -> DeletionRequest | None:
    query = select(DeletionRequest).where(DeletionRequest.id == request_id, DeletionRequest.tenant_id == tenant_id)
    return session.scalars(query).one_or_none()


def callbacks_disabled_at(session: Session, *, request_id: uuid.UUID) -> datetime | None:
    return session.scalars(
        select(DeletionRequest.callback_disabled_at).where(DeletionRequest.id == request_id)
    ).one_or_none()


def disable_callbacks(session: Session, *, request_id: uuid.UUID, at: datetime) -> bool:
    """Mark the request's callback target disabled; False if it already was (the first 410 counts)."""
    result = session.execute(
        update(DeletionRequest)
        .where(DeletionRequest.id == request_id, DeletionRequest.callback_disabled_at.is_(None))
        .values(callback_disabled_at=at)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def fail_pending(session: Session, *, request_id: uuid.UUID, reason: str) -> int:
    """End every pending message of a request as failed with `reason`; returns how many."""
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.request_id == request_id, WebhookDelivery.status == WebhookStatus.pending)
        .values(status=WebhookStatus.failed, last_error=reason)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
