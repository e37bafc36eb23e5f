"""HTTP routes of callbacks: the tenant's webhook secret (admin scope), which verifies the callbacks it receives,
and each deletion request's delivery log and redeliveries."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Response

from service.callbacks import service
from service.callbacks.schemas import WebhookDeliveryList, WebhookDeliveryRead, WebhookSecretRead
from service.callbacks.signing import WebhookSecretUnavailable, format_secret, master_secret, tenant_secret
from service.deps import AdminTenant, ReaderTenant, SessionDep, SettingsDep, WriterTenant
from service.errors import ServiceUnavailable, problem_responses
from service.pagination import CursorDep
from service.routing import api_router

router = api_router(tags=["callbacks"], responses=problem_responses(401, 403))


@router.get("/webhook-secret", response_model=WebhookSecretRead, responses=problem_responses(503))
def get_webhook_secret(principal: AdminTenant, settings: SettingsDep, response: Response) -> WebhookSecretRead:
    try:
        master = master_secret(settings)
    except WebhookSecretUnavailable as exc:
        raise ServiceUnavailable(f"callbacks cannot be signed: {exc}") from exc
    response.headers["Cache-Control"] = "no-store"  # the body holds a secret
    return WebhookSecretRead(
        secret=format_secret(tenant_secret(master, principal.tenant_id)),
        algorithm="HMAC-SHA256",
        headers=["webhook-id", "webhook-timestamp", "webhook-signature"],
        signed_content="{webhook-id}.{webhook-timestamp}.{body}",
    )


@router.get(
    "/deletion-requests/{request_id}/deliveries",
    response_model=WebhookDeliveryList,
    responses=problem_responses(404, 422),
)
def list_deliveries(
    request_id: uuid.UUID, principal: ReaderTenant, session: SessionDep, page: CursorDep
) -> WebhookDeliveryList:
    """The request's callback messages and redeliveries, oldest first: attempts, answers, errors."""
    return service.list_deliveries(session, principal=principal, request_id=request_id, page=page)


@router.post(
    "/deletion-requests/{request_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=WebhookDeliveryRead,
    responses=problem_responses(404, 409, 422),
)
def redeliver_webhook(
    request_id: uuid.UUID,
    delivery_id: uuid.UUID,
    principal: WriterTenant,
    session: SessionDep,
    reenable: Annotated[
        bool,
        Query(
            description="turn the request's callbacks back on if its receiver disabled them with 410 Gone; "
            "without it such a redelivery is refused with 409"
        ),
    ] = False,
) -> WebhookDeliveryRead:
    """Send a message again, whatever became of it: a new delivery with the same webhook-id (receivers
    deduplicate on it), signed afresh, retried like any other. 202: it is queued, not yet sent."""
    delivery = service.redeliver(
        session, principal=principal, request_id=request_id, delivery_id=delivery_id, reenable=reenable
    )
    return service.read_delivery(delivery)
