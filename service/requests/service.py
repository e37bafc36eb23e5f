"""Accepting, reading and cancelling deletion requests.

Acceptance checks every ID against the dataset's training split (in memory, set-based), then claims the
new ones for the model in one statement and coalesces the request into the model's waiting job. IDs an
earlier request already forgot or claimed are reported and not forgotten again; if none is left the
request is recorded as completed at once, with nothing to do, and answered 200 instead of 202.

The intake is the top of the domains: it queues jobs (service/jobs) on models (service/models), and moves a
request through the states that service/lifecycle defines for it and for the jobs.
"""

from __future__ import annotations

import calendar
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.callbacks.urls import validate_callback_url
from service.errors import Conflict, FieldProblem, NotFound, Unprocessable
from service.events import service as events
from service.events.service import canonical_json
from service.jobs import service as jobs
from service.lifecycle import states
from service.models import service as models
from service.models.datasets import train_ids
from service.pagination import Cursor
from service.requests import repository, writer_lock
from service.requests.schemas import (
    AlreadyForgotten,
    ClaimedElsewhere,
    DeletionRequestAccepted,
    DeletionRequestCreate,
    DeletionRequestList,
    DeletionRequestQuery,
    DeletionRequestRead,
)
from service.routing import API_PREFIX
from service.settings import Settings
from service.tables import DeletionRequest, RequestStatus, utcnow
from service.tenants.service import Principal
from service.versions import repository as versions_repo

LISTED_IDS = 20  # IDs named in an answer (unknown or already forgotten); the count covers the rest
# Datasets whose IDs this process has loaded once (train_ids keeps the recent ones): checking IDs against
# them is fast. One the cache has evicted since is loaded again with a read transaction open, which
# holds no lock.
_loaded_datasets: set[uuid.UUID] = set()
CCPA_DAYS = 45
IDEMPOTENCY_KEY_MAX = 200


class UnknownSampleIds(Unprocessable):
    slug = "unknown-sample-ids"


class TooManySampleIds(Unprocessable):
    slug = "too-many-sample-ids"


class IdempotencyKeyReused(Unprocessable):
    slug = "idempotency-key-reused"


class RequestInProgress(Conflict):
    slug = "request-in-progress"


class NotCancellable(Conflict):
    slug = "not-cancellable"


@dataclass(frozen=True)
class Answer:
    """What the endpoint sends: the status and the body, the same for every replay of an Idempotency-Key."""

    request_id: uuid.UUID
    status_code: int
    body: dict[str, Any]


def due_date(regulation: str | None, received: datetime) -> datetime | None:
    """GDPR art. 12(3): one month from receipt (the same day of the next month, or its last day);
    CCPA: 45 days."""
    if regulation == "gdpr":
        year, month = (received.year + 1, 1) if received.month == 12 else (received.year, received.month + 1)
        day = min(received.day, calendar.monthrange(year, month)[1])
        return received.replace(year=year, month=month, day=day)
    if regulation == "ccpa":
        return received + timedelta(days=CCPA_DAYS)
    return None


def payload_hash(body: DeletionRequestCreate) -> str:
    # received_at left out when not sent: a body without it hashes as it did before the field existed, so a key
    # replayed across that upgrade still matches
    fields = body.model_dump(mode="json", exclude={"received_at"} if body.received_at is None else None)
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


def _replay(request: DeletionRequest, digest: str) -> Answer:
    if request.payload_sha256 != digest:
        raise IdempotencyKeyReused(
            f"this Idempotency-Key was used for deletion request {request.id} with a different body; "
            "use a new key for a new request"
        )
    assert request.accepted_response is not None  # written in the transaction that created the row
    return Answer(request.id, _status_code(request.accepted_response), request.accepted_response)


def _status_code(body: dict[str, Any]) -> int:
    return 200 if body["new_sample_count"] == 0 else 202


def _check_known(sample_ids: list[str], known: frozenset[str], positions: dict[str, int]) -> None:
    unknown = [sid for sid in sample_ids if sid not in known]
    if not unknown:
        return
    named = unknown[:LISTED_IDS]
    more = f" (and {len(unknown) - len(named)} more)" if len(unknown) > len(named) else ""
    raise UnknownSampleIds(
        f"{len(unknown)} sample ID(s) are not in the training split of the model's dataset: {named}{more}; "
        "nothing was recorded",
        errors=[
            FieldProblem(
                detail=f"unknown sample ID {sid!r}",
                pointer=f"#/sample_ids/{positions[sid]}",
                location=["body", "sample_ids", positions[sid]],
                type="unknown_sample_id",
            )
            for sid in named
        ],
    )


def accept(
    session: Session,
    *,
    principal: Principal,
    settings: Settings,
    model_id: uuid.UUID,
    body: DeletionRequestCreate,
    idempotency_key: str | None,
) -> Answer:
    """Record the request (or replay the answer its Idempotency-Key already got)."""
    dataset = repository.get_dataset_of_model(session=session, tenant_id=principal.tenant_id, model_id=model_id)
    if dataset is None:
        raise NotFound(f"no model {model_id}")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
        raise Unprocessable(
            f"the Idempotency-Key header must have 1 to {IDEMPOTENCY_KEY_MAX} characters",
            errors=[FieldProblem(detail="too long", location=["header", "Idempotency-Key"], type="string_too_long")],
        )
    digest = payload_hash(body)
    if idempotency_key is not None:
        earlier = repository.get_by_idempotency_key(session=session, model_id=model_id, key=idempotency_key)
        if earlier is not None:
            return _replay(earlier, digest)
    if len(body.sample_ids) > settings.max_ids_per_request:
        raise TooManySampleIds(
            f"{len(body.sample_ids)} sample IDs exceed this service's limit of {settings.max_ids_per_request} "
            "per request; split them into several requests",
            pointer="#/sample_ids",
        )
    # Resolving the callback host and loading the dataset's IDs (a second on first use) are slow: no
    # transaction stays open meanwhile. Otherwise the read transaction goes on into the writes: ending it
    # and starting another cost PostgreSQL four round trips, a third of a 100-ID request's time.
    session.expunge(dataset)
    if body.callback_url is not None or dataset.id not in _loaded_datasets:
        session.rollback()
    if body.callback_url is not None:
        validate_callback_url(body.callback_url, settings)
    distinct = _known_distinct_ids(body.sample_ids, train_ids.get(dataset, settings.data_root))
    _loaded_datasets.add(dataset.id)
    # The events are chained when the block ends, right before the endpoint commits: the chain head,
    # which every writer of every tenant queues on, is held for three statements, not the whole accept.
    with events.batched(session):
        return _record(
            session, principal=principal, model_id=model_id, body=body, key=idempotency_key, digest=digest,
            distinct=distinct,
        )  # fmt: skip


def _record(
    session: Session,
    *,
    principal: Principal,
    model_id: uuid.UUID,
    body: DeletionRequestCreate,
    key: str | None,
    digest: str,
    distinct: list[str],
) -> Answer:
    # The model's lock before any insert: inserting the request takes a KEY SHARE lock on the model row
    # (its foreign key), and two accepts that each held one and then asked for the model's lock waited
    # for each other (a deadlock on PostgreSQL, answered 500).
    locked = models.lock_model(session, tenant_id=principal.tenant_id, model_id=model_id)
    if locked is None:
        raise NotFound(f"no model {model_id}")
    writer_lock.hold(session)  # SQLite's stand-in for that lock (see writer_lock)
    if key is not None:
        # A retry that waited for the lock while the first request with this key committed gets its answer.
        earlier = repository.get_by_idempotency_key(session=session, model_id=model_id, key=key)
        if earlier is not None:
            return _replay(earlier, digest)
    request = _insert(session, principal=principal, model_id=model_id, body=body, key=key, digest=digest,
                      sample_count=len(distinct))  # fmt: skip
    new_ids = repository.claim_samples(
        session=session, model_id=model_id, request_id=request.id, sample_ids=distinct, now=request.created_at
    )
    already = [sid for sid in distinct if sid not in new_ids]
    request.already_forgotten_count = len(already)
    if already:
        # its erasure receipt waits for theirs: the same artefacts hold those IDs (service.erasure)
        covering = repository.covering_request_ids(session=session, model_id=model_id, request_id=request.id,
                                                   sample_ids=already)  # fmt: skip
        request.covered_by = [str(r) for r in covering]
    states.record_creation(
        session,
        request,
        actor=principal.actor,
        data={
            "sample_count": len(distinct),
            "new_sample_count": len(new_ids),
            "already_forgotten_count": len(already),
            "duplicate_count": len(body.sample_ids) - len(distinct),
            # the IDs themselves stay in the ledger; the chain binds them by hash
            "sample_ids_sha256": hashlib.sha256("\n".join(sorted(distinct)).encode()).hexdigest(),
            "regulation": body.regulation,
            "received_at": request.received_at,
            "due_at": request.due_at,
            "idempotency_key": key,
        },
    )
    if new_ids:
        job = jobs.enqueue_unlearn(session, model=locked, actor=principal.actor)
        request.job_id = job.id
        states.transition(session, request, RequestStatus.queued, actor=principal.actor, data={"job_id": job.id})
    else:
        _complete_with_nothing_to_do(session, request, sample_ids=distinct, actor=principal.actor)

    answer = DeletionRequestAccepted(
        **read_request(session, request).model_dump(),
        duplicate_count=len(body.sample_ids) - len(distinct),
        already_forgotten=_already_forgotten(session, request, already),
    ).model_dump(mode="json")
    request.accepted_response = answer  # written with the status change, when the events are
    return Answer(request.id, _status_code(answer), answer)


def _known_distinct_ids(sample_ids: list[str], known: frozenset[str]) -> list[str]:
    """The IDs without repeats, in the order first submitted; 422 naming them if any is not in the split."""
    positions: dict[str, int] = {}
    for index, sid in enumerate(sample_ids):
        positions.setdefault(sid, index)
    distinct = list(positions)
    _check_known(distinct, known, positions)
    return distinct


def _insert(
    session: Session,
    *,
    principal: Principal,
    model_id: uuid.UUID,
    body: DeletionRequestCreate,
    key: str | None,
    digest: str,
    sample_count: int,
) -> DeletionRequest:
    now = utcnow()
    received = body.received_at or now  # the regulation's clock starts at the controller's receipt
    try:
        return repository.insert_request(
            session=session,
            tenant_id=principal.tenant_id,
            model_id=model_id,
            subject_request_id=body.subject_request_id,
            idempotency_key=key,
            payload_sha256=digest,
            regulation=body.regulation,
            received_at=received,
            due_at=due_date(body.regulation, received),
            sample_count=sample_count,
            already_forgotten_count=0,
            status=RequestStatus.received,
            callback_url=body.callback_url,
            created_at=now,
            updated_at=now,
        )
    except IntegrityError as exc:
        if key is not None and "idempotency_key" in str(exc.orig):
            # The unique (model, key) was taken after the check in accept(): the first request with this
            # key is being handled right now (this insert waited for it), or committed a moment ago.
            raise RequestInProgress(
                "a deletion request with this Idempotency-Key is still being handled; retry shortly to get its answer"
            ) from None
        raise


def _complete_with_nothing_to_do(
    session: Session, request: DeletionRequest, *, sample_ids: list[str], actor: str
) -> None:
    """Every ID was claimed by earlier requests: nothing is queued. If ready versions forgot them all, the
    newest of those is the first version without them; while some are in flight, the answer names the
    requests that carry them."""
    covering = repository.covering_versions(
        session=session, model_id=request.model_id, request_id=request.id, sample_ids=sample_ids
    )
    if covering and None not in covering:
        numbers = versions_repo.numbers_of(session=session, version_ids=covering)
        request.version_id = max(numbers, key=numbers.__getitem__)
    states.transition(session, request, RequestStatus.completed, actor=actor, data={"nothing_to_do": True})


def _already_forgotten(session: Session, request: DeletionRequest, already: list[str]) -> AlreadyForgotten:
    if not already:
        return AlreadyForgotten(count=0, listed=[])  # the common case: no query
    named = already[:LISTED_IDS]
    claims = repository.covering_claims(
        session=session, model_id=request.model_id, request_id=request.id, sample_ids=named
    )
    numbers = versions_repo.numbers_of(session=session, version_ids=[claim.version_id for claim in claims])
    by_id = {claim.sample_id: claim for claim in claims}
    return AlreadyForgotten(
        count=len(already),
        listed=[
            ClaimedElsewhere(
                sample_id=sid,
                request_id=by_id[sid].request_id,
                version=numbers.get(by_id[sid].version_id) if by_id[sid].version_id else None,
            )
            for sid in named
            if sid in by_id  # a claim released by a concurrent cancellation is no longer anyone's
        ],
    )


def get_request(session: Session, *, principal: Principal, request_id: uuid.UUID) -> DeletionRequest:
    request = repository.get_request(session=session, tenant_id=principal.tenant_id, request_id=request_id)
    if request is None:
        raise NotFound(f"no deletion request {request_id}")  # also for another tenant's
    return request


def is_overdue(request: DeletionRequest, now: datetime) -> bool:
    """Its due date has passed and it is still in flight (service.lifecycle.states.IN_FLIGHT says why only then)."""
    return request.due_at is not None and request.due_at < now and RequestStatus(request.status) in states.IN_FLIGHT


def read_request(session: Session, request: DeletionRequest, *, now: datetime | None = None) -> DeletionRequestRead:
    """The request as the API shows it; `now` (the clock's, unless given) decides whether it is overdue."""
    numbers = versions_repo.numbers_of(session=session, version_ids=[request.version_id])
    return DeletionRequestRead(
        id=request.id,
        model_id=request.model_id,
        subject_request_id=request.subject_request_id,
        regulation=request.regulation,
        received_at=request.received_at,
        due_at=request.due_at,
        overdue=is_overdue(request, now or utcnow()),
        status=RequestStatus(request.status),
        sample_count=request.sample_count,
        new_sample_count=request.sample_count - request.already_forgotten_count,
        already_forgotten_count=request.already_forgotten_count,
        job_id=request.job_id,
        version=numbers.get(request.version_id) if request.version_id else None,
        version_id=request.version_id,
        guard_tripped=versions_repo.guard_tripped(session=session, version_id=request.version_id)
        if request.version_id is not None
        else None,
        error=request.error,
        callback_url=request.callback_url,
        callbacks_disabled_at=request.callback_disabled_at,
        created_at=request.created_at,
        updated_at=request.updated_at,
        completed_at=request.completed_at,
        erased_at=request.erased_at,
        receipt_url=None if request.erased_at is None else f"{API_PREFIX}/deletion-requests/{request.id}/receipt",
    )


def list_events(session: Session, *, principal: Principal, request_id: uuid.UUID) -> list[Any]:
    get_request(session, principal=principal, request_id=request_id)
    return repository.events_of_request(session=session, request_id=request_id)


def list_requests(
    session: Session, *, principal: Principal, query: DeletionRequestQuery, page: Cursor
) -> DeletionRequestList:
    """One page of the tenant's requests that pass the query's filters, in its order."""
    sort = repository.REQUEST_SORTS[query.sort].ordered(descending=query.order == "desc")
    window = page.window("deletion-requests", sort, query.filters())
    now = utcnow()  # one clock for the overdue filter and the overdue flags of the page
    items, next_token = repository.list_requests(
        session=session, tenant_id=principal.tenant_id, query=query, now=now, window=window
    )
    return DeletionRequestList(items=[read_request(session, r, now=now) for r in items], next_page_token=next_token)


def cancel(session: Session, *, principal: Principal, request_id: uuid.UUID) -> DeletionRequest:
    """Cancel a request whose job has not started; its samples are released. Cancelling twice is a no-op."""
    with events.batched(session):  # the request's and its job's events, chained together at the end
        return _cancel(session, principal=principal, request_id=request_id)


def _cancel(session: Session, *, principal: Principal, request_id: uuid.UUID) -> DeletionRequest:
    request = get_request(session, principal=principal, request_id=request_id)
    if request.status == RequestStatus.cancelled:
        return request
    writer_lock.hold(session)
    if request.job_id is not None:
        # Lock the waiting job first: a worker's claim then either waits for this cancel or has already
        # started the job (and the request with it), in which case it can no longer be cancelled.
        jobs.lock_if_queued(session, job_id=request.job_id)
        request = get_request(session, principal=principal, request_id=request_id)
    status = RequestStatus(request.status)
    if status not in states.CANCELLABLE:
        raise NotCancellable(
            f"deletion request {request.id} is {status.value}; only a request that has not started "
            "(received or queued) can be cancelled"
        )
    states.withdraw(session, request, RequestStatus.cancelled, actor=principal.actor, error=None)
    if request.job_id is not None:
        jobs.cancel_if_empty(session, job_id=request.job_id, actor=principal.actor)
    return request
