"""Access control: API keys, owners of uploads and images, private images, quota accounting.

Revision ID: 0006
Revises: 0005
Create Date: 2027-01-20 00:00:00

Uploads and images made before this migration have no owner (they were anonymous) and are
public: they count against no key's quota.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(22), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quota", sa.BigInteger, nullable=True),
        sa.Column("max_open_uploads", sa.Integer, nullable=True),
        sa.Column("rate", sa.Text, nullable=True),
        sa.Column("used_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("open_uploads", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
    )
    # Plain ADD COLUMN (SQLite has it for a nullable column and a constant default): a batch
    # alter would rebuild the table on SQLite, and dropping the old uploads table cascaded
    # to every recorded part (upload_parts' foreign key), losing unfinished uploads.
    for table in ("uploads", "images"):
        op.add_column(table, sa.Column("owner", sa.String(22), nullable=True))
        op.add_column(
            table, sa.Column("private", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_index("ix_images_owner_created_at_id", "images", ["owner", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_images_owner_created_at_id", table_name="images")
    for table in ("images", "uploads"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("private")
            batch.drop_column("owner")
    op.drop_table("api_keys")
