"""The records a backend keeps: the operation history and the output panel's lines.

Every operation run through core (from the console or lkctl) is recorded when it ends:
who, with which role, when, the equivalent lkctl line, its steps and how it ended. A
refused attempt is recorded too. Each backend keeps them (the lab in its database; a
real cluster in the console's own data directory) and reads them back as these values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One operation of the history."""

    id: int
    started: float  # seconds since the epoch
    duration: float  # seconds
    user: str
    role: str  # Guest, Operator, Administrator ("not signed in" for a failed sign-in)
    operation: str  # "extend /data to lab2"
    command: str  # the equivalent lkctl line
    steps: tuple[str, ...]
    ok: bool
    result: str  # the final message; "refused: …" for a refused attempt


@dataclass(frozen=True)
class LogRow:
    """One line of the output panel, as a backend keeps it."""

    id: int
    ts: float  # seconds since the epoch
    operation: str
    level: str  # INFO, WARNING, ERROR
    text: str


def about_server(rows: list[LogRow], server: str, limit: int = 2000) -> list[LogRow]:
    """The last ``limit`` of ``rows`` that are about ``server``: its name is a word of
    the line or of its operation (a server's LifeKeeper log, in the lab's words)."""
    word = re.compile(rf"(?<![\w.-]){re.escape(server)}(?![\w-])")
    found = [r for r in rows if word.search(r.text) or word.search(r.operation)]
    return found[-limit:] if limit > 0 else []


__all__ = ["Entry", "LogRow", "about_server"]
