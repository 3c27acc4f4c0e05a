"""The Pacemaker lab's command line, for developers and the tests.

``python -m core.backends.pacemaker.nslab [--home HOME] up [--nodes N] | down |
status [--json] | exec NODE -- CMD… | stop NODE | start NODE | cut NODE | mend NODE``;
``--home`` defaults to the console's data directory (``$LKCONSOLE_HOME``). An error is
one line on stderr and exit status 1; ``exec`` exits with the command's status.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core.backends.pacemaker import nslab
from core.backends.pacemaker.nslab import LabStatus
from core.backends.pacemaker.nslab_proc import LabError


def _print_status(lab: LabStatus) -> None:
    if not lab.nodes:
        print(f"No Pacemaker lab is up in {lab.home}.")
        return
    print(f"Pacemaker lab in {lab.home} (service network {lab.subnet})")
    print(f"{'NODE':<8}{'ADDRESS':<16}{'STATE':<10}INIT PID")
    for n in lab.nodes:
        print(f"{n.name:<8}{n.address:<16}{n.state.value:<10}{n.init_pid or '-'}")


def main(argv: Sequence[str] | None = None) -> int:
    from core.paths import data_dir

    parser = argparse.ArgumentParser(
        prog="nslab", description="The Pacemaker namespace lab: a real cluster on this machine."
    )
    parser.add_argument("--home", type=Path, default=None, help="default: $LKCONSOLE_HOME")
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="(re)start the lab, wait until quorate")
    up_parser.add_argument("--nodes", type=int, default=3)
    sub.add_parser("down", help="remove every trace of the lab")
    status_parser = sub.add_parser("status", help="the nodes and their state")
    status_parser.add_argument("--json", action="store_true")
    exec_parser = sub.add_parser("exec", help="run a command on a node: exec NODE -- CMD…")
    exec_parser.add_argument("--timeout", type=float, default=60.0)
    exec_parser.add_argument("node")
    exec_parser.add_argument("cmd", nargs=argparse.REMAINDER)
    for verb, text in (
        ("stop", "kill a node (a real failure)"),
        ("start", "boot a node again"),
        ("cut", "set a node's switch port down"),
        ("mend", "set a node's switch port up"),
    ):
        sub.add_parser(verb, help=text).add_argument("node")
    args = parser.parse_args(argv)
    home: Path = args.home or data_dir()
    try:
        if args.command == "up":
            began = time.monotonic()
            lab = nslab.up(home, args.nodes)
            _print_status(lab)
            print(f"Quorate after {time.monotonic() - began:.1f} s.")
        elif args.command == "down":
            nslab.down(home)
        elif args.command == "status":
            lab = nslab.status(home)
            print(lab.to_json()) if args.json else _print_status(lab)
        elif args.command == "exec":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not cmd:
                parser.error("exec needs a command: exec NODE -- CMD…")
            rc, out, err = nslab.exec(home, args.node, cmd, args.timeout)
            sys.stdout.write(out)
            sys.stderr.write(err)
            return rc
        else:
            verbs = {"stop": nslab.stop, "start": nslab.start, "cut": nslab.cut, "mend": nslab.mend}
            verbs[args.command](home, args.node)
    except LabError as exc:
        print(f"nslab: {exc}", file=sys.stderr)
        return 1
    return 0
