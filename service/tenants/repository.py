"""Queries of tenants and API keys; every key query is scoped to one tenant except the login lookup."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.pagination import Sort, Window, fetch_page
from service.tables import ApiKey, Tenant

OLDEST_FIRST = Sort("created_at", (ApiKey.created_at, ApiKey.id))


def insert_tenant(*, session: Session, name: str) -> Tenant:
    tenant = Tenant(id=uuid.uuid4(), name=name)
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant_by_name(*, session: Session, name: str) -> Tenant | None:
    return session.execute(select(Tenant).where(Tenant.name == name)).scalar_one_or_none()


def lock_tenant(*, session: Session, tenant_id: uuid.UUID) -> Tenant:
    """The tenant row, locked until commit on PostgreSQL (SQLite has one writer at a time anyway)."""
    return session.execute(select(Tenant).where(Tenant.id == tenant_id).with_for_update()).scalar_one()


def insert_api_key(
    *, session: Session, tenant_id: uuid.UUID, name: str, prefix: str, secret_sha256: str, scopes: list[Any]
) -> ApiKey:
    key = ApiKey(
        id=uuid.uuid4(), tenant_id=tenant_id, name=name, prefix=prefix, secret_sha256=secret_sha256, scopes=scopes
    )
    session.add(key)
    session.flush()
    return key


def get_api_key_by_prefix(*, session: Session, prefix: str) -> ApiKey | None:
    """The login lookup: the prefix is public, the hash comparison happens in the service."""
    return session.execute(select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()


def get_api_key(*, session: Session, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    return session.execute(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
    ).scalar_one_or_none()


def list_api_keys(
    *, session: Session, tenant_id: uuid.UUID, window: Window
) -> tuple[list[ApiKey], str | None]:
    return fetch_page(session, select(ApiKey).where(ApiKey.tenant_id == tenant_id), window)


def list_active_api_keys(*, session: Session, tenant_id: uuid.UUID) -> list[ApiKey]:
    return list(
        session.execute(
            select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
        ).scalars()
    )
