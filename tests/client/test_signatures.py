"""Verification of the service's signed documents with the client alone: a real certificate verifies with
every form of the published key, and any change to it fails with the reason."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.client.conftest import Served
from unlearning_client import (
    Certificate,
    Client,
    PublicKey,
    SignatureError,
    SigningKey,
    canonicalize,
    public_key,
    report_sha256,
    verify_certificate,
    verify_signed,
)


@pytest.fixture
def certificate(api: Client, served: Served) -> Certificate:
    return api.get_certificate(served.model.id, 2)


@pytest.fixture
def signing_key(api: Client) -> SigningKey:
    return api.get_signing_key()


def _document(certificate: Certificate) -> dict[str, Any]:
    return json.loads(certificate.model_dump_json())


def test_a_real_certificate_verifies_with_every_form_of_the_published_key(
    certificate: Certificate, signing_key: SigningKey, served: Served
) -> None:
    forms = [signing_key, signing_key.jwk, signing_key.jwk.model_dump(), signing_key.jwk.model_dump_json(),
             signing_key.public_key, signing_key.model_dump(), base64.b64decode(signing_key.public_key)]  # fmt: skip
    for key in forms:
        summary = verify_certificate(certificate, key)
        assert (summary["model_id"], summary["version"]) == (str(served.model.id), 2)
    assert public_key(signing_key).key_id == signing_key.key_id == certificate.key_id


def test_the_client_canonicalises_the_real_summary_exactly_as_the_service_signed_it(certificate: Certificate) -> None:
    assert canonicalize(certificate.summary) == rfc8785.dumps(certificate.summary)


def test_a_certificate_names_the_audit_report_the_service_returns(
    api: Client, served: Served, certificate: Certificate, signing_key: SigningKey
) -> None:
    report = api.get_audit(served.model.id, 2)
    assert certificate.summary["report_sha256"] == report_sha256(report)
    verify_certificate(certificate, signing_key, report=report)
    altered = {**report.raw, "verdict": "pass" if report.verdict != "pass" else "fail"}
    with pytest.raises(SignatureError, match="report_sha256 does not match"):
        verify_certificate(certificate, signing_key, report=altered)


def _one_byte_changed(text: str, at: int) -> str:
    """`text` with the hex digit or letter at `at` replaced by another one, so it stays valid JSON."""
    old = text[at]
    new = {"0": "1", "f": "e"}.get(old, "0" if old.isdigit() else ("b" if old == "a" else "a"))
    return text[:at] + new + text[at + 1 :]


@pytest.mark.parametrize("field", ["sha256", "verdict", "model_id", "issued_at"])
def test_a_certificate_with_one_byte_of_its_summary_changed_fails(
    certificate: Certificate, signing_key: SigningKey, field: str
) -> None:
    text = json.dumps(_document(certificate))
    value = str(certificate.summary[field])
    at = text.index(f'"{field}": "{value}"') + len(f'"{field}": "') + len(value) - 1  # the value's last character
    tampered = json.loads(_one_byte_changed(text, at))
    assert tampered["summary"][field] != certificate.summary[field]
    with pytest.raises(SignatureError, match="the signature does not match the summary"):
        verify_certificate(tampered, signing_key)


def test_a_certificate_with_one_byte_of_its_signature_changed_fails(
    certificate: Certificate, signing_key: SigningKey
) -> None:
    document = _document(certificate)
    raw = bytearray(base64.b64decode(document["signature"]))
    raw[10] ^= 0x01
    document["signature"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SignatureError, match="the signature does not match"):
        verify_certificate(document, signing_key)


def test_another_key_is_named_in_the_refusal(certificate: Certificate) -> None:
    other = PublicKey(Ed25519PrivateKey.from_private_bytes(b"o" * 32).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw))  # fmt: skip
    refusal = f"signed by key '{certificate.key_id}', not by the given key '{other.key_id}'"
    with pytest.raises(SignatureError, match=refusal):
        verify_certificate(certificate, other)


def test_a_certificate_from_before_rfc_8785_is_refused_with_that_reason(
    certificate: Certificate, signing_key: SigningKey
) -> None:
    document = {k: v for k, v in _document(certificate).items() if k != "canonicalization"}
    with pytest.raises(SignatureError, match="predates RFC 8785"):
        verify_certificate(document, signing_key)


def _sign(payload: dict[str, Any], field: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {field: payload, "signature": base64.b64encode(key.sign(rfc8785.dumps(payload))).decode(),
            "algorithm": "Ed25519", "canonicalization": "RFC8785", "key_id": PublicKey(raw).key_id}  # fmt: skip


def test_any_document_signed_the_same_way_verifies_by_the_name_of_its_payload() -> None:
    key = Ed25519PrivateKey.from_private_bytes(b"r" * 32)
    receipt = {"kind": "unlearning.erasure-receipt/1", "destroyed": [{"version": 1, "at": "2026-02-01T00:00:00Z"}]}
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}
    assert verify_signed(_sign(receipt, "receipt", key), jwk, signed_field="receipt") == receipt
    with pytest.raises(SignatureError, match="not a certificate"):
        verify_certificate(_sign(receipt, "summary", key), jwk)


@pytest.mark.parametrize(
    "key",
    [{"kty": "OKP", "crv": "X25519", "x": "A" * 43}, {"kty": "OKP", "crv": "Ed25519", "x": "short"}, "bm90IDMyIGJ5dGVz",
     b"\x00" * 31, {"name": "neither"}],
    ids=["x25519 jwk", "short x", "base64 of 11 bytes", "31 raw bytes", "not a key"],
)  # fmt: skip
def test_what_is_not_an_ed25519_public_key_is_refused_saying_why(key: Any) -> None:
    with pytest.raises(ValueError, match=r"Ed25519|32 bytes|JWK|neither"):
        public_key(key)
