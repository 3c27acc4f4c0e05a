"""``lkctl lab …``: the embedded lab cluster (reset, writes, server failures, users)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TextIO, cast

from core import backend as capabilities
from core.backend import (
    MIRROR_WRITES,
    RESET,
    SERVER_POWER,
    SERVER_SETTINGS,
    USERS,
    Backend,
    MirrorWrites,
    Reset,
    ServerPower,
    ServerSettings,
    UserAdmin,
)
from core.checks import Problem
from core.cli import cmd_lab_engine, cmd_props
from core.cli.auth import cluster, confirm
from core.cli.output import EXIT_OK, print_json, print_lines
from core.cli.parser import Parser, SubParsers, add_yes, byte_count
from core.errors import CheckFailed
from core.model import Role
from core.permissions import Op
from core.rules.users import parse_role
from core.session import local_user


def register(sub: SubParsers) -> None:
    lab_parser = sub.add_parser("lab", help="manage the embedded lab cluster")
    lab_sub = lab_parser.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=Parser)
    lab_sub.required = True
    reset = lab_sub.add_parser("reset", help="throw the lab away and create it anew")
    add_yes(reset)
    reset.set_defaults(handler=cmd_lab_reset, op=Op.LAB_RESET)
    write = lab_sub.add_parser("write", help="write through a mirror (bitmap, source, targets)")
    write.add_argument("tag", metavar="TAG", help="the DataKeeper resource")
    write.add_argument("--offset", type=byte_count, required=True, metavar="N")
    write.add_argument("--length", type=byte_count, required=True, metavar="N")
    write.add_argument("--pattern", default="random", metavar="random|zero")
    write.set_defaults(handler=cmd_lab_write, op=Op.LAB_WRITE)
    work = lab_sub.add_parser("workload", help="random writes through a mirror for a while")
    work.add_argument("tag", metavar="TAG", help="the DataKeeper resource")
    work.add_argument("--seconds", type=float, required=True, metavar="N")
    work.add_argument("--rate", type=float, required=True, metavar="MB/s")
    work.set_defaults(handler=cmd_lab_workload, op=Op.LAB_WORKLOAD)
    for name, text, op in (
        ("stop", "stop a lab server (its hierarchies fail over)", Op.STOP_SERVER),
        ("start", "start a lab server again (it rejoins and resyncs)", Op.START_SERVER),
    ):
        srv = lab_sub.add_parser(name, help=text)
        srv.add_argument("server", metavar="SERVER")
        srv.add_argument("--json", action="store_true")
        if name == "stop":
            add_yes(srv)
            srv.add_argument(
                "--clean",
                action="store_true",
                help="stop it cleanly: its Shutdown Strategy applies (lkctl server set)",
            )
            srv.add_argument(
                "--dry-run",
                action="store_true",
                help="print what the failure would do to every hierarchy; change nothing",
            )
        srv.set_defaults(handler=cmd_lab_server, action=name, op=op)
    _register_users(lab_sub)
    cmd_lab_engine.register(lab_sub)
    cmd_props.register_lab(lab_sub)


def _register_users(lab_sub: SubParsers) -> None:
    users_parser = lab_sub.add_parser("user", help="the lab's users and their roles")
    usub = users_parser.add_subparsers(dest="user_command", metavar="ACTION", parser_class=Parser)
    usub.required = True
    add = usub.add_parser("add", help="add a user (the password is asked for)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, metavar="guest|operator|administrator")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (scripts)",
    )
    add.set_defaults(handler=cmd_user, action="add", op=Op.ADD_USER)
    rm = usub.add_parser("remove", help="remove a user")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(handler=cmd_user, action="remove", op=Op.REMOVE_USER)
    ls = usub.add_parser("list", help="list the users")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_user, action="list", op=Op.VIEW)


def cmd_lab_reset(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        lab = cast(Reset, _able(backend, RESET, "lkctl lab reset"))
        if not confirm(args, "Delete every hierarchy and volume of the lab and start anew?"):
            print("Nothing changed.", file=out)
            return EXIT_OK
        print(lab.reset(session), file=out)
    return EXIT_OK


def cmd_lab_write(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        lab = cast(MirrorWrites, _able(backend, MIRROR_WRITES, "lkctl lab write"))
        message = lab.write(args.tag, args.offset, args.length, session, args.pattern)
    print(message, file=out)
    return EXIT_OK


def cmd_lab_workload(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        lab = cast(MirrorWrites, _able(backend, MIRROR_WRITES, "lkctl lab workload"))
        message = lab.workload(args.tag, args.seconds, args.rate, session)
    print(message, file=out)
    return EXIT_OK


def cmd_lab_server(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        power = cast(ServerPower, _able(backend, SERVER_POWER, f"lkctl lab {args.action}"))
        if args.action == "stop" and args.dry_run:
            from core.cli.cmd_hierarchy import print_dry_run
            from core.operations.whatif import plan_stop_server

            the_plan = plan_stop_server(backend.snapshot(), args.server)
            return print_dry_run(backend, the_plan, args, out)
        if args.action == "stop" and args.clean:
            capabilities.require(backend, SERVER_SETTINGS, "lkctl lab stop --clean")
            question = f"Stop {args.server} cleanly (its Shutdown Strategy applies)?"
            if not confirm(args, question):
                print("Nothing changed.", file=out)
                return EXIT_OK
            lines = cast(ServerSettings, backend).shutdown_server(args.server, session)
        elif args.action == "stop":
            question = f"Stop {args.server} as if it crashed (its hierarchies fail over)?"
            if not confirm(args, question):
                print("Nothing changed.", file=out)
                return EXIT_OK
            lines = power.stop_server(args.server, session)
        else:
            lines = power.start_server(args.server, session)
        return print_lines(args, out, lines)


def cmd_user(args: argparse.Namespace, out: TextIO) -> int:
    with cluster(args) as (backend, session):
        admin = cast(UserAdmin, _able(backend, USERS, "lkctl lab user"))
        if args.action == "list":
            session.require(Op.VIEW)
            found = admin.list_users()
            if args.json:
                print_json(out, [{"name": n, "role": r.name.lower()} for n, r in found])
                return EXIT_OK
            if session.signed_in or session.role is not Role.ADMINISTRATOR:
                print(f"{local_user()} (local user, not the owner): Guest", file=out)
            else:
                print(f"{local_user()} (local owner): Administrator, no password", file=out)
            for name, role in found:
                print(f"{name}: {role.label}", file=out)
            return EXIT_OK
        if args.action == "remove":
            admin.remove_user(args.name, session)
            print(f"User {args.name} removed.", file=out)
            return EXIT_OK
        role = parse_role(args.role)
        admin.add_user(args.name, role, _new_password(args), session)
        print(f"User {args.name} added ({role.label}).", file=out)
        return EXIT_OK


def _able(backend: Backend, capability: str, what: str) -> Backend:
    """``backend``, when it can do ``what`` (else NotAvailable, one line, exit 2)."""
    capabilities.require(backend, capability, what)
    return backend


def _new_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise CheckFailed(
            [
                Problem(
                    "password",
                    "required",
                    "give the password at a terminal or with --password-stdin",
                )
            ]
        )
    password = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != password:
        raise CheckFailed([Problem("password", "mismatch", "The two passwords differ.")])
    return password
