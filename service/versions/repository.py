"""Queries of model versions; callers have already checked that the model belongs to the tenant."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.pagination import Sort, Window, fetch_page
from service.tables import DeletionRequest, ModelVersion, VersionStatus

BY_NUMBER = Sort("number", (ModelVersion.number,))  # unique within a model's versions


def insert_version(*, session: Session, **columns: Any) -> ModelVersion:
    version = ModelVersion(id=columns.pop("id", None) or uuid.uuid4(), **columns)
    session.add(version)
    session.flush()
    return version


def get_version(*, session: Session, model_id: uuid.UUID, number: int) -> ModelVersion | None:
    return session.execute(
        select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.number == number)
    ).scalar_one_or_none()


def get_version_by_id(*, session: Session, version_id: uuid.UUID) -> ModelVersion | None:
    return session.get(ModelVersion, version_id)


def latest_ready_version(*, session: Session, model_id: uuid.UUID) -> ModelVersion | None:
    return session.execute(
        select(ModelVersion)
        .where(ModelVersion.model_id == model_id, ModelVersion.status == VersionStatus.ready)
        .order_by(ModelVersion.number.desc())
        .limit(1)
    ).scalar_one_or_none()


def latest_ready_numbers(*, session: Session, model_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    rows = session.execute(
        select(ModelVersion.model_id, ModelVersion.number).where(
            ModelVersion.model_id.in_(list(model_ids)), ModelVersion.status == VersionStatus.ready
        )
    ).all()
    latest: dict[uuid.UUID, int] = {}
    for model_id, number in rows:
        latest[model_id] = max(number, latest.get(model_id, 0))
    return latest


def list_versions(
    *, session: Session, model_id: uuid.UUID, window: Window
) -> tuple[list[ModelVersion], str | None]:
    return fetch_page(session, select(ModelVersion).where(ModelVersion.model_id == model_id), window)


def numbers_of(*, session: Session, version_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, int]:
    wanted = [v for v in version_ids if v is not None]
    if not wanted:
        return {}
    rows = session.execute(select(ModelVersion.id, ModelVersion.number).where(ModelVersion.id.in_(wanted))).all()
    return {row.id: row.number for row in rows}


def guard_tripped(*, session: Session, version_id: uuid.UUID) -> bool | None:
    """Whether the utility guard stopped the job that made the version; None for the original."""
    metrics = session.execute(select(ModelVersion.metrics).where(ModelVersion.id == version_id)).scalar_one_or_none()
    return None if metrics is None else bool(metrics.get("guard_tripped"))


def request_ids_by_version(*, session: Session, version_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The deletion requests each version was the first to fulfil, oldest first."""
    wanted = list(version_ids)
    covered: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    if not wanted:
        return covered
    rows = session.execute(
        select(DeletionRequest.version_id, DeletionRequest.id)
        .where(DeletionRequest.version_id.in_(wanted))
        .order_by(DeletionRequest.created_at, DeletionRequest.id)
    ).all()
    for version_id, request_id in rows:
        covered[version_id].append(request_id)
    return covered


def cumulative_history(*, session: Session, model_id: uuid.UUID, up_to: int) -> list[dict[str, Any]]:
    """The cumulative evidence each ready unlearned version up to number `up_to` recorded (its metrics'
    "cumulative" entry), oldest first; versions audited before that entry existed are left out."""
    rows = session.execute(
        select(ModelVersion.metrics)
        .where(
            ModelVersion.model_id == model_id,
            ModelVersion.status == VersionStatus.ready,
            ModelVersion.number >= 2,
            ModelVersion.number <= up_to,
        )
        .order_by(ModelVersion.number)
    ).scalars()
    return [metrics["cumulative"] for metrics in rows if metrics and "cumulative" in metrics]
