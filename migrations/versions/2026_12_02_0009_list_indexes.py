"""Indexes for the lists that had none in their sort order: deletion requests by received_at (the regulation
clock's start) and the job list (newest first); both end in the id, the cursor's tie-break.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_deletion_request_tenant_id_received_at_id"), "deletion_request",
                    ["tenant_id", "received_at", "id"])  # fmt: skip
    op.create_index(op.f("ix_job_tenant_id_created_at_id"), "job", ["tenant_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_job_tenant_id_created_at_id"), table_name="job")
    op.drop_index(op.f("ix_deletion_request_tenant_id_received_at_id"), table_name="deletion_request")
