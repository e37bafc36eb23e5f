"""HTTP route of the tenant's webhook secret (admin scope), which verifies the callbacks it receives."""

from __future__ import annotations

from fastapi import Response

from service.callbacks.schemas import WebhookSecretRead
from service.callbacks.signing import WebhookSecretUnavailable, format_secret, master_secret, tenant_secret
from service.deps import AdminTenant, SettingsDep
from service.errors import ServiceUnavailable, problem_responses
from service.routing import api_router

router = api_router("/webhook-secret", tags=["callbacks"], responses=problem_responses(401, 403))


@router.get("", response_model=WebhookSecretRead, responses=problem_responses(503))
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
