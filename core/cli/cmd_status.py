"""``lkctl status`` and ``lkctl history``."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from typing import TextIO

from core.checks import Problem
from core.cli.auth import cluster
from core.cli.output import EXIT_OK, print_json, status_json, status_text
from core.cli.parser import SubParsers
from core.errors import CheckFailed
from core.permissions import Op


def register(sub: SubParsers) -> None:
    status = sub.add_parser("status", help="show servers, hierarchies and resource states")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(handler=cmd_status, op=Op.VIEW)


def register_history(sub: SubParsers) -> None:
    hist = sub.add_parser("history", help="the operations run so far (who, when, what, result)")
    hist.add_argument(
        "--since",
        metavar="WHEN",
        help="only since then: an ISO date/time (2026-11-25T10:00) or an age (30m, 2h, 7d)",
    )
    hist.add_argument("--json", action="store_true")
    hist.set_defaults(handler=cmd_history, op=Op.VIEW)


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        session.require(Op.VIEW)
        snapshot = backend.snapshot()
        kind, name = backend.kind, backend.name
    if args.json:
        print_json(out, status_json(snapshot, kind))
    else:
        title = "Cluster: lab (embedded)" if name == "lab" else f"Cluster: {name} ({kind})"
        out.write(status_text(snapshot, title))
    return EXIT_OK


def parse_since(text: str, now: float | None = None) -> float:
    """An ISO date/time, or an age such as 30m, 2h, 7d, as seconds since the epoch."""
    now = time.time() if now is None else now
    value = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:].lower() in units and value[:-1].isdigit():
        return now - int(value[:-1]) * units[value[-1:].lower()]
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CheckFailed(
            [
                Problem(
                    "since",
                    "bad_time",
                    f"--since {text!r} is neither an ISO date/time "
                    "(2026-11-25T10:00) nor an age (30m, 2h, 7d).",
                )
            ]
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        session.require(Op.VIEW)
        since = parse_since(args.since) if args.since else None
        found = backend.history(since)
    if args.json:
        print_json(out, [dataclasses.asdict(e) for e in found])
        return EXIT_OK
    for e in found:
        when = dt.datetime.fromtimestamp(e.started).strftime("%Y-%m-%d %H:%M:%S")
        result = "ok" if e.ok else "FAILED"
        print(
            f"{when}  {e.user} ({e.role})  {e.operation}  {result} in {e.duration:.1f} s",
            file=out,
        )
        if e.command:
            print(f"    {e.command}", file=out)
        if not e.ok:
            print(f"    {e.result}", file=out)
    if not found:
        print("No operations recorded" + (" since then." if since else "."), file=out)
    return EXIT_OK
