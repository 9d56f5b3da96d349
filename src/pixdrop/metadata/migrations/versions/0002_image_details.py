"""Image details from the decoder: frames, orientation, alpha, placeholder, GPS presence.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01 00:00:00

Images stored before this revision get the defaults (one upright, opaque frame, no
placeholder, no GPS): they were never decoded, so nothing better is known about them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One batch: on SQLite, adding NOT NULL columns with defaults is a plain ALTER TABLE ADD
    # COLUMN, and batch mode keeps it that way (no table rebuild, nothing cascades).
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("frames", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("orientation", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(
            sa.Column("has_alpha", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("placeholder", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("has_gps", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        for name in ("has_gps", "placeholder", "has_alpha", "orientation", "frames"):
            batch.drop_column(name)
