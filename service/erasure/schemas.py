"""Erasure response bodies: the signed erasure receipt.

Its summary is served exactly as signed: the models keep any field they do not declare and write instants and
IDs as the strings that were signed (service.audits.schemas.Document).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from service.audits.schemas import Document, InstantText

Uuid = Annotated[str, Field(json_schema_extra={"format": "uuid"})]


class ErasedRequest(Document):
    """The request the receipt is about."""

    id: Uuid
    model_id: Uuid
    subject_request_id: str | None
    regulation: str | None
    received_at: InstantText = Field(description="when the controller received it (the regulation clock's start)")
    completed_at: InstantText | None
    sample_count: int = Field(description="distinct IDs it named")
    sample_ids_sha256: str | None = Field(description="sha256 of its distinct IDs, sorted, one per line")


class FirstVersionWithout(Document):
    """The first version that holds none of the request's samples."""

    id: Uuid
    version: int
    sha256: str | None = Field(description="of its checkpoint")


class DestroyedVersion(Document):
    """A model version's checkpoint that held the samples (a superseded version, the original included)."""

    kind: Literal["model_version"]
    id: Uuid
    version: int
    sha256: str | None = Field(description="of the destroyed checkpoint (the version row keeps it)")
    size_bytes: int | None
    destroyed_at: InstantText
    reason: str | None


class DestroyedReferenceSet(Document):
    """A set of RMIA reference models, some of which trained on the samples."""

    kind: Literal["reference_set"]
    id: Uuid
    k: int = Field(description="reference models in the set")
    sha256: str = Field(description="of the set's membership matrix")
    checkpoint_sha256: list[str] = Field(description="of each reference model's checkpoint")
    destroyed_at: InstantText
    reason: str | None


DestroyedArtefact = Annotated[DestroyedVersion | DestroyedReferenceSet, Field(discriminator="kind")]


class ErasureReceiptSummary(Document):
    """What an erasure receipt attests (kind unlearning.erasure_receipt/1); signed as its RFC 8785 form."""

    kind: Literal["unlearning.erasure_receipt/1"]
    statement: str = Field(description="what the receipt attests, and what it does not")
    request: ErasedRequest
    first_version_without: FirstVersionWithout
    covered_by: list[Uuid] = Field(
        description="earlier requests that had claimed some of its IDs when it arrived: the same artefacts held them"
    )
    destroyed: list[DestroyedArtefact] = Field(
        description="every destroyed artefact that held its samples, oldest destruction first"
    )
    storage_checked_at: InstantText = Field(description="when storage was last found free of unreferenced leftovers")
    erased_at: InstantText


class ErasureReceiptRead(BaseModel):
    summary: ErasureReceiptSummary = Field(description="what is attested; signed as its RFC 8785 canonical JSON")
    signature: str = Field(description="Ed25519 signature of the summary's RFC 8785 canonical JSON, base64")
    algorithm: Literal["Ed25519"]
    canonicalization: Literal["RFC8785"] = Field(
        description="how the signed bytes are made from the summary: RFC 8785 (JSON Canonicalization Scheme)"
    )
    key_id: str = Field(description="which key signed it (see GET /v1/signing-key)")
