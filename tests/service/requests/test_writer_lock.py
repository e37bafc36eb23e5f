"""The SQLite writer lock of the process: held from hold() to the end of the transaction, however it ends."""

from __future__ import annotations

import pytest

from service.db import session_factory
from service.requests import writer_lock


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_the_lock_is_held_until_the_transaction_ends(database_url: str, end: str) -> None:
    sqlite = database_url.startswith("sqlite")
    session = session_factory(database_url)()
    session.connection()  # begins the transaction
    writer_lock.hold(session)
    writer_lock.hold(session)  # a second hold in the same transaction changes nothing
    assert writer_lock._lock.locked() is sqlite  # PostgreSQL's row locks need no lock of the process
    getattr(session, end)()
    assert not writer_lock._lock.locked()
    session.close()


def test_holding_outside_a_transaction_is_refused(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("a no-op on PostgreSQL")
    with session_factory(database_url)() as session, pytest.raises(RuntimeError, match="needs a transaction"):
        writer_lock.hold(session)
    assert not writer_lock._lock.locked()
