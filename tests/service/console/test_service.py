"""What the console's pages are built from: requests per week by how they stand against their due dates, the
request list's form fields read as the API's filters, and the event chain's verification (a full walk, then the
events appended since, and a full walk again in the background)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from service.console import service as console
from service.db import session_factory
from service.errors import Unprocessable
from service.events import service as events
from service.settings import Settings
from service.tables import DeletionRequest, RequestStatus, utcnow
from service.tenants.service import Principal
from tests.service.factories import TenantKey, tamper_with_event

TODAY = utcnow().date()
THIS_MONDAY = TODAY - timedelta(days=TODAY.weekday())


def _at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _request(model_id: uuid.UUID, tenant: TenantKey, status: RequestStatus, *, received: datetime,
             due: datetime | None, completed: datetime | None = None) -> DeletionRequest:  # fmt: skip
    return DeletionRequest(
        id=uuid.uuid4(), tenant_id=tenant.tenant_id, model_id=model_id, payload_sha256="0" * 64, sample_count=1,
        status=status, received_at=received, due_at=due, completed_at=completed,
    )  # fmt: skip


def test_requests_per_week_count_on_time_late_and_open_by_the_week_they_were_received(
    settings: Settings, tenant: TenantKey, other_tenant: TenantKey, model: dict[str, Any]
) -> None:
    model_id = uuid.UUID(model["id"])
    last_week = THIS_MONDAY - timedelta(weeks=1)
    now = utcnow()
    rows = [
        # last week: completed by the due date, completed after it, still open past it (overdue), cancelled
        _request(model_id, tenant, RequestStatus.completed, received=_at(last_week), due=_at(last_week) + timedelta(days=3),
                 completed=_at(last_week) + timedelta(days=1)),
        _request(model_id, tenant, RequestStatus.completed, received=_at(last_week), due=_at(last_week) + timedelta(hours=1),
                 completed=_at(last_week) + timedelta(days=2)),
        _request(model_id, tenant, RequestStatus.queued, received=_at(last_week), due=now - timedelta(hours=1)),
        _request(model_id, tenant, RequestStatus.cancelled, received=_at(last_week), due=None),
        # this week: open and not yet due, and completed without a due date (on time)
        _request(model_id, tenant, RequestStatus.running, received=now, due=now + timedelta(days=30)),
        _request(model_id, tenant, RequestStatus.completed, received=now, due=None, completed=now),
        # long before the weeks shown
        _request(model_id, tenant, RequestStatus.completed, received=_at(THIS_MONDAY - timedelta(weeks=60)), due=None,
                 completed=now),
    ]  # fmt: skip
    with session_factory(settings.database_url)() as session, session.begin():
        session.add_all(rows)
    principal = Principal(tenant_id=tenant.tenant_id, api_key_id=uuid.uuid4(), scopes=frozenset({"read"}))
    with session_factory(settings.database_url)() as session:
        weeks = console.week_counts(session, principal=principal)
        others = console.week_counts(
            session, principal=Principal(tenant_id=other_tenant.tenant_id, api_key_id=uuid.uuid4(),
                                         scopes=frozenset({"read"})))  # fmt: skip
    assert len(weeks) == console.WEEKS_SHOWN
    assert [w.week_start for w in weeks] == [THIS_MONDAY - timedelta(weeks=console.WEEKS_SHOWN - 1 - i)
                                             for i in range(console.WEEKS_SHOWN)]  # fmt: skip
    assert (weeks[-2].on_time, weeks[-2].late, weeks[-2].open) == (1, 2, 0)
    assert (weeks[-1].on_time, weeks[-1].late, weeks[-1].open) == (1, 0, 1)
    assert sum(w.on_time + w.late + w.open for w in weeks[:-2]) == 0
    assert sum(w.on_time + w.late + w.open for w in others) == 0  # another tenant's requests are not counted


def test_empty_form_fields_are_no_filter_and_repeated_states_are_kept() -> None:
    query = console.request_query({"status": ["queued", "", "running"], "model_id": [""], "overdue": [""],
                                   "subject_request_id": ["ticket-1"]})  # fmt: skip
    assert query.status == [RequestStatus.queued, RequestStatus.running]
    assert query.model_id is None and query.overdue is None and query.subject_request_id == "ticket-1"


@pytest.mark.parametrize("params", [{"status": ["sleeping"]}, {"overdue": ["perhaps"]}, {"sort": ["size"]},
                                    {"subject_request_id": ["x" * 201]}])  # fmt: skip
def test_a_bad_filter_is_a_422_naming_the_query_parameter(params: dict[str, list[str]]) -> None:
    with pytest.raises(Unprocessable) as raised:
        console.request_query(params)
    assert raised.value.errors and raised.value.errors[0].location[:2] == ["query", next(iter(params))]


# ---- the event chain's verification ----


def _chain(settings: Settings) -> console.ChainStatus:
    """The status a request page shows, once the walk a first page starts has ended."""
    with session_factory(settings.database_url)() as session:
        status = console.chain_status(session, database_url=settings.database_url)
        if status.verdict is None:
            _wait_for_walks()
            status = console.chain_status(session, database_url=settings.database_url)
        return status


def _wait_for_walks() -> None:
    for thread in list(console._walks.values()):
        thread.join()


def _append(settings: Settings, count: int) -> None:
    with session_factory(settings.database_url)() as session, session.begin():
        for i in range(count):
            events.append(session, event_type="test.event", subject_type="test", subject_id=str(i), actor="test",
                          tenant_id=None, data={"i": i})  # fmt: skip


def test_the_first_check_walks_the_whole_chain_in_the_background_and_names_a_broken_row(
    settings: Settings, tenant: TenantKey
) -> None:
    tamper_with_event(settings.database_url, seq=1)
    with session_factory(settings.database_url)() as session:
        first = console.chain_status(session, database_url=settings.database_url)
    assert first.verdict is None  # the page does not wait for the walk
    status = _chain(settings)
    assert not status.verdict.ok and status.verdict.broken_seq == 1
    _wait_for_walks()


def test_later_checks_verify_the_events_appended_since_and_find_one_altered(
    settings: Settings, tenant: TenantKey
) -> None:
    first = _chain(settings)
    assert first.verdict.ok
    _append(settings, 3)
    second = _chain(settings)
    assert second.verdict.ok and second.verdict.count == first.verdict.count + 3
    assert second.walked_at == first.walked_at  # no second full walk
    _append(settings, 2)
    tamper_with_event(settings.database_url, seq=second.verdict.count + 2)
    third = _chain(settings)
    assert not third.verdict.ok and third.verdict.broken_seq == second.verdict.count + 2


def test_an_old_event_altered_after_a_check_is_found_by_the_next_full_walk_in_the_background(
    settings: Settings, tenant: TenantKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _chain(settings)
    assert first.verdict.ok
    tamper_with_event(settings.database_url, seq=1)
    monkeypatch.setattr(console, "FULL_WALK_EVERY", timedelta(0))
    meanwhile = _chain(settings)  # the page does not wait for the walk it starts
    assert meanwhile.verdict.ok and meanwhile.walked_at == first.walked_at
    _wait_for_walks()
    status = _chain(settings)
    assert not status.verdict.ok and status.verdict.broken_seq == 1
    _wait_for_walks()


def test_a_background_walk_of_an_intact_chain_moves_the_walks_time_on(
    settings: Settings, tenant: TenantKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _chain(settings)
    monkeypatch.setattr(console, "FULL_WALK_EVERY", timedelta(0))
    _chain(settings)
    _wait_for_walks()
    _append(settings, 1)
    later = _chain(settings)
    _wait_for_walks()
    assert later.verdict.ok and later.walked_at > first.walked_at and later.verdict.count == first.verdict.count + 1
