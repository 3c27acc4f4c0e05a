"""The lab's operation history, in its store (see core.history for what an entry is).

Every operation is recorded when it ends, in the same transaction as its last output
lines. This module only appends and reads; the history is capped by count and by age
(settings kept in the store), so the database does not grow without bound.
"""

from __future__ import annotations

import json
import time

from core.backends.lab.store import Store, Txn
from core.history import Entry

MAX_ENTRIES_KEY = "history.max_entries"
MAX_AGE_DAYS_KEY = "history.max_age_days"
DEFAULT_MAX_ENTRIES = 1000
DEFAULT_MAX_AGE_DAYS = 90


def record(
    txn: Txn,
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
    """Append one entry, and drop what is beyond the caps."""
    txn.execute(
        "INSERT INTO history(started, duration, user, role, operation, command, steps, ok, "
        "result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            started,
            max(0.0, time.time() - started),
            user,
            role,
            operation,
            command,
            json.dumps(steps),
            int(ok),
            result,
        ),
    )
    max_entries, max_age = _limits(txn)
    txn.execute("DELETE FROM history WHERE started < ?", (time.time() - max_age * 86400,))
    txn.execute("DELETE FROM history WHERE id <= (SELECT max(id) FROM history) - ?", (max_entries,))


def _limits(txn: Txn) -> tuple[int, float]:
    rows = dict(
        txn.execute(
            "SELECT key, value FROM meta WHERE key IN (?, ?)", (MAX_ENTRIES_KEY, MAX_AGE_DAYS_KEY)
        ).fetchall()
    )
    return (
        int(rows.get(MAX_ENTRIES_KEY, DEFAULT_MAX_ENTRIES)),
        float(rows.get(MAX_AGE_DAYS_KEY, DEFAULT_MAX_AGE_DAYS)),
    )


def set_limits(
    store: Store, *, max_entries: int | None = None, max_age_days: float | None = None
) -> None:
    with store.transaction() as txn:
        if max_entries is not None:
            txn.set_meta(MAX_ENTRIES_KEY, str(max(1, int(max_entries))))
        if max_age_days is not None:
            txn.set_meta(MAX_AGE_DAYS_KEY, str(max(0.0, float(max_age_days))))


def entries(store: Store, since: float | None = None, limit: int = 10_000) -> list[Entry]:
    """Entries, oldest first (since ``since`` when given)."""
    rows = store._conn.execute(
        "SELECT id, started, duration, user, role, operation, command, steps, ok, result "
        "FROM history WHERE started >= ? ORDER BY id DESC LIMIT ?",
        (since or 0.0, limit),
    ).fetchall()
    return [
        Entry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(json.loads(r[7])), bool(r[8]), r[9])
        for r in reversed(rows)
    ]
