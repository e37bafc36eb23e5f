"""HTTP route of erasure (read scope): a deletion request's signed erasure receipt."""

from __future__ import annotations

import uuid

from service.deps import ReaderTenant, SessionDep, SettingsDep
from service.erasure import receipts
from service.erasure.schemas import ErasureReceiptRead
from service.errors import problem_responses
from service.routing import api_router

router = api_router(tags=["deletion requests"], responses=problem_responses(401, 403))


@router.get(
    "/deletion-requests/{request_id}/receipt",
    response_model=ErasureReceiptRead,
    responses=problem_responses(404, 409, 422, 503),
)
def get_erasure_receipt(
    request_id: uuid.UUID, principal: ReaderTenant, session: SessionDep, settings: SettingsDep
) -> ErasureReceiptRead:
    """The erasure receipt, once no stored artefact holding the request's samples remains (superseded
    checkpoints, reference models, orphaned objects): what was destroyed and when, signed with the service's
    Ed25519 key over its summary's RFC 8785 form (verify with GET /v1/signing-key). 409 until then, naming
    what still holds them and when each is due."""
    signed = receipts.read_receipt(session, principal=principal, settings=settings, request_id=request_id)
    return ErasureReceiptRead(**signed)
