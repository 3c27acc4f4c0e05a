"""The undo journal of an operation under way, for crash recovery.

An operation that changes files and rows (extend, create, unextend) writes, *before*
each file action, how to undo it into a journal file ``pending/<op_id>.json`` under the
data directory (atomically: temp file, fsync, rename). Its rows are committed in one
transaction that also records ``op_id`` as committed. A process killed half way leaves a
journal whose operation never committed: :func:`recover` (run whenever the lab is
opened) undoes its file actions, so the operation is fully absent. A journal whose
operation did commit is simply deleted. While an operation runs it holds an exclusive
``flock`` on ``pending/<op_id>.lock``, so recovery in another process leaves it alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.backends.lab.store import Store, Txn
from core.files import private_dir, write_private

log = logging.getLogger(__name__)

Action = dict[str, Any]
# Extra undo kinds (e.g. "remove_bitmap_target") are registered by the modules that know
# how to undo them, so that this module needs no knowledge of replication.
UNDO_HANDLERS: dict[str, Callable[[Any], None]] = {}


def _folder(home: Path) -> Path:
    return home / "pending"


class Journal:
    """The journal of one operation; use as a context manager around it."""

    def __init__(self, store: Store, operation: str) -> None:
        self.store = store
        self.operation = operation
        self.op_id = uuid.uuid4().hex
        folder = private_dir(_folder(store.home))
        self.path = folder / f"{self.op_id}.json"
        self._lock_path = folder / f"{self.op_id}.lock"
        self._lock_fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self.actions: list[Action] = []
        self._keep = False
        self._write()

    def keep_for_recovery(self) -> None:
        """Undo could not finish now: leave the journal for recover() at the next start."""
        self._keep = True

    def record(self, action: Action) -> None:
        """Durably note how to undo a file action, before doing it."""
        self.actions.append(action)
        self._write()

    def mark_committed(self, txn: Txn) -> None:
        """In the operation's transaction: its rows and this mark commit together."""
        txn.mark_committed(self.op_id)

    def close(self) -> None:
        """The operation finished (committed, or undone): the journal is not needed."""
        if not self._keep:
            self.path.unlink(missing_ok=True)
            with contextlib.suppress(Exception), self.store.transaction() as txn:
                txn.forget_committed(self.op_id)
            self._lock_path.unlink(missing_ok=True)
        os.close(self._lock_fd)

    def _write(self) -> None:
        data = json.dumps({"operation": self.operation, "actions": self.actions})
        write_private(self.path, data.encode("utf-8"))
        _fsync_dir(self.path.parent)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def undo_action(action: Action) -> None:
    """Undo one recorded file action (idempotent)."""
    if "delete_file" in action:
        path = Path(action["delete_file"])
        if path.exists() or path.is_symlink():  # unlink says EROFS even for a missing file
            path.unlink()
    elif "rmdir" in action:
        with contextlib.suppress(FileNotFoundError, OSError):
            Path(action["rmdir"]).rmdir()
    else:
        for kind, handler in UNDO_HANDLERS.items():
            if kind in action:
                handler(action[kind])
                return
        raise ValueError(f"unknown undo action {action!r}")


def recover(store: Store) -> list[str]:
    """Finish what crashed processes left: undo uncommitted operations' file actions.

    Returns one line per operation recovered (for the log). A journal that cannot be
    read, or that names an action this version does not know, is moved aside to
    ``pending/damaged/`` (with a log line and a line in the console's output panel): the
    other journals and every other operation go on.
    """
    folder = _folder(store.home)
    if not folder.is_dir():
        return []
    done = []
    for path in sorted(folder.glob("*.json")):
        line = _recover_one(store, path)
        if line:
            done.append(line)
    for tmp in folder.glob("*.tmp"):
        tmp.unlink(missing_ok=True)
    return done


def _recover_one(store: Store, path: Path) -> str:
    op_id = path.stem
    lock_path = path.with_suffix(".lock")
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return ""  # still running in another process
        if not path.exists():
            return ""  # finished while we waited
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            operation = str(data["operation"])
            actions = list(data.get("actions", []))
            if store.committed(op_id):
                line = f"{operation}: had completed; journal removed"
            else:
                for action in reversed(actions):
                    undo_action(action)
                line = f"{operation}: interrupted; its changes were undone"
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return _set_aside(store, path, exc)
        path.unlink(missing_ok=True)
        with store.transaction() as txn:
            txn.forget_committed(op_id)
            txn.add_log_line("recovery", "WARNING", line)
        lock_path.unlink(missing_ok=True)
        return line
    finally:
        os.close(fd)


def _set_aside(store: Store, path: Path, exc: BaseException) -> str:
    """Move a journal that cannot be used out of the way, and say so."""
    damaged = private_dir(path.parent / "damaged")
    moved = damaged / path.name
    os.replace(path, moved)
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    line = (
        f"The undo journal {path.name} could not be used ({type(exc).__name__}: {why}); "
        f"it was moved to {moved}. Check the lab for what that operation left half done."
    )
    log.error("%s", line)
    with store.transaction() as txn:
        txn.add_log_line("recovery", "ERROR", line)
    path.with_suffix(".lock").unlink(missing_ok=True)
    return line


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
