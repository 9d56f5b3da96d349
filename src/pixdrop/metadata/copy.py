"""Copy one metadata database into another, empty one: SQLite to PostgreSQL when a site
moves from one machine to many (``pixdrop db copy``).

Both databases have the same schema (one SQLAlchemy Core schema, one set of migrations), so
the copy is table by table in foreign-key order, in batches, through the same ``Table``
objects the stores use: every type round-trips as the stores read and write it.

* The target is migrated to the newest schema first and must hold no rows: the copy is
  one transaction there, so it is all or nothing, and a failed run is simply run again.
* The source is read inside one transaction, a consistent snapshot even while a server
  writes to it (SQLite's WAL keeps a reader's view).
* Leases are not copied: they belong to running processes.
* Unfinished uploads stay behind unless asked for (``unfinished=True``): their bytes are in
  the old blob store's staging, which a new store cannot continue. Tables that refer to
  uploads (their parts, their concatenation lists) follow the uploads copied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Select, Table, func, select

from pixdrop.metadata import database_url, engine_for, migrate
from pixdrop.metadata import tables as t
from pixdrop.metadata.quotas import recount_usage
from pixdrop.models import UploadState

__all__ = ["BATCH", "TargetNotEmpty", "copied_tables", "copy_database"]

#: Rows inserted per statement.
BATCH = 1_000


class TargetNotEmpty(Exception):
    """The target database already holds rows (``table``: ``rows``)."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        held = ", ".join(f"{rows} {name}" for name, rows in counts.items())
        super().__init__(f"the target database is not empty ({held})")


@dataclass(frozen=True, slots=True)
class TableCopy:
    name: str
    rows: int


def copied_tables() -> list[Table]:
    """The tables a copy carries, parents before children."""
    return [table for table in t.metadata.sorted_tables if table is not t.leases]


def _rows_of(table: Table, *, unfinished: bool) -> Select[tuple[object, ...]]:
    query = select(table)
    if unfinished:
        return query
    finished = select(t.uploads.c.id).where(t.uploads.c.state == UploadState.COMPLETED.value)
    if table is t.uploads:
        return query.where(t.uploads.c.state == UploadState.COMPLETED.value)
    for key in table.foreign_keys:
        if key.column.table is t.uploads:
            query = query.where(key.parent.in_(finished))
    return query


def _counts(conn: Connection, tables: list[Table]) -> dict[str, int]:
    return {
        table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        for table in tables
    }


def copy_database(
    source: str,
    target: str,
    *,
    unfinished: bool = False,
    progress: Callable[[str, int], None] = lambda table, rows: None,
) -> list[TableCopy]:
    """Copy *source* into the empty database *target* (URLs as ``--database-url`` takes
    them); return the rows copied per table. *progress* hears each batch (table, rows).

    Raise ``TargetNotEmpty`` if *target* holds rows, ``ValueError`` for an unsupported URL,
    SQLAlchemy errors if a database cannot be reached.
    """
    migrate(source)  # an older source gets the newest schema, as a server would give it
    migrate(target)
    tables = copied_tables()
    source_engine = engine_for(database_url(source))
    target_engine = engine_for(database_url(target))
    done: list[TableCopy] = []
    try:
        with source_engine.connect() as reader, target_engine.begin() as writer:
            held = {name: rows for name, rows in _counts(writer, tables).items() if rows}
            if held:
                raise TargetNotEmpty(held)
            for table in tables:
                copied = 0
                result = reader.execution_options(yield_per=BATCH).execute(
                    _rows_of(table, unfinished=unfinished)
                )
                for batch in result.mappings().partitions():
                    writer.execute(table.insert(), [dict(row) for row in batch])
                    copied += len(batch)
                    progress(table.name, len(batch))
                done.append(TableCopy(table.name, copied))
            # Uploads left behind held part of their keys' quotas: count usage afresh.
            recount_usage(writer)
            # Checked inside the transaction: a mismatch rolls the whole copy back.
            counts = _counts(writer, tables)
            for entry in done:
                if counts[entry.name] != entry.rows:
                    raise RuntimeError(
                        f"{entry.name}: copied {entry.rows} rows but the target holds "
                        f"{counts[entry.name]}"
                    )
    finally:
        source_engine.dispose()
        target_engine.dispose()
    return done
