"""The core flow: version lineage and audit page, idempotent request answers, RMIA reference sets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of service.tables.JSONDoc: a revision must not change when the code does.
JSONDoc = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        batch.add_column(sa.Column("audit_html_uri", sa.Text(), nullable=True))
        batch.add_column(sa.Column("audit_html_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("config", JSONDoc, nullable=True))
        batch.add_column(sa.Column("code_version", sa.String(200), nullable=True))

    with op.batch_alter_table("deletion_request") as batch:
        # server_default fills rows written before this revision; the application always sets it
        batch.add_column(
            sa.Column("already_forgotten_count", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("accepted_response", JSONDoc, nullable=True))

    op.create_table(
        "reference_set",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("num_train", sa.Integer(), nullable=False),
        sa.Column("recipe", JSONDoc, nullable=False),
        sa.Column("membership_uri", sa.Text(), nullable=False),
        sa.Column("membership_sha256", sa.String(64), nullable=False),
        sa.Column("checkpoints", JSONDoc, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("k >= 2 AND k % 2 = 0", name=op.f("ck_reference_set_k_even")),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_reference_set_job_id_job")),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], name=op.f("fk_reference_set_model_id_model")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_reference_set_tenant_id_tenant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_set")),
    )
    op.create_index(op.f("ix_reference_set_model_id"), "reference_set", ["model_id"])
    op.create_index(op.f("ix_reference_set_tenant_id"), "reference_set", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("reference_set")
    with op.batch_alter_table("deletion_request") as batch:
        batch.drop_column("accepted_response")
        batch.drop_column("already_forgotten_count")
    with op.batch_alter_table("model_version") as batch:
        batch.drop_column("code_version")
        batch.drop_column("config")
        batch.drop_column("audit_html_sha256")
        batch.drop_column("audit_html_uri")
