"""Test helpers that build ledger rows directly and look at what was committed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text

from service.db import make_engine, session_factory
from service.tenants.service import create_tenant


@dataclass(frozen=True)
class TenantKey:
    tenant_id: uuid.UUID
    key: str  # the tenant's first admin key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_tenant(database_url: str, name: str) -> TenantKey:
    with session_factory(database_url)() as session, session.begin():
        tenant, issued = create_tenant(session, name=name)
    return TenantKey(tenant_id=tenant.id, key=issued.key)


def count_rows(database_url: str, table: str) -> int:
    """Rows committed in a table, seen through a connection of its own (not the app's pool)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


def tamper_with_event(database_url: str, *, seq: int, delete: bool = False) -> None:
    """Alter (or delete) one event row behind the service's back, as an attacker with DB access would.

    The append-only triggers refuse this, so the test first drops them in its own throwaway database:
    DROP TRIGGER on PostgreSQL (a superuser could also ALTER TABLE ... DISABLE TRIGGER), and on SQLite
    the same statement on a plain connection (SQLite keeps triggers in the schema, no superuser needed).
    """
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("DROP TRIGGER event_append_only ON event"))
            else:
                conn.execute(text("DROP TRIGGER event_no_update"))
                conn.execute(text("DROP TRIGGER event_no_delete"))
            if delete:
                conn.execute(text("DELETE FROM event WHERE seq = :seq"), {"seq": seq})
            else:
                conn.execute(text("UPDATE event SET actor = 'someone else' WHERE seq = :seq"), {"seq": seq})
    finally:
        engine.dispose()
