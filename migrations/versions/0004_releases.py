"""Releases of slots (issue 17): the `releases` table (publication instants read from the
platform's banners or inferred), and `probes.followup`, the mark of the extra looks taken
after slots were seen or a release announced

Revision ID: 0004_releases
Revises: 0003
Create Date: 2026-11-26 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_releases"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("followup", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.String(length=80), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=True),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("inferred", sa.Boolean(), nullable=False),
        sa.Column("uncertainty_seconds", sa.Integer(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("probe_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "source IN ('banner', 'announced', 'inferred')", name="ck_releases_source_known"
        ),
        sa.ForeignKeyConstraint(["probe_id"], ["probes.id"], name="fk_releases_probe_id_probes"),
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name="fk_releases_target_id_targets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
        sa.UniqueConstraint("target_id", "published_at", name="uq_releases_target_id_published_at"),
    )
    op.create_index("ix_releases_published_at", "releases", ["published_at"])


def downgrade() -> None:
    op.drop_index("ix_releases_published_at", table_name="releases")
    op.drop_table("releases")
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.drop_column("followup")
