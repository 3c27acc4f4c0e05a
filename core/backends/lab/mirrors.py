"""The lab's DataKeeper mirrors: the replication engine wired to the store.

The engine (``core.replication``) knows volumes, bitmaps and resyncs; this module knows
where the lab keeps them and records what happens in the store, the one source of
truth. A resync runs in its own detached process (:mod:`core.backends.lab.resyncd`), like
DataKeeper's kernel threads run independently of the console: the console or ``lkctl``
that started it may exit, and any console shows its progress from the store. A process
that died (SIGKILL, power cut) is restarted by :func:`resume_resyncs` the next time the
lab is opened, and resumes from the bitmap.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.backends.lab import journal
from core.backends.lab.store import Store
from core.files import open_private, private_dir
from core.model import MirrorState

log = logging.getLogger(__name__)


# -- volumes and bitmaps ---------------------------------------------------------------
def prepare_target_volume(path: Path, size: int) -> None:
    """The target's volume file: created (sparse) when missing, kept when it exists."""
    from core.replication.volume import Volume

    private_dir(path.parent)
    Volume.create(path, size, exist_ok=True).close()


def create_bitmap(path: Path, volume_size: int, chunk_size: int) -> None:
    """A server's own bitmap file (used when it becomes the source); EINVAL on btrfs."""
    from core.replication.bitmap import Bitmap

    private_dir(path.parent)
    Bitmap.create(path, volume_size=volume_size, chunk_size=chunk_size, overwrite=True).close()


def add_bitmap_target(
    path: Path, target: str, volume_size: int, chunk_size: int, *, dirty: bool = True
) -> None:
    """Give the source's intent log a section for ``target``: every chunk dirty, or none
    (``dirty=False``: the target is known to be in sync). A bitmap that cannot be trusted
    is rebuilt with every chunk dirty."""
    from core.replication.bitmap import Bitmap, BitmapInvalid

    private_dir(path.parent)
    if not path.exists():
        Bitmap.create(
            path, volume_size=volume_size, chunk_size=chunk_size, targets=[target], dirty=dirty
        ).close()
        return
    try:
        bitmap = Bitmap.open(path, volume_size=volume_size, chunk_size=chunk_size)
    except BitmapInvalid as exc:
        log.warning("%s; rebuilt with every chunk dirty", exc)
        Bitmap.create(
            path, volume_size=volume_size, chunk_size=chunk_size, targets=[target], overwrite=True
        ).close()
        return
    try:
        if bitmap.has_target(target):  # old bits may describe another source: start anew
            bitmap.remove_target(target)
        bitmap.add_target(target, dirty=dirty)
    finally:
        bitmap.close()


def merge_dirty(returning: Path, section: str, into: Path, target: str) -> int:
    """A former source returns: what its own intent log says may differ from ``section``
    (the server that took over) must be copied back too. Marks those chunks dirty for
    ``target`` in ``into`` (the current source's intent log); returns how many."""
    from core.replication.bitmap import Bitmap, BitmapError

    if not returning.exists() or not into.exists():
        return 0
    try:
        old = Bitmap.open(returning)
    except BitmapError as exc:
        log.warning("cannot read %s (%s): nothing merged", returning, exc)
        return 0
    try:
        chunks = old.dirty_chunks(section) if old.has_target(section) else []
    finally:
        old.close()
    if not chunks:
        return 0
    new = Bitmap.open(into)
    try:
        if not new.has_target(target):
            new.add_target(target, dirty=True)
            return new.nchunks
        for c in chunks:
            new.mark_write(c, c + 1, unreplicated=[target])
    finally:
        new.close()
    return len(chunks)


def remove_bitmap_target(path: Path, target: str) -> None:
    """Drop ``target``'s section from an intent log (idempotent)."""
    from core.replication.bitmap import Bitmap, BitmapError

    if not path.exists():
        return
    try:
        bitmap = Bitmap.open(path)
    except BitmapError as exc:
        log.warning("cannot open %s to remove %s: %s", path, target, exc)
        return
    try:
        if bitmap.has_target(target):
            bitmap.remove_target(target)
    finally:
        bitmap.close()


def _undo_remove_bitmap_target(args: list[str]) -> None:
    remove_bitmap_target(Path(args[0]), args[1])


journal.UNDO_HANDLERS["remove_bitmap_target"] = _undo_remove_bitmap_target


# -- resync processes ------------------------------------------------------------------
def _run_dir(home: Path) -> Path:
    return private_dir(home / "run")


def lock_path(home: Path, resource_id: int, target: str) -> Path:
    return _run_dir(home) / f"resync-{resource_id}-{target}.lock"


def resync_running(home: Path, resource_id: int, target: str) -> bool:
    """Whether a resync process holds the lock of this mirror target."""
    path = lock_path(home, resource_id, target)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we may have taken
    return False


def start_resync(home: Path, resource_id: int, target: str) -> subprocess.Popen[bytes] | None:
    """Start the resync process of one mirror target (a no-op when one runs)."""
    if resync_running(home, resource_id, target):
        return None
    logs = private_dir(home / "logs")
    fd = open_private(
        logs / f"resync-{resource_id}-{target}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND
    )
    with os.fdopen(fd, "ab") as out:
        return subprocess.Popen(
            [
                *_resyncd_command(),
                "--home",
                str(home),
                "--resource",
                str(resource_id),
                "--target",
                target,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the console or lkctl that started it
            cwd=Path(__file__).resolve().parent.parent,
            close_fds=True,
        )


def _resyncd_command() -> list[str]:
    """How to start the resync process: ``python -m``, or the frozen binary itself."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--lkconsole-resyncd"]
    return [sys.executable, "-m", "core.backends.lab.resyncd"]


def stop_resync(home: Path, resource_id: int, target: str, timeout: float = 30.0) -> bool:
    """Ask a running resync process to stop (it keeps the bitmap) and wait for it.

    Returns True when none runs any more.
    """
    path = lock_path(home, resource_id, target)
    deadline = time.monotonic() + timeout
    signalled = False
    while resync_running(home, resource_id, target):
        if not signalled:
            with contextlib.suppress(ValueError, OSError):
                pid = int(path.read_text().strip() or 0)
                if pid > 0:
                    os.kill(pid, signal.SIGTERM)
                    signalled = True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def resume_resyncs(store: Store) -> list[tuple[int, str]]:
    """Restart the resync of every target that is Resyncing with no process behind it."""
    started = []
    for h in store.cluster().hierarchies:
        for m in h.mirrors:
            for t in m.targets:
                if t.state is MirrorState.RESYNCING and not resync_running(
                    store.home, m.resource_id, t.server
                ):
                    try:
                        start_resync(store.home, m.resource_id, t.server)
                    except OSError as exc:
                        # Opening the lab must not fail for it: say so, and go on.
                        line = (
                            f"cannot restart the resync of {h.tag_of(m.resource_id)} to "
                            f"{t.server}: {exc.strerror or exc}"
                            + (f" ({exc.filename})" if exc.filename else "")
                        )
                        log.error("%s", line)
                        with store.transaction() as txn:
                            txn.add_log_line("recovery", "ERROR", line)
                        continue
                    started.append((m.resource_id, t.server))
    return started
