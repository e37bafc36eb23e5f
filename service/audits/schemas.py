"""Response bodies of the audit endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class SigningKeyRead(BaseModel):
    algorithm: Literal["Ed25519"]
    public_key: str = Field(description="the raw 32-byte Ed25519 public key, base64")
    key_id: str = Field(description="first 16 hex characters of the sha256 of the raw public key")


class CertificateRead(BaseModel):
    summary: dict[str, Any] = Field(description="what is attested; signed as canonical JSON (sorted keys, no spaces)")
    signature: str = Field(description="Ed25519 signature of the summary's canonical JSON, base64")
    algorithm: Literal["Ed25519"]
    key_id: str = Field(description="which key signed it (see GET /v1/signing-key)")
