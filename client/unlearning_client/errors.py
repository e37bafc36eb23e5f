"""The client's exceptions: one hierarchy, an ApiError subclass per HTTP status the service answers, each
carrying the RFC 9457 problem body, and str() that a person can read."""

from __future__ import annotations

from typing import Any

import httpx


class UnlearningError(Exception):
    """Base of every exception this package raises."""


class ApiError(UnlearningError):
    """The service answered with an error status; `problem` is its RFC 9457 body (or what stood in for it).

    status, title, detail, type and errors are the problem's fields; request_id is the service's id of the
    request, to quote when reporting it; retry_after is the wait in seconds the service asked for, if any.
    """

    def __init__(
        self,
        *,
        status: int,
        method: str,
        url: str,
        problem: dict[str, Any],
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.method = method
        self.url = url
        self.problem = problem
        self.retry_after = retry_after
        super().__init__(self._message())

    @property
    def title(self) -> str:
        return str(self.problem.get("title") or "")

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or "")

    @property
    def type(self) -> str:
        return str(self.problem.get("type") or "about:blank")

    @property
    def errors(self) -> list[dict[str, Any]]:
        """On 422: every invalid input, each with detail, location (e.g. ["body", "sample_ids", 3]) and type."""
        errors = self.problem.get("errors")
        return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []

    @property
    def request_id(self) -> str | None:
        value = self.problem.get("request_id")
        return str(value) if value is not None else None

    def _message(self) -> str:
        head = f"{self.status} {self.title}".rstrip()
        lines = [f"{head}: {self.detail}" if self.detail else head]
        for error in self.errors:
            where = ".".join(str(part) for part in error.get("location", []))
            lines.append(f"  {where}: {error.get('detail', '')}" if where else f"  {error.get('detail', '')}")
        context = f"{self.method} {self.url}"
        if self.request_id:
            context += f", request id {self.request_id}"
        if self.retry_after is not None:
            context += f", retry after {self.retry_after:g} s"
        lines[0] += f" ({context})"
        return "\n".join(lines)


class BadRequest(ApiError):
    """400: the body cannot be read (e.g. a malformed multipart upload)."""


class Unauthorized(ApiError):
    """401: no API key, or one the service does not know (or revoked)."""


class Forbidden(ApiError):
    """403: the API key lacks the scope the operation needs."""


class NotFound(ApiError):
    """404: no such resource in the caller's tenant (another tenant's resources answer 404 too)."""


class Conflict(ApiError):
    """409: the resource's state forbids it (e.g. cancelling a request that runs already)."""


class Gone(ApiError):
    """410: the resource existed and was destroyed on purpose (e.g. a checkpoint past its retention window)."""


class PayloadTooLarge(ApiError):
    """413: the upload exceeds the service's limit."""


class UnsupportedMediaType(ApiError):
    """415: the body's content type is not one the operation takes."""


class ValidationFailed(ApiError):
    """422: the request names something unusable; `errors` lists every invalid input."""


class RateLimited(ApiError):
    """429: too many requests; `retry_after` says when to try again (the client retries it when it may)."""


class ServerError(ApiError):
    """5xx: the service failed; the detail says why when it knows."""


class ServiceUnavailable(ServerError):
    """503: a dependency of the service (its database, the signing key) is unavailable for now."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


class ServiceUnreachable(UnlearningError):
    """No answer came: the connection failed, dropped or timed out (after the retries the call allowed)."""

    def __init__(self, *, method: str, url: str, cause: httpx.TransportError, attempts: int) -> None:
        self.method = method
        self.url = url
        self.cause = cause
        self.attempts = attempts
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        reason = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
        super().__init__(f"no answer from {method} {url}{tries} ({reason})")


class UnexpectedAnswer(UnlearningError):
    """A success answer whose body this client cannot read (a service newer in an incompatible way, or a proxy
    answering in its place)."""


class ChecksumMismatch(UnlearningError):
    """A download's bytes do not hash to the sha256 the service stated; nothing was kept."""


class SignatureError(UnlearningError, ValueError):
    """A signed document does not verify; the message says why, in one line."""


class CanonicalizationError(UnlearningError, ValueError):
    """A value has no RFC 8785 form (NaN, an infinity, an integer beyond 2**53 - 1, a lone surrogate, ...)."""


class WaitTimeout(UnlearningError, TimeoutError):
    """A wait for a resource to reach a final state ran out of time; the resource itself goes on."""


def error_for(response: httpx.Response, *, retry_after: float | None = None) -> ApiError:
    """The exception for an error response: the class of its status, with the problem body it carried (a body
    that is not JSON, e.g. a proxy's HTML page, stands in as the detail)."""
    problem: dict[str, Any]
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        problem = body
    else:
        text = response.text.strip()
        problem = {"title": response.reason_phrase, "status": response.status_code,
                   "detail": text.splitlines()[0][:300] if text else ""}  # fmt: skip
    problem.setdefault("title", response.reason_phrase)
    cls = _BY_STATUS.get(response.status_code) or (ServerError if response.status_code >= 500 else ApiError)
    return cls(
        status=response.status_code,
        method=response.request.method,
        url=str(response.request.url),
        problem=problem,
        retry_after=retry_after,
    )
