"""Uploads made through tus 1.0 and the IETF resumable-upload draft.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01 00:00:00

``protocol`` says which API created an upload (the native chunk API cannot drive the others).
``length_deferred`` marks an upload whose size is not known yet (``size`` is 0 until it is).
``upload_metadata`` keeps tus ``Upload-Metadata`` verbatim; ``concat`` keeps ``Upload-Concat``
(``partial`` or ``final;<urls>``) verbatim. ``upload_concat`` lists a final upload's partial
uploads in order. Rows from before this revision are native uploads with a known size.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(
            sa.Column("protocol", sa.String(8), nullable=False, server_default="native")
        )
        batch.add_column(
            sa.Column("length_deferred", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("upload_metadata", sa.Text(), nullable=True))
        batch.add_column(sa.Column("concat", sa.Text(), nullable=True))
    op.create_table(
        "upload_concat",
        sa.Column("final_id", sa.String(22), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("partial_id", sa.String(22), nullable=False),
        sa.ForeignKeyConstraint(
            ["final_id"],
            ["uploads.id"],
            name=op.f("fk_upload_concat_final_id_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("final_id", "position", name=op.f("pk_upload_concat")),
    )
    op.create_index(op.f("ix_upload_concat_partial_id"), "upload_concat", ["partial_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_upload_concat_partial_id"), table_name="upload_concat")
    op.drop_table("upload_concat")
    with op.batch_alter_table("uploads") as batch:
        for name in ("concat", "upload_metadata", "length_deferred", "protocol"):
            batch.drop_column(name)
