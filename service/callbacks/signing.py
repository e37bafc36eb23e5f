"""Standard Webhooks signatures and the per-tenant secrets they use.

Each tenant's secret is HMAC-SHA256(master, tenant id): nothing per tenant is stored, and rotating the master
rotates every tenant's secret. The master is settings.webhook_master_secret or, unset, derived from the
certificate signing key with HKDF (a separate key for a separate purpose, no second secret to manage).
Tenants read theirs in the spec's "whsec_<base64>" form from GET /v1/webhook-secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.audits import certificate
from service.settings import Settings

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
MIN_MASTER_CHARS = 32
_HKDF_INFO = b"unlearning-service webhook master secret v1"


class WebhookSecretUnavailable(ValueError):
    """Neither a webhook master secret nor a signing key to derive one from is usable."""


def master_secret(settings: Settings) -> bytes:
    if settings.webhook_master_secret is not None:
        master = settings.webhook_master_secret.get_secret_value()
        if len(master) < MIN_MASTER_CHARS:
            raise WebhookSecretUnavailable(
                f"UNLEARN_WEBHOOK_MASTER_SECRET must have at least {MIN_MASTER_CHARS} characters, got {len(master)}"
            )
        return master.encode("utf-8")
    try:
        seed = certificate.private_key_seed(certificate.signing_key(settings))
    except certificate.SigningKeyUnavailable as exc:
        raise WebhookSecretUnavailable(
            f"no webhook master secret: UNLEARN_WEBHOOK_MASTER_SECRET is unset and no signing key to derive it ({exc})"
        ) from exc
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(seed)


def tenant_secret(master: bytes, tenant_id: uuid.UUID) -> bytes:
    """The raw 32-byte secret of one tenant."""
    return hmac.new(master, str(tenant_id).encode("ascii"), hashlib.sha256).digest()


def format_secret(raw: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_secret(secret: str) -> bytes:
    """The raw bytes of a "whsec_<base64>" secret (the prefix is optional, as in the reference libraries)."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"a webhook secret is 'whsec_' + base64: {exc}") from exc


def signature(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """'v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">' with the secret's raw bytes."""
    signed = msg_id.encode("utf-8") + b"." + str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def headers(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }


def verify(secret: bytes, header_values: dict[str, str], body: bytes) -> bool:
    """A receiver's check: does any v1 signature in the headers match? (Timestamp tolerance is the receiver's.)"""
    expected = signature(secret, header_values["webhook-id"], int(header_values["webhook-timestamp"]), body)
    offered = header_values["webhook-signature"].split(" ")
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)
