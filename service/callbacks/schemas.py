"""Response bodies of the callback endpoints (the webhook secret and the delivery log), and the payloads of the
callbacks themselves, as the OpenAPI document declares them under webhooks (service.callbacks.webhooks)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from service.pagination import PageRead
from service.tables import RequestStatus, WebhookStatus


class WebhookSecretRead(BaseModel):
    secret: str = Field(description="'whsec_' + base64 of the raw HMAC key, as Standard Webhooks libraries take it")
    algorithm: Literal["HMAC-SHA256"]
    headers: list[str] = Field(description="the headers every callback carries")
    signed_content: str = Field(description="what the signature covers")


class WebhookDeliveryRead(BaseModel):
    """One callback message of a deletion request, or one redelivery of it, and how its sending went."""

    id: uuid.UUID
    message_id: str = Field(
        description="its webhook-id header: the same on every attempt and on every redelivery of the message"
    )
    event_type: str = Field(description="the payload's type, e.g. 'deletion_request.completed'")
    status: WebhookStatus = Field(
        description="pending (waiting for its first or next attempt), delivered (a 2xx answer), failed "
        "(attempts spent, the URL refused at delivery, or the receiver's 410 Gone disabled the request's callbacks)"
    )
    attempts: int = Field(description="POSTs made so far")
    last_status_code: int | None = Field(description="the HTTP status of the last attempt; null if no answer came")
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="when it is tried next; null unless pending")
    delivered_at: datetime | None
    last_error: str | None = Field(description="why the last attempt failed, or why it was not sent")
    redelivery_of: uuid.UUID | None = Field(
        description="the delivery of the message this one sends again (POST .../redeliver); null for the first"
    )
    created_at: datetime


class WebhookDeliveryList(PageRead[WebhookDeliveryRead]):
    """A deletion request's deliveries, oldest first."""


# ---- callback payloads: {type, timestamp, data}, as Standard Webhooks has it (service.callbacks.service.enqueue) ----


class RequestChangeData(BaseModel):
    """What every callback about a deletion request's state says."""

    request_id: uuid.UUID
    subject_request_id: str | None = Field(description="your own reference, as the request carried it")
    model_id: uuid.UUID
    status: RequestStatus = Field(description="the state the request entered")
    job_id: uuid.UUID | None = Field(description="the job that forgets its samples")
    version_id: uuid.UUID | None = Field(description="the first version without its samples, once completed")


class RequestReceivedData(RequestChangeData):
    sample_count: int = Field(description="distinct IDs submitted")
    new_sample_count: int = Field(description="IDs this request forgets (the rest were already forgotten)")
    already_forgotten_count: int
    duplicate_count: int = Field(description="IDs repeated in sample_ids, folded into one")
    sample_ids_sha256: str = Field(description="sha256 of the distinct IDs, sorted, one per line")
    regulation: Literal["gdpr", "ccpa"] | None
    received_at: datetime = Field(description="when the controller received the request: the due date counts from it")
    due_at: datetime | None
    idempotency_key: str | None = Field(description="the Idempotency-Key it was sent with")


class RequestMovedData(RequestChangeData):
    from_: RequestStatus = Field(alias="from", description="the state it left")


class RequestCompletedData(RequestMovedData):
    version: int | None = Field(default=None, description="the first version without its samples")
    guard_tripped: bool | None = Field(
        default=None,
        description="true when the utility guard stopped the job at a gentler point than its schedule's end",
    )
    nothing_to_do: bool | None = Field(
        default=None,
        description="true when every ID was already forgotten or claimed, so it completed on arrival (without "
        "version and guard_tripped)",
    )


class RequestEndedData(RequestMovedData):
    error: str | None = Field(description="why it failed or was cancelled; null when its caller cancelled it")


class ErasedArtefactRef(BaseModel):
    kind: Literal["model_version", "reference_set"]
    id: uuid.UUID


class RequestErasedData(BaseModel):
    request_id: uuid.UUID
    subject_request_id: str | None
    model_id: uuid.UUID
    erased_at: datetime = Field(description="when no stored artefact holding its samples remained")
    first_version_without: int = Field(description="the first version without its samples")
    destroyed: list[ErasedArtefactRef] = Field(description="what was destroyed; the receipt says when and why")
    receipt_url: str = Field(description="GET it for the signed erasure receipt")


class Callback(BaseModel):
    """A callback's JSON body. It is signed as Standard Webhooks describes (the webhook-* headers; the tenant's
    secret at GET /v1/webhook-secret), and deduplicated on webhook-id, the same on every retry and redelivery."""

    timestamp: datetime = Field(description="when the change was recorded")


class DeletionRequestReceived(Callback):
    type: Literal["deletion_request.received"]
    data: RequestReceivedData


class DeletionRequestQueued(Callback):
    type: Literal["deletion_request.queued"]
    data: RequestMovedData


class DeletionRequestRunning(Callback):
    type: Literal["deletion_request.running"]
    data: RequestMovedData


class DeletionRequestAuditing(Callback):
    type: Literal["deletion_request.auditing"]
    data: RequestMovedData


class DeletionRequestCompleted(Callback):
    type: Literal["deletion_request.completed"]
    data: RequestCompletedData


class DeletionRequestFailed(Callback):
    type: Literal["deletion_request.failed"]
    data: RequestEndedData


class DeletionRequestCancelled(Callback):
    type: Literal["deletion_request.cancelled"]
    data: RequestEndedData


class DeletionRequestErased(Callback):
    type: Literal["deletion_request.erased"]
    data: RequestErasedData
