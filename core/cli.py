"""``lkctl``: the scriptable command line over the same core as the console.

Every error is one line on stderr and a non-zero exit (2 for bad input or refused
checks, 1 for failures while doing), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from core.backend import LabBackend
from core.errors import CheckFailed, LkError
from core.lab import reset_lab
from core.model import Cluster, Hierarchy
from core.status import cell

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


Handler = Callable[[argparse.Namespace, TextIO], int]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lkctl",
        description="Command line for LK Console: the embedded lab cluster and its hierarchies.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    status = sub.add_parser("status", help="show servers, hierarchies and resource states")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(handler=cmd_status)

    lab = sub.add_parser("lab", help="manage the embedded lab cluster")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=_Parser)
    lab_sub.required = True
    reset = lab_sub.add_parser("reset", help="throw the lab away and create it anew")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset.set_defaults(handler=cmd_lab_reset)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, out)
    except CheckFailed as exc:
        for p in exc.problems:
            print(f"lkctl: {p.field}: {p.message}", file=sys.stderr)
        return EXIT_USAGE
    except LkError as exc:
        print(f"lkctl: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"lkctl: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (lkctl status | head): not an error worth a message.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except KeyboardInterrupt:
        print("lkctl: interrupted", file=sys.stderr)
        return 130


# -- status --------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        cluster = backend.cluster()
    finally:
        backend.close()
    if args.json:
        json.dump(status_json(cluster), out, indent=2)
        out.write("\n")
    else:
        out.write(status_text(cluster))
    return EXIT_OK


def status_json(cluster: Cluster) -> dict[str, Any]:
    return {
        "cluster": "lab",
        "servers": [{"name": s.name, "state": s.state.name} for s in cluster.servers],
        "hierarchies": [_hierarchy_json(h, cluster) for h in cluster.hierarchies],
    }


def _hierarchy_json(h: Hierarchy, cluster: Cluster) -> dict[str, Any]:
    resources = []
    for rid, depth in h.walk():
        states: dict[str, Any] = {}
        for server in cluster.servers:
            inst = h.instance(rid, server.name)
            c = cell(h, rid, server.name)
            if inst is None or c is None:
                continue
            entry: dict[str, Any] = {"tag": inst.tag, "state": inst.state.name, "text": c.text}
            if c.mirror_state is not None:
                entry["mirror_state"] = c.mirror_state.name
            if inst.mount_point:
                entry["mount_point"] = inst.mount_point
            if inst.volume:
                entry["volume"] = inst.volume
                entry["bitmap_file"] = inst.bitmap_file
            states[server.name] = entry
        resources.append(
            {
                "id": rid,
                "tag": h.tag_of(rid),
                "kind": h.kind_of(rid).value,
                "depth": depth,
                "parent": h.parent(rid),
                "status": h.status(rid).name,
                "servers": states,
            }
        )
    return {
        "id": h.id,
        "root": h.root_tag,
        "switchback": h.switchback.value,
        "version": h.version,
        "in_service_on": h.in_service_server,
        "priorities": {e.server: e.priority for e in h.equivalencies},
        "resources": resources,
        "mirrors": [
            {
                "tag": h.tag_of(m.resource_id),
                "source": m.source,
                "volume_size": m.volume_size,
                "chunk_size": m.chunk_size,
                "speed_limit_kbps": m.speed_limit_kbps,
                "asynchronous": m.asynchronous,
                "targets": [
                    {
                        "server": t.server,
                        "state": t.state.name,
                        "percent": t.percent,
                        "reason": t.reason,
                    }
                    for t in m.targets
                ],
            }
            for m in h.mirrors
        ],
    }


def status_text(cluster: Cluster) -> str:
    lines = ["Cluster: lab (embedded)", "", "SERVER    STATE"]
    lines += [f"{s.name:<9} {s.state.value}" for s in cluster.servers]
    names = [s.name for s in cluster.servers]
    for h in cluster.hierarchies:
        prios = ", ".join(f"{e.server}={e.priority}" for e in h.equivalencies)
        where = h.in_service_server or "nowhere"
        lines += [
            "",
            f"Hierarchy {h.root_tag}  (in service on {where}; switchback {h.switchback.value}; "
            f"priorities {prios})",
        ]
        rows = [["TAG", "KIND", *names]]
        for rid, depth in h.walk():
            row = ["  " * depth + h.tag_of(rid), h.kind_of(rid).value]
            for name in names:
                c = cell(h, rid, name)
                inst = h.instance(rid, name)
                row.append("-" if c is None or inst is None else f"{inst.state.name} {c.text}")
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += [
            "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in rows
        ]
    if not cluster.hierarchies:
        lines += ["", "No resource hierarchies."]
    return "\n".join(lines) + "\n"


# -- lab ------------------------------------------------------------------------------
def cmd_lab_reset(args: argparse.Namespace, out: TextIO) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                "lkctl: lab reset deletes every hierarchy and volume of the lab; "
                "add --yes to confirm when not at a terminal",
                file=sys.stderr,
            )
            return EXIT_USAGE
        answer = input("Delete every hierarchy and volume of the lab and start anew? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing changed.", file=out)
            return EXIT_OK
    backend = LabBackend()
    try:
        reset_lab(backend.store)
    finally:
        backend.close()
    print("The lab was reset: lab1, lab2, lab3 with /data in service on lab1.", file=out)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
