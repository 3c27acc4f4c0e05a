"""``lkctl log SERVER``: a server's log (operations, resource actions, state changes,
failovers), filtered by level, resource and time; ``--follow`` prints new lines as the
watch of the cluster publishes them."""

from __future__ import annotations

import argparse
import json
import threading
from typing import TextIO

from core import serverlog
from core.backend import Backend
from core.cli.auth import cluster
from core.cli.cmd_status import parse_since
from core.cli.output import EXIT_OK, print_json
from core.cli.parser import SubParsers
from core.events import Event, EventHub, LogRows
from core.history import LogRow
from core.model import Cluster
from core.permissions import Op


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "log", help="a server's log: operations, resource actions, state changes, failovers"
    )
    p.add_argument("server", metavar="SERVER")
    p.add_argument(
        "--follow", action="store_true", help="go on printing new lines as they are written"
    )
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="only since then: an ISO date/time (2026-11-25T10:00) or an age (30m, 2h, 7d)",
    )
    p.add_argument(
        "--level",
        default="INFO",
        metavar="L",
        help="the least level shown: INFO (everything), WARNING, ERROR",
    )
    p.add_argument("--resource", metavar="TAG", default="", help="only the lines naming TAG")
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON (with --follow: one JSON object per line, as each line comes)",
    )
    p.set_defaults(handler=cmd_log, op=Op.VIEW)


def cmd_log(args: argparse.Namespace, out: TextIO) -> int:
    since = parse_since(args.since) if args.since else None
    with cluster(args) as (backend, session):
        session.require(Op.VIEW)
        shown = backend.snapshot()
        f = serverlog.check(shown, args.server, args.level, args.resource, since)
        rows = serverlog.select(backend.server_log(f.server), f)
        last = max((r.id for r in backend.log_lines(0, 1)), default=0)
        if not args.follow:
            if args.json:
                print_json(
                    out,
                    {
                        "server": f.server,
                        "level": f.level,
                        "resource": f.resource or None,
                        "lines": [serverlog.row_json(r) for r in rows],
                    },
                )
            else:
                for row in rows:
                    print(serverlog.format_row(row), file=out)
                if not rows:
                    print(f"No lines in the log of {f.server}" + _filtered(f) + ".", file=out)
            return EXIT_OK
        for row in rows:
            _print(out, row, args.json)
        out.flush()
        _follow(backend, f, last, out, args.json, shown)
    return EXIT_OK


def _filtered(f: serverlog.LogFilter) -> str:
    parts = [f"level {f.level} and above"] if f.level != "INFO" else []
    parts += [f"naming {f.resource}"] if f.resource else []
    parts += ["since then"] if f.since is not None else []
    return f" ({', '.join(parts)})" if parts else ""


def _print(out: TextIO, row: LogRow, as_json: bool) -> None:
    text = json.dumps(serverlog.row_json(row)) if as_json else serverlog.format_row(row)
    print(text, file=out, flush=True)


def _follow(
    backend: Backend,
    f: serverlog.LogFilter,
    last: int,
    out: TextIO,
    as_json: bool,
    shown: Cluster,
) -> None:
    """Print the lines the watch publishes until interrupted (Ctrl+C: exit 130)."""
    hub = EventHub()
    lock = threading.Lock()

    def on_rows(event: Event) -> None:
        assert isinstance(event, LogRows)
        with lock:
            for row in serverlog.select(event.rows, f):
                _print(out, row, as_json)

    hub.subscribe(on_rows, LogRows)
    watch = backend.watch(hub, shown=shown, last_log_id=last)
    try:
        threading.Event().wait()
    finally:
        watch.stop()
