"""Tenants, API keys and authentication.

A key is `ulk_<8 chars>_<secret>`: the public prefix finds the row; only the key's sha256 is kept
(a 256-bit secret needs no slow hash) and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound, Unauthorized
from service.events import service as events
from service.pagination import Cursor
from service.tables import ApiKey, Tenant, utcnow
from service.tenants import repository
from service.tenants.schemas import ApiKeyList, ApiKeyRead

KEY_PREFIX = "ulk_"
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX_CHARS = 8
_PREFIX_LENGTH = len(KEY_PREFIX) + _PREFIX_CHARS

SCOPES = ("admin", "write", "read")
# Each scope grants itself and the weaker ones.
_GRANTS = {"admin": {"admin", "write", "read"}, "write": {"write", "read"}, "read": {"read"}}

CLI_ACTOR = "cli"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: one API key of one tenant."""

    tenant_id: uuid.UUID
    api_key_id: uuid.UUID
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"api_key:{self.api_key_id}"

    def allows(self, scope: str) -> bool:
        return any(scope in _GRANTS.get(held, ()) for held in self.scopes)


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    key: str  # the full secret key: returned once, never stored


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> tuple[str, str]:
    prefix = KEY_PREFIX + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_CHARS))
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def _normalise_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes), key=SCOPES.index)
    if not chosen:
        raise ValueError("an API key needs at least one scope")
    return chosen


def create_tenant(session: Session, *, name: str, actor: str = CLI_ACTOR) -> tuple[Tenant, IssuedKey]:
    """A new tenant and its first admin key (the only way to get one: other keys are made with a key)."""
    if repository.get_tenant_by_name(session=session, name=name) is not None:
        raise Conflict(f"a tenant named {name!r} already exists")
    tenant = repository.insert_tenant(session=session, name=name)
    events.append(
        session,
        event_type="tenant.created",
        subject_type="tenant",
        subject_id=tenant.id,
        actor=actor,
        tenant_id=tenant.id,
        data={"name": name},
    )
    issued = issue_key(session, tenant_id=tenant.id, name="initial admin key", scopes=["admin"], actor=actor)
    return tenant, issued


def issue_key(session: Session, *, tenant_id: uuid.UUID, name: str, scopes: Iterable[str], actor: str) -> IssuedKey:
    chosen = _normalise_scopes(scopes)
    prefix, key = _new_key()
    while repository.get_api_key_by_prefix(session=session, prefix=prefix) is not None:
        prefix, key = _new_key()  # 36^8 prefixes: a repeat is rare, but must not become a 500
    api_key = repository.insert_api_key(
        session=session, tenant_id=tenant_id, name=name, prefix=prefix, secret_sha256=hash_key(key), scopes=chosen
    )
    events.append(
        session,
        event_type="api_key.created",
        subject_type="api_key",
        subject_id=api_key.id,
        actor=actor,
        tenant_id=tenant_id,
        data={"name": name, "prefix": prefix, "scopes": chosen},  # never the key or its hash
    )
    return IssuedKey(api_key=api_key, key=key)


def authenticate(session: Session, *, key: str) -> Principal:
    prefix = key[:_PREFIX_LENGTH]
    if not key.startswith(KEY_PREFIX) or len(key) <= _PREFIX_LENGTH + 1 or key[_PREFIX_LENGTH] != "_":
        raise Unauthorized("malformed API key: expected `ulk_<8 characters>_<secret>`")
    api_key = repository.get_api_key_by_prefix(session=session, prefix=prefix)
    if api_key is None or not hmac.compare_digest(api_key.secret_sha256, hash_key(key)):
        raise Unauthorized("unknown API key")
    if api_key.revoked_at is not None:
        raise Unauthorized(f"API key {api_key.prefix} was revoked at {api_key.revoked_at.isoformat()}")
    return Principal(tenant_id=api_key.tenant_id, api_key_id=api_key.id, scopes=frozenset(api_key.scopes))


def create_key(session: Session, *, principal: Principal, name: str, scopes: Iterable[str]) -> IssuedKey:
    return issue_key(session, tenant_id=principal.tenant_id, name=name, scopes=scopes, actor=principal.actor)


def list_keys(session: Session, *, principal: Principal, page: Cursor) -> ApiKeyList:
    """One page of the tenant's keys, revoked ones included, oldest first."""
    window = page.window("api-keys", repository.OLDEST_FIRST)
    items, next_token = repository.list_api_keys(session=session, tenant_id=principal.tenant_id, window=window)
    return ApiKeyList(items=[ApiKeyRead.model_validate(key) for key in items], next_page_token=next_token)


def revoke_key(session: Session, *, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    """Revoke one of the caller's tenant's keys; revoking twice changes nothing and records nothing."""
    # Serialise revocations within the tenant, so two concurrent ones cannot remove the last two admin keys.
    repository.lock_tenant(session=session, tenant_id=principal.tenant_id)
    api_key = repository.get_api_key(session=session, tenant_id=principal.tenant_id, key_id=key_id)
    if api_key is None:
        raise NotFound(f"no API key {key_id}")
    if api_key.revoked_at is not None:
        return api_key
    api_key.revoked_at = utcnow()
    session.flush()
    remaining = repository.list_active_api_keys(session=session, tenant_id=principal.tenant_id)
    if not any("admin" in other.scopes for other in remaining):
        raise Conflict(f"API key {api_key.prefix} is the tenant's last active admin key; create another first")
    events.append(
        session,
        event_type="api_key.revoked",
        subject_type="api_key",
        subject_id=api_key.id,
        actor=principal.actor,
        tenant_id=principal.tenant_id,
        data={"prefix": api_key.prefix},
    )
    return api_key
