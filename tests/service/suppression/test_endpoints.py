"""A model's suppression list (GET /v1/models/{id}/forgotten-samples and .csv): every sample ID forgotten or
being forgotten, with its request and version, in cursor pages by sample ID, and as a CSV streamed in batches."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert

from service.db import session_factory
from service.settings import Settings
from service.suppression.service import CSV_BATCH
from service.tables import ForgottenSample, ModelVersion, VersionStatus
from tests.service import tiny
from tests.service.factories import TenantKey
from worker.jobs import Outcome, run_job

PROBLEM = "application/problem+json"
READY_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


def _claim(database_url: str, model_id: str, sample_ids: list[str], *, version_id: uuid.UUID | None = None) -> str:
    """Claims written straight into the ledger for one (made-up) request; its id."""
    request_id = uuid.uuid4()
    rows = [{"model_id": uuid.UUID(model_id), "sample_id": s, "request_id": request_id, "version_id": version_id}
            for s in sample_ids]  # fmt: skip
    with session_factory(database_url)() as session, session.begin():
        session.execute(insert(ForgottenSample), rows)
    return str(request_id)


def _version_2(database_url: str, model_id: str) -> uuid.UUID:
    """A ready version 2 row, as a job that forgot samples would leave it."""
    version = ModelVersion(id=uuid.uuid4(), model_id=uuid.UUID(model_id), number=2, status=VersionStatus.ready,
                           checkpoint_uri="file:///v2", sha256="0" * 64, size_bytes=1, ready_at=READY_AT)  # fmt: skip
    with session_factory(database_url)() as session, session.begin():
        session.add(version)
    return version.id


def _listed(client: TestClient, tenant: TenantKey, model_id: str, **params: Any) -> list[dict[str, Any]]:
    items, token = [], None
    while True:
        query = {**params, **({"page_token": token} if token else {})}
        page = client.get(f"/v1/models/{model_id}/forgotten-samples", params=query, headers=tenant.headers)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        token = page.json()["next_page_token"]
        if token is None:
            return items


def _csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_the_suppression_list_equals_the_union_of_completed_requests_ids(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], settings: Settings
) -> None:
    first = tiny.submit(client, tenant, model["id"], [tiny.sample_id(i) for i in range(10)]).json()
    overlapping = tiny.submit(client, tenant, model["id"], [tiny.sample_id(i) for i in range(5, 15)]).json()
    assert first["job_id"] == overlapping["job_id"]  # coalesced into one job
    assert run_job(uuid.UUID(first["job_id"]), settings=settings, device="cpu") == Outcome.succeeded
    in_flight = tiny.submit(client, tenant, model["id"], [tiny.sample_id(i) for i in range(20, 23)]).json()

    forgotten = _listed(client, tenant, model["id"], state="forgotten", limit=4)
    assert [item["sample_id"] for item in forgotten] == [tiny.sample_id(i) for i in range(15)]  # the union, by ID
    assert {item["request_id"] for item in forgotten[:10]} == {first["id"]}
    assert {item["request_id"] for item in forgotten[10:]} == {overlapping["id"]}  # the IDs it added
    version = client.get(f"/v1/deletion-requests/{first['id']}", headers=tenant.headers).json()["version"]
    assert {(item["state"], item["version"]) for item in forgotten} == {("forgotten", version)}
    assert all(item["forgotten_at"] is not None for item in forgotten)
    pending = _listed(client, tenant, model["id"], state="in_flight")
    assert [(item["sample_id"], item["request_id"], item["version"]) for item in pending] == [
        (tiny.sample_id(i), in_flight["id"], None) for i in range(20, 23)
    ]
    assert _listed(client, tenant, model["id"]) == forgotten + pending  # by default both: none may be trained on


def test_a_request_in_flight_lists_its_samples_without_a_version(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    accepted = tiny.submit(client, tenant, model["id"], [tiny.sample_id(3)]).json()
    (item,) = _listed(client, tenant, model["id"])
    assert item == {"sample_id": tiny.sample_id(3), "request_id": accepted["id"], "state": "in_flight",
                    "version": None, "forgotten_at": None}  # fmt: skip
    assert _listed(client, tenant, model["id"], state="forgotten") == []


def test_a_cancelled_requests_samples_leave_the_list(
    client: TestClient, tenant: TenantKey, model: dict[str, Any]
) -> None:
    accepted = tiny.submit(client, tenant, model["id"], [tiny.sample_id(3), tiny.sample_id(4)]).json()
    client.delete(f"/v1/deletion-requests/{accepted['id']}", headers=tenant.headers)
    assert _listed(client, tenant, model["id"]) == []


def test_pages_follow_the_sample_ids_each_once(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    ids = [f"s-{i:04d}" for i in range(250)]
    _claim(database_url, model["id"], ids[::-1])
    assert [item["sample_id"] for item in _listed(client, tenant, model["id"], limit=100)] == ids


def test_the_csv_streams_every_id_in_batches_read_from_the_ledger(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    ids = [f"s-{i:06d}" for i in range(2 * CSV_BATCH + 1)]
    request_id = _claim(database_url, model["id"], ids)
    reads: list[str] = []
    engine = session_factory(database_url).kw["bind"]
    record = lambda conn, cursor, statement, *args: reads.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(f"/v1/models/{model['id']}/forgotten-samples.csv", headers=tenant.headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    rows = _csv_rows(response)
    assert [row["sample_id"] for row in rows] == ids
    assert {(row["request_id"], row["state"], row["version"], row["forgotten_at"]) for row in rows} == {
        (request_id, "in_flight", "", "")
    }
    assert "content-length" not in response.headers  # streamed, not built as one body
    assert response.headers["content-disposition"] == f'attachment; filename="forgotten-samples-{model["id"]}.csv"'
    assert len([s for s in reads if "FROM forgotten_sample" in s]) == 3  # one read per batch


def test_the_csv_names_the_version_that_forgot_each_sample_and_takes_the_state_filter(
    client: TestClient, tenant: TenantKey, model: dict[str, Any], database_url: str
) -> None:
    request_id = _claim(database_url, model["id"], ["b,1", 'a"2'], version_id=_version_2(database_url, model["id"]))
    _claim(database_url, model["id"], ["c-3"])
    response = client.get(
        f"/v1/models/{model['id']}/forgotten-samples.csv", params={"state": "forgotten"}, headers=tenant.headers
    )
    assert response.text.splitlines()[0] == "sample_id,request_id,state,version,forgotten_at"
    assert [list(row.values()) for row in _csv_rows(response)] == [
        [sample_id, request_id, "forgotten", "2", READY_AT.isoformat()] for sample_id in ('a"2', "b,1")
    ]


@pytest.mark.parametrize("suffix", ["", ".csv"])
def test_another_tenants_model_is_404(
    client: TestClient, other_tenant: TenantKey, model: dict[str, Any], suffix: str
) -> None:
    response = client.get(f"/v1/models/{model['id']}/forgotten-samples{suffix}", headers=other_tenant.headers)
    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM


def test_an_unknown_state_is_422(client: TestClient, tenant: TenantKey, model: dict[str, Any]) -> None:
    response = client.get(f"/v1/models/{model['id']}/forgotten-samples", params={"state": "gone"},
                          headers=tenant.headers)  # fmt: skip
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == ["query", "state"]
