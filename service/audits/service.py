"""Serving audit evidence: the signed certificate of a report, and the headers the HTML page is sent with."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from fastapi.responses import HTMLResponse, Response

from service.audits import certificate
from service.audits.schemas import CertificateRead, JwkRead, SampleEvidenceList, SigningKeyRead
from service.errors import Conflict, NotFound, ServiceUnavailable
from service.settings import Settings

# The page is self-contained (inline CSS, the PNG as a data URI) and runs no script: a policy that forbids
# everything else keeps a value that slipped past escaping from doing anything, and keeps the page from
# being framed by another site.
AUDIT_HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def audit_html_response(page: str | bytes) -> HTMLResponse:
    """The audit report page (unlearning.audit.report.render_html) as a response with a locked-down CSP."""
    content = page.decode("utf-8") if isinstance(page, bytes) else page
    return HTMLResponse(content, headers=AUDIT_HTML_HEADERS)


def _key(settings: Settings) -> Any:
    try:
        return certificate.signing_key(settings)
    except certificate.SigningKeyUnavailable as exc:
        raise ServiceUnavailable(f"certificates are unavailable: {exc}") from exc


def signing_key_info(settings: Settings) -> SigningKeyRead:
    key = _key(settings)
    return SigningKeyRead(
        algorithm=certificate.ALGORITHM,
        public_key=certificate.public_key_b64(key),
        key_id=certificate.key_id(key),
        jwk=JwkRead(**certificate.public_jwk(key)),
    )


def certificate_of(report: dict[str, Any], settings: Settings, *, issued_at: datetime | None = None) -> CertificateRead:
    """The certificate of a version's stored report, signed now (503 when no signing key is usable; 409 when
    the report cannot be certified, e.g. it holds a number RFC 8785 cannot represent).

    Signing on demand keeps the key out of the ledger; issued_at says when it was signed, and report_sha256
    ties it to the report stored with the version.
    """
    try:
        summary = certificate.summary_of(report, issued_at=issued_at)
        signed = certificate.sign(summary, _key(settings))
    except certificate.Uncertifiable as exc:
        raise Conflict(f"no certificate can be signed for this version's audit report: {exc}") from exc
    return CertificateRead(**signed)


CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
SAMPLE_COLUMNS = ("id", "set", "score", "p_value", "indistinguishable")


def sample_evidence(report: dict[str, Any]) -> SampleEvidenceList:
    """The report's per-sample evidence; 404 for a report written before per-sample evidence existed."""
    if "per_sample" not in report:
        raise NotFound(f"this version's audit (schema {report.get('schema')}) predates per-sample evidence")
    context, found = report["context"], report["evidence"]
    return SampleEvidenceList(
        model_id=str(context.get("model_id")),
        version=context.get("version"),
        score=found["score"],
        score_description=found["score_description"],
        alpha=found["alpha"],
        samples=report["per_sample"],
    )


def sample_evidence_csv(report: dict[str, Any]) -> Response:
    """The same rows as CSV, one per forgotten sample, for spreadsheets and data-governance imports."""
    listing = sample_evidence(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SAMPLE_COLUMNS)
    for row in listing.samples:
        writer.writerow([row.id, row.set, repr(row.score), repr(row.p_value), "true" if row.indistinguishable else "false"])
    filename = f"audit-samples-{listing.model_id}-v{listing.version}.csv"
    return Response(buffer.getvalue(), media_type=CSV_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip
