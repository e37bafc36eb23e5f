"""Forgotten samples keyed by (model_id, sample_id), without a foreign key to their request.

Claiming the 100,000 samples of one request is one INSERT ... SELECT; per row, the check of the foreign
key to the deletion request (inserted in the same transaction) and the upkeep of a random UUID key with
its index took most of its time. The unique (model_id, sample_id) becomes the primary key; see
service.tables.ForgottenSample for why the foreign key can go.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("forgotten_sample") as batch:
        batch.drop_constraint(op.f("fk_forgotten_sample_request_id_deletion_request"), type_="foreignkey")
        batch.drop_constraint(op.f("uq_forgotten_sample_model_id_sample_id"), type_="unique")
        batch.drop_constraint(op.f("pk_forgotten_sample"), type_="primary")
        batch.drop_column("id")
        batch.create_primary_key(op.f("pk_forgotten_sample"), ["model_id", "sample_id"])


def downgrade() -> None:
    # The surrogate key comes back with a fresh random UUID for every row.
    random_uuid = (
        "gen_random_uuid()" if op.get_bind().dialect.name == "postgresql" else "lower(hex(randomblob(16)))"
    )
    with op.batch_alter_table("forgotten_sample") as batch:
        batch.add_column(sa.Column("id", sa.Uuid(), nullable=True))
    op.execute(f"UPDATE forgotten_sample SET id = {random_uuid}")
    with op.batch_alter_table("forgotten_sample") as batch:
        batch.alter_column("id", existing_type=sa.Uuid(), nullable=False)
        batch.drop_constraint(op.f("pk_forgotten_sample"), type_="primary")
        batch.create_primary_key(op.f("pk_forgotten_sample"), ["id"])
        batch.create_unique_constraint(op.f("uq_forgotten_sample_model_id_sample_id"), ["model_id", "sample_id"])
        batch.create_foreign_key(
            op.f("fk_forgotten_sample_request_id_deletion_request"), "deletion_request", ["request_id"], ["id"]
        )
