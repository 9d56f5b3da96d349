"""Staging receipts (a store token per upload, a part number and ETag per part) and leases.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 00:00:00

``uploads.store_token`` keeps what ``Staging.begin`` answered (an S3 multipart upload id; empty
on local disk), ``upload_parts.number`` and ``etag`` what ``Staging.put_part`` did, so that any
node can finish an upload another began. ``leases`` replaces the process-local locks: who writes
an upload or a chunk, and which process sweeps. Rows from before this revision are local-disk
uploads: no token, part number 0, no ETag.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("store_token", sa.Text(), nullable=True))
    with op.batch_alter_table("upload_parts") as batch:
        batch.add_column(sa.Column("number", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("etag", sa.Text(), nullable=True))
    op.create_table(
        "leases",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stop", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    with op.batch_alter_table("upload_parts") as batch:
        batch.drop_column("etag")
        batch.drop_column("number")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("store_token")
