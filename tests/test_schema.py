"""The history schema: a version row, migrations run by writers, checked by readers.

Several processes migrating at once (consumers and CLI commands starting
together on a fresh database) all succeed; a current schema costs a process
one statement; a reader never changes the schema and says in one line what to do."""
from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys

import pytest

from tq import migrations
from tq.migrations import VERSION, SchemaError, SchemaVersion
from tq.models import bound, open_database
from tq.runtime import Runtime


def _migrate(url: str) -> None:
    migrations.migrate(open_database(url))


def _url(backend) -> str:
    return backend.config().history.url


@pytest.fixture
def backend(backend):
    """The conftest backend with its history database emptied: these tests make it."""
    database = open_database(_url(backend))
    for name in database.get_tables():
        database.execute_sql(f"DROP TABLE {name}")
    database.close()
    return backend


class Statements(logging.Handler):
    """Every SQL statement peewee sends (it logs each one to 'peewee' at DEBUG)."""

    def __init__(self) -> None:
        super().__init__()
        self.sql: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple):
            self.sql.append(str(record.msg[0]))

    def __enter__(self) -> Statements:
        logger = logging.getLogger("peewee")
        self._level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logger = logging.getLogger("peewee")
        logger.removeHandler(self)
        logger.setLevel(self._level)


@pytest.mark.parametrize("backend", ["embedded", "redis"], indirect=True)
def test_concurrent_migration(backend):
    url = _url(backend)
    # Fresh interpreters, as consumers starting on several machines are (a
    # fork would inherit whatever this test process holds).
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_migrate, args=(url,)) for _ in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0] * 6
    database = open_database(url)
    assert migrations.read_version(database) == VERSION
    assert "job" in database.get_tables()
    assert migrations.migrate(database) == []  # current: nothing more to do


def test_current_schema_costs_one_statement(backend):
    """Was 52 statements on MariaDB (27 of them CREATE INDEX attempts that failed)."""
    migrations.migrate(open_database(_url(backend)))
    with Statements() as seen:
        runtime = Runtime(backend.config())
        runtime.history_db()
        runtime.history_db()
        assert runtime.migrate_history() == []
    runtime.close()
    assert len(seen.sql) == 1, seen.sql
    assert "tq_schema" in seen.sql[0]


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_fresh_migration_asks_before_it_creates(backend):
    """No CREATE INDEX that fails and is swallowed: each index is created once."""
    with Statements() as seen:
        applied = migrations.migrate(open_database(_url(backend)))
    assert [line.split(":")[0] for line in applied] == [str(n) for n, _, _ in
                                                        migrations.MIGRATIONS]
    creates = [sql for sql in seen.sql if sql.startswith("CREATE")]
    assert len(creates) == len(set(creates))


def _tq(backend, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TQ_")}
    env.update(backend.env)
    return subprocess.run([sys.executable, "-m", "tq.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_reader_on_a_fresh_database_says_run_migrate_and_writes_nothing(backend):
    result = _tq(backend, "jobs")
    assert result.returncode == 2
    assert "no tq schema yet: run tq migrate" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert migrations.read_version(open_database(_url(backend))) is None  # nothing made
    result = _tq(backend, "migrate")
    assert result.returncode == 0, result.stderr
    assert f"history schema version {VERSION}" in result.stdout
    assert _tq(backend, "jobs").returncode == 0
    result = _tq(backend, "migrate")
    assert "(up to date)" in result.stdout


def test_reader_on_an_older_or_newer_schema(backend):
    database = open_database(_url(backend))
    migrations.MIGRATIONS[0][2](database)  # the tables as a tq before versions left them
    result = _tq(backend, "jobs")
    assert result.returncode == 2
    assert f"schema version 0, this tq needs {VERSION}: run tq migrate" in result.stderr
    assert _tq(backend, "db", "init").returncode == 0  # the old name of tq migrate
    assert migrations.read_version(database) == VERSION
    with bound(database, [SchemaVersion]):
        SchemaVersion.update(version=VERSION + 1).execute()
    result = _tq(backend, "jobs")
    assert result.returncode == 2
    assert "newer than this tq knows" in result.stderr and "upgrade tq" in result.stderr
    # tq status still prints the queue backend's half, and the same line (exit 1).
    result = _tq(backend, "status")
    assert result.returncode == 1
    assert "newer than this tq knows" in result.stdout and "upgrade tq" in result.stdout
    with pytest.raises(SchemaError):
        migrations.migrate(database)


def test_migration_adopts_an_older_schema_with_parts_missing(backend):
    database = open_database(_url(backend))
    migrations.MIGRATIONS[0][2](database)
    database.execute_sql("DROP INDEX job_state_finished_at" + (
        "" if backend.kind == "embedded" else " ON job"))
    applied = migrations.migrate(database)
    assert "index job_state_finished_at" in applied[0]
    assert "job_state_finished_at" in {i.name for i in database.get_indexes("job")}


def test_job_ids_differing_only_in_case_are_two_jobs(backend):
    """`ja` and `JA` are two jobs on the queue backend; history keeps two rows
    on MariaDB too (whose default collation would make them one)."""
    from tq.history import write_records
    from tq.models import Attempt, Job

    database = open_database(_url(backend))
    migrations.migrate(database)
    from tq.models import state_seq

    records = [{"kind": "job", "id": job_id, "state": "queued", "seq": state_seq("queued", 0),
                "queue": "default",
                "task": "t.x", "enqueued_at": 1.0, "updated_at": 1.0}
               for job_id in ("ja", "JA", "ja ")]
    records += [{"kind": "attempt", "job_id": job_id, "attempt": 1, "started_at": 1.0}
                for job_id in ("ja", "JA")]
    write_records(database, records)
    with bound(database, [Job, Attempt]):
        assert sorted(job.id for job in Job.select(Job.id)) == ["JA", "ja", "ja "]
        assert Job.select().where(Job.id == "ja").count() == 1
        assert Attempt.select().where(Attempt.job_id == "JA").count() == 1


def test_migrate_adds_the_result_column_to_a_schema_2_database(backend):
    """A database an older tq left at schema 2 (no job.result) gets the column from
    `tq migrate`; its jobs keep their rows, with no result."""
    database = open_database(_url(backend))
    for _, _, step in migrations.MIGRATIONS[:2]:
        step(database)
    # Migration 1 builds today's models: take away what schema 2 did not have.
    database.execute_sql('ALTER TABLE job DROP COLUMN result')
    database.execute_sql("INSERT INTO job (id, state, seq) VALUES ('old-job', 'succeeded', 4)")
    with bound(database, [SchemaVersion]):
        database.create_tables([SchemaVersion])
        SchemaVersion.replace(id=1, version=2, migrated_at=0).execute()
    assert "result" not in {c.name for c in database.get_columns("job")}
    result = _tq(backend, "show", "old-job")
    assert result.returncode == 2 and "schema version 2" in result.stderr
    result = _tq(backend, "migrate")
    assert result.returncode == 0, result.stderr
    assert "3: job results (column job.result)" in result.stdout
    assert "result" in {c.name for c in database.get_columns("job")}
    assert migrations.read_version(database) == VERSION
    result = _tq(backend, "show", "--json", "old-job")
    assert result.returncode == 0, result.stderr
    assert '"has_result": false' in result.stdout
