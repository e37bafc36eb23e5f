"""Rules of deletion requests that need no database: due dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.requests.service import due_date


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
