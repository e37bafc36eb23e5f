"""Deletion requests over HTTP: IDs checked against the training split, duplicates folded, earlier claims
reported, idempotent retries, cancellation before start, due dates, callbacks, and bulk acceptance."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.types import Message, Receive, Scope, Send

from service.app import create_app
from service.db import make_engine
from service.settings import Settings
from tests.service import tiny
from tests.service.factories import TenantKey, count_rows
from unlearning.models import build_model
from unlearning.specs import ArchSpec, to_dict

PROBLEM = "application/problem+json"
IDS = [tiny.sample_id(i) for i in range(12)]


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


def _ledger(database_url: str) -> dict[str, int]:
    tables = ("deletion_request", "forgotten_sample", "job", "event", "webhook_delivery")
    return {table: count_rows(database_url, table) for table in tables}


def test_request_is_accepted_with_202_location_and_a_gdpr_due_date(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    response = tiny.submit(client, tenant, model["id"], IDS, regulation="gdpr", subject_request_id="ticket-7")
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/deletion-requests/{body['id']}"
    assert (body["status"], body["sample_count"], body["new_sample_count"]) == ("queued", 12, 12)
    created, due = datetime.fromisoformat(body["created_at"]), datetime.fromisoformat(body["due_at"])
    assert 28 <= (due - created).days <= 31 and due.day == min(created.day, due.day)
    read = client.get(response.headers["location"], headers=tenant.headers).json()
    assert (read["status"], read["job_id"], read["subject_request_id"]) == ("queued", body["job_id"], "ticket-7")


def test_202_is_sent_only_after_the_request_is_committed(
    settings: Settings, tenant: TenantKey, data_root: Path, database_url: str
) -> None:
    """Probe the database from another connection at the moment the response starts being sent."""
    app = create_app(settings)
    rows_when_response_started: list[int] = []

    async def probing_app(scope: Scope, receive: Receive, send: Send) -> None:
        async def probing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and scope["path"].endswith("/deletion-requests"):
                rows_when_response_started.append(count_rows(database_url, "forgotten_sample"))
            await send(message)

        await app(scope, receive, probing_send)

    with TestClient(probing_app) as client:
        model = tiny.register_model(client, tenant, data_root)
        response = tiny.submit(client, tenant, model["id"], IDS)
    assert response.status_code == 202
    assert rows_when_response_started == [len(IDS)]


def test_ccpa_requests_are_due_in_45_days(client: TestClient, tenant: TenantKey, model: dict[str, Any]) -> None:
    body = tiny.submit(client, tenant, model["id"], IDS, regulation="ccpa").json()
    due = datetime.fromisoformat(body["due_at"]) - datetime.fromisoformat(body["created_at"])
    assert due == timedelta(days=45)


def test_unknown_ids_are_422_naming_them_and_change_nothing(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    before = _ledger(database_url)
    unknown = [f"nobody-{i}" for i in range(25)]
    response = tiny.submit(client, tenant, model["id"], [IDS[0], *unknown])
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith("unknown-sample-ids")
    assert "25 sample ID(s)" in problem["detail"] and "'nobody-0'" in problem["detail"]
    assert "(and 5 more)" in problem["detail"]
    assert len(problem["errors"]) == 20 and problem["errors"][0]["pointer"] == "#/sample_ids/1"
    assert _ledger(database_url) == before


def test_duplicates_are_folded(client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str) -> None:
    body = tiny.submit(client, tenant, model["id"], [IDS[0], IDS[1], IDS[0], IDS[0]]).json()
    assert (body["sample_count"], body["duplicate_count"], body["new_sample_count"]) == (2, 2, 2)
    assert count_rows(database_url, "forgotten_sample") == 2


def test_ids_claimed_by_an_earlier_request_are_reported_and_not_claimed_again(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    first = tiny.submit(client, tenant, model["id"], IDS[:6]).json()
    second = tiny.submit(client, tenant, model["id"], IDS[4:10])
    assert second.status_code == 202
    body = second.json()
    assert (body["sample_count"], body["new_sample_count"], body["already_forgotten_count"]) == (6, 4, 2)
    assert body["already_forgotten"]["listed"] == [
        {"sample_id": IDS[4], "request_id": first["id"], "version": None},  # still in flight
        {"sample_id": IDS[5], "request_id": first["id"], "version": None},
    ]
    assert count_rows(database_url, "forgotten_sample") == 10


def test_request_whose_ids_are_all_claimed_already_is_completed_with_nothing_to_do(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    tiny.submit(client, tenant, model["id"], IDS)
    jobs_before = count_rows(database_url, "job")
    response = tiny.submit(client, tenant, model["id"], IDS[:3])
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["new_sample_count"], body["job_id"]) == ("completed", 0, None)
    assert body["already_forgotten"]["count"] == 3
    assert count_rows(database_url, "job") == jobs_before


def test_idempotency_key_replay_with_the_same_body_returns_the_first_answer(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    first = tiny.submit(client, tenant, model["id"], IDS, key="retry-1", regulation="gdpr")
    ledger = _ledger(database_url)
    again = tiny.submit(client, tenant, model["id"], IDS, key="retry-1", regulation="gdpr")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["location"] == first.headers["location"]
    assert _ledger(database_url) == ledger


def test_idempotency_key_with_another_body_is_422(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    tiny.submit(client, tenant, model["id"], IDS, key="retry-1")
    ledger = _ledger(database_url)
    response = tiny.submit(client, tenant, model["id"], IDS[:3], key="retry-1")
    assert response.status_code == 422
    assert response.json()["type"].endswith("idempotency-key-reused")
    assert _ledger(database_url) == ledger


def test_idempotency_key_longer_than_its_column_is_422_and_its_bounds_are_declared(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    ledger = _ledger(database_url)
    response = tiny.submit(client, tenant, model["id"], IDS, key="k" * 201)
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == ["header", "idempotency-key"]
    assert _ledger(database_url) == ledger
    operation = client.get("/openapi.json").json()["paths"]["/v1/models/{model_id}/deletion-requests"]["post"]
    (header,) = [p for p in operation["parameters"] if p["name"] == "idempotency-key"]
    (string,) = [option for option in header["schema"]["anyOf"] if option.get("type") == "string"]
    assert (string["minLength"], string["maxLength"]) == (1, 200)


def test_retry_while_the_first_request_is_still_being_handled_is_409(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    """A first request holds its uncommitted row (here: a transaction of the test's); the retry blocks on
    the unique (model, key) until that commits, then answers 409 instead of a second acceptance."""
    tiny.submit(client, tenant, model["id"], [IDS[0]])  # warms the dataset's ID cache
    engine = make_engine(database_url)
    answer: list[Any] = []
    try:
        with engine.begin() as conn:
            row = conn.execute(text("SELECT * FROM deletion_request")).mappings().one()
            conn.execute(
                text(
                    "INSERT INTO deletion_request (id, tenant_id, model_id, idempotency_key, payload_sha256, "
                    "sample_count, already_forgotten_count, status, received_at, created_at, updated_at) VALUES "
                    "(:id, :tenant_id, :model_id, 'in-flight', :hash, 1, 0, 'received', :now, :now, :now)"
                ),
                # SQLite keeps UUIDs as 32 hex digits, PostgreSQL as uuid
                {**row, "id": uuid.uuid4().hex if engine.dialect.name == "sqlite" else uuid.uuid4(),
                 "hash": "0" * 64, "now": row["created_at"]},
            )  # fmt: skip
            retry = threading.Thread(
                target=lambda: answer.append(tiny.submit(client, tenant, model["id"], IDS[1:3], key="in-flight"))
            )
            retry.start()
            time.sleep(1.5)  # the retry is now waiting for the row's lock
            assert not answer
        retry.join(timeout=60)
    finally:
        engine.dispose()
    assert answer[0].status_code == 409
    assert answer[0].json()["type"].endswith("request-in-progress")


def test_more_ids_than_the_limit_is_422(settings: Settings, tenant: TenantKey, data_root: Path) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_ids_per_request": 5}))) as client:
        model = tiny.register_model(client, tenant, data_root)
        response = tiny.submit(client, tenant, model["id"], IDS[:6])
    assert response.status_code == 422
    assert response.json()["type"].endswith("too-many-sample-ids")


def test_cancel_before_the_job_starts_cancels_and_releases_the_ids(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    body = tiny.submit(client, tenant, model["id"], IDS[:4]).json()
    response = client.delete(f"/v1/deletion-requests/{body['id']}", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert client.get(f"/v1/jobs/{body['job_id']}", headers=tenant.headers).json()["status"] == "cancelled"
    again = tiny.submit(client, tenant, model["id"], IDS[:4]).json()
    assert again["new_sample_count"] == 4  # the released IDs can be requested again
    assert again["job_id"] != body["job_id"]


def test_cancel_after_the_job_started_is_409(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    body = tiny.submit(client, tenant, model["id"], IDS[:4]).json()
    assert tiny.claim(database_url, body["job_id"])
    response = client.delete(f"/v1/deletion-requests/{body['id']}", headers=tenant.headers)
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert "running" in response.json()["detail"]
    assert count_rows(database_url, "forgotten_sample") == 4


def test_events_list_the_requests_state_changes_in_chain_order(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    body = tiny.submit(client, tenant, model["id"], IDS[:4]).json()
    client.delete(f"/v1/deletion-requests/{body['id']}", headers=tenant.headers)
    events = client.get(f"/v1/deletion-requests/{body['id']}/events", headers=tenant.headers).json()["items"]
    assert [e["type"] for e in events] == [
        "deletion_request.received",
        "deletion_request.queued",
        "deletion_request.cancelled",
    ]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert events[0]["data"]["sample_count"] == 4


def test_another_tenants_request_is_404(
    client: TestClient, tenant: TenantKey, other_tenant: TenantKey, model: dict[str, Any]
) -> None:
    body = tiny.submit(client, tenant, model["id"], IDS[:2]).json()
    for method, path in (("GET", ""), ("GET", "/events"), ("DELETE", "")):
        response = client.request(method, f"/v1/deletion-requests/{body['id']}{path}", headers=other_tenant.headers)
        assert response.status_code == 404
    assert tiny.submit(client, other_tenant, model["id"], IDS[:2]).status_code == 404


def test_state_changes_of_a_request_with_a_callback_url_are_put_in_the_outbox(
    settings: Settings, tenant: TenantKey, data_root: Path, database_url: str
) -> None:
    with TestClient(create_app(settings.model_copy(update={"allow_private_callbacks": True}))) as client:
        model = tiny.register_model(client, tenant, data_root)
        body = tiny.submit(client, tenant, model["id"], IDS[:2], callback_url="http://127.0.0.1:9/hook").json()
        client.delete(f"/v1/deletion-requests/{body['id']}", headers=tenant.headers)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            types = conn.execute(text("SELECT event_type FROM webhook_delivery ORDER BY created_at")).scalars().all()
    finally:
        engine.dispose()
    assert types == ["deletion_request.received", "deletion_request.queued", "deletion_request.cancelled"]


def test_callback_url_to_a_private_address_is_422(client: TestClient, tenant: TenantKey, model: dict[str, Any]) -> None:
    response = tiny.submit(client, tenant, model["id"], IDS[:2], callback_url="https://127.0.0.1/hook")
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/callback_url"


def test_a_100000_id_request_is_accepted_and_claims_every_id(
    settings: Settings, tenant: TenantKey, data_root: Path
) -> None:
    n = 100_000
    folder = data_root / "large"
    folder.mkdir()
    labels = np.arange(n) % 2
    np.savez(folder / "train.npz", x=np.zeros((n, 8, 8), np.uint8), y=labels)
    np.savez(folder / "test.npz", x=np.zeros((10, 8, 8), np.uint8), y=np.arange(10) % 2)
    arch = ArchSpec("small_cnn", num_classes=2, in_channels=1, image_size=8, width=4)
    with TestClient(create_app(settings.model_copy(update={"max_ids_per_request": n}))) as client:
        dataset = client.post(
            "/v1/datasets", json={"name": "large", "format": "npz", "path": "large"}, headers=tenant.headers
        ).json()
        weights = tiny.safetensors_bytes(build_model(arch).state_dict())
        body = tiny.manifest(dataset["id"], architecture=to_dict(arch), unlearn_config={"method": "amun"})
        model = tiny.upload(client, tenant, body, weights).json()
        ids = [str(i) for i in range(n)]
        response = tiny.submit(client, tenant, model["id"], ids)
        # its time is the load test's to measure (tools' large_request_seconds), never a test's to assert
        assert response.status_code == 202, response.text
        assert response.json()["new_sample_count"] == n
        again = tiny.submit(client, tenant, model["id"], ids[-3:])
    assert again.status_code == 200 and again.json()["already_forgotten"]["count"] == 3


def test_positional_ids_are_checked_without_loading_the_dataset(
    client: TestClient, tenant: TenantKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = client.post("/v1/datasets", json={"name": "digits", "format": "digits"}, headers=tenant.headers).json()
    model = tiny.upload(client, tenant, tiny.manifest(dataset["id"]), tiny.safetensors_bytes()).json()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("positional IDs need no images")

    monkeypatch.setattr("unlearning.data.load_dataset", refuse)
    last = str(dataset["num_train"] - 1)
    assert tiny.submit(client, tenant, model["id"], ["0", last]).status_code == 202
    response = tiny.submit(client, tenant, model["id"], [str(dataset["num_train"])])
    assert response.status_code == 422
    assert f"'{dataset['num_train']}'" in response.json()["detail"]


def test_concurrent_requests_for_one_model_are_all_accepted_and_claim_each_sample_once(
    settings: Settings, tenant: TenantKey, data_root: Path, database_url: str
) -> None:
    """Clients of their own post overlapping requests for one model at the same moment: none fails (on
    PostgreSQL a lock-order mistake showed as a deadlock, HTTP 500), and every sample has one claim, held
    by the request that reported it new."""
    app = create_app(settings)
    with TestClient(app) as client:
        model = tiny.register_model(client, tenant, data_root)
        tiny.submit(client, tenant, model["id"], [IDS[0]])  # loads the dataset's IDs before the race
    ids = [tiny.sample_id(i) for i in range(1, 86)]
    slices = [ids[i * 10 : i * 10 + 15] for i in range(8)]  # 5 shared with the next, 5 of its own: never 200
    start = threading.Barrier(len(slices))
    answers: list[Any] = [None] * len(slices)

    def post(index: int) -> None:
        with TestClient(app) as own_client:
            start.wait(timeout=60)
            answers[index] = tiny.submit(own_client, tenant, model["id"], slices[index])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(slices))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [a.status_code for a in answers] == [202] * len(slices), [a.text for a in answers if a.status_code != 202]
    bodies = [a.json() for a in answers]
    assert sum(b["new_sample_count"] for b in bodies) == len(ids)
    assert len({b["job_id"] for b in bodies}) == 1  # all coalesced into the one waiting job
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT sample_id, request_id FROM forgotten_sample WHERE sample_id != :first"), {"first": IDS[0]}
            ).all()
    finally:
        engine.dispose()
    assert sorted(sid for sid, _ in rows) == sorted(ids)  # each sample once
    claimed_by = {sid: str(uuid.UUID(str(request_id))) for sid, request_id in rows}
    for body, sample_ids in zip(bodies, slices, strict=True):
        mine = {sid for sid in sample_ids if claimed_by[sid] == body["id"]}
        assert len(mine) == body["new_sample_count"]


def test_concurrent_retries_with_one_idempotency_key_all_get_the_first_answer(
    settings: Settings, tenant: TenantKey, data_root: Path, database_url: str
) -> None:
    """Retries racing the first request wait for the model's lock, then find its committed answer."""
    app = create_app(settings)
    with TestClient(app) as client:
        model = tiny.register_model(client, tenant, data_root)
        tiny.submit(client, tenant, model["id"], [IDS[0]])  # loads the dataset's IDs before the race
    start = threading.Barrier(4)
    answers: list[Any] = [None] * 4

    def post(index: int) -> None:
        with TestClient(app) as own_client:
            start.wait(timeout=60)
            answers[index] = tiny.submit(own_client, tenant, model["id"], IDS[1:6], key="same-key")

    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert count_rows(database_url, "deletion_request") == 2


def test_once_the_datasets_ids_are_loaded_a_request_reads_and_writes_in_one_transaction(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    """Ending the read transaction before the ID check costs PostgreSQL round trips; it is only worth it
    when slow work follows (the first load of the dataset's IDs, resolving a callback host)."""
    tiny.submit(client, tenant, model["id"], IDS[:1])  # loads the IDs
    begun: list[Session] = []

    def count(session: Session, *_: Any) -> None:
        begun.append(session)

    sa_event.listen(Session, "after_begin", count)
    try:
        assert tiny.submit(client, tenant, model["id"], IDS[1:3]).status_code == 202
    finally:
        sa_event.remove(Session, "after_begin", count)
    # SQLite: the API key's lookup (ended before any endpoint work), then the request's; PostgreSQL: one
    on_sqlite = client.app.state.settings.database_url.startswith("sqlite")
    assert len(begun) == (2 if on_sqlite else 1)
