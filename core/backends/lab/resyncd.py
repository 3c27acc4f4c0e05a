"""The resync process of one lab mirror target: ``python -m core.backends.lab.resyncd``.

Started by :func:`core.backends.lab.mirrors.start_resync`. It holds
``run/resync-<id>-<target>.lock`` (its pid inside) while it works, copies the source
volume to the target volume with the engine's :class:`~core.replication.resync.Resync`
as the source's bitmap says, and keeps
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
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from core.backends.lab.layout import LabLayout
from core.backends.lab.mirrors import lock_path
from core.backends.lab.store import Store
from core.errors import LkError
from core.model import Hierarchy, MirrorState, MirrorTarget
from core.replication.bitmap import Bitmap, BitmapError, BitmapInvalid, IntentLog, MemoryBitmap
from core.replication.mirror import NoBitmapState
from core.replication.resync import Resync, ResyncBusy, ResyncError, ResyncProgress, ResyncResult
from core.replication.volume import Volume
from core.status import format_rate, format_size

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
    job = _Job(Store(home), LabLayout(home), resource_id, target)
    try:
        return job.run()
    finally:
        job.store.close()


class _Job:
    """One resync of one mirror target, from the store's rows to the engine and back."""

    def __init__(self, store: Store, layout: LabLayout, resource_id: int, target: str) -> None:
        self.store, self.layout = store, layout
        self.resource_id, self.target = resource_id, target
        self.stopping = False
        self.last = 0.0

    def run(self) -> int:
        """The exit status: 0 done (or nothing to do), 1 failed, 3 cancelled."""
        if not self._load():
            return 0
        try:
            source = Volume.open(self._local(self.mirror.source, self.source_volume), readonly=True)
            target = Volume.open(self._local(self.target, self.target_volume))
        except (LkError, OSError) as exc:
            self.set_row(MirrorState.OUT_OF_SYNC, f"cannot open the volumes: {exc}")
            self.say("ERROR", f"Resync of {self.tag} to {self.target} cannot start: {exc}")
            return 1
        try:
            opened = self._open_bitmap()
            if opened is None:
                return 1
            bitmap, full = opened
            try:
                return self._copy(source, target, bitmap, full)
            finally:
                bitmap.close()
        finally:
            target.close()
            source.close()

    def _load(self) -> bool:
        h = _find(self.store, self.resource_id)
        mirror = h.mirror(self.resource_id) if h else None
        row = mirror.target(self.target) if mirror else None
        if h is None or mirror is None or row is None:
            print(f"no mirror target {self.target} for resource {self.resource_id}", flush=True)
            return False
        source_inst = h.instance(self.resource_id, mirror.source)
        target_inst = h.instance(self.resource_id, self.target)
        if source_inst is None or target_inst is None or not source_inst.volume:
            print("the mirror's resources are gone: nothing to do", flush=True)
            return False
        self.mirror = mirror
        self.tag = source_inst.tag
        self.source_volume = source_inst.volume
        self.source_bitmap = source_inst.bitmap_file
        self.target_volume = target_inst.volume or ""
        self.op = f"resync {self.tag} to {self.target}"
        return True

    def _local(self, server: str, path: str) -> Path:
        return self.layout.server_path(server, path)

    def set_row(self, state: MirrorState, reason: str = "", **values: float | int | None) -> None:
        current = _find(self.store, self.resource_id)
        m = current.mirror(self.resource_id) if current else None
        if m is None or m.target(self.target) is None:
            return  # unextended meanwhile
        new = MirrorTarget(self.target, state, reason, **values)  # type: ignore[arg-type]
        with self.store.transaction() as txn:
            txn.set_mirror_target(self.resource_id, new)

    def say(self, level: str, text: str) -> None:
        print(f"{level} {text}", flush=True)
        with self.store.transaction() as txn:
            txn.add_log_line(self.op, level, text)

    def _open_bitmap(self) -> tuple[IntentLog, bool] | None:
        """The intent log and whether the resync is full (None: it cannot be used)."""
        m, target = self.mirror, self.target
        if not self.source_bitmap:
            # No intent log: nothing says what is in sync, so every resync is full.
            # Writers stop this process before they write (core.backends.lab.writes), so
            # the engine's "needs a full resync" flag is settled by the full copy.
            flags = NoBitmapState(self._local(m.source, self.source_volume))
            if flags.existed and flags.needs_full.pop(target, None) is not None:
                flags.save()
            memory = MemoryBitmap(
                volume_size=m.volume_size, chunk_size=m.chunk_size, targets=[target]
            )
            return memory, True
        path = self._local(m.source, self.source_bitmap)
        try:
            bitmap = Bitmap.open(path, volume_size=m.volume_size, chunk_size=m.chunk_size)
        except BitmapInvalid as exc:
            self.say(
                "WARNING",
                f"The bitmap {self.source_bitmap} cannot be trusted "
                f"({exc.reason}): rebuilt, full resync of {target}.",
            )
            bitmap = Bitmap.create(
                path,
                volume_size=m.volume_size,
                chunk_size=m.chunk_size,
                targets=[target],
                overwrite=True,
            )
            return bitmap, True
        except (BitmapError, OSError) as exc:
            self.set_row(MirrorState.OUT_OF_SYNC, f"bitmap: {exc}")
            self.say("ERROR", f"Resync of {self.tag} to {target}: bitmap unusable: {exc}")
            return None
        if not bitmap.has_target(target):
            bitmap.add_target(target, dirty=True)
            return bitmap, True
        return bitmap, False

    def _progress(self, p: ResyncProgress) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL_S and p.bytes_done < p.bytes_total:
            return
        self.last = now
        left = max(0, p.bytes_total - p.bytes_done)
        self.set_row(
            MirrorState.RESYNCING,
            "",
            bytes_done=p.bytes_done,
            bytes_total=p.bytes_total,
            rate=p.rate,
            eta=p.eta,
            dirty_chunks=-(-left // self.mirror.chunk_size),
        )

    def _engine(self, source: Volume, target: Volume, bitmap: IntentLog, full: bool) -> Resync:
        return Resync(
            source,
            target,
            bitmap,
            self.target,
            full=full,
            speed_limit_kbps=self.mirror.speed_limit_kbps,
            on_progress=self._progress,
        )

    def _copy(self, source: Volume, target: Volume, bitmap: IntentLog, full: bool) -> int:
        m = self.mirror
        try:
            resync = self._engine(source, target, bitmap, full)
        except ResyncError as exc:
            self.set_row(MirrorState.OUT_OF_SYNC, exc.reason)
            self.say("ERROR", f"Resync of {self.tag} to {self.target} cannot start: {exc.reason}")
            return 1
        current = [resync]

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stopping = True
            current[0].cancel()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        dirty = bitmap.nchunks if full else bitmap.dirty_count(self.target)
        kind = "full" if full or dirty == bitmap.nchunks else "partial"
        total = dirty * m.chunk_size if not full else m.volume_size
        self.set_row(MirrorState.RESYNCING, "", bytes_done=0, bytes_total=total, dirty_chunks=dirty)
        self.say(
            "INFO",
            f"Resync of {self.tag} from {m.source} to {self.target} started ({kind}, "
            f"{dirty} dirty chunks of {format_size(m.chunk_size)}).",
        )
        try:
            result = self._run_engine(current, source, target, bitmap, full)
        except ResyncError as exc:
            self.set_row(MirrorState.OUT_OF_SYNC, exc.reason)
            self.say(
                "ERROR",
                f"Resync of {self.tag} to {self.target} stopped: {exc.reason}. The target is "
                "Out of Sync; the source is untouched.",
            )
            return 1
        if result is None:
            print("another resync holds this target", flush=True)
            return 0
        return self._finish(result)

    def _run_engine(
        self,
        current: list[Resync],
        source: Volume,
        target: Volume,
        bitmap: IntentLog,
        full: bool,
    ) -> ResyncResult | None:
        """Run the engine; a writer holding the target (a mirror opened for a write while
        it was Target) lets go within seconds: wait for it (None: it did not)."""
        deadline = time.monotonic() + BUSY_WAIT_S
        pause = threading.Event()
        while True:
            try:
                return current[0].run()
            except ResyncBusy:
                if self.stopping or time.monotonic() > deadline:
                    return None
                pause.wait(0.2)
                current[0] = self._engine(source, target, bitmap, full)

    def _finish(self, result: ResyncResult) -> int:
        if result.cancelled:
            print(f"CANCELLED {result.message}", flush=True)
            return 3
        rate = result.bytes_copied / result.elapsed if result.elapsed > 0 else 0.0
        self.set_row(
            MirrorState.TARGET,
            "",
            bytes_done=result.bytes_done,
            bytes_total=result.bytes_done,
            dirty_chunks=0,
        )
        self.say(
            "INFO",
            f"Resync of {self.tag} to {self.target} complete: {format_size(result.bytes_copied)} "
            f"copied in {result.elapsed:.1f} s ({format_rate(rate)}); {self.target} is Target.",
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
