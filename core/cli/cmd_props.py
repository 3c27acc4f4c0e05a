"""``lkctl server``, ``lkctl resource``, ``lkctl commpath``, ``lkctl confirm-failover`` and
the lab's ``commpath-down``/``commpath-up``: Server and Resource Properties, comm paths,
and the answer to a failover that waits for the administrator."""

from __future__ import annotations

import argparse
from typing import Any, TextIO, cast

from core import backend as capabilities
from core.backend import COMM_PATH_FAULTS, SERVER_SETTINGS, CommPathFaults, ServerSettings
from core.checks import Problem
from core.cli.auth import cluster, confirm
from core.cli.output import EXIT_OK, print_json, print_lines, table
from core.cli.parser import Parser, SubParsers, add_yes
from core.errors import CheckFailed
from core.model import Cluster, CommPath, Hierarchy, Server
from core.operations import commpath as commpath_ops
from core.operations import properties as props
from core.permissions import Op
from core.rules import commpaths
from core.rules import resource_properties as resource_rules
from core.rules import service as service_rules
from core.rules.server_properties import request_of


def register(sub: SubParsers) -> None:
    _register_server(sub)
    _register_resource(sub)
    _register_commpath(sub)
    conf = sub.add_parser(
        "confirm-failover",
        help="let the failovers waiting for a confirmation on SERVER proceed (--deny: block)",
    )
    conf.add_argument("server", metavar="SERVER", help="the server they would fail over to")
    conf.add_argument("--deny", action="store_true", help="block them instead")
    conf.add_argument("--json", action="store_true")
    conf.set_defaults(handler=cmd_confirm_failover, op=Op.CONFIRM_FAILOVER)


def register_lab(lab_sub: SubParsers) -> None:
    """``lkctl lab commpath-down|commpath-up SERVER PEER [--path N]``."""
    for action, text in (
        ("down", "fail a comm path (every path between the two without --path)"),
        ("up", "bring a failed comm path back (every path between the two without --path)"),
    ):
        p = lab_sub.add_parser(f"commpath-{action}", help=text)
        p.add_argument("server", metavar="SERVER")
        p.add_argument("peer", metavar="PEER")
        p.add_argument("--path", default="", metavar="N", help="the path's priority")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=cmd_lab_commpath, up=action == "up", op=Op.COMM_PATH_FAULT)


def _register_server(sub: SubParsers) -> None:
    server = sub.add_parser("server", help="Server Properties")
    ssub = server.add_subparsers(dest="server_command", metavar="ACTION", parser_class=Parser)
    ssub.required = True
    show = ssub.add_parser("properties", help="a server's properties, comm paths and peers")
    show.add_argument("server", metavar="SERVER")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_server_properties, op=Op.VIEW)
    set_ = ssub.add_parser("set", help="change a server's properties (those given)")
    set_.add_argument("server", metavar="SERVER")
    set_.add_argument("--shutdown-strategy", metavar="switchover|do-not-switchover", default=None)
    set_.add_argument(
        "--confirm-failover",
        action="append",
        default=[],
        metavar="PEER=on|off",
        help="failovers from PEER wait for a confirmation (on) or not (off); repeatable",
    )
    set_.add_argument("--confirm-timeout", metavar="SECONDS", default=None)
    set_.add_argument("--confirm-default", metavar="proceed|block", default=None)
    set_.add_argument("--json", action="store_true")
    set_.set_defaults(handler=cmd_server_set, op=Op.SET_SERVER_PROPERTIES)


def _register_resource(sub: SubParsers) -> None:
    res = sub.add_parser("resource", help="Resource Properties")
    rsub = res.add_subparsers(dest="resource_command", metavar="ACTION", parser_class=Parser)
    rsub.required = True
    show = rsub.add_parser("properties", help="a resource's switchback, priorities and mirror")
    show.add_argument("tag", metavar="TAG")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_resource_properties, op=Op.VIEW)
    set_ = rsub.add_parser("set", help="change a resource's properties (those given)")
    set_.add_argument("tag", metavar="TAG")
    set_.add_argument("--switchback", metavar="intelligent|automatic", default="")
    set_.add_argument(
        "--priority", action="append", default=[], metavar="SERVER=N", help="repeatable"
    )
    set_.add_argument(
        "--async",
        dest="asynchronous",
        action="append",
        default=[],
        metavar="TARGET=on|off",
        help="asynchronous replication to TARGET (a DataKeeper resource); repeatable",
    )
    set_.add_argument("--speed-limit", metavar="KBPS", default=None)
    set_.add_argument(
        "--compression", metavar="0-9", default=None, help="only where the engine compresses"
    )
    set_.add_argument("--json", action="store_true")
    set_.set_defaults(handler=cmd_resource_set, op=Op.SET_RESOURCE_PROPERTIES)


def _register_commpath(sub: SubParsers) -> None:
    cp = sub.add_parser("commpath", help="communication paths between servers")
    csub = cp.add_subparsers(dest="commpath_command", metavar="ACTION", parser_class=Parser)
    csub.required = True
    create = csub.add_parser("create", help="create a comm path between two servers")
    create.add_argument("server", metavar="SERVER")
    create.add_argument("peer", metavar="PEER")
    create.add_argument("--local", required=True, metavar="ADDRESS", help="on SERVER")
    create.add_argument("--remote", required=True, metavar="ADDRESS", help="on PEER")
    create.add_argument("--priority", default="", metavar="N", help="1-99; default: next free")
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=cmd_commpath_create, op=Op.CREATE_COMM_PATH)
    delete = csub.add_parser("delete", help="delete a comm path")
    delete.add_argument("server", metavar="SERVER")
    delete.add_argument("peer", metavar="PEER")
    delete.add_argument("--path", default="", metavar="N", help="its priority")
    delete.add_argument("--json", action="store_true")
    add_yes(delete)
    delete.set_defaults(handler=cmd_commpath_delete, op=Op.DELETE_COMM_PATH)
    ls = csub.add_parser("list", help="the comm paths and their state")
    ls.add_argument("server", nargs="?", default=None, metavar="SERVER")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_commpath_list, op=Op.VIEW)


# -- parsing ------------------------------------------------------------------------------------
def _pairs(values: list[str], field: str, label: str) -> list[tuple[str, str]]:
    found = []
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name.strip():
            raise CheckFailed(
                [Problem(field, "bad_pair", f"{label} {value!r} is not SERVER=VALUE.")]
            )
        found.append((name.strip(), setting.strip()))
    return found


def _on_off(pairs: list[tuple[str, str]], field: str, label: str) -> dict[str, bool]:
    result = {}
    for name, value in pairs:
        if value.lower() not in ("on", "off"):
            raise CheckFailed(
                [Problem(field, "not_on_off", f"{label} {name}={value!r}: use on or off.")]
            )
        result[name] = value.lower() == "on"
    return result


# -- server -------------------------------------------------------------------------------------
def server_json(c: Cluster, server: Server) -> dict[str, Any]:
    return {
        "name": server.name,
        "state": server.state.name,
        "shutdown_strategy": server.shutdown_strategy.option,
        "confirm_failover_from": list(server.confirm_failover_from),
        "confirm_timeout": server.confirm_timeout,
        "confirm_default": server.confirm_default.value,
        "peers": [
            {
                "peer": v.peer,
                "state": v.state.name,
                "alive_paths": v.alive_paths,
                "paths": [_path_json(p) for p in v.paths],
            }
            for v in commpaths.peers(c, server.name)
        ],
        "pending_failovers": [
            {
                "hierarchy": p.root_tag,
                "from": p.from_server,
                "to": p.to_server,
                "deadline": p.deadline,
                "default": p.default.value,
                "reason": p.reason,
            }
            for p in c.pending_failovers
            if server.name in (p.from_server, p.to_server)
        ],
    }


def _path_json(p: CommPath) -> dict[str, Any]:
    return {
        "server": p.server,
        "peer": p.peer,
        "local_address": p.local_address,
        "remote_address": p.peer_address,
        "priority": p.priority,
        "state": p.state.name,
    }


def cmd_server_properties(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, _session):
        c = backend.snapshot()
    name = service_rules.server(c, args.server)
    server = c.server(name)
    assert server is not None
    if args.json:
        print_json(out, server_json(c, server))
        return EXIT_OK
    confirm_from = ", ".join(server.confirm_failover_from) or "none"
    print(f"Server {server.name}: {server.state.value}", file=out)
    print(f"  Shutdown Strategy: {server.shutdown_strategy.value}", file=out)
    print(f"  Failover Confirmation for failovers from: {confirm_from}", file=out)
    print(
        f"  Confirmation timeout: {server.confirm_timeout} s, then {server.confirm_default.value}",
        file=out,
    )
    for v in commpaths.peers(c, server.name):
        print(f"  Peer {v.peer}: {v.text}", file=out)
    for p in c.pending_failovers:
        if p.to_server == server.name:
            print(
                f"  Waiting: failover of {p.root_tag} from {p.from_server} ({p.reason})",
                file=out,
            )
    return EXIT_OK


def cmd_server_set(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        c = backend.snapshot()
        name = service_rules.server(c, args.server)
        server = c.server(name)
        assert server is not None
        base = request_of(server)
        confirm_from = set(base.confirm_failover_from)
        pairs = _on_off(
            _pairs(args.confirm_failover, "confirm_failover", "--confirm-failover"),
            "confirm_failover",
            "--confirm-failover",
        )
        for peer, on in pairs.items():
            (confirm_from.add if on else confirm_from.discard)(peer)
        request = props.ServerPropertiesRequest(
            name,
            args.shutdown_strategy
            if args.shutdown_strategy is not None
            else base.shutdown_strategy,
            tuple(confirm_from),
            args.confirm_timeout if args.confirm_timeout is not None else base.confirm_timeout,
            args.confirm_default if args.confirm_default is not None else base.confirm_default,
        )
        message = props.set_server(backend, request, session)
    return _said(args, out, message)


def _said(args: argparse.Namespace, out: TextIO, message: str) -> int:
    if getattr(args, "json", False):
        print_json(out, {"ok": True, "message": message})
    else:
        print(message, file=out)
    return EXIT_OK


# -- resource -----------------------------------------------------------------------------------
def resource_json(h: Hierarchy, rid: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tag": h.tag_of(rid),
        "kind": h.kind_of(rid).value,
        "hierarchy": h.root_tag,
        "switchback": h.switchback.value,
        "priorities": {e.server: e.priority for e in h.equivalencies},
    }
    mirror = h.mirror(rid)
    if mirror is not None:
        data["mirror"] = {
            "source": mirror.source,
            "speed_limit_kbps": mirror.speed_limit_kbps,
            "bitmap_file": (src.bitmap_file if (src := h.instance(rid, mirror.source)) else None),
            "targets": [
                {
                    "server": t.server,
                    "state": t.state.name,
                    "asynchronous": mirror.is_asynchronous(t.server),
                }
                for t in mirror.targets
            ],
        }
    return data


def cmd_resource_properties(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, _session):
        c = backend.snapshot()
    h, rid = resource_rules.find(c, args.tag)
    data = resource_json(h, rid)
    if args.json:
        print_json(out, data)
        return EXIT_OK
    print(f"{data['tag']} ({h.kind_of(rid).label}) in {h.root_tag}", file=out)
    print(f"  Switchback Type: {data['switchback']}", file=out)
    shown = ", ".join(
        f"{e.server}={e.priority}" for e in sorted(h.equivalencies, key=lambda e: e.priority)
    )
    print(f"  Priorities: {shown}", file=out)
    if "mirror" in data:
        m = data["mirror"]
        limit = "unlimited" if m["speed_limit_kbps"] == 0 else f"{m['speed_limit_kbps']} KB/s"
        print(f"  Mirror source {m['source']}, speed limit {limit}", file=out)
        print(f"  Bitmap file: {m['bitmap_file'] or 'None'}", file=out)
        for t in m["targets"]:
            mode = "asynchronous" if t["asynchronous"] else "synchronous"
            print(f"  Target {t['server']}: {mode}", file=out)
    return EXIT_OK


def cmd_resource_set(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        priorities = dict(_pairs(args.priority, "priority", "--priority"))
        asynchronous = _on_off(
            _pairs(args.asynchronous, "asynchronous", "--async"), "asynchronous", "--async"
        )
        request = props.ResourcePropertiesRequest(
            args.tag,
            args.switchback,
            priorities,
            asynchronous,
            args.speed_limit,
            args.compression,
        )
        message = props.set_resource(backend, request, session)
    return _said(args, out, message)


# -- comm paths ---------------------------------------------------------------------------------
def cmd_commpath_create(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        request = commpath_ops.CreateCommPathRequest(
            args.server, args.peer, args.local, args.remote, args.priority
        )
        message = commpath_ops.create(backend, request, session)
    return _said(args, out, message)


def cmd_commpath_delete(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        request = commpath_ops.DeleteCommPathRequest(args.server, args.peer, args.path)
        problems = commpaths.delete_problems(backend.snapshot(), request)
        if problems:
            raise CheckFailed(problems)
        if not confirm(args, f"Delete the comm path between {args.server} and {args.peer}?"):
            print("Nothing changed.", file=out)
            return EXIT_OK
        message = commpath_ops.delete(backend, request, session)
    return _said(args, out, message)


def cmd_commpath_list(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, _session):
        c = backend.snapshot()
    order = [s.name for s in c.servers]
    if args.server is not None:
        service_rules.server(c, args.server)
        paths = [p for p in c.comm_paths if p.server == args.server]
        views = [(args.server, v) for v in commpaths.peers(c, args.server)]
    else:  # each path once, from the side of the first of its two servers
        paths = [p for p in c.comm_paths if order.index(p.server) < order.index(p.peer)]
        views = [
            (s, v)
            for s in order
            for v in commpaths.peers(c, s)
            if order.index(s) < order.index(v.peer)
        ]
    if args.json:
        print_json(
            out,
            {
                "paths": [_path_json(p) for p in paths],
                "peers": [
                    {
                        "server": s,
                        "peer": v.peer,
                        "state": v.state.name,
                        "alive_paths": v.alive_paths,
                    }
                    for s, v in views
                ],
            },
        )
        return EXIT_OK
    if not paths:
        print("No comm paths.", file=out)
    else:
        rows = [["SERVER", "PEER", "LOCAL", "REMOTE", "PRIORITY", "STATE"]]
        rows += [
            [p.server, p.peer, p.local_address, p.peer_address, str(p.priority), p.state.value]
            for p in paths
        ]
        for line in table(rows, indent=""):
            print(line, file=out)
    for s, v in views:
        print(f"{s} sees {v.peer}: {v.text}", file=out)
    return EXIT_OK


# -- failovers waiting, the lab's faults --------------------------------------------------------
def cmd_confirm_failover(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        capabilities.require(backend, SERVER_SETTINGS, "lkctl confirm-failover")
        settings = cast(ServerSettings, backend)
        lines = settings.confirm_failover(args.server, not args.deny, session)
    return print_lines(args, out, lines)


def cmd_lab_commpath(args: argparse.Namespace, out: TextIO) -> int:
    action = "up" if args.up else "down"
    with cluster(args) as (backend, session):
        capabilities.require(backend, COMM_PATH_FAULTS, f"lkctl lab commpath-{action}")
        faults = cast(CommPathFaults, backend)
        lines = faults.set_comm_path(args.server, args.peer, args.path, args.up, session)
    return print_lines(args, out, lines)
