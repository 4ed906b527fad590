"""`probe_attempts.followup`: an interrupted follow-up probe is stored as a follow-up
(out of the rollups, like the follow-up it was) and, after a restart, still counts in its
host's follow-up budget

Revision ID: 0007_attempt_followup
Revises: 0006_capture_review
Create Date: 2026-11-26 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_attempt_followup"
down_revision: str | None = "0006_capture_review"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("probe_attempts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("followup", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("probe_attempts", schema=None) as batch_op:
        batch_op.drop_column("followup")
