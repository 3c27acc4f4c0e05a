"""What a console did on a real cluster: its history and output lines, in its own data dir.

A real cluster keeps no record of the console's operations, so each console keeps them in
a small SQLite file per cluster: ``$LKCONSOLE_HOME/clusters/<name>/history.db`` (the folder
0700, the file 0600). Several consoles and ``lkctl`` processes of one user share it
(SQLite's own locking; WAL). Capped like the lab's history: 1000 entries, 90 days, and
the last 10 000 output lines.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from pathlib import Path

from core.errors import StoreError
from core.files import make_private, private_dir
from core.history import Entry, LogRow

MAX_ENTRIES = 1000
MAX_AGE_S = 90 * 86400
MAX_LINES = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history(
    id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, duration REAL NOT NULL,
    user TEXT NOT NULL, role TEXT NOT NULL, operation TEXT NOT NULL, command TEXT NOT NULL,
    steps TEXT NOT NULL, ok INTEGER NOT NULL, result TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log(
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, operation TEXT NOT NULL,
    level TEXT NOT NULL, text TEXT NOT NULL);
"""


def cluster_dir(home: Path, name: str) -> Path:
    """``$LKCONSOLE_HOME/clusters/<name>/`` (private), ``name`` made safe as a folder name."""
    safe = re.sub(r"[^A-Za-z0-9._@-]", "_", name).strip(".") or "cluster"
    return private_dir(home / "clusters" / safe)


class Records:
    """The history and output lines of one cluster (thread-safe: a connection per thread)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "history.db"
        self._local = threading.local()
        try:
            conn = self._conn()
            with conn:
                conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the console's records {self.path}: {exc}") from exc
        for suffix in ("", "-wal", "-shm"):
            make_private(Path(f"{self.path}{suffix}"))

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            private_dir(self.path.parent)
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
            make_private(self.path)
        return conn

    def add_lines(self, operation: str, lines: list[tuple[str, str]]) -> None:
        """Append output lines ((level, text) pairs) of ``operation``."""
        if not lines:
            return
        now = time.time()
        conn = self._conn()
        with conn:
            conn.executemany(
                "INSERT INTO log(ts, operation, level, text) VALUES (?, ?, ?, ?)",
                [(now, operation, level, text) for level, text in lines],
            )
            conn.execute("DELETE FROM log WHERE id <= (SELECT max(id) FROM log) - ?", (MAX_LINES,))

    def record(
        self,
        *,
        started: float,
        user: str,
        role: str,
        operation: str,
        command: str,
        steps: list[str],
        ok: bool,
        result: str,
    ) -> None:
        conn = self._conn()
        now = time.time()
        with conn:
            conn.execute(
                "INSERT INTO history(started, duration, user, role, operation, command, steps, "
                "ok, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    started,
                    max(0.0, now - started),
                    user,
                    role,
                    operation,
                    command,
                    json.dumps(steps),
                    int(ok),
                    result,
                ),
            )
            conn.execute("DELETE FROM history WHERE started < ?", (now - MAX_AGE_S,))
            conn.execute(
                "DELETE FROM history WHERE id <= (SELECT max(id) FROM history) - ?",
                (MAX_ENTRIES,),
            )

    def history(self, since: float | None = None) -> list[Entry]:
        rows = (
            self._conn()
            .execute(
                "SELECT id, started, duration, user, role, operation, command, steps, ok, result "
                "FROM history WHERE started >= ? ORDER BY id",
                (since or 0.0,),
            )
            .fetchall()
        )
        return [
            Entry(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(json.loads(r[7])), bool(r[8]), r[9]
            )
            for r in rows
        ]

    def lines(self, after: int = 0, limit: int = 2000) -> list[LogRow]:
        conn = self._conn()
        if after <= 0:
            rows = conn.execute(
                "SELECT id, ts, operation, level, text FROM log ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
            rows.reverse()
        else:
            rows = conn.execute(
                "SELECT id, ts, operation, level, text FROM log WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [LogRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def last_line_id(self) -> int:
        row = self._conn().execute("SELECT max(id) FROM log").fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


__all__ = ["Records", "cluster_dir"]
