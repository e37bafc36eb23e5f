"""Alembic environment: migrates the database named by the service settings (or by the caller)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from service.db import make_engine
from service.settings import get_settings
from service.tables import Base

config = context.config

# Programmatic callers (service.db.migrate, the tests) pass the URL and keep their own logging setup.
database_url = config.attributes.get("database_url") or get_settings().database_url
if config.config_file_name is not None and "database_url" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations_offline() -> None:
    context.configure(
        url=database_url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=database_url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # Batch mode rebuilds a table by copy, drop and rename; with foreign keys enforced, dropping a
                # table that other rows reference fails. SQLite's own procedure for such changes turns them
                # off outside the transaction and checks every reference before it commits (below).
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                # SQLite cannot ALTER most things; batch mode rebuilds the table instead
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if dangling:
                        raise RuntimeError(f"the migration left references to missing rows: {dangling[:5]}")
    finally:
        engine.dispose()  # its connections had foreign keys off; new ones turn them on again


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
