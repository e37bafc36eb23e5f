"""Checks of the documents the service signs, with no cryptography package: Ed25519 over the RFC 8785 form.

A signed document is a JSON object holding the signed payload (a certificate's `summary`), `signature`
(base64 Ed25519 over the payload's RFC 8785 bytes), `algorithm` ("Ed25519"), `canonicalization` ("RFC8785")
and `key_id` (the first 16 hex digits of the sha256 of the raw public key): certificates and erasure receipts,
both with a `summary`; any other document signed the same way goes through verify_signed with its payload's
field name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from unlearning_client import ed25519
from unlearning_client.errors import CanonicalizationError, SignatureError
from unlearning_client.jcs import canonicalize
from unlearning_client.models import AuditReport, Jwk, SigningKey

ALGORITHM = "Ed25519"
CANONICALIZATION = "RFC8785"
CERTIFICATE_KIND_PREFIX = "unlearning.certificate/"
RECEIPT_KIND_PREFIX = "unlearning.erasure_receipt/"
KEY_ID_HEX_CHARS = 16
_JWK_X = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes in base64url without padding


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key: its raw 32 bytes."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise ValueError(f"an Ed25519 public key has 32 bytes, got {len(self.raw)}")

    @property
    def key_id(self) -> str:
        """The name the service's documents give the key that signed them."""
        return hashlib.sha256(self.raw).hexdigest()[:KEY_ID_HEX_CHARS]

    @classmethod
    def from_base64(cls, text: str) -> PublicKey:
        try:
            return cls(base64.b64decode(text.strip(), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"the public key is not base64 of 32 bytes: {exc}") from None

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> PublicKey:
        """From an RFC 8037 JSON Web Key: {"kty": "OKP", "crv": "Ed25519", "x": <base64url>, ...}."""
        if (jwk.get("kty"), jwk.get("crv")) != ("OKP", "Ed25519"):
            raise ValueError(f"the JWK is kty {jwk.get('kty')!r} crv {jwk.get('crv')!r}, not an OKP Ed25519 key")
        x = jwk.get("x")
        if not isinstance(x, str) or not _JWK_X.fullmatch(x):
            raise ValueError("the JWK's x is not 32 bytes in base64url without padding")
        return cls(base64.urlsafe_b64decode(x + "="))


PublicKeyLike = PublicKey | SigningKey | Jwk | Mapping[str, Any] | str | bytes


def public_key(key: PublicKeyLike) -> PublicKey:
    """A public key from what a caller holds: GET /v1/signing-key's answer (SigningKey or its dict), a JWK (Jwk,
    dict or its JSON text), the base64 raw key, or the raw 32 bytes."""
    if isinstance(key, PublicKey):
        return key
    if isinstance(key, SigningKey):
        return PublicKey.from_base64(key.public_key)
    if isinstance(key, Jwk):
        return PublicKey.from_jwk(key.model_dump())
    if isinstance(key, Mapping):
        if "kty" in key:
            return PublicKey.from_jwk(key)
        if isinstance(key.get("public_key"), str):
            return PublicKey.from_base64(key["public_key"])
        raise ValueError("the mapping is neither a JWK nor a signing-key answer (no 'kty', no 'public_key')")
    if isinstance(key, bytes):
        return PublicKey(key)
    if isinstance(key, str):
        if key.lstrip().startswith("{"):
            try:
                parsed = json.loads(key)
            except json.JSONDecodeError as exc:
                raise ValueError(f"the key looks like a JWK but is not JSON: {exc}") from None
            if not isinstance(parsed, dict):
                raise ValueError("a JWK is a JSON object")
            return PublicKey.from_jwk(parsed)
        return PublicKey.from_base64(key)
    raise TypeError(f"cannot read an Ed25519 public key from a {type(key).__name__}")


def _as_dict(document: Any) -> dict[str, Any]:
    if isinstance(document, BaseModel):
        return document.model_dump(by_alias=True)
    if isinstance(document, Mapping):
        return dict(document)
    raise SignatureError(f"a signed document is a JSON object, got {type(document).__name__}")


def verify_signed(document: Any, key: PublicKeyLike, *, signed_field: str = "summary") -> dict[str, Any]:
    """Check that `document[signed_field]` carries a valid signature by `key`; return that payload.

    Raises SignatureError saying why not: a field is missing, the algorithm or canonicalization is not the
    service's, another key signed it, the payload has no RFC 8785 form, or the signature does not match
    (the payload was altered, or another key signed it).
    """
    doc = _as_dict(document)
    verifier = public_key(key)
    missing = [name for name in (signed_field, "signature", "algorithm") if name not in doc]
    if missing:
        raise SignatureError(f"the document lacks {missing}")
    if doc["algorithm"] != ALGORITHM:
        raise SignatureError(f"algorithm {doc['algorithm']!r} is not supported (only {ALGORITHM})")
    if doc.get("canonicalization") != CANONICALIZATION:
        raise SignatureError(
            f"canonicalization {doc.get('canonicalization')!r} is not supported (only {CANONICALIZATION}); "
            "a certificate without one predates RFC 8785: fetch it again, the service signs it anew"
        )
    payload = doc[signed_field]
    if not isinstance(payload, dict):
        raise SignatureError(f"the document's {signed_field} is not a JSON object")
    if "key_id" in doc and doc["key_id"] != verifier.key_id:
        raise SignatureError(f"signed by key {doc['key_id']!r}, not by the given key {verifier.key_id!r}")
    try:
        signature = base64.b64decode(str(doc["signature"]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"the signature is not valid base64: {exc}") from None
    try:
        signed = canonicalize(payload)
    except CanonicalizationError as exc:
        raise SignatureError(f"the {signed_field} has no RFC 8785 form: {exc}") from None
    if not ed25519.verify(verifier.raw, signed, signature):
        raise SignatureError(
            f"the signature does not match the {signed_field} (altered, or signed by another key)"
        )
    return payload


def report_sha256(report: AuditReport | Mapping[str, Any]) -> str:
    """The sha256 of an audit report's RFC 8785 form, as a certificate's summary.report_sha256 states it."""
    raw = report.raw if isinstance(report, AuditReport) else dict(report)
    return hashlib.sha256(canonicalize(raw)).hexdigest()


def verify_certificate(
    certificate: Any, key: PublicKeyLike, *, report: AuditReport | Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Check a certificate (GET .../versions/{n}/certificate) against the service's public key; return its
    summary. With `report` (GET .../versions/{n}/audit) also check that the certificate names that report.

    Raises SignatureError saying why it does not verify.
    """
    summary = verify_signed(certificate, key, signed_field="summary")
    kind = summary.get("kind")
    if not isinstance(kind, str) or not kind.startswith(CERTIFICATE_KIND_PREFIX):
        raise SignatureError(f"not a certificate: its summary's kind is {kind!r}")
    if report is not None and summary.get("report_sha256") != report_sha256(report):
        raise SignatureError("the certificate's report_sha256 does not match the given audit report")
    return summary


def verify_receipt(receipt: Any, key: PublicKeyLike, *, request_id: str | None = None) -> dict[str, Any]:
    """Check an erasure receipt (GET /v1/deletion-requests/{id}/receipt) against the service's public key; return
    its summary. With `request_id`, also check that the receipt is that request's.

    Raises SignatureError saying why it does not verify.
    """
    summary = verify_signed(receipt, key, signed_field="summary")
    kind = summary.get("kind")
    if not isinstance(kind, str) or not kind.startswith(RECEIPT_KIND_PREFIX):
        raise SignatureError(f"not an erasure receipt: its summary's kind is {kind!r}")
    if request_id is not None and (summary.get("request") or {}).get("id") != str(request_id):
        raise SignatureError(f"the receipt is not request {request_id}'s")
    return summary
