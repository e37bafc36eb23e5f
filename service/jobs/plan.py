"""A job's plan: everything a worker's computation needs, read from the ledger in one short transaction after
the claim, so that the worker reads no table itself and no transaction stays open while it computes.

A plan never names an artefact the erasure sweep destroyed (service.erasure): once the original's checkpoint
is gone, the audit compares with what was recorded of it; once the reference models are gone, it runs without
RMIA and says why, until new ones exist."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.jobs import repository
from service.lifecycle import service as lifecycle
from service.models import service as models
from service.models.datasets import absolute_spec
from service.settings import Settings
from service.tables import JobKind, ModelVersion, VersionStatus
from service.versions import repository as versions_repo
from unlearning.specs import ArchSpec, DatasetSpec, from_dict


@dataclass(frozen=True)
class VersionRef:
    number: int
    uri: str
    sha256: str
    forgotten_count: int
    config: dict[str, Any] | None

    @property
    def eps_init(self) -> float | None:
        """The starting radius this version's AMUN run used, which later runs inherit; None if it had none."""
        return ((self.config or {}).get("attack") or {}).get("eps_init")


@dataclass(frozen=True)
class ReferenceRef:
    id: uuid.UUID
    k: int
    num_train: int
    membership_uri: str
    membership_sha256: str
    checkpoints: list[dict[str, Any]]
    trained_at: datetime
    excluded_count: int  # samples claimed by requests when it was trained, OUT of every one of its models

    def describe(self) -> dict[str, Any]:
        """What an audit report says of the reference set it used."""
        return {"id": str(self.id), "k": self.k, "trained_at": self.trained_at.isoformat(),
                "excluded_forgotten_samples": self.excluded_count}  # fmt: skip


@dataclass(frozen=True)
class Plan:
    job_id: uuid.UUID
    kind: JobKind
    model_id: uuid.UUID
    arch: ArchSpec
    dataset: DatasetSpec
    job_config: dict[str, Any]
    parent: VersionRef
    original: VersionRef | None  # None once its checkpoint was destroyed
    # the original's test accuracy (percent) on the audits' scored test set, as version 2's audit measured it
    # (version 2's parent is the original), for comparisons once the original is gone; None before
    original_recorded: dict[str, Any] | None
    request_ids: list[uuid.UUID]
    forget_ids: list[str]  # this job's samples
    claimed_ids: list[str]  # every sample of the model forgotten or claimed by any accepted request
    claimed_request_ids: list[uuid.UUID]  # the requests holding those claims (read with them, in one query)
    earlier: dict[int, list[str]]  # version number -> samples that version forgot, for every ready version
    references: ReferenceRef | None  # the newest reference set not destroyed
    references_missing: str | None  # why there is none, when there is none (the audit report says it)
    history: list[dict[str, Any]]  # the ancestors' cumulative evidence (worker.audit.headline), oldest first
    guard_max_acc_drop: float  # the utility guard's margin (settings.guard_max_acc_drop)
    partial: dict[str, Any] | None  # what an earlier claim of this job kept (a tuning job's finished runs)


def _ref(version: ModelVersion) -> VersionRef:
    assert version.checkpoint_uri is not None and version.sha256 is not None  # ready versions have files
    return VersionRef(version.number, version.checkpoint_uri, version.sha256, version.forgotten_count, version.config)


def _original_recorded(session: Session, model_id: uuid.UUID) -> dict[str, Any] | None:
    second = versions_repo.get_version(session=session, model_id=model_id, number=2)
    if second is None or not second.metrics or second.metrics.get("parent_test_acc") is None:
        return None
    return {"test_acc": second.metrics["parent_test_acc"], "source": "version 2's audit"}


def _references(session: Session, model_id: uuid.UUID) -> tuple[ReferenceRef | None, str | None]:
    """The newest reference set not destroyed; else why there is none."""
    found = models.latest_reference_set(session, model_id=model_id)
    if found is not None:
        ref = ReferenceRef(found.id, found.k, found.num_train, found.membership_uri, found.membership_sha256,
                           list(found.checkpoints), found.created_at, found.excluded_count)  # fmt: skip
        return ref, None
    destroyed = models.latest_reference_set(session, model_id=model_id, destroyed=True)
    if destroyed is None:
        return None, "no reference models were trained for this model"
    rebuilding = repository.active_jobs(session=session, model_id=model_id, kind=JobKind.reference_models)
    then = f"new ones are being trained by job {rebuilding[0].id}" if rebuilding else "none were trained since"
    assert destroyed.destroyed_at is not None
    return None, (f"reference set {destroyed.id} was destroyed at {destroyed.destroyed_at.isoformat()} because it "
                  f"held forgotten samples; {then}")  # fmt: skip


def read_plan(session: Session, *, job_id: uuid.UUID, settings: Settings) -> Plan:
    """The plan of a job this worker has claimed (its parent version is fixed by the claim)."""
    job = repository.get_job_any_tenant(session=session, job_id=job_id)
    assert job is not None and job.parent_version_id is not None  # set by the claim
    model = models.get_model_any_tenant(session, model_id=job.model_id)
    assert model is not None
    parent = versions_repo.get_version_by_id(session=session, version_id=job.parent_version_id)
    original = versions_repo.get_version(session=session, model_id=model.id, number=1)
    assert parent is not None and original is not None
    forgotten = lifecycle.forgotten_by_version(session, model_id=model.id)
    numbers = versions_repo.numbers_of(session=session, version_ids=forgotten)
    references, references_missing = _references(session, model.id)
    claims = lifecycle.claims(session, model_id=model.id)
    return Plan(
        job_id=job.id,
        kind=JobKind(job.kind),
        model_id=model.id,
        arch=from_dict(ArchSpec, model.arch),
        dataset=absolute_spec(models.dataset_of(session, model), settings.data_root),
        job_config=dict(job.config),
        parent=_ref(parent),
        original=_ref(original) if original.status != VersionStatus.destroyed else None,
        original_recorded=_original_recorded(session, model.id),
        request_ids=repository.request_ids_of_job(session=session, job_id=job.id),
        forget_ids=lifecycle.samples_of_job(session, job_id=job.id),
        claimed_ids=sorted(claims),
        claimed_request_ids=sorted(set(claims.values())),
        earlier=dict(sorted((numbers[version_id], ids) for version_id, ids in forgotten.items())),
        history=versions_repo.cumulative_history(session=session, model_id=model.id, up_to=parent.number),
        guard_max_acc_drop=settings.guard_max_acc_drop,
        partial=dict(job.partial) if job.partial is not None else None,
        references=references,
        references_missing=references_missing,
    )
