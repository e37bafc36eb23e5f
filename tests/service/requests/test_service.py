"""Rules of deletion requests that need no database: due dates and the state machine's allowed moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.requests.service import due_date
from service.requests.states import ALLOWED, InvalidTransition, transition
from service.tables import DeletionRequest, RequestStatus


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (datetime(2026, 1, 31, 9, tzinfo=UTC), datetime(2026, 2, 28, 9, tzinfo=UTC)),  # month end clamps
        (datetime(2028, 1, 31, 9, tzinfo=UTC), datetime(2028, 2, 29, 9, tzinfo=UTC)),  # leap year
        (datetime(2026, 12, 15, 9, tzinfo=UTC), datetime(2027, 1, 15, 9, tzinfo=UTC)),  # year end
    ],
)
def test_gdpr_requests_are_due_one_calendar_month_after_receipt(received: datetime, due: datetime) -> None:
    assert due_date("gdpr", received) == due


def test_ccpa_requests_are_due_45_days_after_receipt_and_others_have_no_due_date() -> None:
    received = datetime(2026, 11, 26, tzinfo=UTC)
    assert due_date("ccpa", received) == received + timedelta(days=45)
    assert due_date(None, received) is None


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (RequestStatus.running, RequestStatus.cancelled),  # cancelled only before running
        (RequestStatus.completed, RequestStatus.queued),
        (RequestStatus.queued, RequestStatus.completed),  # never skips the run and the audit
    ],
)
def test_moves_outside_the_state_machine_are_refused(current: RequestStatus, target: RequestStatus) -> None:
    request = DeletionRequest(status=current)
    with pytest.raises(InvalidTransition, match=f"is {current.value}; it cannot become {target.value}"):
        transition(None, request, target, actor="test")  # type: ignore[arg-type]  # refused before any I/O
    assert request.status == current


def test_terminal_states_allow_no_move() -> None:
    for status in (RequestStatus.completed, RequestStatus.failed, RequestStatus.cancelled, RequestStatus.rejected):
        assert ALLOWED[status] == frozenset()
