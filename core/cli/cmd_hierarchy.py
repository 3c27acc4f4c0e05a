"""``lkctl unextend``, ``delete``, ``inservice``, ``outofservice``, ``switchover``."""

from __future__ import annotations

import argparse
from typing import TextIO

from core.backend import Backend
from core.cli.auth import cluster, confirm
from core.cli.output import EXIT_OK, print_json, print_lines
from core.cli.parser import SubParsers, add_yes
from core.operations import hierarchy as hierarchy_ops
from core.operations import service
from core.permissions import Op
from core.plan import Plan
from core.session import Session


def register(sub: SubParsers) -> None:
    p = sub.add_parser("unextend", help="remove a hierarchy from one standby server")
    p.add_argument("tag", metavar="TAG")
    p.add_argument("--server", metavar="SERVER", required=True)
    add_yes(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_unextend, op=Op.UNEXTEND_HIERARCHY)
    d = sub.add_parser("delete", help="remove a hierarchy from every server")
    d.add_argument("tag", metavar="TAG")
    add_yes(d)
    d.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    d.add_argument("--json", action="store_true")
    d.set_defaults(handler=cmd_delete, op=Op.DELETE_HIERARCHY)

    ins = sub.add_parser("inservice", help="bring a hierarchy in service on a server")
    ins.add_argument("tag", metavar="TAG")
    ins.add_argument("--on", metavar="SERVER", required=True, dest="server")
    ins.add_argument("--json", action="store_true")
    ins.set_defaults(handler=cmd_service, action="inservice", op=Op.IN_SERVICE)
    outs = sub.add_parser("outofservice", help="take a hierarchy out of service")
    outs.add_argument("tag", metavar="TAG")
    outs.add_argument("--json", action="store_true")
    outs.set_defaults(handler=cmd_service, action="outofservice", server=None, op=Op.OUT_OF_SERVICE)
    sw = sub.add_parser("switchover", help="move a hierarchy to another server")
    sw.add_argument("tag", metavar="TAG")
    sw.add_argument("--to", metavar="SERVER", required=True, dest="server")
    sw.add_argument("--json", action="store_true")
    sw.set_defaults(handler=cmd_service, action="switchover", op=Op.SWITCHOVER)


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
        if args.json:
            print_json(out, {"plan": the_plan.titles})
        else:
            for i, title in enumerate(the_plan.titles, 1):
                print(f"  {i}. {title}", file=out)
        return EXIT_OK
    message = hierarchy_ops.execute(backend, the_plan, session)
    if args.json:
        print_json(out, {"ok": True, "steps": the_plan.titles, "message": message})
    else:
        print(message, file=out)
    return EXIT_OK


def cmd_service(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        if args.action == "inservice":
            lines = service.in_service(backend, args.tag, args.server, session)
        elif args.action == "outofservice":
            lines = service.out_of_service(backend, args.tag, session)
        else:
            lines = service.switchover(backend, args.tag, args.server, session)
        return print_lines(args, out, lines)
