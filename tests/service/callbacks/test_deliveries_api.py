"""GET /v1/deletion-requests/{id}/deliveries (the delivery log) and POST .../deliveries/{id}/redeliver, through
HTTP on SQLite and PostgreSQL, with a real receiver: what the log shows of each attempt, a redelivery that
keeps the webhook-id and is signed afresh, a target disabled by 410 and re-enabled, and other tenants' 404."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.callbacks import service, signing
from service.db import session_factory
from service.settings import Settings
from service.tables import Event, utcnow
from tests.service.callbacks.conftest import Receiver
from tests.service.callbacks.rows import deliveries, enqueue, make_request
from tests.service.factories import TenantKey, count_rows


def _t0() -> datetime:
    return utcnow().replace(microsecond=0) + timedelta(seconds=1)


def _log(client: TestClient, tenant: TenantKey, request_id: uuid.UUID, **params: object) -> dict[str, Any]:
    answer = client.get(f"/v1/deletion-requests/{request_id}/deliveries", headers=tenant.headers, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _redeliver(
    client: TestClient, tenant: TenantKey, request_id: uuid.UUID, delivery_id: str, **params: object
) -> httpx.Response:
    return client.post(
        f"/v1/deletion-requests/{request_id}/deliveries/{delivery_id}/redeliver", headers=tenant.headers, params=params
    )


def test_the_delivery_log_shows_each_attempt_of_a_message(
    client: TestClient, database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    receiver.status = 500
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    factory = session_factory(database_url)
    t0 = _t0()
    service.deliver_due(factory, now=t0, settings=settings)

    [failed_once] = _log(client, tenant, request_id)["items"]
    [row] = deliveries(database_url, request_id)
    assert failed_once == {
        "id": str(row.id),
        "message_id": f"msg_{row.id.hex}",
        "event_type": "deletion_request.completed",
        "status": "pending",
        "attempts": 1,
        "last_status_code": 500,
        "last_attempt_at": failed_once["last_attempt_at"],
        "next_attempt_at": failed_once["next_attempt_at"],
        "delivered_at": None,
        "last_error": "HTTP 500",
        "redelivery_of": None,
        "created_at": failed_once["created_at"],
    }
    assert datetime.fromisoformat(failed_once["last_attempt_at"]) == t0
    assert datetime.fromisoformat(failed_once["next_attempt_at"]) == t0 + timedelta(seconds=10)

    receiver.status = 204
    service.deliver_due(factory, now=t0 + timedelta(seconds=10), settings=settings)
    [delivered] = _log(client, tenant, request_id)["items"]
    assert (delivered["status"], delivered["attempts"], delivered["last_status_code"]) == ("delivered", 2, 204)
    assert (delivered["next_attempt_at"], delivered["last_error"]) == (None, None)
    assert datetime.fromisoformat(delivered["delivered_at"]) == t0 + timedelta(seconds=10)


def test_the_delivery_log_is_paged_oldest_first(
    client: TestClient, database_url: str, tenant: TenantKey, receiver: Receiver
) -> None:
    request_id = make_request(database_url, tenant, receiver.url)
    for event_type in ("deletion_request.queued", "deletion_request.running", "deletion_request.completed"):
        enqueue(database_url, request_id, event_type)

    first = _log(client, tenant, request_id, limit=2)
    rest = _log(client, tenant, request_id, limit=2, page_token=first["next_page_token"])
    assert [d["event_type"] for d in first["items"] + rest["items"]] == [
        "deletion_request.queued",
        "deletion_request.running",
        "deletion_request.completed",
    ]
    assert rest["next_page_token"] is None


def test_a_redelivery_keeps_the_webhook_id_and_is_signed_afresh(
    client: TestClient, database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    factory = session_factory(database_url)
    t0 = _t0()
    service.deliver_due(factory, now=t0, settings=settings)
    [original] = _log(client, tenant, request_id)["items"]

    answer = _redeliver(client, tenant, request_id, original["id"])
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert (queued["status"], queued["attempts"], queued["redelivery_of"]) == ("pending", 0, original["id"])
    assert queued["message_id"] == original["message_id"] and queued["id"] != original["id"]

    assert service.deliver_due(factory, now=t0 + timedelta(minutes=5), settings=settings) == 1
    first, again = receiver.received
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == original["message_id"]
    assert again.body == first.body  # the same message: its type, timestamp and data
    assert again.headers["webhook-timestamp"] == str(int((t0 + timedelta(minutes=5)).timestamp()))
    assert again.headers["webhook-signature"] != first.headers["webhook-signature"]
    secret = client.get("/v1/webhook-secret", headers=tenant.headers).json()["secret"]
    assert signing.verify(signing.parse_secret(secret), again.headers, again.body)
    assert [d["status"] for d in _log(client, tenant, request_id)["items"]] == ["delivered", "delivered"]


def test_a_redelivery_of_a_redelivery_names_the_first_message(
    client: TestClient, database_url: str, tenant: TenantKey, receiver: Receiver
) -> None:
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    [original] = _log(client, tenant, request_id)["items"]
    repeat = _redeliver(client, tenant, request_id, original["id"]).json()

    again = _redeliver(client, tenant, request_id, repeat["id"]).json()
    assert again["redelivery_of"] == original["id"]
    assert again["message_id"] == original["message_id"]


def test_a_request_whose_receiver_answered_410_reads_as_callbacks_disabled(
    client: TestClient, database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    receiver.status = 410
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    t0 = _t0()
    service.deliver_due(session_factory(database_url), now=t0, settings=settings)

    request = client.get(f"/v1/deletion-requests/{request_id}", headers=tenant.headers).json()
    assert datetime.fromisoformat(request["callbacks_disabled_at"]) == t0


def test_redelivering_to_a_target_disabled_by_410_is_a_conflict_that_changes_nothing(
    client: TestClient, database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    receiver.status = 410
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    service.deliver_due(session_factory(database_url), now=_t0(), settings=settings)
    [gone] = _log(client, tenant, request_id)["items"]

    answer = _redeliver(client, tenant, request_id, gone["id"])
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert "answered 410 Gone" in answer.json()["detail"] and "reenable=true" in answer.json()["detail"]
    assert count_rows(database_url, "webhook_delivery") == 1


def test_a_redelivery_with_reenable_turns_callbacks_back_on_and_sends(
    client: TestClient, database_url: str, tenant: TenantKey, receiver: Receiver, settings: Settings
) -> None:
    receiver.status = 410
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    factory = session_factory(database_url)
    t0 = _t0()
    service.deliver_due(factory, now=t0, settings=settings)
    [gone] = _log(client, tenant, request_id)["items"]

    receiver.status = 204
    answer = _redeliver(client, tenant, request_id, gone["id"], reenable="true")
    assert answer.status_code == 202, answer.text
    request = client.get(f"/v1/deletion-requests/{request_id}", headers=tenant.headers).json()
    assert request["callbacks_disabled_at"] is None
    assert service.deliver_due(factory, now=t0 + timedelta(minutes=1), settings=settings) == 1
    assert [json.loads(r.body)["type"] for r in receiver.received] == ["deletion_request.completed"] * 2
    with factory() as session:
        [event] = session.scalars(select(Event).where(Event.type == "deletion_request.callbacks_enabled"))
        assert event.actor.startswith("api_key:") and event.data == {"redelivery_of": gone["id"]}


def test_another_tenants_request_and_its_deliveries_answer_404(
    client: TestClient, database_url: str, tenant: TenantKey, other_tenant: TenantKey, receiver: Receiver
) -> None:
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    [delivery] = _log(client, tenant, request_id)["items"]

    listed = client.get(f"/v1/deletion-requests/{request_id}/deliveries", headers=other_tenant.headers)
    redelivered = _redeliver(client, other_tenant, request_id, delivery["id"])
    assert (listed.status_code, redelivered.status_code) == (404, 404)
    assert listed.json()["detail"] == f"no deletion request {request_id}"
    assert count_rows(database_url, "webhook_delivery") == 1


def test_a_delivery_of_another_request_answers_404(
    client: TestClient, database_url: str, tenant: TenantKey, receiver: Receiver
) -> None:
    mine = make_request(database_url, tenant, receiver.url)
    other = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, other)
    [delivery] = _log(client, tenant, other)["items"]

    answer = _redeliver(client, tenant, mine, delivery["id"])
    assert answer.status_code == 404
    assert answer.json()["detail"] == f"deletion request {mine} has no delivery {delivery['id']}"


def test_redelivering_needs_the_write_scope(
    client: TestClient, database_url: str, tenant: TenantKey, receiver: Receiver
) -> None:
    request_id = make_request(database_url, tenant, receiver.url)
    enqueue(database_url, request_id)
    [delivery] = _log(client, tenant, request_id)["items"]
    reader = client.post("/v1/api-keys", headers=tenant.headers, json={"name": "reader", "scopes": ["read"]})
    headers = {"Authorization": f"Bearer {reader.json()['key']}"}

    assert client.get(f"/v1/deletion-requests/{request_id}/deliveries", headers=headers).status_code == 200
    path = f"/v1/deletion-requests/{request_id}/deliveries/{delivery['id']}/redeliver"
    assert client.post(path, headers=headers).status_code == 403
