"""The webhook outbox on SQLite and PostgreSQL: enqueue in the caller's transaction, signed delivery to a real
HTTP receiver, retries on the schedule, the SSRF re-check at delivery, the delivery loop and GET /v1/webhook-secret."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from service.callbacks import repository, service, signing
from service.db import session_factory
from service.settings import Settings
from service.tables import DeletionRequest, RequestStatus, WebhookStatus, utcnow
from tests.service.callbacks.rows import deliveries, enqueue, make_request
from tests.service.factories import count_rows


def test_enqueue_adds_nothing_when_the_request_has_no_callback_url(database_url, tenant) -> None:
    request_id = make_request(database_url, tenant, None)
    enqueue(database_url, request_id)
    assert count_rows(database_url, "webhook_delivery") == 0


def test_enqueued_callback_is_dropped_with_a_rolled_back_transaction(database_url, tenant, receiver) -> None:
    request_id = make_request(database_url, tenant, receiver.url)
    with session_factory(database_url)() as session:
        request = session.get(DeletionRequest, request_id)
        service.enqueue(session, request=request, event_type="deletion_request.completed", data={})
        session.rollback()
    assert count_rows(database_url, "webhook_delivery") == 0


def test_receiver_gets_a_signed_post_verifiable_with_the_tenants_secret(
    database_url, tenant, receiver, settings: Settings, client: TestClient
) -> None:
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    assert service.deliver_due(session_factory(database_url), settings=settings) == 1

    [got] = receiver.received
    assert got.path == "/hooks/unlearning"
    secret = client.get("/v1/webhook-secret", headers=tenant.headers).json()["secret"]
    assert signing.verify(signing.parse_secret(secret), got.headers, got.body)
    payload = json.loads(got.body)
    assert payload["type"] == "deletion_request.completed"
    assert payload["data"] == {
        "request_id": str(request_id),
        "subject_request_id": "crm-42",
        "model_id": payload["data"]["model_id"],
        "version": 2,
    }
    [row] = deliveries(database_url, request_id)
    assert (row.status, row.attempts, row.last_error) == (WebhookStatus.delivered, 1, None)
    assert got.headers["webhook-id"] == f"msg_{row.id.hex}"
    assert row.delivered_at is not None
    assert service.deliver_due(session_factory(database_url), settings=settings) == 0  # sent once only


def test_failing_receiver_is_retried_with_backoff_then_failed_leaving_the_request_alone(
    database_url, tenant, receiver, settings: Settings
) -> None:
    receiver.status = 500
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    factory = session_factory(database_url)
    t0 = utcnow() + timedelta(seconds=1)

    assert service.deliver_due(factory, now=t0, settings=settings) == 1
    [row] = deliveries(database_url, request_id)
    assert (row.status, row.attempts, row.last_error) == (WebhookStatus.pending, 1, "HTTP 500")
    assert (row.last_status_code, row.last_attempt_at) == (500, t0)
    assert row.next_attempt_at == t0 + timedelta(seconds=10)

    assert service.deliver_due(factory, now=t0 + timedelta(seconds=9), settings=settings) == 0  # not due yet
    assert service.deliver_due(factory, now=t0 + timedelta(seconds=10), settings=settings) == 1
    [row] = deliveries(database_url, request_id)
    assert row.attempts == 2 and row.next_attempt_at == t0 + timedelta(seconds=40)  # 10 s, then 30 s

    assert service.deliver_due(factory, now=t0 + timedelta(seconds=40), settings=settings) == 1
    [row] = deliveries(database_url, request_id)
    assert (row.status, row.attempts) == (WebhookStatus.failed, 3)  # the first, then one per delay of two
    assert service.deliver_due(factory, now=t0 + timedelta(hours=2), settings=settings) == 0

    assert len(receiver.received) == 3
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1  # the same message every time
    assert [r.headers["webhook-timestamp"] for r in receiver.received] == [
        str(int((t0 + timedelta(seconds=s)).timestamp())) for s in (0, 10, 40)
    ]
    with factory() as session:
        request = session.get(DeletionRequest, request_id)
        assert (request.status, request.error) == (RequestStatus.completed, None)


def test_delivery_connects_to_the_checked_address_and_keeps_the_host_name(
    database_url, tenant, receiver, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # only the guard's resolver knows this name: the POST arrives only if the checked address is used
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "receiver.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    request_id = make_request(database_url, tenant, f"http://receiver.test:{receiver.port}/hook")
    enqueue(database_url, request_id)
    assert service.deliver_due(session_factory(database_url), settings=settings) == 1
    [got] = receiver.received
    assert got.headers["host"] == f"receiver.test:{receiver.port}"
    [row] = deliveries(database_url, request_id)
    assert row.status == WebhookStatus.delivered


def test_a_url_that_now_resolves_to_a_private_address_is_refused_at_delivery(
    database_url, tenant, receiver, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))],
    )
    request_id = make_request(database_url, tenant, "https://hooks.example.com/hook")
    enqueue(database_url, request_id)
    strict = settings.model_copy(update={"allow_private_callbacks": False})
    assert service.deliver_due(session_factory(database_url), settings=strict) == 1
    [row] = deliveries(database_url, request_id)
    assert (row.status, row.attempts) == (WebhookStatus.failed, 1)
    assert row.last_error.startswith("refused at delivery: callback_url host 'hooks.example.com' resolves to 10.0.0.5")
    assert receiver.received == []


def test_a_message_is_claimed_by_one_sender_only(database_url, tenant, receiver) -> None:
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    [row] = deliveries(database_url, request_id)
    now = utcnow() + timedelta(seconds=1)
    factory = session_factory(database_url)
    with factory() as session, session.begin():
        assert repository.claim(session, row.id, now=now, until=now + service.CLAIM_LEASE)
    with factory() as session, session.begin():
        assert not repository.claim(session, row.id, now=now, until=now + service.CLAIM_LEASE)


def test_delivery_loop_sends_in_the_background_and_stops_when_told(
    database_url, tenant, receiver, settings: Settings
) -> None:
    stop = threading.Event()
    thread = threading.Thread(
        target=service.run_delivery_loop, args=(stop,), kwargs={"settings": settings, "interval_s": 0.05}
    )
    thread.start()
    try:
        request_id = make_request(database_url, tenant, receiver.url)
        enqueue(database_url, request_id)
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(receiver.received) == 1


def test_webhook_secret_is_per_tenant_and_needs_the_admin_scope(client: TestClient, tenant, other_tenant) -> None:
    mine = client.get("/v1/webhook-secret", headers=tenant.headers)
    theirs = client.get("/v1/webhook-secret", headers=other_tenant.headers)
    assert mine.status_code == 200 and mine.headers["cache-control"] == "no-store"
    assert mine.json()["secret"].startswith("whsec_") and mine.json()["secret"] != theirs.json()["secret"]
    reader = client.post("/v1/api-keys", headers=tenant.headers, json={"name": "reader", "scopes": ["read"]})
    forbidden = client.get("/v1/webhook-secret", headers={"Authorization": f"Bearer {reader.json()['key']}"})
    assert forbidden.status_code == 403
    assert client.get("/v1/webhook-secret").status_code == 401
