"""HTTP routes of models: register with the original checkpoint and change the retention window (write scope),
read and list (read scope). The jobs started on a model (reference models, tuning) have their routes in
service/jobs/endpoints.py."""

from __future__ import annotations

import uuid

from fastapi import Response

from service.deps import ReaderTenant, SessionDep, SettingsDep, WriterTenant
from service.errors import problem_responses
from service.models import service
from service.models.schemas import ModelList, ModelRead, ModelUpdate
from service.models.upload import UPLOAD_OPENAPI, ModelUploadDep
from service.pagination import CursorDep
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


@router.patch("/{model_id}", response_model=ModelRead, responses=problem_responses(404, 415, 422))
def update_model(model_id: uuid.UUID, body: ModelUpdate, principal: WriterTenant, session: SessionDep) -> ModelRead:
    """Change the model's retention window (retention_seconds, 0 to 30 days)."""
    model = service.update_model(session, principal=principal, model_id=model_id, body=body)
    return service.read_models(session, [model])[0]


@router.get("", response_model=ModelList, responses=problem_responses(422))
def list_models(principal: ReaderTenant, session: SessionDep, page: CursorDep) -> ModelList:
    return service.list_models(session, principal=principal, page=page)
