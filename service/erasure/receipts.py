"""Erasure receipts: when no stored artefact holding a deletion request's samples remains, the request gets a
receipt listing what was destroyed and when, signed like a certificate (Ed25519 over the RFC 8785 form of its
summary; service.audits.certificate).

What holds the samples a request q claimed: every version before q's first version without them (versions
form one line per model, so the earlier numbers), every reference set whose models did not exclude q, a
reference-models job still running (its plan may predate q's claim), and objects no ledger row names (left
by crashed work: they could hold anything). A request whose IDs were already claimed by earlier requests
(covered_by) is erased when those are: the same artefacts held them. Nothing here commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.audits.certificate import SigningKeyUnavailable, sign, signing_key
from service.callbacks import service as callbacks
from service.errors import Conflict, NotFound, ServiceUnavailable
from service.erasure import repository
from service.events import service as events
from service.routing import API_PREFIX
from service.settings import Settings
from service.tables import DeletionRequest, ModelVersion, ReferenceSet, RequestStatus, VersionStatus
from service.tenants.service import Principal

RECEIPT_KIND = "unlearning.erasure_receipt/1"
STATEMENT = (
    "attests that every artefact this service stored holding the request's samples (model checkpoints, RMIA "
    "reference models, unreferenced objects) was deleted from its storage; not a statement about copies "
    "outside the service, nor about the dataset files the caller keeps"
)


class NotErasedYet(Conflict):
    slug = "not-erased-yet"


@dataclass(frozen=True)
class Remaining:
    """One thing that still stands between a request and its receipt."""

    what: str
    due_at: datetime | None = None  # when the erasure sweep destroys it, if that is known

    def __str__(self) -> str:
        return self.what + (f" (due {self.due_at.isoformat()})" if self.due_at is not None else "")


class ModelErasure:
    """What of one model still holds which requests' samples, read once per sweep (or per receipt read)."""

    def __init__(self, session: Session, model_id: uuid.UUID) -> None:
        self.retention = timedelta(seconds=repository.retention_of(session=session, model_id=model_id))
        self.versions = repository.versions_of_model(session=session, model_id=model_id)
        self.by_id = {v.id: v for v in self.versions}
        self.sets = repository.reference_sets_of_model(session=session, model_id=model_id)
        self.running_references = repository.running_reference_jobs(session=session, model_id=model_id)

    def _due(self, version: ModelVersion) -> datetime | None:
        child = next((v for v in self.versions if v.parent_id == version.id and v.ready_at is not None), None)
        return child.ready_at + self.retention if child is not None else None

    def holding(self, claimant: DeletionRequest) -> list[Remaining]:
        """What still holds the samples `claimant` (a completed request) claimed itself."""
        first = self.by_id[claimant.version_id] if claimant.version_id is not None else None
        assert first is not None  # a completed request that claimed samples names the version that forgot them
        found = [
            Remaining(f"version {v.number}'s checkpoint (sha256 {v.sha256}) holds samples of request {claimant.id}",
                      self._due(v))  # fmt: skip
            for v in self.versions
            if v.number < first.number and v.status != VersionStatus.destroyed
        ]
        assert first.ready_at is not None
        found += [
            Remaining(f"reference set {s.id} ({s.k} models) holds samples of request {claimant.id}",
                      first.ready_at + self.retention)  # fmt: skip
            for s in self.sets
            if s.destroyed_at is None and str(claimant.id) not in s.excluded_request_ids
        ]
        found += [
            Remaining(f"job {job.id} is training reference models that may hold samples of request {claimant.id}; "
                      "their set is destroyed in turn once recorded")  # fmt: skip
            for job in self.running_references
        ]
        return found

    def destroyed_for(self, claimants: list[DeletionRequest], first: ModelVersion) -> list[dict[str, Any]]:
        """The destroyed artefacts that held the claimants' samples, oldest destruction first: the receipt's list."""
        items: list[dict[str, Any]] = []
        for v in self.versions:
            if v.number < first.number:
                assert v.destroyed_at is not None
                items.append({"kind": "model_version", "id": str(v.id), "version": v.number, "sha256": v.sha256,
                              "size_bytes": v.size_bytes, "destroyed_at": v.destroyed_at.isoformat(),
                              "reason": v.destruction_reason})  # fmt: skip
        for s in self.sets:
            if any(str(c.id) not in s.excluded_request_ids for c in claimants):
                assert s.destroyed_at is not None
                items.append(_set_item(s))
        return sorted(items, key=lambda item: (item["destroyed_at"], item["kind"], item["id"]))


def _set_item(s: ReferenceSet) -> dict[str, Any]:
    assert s.destroyed_at is not None
    return {"kind": "reference_set", "id": str(s.id), "k": s.k, "sha256": s.membership_sha256,
            "checkpoint_sha256": [c["sha256"] for c in s.checkpoints], "destroyed_at": s.destroyed_at.isoformat(),
            "reason": s.destruction_reason}  # fmt: skip


def remaining_for(
    session: Session, request: DeletionRequest, state: ModelErasure
) -> tuple[list[Remaining], list[DeletionRequest]]:
    """What still holds the request's samples (empty once nothing does), and the requests that claimed them
    (itself when it claimed any, and those in covered_by)."""
    if request.status != RequestStatus.completed:
        return [Remaining(f"the request is {RequestStatus(request.status).value}: its samples are not forgotten")], []
    if request.already_forgotten_count and request.covered_by is None:
        return [Remaining("the earlier requests that held some of its IDs when it arrived were not recorded (it "
                          "predates erasure tracking), so no receipt can say their copies are gone")], []  # fmt: skip
    covering = repository.requests_by_id(session=session, request_ids=[uuid.UUID(r) for r in request.covered_by or []])
    claimants = [request] if request.sample_count > request.already_forgotten_count else []
    found: list[Remaining] = []
    for request_id in request.covered_by or []:
        other = covering.get(uuid.UUID(request_id))
        if other is None or other.status != RequestStatus.completed:
            status = RequestStatus(other.status).value if other is not None else "missing"
            why = ("its claims were released, so those IDs are not forgotten: send them again"
                   if status in ("failed", "cancelled") else "they are not forgotten yet")  # fmt: skip
            found.append(Remaining(f"request {request_id}, which held some of its IDs, is {status}: {why}"))
        else:
            claimants.append(other)
    for claimant in claimants:
        found += state.holding(claimant)
    return found, claimants


def _sample_ids_sha256(session: Session, request: DeletionRequest) -> str | None:
    data = repository.received_event_data(session=session, request_id=request.id) or {}
    return data.get("sample_ids_sha256")


def summary_of(
    session: Session, request: DeletionRequest, state: ModelErasure, claimants: list[DeletionRequest], *,
    erased_at: datetime, storage_checked_at: datetime,
) -> dict[str, Any]:  # fmt: skip
    """What the receipt states (and what is signed): the request's identity, the first version without its
    samples, every destroyed artefact that held them, and when storage was last found free of leftovers."""
    # the newest of the claimants' first versions without their samples: the first without all of them (a
    # request's IDs are claimed by itself or by the requests it was covered by, never by none)
    first = max((state.by_id[c.version_id] for c in claimants if c.version_id is not None), key=lambda v: v.number)
    return {
        "kind": RECEIPT_KIND,
        "statement": STATEMENT,
        "request": {
            "id": str(request.id),
            "model_id": str(request.model_id),
            "subject_request_id": request.subject_request_id,
            "regulation": request.regulation,
            "received_at": request.received_at.isoformat(),
            "completed_at": request.completed_at.isoformat() if request.completed_at is not None else None,
            "sample_count": request.sample_count,
            # sha256 of the distinct IDs, sorted, one per line (as the request's received event states it)
            "sample_ids_sha256": _sample_ids_sha256(session, request),
        },
        "first_version_without": {"id": str(first.id), "version": first.number, "sha256": first.sha256},
        "covered_by": list(request.covered_by or []),
        "destroyed": state.destroyed_for(claimants, first),
        "storage_checked_at": storage_checked_at.isoformat(),
        "erased_at": erased_at.isoformat(),
    }


def issue_due(session: Session, *, now: datetime, actor: str) -> list[uuid.UUID]:
    """Issue the receipt of every completed request nothing holds any more; the ids of the requests erased.
    The caller has just found storage free of unreferenced leftovers (at `now`)."""
    erased: list[uuid.UUID] = []
    states: dict[uuid.UUID, ModelErasure] = {}
    with events.batched(session):
        for request in repository.unerased_completed_requests(session=session):
            state = states.get(request.model_id) or states.setdefault(
                request.model_id, ModelErasure(session, request.model_id)
            )
            remaining, claimants = remaining_for(session, request, state)
            if remaining:
                continue
            summary = summary_of(session, request, state, claimants, erased_at=now, storage_checked_at=now)
            if not repository.mark_erased(session=session, request_id=request.id, now=now, receipt=summary):
                continue
            _announce(session, request, summary, actor=actor)
            erased.append(request.id)
    return erased


def _announce(session: Session, request: DeletionRequest, summary: dict[str, Any], *, actor: str) -> None:
    data = {
        "model_id": request.model_id,
        "subject_request_id": request.subject_request_id,
        "erased_at": summary["erased_at"],
        "first_version_without": summary["first_version_without"]["version"],
        "destroyed": [{"kind": item["kind"], "id": item["id"]} for item in summary["destroyed"]],
    }
    events.append(session, event_type="deletion_request.erased", subject_type="deletion_request",
                  subject_id=request.id, actor=actor, tenant_id=request.tenant_id, data=data)  # fmt: skip
    callbacks.enqueue(session, request=request, event_type="deletion_request.erased",
                      data={**data, "receipt_url": receipt_url(request.id)})  # fmt: skip


def receipt_url(request_id: uuid.UUID) -> str:
    return f"{API_PREFIX}/deletion-requests/{request_id}/receipt"


def read_receipt(
    session: Session, *, principal: Principal, settings: Settings, request_id: uuid.UUID
) -> dict[str, Any]:
    """The signed receipt; 409 naming what still holds the samples (and when each is due) until it exists."""
    request = repository.get_request(session=session, tenant_id=principal.tenant_id, request_id=request_id)
    if request is None:
        raise NotFound(f"no deletion request {request_id}")  # also for another tenant's
    if request.erasure_receipt is None:
        remaining, _ = remaining_for(session, request, ModelErasure(session, request.model_id))
        what = "; ".join(str(r) for r in remaining) or (
            "nothing in the ledger holds its samples any more: the next erasure sweep checks storage for "
            "leftovers and issues the receipt"
        )
        raise NotErasedYet(f"deletion request {request.id} has no erasure receipt yet: {what}")
    try:
        key = signing_key(settings)
    except SigningKeyUnavailable as exc:
        raise ServiceUnavailable(f"receipts are unavailable: {exc}") from exc
    # signed on every read, as certificates are: the key stays out of the ledger and may be rotated
    return sign(request.erasure_receipt, key)
