"""How routes are declared. Routers of the versioned API come from api_router, which adds API_PREFIX: they
declare their paths without it (operational routes such as /healthz and /metrics stay unversioned). Every
operation's OpenAPI operationId is its endpoint function's name in camelCase (operation_id).

JsonBodyRoute is the route class of routers whose operations take a JSON body: a body of another media type is
refused with 415, and one that is not UTF-8 is invalid JSON (422, as RFC 8259 has it), before FastAPI parses it.

Without it FastAPI validates the raw bytes of a text/plain or form body as if they were the object (422
"Input should be a valid dictionary") and answers a body that is not UTF-8 with an undocumented 400.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from service.errors import UnsupportedMediaType

API_PREFIX = "/v1"


def api_router(prefix: str = "", **kwargs: Any) -> APIRouter:
    """A router of the versioned API: `prefix` and its routes' paths are declared without API_PREFIX.

    The prefix goes on the router, not on include_router: FastAPI (0.165) leaves include_router's prefix out of
    the path of the route it puts in the request's scope, and metrics and logs label requests by that path.
    """
    return APIRouter(prefix=f"{API_PREFIX}{prefix}", **kwargs)


def operation_id(route: APIRoute) -> str:
    """The route's OpenAPI operationId: its endpoint function's name in camelCase (submit_deletion_request ->
    submitDeletionRequest), what generated clients name their methods. FastAPI's default appends the path
    and the method (submit_deletion_request_v1_models__model_id__deletion_requests_post)."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def is_json_media_type(content_type: str | None) -> bool:
    """Whether FastAPI reads a body of this Content-Type as JSON: application/json or application/*+json."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _check_json_body(request: Request, body: bytes) -> None:
    content_type = request.headers.get("content-type")
    if not is_json_media_type(content_type):
        sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        raise UnsupportedMediaType(
            f"this operation takes a JSON body: send Content-Type: application/json (got {sent})"
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        cause = f"it is not UTF-8 text (byte {exc.start} is 0x{body[exc.start]:02x})"
        error = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "ctx": {"error": cause}}
        raise RequestValidationError([error]) from None


class JsonBodyRoute(APIRoute):
    """An APIRoute that checks a JSON body's media type and encoding; routes without a JSON body are unchanged."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None or isinstance(self.body_field.field_info, params.Form):
            return handler

        async def check_then_handle(request: Request) -> Response:
            body = await request.body()  # cached on the request: FastAPI's own parse reads it again for free
            if body:  # an empty body is left to validation, which names the missing fields
                _check_json_body(request, body)
            return await handler(request)

        return check_then_handle
