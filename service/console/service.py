"""What each console page shows, gathered read-only from the domains' services (and, for the overview's counts
and plots, the console's own queries). Nothing here writes the ledger."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.audits import service as audits
from service.callbacks import service as callbacks
from service.console import repository
from service.db import session_factory
from service.errors import FieldProblem, NotFound, Unprocessable
from service.events import repository as events_repo
from service.events import service as events
from service.jobs import service as jobs
from service.jobs.schemas import JobQuery, JobRead
from service.models import service as models
from service.pagination import MAX_PAGE_SIZE, Cursor
from service.requests import service as requests
from service.requests.schemas import DeletionRequestQuery, DeletionRequestRead
from service.settings import Settings
from service.suppression import service as suppression
from service.suppression.schemas import ForgottenSampleQuery, ForgottenSampleRead
from service.tables import GENESIS_HASH, RequestStatus, utcnow
from service.tenants.service import Principal
from service.versions import repository as versions_repo
from service.versions import service as versions
from service.versions.schemas import VersionRead

PAGE_SIZE = 50  # rows per console table page: a screenful, and a fast page on a ledger of 10,000 requests
DUE_SOON = timedelta(days=7)
RECENT_AUDITS = 8
EVIDENCE_ROWS = 500  # per-sample rows shown on a request's page; the CSV of the API has them all
WEEKS_SHOWN = 26
# The request list's query parameters, as the console's form sends them
REQUEST_FILTERS = ("model_id", "status", "subject_request_id", "regulation", "overdue", "sort", "order")


# ---- parsing the query strings of the console's forms ----


def request_query(params: Mapping[str, list[str]]) -> DeletionRequestQuery:
    """The request list's filters from the form's query string: an empty field is no filter (an HTML form sends
    every field, filled in or not); anything else is validated as the API validates it (422 naming the field)."""
    values: dict[str, Any] = {}
    for name in REQUEST_FILTERS:
        given = [v for v in params.get(name, []) if v != ""]
        if given:
            values[name] = given if name == "status" else given[-1]
    try:
        return DeletionRequestQuery.model_validate(values)
    except ValidationError as exc:
        raise _unprocessable(exc) from None


def suppression_query(params: Mapping[str, list[str]]) -> ForgottenSampleQuery:
    state = [v for v in params.get("state", []) if v != ""]
    try:
        return ForgottenSampleQuery.model_validate({"state": state[-1]} if state else {})
    except ValidationError as exc:
        raise _unprocessable(exc) from None


def cursor(page_token: str | None, limit: int = PAGE_SIZE) -> Cursor:
    return Cursor(limit=limit, page_token=page_token or None)


def _unprocessable(exc: ValidationError) -> Unprocessable:
    problems = [
        FieldProblem(
            detail=f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}",
            location=["query", *error["loc"]],
            type=error["type"],
        )
        for error in exc.errors()
    ]
    return Unprocessable("; ".join(p.detail for p in problems), errors=problems)


# ---- the overview ----


@dataclass(frozen=True)
class Overview:
    by_status: list[tuple[str, int]]  # every state, in the life's order, zeros included
    total: int
    overdue: int
    due_soon: int
    jobs: list[JobRead]
    audits: list[dict[str, Any]]
    model_names: dict[uuid.UUID, str]


def overview(session: Session, *, principal: Principal) -> Overview:
    now = utcnow()
    counts = repository.count_requests_by_status(session=session, tenant_id=principal.tenant_id)
    audits_ = [
        {"model_id": row.model_id, "model_name": row.model_name, "version": row.number,
         "verdict": (row.metrics or {}).get("verdict"), "ready_at": row.ready_at}
        for row in repository.recent_audits(session=session, tenant_id=principal.tenant_id, limit=RECENT_AUDITS)
    ]  # fmt: skip
    return Overview(
        by_status=[(status.value, counts.get(status.value, 0)) for status in RequestStatus],
        total=sum(counts.values()),
        overdue=repository.count_overdue(session=session, tenant_id=principal.tenant_id, now=now),
        due_soon=repository.count_due_between(
            session=session, tenant_id=principal.tenant_id, start=now, end=now + DUE_SOON
        ),
        jobs=running_jobs(session, principal=principal),
        audits=audits_,
        model_names=repository.model_names(session=session, tenant_id=principal.tenant_id),
    )


def running_jobs(session: Session, *, principal: Principal) -> list[JobRead]:
    """The tenant's running jobs (phase, percent, ETA), newest first."""
    query = JobQuery(status=["running"])
    return jobs.list_jobs(session, principal=principal, query=query, page=cursor(None, MAX_PAGE_SIZE)).items


def week_counts(session: Session, *, principal: Principal, today: date | None = None) -> list[Any]:
    """Requests received per week (weeks start on Monday) over the last WEEKS_SHOWN weeks, by how they stand:
    on time (completed by the due date, or without one), late (completed after it, or overdue now) and open (in
    flight, not yet due). Failed, rejected and cancelled requests are final without forgetting anything and are
    not counted."""
    from service.console.plots import WeekCount  # matplotlib loads with the first plot, not with the app

    now = utcnow()
    today = today or now.date()
    first = today - timedelta(days=today.weekday(), weeks=WEEKS_SHOWN - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo)
    starts = [since + timedelta(weeks=i) for i in range(WEEKS_SHOWN)]
    counts = {i: {"on_time": 0, "late": 0, "open": 0} for i in range(WEEKS_SHOWN)}
    for index, standing, count in repository.requests_per_week(
        session=session, tenant_id=principal.tenant_id, week_starts=starts, now=now
    ):
        counts[index][standing] += count
    return [WeekCount(week_start=start.date(), **counts[i]) for i, start in enumerate(starts)]


def requests_per_week_svg(session: Session, *, principal: Principal) -> str:
    from service.console.plots import requests_per_week_svg

    return requests_per_week_svg(week_counts(session, principal=principal))


# ---- deletion requests ----


@dataclass(frozen=True)
class RequestPage:
    items: list[DeletionRequestRead]
    next_page_token: str | None
    model_names: dict[uuid.UUID, str]


def list_requests(
    session: Session, *, principal: Principal, query: DeletionRequestQuery, page_token: str | None
) -> RequestPage:
    listed = requests.list_requests(session, principal=principal, query=query, page=cursor(page_token))
    names = repository.model_names(session=session, tenant_id=principal.tenant_id)
    return RequestPage(items=listed.items, next_page_token=listed.next_page_token, model_names=names)


@dataclass(frozen=True)
class RequestDetail:
    request: DeletionRequestRead
    model_name: str
    events: list[Any]
    chain: ChainStatus
    job: JobRead | None
    version: VersionRead | None
    verdict: str | None
    headline: str | None
    reasons: list[str]
    samples: list[Any]  # the report's per-sample rows of the samples this version forgot
    samples_total: int
    certificate_available: bool
    deliveries: list[Any] = field(default_factory=list)


def request_detail(
    session: Session, *, principal: Principal, request_id: uuid.UUID, database_url: str
) -> RequestDetail:
    row = requests.get_request(session, principal=principal, request_id=request_id)  # 404 for another tenant's
    read = requests.read_request(session, row)
    model = models.get_model(session, principal=principal, model_id=row.model_id)
    job = None
    if row.job_id is not None:
        job = jobs.read_job(session, jobs.get_job(session, principal=principal, job_id=row.job_id), request_ids=False)
    version = None
    verdict = headline = None
    reasons: list[str] = []
    samples: list[Any] = []
    total = 0
    if row.version_id is not None:
        found = versions_repo.get_version_by_id(session=session, version_id=row.version_id)
        if found is not None:
            version = versions.read_versions(session, [found])[0]
            report = found.audit
            if report is not None:
                verdict, headline, reasons = report.get("verdict"), report.get("headline"), report.get("reasons", [])
                if "per_sample" in report:
                    own = [s for s in audits.sample_evidence(report).samples if s.set == "current"]
                    total, samples = len(own), own[:EVIDENCE_ROWS]
    deliveries = callbacks.list_deliveries(session, principal=principal, request_id=request_id,
                                           page=cursor(None, MAX_PAGE_SIZE)).items  # fmt: skip
    return RequestDetail(
        request=read,
        model_name=model.name,
        events=requests.list_events(session, principal=principal, request_id=request_id),
        chain=chain_status(session, database_url=database_url),
        job=job,
        version=version,
        verdict=verdict,
        headline=headline,
        reasons=reasons,
        samples=samples,
        samples_total=total,
        certificate_available=version is not None and version.audit_available,
        deliveries=deliveries,
    )


def certificate(session: Session, *, principal: Principal, settings: Settings, request_id: uuid.UUID) -> Any:
    """The signed certificate of the version that first excludes the request's samples (as the API serves it)."""
    row = requests.get_request(session, principal=principal, request_id=request_id)
    if row.version_id is None:
        raise NotFound(f"deletion request {request_id} has no version without its samples yet, so no certificate")
    version = versions_repo.get_version_by_id(session=session, version_id=row.version_id)
    if version is None:
        raise NotFound(f"deletion request {request_id} names a version that does not exist")
    return audits.certificate_of(versions.audit_of(version), settings)


# ---- the event chain ----

# How often the whole event chain is walked again. A full walk reads every event (3.5 s for 40,000 on one core),
# too slow for a page, so it runs in a background thread: the first request page of a process starts it (and
# says the chain is being verified), later pages check only the events appended since the last one verified
# (each linked to it, so a broken link among them shows at once) and start a new walk once the last is
# FULL_WALK_EVERY old (a row rewritten among old events shows when that walk ends). Once broken, the pages show
# the break and walk the whole chain again.
FULL_WALK_EVERY = timedelta(minutes=10)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainStatus:
    verdict: events.ChainVerdict | None  # None while the first walk is under way
    walked_at: datetime | None  # when the whole chain was last walked from its first event


@dataclass(frozen=True)
class _Verified:
    seq: int
    hash: str
    walked_at: datetime


_verified: dict[str, _Verified] = {}  # per database URL: how far this process has verified the chain
_walks: dict[str, threading.Thread] = {}  # per database URL: the background walk under way
_broken: dict[str, ChainStatus] = {}  # per database URL: the break the last check found, shown until a walk passes
_chain_lock = threading.Lock()


def chain_status(session: Session, *, database_url: str) -> ChainStatus:
    """The event chain's verification, as events.verify_chain words it (see FULL_WALK_EVERY for when it walks);
    a verdict of None while the first walk is under way."""
    with _chain_lock:
        known = _verified.get(database_url)
        # read before the walk starts: a short chain's walk may end before this page is built, and whether the
        # page says "being verified" must not hang on that race
        broken = _broken.get(database_url)
    if known is None:  # not walked yet, or it broke: walk it (again), and say so or show the break meanwhile
        _walk_in_background(database_url)
        return broken or ChainStatus(verdict=None, walked_at=None)
    verdict = _check_since(session, known)
    _remember(database_url, verdict, _last_hash(session, verdict), known.walked_at)
    if verdict.ok and utcnow() - known.walked_at > FULL_WALK_EVERY:
        _walk_in_background(database_url)
    return ChainStatus(verdict=verdict, walked_at=known.walked_at)


def _last_hash(session: Session, verdict: events.ChainVerdict) -> str | None:
    if not verdict.ok:
        return None
    return GENESIS_HASH if verdict.count == 0 else events_repo.event_hash(session=session, seq=verdict.count)


def _remember(database_url: str, verdict: events.ChainVerdict, last_hash: str | None, walked_at: datetime) -> None:
    """Keep how far the chain verified (the position checked, not the head: events appended meanwhile are checked
    next time); when it broke, keep the break instead, so the next pages show it while they walk it all again."""
    with _chain_lock:
        if not verdict.ok or last_hash is None:
            _verified.pop(database_url, None)
            _broken[database_url] = ChainStatus(verdict=verdict, walked_at=walked_at)
            return
        _broken.pop(database_url, None)
        current = _verified.get(database_url)
        if current is None or (walked_at, verdict.count) >= (current.walked_at, current.seq):
            _verified[database_url] = _Verified(seq=verdict.count, hash=last_hash, walked_at=walked_at)


def _walk_in_background(database_url: str) -> None:
    with _chain_lock:
        if database_url in _walks:
            return
        thread = threading.Thread(target=_walk, args=(database_url,), name="event-chain-walk", daemon=True)
        _walks[database_url] = thread
    thread.start()


def _walk(database_url: str) -> None:
    try:
        walked_at = utcnow()
        with session_factory(database_url)() as session:
            verdict = events.verify_chain(session, writers_may_append=True)
            _remember(database_url, verdict, _last_hash(session, verdict), walked_at)
    except Exception:  # the database went away (a shutdown): the next page walks again
        log.exception("the background walk of the event chain failed")
    finally:
        with _chain_lock:
            _walks.pop(database_url, None)


def _check_since(session: Session, known: _Verified) -> events.ChainVerdict:
    """The chain's verdict from the last verified event on."""
    return events.verify_chain(session, after=(known.seq, known.hash), writers_may_append=True)


# ---- models and versions ----


def list_models(session: Session, *, principal: Principal, page_token: str | None) -> Any:
    return models.list_models(session, principal=principal, page=cursor(page_token))


@dataclass(frozen=True)
class ModelDetail:
    model: Any
    versions: list[VersionRead]
    next_page_token: str | None


def model_detail(session: Session, *, principal: Principal, model_id: uuid.UUID, page_token: str | None) -> ModelDetail:
    model = models.read_models(session, [models.get_model(session, principal=principal, model_id=model_id)])[0]
    listed = versions.list_versions(session, principal=principal, model_id=model_id, page=cursor(page_token))
    return ModelDetail(model=model, versions=listed.items, next_page_token=listed.next_page_token)


def evidence_points(session: Session, *, principal: Principal, model_id: uuid.UUID) -> list[Any]:
    """Each audited version's cumulative evidence, from the headline its audit stored in the version's metrics:
    the union's membership AUC with its interval (metrics.cumulative.auc), test accuracy, and the original's
    test accuracy (this version's plus the drop the audit measured against it)."""
    from service.console.plots import EvidencePoint

    points = []
    page: str | None = None
    while True:
        listed = versions.list_versions(session, principal=principal, model_id=model_id,
                                        page=cursor(page, MAX_PAGE_SIZE))  # fmt: skip
        for version in listed.items:
            metrics = version.metrics or {}
            auc = (metrics.get("cumulative") or {}).get("auc") or {}
            test_acc, drop = metrics.get("test_acc"), metrics.get("test_acc_drop_vs_original")
            if not auc and test_acc is None:
                continue  # the original, or a version audited before these numbers were kept
            points.append(EvidencePoint(
                version=version.number,
                union_auc=auc.get("value"), union_auc_low=auc.get("ci_low"), union_auc_high=auc.get("ci_high"),
                test_acc=test_acc,
                original_test_acc=test_acc + drop if test_acc is not None and drop is not None else None,
            ))  # fmt: skip
        page = listed.next_page_token
        if page is None:
            return points


def evidence_svg(session: Session, *, principal: Principal, model_id: uuid.UUID) -> str:
    from service.console.plots import evidence_svg

    return evidence_svg(evidence_points(session, principal=principal, model_id=model_id))


def audit_page(session: Session, *, principal: Principal, settings: Settings, model_id: uuid.UUID, number: int) -> bytes:
    version = versions.get_version(session, principal=principal, model_id=model_id, number=number)
    return versions.audit_page(settings, version)


# ---- the suppression list ----


@dataclass(frozen=True)
class SuppressionPage:
    model: Any
    items: list[ForgottenSampleRead]
    next_page_token: str | None
    searched: str | None


def suppression_page(
    session: Session,
    *,
    principal: Principal,
    model_id: uuid.UUID,
    query: ForgottenSampleQuery,
    sample_id: str | None,
    page_token: str | None,
) -> SuppressionPage:
    model = models.get_model(session, principal=principal, model_id=model_id)
    if sample_id:
        found = suppression.find_forgotten_sample(session, principal=principal, model_id=model_id, sample_id=sample_id)
        items = [] if found is None else [found]
        if query.state != "all":
            items = [item for item in items if item.state == query.state]
        return SuppressionPage(model=model, items=items, next_page_token=None, searched=sample_id)
    listed = suppression.list_forgotten_samples(session, principal=principal, model_id=model_id, query=query,
                                                page=cursor(page_token))  # fmt: skip
    return SuppressionPage(model=model, items=listed.items, next_page_token=listed.next_page_token, searched=None)
