"""What the CLI and the console read: status, job lists, job detail, workers.

Queue depths (queued, scheduled, running, held) come from the queue backend,
which is the truth about what is waiting; outcomes, attempts and errors come
from the history database. Every history query here is served by an index
(see models.Job.Meta.indexes) and pages with a keyset, never OFFSET, so its
cost does not grow with the table.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from peewee import SQL, Database, InterfaceError, OperationalError, SqliteDatabase, fn

from tq.attach import apps as attached_apps
from tq.attach import depths as attached_depths
from tq.config import BackendUnavailable, ConfigError
from tq.format import first_line
from tq.groups import normalise_message  # noqa: F401  (the rule lives in tq.groups)
from tq.models import STATES, TERMINAL, Attempt, Job, bound, dict_rows, tuple_rows
from tq.scheduler import periodic_specs
from tq.storage.contract import backend_unreachable
from tq.where import Filter, condition

if TYPE_CHECKING:
    from tq.runtime import Runtime

JOB_FIELDS = ("id", "queue", "task", "args", "kwargs", "priority", "state", "attempts",
              "max_retries", "enqueued_at", "eta", "started_at", "finished_at", "worker",
              "error_type", "error_message", "requeued_from")
# Single-column indexes of sort columns (models.Job.Meta): see list_jobs.
BARE_SORT_INDEXES = {"enqueued_at": "job_enqueued_at", "finished_at": "job_finished_at"}
logger = logging.getLogger("tq.queries")


class AppUnreachable(Exception):
    """An attached Huey app's own storage cannot be reached; str() is one line."""
SORTABLE = ("enqueued_at", "started_at", "finished_at", "priority", "attempts", "task", "id")


def catch_up(runtime: Runtime) -> None:
    """The one step that brings history up to date with what was submitted:
    each CLI read verb of history (tq jobs, show, status, audit) calls it once
    before it reads, the console before each history read a screen makes
    (tq.tui.data), an action before it selects jobs (tq.ops). The query
    functions below only read; a caller that skips the door reads history
    without the jobs submitted since.

    Submitted jobs' `queued` rows travel through the queue backend (see
    storage.SUBMITTED) and a consumer's history writer writes them within its
    flush interval; with no consumer running nothing would. This writes what
    is waiting, which costs one round trip when nothing is. It never changes
    the schema (Runtime.history_db). A failure is left to the read that
    follows to report."""
    try:
        runtime.write_submitted()
    except Exception as exc:
        logger.debug("could not write submitted jobs to history: %s", exc)


def queue_names(runtime) -> list[str]:
    """Every queue a front end shows: tq's own, then attached Huey apps' ([huey] apps)."""
    return [*runtime.queues, *attached_apps(runtime)]


NO_DEPTHS: dict[str, int | None] = {"queued": None, "scheduled": None, "running": None,
                                     "held": None}


def queue_depths(runtime, queue: str) -> dict[str, int]:
    """A queue's depths from its backend. An attached app's storage that cannot be
    reached raises AppUnreachable (its own line), not the storage's exception."""
    attached = attached_apps(runtime)
    if queue in attached:  # an attached Huey app: its own storage
        try:
            return attached_depths(attached[queue])
        except Exception as exc:
            if not backend_unreachable(exc):
                raise
            raise AppUnreachable(f"{queue}: the app's storage is unreachable: "
                                 f"{first_line(exc)[:200]}") from None
    storage = runtime.queue(queue).storage
    return {"queued": storage.queue_size(), "scheduled": storage.schedule_size(),
            "running": storage.inflight_count(), "held": storage.held_count()}


def queue_unreachable(exc: BaseException) -> bool:
    """Whether `exc`, raised reading the queue backend, means it did not answer
    (the front ends then show the rest; anything else is a defect and raised)."""
    return isinstance(exc, BackendUnavailable) or backend_unreachable(exc)


def history_unreachable(exc: BaseException) -> bool:
    """Whether `exc`, raised reading history, means the database did not answer
    or has no schema of this tq (Runtime.history_db), or went away after its
    check (the driver's error). Anything else is a defect and raised."""
    return isinstance(exc, (BackendUnavailable, OperationalError, InterfaceError, OSError))


def outage_line(runtime, server: str, exc: BaseException) -> str:
    """One line for `server` ("queue" or "history") not answering with `exc`: its
    address (password masked) and what it said, never an exception's class name.
    A BackendUnavailable's own line says all that already."""
    if isinstance(exc, BackendUnavailable):
        return first_line(str(exc))
    where = (f"queue backend {runtime.config.queue_url_safe}" if server == "queue" else
             f"history database {runtime.config.history_url_safe}")
    return f"{where} unreachable: {first_line(str(exc), 200) or 'no answer'}"


# What history says of a queue, when it cannot say it: None, never a guessed 0.
NO_HISTORY: dict[str, Any] = {
    "retrying": None, "failed": None, "succeeded_last_minute": None,
    "failed_last_minute": None, "succeeded_last_hour": None, "failed_last_hour": None,
    "oldest_queued_age": None, "error_rate_last_hour": None}


def status(runtime, now: float | None = None, totals: bool = True) -> dict[str, Any]:
    """Per queue: paused, depths from the backend, outcomes from history; workers alive.

    Each half answers alone: with the history database unreachable (or without
    this tq's schema) the queue backend's half is all there, history's fields are
    None and `history_unreachable` is its one line; with the queue backend
    unreachable, the reverse (`queue_unreachable`). Both down raises
    BackendUnavailable naming both.

    With totals=False (the console's live refresh) there is no per-state "history"
    count: that counts every row of the queue, a cost that grows with the history;
    the failed and retrying counts then come from index ranges of those states."""
    now = time.time() if now is None else now
    queue_down = history_down = None
    try:
        runtime.check_queue_backend()  # the one rule: no answer to a PING is "unreachable"
        state = queue_state(runtime, now)
    except Exception as exc:
        if not queue_unreachable(exc):
            raise
        queue_down = outage_line(runtime, "queue", exc)
        state = {"queues": {name: {"paused": None, "paused_tasks": None, **NO_DEPTHS}
                            for name in queue_names(runtime)},
                 "workers_alive": None, "workers": None, "quarantined": None}
    try:
        history = queue_history(runtime, now, totals=totals)
    except Exception as exc:
        if not history_unreachable(exc):
            raise
        history_down = outage_line(runtime, "history", exc)
        empty = dict(NO_HISTORY, history=None) if totals else NO_HISTORY
        history = {name: empty for name in state["queues"]}
    if queue_down and history_down:
        raise BackendUnavailable(f"{queue_down}; {history_down}")
    for name, entry in state["queues"].items():
        entry.update(history[name])
    extra = {"queue_unreachable": queue_down} if queue_down else {}
    if history_down:
        extra["history_unreachable"] = history_down
    held = quarantine_counts(runtime, queue=not queue_down, history=not history_down)
    return dict(state, **extra, quarantine=held,
                queue_backend=runtime.config.queue_url_safe,
                history=runtime.config.history_url_safe)


def queue_state(runtime, now: float | None = None) -> dict[str, Any]:
    """What the queue backend alone says: per queue paused, paused task types and
    depths; the consumers' heartbeats. Answers while the history database is down."""
    now = time.time() if now is None else now
    paused = runtime.control.paused()
    workers = list_workers(runtime, now)
    queues = {}
    for name in queue_names(runtime):
        entry: dict[str, Any] = {"paused": name in paused,
                                 "paused_tasks": sorted(t.split("/", 1)[1] for t in paused
                                                        if t.startswith(name + "/"))}
        try:
            entry.update(queue_depths(runtime, name))
        except AppUnreachable as exc:
            # An attached app on a server of its own: the other queues still show,
            # this one says why its depths are missing (None, never a guessed 0).
            entry.update(NO_DEPTHS, unreachable=str(exc))
        queues[name] = entry
    return {"queues": queues, "workers_alive": sum(1 for w in workers if w["alive"]),
            "workers": workers,
            # Messages set aside by consumers (tq quarantine lists them).
            "quarantined": runtime.control.quarantine_count()}


def queue_history(runtime, now: float | None = None, totals: bool = True
                  ) -> dict[str, dict[str, Any]]:
    """What history alone says per queue: retrying and failed counts, outcomes of the
    last minute and hour, the oldest queued job. Answers while the queue backend is
    down (then without the jobs submitted since, which travel through it)."""
    now = time.time() if now is None else now
    runtime.history_db()
    queues = {}
    for name in queue_names(runtime):
        entry: dict[str, Any] = {}
        if totals:
            counts = dict(tuple_rows(Job.select(Job.state, fn.COUNT(Job.id))
                                     .where(Job.queue == name).group_by(Job.state)))
            entry["history"] = {state: counts.get(state, 0) for state in STATES}
        else:
            counts = {state: Job.select().where((Job.state == state) & (Job.queue == name))
                      .count() for state in ("retrying", "failed")}
        entry["retrying"] = counts.get("retrying", 0)
        entry["failed"] = counts.get("failed", 0)
        for label, seconds in (("last_minute", 60), ("last_hour", 3600)):
            done = dict(tuple_rows(Job.select(Job.state, fn.COUNT(Job.id))
                                   .where((Job.queue == name)
                                          & Job.state.in_(("succeeded", "failed"))
                                          & (Job.finished_at >= now - seconds))
                                   .group_by(Job.state)))
            entry[f"succeeded_{label}"] = done.get("succeeded", 0)
            entry[f"failed_{label}"] = done.get("failed", 0)
        oldest = (Job.select(Job.enqueued_at)
                  .where((Job.state == "queued") & (Job.queue == name))
                  .order_by(Job.enqueued_at).limit(1).scalar())
        entry["oldest_queued_age"] = round(now - oldest, 1) if oldest else None
        finished = entry["succeeded_last_hour"] + entry["failed_last_hour"]
        entry["error_rate_last_hour"] = (round(entry["failed_last_hour"] / finished, 4)
                                         if finished else 0.0)
        queues[name] = entry
    return queues


def list_jobs(runtime, flt: Filter | None = None, sort: str = "enqueued_at",
              descending: bool = True, limit: int = 40,
              after: tuple[Any, str] | None = None) -> list[dict]:
    """One page of jobs. `after` is the (sort value, id) of the last row of the
    previous page: keyset paging, so page 1,000 costs what page 1 costs."""
    if sort not in SORTABLE:
        raise ValueError(f"cannot sort by {sort!r} (choose from {', '.join(SORTABLE)})")
    runtime.history_db()
    column = getattr(Job, sort)
    query = Job.select(*[getattr(Job, name) for name in JOB_FIELDS])
    if flt is not None and flt.states and sort in BARE_SORT_INDEXES and \
            not isinstance(runtime.history_db(), SqliteDatabase):
        # MariaDB pages a state by walking the bare index of the sort column and reading
        # every newer row on the way (behind a backlog of 100,000 queued jobs: seconds);
        # without it, it walks (state, sort column) and stops after `limit` rows.
        query = query.from_(SQL(f"`job` AS `t1` IGNORE INDEX (`{BARE_SORT_INDEXES[sort]}`)"))
    expression = condition(flt) if flt is not None else None
    if expression is not None:
        query = query.where(expression)
    order = [column.desc(), Job.id.desc()] if descending else [column.asc(), Job.id.asc()]
    if flt is None or not flt.exact:
        if after is not None:
            query = query.where(_after(column, after, descending))
        return dict_rows(query.order_by(*order).limit(limit))
    # A group term: SQL narrows, Filter.accepts decides; read on until the page is full.
    page: list[dict] = []
    while len(page) < limit:
        window = query if after is None else query.where(_after(column, after, descending))
        rows = dict_rows(window.order_by(*order).limit(max(limit, 200)))
        page += [row for row in rows if flt.accepts(row["error_type"], row["error_message"])]
        if len(rows) < max(limit, 200):
            break
        after = (rows[-1][sort], rows[-1]["id"])
    return page[:limit]


def _after(column, after: tuple[Any, str], descending: bool):
    """Rows past (value, id) in the order (column, id); NULLs of column come last
    descending (as MySQL and SQLite both sort them)."""
    value, last_id = after
    if value is None:
        return column.is_null() & ((Job.id < last_id) if descending else (Job.id > last_id))
    if descending:
        return (column < value) | ((column == value) & (Job.id < last_id)) | column.is_null()
    return (column > value) | ((column == value) & (Job.id > last_id))


def count_jobs(runtime, flt: Filter | None = None) -> int:
    runtime.history_db()
    expression = condition(flt) if flt is not None else None
    if flt is not None and flt.exact:
        return sum(len(rows) for rows in exact_rows(flt, (Job.id,)))
    query = Job.select(fn.COUNT(Job.id))
    if expression is not None:
        query = query.where(expression)
    return query.scalar() or 0


def exact_rows(flt: Filter, columns: tuple = (), chunk: int = 1000):
    """Jobs matching `flt` exactly (its group term too), `chunk` at a time by id:
    the rows carry `columns` (Job fields) as peewee objects."""
    expression = condition(flt)
    wanted = tuple(dict.fromkeys(columns + (Job.id, Job.error_type, Job.error_message)))
    last = ""
    while True:
        query = Job.select(*wanted).where(Job.id > last)
        if expression is not None:
            query = query.where(expression)
        rows = list(query.order_by(Job.id).limit(chunk))
        if not rows:
            return
        last = rows[-1].id
        kept = [row for row in rows if flt.accepts(row.error_type, row.error_message)]
        if kept:
            yield kept


def job_detail(runtime, job_id: str) -> dict | None:
    """A job's row with its attempts, or None for an id history does not have.
    `result` is the task's return value decoded (None when there is none) and
    `has_result` says whether there is one, so a task that returned None is
    told from a job with no result (not succeeded, or from before schema 3).
    An id no job can have (see unknown_jobs) is None without a query."""
    runtime.history_db()
    if not _askable(job_id):
        return None
    job = Job.select().where(Job.id == job_id).dicts().first()
    if job is None:
        return None
    job["args"] = json.loads(job["args"]) if job.get("args") else []
    job["kwargs"] = json.loads(job["kwargs"]) if job.get("kwargs") else {}
    text = job.get("result")
    job["has_result"] = text is not None
    job["result"] = _decoded_result(text) if text is not None else None
    job["attempt_log"] = list(Attempt.select().where(Attempt.job_id == job_id)
                              .order_by(Attempt.attempt).dicts())
    for attempt in job["attempt_log"]:
        attempt.pop("id", None)
    job["requeued_to"] = [row.id for row in Job.select(Job.id)
                          .where(Job.requeued_from == job_id)]
    job.pop("seq", None)
    return job


def _decoded_result(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # written by hand or by a forged record: shown, not trusted
        return text


WAIT_CHUNK = 500  # ids per state query


def unknown_jobs(runtime: Runtime, ids: list[str]) -> list[str]:
    """The ids of `ids` history has no job for, in their order. An id no job can
    have (longer than the column, a lone surrogate) is unknown without a query.

    A job submitted a moment ago may not be in history yet even after catch_up:
    a running consumer's history writer may have taken its `queued` record from
    the submitted outbox and not written it yet. So the ids history lacks are
    looked for in every outbox too, and what is found there is written now
    (history.write_held: idempotent, and definitive, so no grace period is
    needed); known ids cost one look."""
    from tq.history import write_held

    ordered = list(dict.fromkeys(ids))
    missing = [i for i in ordered if _askable(i)]
    catch_up(runtime)
    missing = _absent(runtime, missing)
    if missing:
        try:
            write_held(runtime.control, runtime.history_db(), set(missing), runtime.records)
        except Exception as exc:  # the queue backend down: history's answer stands
            if not queue_unreachable(exc):
                raise
            logger.debug("outboxes not read: %s", exc)
        missing = _absent(runtime, missing)
    absent = set(missing)
    return [i for i in ordered if i in absent or not _askable(i)]


def _absent(runtime: Runtime, ids: list[str]) -> list[str]:
    runtime.history_db()
    known: set[str] = set()
    for start in range(0, len(ids), WAIT_CHUNK):
        known.update(row[0] for row in tuple_rows(
            Job.select(Job.id).where(Job.id.in_(ids[start:start + WAIT_CHUNK]))))
    return [i for i in ids if i not in known]


def _askable(job_id: Any) -> bool:
    """Whether `job_id` could be a job's id: a str that fits the column and that
    a database driver can send (no lone surrogate)."""
    if not isinstance(job_id, str) or not 0 < len(job_id) <= Job.id.max_length:
        return False
    try:
        job_id.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def wait_jobs(runtime: Runtime, ids: list[str], timeout: float | None, poll: float = 1.0,
              clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, dict]:
    """Block until every job of `ids` has ended (a state of models.TERMINAL:
    succeeded, failed, canceled, expired, or requeued, retired for its copy) or
    `timeout` seconds have passed (None: no limit; 0: look once). Returns the
    job_detail of each job that has ended; a job absent from it has not (or
    history does not know it: tell them apart with job_detail).

    Each look goes through the one door (catch_up) and then asks history for the
    states of the jobs still open, WAIT_CHUNK ids a query; looks start 50 ms
    apart and back off to `poll` seconds, so a quick job is seen quickly and a
    long wait costs one query a second. `clock` and `sleep` are for tests."""
    pending = list(dict.fromkeys(ids))
    ended: dict[str, dict] = {}
    deadline = None if timeout is None else clock() + max(0.0, timeout)
    interval = min(0.05, poll)
    while True:
        catch_up(runtime)
        runtime.history_db()
        done: set[str] = set()
        askable = [i for i in pending if _askable(i)]
        for start in range(0, len(askable), WAIT_CHUNK):
            chunk = askable[start:start + WAIT_CHUNK]
            done.update(row[0] for row in tuple_rows(
                Job.select(Job.id).where(Job.id.in_(chunk) & Job.state.in_(sorted(TERMINAL)))))
        for job_id in [i for i in pending if i in done]:
            detail = job_detail(runtime, job_id)
            if detail is not None:
                ended[job_id] = detail
        pending = [i for i in pending if i not in ended]
        if not pending:
            return ended
        if deadline is not None:
            left = deadline - clock()
            if left <= 0:
                return ended
            sleep(min(interval, left))
        else:
            sleep(interval)
        interval = min(poll, interval * 1.5)


def failure_groups(runtime, flt: Filter | None = None, scan_limit: int = 100_000,
                   chunk: int = 5000) -> list[dict]:
    """Failed jobs grouped by exception type and normalised message (tq/groups.py; newest
    `scan_limit` failures; enough to see what is breaking now). Read `chunk` rows at
    a time (keyset on finished_at, id): the driver buffers a whole result set, and
    100,000 failures with their messages held at once cost the console ~80 MB."""
    runtime.history_db()
    query = (Job.select(Job.id, Job.error_type, Job.error_message, Job.finished_at, Job.queue,
                        Job.task).where(Job.state == "failed"))
    expression = condition(flt) if flt is not None else None
    if expression is not None:
        query = query.where(expression)
    groups: dict[tuple[str, str], dict] = {}
    seen, last = 0, None
    while seen < scan_limit:
        page = query
        if last is not None:
            page = page.where(_after(Job.finished_at, last, descending=True))
        rows = tuple_rows(page.order_by(Job.finished_at.desc(), Job.id.desc())
                          .limit(min(chunk, scan_limit - seen)))
        if not rows:
            break
        seen += len(rows)
        last = (rows[-1][3], rows[-1][0])
        for job_id, error_type, message, finished, queue, task in rows:
            if flt is not None and not flt.accepts(error_type, message):
                continue
            key = (error_type or "", normalise_message(message))
            group = groups.get(key)
            if group is None:
                group = groups[key] = {"error_type": key[0], "message": key[1], "count": 0,
                                       "first_seen": finished, "last_seen": finished,
                                       "queues": set(), "tasks": set(), "ids": []}
            group["count"] += 1
            group["queues"].add(queue)
            group["tasks"].add(task)
            if finished is not None:
                group["first_seen"] = min(group["first_seen"] or finished, finished)
                group["last_seen"] = max(group["last_seen"] or finished, finished)
            group["ids"].append(job_id)
    result = sorted(groups.values(), key=lambda g: -g["count"])
    for group in result:
        group["queues"] = sorted(q for q in group["queues"] if q)
        group["tasks"] = sorted(t for t in group["tasks"] if t)
    return result


def list_workers(runtime, now: float | None = None) -> list[dict]:
    """Registered consumers, alive or silent, with the jobs they run. A
    heartbeat's age is measured by the queue backend's clock (see storage), not
    by `now`: this host's clock may disagree with the backend's. Junk in the
    control state is skipped where it is read (tq.control)."""
    lease = runtime.config.consumer.lease
    running: dict[str, list[str]] = {}
    for huey in runtime.queues.values():
        for record in huey.storage.inflight():
            try:
                job_id = huey.deserialize_task(record.data).id
            except Exception:
                job_id = "?"
            running.setdefault(record.worker, []).append(job_id)
    workers = []
    for info in runtime.control.workers():
        age = info["heartbeat_age"]
        workers.append(dict(info, heartbeat_age=round(age, 1), alive=age < lease,
                            running=running.get(info["id"], [])))
    return sorted(workers, key=lambda w: (not w["alive"], w["host"], w["pid"], w["id"]))


def list_periodic(runtime, now: float | None = None) -> list[dict]:
    now = time.time() if now is None else now
    runs = runtime.control.periodic_runs()
    result = []
    try:
        database: Database | None = runtime.history_db()
    except ConfigError:
        database = None
    for spec in periodic_specs(runtime):
        last = runs.get(spec.name)
        outcome = None
        if last and last.get("outcome"):
            outcome = last.get("outcome")  # run in the scheduler, not as a job
        elif last and database is not None:
            try:
                outcome = Job.select(Job.state).where(Job.id == last["job_id"]).scalar()
            except (OperationalError, InterfaceError):
                # The history went away mid-read: the schedule and last run come
                # from the queue backend and still stand; outcomes are unknown.
                database = None
        result.append({"name": spec.name, "schedule": spec.schedule.text, "task": spec.task,
                       "queue": spec.queue or "default",
                       "next_run": spec.schedule.next_run(now),
                       "last_run": last["at"] if last else None,
                       "last_job": last["job_id"] if last else None,
                       "last_outcome": outcome})
    return result


# --- quarantine: what was set aside ---------------------------------------------------
# Two kinds, listed together because an operator asks one question ("what did
# tq refuse?") and acts on both the same way:
#   - message: a queue message a consumer could not run (unsigned, forged, not
#     JSON, unknown task...), kept in the queue backend; id "m<n>";
#   - record: a history record the writer could not write (refused by the
#     database, junk or forged in an outbox), kept in the history database's
#     dead_record table; id "r<n>".
# Each kind is read on its own, so one server being down hides only its kind.

QUARANTINE_KINDS = {"m": "message", "r": "record"}
QUARANTINE_PREVIEW = 160


def parse_quarantine_id(text: str) -> tuple[str, int]:
    """'m12' -> ('message', 12); ValueError with one line otherwise."""
    text = str(text).strip()
    kind = QUARANTINE_KINDS.get(text[:1].lower())
    if kind is None or not text[1:].isdigit() or len(text) > 20:
        raise ValueError(f"{text[:40]!r} is not a quarantine id (m<number> for a message, "
                         "r<number> for a history record; see tq quarantine)")
    return kind, int(text[1:])


def _as_text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    return bytes(data).decode("utf-8", "backslashreplace")


def _message_entry(entry: dict, full: bool = False) -> dict:
    text = _as_text(entry["data"])
    row = {"id": f"m{entry['id']}", "kind": "message", "at": entry["at"],
           "queue": entry["queue"], "source": entry["worker"], "reason": entry["reason"],
           "size": entry["size"]}
    if full:
        row["data"] = text
        row["complete"] = entry["size"] <= len(entry["data"])
    else:
        row["preview"] = text[:QUARANTINE_PREVIEW]
    return row


def _record_entry(dead, full: bool = False) -> dict:
    row = {"id": f"r{dead.id}", "kind": "record", "at": dead.at, "queue": None,
           "source": dead.source, "reason": dead.reason, "size": dead.size}
    if full:
        row["data"] = dead.record
        row["complete"] = dead.size <= len(dead.record)
    else:
        row["preview"] = dead.record[:QUARANTINE_PREVIEW]
    return row


def quarantine_list(runtime, limit: int = 100) -> dict[str, Any]:
    """Newest first, both kinds: {"entries": [...], "unavailable": {kind: why}}."""
    from tq.history import DeadRecord

    entries, unavailable = [], {}
    try:
        entries += [_message_entry(entry) for entry in runtime.control.quarantined(limit)]
    except Exception as exc:
        unavailable["message"] = first_line(exc)
    try:
        database = runtime.history_db()
        with bound(database, [DeadRecord]):
            entries += [_record_entry(dead) for dead in
                        DeadRecord.select().order_by(DeadRecord.id.desc()).limit(limit)]
    except Exception as exc:
        unavailable["record"] = first_line(exc)
    entries.sort(key=lambda row: row["at"] or 0, reverse=True)
    return {"entries": entries[:limit], "unavailable": unavailable}


def quarantine_counts(runtime, queue: bool = True, history: bool = True
                      ) -> dict[str, int | None]:
    """How many of each kind are set aside; None for a kind whose server is down
    (or not asked: queue/history False, known down already)."""
    from tq.history import DeadRecord

    counts: dict[str, int | None] = {"messages": None, "records": None}
    try:
        if queue:
            counts["messages"] = runtime.control.quarantine_count()
    except Exception as exc:
        logger.debug("quarantined messages not counted: %s", exc)
    if not history:
        return counts
    try:
        database = runtime.history_db()
        with bound(database, [DeadRecord]):
            counts["records"] = DeadRecord.select().count()
    except Exception as exc:
        logger.debug("dead records not counted: %s", exc)
    return counts


def quarantine_show(runtime, entry_id: str) -> dict | None:
    """One entry with all that was kept of it (`data`), or None if there is none."""
    from tq.history import DeadRecord

    kind, number = parse_quarantine_id(entry_id)
    if kind == "message":
        entry = runtime.control.quarantine_get(number)
        return None if entry is None else _message_entry(entry, full=True)
    database = runtime.history_db()
    with bound(database, [DeadRecord]):
        dead = DeadRecord.get_or_none(DeadRecord.id == number)
    return None if dead is None else _record_entry(dead, full=True)
