"""Queries of the sample claims that follow a request's states: released when it is withdrawn, marked with the
version that forgot them, and read by jobs (what a job forgets, what its model may no longer train on)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.orm import Session

from service.tables import DeletionRequest, ForgottenSample


def release_samples(*, session: Session, request_id: uuid.UUID) -> None:
    """Drop a cancelled or failed request's claims, so that its IDs can be requested again."""
    session.execute(
        delete(ForgottenSample)
        .where(ForgottenSample.request_id == request_id)
        .execution_options(synchronize_session=False)
    )


def mark_forgotten(*, session: Session, request_ids: Iterable[uuid.UUID], version_id: uuid.UUID) -> None:
    session.execute(
        update(ForgottenSample)
        .where(ForgottenSample.request_id.in_(list(request_ids)))
        .values(version_id=version_id)
        .execution_options(synchronize_session=False)
    )


def sample_ids_of_job(*, session: Session, job_id: uuid.UUID) -> list[str]:
    """The samples a job forgets: the claims of the requests it covers."""
    return list(
        session.execute(
            select(ForgottenSample.sample_id)
            .join(DeletionRequest, DeletionRequest.id == ForgottenSample.request_id)
            .where(DeletionRequest.job_id == job_id)
            .order_by(ForgottenSample.sample_id)
        ).scalars()
    )


def claims_of_model(*, session: Session, model_id: uuid.UUID) -> list[Row[Any]]:
    """(sample_id, request_id) of every sample of the model already forgotten or claimed by an accepted request."""
    return list(
        session.execute(
            select(ForgottenSample.sample_id, ForgottenSample.request_id).where(ForgottenSample.model_id == model_id)
        ).all()
    )


def forgotten_by_version(*, session: Session, model_id: uuid.UUID) -> list[Row[Any]]:
    """(sample_id, version_id) of every sample a ready version of the model has forgotten."""
    return list(
        session.execute(
            select(ForgottenSample.sample_id, ForgottenSample.version_id).where(
                ForgottenSample.model_id == model_id, ForgottenSample.version_id.is_not(None)
            )
        ).all()
    )
