"""HTTP routes of model versions (read scope, the caller's tenant): list, read, download the checkpoint, and
the audit evidence: the report as JSON and as a page, and its signed certificate."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Header, Path, Response
from fastapi.responses import HTMLResponse, StreamingResponse

from service.audits import service as audits
from service.audits.schemas import AuditReport, CertificateRead, SampleEvidenceList
from service.deps import ReaderTenant, SessionDep, SettingsDep
from service.errors import problem_responses
from service.pagination import CursorDep
from service.routing import api_router
from service.versions import service
from service.versions.schemas import VersionList, VersionRead

router = api_router("/models/{model_id}/versions", tags=["versions"], responses=problem_responses(401, 403))

SAFETENSORS_MEDIA_TYPE = "application/octet-stream"
# ModelVersion.number is an INTEGER column: 32 bits on PostgreSQL (and sqlite3 cannot bind 2**63 at all)
MAX_VERSION_NUMBER = 2**31 - 1
VersionNumber = Annotated[
    int, Path(ge=1, le=MAX_VERSION_NUMBER, description="the version's number; 1 = the registered original")
]


@router.get("", response_model=VersionList, responses=problem_responses(404, 422))
def list_versions(model_id: uuid.UUID, principal: ReaderTenant, session: SessionDep, page: CursorDep) -> VersionList:
    return service.list_versions(session, principal=principal, model_id=model_id, page=page)


@router.get("/{number}", response_model=VersionRead, responses=problem_responses(404, 422))
def get_version(
    model_id: uuid.UUID, number: VersionNumber, principal: ReaderTenant, session: SessionDep
) -> VersionRead:
    version = service.get_version(session, principal=principal, model_id=model_id, number=number)
    return service.read_versions(session, [version])[0]


@router.get(
    "/{number}/checkpoint",
    response_class=StreamingResponse,
    responses={
        200: {"content": {SAFETENSORS_MEDIA_TYPE: {}}, "description": "the safetensors file; ETag = its sha256"},
        304: {"description": "If-None-Match named this checkpoint's ETag: the caller's copy is current"},
        **problem_responses(404, 409, 410, 422, 500),
    },
)
def download_checkpoint(
    model_id: uuid.UUID,
    number: VersionNumber,
    principal: ReaderTenant,
    session: SessionDep,
    settings: SettingsDep,
    if_none_match: Annotated[str | None, Header(description="ETags the caller already holds")] = None,
) -> Response:
    version = service.get_version(session, principal=principal, model_id=model_id, number=number)
    service.check_not_destroyed(version)  # 410 before 304: a copy the caller holds is of a destroyed checkpoint
    etag = f'"{version.sha256}"'
    # Versions are immutable once ready, so the content behind an ETag never changes.
    headers = {"ETag": etag, "Cache-Control": "private, max-age=31536000, immutable"}
    if version.sha256 is not None and _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    chunks = service.checkpoint_chunks(settings, version)
    headers["Content-Length"] = str(version.size_bytes)
    headers["Content-Disposition"] = f'attachment; filename="model-{model_id}-v{number}.safetensors"'
    return StreamingResponse(chunks, media_type=SAFETENSORS_MEDIA_TYPE, headers=headers)


@router.get("/{number}/audit", response_model=AuditReport, responses=problem_responses(404, 422))
def get_audit(
    model_id: uuid.UUID, number: VersionNumber, principal: ReaderTenant, session: SessionDep
) -> dict[str, Any]:
    """The audit report (JSON, schema unlearning.audit.report/2, or /1 for reports written before per-sample
    evidence), exactly as stored: a certificate's report_sha256 is the sha256 of its RFC 8785 form."""
    return service.audit_of(service.get_version(session, principal=principal, model_id=model_id, number=number))


@router.get(
    "/{number}/audit.html",
    # Response, not HTMLResponse: FastAPI would otherwise document the problem answers as text/html too
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "the report with its plots"},
               **problem_responses(404, 422, 500)},
)  # fmt: skip
def get_audit_page(
    model_id: uuid.UUID, number: VersionNumber, principal: ReaderTenant, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    version = service.get_version(session, principal=principal, model_id=model_id, number=number)
    return audits.audit_html_response(service.audit_page(settings, version))


@router.get("/{number}/audit/samples", response_model=SampleEvidenceList, responses=problem_responses(404, 422))
def get_audit_samples(
    model_id: uuid.UUID, number: VersionNumber, principal: ReaderTenant, session: SessionDep
) -> SampleEvidenceList:
    """Every sample forgotten up to this version, with its membership score, its p-value against never-seen
    data and whether it looks never seen (the report's per_sample list)."""
    version = service.get_version(session, principal=principal, model_id=model_id, number=number)
    return audits.sample_evidence(service.audit_of(version))


@router.get(
    "/{number}/audit/samples.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "id,set,score,p_value,indistinguishable"},
               **problem_responses(404, 422)},
)  # fmt: skip
def get_audit_samples_csv(
    model_id: uuid.UUID, number: VersionNumber, principal: ReaderTenant, session: SessionDep
) -> Response:
    version = service.get_version(session, principal=principal, model_id=model_id, number=number)
    return audits.sample_evidence_csv(service.audit_of(version))


@router.get(
    "/{number}/certificate", response_model=CertificateRead, responses=problem_responses(404, 409, 422, 503)
)
def get_certificate(
    model_id: uuid.UUID, number: VersionNumber, principal: ReaderTenant, session: SessionDep, settings: SettingsDep
) -> CertificateRead:
    """The audit's summary signed with the service's Ed25519 key over its RFC 8785 canonical JSON (verify with
    GET /v1/signing-key); 409 when the report holds a value RFC 8785 cannot represent."""
    version = service.get_version(session, principal=principal, model_id=model_id, number=number)
    return audits.certificate_of(service.audit_of(version), settings)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates
