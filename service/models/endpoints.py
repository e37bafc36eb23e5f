"""HTTP routes of models: register with the original checkpoint (write scope), read and list (read scope),
start training RMIA reference models and start tuning the unlearning rate and schedule (write scope)."""

from __future__ import annotations

import uuid

from fastapi import Response

from service.deps import ReaderTenant, SessionDep, SettingsDep, WriterTenant
from service.errors import problem_responses
from service.jobs import service as jobs
from service.jobs.schemas import JobRead
from service.models import service
from service.models.schemas import ModelList, ModelRead, ReferenceModelsCreate, TuningCreate
from service.models.upload import UPLOAD_OPENAPI, ModelUploadDep
from service.pagination import PageDep
from service.routing import API_PREFIX, JsonBodyRoute, api_router

router = api_router(
    "/models", tags=["models"], responses=problem_responses(401, 403), route_class=JsonBodyRoute
)


@router.post(
    "",
    status_code=201,
    response_model=ModelRead,
    openapi_extra=UPLOAD_OPENAPI,
    responses=problem_responses(400, 409, 413, 415, 422),
)
def register_model(
    upload: ModelUploadDep, principal: WriterTenant, session: SessionDep, settings: SettingsDep, response: Response
) -> ModelRead:
    """Multipart: 'manifest' (JSON) and 'checkpoint' (safetensors, or a state dict loadable with
    weights_only=True). The weights must fit the declared architecture exactly; they become version 1."""
    model = service.register_model(session, principal=principal, settings=settings, upload=upload)
    response.headers["Location"] = f"{API_PREFIX}/models/{model.id}"
    return service.read_models(session, [model])[0]


@router.get("/{model_id}", response_model=ModelRead, responses=problem_responses(404, 422))
def get_model(model_id: uuid.UUID, principal: ReaderTenant, session: SessionDep) -> ModelRead:
    return service.read_models(session, [service.get_model(session, principal=principal, model_id=model_id)])[0]


@router.get("", response_model=ModelList, responses=problem_responses(422))
def list_models(principal: ReaderTenant, session: SessionDep, page: PageDep) -> ModelList:
    items, next_offset = service.list_models(session, principal=principal, limit=page.limit, offset=page.offset)
    return ModelList(items=items, next_offset=next_offset)


@router.post(
    "/{model_id}/reference-models",
    status_code=202,
    response_model=JobRead,
    responses=problem_responses(404, 409, 415, 422),
)
def train_reference_models(
    model_id: uuid.UUID, body: ReferenceModelsCreate, principal: WriterTenant, session: SessionDep, response: Response
) -> JobRead:
    """Queue a job that trains k reference models for the RMIA audit of this model's later versions."""
    job = service.request_reference_models(session, principal=principal, model_id=model_id, body=body)
    response.headers["Location"] = f"{API_PREFIX}/jobs/{job.id}"
    return jobs.read_job(session, job)


@router.post(
    "/{model_id}/tuning",
    status_code=202,
    response_model=JobRead,
    responses=problem_responses(404, 409, 415, 422),
)
def tune_model(
    model_id: uuid.UUID,
    principal: WriterTenant,
    session: SessionDep,
    response: Response,
    body: TuningCreate | None = None,
) -> JobRead:
    """Queue a job that chooses the model's lr and step_size on a tuning forget subset of training samples not
    yet forgotten (they stay in the model). When it succeeds, unlearn_config takes the choice, and GET of
    the model shows its provenance under `tuning`; unlearning jobs already queued keep their config.

    The default procedure, reference_free, needs no retrained model: a setting is scored by how well a
    loss-threshold attack still tells the tuning subset from held-out test samples, and is feasible only
    when its held-out accuracy stays within UNLEARN_GUARD_MAX_ACC_DROP points of the model's. `retrain` is
    the paper's procedure (the gap to a model retrained without the subset) and needs unlearn_config.recipe.
    409 while a tuning job of the model is queued or running."""
    job = service.request_tuning(session, principal=principal, model_id=model_id, body=body)
    response.headers["Location"] = f"{API_PREFIX}/jobs/{job.id}"
    return jobs.read_job(session, job)
