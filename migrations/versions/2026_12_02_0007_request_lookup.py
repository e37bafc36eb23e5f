"""Finding requests and following their callbacks: the regulation clock's start (deletion_request.received_at,
the controller's receipt, backfilled with created_at), indexes for the request lists, a callback target
disabled by a 410 answer, and the delivery log's last answer and redeliveries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TIMESTAMP = sa.DateTime(timezone=True)

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deletion_request") as batch:
        batch.add_column(sa.Column("received_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("callback_disabled_at", TIMESTAMP, nullable=True))
    # until now the clock started at this service's receipt
    op.execute("UPDATE deletion_request SET received_at = created_at")
    with op.batch_alter_table("deletion_request") as batch:
        batch.alter_column("received_at", existing_type=TIMESTAMP, nullable=False)
    op.create_index(op.f("ix_deletion_request_tenant_id_created_at_id"), "deletion_request",
                    ["tenant_id", "created_at", "id"])  # fmt: skip
    op.create_index(op.f("ix_deletion_request_tenant_id_subject_request_id"), "deletion_request",
                    ["tenant_id", "subject_request_id"])  # fmt: skip
    op.create_index(op.f("ix_deletion_request_tenant_id_due_at"), "deletion_request", ["tenant_id", "due_at"])
    with op.batch_alter_table("webhook_delivery") as batch:
        batch.add_column(sa.Column("last_status_code", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("last_attempt_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("redelivery_of", sa.Uuid(), nullable=True))
        batch.create_foreign_key(op.f("fk_webhook_delivery_redelivery_of_webhook_delivery"), "webhook_delivery",
                                 ["redelivery_of"], ["id"])  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("webhook_delivery") as batch:
        batch.drop_constraint(op.f("fk_webhook_delivery_redelivery_of_webhook_delivery"), type_="foreignkey")
        batch.drop_column("redelivery_of")
        batch.drop_column("last_attempt_at")
        batch.drop_column("last_status_code")
    op.drop_index(op.f("ix_deletion_request_tenant_id_due_at"), table_name="deletion_request")
    op.drop_index(op.f("ix_deletion_request_tenant_id_subject_request_id"), table_name="deletion_request")
    op.drop_index(op.f("ix_deletion_request_tenant_id_created_at_id"), table_name="deletion_request")
    with op.batch_alter_table("deletion_request") as batch:
        batch.drop_column("callback_disabled_at")
        batch.drop_column("received_at")
