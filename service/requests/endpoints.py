"""HTTP routes of deletion requests: submit (write scope), list and search, read, list events, cancel."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Header, Query
from fastapi.responses import JSONResponse

from service.deps import ReaderTenant, SessionDep, SettingsDep, WriterTenant
from service.errors import problem_responses
from service.pagination import CursorDep
from service.requests import service
from service.requests.schemas import (
    DeletionRequestAccepted,
    DeletionRequestCreate,
    DeletionRequestList,
    DeletionRequestQuery,
    DeletionRequestRead,
    RequestEventList,
    RequestEventRead,
)
from service.routing import API_PREFIX, JsonBodyRoute, api_router

router = api_router(tags=["deletion requests"], responses=problem_responses(401, 403), route_class=JsonBodyRoute)


@router.post(
    "/models/{model_id}/deletion-requests",
    status_code=202,
    response_model=DeletionRequestAccepted,
    responses={
        200: {"model": DeletionRequestAccepted, "description": "every ID was already forgotten: nothing to do"},
        **problem_responses(404, 409, 415, 422, 503),
    },
)
def submit_deletion_request(
    model_id: uuid.UUID,
    body: DeletionRequestCreate,
    principal: WriterTenant,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=service.IDEMPOTENCY_KEY_MAX,
            description="repeat it to retry safely: the same body gets the first answer again, another body a 422",
            examples=["6f1c2b8e-4d0a-4f7e-9a53-0c2e8b7d1a94"],
        ),
    ] = None,
) -> JSONResponse:
    answer = service.accept(
        session, principal=principal, settings=settings, model_id=model_id, body=body, idempotency_key=idempotency_key
    )
    # The session dependency commits before this response is sent (see service.db.get_session).
    return JSONResponse(
        answer.body, status_code=answer.status_code, headers={"Location": f"{API_PREFIX}/deletion-requests/{answer.request_id}"}
    )


@router.get("/deletion-requests", response_model=DeletionRequestList, responses=problem_responses(422))
def list_deletion_requests(
    query: Annotated[DeletionRequestQuery, Query()], principal: ReaderTenant, session: SessionDep, page: CursorDep
) -> DeletionRequestList:
    """The tenant's requests: find one by your own reference (subject_request_id), list what is overdue, or
    reconcile by model, state, regulation and time range; newest first unless sort and order say otherwise."""
    return service.list_requests(session, principal=principal, query=query, page=page)


@router.get(
    "/deletion-requests/{request_id}", response_model=DeletionRequestRead, responses=problem_responses(404, 422)
)
def get_deletion_request(request_id: uuid.UUID, principal: ReaderTenant, session: SessionDep) -> DeletionRequestRead:
    return service.read_request(session, service.get_request(session, principal=principal, request_id=request_id))


@router.get(
    "/deletion-requests/{request_id}/events", response_model=RequestEventList, responses=problem_responses(404, 422)
)
def list_deletion_request_events(
    request_id: uuid.UUID, principal: ReaderTenant, session: SessionDep
) -> RequestEventList:
    events = service.list_events(session, principal=principal, request_id=request_id)
    return RequestEventList(items=[RequestEventRead.model_validate(e) for e in events])


@router.delete(
    "/deletion-requests/{request_id}",
    response_model=DeletionRequestRead,
    responses=problem_responses(404, 409, 422),
)
def cancel_deletion_request(request_id: uuid.UUID, principal: WriterTenant, session: SessionDep) -> DeletionRequestRead:
    """Cancel a request that has not started (received or queued); 409 once its job runs."""
    request = service.cancel(session, principal=principal, request_id=request_id)
    return service.read_request(session, request)
