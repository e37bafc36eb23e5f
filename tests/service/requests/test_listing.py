"""GET /v1/deletion-requests: the tenant's requests filtered (model, states, the caller's reference, regulation,
overdue, received and created ranges), sorted (created_at, received_at, due_at; either direction) and read page
by page with cursor tokens that stay exact while new requests arrive.

The rows are inserted straight into the ledger (10,000 of them in one statement), not through the API: these
tests are about finding requests, not about accepting them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from service.db import session_factory
from service.tables import DeletionRequest, RequestStatus, utcnow
from tests.service import tiny
from tests.service.factories import TenantKey

PROBLEM = "application/problem+json"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LIST = "/v1/deletion-requests"

Insert = Callable[..., list[str]]


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


@pytest.fixture
def insert_requests(database_url: str, tenant: TenantKey, model: dict[str, Any]) -> Insert:
    """Insert requests in one statement; each row's columns default to a queued request of `model` created at
    T0. Returns their ids in the order given."""

    def insert_rows(*rows: dict[str, Any], tenant_id: uuid.UUID | None = None) -> list[str]:
        values = []
        for row in rows:
            created = row.get("created_at", T0)
            values.append({
                "id": uuid.uuid4(), "tenant_id": tenant_id or tenant.tenant_id, "model_id": uuid.UUID(model["id"]),
                "payload_sha256": "0" * 64, "sample_count": 1, "already_forgotten_count": 0,
                "status": RequestStatus.queued, "created_at": created, "updated_at": created,
                "received_at": row.get("received_at", created), **row,
            })  # fmt: skip
        with session_factory(database_url)() as session, session.begin():
            session.execute(insert(DeletionRequest), values)
        return [str(v["id"]) for v in values]

    return insert_rows


def _pages(client: TestClient, tenant: TenantKey, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    token = None
    while True:
        page = client.get(LIST, params={**params, **({"page_token": token} if token else {})}, headers=tenant.headers)
        assert page.status_code == 200, page.text
        yield page.json()
        token = page.json()["next_page_token"]
        if token is None:
            return


def _ids(client: TestClient, tenant: TenantKey, **params: Any) -> list[str]:
    return [item["id"] for page in _pages(client, tenant, {"limit": 2, **params}) for item in page["items"]]


def test_10000_requests_read_page_by_page_while_new_ones_arrive_are_each_listed_exactly_once(
    client: TestClient, tenant: TenantKey, insert_requests: Insert
) -> None:
    # 100 requests share each creation time: the id breaks the ties
    listed_before = insert_requests(*({"created_at": T0 + timedelta(seconds=i // 100)} for i in range(10_000)))
    arrived_later, arrived_late_in_the_past = [], []
    seen: list[str] = []
    for page in _pages(client, tenant, {"limit": 500, "sort": "created_at", "order": "asc"}):
        seen += [item["id"] for item in page["items"]]
        # between pages: two new requests, and one that sorts among the rows already read (a transaction that
        # took its creation time early and committed late)
        arrived_later += insert_requests({"created_at": utcnow()}, {"created_at": utcnow()})
        arrived_late_in_the_past += insert_requests({"created_at": T0 + timedelta(seconds=1)})
    counts = Counter(seen)
    assert max(counts.values()) == 1
    assert set(listed_before) <= counts.keys()
    # ascending, the new ones sort after every page read: each shows up once, on a later page (those that
    # arrived after the last page was read excepted); the late ones sort behind the cursor and never show up
    assert set(arrived_later[:-2]) <= counts.keys() and not counts.keys() & set(arrived_later[-2:])
    assert not counts.keys() & set(arrived_late_in_the_past)
    assert len(seen) == 10_000 + len(arrived_later) - 2


def test_the_default_order_is_newest_first(client: TestClient, tenant: TenantKey, insert_requests: Insert) -> None:
    ids = insert_requests(*({"created_at": T0 + timedelta(minutes=i)} for i in range(5)))
    assert _ids(client, tenant) == ids[::-1]


@pytest.mark.parametrize("sort", ["created_at", "received_at"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_each_time_sort_reads_in_its_order_with_ties_broken_the_same_way_on_every_page(
    client: TestClient, tenant: TenantKey, insert_requests: Insert, sort: str, order: str
) -> None:
    # received and created times in opposite orders, pairs of ties in each
    rows = [{"created_at": T0 + timedelta(hours=i // 2), "received_at": T0 - timedelta(hours=i // 2)} for i in range(7)]
    ids = insert_requests(*rows)
    key = {request_id: (row[sort], uuid.UUID(request_id)) for request_id, row in zip(ids, rows, strict=True)}
    # ties broken by id on every backend in uuid order (SQLite compares the lowercase hex it stores, which agrees)
    expected = sorted(ids, key=key.__getitem__, reverse=order == "desc")
    assert _ids(client, tenant, sort=sort, order=order) == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_by_due_date_requests_without_one_come_last_in_either_order(
    client: TestClient, tenant: TenantKey, insert_requests: Insert, order: str
) -> None:
    dated = insert_requests(*({"due_at": T0 + timedelta(days=d), "regulation": "gdpr"} for d in (3, 1, 2)))
    undated = insert_requests({"due_at": None}, {"due_at": None}, {"due_at": None})
    listed = _ids(client, tenant, sort="due_at", order=order)
    by_due = [dated[1], dated[2], dated[0]]
    assert listed[:3] == (by_due if order == "asc" else by_due[::-1])
    assert sorted(listed[3:]) == sorted(undated) and len(listed) == 6


def test_find_a_request_by_the_callers_own_reference(
    client: TestClient, tenant: TenantKey, insert_requests: Insert
) -> None:
    insert_requests({"subject_request_id": "ticket-1"}, {"subject_request_id": "ticket-10"}, {})
    (wanted,) = insert_requests({"subject_request_id": "ticket-2"})
    assert _ids(client, tenant, subject_request_id="ticket-2") == [wanted]
    assert _ids(client, tenant, subject_request_id="ticket") == []  # exact match, not a prefix


def test_filter_by_model(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], insert_requests: Insert
) -> None:
    other = tiny.upload(client, tenant, tiny.manifest(model["dataset_id"], name="other"), tiny.safetensors_bytes())
    mine = insert_requests({}, {})
    theirs = insert_requests({"model_id": uuid.UUID(other.json()["id"])})
    assert sorted(_ids(client, tenant, model_id=model["id"])) == sorted(mine)
    assert _ids(client, tenant, model_id=other.json()["id"]) == theirs


def test_filter_by_several_states(client: TestClient, tenant: TenantKey, insert_requests: Insert) -> None:
    queued, running, completed = insert_requests(
        {"status": RequestStatus.queued}, {"status": RequestStatus.running}, {"status": RequestStatus.completed}
    )
    assert sorted(_ids(client, tenant, status=["queued", "running"])) == sorted([queued, running])
    assert _ids(client, tenant, status="completed") == [completed]


def test_an_unknown_state_is_422(client: TestClient, tenant: TenantKey) -> None:
    response = client.get(LIST, params={"status": "lost"}, headers=tenant.headers)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["location"] == ["query", "status", 0]


def test_filter_by_regulation(client: TestClient, tenant: TenantKey, insert_requests: Insert) -> None:
    gdpr, _, _ = insert_requests({"regulation": "gdpr"}, {"regulation": "ccpa"}, {"regulation": None})
    assert _ids(client, tenant, regulation="gdpr") == [gdpr]


def test_overdue_lists_in_flight_requests_past_their_due_date_and_its_negation_the_rest(
    client: TestClient, tenant: TenantKey, insert_requests: Insert
) -> None:
    past, future = utcnow() - timedelta(days=1), utcnow() + timedelta(days=1)
    overdue = insert_requests(*({"status": s, "due_at": past} for s in ("received", "queued", "running", "auditing")))
    final = insert_requests(*({"status": s, "due_at": past} for s in ("completed", "failed", "rejected", "cancelled")))
    not_yet = insert_requests({"due_at": future}, {"due_at": None})
    assert sorted(_ids(client, tenant, overdue="true")) == sorted(overdue)
    assert sorted(_ids(client, tenant, overdue="false")) == sorted(final + not_yet)
    flags = {item["id"]: item["overdue"] for item in client.get(LIST, headers=tenant.headers).json()["items"]}
    assert {request_id for request_id, flag in flags.items() if flag} == set(overdue)


def test_received_and_created_ranges_include_their_start_and_exclude_their_end(
    client: TestClient, tenant: TenantKey, insert_requests: Insert
) -> None:
    times = [T0 + timedelta(days=d) for d in range(4)]
    ids = insert_requests(*({"received_at": t, "created_at": t + timedelta(days=10)} for t in times))
    received = {"received_after": times[1].isoformat(), "received_before": times[3].isoformat()}
    assert sorted(_ids(client, tenant, **received)) == sorted(ids[1:3])
    created = {"created_after": (times[2] + timedelta(days=10)).isoformat()}
    assert sorted(_ids(client, tenant, **created)) == sorted(ids[2:])
    offset = {"received_before": "2026-03-02T11:00:00+02:00"}  # 09:00Z: the second request's instant
    assert _ids(client, tenant, **offset) == [ids[0]]


# "0.5" and "1700000000" are Unix seconds to pydantic's lax parsing, not the RFC 3339 date-time the schema names
@pytest.mark.parametrize("value", ["2026-03-01T09:00:00", "0001-01-01T00:00:00+01:00", "yesterday", "0.5",
                                   "1700000000", "2026-03-01"])
def test_a_range_bound_without_a_time_zone_out_of_range_or_not_rfc3339_is_422(
    client: TestClient, tenant: TenantKey, value: str
) -> None:
    response = client.get(LIST, params={"received_after": value}, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["location"] == ["query", "received_after"]


def test_another_tenants_requests_are_never_listed(
    client: TestClient, tenant: TenantKey, other_tenant: TenantKey, insert_requests: Insert
) -> None:
    insert_requests({}, {})
    assert _ids(client, other_tenant) == []


def test_a_token_reused_with_other_filters_is_422_and_names_them(
    client: TestClient, tenant: TenantKey, insert_requests: Insert
) -> None:
    insert_requests(*({"regulation": "gdpr"} for _ in range(3)))
    token = client.get(LIST, params={"limit": 1, "regulation": "gdpr"}, headers=tenant.headers).json()[
        "next_page_token"
    ]
    response = client.get(
        LIST, params={"limit": 1, "regulation": "ccpa", "page_token": token}, headers=tenant.headers
    )
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert "other filters (regulation differ)" in response.json()["detail"]
    assert response.json()["errors"][0]["location"] == ["query", "page_token"]


def test_a_token_reused_with_another_sort_is_422(
    client: TestClient, tenant: TenantKey, insert_requests: Insert
) -> None:
    insert_requests({}, {}, {})
    token = client.get(LIST, params={"limit": 1}, headers=tenant.headers).json()["next_page_token"]
    response = client.get(LIST, params={"page_token": token, "order": "asc"}, headers=tenant.headers)
    assert response.status_code == 422
    assert "created_at descending" in response.json()["detail"] and "created_at ascending" in response.json()["detail"]


def test_a_repeated_filter_given_in_another_order_continues_with_the_same_token(
    client: TestClient, tenant: TenantKey, insert_requests: Insert
) -> None:
    insert_requests(*({"status": s} for s in ("queued", "running", "queued")))
    first = client.get(LIST, params={"limit": 1, "status": ["queued", "running"]}, headers=tenant.headers).json()
    params = {"limit": 5, "status": ["running", "queued"], "page_token": first["next_page_token"]}
    rest = client.get(LIST, params=params, headers=tenant.headers)
    assert rest.status_code == 200 and len(rest.json()["items"]) == 2
