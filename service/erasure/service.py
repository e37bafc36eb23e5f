"""The erasure sweep: destroy every stored artefact that holds forgotten samples once its model's retention
window has ended, remove objects no ledger row names, and issue the erasure receipts that then fall due.

What is due, and since when (the window is the model's retention_seconds at the time of the sweep):
- a version's checkpoint, once a newer ready version (its child) forgot samples it holds: from the moment
  that child became ready. Every version but the newest is such an ancestor, the original included.
- a reference set, once a request whose samples its models trained on has been forgotten: from when the
  first such request's version became ready. Its models trained on halves of the samples no request had
  claimed when the job started (ReferenceSet.excluded_request_ids); every other request's samples were IN.
  A destroyed set is replaced at once by a job training new ones without any sample forgotten so far.
- an object in storage that no ledger row names and no running job claims (job.outputs), such as a failed
  job's checkpoint, a temporary file of a write that died or the upload of a registration whose transaction
  failed, once it is settings.orphan_grace_seconds old. Until then no receipt is issued: it could hold anything.

Destruction deletes first and records after, each artefact in its own transaction: a crash between the two
leaves a row whose object is gone, which the next sweep finds due again, deletes (a no-op) and records. A
row never says "destroyed" while its object exists. Both deployments run the sweep: the Celery beat schedule
(worker.celery_app) and the embedded local executor (worker.executor, a thread of its own).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.db import session_factory as make_session_factory
from service.erasure import receipts, repository
from service.events import service as events
from service.jobs import service as jobs
from service.models import service as models
from service.settings import Settings, get_settings
from service.storage import ListedObject, ObjectStore
from service.tables import utcnow

log = logging.getLogger(__name__)

ACTOR = "erasure-sweep"


@dataclass(frozen=True)
class ErasureSweep:
    destroyed_versions: list[uuid.UUID]
    destroyed_reference_sets: list[uuid.UUID]
    orphans_removed: list[str]  # URIs
    orphans_kept: int  # unnamed objects still within their grace (they hold receipts back meanwhile)
    receipts: list[uuid.UUID]  # requests erased in this sweep


@dataclass(frozen=True)
class _Due:
    """One artefact whose window has ended: what to delete, and what to record once it is gone."""

    kind: str  # "model_version" or "reference_set"
    id: uuid.UUID
    tenant_id: uuid.UUID
    model_id: uuid.UUID
    uris: list[str]
    reason: str
    data: dict[str, Any] = field(default_factory=dict)  # for the event
    recipe: dict[str, Any] | None = None  # a reference set's TrainConfig, which its replacement trains with

    @property
    def owner(self) -> str:
        return f"{self.kind}:{self.id}"


def sweep(
    factory: sessionmaker[Session], *, settings: Settings, now: datetime | None = None, store: ObjectStore | None = None
) -> ErasureSweep:
    """One pass; `now` is the sweep's clock (tests pass it to see a window end without waiting)."""
    now = now or utcnow()
    store = store or ObjectStore.from_settings(settings)
    with factory() as session:
        due = _due_versions(session, now) + _due_reference_sets(session, now)
        owners = repository.live_object_owners(session=session)
    destroyed = [item for item in due if _destroy(factory, store, item, owners, now)]
    removed, kept = _remove_orphans(factory, store, settings, now)
    issued: list[uuid.UUID] = []
    if kept == 0:  # an unnamed object could hold any sample: no receipt while one is left
        with factory() as session, session.begin():
            issued = receipts.issue_due(session, now=now, actor=ACTOR)
    result = ErasureSweep(
        destroyed_versions=[d.id for d in destroyed if d.kind == "model_version"],
        destroyed_reference_sets=[d.id for d in destroyed if d.kind == "reference_set"],
        orphans_removed=removed,
        orphans_kept=kept,
        receipts=issued,
    )
    if destroyed or removed or issued:
        log.info("erasure sweep", extra={"destroyed": [d.owner for d in destroyed], "orphans_removed": len(removed),
                                         "receipts": [str(r) for r in issued]})  # fmt: skip
    return result


def _window(seconds: int) -> str:
    return f"{seconds} s" if seconds < 86400 or seconds % 86400 else f"{seconds // 86400} day(s)"


def _due_versions(session: Session, now: datetime) -> list[_Due]:
    found = []
    for row in repository.superseded_versions(session=session):
        version, retention = row.ModelVersion, row.retention_seconds
        due_at = row.superseded_at + timedelta(seconds=retention)
        if due_at > now:
            continue
        reason = (f"it held samples that version {row.child_number} forgot (ready at "
                  f"{row.superseded_at.isoformat()}), and the model's retention window of {_window(retention)} "
                  f"ended at {due_at.isoformat()}")  # fmt: skip
        data = {"model_id": version.model_id, "number": version.number, "sha256": version.sha256,
                "size_bytes": version.size_bytes, "superseded_by": row.child_number,
                "retention_seconds": retention, "reason": reason}  # fmt: skip
        assert version.checkpoint_uri is not None  # a ready version has its file
        found.append(_Due("model_version", version.id, row.tenant_id, version.model_id, [version.checkpoint_uri],
                          reason, data))  # fmt: skip
    return found


def _due_reference_sets(session: Session, now: datetime) -> list[_Due]:
    rows = repository.live_reference_sets(session=session)
    forgotten: dict[uuid.UUID, list[tuple[str, datetime]]] = defaultdict(list)
    for model_id, request_id, forgotten_at in repository.forgotten_requests(
        session=session, model_ids={row.ReferenceSet.model_id for row in rows}
    ):
        forgotten[model_id].append((str(request_id), forgotten_at))
    found = []
    for row in rows:
        reference_set, retention = row.ReferenceSet, row.retention_seconds
        excluded = set(reference_set.excluded_request_ids)
        held = sorted((at, rid) for rid, at in forgotten[reference_set.model_id] if rid not in excluded)
        if not held:
            continue
        first_at = held[0][0]
        due_at = first_at + timedelta(seconds=retention)
        if due_at > now:
            continue
        reason = (f"its models trained on samples of {len(held)} request(s) forgotten since (the first at "
                  f"{first_at.isoformat()}), and the model's retention window of {_window(retention)} ended at "
                  f"{due_at.isoformat()}")  # fmt: skip
        uris = [reference_set.membership_uri, *(c["uri"] for c in reference_set.checkpoints)]
        data = {"model_id": reference_set.model_id, "k": reference_set.k,
                "membership_sha256": reference_set.membership_sha256,
                "checkpoint_sha256": [c["sha256"] for c in reference_set.checkpoints],
                "held_request_ids": [rid for _, rid in held], "retention_seconds": retention,
                "reason": reason}  # fmt: skip
        found.append(_Due("reference_set", reference_set.id, reference_set.tenant_id, reference_set.model_id, uris,
                          reason, data, dict(reference_set.recipe)))  # fmt: skip
    return found


def _destroy(
    factory: sessionmaker[Session], store: ObjectStore, due: _Due, owners: dict[str, list[str]], now: datetime
) -> bool:
    """Delete the artefact's objects, then record it destroyed (and, for a reference set, queue new ones);
    False if it was not destroyed (an error, logged, leaves it for the next sweep)."""
    shared = {uri: others for uri in due.uris if (others := [o for o in owners.get(uri, []) if o != due.owner])}
    if shared:
        # content-addressed storage: identical bytes are one object. Deleting it would break a live row
        others = sorted({owner for owners_of_uri in shared.values() for owner in owners_of_uri})
        log.error("not destroyed: its stored objects are also another live row's",
                  extra={"artefact": due.owner, "shared_with": others})  # fmt: skip
        return False
    try:
        for uri in due.uris:
            store.delete(uri)
        with factory() as session, session.begin():
            return _record(session, due, now)
    except Exception:
        log.exception("destruction failed; the next sweep tries again", extra={"artefact": due.owner})
        return False


def _record(session: Session, due: _Due, now: datetime) -> bool:
    with events.batched(session):
        if due.kind == "model_version":
            if not repository.mark_version_destroyed(session=session, version_id=due.id, now=now, reason=due.reason):
                return False
            events.append(session, event_type="model_version.destroyed", subject_type="model_version",
                          subject_id=due.id, actor=ACTOR, tenant_id=due.tenant_id, data=due.data)  # fmt: skip
            return True
        # the model's lock first, as every writer of a model takes it: the rebuild below checks for a job
        model = models.lock_model(session, tenant_id=due.tenant_id, model_id=due.model_id)
        assert model is not None
        if not repository.mark_reference_set_destroyed(session=session, reference_set_id=due.id, now=now,
                                                       reason=due.reason):  # fmt: skip
            return False
        assert due.recipe is not None
        rebuild = jobs.rebuild_reference_models(session, model=model, k=due.data["k"], recipe=due.recipe,
                                                actor=ACTOR, replaces=due.id)  # fmt: skip
        data = {**due.data, "rebuild_job_id": rebuild.id if rebuild is not None else None}
        events.append(session, event_type="reference_set.destroyed", subject_type="reference_set",
                      subject_id=due.id, actor=ACTOR, tenant_id=due.tenant_id, data=data)  # fmt: skip
        return True


def _remove_orphans(
    factory: sessionmaker[Session], store: ObjectStore, settings: Settings, now: datetime
) -> tuple[list[str], int]:
    """Remove the objects no ledger row names and no running job claims, once older than the grace; the URIs
    removed, and how many such objects are left (younger ones)."""
    listed = list(store.iter_objects())  # first: an object written after the ledger is read is not listed
    with factory() as session:
        named = set(repository.live_object_owners(session=session)) | repository.running_job_outputs(session=session)
    cutoff = now - timedelta(seconds=settings.orphan_grace_seconds)
    orphans = [o for o in listed if o.uri not in named]
    old = [o for o in orphans if o.modified_at < cutoff]
    removed: list[ListedObject] = []
    for orphan in old:
        try:
            store.delete(orphan.uri)
        except Exception:
            log.exception("could not remove an orphaned object; the next sweep tries again", extra={"uri": orphan.uri})
            continue
        removed.append(orphan)
    if removed:
        data = {"objects": [{"name": o.uri.rsplit("/", 1)[-1], "size_bytes": o.size_bytes,
                             "modified_at": o.modified_at.isoformat()} for o in removed],
                "grace_seconds": settings.orphan_grace_seconds}  # fmt: skip
        with factory() as session, session.begin():
            events.append(session, event_type="storage.orphans_removed", subject_type="storage", subject_id="objects",
                          actor=ACTOR, tenant_id=None, data=data)  # fmt: skip
    return [o.uri for o in removed], len(orphans) - len(removed)


def run_erasure_loop(stop_event: threading.Event, *, settings: Settings | None = None) -> None:
    """Sweep every settings.erasure_sweep_interval_seconds until `stop_event` is set; for a thread of the local
    executor. Errors (database or storage down) are logged; the next round tries again."""
    settings = settings or get_settings()
    factory = make_session_factory(settings.database_url)
    while not stop_event.is_set():
        try:
            sweep(factory, settings=settings)
        except Exception:
            log.exception("erasure sweep failed; retrying at the next interval")
        stop_event.wait(settings.erasure_sweep_interval_seconds)
