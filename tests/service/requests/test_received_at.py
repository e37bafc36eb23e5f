"""The regulation's clock: a request may say when the controller received it (received_at, RFC 3339 with a time
zone, not in the future); the due date counts from then, and every read shows received_at and whether the
request is overdue. The time is injected through received_at, never slept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.tables import utcnow
from tests.service import tiny
from tests.service.factories import TenantKey, count_rows

PROBLEM = "application/problem+json"
IDS = [tiny.sample_id(i) for i in range(3)]


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


def _ledger(database_url: str) -> dict[str, int]:
    tables = ("deletion_request", "forgotten_sample", "job", "event")
    return {table: count_rows(database_url, table) for table in tables}


def _problem_at_received_at(response: Any) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    (error,) = response.json()["errors"]
    assert error["location"] == ["body", "received_at"]
    return error["detail"]


def test_the_gdpr_due_date_counts_from_the_controllers_receipt(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    body = tiny.submit(client, tenant, model["id"], IDS, regulation="gdpr", received_at="2026-01-31T18:30:00+01:00")
    assert body.status_code == 202, body.text
    read = client.get(f"/v1/deletion-requests/{body.json()['id']}", headers=tenant.headers).json()
    assert datetime.fromisoformat(read["received_at"]) == datetime(2026, 1, 31, 17, 30, tzinfo=UTC)
    # one month from 31 January is the last day of February
    assert datetime.fromisoformat(read["due_at"]) == datetime(2026, 2, 28, 17, 30, tzinfo=UTC)


def test_the_ccpa_due_date_is_45_days_after_the_controllers_receipt(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    received = utcnow() - timedelta(days=10)
    body = tiny.submit(client, tenant, model["id"], IDS, regulation="ccpa", received_at=received.isoformat()).json()
    assert datetime.fromisoformat(body["due_at"]) == received + timedelta(days=45)
    assert body["overdue"] is False


def test_a_request_received_long_ago_is_overdue_at_once_while_in_flight(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    received = (utcnow() - timedelta(days=40)).isoformat()
    accepted = tiny.submit(client, tenant, model["id"], IDS, regulation="gdpr", received_at=received).json()
    assert (accepted["status"], accepted["overdue"]) == ("queued", True)
    listed = client.get("/v1/deletion-requests", params={"overdue": "true"}, headers=tenant.headers).json()
    assert [item["id"] for item in listed["items"]] == [accepted["id"]]


def test_a_cancelled_request_past_its_due_date_is_not_overdue(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    received = (utcnow() - timedelta(days=40)).isoformat()
    accepted = tiny.submit(client, tenant, model["id"], IDS, regulation="gdpr", received_at=received).json()
    cancelled = client.delete(f"/v1/deletion-requests/{accepted['id']}", headers=tenant.headers).json()
    assert (cancelled["status"], cancelled["overdue"]) == ("cancelled", False)


def test_without_received_at_the_clock_starts_at_this_services_receipt(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    body = tiny.submit(client, tenant, model["id"], IDS, regulation="ccpa").json()
    assert body["received_at"] == body["created_at"]
    assert datetime.fromisoformat(body["due_at"]) == datetime.fromisoformat(body["created_at"]) + timedelta(days=45)


def test_received_at_in_the_future_is_422_and_records_nothing(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    before = _ledger(database_url)
    tomorrow = (utcnow() + timedelta(days=1)).isoformat()
    detail = _problem_at_received_at(tiny.submit(client, tenant, model["id"], IDS, received_at=tomorrow))
    assert "is in the future" in detail
    assert _ledger(database_url) == before


def test_a_clock_a_few_seconds_ahead_is_accepted(client: TestClient, tenant: TenantKey, model: dict[str, Any]) -> None:
    ahead = utcnow() + timedelta(seconds=20)
    body = tiny.submit(client, tenant, model["id"], IDS, received_at=ahead.isoformat())
    assert body.status_code == 202, body.text
    assert datetime.fromisoformat(body.json()["received_at"]) == ahead


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-31T18:30:00",
        "2026-01-31",
        "last tuesday",
        1767225600,
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_received_at_without_a_time_zone_or_not_a_date_time_since_1970_is_422(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str, value: Any
) -> None:
    before = _ledger(database_url)
    _problem_at_received_at(tiny.submit(client, tenant, model["id"], IDS, received_at=value))
    assert _ledger(database_url) == before


def test_a_retry_with_the_same_received_at_gets_the_first_answer_and_another_one_is_a_reused_key(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    same_instant = ["2026-02-01T10:00:00Z", "2026-02-01T11:00:00+01:00"]
    first = tiny.submit(client, tenant, model["id"], IDS, key="k-1", received_at=same_instant[0])
    again = tiny.submit(client, tenant, model["id"], IDS, key="k-1", received_at=same_instant[1])
    assert (again.status_code, again.json()["id"]) == (202, first.json()["id"])
    other = tiny.submit(client, tenant, model["id"], IDS, key="k-1", received_at="2026-02-02T10:00:00Z")
    assert other.status_code == 422 and "different body" in other.json()["detail"]
