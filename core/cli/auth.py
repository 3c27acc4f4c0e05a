"""Which cluster an lkctl command works on, who runs it, and the questions it asks.

The cluster is ``--cluster SPEC``, else ``LKCONSOLE_CLUSTER``, else the lab
(:mod:`core.connection`). Without ``--user`` the command runs as the local user: the
real uid of the process, as the backend sees it (the lab: an Administrator when they own
the data directory, else a Guest). With ``--user NAME`` it runs as that user, who must
sign in: the password comes from ``LKCTL_PASSWORD``, the system keyring, or a prompt at a
terminal, never from the command line. A failed sign-in is refused (and recorded in the
history) whatever the command, even one that only looks.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import shlex
import sys
from collections.abc import Iterator

from core import connection, credentials
from core.backend import Backend
from core.checks import Problem
from core.errors import AuthenticationFailed, CheckFailed, LkError, UnknownHostKey
from core.permissions import Op
from core.session import Session


class NeedsYes(LkError):
    """A destructive command that would ask a question, with no terminal to ask at."""


def session_for(args: argparse.Namespace, backend: Backend) -> Session:
    """The session of this command: the local user, or the user of ``--user``."""
    if not args.user:
        return backend.local_session()
    password = os.environ.get("LKCTL_PASSWORD") or credentials.recall(backend.name, args.user)
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
        return backend.authenticate(args.user, password)
    except AuthenticationFailed as exc:
        op: Op = getattr(args, "op", Op.VIEW)
        backend.record_refusal(
            args.user, "not signed in", f"sign in for {op.label}", command_line(), str(exc)
        )
        raise


@contextlib.contextmanager
def cluster(args: argparse.Namespace) -> Iterator[tuple[Backend, Session]]:
    """The cluster (opened) and who runs the command; closed afterwards.

    The permission table is consulted here first, before any check or question, for the
    command's operation (``args.op``); the operations in core consult it again."""
    backend = open_cluster(getattr(args, "cluster", None))
    try:
        session = session_for(args, backend)
        op: Op = getattr(args, "op", Op.VIEW)
        backend.authorize(session, op, op.label, command_line())
        yield backend, session
    finally:
        backend.close()


def open_cluster(spec: str | None) -> Backend:
    """The backend of ``spec``. A node whose SSH host key is not trusted yet: at a
    terminal its fingerprints are shown and the user is asked; in a script it is refused
    (nothing is trusted without someone having compared the fingerprints)."""
    try:
        return connection.open(spec)
    except UnknownHostKey as exc:
        if not sys.stdin.isatty():
            raise UnknownHostKey(
                f"{exc} There is no terminal to ask at: run lkctl --cluster "
                f"{spec or connection.default_spec()} status once at a terminal and answer "
                "yes if the fingerprint matches.",
                exc.trust,
            ) from exc
        print(str(exc), file=sys.stderr)
        answer = input("Trust this host key and connect? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise LkError("The host key was not trusted: nothing was sent.") from None
        exc.trust()
        return connection.open(spec)


def command_line() -> str:
    """The lkctl line being run (for the history of a refusal)."""
    return shlex.join(["lkctl", *sys.argv[1:]]) if sys.argv[1:] else "lkctl"


def confirm(args: argparse.Namespace, question: str, *, final: bool = True) -> bool:
    """A destructive command's question: ``--yes`` answers it; at a terminal it is asked;
    in a script (no terminal) it is refused (NeedsYes) rather than assumed."""
    if getattr(args, "yes", False) or getattr(args, "dry_run", False):
        return True
    if not sys.stdin.isatty():
        raise NeedsYes(
            f"{question.rstrip('?')}: "
            + ("this cannot be undone, and " if final else "")
            + "there is no terminal to ask at; add --yes to confirm"
        )
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")
