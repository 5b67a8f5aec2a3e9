"""The history schema's version, and the ordered migrations that reach it.

One row of the `tq_schema` table says how many of MIGRATIONS the history
database has had. Readers check it (`check`: one SELECT) and never change the
schema; writers (a consumer, `tq up`, the history writer, ingest) and
`tq migrate` bring it up to date (`migrate`). So a current schema costs a
process one statement, not the dozens a create-what-is-missing pass costs.

Invariants:
  - MIGRATIONS only grows: a released migration is never edited or reordered;
    a schema change is a new entry at its end, and VERSION is its number.
  - Every migration is idempotent: it may meet its work already done (a crash
    between its DDL and the version row; MySQL commits each DDL statement on
    its own). Migration 1 builds the tables from the models as they are, so
    a later migration checks before it adds.
  - One migration run at a time per database: MySQL has no transactional DDL,
    so a named lock (GET_LOCK) is held while the version is read and moved;
    SQLite's DDL is transactional, so the whole run is one BEGIN IMMEDIATE
    transaction. A second process that starts at the same moment waits, then
    finds the version current and does nothing.
  - Version 0 is a database an older tq (before schema versions) made: its
    tables, no `tq_schema` row. Migration 1 adopts it as it is.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from peewee import (
    Database,
    DatabaseError,
    DoubleField,
    IntegerField,
    Model,
    MySQLDatabase,
    SqliteDatabase,
    fn,
)
from playhouse.migrate import MySQLMigrator, SchemaMigrator, SqliteMigrator
from playhouse.migrate import migrate as run

from tq.config import BackendUnavailable
from tq.history import DeadRecord
from tq.models import Attempt, Audit, AuditJob, BaseModel, Event, IngestedFile, Job, bound
from tq.summaries import SUMMARY_MODELS


class SchemaError(BackendUnavailable):
    """The history schema is missing, older or newer than this tq: one line, exit 2."""


class SchemaVersion(BaseModel):
    id = IntegerField(primary_key=True)  # always 1: one row
    version = IntegerField()
    migrated_at = DoubleField()

    class Meta:
        table_name = "tq_schema"


def _create_missing(database: Database, models: list[type[Model]]) -> list[str]:
    """Create the tables, columns and indexes of `models` that `database` lacks
    (it asks first: MySQL has no CREATE INDEX IF NOT EXISTS)."""
    with bound(database, models):
        return _add(database, models)


def _add(database: Database, models: list[type[Model]]) -> list[str]:
    added: list[str] = []
    existing = set(database.get_tables())
    migrator: SchemaMigrator = (SqliteMigrator(database) if isinstance(database, SqliteDatabase)
                                else MySQLMigrator(database))
    for model in models:
        table = model._meta.table_name
        if table not in existing:
            database.create_tables([model])
            added.append(f"table {table}")
            continue
        columns = {column.name for column in database.get_columns(table)}
        for field in model._meta.sorted_fields:
            if field.column_name not in columns:
                field.null = True  # an added column has no value in old rows
                run(migrator.add_column(table, field.column_name, field))
                added.append(f"column {table}.{field.column_name}")
        indexes = {index.name for index in database.get_indexes(table)}
        for index in model._meta.fields_to_index():
            if index._name not in indexes:
                database.execute(index.safe(False))
                added.append(f"index {index._name}")
    return added


def _v1_tables(database: Database) -> list[str]:
    return _create_missing(database, [Job, Attempt, Event, IngestedFile, Audit, AuditJob,
                                      DeadRecord, *SUMMARY_MODELS])


# Job ids compared byte for byte on MySQL too. MariaDB's default collation
# (utf8mb4_general_ci) ignores case, accents and trailing spaces, so the jobs
# `ja` and `JA` (distinct on the queue backend and on SQLite) would share one
# history row: two jobs, one history. (table, column, NULL allowed)
_ID_COLUMNS = [("job", "id", False), ("job", "requeued_from", True),
               ("attempt", "job_id", False), ("event", "job_id", False),
               ("audit_job", "job_id", False)]


def _v2_binary_ids(database: Database) -> list[str]:
    if isinstance(database, SqliteDatabase):
        return []  # SQLite compares text byte for byte already
    # A binary collation that also keeps trailing spaces (utf8mb4_bin pads them):
    # MariaDB's nopad_bin, MySQL 8's 0900_bin; plain bin where neither exists.
    rows = database.execute_sql("SHOW COLLATION LIKE %s", ("utf8mb4_%bin",))
    available = {row[0] for row in rows}
    collation = next((name for name in ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")
                      if name in available), "utf8mb4_bin")
    done = []
    for table, column, null in _ID_COLUMNS:
        if table not in database.get_tables():
            continue
        database.execute_sql(
            f"ALTER TABLE `{table}` MODIFY `{column}` VARCHAR(64) CHARACTER SET utf8mb4 "
            f"COLLATE {collation} {'NULL' if null else 'NOT NULL'}")
        done.append(f"binary ids {table}.{column}")
    return done


def _v3_result_column(database: Database) -> list[str]:
    """job.result: a task's return value (LONGTEXT on MySQL, TEXT on SQLite). A
    database that migration 1 built from today's models has it already."""
    if "result" in {column.name for column in database.get_columns("job")}:
        return []
    migrator: SchemaMigrator = (SqliteMigrator(database) if isinstance(database, SqliteDatabase)
                                else MySQLMigrator(database))
    with bound(database, [Job]):
        run(migrator.add_column("job", "result", Job.result))
    return ["column job.result"]


# (version, what it does, the step). Append only: see the module doc.
MIGRATIONS: list[tuple[int, str, Callable[[Database], list[str]]]] = [
    (1, "history, audit, ingest and summary tables", _v1_tables),
    (2, "job ids compared byte for byte (MySQL)", _v2_binary_ids),
    (3, "job results", _v3_result_column),
]
VERSION = MIGRATIONS[-1][0]


def read_version(database: Database) -> int | None:
    """The schema version: one SELECT when there is a version row. 0 for an
    older tq's schema (tables, no version row), None for no tq schema at all."""
    try:
        with bound(database, [SchemaVersion]):
            version = SchemaVersion.select(fn.MAX(SchemaVersion.version)).scalar()
    except DatabaseError:
        # No such table, or no answer: the second question tells them apart
        # (a server that is down raises here again).
        tables = set(database.get_tables())
        if SchemaVersion._meta.table_name in tables:
            raise
        return 0 if Job._meta.table_name in tables else None
    return 0 if version is None else int(version)


def check(database: Database, where: str) -> None:
    """Raise SchemaError unless the schema is at VERSION (`where` names the
    database in the message: the URL with no password)."""
    problem = describe(read_version(database), where)
    if problem:
        raise SchemaError(problem)


def describe(version: int | None, where: str) -> str | None:
    """What is wrong with a schema at `version`, in one line; None if nothing."""
    if version == VERSION:
        return None
    if version is None:
        return (f"history database {where} has no tq schema yet: run tq migrate "
                "(a consumer, tq up and tq serve also do it at start)")
    if version < VERSION:
        return (f"history database {where} has schema version {version}, this tq needs "
                f"{VERSION}: run tq migrate")
    return (f"history database {where} has schema version {version}, newer than this tq "
            f"knows ({VERSION}): upgrade tq")


@contextmanager
def _one_at_a_time(database: Database) -> Iterator[None]:
    if isinstance(database, SqliteDatabase):
        with database.atomic(lock_type="IMMEDIATE"):
            yield
        return
    if not isinstance(database, MySQLDatabase):
        raise TypeError(f"no migration lock for {type(database).__name__}")
    # Per database (the lock's name is server-wide); names are at most 64 characters.
    name = f"tq-migrate-{database.database}"[:64]
    got = database.execute_sql("SELECT GET_LOCK(%s, %s)", (name, 120)).fetchone()[0]
    if got != 1:
        raise SchemaError("history database: another tq has been migrating the schema for "
                          "120 s; try again when it is done")
    try:
        yield
    finally:
        database.execute_sql("SELECT RELEASE_LOCK(%s)", (name,)).fetchone()


def migrate(database: Database, where: str = "") -> list[str]:
    """Run the migrations `database` has not had, in order; safe to run any
    number of times and from several processes at once. Returns one line per
    migration applied (none when the schema was current). SchemaError if the
    schema is newer than this tq (`where` names the database in that message)."""
    done: list[str] = []
    with _one_at_a_time(database):
        version = read_version(database) or 0
        if version > VERSION:
            raise SchemaError(describe(version, where) or "")
        with bound(database, [SchemaVersion]):
            database.create_tables([SchemaVersion])
            for number, what, step in MIGRATIONS[version:]:
                changes = step(database)
                SchemaVersion.replace(id=1, version=number, migrated_at=time.time()).execute()
                done.append(f"{number}: {what}" + (f" ({', '.join(changes)})" if changes
                                                    else " (all there already)"))
    return done


__all__ = ["MIGRATIONS", "VERSION", "SchemaError", "SchemaVersion", "check", "describe",
           "migrate", "read_version"]
