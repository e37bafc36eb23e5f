"""Queries of erasure: which artefacts hold forgotten samples and since when, which ledger rows name stored
objects, and the conditional updates that record a destruction or a receipt once. The sweep acts for every
tenant; the receipt's read is scoped to the caller's."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session, aliased

from service.tables import (
    DeletionRequest,
    Event,
    Job,
    JobKind,
    JobStatus,
    Model,
    ModelVersion,
    ReferenceSet,
    RequestStatus,
    VersionStatus,
)


def superseded_versions(*, session: Session) -> list[Row[Any]]:
    """(version, tenant_id, retention_seconds, child_number, superseded_at) of every version whose checkpoint
    still exists while a newer ready version (its child) forgot samples it holds; superseded_at is when that
    child became ready. Versions form one line per model (each parent has at most one child)."""
    child = aliased(ModelVersion)
    return list(
        session.execute(
            select(
                ModelVersion,
                Model.tenant_id,
                Model.retention_seconds,
                child.number.label("child_number"),
                child.ready_at.label("superseded_at"),
            )
            .join(child, child.parent_id == ModelVersion.id)
            .join(Model, Model.id == ModelVersion.model_id)
            .where(
                ModelVersion.status == VersionStatus.ready,
                child.status.in_([VersionStatus.ready, VersionStatus.destroyed]),
                child.ready_at.is_not(None),
            )
            .order_by(ModelVersion.model_id, ModelVersion.number)
        ).all()
    )


def mark_version_destroyed(*, session: Session, version_id: uuid.UUID, now: datetime, reason: str) -> bool:
    """Record that the version's checkpoint was deleted; False if another sweep recorded it first."""
    return (
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.id == version_id, ModelVersion.status == VersionStatus.ready)
            .values(status=VersionStatus.destroyed, destroyed_at=now, destruction_reason=reason)
            .returning(ModelVersion.id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        is not None
    )


def live_reference_sets(*, session: Session) -> list[Row[Any]]:
    """(reference_set, retention_seconds) of every set not destroyed, oldest first."""
    return list(
        session.execute(
            select(ReferenceSet, Model.retention_seconds)
            .join(Model, Model.id == ReferenceSet.model_id)
            .where(ReferenceSet.destroyed_at.is_(None))
            .order_by(ReferenceSet.created_at, ReferenceSet.id)
        ).all()
    )


def forgotten_requests(*, session: Session, model_ids: Iterable[uuid.UUID]) -> list[Row[Any]]:
    """(model_id, request_id, forgotten_at) of every completed request of these models that claimed samples
    of its own; forgotten_at is when the first version without them became ready."""
    wanted = list(model_ids)
    if not wanted:
        return []
    return list(
        session.execute(
            select(DeletionRequest.model_id, DeletionRequest.id, ModelVersion.ready_at.label("forgotten_at"))
            .join(ModelVersion, ModelVersion.id == DeletionRequest.version_id)
            .where(
                DeletionRequest.model_id.in_(wanted),
                DeletionRequest.status == RequestStatus.completed,
                DeletionRequest.sample_count > DeletionRequest.already_forgotten_count,
            )
        ).all()
    )


def mark_reference_set_destroyed(*, session: Session, reference_set_id: uuid.UUID, now: datetime, reason: str) -> bool:
    """Record that the set's objects were deleted; False if another sweep recorded it first."""
    return (
        session.execute(
            update(ReferenceSet)
            .where(ReferenceSet.id == reference_set_id, ReferenceSet.destroyed_at.is_(None))
            .values(destroyed_at=now, destruction_reason=reason)
            .returning(ReferenceSet.id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        is not None
    )


def live_object_owners(*, session: Session) -> dict[str, list[str]]:
    """Every stored object a ledger row needs, by URI, with the rows naming it ("model_version:<id>",
    "audit_page:<version id>", "reference_set:<id>"): checkpoints of versions not destroyed, every version's
    audit page (kept after a destruction: it holds scores and IDs, no sample), and the objects of reference
    sets not destroyed."""
    owners: dict[str, list[str]] = {}

    def add(uri: str | None, owner: str) -> None:
        if uri is not None:
            owners.setdefault(uri, []).append(owner)

    rows = session.execute(
        select(ModelVersion.id, ModelVersion.status, ModelVersion.checkpoint_uri, ModelVersion.audit_html_uri)
    ).all()
    for version_id, status, checkpoint_uri, audit_html_uri in rows:
        if status != VersionStatus.destroyed:
            add(checkpoint_uri, f"model_version:{version_id}")
        add(audit_html_uri, f"audit_page:{version_id}")
    sets = session.execute(
        select(ReferenceSet.id, ReferenceSet.membership_uri, ReferenceSet.checkpoints).where(
            ReferenceSet.destroyed_at.is_(None)
        )
    ).all()
    for set_id, membership_uri, checkpoints in sets:
        add(membership_uri, f"reference_set:{set_id}")
        for checkpoint in checkpoints:
            add(checkpoint["uri"], f"reference_set:{set_id}")
    return owners


def running_job_outputs(*, session: Session) -> set[str]:
    """The objects running jobs have stored so far (no other row names them until the job records them)."""
    rows = session.execute(select(Job.outputs).where(Job.status == JobStatus.running)).scalars()
    return {uri for outputs in rows for uri in outputs or []}


def unerased_completed_requests(*, session: Session) -> list[DeletionRequest]:
    """Completed requests without a receipt yet, every tenant's, by model then age."""
    return list(
        session.execute(
            select(DeletionRequest)
            .where(DeletionRequest.status == RequestStatus.completed, DeletionRequest.erased_at.is_(None))
            .order_by(DeletionRequest.model_id, DeletionRequest.created_at, DeletionRequest.id)
        ).scalars()
    )


def requests_by_id(*, session: Session, request_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, DeletionRequest]:
    wanted = list(request_ids)
    if not wanted:
        return {}
    rows = session.execute(select(DeletionRequest).where(DeletionRequest.id.in_(wanted))).scalars()
    return {request.id: request for request in rows}


def versions_of_model(*, session: Session, model_id: uuid.UUID) -> list[ModelVersion]:
    return list(
        session.execute(
            select(ModelVersion).where(ModelVersion.model_id == model_id).order_by(ModelVersion.number)
        ).scalars()
    )


def reference_sets_of_model(*, session: Session, model_id: uuid.UUID) -> list[ReferenceSet]:
    return list(
        session.execute(
            select(ReferenceSet)
            .where(ReferenceSet.model_id == model_id)
            .order_by(ReferenceSet.created_at, ReferenceSet.id)
        ).scalars()
    )


def running_reference_jobs(*, session: Session, model_id: uuid.UUID) -> list[Job]:
    return list(
        session.execute(
            select(Job).where(
                Job.model_id == model_id, Job.kind == JobKind.reference_models, Job.status == JobStatus.running
            )
        ).scalars()
    )


def retention_of(*, session: Session, model_id: uuid.UUID) -> int:
    return session.execute(select(Model.retention_seconds).where(Model.id == model_id)).scalar_one()


def received_event_data(*, session: Session, request_id: uuid.UUID) -> dict[str, Any] | None:
    """The data of the request's deletion_request.received event (it binds the request's IDs by hash)."""
    return session.execute(
        select(Event.data).where(
            Event.subject_type == "deletion_request",
            Event.subject_id == str(request_id),
            Event.type == "deletion_request.received",
        )
    ).scalar_one_or_none()


def mark_erased(*, session: Session, request_id: uuid.UUID, now: datetime, receipt: dict[str, Any]) -> bool:
    """Store the request's receipt; False if another sweep issued it first."""
    return (
        session.execute(
            update(DeletionRequest)
            .where(DeletionRequest.id == request_id, DeletionRequest.erased_at.is_(None))
            .values(erased_at=now, erasure_receipt=receipt)
            .returning(DeletionRequest.id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        is not None
    )


def get_request(*, session: Session, tenant_id: uuid.UUID, request_id: uuid.UUID) -> DeletionRequest | None:
    return session.execute(
        select(DeletionRequest).where(DeletionRequest.id == request_id, DeletionRequest.tenant_id == tenant_id)
    ).scalar_one_or_none()
