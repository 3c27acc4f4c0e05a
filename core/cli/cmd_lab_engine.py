"""``lkctl lab up|down|status|exec|shell|cut|mend``: bring a lab cluster up and play with it.

Two engines make a lab. ``folder`` is the embedded lab (SQLite and folders; always there,
``up`` creates it). ``pacemaker`` is the Pacemaker namespace lab: real Corosync +
Pacemaker nodes ``lab1`` … ``labN`` on this machine (root; :mod:`core.backends.pacemaker.
nslab`). ``--engine`` defaults to the engine of the cluster spec (``--cluster`` or
``LKCONSOLE_CLUSTER``): ``pacemaker`` for ``pacemaker-lab``, else ``folder``.

The Pacemaker lab's machinery (namespaces, a bridge, mounts) needs root on this machine:
root is an Administrator by the console's convention, and the lab refuses anyone else
before doing anything. ``lab stop`` / ``lab start`` go through the cluster's backend (they
are server operations of the permission table), see :mod:`core.cli.cmd_lab`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from core import connection, paths
from core.backend import NotAvailable
from core.cli.auth import cluster, confirm
from core.cli.output import EXIT_OK, print_json
from core.cli.parser import SubParsers, add_yes, seconds
from core.model import ServerState
from core.permissions import Op

if TYPE_CHECKING:
    from core.backends.pacemaker.nslab import LabStatus

ENGINES = ("folder", "pacemaker")
PACEMAKER_SPEC = "pacemaker-lab"


def register(lab_sub: SubParsers) -> None:
    up = lab_sub.add_parser("up", help="bring a lab up (the Pacemaker lab: wait until quorate)")
    _engine(up)
    up.add_argument("--nodes", type=int, default=3, metavar="N", help="Pacemaker lab: 1 to 8")
    up.set_defaults(handler=cmd_up, op=Op.LAB_RESET)
    down = lab_sub.add_parser("down", help="take the Pacemaker lab down, leaving no trace")
    _engine(down)
    add_yes(down)
    down.set_defaults(handler=cmd_down, op=Op.LAB_RESET)
    status = lab_sub.add_parser("status", help="the lab's nodes and their state")
    _engine(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status, op=Op.VIEW)
    run = lab_sub.add_parser("exec", help="run a command on a Pacemaker lab node: NODE -- CMD…")
    _engine(run)
    run.add_argument("--timeout", type=seconds, default=60.0, metavar="SECONDS")
    run.add_argument("node", metavar="NODE")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")
    run.set_defaults(handler=cmd_exec, op=Op.LAB_RESET)
    shell = lab_sub.add_parser("shell", help="an interactive shell on a Pacemaker lab node")
    _engine(shell)
    shell.add_argument("node", metavar="NODE")
    shell.set_defaults(handler=cmd_shell, op=Op.LAB_RESET)
    for verb, text in (
        ("cut", "cut a Pacemaker lab node off the network (a partition; it may be fenced)"),
        ("mend", "plug a Pacemaker lab node's network back in"),
    ):
        port = lab_sub.add_parser(verb, help=text)
        _engine(port)
        port.add_argument("node", metavar="NODE")
        if verb == "cut":
            add_yes(port)
        port.set_defaults(handler=cmd_port, verb=verb, op=Op.STOP_SERVER)


def _engine(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="folder (the embedded lab) or pacemaker (real Corosync + Pacemaker nodes in "
        "namespaces; root); default: pacemaker when the cluster is pacemaker-lab, else folder",
    )


def engine_of(args: argparse.Namespace) -> str:
    if args.engine:
        return str(args.engine)
    spec = (getattr(args, "cluster", None) or connection.default_spec()).strip()
    return "pacemaker" if spec == PACEMAKER_SPEC else "folder"


def _home() -> Path:
    return paths.data_dir()


def _pacemaker_only(args: argparse.Namespace, what: str) -> None:
    if engine_of(args) != "pacemaker":
        raise NotAvailable(
            f"lkctl lab {what} is for the Pacemaker lab (the folder lab has no nodes to "
            "run or cut): add --engine pacemaker, or use --cluster pacemaker-lab"
        )


def cmd_up(args: argparse.Namespace, out: TextIO) -> int:
    if engine_of(args) == "folder":
        args.cluster = _folder_spec(args)
        with cluster(args) as (backend, _session):
            shown = backend.snapshot()
        alive = ", ".join(s.name for s in shown.servers)
        print(f"The folder lab in {_home()} is up: {alive}.", file=out)
        return EXIT_OK
    from core.backends.pacemaker import nslab

    began = time.monotonic()
    lab = nslab.up(_home(), args.nodes)
    _print_nodes(lab, out)
    print(
        f"Quorate, with /data in service on lab1, after {time.monotonic() - began:.1f} s.", file=out
    )
    print(
        f"Use it: export LKCONSOLE_CLUSTER={PACEMAKER_SPEC} (or lkctl --cluster "
        f"{PACEMAKER_SPEC} …); take it down with lkctl lab down --engine pacemaker.",
        file=out,
    )
    return EXIT_OK


def cmd_down(args: argparse.Namespace, out: TextIO) -> int:
    _pacemaker_only(args, "down")
    from core.backends.pacemaker import nslab

    if not confirm(args, "Stop every node of the Pacemaker lab and remove it?"):
        print("Nothing changed.", file=out)
        return EXIT_OK
    nslab.down(_home())
    print(f"The Pacemaker lab in {_home()} is down; nothing of it is left running.", file=out)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    if engine_of(args) == "folder":
        args.cluster = _folder_spec(args)
        with cluster(args) as (backend, _session):
            shown = backend.snapshot()
        if args.json:
            print_json(
                out,
                {
                    "engine": "folder",
                    "home": str(_home()),
                    "nodes": [
                        {"name": s.name, "state": s.state.name.lower()} for s in shown.servers
                    ],
                },
            )
            return EXIT_OK
        print(f"Folder lab in {_home()}", file=out)
        for s in shown.servers:
            word = "running" if s.state is not ServerState.DEAD else "stopped"
            print(f"{s.name:<8}{word}", file=out)
        return EXIT_OK
    from core.backends.pacemaker import nslab

    lab = nslab.status(_home())
    if args.json:
        print(lab.to_json(), file=out)
    else:
        _print_nodes(lab, out)
    return EXIT_OK


def cmd_exec(args: argparse.Namespace, out: TextIO) -> int:
    _pacemaker_only(args, "exec")
    from core.backends.pacemaker import nslab

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise NotAvailable("lkctl lab exec needs a command: lkctl lab exec NODE -- CMD…")
    rc, stdout, stderr = nslab.exec(_home(), args.node, cmd, args.timeout)
    out.write(stdout)
    sys.stderr.write(stderr)
    return rc


def cmd_shell(args: argparse.Namespace, out: TextIO) -> int:
    _pacemaker_only(args, "shell")
    from core.backends.pacemaker import nslab

    argv, env = nslab.shell_command(_home(), args.node)
    # The user's own terminal: the shell reads and writes it directly (not captured).
    return subprocess.call(argv, env=env)


def cmd_port(args: argparse.Namespace, out: TextIO) -> int:
    _pacemaker_only(args, args.verb)
    from core.backends.pacemaker import nslab

    if args.verb == "cut":
        question = f"Cut {args.node} off the lab's network (the others may fence it)?"
        if not confirm(args, question, final=False):
            print("Nothing changed.", file=out)
            return EXIT_OK
        nslab.cut(_home(), args.node)
        print(f"{args.node} is cut off the network.", file=out)
    else:
        if nslab.mend(_home(), args.node):
            print(f"{args.node} was fenced while cut off: it was rebooted, as a fenced node "
                  "must be before it rejoins, and is plugged back in.", file=out)  # fmt: skip
        else:
            print(f"{args.node} is plugged back in.", file=out)
    return EXIT_OK


def _folder_spec(args: argparse.Namespace) -> str:
    """The folder lab to use: the one the spec names, else this home's."""
    spec = (getattr(args, "cluster", None) or connection.default_spec()).strip()
    return spec if spec == "lab" or spec.startswith("lab:") else "lab"


def _print_nodes(lab: LabStatus, out: TextIO) -> None:
    if not lab.nodes:
        print(
            f"No Pacemaker lab is up in {lab.home}: lkctl lab up --engine pacemaker",
            file=out,
        )
        return
    print(f"Pacemaker lab in {lab.home} (service network {lab.subnet})", file=out)
    print(f"{'NODE':<8}{'ADDRESS':<16}{'STATE':<10}INIT PID", file=out)
    for n in lab.nodes:
        print(f"{n.name:<8}{n.address:<16}{n.state.value:<10}{n.init_pid or '-'}", file=out)
