"""Finding things through the client, on the real server: deletion requests by filter (the caller's own reference,
overdue, time ranges), jobs, a model's suppression list as pages and as a CSV file, and the regulation clock
(received_at) on submission."""

from __future__ import annotations

import asyncio
import csv
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.client.conftest import FORGOTTEN_BY_V2, Served
from unlearning_client import AsyncClient, Client, NotFound, SampleState


class Recording(httpx.BaseTransport):
    """The real server, with the query of every request kept, repeated parameters included."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.queries: list[list[tuple[str, str]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.queries.append(request.url.params.multi_items())
        return self.inner.handle_request(request)


def test_a_request_is_found_by_the_callers_own_reference(
    api: Client, served: Served, fresh_ids: Callable[[int], list[str]]
) -> None:
    ticket = f"ticket-{uuid.uuid4().hex[:8]}"
    accepted = api.submit_deletion_request(served.model.id, fresh_ids(2), subject_request_id=ticket)
    assert [r.id for r in api.iter_deletion_requests(subject_request_id=ticket)] == [accepted.id]
    assert [r.id for r in api.iter_deletion_requests(subject_request_id="fixture")] == [served.request_id]


def test_received_at_starts_the_clock_and_an_overdue_request_is_listed_as_such(
    api: Client, served: Served, fresh_ids: Callable[[int], list[str]]
) -> None:
    received = datetime.now(UTC) - timedelta(days=60)
    accepted = api.submit_deletion_request(served.model.id, fresh_ids(2), regulation="ccpa", received_at=received)
    assert (accepted.received_at, accepted.due_at) == (received, received + timedelta(days=45))
    assert accepted.overdue is True
    overdue = {r.id for r in api.iter_deletion_requests(model_id=served.model.id, overdue=True, page_size=1)}
    assert accepted.id in overdue and served.request_id not in overdue  # the fixture's completed long ago


def test_filters_go_as_query_parameters_several_values_repeated(served: Served) -> None:
    transport = Recording()
    with Client(served.url, served.key, transport=transport) as api:
        api.list_deletion_requests(status=["queued", "running"], overdue=False, limit=5, sort="due_at",
                                   received_after=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
        api.list_jobs(kind="unlearn", model_id=served.model.id)
    requests_query, jobs_query = transport.queries
    assert sorted(requests_query) == [
        ("limit", "5"), ("overdue", "false"), ("received_after", "2026-01-01T00:00:00+00:00"), ("sort", "due_at"),
        ("status", "queued"), ("status", "running"),
    ]  # fmt: skip
    assert sorted(jobs_query) == [("kind", "unlearn"), ("model_id", str(served.model.id))]


def test_a_date_time_without_a_time_zone_is_refused_before_anything_is_sent(served: Served) -> None:
    transport = Recording()
    with Client(served.url, served.key, transport=transport) as api:
        with pytest.raises(ValueError, match="created_before needs a time zone"):
            api.list_deletion_requests(created_before=datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="received_at needs a time zone"):
            api.submit_deletion_request(served.model.id, ["digit-0000"], received_at=datetime(2026, 1, 1))
    assert transport.queries == []


def test_an_unknown_filter_is_a_type_error(api: Client) -> None:
    with pytest.raises(TypeError, match=r"unknown filter\(s\) \['ticket'\]"):
        api.list_deletion_requests(ticket="4711")  # type: ignore[call-arg]


def test_jobs_are_listed_by_model_kind_and_state(api: Client, served: Served) -> None:
    job_id = api.get_deletion_request(served.request_id).job_id
    succeeded = list(api.iter_jobs(model_id=served.model.id, kind="unlearn", status=["succeeded"], page_size=1))
    assert [job.id for job in succeeded] == [job_id]
    assert succeeded[0].request_ids == [served.request_id]


def test_the_suppression_list_holds_what_version_2_forgot(api: Client, served: Served) -> None:
    forgotten = list(api.iter_forgotten_samples(served.model.id, state="forgotten", page_size=3))
    assert [sample.sample_id for sample in forgotten] == FORGOTTEN_BY_V2
    assert {(s.state, s.version, s.request_id) for s in forgotten} == {
        (SampleState.forgotten, 2, served.request_id)
    }


def test_the_csv_download_holds_the_rows_of_the_list(api: Client, served: Served, tmp_path: Path) -> None:
    path = api.download_forgotten_samples(served.model.id, tmp_path / "suppression.csv", state="forgotten")
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    listed = list(api.iter_forgotten_samples(served.model.id, state="forgotten"))
    assert [(r["sample_id"], r["request_id"], r["version"]) for r in rows] == [
        (s.sample_id, str(s.request_id), str(s.version)) for s in listed
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["suppression.csv"]  # no temporary file left


def test_the_csv_of_an_unknown_model_is_not_found_and_leaves_no_file(api: Client, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        api.download_forgotten_samples(uuid.uuid4(), tmp_path / "suppression.csv")
    assert list(tmp_path.iterdir()) == []


def test_the_async_client_finds_requests_and_downloads_the_csv(served: Served, tmp_path: Path) -> None:
    async def find() -> tuple[list[uuid.UUID], Path]:
        async with AsyncClient(served.url, served.key) as api:
            found = [r.id async for r in api.iter_deletion_requests(subject_request_id="fixture")]
            return found, await api.download_forgotten_samples(served.model.id, tmp_path / "s.csv", state="forgotten")

    found, path = asyncio.run(find())
    assert found == [served.request_id]
    assert path.read_text().splitlines()[1].startswith(f"{FORGOTTEN_BY_V2[0]},{served.request_id},forgotten,2,")
