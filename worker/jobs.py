"""Run one job by id: claim -> core -> store -> record. The local executor and a Celery task both call
run_job(job_id) and nothing else, so the job code is the same however the id arrived.

No transaction stays open while computing: the claim commits first, the plan (service.jobs.plan) is read in
a second short transaction, progress and heartbeats use their own, and the outcome is recorded in one final
transaction, only while the lease is still this worker's. The checkpoint file is stored before that
transaction, so a crash leaves at most an orphan file, never a version without its file. The ledger is read
and written only through the services of service/jobs.
"""

from __future__ import annotations

import enum
import io
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.db import session_factory
from service.jobs import service as jobs
from service.jobs.plan import Plan, VersionRef, read_plan
from service.settings import Settings, get_settings
from service.storage import ObjectStore, StorageError, StoredObject
from service.tables import JobKind, utcnow
from service.versions.service import code_version
from unlearning.attack import starting_radius
from unlearning.audit.evaluate import RmiaAudit, evaluate
from unlearning.data import Dataset, load_dataset
from unlearning.imageset import ImageSet
from unlearning.methods import run_unlearning
from unlearning.models import checkpoint_bytes, load_checkpoint
from unlearning.progress import Cancelled, Progress
from unlearning.specs import AMUN_METHODS, StopConfig, TrainConfig, UnlearnConfig, from_dict, to_dict
from unlearning.splits import holdout_split, reference_membership, reference_seed
from unlearning.stopping import PARENT
from unlearning.successive import remaining
from unlearning.train import train_model
from unlearning.tuning import (
    REFERENCE_FREE_METRIC,
    RETRAIN_METRIC,
    ScheduleChoice,
    best_of,
    tune_against_retrain,
    tune_reference_free,
)
from worker.audit import audit_version

log = logging.getLogger("worker.jobs")

HOLDOUT_SEED = 0  # which half of the test split is the held-out half (stopping rule, RMIA population)
PROGRESS_INTERVAL_S = 1.0  # progress rows are written at most this often
# a tuning job hands its worker over to an unlearning job that has waited this long unclaimed (no other
# worker was free), looking every YIELD_CHECK_S: deletion requests never wait for a whole tuning
YIELD_AFTER_S = 5.0
YIELD_CHECK_S = 2.0
MAX_ERROR_CHARS = 2000


class Outcome(enum.StrEnum):
    not_claimed = "not_claimed"  # another worker holds it, or it is not claimable (finished, model busy)
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    lease_lost = "lease_lost"  # the lease expired and another worker took the job: nothing was recorded
    interrupted = "interrupted"  # this worker is shutting down: the lease was released for another
    yielded = "yielded"  # a tuning job handed its worker to a waiting unlearning job; it resumes later
    database_lost = "database_lost"  # the ledger became unreachable: nothing recorded; retried after the lease


class LeaseLost(Cancelled):
    """The job's lease is no longer this worker's; stop without recording anything."""


class Interrupted(Cancelled):
    """This worker is shutting down; stop and let another worker claim the job at once."""


class Yielded(Cancelled):
    """A tuning job stops between runs for a waiting unlearning job; its finished runs are kept."""


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---- lease and progress ----


class Lease:
    """Renews the job's lease from a thread every third of its length while the computation runs."""

    def __init__(self, factory: sessionmaker[Session], job_id: uuid.UUID, owner: str, lease_seconds: float) -> None:
        self.factory, self.job_id, self.owner, self.lease_seconds = factory, job_id, owner, lease_seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                with self.factory() as session, session.begin():
                    held = jobs.heartbeat(
                        session, job_id=self.job_id, owner=self.owner, lease_seconds=self.lease_seconds
                    )
            except SQLAlchemyError:
                # the database is briefly unreachable: try again at the next beat, the lease has time left
                log.warning("lease renewal failed", extra={"job_id": str(self.job_id)}, exc_info=True)
                continue
            if not held:
                self.lost.set()
                return


class JobProgress:
    """The core's progress callback: stores phase, percent and ETA at most every PROGRESS_INTERVAL_S in a
    short transaction of its own, and stops the computation (by raising) on cancel, lease loss or shutdown."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        job_id: uuid.UUID,
        owner: str,
        lease: Lease,
        stop: threading.Event,
        interval: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self.factory, self.job_id, self.owner, self.lease, self.stop = factory, job_id, owner, lease, stop
        self.interval = interval
        self.phase: str | None = None
        self.phase_started = 0.0
        self.last_write = float("-inf")

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.stop.is_set():
            raise Interrupted("the worker is shutting down")
        if self.lease.lost.is_set():
            raise LeaseLost(f"the lease of job {self.job_id} went to another worker")
        now = time.monotonic()
        new_phase = phase != self.phase
        if new_phase:
            self.phase, self.phase_started = phase, now
        elif now - self.last_write < self.interval and done < total:
            return
        self.last_write = now
        fraction = done / total if total > 0 else 1.0
        elapsed = now - self.phase_started
        eta = None
        if 0 < fraction < 1 and elapsed > 0:
            eta = utcnow() + timedelta(seconds=elapsed * (1 - fraction) / fraction)
        self.write(phase, fraction, eta)

    def write(self, phase: str, fraction: float, eta: datetime | None) -> None:
        with self.factory() as session, session.begin():
            cancel = jobs.report_progress(
                session, job_id=self.job_id, owner=self.owner, phase=phase, fraction=fraction, eta_at=eta
            )
        if cancel is None:
            raise LeaseLost(f"the lease of job {self.job_id} went to another worker")
        if cancel:
            raise Cancelled(f"job {self.job_id} was cancelled")


# ---- the entry point ----


def run_job(
    job_id: uuid.UUID,
    *,
    settings: Settings | None = None,
    owner: str | None = None,
    lease_seconds: float | None = None,
    max_attempts: int | None = None,
    stop: threading.Event | None = None,
    device: str | torch.device | None = None,
) -> Outcome:
    """Claim the job and run it to a recorded outcome; a second delivery of the same id returns not_claimed."""
    settings = settings or get_settings()
    lease_seconds = lease_seconds or settings.lease_seconds
    max_attempts = max_attempts or settings.max_attempts
    owner = owner or default_owner()
    stop = stop or threading.Event()
    factory = session_factory(settings.database_url)
    with factory() as session, session.begin():
        claimed = jobs.claim(
            session, job_id=job_id, owner=owner, lease_seconds=lease_seconds, max_attempts=max_attempts
        )
    if claimed is None:
        return Outcome.not_claimed
    log.info("job claimed", extra={"job_id": str(job_id), "owner": owner})
    with Lease(factory, job_id, owner, lease_seconds) as lease:
        progress = JobProgress(factory, job_id, owner, lease, stop)
        try:
            with factory() as session:
                plan = read_plan(session, job_id=job_id, settings=settings)
            store = ObjectStore.from_settings(settings)
            run = {JobKind.unlearn: _run_unlearn, JobKind.tuning: _run_tuning}.get(plan.kind, _run_reference_models)
            return run(plan, factory=factory, owner=owner, store=store, progress=progress,
                       device=torch.device(device) if device is not None else default_device())  # fmt: skip
        except LeaseLost:
            log.warning("job lease lost; nothing recorded", extra={"job_id": str(job_id)})
            return Outcome.lease_lost
        except Yielded:
            with factory() as session, session.begin():
                jobs.release(session, job_id=job_id, owner=owner, reason="a deletion request is waiting")
            log.info("tuning job handed back for a waiting unlearning job", extra={"job_id": str(job_id)})
            return Outcome.yielded
        except Interrupted:
            with factory() as session, session.begin():
                jobs.release(session, job_id=job_id, owner=owner)
            log.info("job interrupted; lease released", extra={"job_id": str(job_id)})
            return Outcome.interrupted
        except Cancelled:
            with factory() as session, session.begin():
                recorded = jobs.stop_cancelled(session, job_id=job_id, owner=owner)
            return Outcome.cancelled if recorded else Outcome.lease_lost
        except (OperationalError, InterfaceError):
            # The connection to the ledger broke (network, failover, restart). The outcome is recorded in
            # one transaction, so nothing is half-written; the lease runs out and the job is claimed again
            # (by the sweeper's re-send, or the local executor's next look), counting this attempt.
            log.warning("lost the database mid-job; it will be retried", extra={"job_id": str(job_id)},
                        exc_info=True)  # fmt: skip
            return Outcome.database_lost
        except Exception as exc:
            log.exception("job failed", extra={"job_id": str(job_id)})
            with factory() as session, session.begin():
                recorded = jobs.fail(session, job_id=job_id, owner=owner, error=_describe(exc, settings))
            return Outcome.failed if recorded else Outcome.lease_lost


def _describe(exc: BaseException, settings: Settings) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return "the job ran past its time limit (UNLEARN_JOB_SOFT_TIME_LIMIT_SECONDS) and was stopped"
    text = _without_server_paths(str(exc).strip(), settings) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_CHARS]


def _without_server_paths(text: str, settings: Settings) -> str:
    """A job's error is shown to API callers: files are named relative to the data root (as the dataset
    endpoints name them) and stored objects by their place in the storage, never by a path on the server."""
    data_root = str(settings.data_root.resolve())
    text = text.replace(f"{data_root}/", "").replace(data_root, "<data root>")
    store = ObjectStore.from_settings(settings)
    for root in sorted({store.fs.unstrip_protocol(store.root), store.root}, key=len, reverse=True):
        text = text.replace(root, "<storage>")
    return text


class JobError(RuntimeError):
    """The ledger and the data disagree (e.g. an ID no longer in the dataset); the job cannot run."""


def _store(store: ObjectStore, data: bytes, *, factory: sessionmaker[Session], plan: Plan, owner: str) -> StoredObject:
    """Store an object and name it as the job's at once (job.outputs): until the job records it, no other row
    does, and the erasure sweep removes unnamed objects as orphans once they are old enough."""
    stored = store.put_bytes(data)
    with factory() as session, session.begin():
        if not jobs.note_output(session, job_id=plan.job_id, owner=owner, stored=stored):
            raise LeaseLost(f"the lease of job {plan.job_id} went to another worker")
    return stored


def _load_model(store: ObjectStore, version: VersionRef, device: torch.device) -> nn.Module:
    return load_checkpoint(store.read_bytes(version.uri, version.sha256), device=device).model.eval()


def _subset(train: ImageSet, ids: list[str], what: str) -> ImageSet:
    try:
        return train.subset(train.positions(ids))
    except KeyError as exc:
        raise JobError(f"{what}: the dataset's training split no longer holds {exc.args[0]}") from None


def _with_eps(cfg: UnlearnConfig, parent: VersionRef, model: nn.Module, forget: ImageSet,
              progress: Progress) -> UnlearnConfig:  # fmt: skip
    """AMUN's starting radius (unlearning.attack.starting_radius): the model config's, else the parent version's,
    else calibrated now on this forget set; recorded with the new version for later jobs. Other methods use none."""
    if cfg.method not in AMUN_METHODS:
        return cfg
    attack = starting_radius(cfg.attack, parent.eps_init, model, forget.x, forget.y, seed=cfg.seed, progress=progress)
    return replace(cfg, attack=attack)


def _nothing_kept(result) -> bool:
    """The guard tripped before any check passed, so the run handed back its parent's weights."""
    return bool(result.guard_tripped) and result.stop_point == PARENT


def _guarded(cfg: UnlearnConfig, max_acc_drop: float) -> UnlearnConfig:
    """The config with the utility guard: a config without a stopping rule runs every epoch, with a guard-only
    rule (no AUC criterion) that stops it once held-out accuracy falls more than `max_acc_drop` points
    below the parent's, at the best passing point. A config's own stopping rule is kept as it is."""
    if cfg.stop is not None:
        return cfg
    return replace(cfg, stop=StopConfig(tolerance=None, max_acc_drop=max_acc_drop))


def _rmia(
    store: ObjectStore, plan: Plan, data: Dataset, population: np.ndarray, device: torch.device
) -> tuple[RmiaAudit | None, dict[str, Any]]:
    """The RMIA audit with the plan's reference set, and what the report says of the set it used (or why none)."""
    refs = plan.references
    if refs is None:
        return None, {"used": None, "reason": plan.references_missing}
    if refs.num_train != len(data.train):
        return None, {"used": None, "reason": f"reference set {refs.id} was trained on a training split of another "
                      "size"}  # fmt: skip
    try:
        membership = np.load(io.BytesIO(store.read_bytes(refs.membership_uri, refs.membership_sha256)),
                             allow_pickle=False)  # fmt: skip
        models = [_load_model(store, VersionRef(0, c["uri"], c["sha256"], 0, None), device) for c in refs.checkpoints]
    except StorageError as exc:
        # the erasure sweep destroyed the set since the plan was read (it held samples forgotten meanwhile):
        # the audit goes on without RMIA rather than failing the job
        log.warning("reference set unreadable; auditing without RMIA", extra={"reference_set": str(refs.id)})
        return None, {"used": None, "reason": f"reference set {refs.id} could not be read: {exc}"}
    return RmiaAudit(models, membership, data.train, data.test, population), {"used": refs.describe()}


def _original(store: ObjectStore, plan: Plan, parent: nn.Module, device: torch.device) -> nn.Module | None:
    """The original model to compare with, or None once its checkpoint was destroyed (the audit then uses what
    version 2's audit recorded of it): already when the plan was read, or by a sweep since."""
    if plan.original is None:
        return None
    if plan.original.number == plan.parent.number:
        return parent
    try:
        return _load_model(store, plan.original, device)
    except StorageError:
        log.warning("the original is unreadable; auditing against what was recorded of it",
                    extra={"job_id": str(plan.job_id)})  # fmt: skip
        return None


def _run_unlearn(
    plan: Plan,
    *,
    factory: sessionmaker[Session],
    owner: str,
    store: ObjectStore,
    progress: JobProgress,
    device: torch.device,
) -> Outcome:
    if not plan.forget_ids:
        raise JobError("the job covers no samples: every request it held was cancelled")
    data = load_dataset(plan.dataset, device=device)
    holdout_pos, scored_pos = holdout_split(len(data.test), seed=HOLDOUT_SEED)
    parent = _load_model(store, plan.parent, device)
    original = _original(store, plan, parent, device)
    forget = _subset(data.train, plan.forget_ids, "the forget set")
    cfg = _with_eps(from_dict(UnlearnConfig, plan.job_config["unlearn_config"]), plan.parent, parent, forget, progress)
    cfg = _guarded(cfg, plan.guard_max_acc_drop)  # recorded as run: the version's config shows the guard
    # The retain set excludes every sample forgotten before and every one claimed by a request still
    # waiting: training on them again would work against their deletion.
    rest = remaining(data.train, plan.claimed_ids)
    started = time.perf_counter()
    holdout = data.test.subset(holdout_pos)
    result = run_unlearning(parent, forget, rest if cfg.retain_access else None, cfg, holdout=holdout,
                            progress=progress)  # fmt: skip
    if _nothing_kept(result):
        # no point of the run stayed within the guard, so it returned the parent: nothing was forgotten.
        # Once more at half the rate; a second miss fails the job rather than calling the parent "unlearned".
        first_lr, cfg = cfg.lr, replace(cfg, lr=cfg.lr / 2)
        result = run_unlearning(parent, forget, rest if cfg.retain_access else None, cfg, holdout=holdout,
                                progress=progress)  # fmt: skip
        if _nothing_kept(result):
            raise JobError(
                f"the utility guard stopped unlearning at lr {first_lr:g} and again at {cfg.lr:g} before any point "
                f"kept held-out accuracy within {cfg.stop.max_acc_drop:g} points of the parent's "
                f"({result.parent_holdout_acc:.2f}%): nothing was forgotten; tune the model "
                "(POST /v1/models/{id}/tuning) or lower its unlearn_config.lr, then send the request again")
    compute_seconds = time.perf_counter() - started
    version_number = plan.parent.number + 1
    lineage = {
        "model_id": str(plan.model_id),
        "version": version_number,
        "parent_version": plan.parent.number,
        "parent_sha256": plan.parent.sha256,
        "request_ids": [str(r) for r in plan.request_ids],
        "code_version": code_version(),
    }
    checkpoint = _store(store, checkpoint_bytes(result.model, cfg, extra=lineage), factory=factory, plan=plan,
                        owner=owner)  # fmt: skip
    progress.write("audit", 0.0, None)
    with factory() as session, session.begin():
        if not jobs.enter_audit(session, job_id=plan.job_id, owner=owner):
            raise LeaseLost(f"the lease of job {plan.job_id} went to another worker")

    earlier = [(f"v{number}", _subset(data.train, ids, f"samples forgotten by version {number}"))
               for number, ids in plan.earlier.items()]  # fmt: skip
    rmia, reference_set = _rmia(store, plan, data, holdout_pos, device)
    audit = audit_version(
        model=result.model,
        parent=parent,
        original=original,
        forget=forget,
        earlier=earlier,
        remaining=rest,
        test=data.test.subset(scored_pos),
        rmia=rmia,
        history=plan.history,
        original_recorded=plan.original_recorded,
        context={
            **lineage,
            # which RMIA reference models the audit used (id, k, trained_at, how many claimed samples none of
            # them trained on), or why none
            "reference_set": reference_set,
            "method": cfg.method,
            "hyper_parameters": to_dict(cfg),
            "seeds": {"unlearn": cfg.seed, "holdout_split": HOLDOUT_SEED},
            "input_sha256": plan.parent.sha256,
            "output_sha256": checkpoint.sha256,
        },
    )
    page = _store(store, audit.html.encode("utf-8"), factory=factory, plan=plan, owner=owner)
    metrics = {
        **audit.metrics,
        "seconds": {**result.seconds, "total": compute_seconds},
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        # the utility guard: whether it stopped the job, every check it made and the point it returned
        "guard_tripped": result.guard_tripped,
        "stop_checks": result.stop_checks,
        "stop_point": result.stop_point,
        "parent_holdout_acc": result.parent_holdout_acc,
        "retain_size": len(rest) if cfg.retain_access else 0,
    }
    with factory() as session, session.begin():
        version = jobs.complete_unlearn(
            session,
            job_id=plan.job_id,
            owner=owner,
            checkpoint=checkpoint,
            config=to_dict(cfg),
            code_version=code_version(),
            forgotten_count=plan.parent.forgotten_count + len(forget),
            metrics=metrics,
            audit=audit.report,
            audit_html=page,
        )
    if version is None:
        raise LeaseLost(f"the lease of job {plan.job_id} went to another worker")
    log.info("job succeeded", extra={"job_id": str(plan.job_id), "version": version_number})
    return Outcome.succeeded


def _run_reference_models(
    plan: Plan,
    *,
    factory: sessionmaker[Session],
    owner: str,
    store: ObjectStore,
    progress: JobProgress,
    device: torch.device,
) -> Outcome:
    """k models on complementary random halves of the training samples no request has claimed, so each of them
    is OUT of k/2 models and every claimed one OUT of all k: a set never holds a sample forgotten (or being
    forgotten) before it was trained, and the erasure sweep destroys it only for samples forgotten since."""
    k = int(plan.job_config["k"])
    recipe = from_dict(TrainConfig, plan.job_config["recipe"])
    train = load_dataset(plan.dataset, device=device).train
    n = len(train)
    excluded = np.flatnonzero(np.isin(train.ids, np.asarray(plan.claimed_ids, dtype=str)))
    if n - len(excluded) < 2:
        raise JobError(f"{len(excluded)} of the {n} training samples are forgotten or claimed: too few remain to "
                       "split between reference models")  # fmt: skip
    membership = reference_membership(n, k, excluded=excluded)
    stored: list[StoredObject] = []
    for i, member in enumerate(membership):
        seeded = replace(recipe, seed=reference_seed(i))
        trained = train_model(plan.arch, train.subset(np.flatnonzero(member)), seeded, device=device,
                              progress=progress, phase=f"reference {i + 1}/{k}")  # fmt: skip
        extra = {"model_id": str(plan.model_id), "reference": i, "of": k}
        stored.append(_store(store, checkpoint_bytes(trained.model, seeded, extra=extra), factory=factory, plan=plan,
                             owner=owner))  # fmt: skip
    buffer = io.BytesIO()
    np.save(buffer, membership, allow_pickle=False)
    matrix = _store(store, buffer.getvalue(), factory=factory, plan=plan, owner=owner)
    with factory() as session, session.begin():
        recorded = jobs.complete_reference_models(
            session, job_id=plan.job_id, owner=owner, membership=matrix, checkpoints=stored, num_train=n,
            excluded_request_ids=plan.claimed_request_ids, excluded_count=len(excluded),
        )  # fmt: skip
    if recorded is None:
        raise LeaseLost(f"the lease of job {plan.job_id} went to another worker")
    return Outcome.succeeded


def _tuning_subset(train: ImageSet, claimed_ids: list[str], size: int, seed: int) -> ImageSet:
    """A seeded draw of `size` training samples no request has forgotten or claimed: a forget subset that no
    audited request uses, which stays in the model (only copies are unlearned)."""
    candidates = np.flatnonzero(~np.isin(train.ids, np.asarray(claimed_ids, dtype=str)))
    if size >= len(candidates):
        raise JobError(f"a tuning subset of {size} samples leaves none of the {len(candidates)} training samples "
                       "not yet forgotten to unlearn with")  # fmt: skip
    return train.subset(np.sort(np.random.default_rng(seed).choice(candidates, size=size, replace=False)))


def _setting_record(setting: Any) -> dict[str, Any]:
    """One setting of a ScheduleChoice's grid in the provenance's words (the same for both procedures)."""
    return {
        "lr": setting.lr,
        "step_size": setting.step_size,
        "seeds": setting.seeds,
        "scores": setting.avg_gap_mis,  # per finished run, in the units of the record's metric
        "mean_score": setting.mean_gap_mis,  # None when a run diverged
        "holdout_acc": setting.test_acc,  # per finished run, percent, on the held-out half of the test split
        "mean_holdout_acc": setting.mean_test_acc,
        "diverged": setting.diverged,
        "near_divergence": setting.near_divergence,
        "feasible": setting.feasible,
        "reason": setting.reason,
    }


class _YieldingProgress:
    """A tuning job's progress callback: the job's own, and every YIELD_CHECK_S a look for an unlearning job
    waiting for a worker, for which the job stops (the run in progress is lost, finished ones are kept)."""

    def __init__(self, progress: JobProgress, factory: sessionmaker[Session], job_id: uuid.UUID) -> None:
        self.progress, self.factory, self.job_id = progress, factory, job_id
        self.last_look = float("-inf")

    def __call__(self, phase: str, done: int, total: int) -> None:
        self.progress(phase, done, total)
        now = time.monotonic()
        if now - self.last_look < YIELD_CHECK_S:
            return
        self.last_look = now
        with self.factory() as session:
            waiting = jobs.unlearning_waiting(session, waited_seconds=YIELD_AFTER_S)
        if waiting:
            raise Yielded(f"tuning job {self.job_id} yields to a waiting unlearning job")


class _TuningState:
    """What a tuning job keeps in job.partial across claims: its tuning subset, the retrained reference's
    metrics, and the outcome of every finished run, stored as each is known."""

    def __init__(self, factory: sessionmaker[Session], plan: Plan, owner: str) -> None:
        self.factory, self.job_id, self.owner = factory, plan.job_id, owner
        self.data: dict[str, Any] = {"runs": [], **(plan.partial or {})}

    def save(self) -> None:
        with self.factory() as session, session.begin():
            if not jobs.save_partial(session, job_id=self.job_id, owner=self.owner, partial=self.data):
                raise LeaseLost(f"the lease of job {self.job_id} went to another worker")

    def done(self, forget_in_mix: bool) -> dict[tuple[float, int, int], tuple[float, float] | None]:
        """The finished runs of one mix (runs kept before mixes were tuned ran the config's own, True)."""
        return {(r["lr"], r["step_size"], r["seed"]): (None if r["diverged"] else (r["score"], r["acc"]))
                for r in self.data["runs"] if r.get("forget_in_mix", True) == forget_in_mix}  # fmt: skip

    def on_run(self, cfg: UnlearnConfig, outcome: tuple[float, float] | None) -> None:
        score, acc = outcome if outcome is not None else (None, None)
        run = {"lr": cfg.lr, "step_size": cfg.step_size, "seed": cfg.seed, "forget_in_mix": cfg.forget_in_mix,
               "score": score, "acc": acc, "diverged": outcome is None}  # fmt: skip
        self.data = {**self.data, "runs": [*self.data["runs"], run]}
        self.save()


def _run_tuning(
    plan: Plan,
    *,
    factory: sessionmaker[Session],
    owner: str,
    store: ObjectStore,
    progress: JobProgress,
    device: torch.device,
) -> Outcome:
    """Choose the model's lr and step_size on a tuning forget subset, starting from the version that was the
    newest when the job was first claimed.

    Both procedures use the remaining data as unlearning jobs do (per retain_access, without anything
    forgotten or claimed, nor the tuning subset) and the held-out half of the test split; the scored half,
    on which every audit reports, is never seen. Every run is guarded as an unlearning job is (_guarded), so a
    setting is scored on what a job with it would return: one whose first checks lose too much accuracy
    gets the parent back, and with it the parent's score. The chosen config keeps the model's own `stop`.

    The job hands its worker to a waiting unlearning job (_YieldingProgress) and resumes later from its kept
    runs."""
    watched = _YieldingProgress(progress, factory, plan.job_id)
    spec = plan.job_config
    base = from_dict(UnlearnConfig, spec["unlearn_config"])
    lrs, step_sizes, runs = list(spec["lrs"]), list(spec["step_sizes"]), int(spec["runs"])
    state = _TuningState(factory, plan, owner)
    data = load_dataset(plan.dataset, device=device)
    holdout_pos, _ = holdout_split(len(data.test), seed=HOLDOUT_SEED)
    holdout = data.test.subset(holdout_pos)
    parent = _load_model(store, plan.parent, device)
    if "forget_ids" in state.data:  # a resumed job: the same subset, whatever was forgotten since
        forget = _subset(data.train, state.data["forget_ids"], "the tuning subset")
    else:
        forget = _tuning_subset(data.train, plan.claimed_ids, int(spec["forget_size"]), int(spec["seed"]))
        state.data["forget_ids"] = forget.ids.tolist()
        state.save()
    rest = remaining(data.train, [*plan.claimed_ids, *forget.ids.tolist()])
    # AMUN's radius once for every run (an earlier version's, or calibrated on the tuning subset); the
    # chosen config keeps the model's own attack settings
    cfg = _guarded(_with_eps(base, plan.parent, parent, forget, watched), plan.guard_max_acc_drop)
    record: dict[str, Any] = {}
    # AMUN's mix is tuned with the schedule (with D_F in the fine-tuning mix, and D_R u D_A without it): the
    # same grid for each, the better choice wins (tuning.best_of); a job queued before mixes were tuned
    # tries the config's own
    mixes = [bool(m) for m in spec.get("forget_mixes", [cfg.forget_in_mix])]
    by_mix: dict[bool, ScheduleChoice] = {}
    if spec["procedure"] == "retrain":
        assert cfg.recipe is not None  # checked at enqueue
        order = np.random.default_rng(int(spec["seed"])).permutation(len(rest))
        retain_eval = rest.subset(np.sort(order[: len(holdout)]))
        if state.data.get("reference") is None:
            # the paper's reference: the model's recipe on the remaining data without the tuning subset; it
            # lives only in memory, so no copy of the training data outlives the job
            reference = train_model(plan.arch, rest, cfg.recipe, device=device, progress=watched,
                                    phase="reference").model  # fmt: skip
            state.data["reference"], _ = evaluate(reference, forget, retain_eval, holdout)
            state.save()
        for mix in mixes:
            by_mix[mix] = tune_against_retrain(
                parent, replace(cfg, forget_in_mix=mix), lrs, step_sizes, forget=forget, retain=rest,
                retain_eval=retain_eval, holdout=holdout, reference=state.data["reference"], runs=runs,
                max_acc_drop=plan.guard_max_acc_drop, progress=watched, done=state.done(mix), on_run=state.on_run)
        record.update(metric=RETRAIN_METRIC, reference=state.data["reference"])
    else:
        for mix in mixes:
            by_mix[mix] = tune_reference_free(
                parent, replace(cfg, forget_in_mix=mix), lrs, step_sizes, forget=forget, retain=rest,
                holdout=holdout, runs=runs, max_acc_drop=plan.guard_max_acc_drop, progress=watched,
                done=state.done(mix), on_run=state.on_run)
        record.update(metric=REFERENCE_FREE_METRIC)
    mix, choice = best_of(by_mix)
    record = {
        "procedure": spec["procedure"],
        **record,
        # every setting of every mix tried, in order
        "grid": [{**_setting_record(s), "forget_in_mix": m} for m, c in by_mix.items() for s in c.grid],
        "forget_mixes": mixes,
        "chosen": {"lr": choice.lr, "step_size": choice.step_size, "forget_in_mix": mix},
        # False: no setting met the constraints, and the least damaging one was chosen
        "constraint_met": choice.constraint_met,
        "max_acc_drop": choice.max_acc_drop,
        "parent_holdout_acc": choice.original_test_acc,
        "method": choice.method,
        "stop": to_dict(cfg.stop) if cfg.stop is not None else None,  # the stopping rule every run had
        "runs": choice.runs,
        "base_seed": choice.base_seed,
        "tuning_forget_size": choice.tuning_forget_size,
        "tuning_seed": int(spec["seed"]),
        "holdout_size": len(holdout),
        "retain_size": len(rest) if cfg.retain_access else 0,
        "tuned_version": plan.parent.number,
        "code_version": code_version(),
    }
    with factory() as session, session.begin():
        provenance = jobs.complete_tuning(session, job_id=plan.job_id, owner=owner, choice=record)
    if provenance is None:
        raise LeaseLost(f"the lease of job {plan.job_id} went to another worker")
    log.info("model tuned", extra={"job_id": str(plan.job_id), "lr": choice.lr, "step_size": choice.step_size,
                                   "forget_in_mix": mix})
    return Outcome.succeeded
