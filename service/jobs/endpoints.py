"""HTTP routes of jobs: list and read progress (read scope) and cancel (write scope); and, on a model, start
training RMIA reference models and start tuning the unlearning rate and schedule (write scope)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response

from service.deps import ReaderTenant, SessionDep, WriterTenant
from service.errors import problem_responses
from service.jobs import service
from service.jobs.schemas import JobList, JobQuery, JobRead, ReferenceModelsCreate, TuningCreate
from service.pagination import CursorDep
from service.routing import API_PREFIX, JsonBodyRoute, api_router
from service.tables import JobStatus

router = api_router("/jobs", tags=["jobs"], responses=problem_responses(401, 403))
# the jobs started on a model are listed with the model's other operations
model_jobs_router = api_router(
    "/models", tags=["models"], responses=problem_responses(401, 403), route_class=JsonBodyRoute
)


@router.get("", response_model=JobList, responses=problem_responses(422))
def list_jobs(
    query: Annotated[JobQuery, Query()], principal: ReaderTenant, session: SessionDep, page: CursorDep
) -> JobList:
    """The tenant's jobs, newest first: what runs, what waits, and what failed and why."""
    return service.list_jobs(session, principal=principal, query=query, page=page)


@router.get("/{job_id}", response_model=JobRead, responses=problem_responses(404, 422))
def get_job(job_id: uuid.UUID, principal: ReaderTenant, session: SessionDep) -> JobRead:
    return service.read_job(session, service.get_job(session, principal=principal, job_id=job_id))


@router.delete(
    "/{job_id}",
    response_model=JobRead,
    responses={
        202: {"model": JobRead, "description": "the running job was asked to stop"},
        **problem_responses(404, 409, 422),
    },
)
def cancel_job(job_id: uuid.UUID, principal: WriterTenant, session: SessionDep, response: Response) -> JobRead:
    """Cancel a waiting job (200, its requests cancelled) or ask a running one to stop at its next step (202)."""
    job = service.cancel_job(session, principal=principal, job_id=job_id)
    if job.status == JobStatus.running:
        response.status_code = 202
    return service.read_job(session, job)


@model_jobs_router.post(
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
    return service.read_job(session, job)


@model_jobs_router.post(
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
    return service.read_job(session, job)
