"""Release banners and the platform's verbatim message on probes; probe attempts (so a
crash leaves a trace that becomes an `error/interrupted` probe); per-host gates shared
by every robot process on the database

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("platform_message", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("release_last_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("release_last_week", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("release_next_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("release_next_week", sa.Date(), nullable=True))
    op.create_table(
        "probe_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.String(length=80), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("adapter", sa.String(length=40), nullable=False),
        sa.Column("adapter_version", sa.String(length=20), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name="fk_probe_attempts_target_id_targets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_probe_attempts"),
    )
    op.create_index("ix_probe_attempts_target_id", "probe_attempts", ["target_id"])
    op.create_table(
        "host_gates",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_allowed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("host", name="pk_host_gates"),
    )


def downgrade() -> None:
    op.drop_table("host_gates")
    op.drop_index("ix_probe_attempts_target_id", table_name="probe_attempts")
    op.drop_table("probe_attempts")
    with op.batch_alter_table("probes", schema=None) as batch_op:
        for column in (
            "release_next_week",
            "release_next_at",
            "release_last_week",
            "release_last_at",
            "platform_message",
        ):
            batch_op.drop_column(column)
