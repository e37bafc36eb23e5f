"""Ledger metrics at /metrics, read from the ledger at scrape time: jobs by status and kind, a histogram of finished
jobs' run time by kind, overdue deletion requests per tenant (SQL aggregates only), and a scrape that still
answers while the database is down."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from service.app import create_app
from service.db import session_factory
from service.metrics import JOB_SECONDS_BUCKETS, JOB_SECONDS_METRIC, JOBS_METRIC, LEDGER_UP_METRIC, OVERDUE_METRIC
from service.observability import JsonFormatter
from service.settings import Settings
from service.tables import DeletionRequest, Job, JobKind, JobStatus, RequestStatus, utcnow
from tests.service import tiny
from tests.service.factories import TenantKey, make_tenant

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
# (kind, status, run seconds or None when no worker ever started it); the partial unique indexes allow one
# queued and one running unlearning job per model, so those two states appear once for that kind
JOBS: list[tuple[JobKind, JobStatus, float | None]] = [
    (JobKind.unlearn, JobStatus.queued, None),
    (JobKind.unlearn, JobStatus.running, None),
    (JobKind.unlearn, JobStatus.succeeded, 0.5),
    (JobKind.unlearn, JobStatus.succeeded, 3.0),
    (JobKind.unlearn, JobStatus.succeeded, 60.0),  # exactly on a bound: le is inclusive
    (JobKind.unlearn, JobStatus.succeeded, 100.25),
    (JobKind.unlearn, JobStatus.failed, 7200.0),  # past the last bound: +Inf only
    (JobKind.audit, JobStatus.succeeded, 10.0),
    (JobKind.audit, JobStatus.queued, None),
    (JobKind.audit, JobStatus.queued, None),
    (JobKind.reference_models, JobStatus.cancelled, None),  # cancelled while queued: never ran
]


@pytest.fixture
def model(client: TestClient, tenant: TenantKey, data_root: Path) -> dict[str, Any]:
    return tiny.register_model(client, tenant, data_root)


@pytest.fixture
def jobs_in_known_states(database_url: str, tenant: TenantKey, model: dict[str, Any]) -> None:
    with session_factory(database_url)() as session, session.begin():
        for i, (kind, status, seconds) in enumerate(JOBS):
            ran = seconds is not None or status == JobStatus.running
            started = T0 + timedelta(minutes=i) if ran else None
            finished = started + timedelta(seconds=seconds) if started is not None and seconds is not None else None
            session.add(
                Job(
                    tenant_id=tenant.tenant_id,
                    model_id=uuid.UUID(model["id"]),
                    kind=kind,
                    status=status,
                    config={},
                    started_at=started,
                    finished_at=finished,
                )
            )


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _samples(family: Any, sample_name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == sample_name
    }


def test_scrape_counts_jobs_by_status_and_kind(client: TestClient, jobs_in_known_states: None) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    families = _families(response.text)
    assert _samples(families[LEDGER_UP_METRIC], LEDGER_UP_METRIC) == {(): 1.0}
    counts = {
        (labels["status"], labels["kind"]): value
        for labels, value in ((dict(key), value) for key, value in _samples(families[JOBS_METRIC], JOBS_METRIC).items())
    }
    expected = {(status.value, kind.value): 0.0 for status in JobStatus for kind in JobKind}
    for kind, status, _ in JOBS:
        expected[status.value, kind.value] += 1
    assert counts == expected  # every combination, the empty ones as 0
    assert counts["queued", "audit"] == 2 and counts["succeeded", "unlearn"] == 4


def test_scrape_has_a_histogram_of_finished_jobs_run_time_by_kind(
    client: TestClient, jobs_in_known_states: None
) -> None:
    family = _families(client.get("/metrics").text)[JOB_SECONDS_METRIC]
    assert family.type == "histogram"
    bounds = [*(f"{float(b)}" for b in JOB_SECONDS_BUCKETS), "+Inf"]

    def buckets(kind: str) -> list[float]:
        values = {dict(key)["le"]: v for key, v in _samples(family, f"{JOB_SECONDS_METRIC}_bucket").items()
                  if dict(key)["kind"] == kind}  # fmt: skip
        return [values[bound] for bound in bounds]

    counts = {dict(key)["kind"]: v for key, v in _samples(family, f"{JOB_SECONDS_METRIC}_count").items()}
    sums = {dict(key)["kind"]: v for key, v in _samples(family, f"{JOB_SECONDS_METRIC}_sum").items()}
    # unlearn ran 0.5, 3, 60, 100.25 and 7200 s; bounds 1, 5, 15, 60, 300, 900, 3600, +Inf
    assert buckets("unlearn") == [1, 2, 2, 3, 4, 4, 4, 5]
    assert counts["unlearn"] == 5 and sums["unlearn"] == pytest.approx(7363.75)
    assert buckets("audit") == [0, 0, 1, 1, 1, 1, 1, 1]  # queued audits have not run
    assert counts["audit"] == 1 and sums["audit"] == pytest.approx(10.0)
    assert buckets("reference_models") == [0] * 8  # the cancelled one never started
    assert counts["reference_models"] == 0 and sums["reference_models"] == 0


def test_job_metrics_are_sql_aggregates_not_rows(
    client: TestClient, jobs_in_known_states: None, database_url: str
) -> None:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = session_factory(database_url).kw["bind"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get("/metrics").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    queries = [s for s in statements if "FROM job" in s]
    assert len(queries) == 2, statements
    assert all("GROUP BY" in q and "count(" in q.lower() for q in queries), queries


@pytest.fixture
def metrics_log() -> Iterator[io.StringIO]:
    # the service's loggers do not propagate (see configure_logging): listen on the metrics logger itself
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("service.metrics")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_scrape_still_answers_without_the_job_families_when_the_database_is_down(
    tmp_path: Path, metrics_log: io.StringIO
) -> None:
    settings = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", data_root=tmp_path)
    with TestClient(create_app(settings)) as client:
        client.get("/healthz")
        response = client.get("/metrics")
    assert response.status_code == 200
    families = _families(response.text)
    assert _samples(families[LEDGER_UP_METRIC], LEDGER_UP_METRIC) == {(): 0.0}
    assert JOBS_METRIC not in families and JOB_SECONDS_METRIC not in families
    assert "http_requests" in families  # the HTTP metrics are served as before
    entry = json.loads(metrics_log.getvalue().splitlines()[-1])
    assert entry["level"] == "WARNING" and "OperationalError" in entry["error"]


def _requests(database_url: str, tenant: TenantKey, model_id: str, due_and_status: list[tuple[timedelta, str]]) -> None:
    now = utcnow()
    with session_factory(database_url)() as session, session.begin():
        for due_in, status in due_and_status:
            session.add(
                DeletionRequest(
                    tenant_id=tenant.tenant_id, model_id=uuid.UUID(model_id), payload_sha256="0" * 64,
                    sample_count=1, status=RequestStatus(status), regulation="gdpr", due_at=now + due_in,
                )
            )  # fmt: skip


def test_scrape_counts_the_overdue_requests_of_every_tenant_in_one_aggregate(
    client: TestClient, tenant: TenantKey, other_tenant: TenantKey, data_root: Path, database_url: str
) -> None:
    late, early = -timedelta(days=1), timedelta(days=1)
    mine = tiny.register_model(client, tenant, data_root)
    theirs = tiny.register_model(client, other_tenant, data_root)
    # overdue: past the due date and in flight; a completed or failed request, or one not yet due, is not
    _requests(database_url, tenant, mine["id"], [(late, "queued"), (late, "auditing"), (late, "completed"),
                                                 (late, "failed"), (early, "queued")])  # fmt: skip
    _requests(database_url, other_tenant, theirs["id"], [(late, "received")])
    make_tenant(database_url, "initech")  # no requests at all
    statements: list[str] = []
    engine = session_factory(database_url).kw["bind"]
    record = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", record)
    try:
        families = _families(client.get("/metrics").text)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    counts = {dict(key)["tenant"]: value for key, value in _samples(families[OVERDUE_METRIC], OVERDUE_METRIC).items()}
    assert counts == {"acme": 2.0, "globex": 1.0, "initech": 0.0}
    (query,) = [s for s in statements if "deletion_request" in s]
    assert "GROUP BY" in query and "count(" in query.lower()
