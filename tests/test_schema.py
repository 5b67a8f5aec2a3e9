"""Several processes creating the history schema at once (consumers and CLI commands
starting together on a fresh MariaDB database) all succeed."""
import multiprocessing

from tq.models import create_schema, open_database

from conftest import _mysql


def _create(url: str) -> None:
    create_schema(open_database(url))


def test_concurrent_schema_creation_on_mariadb(redis_backend):
    url = redis_backend.env["TQ_HISTORY_URL"]
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_create, args=(url,)) for _ in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0] * 6
    with _mysql(redis_backend.database_name) as conn:
        cursor = conn.cursor()
        cursor.execute("show tables")
        assert ("job",) in cursor.fetchall()
