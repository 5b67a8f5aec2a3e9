"""The audit trail: every operator action, who did it, where, when, on what, how many.

An entry is the action, the OS user (or a caller-given name such as an API
token's), the host, the time, the filter or group as text, the count, the
outcome (done / partly / failed / nothing) and every job id it touched, kept
in full in the `audit_job` child table.

Entries travel like job records: as records of kind "audit" through the queue
backend's SUBMITTED outbox (see tq/storage/), which the history writer (or the
next `catch_up`) writes to the database. So an action taken while the history
database is down (a pause, say) is audited once it is back. A record carries
the entry's `uid`, and writing is insert-or-ignore on it and on (audit, job),
so an outbox replayed twice stores one entry. A long id list is cut into
records of ID_CHUNK ids that share the uid.
"""
from __future__ import annotations

import contextlib
import getpass
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from tq.models import Audit, AuditJob, bound

if TYPE_CHECKING:
    from peewee import Database

ID_CHUNK = 1000
TEXT_LIMIT = 10_000  # a filter or reason longer than this is cut (with "…")


# Who a process acts as when no `acting_as` block says (the console `tq web` starts
# for a token's browser runs with this set to the token's `api:<name>`).
AUDIT_USER_ENV = "TQ_AUDIT_USER"

_actor: ContextVar[str | None] = ContextVar("tq_audit_actor", default=None)


@contextlib.contextmanager
def acting_as(name: str) -> Iterator[None]:
    """Inside this block (this thread or task), actions are audited as `name`
    (an API token's `api:<name>`) instead of the OS user."""
    reset = _actor.set(name[:64])
    try:
        yield
    finally:
        _actor.reset(reset)


def who() -> str:
    """Who is acting: the `acting_as` name, else the OS user."""
    named = _actor.get() or os.environ.get(AUDIT_USER_ENV, "").strip()
    if named:
        return named[:64]
    try:
        return getpass.getuser()[:64]
    except Exception:  # no user name in the environment (a bare container)
        return "?"


def records(action: str, target: str, count: int, ids: Iterable[str] = (), *,
            outcome: str = "done", detail: str | None = None, user: str | None = None,
            host: str = "", at: float | None = None) -> list[dict[str, Any]]:
    """The outbox records of one audit entry (one per ID_CHUNK ids, at least one)."""
    id_list = list(dict.fromkeys(ids))
    head = {"kind": "audit", "uid": str(uuid.uuid4()), "at": time.time() if at is None else at,
            "user": (user or who())[:64], "host": host[:128], "action": action[:32],
            "target": _cut(target), "count": int(count), "outcome": outcome,
            "detail": _cut(detail) if detail else None}
    chunks = [id_list[i:i + ID_CHUNK] for i in range(0, len(id_list), ID_CHUNK)] or [[]]
    return [dict(head, part=index, ids=chunk) for index, chunk in enumerate(chunks)]


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT - 1] + "…"


def write(database: Database, entries: list[dict[str, Any]]) -> None:
    """Store audit records (inside the caller's transaction); replays change nothing."""
    with bound(database, [Audit, AuditJob]):
        for entry in entries:
            _write_one(entry)


def _write_one(entry: dict[str, Any]) -> None:
    row = {name: entry.get(name) for name in ("uid", "at", "user", "host", "action", "target",
                                              "count", "outcome", "detail")}
    Audit.insert(**row).on_conflict_ignore().execute()  # INSERT IGNORE / OR IGNORE
    if entry.get("ids"):
        audit_id = Audit.select(Audit.id).where(Audit.uid == entry["uid"]).scalar()
        ids = [job_id for job_id in entry["ids"] if isinstance(job_id, str)]
        for start in range(0, len(ids), 500):
            AuditJob.insert_many([{"audit_id": audit_id, "job_id": job_id[:64]}
                                  for job_id in ids[start:start + 500]]
                                 ).on_conflict_ignore().execute()


def entries(database: Database, since: float | None = None,
            limit: int = 200) -> list[dict[str, Any]]:
    """Audit entries, newest first, each with its ids (`ids`)."""
    query = Audit.select().order_by(Audit.at.desc(), Audit.id.desc()).limit(limit)
    if since is not None:
        query = query.where(Audit.at >= since)
    # peewee's stubs type .dicts() and .tuples() as the model query; they yield plain rows.
    rows = list(cast(Iterable[dict[str, Any]], query.dicts()))
    by_id = {row["id"]: row for row in rows}
    for row in rows:
        row["ids"] = []
    keys = list(by_id)
    for start in range(0, len(keys), 500):
        pairs = (AuditJob.select(AuditJob.audit_id, AuditJob.job_id)
                 .where(AuditJob.audit_id.in_(keys[start:start + 500]))
                 .order_by(AuditJob.id).tuples())
        for audit_id, job_id in cast(Iterable[tuple[int, str]], pairs):
            by_id[audit_id]["ids"].append(job_id)
    return rows
