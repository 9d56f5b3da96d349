"""Direct-upload grants, and who opened each upload (client address, grant).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 23:30:00

``grants`` holds the one-time grants of ``POST /v1/direct-uploads`` (only a hash of each
token). ``uploads.client`` is the address that opened an upload, so open uploads can be
counted per client (``--max-open-uploads-per-client``); ``uploads.grant_id`` the grant it
presented, checked again when the upload completes. Rows from before this revision have
neither.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("client", sa.Text(), nullable=True))
        batch.add_column(sa.Column("grant_id", sa.String(22), nullable=True))
        batch.create_index("ix_uploads_client", ["client"])
    op.create_table(
        "grants",
        sa.Column("id", sa.String(22), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_size", sa.BigInteger(), nullable=True),
        sa.Column("formats", sa.Text(), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("private", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("image_id", sa.String(22), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
    )
    op.create_index("ix_grants_expires_at", "grants", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_grants_expires_at", table_name="grants")
    op.drop_table("grants")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_index("ix_uploads_client")
        batch.drop_column("grant_id")
        batch.drop_column("client")
