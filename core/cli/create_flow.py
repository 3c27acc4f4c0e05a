"""What every ``lkctl create`` does once its request is read (any recovery kit): the dry
run, the refusal, or the create itself, with its answer in text or ``--json``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Protocol, TextIO

from core.backend import Backend
from core.checks import Problem
from core.cli.output import EXIT_OK, EXIT_USAGE, hierarchy_json, print_json
from core.errors import CheckFailed
from core.operations import create
from core.plan import Plan
from core.session import Session


class _Request(Protocol):
    def to_json(self) -> dict[str, object]: ...


def conclude(
    args: argparse.Namespace,
    out: TextIO,
    backend: Backend,
    session: Session,
    request: _Request,
    problems: list[Problem],
    plan: Callable[[], Plan],
    print_dry_run: Callable[[list[str]], None],
) -> int:
    """``--dry-run``: the plan (or the problems), exit 2 on a problem; else create, or
    raise CheckFailed with every problem (nothing changed)."""
    if args.dry_run:
        print_dry_run([] if problems else list(plan().titles))
        return EXIT_USAGE if problems else EXIT_OK
    if problems:
        raise CheckFailed(problems)
    result = create.execute(backend, plan(), session)
    if args.json:
        after = backend.snapshot()
        print_json(
            out,
            {
                "ok": True,
                "request": request.to_json(),
                "message": result.message,
                "hierarchy": hierarchy_json(after.hierarchy(result.hierarchy_id), after),
            },
        )
    else:
        print(result.message, file=out)
    return EXIT_OK


__all__ = ["conclude"]
