"""Metadata backends: open a ``MetadataStore`` from a URL, and keep its schema migrated.

Supported URLs::

    sqlite:///relative/path.db       sqlite:////absolute/path.db
    postgresql://USER[:PASSWORD]@HOST[:PORT]/DB      (also postgres://, postgresql+psycopg://)

PostgreSQL is reached through psycopg 3. The schema is created and upgraded by the Alembic
scripts in ``migrations/``, run in code (no ``alembic.ini``): every process runs them at start,
and a lock makes sure one does the work while the others wait and then find nothing to do.
A database already at :data:`HEAD_REVISION` is not handed to Alembic at all, so a server
started on a migrated database never imports it (about 9 MiB of memory and 0.1 s per process).
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import URL, Connection, Engine, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError

from pixdrop.metadata.sql import SQLITE_BEGIN_OPTION, SqlMetadataStore, make_engine

__all__ = [
    "SUPPORTED_SCHEMES",
    "SqlMetadataStore",
    "database_url",
    "engine_for",
    "migrate",
    "open_metadata_store",
]

SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg")
SUPPORTED_URLS = (
    "use sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (or postgres://)"
)

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest revision in ``migrations/versions`` (a test checks it against Alembic's head).
HEAD_REVISION = "0008"

#: The advisory lock serialising migrations on PostgreSQL: ASCII "pxdr" and "migr" (the
#: two-integer form has its own key space). Everything else is coordinated by leases
#: (``metadata/leases.py``), which hold no connection.
MIGRATION_LOCK = (0x70786472, 0x6D696772)


def database_url(url: str) -> URL:
    """Parse and normalise *url* for SQLAlchemy (``postgres://`` → ``postgresql+psycopg://``).

    Raise ``ValueError`` if it is malformed, has an unsupported scheme, or names an in-memory
    SQLite database (each pooled connection would see a different, empty database).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"malformed database URL; {SUPPORTED_URLS}") from None
    if parsed.drivername not in SUPPORTED_SCHEMES:
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}; {SUPPORTED_URLS}")
    if parsed.drivername == "sqlite":
        if parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory":
            raise ValueError("in-memory SQLite is not supported: use sqlite:///PATH")
        return parsed
    return parsed.set(drivername="postgresql+psycopg")


def open_metadata_store(url: str, *, sync: bool = True) -> SqlMetadataStore:
    """Open the store at *url*, creating or upgrading its schema first.

    A SQLite file's parent directory is created if missing. Raise ``ValueError`` for an
    unsupported URL (see :func:`database_url`), and SQLAlchemy or Alembic errors if the
    database cannot be reached or migrated.
    """
    engine = engine_for(database_url(url), sync=sync)
    try:
        _upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return SqlMetadataStore(engine)


def migrate(url: str) -> None:
    """Upgrade the schema at *url* to the newest revision (a no-op if already there).

    Raise as :func:`open_metadata_store` does.
    """
    engine = engine_for(database_url(url))
    try:
        _upgrade(engine)
    finally:
        engine.dispose()


def engine_for(url: URL, *, sync: bool = True) -> Engine:
    """An engine for *url* as the stores make it (a SQLite file's directory is created)."""
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return make_engine(url, sync=sync)


#: Alembic keeps the running migration in module globals (``alembic.context``, ``alembic.op``),
#: so two threads migrating at once, even different databases, would mix up their connections.
_ALEMBIC_IN_USE = threading.Lock()


def _upgrade(engine: Engine) -> None:
    # The thread lock serialises this process; the database lock below, other processes.
    with _ALEMBIC_IN_USE, engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # BEGIN IMMEDIATE takes SQLite's write lock up front; DDL is transactional, so a
            # second process waits (busy_timeout) and then finds the schema at head.
            conn.execution_options(**{SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                # Held until this transaction ends, i.e. until the upgrade is committed.
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:a, :b)"),
                    {"a": MIGRATION_LOCK[0], "b": MIGRATION_LOCK[1]},
                )
            if _revisions(conn) != [HEAD_REVISION]:
                _alembic_upgrade(conn)


def _revisions(conn: Connection) -> list[str] | None:
    """The revisions the database is at, or ``None`` if it has no Alembic table yet."""
    try:
        with conn.begin_nested():  # a missing table must not abort PostgreSQL's transaction
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return None
    return [str(version) for (version,) in rows]


def _alembic_upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # env.py runs on this connection, inside the transaction already begun (and locked) above;
    # Alembic then leaves committing to us.
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
