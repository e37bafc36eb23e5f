"""Queries of the event log and its chain head."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.tables import Event, EventChainHead

HEAD_ID = 1


def claim_seqs(*, session: Session, count: int = 1) -> tuple[int, str]:
    """Advance the chain head by `count` and return (the last new event's seq, the hash of the event before
    the first new one); the new events take seqs last - count + 1 ... last.

    The UPDATE takes the head row's lock until commit (PostgreSQL: a row lock, so appenders queue;
    SQLite: the database write lock), which serialises appenders: the chain cannot fork.
    """
    row = session.execute(
        update(EventChainHead)
        .where(EventChainHead.id == HEAD_ID)
        .values(seq=EventChainHead.seq + count)
        .returning(EventChainHead.seq, EventChainHead.hash)
        .execution_options(synchronize_session=False)
    ).one()
    return row.seq, row.hash


def set_head_hash(*, session: Session, seq: int, hash_: str) -> None:
    session.execute(
        update(EventChainHead)
        .where(EventChainHead.id == HEAD_ID, EventChainHead.seq == seq)
        .values(hash=hash_)
        .execution_options(synchronize_session=False)
    )


def insert_events(*, session: Session, events: list[Event]) -> None:
    """One INSERT for all of them (SQLAlchemy batches the rows of one flush)."""
    session.add_all(events)
    session.flush()


def get_head(*, session: Session) -> EventChainHead:
    return session.execute(select(EventChainHead).where(EventChainHead.id == HEAD_ID)).scalar_one()


def iter_events(*, session: Session, after_seq: int = 0, batch_size: int = 1000) -> Iterator[Event]:
    """Every event after `after_seq` in chain order, fetched in batches so a long log never sits in memory."""
    statement = select(Event).where(Event.seq > after_seq).order_by(Event.seq)
    result = session.execute(statement.execution_options(yield_per=batch_size))
    for event in result.scalars():
        yield event
        session.expunge(event)


def event_hash(*, session: Session, seq: int) -> str | None:
    return session.execute(select(Event.hash).where(Event.seq == seq)).scalar_one_or_none()


def count_events(*, session: Session) -> int:
    return session.execute(select(func.count()).select_from(Event)).scalar_one()
