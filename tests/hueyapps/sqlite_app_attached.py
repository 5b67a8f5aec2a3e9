"""A stock Huey app on SqliteHuey, as a team writes one (no tq in it): its twin
sqlite_app_attached.py differs by the one `tq.attach` line (test_attach diffs them)."""
import os

from huey import SqliteHuey, crontab

huey = SqliteHuey(os.environ.get("HUEYAPP_NAME", "app"),
                  filename=os.environ.get("HUEYAPP_SQLITE", "app.db"))
import tq; tq.attach(huey)  # noqa: E402, E702, I001  (the one added line)


@huey.task()
def add(a, b):
    return a + b


@huey.task(retries=1)
def fail(message):
    raise ValueError(message)


@huey.task(priority=5)
def urgent(value):
    return {"value": value}


@huey.periodic_task(crontab(minute="0", hour="3"))
def nightly():
    return "done"


@huey.task()
def slow(log, flag):
    """Appends 'start', waits until the file `flag` exists, appends 'finish'."""
    import time
    with open(log, "a") as out:
        out.write("start\n")
    while not os.path.exists(flag):
        time.sleep(0.05)
    with open(log, "a") as out:
        out.write("finish\n")
