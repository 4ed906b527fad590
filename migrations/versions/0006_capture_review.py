"""A capture's review decided (issue 21): `captures.review` becomes `accepted` or
`rejected` once a person looked (a pending or rejected capture's probe stays out of every
figure), `captures.reviewed_at` and `captures.review_note` keep when and why

Revision ID: 0006_capture_review
Revises: 0005_captures
Create Date: 2026-11-26 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_capture_review"
down_revision: str | None = "0005_captures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: 0005 named it through the naming convention a second time; its model's name is the
#: single one, used from here on.
OLD_CHECK = "ck_captures_ck_captures_review_known"
NEW_CHECK = "ck_captures_review_known"


def upgrade() -> None:
    with op.batch_alter_table("captures", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("review_note", sa.String(length=200), nullable=True))
        batch_op.drop_constraint(op.f(OLD_CHECK), type_="check")
    # No code ever wrote "done"; had anyone, it meant looked at and kept.
    op.execute("UPDATE captures SET review = 'accepted' WHERE review = 'done'")
    with op.batch_alter_table("captures", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f(NEW_CHECK), "review IN ('none', 'pending', 'accepted', 'rejected')"
        )


def downgrade() -> None:
    with op.batch_alter_table("captures", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(NEW_CHECK), type_="check")
    # The old schema cannot say "rejected": such a capture waits again, visible in the old
    # `captures review`, rather than passing for a reviewed one.
    op.execute("UPDATE captures SET review = 'done' WHERE review = 'accepted'")
    op.execute("UPDATE captures SET review = 'pending' WHERE review = 'rejected'")
    with op.batch_alter_table("captures", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f(OLD_CHECK), "review IN ('none', 'pending', 'done')")
        batch_op.drop_column("review_note")
        batch_op.drop_column("reviewed_at")
