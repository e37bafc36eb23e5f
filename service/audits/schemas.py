"""Response bodies of the audit endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class JwkRead(BaseModel):
    """The public key as an RFC 8037 JSON Web Key (what JOSE libraries and node's crypto.createPublicKey take)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="the raw 32-byte public key, base64url without padding")
    kid: str = Field(description="the key_id certificates name")
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class SigningKeyRead(BaseModel):
    algorithm: Literal["Ed25519"]
    public_key: str = Field(description="the raw 32-byte Ed25519 public key, base64")
    key_id: str = Field(description="first 16 hex characters of the sha256 of the raw public key")
    jwk: JwkRead = Field(description="the same key as an RFC 8037 JWK")


class CertificateRead(BaseModel):
    summary: dict[str, Any] = Field(
        description="what is attested; signed as its RFC 8785 canonical JSON; summary.report_sha256 is the sha256 "
        "of the audit report's RFC 8785 form"
    )
    signature: str = Field(description="Ed25519 signature of the summary's RFC 8785 canonical JSON, base64")
    algorithm: Literal["Ed25519"]
    canonicalization: Literal["RFC8785"] = Field(
        description="how the signed bytes are made from the summary: RFC 8785 (JSON Canonicalization Scheme)"
    )
    key_id: str = Field(description="which key signed it (see GET /v1/signing-key)")


class SampleEvidenceRead(BaseModel):
    id: str = Field(description="the forgotten sample's ID")
    set: str = Field(description='"current" for this version\'s samples, else the earlier version that forgot it, e.g. "v2"')
    score: float = Field(description="membership score, higher = more member-like")
    p_value: float = Field(description="share of never-seen test samples that score at least as high (with +1 smoothing)")
    indistinguishable: bool = Field(description="p_value >= alpha: the sample looks like data the model never saw")


class SampleEvidenceList(BaseModel):
    """Every sample forgotten up to this version, with its own membership evidence, as this version scores it."""

    model_id: str
    version: int
    score: str = Field(description="which membership score: log_odds_confidence or rmia")
    score_description: str
    alpha: float = Field(description="the per-sample level")
    samples: list[SampleEvidenceRead]
