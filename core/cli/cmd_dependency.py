"""``lkctl dependency create|delete PARENT CHILD``: LifeKeeper's dep_create / dep_remove."""

from __future__ import annotations

import argparse
from typing import TextIO

from core.backend import require
from core.capabilities import DEPENDENCIES
from core.cli.auth import cluster
from core.cli.output import EXIT_OK, EXIT_USAGE, hierarchy_json, print_json
from core.cli.parser import SubParsers
from core.errors import CheckFailed
from core.operations import dependency
from core.permissions import Op
from core.rules import dependency as rules


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "dependency",
        help="create or delete a dependency between two resources (dep_create, dep_remove)",
        description="Create Dependency / Delete Dependency, as LifeKeeper's dep_create and "
        "dep_remove: PARENT depends on CHILD (CHILD comes in service first, goes out of "
        "service last), on every server where both are defined.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="create|delete")
    verbs.required = True
    for verb, op, text in (
        ("create", Op.CREATE_DEPENDENCY, "make PARENT depend on CHILD (dep_create)"),
        ("delete", Op.DELETE_DEPENDENCY, "PARENT no longer depends on CHILD (dep_remove)"),
    ):
        v = verbs.add_parser(verb, help=text, description=text)
        v.add_argument("parent", metavar="PARENT", help="the parent resource's tag")
        v.add_argument("child", metavar="CHILD", help="the child resource's tag")
        v.add_argument(
            "--server",
            metavar="SERVER",
            help="the server whose resources PARENT and CHILD are (default: where the "
            "parent's hierarchy is in service)",
        )
        v.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
        v.add_argument("--json", action="store_true")
        v.set_defaults(handler=cmd_dependency, op=op)


def cmd_dependency(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        what = "Create Dependency" if args.verb == "create" else "Delete Dependency"
        require(backend, DEPENDENCIES, what)
        snapshot = backend.snapshot()
        server = args.server or rules.default_server(snapshot, args.parent)
        request = rules.DependencyRequest(server, args.parent, args.child)
        check = rules.check_create if args.verb == "create" else rules.check_delete
        problems = check(snapshot, request)
        if problems and not args.dry_run:
            raise CheckFailed(problems)
        make = dependency.create_plan if args.verb == "create" else dependency.delete_plan
        plan = None if problems else make(snapshot, request)
        if args.dry_run:
            titles = plan.titles if plan is not None else []
            if args.json:
                print_json(
                    out,
                    {
                        "request": request.to_json(),
                        "problems": [vars(p) for p in problems],
                        "plan": titles,
                    },
                )
            else:
                for p in problems:
                    print(f"  {p.field}: {p.message}", file=out)
                for i, title in enumerate(titles, 1):
                    print(f"  {i}. {title}", file=out)
            return EXIT_USAGE if problems else EXIT_OK
        assert plan is not None
        result = backend.apply(plan, session)
        if args.json:
            after = backend.snapshot()
            print_json(
                out,
                {
                    "ok": True,
                    "request": request.to_json(),
                    "message": result.message,
                    "steps": plan.titles,
                    "hierarchies": [
                        hierarchy_json(after.hierarchy(h.id), after)
                        for h in after.hierarchies
                        if any(r.tag in (args.parent, args.child) for r in h.resources)
                    ],
                },
            )
        else:
            print(result.message, file=out)
            for line in plan.extra:
                print(line, file=out)
        return EXIT_OK
