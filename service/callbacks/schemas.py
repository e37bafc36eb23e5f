"""Response bodies of the callback endpoints: the webhook secret and the delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from service.pagination import PageRead
from service.tables import WebhookStatus


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
