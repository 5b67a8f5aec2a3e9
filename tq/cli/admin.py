"""`tq audit`, `tq quarantine`, `tq migrate`, `tq tui`: the operator's tools around the jobs.

The audit trail (who did what), what tq set aside (quarantine), the history
schema, and the live console.
"""
from __future__ import annotations

import argparse

from tq.cli.common import (
    EXIT_USAGE,
    MAX_LIMIT,
    MAX_LINE_ERRORS_SHOWN,
    CliError,
    err,
    make_runtime,
    new_table,
    out,
    print_json,
    whole,
)
from tq.format import fmt_time
from tq.text import literal, markup, visible


def cmd_audit(args: argparse.Namespace) -> int:
    from tq import audit
    from tq.where import parse_time

    runtime = make_runtime(args, check_backend=False)
    since = parse_time(args.since) if args.since else None
    from tq.queries import catch_up

    catch_up(runtime)  # entries still in the outbox (made while the database was down)
    rows = audit.entries(runtime.history_db(), since=since, limit=args.limit)
    if args.json:
        print_json(rows)
        return 0
    table = new_table("when", "user", "host", "action", "target", "count", "outcome",
                      right=("count",))
    for row in rows:
        outcome = row["outcome"] or ""
        if row["detail"]:
            outcome += f": {row['detail']}"
        table.add_row(fmt_time(row["at"]), visible(row["user"]), visible(row["host"]),
                      visible(row["action"]), visible(row["target"] or ""),
                      f"{row['count']:,}", visible(outcome))
    out.print(table)
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    """What tq set aside: list, show, requeue, purge (see queries/ops "quarantine")."""
    from tq import ops
    from tq.queries import quarantine_list, quarantine_show

    runtime = make_runtime(args, check_backend=False)
    action, ids = args.action, args.ids
    if action not in ("list", "show", "requeue", "purge"):
        # `tq quarantine m3` reads as `tq quarantine show m3`.
        action, ids = "show", [action, *ids]
    if action == "list":
        if ids:
            raise CliError("tq quarantine list takes no ids (tq quarantine show ID)")
        data = quarantine_list(runtime, limit=args.limit)
        if args.json:
            print_json(data)
            return 0
        table = new_table("id", "kind", "when", "queue", "from", "size", "reason",
                          right=("size",))
        for row in data["entries"]:
            table.add_row(row["id"], row["kind"], fmt_time(row["at"]),
                          literal(row["queue"] or ""), literal(row["source"] or ""),
                          f"{row['size'] or 0:,}", literal((row["reason"] or "")[:120]))
        out.print(table)
        for kind, why in data["unavailable"].items():
            err.print(f"tq: {kind}s not listed: {markup(why)}")
        out.print(f"{len(data['entries'])} set aside (tq quarantine show ID; requeue ID; "
                  "purge ID... or --all)")
        return 0
    if action == "show":
        if len(ids) != 1:
            raise CliError("tq quarantine show takes one id")
        try:
            entry = quarantine_show(runtime, ids[0])
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if entry is None:
            raise CliError(f"{visible(ids[0])}: not in quarantine")
        if args.json:
            print_json(entry)
            return 0
        for key in ("id", "kind", "at", "queue", "source", "reason", "size"):
            value = fmt_time(entry[key]) if key == "at" else entry[key]
            out.print(literal(f"{key:>7} ", "bold") + literal("" if value is None else value))
        if not entry["complete"]:
            out.print(literal("   data (only its beginning was kept):", "bold"))
        out.print(literal(entry["data"], multiline=True))
        return 0
    if action == "requeue":
        if not ids:
            raise CliError("tq quarantine requeue needs ids (see tq quarantine)")
        if args.dry_run:
            would = ops.quarantine_requeue_preview(runtime, ids)
            if args.json:
                print_json({"dry_run": True, "count": len(would.requeued),
                            "requeued": would.requeued, "skipped": would.skipped})
                return 0
            for entry_id, job_id in would.requeued.items():
                out.print(literal(f"{entry_id}: would be requeued as job {job_id}"))
            for entry_id, reason in list(would.skipped.items())[:MAX_LINE_ERRORS_SHOWN]:
                err.print(f"tq: {markup(entry_id)}: would not be requeued: {markup(reason)}")
            out.print(f"would requeue {len(would.requeued)} of {len(ids)} "
                      "(dry run: nothing changed)")
            return 0
        result = ops.quarantine_requeue(runtime, ids)
        for entry_id, job_id in result.requeued.items():
            out.print(literal(f"{entry_id}: requeued as job {job_id}"))
        for entry_id, reason in list(result.skipped.items())[:MAX_LINE_ERRORS_SHOWN]:
            err.print(f"tq: {markup(entry_id)}: not requeued: {markup(reason)}")
        return 0 if not result.skipped else EXIT_USAGE
    if bool(ids) == bool(args.all):
        raise CliError("tq quarantine purge needs ids or --all (not both)")
    if args.dry_run:
        try:
            count = ops.quarantine_purge_preview(runtime, None if args.all else ids)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if args.json:
            print_json({"dry_run": True, "count": count})
        else:
            out.print(f"would purge {count} entr{'ies' if count != 1 else 'y'} from "
                      "quarantine (dry run: nothing changed)")
        return 0
    try:
        deleted = ops.quarantine_purge(runtime, None if args.all else ids)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    out.print(f"purged {deleted} entr{'ies' if deleted != 1 else 'y'} from quarantine")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the history schema up to date and say at which version it is."""
    from tq.migrations import VERSION

    runtime = make_runtime(args, check_backend=False)
    applied = runtime.migrate_history()
    for line in applied:
        out.print(literal(f"migrated {line}"))
    out.print(literal(f"history schema version {VERSION}"
                      + (" (up to date)" if not applied else "")
                      + f": {runtime.config.history_url_safe}"))
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    from tq.tui.app import run_tui

    # Not checked up front: the console stands each server on its own, with a
    # banner for one that does not answer (history lists while Redis is down).
    runtime = make_runtime(args, check_backend=False)
    return run_tui(runtime, readonly=args.readonly)



def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="who did what to which jobs, newest first")
    p.add_argument("--since", help="only entries since: 30m, 2h, 7d or ISO time")
    p.add_argument("--limit", type=whole(1, MAX_LIMIT), default=200)
    p.add_argument("--json", action="store_true", help="entries with every job id they touched")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("quarantine", help="what tq set aside: list, show, requeue, purge")
    p.add_argument("action", nargs="?", default="list",
                   help="list (default), show ID, requeue ID..., purge ID... | --all")
    p.add_argument("ids", nargs="*", help="quarantine ids: m<n> (message), r<n> (record)")
    p.add_argument("--all", action="store_true", help="with purge: every entry")
    p.add_argument("--dry-run", action="store_true",
                   help="with requeue or purge: print what would be done; change nothing")
    p.add_argument("--limit", type=whole(1, MAX_LIMIT), default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_quarantine)

    p = sub.add_parser("migrate", help="create or upgrade the history schema; say its version")
    p.set_defaults(func=cmd_migrate)
    # What `tq migrate` was called before schema versions: scripts keep working.
    p = sub.add_parser("db", help="the same as tq migrate (tq db init)")
    p.add_argument("action", choices=("init",))
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("tui", help="the live console")
    # --readonly: what it was called first; scripts keep working.
    p.add_argument("--read-only", "--readonly", dest="readonly", action="store_true",
                   help="watch only: every action refused (what a read token's web console runs)")
    p.set_defaults(func=cmd_tui)
