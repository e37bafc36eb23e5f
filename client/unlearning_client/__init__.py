"""Python client of the unlearning service: typed resources, sync and async clients, verified downloads and
checks of the service's signed documents. Depends on httpx and pydantic only.

    from unlearning_client import Client, verify_certificate

    with Client("http://127.0.0.1:8000", api_key) as api:
        accepted = api.submit_deletion_request(model_id, ["17", "42"], subject_request_id="ticket-4711")
        done = api.wait_for_deletion_request(accepted.id)
        api.download_checkpoint(model_id, done.version, "unlearned.safetensors")  # sha256 checked
        summary = verify_certificate(api.get_certificate(model_id, done.version), api.get_signing_key())
"""

from unlearning_client.client import AsyncClient, Client, __version__
from unlearning_client.errors import (
    ApiError,
    BadRequest,
    CanonicalizationError,
    ChecksumMismatch,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    ServiceUnreachable,
    SignatureError,
    Unauthorized,
    UnexpectedAnswer,
    UnlearningError,
    UnsupportedMediaType,
    ValidationFailed,
    WaitTimeout,
)
from unlearning_client.jcs import canonicalize
from unlearning_client.models import (
    FINAL_JOB_STATUSES,
    FINAL_REQUEST_STATUSES,
    AlreadyForgotten,
    ApiKey,
    ApiKeyCreated,
    AuditCheck,
    AuditReport,
    Certificate,
    Checkpoint,
    ClaimedElsewhere,
    Dataset,
    DeletionRequest,
    DeletionRequestAccepted,
    DeletionRequestFilters,
    DownloadedCheckpoint,
    ErasureReceipt,
    ForgottenSample,
    Health,
    Job,
    JobFilters,
    JobKind,
    JobStatus,
    Jwk,
    Lineage,
    Model,
    Page,
    RequestEvent,
    RequestStatus,
    SampleEvidence,
    SampleState,
    SampleEvidenceList,
    SigningKey,
    Version,
    VersionStatus,
    WebhookDelivery,
    WebhookSecret,
    WebhookStatus,
)
from unlearning_client.retry import NO_RETRIES, RetryPolicy
from unlearning_client.signatures import (
    PublicKey,
    public_key,
    report_sha256,
    verify_certificate,
    verify_receipt,
    verify_signed,
)

__all__ = [
    "DeletionRequestFilters", "ForgottenSample", "JobFilters", "SampleState",
    "FINAL_JOB_STATUSES", "FINAL_REQUEST_STATUSES", "NO_RETRIES", "AlreadyForgotten", "ApiError", "ApiKey",
    "ApiKeyCreated", "AsyncClient", "AuditCheck", "AuditReport", "BadRequest", "CanonicalizationError",
    "Certificate", "Checkpoint", "ChecksumMismatch", "ClaimedElsewhere", "Client", "Conflict", "Dataset",
    "DeletionRequest", "DeletionRequestAccepted", "DownloadedCheckpoint", "ErasureReceipt", "Forbidden", "Gone",
    "Health", "Job",
    "JobKind", "JobStatus", "Jwk", "Lineage", "Model", "NotFound", "Page", "PayloadTooLarge", "PublicKey",
    "RateLimited", "RequestEvent", "RequestStatus", "RetryPolicy", "SampleEvidence", "SampleEvidenceList",
    "ServerError", "ServiceUnavailable", "ServiceUnreachable", "SignatureError", "SigningKey", "Unauthorized",
    "UnexpectedAnswer", "UnlearningError", "UnsupportedMediaType", "ValidationFailed", "Version",
    "VersionStatus", "WaitTimeout", "WebhookDelivery", "WebhookSecret", "WebhookStatus", "__version__",
    "canonicalize", "public_key", "report_sha256", "verify_certificate", "verify_receipt", "verify_signed",
]  # fmt: skip
