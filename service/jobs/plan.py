"""A job's plan: everything a worker's computation needs, read from the ledger in one short transaction after
the claim, so that the worker reads no table itself and no transaction stays open while it computes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from service.jobs import repository
from service.lifecycle import service as lifecycle
from service.models import service as models
from service.models.datasets import absolute_spec
from service.settings import Settings
from service.tables import JobKind, ModelVersion
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
    k: int
    num_train: int
    membership_uri: str
    membership_sha256: str
    checkpoints: list[dict[str, Any]]


@dataclass(frozen=True)
class Plan:
    job_id: uuid.UUID
    kind: JobKind
    model_id: uuid.UUID
    arch: ArchSpec
    dataset: DatasetSpec
    job_config: dict[str, Any]
    parent: VersionRef
    original: VersionRef
    request_ids: list[uuid.UUID]
    forget_ids: list[str]  # this job's samples
    claimed_ids: list[str]  # every sample of the model forgotten or claimed by any accepted request
    earlier: dict[int, list[str]]  # version number -> samples that version forgot, for every ready version
    references: ReferenceRef | None
    history: list[dict[str, Any]]  # the ancestors' cumulative evidence (worker.audit.headline), oldest first
    guard_max_acc_drop: float  # the utility guard's margin (settings.guard_max_acc_drop)
    partial: dict[str, Any] | None  # what an earlier claim of this job kept (a tuning job's finished runs)


def _ref(version: ModelVersion) -> VersionRef:
    assert version.checkpoint_uri is not None and version.sha256 is not None  # ready versions have files
    return VersionRef(version.number, version.checkpoint_uri, version.sha256, version.forgotten_count, version.config)


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
    references = models.latest_reference_set(session, model_id=model.id)
    return Plan(
        job_id=job.id,
        kind=JobKind(job.kind),
        model_id=model.id,
        arch=from_dict(ArchSpec, model.arch),
        dataset=absolute_spec(models.dataset_of(session, model), settings.data_root),
        job_config=dict(job.config),
        parent=_ref(parent),
        original=_ref(original),
        request_ids=repository.request_ids_of_job(session=session, job_id=job.id),
        forget_ids=lifecycle.samples_of_job(session, job_id=job.id),
        claimed_ids=lifecycle.claimed_samples(session, model_id=model.id),
        earlier=dict(sorted((numbers[version_id], ids) for version_id, ids in forgotten.items())),
        history=versions_repo.cumulative_history(session=session, model_id=model.id, up_to=parent.number),
        guard_max_acc_drop=settings.guard_max_acc_drop,
        partial=dict(job.partial) if job.partial is not None else None,
        references=ReferenceRef(
            references.k,
            references.num_train,
            references.membership_uri,
            references.membership_sha256,
            list(references.checkpoints),
        )
        if references is not None
        else None,
    )
