"""The webhooks the OpenAPI document declares are the callbacks the service sends: deletion requests taken
through every state they can reach (completed and erased, completed on arrival, cancelled, failed) on SQLite
and PostgreSQL queue exactly the declared event types, each payload valid for its declared model and holding
no field the model leaves out."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import select

from service.callbacks.webhooks import CALLBACKS, event_type
from service.db import session_factory
from service.erasure.service import sweep
from service.jobs import service as jobs
from service.settings import Settings
from service.tables import WebhookDelivery, utcnow
from tests.service import tiny
from tests.service.callbacks.conftest import Receiver
from tests.service.erasure.ledger import OWNER, complete_job
from tests.service.factories import TenantKey

IDS = [tiny.sample_id(i) for i in range(12)]


def _submit(client: TestClient, tenant: TenantKey, model_id: str, ids: list[str], receiver: Receiver) -> Any:
    answer = tiny.submit(client, tenant, model_id, ids, callback_url=receiver.url, subject_request_id="ticket-1")
    assert answer.status_code in (200, 202), answer.text
    return answer.json()


def _payloads(settings: Settings) -> list[dict[str, Any]]:
    with session_factory(settings.database_url)() as session:
        return [row.payload for row in session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at))]


def _undeclared(model: type[BaseModel], data: dict[str, Any]) -> set[str]:
    declared = {field.alias or name for name, field in model.model_fields.items()}
    return set(data) - declared


def test_every_callback_sent_is_a_declared_webhook_with_a_valid_payload(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path, receiver: Receiver
) -> None:
    model = tiny.register_model(client, tenant, data_root, retention_seconds=0)["id"]
    forgotten = _submit(client, tenant, model, IDS[:4], receiver)  # received, queued
    complete_job(settings, uuid.UUID(forgotten["job_id"]))  # running, auditing, completed
    _submit(client, tenant, model, IDS[:2], receiver)  # every ID already forgotten: received, completed
    cancelled = _submit(client, tenant, model, IDS[4:6], receiver)
    answer = client.delete(f"/v1/deletion-requests/{cancelled['id']}", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    failed = _submit(client, tenant, model, IDS[6:8], receiver)
    factory = session_factory(settings.database_url)
    with factory() as session, session.begin():
        assert jobs.claim(session, job_id=uuid.UUID(failed["job_id"]), owner=OWNER) is not None
    with factory() as session, session.begin():
        assert jobs.fail(session, job_id=uuid.UUID(failed["job_id"]), owner=OWNER, error="out of memory")
    # the "at once" window: the original, which held the first request's samples, goes; then the receipts
    swept = sweep(factory, settings=settings, now=utcnow() + timedelta(seconds=1))
    assert uuid.UUID(forgotten["id"]) in swept.receipts

    declared = {event_type(payload): payload for payload, _ in CALLBACKS}
    sent = _payloads(settings)
    assert {payload["type"] for payload in sent} == set(declared)
    for payload in sent:
        model_of_type = declared[payload["type"]]
        model_of_type.model_validate(payload)
        data_model = model_of_type.model_fields["data"].annotation
        assert isinstance(data_model, type) and issubclass(data_model, BaseModel)
        assert set(payload) == {"type", "timestamp", "data"}
        assert _undeclared(data_model, payload["data"]) == set(), payload["type"]
