"""lkctl's argument parser: one ``register(sub)`` per command module."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from core.cli.output import EXIT_USAGE


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from core.cli import (
        cmd_cluster,
        cmd_create,
        cmd_dependency,
        cmd_extend,
        cmd_hierarchy,
        cmd_lab,
        cmd_log,
        cmd_mirror,
        cmd_props,
        cmd_status,
    )

    parser = Parser(
        prog="lkctl",
        description="Command line for LK Console: a cluster's hierarchies (the embedded lab, or "
        "Corosync + Pacemaker).",
    )
    parser.add_argument(
        "--user",
        metavar="NAME",
        help="act as this lab user (password from LKCTL_PASSWORD, the keyring, or a prompt); "
        "default: the local user (an Administrator when they own the data directory, "
        "else a Guest)",
    )
    parser.add_argument(
        "--cluster",
        metavar="SPEC",
        help="the cluster: lab (the embedded lab), lab:/path/to/home, pacemaker (this "
        "node's), pacemaker-lab (the namespace lab), or ssh://[user@]host[:port]; "
        "default: $LKCONSOLE_CLUSTER, else lab",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    cmd_status.register(sub)
    cmd_create.register(sub)
    cmd_extend.register(sub)
    cmd_hierarchy.register(sub)
    cmd_status.register_history(sub)
    cmd_lab.register(sub)
    cmd_mirror.register(sub)
    cmd_cluster.register(sub)
    cmd_dependency.register(sub)
    cmd_props.register(sub)
    cmd_log.register(sub)
    return parser


def add_yes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (needed in scripts)"
    )


def byte_count(text: str) -> int:
    """A byte count: 4096, 64K, 1M, 1G (powers of 1024)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    value = text.strip().lower()
    factor = units.get(value[-1:], 1)
    number = value[:-1] if factor != 1 else value
    try:
        return int(number) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of bytes (e.g. 4096, 64K, 1M)"
        ) from None


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


SubParsers = Any  # argparse's _SubParsersAction, which typeshed keeps private
