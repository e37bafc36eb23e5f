"""The event chain: it verifies, names the first broken row after tampering, and never forks."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from service.db import make_engine, session_factory
from service.events.service import append, batched, verify_chain
from tests.service.factories import TenantKey, count_rows, tamper_with_event


def _verify(database_url: str):
    with session_factory(database_url)() as session:
        return verify_chain(session)


def test_fresh_chain_verifies(tenant: TenantKey, database_url: str) -> None:
    verdict = _verify(database_url)
    assert verdict.ok
    assert verdict.count == 2  # tenant.created, api_key.created
    assert str(verdict) == "ok: 2 events"


def test_empty_chain_verifies(database_url: str) -> None:
    assert str(_verify(database_url)) == "ok: 0 events"


def test_altered_event_is_named_as_the_first_broken_row(
    tenant: TenantKey, other_tenant: TenantKey, database_url: str
) -> None:
    tamper_with_event(database_url, seq=2)
    verdict = _verify(database_url)
    assert not verdict.ok
    assert (verdict.broken_seq, verdict.count) == (2, 1)
    assert "altered" in verdict.reason


def test_deleted_event_breaks_the_chain_at_the_next_row(
    tenant: TenantKey, other_tenant: TenantKey, database_url: str
) -> None:
    tamper_with_event(database_url, seq=2, delete=True)
    verdict = _verify(database_url)
    assert not verdict.ok
    assert verdict.broken_seq == 3
    assert "missing" in verdict.reason


def test_deleted_last_event_is_caught_by_the_chain_head(tenant: TenantKey, database_url: str) -> None:
    tamper_with_event(database_url, seq=2, delete=True)
    verdict = _verify(database_url)
    assert not verdict.ok
    assert verdict.broken_seq == 2
    assert "head" in verdict.reason


def _hash_of(database_url: str, seq: int) -> str:
    from service.events.repository import event_hash

    with session_factory(database_url)() as session:
        found = event_hash(session=session, seq=seq)
    assert found is not None
    return found


def test_a_walk_from_a_verified_event_checks_only_the_events_after_it(
    tenant: TenantKey, other_tenant: TenantKey, database_url: str
) -> None:
    start = (2, _hash_of(database_url, 2))
    tamper_with_event(database_url, seq=3)
    with session_factory(database_url)() as session:
        verdict = verify_chain(session, after=start)
    assert not verdict.ok
    assert (verdict.broken_seq, verdict.count) == (3, 2)
    assert "altered" in verdict.reason


def test_a_walk_from_an_event_whose_hash_is_no_longer_the_one_verified_is_broken_there(
    tenant: TenantKey, other_tenant: TenantKey, database_url: str
) -> None:
    # as if the row's hash had been rewritten since it verified (its content alone changed shows only to a walk
    # from the start, which checks every hash)
    start = (2, "0" * 64)
    with session_factory(database_url)() as session:
        verdict = verify_chain(session, after=start)
    assert not verdict.ok
    assert verdict.broken_seq == 2
    assert "rewritten" in verdict.reason


@pytest.mark.parametrize("statement", ["UPDATE event SET actor = 'x'", "DELETE FROM event"])
def test_database_refuses_to_change_events(tenant: TenantKey, database_url: str, statement: str) -> None:
    engine = make_engine(database_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()
    assert count_rows(database_url, "event") == 2
    assert _verify(database_url).ok


def test_concurrent_appends_never_fork_the_chain(database_url: str) -> None:
    threads, per_thread = 4, 8
    factory = session_factory(database_url)
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                with factory() as session, session.begin():
                    append(
                        session,
                        event_type="test.appended",
                        subject_type="test",
                        subject_id=f"{index}-{n}",
                        actor="test",
                        tenant_id=None,
                        data={"writer": index, "n": n},
                    )
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    verdict = _verify(database_url)
    assert verdict.ok, str(verdict)
    assert verdict.count == threads * per_thread


def _append(session: Any, subject_id: str) -> None:
    append(session, event_type="test.appended", subject_type="test", subject_id=subject_id, actor="test",
           tenant_id=None, data={"n": subject_id})  # fmt: skip


def _subjects(database_url: str) -> list[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT subject_id FROM event ORDER BY seq")).scalars())
    finally:
        engine.dispose()


def test_batched_events_are_chained_in_order_at_the_end_of_the_block(database_url: str) -> None:
    factory = session_factory(database_url)
    with factory() as session, session.begin():
        _append(session, "before")
    statements: list[str] = []
    with factory() as session, session.begin():
        with batched(session):
            _append(session, "a")
            with batched(session):  # joins the outer batch
                _append(session, "b")
            _append(session, "c")
            assert count_rows(database_url, "event") == 1  # nothing written yet
            sa_event.listen(session.get_bind(), "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert len(statements) == 3  # one head update, one insert of all three, the head's hash
    assert _subjects(database_url) == ["before", "a", "b", "c"]
    verdict = _verify(database_url)
    assert verdict.ok and verdict.count == 4, str(verdict)


def test_a_batch_left_by_an_exception_writes_nothing(database_url: str) -> None:
    factory = session_factory(database_url)
    with factory() as session, pytest.raises(ValueError, match="boom"), session.begin(), batched(session):
        _append(session, "lost")
        raise ValueError("boom")
    with factory() as session, session.begin():
        _append(session, "kept")
    assert _subjects(database_url) == ["kept"]
    assert _verify(database_url).ok


def test_committing_inside_a_batch_is_refused(database_url: str) -> None:
    with session_factory(database_url)() as session:
        with pytest.raises(RuntimeError, match="inside events.batched"), batched(session):
            _append(session, "held back")
            session.commit()
        session.rollback()
    assert count_rows(database_url, "event") == 0
