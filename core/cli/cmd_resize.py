"""``lkctl mirror resize TAG --size 128M``: grow a mirror on every server."""

from __future__ import annotations

import argparse
from typing import TextIO

from core.cli.auth import cluster
from core.cli.output import EXIT_OK, print_json
from core.cli.parser import SubParsers
from core.operations import resize
from core.permissions import Op


def register(msub: SubParsers) -> None:
    """Under ``lkctl mirror``."""
    r = msub.add_parser(
        "resize",
        help="grow a mirror's volume on every server (targets first, then the source); "
        "the new space is resynced",
    )
    r.add_argument("tag", metavar="TAG", help="the DataKeeper resource")
    r.add_argument(
        "--size",
        required=True,
        metavar="SIZE",
        help="the new size: bytes, or K, M, G, T (powers of 1024), e.g. 128M; never smaller",
    )
    r.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    r.add_argument("--json", action="store_true")
    r.set_defaults(handler=cmd_mirror_resize, op=Op.RESIZE_MIRROR)


def cmd_mirror_resize(args: argparse.Namespace, out: TextIO) -> int:
    request = resize.ResizeRequest(args.tag, args.size)
    with cluster(args) as (backend, session):
        the_plan = resize.plan(backend, request)
        if args.dry_run:
            if args.json:
                print_json(out, {"ok": True, "dry_run": True, "plan": the_plan.titles})
            else:
                for line in resize.dry_run_text(the_plan):
                    print(line, file=out)
            return EXIT_OK
        message = resize.resize(backend, request, session)
    if args.json:
        print_json(out, {"ok": True, "steps": the_plan.titles, "message": message})
    else:
        print(message, file=out)
    return EXIT_OK
