"""Engines, sessions and migrations: one engine per process and database URL, built lazily after any fork.

The request's session commits when the endpoint returns and before the response is sent (see get_session).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from fastapi import Request
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

# Writers on SQLite queue on the database lock; this is how long one waits before failing.
SQLITE_BUSY_TIMEOUT_S = 30.0
ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"

_lock = threading.Lock()
_factories: dict[str, sessionmaker[Session]] = {}


def make_engine(url: str) -> Engine:
    """A new engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # FastAPI runs sync dependencies and endpoints on a thread pool, so a connection may be used
    # by another thread than the one that opened it (never by two at once).
    engine = create_engine(
        parsed, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across application crashes in WAL mode
    cursor.close()


def session_factory(url: str) -> sessionmaker[Session]:
    """This process's session factory for a database URL; the engine is built on first use."""
    with _lock:
        factory = _factories.get(url)
        if factory is None:
            # expire_on_commit=False: objects stay readable for the response after the commit
            factory = sessionmaker(bind=make_engine(url), expire_on_commit=False)
            _factories[url] = factory
        return factory


def dispose_engines() -> None:
    """Close every pooled connection of this process (shutdown, tests dropping databases)."""
    with _lock:
        for factory in _factories.values():
            engine = factory.kw["bind"]
            engine.dispose()
        _factories.clear()


def _forget_parent_engines() -> None:
    # A forked child must never use the parent's pooled connections (shared sockets/file handles):
    # drop them without closing, so the parent's stay intact, and let the child build its own.
    global _lock
    _lock = threading.Lock()
    for factory in _factories.values():
        factory.kw["bind"].dispose(close=False)
    _factories.clear()


os.register_at_fork(after_in_child=_forget_parent_engines)


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: one session and transaction per request, committed unless the endpoint raised.

    Declared with Depends(scope="function") (see deps.SessionDep): FastAPI then runs this exit code
    right after the endpoint returns and before the response is sent, so a 2xx is only ever sent for
    a committed transaction. With the default "request" scope the commit would run after the
    response had been sent, and a failed commit would follow a success the client already has.
    """
    factory = session_factory(request.app.state.settings.database_url)
    with factory() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()


def ping(session: Session) -> None:
    """Raise unless the database answers a trivial query."""
    session.execute(text("SELECT 1"))


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration for this checkout; env.py uses database_url instead of the settings'."""
    if not ALEMBIC_INI.is_file():
        raise FileNotFoundError(f"alembic.ini not found at {ALEMBIC_INI}; run from a source checkout")
    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    """Upgrade the schema of database_url to revision: the only way the schema is created or changed."""
    command.upgrade(alembic_config(database_url), revision)
