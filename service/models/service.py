"""Registering models: validate the manifest with the core's specs, load the upload strictly into the
declared architecture, store it as version 1; reading them; and recording what jobs produce for a model (its
RMIA reference models). The jobs that train reference models or tune a model are started in service/jobs.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.datasets import repository as datasets_repo
from service.errors import Conflict, FieldProblem, NotFound, Unprocessable
from service.events import service as events
from service.models import repository
from service.models.schemas import ModelList, ModelManifest, ModelRead, ModelUpdate
from service.models.upload import ModelUpload
from service.pagination import Cursor
from service.settings import Settings
from service.storage import ObjectStore, StoredObject
from service.tables import Dataset, Model, ReferenceSet, VersionStatus, utcnow
from service.tenants.service import Principal
from service.versions import repository as versions_repo
from service.versions.service import code_version
from unlearning.specs import ArchSpec, SpecError, UnlearnConfig, from_dict, to_dict

if TYPE_CHECKING:
    import torch.nn as nn


class CheckpointRefused(Unprocessable):
    slug = "checkpoint-refused"


class ModelDoesNotFitDataset(Unprocessable):
    slug = "model-does-not-fit-dataset"


def _manifest_problem(detail: str, *path: str | int, kind: str = "invalid") -> FieldProblem:
    parts = ["manifest", *(str(p) for p in path)]
    return FieldProblem(detail=detail, pointer="#/" + "/".join(parts), location=["body", *parts], type=kind)


def parse_manifest(text: str) -> ModelManifest:
    try:
        return ModelManifest.model_validate_json(text)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = list(error.get("loc", ()))
            detail, kind = error.get("msg", "invalid value"), error.get("type", "invalid")
            problems.append(_manifest_problem(detail, *loc, kind=kind))
        summary = "; ".join(f"{p.pointer}: {p.detail}" for p in problems[:5])
        raise Unprocessable(f"the manifest is invalid: {summary}", errors=problems) from None


def _spec(cls: type, data: dict[str, Any], field: str) -> Any:
    try:
        return from_dict(cls, data)
    except SpecError as exc:
        raise Unprocessable(f"{field}: {exc}", errors=[_manifest_problem(str(exc), field)]) from None


def _check_fit(arch: ArchSpec, config: UnlearnConfig, dataset: Dataset) -> None:
    """The declared architecture must take the dataset's images and classes; the method its data rules."""
    channels, height, width = dataset.input_shape
    mismatches = []
    if arch.num_classes != len(dataset.classes):
        mismatches.append(("num_classes", f"{arch.num_classes} != the dataset's {len(dataset.classes)} classes"))
    if arch.in_channels != channels:
        mismatches.append(("in_channels", f"{arch.in_channels} != the dataset's {channels} channels"))
    if arch.image_size != height or arch.image_size != width:
        mismatches.append(("image_size", f"{arch.image_size} does not match the dataset's {height}x{width} images"))
    if mismatches:
        raise ModelDoesNotFitDataset(
            "the architecture does not fit the dataset: " + "; ".join(f"{k} {why}" for k, why in mismatches),
            errors=[_manifest_problem(why, "architecture", key) for key, why in mismatches],
        )
    if config.retain_access and not dataset.retain_access:
        detail = "the dataset forbids using the remaining data: set unlearn_config.retain_access to false"
        raise ModelDoesNotFitDataset(detail, errors=[_manifest_problem(detail, "unlearn_config", "retain_access")])


def _architecture_problem(exc: Exception) -> Unprocessable:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Unprocessable(f"architecture: {reason}", errors=[_manifest_problem(reason, "architecture")])


def _load_strictly(upload: ModelUpload, arch: ArchSpec) -> tuple[nn.Module, str]:
    """The declared architecture with the uploaded weights, and the upload's sha256; CheckpointError -> 422."""
    # PyTorch is imported on first use, on the CPU: the API process never initialises CUDA.
    import torch

    from unlearning.models import (
        CheckpointError,
        build_model,
        check_state_fits,
        load_state_strict,
        read_weights,
    )

    data = upload.checkpoint.read()
    uploaded_sha256 = hashlib.sha256(data).hexdigest()
    try:
        # On the meta device first: names and shapes without memory, so weights that do not fit (an
        # architecture declared a million channels wide) are refused before any of it is allocated.
        # A builder that writes data while it initialises (torchvision's regnets) cannot run there, nor
        # one whose sizes overflow int64; both are then built for real, where the latter fails at once.
        with torch.device("meta"):
            skeleton: nn.Module | None = build_model(arch)
    except (NotImplementedError, RuntimeError):
        skeleton = None
    except (ValueError, TypeError) as exc:  # an unknown torchvision builder; a size that is no int
        raise _architecture_problem(exc) from None
    try:
        weights = read_weights(data)
        if skeleton is not None:
            check_state_fits(skeleton, weights)
        try:
            model = build_model(arch)
        except (ValueError, TypeError, RuntimeError) as exc:  # RuntimeError: more memory than exists
            raise _architecture_problem(exc) from None
        load_state_strict(model, weights)
    except CheckpointError as exc:
        raise CheckpointRefused(
            f"the checkpoint was refused: {exc}",
            errors=[FieldProblem(detail=str(exc), pointer=None, location=["body", "checkpoint"], type="checkpoint")],
        ) from None
    return model.eval(), uploaded_sha256


def register_model(session: Session, *, principal: Principal, settings: Settings, upload: ModelUpload) -> Model:
    """Validate everything, then store the checkpoint (the library's safetensors format) and record version 1.

    Nothing is stored or recorded unless every check passed. The file is written before the ledger rows,
    so a failed commit leaves at most an unreferenced, content-addressed file.
    """
    manifest = parse_manifest(upload.manifest)
    arch = _spec(ArchSpec, manifest.architecture, "architecture")
    config = _spec(UnlearnConfig, manifest.unlearn_config, "unlearn_config")
    dataset = datasets_repo.get_dataset(session=session, tenant_id=principal.tenant_id, dataset_id=manifest.dataset_id)
    if dataset is None:
        detail = f"no dataset {manifest.dataset_id}"
        raise Unprocessable(detail, errors=[_manifest_problem(detail, "dataset_id")])
    _check_fit(arch, config, dataset)
    if repository.get_model_by_name(session=session, tenant_id=principal.tenant_id, name=manifest.name) is not None:
        raise Conflict(f"a model named {manifest.name!r} already exists")
    # Loading the weights takes a while for large models: no transaction stays open meanwhile.
    session.rollback()

    from unlearning.models import checkpoint_bytes

    network, uploaded_sha256 = _load_strictly(upload, arch)
    model_id = uuid.uuid4()
    data = checkpoint_bytes(
        network,
        config={},  # the original's training recipe is not known to the service
        extra={"model_id": str(model_id), "version": 1, "source": "upload", "uploaded_sha256": uploaded_sha256},
    )
    stored = ObjectStore.from_settings(settings).put_bytes(data)

    model = repository.insert_model(
        session=session,
        id=model_id,
        tenant_id=principal.tenant_id,
        dataset_id=manifest.dataset_id,
        name=manifest.name,
        arch=to_dict(arch),
        method=config.method,
        unlearn_config=to_dict(config),
        retention_seconds=(
            manifest.retention_seconds if manifest.retention_seconds is not None else settings.retention_seconds
        ),
    )
    now = utcnow()
    version = versions_repo.insert_version(
        session=session,
        model_id=model.id,
        number=1,
        status=VersionStatus.ready,
        checkpoint_uri=stored.uri,
        sha256=stored.sha256,
        size_bytes=stored.size_bytes,
        forgotten_count=0,
        code_version=code_version(),
        ready_at=now,
    )
    events.append(
        session,
        event_type="model.registered",
        subject_type="model",
        subject_id=model.id,
        actor=principal.actor,
        tenant_id=principal.tenant_id,
        data={
            "name": model.name,
            "dataset_id": model.dataset_id,
            "architecture": model.arch,
            "unlearn_config": model.unlearn_config,
            "retention_seconds": model.retention_seconds,
            "version": {"id": version.id, "number": 1, "sha256": stored.sha256, "size_bytes": stored.size_bytes},
            "uploaded_sha256": uploaded_sha256,
            "uploaded_filename": upload.filename,
        },
    )
    return model


def get_model(session: Session, *, principal: Principal, model_id: uuid.UUID) -> Model:
    model = repository.get_model(session=session, tenant_id=principal.tenant_id, model_id=model_id)
    if model is None:
        raise NotFound(f"no model {model_id}")  # also for another tenant's: its existence is not disclosed
    return model


def read_models(session: Session, models: list[Model]) -> list[ModelRead]:
    latest = versions_repo.latest_ready_numbers(session=session, model_ids=[m.id for m in models])
    return [
        ModelRead(
            id=m.id,
            name=m.name,
            dataset_id=m.dataset_id,
            architecture=m.arch,
            method=m.method,
            unlearn_config=m.unlearn_config,
            latest_version=latest.get(m.id, 1),
            tuning=m.tuning,
            retention_seconds=m.retention_seconds,
            created_at=m.created_at,
        )
        for m in models
    ]


def list_models(session: Session, *, principal: Principal, page: Cursor) -> ModelList:
    """One page of the tenant's models, oldest first."""
    window = page.window("models", repository.OLDEST_FIRST)
    items, next_token = repository.list_models(session=session, tenant_id=principal.tenant_id, window=window)
    return ModelList(items=read_models(session, items), next_page_token=next_token)


def update_model(session: Session, *, principal: Principal, model_id: uuid.UUID, body: ModelUpdate) -> Model:
    """Change the model's retention window. A shorter one takes effect at the next erasure sweep (artefacts
    already past it are destroyed then); a longer one keeps those not yet destroyed longer, never past the
    30-day limit counted from when their samples were forgotten."""
    model = lock_model(session, tenant_id=principal.tenant_id, model_id=model_id)
    if model is None:
        raise NotFound(f"no model {model_id}")  # also for another tenant's
    if body.retention_seconds != model.retention_seconds:
        previous, model.retention_seconds = model.retention_seconds, body.retention_seconds
        events.append(
            session,
            event_type="model.retention_changed",
            subject_type="model",
            subject_id=model.id,
            actor=principal.actor,
            tenant_id=principal.tenant_id,
            data={"from": previous, "to": model.retention_seconds},
        )
    return model


def lock_model(session: Session, *, tenant_id: uuid.UUID, model_id: uuid.UUID) -> Model | None:
    """The model row, locked until commit (see repository.lock_model): changes to one model, and the requests
    for it, are made one at a time. None if the tenant has no such model."""
    return repository.lock_model(session=session, tenant_id=tenant_id, model_id=model_id)


def get_model_any_tenant(session: Session, *, model_id: uuid.UUID) -> Model | None:
    """For workers, which act for every tenant."""
    return repository.get_model_any_tenant(session=session, model_id=model_id)


def dataset_of(session: Session, model: Model) -> Dataset:
    """The dataset the model was trained on."""
    dataset = datasets_repo.get_dataset(session=session, tenant_id=model.tenant_id, dataset_id=model.dataset_id)
    assert dataset is not None  # a model row always references its dataset (foreign key)
    return dataset


def record_reference_set(
    session: Session,
    *,
    tenant_id: uuid.UUID,
    model_id: uuid.UUID,
    job_id: uuid.UUID,
    recipe: dict[str, Any],
    membership: StoredObject,
    checkpoints: list[StoredObject],
    num_train: int,
    excluded_request_ids: list[uuid.UUID],
    excluded_count: int,
) -> ReferenceSet:
    """RMIA reference models a job trained for the model (their checkpoints, which training samples each saw,
    and the requests whose samples none of them saw); later audits of the model use its newest set."""
    return repository.insert_reference_set(
        session=session,
        tenant_id=tenant_id,
        model_id=model_id,
        job_id=job_id,
        k=len(checkpoints),
        num_train=num_train,
        recipe=recipe,
        membership_uri=membership.uri,
        membership_sha256=membership.sha256,
        checkpoints=[{"uri": c.uri, "sha256": c.sha256, "size_bytes": c.size_bytes} for c in checkpoints],
        excluded_request_ids=[str(r) for r in excluded_request_ids],
        excluded_count=excluded_count,
    )


def latest_reference_set(session: Session, *, model_id: uuid.UUID, destroyed: bool = False) -> ReferenceSet | None:
    """The newest set the audits may use (not destroyed), or with destroyed=True the newest destroyed one."""
    return repository.latest_reference_set(session=session, model_id=model_id, destroyed=destroyed)
