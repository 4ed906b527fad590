"""initial schema: targets and probes

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23 11:48:44.829554
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "targets",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("department", sa.String(length=3), nullable=False),
        sa.Column("department_name", sa.String(length=80), nullable=False),
        sa.Column("prefecture", sa.String(length=120), nullable=False),
        sa.Column("procedure", sa.String(length=60), nullable=False),
        sa.Column("procedure_name", sa.String(length=200), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("config_hash", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targets")),
    )
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_targets_department"), ["department"], unique=False)
        batch_op.create_index(batch_op.f("ix_targets_procedure"), ["procedure"], unique=False)

    op.create_table(
        "probes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.String(length=80), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("first_slot_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("second_slot_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("slots_count", sa.Integer(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("requests_made", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("adapter", sa.String(length=40), nullable=False),
        sa.Column("adapter_version", sa.String(length=20), nullable=False),
        sa.Column("robot_version", sa.String(length=20), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("final_url", sa.Text(), nullable=True),
        sa.Column("page_sha256", sa.String(length=64), nullable=True),
        sa.Column("screenshot_sha256", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('available', 'no_slot', 'procedure_missing', 'form_open', 'blocked', "
            "'error', 'unrecognized')",
            name=op.f("ck_probes_outcome_known"),
        ),
        sa.CheckConstraint("mode IN ('auto', 'assisted')", name=op.f("ck_probes_mode_known")),
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name=op.f("fk_probes_target_id_targets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probes")),
    )
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.create_index("ix_probes_started_at", ["started_at"], unique=False)
        batch_op.create_index(
            "ix_probes_target_id_started_at", ["target_id", "started_at"], unique=False
        )

    op.create_table(
        "probe_days",
        sa.Column("target_id", sa.String(length=80), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        *[
            sa.Column(c, sa.Integer(), nullable=False)
            for c in (
                "available",
                "no_slot",
                "procedure_missing",
                "form_open",
                "blocked",
                "error",
                "unrecognized",
                "assisted",
            )
        ],
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name=op.f("fk_probe_days_target_id_targets")
        ),
        sa.PrimaryKeyConstraint("target_id", "day", name=op.f("pk_probe_days")),
    )
    op.create_table(
        "probe_leads",
        sa.Column("target_id", sa.String(length=80), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("cimade", sa.String(length=40), nullable=False),
        sa.Column("lead_days", sa.Integer(), nullable=False),
        sa.Column("probes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name=op.f("fk_probe_leads_target_id_targets")
        ),
        sa.PrimaryKeyConstraint(
            "target_id", "month", "cimade", "lead_days", name=op.f("pk_probe_leads")
        ),
    )
    op.create_table(
        "episodes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.String(length=80), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name=op.f("fk_episodes_target_id_targets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episodes")),
    )
    op.create_index(op.f("ix_episodes_target_id"), "episodes", ["target_id"])
    op.create_table(
        "leases",
        sa.Column("target_id", sa.String(length=80), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target_id", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index(op.f("ix_episodes_target_id"), table_name="episodes")
    op.drop_table("episodes")
    op.drop_table("probe_leads")
    op.drop_table("probe_days")
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.drop_index("ix_probes_target_id_started_at")
        batch_op.drop_index("ix_probes_started_at")

    op.drop_table("probes")
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_targets_procedure"))
        batch_op.drop_index(batch_op.f("ix_targets_department"))

    op.drop_table("targets")
