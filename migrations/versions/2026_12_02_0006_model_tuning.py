"""Tuning jobs: the job kind 'tuning' (one active per model), what a tuning job keeps when it hands itself
back (job.partial), and the model's record of where its lr and step_size came from (model.tuning).

job.kind is a VARCHAR with a CHECK constraint (service.tables._str_enum), not a native enum type, so the
new value is a new constraint rather than an ALTER TYPE, on PostgreSQL and SQLite alike.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
KINDS = ("unlearn", "audit", "reference_models")


def _kinds(values: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.drop_constraint(op.f("ck_job_job_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_job_job_kind"), _kinds((*KINDS, "tuning")))
        batch.add_column(sa.Column("partial", JSONDoc, nullable=True))
    active = "kind = 'tuning' AND status IN ('queued', 'running')"
    op.create_index("uq_job_model_id_active_tuning", "job", ["model_id"], unique=True,
                    postgresql_where=sa.text(active), sqlite_where=sa.text(active))  # fmt: skip
    with op.batch_alter_table("model") as batch:
        batch.add_column(sa.Column("tuning", JSONDoc, nullable=True))


def downgrade() -> None:
    # tuning jobs cannot be stored under the old constraint; their record stays in the event chain
    op.execute("DELETE FROM job WHERE kind = 'tuning'")
    op.drop_index("uq_job_model_id_active_tuning", table_name="job")
    with op.batch_alter_table("model") as batch:
        batch.drop_column("tuning")
    with op.batch_alter_table("job") as batch:
        batch.drop_column("partial")
        batch.drop_constraint(op.f("ck_job_job_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_job_job_kind"), _kinds(KINDS))
