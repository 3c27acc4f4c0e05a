"""``lkctl``: the scriptable command line over the same core as the console.

Every error is one line on stderr and a non-zero exit (2 for bad input or refused
checks, 1 for failures while doing), never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from core import (
    create,
    credentials,
    extend,
    hierarchy_ops,
    history,
    mirror_ops,
    service,
    users,
)
from core.backend import LabBackend
from core.checks import Problem
from core.errors import CheckFailed, LkError
from core.extend import ExtendDefaults, ExtendRequest
from core.lab import LabLayout, reset_lab
from core.model import Cluster, Hierarchy, MirrorState, Role
from core.session import Session, local_administrator
from core.status import cell, mirror_text

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


Handler = Callable[[argparse.Namespace, TextIO], int]


def _print_json(out: TextIO, data: object) -> None:
    """What --json prints: indented JSON and a final newline."""
    json.dump(data, out, indent=2)
    out.write("\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lkctl",
        description="Command line for LK Console: the embedded lab cluster and its hierarchies.",
    )
    parser.add_argument(
        "--user",
        metavar="NAME",
        help="act as this lab user (password from LKCTL_PASSWORD, the keyring, or a prompt); "
        "default: the local owner of the data directory, an Administrator",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    status = sub.add_parser("status", help="show servers, hierarchies and resource states")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(handler=cmd_status)

    _add_create(sub)
    _add_extend(sub)
    _add_unextend_delete(sub)
    _add_service(sub)

    hist = sub.add_parser("history", help="the operations run so far (who, when, what, result)")
    hist.add_argument(
        "--since",
        metavar="WHEN",
        help="only since then: an ISO date/time (2026-11-25T10:00) or an age (30m, 2h, 7d)",
    )
    hist.add_argument("--json", action="store_true")
    hist.set_defaults(handler=cmd_history)

    lab = sub.add_parser("lab", help="manage the embedded lab cluster")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=_Parser)
    lab_sub.required = True
    reset = lab_sub.add_parser("reset", help="throw the lab away and create it anew")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset.set_defaults(handler=cmd_lab_reset)
    write = lab_sub.add_parser("write", help="write through a mirror (bitmap, source, targets)")
    write.add_argument("tag", metavar="TAG", help="the DataKeeper resource")
    write.add_argument("--offset", type=_int_arg, required=True, metavar="N")
    write.add_argument("--length", type=_int_arg, required=True, metavar="N")
    write.add_argument("--pattern", default="random", metavar="random|zero")
    write.set_defaults(handler=cmd_lab_write)
    work = lab_sub.add_parser("workload", help="random writes through a mirror for a while")
    work.add_argument("tag", metavar="TAG", help="the DataKeeper resource")
    work.add_argument("--seconds", type=float, required=True, metavar="N")
    work.add_argument("--rate", type=float, required=True, metavar="MB/s")
    work.set_defaults(handler=cmd_lab_workload)
    for name, text in (
        ("stop", "stop a lab server (its hierarchies fail over)"),
        ("start", "start a lab server again (it rejoins and resyncs)"),
    ):
        srv = lab_sub.add_parser(name, help=text)
        srv.add_argument("server", metavar="SERVER")
        srv.add_argument("--json", action="store_true")
        srv.set_defaults(handler=cmd_lab_server, action=name)
    users_parser = lab_sub.add_parser("user", help="the lab's users and their roles")
    usub = users_parser.add_subparsers(dest="user_command", metavar="ACTION", parser_class=_Parser)
    usub.required = True
    add = usub.add_parser("add", help="add a user (the password is asked for)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, metavar="guest|operator|administrator")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (scripts)",
    )
    add.set_defaults(handler=cmd_user, action="add")
    rm = usub.add_parser("remove", help="remove a user")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(handler=cmd_user, action="remove")
    ls = usub.add_parser("list", help="list the users")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_user, action="list")
    _add_mirror(sub)
    return parser


def _session(args: argparse.Namespace, backend: LabBackend) -> Session:
    """Who runs this command: the local owner (Administrator), or a signed-in user."""
    if not args.user:
        return local_administrator()
    password = os.environ.get("LKCTL_PASSWORD") or credentials.recall("lab", args.user)
    if password is None:
        if not sys.stdin.isatty():
            raise CheckFailed(
                [
                    Problem(
                        "password",
                        "required",
                        f"no password for {args.user}: set LKCTL_PASSWORD, "
                        "remember it in the keyring, or run at a terminal",
                    )
                ]
            )
        password = getpass.getpass(f"Password for {args.user}: ")
    return users.authenticate(backend.store, args.user, password)


def cmd_user(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        session = _session(args, backend)
        if args.action == "list":
            found = users.list_users(backend.store)
            if args.json:
                _print_json(out, [{"name": u.name, "role": u.role.name.lower()} for u in found])
            else:
                print(
                    f"{local_administrator().user} (local owner): Administrator, no password",
                    file=out,
                )
                for u in found:
                    print(f"{u.name}: {u.role.label}", file=out)
            return EXIT_OK
        if args.action == "remove":
            users.remove_user(backend.store, args.name, session)
            print(f"User {args.name} removed.", file=out)
            return EXIT_OK
        role = users.parse_role(args.role)
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        elif sys.stdin.isatty():
            password = getpass.getpass(f"Password for {args.name}: ")
            if getpass.getpass("Again: ") != password:
                raise CheckFailed([Problem("password", "mismatch", "The two passwords differ.")])
        else:
            raise CheckFailed(
                [
                    Problem(
                        "password",
                        "required",
                        "give the password at a terminal or with --password-stdin",
                    )
                ]
            )
        users.add_user(backend.store, args.name, role, password, session)
        print(f"User {args.name} added ({role.label}).", file=out)
        return EXIT_OK
    finally:
        backend.close()


def _int_arg(text: str) -> int:
    """A byte count: 4096, 64K, 1M, 1G (powers of 1024)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    value = text.strip().lower()
    factor = units.get(value[-1:], 1)
    number = value[:-1] if factor != 1 else value
    try:
        return int(number) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of bytes (e.g. 4096, 64K, 1M)"
        ) from None


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, out)
    except CheckFailed as exc:
        if getattr(args, "json", False):
            _print_json(
                out, {"ok": False, "problems": [dataclasses.asdict(p) for p in exc.problems]}
            )
        for p in exc.problems:
            print(f"{p.field}: {p.message}", file=sys.stderr)
        return EXIT_USAGE
    except LkError as exc:
        print(f"lkctl: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (lkctl status | head): not an error worth a message.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"lkctl: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("lkctl: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line for the user, the details in the log
        log.exception("lkctl %s failed", args.command)
        print(
            f"lkctl: internal error ({type(exc).__name__}: {exc}); please report it",
            file=sys.stderr,
        )
        return EXIT_FAILED


# -- status --------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        _session(args, backend)  # any signed-in role may look
        cluster = backend.cluster()
    finally:
        backend.close()
    if args.json:
        _print_json(out, status_json(cluster))
    else:
        out.write(status_text(cluster))
    return EXIT_OK


def status_json(cluster: Cluster) -> dict[str, Any]:
    return {
        "cluster": "lab",
        "servers": [{"name": s.name, "state": s.state.name} for s in cluster.servers],
        "hierarchies": [_hierarchy_json(h, cluster) for h in cluster.hierarchies],
    }


def _hierarchy_json(h: Hierarchy | None, cluster: Cluster) -> dict[str, Any]:
    if h is None:
        return {}
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


# -- history --------------------------------------------------------------------------
def parse_since(text: str, now: float | None = None) -> float:
    """An ISO date/time, or an age such as 30m, 2h, 7d, as seconds since the epoch."""
    import datetime as dt
    import time as _time

    now = _time.time() if now is None else now
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
    import datetime as dt

    backend = LabBackend()
    try:
        _session(args, backend)
        since = parse_since(args.since) if args.since else None
        found = history.entries(backend.store, since)
        if args.json:
            _print_json(out, [dataclasses.asdict(e) for e in found])
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
    finally:
        backend.close()


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
        _session(args, backend).require(Role.ADMINISTRATOR, "Resetting the lab")
        reset_lab(backend.store)
    finally:
        backend.close()
    print("The lab was reset: lab1, lab2, lab3 with /data in service on lab1.", file=out)
    return EXIT_OK


# -- mirrors -------------------------------------------------------------------------------
def _add_mirror(sub: Any) -> None:
    m = sub.add_parser("mirror", help="DataKeeper mirrors: status and actions")
    msub = m.add_subparsers(dest="mirror_command", metavar="ACTION", parser_class=_Parser)
    msub.required = True
    st = msub.add_parser("status", help="role, state, progress, rate and ETA per target")
    st.add_argument("tag", metavar="TAG", nargs="?", help="a DataKeeper resource (default: all)")
    st.add_argument("--json", action="store_true")
    st.set_defaults(handler=cmd_mirror_status)
    for name, text in (
        ("pause", "stop replicating (writes only mark the bitmap)"),
        ("resume", "resync what was missed, then replicate"),
        ("fullresync", "copy every chunk again"),
    ):
        a = msub.add_parser(name, help=text)
        a.add_argument("tag", metavar="TAG")
        a.add_argument("--target", metavar="SERVER", help="one target (default: every one)")
        a.set_defaults(handler=cmd_mirror_action, action=name)
    ver = msub.add_parser(
        "verify", help="online verify: compare target and source, chunk by chunk; mark what differs"
    )
    ver.add_argument("tag", metavar="TAG")
    ver.add_argument("--target", metavar="SERVER", help="one target (default: every one)")
    ver.add_argument("--repair", action="store_true", help="resync what differs")
    ver.add_argument(
        "--method",
        default="blake2b",
        metavar="blake2b|bytes",
        help="compare blake2b checksums of each chunk (default), or the bytes "
        "themselves (faster here: both copies are local files)",
    )
    ver.add_argument("--json", action="store_true")
    ver.set_defaults(handler=cmd_mirror_verify)
    force = msub.add_parser(
        "force", help="bring a copy that waits for the previous source online (may be stale)"
    )
    force.add_argument("tag", metavar="TAG")
    force.add_argument("--on", metavar="SERVER", required=True, dest="server")
    force.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    force.set_defaults(handler=cmd_mirror_force)
    sp = msub.add_parser("speed", help="resync speed limit in KB/s (0 = unlimited)")
    sp.add_argument("tag", metavar="TAG")
    sp.add_argument("kbps", metavar="KBPS", type=int)
    sp.set_defaults(handler=cmd_mirror_speed)


def cmd_mirror_status(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        if args.tag:
            refs = [mirror_ops.find(backend, args.tag)]
        else:
            cluster = backend.cluster()
            refs = [
                mirror_ops.find(backend, h.tag_of(m.resource_id))
                for h in cluster.hierarchies
                for m in h.mirrors
            ]
        data: list[dict[str, Any]] = [
            {
                "tag": ref.tag,
                "source": ref.mirror.source,
                "bitmap_file": ref.source.bitmap_file,
                "chunk_size": ref.mirror.chunk_size,
                "speed_limit_kbps": ref.mirror.speed_limit_kbps,
                "targets": [
                    dataclasses.asdict(line) for line in mirror_ops.status(ref, backend.layout)
                ],
            }
            for ref in refs
        ]
        if args.json:
            _print_json(out, data)
            return EXIT_OK
        for mirror in data:
            bitmap = mirror["bitmap_file"] or "None (every resync is full)"
            print(f"Mirror {mirror['tag']}  (bitmap {bitmap})", file=out)
            rows = [["SERVER", "ROLE", "STATE", "%", "RATE", "ETA", "DIRTY", "REASON"]]
            for t in mirror["targets"]:
                pct = "" if t["percent"] is None else str(t["percent"])
                dirty = "" if t["role"] == "Source" else str(t["dirty_chunks"])
                rows.append(
                    [
                        t["server"],
                        t["role"],
                        t["state"],
                        pct,
                        t["rate"],
                        t["eta"],
                        dirty,
                        t["reason"],
                    ]
                )
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print(
                    "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(),
                    file=out,
                )
        if not data:
            print("No mirrors.", file=out)
        return EXIT_OK
    finally:
        backend.close()


def cmd_mirror_action(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        action = {
            "pause": mirror_ops.pause,
            "resume": mirror_ops.resume,
            "fullresync": mirror_ops.full_resync,
        }[args.action]
        for line in action(backend, args.tag, args.target, _session(args, backend)):
            print(line, file=out)
        return EXIT_OK
    finally:
        backend.close()


def cmd_mirror_speed(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        print(
            mirror_ops.set_speed_limit(backend, args.tag, args.kbps, _session(args, backend)),
            file=out,
        )
        return EXIT_OK
    finally:
        backend.close()


def _add_service(sub: Any) -> None:
    ins = sub.add_parser("inservice", help="bring a hierarchy in service on a server")
    ins.add_argument("tag", metavar="TAG")
    ins.add_argument("--on", metavar="SERVER", required=True, dest="server")
    ins.add_argument("--json", action="store_true")
    ins.set_defaults(handler=cmd_service, action="inservice")
    outs = sub.add_parser("outofservice", help="take a hierarchy out of service")
    outs.add_argument("tag", metavar="TAG")
    outs.add_argument("--json", action="store_true")
    outs.set_defaults(handler=cmd_service, action="outofservice", server=None)
    sw = sub.add_parser("switchover", help="move a hierarchy to another server")
    sw.add_argument("tag", metavar="TAG")
    sw.add_argument("--to", metavar="SERVER", required=True, dest="server")
    sw.add_argument("--json", action="store_true")
    sw.set_defaults(handler=cmd_service, action="switchover")


def _print_lines(args: argparse.Namespace, out: TextIO, lines: list[str]) -> int:
    if getattr(args, "json", False):
        _print_json(out, {"ok": True, "steps": lines})
    else:
        for line in lines:
            print(line, file=out)
    return EXIT_OK


def cmd_service(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        session = _session(args, backend)
        if args.action == "inservice":
            lines = service.in_service(backend, args.tag, args.server, session)
        elif args.action == "outofservice":
            lines = service.out_of_service(backend, args.tag, session)
        else:
            lines = service.switchover(backend, args.tag, args.server, session)
        return _print_lines(args, out, lines)
    finally:
        backend.close()


def cmd_lab_server(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        action = service.stop_server if args.action == "stop" else service.start_server
        return _print_lines(args, out, action(backend, args.server, _session(args, backend)))
    finally:
        backend.close()


def cmd_mirror_verify(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        lines = mirror_ops.verify(
            backend,
            args.tag,
            args.target,
            _session(args, backend),
            repair=args.repair,
            method=args.method,
        )
        ref = mirror_ops.find(backend, args.tag)
        if args.json:
            _print_json(
                out,
                {
                    "ok": True,
                    "steps": lines,
                    "targets": [
                        {
                            "server": t.server,
                            "state": t.state.name,
                            "last_verified": t.last_verified,
                            "differences": t.last_differences,
                        }
                        for t in ref.mirror.targets
                    ],
                },
            )
        else:
            for line in lines:
                print(line, file=out)
        return EXIT_OK
    finally:
        backend.close()


def cmd_mirror_force(args: argparse.Namespace, out: TextIO) -> int:
    if not args.yes and sys.stdin.isatty():
        answer = input(
            f"Force {args.tag} online on {args.server}? Its copy may be stale: what the "
            "previous source wrote after it was last in sync is lost. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing changed.", file=out)
            return EXIT_OK
    backend = LabBackend()
    try:
        return _print_lines(
            args, out, service.force_online(backend, args.tag, args.server, _session(args, backend))
        )
    finally:
        backend.close()


def cmd_lab_write(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        print(mirror_ops.write(backend, args.tag, args.offset, args.length, args.pattern), file=out)
        return EXIT_OK
    finally:
        backend.close()


def cmd_lab_workload(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        print(mirror_ops.workload(backend, args.tag, args.seconds, args.rate), file=out)
        return EXIT_OK
    finally:
        backend.close()


# -- extend, unextend, delete -----------------------------------------------------------
def _add_extend(sub: Any) -> None:
    p = sub.add_parser(
        "extend",
        help="extend a resource hierarchy to another server",
        description="Extend Resource Hierarchy: copy the hierarchy TAG belongs to from the "
        "server where it is in service (the template) to a target server, and start the "
        "mirror resync. Without --accept-defaults, every option not given is asked for "
        "(at a terminal) or refused (in a script).",
    )
    p.add_argument("tag", metavar="TAG", help="any resource tag of the hierarchy (Tag to Extend)")
    p.add_argument("--target", metavar="SERVER", help="Target Server")
    p.add_argument("--template", metavar="SERVER", help="Template Server")
    p.add_argument("--target-priority", metavar="N", help="Target Priority (1-999)")
    p.add_argument(
        "--template-priority", metavar="N", help="Template Priority (1-999; initial extend only)"
    )
    p.add_argument("--switchback", metavar="TYPE", help="Switchback Type: intelligent|automatic")
    p.add_argument("--mount-point", metavar="PATH", help="Mount Point on the target")
    p.add_argument("--root-tag", metavar="TAG", help="Root Tag (the filesystem's tag)")
    p.add_argument("--dk-tag", metavar="TAG", help="DataKeeper Resource Tag")
    p.add_argument(
        "--bitmap",
        metavar="PATH|none",
        help="Bitmap File on the target, or none (every resync is full)",
    )
    p.add_argument(
        "--accept-defaults", action="store_true", help="take the default of every option not given"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the defaults, the checks and the plan; change nothing",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--wait", action="store_true", help="follow the resync until the target is in sync"
    )
    p.set_defaults(handler=cmd_extend)


_CREATE_OPTIONS = (
    ("switchback_type", "switchback"),
    ("server", "server"),
    ("hierarchy_type", "type"),
    ("source_disk", "disk"),
    ("disk_size_mib", "size_mib"),
    ("mount_point", "mount_point"),
    ("root_tag", "root_tag"),
    ("fs_type", "fs_type"),
    ("dk_tag", "dk_tag"),
    ("bitmap_file", "bitmap"),
    ("asynchronous", "asynchronous"),
)
_TYPES = {"new": create.NEW_FS, "existing": create.EXISTING_FS, "dk-only": create.DK_ONLY}


def _add_create(sub: Any) -> None:
    p = sub.add_parser(
        "create",
        help="create a DataKeeper resource hierarchy",
        description="Create Resource Hierarchy (DataKeeper): the new hierarchy is in service "
        "on its server with priority 1. Without --accept-defaults every option not given is "
        "refused; --dry-run prints the defaults, the checks and the plan.",
    )
    p.add_argument("--server", metavar="SERVER")
    p.add_argument("--type", metavar="new|existing|dk-only", help="Hierarchy Type")
    p.add_argument("--disk", metavar="PATH", help="Source Disk, e.g. /disks/web.img")
    p.add_argument("--size-mib", metavar="N", help="size of a new disk, in MiB")
    p.add_argument("--mount-point", metavar="PATH")
    p.add_argument("--root-tag", metavar="TAG")
    p.add_argument("--fs-type", metavar="ext4|xfs|ext3")
    p.add_argument("--dk-tag", metavar="TAG", help="Data Replication Resource Tag")
    p.add_argument("--bitmap", metavar="PATH|none", help="Bitmap File, or none")
    p.add_argument(
        "--async",
        dest="asynchronous",
        action="store_const",
        const=True,
        help="Enable Asynchronous Replication",
    )
    p.add_argument("--switchback", metavar="TYPE")
    p.add_argument("--accept-defaults", action="store_true")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_create)


def cmd_create(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        cluster = backend.cluster()
        kind = args.type
        if kind is not None and kind not in _TYPES:
            raise CheckFailed(
                [
                    Problem(
                        "hierarchy_type",
                        "unknown_type",
                        f"--type {kind!r} is not one of new, existing, dk-only.",
                    )
                ]
            )
        d = create.defaults(
            cluster,
            backend.layout,
            server=args.server,
            hierarchy_type=_TYPES.get(kind or "new", create.NEW_FS),
        )
        values: dict[str, Any] = {}
        missing = []
        for field_name, option in _CREATE_OPTIONS:
            given = getattr(args, option)
            if field_name == "hierarchy_type" and given is not None:
                given = _TYPES[given]
            if field_name == "bitmap_file" and isinstance(given, str) and given.lower() == "none":
                values[field_name] = None
                continue
            default = getattr(d.request, field_name)
            if given is None:
                if (
                    field_name not in d.shown
                    or field_name == "asynchronous"
                    or (field_name == "disk_size_mib" and default is None)
                ):
                    values[field_name] = default
                    continue
                if not args.accept_defaults:
                    flag = "--" + option.replace("_", "-")
                    missing.append(
                        Problem(
                            field_name,
                            "not_given",
                            f"no value given (default {default}); pass "
                            f"{flag} {default} or --accept-defaults",
                        )
                    )
                values[field_name] = default
            else:
                values[field_name] = given
        if missing:
            raise CheckFailed(missing)
        request = create.CreateRequest(**values)
        problems = create.check_request(cluster, backend.layout, request)
        if args.dry_run:
            titles = [] if problems else create.plan(cluster, backend.layout, request).titles
            if args.json:
                _print_json(
                    out,
                    {
                        "request": request.to_json(),
                        "problems": [dataclasses.asdict(p) for p in problems],
                        "plan": titles,
                    },
                )
            else:
                for name in d.shown:
                    print(f"  {create.LABELS[name]:<32} {getattr(request, name)}", file=out)
                for p in problems:
                    print(f"  {p.field}: {p.message}", file=out)
                for i, title in enumerate(titles, 1):
                    print(f"  {i}. {title}", file=out)
            return EXIT_USAGE if problems else EXIT_OK
        if problems:
            raise CheckFailed(problems)
        result = create.execute(
            backend, create.plan(cluster, backend.layout, request), _session(args, backend)
        )
        if args.json:
            _print_json(
                out,
                {
                    "ok": True,
                    "request": request.to_json(),
                    "message": result.message,
                    "hierarchy": _hierarchy_json(
                        backend.store.hierarchy(result.hierarchy_id), backend.cluster()
                    ),
                },
            )
        else:
            print(result.message, file=out)
        return EXIT_OK
    finally:
        backend.close()


def _add_unextend_delete(sub: Any) -> None:
    p = sub.add_parser("unextend", help="remove a hierarchy from one standby server")
    p.add_argument("tag", metavar="TAG")
    p.add_argument("--server", metavar="SERVER", required=True)
    p.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_unextend)
    d = sub.add_parser("delete", help="remove a hierarchy from every server")
    d.add_argument("tag", metavar="TAG")
    d.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    d.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    d.add_argument("--json", action="store_true")
    d.set_defaults(handler=cmd_delete)


# Which option fills which request field, and the question asked at a terminal.
_EXTEND_OPTIONS = (
    ("target_server", "target", "Target Server"),
    ("switchback_type", "switchback", "Switchback Type"),
    ("template_priority", "template_priority", "Template Priority"),
    ("target_priority", "target_priority", "Target Priority"),
)
_DK_OPTIONS = (
    ("mount_point", "mount_point", "Mount Point"),
    ("root_tag", "root_tag", "Root Tag"),
    ("dk_tag", "dk_tag", "DataKeeper Resource Tag"),
    ("bitmap_file", "bitmap", "Bitmap File"),
)


def extend_request_from_args(
    args: argparse.Namespace,
    cluster: Cluster,
    layout: LabLayout,
    ask: Callable[[str, str], str] | None,
) -> tuple[ExtendRequest, ExtendDefaults, list[Problem]]:
    """The request lkctl's options describe; unspecified fields from defaults or ``ask``."""
    d = extend.defaults(
        cluster, layout, template_server=args.template, tag=args.tag, target_server=args.target
    )
    base = d.request
    missing: list[Problem] = []

    def value(field_name: str, given: object, default: object, label: str) -> object:
        if given is not None:
            return given
        if args.accept_defaults:
            return default
        if ask is not None:
            answer = ask(label, "" if default is None else str(default))
            return answer if answer != "" else default
        option = "--" + next(
            o for f, o, _ in (*_EXTEND_OPTIONS, *_DK_OPTIONS) if f == field_name
        ).replace("_", "-")
        shown = "none" if default is None and field_name == "bitmap_file" else default
        missing.append(
            Problem(
                field_name,
                "not_given",
                f"no value given (default {shown}); pass {option} {shown} or --accept-defaults",
            )
        )
        return default

    template = args.template or base.template_server
    fields: dict[str, Any] = {}
    for field_name, option, label in _EXTEND_OPTIONS:
        if field_name not in d.shown and getattr(args, option) is None:
            continue
        fields[field_name] = value(
            field_name, getattr(args, option), getattr(base, field_name), label
        )
    dks = []
    for i, page in enumerate(d.pages):
        entry: dict[str, Any] = {}
        for field_name, option, label in _DK_OPTIONS:
            if field_name not in page.shown:
                continue
            given = getattr(args, option) if i == 0 else None
            if field_name == "bitmap_file" and isinstance(given, str) and given.lower() == "none":
                entry[field_name] = None
                continue
            default = getattr(page.defaults, field_name)
            got = value(field_name, given, default, f"{label} ({page.template_dk_tag})")
            if field_name == "bitmap_file" and isinstance(got, str) and got.lower() == "none":
                got = None
            entry[field_name] = got
        dks.append(dataclasses.replace(page.defaults, **entry))
    target_server = fields.get("target_server", base.target_server)
    if target_server != base.target_server and args.target is None:
        # A target typed at the prompt changes the defaults that depend on it.
        d = extend.defaults(
            cluster,
            layout,
            template_server=template,
            tag=args.tag,
            target_server=str(target_server),
        )
    request = ExtendRequest(
        template_server=template,
        tag_to_extend=args.tag,
        target_server=str(target_server),
        switchback_type=str(fields.get("switchback_type", base.switchback_type)),
        target_priority=fields.get("target_priority", base.target_priority),
        template_priority=fields.get("template_priority", base.template_priority),
        datakeeper=tuple(dks),
    )
    return request, d, missing


def _prompt(label: str, default: str) -> str:
    return input(f"{label} [{default}]: ").strip()


def cmd_extend(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        cluster = backend.cluster()
        ask = (
            _prompt if (not args.accept_defaults and not args.json and sys.stdin.isatty()) else None
        )
        request, d, missing = extend_request_from_args(args, cluster, backend.layout, ask)
        if missing:
            raise CheckFailed(missing)
        problems = extend.check_request(cluster, backend.layout, request)
        if args.dry_run:
            titles = [] if problems else extend.plan(cluster, backend.layout, request).titles
            if args.json:
                _print_json(
                    out,
                    {
                        "request": request.to_json(),
                        "shown": list(d.shown),
                        "notes": d.notes
                        | {
                            f"bitmap_file:{p.resource_id}": p.bitmap_note
                            for p in d.pages
                            if p.bitmap_note
                        },
                        "problems": [dataclasses.asdict(p) for p in problems],
                        "plan": titles,
                    },
                )
            else:
                _print_dry_run(out, request, d, problems, titles)
            return EXIT_USAGE if problems else EXIT_OK
        if problems:
            raise CheckFailed(problems)
        the_plan = extend.plan(cluster, backend.layout, request)

        def on_step(index: int, total: int, title: str, status: str) -> None:
            if not args.json and status != "running":
                print(f"[{index + 1}/{total}] {title}: {status}", file=out, flush=True)

        result = extend.execute(backend, the_plan, _session(args, backend), on_step=on_step)
        if args.wait:
            state = _wait_for_target(
                backend,
                result.hierarchy_id,
                request.target_server,
                None if args.json else sys.stderr,
            )
            if state is not MirrorState.TARGET:
                print(
                    f"lkctl: the resync to {request.target_server} stopped: {state}",
                    file=sys.stderr,
                )
                return EXIT_FAILED
        if args.json:
            _print_json(
                out,
                {
                    "ok": True,
                    "request": request.to_json(),
                    "steps": list(result.steps),
                    "message": result.message,
                    "hierarchy": _hierarchy_json(
                        backend.store.hierarchy(result.hierarchy_id), backend.cluster()
                    ),
                },
            )
        else:
            print(result.message, file=out)
        return EXIT_OK
    finally:
        backend.close()


def _print_dry_run(
    out: TextIO,
    request: ExtendRequest,
    d: ExtendDefaults,
    problems: list[Problem],
    titles: list[str],
) -> None:
    print("Extend Resource Hierarchy (dry run: nothing is changed)", file=out)
    for name in extend.PRE_EXTEND_FIELDS:
        if name in d.shown:
            print(f"  {extend.LABELS[name]:<24} {getattr(request, name)}", file=out)
    for page in d.pages:
        dk = request.datakeeper_for(page.resource_id) or page.defaults
        print(f"  DataKeeper resource {page.template_dk_tag}:", file=out)
        for name in page.shown:
            value = getattr(dk, name)
            shown = "None (every resync is a full resync)" if value is None else value
            print(f"    {extend.LABELS[name]:<22} {shown}", file=out)
        if page.bitmap_note:
            print(f"    note: {page.bitmap_note}", file=out)
    if problems:
        print("Checks failed:", file=out)
        for p in problems:
            print(f"  {p.field}: {p.message}", file=out)
        return
    print("Pre-extend checks were successful.", file=out)
    print("Plan:", file=out)
    for i, title in enumerate(titles, 1):
        print(f"  {i}. {title}", file=out)


def _wait_for_target(
    backend: LabBackend, hierarchy_id: int, target: str, bar: TextIO | None
) -> MirrorState | str:
    """Follow the mirror targets on ``target`` until they are all Target (or fail)."""
    import time

    while True:
        h = backend.store.hierarchy(hierarchy_id)
        rows = [t for m in (h.mirrors if h else ()) for t in m.targets if t.server == target]
        if not rows:
            return "the mirror target is gone"
        bad = next((t for t in rows if t.state is MirrorState.OUT_OF_SYNC), None)
        if bad is not None:
            return f"Out of Sync ({bad.reason})" if bad.reason else "Out of Sync"
        if all(t.state is MirrorState.TARGET for t in rows):
            if bar is not None:
                bar.write(f"\r{target}: Target (in sync){' ' * 30}\n")
            return MirrorState.TARGET
        if bar is not None:
            t = rows[0]
            filled = t.percent * 30 // 100
            bar.write(f"\r{target}: [{'#' * filled}{'.' * (30 - filled)}] {mirror_text(t)}   ")
            bar.flush()
        time.sleep(0.2)


def cmd_unextend(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        the_plan = hierarchy_ops.plan_unextend(
            backend.cluster(), backend.layout, hierarchy_ops.UnextendRequest(args.tag, args.server)
        )
        return _run_op(backend, the_plan, args, out)
    finally:
        backend.close()


def cmd_delete(args: argparse.Namespace, out: TextIO) -> int:
    backend = LabBackend()
    try:
        the_plan = hierarchy_ops.plan_delete(
            backend.cluster(), backend.layout, hierarchy_ops.DeleteRequest(args.tag)
        )
        if not (args.yes or args.dry_run) and sys.stdin.isatty():
            answer = input(f"Delete {args.tag} from every server? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing changed.", file=out)
                return EXIT_OK
        return _run_op(backend, the_plan, args, out)
    finally:
        backend.close()


def _run_op(
    backend: LabBackend, the_plan: hierarchy_ops.OpPlan, args: argparse.Namespace, out: TextIO
) -> int:
    if args.dry_run:
        if args.json:
            _print_json(out, {"plan": the_plan.titles})
        else:
            for i, title in enumerate(the_plan.titles, 1):
                print(f"  {i}. {title}", file=out)
        return EXIT_OK
    message = hierarchy_ops.execute(backend, the_plan, _session(args, backend))
    if args.json:
        _print_json(out, {"ok": True, "steps": the_plan.titles, "message": message})
    else:
        print(message, file=out)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
