"""The resync process of one lab mirror target: ``python -m core.backends.lab.resyncd``.

Started by :func:`core.backends.lab.mirrors.start_resync`. It holds ``run/resync-<id>-<target>.lock``
(its pid inside) while it works, copies the source volume to the target volume with the
engine's :class:`~core.replication.resync.Resync` as the source's bitmap says, and keeps
the store's row of the target up to date: "Resyncing" with bytes, rate and ETA a few
times a second, "Target" only once the engine reports every byte in sync, "Out of Sync"
with the reason when a read or write fails. SIGTERM stops it cleanly (the bitmap keeps
what is left to copy); SIGKILL loses nothing either: the next start resumes.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from core.errors import LkError
from core.backends.lab.layout import LabLayout
from core.backends.lab.mirrors import lock_path
from core.model import Hierarchy, MirrorState, MirrorTarget
from core.replication.bitmap import Bitmap, BitmapError, BitmapInvalid, IntentLog, MemoryBitmap
from core.replication.mirror import NoBitmapState
from core.replication.resync import Resync, ResyncBusy, ResyncError, ResyncProgress
from core.replication.volume import Volume
from core.status import format_rate, format_size
from core.backends.lab.store import Store

log = logging.getLogger("lkconsole.resyncd")

PROGRESS_INTERVAL_S = 0.2
BUSY_WAIT_S = 300.0  # how long to wait for a writer that holds the target


def _find(store: Store, resource_id: int) -> Hierarchy | None:
    for h in store.cluster().hierarchies:
        if h.mirror(resource_id) is not None:
            return h
    return None


def run(home: Path, resource_id: int, target: str) -> int:
    lock = lock_path(home, resource_id, target)
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another resync of {target} is running", flush=True)
        return 0
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    try:
        return _resync(home, resource_id, target)
    finally:
        os.close(fd)


def _resync(home: Path, resource_id: int, target: str) -> int:
    store = Store(home)
    layout = LabLayout(home)
    h = _find(store, resource_id)
    mirror = h.mirror(resource_id) if h else None
    row = mirror.target(target) if mirror else None
    if h is None or mirror is None or row is None:
        print(f"no mirror target {target} for resource {resource_id}: nothing to do", flush=True)
        return 0
    source_inst = h.instance(resource_id, mirror.source)
    target_inst = h.instance(resource_id, target)
    if source_inst is None or target_inst is None or not source_inst.volume:
        print("the mirror's resources are gone: nothing to do", flush=True)
        return 0
    tag = source_inst.tag
    op = f"resync {tag} to {target}"

    def set_row(state: MirrorState, reason: str = "", **values: float | int | None) -> None:
        current = _find(store, resource_id)
        m = current.mirror(resource_id) if current else None
        if m is None or m.target(target) is None:
            return  # unextended meanwhile
        new = MirrorTarget(target, state, reason, **values)  # type: ignore[arg-type]
        with store.transaction() as txn:
            txn.set_mirror_target(resource_id, new)

    def say(level: str, text: str) -> None:
        print(f"{level} {text}", flush=True)
        with store.transaction() as txn:
            txn.add_log_line(op, level, text)

    try:
        source = Volume.open(layout.server_path(mirror.source, source_inst.volume), readonly=True)
        target_volume = Volume.open(layout.server_path(target, target_inst.volume or ""))
    except (LkError, OSError) as exc:
        set_row(MirrorState.OUT_OF_SYNC, f"cannot open the volumes: {exc}")
        say("ERROR", f"Resync of {tag} to {target} cannot start: {exc}")
        return 1
    full = False
    bitmap: IntentLog
    if source_inst.bitmap_file:
        path = layout.server_path(mirror.source, source_inst.bitmap_file)
        try:
            bitmap = Bitmap.open(path, volume_size=mirror.volume_size, chunk_size=mirror.chunk_size)
        except BitmapInvalid as exc:
            say(
                "WARNING",
                f"The bitmap {source_inst.bitmap_file} cannot be trusted "
                f"({exc.reason}): rebuilt, full resync of {target}.",
            )
            bitmap = Bitmap.create(
                path,
                volume_size=mirror.volume_size,
                chunk_size=mirror.chunk_size,
                targets=[target],
                overwrite=True,
            )
            full = True
        except (BitmapError, OSError) as exc:
            set_row(MirrorState.OUT_OF_SYNC, f"bitmap: {exc}")
            say("ERROR", f"Resync of {tag} to {target}: bitmap unusable: {exc}")
            return 1
        if not bitmap.has_target(target):
            bitmap.add_target(target, dirty=True)
            full = True
    else:
        # No intent log: nothing says what is in sync, so every resync is full. Writers
        # stop this process before they write (core.mirror_ops), so the engine's "needs
        # a full resync" flag for this target is settled by the full copy that follows.
        bitmap = MemoryBitmap(
            volume_size=mirror.volume_size, chunk_size=mirror.chunk_size, targets=[target]
        )
        full = True
        flags = NoBitmapState(layout.server_path(mirror.source, source_inst.volume))
        if flags.existed and flags.needs_full.pop(target, None) is not None:
            flags.save()

    last = 0.0

    def progress(p: ResyncProgress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PROGRESS_INTERVAL_S and p.bytes_done < p.bytes_total:
            return
        last = now
        left = max(0, p.bytes_total - p.bytes_done)
        set_row(
            MirrorState.RESYNCING,
            "",
            bytes_done=p.bytes_done,
            bytes_total=p.bytes_total,
            rate=p.rate,
            eta=p.eta,
            dirty_chunks=-(-left // mirror.chunk_size),
        )

    try:
        resync = Resync(
            source,
            target_volume,
            bitmap,
            target,
            full=full,
            speed_limit_kbps=mirror.speed_limit_kbps,
            on_progress=progress,
        )
    except ResyncError as exc:
        set_row(MirrorState.OUT_OF_SYNC, exc.reason)
        say("ERROR", f"Resync of {tag} to {target} cannot start: {exc.reason}")
        return 1

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        resync.cancel()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    dirty = bitmap.nchunks if full else bitmap.dirty_count(target)
    kind = "full" if full or dirty == bitmap.nchunks else "partial"
    set_row(
        MirrorState.RESYNCING,
        "",
        bytes_done=0,
        bytes_total=dirty * mirror.chunk_size if not full else mirror.volume_size,
        dirty_chunks=dirty,
    )
    say(
        "INFO",
        f"Resync of {tag} from {mirror.source} to {target} started ({kind}, "
        f"{dirty} dirty chunks of {format_size(mirror.chunk_size)}).",
    )
    try:
        # A writer holding the target (a mirror opened for a write while it was Target)
        # lets go within seconds: wait for it rather than leave the target Resyncing.
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            try:
                result = resync.run()
                break
            except ResyncBusy:
                if stopping or time.monotonic() > deadline:
                    print("another resync holds this target", flush=True)
                    return 0
                time.sleep(0.2)
                resync = Resync(
                    source,
                    target_volume,
                    bitmap,
                    target,
                    full=full,
                    speed_limit_kbps=mirror.speed_limit_kbps,
                    on_progress=progress,
                )
    except ResyncError as exc:
        set_row(MirrorState.OUT_OF_SYNC, exc.reason)
        say(
            "ERROR",
            f"Resync of {tag} to {target} stopped: {exc.reason}. The target is Out "
            "of Sync; the source is untouched.",
        )
        return 1
    finally:
        bitmap.close()
        target_volume.close()
        source.close()
    if result.cancelled:
        print(f"CANCELLED {result.message}", flush=True)
        return 3
    rate = result.bytes_copied / result.elapsed if result.elapsed > 0 else 0.0
    set_row(
        MirrorState.TARGET,
        "",
        bytes_done=result.bytes_done,
        bytes_total=result.bytes_done,
        dirty_chunks=0,
    )
    say(
        "INFO",
        f"Resync of {tag} to {target} complete: {format_size(result.bytes_copied)} "
        f"copied in {result.elapsed:.1f} s ({format_rate(rate)}); {target} is Target.",
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.backends.lab.resyncd")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--resource", required=True, type=int)
    parser.add_argument("--target", required=True)
    args = parser.parse_args(argv)
    os.umask(0o077)  # the volumes, bitmaps and logs it makes are private (core.files)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return run(args.home, args.resource, args.target)
    except LkError as exc:
        print(f"ERROR {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
