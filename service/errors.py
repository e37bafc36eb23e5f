"""RFC 9457 problem details: every non-2xx answer is application/problem+json.

Error classes carry their HTTP status; one handler renders them all, FastAPI's own errors included.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:unlearning:problem:"

log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    """One invalid input of a 422 answer."""

    detail: str = Field(description="what is wrong with this input")
    pointer: str | None = Field(default=None, description="JSON Pointer into the request body, e.g. '#/path'")
    location: list[str | int] = Field(
        description="where the input is: 'body', 'query', 'path' or 'header', then its name"
    )
    type: str = Field(description="machine-readable kind of error, e.g. 'missing', 'json_invalid'")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="URI identifying the kind of problem; 'about:blank' = just the HTTP status")
    title: str
    status: int
    detail: str
    instance: str = Field(description="the request path the problem occurred on")
    request_id: str | None = Field(default=None, description="quote this when reporting the problem")
    errors: list[FieldProblem] | None = Field(default=None, description="on 422: every invalid input")


class ProblemError(Exception):
    """Base of the errors the service raises on purpose; subclasses fix the status and the type."""

    status: ClassVar[int] = 500
    slug: ClassVar[str | None] = None  # None = the plain HTTP status ("about:blank")

    def __init__(
        self, detail: str, *, errors: list[FieldProblem] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug if self.slug else "about:blank"

    @property
    def title(self) -> str:
        if self.slug:
            return self.slug.replace("-", " ").capitalize()
        return HTTPStatus(self.status).phrase


class Unauthorized(ProblemError):
    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="unlearning"'})


class Forbidden(ProblemError):
    status = 403


class NotFound(ProblemError):
    status = 404


class Conflict(ProblemError):
    status = 409


class UnsupportedMediaType(ProblemError):
    status = 415


class Unprocessable(ProblemError):
    """The request is well-formed but names something unusable; errors say which input."""

    status = 422
    slug = "invalid-input"

    def __init__(self, detail: str, *, pointer: str | None = None, errors: list[FieldProblem] | None = None) -> None:
        if errors is None:
            location: list[str | int] = ["body", *pointer.removeprefix("#/").split("/")] if pointer else ["body"]
            errors = [FieldProblem(detail=detail, pointer=pointer, location=location, type=self.slug or "invalid")]
        super().__init__(detail, errors=errors)


class ServiceUnavailable(ProblemError):
    status = 503


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem_response(
    request: Request,
    *,
    status: int,
    detail: str,
    type_: str = "about:blank",
    title: str | None = None,
    errors: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    problem = Problem(
        type=type_,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=_request_id(request),
        errors=errors,
    )
    return JSONResponse(
        problem.model_dump(exclude_none=True), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def _render_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        status=exc.status,
        detail=exc.detail,
        type_=exc.type,
        title=exc.title,
        errors=exc.errors,
        headers=exc.headers,
    )


def _pointer(loc: tuple[Any, ...] | list[Any]) -> str | None:
    if not loc or loc[0] != "body":
        return None
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc[1:]]
    return "#/" + "/".join(parts)


def _field_problems(exc: RequestValidationError) -> list[FieldProblem]:
    problems = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        kind = error.get("type", "invalid")
        message = error.get("msg", "invalid value")
        if kind == "json_invalid":
            # loc is ["body", <character offset>]: no pointer can name a place in text that is not JSON
            cause = (error.get("ctx") or {}).get("error")
            position = f" at character {loc[1]}" if len(loc) > 1 else ""
            problems.append(
                FieldProblem(
                    detail=f"the body is not valid JSON{': ' + cause if cause else ''}{position}",
                    pointer=None,
                    location=["body"],
                    type=kind,
                )
            )
            continue
        # The offending input is never echoed: it may be large, binary, or a secret.
        problems.append(FieldProblem(detail=message, pointer=_pointer(loc), location=loc, type=kind))
    return problems


def _render_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = _field_problems(exc)
    summary = "; ".join(
        f"{'.'.join(str(p) for p in problem.location)}: {problem.detail}" for problem in problems[:5]
    )
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return problem_response(
        request,
        status=422,
        type_=PROBLEM_TYPE_BASE + "invalid-input",
        title="Invalid input",
        detail=f"the request is invalid: {summary}{more}",
        errors=problems,
    )


def _render_http_exception(request: Request, exc: Exception) -> JSONResponse:
    # Routing errors (unknown path 404, 405) and any HTTPException raised by FastAPI itself.
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).description
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    elif exc.status_code == 405:
        detail = f"method {request.method} is not allowed on {request.url.path}"
        allowed = _allowed_methods(request)
        if allowed:
            return problem_response(request, status=405, detail=detail, headers={"Allow": ", ".join(allowed)})
    return problem_response(request, status=exc.status_code, detail=detail, headers=exc.headers)


def _allowed_methods(request: Request) -> list[str]:
    # Starlette's 405 names the methods of the first route whose path matched; a path served by several
    # routes (GET and POST /v1/models) needs them all (RFC 9110: Allow lists what the target supports).
    routes = request.app.router.routes
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


def _render_integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # A unique constraint lost a race that the service's own checks could not see (two concurrent
    # requests creating the same name): the transaction was rolled back, nothing was written.
    log.warning("integrity error turned into 409", extra={"error": str(getattr(exc, "orig", exc))[:500]})
    return problem_response(
        request, status=409, detail="the request conflicts with a concurrent change; nothing was written, retry it"
    )


def _render_data_error(request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value the request carried that no schema bound catches: PostgreSQL stores no
    # NUL character in text or JSON (SQLite does), so a free-form string or config value can hold one. The
    # transaction was rolled back, nothing was written. The driver's first line says what (never the SQL).
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:300]
    log.warning("data error turned into 422", extra={"error": reason})
    errors = [FieldProblem(detail=reason, pointer=None, location=["body"], type="unstorable")]
    return _render_problem(
        request, Unprocessable(f"a value in the request cannot be stored: {reason}; nothing was written", errors=errors)
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _render_problem)
    app.add_exception_handler(RequestValidationError, _render_validation_error)
    app.add_exception_handler(StarletteHTTPException, _render_http_exception)
    app.add_exception_handler(IntegrityError, _render_integrity_error)
    app.add_exception_handler(DataError, _render_data_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting these statuses as problem documents in the OpenAPI schema."""
    return {
        status: {"model": Problem, "description": HTTPStatus(status).phrase} for status in sorted(statuses)
    }


def use_problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Move every error response of an OpenAPI schema under application/problem+json, where it is sent."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content")
                if status.isdigit() and int(status) >= 400 and content and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    return schema
