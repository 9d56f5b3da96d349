"""An index on images (created_at, id): ``GET /v1/images`` lists newest first, by pages.

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-10 00:00:00

A page is the next *limit* images after the ``(created_at, id)`` of the previous page's last
one, in descending order: with this index that is a seek and a short scan, not a sort of the
whole table.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_images_created_at_id", "images", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_images_created_at_id", table_name="images")
