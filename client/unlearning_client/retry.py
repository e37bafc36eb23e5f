"""When a call is tried again, and after how long: exponential backoff with full jitter, Retry-After honoured.

Only idempotent calls are retried: GET and DELETE, and POSTs that carry an Idempotency-Key (the service
answers a repeat of the same key and body with the first answer, never a second request). A POST without one
(registering a dataset or a model) fails at once, so nothing is ever created twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from unlearning_client.errors import ApiError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# the service's answer when a request with the same Idempotency-Key is still being committed: its detail
# says "retry shortly to get its answer"
IN_PROGRESS_TYPE = "urn:unlearning:problem:request-in-progress"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently idempotent calls are retried.

    The n-th retry waits a random time in [0, min(backoff_max_s, backoff_base_s * 2**(n-1))] ("full
    jitter", so clients that failed together do not come back together), or the Retry-After the service
    sent. A Retry-After longer than max_retry_after_s is not waited for: the error is raised with its
    retry_after, for the caller to schedule.
    """

    max_attempts: int = 4  # tries in all, the first included; 1 = never retry
    backoff_base_s: float = 0.25
    backoff_max_s: float = 8.0
    max_retry_after_s: float = 60.0
    retry_statuses: frozenset[int] = frozenset({429, 503})

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("backoff_base_s, backoff_max_s and max_retry_after_s must not be negative")

    def backoff(self, attempt: int, *, uniform: Callable[[float, float], float] = random.uniform) -> float:
        """The wait after failed attempt number `attempt` (1 = the first) when the service named none."""
        return uniform(0.0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))

    def delay(
        self,
        failure: Exception,
        *,
        attempt: int,
        idempotent: bool,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> float | None:
        """Seconds to wait before trying again after `failure` ended attempt number `attempt`; None: give up."""
        if not idempotent or attempt >= self.max_attempts:
            return None
        if isinstance(failure, httpx.TransportError):
            return self.backoff(attempt, uniform=uniform)
        if not isinstance(failure, ApiError) or not self._retryable(failure):
            return None
        if failure.retry_after is None:
            return self.backoff(attempt, uniform=uniform)
        return failure.retry_after if failure.retry_after <= self.max_retry_after_s else None

    def _retryable(self, error: ApiError) -> bool:
        return error.status in self.retry_statuses or (error.status == 409 and error.type == IN_PROGRESS_TYPE)


NO_RETRIES = RetryPolicy(max_attempts=1)


def is_idempotent(method: str, headers: httpx.Headers) -> bool:
    return method.upper() in IDEMPOTENT_METHODS or (method.upper() == "POST" and "idempotency-key" in headers)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delay-seconds or an HTTP date (RFC 9110 section 10.2.3); a date in
    the past is 0; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" in the date: RFC 9110 dates are GMT anyway
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
