"""Deletion-request request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.tables import RequestStatus

SampleId = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class DeletionRequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_ids: list[SampleId] = Field(
        min_length=1,
        description="training-sample IDs of the model's dataset; duplicates are folded; at most the service's "
        "max_ids_per_request",
    )
    subject_request_id: str | None = Field(
        default=None, max_length=200, description="your own reference, e.g. the data-subject request's ticket"
    )
    regulation: Literal["gdpr", "ccpa"] | None = Field(
        default=None, description="sets the due date: gdpr one month, ccpa 45 days after receipt"
    )
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        description="https URL of a public host; receives a signed POST on every state change of the request",
    )


class DeletionRequestRead(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    subject_request_id: str | None
    regulation: str | None
    due_at: datetime | None
    status: RequestStatus
    sample_count: int = Field(description="distinct IDs submitted")
    new_sample_count: int = Field(description="IDs this request forgets (the rest were already forgotten)")
    already_forgotten_count: int = Field(description="IDs an earlier request had already forgotten or claimed")
    job_id: uuid.UUID | None = Field(description="the job that forgets its samples")
    version: int | None = Field(description="the first version without its samples")
    version_id: uuid.UUID | None
    guard_tripped: bool | None = Field(
        default=None,
        description="true when the utility guard stopped the job that forgot its samples: held-out accuracy "
        "would have fallen more than UNLEARN_GUARD_MAX_ACC_DROP points below the parent version's, so the "
        "request completed at the best point before that, a gentler one than the configured schedule's end "
        "(the version's metrics list every check); null until completed"
    )
    error: str | None = Field(description="why it failed")
    callback_url: str | None
    callbacks_disabled_at: datetime | None = Field(
        description="when the callback receiver answered 410 Gone: nothing more is sent to it for this request "
        "(its delivery log says what was not sent) until a redelivery with reenable=true; null while enabled"
    )
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class ClaimedElsewhere(BaseModel):
    sample_id: str
    request_id: uuid.UUID = Field(description="the earlier request that forgets it")
    version: int | None = Field(description="the version that forgot it; null while that request is in flight")


class AlreadyForgotten(BaseModel):
    count: int
    listed: list[ClaimedElsewhere] = Field(description="the first of them, in the order submitted (at most 20)")


class DeletionRequestAccepted(DeletionRequestRead):
    """The answer to a new request: 202 while its samples wait to be forgotten; 200 when every ID was
    already forgotten (or claimed by an earlier request) and nothing is left to do."""

    duplicate_count: int = Field(description="IDs repeated in sample_ids, folded into one")
    already_forgotten: AlreadyForgotten


class RequestEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int = Field(description="position in the service's tamper-evident event chain")
    type: str
    created_at: datetime
    actor: str
    data: dict[str, Any]
    hash: str


class RequestEventList(BaseModel):
    items: list[RequestEventRead]
