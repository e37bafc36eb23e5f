"""Callbacks of deletion requests: queued in the caller's transaction, sent later with retries.

enqueue() only adds an outbox row, so a callback exists exactly when the state change it reports was
committed. deliver_due() claims due rows, POSTs each outside any transaction (httpx, no redirects, to the
address the SSRF guard just approved), and records the outcome: delivered on 2xx, else retried after
10 s, 30 s, 2 min, 10 min, then hourly, until settings.webhook_max_attempts, then failed. The request
itself is never touched: a failing callback never fails a request. Delivery is at least once (a sender
that dies mid-POST leaves the row to be claimed again after CLAIM_LEASE); receivers deduplicate on
webhook-id, which is the same on every attempt.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service.callbacks import repository
from service.callbacks.signing import headers, master_secret, tenant_secret
from service.callbacks.urls import CallbackUrlError, CallbackUrlUnresolvable, CheckedUrl, check_callback_url
from service.db import session_factory as make_session_factory
from service.settings import Settings, get_settings
from service.tables import DeletionRequest, WebhookDelivery, WebhookStatus, utcnow

log = logging.getLogger(__name__)

BACKOFF = (
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),  # and every hour after that
)
TIMEOUT_S = 5.0
# a claimed message is retried by any sender after this long if its attempt never got recorded
# (the sender died); longer than the HTTP timeout plus DNS, so a live attempt is never doubled
CLAIM_LEASE = timedelta(minutes=2)
BATCH = 50
MAX_ERROR_CHARS = 500
USER_AGENT = "unlearning-service-webhooks/1"


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
            status=WebhookStatus.pending,
            created_at=now,
        )
    )


def body_of(delivery: WebhookDelivery) -> bytes:
    """The exact bytes POSTed (and signed) for a message: compact JSON with sorted keys."""
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def message_id(delivery: WebhookDelivery) -> str:
    return f"msg_{delivery.id.hex}"


@dataclass(frozen=True)
class _Message:
    """What one attempt needs, read from the row at claim time, so no session stays open while sending."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    url: str
    msg_id: str
    body: bytes


@dataclass(frozen=True)
class _Outcome:
    delivered: bool
    error: str | None = None
    permanent: bool = False  # no retry can succeed (the URL is now refused)


def backoff_after(attempts: int) -> timedelta:
    """Wait before the next attempt, after `attempts` failed ones."""
    return BACKOFF[min(attempts, len(BACKOFF)) - 1]


def deliver_due(
    session_factory: sessionmaker[Session],
    *,
    now: datetime | None = None,
    client: httpx.Client | None = None,
    settings: Settings | None = None,
) -> int:
    """Send every due message once (up to BATCH); returns how many were attempted.

    `now` is this round's clock (due times, backoff, the webhook-timestamp). Without `client`, each
    message gets a client of its own: connections are pinned to the checked address and must not be
    reused for another host.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    messages = _claim_due(session_factory, now)
    if not messages:
        return 0
    # after the claim, so that an idle loop does not need the secret; if it is missing, the claimed rows
    # are simply due again after CLAIM_LEASE
    master = master_secret(settings)
    for message in messages:
        outcome = _attempt(message, master, now=now, client=client, settings=settings)
        _record(session_factory, message.id, outcome, now=now, settings=settings)
    return len(messages)


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
            claimed.append(_Message(row.id, row.tenant_id, row.url, message_id(row), body_of(row)))
    return claimed


def _attempt(
    message: _Message, master: bytes, *, now: datetime, client: httpx.Client | None, settings: Settings
) -> _Outcome:
    try:
        checked = check_callback_url(message.url, allow_private=settings.allow_private_callbacks)
    except CallbackUrlUnresolvable as exc:
        return _Outcome(False, str(exc))  # DNS may come back
    except CallbackUrlError as exc:
        return _Outcome(False, f"refused at delivery: {exc}", permanent=True)
    request_headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **headers(tenant_secret(master, message.tenant_id), message.msg_id, int(now.timestamp()), message.body),
    }
    target, extensions = _pinned(checked, request_headers)
    own_client = client is None
    http = client or httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False)
    try:
        # the answer's body is never read: a receiver cannot make the sender download anything
        with http.stream(
            "POST", target, content=message.body, headers=request_headers, extensions=extensions
        ) as response:
            status = response.status_code
    except httpx.HTTPError as exc:
        return _Outcome(False, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
    finally:
        if own_client:
            http.close()
    if 200 <= status < 300:
        return _Outcome(True)
    return _Outcome(False, f"HTTP {status}")


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
) -> None:
    with session_factory() as session, session.begin():
        row = repository.get(session, delivery_id)
        row.attempts += 1
        if outcome.delivered:
            row.status = WebhookStatus.delivered
            row.delivered_at = now
            row.last_error = None
            return
        row.last_error = (outcome.error or "unknown error")[:MAX_ERROR_CHARS]
        if outcome.permanent or row.attempts >= settings.webhook_max_attempts:
            row.status = WebhookStatus.failed
            log.warning(
                "callback %s for request %s failed after %d attempt(s): %s",
                row.id,
                row.request_id,
                row.attempts,
                row.last_error,
            )
        else:
            row.next_attempt_at = now + backoff_after(row.attempts)


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
