"""How the sender reads a receiver's answer, against a real HTTP receiver on SQLite and PostgreSQL: 410 Gone
disables the request's callback target, 429 and 503 honour Retry-After (bounded), other answers follow the
schedule, and an answer slower than the timeout is a failed attempt. Time is injected, never slept."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import format_datetime

from sqlalchemy import select

from service.callbacks import service
from service.db import session_factory
from service.settings import Settings
from service.tables import DeletionRequest, Event, WebhookStatus, utcnow
from tests.service.callbacks.conftest import Receiver
from tests.service.callbacks.rows import deliveries, enqueue, make_request
from tests.service.factories import TenantKey


def _t0() -> datetime:
    return utcnow().replace(microsecond=0) + timedelta(seconds=1)  # whole seconds, as HTTP dates are


def test_410_gone_disables_the_requests_callbacks_and_fails_its_pending_messages_unsent(
    database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    receiver.status = 410
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id, "deletion_request.completed")
    enqueue(database_url, request_id, "deletion_request.erased")
    factory = session_factory(database_url)
    t0 = _t0()

    assert service.deliver_due(factory, now=t0, settings=settings) == 1
    assert len(receiver.received) == 1  # the second message was never sent
    first, second = deliveries(database_url, request_id)
    assert (first.status, first.attempts, first.last_status_code) == (WebhookStatus.failed, 1, 410)
    assert first.last_error.startswith("HTTP 410 Gone: the receiver answered 410 Gone at ")
    assert (second.status, second.attempts, second.last_status_code) == (WebhookStatus.failed, 0, None)
    assert second.last_error.startswith("not sent: the receiver answered 410 Gone at ")
    with factory() as session:
        assert session.get(DeletionRequest, request_id).callback_disabled_at == t0
        [event] = session.scalars(select(Event).where(Event.type == "deletion_request.callbacks_disabled"))
        assert (event.subject_id, event.actor, event.data["status_code"]) == (str(request_id), "webhook-sender", 410)


def test_nothing_more_is_sent_to_a_target_that_answered_410(
    database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    receiver.status = 410
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    factory = session_factory(database_url)
    t0 = _t0()
    service.deliver_due(factory, now=t0, settings=settings)

    receiver.status = 204  # the receiver would accept now, but it asked for nothing more
    enqueue(database_url, request_id, "deletion_request.erased")
    assert service.deliver_due(factory, now=t0 + timedelta(days=3), settings=settings) == 0
    assert len(receiver.received) == 1
    _, later = deliveries(database_url, request_id)
    assert (later.status, later.attempts) == (WebhookStatus.failed, 0)
    disabled = f"the receiver answered 410 Gone at {t0.isoformat()}, so callbacks of this request are disabled"
    assert later.last_error == f"not sent: {disabled}"


def test_429_with_retry_after_in_seconds_sets_the_next_attempt(
    database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    receiver.status, receiver.headers = 429, {"Retry-After": "120"}
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    factory = session_factory(database_url)
    t0 = _t0()

    assert service.deliver_due(factory, now=t0, settings=settings) == 1
    [row] = deliveries(database_url, request_id)
    assert (row.status, row.last_status_code, row.last_error) == (WebhookStatus.pending, 429, "HTTP 429")
    assert row.next_attempt_at == t0 + timedelta(seconds=120)  # not the schedule's 10 s
    assert service.deliver_due(factory, now=t0 + timedelta(seconds=119), settings=settings) == 0
    assert service.deliver_due(factory, now=t0 + timedelta(seconds=120), settings=settings) == 1


def test_503_with_retry_after_as_an_http_date_sets_the_next_attempt(
    database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    t0 = _t0()
    receiver.status, receiver.headers = 503, {"Retry-After": format_datetime(t0 + timedelta(hours=2), usegmt=True)}
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)

    service.deliver_due(session_factory(database_url), now=t0, settings=settings)
    [row] = deliveries(database_url, request_id)
    assert (row.status, row.last_status_code) == (WebhookStatus.pending, 503)
    assert row.next_attempt_at == t0 + timedelta(hours=2)


def test_a_retry_after_past_the_maximum_wait_is_cut_to_it(
    database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    receiver.status, receiver.headers = 503, {"Retry-After": str(7 * 86400)}
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    t0 = _t0()
    bounded = settings.model_copy(update={"webhook_retry_after_max_seconds": 3600.0})

    service.deliver_due(session_factory(database_url), now=t0, settings=bounded)
    [row] = deliveries(database_url, request_id)
    assert row.next_attempt_at == t0 + timedelta(hours=1)


def test_retry_after_on_another_answer_is_ignored_for_the_schedule(
    database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    receiver.status, receiver.headers = 500, {"Retry-After": "120"}
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    t0 = _t0()

    service.deliver_due(session_factory(database_url), now=t0, settings=settings)
    [row] = deliveries(database_url, request_id)
    assert row.next_attempt_at == t0 + timedelta(seconds=10)  # the schedule's first delay


def test_a_429_without_retry_after_follows_the_schedule(
    database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    receiver.status = 429
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    t0 = _t0()

    service.deliver_due(session_factory(database_url), now=t0, settings=settings)
    [row] = deliveries(database_url, request_id)
    assert row.next_attempt_at == t0 + timedelta(seconds=10)


def test_an_answer_slower_than_the_timeout_is_a_failed_attempt_retried_on_the_schedule(
    database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    receiver.answering.clear()  # it reads the POST and holds its answer back
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    t0 = _t0()
    impatient = settings.model_copy(update={"webhook_timeout_seconds": 0.2})

    assert service.deliver_due(session_factory(database_url), now=t0, settings=impatient) == 1
    [row] = deliveries(database_url, request_id)
    assert len(receiver.received) == 1
    assert (row.status, row.attempts, row.last_status_code) == (WebhookStatus.pending, 1, None)
    assert row.last_error.startswith("ReadTimeout")
    assert row.next_attempt_at == t0 + timedelta(seconds=10)
