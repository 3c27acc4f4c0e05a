"""A server's log: the output lines that concern one server, filtered (pure).

LifeKeeper keeps a log per server; the console keeps one stream of output lines for the
whole cluster (operations, resource actions, state changes, failovers, resyncs: see
:class:`core.history.LogRow`). A server's log is the lines that name it: in their text
("/data in service on lab2", "Server lab1 stopped (DEAD).") or in the name of their
operation ("extend /data to lab2", "resync datarep-data to lab2"). Filters: a least
level (INFO shows everything, WARNING warnings and errors, ERROR errors only), a
resource (the lines that name its tag, on any server), and a time.

A name counts only as a whole word: ``lab1`` is not named by ``lab10``, nor ``/data`` by
``/disks/datarep-data.img``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from core.checks import Problem
from core.errors import CheckFailed
from core.history import LogRow
from core.model import Cluster

LEVELS = ("INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class LogFilter:
    """Which lines of the cluster's output make the log shown."""

    server: str
    level: str = "INFO"  # the least level shown
    resource: str = ""  # a tag: only the lines naming it ("" = every line)
    since: float | None = None  # seconds since the epoch


@lru_cache(maxsize=256)
def _word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w/.-]){re.escape(name)}(?![\w/-])")


def names(text: str, name: str) -> bool:
    """Whether ``text`` names ``name`` as a whole word."""
    return bool(name) and _word(name).search(text) is not None


def matches(row: LogRow, f: LogFilter) -> bool:
    if f.since is not None and row.ts < f.since:
        return False
    level = row.level.upper()
    if level in LEVELS and LEVELS.index(level) < LEVELS.index(f.level):
        return False
    if not (names(row.text, f.server) or names(row.operation, f.server)):
        return False
    return not f.resource or names(row.text, f.resource) or names(row.operation, f.resource)


def select(rows: Iterable[LogRow], f: LogFilter) -> list[LogRow]:
    """The lines of ``rows`` that ``f`` shows, in their order."""
    return [row for row in rows if matches(row, f)]


def for_server(rows: Iterable[LogRow], server: str) -> list[LogRow]:
    """Every line of ``server``'s log (what ``Backend.server_log`` returns)."""
    return select(rows, LogFilter(server))


def check(
    cluster: Cluster,
    server: str,
    level: str = "INFO",
    resource: str = "",
    since: float | None = None,
) -> LogFilter:
    """A filter from what a user typed; CheckFailed naming each bad field."""
    problems = []
    names_ = [s.name for s in cluster.servers]
    server = (server or "").strip()
    if server not in names_:
        problems.append(
            Problem(
                "server",
                "unknown_server" if server else "required",
                f"Server {server!r} is not a server of this cluster ({', '.join(names_)})."
                if server
                else "Choose the server whose log to show.",
            )
        )
    wanted = (level or "INFO").strip().upper()
    if wanted not in LEVELS:
        problems.append(
            Problem(
                "level",
                "unknown_level",
                f"Level {level!r} is not one of {', '.join(LEVELS)} (the least level shown).",
            )
        )
    tag = (resource or "").strip()
    if tag and cluster.find_tag(tag) is None:
        problems.append(Problem("resource", "unknown_tag", f"There is no resource tagged {tag!r}."))
    if problems:
        raise CheckFailed(problems)
    return LogFilter(server, wanted, tag, since)


def format_row(row: LogRow) -> str:
    """One line as lkctl prints it and the log view shows it."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.ts))
    return f"{stamp}  {row.level:<8} {row.operation:<10} {row.text}"


def command(server: str, level: str = "INFO", resource: str = "") -> str:
    """The lkctl line that follows the same log (a log view's Show Command)."""
    from core import commands

    words = ["log", server]
    if level != "INFO":
        words += ["--level", level]
    if resource:
        words += ["--resource", resource]
    return commands.join(*words, "--follow")


def row_json(row: LogRow) -> dict[str, object]:
    return {
        "id": row.id,
        "time": row.ts,
        "level": row.level,
        "operation": row.operation,
        "text": row.text,
    }


__all__ = [
    "LEVELS",
    "LogFilter",
    "check",
    "command",
    "for_server",
    "format_row",
    "matches",
    "names",
    "row_json",
    "select",
]
