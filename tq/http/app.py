"""`tq serve`: the JSON HTTP API under /api/v1, a front end beside tq.cli.

Every route is a thin shell around tq.submit, tq.ops or tq.queries, the same
functions the CLI verbs call: a job spec is checked once, by tq.jobspec (via
tq.submit.prepare), never again here.

Invariants:

- Auth: `Authorization: Bearer <token>` checked by tq.tokens; GETs need `read`,
  POSTs (submits and actions) `operate`. Every call runs inside
  audit.acting_as(token.actor), so the audit trail names the token. With no
  tokens configured every request is the local operator (`tq serve` then binds
  loopback only). /healthz and /metrics need no token: health checks and
  Prometheus scrapers carry none, and neither says more than `tq metrics`.
- Errors are JSON {"error": "one line"} with 400/401/403/404/409/413/422 (500:
  one line, never a traceback or an exception's class name); headers never
  carry text a request sent.
- Bodies are read as a stream and refused (413) past the limit, whatever
  Content-Length says; JSON with NaN/Infinity or a duplicate key is 400.
- Nothing blocks the event loop: routes doing I/O are sync (FastAPI runs them
  in its threadpool); the body readers are async and hand over with
  run_in_threadpool.
- Cursors are opaque (base64 JSON of sort, order and the last row's key) and
  checked: a cursor that does not decode, or was made for another sort or
  order, is 400.
"""
from __future__ import annotations

import base64
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tq import audit, jobspec, ops, queries, strictjson
from tq.config import BackendUnavailable, HttpSettings
from tq.format import first_line
from tq.migrations import SchemaError
from tq.runtime import Runtime
from tq.tokens import Token, Tokens
from tq.where import FilterError, parse

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
# Body limits: [http] max_body and max_batch_body (tq/config.py), whose defaults these are.
MAX_BODY = HttpSettings.__dataclass_fields__["max_body"].metadata["default"]
MAX_BATCH_BODY = HttpSettings.__dataclass_fields__["max_batch_body"].metadata["default"]
MAX_LIMIT = 1000
MAX_WAIT = 300.0
LOCAL_OPERATOR = Token("local", "operate")  # no tokens configured: the loopback operator


class ApiError(Exception):
    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status = status
        self.line = line


def _one_line(text: str) -> str:
    return (first_line(text) or "error")[:300]


def _error(status: int, line: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": _one_line(line)}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, counted as it streams in: past `limit` bytes is 413."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body larger than {limit:,} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body larger than {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """A request body as strict JSON (tq.strictjson): a job spec object and its
    args array wrap the arguments' MAX_DEPTH levels, a batch array one more."""
    try:
        return strictjson.loads(raw, jobspec.MAX_DEPTH, wrapper_levels=3)
    except strictjson.StrictJsonError as exc:
        raise ApiError(400, str(exc)) from None


def encode_cursor(sort: str, order: str, row: dict[str, Any]) -> str:
    raw = json.dumps([sort, order, row.get(sort), row["id"]], default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str, sort: str, order: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = strictjson.loads(raw, max_depth=2)
    except ValueError:  # bad base64 or a StrictJsonError
        raise ApiError(400, "cursor is not one this server gave") from None
    if not (isinstance(value, list) and len(value) == 4 and value[:2] == [sort, order]
            and isinstance(value[3], str)
            and (value[2] is None or isinstance(value[2], (str, int, float)))
            and not isinstance(value[2], bool)):
        raise ApiError(400, "cursor is not one this server gave (or not for this sort)")
    return value[2], value[3]


def _filter(where: str | None, state: str | None, queue: str | None, task: str | None):
    terms = [where or ""]
    for key, value in (("state", state), ("queue", queue), ("task", task)):
        if value:
            terms.append(f"{key}:{value}")
    try:
        return parse(" ".join(t for t in terms if t))
    except FilterError as exc:
        raise ApiError(400, str(exc)) from None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def create_app(runtime: Runtime | Callable[[], Runtime], tokens: Tokens, *,
               max_body: int = MAX_BODY, max_batch_body: int = MAX_BATCH_BODY) -> FastAPI:
    """The API app. `runtime` is the Runtime every route uses (or a factory called once)."""
    rt: Runtime = runtime if isinstance(runtime, Runtime) else runtime()
    app = FastAPI(title="tq", version="1", docs_url="/docs", redoc_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, exc.line, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0].get("loc", ())) if errors else "request"
        return _error(422, f"{where}: {errors[0].get('msg', 'invalid') if errors else 'invalid'}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        return _error(exc.status_code, detail)

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        if not (queries.queue_unreachable(exc) or queries.history_unreachable(exc)):
            # A driver's refusal of the command itself (WRONGTYPE, a constraint): a
            # defect, whose traceback the server's log needs; the client gets one line.
            log.error("request failed: %s", first_line(str(exc)) or "error", exc_info=exc)
            return _error(500, "internal error (see the server's log)")
        line = _outage_line(rt, exc)
        log.warning("request failed: %s", line)
        return _error(503, line)

    # The drivers' errors get their handler by class: what reaches the catch-all
    # below is re-raised by Starlette after the answer, so uvicorn logged a
    # traceback (and could drop the keep-alive connection) for a server that is
    # down, not a bug. The handler tells the two apart by queries' one rule.
    outages: tuple[type[Exception], ...] = (BackendUnavailable, *_outage_types())
    for outage in outages:
        app.add_exception_handler(outage, _unavailable)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed: %s", first_line(str(exc)) or "error")
        return _error(500, "internal error (see the server's log)")

    def who(request: Request, role: str) -> Token:
        if not tokens:
            return LOCAL_OPERATOR
        token = tokens.bearer(request.headers.get("authorization"))
        if token is None:
            raise ApiError(401, "a valid bearer token is required")
        if not token.may(role):
            raise ApiError(403, f"this token's role cannot {role}")
        return token

    def reader(request: Request) -> Token:
        return who(request, "read")

    def operator(request: Request) -> Token:
        return who(request, "operate")

    # --- submit -------------------------------------------------------------------

    def _submit_one(token: Token, raw: bytes) -> tuple[int, dict[str, Any]]:
        from tq.submit import SubmitError, enqueue, parse_spec_line, prepare
        spec = parse_json(raw)
        if not isinstance(spec, dict):
            raise ApiError(400, "a job must be a JSON object with at least a \"task\" key")
        try:
            job = prepare(rt, parse_spec_line(json.dumps(spec)))
        except SubmitError as exc:
            raise ApiError(422, str(exc)) from None
        with audit.acting_as(token.actor):
            if not enqueue(rt, [job]):
                raise ApiError(409, f"job {jobspec.show(job.job_id, 80)} already exists")
        return 201, {"id": job.job_id, "state": job.record.get("state", "queued"),
                     "queue": job.queue}

    @app.post(PREFIX + "/jobs", status_code=201)
    async def submit_job(request: Request) -> JSONResponse:
        """One job: the fields of `tq submit` (task, args, kwargs, queue, priority, ...)."""
        token = operator(request)
        raw = await read_body(request, max_body)
        status, body = await run_in_threadpool(_submit_one, token, raw)
        return JSONResponse(body, status_code=status)

    def _submit_batch(token: Token, raw: bytes, ndjson: bool, if_exists: str) -> dict:
        from tq.submit import SubmitError, submit_lines
        if ndjson:
            lines = list(enumerate(raw.split(b"\n"), 1))
        else:
            try:  # the array is one level more than a line's spec
                items = strictjson.loads(raw, jobspec.MAX_DEPTH, wrapper_levels=4)
            except strictjson.StrictJsonError as exc:
                raise ApiError(400, str(exc)) from None
            if not isinstance(items, list):
                raise ApiError(400, "a batch is a JSON array of jobs (or JSON lines)")
            lines = [(n, json.dumps(item).encode()) for n, item in enumerate(items, 1)]
        try:  # each line parsed strictly (tq.strictjson) and reported by position
            with audit.acting_as(token.actor):
                report = submit_lines(rt, lines, if_exists=if_exists)
        except SubmitError as exc:
            raise ApiError(422, str(exc)) from None
        errors = sorted(report.bad)
        return {"jobs": report.jobs, "submitted": report.submitted, "skipped": report.skipped,
                "bad": [{"position": n, "error": why} for n, why in errors],
                "outage": report.outage,
                "unsure": list(report.unsure) if report.unsure else None}

    @app.post(PREFIX + "/jobs/batch")
    async def submit_batch(request: Request, if_exists: str = "error") -> JSONResponse:
        """A JSON array of jobs, or JSON lines (Content-Type application/x-ndjson):
        each item on its own, reported by position (1-based); the good ones go in."""
        token = operator(request)
        raw = await read_body(request, max_batch_body)
        ndjson = "ndjson" in request.headers.get("content-type", "")
        body = await run_in_threadpool(_submit_batch, token, raw, ndjson, if_exists)
        return JSONResponse(body, status_code=200 if not body["outage"] else 503)

    # --- reads ----------------------------------------------------------------------

    @app.get(PREFIX + "/jobs")
    def list_jobs(request: Request, where: str | None = None, state: str | None = None,
                  queue: str | None = None, task: str | None = None,
                  sort: str = "enqueued_at", order: str = "desc", limit: int = 50,
                  cursor: str | None = None) -> Any:
        """Jobs matching the console's filter language, a page at a time (`next`)."""
        reader(request)
        if sort not in queries.SORTABLE:
            raise ApiError(400, f"cannot sort by {jobspec.show(sort)} "
                                f"(choose from {', '.join(queries.SORTABLE)})")
        if order not in ("asc", "desc"):
            raise ApiError(400, "order is asc or desc")
        if not 1 <= limit <= MAX_LIMIT:
            raise ApiError(400, f"limit is 1 to {MAX_LIMIT}")
        flt = _filter(where, state, queue, task)
        after = decode_cursor(cursor, sort, order) if cursor else None
        queries.catch_up(rt)
        rows = queries.list_jobs(rt, flt, sort=sort, descending=order == "desc",
                                 limit=limit, after=after)
        nxt = encode_cursor(sort, order, rows[-1]) if len(rows) == limit else None
        return {"total": queries.count_jobs(rt, flt), "jobs": _jsonable(rows), "next": nxt}

    def _detail(job_id: str) -> dict:
        # A job just submitted may be in flight to history in a consumer's writer,
        # where catch_up cannot see it: queries.unknown_jobs holds the rule for
        # when an id is unknown, as for tq wait and tq.result.
        queries.catch_up(rt)
        detail = queries.job_detail(rt, job_id)
        if detail is None and not queries.unknown_jobs(rt, [job_id]):
            detail = queries.job_detail(rt, job_id)
        if detail is None:
            raise ApiError(404, f"no job {jobspec.show(job_id, 80)}")
        return _jsonable(detail)

    @app.get(PREFIX + "/jobs/{job_id}")
    def show_job(request: Request, job_id: str) -> Any:
        """State, attempts (times, errors), traceback and result of one job."""
        reader(request)
        return _detail(job_id)

    @app.get(PREFIX + "/jobs/{job_id}/result")
    def job_result(request: Request, job_id: str, wait: float = 0.0) -> Any:
        """The job's outcome, waiting up to `wait` seconds for it to end."""
        reader(request)
        if not 0 <= wait <= MAX_WAIT:
            raise ApiError(400, f"wait is 0 to {MAX_WAIT:g} seconds")
        _detail(job_id)  # 404 first
        ended = queries.wait_jobs(rt, [job_id], wait).get(job_id)
        if ended is None:
            return JSONResponse({"id": job_id, "state": _detail(job_id)["state"],
                                 "done": False}, status_code=202)
        detail = _jsonable(ended)
        return {"id": job_id, "state": detail["state"], "done": True,
                "result": detail.get("result"), "has_result": detail.get("has_result"),
                "error": detail.get("error_message"), "error_type": detail.get("error_type")}

    @app.get(PREFIX + "/queues")
    def list_queues(request: Request) -> Any:
        reader(request)
        return _jsonable(queries.status(rt))

    @app.get(PREFIX + "/workers")
    def list_workers(request: Request) -> Any:
        reader(request)
        return {"workers": _jsonable(queries.list_workers(rt))}

    @app.get(PREFIX + "/periodic")
    def list_periodic(request: Request) -> Any:
        reader(request)
        return {"periodic": _jsonable(queries.list_periodic(rt))}

    @app.get(PREFIX + "/stats")
    def stats(request: Request, since: str = "1h", by: str = "task") -> Any:
        from tq.stats import event_stats, task_stats
        from tq.where import parse_time
        reader(request)
        now = time.time()
        try:
            start = parse_time(since, now)
        except FilterError as exc:
            raise ApiError(400, str(exc)) from None
        try:
            rows = (event_stats(rt, start, now) if by == "type"
                    else task_stats(rt, start, now, by))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return {"since": start, "until": now, "by": by, "rows": _jsonable(rows)}

    @app.get(PREFIX + "/audit")
    def audit_entries(request: Request, limit: int = 200) -> Any:
        reader(request)
        if not 1 <= limit <= MAX_LIMIT:
            raise ApiError(400, f"limit is 1 to {MAX_LIMIT}")
        return {"entries": _jsonable(audit.entries(rt.history_db(), limit=limit))}

    @app.get(PREFIX + "/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus text (no token: scrapers carry none)."""
        from tq.metrics import exposition
        return PlainTextResponse(exposition(rt),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get(PREFIX + "/healthz")
    def healthz() -> JSONResponse:
        """200 when the queue backend and history answer, else 503 naming which."""
        down = []
        try:
            rt.check_queue_backend()
        except Exception:
            down.append("queue backend")
        try:
            rt.history_db().execute_sql("SELECT 1")
        except SchemaError:
            down.append("history (no tq schema of this version: tq migrate)")
        except Exception:
            down.append("history")
        if down:
            return _error(503, f"unreachable: {', '.join(down)}")
        return JSONResponse({"ok": True})

    # --- actions ----------------------------------------------------------------------

    def _act(token: Token, action: str, ids: list[str] | None, flt: Any) -> dict | JSONResponse:
        with audit.acting_as(token.actor):
            result = {"requeue": ops.requeue, "cancel": ops.cancel,
                      "run_now": ops.run_now}[action](rt, ids=ids, flt=flt)
        body = _jsonable(result.as_dict())
        body["line"] = result.line()
        if result.error:
            # Stopped (before or partway): not a success. 503 when a server did not
            # answer, 500 for a defect; the body says what was done, if anything.
            return JSONResponse(dict(body, error=result.line()),
                                status_code=503 if result.outage else 500)
        return body

    for path, action in (("requeue", "requeue"), ("cancel", "cancel"), ("run-now", "run_now")):
        def by_id(request: Request, job_id: str, action: str = action) -> Any:
            token = operator(request)
            _detail(job_id)  # 404 for an unknown id
            return _act(token, action, [job_id], None)
        by_id.__name__ = f"{action}_job"
        app.post(PREFIX + "/jobs/{job_id}/" + path, summary=f"{path} one job")(by_id)

    for path in ("requeue", "cancel"):
        async def bulk(request: Request, action: str = path) -> Any:
            token = operator(request)
            spec = parse_json(await read_body(request, max_body)) or {}
            if not isinstance(spec, dict) or set(spec) - {"where", "state", "queue", "task",
                                                          "dry_run"}:
                raise ApiError(400, "give an object of where, state, queue, task, dry_run")
            for key in ("where", "state", "queue", "task"):
                if spec.get(key) is not None and not isinstance(spec[key], str):
                    raise ApiError(400, f"{key} is a string")
            flt = _filter(spec.get("where"), spec.get("state"), spec.get("queue"),
                          spec.get("task"))
            if spec.get("dry_run"):
                preview = await run_in_threadpool(ops.preview, rt, action, None, flt)
                return dict(_jsonable(preview.as_dict()), line=preview.line())
            return await run_in_threadpool(_act, token, action, None, flt)
        bulk.__name__ = f"bulk_{path}"
        app.post(PREFIX + "/jobs/" + path, summary=f"{path} by filter (dry_run counts)")(bulk)

    def _pause(request: Request, queue: str, task: str | None, resume: bool) -> Any:
        from tq.runtime import UnknownQueue
        token = operator(request)
        try:
            with audit.acting_as(token.actor):
                if resume:
                    ops.resume(rt, queue, task)
                else:
                    ops.pause(rt, queue, task)
        except (UnknownQueue, ops.ActionError) as exc:
            raise ApiError(404 if isinstance(exc, UnknownQueue) else 400,
                           str(exc.args[0]) if exc.args else "unknown queue") from None
        return {"queue": queue, "task": task, "paused": not resume}

    @app.post(PREFIX + "/queues/{queue}/pause")
    def pause(request: Request, queue: str, task: str | None = None) -> Any:
        return _pause(request, queue, task, False)

    @app.post(PREFIX + "/queues/{queue}/resume")
    def resume(request: Request, queue: str, task: str | None = None) -> Any:
        return _pause(request, queue, task, True)

    return app


def _outage_line(rt: Runtime, exc: Exception) -> str:
    """Which server did not answer, in queries.outage_line's words."""
    import peewee
    import redis
    if isinstance(exc, (redis.RedisError, sqlite3.Error)):  # the queue backend's drivers
        return queries.outage_line(rt, "queue", exc)
    if isinstance(exc, (BackendUnavailable, peewee.OperationalError, peewee.InterfaceError)):
        return queries.outage_line(rt, "history", exc)
    return f"a server did not answer: {first_line(str(exc), 200) or 'no answer'}"


def _outage_types() -> tuple[type[Exception], ...]:
    """The drivers' exception classes, whose handler tells an outage from a defect
    (tq.queries' rule)."""
    import peewee
    import redis
    return (redis.RedisError, sqlite3.Error, OSError, peewee.OperationalError,
            peewee.InterfaceError)
