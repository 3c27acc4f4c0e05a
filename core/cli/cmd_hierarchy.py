"""``lkctl unextend``, ``delete``, ``inservice``, ``outofservice``, ``switchover``."""

from __future__ import annotations

import argparse
from typing import TextIO

from core.backend import Backend
from core.cli.auth import cluster, confirm
from core.cli.output import EXIT_OK, print_json, print_lines
from core.cli.parser import SubParsers, add_yes
from core.operations import hierarchy as hierarchy_ops
from core.operations import service, whatif
from core.permissions import Op
from core.plan import Plan
from core.rules.whatif import dry_run_text
from core.session import Session


def register(sub: SubParsers) -> None:
    p = sub.add_parser("unextend", help="remove a hierarchy from one standby server")
    p.add_argument("tag", metavar="TAG")
    p.add_argument("--server", metavar="SERVER", required=True)
    add_yes(p)
    _add_dry_run(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_unextend, op=Op.UNEXTEND_HIERARCHY)
    d = sub.add_parser("delete", help="remove a hierarchy from every server")
    d.add_argument("tag", metavar="TAG")
    add_yes(d)
    _add_dry_run(d)
    d.add_argument("--json", action="store_true")
    d.set_defaults(handler=cmd_delete, op=Op.DELETE_HIERARCHY)

    ins = sub.add_parser("inservice", help="bring a hierarchy in service on a server")
    ins.add_argument("tag", metavar="TAG")
    ins.add_argument("--on", metavar="SERVER", required=True, dest="server")
    _add_dry_run(ins)
    ins.add_argument("--json", action="store_true")
    ins.set_defaults(handler=cmd_service, action="inservice", op=Op.IN_SERVICE)
    outs = sub.add_parser("outofservice", help="take a hierarchy out of service")
    outs.add_argument("tag", metavar="TAG")
    _add_dry_run(outs)
    outs.add_argument("--json", action="store_true")
    outs.set_defaults(handler=cmd_service, action="outofservice", server=None, op=Op.OUT_OF_SERVICE)
    sw = sub.add_parser("switchover", help="move a hierarchy to another server")
    sw.add_argument("tag", metavar="TAG")
    sw.add_argument("--to", metavar="SERVER", required=True, dest="server")
    _add_dry_run(sw)
    sw.add_argument("--json", action="store_true")
    sw.set_defaults(handler=cmd_service, action="switchover", op=Op.SWITCHOVER)


def _add_dry_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and what it would do to every hierarchy; change nothing",
    )


def print_dry_run(backend: Backend, the_plan: Plan, args: argparse.Namespace, out: TextIO) -> int:
    """The plan and its what-if (the confirmation dialog's plan page shows the same)."""
    what_if = whatif.what_if(backend, the_plan)
    lines = dry_run_text(the_plan, what_if)
    if getattr(args, "json", False):
        print_json(
            out,
            {
                "ok": True,
                "dry_run": True,
                "plan": the_plan.titles,
                "what_if": what_if,
                "text": lines,
            },
        )
    else:
        for line in lines:
            print(line, file=out)
    return EXIT_OK


def cmd_unextend(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        the_plan = hierarchy_ops.plan_unextend(
            backend.snapshot(), hierarchy_ops.UnextendRequest(args.tag, args.server)
        )
        question = f"Unextend {args.tag} from {args.server} (its mirror target and bitmap go)?"
        if not confirm(args, question):
            print("Nothing changed.", file=out)
            return EXIT_OK
        return _run_op(backend, session, the_plan, args, out)


def cmd_delete(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        the_plan = hierarchy_ops.plan_delete(
            backend.snapshot(), hierarchy_ops.DeleteRequest(args.tag)
        )
        if not confirm(args, f"Delete {args.tag} from every server?"):
            print("Nothing changed.", file=out)
            return EXIT_OK
        return _run_op(backend, session, the_plan, args, out)


def _run_op(
    backend: Backend,
    session: Session,
    the_plan: Plan,
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    if args.dry_run:
        return print_dry_run(backend, the_plan, args, out)
    message = hierarchy_ops.execute(backend, the_plan, session)
    if args.json:
        print_json(out, {"ok": True, "steps": the_plan.titles, "message": message})
    else:
        print(message, file=out)
    return EXIT_OK


def cmd_service(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        if args.dry_run:
            shown = backend.snapshot()
            if args.action == "inservice":
                the_plan = service.plan_in_service(shown, args.tag, args.server)
            elif args.action == "outofservice":
                the_plan = service.plan_out_of_service(shown, args.tag)
            else:
                the_plan = service.plan_switchover(shown, args.tag, args.server)
            return print_dry_run(backend, the_plan, args, out)
        if args.action == "inservice":
            lines = service.in_service(backend, args.tag, args.server, session)
        elif args.action == "outofservice":
            lines = service.out_of_service(backend, args.tag, session)
        else:
            lines = service.switchover(backend, args.tag, args.server, session)
        return print_lines(args, out, lines)
