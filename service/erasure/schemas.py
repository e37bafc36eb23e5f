"""Erasure response bodies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErasureReceiptRead(BaseModel):
    summary: dict[str, Any] = Field(
        description="what is attested (kind unlearning.erasure_receipt/1): the request (id, model_id, "
        "subject_request_id, regulation, received_at, completed_at, sample_count, sample_ids_sha256 = sha256 of "
        "its distinct IDs sorted, one per line), first_version_without {id, version, sha256}, covered_by (earlier "
        "requests that held some of its IDs), destroyed [{kind: model_version | reference_set, id, version or k, "
        "sha256, destroyed_at, reason, ...}], storage_checked_at, erased_at; signed as its RFC 8785 canonical JSON"
    )
    signature: str = Field(description="Ed25519 signature of the summary's RFC 8785 canonical JSON, base64")
    algorithm: Literal["Ed25519"]
    canonicalization: Literal["RFC8785"] = Field(
        description="how the signed bytes are made from the summary: RFC 8785 (JSON Canonicalization Scheme)"
    )
    key_id: str = Field(description="which key signed it (see GET /v1/signing-key)")
