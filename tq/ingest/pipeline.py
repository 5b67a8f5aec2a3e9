"""One dropped file -> jobs: claim, read, route, enqueue in batches, checkpoint, file away.

    claim     rename into processing/ (claims.py): from here the file is ours alone
    inspect   one streaming pass: size, SHA-256, unreadable? (formats.py)
    record    an IngestedFile row; same SHA-256 already ingested -> duplicate
    read      events stream one at a time; each is routed by its type field
    enqueue   per batch of [ingest] batch_size: tq.submit.enqueue (ids enqueued once)
              (one pipeline/transaction per queue, with the `queued` history records),
              bad lines appended to the file's errors file, then the checkpoint
    file away history/YYYY/MM/DD/ (UTC), or rejected/ with a .reason file;
              the errors file goes to rejected/<name>.errors.jsonl

Exactly once. A job's id is `{job_prefix}-{position}`, where job_prefix comes
from the file's SHA-256 and position is the event's line (or array item)
number, so the same event of the same content always gets the same id. The
checkpoint is the position of the last record of the last committed batch.
A crash anywhere in a batch (before, during or after the queue write, or
before the checkpoint) leaves the checkpoint at the previous batch; on resume
the batch is prepared again with the same ids and the queue write skips the
ones already enqueued (dedupe); their `queued` history records were written
in the same atomic step as their messages, so none is missing. Bad lines of
that batch appended to the errors file before the crash are trimmed on resume. So no event is lost and none is
enqueued twice. `again=True` (tq ingest --again) gives the file a new prefix,
so its events become new jobs.

Routing: an event's type (field `[ingest] type_field`) selects a Route from
`[routes]`, else the "*" route, else the line is rejected. The task gets the
event as the keyword argument `event`; a task that declares parameters named
`source` or `event_type` (like the built-in tq.tasks.events.store_event) also
gets the file name and the event's type.
"""
from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tq import registry
from tq.config import ConfigError
from tq.ingest.claims import (
    Folders,
    Holding,
    Toucher,
    claim,
    claim_token,
    history_folder,
    original_name,
    place,
    refusal,
    take_over,
)
from tq.ingest.formats import Bad, Unreadable, inspect, read_events
from tq.models import IngestedFile
from tq.submit import Prepared, SubmitError, content_prefix, enqueue, position_id, prepare

if TYPE_CHECKING:
    from tq.runtime import Runtime

logger = logging.getLogger("tq.ingest")


@dataclass
class Result:
    name: str
    outcome: str  # done | duplicate | rejected | taken (by another watcher) | stopped
    accepted: int = 0
    rejected: int = 0
    path: str | None = None  # where the file is now
    errors_path: str | None = None
    reason: str | None = None
    file_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        text = f"{self.name}: {self.outcome}"
        if self.outcome in ("done", "stopped") or self.accepted or self.rejected:
            text += (f", {self.accepted} job{'s' if self.accepted != 1 else ''}, "
                     f"{self.rejected} bad line{'s' if self.rejected != 1 else ''}")
        if self.reason:
            text += f" ({self.reason})"
        return text


def check_routes(runtime: Runtime) -> None:
    """Fail before taking any file when a route names a task that cannot take events."""
    for event_type, route in runtime.config.routes.items():
        definition = registry.TASKS.get(route.task)
        if definition is None:
            raise ConfigError(f"[routes] {event_type}: unknown task {route.task!r} "
                              "(is its module in [tasks] modules?)")
        params = definition.signature.parameters
        if "event" not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            raise ConfigError(f"[routes] {event_type}: task {route.task} has no `event` "
                              "parameter")


def ingest_file(runtime: Runtime, path: str | os.PathLike, again: bool = False,
                stop: threading.Event | None = None) -> Result:
    """Claim one file (from the inbox or anywhere) and ingest it."""
    folders = Folders.from_config(runtime.config)
    folders.create()
    source = Path(path)
    token = uuid.uuid4().hex
    with Holding(token):
        claimed = claim(source, folders, token)
        if claimed is None:
            return Result(source.name, "taken", reason="another watcher took it first")
        return _ingest_claim(runtime, claimed, folders, again, stop, source.name)


def resume_claim(runtime: Runtime, path: Path, folders: Folders,
                 stop: threading.Event | None = None) -> Result | None:
    """Take over an orphaned claim and finish it from its checkpoint."""
    claimed = take_over(path)
    if claimed is None:
        return None
    return ingest_claim(runtime, claimed, folders, stop=stop)


def ingest_claim(runtime: Runtime, path: Path, folders: Folders, again: bool = False,
                 stop: threading.Event | None = None) -> Result:
    """Ingest a file already claimed into processing/ (new, or resumed after a crash)."""
    with Holding(claim_token(path.name)):
        return _ingest_claim(runtime, path, folders, again, stop)


def _ingest_claim(runtime: Runtime, path: Path, folders: Folders, again: bool,
                  stop: threading.Event | None, name: str | None = None) -> Result:
    runtime.migrate_history()  # a writer: the schema current, the models bound to it
    name = name or original_name(path.name)  # a claim keeps only the end of a long name
    token = claim_token(path.name)
    errors = folders.processing / f".errors-{token}.jsonl"
    row = (IngestedFile.select().where(IngestedFile.claim == token)
           .order_by(IngestedFile.id.desc()).first())
    if row is not None and row.outcome != "processing":
        return _file_away(folders, row, path, errors)  # finished, then a crash before the move
    if row is None:
        row = _new_row(path, name, token, again)
        if row.outcome != "processing":
            return _file_away(folders, row, path, errors)
    elif row.checkpoint:
        logger.info("%s: resuming after line (or item) %d", name, row.checkpoint)
    return _read(runtime, folders, row, path, errors, stop)


def _new_row(path: Path, name: str, token: str, again: bool) -> IngestedFile:
    now = time.time()
    fields: dict[str, Any] = dict(name=name[:255], path=str(path)[:1024], claim=token,
                                  started_at=now, size=0, sha256="")
    mode = os.lstat(path).st_mode
    reason = refusal(name) or (
        None if stat.S_ISREG(mode) else
        "symlink refused (not followed)" if stat.S_ISLNK(mode) else "not a regular file")
    if reason is None:
        info = inspect(path, name, tick=Toucher(path))
        fields.update(size=info.size, sha256=info.sha256)
        reason = info.problem
    if reason is not None:
        return IngestedFile.create(**fields, outcome="rejected", reason=reason, finished_at=now)
    if not again:
        earlier = (IngestedFile.select()
                   .where((IngestedFile.sha256 == fields["sha256"])
                          & IngestedFile.outcome.in_(("done", "processing")))
                   .order_by(IngestedFile.id).first())
        if earlier is not None:
            return IngestedFile.create(
                **fields, outcome="duplicate", finished_at=now,
                reason=f"same content as {earlier.name!r} (file #{earlier.id}); "
                       "tq ingest --again to ingest it anyway")
    # again: new ids (the claim token survives a take-over), so dedupe lets them through
    prefix = content_prefix("ev", str(fields["sha256"]), token if again else None)
    return IngestedFile.create(**fields, job_prefix=prefix)


class _Router:
    """Turns decoded events into prepared jobs, or says why it cannot."""

    def __init__(self, runtime: Runtime, source: str, job_prefix: str) -> None:
        self.runtime = runtime
        self.routes = runtime.config.routes
        self.default = self.routes.get("*")
        self.type_field = runtime.config.ingest.type_field
        self.source = source
        self.job_prefix = job_prefix
        self._extras: dict[str, tuple[bool, bool]] = {}
        self.now = time.time()

    def extras(self, task: str) -> tuple[bool, bool]:
        if task not in self._extras:
            params = registry.TASKS[task].signature.parameters
            self._extras[task] = ("source" in params, "event_type" in params)
        return self._extras[task]

    def job(self, position: int, event: dict) -> Prepared | str:
        event_type = event.get(self.type_field)
        if event_type is None or event_type == "":
            return f"missing type field {self.type_field!r}"
        if not isinstance(event_type, str):
            return f"type field {self.type_field!r} must be a string"
        route = self.routes.get(event_type) or self.default
        if route is None:
            return f"no route for type {event_type[:100]!r} and no default route"
        kwargs: dict[str, Any] = {"event": event}
        wants_source, wants_type = self.extras(route.task)
        if wants_source:
            kwargs["source"] = self.source
        if wants_type:
            kwargs["event_type"] = event_type
        spec: dict[str, Any] = {"task": route.task, "queue": route.queue, "kwargs": kwargs,
                                "id": position_id(self.job_prefix, position)}
        if route.priority is not None:
            spec["priority"] = route.priority
        try:
            return prepare(self.runtime, spec, now=self.now)
        except SubmitError as exc:  # tq.jobspec's reason, one line
            return str(exc)


def _read(runtime: Runtime, folders: Folders, row: IngestedFile, path: Path, errors: Path,
          stop: threading.Event | None) -> Result:
    config = runtime.config.ingest
    assert row.job_prefix is not None  # set on every row left "processing" (_new_row)
    router = _Router(runtime, row.name, row.job_prefix)
    items = row.name.lower().removesuffix(".gz").endswith(".json")  # a JSON array's
    where = "item" if items else "line"  # what a position counts
    _trim_errors(errors, where, row.checkpoint)
    toucher = Toucher(path)
    jobs: list[Prepared] = []
    bad: list[dict] = []
    last = row.checkpoint
    try:
        for position, value in read_events(path, row.name, config.max_event_bytes):
            if position <= row.checkpoint:
                continue
            last = position
            outcome = router.job(position, value) if not isinstance(value, Bad) else value
            if isinstance(outcome, Prepared):
                jobs.append(outcome)
            else:
                reason, text = (outcome.reason, outcome.text) if isinstance(outcome, Bad) \
                    else (outcome, "")
                bad.append({where: position, "reason": reason, "text": text})
            if len(jobs) + len(bad) >= config.batch_size:
                _commit(runtime, row, jobs, bad, last, errors)
                jobs, bad = [], []
                router.now = time.time()
                toucher()
                if stop is not None and stop.is_set():
                    return _result(row, "stopped")
        _commit(runtime, row, jobs, bad, last, errors)
        row.outcome = "done"
    except Unreadable as exc:
        # A .json that is not an array/object, a bad CSV header, a read error: the
        # file is rejected; jobs already enqueued from it stay (and are counted).
        _commit(runtime, row, jobs, bad, last, errors)
        row.outcome, row.reason = "rejected", str(exc)
    row.finished_at = time.time()
    row.save(only=[IngestedFile.outcome, IngestedFile.reason, IngestedFile.finished_at])
    return _file_away(folders, row, path, errors)


def _commit(runtime: Runtime, row: IngestedFile, jobs: list[Prepared], bad: list[dict], last: int,
            errors: Path) -> None:
    """One batch: jobs to the queues (+ queued records), bad lines to the errors file,
    then the checkpoint. See the module docstring for why this order is safe."""
    if jobs:
        # A batch re-sent after a crash: dedupe skips the jobs the queue had,
        # whose history records went with them the first time.
        enqueue(runtime, jobs)
    if bad:
        with open(errors, "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(entry, ensure_ascii=False) + "\n" for entry in bad)
    row.accepted += len(jobs)
    row.rejected += len(bad)
    row.checkpoint = last
    (IngestedFile.update(accepted=row.accepted, rejected=row.rejected, checkpoint=last)
     .where(IngestedFile.id == row.id).execute())


def _trim_errors(errors: Path, where: str, checkpoint: int) -> None:
    """Drop errors a crashed run wrote past its last checkpoint (they come again)."""
    if not errors.exists():
        return
    kept = errors.with_name(errors.name + ".trim")
    with open(errors, encoding="utf-8") as source, open(kept, "w", encoding="utf-8") as target:
        for line in source:
            try:
                if json.loads(line)[where] <= checkpoint:
                    target.write(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by the crash
    os.replace(kept, errors)


def _file_away(folders: Folders, row: IngestedFile, path: Path, errors: Path) -> Result:
    when = row.finished_at or time.time()
    if errors.exists():
        row.errors_path = str(place(errors, folders.rejected, f"{row.name}.errors.jsonl"))
    if os.path.lexists(path):
        if row.outcome == "rejected":
            target = place(path, folders.rejected, row.name)
            target.with_name(target.name + ".reason").write_text(
                (row.reason or "") + "\n", encoding="utf-8")
        else:
            target = place(path, history_folder(folders, when), row.name)
        row.path = str(target)[:1024]
    row.save(only=[IngestedFile.path, IngestedFile.errors_path])
    return _result(row, row.outcome)


def _result(row: IngestedFile, outcome: str) -> Result:
    return Result(row.name, outcome, row.accepted, row.rejected, row.path, row.errors_path,
                  row.reason, row.id)
