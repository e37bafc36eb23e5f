"""HTTP routes of a model's suppression list (read scope): JSON pages and the streamed CSV export."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response
from fastapi.responses import StreamingResponse

from service.deps import ReaderTenant, SessionDep, SettingsDep
from service.errors import problem_responses
from service.pagination import CursorDep
from service.routing import api_router
from service.suppression import service
from service.suppression.schemas import ForgottenSampleList, ForgottenSampleQuery

router = api_router("/models/{model_id}", tags=["suppression list"], responses=problem_responses(401, 403))

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


@router.get("/forgotten-samples", response_model=ForgottenSampleList, responses=problem_responses(404, 422))
def list_forgotten_samples(
    model_id: uuid.UUID,
    query: Annotated[ForgottenSampleQuery, Query()],
    principal: ReaderTenant,
    session: SessionDep,
    page: CursorDep,
) -> ForgottenSampleList:
    """The model's suppression list: every sample ID forgotten or being forgotten (see `state`), which must never
    be trained on again, with the request that claimed it and the version that forgot it; by sample ID."""
    return service.list_forgotten_samples(session, principal=principal, model_id=model_id, query=query, page=page)


@router.get(
    "/forgotten-samples.csv",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": ", ".join(service.CSV_COLUMNS) + "; by sample ID"},
        **problem_responses(404, 422),
    },
)
def export_forgotten_samples(
    model_id: uuid.UUID,
    query: Annotated[ForgottenSampleQuery, Query()],
    principal: ReaderTenant,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """The whole suppression list as CSV, streamed in batches read from the ledger as it is sent."""
    chunks = service.export_csv(session, principal=principal, settings=settings, model_id=model_id, query=query)
    filename = f"forgotten-samples-{model_id}.csv"
    return StreamingResponse(
        chunks, media_type=CSV_MEDIA_TYPE, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
