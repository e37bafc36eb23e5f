"""The ledger: tenants, keys, datasets, models, versions, deletion requests, jobs and the event chain.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types in service/tables.py: a revision must not change when the code does.
JSONDoc = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
GENESIS_HASH = "0" * 64


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    op.create_table(
        "tenant",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant")),
        sa.UniqueConstraint("name", name=op.f("uq_tenant_name")),
    )

    op.create_table(
        "api_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("scopes", JSONDoc, nullable=False),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_api_key_tenant_id_tenant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_key_prefix")),
    )
    op.create_index(op.f("ix_api_key_tenant_id"), "api_key", ["tenant_id"])

    op.create_table(
        "dataset",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("id_file", sa.Text(), nullable=True),
        sa.Column("spec", JSONDoc, nullable=False),
        sa.Column("retain_access", sa.Boolean(), nullable=False),
        sa.Column("num_train", sa.Integer(), nullable=False),
        sa.Column("num_test", sa.Integer(), nullable=False),
        sa.Column("classes", JSONDoc, nullable=False),
        sa.Column("input_shape", JSONDoc, nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_dataset_tenant_id_tenant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_dataset_tenant_id_name")),
    )
    op.create_index(op.f("ix_dataset_tenant_id"), "dataset", ["tenant_id"])

    op.create_table(
        "model",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("arch", JSONDoc, nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("unlearn_config", JSONDoc, nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["dataset_id"], ["dataset.id"], name=op.f("fk_model_dataset_id_dataset")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_model_tenant_id_tenant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_model_tenant_id_name")),
    )
    op.create_index(op.f("ix_model_dataset_id"), "model", ["dataset_id"])
    op.create_index(op.f("ix_model_tenant_id"), "model", ["tenant_id"])

    # model_version.job_id and job.*_version_id reference each other: the version table is created
    # first and gets its job foreign key once the job table exists (batch mode rebuilds it on SQLite).
    op.create_table(
        "model_version",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("status", _enum("version_status", "pending", "ready", "failed"), nullable=False),
        sa.Column("checkpoint_uri", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("forgotten_count", sa.Integer(), nullable=False),
        sa.Column("metrics", JSONDoc, nullable=True),
        sa.Column("audit", JSONDoc, nullable=True),
        _ts("created_at"),
        _ts("ready_at", nullable=True),
        sa.CheckConstraint(
            "status != 'ready' OR (checkpoint_uri IS NOT NULL AND sha256 IS NOT NULL)",
            name=op.f("ck_model_version_ready_has_checkpoint"),
        ),
        sa.CheckConstraint("number >= 1", name=op.f("ck_model_version_number_positive")),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], name=op.f("fk_model_version_model_id_model")),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["model_version.id"], name=op.f("fk_model_version_parent_id_model_version")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_version")),
        sa.UniqueConstraint("model_id", "number", name=op.f("uq_model_version_model_id_number")),
    )
    op.create_index(op.f("ix_model_version_model_id"), "model_version", ["model_id"])

    op.create_table(
        "job",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("kind", _enum("job_kind", "unlearn", "audit", "reference_models"), nullable=False),
        sa.Column(
            "status", _enum("job_status", "queued", "running", "succeeded", "failed", "cancelled"), nullable=False
        ),
        sa.Column("phase", sa.String(64), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        _ts("eta_at", nullable=True),
        sa.Column("config", JSONDoc, nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        _ts("lease_expires_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("parent_version_id", sa.Uuid(), nullable=True),
        sa.Column("result_version_id", sa.Uuid(), nullable=True),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_job_progress_fraction")),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], name=op.f("fk_job_model_id_model")),
        sa.ForeignKeyConstraint(
            ["parent_version_id"], ["model_version.id"], name=op.f("fk_job_parent_version_id_model_version")
        ),
        sa.ForeignKeyConstraint(
            ["result_version_id"], ["model_version.id"], name=op.f("fk_job_result_version_id_model_version")
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_job_tenant_id_tenant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    op.create_index(op.f("ix_job_model_id"), "job", ["model_id"])
    op.create_index(op.f("ix_job_status"), "job", ["status"])
    op.create_index(op.f("ix_job_tenant_id"), "job", ["tenant_id"])
    # One unlearning job at a time per model, and at most one more waiting (SERVICE.md).
    for status in ("queued", "running"):
        where = sa.text(f"kind = 'unlearn' AND status = '{status}'")
        op.create_index(
            f"uq_job_model_id_{status}_unlearn",
            "job",
            ["model_id"],
            unique=True,
            postgresql_where=where,
            sqlite_where=where,
        )

    with op.batch_alter_table("model_version") as batch:
        batch.create_foreign_key(op.f("fk_model_version_job_id_job"), "job", ["job_id"], ["id"])

    op.create_table(
        "deletion_request",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("subject_request_id", sa.String(200), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("regulation", sa.String(32), nullable=True),
        _ts("due_at", nullable=True),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            _enum(
                "request_status",
                "received",
                "queued",
                "running",
                "auditing",
                "completed",
                "rejected",
                "failed",
                "cancelled",
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("version_id", sa.Uuid(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("completed_at", nullable=True),
        sa.CheckConstraint("sample_count >= 1", name=op.f("ck_deletion_request_sample_count_positive")),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_deletion_request_job_id_job")),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], name=op.f("fk_deletion_request_model_id_model")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_deletion_request_tenant_id_tenant")),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_version.id"], name=op.f("fk_deletion_request_version_id_model_version")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_request")),
        sa.UniqueConstraint(
            "model_id", "idempotency_key", name=op.f("uq_deletion_request_model_id_idempotency_key")
        ),
    )
    op.create_index(op.f("ix_deletion_request_job_id"), "deletion_request", ["job_id"])
    op.create_index(op.f("ix_deletion_request_model_id"), "deletion_request", ["model_id"])
    op.create_index(op.f("ix_deletion_request_status"), "deletion_request", ["status"])
    op.create_index(op.f("ix_deletion_request_tenant_id"), "deletion_request", ["tenant_id"])

    op.create_table(
        "forgotten_sample",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("sample_id", sa.String(200), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], name=op.f("fk_forgotten_sample_model_id_model")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["deletion_request.id"], name=op.f("fk_forgotten_sample_request_id_deletion_request")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_version.id"], name=op.f("fk_forgotten_sample_version_id_model_version")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forgotten_sample")),
        sa.UniqueConstraint("model_id", "sample_id", name=op.f("uq_forgotten_sample_model_id_sample_id")),
    )
    op.create_index(op.f("ix_forgotten_sample_request_id"), "forgotten_sample", ["request_id"])
    op.create_index(op.f("ix_forgotten_sample_version_id"), "forgotten_sample", ["version_id"])

    op.create_table(
        "event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        _ts("created_at"),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_event_tenant_id_tenant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
        sa.UniqueConstraint("hash", name=op.f("uq_event_hash")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_event_prev_hash")),
        sa.UniqueConstraint("seq", name=op.f("uq_event_seq")),
    )
    op.create_index(op.f("ix_event_subject_type_subject_id"), "event", ["subject_type", "subject_id"])
    op.create_index(op.f("ix_event_tenant_id"), "event", ["tenant_id"])

    head = op.create_table(
        "event_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_event_chain_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_chain_head")),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])

    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    """Events are never updated or deleted, and the chain head is never deleted, whoever connects."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION event_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'integrity_constraint_violation';
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON event "
            "FOR EACH ROW EXECUTE FUNCTION event_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER event_no_truncate BEFORE TRUNCATE ON event "
            "FOR EACH STATEMENT EXECUTE FUNCTION event_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER event_chain_head_kept BEFORE DELETE OR TRUNCATE ON event_chain_head "
            "FOR EACH STATEMENT EXECUTE FUNCTION event_refuse_change()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER event_no_{action.lower()} BEFORE {action} ON event "
                f"BEGIN SELECT RAISE(ABORT, 'table event is append-only: {action} refused'); END"
            )
        op.execute(
            "CREATE TRIGGER event_chain_head_kept BEFORE DELETE ON event_chain_head "
            "BEGIN SELECT RAISE(ABORT, 'table event_chain_head is append-only: DELETE refused'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE event_chain_head")
        op.execute("DROP TABLE event")
        op.execute("DROP FUNCTION event_refuse_change()")
    else:
        op.drop_table("event_chain_head")  # SQLite drops a table's triggers with it
        op.drop_table("event")
    op.drop_table("forgotten_sample")
    op.drop_table("deletion_request")
    with op.batch_alter_table("model_version") as batch:
        batch.drop_constraint(op.f("fk_model_version_job_id_job"), type_="foreignkey")
    op.drop_table("job")
    op.drop_table("model_version")
    op.drop_table("model")
    op.drop_table("dataset")
    op.drop_table("api_key")
    op.drop_table("tenant")
