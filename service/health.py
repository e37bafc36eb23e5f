"""Operational endpoints: liveness with a database check (and, under `service run`, a check of the supervised
local executor), and Prometheus metrics (HTTP and job ledger)."""

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
from service.supervisor import read_state, unhealthy_reason
from service.tables import utcnow

router = APIRouter(tags=["operations"])


class ExecutorHealth(BaseModel):
    status: Literal["running"]
    restarts: int  # executors started after the first, each because the one before it ended
    last_exit: str | None = None  # how the previous one ended, e.g. "exited with signal 9 (SIGKILL)"


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
    # present when this service supervises a local executor (`service run` without a broker)
    executor: ExecutorHealth | None = None


@router.get("/healthz", response_model=Health, response_model_exclude_none=True, responses=problem_responses(503))
def check_health(request: Request, session: SessionDep) -> Health:
    """503 while the database is unreachable or, under `service run`, while no local executor is running (it is
    being restarted): the detail says why."""
    try:
        ping(session)
    except SQLAlchemyError as exc:
        raise ServiceUnavailable(f"database unreachable: {type(exc).__name__}") from exc
    settings = request.app.state.settings
    if settings.executor_state_file is None or settings.broker_url is not None:
        return Health(status="ok", database="ok")
    # the supervisor lives in `run`'s own process; every API process reads the state it writes
    state = read_state(settings.executor_state_file)
    reason = unhealthy_reason(state, now=utcnow())
    if reason is not None:
        raise ServiceUnavailable(reason)
    assert state is not None  # a missing state has a reason
    executor = ExecutorHealth(status="running", restarts=state.restarts, last_exit=state.last_exit)
    return Health(status="ok", database="ok", executor=executor)


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
