"""HTTP routes of API keys: create, list, revoke (admin scope, the caller's tenant only)."""

from __future__ import annotations

import uuid

from fastapi import Response

from service.deps import AdminTenant, SessionDep
from service.errors import problem_responses
from service.pagination import CursorDep
from service.routing import API_PREFIX, JsonBodyRoute, api_router
from service.tenants import service
from service.tenants.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyRead

router = api_router(
    "/api-keys", tags=["api keys"], responses=problem_responses(401, 403), route_class=JsonBodyRoute
)


@router.post("", status_code=201, response_model=ApiKeyCreated, responses=problem_responses(415, 422))
def create_api_key(
    body: ApiKeyCreate, principal: AdminTenant, session: SessionDep, response: Response
) -> ApiKeyCreated:
    issued = service.create_key(session, principal=principal, name=body.name, scopes=body.scopes)
    response.headers["Location"] = f"{API_PREFIX}/api-keys/{issued.api_key.id}"
    response.headers["Cache-Control"] = "no-store"  # the body holds a secret
    return ApiKeyCreated(**ApiKeyRead.model_validate(issued.api_key).model_dump(), key=issued.key)


@router.get("", response_model=ApiKeyList, responses=problem_responses(422))
def list_api_keys(principal: AdminTenant, session: SessionDep, page: CursorDep) -> ApiKeyList:
    return service.list_keys(session, principal=principal, page=page)


@router.delete("/{key_id}", status_code=204, responses=problem_responses(404, 409, 422))
def revoke_api_key(key_id: uuid.UUID, principal: AdminTenant, session: SessionDep) -> Response:
    service.revoke_key(session, principal=principal, key_id=key_id)
    return Response(status_code=204)
