"""Registering models: validate the manifest with the core's specs, load the upload strictly into the
declared architecture, store it as version 1; starting the training of RMIA reference models; and starting
the tuning of the model's unlearning rate and schedule.
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
from service.jobs import service as jobs
from service.models import repository
from service.models.schemas import ModelManifest, ModelRead, ReferenceModelsCreate, TuningCreate
from service.models.upload import ModelUpload
from service.settings import Settings
from service.storage import ObjectStore
from service.tables import Dataset, Job, Model, VersionStatus, utcnow
from service.tenants.service import Principal
from service.versions import repository as versions_repo
from service.versions.service import code_version
from unlearning.specs import (
    ArchSpec,
    SpecError,
    TrainConfig,
    UnlearnConfig,
    from_dict,
    to_dict,
)

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


def _spec(cls: type, data: dict[str, Any], field: str, *, in_manifest: bool = True) -> Any:
    try:
        return from_dict(cls, data)
    except SpecError as exc:
        if in_manifest:
            raise Unprocessable(f"{field}: {exc}", errors=[_manifest_problem(str(exc), field)]) from None
        raise Unprocessable(f"{field}: {exc}", pointer=f"#/{field}") from None


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
            created_at=m.created_at,
        )
        for m in models
    ]


def list_models(
    session: Session, *, principal: Principal, limit: int, offset: int
) -> tuple[list[ModelRead], int | None]:
    page = repository.list_models(session=session, tenant_id=principal.tenant_id, limit=limit + 1, offset=offset)
    next_offset = offset + limit if len(page) > limit else None
    return read_models(session, page[:limit]), next_offset


def request_reference_models(
    session: Session, *, principal: Principal, model_id: uuid.UUID, body: ReferenceModelsCreate
) -> Job:
    """Queue the training of k RMIA reference models; later audits of the model use the newest set."""
    model = get_model(session, principal=principal, model_id=model_id)
    if body.recipe is not None:
        recipe = _spec(TrainConfig, body.recipe, "recipe", in_manifest=False)
    else:
        stored = model.unlearn_config.get("recipe")
        recipe = from_dict(TrainConfig, stored) if stored else TrainConfig()
    return jobs.enqueue_reference_models(session, model=model, k=body.k, recipe=to_dict(recipe), actor=principal.actor)


# the default learning-rate grid, as multiples of the model's lr: mostly below it, since a rate that
# over-unlearns is the failure measured (the Fashion-MNIST demo at 0.05 lost 2.4 points on one 400-ID request),
# and one above, so that a model tuned before can move up again and its rate is checked against divergence
DEFAULT_LR_FACTORS = (0.1, 0.2, 0.5, 1.0, 2.0)
TUNING_SEED = 0  # draws the tuning forget subset from the samples not yet forgotten
# the tuning forget subset, by default: this share of the training split, and at least MIN_TUNING_FORGET
TUNING_FORGET_SHARE, MIN_TUNING_FORGET = 0.01, 20


def request_tuning(session: Session, *, principal: Principal, model_id: uuid.UUID, body: TuningCreate | None) -> Job:
    """Queue a job that chooses the model's lr and step_size on a tuning forget subset; once it succeeds they
    become the model's unlearn_config (with the grid and scores as provenance) for every later job.

    The default procedure is reference_free: each setting is scored by how well a loss-threshold attack
    still tells the tuning subset from held-out data, under the utility guard. The paper's procedure
    (retrain) needs a model retrained without the tuning subset: a full training run per tuning, with a
    recipe the service knows only when the manifest gave one (the uploaded original carries none), and on
    remaining data the dataset may forbid. The reference-free score is what the stopping rule and the
    audit's membership evidence measure, and the guard keeps the chosen rate from buying it with accuracy.
    """
    body = body or TuningCreate()
    model = repository.lock_model(session=session, tenant_id=principal.tenant_id, model_id=model_id)
    if model is None:
        raise NotFound(f"no model {model_id}")  # also for another tenant's
    config = from_dict(UnlearnConfig, model.unlearn_config)
    dataset = datasets_repo.get_dataset(session=session, tenant_id=model.tenant_id, dataset_id=model.dataset_id)
    assert dataset is not None  # a model row always references its dataset (foreign key)
    if body.procedure == "retrain":
        if config.recipe is None:
            raise Unprocessable(
                "procedure 'retrain' trains a model without the tuning subset with the model's recipe, and this "
                "model has none (unlearn_config.recipe); use procedure 'reference_free'", pointer="#/procedure")
        if not dataset.retain_access:
            raise Unprocessable("procedure 'retrain' trains on the remaining data, which this model's dataset "
                                "forbids using; use procedure 'reference_free'", pointer="#/procedure")  # fmt: skip
    latest = versions_repo.latest_ready_version(session=session, model_id=model.id)
    available = dataset.num_train - (latest.forgotten_count if latest is not None else 0)
    forget_size = body.forget_size or max(MIN_TUNING_FORGET, round(TUNING_FORGET_SHARE * dataset.num_train))
    if forget_size >= available:
        raise Unprocessable(f"a tuning subset of {forget_size} samples leaves none of the {available} training "
                            "samples not yet forgotten to unlearn with", pointer="#/forget_size")  # fmt: skip
    lrs = body.lrs or sorted({float(f"{config.lr * f:.6g}") for f in DEFAULT_LR_FACTORS})
    job_config = {
        "procedure": body.procedure,
        "lrs": sorted(lrs),
        "step_sizes": sorted(body.step_sizes or [config.step_size]),
        "forget_size": forget_size,
        "runs": body.runs,
        "seed": TUNING_SEED,
    }
    return jobs.enqueue_tuning(session, model=model, config=job_config, actor=principal.actor)
