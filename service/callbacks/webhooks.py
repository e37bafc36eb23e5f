"""The callbacks, declared as the OpenAPI document's webhooks: one POST per event type the service sends to a
deletion request's callback_url, with its payload and the Standard Webhooks headers. Declarations only: the
service never serves these routes; service.callbacks.service sends the messages.

No `from __future__ import annotations` here: each receiver's body annotation is the payload class itself,
which FastAPI reads from the function's signature.
"""

from collections.abc import Callable
from typing import Annotated, get_args

from fastapi import APIRouter, Header
from pydantic import BaseModel

from service.callbacks.schemas import (
    DeletionRequestAuditing,
    DeletionRequestCancelled,
    DeletionRequestCompleted,
    DeletionRequestErased,
    DeletionRequestFailed,
    DeletionRequestQueued,
    DeletionRequestReceived,
    DeletionRequestRunning,
)
from service.routing import operation_id

# (payload, when it is sent), in the order a request's life sends them
CALLBACKS: tuple[tuple[type[BaseModel], str], ...] = (
    (DeletionRequestReceived, "The request was recorded (the first callback; the 202 answer holds the same)."),
    (DeletionRequestQueued, "A job will forget its samples."),
    (DeletionRequestRunning, "A worker started the job."),
    (DeletionRequestAuditing, "The new version is stored; the worker audits it."),
    (DeletionRequestCompleted, "A ready version excludes its samples (or every ID was already forgotten)."),
    (DeletionRequestFailed, "The job failed, or was cancelled while it ran; its samples were released."),
    (DeletionRequestCancelled, "It was cancelled before its job started; its samples were released."),
    (
        DeletionRequestErased,
        "No stored artefact holding its samples remains (the model's retention window ended and the erasure "
        "sweep destroyed them): its signed erasure receipt is at receipt_url.",
    ),
)

WebhookId = Annotated[
    str,
    Header(description="the message's id, the same on every retry and redelivery: deduplicate on it",
           examples=["msg_2b1f9c1e8a0d4c5fb3e0a7d9c6e4f812"]),
]  # fmt: skip
WebhookTimestamp = Annotated[
    str,
    Header(description="Unix seconds when this attempt was signed; refuse one far from your clock (replays)",
           examples=["1764662400"]),
]  # fmt: skip
WebhookSignature = Annotated[
    str,
    Header(
        description='"v1," + base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}" with the raw bytes of '
        "the tenant's secret (GET /v1/webhook-secret, whsec_ + base64); several signatures are separated by spaces",
        examples=["v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="],
    ),
]

# what the sender makes of the receiver's answer (service.callbacks.service)
ANSWERS = {
    204: {"description": "any 2xx answer: delivered"},
    410: {"description": "Gone: nothing more is sent for this request, until a redelivery with reenable=true"},
    429: {"description": "the next attempt waits as long as Retry-After says (seconds or an HTTP date; a day at most)"},
    503: {"description": "as 429"},
    "4XX": {"description": "retried on the schedule (by default 10 attempts over about 3 days, with jitter), as is "
            "no answer within the timeout"},
    "5XX": {"description": "retried on the schedule"},
}


def event_type(payload: type[BaseModel]) -> str:
    """The type a payload class declares, e.g. deletion_request.completed."""
    (name,) = get_args(payload.model_fields["type"].annotation)
    return name


def _receiver(payload: type[BaseModel]) -> Callable[..., None]:
    def receive(
        body: payload,  # type: ignore[valid-type]
        webhook_id: WebhookId,
        webhook_timestamp: WebhookTimestamp,
        webhook_signature: WebhookSignature,
    ) -> None:
        """What a receiver at the request's callback_url is sent (a declaration: the service serves no such route)."""

    return receive


def webhooks_router() -> APIRouter:
    """The webhooks as routes for FastAPI's `webhooks`: each named for its event type, which is also the
    operationId's source (deletion_request.completed -> deletionRequestCompleted)."""
    router = APIRouter(generate_unique_id_function=operation_id)
    for payload, when in CALLBACKS:
        name = event_type(payload)
        router.add_api_route(
            name, _receiver(payload), methods=["POST"], status_code=204, name=name.replace(".", "_"),
            summary=f"{name} callback", description=when, responses=ANSWERS, tags=["callbacks"],
        )  # fmt: skip
    return router
