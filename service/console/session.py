"""The console's sign-in cookie: which API key signed in, for which tenant and when, signed with HMAC-SHA256.

The cookie never holds the key itself, only its row id; every request reads that row again, so a key revoked
(or stripped of its read scope) after sign-in signs its sessions out at their next page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from service.settings import Settings
from service.tables import utcnow
from service.tenants import repository as tenants_repo
from service.tenants.service import Principal

COOKIE_NAME = "unlearn_console"
COOKIE_PATH = "/console"
MAX_AGE = timedelta(hours=12)
# a cookie issued by another API process whose clock runs slightly ahead is still good
CLOCK_SKEW = timedelta(seconds=60)
SECRET_FILE = "console-secret"
SECRET_BYTES = 32
HOME_PATH = "/console/"


class SignedOut(Exception):
    """No valid session; `reason` names why, as one of the sign-in page's known messages."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "no session")
        self.reason = reason


@dataclass(frozen=True)
class ConsoleSession:
    api_key_id: uuid.UUID
    tenant_id: uuid.UUID
    issued_at: datetime


def console_secret(settings: Settings) -> bytes:
    """The key that signs cookies: the configured one, else the one kept in the home folder.

    Without a configured secret every API process of one home (uvicorn's workers, a restarted server) must sign
    with the same key, or a cookie one process issued would be refused by the next; so the secret is made once
    and kept in a file only this user can read, rather than drawn per process.
    """
    if settings.console_secret is not None:
        return settings.console_secret.get_secret_value().encode()
    return _secret_file(settings.home / SECRET_FILE)


@lru_cache(maxsize=8)
def _secret_file(path: Path) -> bytes:
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name, then linked into place: link never replaces an existing file, so two
    # processes starting together both end up reading the one secret that won.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(SECRET_BYTES))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    secret = path.read_bytes()
    if len(secret) < SECRET_BYTES:
        raise RuntimeError(f"{path} holds {len(secret)} bytes; a console secret needs {SECRET_BYTES} (delete it)")
    return secret


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def encode(session: ConsoleSession, secret: bytes) -> str:
    """The cookie's value: base64url(JSON of key id, tenant id, issue time) '.' base64url(HMAC-SHA256)."""
    content = {"k": str(session.api_key_id), "t": str(session.tenant_id), "iat": int(session.issued_at.timestamp())}
    payload = _b64(json.dumps(content, separators=(",", ":")).encode())
    return f"{payload}.{_mac(secret, payload)}"


def decode(value: str | None, secret: bytes, *, now: datetime) -> ConsoleSession:
    """The session a cookie value carries; SignedOut unless it is ours, intact and younger than MAX_AGE."""
    if not value:
        raise SignedOut(None)
    payload, _, mac = value.partition(".")
    if not mac or not hmac.compare_digest(mac, _mac(secret, payload)):
        raise SignedOut("invalid")
    try:
        content = json.loads(_unb64(payload))
        session = ConsoleSession(
            api_key_id=uuid.UUID(content["k"]),
            tenant_id=uuid.UUID(content["t"]),
            issued_at=datetime.fromtimestamp(int(content["iat"]), tz=now.tzinfo),
        )
    except (ValueError, KeyError, TypeError, binascii.Error, OverflowError):
        raise SignedOut("invalid") from None
    if session.issued_at > now + CLOCK_SKEW:
        raise SignedOut("invalid")
    if now - session.issued_at > MAX_AGE:
        raise SignedOut("expired")
    return session


def principal_of(db: Session, session: ConsoleSession) -> Principal:
    """The signed-in key as a principal, read again from its row: SignedOut if it is gone, revoked or lacks the
    read scope now."""
    api_key = tenants_repo.get_api_key(session=db, tenant_id=session.tenant_id, key_id=session.api_key_id)
    if api_key is None or api_key.revoked_at is not None:
        raise SignedOut("revoked")
    principal = Principal(tenant_id=api_key.tenant_id, api_key_id=api_key.id, scopes=frozenset(api_key.scopes))
    if not principal.allows("read"):
        raise SignedOut("scope")
    return principal


def new_session(principal: Principal) -> ConsoleSession:
    return ConsoleSession(api_key_id=principal.api_key_id, tenant_id=principal.tenant_id, issued_at=utcnow())


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a local console path, else the overview (an open redirect is refused)."""
    if not target or any(ch in target for ch in "\\\r\n\t") or any(ord(ch) < 32 for ch in target):
        return HOME_PATH
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return HOME_PATH
    if parts.path != COOKIE_PATH and not parts.path.startswith(COOKIE_PATH + "/"):
        return HOME_PATH
    if parts.path.startswith("/console/sign-"):
        return HOME_PATH  # back to the form, or out again, would be a loop
    return target
