"""Queries of models, always within one tenant."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.pagination import Sort, Window, fetch_page
from service.tables import Model, ReferenceSet

OLDEST_FIRST = Sort("created_at", (Model.created_at, Model.id))


def insert_model(*, session: Session, tenant_id: uuid.UUID, **columns: Any) -> Model:
    model = Model(id=columns.pop("id", None) or uuid.uuid4(), tenant_id=tenant_id, **columns)
    session.add(model)
    session.flush()
    return model


def get_model(*, session: Session, tenant_id: uuid.UUID, model_id: uuid.UUID) -> Model | None:
    return session.execute(select(Model).where(Model.id == model_id, Model.tenant_id == tenant_id)).scalar_one_or_none()


def get_model_any_tenant(*, session: Session, model_id: uuid.UUID) -> Model | None:
    """For workers, which act for every tenant."""
    return session.get(Model, model_id)


def get_model_by_name(*, session: Session, tenant_id: uuid.UUID, name: str) -> Model | None:
    return session.execute(select(Model).where(Model.name == name, Model.tenant_id == tenant_id)).scalar_one_or_none()


def lock_model(*, session: Session, tenant_id: uuid.UUID, model_id: uuid.UUID) -> Model | None:
    """The model row, locked until commit on PostgreSQL: deletion requests for one model are accepted one
    at a time (SQLite has one writer at a time anyway).

    FOR NO KEY UPDATE, not FOR UPDATE: it excludes the other lockers of the model but not the KEY SHARE
    lock that inserting any row referencing the model takes (a request, a job, a version), so such an
    insert, here or in another transaction, never waits for it or makes it wait.
    """
    return session.execute(
        select(Model).where(Model.id == model_id, Model.tenant_id == tenant_id).with_for_update(key_share=True)
    ).scalar_one_or_none()


def list_models(*, session: Session, tenant_id: uuid.UUID, window: Window) -> tuple[list[Model], str | None]:
    return fetch_page(session, select(Model).where(Model.tenant_id == tenant_id), window)


def insert_reference_set(*, session: Session, **columns: Any) -> ReferenceSet:
    reference_set = ReferenceSet(id=uuid.uuid4(), **columns)
    session.add(reference_set)
    session.flush()
    return reference_set


def latest_reference_set(*, session: Session, model_id: uuid.UUID, destroyed: bool = False) -> ReferenceSet | None:
    """The model's newest reference set among those not destroyed (or, destroyed=True, among those destroyed)."""
    state = ReferenceSet.destroyed_at.is_not(None) if destroyed else ReferenceSet.destroyed_at.is_(None)
    return session.execute(
        select(ReferenceSet)
        .where(ReferenceSet.model_id == model_id, state)
        .order_by(ReferenceSet.created_at.desc(), ReferenceSet.id)
        .limit(1)
    ).scalar_one_or_none()
