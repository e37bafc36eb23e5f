"""When a failed callback is tried again: the default schedule (Standard Webhooks' example) spans days, each
delay is jittered within the stated share, a Retry-After is read as seconds or an HTTP date and bounded, and
an attempt waits 15 s for its answer by default."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from service.callbacks import service
from service.settings import Settings

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
DAY_S = 24 * 3600


def test_the_default_schedule_retries_for_more_than_a_day_even_when_every_delay_is_jittered_shortest() -> None:
    settings = Settings()
    delays = settings.webhook_retry_delays_seconds
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]  # Standard Webhooks' example
    assert service.max_attempts(settings) == 10
    assert sum(delays) * (1 - settings.webhook_retry_jitter) > DAY_S


def test_each_delay_is_jittered_within_the_stated_share_on_both_sides() -> None:
    settings = Settings(webhook_retry_jitter=0.2)
    rng = random.Random(7)
    for attempts, base in enumerate(settings.webhook_retry_delays_seconds, start=1):
        drawn = [service.retry_delay(attempts, settings=settings, rng=rng).total_seconds() for _ in range(100)]
        assert all(0.8 * base <= d <= 1.2 * base for d in drawn), (base, min(drawn), max(drawn))
        assert min(drawn) < base < max(drawn)


def test_without_jitter_the_delays_are_the_schedules_own() -> None:
    settings = Settings(webhook_retry_delays_seconds=[10, 30], webhook_retry_jitter=0.0)
    delays = [service.retry_delay(n, settings=settings, rng=random.Random()) for n in (1, 2)]
    assert delays == [timedelta(seconds=10), timedelta(seconds=30)]


def test_an_attempt_waits_15_seconds_for_its_answer_by_default() -> None:
    assert Settings().webhook_timeout_seconds == 15.0


def test_retry_after_in_seconds_is_the_wait() -> None:
    assert service.retry_after("120", now=NOW, limit_s=DAY_S) == timedelta(seconds=120)


def test_retry_after_as_an_http_date_is_the_time_until_then() -> None:
    then = format_datetime(NOW + timedelta(hours=2), usegmt=True)  # "Wed, 02 Dec 2026 14:00:00 GMT"
    assert service.retry_after(then, now=NOW, limit_s=DAY_S) == timedelta(hours=2)


def test_retry_after_a_date_already_past_means_at_once() -> None:
    then = format_datetime(NOW - timedelta(minutes=5), usegmt=True)
    assert service.retry_after(then, now=NOW, limit_s=DAY_S) == timedelta(0)


def test_retry_after_longer_than_the_maximum_wait_is_cut_to_it() -> None:
    assert service.retry_after(str(30 * DAY_S), now=NOW, limit_s=DAY_S) == timedelta(seconds=DAY_S)
    assert service.retry_after("9" * 5000, now=NOW, limit_s=DAY_S) == timedelta(seconds=DAY_S)
    later = format_datetime(NOW + timedelta(days=400), usegmt=True)
    assert service.retry_after(later, now=NOW, limit_s=DAY_S) == timedelta(seconds=DAY_S)


def test_an_absent_or_unreadable_retry_after_gives_no_wait() -> None:
    for value in (None, "", "soon", "-5", "1.5", "12 s", "Wed, 32 Dec 2026 14:00:00 GMT"):
        assert service.retry_after(value, now=NOW, limit_s=DAY_S) is None, value
