"""Erasure receipts on SQLite and PostgreSQL: issued by the sweep once nothing stored holds a request's samples
(and not before, naming what remains and when it is due), signed so that the Python client verifies them,
announced by an event and a callback; requests whose IDs earlier requests had claimed wait for those."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.callbacks import service as callbacks
from service.db import session_factory
from service.erasure.service import sweep
from service.jobs import service as jobs
from service.settings import Settings
from service.storage import ObjectStore
from service.tables import Event, ModelVersion, utcnow
from tests.service import tiny
from tests.service.erasure.ledger import OWNER, forget, train_reference_set
from tests.service.factories import TenantKey
from unlearning_client import SignatureError, verify_receipt

IDS = [tiny.sample_id(i) for i in range(12)]


def _sweep(settings: Settings, *, after: timedelta = timedelta(0)) -> Any:
    return sweep(session_factory(settings.database_url), settings=settings, now=utcnow() + after)


def _receipt(client: TestClient, tenant: TenantKey, request_id: str) -> Any:
    return client.get(f"/v1/deletion-requests/{request_id}/receipt", headers=tenant.headers)


def _key(client: TestClient, tenant: TenantKey) -> dict[str, Any]:
    return client.get("/v1/signing-key", headers=tenant.headers).json()


def test_a_request_gets_a_receipt_once_the_sweep_destroyed_what_held_its_samples(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    request = forget(client, tenant, settings, model["id"], IDS[:4], subject_request_id="ticket-7")
    assert request["erased_at"] is None and request["receipt_url"] is None

    swept = _sweep(settings)

    read = client.get(f"/v1/deletion-requests/{request['id']}", headers=tenant.headers).json()
    assert swept.receipts == [uuid.UUID(request["id"])]
    assert read["erased_at"] is not None and read["receipt_url"] == f"/v1/deletion-requests/{request['id']}/receipt"
    answer = _receipt(client, tenant, request["id"])
    assert answer.status_code == 200, answer.text
    summary = verify_receipt(answer.json(), _key(client, tenant), request_id=request["id"])
    original = client.get(f"/v1/models/{model['id']}/versions/1", headers=tenant.headers).json()
    assert summary["request"] == {
        "id": request["id"], "model_id": model["id"], "subject_request_id": "ticket-7", "regulation": None,
        "received_at": summary["request"]["received_at"], "completed_at": summary["request"]["completed_at"],
        "sample_count": 4, "sample_ids_sha256": hashlib.sha256("\n".join(sorted(IDS[:4])).encode()).hexdigest(),
    }  # fmt: skip
    assert summary["first_version_without"]["version"] == 2
    [destroyed] = summary["destroyed"]
    expected = ("model_version", 1, original["checkpoint"]["sha256"])
    assert (destroyed["kind"], destroyed["version"], destroyed["sha256"]) == expected
    assert destroyed["destroyed_at"] == original["destroyed_at"].replace("Z", "+00:00")
    assert summary["erased_at"] == read["erased_at"].replace("Z", "+00:00")


def test_a_receipt_fails_verification_after_a_one_byte_change(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    request = forget(client, tenant, settings, model["id"], IDS[:4])
    _sweep(settings)
    receipt = _receipt(client, tenant, request["id"]).json()
    verify_receipt(receipt, _key(client, tenant))

    altered = copy.deepcopy(receipt)
    sha = altered["summary"]["destroyed"][0]["sha256"]
    altered["summary"]["destroyed"][0]["sha256"] = ("0" if sha[0] != "0" else "1") + sha[1:]

    with pytest.raises(SignatureError, match="does not match"):
        verify_receipt(altered, _key(client, tenant))


def test_an_event_and_a_callback_announce_the_receipt(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any], receiver: Any
) -> None:
    request = forget(client, tenant, settings, model["id"], IDS[:4], callback_url=receiver.url)
    factory = session_factory(settings.database_url)
    callbacks.deliver_due(factory, settings=settings)  # the request's own state changes
    receiver.received.clear()

    _sweep(settings)
    callbacks.deliver_due(factory, settings=settings)

    [got] = receiver.received
    payload = json.loads(got.body)
    assert payload["type"] == "deletion_request.erased"
    assert payload["data"]["request_id"] == request["id"]
    assert payload["data"]["receipt_url"] == f"/v1/deletion-requests/{request['id']}/receipt"
    with factory() as session:
        [event] = session.execute(select(Event).where(Event.type == "deletion_request.erased")).scalars()
    assert event.subject_id == request["id"] and event.data["first_version_without"] == 2


def test_until_its_window_ends_a_request_has_no_receipt_and_is_told_what_remains_and_when(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root, retention_seconds=3600)
    request = forget(client, tenant, settings, model["id"], IDS[:4])
    with session_factory(settings.database_url)() as session:
        ready_at = session.get(ModelVersion, uuid.UUID(request["version_id"])).ready_at
    assert _sweep(settings).receipts == []

    answer = _receipt(client, tenant, request["id"])

    assert answer.status_code == 409
    problem = answer.json()
    assert problem["type"].endswith("not-erased-yet")
    assert "version 1's checkpoint" in problem["detail"]
    assert f"(due {(ready_at + timedelta(seconds=3600)).isoformat()})" in problem["detail"]
    assert len(_sweep(settings, after=timedelta(seconds=3601)).receipts) == 1


def test_a_request_whose_ids_were_all_forgotten_before_gets_its_receipt_when_their_holders_are_gone(
    client: TestClient, tenant: TenantKey, settings: Settings, data_root: Path
) -> None:
    model = tiny.register_model(client, tenant, data_root, retention_seconds=3600)
    first = forget(client, tenant, settings, model["id"], IDS[:4])
    again = tiny.submit(client, tenant, model["id"], IDS[:2])
    assert again.status_code == 200  # nothing to do: every ID was forgotten by version 2
    assert _sweep(settings).receipts == []
    assert _receipt(client, tenant, again.json()["id"]).status_code == 409

    swept = _sweep(settings, after=timedelta(seconds=3601))

    assert set(swept.receipts) == {uuid.UUID(first["id"]), uuid.UUID(again.json()["id"])}
    summary = verify_receipt(_receipt(client, tenant, again.json()["id"]).json(), _key(client, tenant))
    assert summary["covered_by"] == [first["id"]]
    assert summary["first_version_without"]["version"] == 2
    assert [item["version"] for item in summary["destroyed"]] == [1]


def test_a_request_whose_ids_a_failed_request_held_gets_no_receipt_and_is_told_to_send_them_again(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    first = tiny.submit(client, tenant, model["id"], IDS[:4]).json()
    again = tiny.submit(client, tenant, model["id"], IDS[:4])
    assert again.status_code == 200  # completed at once: the first request carries its IDs
    factory = session_factory(settings.database_url)
    with factory() as session, session.begin():
        jobs.claim(session, job_id=uuid.UUID(first["job_id"]), owner=OWNER)
    with factory() as session, session.begin():
        assert jobs.fail(session, job_id=uuid.UUID(first["job_id"]), owner=OWNER, error="the GPU fell over")

    assert _sweep(settings, after=timedelta(days=31)).receipts == []

    answer = _receipt(client, tenant, again.json()["id"])
    assert answer.status_code == 409 and "send them again" in answer.json()["detail"]


def test_no_receipt_is_issued_while_an_unnamed_object_could_hold_the_samples(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    request = forget(client, tenant, settings, model["id"], IDS[:4])
    ObjectStore.from_settings(settings).put_bytes(b"left by a job that died before recording it")

    early = _sweep(settings)
    assert len(early.destroyed_versions) == 1 and early.receipts == [] and early.orphans_kept == 1
    assert "checks storage" in _receipt(client, tenant, request["id"]).json()["detail"]

    late = _sweep(settings, after=timedelta(seconds=settings.orphan_grace_seconds + 1))
    assert len(late.orphans_removed) == 1 and late.receipts == [uuid.UUID(request["id"])]


def test_a_receipt_lists_the_reference_set_that_held_the_samples(
    client: TestClient, tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    set_id = train_reference_set(client, tenant, settings, model["id"])
    request = forget(client, tenant, settings, model["id"], IDS[:4])

    _sweep(settings)

    summary = verify_receipt(_receipt(client, tenant, request["id"]).json(), _key(client, tenant))
    original = client.get(f"/v1/models/{model['id']}/versions/1", headers=tenant.headers).json()
    assert sorted((item["kind"], item["id"]) for item in summary["destroyed"]) == [
        ("model_version", original["id"]), ("reference_set", set_id)
    ]


def test_another_tenants_receipt_is_not_found(
    client: TestClient, tenant: TenantKey, other_tenant: TenantKey, settings: Settings, model: dict[str, Any]
) -> None:
    request = forget(client, tenant, settings, model["id"], IDS[:4])
    _sweep(settings)

    assert _receipt(client, other_tenant, request["id"]).status_code == 404
    assert _receipt(client, tenant, str(uuid.uuid4())).status_code == 404
