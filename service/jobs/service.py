"""The job state machine, shared by the API (enqueue, read, cancel) and the workers (claim, progress,
record): queued -> running -> succeeded | failed | cancelled. Nothing here commits.

Jobs work on models (service/models, below) and carry deletion requests through their states
(service/lifecycle, below); the intake of requests (service/requests) queues them from above.

A worker claims a job by taking its lease in the database, renews it while computing, and records the
result in one transaction only while the lease is still its own; a job whose worker died is claimed
again once its lease has expired, up to MAX_ATTEMPTS claims.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound, Unprocessable
from service.events import service as events
from service.jobs import dispatch, repository
from service.jobs.schemas import JobList, JobQuery, JobRead, ReferenceModelsCreate, TuningCreate
from service.lifecycle import service as lifecycle
from service.lifecycle import states
from service.models import service as models
from service.pagination import Cursor
from service.settings import Settings
from service.storage import StoredObject
from service.tables import (
    Job,
    JobKind,
    JobStatus,
    Model,
    ModelVersion,
    ReferenceSet,
    RequestStatus,
    VersionStatus,
    utcnow,
)
from service.tenants.service import Principal
from service.versions import repository as versions_repo
from unlearning.specs import AMUN_METHODS, SpecError, TrainConfig, UnlearnConfig, from_dict, to_dict

# the settings' defaults, for callers (tests) that pass none
LEASE_SECONDS: float = Settings.model_fields["lease_seconds"].default
MAX_ATTEMPTS: int = Settings.model_fields["max_attempts"].default
# the default learning-rate grid of a tuning job, as multiples of the model's lr: mostly below it, since a rate
# that over-unlearns is the failure measured (the Fashion-MNIST demo at 0.05 lost 2.4 points on one 400-ID
# request), and one above, so that a model tuned before can move up again and its rate is checked against
# divergence
DEFAULT_LR_FACTORS = (0.1, 0.2, 0.5, 1.0, 2.0)
TUNING_SEED = 0  # draws the tuning forget subset from the samples not yet forgotten
# the tuning forget subset, by default: this share of the training split, and at least MIN_TUNING_FORGET
# (at 1% the demo's 40 samples left the loss AUC a standard error of about 5 points, wider than the differences
# between the settings it had to rank)
TUNING_FORGET_SHARE, MIN_TUNING_FORGET = 0.05, 20
SWEEPER_ACTOR = "sweeper"
SUPERVISOR_ACTOR = "supervisor"  # `service run`'s supervisor of the local executor
_TERMINAL = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


def worker_actor(owner: str) -> str:
    return f"worker:{owner}"


def _job_event(session: Session, job: Job, event_type: str, *, actor: str, data: dict[str, Any]) -> None:
    events.append(
        session,
        event_type=f"job.{event_type}",
        subject_type="job",
        subject_id=job.id,
        actor=actor,
        tenant_id=job.tenant_id,
        data={"model_id": job.model_id, "kind": JobKind(job.kind).value, **data},
    )


# ---- enqueue (API) ----


def enqueue_unlearn(session: Session, *, model: Model, actor: str) -> Job:
    """The model's waiting unlearning job, or a new one: requests arriving while a job waits join it.

    A job that is already running is never joined; the new one waits for it and will start from the
    version it produces. The caller holds the model's lock, so two requests cannot both create a job.
    """
    waiting = repository.touch_queued_unlearn_job(session=session, model_id=model.id)
    if waiting is not None:
        job = repository.get_job_any_tenant(session=session, job_id=waiting)
        assert job is not None  # locked by the touch above
        return job
    # frozen now: the worker needs nothing beyond the ids and this
    config = {"unlearn_config": model.unlearn_config}
    return _enqueue(session, model=model, kind=JobKind.unlearn, config=config, actor=actor, event_data={})


def request_reference_models(
    session: Session, *, principal: Principal, model_id: uuid.UUID, body: ReferenceModelsCreate
) -> Job:
    """Queue the training of k RMIA reference models; later audits of the model use the newest set."""
    model = models.get_model(session, principal=principal, model_id=model_id)
    if body.recipe is not None:
        try:
            recipe = from_dict(TrainConfig, body.recipe)
        except SpecError as exc:
            raise Unprocessable(f"recipe: {exc}", pointer="#/recipe") from None
    else:
        stored = model.unlearn_config.get("recipe")
        recipe = from_dict(TrainConfig, stored) if stored else TrainConfig()
    busy = repository.active_jobs(session=session, model_id=model.id, kind=JobKind.reference_models)
    if busy:
        raise Conflict(f"reference models of model {model.id} are already being trained by job {busy[0].id}")
    config = {"k": body.k, "recipe": to_dict(recipe)}
    return _enqueue(session, model=model, kind=JobKind.reference_models, config=config, actor=principal.actor,
                    event_data=config)  # fmt: skip


def rebuild_reference_models(
    session: Session, *, model: Model, k: int, recipe: dict[str, Any], actor: str, replaces: uuid.UUID
) -> Job | None:
    """Queue new reference models for a set the erasure sweep destroyed (same k and recipe): they train on
    complementary halves of the remaining data, every sample claimed by then OUT of all of them. None when a
    reference-models job is already queued or running: a queued one reads the claims when it starts; a running
    one that predates them makes a set the sweep destroys in turn, and that queues the next."""
    if repository.active_jobs(session=session, model_id=model.id, kind=JobKind.reference_models):
        return None
    config = {"k": k, "recipe": recipe}
    return _enqueue(session, model=model, kind=JobKind.reference_models, config=config, actor=actor,
                    event_data={**config, "replaces_reference_set": replaces})  # fmt: skip


def request_tuning(session: Session, *, principal: Principal, model_id: uuid.UUID, body: TuningCreate | None) -> Job:
    """Queue a job that chooses the model's lr and step_size on a tuning forget subset; once it succeeds they
    become the model's unlearn_config (with the grid and scores as provenance) for every later job. A second
    one while one is queued or running is a conflict: its choice would overwrite the first's, measured on the
    same versions.

    The default procedure is reference_free: each setting is scored by how well a loss-threshold attack
    still tells the tuning subset from held-out data, under the utility guard. The paper's procedure
    (retrain) needs a model retrained without the tuning subset: a full training run per tuning, with a
    recipe the service knows only when the manifest gave one (the uploaded original carries none), and on
    remaining data the dataset may forbid. The reference-free score is what the stopping rule and the
    audit's membership evidence measure, and the guard keeps the chosen rate from buying it with accuracy.
    """
    body = body or TuningCreate()
    model = models.lock_model(session, tenant_id=principal.tenant_id, model_id=model_id)
    if model is None:
        raise NotFound(f"no model {model_id}")  # also for another tenant's
    config = from_dict(UnlearnConfig, model.unlearn_config)
    dataset = models.dataset_of(session, model)
    if body.procedure == "retrain":
        if config.recipe is None:
            raise Unprocessable(
                "procedure 'retrain' trains a model without the tuning subset with the model's recipe, and this "
                "model has none (unlearn_config.recipe); use procedure 'reference_free'", pointer="#/procedure")
        if not dataset.retain_access:
            raise Unprocessable("procedure 'retrain' trains on the remaining data, which this model's dataset "
                                "forbids using; use procedure 'reference_free'", pointer="#/procedure")  # fmt: skip
    latest = versions_repo.latest_ready_version(session=session, model_id=model.id)
    available = dataset.num_train - (latest.forgotten_count if latest is not None else 0)
    forget_size = body.forget_size or max(MIN_TUNING_FORGET, round(TUNING_FORGET_SHARE * dataset.num_train))
    if forget_size >= available:
        raise Unprocessable(f"a tuning subset of {forget_size} samples leaves none of the {available} training "
                            "samples not yet forgotten to unlearn with", pointer="#/forget_size")  # fmt: skip
    lrs = body.lrs or sorted({float(f"{config.lr * f:.6g}") for f in DEFAULT_LR_FACTORS})
    # AMUN's fine-tuning mix is tuned with the schedule: with D_F (the paper's default) and without it (D_R u
    # D_A, or D_A alone); the benchmark's tuning found the mix decides more than the rate where the original
    # fits D_F far better than unseen data (README, "Benchmark")
    mixes = body.forget_mixes or ([config.forget_in_mix, not config.forget_in_mix] if config.method in AMUN_METHODS
                                  else [config.forget_in_mix])
    grid = {
        "procedure": body.procedure,
        "lrs": sorted(lrs),
        "step_sizes": sorted(body.step_sizes or [config.step_size]),
        "forget_mixes": mixes,
        "forget_size": forget_size,
        "runs": body.runs,
        "seed": TUNING_SEED,
    }
    busy = repository.active_jobs(session=session, model_id=model.id, kind=JobKind.tuning)
    if busy:
        raise Conflict(f"model {model.id} is already being tuned by job {busy[0].id}")
    config = {**grid, "unlearn_config": model.unlearn_config}  # the grid and the UnlearnConfig it varies, frozen now
    return _enqueue(session, model=model, kind=JobKind.tuning, config=config, actor=principal.actor, event_data=grid)


def _enqueue(
    session: Session, *, model: Model, kind: JobKind, config: dict[str, Any], actor: str, event_data: dict[str, Any]
) -> Job:
    """A new waiting job; the workers hear of it once the transaction commits."""
    job = repository.insert_job(
        session=session,
        tenant_id=model.tenant_id,
        model_id=model.id,
        kind=kind,
        status=JobStatus.queued,
        progress=0.0,
        attempts=0,
        cancel_requested=False,
        config=config,
    )
    _job_event(session, job, "queued", actor=actor, data=event_data)
    dispatch.send_after_commit(session, job.id)
    return job


# ---- read and cancel (API) ----


def get_job(session: Session, *, principal: Principal, job_id: uuid.UUID) -> Job:
    job = repository.get_job(session=session, tenant_id=principal.tenant_id, job_id=job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")  # also for another tenant's
    return job


def list_jobs(session: Session, *, principal: Principal, query: JobQuery, page: Cursor) -> JobList:
    """One page of the tenant's jobs that pass the query's filters, newest first."""
    window = page.window("jobs", repository.NEWEST_FIRST, query.model_dump())
    items, next_token = repository.list_jobs(session=session, tenant_id=principal.tenant_id, query=query, window=window)
    now = utcnow()
    return JobList(items=[read_job(session, job, now=now) for job in items], next_page_token=next_token)


def read_job(session: Session, job: Job, *, now: datetime | None = None, request_ids: bool = True) -> JobRead:
    """The job as the API shows it. request_ids=False leaves its requests' IDs out (an empty list): a page that
    shows one request's job needs its state, not the thousands of requests a model's queued job may gather."""
    now = now or utcnow()
    numbers = versions_repo.numbers_of(session=session, version_ids=[job.parent_version_id, job.result_version_id])
    eta_seconds = None
    if job.eta_at is not None and job.status == JobStatus.running:
        eta_seconds = max(0.0, (job.eta_at - now).total_seconds())
    return JobRead(
        id=job.id,
        model_id=job.model_id,
        kind=JobKind(job.kind),
        status=JobStatus(job.status),
        phase=job.phase,
        percent=round(100.0 * job.progress, 1),
        eta=job.eta_at if job.status == JobStatus.running else None,
        eta_seconds=eta_seconds,
        attempts=job.attempts,
        cancel_requested=job.cancel_requested,
        error=job.error,
        parent_version=numbers.get(job.parent_version_id) if job.parent_version_id else None,
        result_version=numbers.get(job.result_version_id) if job.result_version_id else None,
        request_ids=repository.request_ids_of_job(session=session, job_id=job.id) if request_ids else [],
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def cancel_job(session: Session, *, principal: Principal, job_id: uuid.UUID) -> Job:
    """A waiting job is cancelled at once, with its requests; a running one is asked to stop at its next step.

    Requests of a job cancelled while running end as failed (they were started), and their samples may be
    requested again.
    """
    job = get_job(session, principal=principal, job_id=job_id)
    if repository.lock_if_queued(session=session, job_id=job.id):  # a claim now waits for this transaction
        _cancel_queued(session, job, actor=principal.actor, reason="the job was cancelled before it started")
        return job
    session.refresh(job)
    if job.status in _TERMINAL:
        raise Conflict(f"job {job.id} has already {JobStatus(job.status).value}")
    if not job.cancel_requested:
        job.cancel_requested = True
        _job_event(session, job, "cancel_requested", actor=principal.actor, data={})
    return job


def _cancel_queued(session: Session, job: Job, *, actor: str, reason: str) -> None:
    for request in repository.requests_of_job(session=session, job_id=job.id):
        if RequestStatus(request.status) in states.CANCELLABLE:
            states.withdraw(session, request, RequestStatus.cancelled, actor=actor, error=reason)
    job.status = JobStatus.cancelled
    job.finished_at = utcnow()
    _job_event(session, job, "cancelled", actor=actor, data={"while": "queued"})


def lock_if_queued(session: Session, *, job_id: uuid.UUID) -> bool:
    """Row-lock the job while it still waits, so that a worker's claim waits for this transaction; False once
    it has started (or ended)."""
    return repository.lock_if_queued(session=session, job_id=job_id)


def cancel_if_empty(session: Session, *, job_id: uuid.UUID, actor: str) -> None:
    """Cancel a waiting job none of whose requests is still live (the caller has locked it)."""
    job = repository.get_job_any_tenant(session=session, job_id=job_id)
    if job is None or job.status != JobStatus.queued:
        return
    requests = repository.requests_of_job(session=session, job_id=job_id)
    if all(r.status == RequestStatus.cancelled for r in requests):
        _cancel_queued(session, job, actor=actor, reason="every request of the job was cancelled")


# ---- workers: claim, heartbeat, progress ----


def claim(
    session: Session,
    *,
    job_id: uuid.UUID,
    owner: str,
    lease_seconds: float = LEASE_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
) -> Job | None:
    """Take the job's lease, or None if it is not claimable (another worker holds it, or it is finished).

    On the first claim the job's parent becomes the model's latest ready version and its requests start
    running; a later claim (the previous worker died) starts the same work over.
    """
    now = utcnow()
    if not repository.claim(
        session=session,
        job_id=job_id,
        owner=owner,
        now=now,
        lease_until=now + timedelta(seconds=lease_seconds),
        max_attempts=max_attempts,
    ):
        return None
    job = repository.get_job_any_tenant(session=session, job_id=job_id)
    assert job is not None
    actor = worker_actor(owner)
    if job.kind == JobKind.tuning and job.parent_version_id is not None:
        parent = versions_repo.get_version_by_id(session=session, version_id=job.parent_version_id)
        if parent is not None and parent.status == VersionStatus.destroyed:
            # A tuning job that yielded resumes on its version; once that is destroyed (a newer one forgot
            # samples it held), it starts over on the newest: its finished runs were measured on the old one.
            newest = versions_repo.latest_ready_version(session=session, model_id=job.model_id)
            assert newest is not None
            job.parent_version_id, job.partial = newest.id, None
            data = {"reason": f"version {parent.number} was destroyed", "parent_version": newest.number}
            _job_event(session, job, "restarted", actor=actor, data=data)
    if job.parent_version_id is None:
        parent = versions_repo.latest_ready_version(session=session, model_id=job.model_id)
        assert parent is not None  # version 1 is recorded with the model
        job.parent_version_id = parent.id
        for request in repository.requests_of_job(session=session, job_id=job.id):
            if request.status == RequestStatus.queued:
                states.transition(session, request, RequestStatus.running, actor=actor, data={"job_id": job.id})
        data = {"attempt": job.attempts, "parent_version": parent.number}
        _job_event(session, job, "started", actor=actor, data=data)
    else:
        _job_event(session, job, "reclaimed", actor=actor, data={"attempt": job.attempts})
    return job


def next_claimable(session: Session, *, max_attempts: int = MAX_ATTEMPTS) -> uuid.UUID | None:
    return repository.next_claimable_job_id(session=session, now=utcnow(), max_attempts=max_attempts)


def heartbeat(session: Session, *, job_id: uuid.UUID, owner: str, lease_seconds: float = LEASE_SECONDS) -> bool:
    """Renew the lease; False once it is no longer this worker's (it expired and another worker took it)."""
    until = utcnow() + timedelta(seconds=lease_seconds)
    return repository.extend_lease(session=session, job_id=job_id, owner=owner, until=until)


def report_progress(
    session: Session, *, job_id: uuid.UUID, owner: str, phase: str, fraction: float, eta_at: datetime | None
) -> bool | None:
    """Store phase and progress; the job's cancel flag, or None if the lease is lost."""
    fraction = min(1.0, max(0.0, fraction))
    return repository.report_progress(
        session=session, job_id=job_id, owner=owner, phase=phase, progress=fraction, eta_at=eta_at
    )


def release(session: Session, *, job_id: uuid.UUID, owner: str, reason: str = "the worker is stopping") -> None:
    """The worker hands the job back mid-way (it is shutting down, or a tuning job yields to a deletion
    request): another claim may take it now rather than after the lease; the attempt is not counted."""
    if repository.release_lease(session=session, job_id=job_id, owner=owner, now=utcnow()):
        job = repository.get_job_any_tenant(session=session, job_id=job_id)
        assert job is not None
        _job_event(session, job, "released", actor=worker_actor(owner), data={"reason": reason})


def save_partial(session: Session, *, job_id: uuid.UUID, owner: str, partial: dict[str, Any]) -> bool:
    """Keep a running job's finished work for its next claim; False if the lease is lost."""
    return repository.save_partial(session=session, job_id=job_id, owner=owner, partial=partial)


def note_output(session: Session, *, job_id: uuid.UUID, owner: str, stored: StoredObject) -> bool:
    """Name an object the job has just stored as its own (job.outputs), so that the erasure sweep does not take
    it for an orphan before the job records it; False if the lease is lost."""
    job = repository.lock_own_job(session=session, job_id=job_id, owner=owner)
    if job is None:
        return False
    job.outputs = [*(job.outputs or []), stored.uri]  # a new list: the JSON column sees the change
    return True


def unlearning_waiting(session: Session, *, waited_seconds: float) -> bool:
    """Whether an unlearning job that could start has waited unclaimed for `waited_seconds`: no other worker
    is free for it, and a tuning job should hand its worker over."""
    return repository.unlearning_waiting(session=session, queued_before=utcnow() - timedelta(seconds=waited_seconds))


def enter_audit(session: Session, *, job_id: uuid.UUID, owner: str) -> bool:
    """The new checkpoint is stored; its audit begins. False if the lease is lost."""
    job = repository.lock_own_job(session=session, job_id=job_id, owner=owner)
    if job is None:
        return False
    job.phase, job.progress, job.eta_at = "audit", 0.0, None
    for request in repository.requests_of_job(session=session, job_id=job_id):
        if request.status == RequestStatus.running:
            states.transition(session, request, RequestStatus.auditing, actor=worker_actor(owner))
    return True


# ---- workers: record the outcome ----


def complete_unlearn(
    session: Session,
    *,
    job_id: uuid.UUID,
    owner: str,
    checkpoint: StoredObject,
    config: dict[str, Any],
    code_version: str,
    forgotten_count: int,
    metrics: dict[str, Any],
    audit: dict[str, Any] | None,
    audit_html: StoredObject | None,
) -> ModelVersion | None:
    """The one completing transaction: new version ready, samples marked, requests completed, job succeeded,
    events. None (and nothing written) if the lease is no longer this worker's."""
    job = repository.lock_own_job(session=session, job_id=job_id, owner=owner)
    if job is None:
        return None
    parent = versions_repo.get_version_by_id(session=session, version_id=job.parent_version_id)
    assert parent is not None
    now = utcnow()
    version = versions_repo.insert_version(
        session=session,
        model_id=job.model_id,
        number=parent.number + 1,
        parent_id=parent.id,
        status=VersionStatus.ready,
        checkpoint_uri=checkpoint.uri,
        sha256=checkpoint.sha256,
        size_bytes=checkpoint.size_bytes,
        job_id=job.id,
        forgotten_count=forgotten_count,
        metrics=metrics,
        audit=audit,
        audit_html_uri=audit_html.uri if audit_html else None,
        audit_html_sha256=audit_html.sha256 if audit_html else None,
        config=config,
        code_version=code_version,
        ready_at=now,
    )
    _finish(session, job, JobStatus.succeeded, now)
    job.result_version_id = version.id
    # requests cancelled before the job started are not among those it fulfilled
    requests = [
        r for r in repository.requests_of_job(session=session, job_id=job.id) if r.status != RequestStatus.cancelled
    ]
    lifecycle.mark_forgotten(session, request_ids=[r.id for r in requests], version_id=version.id)
    actor = worker_actor(owner)
    for request in requests:  # all auditing since enter_audit
        request.version_id = version.id
        # guard_tripped: the utility guard stopped the job, so the samples were forgotten at the last point
        # that kept held-out accuracy within its margin, a gentler point than the configured schedule's end
        data = {"version": version.number, "guard_tripped": bool(metrics.get("guard_tripped"))}
        states.transition(session, request, RequestStatus.completed, actor=actor, data=data)
    events.append(
        session,
        event_type="model_version.created",
        subject_type="model_version",
        subject_id=version.id,
        actor=actor,
        tenant_id=job.tenant_id,
        data={
            "model_id": job.model_id,
            "number": version.number,
            "parent_version": parent.number,
            "sha256": checkpoint.sha256,
            "size_bytes": checkpoint.size_bytes,
            "request_ids": [r.id for r in requests],
            "forgotten_count": forgotten_count,
            "method": config.get("method"),
            "code_version": code_version,
            "verdict": (audit or {}).get("verdict"),
            "guard_tripped": bool(metrics.get("guard_tripped")),
        },
    )
    _job_event(session, job, "succeeded", actor=actor, data={"result_version": version.number})
    return version


def complete_reference_models(
    session: Session,
    *,
    job_id: uuid.UUID,
    owner: str,
    membership: StoredObject,
    checkpoints: list[StoredObject],
    num_train: int,
    excluded_request_ids: list[uuid.UUID],
    excluded_count: int,
) -> ReferenceSet | None:
    """Record the set; `excluded_request_ids` are the requests whose claimed samples (`excluded_count` of them)
    no model of the set trained on: every claim when the job read its plan."""
    job = repository.lock_own_job(session=session, job_id=job_id, owner=owner)
    if job is None:
        return None
    reference_set = models.record_reference_set(
        session,
        tenant_id=job.tenant_id,
        model_id=job.model_id,
        job_id=job.id,
        recipe=job.config["recipe"],
        membership=membership,
        checkpoints=checkpoints,
        num_train=num_train,
        excluded_request_ids=excluded_request_ids,
        excluded_count=excluded_count,
    )
    _finish(session, job, JobStatus.succeeded, utcnow())
    _job_event(
        session,
        job,
        "succeeded",
        actor=worker_actor(owner),
        data={"reference_set_id": reference_set.id, "k": reference_set.k, "membership_sha256": membership.sha256,
              "excluded_count": excluded_count},
    )
    return reference_set


def complete_tuning(
    session: Session, *, job_id: uuid.UUID, owner: str, choice: dict[str, Any]
) -> dict[str, Any] | None:
    """The tuning job's one completing transaction: the model's unlearn_config takes the chosen lr and
    step_size (every other field kept), its provenance is stored on the model, the job succeeds, events.
    Unlearning jobs queued before keep the config they were queued with. The provenance, or None (and
    nothing written) if the lease is no longer this worker's.

    `choice` is what the worker measured: procedure, metric, grid, chosen {lr, step_size}, and the rest of
    the record (sizes, seeds, the version tuned on)."""
    job = repository.lock_own_job(session=session, job_id=job_id, owner=owner)
    if job is None:
        return None
    model = models.lock_model(session, tenant_id=job.tenant_id, model_id=job.model_id)
    assert model is not None
    now = utcnow()
    previous = dict(model.unlearn_config)
    chosen = choice["chosen"]
    # a new dict, not an update in place: the JSON column sees the change
    # the mix too, when the job tuned it (jobs queued before mixes were tuned chose lr and step_size only)
    model.unlearn_config = {**previous, **{k: chosen[k] for k in ("lr", "step_size", "forget_in_mix") if k in chosen}}
    provenance = {"job_id": str(job.id), **choice, "previous_config": previous, "finished_at": now.isoformat()}
    model.tuning = provenance
    _finish(session, job, JobStatus.succeeded, now)
    actor = worker_actor(owner)
    events.append(
        session,
        event_type="model.tuned",
        subject_type="model",
        subject_id=model.id,
        actor=actor,
        tenant_id=model.tenant_id,
        data={
            "job_id": job.id,
            "procedure": choice["procedure"],
            "metric": choice["metric"],
            "chosen": chosen,
            "constraint_met": choice["constraint_met"],
            "previous": {k: previous.get(k) for k in ("lr", "step_size", "forget_in_mix")},
        },
    )
    _job_event(session, job, "succeeded", actor=actor, data={"chosen": chosen})
    return provenance


def fail(session: Session, *, job_id: uuid.UUID, owner: str, error: str) -> bool:
    """The worker's computation raised: the job and its requests fail, their samples are released."""
    job = repository.lock_own_job(session=session, job_id=job_id, owner=owner)
    if job is None:
        return False
    _fail(session, job, error=error, actor=worker_actor(owner))
    return True


def stop_cancelled(session: Session, *, job_id: uuid.UUID, owner: str) -> bool:
    """The worker stopped at the cancel flag: the job is cancelled; its started requests fail."""
    job = repository.lock_own_job(session=session, job_id=job_id, owner=owner)
    if job is None:
        return False
    actor = worker_actor(owner)
    _finish(session, job, JobStatus.cancelled, utcnow())
    for request in repository.requests_of_job(session=session, job_id=job.id):
        if request.status in (RequestStatus.queued, RequestStatus.running, RequestStatus.auditing):
            states.withdraw(
                session, request, RequestStatus.failed, actor=actor, error="the job was cancelled while it ran"
            )
    _job_event(session, job, "cancelled", actor=actor, data={"while": "running"})
    return True


def fail_abandoned(session: Session, *, max_attempts: int = MAX_ATTEMPTS) -> int:
    """Fail the jobs whose worker died on their last allowed attempt; the number failed."""
    abandoned = repository.abandoned_jobs(session=session, now=utcnow(), max_attempts=max_attempts)
    for job in abandoned:
        error = f"gave up after {job.attempts} attempts: the worker stopped renewing its lease each time"
        _fail(session, job, error=error, actor=SWEEPER_ACTOR)
    return len(abandoned)


def reclaim_from_dead_worker(
    session: Session, *, owner: str, reason: str, max_attempts: int = MAX_ATTEMPTS
) -> list[uuid.UUID]:
    """The worker `owner` is known to be dead (its supervisor reaped the process): its running jobs may be
    claimed again now, not only once their leases run out. The attempt it died on counts, as when the
    sweeper requeues an expired lease (`job.requeued`); on the last allowed attempt the job fails with the
    reason instead, and its requests with it. The ids of the jobs handed on, failed ones included."""
    ended = repository.end_leases_of(session=session, owner=owner, now=utcnow())
    for job in ended:
        if job.attempts >= max_attempts:
            _fail(session, job, error=f"gave up after {job.attempts} attempts: {reason}", actor=SUPERVISOR_ACTOR)
            continue
        data = {"reason": reason, "attempts": job.attempts, "max_attempts": max_attempts, "previous_owner": owner}
        _job_event(session, job, "requeued", actor=SUPERVISOR_ACTOR, data=data)
        dispatch.send_after_commit(session, job.id)  # a no-op for the local executor, which polls the ledger
    return [job.id for job in ended]


@dataclass(frozen=True)
class Sweep:
    failed: int  # jobs given up on: their lease expired on the last allowed attempt
    requeued: list[uuid.UUID]  # jobs whose worker stopped renewing their lease, sent again for a retry
    resent: list[uuid.UUID]  # waiting jobs no worker claimed (their message was lost), sent again


def sweep(session: Session, *, resend_after: float, max_attempts: int = MAX_ATTEMPTS) -> Sweep:
    """One pass of the sweeper (the scaled-out service; the local executor needs none): the ledger says
    which jobs a worker should be running, and their ids are sent again once this transaction commits.

    A job is sent again at most once per `resend_after` seconds, and a waiting job only once it has
    waited that long, so that a backlog behind busy workers does not fill the queue with duplicates."""
    failed = fail_abandoned(session, max_attempts=max_attempts)
    now = utcnow()
    expired, waiting = repository.unclaimed_jobs(
        session=session, now=now, resend_before=now - timedelta(seconds=resend_after), max_attempts=max_attempts
    )
    for job in expired:
        data = {"reason": "lease expired", "attempts": job.attempts, "max_attempts": max_attempts,
                "previous_owner": job.lease_owner}  # fmt: skip
        _job_event(session, job, "requeued", actor=SWEEPER_ACTOR, data=data)
    for job in expired + waiting:
        job.resent_at = now
        dispatch.send_after_commit(session, job.id)
    return Sweep(failed, [j.id for j in expired], [j.id for j in waiting])


def _fail(session: Session, job: Job, *, error: str, actor: str) -> None:
    _finish(session, job, JobStatus.failed, utcnow())
    job.error = error
    for request in repository.requests_of_job(session=session, job_id=job.id):
        if request.status in (RequestStatus.queued, RequestStatus.running, RequestStatus.auditing):
            states.withdraw(session, request, RequestStatus.failed, actor=actor, error=error)
    _job_event(session, job, "failed", actor=actor, data={"error": error})


def _finish(session: Session, job: Job, status: JobStatus, now: datetime) -> None:
    """End a running job; the model's next waiting job, which could not be claimed while this one ran, is
    sent to the workers once this transaction commits."""
    for waiting in repository.queued_job_ids(session=session, model_id=job.model_id):
        dispatch.send_after_commit(session, waiting)
    job.status = status
    job.finished_at = now
    job.lease_expires_at = None
    job.eta_at = None
    if status == JobStatus.succeeded:
        job.progress = 1.0
