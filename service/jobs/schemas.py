"""Job response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from service.tables import JobKind, JobStatus


class JobRead(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    kind: JobKind
    status: JobStatus
    phase: str | None = Field(description="what the worker is doing now, e.g. attack, fine-tune, audit")
    percent: float = Field(description="progress of the current phase, 0 to 100")
    eta: datetime | None = Field(description="estimated end of the current phase, from its elapsed time and progress")
    eta_seconds: float | None = Field(description="seconds from now until eta")
    attempts: int = Field(description="claims by a worker so far; a job whose worker died is retried")
    cancel_requested: bool
    error: str | None = Field(description="why it failed")
    parent_version: int | None = Field(description="the version it starts from (fixed when a worker claims it)")
    result_version: int | None = Field(description="the version it produced")
    request_ids: list[uuid.UUID] = Field(description="deletion requests it covers (unlearning jobs)")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
