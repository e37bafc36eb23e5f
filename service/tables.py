"""The ledger: typed SQLAlchemy mappings of every table (the source of truth; Celery only carries ids).

The schema itself is created and changed only by the Alembic revisions in migrations/.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

GENESIS_HASH = "0" * 64  # prev_hash of the first event


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a timezone-aware column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Specs and metrics are queried on PostgreSQL (JSONB); the event payload stays plain JSON so its text,
# and with it the hash chain, is kept exactly as written.
JSONDoc = JSON().with_variant(JSONB(), "postgresql")


class RequestStatus(enum.StrEnum):
    received = "received"
    queued = "queued"
    running = "running"
    auditing = "auditing"
    completed = "completed"
    rejected = "rejected"  # bad sample IDs; nothing was queued
    failed = "failed"
    cancelled = "cancelled"  # only possible before running


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class JobKind(enum.StrEnum):
    unlearn = "unlearn"
    audit = "audit"
    reference_models = "reference_models"
    tuning = "tuning"  # choose the model's lr and step_size on a tuning subset (service.models.service)


class VersionStatus(enum.StrEnum):
    pending = "pending"
    ready = "ready"  # immutable from here on
    failed = "failed"
    # its checkpoint was deleted from storage once its retention window ended (it held samples a newer
    # version forgot); the row keeps its sha256, size, lineage, metrics and audit (service.erasure)
    destroyed = "destroyed"


def _str_enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # Stored as the value in a VARCHAR with a CHECK constraint: adding a state is a plain migration,
    # never an ALTER TYPE, and SQLite enforces it too.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONDoc, list[Any]: JSONDoc}


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


def _created_at() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


class Tenant(Base):
    __tablename__ = "tenant"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = _created_at()


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # "ulk_" + 8 chars, shown in listings
    secret_sha256: Mapped[str] = mapped_column(String(64))  # of the whole key; the key itself is never stored
    scopes: Mapped[list[Any]]  # of "admin", "write", "read"
    created_at: Mapped[datetime] = _created_at()
    revoked_at: Mapped[datetime | None]


class Dataset(Base):
    __tablename__ = "dataset"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(32))  # one of unlearning.specs.DATASET_FORMATS
    path: Mapped[str | None] = mapped_column(Text)  # relative to the data root, symlinks resolved; None for digits
    id_file: Mapped[str | None] = mapped_column(Text)  # relative to the data root; None = positional sample IDs
    spec: Mapped[dict[str, Any]]  # unlearning.specs.DatasetSpec with the relative paths above
    retain_access: Mapped[bool] = mapped_column(Boolean)  # may unlearning use the remaining training data
    num_train: Mapped[int]
    num_test: Mapped[int]
    classes: Mapped[list[Any]]
    input_shape: Mapped[list[Any]]  # [C, H, W]
    created_at: Mapped[datetime] = _created_at()


class Model(Base):
    __tablename__ = "model"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dataset.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    arch: Mapped[dict[str, Any]]  # unlearning.specs.ArchSpec
    method: Mapped[str] = mapped_column(String(32))  # unlearning.specs.METHODS; also inside unlearn_config
    unlearn_config: Mapped[dict[str, Any]]  # unlearning.specs.UnlearnConfig
    # where unlearn_config's lr and step_size came from, once a tuning job chose them: {job_id, procedure,
    # metric, grid, chosen, previous_config, finished_at, ...}; None while the manifest's values stand
    tuning: Mapped[dict[str, Any] | None]
    # how long an artefact holding samples a newer version forgot is kept, in seconds (0 = destroyed at the
    # next erasure sweep); at most settings.MAX_RETENTION_SECONDS; the window in force at each sweep applies.
    # Registration sets it (the manifest's, else settings.retention_seconds); rows made otherwise get the default
    retention_seconds: Mapped[int] = mapped_column(default=Settings.model_fields["retention_seconds"].default)
    created_at: Mapped[datetime] = _created_at()


class ModelVersion(Base):
    __tablename__ = "model_version"
    __table_args__ = (
        UniqueConstraint("model_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint(
            "status != 'ready' OR (checkpoint_uri IS NOT NULL AND sha256 IS NOT NULL)", name="ready_has_checkpoint"
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model.id"), index=True)
    number: Mapped[int]  # 1 = the registered original
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_version.id"))
    status: Mapped[VersionStatus] = mapped_column(_str_enum(VersionStatus, "version_status"))
    checkpoint_uri: Mapped[str | None] = mapped_column(Text)  # content-addressed location in storage
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # the job that produced it (None for version 1); job.result_version_id points back, hence use_alter
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("job.id", use_alter=True))
    forgotten_count: Mapped[int] = mapped_column(default=0)  # cumulative over all ancestors
    metrics: Mapped[dict[str, Any] | None]
    audit: Mapped[dict[str, Any] | None]  # the audit report of this version
    # the audit report as a self-contained HTML page (with its histograms), content-addressed in storage
    audit_html_uri: Mapped[str | None] = mapped_column(Text)
    audit_html_sha256: Mapped[str | None] = mapped_column(String(64))
    # the UnlearnConfig as run (a calibrated eps_init filled in; later jobs reuse it); None for version 1
    config: Mapped[dict[str, Any] | None]
    code_version: Mapped[str | None] = mapped_column(String(200))  # "<package version>+git.<commit>"
    created_at: Mapped[datetime] = _created_at()
    ready_at: Mapped[datetime | None]
    destroyed_at: Mapped[datetime | None]  # when its checkpoint was deleted (status destroyed)
    destruction_reason: Mapped[str | None] = mapped_column(Text)


class DeletionRequest(Base):
    __tablename__ = "deletion_request"
    # The model belongs to one tenant, so (model_id, idempotency_key) scopes keys per tenant and model.
    # NULL keys never collide on either backend.
    __table_args__ = (
        UniqueConstraint("model_id", "idempotency_key"),
        CheckConstraint("sample_count >= 1", name="sample_count_positive"),
        # the lists: a tenant's requests in creation order (the cursor's key), by the caller's own reference,
        # and by deadline (what is overdue or due soon)
        Index(None, "tenant_id", "created_at", "id"),
        Index(None, "tenant_id", "subject_request_id"),
        Index(None, "tenant_id", "due_at"),
        Index(None, "tenant_id", "received_at", "id"),
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model.id"), index=True)
    subject_request_id: Mapped[str | None] = mapped_column(String(200))  # the caller's own reference
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    payload_sha256: Mapped[str] = mapped_column(String(64))  # a replayed key with another payload is a conflict
    regulation: Mapped[str | None] = mapped_column(String(32))  # e.g. "gdpr", "ccpa"
    # when the controller received the data subject's request: the regulation's clock starts there, not at
    # this service's receipt (created_at); created_at when the caller did not say
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime | None]  # counted from received_at
    sample_count: Mapped[int]  # distinct IDs submitted
    # of those, IDs an earlier request had already forgotten or claimed; they are not forgotten again
    already_forgotten_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[RequestStatus] = mapped_column(_str_enum(RequestStatus, "request_status"), index=True)
    error: Mapped[str | None] = mapped_column(Text)  # why it was rejected or failed, naming the IDs
    callback_url: Mapped[str | None] = mapped_column(Text)
    # the callback target answered 410 Gone: no more deliveries to it for this request (Standard Webhooks)
    callback_disabled_at: Mapped[datetime | None]
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("job.id"), index=True)  # the job covering it
    # the first version without its samples
    version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_version.id"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None]
    # the body of the first answer, replayed verbatim when the Idempotency-Key is sent again
    accepted_response: Mapped[dict[str, Any] | None]
    # the earlier requests whose claims held some of its IDs when it arrived (already_forgotten_count > 0):
    # its erasure waits for theirs. None when it claimed every ID itself
    covered_by: Mapped[list[Any] | None]
    # when no artefact holding its samples remained, and the erasure receipt's summary then issued (signed
    # on every read, as certificates are); plain JSON, kept exactly as written
    erased_at: Mapped[datetime | None]
    erasure_receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ForgottenSample(Base):
    """A training sample of a model claimed by a deletion request.

    The row is written when the request is accepted (version_id NULL while in flight) and gets the
    version that first excludes it on completion; rows of a request that is cancelled or fails are
    deleted. The primary key (model_id, sample_id) answers "already forgotten or being forgotten", and
    is what guarantees that each sample of a model is claimed once.
    """

    __tablename__ = "forgotten_sample"

    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model.id"), primary_key=True)
    sample_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # No foreign key to deletion_request: checking it row by row made the claim of a 100,000-ID request
    # (one INSERT ... SELECT, in the transaction that inserts the request) take most of its 2 s. Nothing
    # is lost: rows are written only by requests.repository.claim_samples, with the id of the request
    # inserted just before in the same transaction, and deletion requests are never deleted (the ledger
    # keeps every request; a cancelled or failed one loses its claims, not its row).
    request_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_version.id"), index=True)
    created_at: Mapped[datetime] = _created_at()


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (
        # SERVICE.md: one unlearning job at a time per model; one more may wait (new requests coalesce
        # into it) while one runs.
        Index(
            "uq_job_model_id_queued_unlearn",
            "model_id",
            unique=True,
            postgresql_where="kind = 'unlearn' AND status = 'queued'",
            sqlite_where="kind = 'unlearn' AND status = 'queued'",
        ),
        Index(
            "uq_job_model_id_running_unlearn",
            "model_id",
            unique=True,
            postgresql_where="kind = 'unlearn' AND status = 'running'",
            sqlite_where="kind = 'unlearn' AND status = 'running'",
        ),
        # one tuning job at a time per model (the service checks first; this settles a race between two)
        Index(
            "uq_job_model_id_active_tuning",
            "model_id",
            unique=True,
            postgresql_where="kind = 'tuning' AND status IN ('queued', 'running')",
            sqlite_where="kind = 'tuning' AND status IN ('queued', 'running')",
        ),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_fraction"),
        Index(None, "tenant_id", "created_at", "id"),  # the job list, newest first (cursor pages)
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model.id"), index=True)
    kind: Mapped[JobKind] = mapped_column(_str_enum(JobKind, "job_kind"))
    status: Mapped[JobStatus] = mapped_column(_str_enum(JobStatus, "job_status"), index=True)
    phase: Mapped[str | None] = mapped_column(String(64))  # e.g. "attack", "finetune", "audit"
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # of the current phase, 0..1
    eta_at: Mapped[datetime | None]
    config: Mapped[dict[str, Any]]  # everything the worker needs beyond the ids, frozen at enqueue time
    # work a worker kept for the next claim when it handed the job back: a tuning job's subset and its
    # finished runs (it yields to waiting unlearning jobs between runs); None for other jobs
    partial: Mapped[dict[str, Any] | None]
    # every object the job stored, named as soon as it is written: while the job runs they are its own (no
    # other row names them yet), and if it ends without recording them they are orphans (service.erasure)
    outputs: Mapped[list[Any] | None]
    lease_owner: Mapped[str | None] = mapped_column(String(200))  # worker that claimed it
    lease_expires_at: Mapped[datetime | None]  # the sweeper requeues the job once this has passed
    resent_at: Mapped[datetime | None]  # the sweeper's last re-send to the queue (it waits before another)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)  # checked between steps
    error: Mapped[str | None] = mapped_column(Text)
    parent_version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_version.id"))
    result_version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_version.id"))
    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Event(Base):
    """One state change; rows form a hash chain and are never updated or deleted (DB triggers refuse it)."""

    __tablename__ = "event"
    __table_args__ = (Index(None, "subject_type", "subject_id"),)

    id: Mapped[uuid.UUID] = _id()
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)  # 1, 2, 3, ... in chain order
    created_at: Mapped[datetime]
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))  # "api_key:<id>" or "cli"
    type: Mapped[str] = mapped_column(String(64))  # dotted, e.g. "dataset.registered"
    subject_type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # unique: two rows naming the same predecessor would be a fork
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256(prev_hash + canonical JSON of the content)


class EventChainHead(Base):
    """The single row (id 1) naming the last event; appenders lock it, which serialises them."""

    __tablename__ = "event_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)  # of the last event; 0 = empty chain
    hash: Mapped[str] = mapped_column(String(64))  # of the last event; GENESIS_HASH when empty


class WebhookStatus(enum.StrEnum):
    pending = "pending"  # waiting for its first or next attempt
    delivered = "delivered"  # a 2xx answer was received
    failed = "failed"  # attempts exhausted or the URL was refused at delivery time


class WebhookDelivery(Base):
    """One callback message in the transactional outbox (service.callbacks writes and sends it).

    The row is added in the transaction of the state change it reports, so a rollback drops the message
    with the change; the sender retries it with backoff. Its id is the Standard Webhooks message id.
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    )

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deletion_request.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(64))  # dotted, e.g. "deletion_request.completed"
    # plain JSON, as for event.data: the body that is signed is rebuilt from it on every attempt
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[WebhookStatus] = mapped_column(
        _str_enum(WebhookStatus, "webhook_status"), default=WebhookStatus.pending
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None]  # the HTTP status of the last attempt; None if no answer came
    last_attempt_at: Mapped[datetime | None]
    # a delivery asked for again (POST .../deliveries/{id}/redeliver) is a new row naming the one it repeats
    redelivery_of: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("webhook_delivery.id"))
    created_at: Mapped[datetime] = _created_at()
    delivered_at: Mapped[datetime | None]


class ReferenceSet(Base):
    """k RMIA reference models of a model, trained on complementary random halves of its training split.

    Model i was trained on the samples where row i of the membership matrix is True; rows 2j and 2j+1
    are complements over the samples no request had claimed, so each of those is OUT of exactly k/2 models
    and every claimed one OUT of all k. The audit uses the newest set not destroyed.
    """

    __tablename__ = "reference_set"
    __table_args__ = (CheckConstraint("k >= 2 AND k % 2 = 0", name="k_even"),)

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model.id"), index=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id"))
    k: Mapped[int]
    num_train: Mapped[int]  # length of the training split the membership matrix indexes
    recipe: Mapped[dict[str, Any]]  # unlearning.specs.TrainConfig of every reference model (seed 100 + i)
    # .npy of the k x num_train bool membership matrix, content-addressed in storage
    membership_uri: Mapped[str] = mapped_column(Text)
    membership_sha256: Mapped[str] = mapped_column(String(64))
    checkpoints: Mapped[list[Any]]  # [{uri, sha256, size_bytes}] in model order
    # the requests whose claimed samples were OUT of every model (all claims when the job read its plan), and
    # how many samples that was: the set holds every sample forgotten by any other request (service.erasure)
    excluded_request_ids: Mapped[list[Any]]
    excluded_count: Mapped[int]
    created_at: Mapped[datetime] = _created_at()
    destroyed_at: Mapped[datetime | None]  # its checkpoints and membership matrix were deleted from storage
    destruction_reason: Mapped[str | None] = mapped_column(Text)
