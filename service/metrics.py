"""Prometheus metrics of the ledger, computed at scrape time: jobs by status and kind, how long finished jobs took,
by kind, and the deletion requests overdue per tenant.

The numbers come from the database (the source of truth, shared by every API process and worker), read with
three aggregate queries through a short-lived session; nothing is kept in process memory between scrapes, so
every API replica reports the same values. When the database cannot be read the ledger families are left out
of the scrape (and the failure is logged): the HTTP metrics of the same page must still be served.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import Float, case, func, select
from sqlalchemy.exc import CompileError, SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from service.db import session_factory
from service.requests import repository as requests_repo
from service.tables import Job, JobKind, JobStatus, utcnow

# Upper bounds (seconds) of the job-duration buckets: from a tiny model's job (about a second) to a large
# one with reference models (an hour); anything longer lands in +Inf only.
JOB_SECONDS_BUCKETS: tuple[float, ...] = (1, 5, 15, 60, 300, 900, 3600)

JOBS_METRIC = "unlearning_jobs"
JOB_SECONDS_METRIC = "unlearning_job_duration_seconds"
OVERDUE_METRIC = "unlearning_overdue_deletion_requests"
LEDGER_UP_METRIC = "unlearning_ledger_up"

log = logging.getLogger("service.metrics")


class _seconds_between(FunctionElement[float]):
    """seconds_between(start, end): end - start in seconds as a float, on each supported backend."""

    type = Float()
    name = "seconds_between"
    inherit_cache = True


@compiles(_seconds_between)
def _seconds_between_unsupported(element: _seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"job durations are not implemented for the {compiler.dialect.name} dialect")


@compiles(_seconds_between, "postgresql")
def _seconds_between_postgresql(element: _seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


@compiles(_seconds_between, "sqlite")
def _seconds_between_sqlite(element: _seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps the timestamps as UTC text; julianday() parses them to whole milliseconds, and the float
    # round trip through days would put a job of exactly 60 s at 59.99999...: rounding to the millisecond
    # keeps the bucket bounds (le, inclusive) exact.
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"round((julianday({end}) - julianday({start})) * 86400.0, 3)"


def count_jobs_by_status_and_kind(session: Session) -> dict[tuple[str, str], int]:
    """(status, kind) -> number of jobs, with one GROUP BY query."""
    rows = session.execute(select(Job.status, Job.kind, func.count()).group_by(Job.status, Job.kind))
    return {(JobStatus(status).value, JobKind(kind).value): int(count) for status, kind, count in rows}


def job_seconds_by_kind(
    session: Session, buckets: Sequence[float] = JOB_SECONDS_BUCKETS
) -> dict[str, tuple[int, float, list[int]]]:
    """kind -> (finished jobs, total seconds, cumulative count of jobs at or under each bucket bound).

    A finished job is one with both started_at and finished_at (a job cancelled before any worker claimed it
    never ran and is not counted). The database does the sums: one pass, one row per kind, however many jobs.
    """
    seconds = _seconds_between(Job.started_at, Job.finished_at)
    durations = (
        select(Job.kind.label("kind"), seconds.label("seconds"))
        .where(Job.started_at.is_not(None), Job.finished_at.is_not(None))
        .subquery()
    )
    # "seconds <= bound" is already cumulative, as Prometheus' le buckets are
    bucket_counts = [func.sum(case((durations.c.seconds <= bound, 1), else_=0)) for bound in buckets]
    query = select(
        durations.c.kind, func.count(), func.sum(durations.c.seconds), *bucket_counts
    ).group_by(durations.c.kind)
    result: dict[str, tuple[int, float, list[int]]] = {}
    for kind, count, total, *cumulative in session.execute(query):
        # PostgreSQL's EXTRACT answers NUMERIC (a Decimal); a sum over no rows is NULL
        result[JobKind(kind).value] = (int(count), float(total or 0.0), [int(c or 0) for c in cumulative])
    return result


class LedgerMetricsCollector(Collector):
    """The ledger's job and overdue-request metrics, read from the database on every scrape."""

    def __init__(self, database_url: str, buckets: Sequence[float] = JOB_SECONDS_BUCKETS) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError(f"histogram buckets must be distinct and increasing, got {list(buckets)}")
        self.database_url = database_url
        self.buckets = tuple(float(bound) for bound in buckets)

    def describe(self) -> Iterable[Metric]:
        # What the registry checks names against at registration, without touching the database.
        return [
            GaugeMetricFamily(LEDGER_UP_METRIC, _UP_HELP),
            GaugeMetricFamily(JOBS_METRIC, _JOBS_HELP, labels=["status", "kind"]),
            HistogramMetricFamily(JOB_SECONDS_METRIC, _SECONDS_HELP, labels=["kind"]),
            GaugeMetricFamily(OVERDUE_METRIC, _OVERDUE_HELP, labels=["tenant"]),
        ]

    def collect(self) -> Iterable[Metric]:
        try:
            # its own session, closed at once: a scrape never joins or holds a request's transaction
            with session_factory(self.database_url)() as session:
                counts = count_jobs_by_status_and_kind(session)
                durations = job_seconds_by_kind(session, self.buckets)
                overdue = requests_repo.count_overdue_by_tenant(session=session, now=utcnow())
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            log.warning(
                "job metrics left out of the scrape: the ledger could not be read",
                extra={"error": f"{type(exc).__name__}: {reason[0] if reason else ''}"},
            )
            yield GaugeMetricFamily(LEDGER_UP_METRIC, _UP_HELP, value=0)
            return
        yield GaugeMetricFamily(LEDGER_UP_METRIC, _UP_HELP, value=1)

        jobs = GaugeMetricFamily(JOBS_METRIC, _JOBS_HELP, labels=["status", "kind"])
        # every combination, zeros included: a status that empties must read 0, not vanish from the graph
        for status in JobStatus:
            for kind in JobKind:
                jobs.add_metric([status.value, kind.value], counts.get((status.value, kind.value), 0))
        yield jobs

        seconds = HistogramMetricFamily(JOB_SECONDS_METRIC, _SECONDS_HELP, labels=["kind"])
        for kind in JobKind:
            count, total, cumulative = durations.get(kind.value, (0, 0.0, [0] * len(self.buckets)))
            buckets = [(floatToGoString(bound), c) for bound, c in zip(self.buckets, cumulative, strict=True)]
            seconds.add_metric([kind.value], [*buckets, ("+Inf", count)], sum_value=total)
        yield seconds

        # every tenant, zeros included: a tenant that catches up must read 0, not vanish from the graph
        overdue_requests = GaugeMetricFamily(OVERDUE_METRIC, _OVERDUE_HELP, labels=["tenant"])
        for tenant, count in sorted(overdue.items()):
            overdue_requests.add_metric([tenant], count)
        yield overdue_requests


_UP_HELP = "1 if this scrape could read the job ledger, 0 if the database was unreachable"
_JOBS_HELP = "Jobs in the ledger, by status and kind"
_SECONDS_HELP = "Run time of finished jobs (finished_at - started_at of the last attempt), by kind"
_OVERDUE_HELP = "Deletion requests past their due date and still in flight (received to auditing), by tenant name"


def ledger_registry(database_url: str) -> CollectorRegistry:
    """A registry holding only the ledger's collector; cheap enough to build per scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerMetricsCollector(database_url))
    return registry
