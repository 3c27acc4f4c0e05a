"""``lkctl create --kind ip|app``: Create Resource Hierarchy for an IP address or a
Generic Application (``--kind datakeeper``, the default, is :mod:`core.cli.cmd_create`)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TextIO

from core.backend import Backend
from core.checks import Problem
from core.cli.auth import cluster
from core.cli.output import EXIT_OK, EXIT_USAGE, hierarchy_json, print_json
from core.errors import CheckFailed
from core.model import Cluster
from core.operations import create, create_kinds
from core.rules import kinds as rules

KINDS = ("datakeeper", rules.IP, rules.APP)
# The options of a DataKeeper hierarchy (not for --kind ip|app), and of the other kinds.
DATAKEEPER_OPTIONS = (
    "type",
    "disk",
    "size_mib",
    "mount_point",
    "root_tag",
    "fs_type",
    "dk_tag",
    "bitmap",
    "asynchronous",
)
KIND_OPTIONS = {
    rules.IP: ("tag", "address", "interface"),
    rules.APP: ("tag", "start", "stop", "monitor", "restart_mode"),
}
OPTIONAL = ("stop", "monitor")  # may stay empty without --accept-defaults


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kind",
        metavar="datakeeper|ip|app",
        default="datakeeper",
        help="the recovery kit: a DataKeeper hierarchy (the default), an IP address, or a "
        "Generic Application",
    )
    p.add_argument("--tag", metavar="TAG", help="ip, app: the Resource Tag")
    p.add_argument("--address", metavar="A/N", help="ip: the address in CIDR, e.g. 10.214.0.100/24")
    p.add_argument("--interface", metavar="IF", help="ip: the network interface, e.g. eth0")
    p.add_argument("--start", metavar="CMD", help="app: the start command (restore)")
    p.add_argument("--stop", metavar="CMD", help="app: the stop command (remove)")
    p.add_argument("--monitor", metavar="CMD", help="app: the monitor command (quickCheck)")
    p.add_argument(
        "--restart-mode",
        metavar="yes|no|N",
        help="app: yes restarts once in place before failover (LifeKeeper's local "
        "recovery), no fails over at once, N restarts N times",
    )


def _option(name: str) -> str:
    return "--" + name.replace("_", "-").replace("asynchronous", "async")


def wrong_options(args: argparse.Namespace) -> list[Problem]:
    """Options given that do not belong to ``--kind``."""
    kind = args.kind
    if kind not in KINDS:
        return [
            Problem("kind", "unknown_kind", f"--kind {kind!r} is not one of {', '.join(KINDS)}.")
        ]
    mine = set(DATAKEEPER_OPTIONS) if kind == "datakeeper" else set(KIND_OPTIONS[kind])
    others = set(DATAKEEPER_OPTIONS) | {o for v in KIND_OPTIONS.values() for o in v}
    return [
        Problem(
            "kind",
            "wrong_option",
            f"{_option(name)} is not an option of --kind {kind}.",
        )
        for name in sorted(others - mine)
        if getattr(args, name, None) is not None
    ]


def request_from_args(
    args: argparse.Namespace, backend: Backend, snapshot: Cluster
) -> tuple[create_kinds.ResourceRequest, create_kinds.ResourceDefaults]:
    d = create_kinds.defaults(backend, args.kind, snapshot, server=args.server)
    values: dict[str, str] = {}
    missing = []
    for name in ("server", "switchback_type", *KIND_OPTIONS[args.kind]):
        option = "switchback" if name == "switchback_type" else name
        given = getattr(args, option)
        default = getattr(d.request, name)
        values[name] = given if given is not None else default
        if given is None and not args.accept_defaults and name not in OPTIONAL:
            shown = f" (default {default})" if default else ""
            missing.append(
                Problem(
                    name,
                    "not_given",
                    f"no value given{shown}; pass {_option(option)}"
                    + (f" {default} or --accept-defaults" if default else ""),
                )
            )
    if missing:
        raise CheckFailed(missing)
    return create_kinds.ResourceRequest(kind=args.kind, **values), d


def cmd_create_kind(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        snapshot = backend.snapshot()
        request, d = request_from_args(args, backend, snapshot)
        facts = create_kinds.facts_for(backend, snapshot)
        problems = rules.check_request(snapshot, facts, request)
        if args.dry_run:
            titles = [] if problems else create_kinds.plan_of(snapshot, facts, request).titles
            _print_dry_run(args, out, request, d, problems, titles)
            return EXIT_USAGE if problems else EXIT_OK
        if problems:
            raise CheckFailed(problems)
        result = create.execute(backend, create_kinds.plan_of(snapshot, facts, request), session)
        if args.json:
            after = backend.snapshot()
            print_json(
                out,
                {
                    "ok": True,
                    "request": request.to_json(),
                    "message": result.message,
                    "hierarchy": hierarchy_json(after.hierarchy(result.hierarchy_id), after),
                },
            )
        else:
            print(result.message, file=out)
        return EXIT_OK


def _print_dry_run(
    args: argparse.Namespace,
    out: TextIO,
    request: create_kinds.ResourceRequest,
    d: create_kinds.ResourceDefaults,
    problems: list[Problem],
    titles: list[str],
) -> None:
    if args.json:
        print_json(
            out,
            {
                "request": request.to_json(),
                "note": d.note,
                "problems": [dataclasses.asdict(p) for p in problems],
                "plan": titles,
            },
        )
        return
    for name in request.shown:
        print(f"  {rules.LABELS[name]:<32} {getattr(request, name)}", file=out)
    if request.kind == rules.IP and d.note:
        print(f"  ({d.note})", file=out)
    for p in problems:
        print(f"  {p.field}: {p.message}", file=out)
    for i, title in enumerate(titles, 1):
        print(f"  {i}. {title}", file=out)
