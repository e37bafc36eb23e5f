"""Engines, sessions and migrations: SQLite pragmas, per-process engines, the schema Alembic builds."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from service import db
from service.db import alembic_config, dispose_engines, make_engine, session_factory
from service.tables import Base, Dataset, DeletionRequest, Model, ModelVersion, ReferenceSet, Tenant


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 30_000
    finally:
        engine.dispose()


def test_sqlite_file_folder_is_created_on_first_use(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'ledger.db'}")
    engine.dispose()
    assert (tmp_path / "var").is_dir()


def test_migrated_schema_matches_the_table_mappings(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_migrations_downgrade_to_nothing_and_upgrade_again(database_url: str) -> None:
    config = alembic_config(database_url)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT seq FROM event_chain_head")).scalar_one() == 0
    finally:
        engine.dispose()


def test_the_tuning_migration_keeps_a_ledger_whose_jobs_versions_refer_to(database_url: str) -> None:
    # SQLite rebuilds the job table to change its kind constraint: with foreign keys enforced, dropping the
    # old table failed as soon as a version referred to one of its jobs (an empty test ledger never showed it)
    config = alembic_config(database_url)
    command.downgrade(config, "0005")
    ids = {name: uuid.uuid4().hex for name in ("tenant", "dataset", "model", "job", "version")}
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for statement in (
                "INSERT INTO tenant (id, name, created_at) VALUES (:tenant, 't', '2026-01-01')",
                "INSERT INTO dataset (id, tenant_id, name, format, spec, retain_access, num_train, num_test, classes, "
                "input_shape, created_at) VALUES (:dataset, :tenant, 'd', 'digits', '{}', true, 1, 1, '[]', '[]', "
                "'2026-01-01')",
                "INSERT INTO model (id, tenant_id, dataset_id, name, arch, method, unlearn_config, created_at) "
                "VALUES (:model, :tenant, :dataset, 'm', '{}', 'amun', '{}', '2026-01-01')",
                "INSERT INTO job (id, tenant_id, model_id, kind, status, progress, config, attempts, "
                "cancel_requested, created_at) VALUES (:job, :tenant, :model, 'unlearn', 'succeeded', 1, '{}', 1, "
                "false, '2026-01-01')",
                "INSERT INTO model_version (id, model_id, number, status, checkpoint_uri, sha256, job_id, "
                "forgotten_count, created_at) VALUES (:version, :model, 2, 'ready', 'u', 's', :job, 0, '2026-01-01')",
            ):
                conn.execute(text(statement), ids)
    finally:
        engine.dispose()

    command.upgrade(config, "head")

    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM job")).scalar_one() == 1
            assert conn.execute(text("SELECT count(*) FROM model WHERE tuning IS NULL")).scalar_one() == 1
            if engine.dialect.name == "sqlite":
                assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1  # on again after the migration
                assert conn.execute(text("PRAGMA foreign_key_check")).fetchall() == []
    finally:
        engine.dispose()


def test_the_lookup_migration_starts_an_existing_requests_clock_at_its_creation(database_url: str) -> None:
    config = alembic_config(database_url)
    command.downgrade(config, "0006")
    ids = {name: uuid.uuid4().hex for name in ("tenant", "dataset", "model", "request")}
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for statement in (
                "INSERT INTO tenant (id, name, created_at) VALUES (:tenant, 't', '2026-01-01')",
                "INSERT INTO dataset (id, tenant_id, name, format, spec, retain_access, num_train, num_test, classes, "
                "input_shape, created_at) VALUES (:dataset, :tenant, 'd', 'digits', '{}', true, 1, 1, '[]', '[]', "
                "'2026-01-01')",
                "INSERT INTO model (id, tenant_id, dataset_id, name, arch, method, unlearn_config, created_at) "
                "VALUES (:model, :tenant, :dataset, 'm', '{}', 'amun', '{}', '2026-01-01')",
                "INSERT INTO deletion_request (id, tenant_id, model_id, payload_sha256, sample_count, "
                "already_forgotten_count, status, created_at, updated_at) VALUES (:request, :tenant, :model, 'h', 1, "
                "0, 'completed', '2026-03-04 05:06:07+00:00', '2026-03-04 05:06:07+00:00')",
            ):
                conn.execute(text(statement), ids)
    finally:
        engine.dispose()

    command.upgrade(config, "head")

    factory = session_factory(database_url)
    with factory() as session:
        request = session.get(DeletionRequest, uuid.UUID(ids["request"]))
        assert request is not None
        assert request.received_at == request.created_at == datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
        assert request.callback_disabled_at is None


def test_timestamps_come_back_timezone_aware_in_utc(database_url: str) -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    factory = session_factory(database_url)
    with factory() as session, session.begin():
        tenant = Tenant(name="tz", created_at=created)
        session.add(tenant)
    with factory() as session:
        loaded = session.get(Tenant, tenant.id)
        assert loaded.created_at == created
        assert loaded.created_at.tzinfo == UTC


def test_naive_timestamps_are_refused(database_url: str) -> None:
    with session_factory(database_url)() as session:
        session.add(Tenant(name="naive", created_at=datetime(2026, 1, 1)))
        with pytest.raises(Exception, match="naive datetime"):
            session.flush()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_builds_its_own_engine(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fork.db'}"
    parent_factory = session_factory(url)
    pid = os.fork()
    if pid == 0:  # child: report through the exit code only, never through pytest
        ok = not db._factories and session_factory(url) is not parent_factory
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert session_factory(url) is parent_factory
    db.dispose_engines()


def test_the_erasure_migration_gives_existing_models_the_default_window_and_sets_no_exclusions(
    database_url: str,
) -> None:
    config = alembic_config(database_url)
    command.downgrade(config, "0007")
    ids = {name: uuid.uuid4().hex for name in ("tenant", "dataset", "model", "job", "version", "set")}
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for statement in (
                "INSERT INTO tenant (id, name, created_at) VALUES (:tenant, 't', '2026-01-01')",
                "INSERT INTO dataset (id, tenant_id, name, format, spec, retain_access, num_train, num_test, classes, "
                "input_shape, created_at) VALUES (:dataset, :tenant, 'd', 'digits', '{}', true, 1, 1, '[]', '[]', "
                "'2026-01-01')",
                "INSERT INTO model (id, tenant_id, dataset_id, name, arch, method, unlearn_config, created_at) "
                "VALUES (:model, :tenant, :dataset, 'm', '{}', 'amun', '{}', '2026-01-01')",
                "INSERT INTO job (id, tenant_id, model_id, kind, status, progress, config, attempts, "
                "cancel_requested, created_at) VALUES (:job, :tenant, :model, 'reference_models', 'succeeded', 1, "
                "'{}', 1, false, '2026-01-01')",
                "INSERT INTO model_version (id, model_id, number, status, checkpoint_uri, sha256, forgotten_count, "
                "created_at) VALUES (:version, :model, 1, 'ready', 'u', 's', 0, '2026-01-01')",
                "INSERT INTO reference_set (id, tenant_id, model_id, job_id, k, num_train, recipe, membership_uri, "
                "membership_sha256, checkpoints, created_at) VALUES (:set, :tenant, :model, :job, 2, 1, '{}', 'm', "
                "'s', '[]', '2026-01-01')",
            ):
                conn.execute(text(statement), ids)
    finally:
        engine.dispose()

    command.upgrade(config, "head")

    factory = session_factory(database_url)
    with factory() as session:
        model = session.get(Model, uuid.UUID(ids["model"]))
        reference_set = session.get(ReferenceSet, uuid.UUID(ids["set"]))
        version = session.get(ModelVersion, uuid.UUID(ids["version"]))
        assert model.retention_seconds == 7 * 86400
        # trained before exclusions existed: on every sample, so it holds whatever is forgotten later
        assert (reference_set.excluded_request_ids, reference_set.excluded_count) == ([], 0)
        assert (reference_set.destroyed_at, version.destroyed_at, version.status) == (None, None, "ready")


def test_downgrading_the_erasure_migration_marks_destroyed_versions_failed(database_url: str) -> None:
    ids = {name: uuid.uuid4() for name in ("tenant", "dataset", "model", "version")}
    factory = session_factory(database_url)
    with factory() as session, session.begin():
        session.add(Tenant(id=ids["tenant"], name="t"))
        session.flush()
        session.add(Dataset(id=ids["dataset"], tenant_id=ids["tenant"], name="d", format="digits", spec={},
                            retain_access=True, num_train=1, num_test=1, classes=[], input_shape=[]))  # fmt: skip
        session.flush()
        session.add(Model(id=ids["model"], tenant_id=ids["tenant"], dataset_id=ids["dataset"], name="m", arch={},
                          method="amun", unlearn_config={}))  # fmt: skip
        session.flush()
        session.add(ModelVersion(id=ids["version"], model_id=ids["model"], number=1, status="destroyed",
                                 checkpoint_uri="u", sha256="s", destroyed_at=datetime(2026, 1, 1, tzinfo=UTC),
                                 destruction_reason="held forgotten samples"))  # fmt: skip
    dispose_engines()

    command.downgrade(alembic_config(database_url), "0007")

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            status = conn.execute(text("SELECT status FROM model_version WHERE number = 1")).scalar_one()
    finally:
        engine.dispose()
    assert status == "failed"
