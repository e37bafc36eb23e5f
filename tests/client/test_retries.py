"""Which calls the client retries, how long it waits, and that a retried submission is the original request.

The two submissions after a commit run against the real server behind a transport that loses the server's
first answer (replaced by a 503, or a dropped connection); the rest fake the service with
httpx.MockTransport, because the service never answers 429 or 503 on purpose and never drops a connection.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.client.conftest import Served
from unlearning_client import (
    ApiError,
    AsyncClient,
    Client,
    RetryPolicy,
    ServiceUnavailable,
    ServiceUnreachable,
)
from unlearning_client.retry import IN_PROGRESS_TYPE, parse_retry_after

MODEL_ID = str(uuid.uuid4())
NOW = "2026-01-05T10:00:00Z"


def _request_body(**fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "model_id": MODEL_ID, "subject_request_id": None, "regulation": None,
        "due_at": None, "status": "queued", "sample_count": 2, "new_sample_count": 2, "already_forgotten_count": 0,
        "job_id": str(uuid.uuid4()), "version": None, "version_id": None, "error": None, "callback_url": None,
        "created_at": NOW, "updated_at": NOW, "completed_at": None, "duplicate_count": 0,
        "already_forgotten": {"count": 0, "listed": []}, **fields,
    }  # fmt: skip


def _job_body(**fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "model_id": MODEL_ID, "kind": "unlearn", "status": "queued", "phase": None,
        "percent": 0.0, "eta": None, "eta_seconds": None, "attempts": 0, "cancel_requested": False, "error": None,
        "parent_version": None, "result_version": None, "request_ids": [], "created_at": NOW, "started_at": None,
        "finished_at": None, **fields,
    }  # fmt: skip


def _problem(status: int, detail: str, **fields: Any) -> dict[str, Any]:
    return {"type": "about:blank", "title": "Problem", "status": status, "detail": detail, "instance": "/", **fields}


class Fake:
    """A scripted service: answers (httpx.Response or an exception to raise) in order; records every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, *, retry: RetryPolicy | None = None, sleeps: list[float] | None = None) -> Client:
        sleep: Callable[[float], None] = sleeps.append if sleeps is not None else lambda seconds: None
        return Client("http://service.test", "ulk_key", transport=httpx.MockTransport(self), retry=retry, sleep=sleep)


def _unavailable(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(503, json=_problem(503, "database unreachable"), headers=headers)


# ---- what is retried, and after how long ----


def test_a_503_with_retry_after_is_waited_for_and_retried_with_the_same_idempotency_key() -> None:
    body = _request_body()
    fake = Fake(_unavailable("7"), httpx.Response(202, json=body))
    sleeps: list[float] = []
    with fake.client(sleeps=sleeps) as api:
        accepted = api.submit_deletion_request(MODEL_ID, ["a", "b"])
    assert str(accepted.id) == body["id"]
    assert sleeps == [7.0]
    keys = [request.headers["idempotency-key"] for request in fake.requests]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert uuid.UUID(keys[0]).version == 4


def test_the_callers_idempotency_key_is_sent_on_every_try() -> None:
    fake = Fake(_unavailable("0"), _unavailable("0"), httpx.Response(202, json=_request_body()))
    with fake.client() as api:
        api.submit_deletion_request(MODEL_ID, ["a"], idempotency_key="ticket-4711")
    assert [r.headers["idempotency-key"] for r in fake.requests] == ["ticket-4711"] * 3


def test_a_429_on_a_read_is_retried() -> None:
    job = _job_body()
    fake = Fake(httpx.Response(429, json=_problem(429, "slow down"), headers={"Retry-After": "2"}),
                httpx.Response(200, json=job))  # fmt: skip
    sleeps: list[float] = []
    with fake.client(sleeps=sleeps) as api:
        assert str(api.get_job(job["id"]).id) == job["id"]
    assert sleeps == [2.0] and len(fake.requests) == 2


def test_a_409_request_in_progress_is_retried_until_the_first_answer_is_committed() -> None:
    in_progress = _problem(409, "still being handled; retry shortly", type=IN_PROGRESS_TYPE)
    fake = Fake(httpx.Response(409, json=in_progress), httpx.Response(202, json=_request_body()))
    with fake.client() as api:
        api.submit_deletion_request(MODEL_ID, ["a"])
    assert len(fake.requests) == 2


def test_a_post_without_an_idempotency_key_is_never_retried() -> None:
    fake = Fake(_unavailable("1"))
    with fake.client() as api, pytest.raises(ServiceUnavailable):
        api.register_dataset("d", "digits")
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500])
def test_other_error_answers_are_not_retried(status: int) -> None:
    fake = Fake(httpx.Response(status, json=_problem(status, "no")))
    with fake.client() as api, pytest.raises(ApiError) as raised:
        api.get_model(MODEL_ID)
    assert raised.value.status == status
    assert len(fake.requests) == 1


def test_retries_stop_after_max_attempts_and_raise_the_last_answer() -> None:
    fake = Fake(_unavailable("0"))
    with fake.client(retry=RetryPolicy(max_attempts=3)) as api, pytest.raises(ServiceUnavailable) as raised:
        api.get_model(MODEL_ID)
    assert len(fake.requests) == 3
    assert raised.value.retry_after == 0.0


def test_a_retry_after_beyond_the_policys_limit_is_raised_with_it_not_waited_for() -> None:
    fake = Fake(_unavailable("3600"))
    sleeps: list[float] = []
    with fake.client(sleeps=sleeps) as api, pytest.raises(ServiceUnavailable) as raised:
        api.get_model(MODEL_ID)
    assert raised.value.retry_after == 3600.0 and sleeps == [] and len(fake.requests) == 1


def test_without_retry_after_each_wait_is_drawn_below_a_doubling_bound() -> None:
    fake = Fake(_unavailable(), _unavailable(), _unavailable(), httpx.Response(200, json=_job_body()))
    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=4, backoff_base_s=0.5, backoff_max_s=1.5)
    with fake.client(retry=policy, sleeps=sleeps) as api:
        api.get_job(uuid.uuid4())
    assert len(sleeps) == 3
    assert all(0.0 <= wait <= bound for wait, bound in zip(sleeps, [0.5, 1.0, 1.5], strict=True))


def test_the_backoff_bound_doubles_per_attempt_up_to_its_cap_and_the_draw_starts_at_zero() -> None:
    policy = RetryPolicy(backoff_base_s=0.25, backoff_max_s=1.5)
    upper = [policy.backoff(n, uniform=lambda low, high: high) for n in range(1, 6)]
    assert upper == [0.25, 0.5, 1.0, 1.5, 1.5]
    assert policy.backoff(3, uniform=lambda low, high: low) == 0.0


def test_a_refused_connection_on_a_read_is_retried() -> None:
    job = _job_body()
    fake = Fake(httpx.ConnectError("connection refused"), httpx.Response(200, json=job))
    with fake.client() as api:
        assert str(api.get_job(job["id"]).id) == job["id"]
    assert len(fake.requests) == 2


def test_a_lost_connection_on_a_post_without_a_key_is_one_readable_error_after_one_try() -> None:
    fake = Fake(httpx.ReadError("connection reset by peer"))
    with fake.client() as api, pytest.raises(ServiceUnreachable) as raised:
        api.register_dataset("d", "digits")
    assert len(fake.requests) == 1
    assert str(raised.value) == (
        "no answer from POST http://service.test/v1/datasets (ReadError: connection reset by peer)"
    )


def test_a_service_that_stays_unreachable_says_how_often_it_was_tried() -> None:
    fake = Fake(httpx.ConnectError("connection refused"))
    with fake.client(retry=RetryPolicy(max_attempts=3)) as api, pytest.raises(ServiceUnreachable) as raised:
        api.health()
    assert len(fake.requests) == 3
    assert "after 3 attempts (ConnectError: connection refused)" in str(raised.value)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("Mon, 05 Jan 2026 10:00:30 GMT", 30.0), ("Mon, 05 Jan 2026 09:00:00 GMT", 0.0),
     ("soon", None), ("-5", None), (None, None)],
    ids=["seconds", "http date", "past date", "unreadable", "negative", "absent"],
)  # fmt: skip
def test_retry_after_is_read_as_seconds_or_as_an_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)) == seconds


def test_the_async_client_retries_a_503_with_the_same_idempotency_key() -> None:
    fake = Fake(_unavailable("1"), httpx.Response(202, json=_request_body()))
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    async def submit() -> None:
        async with AsyncClient("http://service.test", "k", transport=httpx.MockTransport(fake), sleep=record) as api:
            await api.submit_deletion_request(MODEL_ID, ["a"])

    asyncio.run(submit())
    assert sleeps == [1.0]
    assert fake.requests[0].headers["idempotency-key"] == fake.requests[1].headers["idempotency-key"]


# ---- a lost answer after the server committed: the retry gets the original request ----


class LosesFirstSubmission(httpx.BaseTransport):
    """Passes every call to the real server, but replaces the answer to the first deletion-request submission,
    which the server has committed by then, with `fault` (a 503 or a dropped connection)."""

    def __init__(self, fault: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.fault = fault
        self.lost: dict[str, Any] | None = None  # the answer the server gave and the client never saw
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method != "POST" or not request.url.path.endswith("/deletion-requests"):
            return response
        self.keys.append(request.headers["idempotency-key"])
        if self.lost is not None:
            return response
        response.read()
        response.close()
        self.lost = json.loads(response.content)
        if self.fault == "dropped":
            raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)
        return httpx.Response(503, headers={"Retry-After": "0"}, json=_problem(503, "bad gateway"), request=request)

    def close(self) -> None:
        self.inner.close()


def _requests_named(served: Served, subject_request_id: str) -> int:
    from service.db import make_engine

    engine = make_engine(served.database_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM deletion_request WHERE subject_request_id = :s")
            return int(conn.execute(query, {"s": subject_request_id}).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("fault", ["503", "dropped"])
def test_a_submission_whose_answer_was_lost_after_the_commit_is_retried_and_answers_the_original_request(
    served: Served, fresh_ids: Callable[[int], list[str]], fault: str
) -> None:
    transport = LosesFirstSubmission(fault)
    ticket = f"lost-answer-{fault}-{uuid.uuid4().hex[:8]}"
    with Client(served.url, served.key, transport=transport) as api:
        accepted = api.submit_deletion_request(served.model.id, fresh_ids(3), subject_request_id=ticket)
    assert transport.lost is not None
    assert str(accepted.id) == transport.lost["id"] and accepted.status == transport.lost["status"]
    assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
    assert _requests_named(served, ticket) == 1
