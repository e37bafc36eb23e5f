"""HTTP routes of the governance console under /console: sign-in and sign-out, and read-only HTML pages of the
signed-in key's tenant (left out of the OpenAPI document: they are pages for people, not the API)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from service.audits import service as audits_service
from service.audits.schemas import CertificateRead
from service.console import service
from service.console import session as cookies
from service.deps import SessionDep, SettingsDep
from service.erasure import receipts
from service.lifecycle.states import IN_FLIGHT
from service.pagination import MAX_PAGE_TOKEN_LENGTH
from service.erasure.schemas import ErasureReceiptRead
from service.errors import NotFound, ProblemError, Unauthorized
from service.suppression import service as suppression
from service.tables import RequestStatus, utcnow
from service.tenants import service as tenants
from service.tenants.service import Principal
from service.versions.endpoints import MAX_VERSION_NUMBER

HERE = Path(__file__).resolve().parent
# connect-src 'self': console.js fetches the running jobs' fragment, which default-src 'none' would block
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
SIGN_IN = "/console/sign-in"
# what the sign-in page says after a session ended; the query names one of these, never free text
SIGNED_OUT_MESSAGES = {
    "revoked": "Your API key was revoked or no longer exists: you have been signed out.",
    "scope": "Your API key no longer has the read scope: you have been signed out.",
    "expired": "Your session expired: sign in again.",
    "invalid": "Your session could not be read: sign in again.",
    "signed-out": "You have signed out.",
}
UNKNOWN_KEY = "This API key is unknown, revoked or lacks the read scope."
VersionNumber = Annotated[int, PathParam(ge=1, le=MAX_VERSION_NUMBER, description="the version's number")]
PageToken = Annotated[str | None, Query(max_length=MAX_PAGE_TOKEN_LENGTH)]


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _percent(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{float(value):.{digits}f}%"


@lru_cache(maxsize=1)
def _templates() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    environment.filters["when"] = _when
    environment.filters["percent"] = _percent
    environment.globals["statuses"] = [status.value for status in RequestStatus]
    return environment


def page(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    body = _templates().get_template(template).render(path=request.url.path, signed_in=True, **context)
    return HTMLResponse(body, status_code=status_code)


def _error_page(request: Request, status_code: int, title: str, detail: str, errors: list[str]) -> HTMLResponse:
    signed_in = request.cookies.get(cookies.COOKIE_NAME) is not None
    body = _templates().get_template("error.html").render(
        path=request.url.path, signed_in=signed_in, status_code=status_code, title=title, detail=detail, errors=errors
    )
    return HTMLResponse(body, status_code=status_code)


def _to_sign_in(request: Request, reason: str | None) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = {"next": target, **({"reason": reason} if reason else {})}
    response = RedirectResponse(f"{SIGN_IN}?{urlencode(query, quote_via=quote)}", status_code=303)
    if request.cookies.get(cookies.COOKIE_NAME) is not None:
        _clear_cookie(response)
    return response


def _clear_cookie(response: Response) -> None:
    response.delete_cookie(cookies.COOKIE_NAME, path=cookies.COOKIE_PATH, httponly=True, samesite="strict")


class ConsoleRoute(APIRoute):
    """A console route: errors become HTML pages (a 404 page, a 422 page naming the bad input) or, without a
    session, a redirect to sign-in; every answer carries the console's security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except cookies.SignedOut as exc:
                response = _to_sign_in(request, exc.reason)
            except ProblemError as exc:
                errors = [error.detail for error in exc.errors or []]
                response = _error_page(request, exc.status, exc.title, exc.detail, errors)
            except RequestValidationError as exc:
                errors = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
                response = _error_page(request, 422, "Invalid input", "The address holds a value this page cannot "
                                       "use.", errors)  # fmt: skip
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)  # the audit page keeps the stricter policy it is sent with
            return response

        return handle


def console_principal(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    """The signed-in key, checked against its row on every request (SignedOut: to the sign-in page)."""
    signed = cookies.decode(
        request.cookies.get(cookies.COOKIE_NAME), cookies.console_secret(settings), now=utcnow()
    )
    return cookies.principal_of(session, signed)


Reader = Annotated[Principal, Depends(console_principal)]

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)


# ---- signing in and out ----


@router.get("/sign-in")
def sign_in_form(request: Request, next: str | None = None, reason: str | None = None) -> HTMLResponse:
    message = SIGNED_OUT_MESSAGES.get(reason or "")
    return _sign_in_page(request, next_path=cookies.safe_next(next), message=message, error=None)


def _sign_in_page(request: Request, *, next_path: str, message: str | None, error: str | None,
                  status_code: int = 200) -> HTMLResponse:  # fmt: skip
    body = _templates().get_template("sign_in.html").render(
        path=request.url.path, signed_in=False, next_path=next_path, message=message, error=error
    )
    return HTMLResponse(body, status_code=status_code)


@router.post("/sign-in")
def sign_in(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    api_key: Annotated[str, Form(max_length=512)] = "",
    next: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    """Check the key (any scope that includes read) and set the session cookie; the key itself is not kept."""
    try:
        principal = tenants.authenticate(session, key=api_key.strip())
    except Unauthorized:
        principal = None
    if principal is None or not principal.allows("read"):
        return _sign_in_page(request, next_path=cookies.safe_next(next), message=None, error=UNKNOWN_KEY,
                             status_code=401)  # fmt: skip
    response = RedirectResponse(cookies.safe_next(next), status_code=303)
    response.set_cookie(
        cookies.COOKIE_NAME,
        cookies.encode(cookies.new_session(principal), cookies.console_secret(settings)),
        max_age=int(cookies.MAX_AGE.total_seconds()),
        path=cookies.COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/sign-out")
def sign_out() -> Response:
    response = RedirectResponse(f"{SIGN_IN}?reason=signed-out", status_code=303)
    _clear_cookie(response)
    return response


# ---- pages ----


@router.get("")
def console_root() -> Response:
    return RedirectResponse("/console/", status_code=303)


@router.get("/")
def overview(request: Request, principal: Reader, session: SessionDep) -> HTMLResponse:
    return page(request, "overview.html", overview=service.overview(session, principal=principal),
                in_flight=sorted(s.value for s in IN_FLIGHT))


@router.get("/fragments/jobs")
def jobs_fragment(request: Request, principal: Reader, session: SessionDep) -> HTMLResponse:
    """The running jobs' table alone, which console.js fetches every few seconds."""
    return page(request, "jobs_fragment.html", jobs=service.running_jobs(session, principal=principal),
                model_names=service.repository.model_names(session=session, tenant_id=principal.tenant_id))  # fmt: skip


@router.get("/requests-per-week.svg")
def requests_per_week_svg(principal: Reader, session: SessionDep) -> Response:
    return Response(service.requests_per_week_svg(session, principal=principal), media_type="image/svg+xml")


@router.get("/requests")
def list_requests(request: Request, principal: Reader, session: SessionDep, page_token: PageToken = None) -> HTMLResponse:
    params = {name: request.query_params.getlist(name) for name in request.query_params}
    query = service.request_query(params)
    listed = service.list_requests(session, principal=principal, query=query, page_token=page_token)
    filters = [(name, value) for name in service.REQUEST_FILTERS for value in params.get(name, []) if value != ""]
    next_url = None
    if listed.next_page_token is not None:
        next_url = "/console/requests?" + urlencode([*filters, ("page_token", listed.next_page_token)])
    return page(request, "requests.html", listing=listed, query=query, next_url=next_url,
                filtered=bool(filters))  # fmt: skip


@router.get("/requests/{request_id}")
def request_detail(
    request: Request, request_id: uuid.UUID, principal: Reader, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    detail = service.request_detail(session, principal=principal, request_id=request_id,
                                    database_url=settings.database_url)  # fmt: skip
    return page(request, "request.html", detail=detail)


@router.get("/requests/{request_id}/certificate.json", response_model=CertificateRead)
def download_certificate(
    request_id: uuid.UUID, principal: Reader, session: SessionDep, settings: SettingsDep, response: Response
) -> CertificateRead:
    """The same document as GET /v1/models/{id}/versions/{n}/certificate of the request's version."""
    signed = service.certificate(session, principal=principal, settings=settings, request_id=request_id)
    response.headers["Content-Disposition"] = f'attachment; filename="certificate-{request_id}.json"'
    return signed


@router.get("/requests/{request_id}/receipt.json", response_model=ErasureReceiptRead)
def download_receipt(
    request_id: uuid.UUID, principal: Reader, session: SessionDep, settings: SettingsDep, response: Response
) -> ErasureReceiptRead:
    """The same document as GET /v1/deletion-requests/{id}/receipt (409 page until the request is erased)."""
    signed = receipts.read_receipt(session, principal=principal, settings=settings, request_id=request_id)
    response.headers["Content-Disposition"] = f'attachment; filename="erasure-receipt-{request_id}.json"'
    return ErasureReceiptRead(**signed)


@router.get("/models")
def list_models(request: Request, principal: Reader, session: SessionDep, page_token: PageToken = None) -> HTMLResponse:
    listed = service.list_models(session, principal=principal, page_token=page_token)
    next_url = None if listed.next_page_token is None else "/console/models?" + urlencode(
        {"page_token": listed.next_page_token}
    )
    return page(request, "models.html", models=listed.items, next_url=next_url)


@router.get("/models/{model_id}")
def model_detail(
    request: Request, model_id: uuid.UUID, principal: Reader, session: SessionDep, page_token: PageToken = None
) -> HTMLResponse:
    detail = service.model_detail(session, principal=principal, model_id=model_id, page_token=page_token)
    next_url = None if detail.next_page_token is None else f"/console/models/{model_id}?" + urlencode(
        {"page_token": detail.next_page_token}
    )
    return page(request, "model.html", detail=detail, next_url=next_url)


@router.get("/models/{model_id}/evidence.svg")
def evidence_svg(model_id: uuid.UUID, principal: Reader, session: SessionDep) -> Response:
    return Response(service.evidence_svg(session, principal=principal, model_id=model_id), media_type="image/svg+xml")


@router.get("/models/{model_id}/versions/{number}/audit")
def audit_page(
    model_id: uuid.UUID, number: VersionNumber, principal: Reader, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """The stored audit page, sent with the policy the API sends it with (inline styles, no script at all)."""
    content = service.audit_page(session, principal=principal, settings=settings, model_id=model_id, number=number)
    return audits_service.audit_html_response(content)


@router.get("/models/{model_id}/forgotten-samples")
def forgotten_samples(
    request: Request,
    model_id: uuid.UUID,
    principal: Reader,
    session: SessionDep,
    sample_id: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")] = None,
    page_token: PageToken = None,
) -> HTMLResponse:
    params = {name: request.query_params.getlist(name) for name in request.query_params}
    query = service.suppression_query(params)
    searched = (sample_id or "").strip() or None
    listed = service.suppression_page(session, principal=principal, model_id=model_id, query=query,
                                      sample_id=searched, page_token=page_token)  # fmt: skip
    next_url = None
    if listed.next_page_token is not None:
        next_url = f"/console/models/{model_id}/forgotten-samples?" + urlencode(
            {"state": query.state, "page_token": listed.next_page_token}
        )
    csv_url = f"/console/models/{model_id}/forgotten-samples.csv?" + urlencode({"state": query.state})
    return page(request, "forgotten_samples.html", listing=listed, state=query.state, next_url=next_url,
                csv_url=csv_url)  # fmt: skip


@router.get("/models/{model_id}/forgotten-samples.csv")
def forgotten_samples_csv(
    request: Request, model_id: uuid.UUID, principal: Reader, session: SessionDep, settings: SettingsDep
) -> Response:
    params = {name: request.query_params.getlist(name) for name in request.query_params}
    query = service.suppression_query(params)
    chunks = suppression.export_csv(session, principal=principal, settings=settings, model_id=model_id, query=query)
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="forgotten-samples-{model_id}.csv"'})  # fmt: skip


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    if name not in STATIC:
        return _not_found_static(name)
    return Response(_static_bytes(name), media_type=STATIC[name])


def _not_found_static(name: str) -> Response:
    return Response(f"no console asset {name!r}", status_code=404, media_type="text/plain; charset=utf-8")


@lru_cache(maxsize=len(STATIC))
def _static_bytes(name: str) -> bytes:
    return (HERE / "static" / name).read_bytes()


@router.get("/{rest:path}")
def unknown_page(rest: str, principal: Reader) -> Response:
    raise NotFound(f"the console has no page at /console/{rest}")
