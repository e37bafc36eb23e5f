"""HTTP routes of audit evidence that belong to no model: the public key that signs certificates."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.audits import service
from service.audits.schemas import SigningKeyRead
from service.deps import SettingsDep
from service.errors import problem_responses

router = APIRouter(tags=["audits"])


@router.get("/v1/signing-key", response_model=SigningKeyRead, responses=problem_responses(503))
def get_signing_key(settings: SettingsDep, response: Response) -> SigningKeyRead:
    """The Ed25519 public key that verifies certificates; public, so that anyone holding a certificate can check it."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return service.signing_key_info(settings)
