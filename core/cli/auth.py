"""Who runs an lkctl command, and the questions destructive commands ask.

Without ``--user`` the command runs as the local user: the real uid of the process
(:func:`core.session.local_session`), an Administrator when they own the data directory,
else a Guest. With ``--user NAME`` it runs as that lab user, who must sign in: the
password comes from ``LKCTL_PASSWORD``, the system keyring, or a prompt at a terminal,
never from the command line. A failed sign-in is refused (and recorded in the history)
whatever the command, even one that only looks.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import shlex
import sys
from collections.abc import Iterator

from core import credentials
from core.backends.lab import users
from core.backend import LabBackend
from core.checks import Problem
from core.errors import CheckFailed, LkError
from core.backends.lab.oplog import authorize, record_refusal
from core.permissions import Op
from core.session import Session, local_session
from core.backends.lab.store import Store


class NeedsYes(LkError):
    """A destructive command that would ask a question, with no terminal to ask at."""


def session_for(args: argparse.Namespace, store: Store) -> Session:
    """The session of this command: the local user, or the lab user of ``--user``."""
    if not args.user:
        return local_session(store.home)
    password = os.environ.get("LKCTL_PASSWORD") or credentials.recall("lab", args.user)
    if password is None:
        if not sys.stdin.isatty():
            raise CheckFailed(
                [
                    Problem(
                        "password",
                        "required",
                        f"no password for {args.user}: set LKCTL_PASSWORD, "
                        "remember it in the keyring, or run at a terminal",
                    )
                ]
            )
        password = getpass.getpass(f"Password for {args.user}: ")
    try:
        return users.authenticate(store, args.user, password)
    except users.AuthenticationFailed as exc:
        op: Op = getattr(args, "op", Op.VIEW)
        record_refusal(
            store, args.user, "not signed in", f"sign in for {op.label}", command_line(), str(exc)
        )
        raise


@contextlib.contextmanager
def lab(args: argparse.Namespace) -> Iterator[tuple[LabBackend, Session]]:
    """The lab (opened, recovered) and who runs the command; closed afterwards.

    The permission table is consulted here first, before any check or question, for the
    command's operation (``args.op``); the operations in core consult it again."""
    backend = LabBackend()
    try:
        session = session_for(args, backend.store)
        op: Op = getattr(args, "op", Op.VIEW)
        authorize(backend.store, session, op, op.label, command_line())
        yield backend, session
    finally:
        backend.close()


def command_line() -> str:
    """The lkctl line being run (for the history of a refusal)."""
    return shlex.join(["lkctl", *sys.argv[1:]]) if sys.argv[1:] else "lkctl"


def confirm(args: argparse.Namespace, question: str) -> bool:
    """A destructive command's question: ``--yes`` answers it; at a terminal it is asked;
    in a script (no terminal) it is refused (NeedsYes) rather than assumed."""
    if getattr(args, "yes", False) or getattr(args, "dry_run", False):
        return True
    if not sys.stdin.isatty():
        raise NeedsYes(
            f"{question.rstrip('?')}: this cannot be undone, and there is no terminal to "
            "ask at; add --yes to confirm"
        )
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")
