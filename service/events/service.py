"""Appending to the hash-chained event log, and verifying it.

Each hash is sha256(prev_hash + canonical JSON of the row's content): altering, removing or
reordering a row breaks the chain at that row. A transaction that records several events can hold them
back (batched()) and chain them all at its end, in one short step under the chain-head lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import PurePath
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from service.events import repository
from service.tables import GENESIS_HASH, Event, utcnow

_BATCH = "events.batch"  # session.info key: the events batched() holds back


def _encode(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} cannot go into an event")


def canonical_json(value: Any) -> str:
    """The one byte-exact JSON text of a value: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, default=_encode, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def content_of(event: Event) -> dict[str, Any]:
    """What the hash covers: every column except the two hashes themselves."""
    return {
        "seq": event.seq,
        "id": str(event.id),
        "created_at": event.created_at.isoformat(),
        "tenant_id": str(event.tenant_id) if event.tenant_id is not None else None,
        "actor": event.actor,
        "type": event.type,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "data": event.data,
    }


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(content)).encode()).hexdigest()


def append(
    session: Session,
    *,
    event_type: str,
    subject_type: str,
    subject_id: uuid.UUID | str,
    actor: str,
    tenant_id: uuid.UUID | None,
    data: dict[str, Any],
) -> Event:
    """Append one event in the caller's transaction; it becomes visible with the state change it records.

    Outside batched() the event is written at once and the chain-head lock is held until the caller
    commits, so call it last in a transaction. Inside batched() it is written when the batch ends (its
    seq, created_at and hashes are set then).
    """
    # Round-trip through canonical JSON so the stored document is exactly what was hashed
    # (UUIDs and datetimes as strings, tuples as lists).
    event = Event(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        actor=actor,
        type=event_type,
        subject_type=subject_type,
        subject_id=str(subject_id),
        data=json.loads(canonical_json(data)),
    )
    pending: list[Event] | None = session.info.get(_BATCH)
    if pending is not None:
        pending.append(event)
    else:
        _write(session, [event])
    return event


@contextlib.contextmanager
def batched(session: Session) -> Iterator[None]:
    """Hold back the events appended inside and write them all when the block ends, in order, with one
    update of the chain head: the lock every appender of every tenant queues on is then taken only at
    the end of the caller's transaction (end the block right before committing) and for three
    statements however many events there are. Nested blocks join the outermost one; an exception drops
    the held-back events with the transaction it leaves to be rolled back.
    """
    if _BATCH in session.info:
        yield
        return
    pending: list[Event] = []
    session.info[_BATCH] = pending
    try:
        yield
    finally:
        session.info.pop(_BATCH, None)
    session.flush()  # the block's own changes surface here (a constraint it broke), events or not
    if pending:
        _write(session, pending)


def _write(session: Session, events: list[Event]) -> None:
    """Chain `events` after the current head and insert them: three statements for any number."""
    session.flush()  # rows the events refer to go first
    last_seq, prev_hash = repository.claim_seqs(session=session, count=len(events))
    for seq, event in enumerate(events, start=last_seq - len(events) + 1):
        event.seq = seq
        event.created_at = utcnow()
        event.prev_hash = prev_hash
        event.hash = prev_hash = chain_hash(prev_hash, content_of(event))
    repository.insert_events(session=session, events=events)
    repository.set_head_hash(session=session, seq=last_seq, hash_=prev_hash)


@sa_event.listens_for(Session, "before_commit")
def _refuse_commit_inside_batch(session: Session) -> None:
    # Committing inside batched() would commit the state changes without their events.
    if _BATCH in session.info:
        raise RuntimeError("a session was committed inside events.batched(): its held-back events would be lost")


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    count: int  # events checked
    broken_seq: int | None = None  # first row where the chain breaks
    broken_id: uuid.UUID | None = None
    reason: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.count} events"
        where = f"event seq {self.broken_seq}" + (f" (id {self.broken_id})" if self.broken_id else "")
        return f"broken at {where}: {self.reason}"


def verify_chain(
    session: Session, *, after: tuple[int, str] = (0, GENESIS_HASH), writers_may_append: bool = False
) -> ChainVerdict:
    """Walk the chain in order and name the first row whose link or content does not check out.

    `after` (seq, hash) starts from an event verified before (checked to be unchanged), so a page that verified
    the chain once checks only what was appended since. `writers_may_append`: the service is running, and a head
    beyond the last event read is a writer that committed meanwhile (PostgreSQL reads each statement's own
    snapshot), not a break; its events are checked next time.
    """
    prev_hash, count = after[1], after[0]
    if count > 0 and repository.event_hash(session=session, seq=count) != prev_hash:
        return ChainVerdict(False, count, count, None, "an event verified earlier was removed or rewritten")
    for event in repository.iter_events(session=session, after_seq=count):
        expected_seq = count + 1

        def broken(reason: str, event: Event = event) -> ChainVerdict:
            return ChainVerdict(False, count, event.seq, event.id, reason)

        if event.seq != expected_seq:
            return broken(f"expected seq {expected_seq}: events before it are missing")
        if event.prev_hash != prev_hash:
            return broken("prev_hash does not match the hash of the event before it (a row was removed or rewritten)")
        if chain_hash(prev_hash, content_of(event)) != event.hash:
            return broken("content does not match its hash (the row was altered)")
        prev_hash = event.hash
        count += 1
    head = repository.get_head(session=session)
    if writers_may_append and head.seq > count:
        return ChainVerdict(True, count)
    if head.seq != count or head.hash != prev_hash:
        # Rows at the end were removed, or the head was rewritten: the last row is where it shows.
        return ChainVerdict(
            False, count, head.seq, None, f"chain head names seq {head.seq} but the log ends at seq {count}"
            if head.seq != count else "chain head hash differs from the last event's hash"
        )
    return ChainVerdict(True, count)
