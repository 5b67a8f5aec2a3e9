"""Reading the control state: every stored entry is untrusted.

tq's control state (consumer heartbeats, in-flight records, pause flags,
periodic run info) lives in the queue backend, where anything that reaches
it can write anything. Each entry is parsed here on its own, into the shape
its readers rely on (right types, finite numbers, bounded text). A malformed
entry is skipped and logged once per process, not on every refresh, so one
junk entry never hides the good ones beside it and never stops `tq status`,
`tq workers`, the console or recovery. What is done with a malformed entry
beyond skipping it (recovery moves a malformed in-flight record aside to the
quarantine) is the caller's choice.
"""
from __future__ import annotations

import logging
import math
from typing import Any

from tq import strictjson

logger = logging.getLogger("tq.control")

MAX_ENTRY = 64 * 1024  # bytes: larger control values are not tq's
MAX_NAME = 255  # characters of an id, host, queue or task name
CONTROL_DEPTH = 32  # nesting of a control value: tq's own are 2 or 3 levels deep
_REPORTED_MAX = 10_000
_reported: set[tuple[str, str]] = set()


def report(what: str, key: Any, why: str) -> None:
    """Log a malformed entry once per process (per kind of entry and key)."""
    name = key if isinstance(key, str) else repr(key)
    name = name[:80]
    if (what, name) in _reported:
        return
    if len(_reported) < _REPORTED_MAX:
        _reported.add((what, name))
    logger.warning("malformed %s %r skipped: %s", what, name, why)


def text(raw: Any, limit: int = MAX_NAME) -> str | None:
    """A stored name as str: UTF-8, at most `limit` characters; else None."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(raw, str) or not raw or len(raw) > limit:
        return None
    try:
        raw.encode("utf-8")  # lone surrogates
    except UnicodeEncodeError:
        return None
    return raw


def finite(value: Any) -> float | None:
    """A number that is neither NaN nor infinite (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, bytes)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def json_object(raw: Any, what: str, key: Any) -> dict[str, Any] | None:
    """A stored JSON object, or None (reported) when it is not one."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)
        if len(raw) > MAX_ENTRY:
            report(what, key, f"{len(raw)} bytes")
            return None
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            report(what, key, "not UTF-8")
            return None
    if not isinstance(raw, str):
        report(what, key, f"a {type(raw).__name__}, not JSON text")
        return None
    if len(raw) > MAX_ENTRY:
        report(what, key, f"{len(raw)} characters")
        return None
    try:
        value = strictjson.loads(raw, max_depth=CONTROL_DEPTH)
    except strictjson.StrictJsonError as exc:
        report(what, key, str(exc)[:120])
        return None
    if not isinstance(value, dict):
        report(what, key, f"JSON {type(value).__name__}, not an object")
        return None
    return value


def heartbeat(worker_id: Any, info: Any, beat: Any, now: float) -> dict[str, Any] | None:
    """A consumer as `tq workers` shows it. Liveness is `beat`, the queue
    backend's time of its last heartbeat (never a time the consumer's host
    wrote); the rest is shown only, so a field of the wrong type is replaced,
    not a reason to lose the consumer. None when id or beat are malformed."""
    name = text(worker_id)
    if name is None:
        report("heartbeat", worker_id, "consumer id is not a short UTF-8 name")
        return None
    beat = finite(beat)
    if beat is None or beat > now + 60:
        report("heartbeat", name, "no valid heartbeat time")
        return None
    if not isinstance(info, dict):
        info = json_object(info, "heartbeat", name) or {}
    host = text(info.get("host"))
    pid = info.get("pid")
    queues = info.get("queues")
    workers = info.get("workers")
    worker_type = text(info.get("worker_type"))
    started = finite(info.get("started"))
    return {"id": name, "host": host if host is not None else "?",
            "pid": pid if isinstance(pid, int) and not isinstance(pid, bool)
            and 0 <= pid < 2 ** 32 else 0,
            "queues": [q for q in queues if text(q) is not None][:100]
            if isinstance(queues, list) else [],
            "workers": workers if isinstance(workers, int) and not isinstance(workers, bool)
            and 0 <= workers < 1_000_000 else 0,
            "worker_type": worker_type if worker_type is not None else "?",
            "started": started, "beat": beat, "heartbeat_age": max(0.0, now - beat)}


def pause_info(target: Any, info: Any) -> tuple[str, dict[str, Any]] | None:
    """A pause flag: its target counts whatever its info holds (the claim
    honours the flag by its name alone); junk info reads as {}."""
    name = text(target)
    if name is None:
        report("pause flag", target, "target is not a short UTF-8 name")
        return None
    value = json_object(info, "pause flag", name)
    return name, value if value is not None else {}


def periodic_run(name: Any, info: Any) -> tuple[str, dict[str, Any]] | None:
    """The last run of a periodic task: {"at", "job_id", "tick", "by"}, and "outcome"
    for a built-in run in the scheduler (its job_id names the run, not a job)."""
    key = text(name)
    if key is None:
        report("periodic run", name, "name is not a short UTF-8 name")
        return None
    value = json_object(info, "periodic run", key)
    if value is None:
        return None
    at, job_id = finite(value.get("at")), text(value.get("job_id"))
    if at is None or job_id is None:
        report("periodic run", key, "no valid 'at' and 'job_id'")
        return None
    tick = value.get("tick")
    run = {"at": at, "job_id": job_id, "by": text(value.get("by")),
           "tick": tick if isinstance(tick, int) and not isinstance(tick, bool) else None}
    if value.get("outcome") in ("succeeded", "failed"):
        run["outcome"] = value["outcome"]
    return key, run


def inflight(worker: Any, priority: Any, taken: Any) -> tuple[str, int, float] | str:
    """The fields of an in-flight record as (worker, priority, taken), or why not."""
    name = text(worker)
    if name is None:
        return "consumer id is not a short UTF-8 name"
    number = finite(priority)
    if number is None or abs(number) > 2 ** 53:
        return "priority is not a number"
    when = finite(taken)
    if when is None:
        return "claim time is not a number"
    return name, int(number), when


def as_bytes(value: Any) -> bytes:
    """Whatever a junk row holds, as bytes to keep in the quarantine."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return b"" if value is None else repr(value).encode()
