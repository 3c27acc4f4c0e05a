"""``lkctl``: the scriptable command line over the same core as the console.

Every error is one line on stderr and a non-zero exit, never a traceback:

- 2: bad input, a refused check (naming the field), or a question that needs ``--yes``;
- 1: refused by the permission table or a failed sign-in, or a failure while doing (the
  message says what was done and which step failed);
- 70: an unexpected internal error (the traceback is in the log file only).

Layout: :mod:`core.cli.parser` builds the parser from the ``cmd_*`` modules, each of
which registers its commands; :mod:`core.cli.auth` says who runs a command and asks for
confirmations; :mod:`core.cli.output` prints text and ``--json``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from core import paths
from core.backend import NotAvailable
from core.cli.auth import NeedsYes
from core.cli.output import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, print_json
from core.connection import UnknownCluster
from core.errors import CheckFailed, LkError
from core.files import private_file_handler

log = logging.getLogger("lkctl")

LOG_NAME = "lkctl.log"


def setup_logging() -> Path | None:
    """Log to a private rotating file under the user log dir; nothing ever to stderr.

    Returns the log file's path (None when it cannot be opened: then nothing is logged,
    and still nothing reaches the terminal)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    logging.lastResort = None  # no "last resort" printing of records to stderr
    for handler in list(root.handlers):
        if getattr(handler, "lkctl", False):
            root.removeHandler(handler)
            handler.close()
    path = paths.log_dir() / LOG_NAME
    try:
        handler = private_file_handler(path)
    except OSError:
        null = logging.NullHandler()
        null.lkctl = True  # type: ignore[attr-defined]
        root.addHandler(null)
        return None
    handler.lkctl = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    return path


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    from core.cli.parser import build_parser

    out = out or sys.stdout
    os.umask(0o077)  # whatever lkctl makes is its owner's only (core.files)
    log_file = setup_logging()
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args, out))
    except (NeedsYes, NotAvailable, UnknownCluster) as exc:
        print(f"lkctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CheckFailed as exc:
        if getattr(args, "json", False):
            print_json(
                out, {"ok": False, "problems": [dataclasses.asdict(p) for p in exc.problems]}
            )
        for p in exc.problems:
            print(f"{p.field}: {p.message}", file=sys.stderr)
        return EXIT_USAGE
    except LkError as exc:
        print(f"lkctl: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (lkctl status | head): not an error worth a message.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"lkctl: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("lkctl: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line for the user, the traceback in the log
        log.exception("lkctl %s failed", " ".join(sys.argv[1:] if argv is None else argv))
        where = f"details in {log_file}" if log_file else "the log file could not be opened"
        text = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"lkctl: internal error: {type(exc).__name__}"
            + (f": {text}" if text else "")
            + f"; {where}",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


__all__ = ["main", "setup_logging"]
