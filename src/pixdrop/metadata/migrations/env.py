"""Alembic environment, driven from code by ``pixdrop.metadata`` (there is no alembic.ini).

The caller opens the connection, begins the transaction and takes the migration lock, then
hands the connection over in ``config.attributes["connection"]``; Alembic runs inside that
transaction and the caller commits. Offline (``--sql``) mode is not supported.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from pixdrop.metadata.tables import metadata


def run_migrations(connection: Connection) -> None:
    """Run the pending migrations on *connection*."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead. Beware: a
        # rebuild of ``uploads`` drops the old table, which cascades to ``upload_parts`` unless
        # foreign_keys is OFF, and SQLite only lets that change outside a transaction.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Raise ``RuntimeError`` unless called with a connection, as ``pixdrop.metadata`` does."""
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise RuntimeError("run migrations through pixdrop.metadata.migrate(url)")
    run_migrations(connection)


main()
