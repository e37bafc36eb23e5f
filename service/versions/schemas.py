"""Version response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from service.pagination import PageRead
from service.tables import VersionStatus


class CheckpointRead(BaseModel):
    # the storage location (a server path or bucket key) stays in the ledger: clients download by download_url
    sha256: str = Field(description="of the file's bytes; also the download's ETag")
    size_bytes: int
    download_url: str


class LineageRead(BaseModel):
    parent_version: int | None = Field(description="the version this one was unlearned from; null for version 1")
    request_ids: list[uuid.UUID] = Field(description="deletion requests whose samples this version first excludes")
    job_id: uuid.UUID | None = Field(description="the job that made it; null for version 1")
    method: str | None = Field(description="unlearning method; null for the registered original")
    hyper_parameters: dict[str, Any] | None = Field(
        description="the UnlearnConfig as run, with a calibrated attack eps_init filled in"
    )
    seed: int | None
    code_version: str | None = Field(description="'<package version>+git.<commit>' of the code that made it")


class VersionRead(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    number: int = Field(description="1 = the registered original")
    status: VersionStatus
    checkpoint: CheckpointRead | None
    lineage: LineageRead
    forgotten_count: int = Field(description="samples forgotten by this version and all its ancestors")
    metrics: dict[str, Any] | None = Field(description="headline numbers of the audit (percent)")
    audit_available: bool = Field(description="whether the audit report exists (GET .../audit)")
    created_at: datetime
    ready_at: datetime | None
    destroyed_at: datetime | None = Field(
        description="when its checkpoint was deleted from storage (status destroyed): it held samples a newer "
        "version forgot, and the model's retention window had ended; sha256, size, lineage, metrics and audit "
        "stay; null while it exists"
    )
    destruction_reason: str | None = Field(description="why it was destroyed; null while it exists")


class VersionList(PageRead[VersionRead]):
    """A model's versions, by number."""
