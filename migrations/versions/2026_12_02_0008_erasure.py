"""Erasure everywhere: each model's retention window (model.retention_seconds), versions whose checkpoint was
destroyed (status 'destroyed', destroyed_at, destruction_reason), reference sets that say which requests'
samples they never trained on and when they were destroyed, and a deletion request's erasure (the earlier
requests its IDs waited for, erased_at, the receipt's summary), and the objects each job stored (job.outputs),
so that a running job's files are told from orphans.

model_version.status is a VARCHAR with a CHECK constraint (service.tables._str_enum), so the new state is a
new constraint, as in 0006. Existing models get the settings' default window (7 days); existing reference
sets were trained on every sample, so they exclude none.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JSONDoc = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
STATUSES = ("pending", "ready", "failed")
DEFAULT_RETENTION_SECONDS = 7 * 86400  # service.settings.Settings.retention_seconds' default when this was written


def _statuses(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    with op.batch_alter_table("model") as batch:
        batch.add_column(sa.Column("retention_seconds", sa.Integer(), nullable=True))
    op.execute(f"UPDATE model SET retention_seconds = {DEFAULT_RETENTION_SECONDS}")
    with op.batch_alter_table("model") as batch:
        batch.alter_column("retention_seconds", existing_type=sa.Integer(), nullable=False)

    with op.batch_alter_table("model_version") as batch:
        batch.drop_constraint(op.f("ck_model_version_version_status"), type_="check")
        batch.create_check_constraint(op.f("ck_model_version_version_status"), _statuses((*STATUSES, "destroyed")))
        batch.add_column(sa.Column("destroyed_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("destruction_reason", sa.Text(), nullable=True))

    with op.batch_alter_table("reference_set") as batch:
        batch.add_column(sa.Column("excluded_request_ids", JSONDoc, nullable=True))
        batch.add_column(sa.Column("excluded_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("destroyed_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("destruction_reason", sa.Text(), nullable=True))
    op.execute("UPDATE reference_set SET excluded_request_ids = '[]', excluded_count = 0")
    with op.batch_alter_table("reference_set") as batch:
        batch.alter_column("excluded_request_ids", existing_type=JSONDoc, nullable=False)
        batch.alter_column("excluded_count", existing_type=sa.Integer(), nullable=False)

    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("outputs", JSONDoc, nullable=True))

    with op.batch_alter_table("deletion_request") as batch:
        batch.add_column(sa.Column("covered_by", JSONDoc, nullable=True))
        batch.add_column(sa.Column("erased_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("erasure_receipt", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deletion_request") as batch:
        batch.drop_column("erasure_receipt")
        batch.drop_column("erased_at")
        batch.drop_column("covered_by")
    with op.batch_alter_table("job") as batch:
        batch.drop_column("outputs")
    with op.batch_alter_table("reference_set") as batch:
        batch.drop_column("destruction_reason")
        batch.drop_column("destroyed_at")
        batch.drop_column("excluded_count")
        batch.drop_column("excluded_request_ids")
    # The old vocabulary has no word for a version whose file is gone: 'failed' (no usable checkpoint) is the
    # nearest; the event chain keeps when and why each was destroyed.
    op.execute("UPDATE model_version SET status = 'failed' WHERE status = 'destroyed'")
    with op.batch_alter_table("model_version") as batch:
        batch.drop_column("destruction_reason")
        batch.drop_column("destroyed_at")
        batch.drop_constraint(op.f("ck_model_version_version_status"), type_="check")
        batch.create_check_constraint(op.f("ck_model_version_version_status"), _statuses(STATUSES))
    with op.batch_alter_table("model") as batch:
        batch.drop_column("retention_seconds")
