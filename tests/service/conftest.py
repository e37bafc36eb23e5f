"""Fixtures: every test gets its own freshly migrated ledger, once on SQLite and once on PostgreSQL.

Migrations run once per session into a template (a SQLite file; a PostgreSQL database), and each test
starts from a copy (file copy; CREATE DATABASE ... TEMPLATE), which costs milliseconds instead of a migration.
PostgreSQL is found at UNLEARN_TEST_POSTGRES_URL (default: postgres@127.0.0.1:5432, trust auth).
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from service.app import create_app
from service.db import dispose_engines, migrate
from service.settings import Settings
from tests.service.factories import TenantKey, make_tenant

# Starlette's TestClient still runs on httpx and says so on import; it changes nothing these tests rely on.
warnings.filterwarnings("ignore", message=".*install `httpx2`.*")
from fastapi.testclient import TestClient  # noqa: E402

from tests.service import tiny  # noqa: E402

POSTGRES_URL = os.environ.get("UNLEARN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "ledger.db"
    migrate(f"sqlite:///{path}")
    # migrate() closed its connections, so the WAL was checkpointed into the main file and removed
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {str(exc.orig).splitlines()[0]}")
    yield engine
    engine.dispose()


def _postgres_url(database: str) -> str:
    return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template(postgres_admin: Engine) -> Iterator[str]:
    name = f"unlearn_template_{os.getpid()}"
    with postgres_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    migrate(_postgres_url(name))
    yield name
    with postgres_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty ledger of its own for this test."""
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        dispose_engines()
        return
    template = request.getfixturevalue("postgres_template")
    admin: Engine = request.getfixturevalue("postgres_admin")
    name = f"unlearn_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _postgres_url(name)
    dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def settings(database_url: str, data_root: Path, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_root=data_root, storage_url=str(tmp_path / "checkpoints"),
                    guard_max_acc_drop=tiny.GUARD_MAX_ACC_DROP)  # fmt: skip


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def tenant(database_url: str) -> TenantKey:
    return make_tenant(database_url, "acme")


@pytest.fixture
def other_tenant(database_url: str) -> TenantKey:
    return make_tenant(database_url, "globex")
