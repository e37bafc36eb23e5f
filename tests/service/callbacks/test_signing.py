"""Standard Webhooks signatures and per-tenant secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from pathlib import Path

import pytest

from service.callbacks import signing
from service.settings import Settings

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="  # the spec's published test vector


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    secret = signing.parse_secret(SPEC_SECRET)
    assert signing.signature(secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_signature_is_the_hmac_of_id_timestamp_and_body_computed_by_hand() -> None:
    secret = b"\x01" * 32
    body = b'{"type":"deletion_request.completed"}'
    digest = hmac.new(secret, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert signing.headers(secret, "msg_1", 1700000000, body) == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def test_receiver_check_accepts_the_signature_and_rejects_another_body() -> None:
    secret = signing.parse_secret(SPEC_SECRET)
    values = signing.headers(secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert signing.verify(secret, values, SPEC_BODY)
    assert not signing.verify(secret, values, SPEC_BODY + b" ")


def test_tenant_secret_is_the_hmac_of_the_tenant_id_under_the_master() -> None:
    master = b"m" * 32
    tenant = uuid.UUID("12345678-1234-5678-1234-567812345678")
    expected = hmac.new(master, b"12345678-1234-5678-1234-567812345678", hashlib.sha256).digest()
    assert signing.tenant_secret(master, tenant) == expected
    assert signing.tenant_secret(master, uuid.uuid4()) != expected
    formatted = signing.format_secret(expected)
    assert formatted.startswith("whsec_") and signing.parse_secret(formatted) == expected


def test_configured_master_secret_is_used_as_given(tmp_path: Path) -> None:
    settings = Settings(webhook_master_secret="s" * 40, signing_key_file=tmp_path / "none")
    assert signing.master_secret(settings) == b"s" * 40


def test_short_master_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(signing.WebhookSecretUnavailable, match="at least 32 characters, got 5"):
        signing.master_secret(Settings(webhook_master_secret="short"))


def test_unset_master_is_derived_from_the_signing_key_and_differs_from_it() -> None:
    seed = bytes(range(32))
    settings = Settings(signing_key=base64.b64encode(seed).decode())
    master = signing.master_secret(settings)
    assert len(master) == 32 and master != seed
    assert signing.master_secret(Settings(signing_key=base64.b64encode(seed).decode())) == master
