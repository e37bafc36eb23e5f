"""Deletion-request request and response bodies."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from service.pagination import PageRead
from service.tables import RequestStatus, utcnow

SampleId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# How far ahead of this service's clock a received_at may be: the controller's clock, not a date in the future.
RECEIVED_AT_SKEW = timedelta(seconds=60)
EARLIEST_RECEIVED_AT = datetime(1970, 1, 1, tzinfo=UTC)


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00, which is in year 0 in UTC
        raise ValueError("the date-time is out of range") from None


_RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339_text(value: Any) -> Any:
    # pydantic would also read a number, or a numeric string such as "0.5", as Unix seconds: an instant here is
    # written the one way the OpenAPI document says (format date-time)
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339_START.match(value):
        raise ValueError("expected an RFC 3339 date-time with a time zone, e.g. 2026-12-02T09:30:00Z")
    return value


# An instant: RFC 3339 with a time zone (a date-time without one is refused), held in UTC.
Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_utc)]


class DeletionRequestCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "sample_ids": ["17", "42", "1337"],
                    "subject_request_id": "ticket-4711",
                    "regulation": "gdpr",
                    "received_at": "2026-11-30T09:30:00Z",
                    "callback_url": "https://hooks.example.com/unlearning",
                }
            ]
        },
    )

    sample_ids: list[SampleId] = Field(
        min_length=1,
        description="training-sample IDs of the model's dataset; duplicates are folded; at most the service's "
        "max_ids_per_request",
    )
    subject_request_id: str | None = Field(
        default=None, max_length=200, description="your own reference, e.g. the data-subject request's ticket"
    )
    regulation: Literal["gdpr", "ccpa"] | None = Field(
        default=None, description="sets the due date: gdpr one month, ccpa 45 days after received_at"
    )
    received_at: Instant | None = Field(
        default=None,
        description="when the controller received the data subject's request, RFC 3339 with a time zone; the "
        "regulation's due date counts from it. Not in the future (a clock up to 60 s ahead of this service's is "
        "allowed) and not before 1970; omitted: when this service receives this request",
        examples=["2026-05-04T09:30:00Z"],
    )
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        description="https URL of a public host; receives a signed POST on every state change of the request",
    )

    @field_validator("received_at", mode="before")
    @classmethod
    def _rfc3339_text(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError("received_at is an RFC 3339 date-time string with a time zone, e.g. 2026-05-04T09:30:00Z")
        return value

    @field_validator("received_at")
    @classmethod
    def _in_the_past(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        now = utcnow()
        if value > now + RECEIVED_AT_SKEW:
            raise ValueError(
                f"received_at {value.isoformat()} is in the future (this service's clock reads "
                f"{now.isoformat(timespec='seconds')}): it is when the controller received the request"
            )
        if value < EARLIEST_RECEIVED_AT:
            raise ValueError(f"received_at {value.isoformat()} is before 1970")
        return value


class DeletionRequestRead(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    subject_request_id: str | None
    regulation: str | None
    received_at: datetime = Field(
        description="when the controller received the data subject's request (the body's received_at, else this "
        "service's receipt): the due date counts from it"
    )
    due_at: datetime | None
    overdue: bool = Field(
        description="the due date has passed and the request is still in flight (received, queued, running or "
        "auditing). Completed, failed, rejected and cancelled requests are final and never overdue: a failed "
        "one's samples are sent again in a new request with the same received_at, which keeps the clock"
    )
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
    erased_at: datetime | None = Field(
        default=None,
        description="when no stored artefact holding its samples remained (superseded checkpoints, the original "
        "included, and reference models destroyed once the model's retention window ended); its signed erasure "
        "receipt is then at receipt_url; null until then",
    )
    receipt_url: str | None = Field(
        default=None, description="GET it for the signed erasure receipt (a JSON document); null until erased"
    )


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


class DeletionRequestList(PageRead[DeletionRequestRead]):
    """The tenant's deletion requests that pass the filters, in the order asked for."""


class DeletionRequestQuery(BaseModel):
    """The filters (all must hold) and the order of GET /v1/deletion-requests, as query parameters."""

    model_id: uuid.UUID | None = Field(default=None, description="only this model's requests")
    status: list[RequestStatus] = Field(
        default_factory=list, description="only requests in one of these states; repeat it for several"
    )
    subject_request_id: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\x00]*$", examples=["ticket-4711"],
        description="only requests carrying this reference of yours (exact match)",
    )  # fmt: skip
    regulation: Literal["gdpr", "ccpa"] | None = Field(default=None, description="only requests under this regulation")
    overdue: bool | None = Field(
        default=None,
        description="true: only overdue requests (due date passed, still in flight); false: only the others",
    )
    received_after: Instant | None = Field(
        default=None,
        description="only requests the controller received at or after this instant (RFC 3339)",
        examples=["2026-11-01T00:00:00Z"],
    )
    received_before: Instant | None = Field(
        default=None, description="only requests the controller received before this instant (RFC 3339)"
    )
    created_after: Instant | None = Field(
        default=None,
        description="only requests this service received at or after this instant (RFC 3339)",
        examples=["2026-11-01T00:00:00Z"],
    )
    created_before: Instant | None = Field(
        default=None, description="only requests this service received before this instant (RFC 3339)"
    )
    sort: Literal["created_at", "received_at", "due_at"] = Field(
        default="created_at",
        description="created_at: this service's receipt; received_at: the controller's; due_at: the due date "
        "(requests without one come last in either order)",
    )
    order: Literal["asc", "desc"] = Field(default="desc", description="desc: newest or latest first")

    def filters(self) -> dict[str, Any]:
        return self.model_dump(exclude={"sort", "order"})
