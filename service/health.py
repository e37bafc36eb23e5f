"""Operational endpoints: liveness with a database check, and Prometheus metrics (HTTP and job ledger)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from service.db import ping
from service.deps import SessionDep
from service.errors import ServiceUnavailable, problem_responses
from service.metrics import ledger_registry

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]


@router.get("/healthz", response_model=Health, responses=problem_responses(503))
def check_health(session: SessionDep) -> Health:
    try:
        ping(session)
    except SQLAlchemyError as exc:
        raise ServiceUnavailable(f"database unreachable: {type(exc).__name__}") from exc
    return Health(status="ok", database="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
def export_metrics(request: Request) -> Response:
    """The app's HTTP metrics and the ledger's job metrics; the latter are left out while the database is down."""
    state = request.app.state
    # Two registries, one page: the text format is a sequence of families, and the names do not overlap.
    # The ledger's is read fresh on every scrape (this runs on the thread pool, so its query blocks no one).
    body = generate_latest(state.metrics.registry) + generate_latest(ledger_registry(state.settings.database_url))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
