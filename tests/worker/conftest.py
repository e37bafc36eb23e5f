"""The worker's tests run against the same ledger fixtures as the service's: every test on SQLite and on
PostgreSQL, each with a freshly migrated database of its own."""

from tests.service.conftest import (  # noqa: F401  (fixtures, found by pytest under these names)
    client,
    data_root,
    database_url,
    other_tenant,
    postgres_admin,
    postgres_template,
    settings,
    sqlite_template,
    tenant,
)
