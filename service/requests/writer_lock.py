"""On SQLite, the API's writers of deletion requests take turns on a lock of this process instead of
polling the database's write lock.

SQLite lets one transaction write at a time. A writer that finds the database locked sleeps and retries
(the busy timeout: sleeps of 1 ms growing to 100 ms), so concurrent writers wake late, and some lose
round after round: at 5 concurrent clients the p99 of a POST was about 700 ms while its median was a few
ms. Waiting on a lock of the process hands the database over the moment the writer before ends its
transaction. Writers in other processes (the local executor) still meet the busy timeout, rarely.
On PostgreSQL nothing is taken: the model's row lock orders the writers there.
"""

from __future__ import annotations

import threading

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

_lock = threading.Lock()
_HELD = "requests.sqlite_writer_lock"  # session.info key, set while the session holds the lock


def hold(session: Session) -> None:
    """On SQLite, take this process's writer lock until the session's transaction ends (commit, rollback
    or close); a no-op on other databases and for a session that holds it already.

    Call it inside the transaction (after its first statement) and before its first write: SQLite's own
    write lock is then taken only by a holder of this one.
    """
    if session.get_bind().dialect.name != "sqlite" or session.info.get(_HELD):
        return
    if not session.in_transaction():
        raise RuntimeError("writer_lock.hold() needs a transaction: its end releases the lock")
    _lock.acquire()
    session.info[_HELD] = True


@event.listens_for(Session, "after_transaction_end")
def _release(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and session.info.pop(_HELD, False):
        _lock.release()
