"""HTTP routes of audit evidence that belong to no model: the public key that verifies certificates.

Like every /v1 route it needs an API key (any scope); a tenant hands the key on to whoever checks its
certificates, or they take it from `python -m service public-key`.
"""

from __future__ import annotations

from fastapi import Response

from service.audits import service
from service.audits.schemas import SigningKeyRead
from service.deps import ReaderTenant, SettingsDep
from service.errors import problem_responses
from service.routing import api_router

router = api_router(tags=["audits"], responses=problem_responses(401, 403))


@router.get("/signing-key", response_model=SigningKeyRead, responses=problem_responses(503))
def get_signing_key(principal: ReaderTenant, settings: SettingsDep, response: Response) -> SigningKeyRead:
    """The Ed25519 public key that verifies the service's certificates."""
    response.headers["Cache-Control"] = "private, max-age=300"
    return service.signing_key_info(settings)
