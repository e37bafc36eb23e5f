"""Typed resources of the service's API, mirroring its response schemas (service/*/schemas.py).

Fields a newer service adds are kept, not refused (extra="allow": readable as attributes and in
model_extra), and nullable fields default to None, so an older client keeps working against a newer server.
Statuses and kinds are plain strings for the same reason; the StrEnums below name the values known today and
compare equal to them (`request.status == RequestStatus.completed`).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Generic, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class Resource(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RequestStatus(enum.StrEnum):
    received = "received"
    queued = "queued"
    running = "running"
    auditing = "auditing"
    completed = "completed"
    rejected = "rejected"
    failed = "failed"
    cancelled = "cancelled"


FINAL_REQUEST_STATUSES = frozenset({RequestStatus.completed, RequestStatus.rejected, RequestStatus.failed,
                                    RequestStatus.cancelled})  # fmt: skip


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINAL_JOB_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class JobKind(enum.StrEnum):
    unlearn = "unlearn"
    audit = "audit"
    reference_models = "reference_models"
    tuning = "tuning"


class SampleState(enum.StrEnum):
    """Where a sample of the suppression list stands."""

    forgotten = "forgotten"  # a ready version excludes it
    in_flight = "in_flight"  # claimed by a request still being carried out; not to be trained on either


class VersionStatus(enum.StrEnum):
    pending = "pending"
    ready = "ready"
    failed = "failed"
    destroyed = "destroyed"  # its checkpoint was deleted once the model's retention window ended (410 Gone)


class WebhookStatus(enum.StrEnum):
    pending = "pending"  # waiting for its first or next attempt
    delivered = "delivered"  # a 2xx answer came
    failed = "failed"  # attempts spent, the URL refused, or the receiver's 410 disabled the request's callbacks


# ---- operations ----


class ExecutorHealth(Resource):
    status: str
    restarts: int
    last_exit: str | None = None


class Health(Resource):
    status: str
    database: str
    executor: ExecutorHealth | None = None  # present when the service supervises a local executor


# ---- API keys ----


class ApiKey(Resource):
    id: uuid.UUID
    name: str
    prefix: str  # the key's public first part, to recognise it
    scopes: list[str]  # "read", "write", "admin"
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKey):
    key: str  # the secret: shown only in this answer


# ---- datasets ----


class Dataset(Resource):
    id: uuid.UUID
    name: str
    format: str  # idx, cifar10, imagefolder, npz, digits
    path: str | None = None
    id_file: str | None = None
    id_scheme: str  # "positional" ('0', '1', ...) or "id_file"
    retain_access: bool
    spec: dict[str, Any]
    num_train: int
    num_test: int
    classes: list[str]
    input_shape: list[int]  # C, H, W
    created_at: datetime


# ---- models, versions, jobs ----


class Model(Resource):
    id: uuid.UUID
    name: str
    dataset_id: uuid.UUID
    architecture: dict[str, Any]
    method: str
    unlearn_config: dict[str, Any]
    latest_version: int  # the newest ready version; 1 = the registered original
    tuning: dict[str, Any] | None = None  # where unlearn_config's lr and step_size came from, once tuned
    # seconds an artefact holding forgotten samples is kept before it is destroyed (0 = at once, at most 30 days)
    retention_seconds: int | None = None
    created_at: datetime


class Checkpoint(Resource):
    sha256: str  # of the file's bytes; also the download's ETag
    size_bytes: int
    download_url: str


class Lineage(Resource):
    parent_version: int | None = None
    request_ids: list[uuid.UUID] = Field(default_factory=list)
    job_id: uuid.UUID | None = None
    method: str | None = None
    hyper_parameters: dict[str, Any] | None = None
    seed: int | None = None
    code_version: str | None = None


class Version(Resource):
    id: uuid.UUID
    model_id: uuid.UUID
    number: int  # 1 = the registered original
    status: str  # VersionStatus
    checkpoint: Checkpoint | None = None
    lineage: Lineage
    forgotten_count: int
    metrics: dict[str, Any] | None = None
    audit_available: bool
    created_at: datetime
    ready_at: datetime | None = None
    destroyed_at: datetime | None = None  # when its checkpoint was deleted (status destroyed)
    destruction_reason: str | None = None


class Job(Resource):
    id: uuid.UUID
    model_id: uuid.UUID
    kind: str  # JobKind
    status: str  # JobStatus
    phase: str | None = None  # what the worker does now, e.g. attack, fine-tune, audit
    percent: float  # progress of the current phase, 0 to 100
    eta: datetime | None = None
    eta_seconds: float | None = None
    attempts: int
    cancel_requested: bool
    error: str | None = None
    parent_version: int | None = None
    result_version: int | None = None
    request_ids: list[uuid.UUID] = Field(default_factory=list)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


# ---- deletion requests ----


class DeletionRequest(Resource):
    id: uuid.UUID
    model_id: uuid.UUID
    subject_request_id: str | None = None
    regulation: str | None = None
    received_at: datetime | None = None  # when the controller received it: the due date counts from it
    due_at: datetime | None = None
    overdue: bool | None = None  # the due date passed while the request is still in flight
    status: str  # RequestStatus
    sample_count: int  # distinct IDs submitted
    new_sample_count: int  # IDs this request forgets
    already_forgotten_count: int  # IDs an earlier request had already forgotten or claimed
    job_id: uuid.UUID | None = None
    version: int | None = None  # the first version without its samples
    version_id: uuid.UUID | None = None
    guard_tripped: bool | None = None
    error: str | None = None
    callback_url: str | None = None
    callbacks_disabled_at: datetime | None = None  # when the receiver answered 410 Gone; see redeliver(reenable=)
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    erased_at: datetime | None = None  # when no stored copy of its samples remained; then get_receipt
    receipt_url: str | None = None


class ClaimedElsewhere(Resource):
    sample_id: str
    request_id: uuid.UUID  # the earlier request that forgets it
    version: int | None = None  # the version that forgot it; None while that request is in flight


class AlreadyForgotten(Resource):
    count: int
    listed: list[ClaimedElsewhere]  # the first of them, in the order submitted


class DeletionRequestFilters(TypedDict, total=False):
    """The filters of list_deletion_requests and iter_deletion_requests; all must hold."""

    model_id: str | uuid.UUID
    status: str | Sequence[str]  # one state, or several
    subject_request_id: str  # your own reference, exactly
    regulation: str  # "gdpr" or "ccpa"
    overdue: bool
    received_after: datetime | str  # the controller's receipt at or after (a datetime with a time zone, or RFC 3339)
    received_before: datetime | str  # ... and before
    created_after: datetime | str  # this service's receipt at or after
    created_before: datetime | str  # ... and before
    sort: str  # "created_at" (default), "received_at" or "due_at" (requests without one last)
    order: str  # "desc" (default) or "asc"


class JobFilters(TypedDict, total=False):
    """The filters of list_jobs and iter_jobs; all must hold."""

    model_id: str | uuid.UUID
    status: str | Sequence[str]  # one state, or several
    kind: str | Sequence[str]  # one kind, or several


class ForgottenSample(Resource):
    """One entry of a model's suppression list: a training sample never to be trained on again."""

    sample_id: str
    request_id: uuid.UUID  # the deletion request that claimed it
    state: str  # SampleState
    version: int | None = None  # the first version without it; None while in flight
    forgotten_at: datetime | None = None  # when that version became ready


class DeletionRequestAccepted(DeletionRequest):
    """The answer to a submission: 202 while its samples wait to be forgotten, 200 when nothing was left."""

    duplicate_count: int
    already_forgotten: AlreadyForgotten


class RequestEvent(Resource):
    seq: int  # position in the service's tamper-evident event chain
    type: str
    created_at: datetime
    actor: str
    data: dict[str, Any]
    hash: str


class WebhookDelivery(Resource):
    """One callback message of a request, or one redelivery of it (the delivery log)."""

    id: uuid.UUID
    message_id: str  # the webhook-id header: the same on every attempt and every redelivery of the message
    event_type: str
    status: str  # WebhookStatus
    attempts: int
    last_status_code: int | None = None  # None if no answer came
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None  # None unless pending
    delivered_at: datetime | None = None
    last_error: str | None = None
    redelivery_of: uuid.UUID | None = None  # the delivery of the message this one sends again
    created_at: datetime


# ---- audits, certificates, keys ----


class AuditCheck(Resource):
    name: str
    result: str  # pass, fail or inconclusive
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    limit: str | None = None
    passed: bool | None = None


class AuditReport(Resource):
    """A version's audit report (schema unlearning.audit.report/2); the nested parts stay dicts.

    `raw` is the report exactly as the service sent it: a certificate's report_sha256 is the sha256 of its
    RFC 8785 form (unlearning_client.signatures.report_sha256).
    """

    schema_: str = Field(alias="schema")
    context: dict[str, Any]
    headline: str
    verdict: str  # pass, fail or inconclusive
    reasons: list[Any] = Field(default_factory=list)
    failed_checks: list[str] = Field(default_factory=list)
    inconclusive_checks: list[str] = Field(default_factory=list)
    checks: list[AuditCheck] = Field(default_factory=list)
    models: dict[str, Any]
    evidence: dict[str, Any] | None = None
    rmia: dict[str, Any] | None = None
    thresholds: dict[str, Any] | None = None
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditReport:
        report = cls.model_validate(data)
        report._raw = data
        return report

    @property
    def raw(self) -> dict[str, Any]:
        return self._raw


class SampleEvidence(Resource):
    id: str
    set: str  # "current", or the earlier version that forgot it, e.g. "v2"
    score: float
    p_value: float
    indistinguishable: bool


class SampleEvidenceList(Resource):
    model_id: str
    version: int
    score: str
    score_description: str
    alpha: float
    samples: list[SampleEvidence]


class Jwk(Resource):
    kty: str
    crv: str
    x: str  # the raw 32-byte public key, base64url without padding
    kid: str | None = None
    alg: str | None = None
    use: str | None = None


class SigningKey(Resource):
    algorithm: str
    public_key: str  # the raw 32-byte Ed25519 public key, base64
    key_id: str
    jwk: Jwk


class Certificate(Resource):
    """A version's audit summary, signed; check it with unlearning_client.verify_certificate."""

    summary: dict[str, Any]
    signature: str
    algorithm: str
    canonicalization: str | None = None
    key_id: str


class ErasureReceipt(Resource):
    """A request's erasure receipt: what was destroyed and when, signed; check it with
    unlearning_client.verify_receipt."""

    summary: dict[str, Any]
    signature: str
    algorithm: str
    canonicalization: str | None = None
    key_id: str


class WebhookSecret(Resource):
    secret: str
    algorithm: str
    headers: list[str]
    signed_content: str


# ---- lists ----

Item = TypeVar("Item", bound=BaseModel)


class Page(Resource, Generic[Item]):
    """One page of a list: next_page_token is opaque (pass it as page_token, with the same filters, for the next
    page) and None on the last page."""

    items: list[Item]
    next_page_token: str | None = None


@dataclass(frozen=True)
class DownloadedCheckpoint:
    """A checkpoint written to `path` whose bytes hash to `sha256`, as the service stated."""

    path: Path
    sha256: str
    size_bytes: int
