"""Queries of a model's suppression list: its sample claims, with the version that forgot each one."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from service.pagination import Sort, Window, fetch_page
from service.tables import ForgottenSample, ModelVersion

# sample IDs are unique within a model: the key (model_id, sample_id) is the table's primary key and its index
BY_SAMPLE_ID = Sort("sample_id", (ForgottenSample.sample_id,))


def _claims(model_id: uuid.UUID) -> Select[Any]:
    """The model's claims as rows (sample_id, request_id, version, forgotten_at)."""
    return (
        select(
            ForgottenSample.sample_id,
            ForgottenSample.request_id,
            ModelVersion.number.label("version"),
            ModelVersion.ready_at.label("forgotten_at"),
        )
        .outerjoin(ModelVersion, ModelVersion.id == ForgottenSample.version_id)
        .where(ForgottenSample.model_id == model_id)
    )


def find_forgotten(*, session: Session, model_id: uuid.UUID, sample_id: str) -> Row[Any] | None:
    """One sample's claim on the model, in the list's row shape, or None."""
    return session.execute(_claims(model_id).where(ForgottenSample.sample_id == sample_id)).one_or_none()


def list_forgotten(
    *, session: Session, model_id: uuid.UUID, state: str, window: Window
) -> tuple[list[Row[Any]], str | None]:
    """One page of the model's claims as rows (sample_id, request_id, version, forgotten_at); `state` is all,
    forgotten (a version is recorded) or in_flight (none yet)."""
    statement = _claims(model_id)
    if state == "forgotten":
        statement = statement.where(ForgottenSample.version_id.is_not(None))
    elif state == "in_flight":
        statement = statement.where(ForgottenSample.version_id.is_(None))
    return fetch_page(session, statement, window)
