"""``lkctl create``: Create Resource Hierarchy (DataKeeper; ``--kind ip|app`` in
:mod:`core.cli.cmd_create_kinds`)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TextIO

from core.backend import Backend
from core.checks import Problem
from core.cli import cmd_create_kinds
from core.cli.auth import cluster
from core.cli.output import EXIT_OK, EXIT_USAGE, hierarchy_json, print_json
from core.cli.parser import SubParsers
from core.errors import CheckFailed
from core.model import Cluster
from core.operations import create
from core.permissions import Op
from core.rules import create as rules

# Which option fills which request field.
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
_TYPES = {"new": rules.NEW_FS, "existing": rules.EXISTING_FS, "dk-only": rules.DK_ONLY}


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "create",
        help="create a resource hierarchy: DataKeeper, IP (--kind ip) or Generic "
        "Application (--kind app)",
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
    cmd_create_kinds.add_arguments(p)
    p.add_argument("--accept-defaults", action="store_true")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_create, op=Op.CREATE_HIERARCHY)


def create_request(
    args: argparse.Namespace, backend: Backend, snapshot: Cluster
) -> tuple[create.CreateRequest, create.CreateDefaults]:
    """The request the options describe; every option not given from the defaults with
    ``--accept-defaults``, else refused (CheckFailed naming each)."""
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
        backend,
        snapshot,
        server=args.server,
        hierarchy_type=_TYPES.get(kind or "new", rules.NEW_FS),
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
        if given is not None:
            values[field_name] = given
            continue
        values[field_name] = default
        optional = field_name == "asynchronous" or (
            field_name == "disk_size_mib" and default is None
        )
        if field_name in d.shown and not optional and not args.accept_defaults:
            flag = "--" + option.replace("_", "-")
            missing.append(
                Problem(
                    field_name,
                    "not_given",
                    f"no value given (default {default}); pass {flag} {default} or "
                    "--accept-defaults",
                )
            )
    if missing:
        raise CheckFailed(missing)
    return create.CreateRequest(**values), d


def cmd_create(args: argparse.Namespace, out: TextIO) -> int:
    wrong = cmd_create_kinds.wrong_options(args)
    if wrong:
        raise CheckFailed(wrong)
    if args.kind != "datakeeper":
        return cmd_create_kinds.cmd_create_kind(args, out)
    with cluster(args) as (backend, session):
        snapshot = backend.snapshot()
        request, d = create_request(args, backend, snapshot)
        facts = create.facts_for(backend, snapshot, request)
        problems = rules.check_request(snapshot, facts, request)
        if args.dry_run:
            titles = [] if problems else create.plan_of(snapshot, facts, request).titles
            _print_dry_run(args, out, request, d, problems, titles)
            return EXIT_USAGE if problems else EXIT_OK
        if problems:
            raise CheckFailed(problems)
        result = create.execute(backend, create.plan_of(snapshot, facts, request), session)
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
    request: create.CreateRequest,
    d: create.CreateDefaults,
    problems: list[Problem],
    titles: list[str],
) -> None:
    if args.json:
        print_json(
            out,
            {
                "request": request.to_json(),
                "problems": [dataclasses.asdict(p) for p in problems],
                "plan": titles,
            },
        )
        return
    for name in d.shown:
        print(f"  {rules.LABELS[name]:<32} {getattr(request, name)}", file=out)
    for p in problems:
        print(f"  {p.field}: {p.message}", file=out)
    for i, title in enumerate(titles, 1):
        print(f"  {i}. {title}", file=out)
