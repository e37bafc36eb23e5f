"""Callbacks of deletion requests: queued in the caller's transaction, sent later with retries, as Standard
Webhooks describes.

enqueue() only adds an outbox row, so a callback exists exactly when the state change it reports was
committed. deliver_due() claims due rows, POSTs each outside any transaction (httpx, no redirects, to the
address the SSRF guard just approved, settings.webhook_timeout_seconds per attempt), and records the outcome:
- 2xx: delivered.
- 410 Gone: the receiver wants no more callbacks. The request's callback target is disabled
  (deletion_request.callback_disabled_at, an event in the chain), this message and every pending one of the
  request end as failed with the reason, and later ones are recorded as failed without being sent. Only a
  redelivery asked for with reenable=true turns the target back on.
- 429 or 503 with a Retry-After (seconds or an HTTP date): the next attempt is that far away, at most
  settings.webhook_retry_after_max_seconds; without a readable one, the schedule's next delay.
- anything else (other statuses, timeouts, connection errors): retried after the schedule's next delay
  (settings.webhook_retry_delays_seconds, each jittered by +/- settings.webhook_retry_jitter), and failed
  when the schedule is spent.
The request's own state is never touched: a failing callback never fails a request. Delivery is at least
once (a sender that dies mid-POST leaves the row to be claimed again after CLAIM_LEASE); receivers
deduplicate on webhook-id, which is the same on every attempt and on every redelivery of the message.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import random
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service.callbacks import repository
from service.callbacks.schemas import WebhookDeliveryList, WebhookDeliveryRead
from service.callbacks.signing import headers, master_secret, tenant_secret
from service.callbacks.urls import CallbackUrlError, CallbackUrlUnresolvable, CheckedUrl, check_callback_url
from service.db import session_factory as make_session_factory
from service.errors import Conflict, NotFound
from service.events import service as events
from service.pagination import Cursor
from service.settings import Settings, get_settings
from service.tables import DeletionRequest, WebhookDelivery, WebhookStatus, utcnow
from service.tenants.service import Principal

log = logging.getLogger(__name__)

# a claimed message is retried by any sender after this long if its attempt never got recorded (the sender
# died); longer than an attempt can last (connect, send and answer, each at most webhook_timeout_seconds,
# 30 s at most, plus DNS), so a live attempt is never doubled
CLAIM_LEASE = timedelta(minutes=2)
BATCH = 50
MAX_ERROR_CHARS = 500
USER_AGENT = "unlearning-service-webhooks/1"
THROTTLED = frozenset({429, 503})  # the answers whose Retry-After sets the next attempt
GONE = 410
SENDER_ACTOR = "webhook-sender"  # the actor of the events the sender records
_MAX_DELAY_DIGITS = 12  # a longer delay-seconds is past any bound (and int() refuses very long ones)
_rng = random.Random()


def _encode(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} cannot go into a callback payload")


def enqueue(session: Session, *, request: DeletionRequest, event_type: str, data: dict[str, Any]) -> None:
    """Queue a callback about `request` in the caller's transaction, if the request has a callback URL.

    No I/O: the row is sent once the transaction has committed. The payload is Standard Webhooks'
    {type, timestamp, data}; data gets the request's id and subject_request_id unless it names them.
    Suggested types: "deletion_request.completed", ".failed", ".rejected", ".cancelled".
    While the request's callbacks are disabled (its receiver answered 410 Gone) the message is recorded as
    failed without being sent, so the delivery log still shows it and it can be redelivered.
    """
    if request.callback_url is None:
        return
    if not event_type or len(event_type) > 64:
        raise ValueError(f"event_type must have 1 to 64 characters, got {event_type!r}")
    if request.id is None:
        request.id = uuid.uuid4()  # what the column default would do at flush; the outbox row needs it now
    now = utcnow()
    body = {
        "request_id": request.id,
        "subject_request_id": request.subject_request_id,
        "model_id": request.model_id,
        **data,
    }
    try:
        # JSON now, so that a payload that cannot be sent fails the caller's transaction, not the sender
        payload_data = json.loads(json.dumps(body, default=_encode, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"callback data is not JSON-able: {exc}") from exc
    disabled = request.callback_disabled_at is not None
    session.add(
        WebhookDelivery(
            id=uuid.uuid4(),
            tenant_id=request.tenant_id,
            request_id=request.id,
            url=request.callback_url,
            event_type=event_type,
            payload={"type": event_type, "timestamp": now.isoformat(), "data": payload_data},
            attempts=0,
            next_attempt_at=now,
            status=WebhookStatus.failed if disabled else WebhookStatus.pending,
            last_error=f"not sent: {_disabled_reason(request.callback_disabled_at)}" if disabled else None,
            created_at=now,
        )
    )


def _disabled_reason(disabled_at: datetime | None) -> str:
    at = disabled_at.isoformat() if disabled_at is not None else "an earlier attempt"
    return f"the receiver answered 410 Gone at {at}, so callbacks of this request are disabled"


def body_of(delivery: WebhookDelivery) -> bytes:
    """The exact bytes POSTed (and signed) for a message: compact JSON with sorted keys."""
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def message_id(delivery: WebhookDelivery) -> str:
    """The webhook-id header: the message's, which a redelivery keeps so that receivers deduplicate it."""
    return f"msg_{(delivery.redelivery_of or delivery.id).hex}"


@dataclass(frozen=True)
class _Message:
    """What one attempt needs, read from the row at claim time, so no session stays open while sending."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    request_id: uuid.UUID
    url: str
    msg_id: str
    body: bytes


@dataclass(frozen=True)
class _Outcome:
    delivered: bool
    status_code: int | None = None  # None when no answer came
    error: str | None = None
    permanent: bool = False  # no retry can succeed (the URL is now refused)
    retry_after: timedelta | None = None  # what a 429 or 503 asked for, bounded


def max_attempts(settings: Settings) -> int:
    """Attempts of one message before it is failed: the first, then one after each delay of the schedule."""
    return 1 + len(settings.webhook_retry_delays_seconds)


def retry_delay(attempts: int, *, settings: Settings, rng: random.Random) -> timedelta:
    """The wait after `attempts` failed attempts (1 <= attempts < max_attempts): the schedule's delay,
    drawn uniformly within +/- settings.webhook_retry_jitter of it."""
    base = settings.webhook_retry_delays_seconds[attempts - 1]
    share = settings.webhook_retry_jitter
    return timedelta(seconds=base * rng.uniform(1 - share, 1 + share))


def retry_after(value: str | None, *, now: datetime, limit_s: float) -> timedelta | None:
    """The wait a Retry-After header asks for (RFC 9110: delay-seconds or an HTTP-date), at most limit_s;
    None when there is none or it cannot be read. A date already past means at once."""
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value):
        seconds = float(value) if len(value) <= _MAX_DELAY_DIGITS else float("inf")
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # HTTP dates are GMT; "-0000" parses as naive
        seconds = (when - now).total_seconds()
    return timedelta(seconds=min(max(seconds, 0.0), limit_s))


def deliver_due(
    session_factory: sessionmaker[Session],
    *,
    now: datetime | None = None,
    client: httpx.Client | None = None,
    settings: Settings | None = None,
    rng: random.Random | None = None,
) -> int:
    """Send every due message once (up to BATCH); returns how many were attempted (POSTed or refused).

    `now` is this round's clock (due times, retry delays, Retry-After dates, the webhook-timestamp); `rng`
    draws the jitter. Without `client`, each message gets a client of its own: connections are pinned to
    the checked address and must not be reused for another host.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    rng = rng or _rng
    messages = _claim_due(session_factory, now)
    if not messages:
        return 0
    # after the claim, so that an idle loop does not need the secret; if it is missing, the claimed rows
    # are simply due again after CLAIM_LEASE
    master = master_secret(settings)
    gone: set[uuid.UUID] = set()  # requests whose receiver answered 410 Gone in this round
    attempted = 0
    for message in messages:
        if message.request_id in gone:
            continue  # failed, unsent, with the request's other pending messages when the 410 came
        outcome = _attempt(message, master, now=now, client=client, settings=settings)
        _record(session_factory, message.id, outcome, now=now, settings=settings, rng=rng)
        attempted += 1
        if outcome.status_code == GONE:
            gone.add(message.request_id)
    return attempted


def _claim_due(session_factory: sessionmaker[Session], now: datetime) -> list[_Message]:
    with session_factory() as session:
        ids = repository.due_ids(session, now=now, limit=BATCH)
    claimed = []
    for delivery_id in ids:
        # one short write transaction per message: on SQLite nothing waits long on the write lock
        with session_factory() as session, session.begin():
            if not repository.claim(session, delivery_id, now=now, until=now + CLAIM_LEASE):
                continue
            row = repository.get(session, delivery_id)
            disabled_at = repository.callbacks_disabled_at(session, request_id=row.request_id)
            if disabled_at is not None:  # enqueued while another sender was recording the receiver's 410
                row.status = WebhookStatus.failed
                row.last_error = f"not sent: {_disabled_reason(disabled_at)}"
                continue
            claimed.append(_Message(row.id, row.tenant_id, row.request_id, row.url, message_id(row), body_of(row)))
    return claimed


def _attempt(
    message: _Message, master: bytes, *, now: datetime, client: httpx.Client | None, settings: Settings
) -> _Outcome:
    try:
        checked = check_callback_url(message.url, allow_private=settings.allow_private_callbacks)
    except CallbackUrlUnresolvable as exc:
        return _Outcome(False, error=str(exc))  # DNS may come back
    except CallbackUrlError as exc:
        return _Outcome(False, error=f"refused at delivery: {exc}", permanent=True)
    request_headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **headers(tenant_secret(master, message.tenant_id), message.msg_id, int(now.timestamp()), message.body),
    }
    target, extensions = _pinned(checked, request_headers)
    own_client = client is None
    http = client or httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False)
    try:
        # the answer's body is never read: a receiver cannot make the sender download anything
        with http.stream(
            "POST", target, content=message.body, headers=request_headers, extensions=extensions
        ) as response:
            status = response.status_code
            asked = response.headers.get("retry-after") if status in THROTTLED else None
    except httpx.HTTPError as exc:
        return _Outcome(False, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
    finally:
        if own_client:
            http.close()
    if 200 <= status < 300:
        return _Outcome(True, status)
    wait = retry_after(asked, now=now, limit_s=settings.webhook_retry_after_max_seconds)
    return _Outcome(False, status, f"HTTP {status}", retry_after=wait)


def _pinned(checked: CheckedUrl, request_headers: dict[str, str]) -> tuple[httpx.URL, dict[str, Any]]:
    """The URL with the host replaced by the checked address, so that a DNS answer changing between the
    check and the connection cannot redirect the POST; Host and TLS SNI (and so certificate checks) keep
    the original name."""
    url = checked.url
    address = checked.addresses[0]
    try:
        ipaddress.ip_address(url.host)
        return url, {}  # already a literal address
    except ValueError:
        pass
    request_headers["host"] = url.netloc.decode("ascii")
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return url.copy_with(host=str(address)), extensions


def _record(
    session_factory: sessionmaker[Session],
    delivery_id: uuid.UUID,
    outcome: _Outcome,
    *,
    now: datetime,
    settings: Settings,
    rng: random.Random,
) -> None:
    with session_factory() as session, session.begin():
        row = repository.get(session, delivery_id)
        row.attempts += 1
        row.last_attempt_at = now
        row.last_status_code = outcome.status_code
        if outcome.delivered:
            row.status = WebhookStatus.delivered
            row.delivered_at = now
            row.last_error = None
            return
        row.last_error = (outcome.error or "unknown error")[:MAX_ERROR_CHARS]
        if outcome.status_code == GONE:
            _disable_target(session, row, now=now)
            return
        disabled_at = repository.callbacks_disabled_at(session, request_id=row.request_id)
        if disabled_at is not None:  # another sender's 410 for this request came while this one was out
            row.status = WebhookStatus.failed
            row.last_error = f"{row.last_error}; not retried: {_disabled_reason(disabled_at)}"
        elif outcome.permanent or row.attempts >= max_attempts(settings):
            row.status = WebhookStatus.failed
            log.warning(
                "callback %s for request %s failed after %d attempt(s): %s",
                row.id,
                row.request_id,
                row.attempts,
                row.last_error,
            )
        else:
            wait = outcome.retry_after
            if wait is None:
                wait = retry_delay(row.attempts, settings=settings, rng=rng)
            row.next_attempt_at = now + wait


def _disable_target(session: Session, row: WebhookDelivery, *, now: datetime) -> None:
    """The receiver answered 410 Gone: nothing more goes to it for this request (Standard Webhooks)."""
    reason = _disabled_reason(now)
    row.status = WebhookStatus.failed
    row.last_error = f"HTTP 410 Gone: {reason}"
    session.flush()  # this row is failed before the others are, so it keeps its own error
    if not repository.disable_callbacks(session, request_id=row.request_id, at=now):
        return  # a concurrent attempt's 410 disabled it first and failed the rest
    repository.fail_pending(session, request_id=row.request_id, reason=f"not sent: {reason}")
    events.append(
        session,
        event_type="deletion_request.callbacks_disabled",
        subject_type="deletion_request",
        subject_id=row.request_id,
        actor=SENDER_ACTOR,
        tenant_id=row.tenant_id,
        data={"delivery_id": row.id, "message_id": message_id(row), "status_code": GONE},
    )
    log.warning("callbacks of request %s are disabled: its receiver answered 410 Gone", row.request_id)


# ---- the delivery log and redeliveries (HTTP API) ----


def _request_of(session: Session, *, principal: Principal, request_id: uuid.UUID) -> DeletionRequest:
    request = repository.request_of_tenant(session, tenant_id=principal.tenant_id, request_id=request_id)
    if request is None:
        raise NotFound(f"no deletion request {request_id}")  # also for another tenant's
    return request


def list_deliveries(
    session: Session, *, principal: Principal, request_id: uuid.UUID, page: Cursor
) -> WebhookDeliveryList:
    """One page of a request's deliveries, oldest first."""
    _request_of(session, principal=principal, request_id=request_id)
    window = page.window("deliveries", repository.OLDEST_FIRST, {"request_id": request_id})
    items, next_token = repository.page_of_request(session, request_id=request_id, window=window)
    return WebhookDeliveryList(items=[read_delivery(d) for d in items], next_page_token=next_token)


def redeliver(
    session: Session,
    *,
    principal: Principal,
    request_id: uuid.UUID,
    delivery_id: uuid.UUID,
    reenable: bool,
) -> WebhookDelivery:
    """Queue a message of the request again, as a new delivery that keeps its webhook-id and is signed afresh
    on every attempt. While the request's callbacks are disabled by a 410 this is a 409, unless `reenable`:
    then they are enabled again (an event records who did it) and the message goes out."""
    request = _request_of(session, principal=principal, request_id=request_id)
    original = repository.delivery_of_request(session, request_id=request_id, delivery_id=delivery_id)
    if original is None:
        raise NotFound(f"deletion request {request_id} has no delivery {delivery_id}")
    if request.callback_disabled_at is not None:
        if not reenable:
            raise Conflict(
                f"callbacks of deletion request {request_id} are disabled: its receiver answered 410 Gone at "
                f"{request.callback_disabled_at.isoformat()}; redeliver with reenable=true to send to it again"
            )
        request.callback_disabled_at = None
        events.append(
            session,
            event_type="deletion_request.callbacks_enabled",
            subject_type="deletion_request",
            subject_id=request.id,
            actor=principal.actor,
            tenant_id=request.tenant_id,
            data={"redelivery_of": original.id},
        )
    now = utcnow()
    delivery = WebhookDelivery(
        id=uuid.uuid4(),
        tenant_id=original.tenant_id,
        request_id=original.request_id,
        url=original.url,
        event_type=original.event_type,
        payload=original.payload,  # the same bytes are signed again, with a new webhook-timestamp
        attempts=0,
        next_attempt_at=now,
        status=WebhookStatus.pending,
        # the message it repeats, whose webhook-id it carries (a redelivery of a redelivery names the first)
        redelivery_of=original.redelivery_of or original.id,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery


def read_delivery(delivery: WebhookDelivery) -> WebhookDeliveryRead:
    pending = delivery.status == WebhookStatus.pending
    return WebhookDeliveryRead(
        id=delivery.id,
        message_id=message_id(delivery),
        event_type=delivery.event_type,
        status=WebhookStatus(delivery.status),
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_attempt_at=delivery.last_attempt_at,
        next_attempt_at=delivery.next_attempt_at if pending else None,
        delivered_at=delivery.delivered_at,
        last_error=delivery.last_error,
        redelivery_of=delivery.redelivery_of,
        created_at=delivery.created_at,
    )


def run_delivery_loop(
    stop_event: threading.Event, *, settings: Settings | None = None, interval_s: float = 2.0
) -> None:
    """Send due callbacks until `stop_event` is set; for a thread of the API process or the local executor.

    Errors (database down, no secret) are logged and retried after a pause; they never end the loop.
    """
    settings = settings or get_settings()
    factory = make_session_factory(settings.database_url)
    while not stop_event.is_set():
        try:
            attempted = deliver_due(factory, settings=settings)
        except Exception:
            log.exception("callback delivery round failed; retrying in %.0f s", 15 * interval_s)
            stop_event.wait(15 * interval_s)
            continue
        if attempted < BATCH:  # a full batch means more may be due right now
            stop_event.wait(interval_s)
