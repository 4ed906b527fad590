"""Captures from a person's own browser (issue 21): `contributors` (pseudonym, role,
hashed personal token), `captures` (reception stamp, evidence, review state),
`probes.contributor_id`, the `manual` probe mode, and `probe_days.manual` so manual
captures are counted apart in coverage

Revision ID: 0005_captures
Revises: 0004_releases
Create Date: 2026-11-26 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_captures"
down_revision: str | None = "0004_releases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contributors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pseudonym", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("opted_in", sa.Boolean(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('volunteer', 'applicant')", name="ck_contributors_role_known"),
        sa.PrimaryKeyConstraint("id", name="pk_contributors"),
        sa.UniqueConstraint("pseudonym", name="uq_contributors_pseudonym"),
        sa.UniqueConstraint("token_sha256", name="uq_contributors_token_sha256"),
    )
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contributor_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_probes_contributor_id_contributors", "contributors", ["contributor_id"], ["id"]
        )
        batch_op.drop_constraint(op.f("ck_probes_mode_known"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_probes_mode_known"), "mode IN ('auto', 'assisted', 'manual')"
        )
    with op.batch_alter_table("probe_days", schema=None) as batch_op:
        batch_op.add_column(sa.Column("manual", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "captures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contributor_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("target_id", sa.String(length=80), nullable=True),
        sa.Column("probe_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("page_sha256", sa.String(length=64), nullable=True),
        sa.Column("screenshot_sha256", sa.String(length=64), nullable=True),
        sa.Column("ocr_text", sa.Text(), nullable=True),
        sa.Column("review", sa.String(length=10), nullable=False),
        sa.Column("review_reason", sa.String(length=200), nullable=False),
        sa.Column("user_agent", sa.String(length=200), nullable=True),
        sa.CheckConstraint("kind IN ('page', 'screenshot')", name="ck_captures_kind_known"),
        sa.CheckConstraint(
            "review IN ('none', 'pending', 'done')", name="ck_captures_review_known"
        ),
        sa.ForeignKeyConstraint(
            ["contributor_id"], ["contributors.id"], name="fk_captures_contributor_id_contributors"
        ),
        sa.ForeignKeyConstraint(["probe_id"], ["probes.id"], name="fk_captures_probe_id_probes"),
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name="fk_captures_target_id_targets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_captures"),
    )
    op.create_index("ix_captures_contributor_id", "captures", ["contributor_id"])
    op.create_index("ix_captures_received_at", "captures", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_captures_received_at", table_name="captures")
    op.drop_index("ix_captures_contributor_id", table_name="captures")
    op.drop_table("captures")
    with op.batch_alter_table("probe_days", schema=None) as batch_op:
        batch_op.drop_column("manual")
    op.execute("DELETE FROM probes WHERE mode = 'manual'")
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_probes_mode_known"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_probes_mode_known"), "mode IN ('auto', 'assisted')"
        )
        batch_op.drop_constraint("fk_probes_contributor_id_contributors", type_="foreignkey")
        batch_op.drop_column("contributor_id")
    op.drop_table("contributors")
