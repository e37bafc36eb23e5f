"""HTTP routes of jobs: read progress (read scope) and cancel (write scope)."""

from __future__ import annotations

import uuid

from fastapi import Response

from service.deps import ReaderTenant, SessionDep, WriterTenant
from service.errors import problem_responses
from service.jobs import service
from service.jobs.schemas import JobRead
from service.routing import api_router
from service.tables import JobStatus

router = api_router("/jobs", tags=["jobs"], responses=problem_responses(401, 403))


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
