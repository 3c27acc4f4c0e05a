"""The resync worker: copy the dirty chunks (or every chunk) of a source volume to a target.

The target is any :class:`~core.replication.target.TargetVolume`: a local file or an NBD
export of another machine (:mod:`.nbd`); the source is a local volume.

**Thread or process.** The copy is one :class:`Resync` object whose :meth:`Resync.run`
does the work in the calling thread; :meth:`Resync.start` runs it in a daemon thread
(what :class:`~core.replication.mirror.Mirror` does). A thread is enough: the work is
``copy_file_range``/``pread``/``pwrite``/``fdatasync`` system calls, during which Python
releases the GIL, and a thread shares the mirror's chunk locks, its in-memory bitmap
(bitmap None) and its callbacks with no serialisation. The same worker also runs as a
process, ``python -m core.replication.resync --source S --target T --bitmap B
--target-name NAME [--full] [--speed-limit KBPS] [--chunk-size N]`` (``T`` a file, or
an ``nbds://user@host:port/?tls-psk-file=F`` address: then run it under the system
``python3``, where libnbd's bindings are, see :mod:`.nbd`), which exits 0 and
prints a final ``TARGET <name> in sync ...`` line when the target is in sync. Because
every step that matters is either recorded in the bitmap file or repeatable, the process
can be killed (SIGKILL) at any point and restarted: it resumes from the bitmap.

**Protocol** (see ``bitmap.py`` for D and C bits)::

    full resync:   bitmap.set_all(target)   (durable, before any copy: a crash resumes)
    each pass:     for each group of runs of dirty chunks (<= io_size bytes copied):
                       hold the group's chunk range shared (ChunkLocks: threads + OFD)
                       copy source -> target, run by run (or skip holes, see below)
                       bitmap.note_copied_runs(group)        (C bits)
                   every commit_bytes / commit_interval, in a helper thread:
                       target.fdatasync(); bitmap.commit_clears(chunks copied before)
    end of pass:   hold every chunk shared (waits for writers in flight), commit, copy
                   the last few dirty chunks if any (at most FINAL_PASS_CHUNKS, or all
                   of them when passes stopped shrinking under heavy writes), flush, and
                   only when the target's D bits are all clear and the target is
                   flushed: in sync (``on_in_sync`` is called right there, still under
                   the lock, so the mirror switches the target to TARGET before any
                   other write goes through).

Writers hold a chunk exclusively while they mark the bitmap (D set, C cancelled) and
write the source, so a chunk written during its copy is either copied after the write
or has its C bit cancelled and is copied again in the next pass: the target never ends
older than the source. A resync killed anywhere leaves D bits set for every chunk not
yet committed, and commits happen only after the target was flushed, so a restart
never skips a chunk the target lacks, and TARGET is never reported early. One resync
at a time owns a target (an OFD lock on the target's ``owner_lock_path``, the target
file itself or, for a remote target, a lock file on the source node; released by the
kernel when the owner dies): a second one fails with :class:`ResyncBusy`.

**Holes.** A chunk that is a hole in the source *and* a hole in the target
(``lseek(SEEK_DATA)`` finds no data in its range in either file, checked while the
chunk is locked) reads as zeros on both sides: it needs no copy and counts as done.
A run with no hole at all in the source (``SEEK_HOLE``) is copied in one go; a hole in
the source over data in the target is copied (zeros are written). Filesystems without
hole support report everything as data, so holes are never wrongly assumed. Only a hole
in both can be skipped, and nothing here makes a hole (writes fill them): when either
file has none at the start (an NBD target never claims one), no chunk is checked.

**Speed.** Large runs (``io_size``, 4 MiB by default) copied by the target's
``copy_from``: for a file ``copy_file_range`` (in-kernel, no copy through Python; falls
back to ``preadv``/``pwrite`` with one reused buffer), for an NBD export several writes
in flight at once. Writeback of the target is started after each group (a local one:
``sync_file_range(SYNC_FILE_RANGE_WRITE)``; over NBD: a flush nobody waits for, one at
a time) and the periodic commits (every
64 MiB or second: ``fdatasync`` + clearing bits) run in a helper thread, so the disk
writes while the copy goes on; one last ``fdatasync`` at the end; never one per chunk.
Scattered dirty chunks are grouped (one lock and one bitmap update per group). The
speed limit is LifeKeeper's ``LKDR_SPEED_LIMIT`` in KB/s (1 KB = 1000 bytes), 500000
by default, 0 = unlimited; while writes compete (``competing_io()`` true) the limit
drops to ``LKDR_SPEED_LIMIT_MIN`` (20000 KB/s) unless the limit is lower.

Without a persistent bitmap (bitmap None: a :class:`MemoryBitmap`), nothing survives a
crash: a killed resync starts again from zero, as a full resync.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from core.errors import OperationError
from core.events import MirrorProgress
from core.replication.bitmap import (
    DEFAULT_CHUNK_SIZE,
    Bitmap,
    BitmapError,
    BitmapInvalid,
    IntentLog,
    MemoryBitmap,
)
from core.replication.nbd import DEFAULT_DEADLINE, NbdEndpoint
from core.replication.volume import (
    ChunkLocks,
    Volume,
    VolumeError,
    has_hole,
    is_hole,
    try_lock_file,
)

if TYPE_CHECKING:
    from core.replication.target import TargetVolume

__all__ = [
    "DEFAULT_IO_SIZE",
    "DEFAULT_SPEED_LIMIT_KBPS",
    "DEFAULT_SPEED_LIMIT_MIN_KBPS",
    "OWNER_LOCK_OFFSET",
    "Resync",
    "ResyncBusy",
    "ResyncError",
    "ResyncProgress",
    "ResyncResult",
    "main",
]

DEFAULT_SPEED_LIMIT_KBPS = 500_000  # LKDR_SPEED_LIMIT
DEFAULT_SPEED_LIMIT_MIN_KBPS = 20_000  # LKDR_SPEED_LIMIT_MIN
DEFAULT_IO_SIZE = 4 * 1024 * 1024
DEFAULT_COMMIT_BYTES = 64 * 1024 * 1024
DEFAULT_COMMIT_INTERVAL = 1.0
PROGRESS_INTERVAL = 0.1  # at most ~10 reports a second
FINAL_PASS_CHUNKS = 64  # copied while every writer waits, to converge under writes
GROUP_SPAN = 16  # a lock group spans at most 16 I/O sizes of chunks
STALLED_PASSES = 3  # passes that did not shrink the dirty set before forcing the end
READ_AHEAD_BYTES = 8 * 1024 * 1024  # source reads asked of the kernel ahead of the copy
#: Byte offset, in the target volume file, of the lock that says "a resync owns me".
OWNER_LOCK_OFFSET = 1 << 61

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_BUSY = 4


class ResyncError(OperationError):
    """The resync could not complete (a read or write failed); ``reason`` says why."""

    def __init__(self, target: str, reason: str, errno_: int | None = None) -> None:
        self.target = target
        self.reason = reason
        self.errno = errno_
        super().__init__(f"resync of {target} failed: {reason}", step="resync")


class ResyncBusy(ResyncError):
    """Another resync (thread or process) already works on this target."""


@dataclass(frozen=True)
class ResyncProgress:
    """One progress report (also what :class:`~core.events.MirrorProgress` carries)."""

    target: str
    bytes_done: int
    bytes_total: int
    rate: float  # bytes per second, over the last seconds
    eta: float | None  # seconds, None while unknown
    chunks_copied: int
    chunks_skipped: int  # holes in both files
    full: bool
    paused: bool = False

    @property
    def percent(self) -> int:
        if self.bytes_total <= 0:
            return 100
        return min(100, int(self.bytes_done * 100 / self.bytes_total))

    def as_event(self, mirror: str) -> MirrorProgress:
        """The :class:`core.events.MirrorProgress` to publish for mirror tag ``mirror``."""
        return MirrorProgress(
            mirror=mirror,
            target=self.target,
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
            rate=self.rate,
            eta=self.eta,
        )


@dataclass(frozen=True)
class ResyncResult:
    target: str
    in_sync: bool
    cancelled: bool
    full: bool
    bytes_copied: int  # bytes actually copied (holes excluded)
    bytes_done: int  # copied + skipped
    chunks_copied: int
    chunks_skipped: int
    passes: int
    elapsed: float
    message: str


ProgressCallback = Callable[[ResyncProgress], None]


class _ReadAhead:
    """Ask the kernel for the source's next runs, up to ``READ_AHEAD_BYTES`` ahead of the copy.

    A partial resync reads scattered chunks, each one a random read that the disk serves
    only when the copy asks for it; ``POSIX_FADV_WILLNEED`` for the runs ahead queues
    their reads at once, so that the disk serves them together while earlier chunks are
    being sent, and the copy finds them in the page cache (measured on the Pacemaker lab:
    a partial resync of 1 % of 1 GiB took 37 ms with the source cached, 53 ms with it
    cold; see benchmarks/pacemaker_datakeeper.py). Contiguous runs gain little (the
    kernel reads ahead by itself) and lose nothing.
    """

    def __init__(self, source: Volume, extents: list[tuple[int, int]]) -> None:
        self._source = source
        self._extents = extents
        self._next = 0  # the first extent not asked for yet
        self._asked = 0  # bytes asked for so far
        self._copied = 0  # bytes the copy took so far

    def advance(self, copying: int) -> None:
        """Before copying ``copying`` more bytes: ask for those and the window after them."""
        self._copied += copying
        while self._next < len(self._extents) and self._asked < self._copied + READ_AHEAD_BYTES:
            offset, length = self._extents[self._next]
            self._source.read_ahead(offset, length)
            self._asked += length
            self._next += 1


def _check_sizes(source: Volume, target: TargetVolume, bitmap: IntentLog, name: str) -> None:
    """The target and the bitmap must both be the source's size (else ResyncError)."""
    if target.size != source.size:
        raise ResyncError(
            name,
            f"target volume {target.location} has {target.size} bytes, source "
            f"{source.path} has {source.size}",
        )
    if bitmap.volume_size != source.size:
        raise ResyncError(
            name,
            f"bitmap covers {bitmap.volume_size} bytes, the source has {source.size}",
        )


class Resync:
    """Copy ``source`` to ``target`` chunk by chunk, as the bitmap says (module doc)."""

    def __init__(
        self,
        source: Volume,
        target: TargetVolume,
        bitmap: IntentLog,
        target_name: str,
        *,
        locks: ChunkLocks | None = None,
        full: bool = False,
        speed_limit_kbps: int = DEFAULT_SPEED_LIMIT_KBPS,
        speed_limit_min_kbps: int = DEFAULT_SPEED_LIMIT_MIN_KBPS,
        competing_io: Callable[[], bool] | None = None,
        io_size: int = DEFAULT_IO_SIZE,
        commit_bytes: int = DEFAULT_COMMIT_BYTES,
        commit_interval: float = DEFAULT_COMMIT_INTERVAL,
        on_progress: ProgressCallback | None = None,
        on_in_sync: Callable[[], None] | None = None,
        skip_holes: bool = True,
        take_ownership: bool = True,
    ) -> None:
        _check_sizes(source, target, bitmap, target_name)
        self.source = source
        self.target = target
        self.bitmap = bitmap
        self.name = target_name
        self.chunk_size = bitmap.chunk_size
        self.nchunks = bitmap.nchunks
        self.locks = locks if locks is not None else ChunkLocks(source.path, self.chunk_size)
        self._own_locks = locks is None
        self.full = full
        self._speed_kbps = max(0, speed_limit_kbps)
        self._speed_min_kbps = max(0, speed_limit_min_kbps)
        self._competing = competing_io
        self.io_chunks = max(1, io_size // self.chunk_size)
        self.commit_bytes = max(self.chunk_size, commit_bytes)
        self.commit_interval = commit_interval
        self._on_progress = on_progress
        self._on_in_sync = on_in_sync
        self.skip_holes = skip_holes
        self._take_ownership = take_ownership

        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: ResyncResult | None = None
        self._error: BaseException | None = None
        self._committer: threading.Thread | None = None
        self._unflushed = False  # the target was written since its last flush
        self._may_skip_holes = skip_holes
        self._commit_error: BaseException | None = None
        self._init_progress()

    def _init_progress(self) -> None:
        """The progress counters, all zero before the first pass."""
        self.bytes_total = 0
        self.bytes_done = 0
        self.bytes_copied = 0
        self.chunks_copied = 0
        self.chunks_skipped = 0
        self.passes = 0
        self._samples: deque[tuple[float, int]] = deque()
        self._last_report = 0.0
        self._paused_reported = False

    # -- control ------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop between two runs of chunks (no lock is held while paused)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()
        self._wake.set()

    def cancel(self) -> None:
        """Stop at the next run boundary; what was copied is committed."""
        self._cancel.set()
        self._running.set()
        self._wake.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def set_speed_limit(self, kbps: int, min_kbps: int | None = None) -> None:
        """Change the speed limit (KB/s, 1 KB = 1000 bytes; 0 = unlimited) at once."""
        self._speed_kbps = max(0, kbps)
        if min_kbps is not None:
            self._speed_min_kbps = max(0, min_kbps)
        self._wake.set()

    # -- thread --------------------------------------------------------------------------
    def start(self) -> threading.Thread:
        """Run in a daemon thread; :meth:`join` waits for the result."""
        if self._thread is not None:
            raise OperationError("resync already started", step="resync")
        t = threading.Thread(target=self._thread_main, name=f"resync-{self.name}", daemon=True)
        self._thread = t
        t.start()
        return t

    def _thread_main(self) -> None:
        try:
            self._result = self.run()
        except BaseException as exc:  # handed to join(); the thread must not die silently
            self._error = exc

    def join(self, timeout: float | None = None) -> ResyncResult | None:
        """The result once the thread finished (None on timeout); re-raises its error."""
        if self._thread is None:
            raise OperationError("resync not started", step="resync")
        self._thread.join(timeout)
        if self._thread.is_alive():
            return None
        if self._error is not None:
            raise self._error
        return self._result

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the work ------------------------------------------------------------------------
    def run(self) -> ResyncResult:
        """Resync in the calling thread; returns when in sync or cancelled.

        Raises :class:`ResyncBusy` when another resync owns the target, and
        :class:`ResyncError` when reading the source or writing the target fails.
        """
        owner_fd = -1
        if self._take_ownership:
            owner_fd = self._acquire_ownership()
        t0 = time.monotonic()
        try:
            return self._run(t0)
        finally:
            th = self._committer
            if th is not None:  # only after an error: let its flush end before we return
                th.join()
            if owner_fd >= 0:
                os.close(owner_fd)  # releases the OFD lock
            if self._own_locks:
                self.locks.close()

    def _acquire_ownership(self) -> int:
        path = self.target.owner_lock_path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if not try_lock_file(fd, OWNER_LOCK_OFFSET, 1):
            os.close(fd)
            raise ResyncBusy(self.name, f"another resync or mirror owns {self.target.location}")
        return fd

    def _run(self, t0: float) -> ResyncResult:
        self._prepare()
        self._samples.append((t0, 0))
        pending: list[int] = []  # copied, not yet committed
        pending_bytes = 0
        last_commit = time.monotonic()
        previous: list[int] = []
        stalled = 0
        try:
            while True:
                if self._cancel.is_set():
                    self._commit(pending)
                    return self._finish(t0, in_sync=False, cancelled=True)
                dirty = self.bitmap.dirty_chunks(self.name)
                self.bytes_total = self.bytes_done + self._bytes_of(dirty)
                if self.passes > 0 and len(dirty) * 10 >= len(previous) * 9:
                    stalled += 1  # writers dirty chunks as fast as we copy them
                else:
                    stalled = 0
                previous = dirty
                # Finish when nothing is left, or when the previous pass left so little
                # (writes keep coming) that copying it while writers wait is short, or
                # when passes stopped shrinking (then writers wait for one whole pass).
                if (
                    not dirty
                    or (self.passes > 0 and len(dirty) <= FINAL_PASS_CHUNKS)
                    or stalled >= STALLED_PASSES
                ):
                    if self._try_finish(pending, force=stalled >= STALLED_PASSES):
                        return self._finish(t0, in_sync=True, cancelled=False)
                    continue
                self.passes += 1
                groups = self._groups(dirty)
                ahead = _ReadAhead(
                    self.source, [self._extent(f, e) for _, _, runs in groups for f, e in runs]
                )
                for lock_first, lock_end, runs in groups:
                    if not self._wait_running():
                        break
                    nbytes = sum(self._span(first, end) for first, end in runs)
                    ahead.advance(nbytes)
                    self._copy_group(lock_first, lock_end, runs)
                    for first, end in runs:
                        pending.extend(range(first, end))
                    pending_bytes += nbytes
                    self._report()
                    now = time.monotonic()
                    if (
                        pending_bytes >= self.commit_bytes
                        or now - last_commit >= self.commit_interval
                    ) and self._commit_async(pending):
                        pending_bytes, last_commit = 0, now
                    self._throttle()
                if self._cancel.is_set():
                    continue
                # End of a pass: commit and check under every chunk's lock at once (the
                # usual case, no writer meanwhile, ends here with a single flush).
                if self._try_finish(pending):
                    return self._finish(t0, in_sync=True, cancelled=False)
                pending_bytes, last_commit = 0, time.monotonic()
        except OSError as exc:
            with contextlib.suppress(OSError, BitmapError):
                self._commit(pending)
            raise ResyncError(self.name, exc.strerror or str(exc), exc.errno) from exc

    def _prepare(self) -> None:
        """Before the first pass: every bit set for a full resync, what there is to copy."""
        try:
            if self.full:
                self.bitmap.set_all(self.name)  # durable before the first copy
            self.bytes_total = self._bytes_of(self.bitmap.dirty_chunks(self.name))
            # Writes fill holes, nothing here makes new ones: a file without any hole
            # now has none for the whole resync, and no chunk can be a hole in both (a
            # partial resync over NBD spent a tenth of its time in the source's checks)
            self._may_skip_holes = (
                self.skip_holes
                and has_hole(self.source.fileno(), 0, self.source.size)
                and self.target.has_hole(0, self.target.size)
            )
        except (OSError, BitmapError) as exc:
            raise ResyncError(self.name, f"bitmap: {exc}", getattr(exc, "errno", None)) from exc

    def _try_finish(self, pending: list[int], force: bool = False) -> bool:
        """Under every chunk's lock: commit, copy the last dirty chunks, flush, check.

        Writers wait meanwhile, so this copies at most ``FINAL_PASS_CHUNKS`` chunks,
        unless ``force`` (passes stopped converging under a heavy write load).
        """
        with self.locks.everything():
            self._commit(pending)
            dirty = self.bitmap.dirty_chunks(self.name)
            if len(dirty) > FINAL_PASS_CHUNKS and not force:
                return False
            if dirty:
                self.passes += 1
                self.bytes_total = self.bytes_done + self._bytes_of(dirty)
                runs = self._runs(dirty, unlimited=True)
                for first, end in runs:
                    self._copy(first, end)
                self.bitmap.note_copied_runs(self.name, runs)
                self._commit(list(dirty))
            self._flush_target()
            if self.bitmap.dirty_count(self.name) != 0:
                return False  # only possible if someone bypassed the chunk locks
            if self._on_in_sync is not None:
                self._on_in_sync()
            return True

    def _commit(self, chunks: list[int]) -> None:
        """Flush the target, then clear the bits of ``chunks`` (copied before the flush)."""
        self._commit_wait()
        if not chunks:
            return
        self._flush_target()  # the data first, then the bits that say it is there
        self.bitmap.commit_clears(self.name, chunks)
        chunks.clear()

    def _flush_target(self) -> None:
        """``fdatasync`` the target, unless nothing was written since the last one."""
        if self._unflushed:
            self._unflushed = False  # before: a copy ending during the flush sets it again
            try:
                self.target.flush()
            except BaseException:
                self._unflushed = True  # nothing copied is known durable: flush next time
                raise

    def _commit_async(self, chunks: list[int]) -> bool:
        """Commit ``chunks`` in a helper thread while copying goes on.

        The target's writeback then overlaps the copy instead of stopping it. Only one
        commit runs at a time: when one is still running, False (keep accumulating).
        """
        th = self._committer
        if th is not None and th.is_alive():
            return False
        self._commit_wait()  # reap the previous one (and raise its error)
        if not chunks:
            return True
        batch = list(chunks)
        chunks.clear()
        th = threading.Thread(
            target=self._commit_worker, args=(batch,), name=f"commit-{self.name}", daemon=True
        )
        self._committer = th
        th.start()
        return True

    def _commit_worker(self, batch: list[int]) -> None:
        try:
            self._flush_target()
            self.bitmap.commit_clears(self.name, batch)
        except BaseException as exc:  # handed to the copying thread by _commit_wait
            self._commit_error = exc

    def _commit_wait(self) -> None:
        th = self._committer
        if th is not None:
            th.join()
            self._committer = None
        exc = self._commit_error
        if exc is not None:
            self._commit_error = None
            raise exc

    def _finish(self, t0: float, *, in_sync: bool, cancelled: bool) -> ResyncResult:
        elapsed = time.monotonic() - t0
        if in_sync:
            msg = (
                f"{self.name} in sync: copied {self.bytes_copied} bytes "
                f"({self.chunks_copied} chunks, {self.chunks_skipped} hole chunks skipped) "
                f"in {elapsed:.2f} s, {self.passes} pass(es)"
            )
        else:
            msg = (
                f"{self.name} resync cancelled after {self.bytes_done} of {self.bytes_total} bytes"
            )
        self._report(force=True)
        return ResyncResult(
            target=self.name,
            in_sync=in_sync,
            cancelled=cancelled,
            full=self.full,
            bytes_copied=self.bytes_copied,
            bytes_done=self.bytes_done,
            chunks_copied=self.chunks_copied,
            chunks_skipped=self.chunks_skipped,
            passes=self.passes,
            elapsed=elapsed,
            message=msg,
        )

    # -- copying ---------------------------------------------------------------------------
    def _io_limit(self) -> int:
        """Chunks per copy: the I/O size, or less so that the speed limit paces smoothly."""
        limit = self.io_chunks
        rate = self._rate_limit()
        if rate:
            limit = max(1, min(limit, int(rate * 0.05) // self.chunk_size))
        return limit

    def _runs(self, dirty: Sequence[int], unlimited: bool = False) -> list[tuple[int, int]]:
        """Contiguous runs of dirty chunks, each at most the I/O size (and speed slice)."""
        limit = self.nchunks if unlimited else self._io_limit()
        runs: list[tuple[int, int]] = []
        start = prev = -2
        for c in dirty:
            if c == prev + 1 and c - start < limit:
                prev = c
                continue
            if start >= 0:
                runs.append((start, prev + 1))
            start = prev = c
        if start >= 0:
            runs.append((start, prev + 1))
        return runs

    def _groups(self, dirty: Sequence[int]) -> list[tuple[int, int, list[tuple[int, int]]]]:
        """Runs gathered under one lock: ``(lock_first, lock_end, runs)``.

        Scattered dirty chunks (a partial resync) are copied a few at a time under one
        lock and one bitmap update, instead of paying both for every chunk: a group
        copies at most the I/O size and spans at most ``GROUP_SPAN`` times it (writers
        to the chunks in between wait for one group, i.e. one I/O size of copying).
        """
        limit = self._io_limit()
        span = limit * GROUP_SPAN
        groups: list[tuple[int, int, list[tuple[int, int]]]] = []
        cur: list[tuple[int, int]] = []
        size = 0
        for first, end in self._runs(dirty):
            n = end - first
            if cur and (size + n > limit or end - cur[0][0] > span):
                groups.append((cur[0][0], cur[-1][1], cur))
                cur, size = [], 0
            cur.append((first, end))
            size += n
        if cur:
            groups.append((cur[0][0], cur[-1][1], cur))
        return groups

    def _span(self, first: int, end: int) -> int:
        return min(end * self.chunk_size, self.source.size) - first * self.chunk_size

    def _extent(self, first: int, end: int) -> tuple[int, int]:
        """``(offset, length)`` in bytes of chunks ``[first, end)``."""
        return first * self.chunk_size, self._span(first, end)

    def _bytes_of(self, chunks: Sequence[int]) -> int:
        if not chunks:
            return 0
        n = len(chunks) * self.chunk_size
        if max(chunks) == self.nchunks - 1:
            n -= self.nchunks * self.chunk_size - self.source.size
        return n

    def _copy_group(self, lock_first: int, lock_end: int, runs: list[tuple[int, int]]) -> None:
        with self.locks.shared(lock_first, lock_end):
            for first, end in runs:
                self._copy(first, end)
            self.bitmap.note_copied_runs(self.name, runs)
        # overlap the target's writeback with the next copies (one call per group: it
        # only writes pages that are dirty, so the clean chunks in between cost nothing)
        self.target.start_writeback(lock_first * self.chunk_size, self._span(lock_first, lock_end))

    def _copy(self, first: int, end: int) -> None:
        """Copy chunks ``[first, end)``, skipping chunks that are holes in both files."""
        off = first * self.chunk_size
        length = self._span(first, end)
        sfd = self.source.fileno()
        target = self.target
        if not self._may_skip_holes or not has_hole(sfd, off, length):
            self._copy_run(first, end)  # the usual case: all data, one big copy
        elif is_hole(sfd, off, length) and target.is_hole(off, length):
            self.chunks_skipped += end - first
        else:  # mixed: decide chunk by chunk, copying contiguous runs
            run_start = -1
            for c in range(first, end):
                c_off = c * self.chunk_size
                c_len = self._span(c, c + 1)
                skip = is_hole(sfd, c_off, c_len) and target.is_hole(c_off, c_len)
                if skip:
                    if run_start >= 0:
                        self._copy_run(run_start, c)
                        run_start = -1
                    self.chunks_skipped += 1
                elif run_start < 0:
                    run_start = c
            if run_start >= 0:
                self._copy_run(run_start, end)
        self.bytes_done += length

    def _copy_run(self, first: int, end: int) -> None:
        length = self._span(first, end)
        off = first * self.chunk_size
        self.target.copy_from(self.source, off, length)
        # after the copy: a flush that reset the flag while the copy ran may not cover it
        self._unflushed = True
        self.chunks_copied += end - first
        self.bytes_copied += length

    # -- pacing and progress ----------------------------------------------------------------
    def _rate_limit(self) -> float:
        """Bytes per second allowed now (0 = unlimited)."""
        kbps = self._speed_kbps
        if self._competing is not None and self._speed_min_kbps and self._competing():
            kbps = self._speed_min_kbps if kbps == 0 else min(kbps, self._speed_min_kbps)
        return kbps * 1000.0

    def _throttle(self) -> None:
        while not self._cancel.is_set():
            rate = self._rate_limit()
            if rate <= 0:
                return
            now = time.monotonic()
            t_ref, b_ref = self._samples[0] if self._samples else (now, self.bytes_done)
            # pace on the last second or so, so a limit change applies quickly
            allowed_at = t_ref + (self.bytes_done - b_ref) / rate
            if allowed_at <= now:
                return
            self._wake.clear()
            self._wake.wait(min(allowed_at - now, 0.2))

    def _wait_running(self) -> bool:
        """Block while paused; False when cancelled."""
        if not self._running.is_set():
            self._report(force=True, paused=True)
            paused_at = time.monotonic()
            while not self._running.wait(0.5):
                if self._cancel.is_set():
                    break
            # paused time does not count for the rate
            shift = time.monotonic() - paused_at
            self._samples = deque((t + shift, b) for t, b in self._samples)
        return not self._cancel.is_set()

    def _rate(self, now: float) -> float:
        self._samples.append((now, self.bytes_done))
        while len(self._samples) > 2 and now - self._samples[1][0] > 2.0:
            self._samples.popleft()
        t_ref, b_ref = self._samples[0]
        if now - t_ref <= 1e-6:
            return 0.0
        return (self.bytes_done - b_ref) / (now - t_ref)

    def progress(self) -> ResyncProgress:
        now = time.monotonic()
        t_ref, b_ref = self._samples[0] if self._samples else (now, self.bytes_done)
        rate = (self.bytes_done - b_ref) / (now - t_ref) if now - t_ref > 1e-6 else 0.0
        return self._make_progress(rate, self.paused)

    def _make_progress(self, rate: float, paused: bool) -> ResyncProgress:
        remaining = max(0, self.bytes_total - self.bytes_done)
        eta = remaining / rate if rate > 0 else (0.0 if remaining == 0 else None)
        return ResyncProgress(
            target=self.name,
            bytes_done=self.bytes_done,
            bytes_total=max(self.bytes_total, self.bytes_done),
            rate=rate,
            eta=eta,
            chunks_copied=self.chunks_copied,
            chunks_skipped=self.chunks_skipped,
            full=self.full,
            paused=paused,
        )

    def _report(self, force: bool = False, paused: bool = False) -> None:
        now = time.monotonic()
        rate = self._rate(now)
        if self._on_progress is None:
            return
        if not force and now - self._last_report < PROGRESS_INTERVAL:
            return
        self._last_report = now
        self._on_progress(self._make_progress(0.0 if paused else rate, paused))


# -- the command line (a resync in its own process) -------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m core.replication.resync",
        description="Resync a mirror target from its source volume (exit 0 = in sync).",
    )
    p.add_argument("--source", required=True, help="source volume file")
    p.add_argument(
        "--target",
        required=True,
        help="target volume file (created if missing), or the target's NBD export: "
        "nbds://USER@HOST:PORT/?tls-psk-file=KEYFILE (run under /usr/bin/python3)",
    )
    p.add_argument(
        "--deadline",
        type=float,
        default=DEFAULT_DEADLINE,
        metavar="SECONDS",
        help="NBD target: longest wait for any reply (default %(default)s)",
    )
    p.add_argument(
        "--owner-lock",
        metavar="FILE",
        help="NBD target: the local lock file that stands for it (default: next to the key)",
    )
    p.add_argument("--bitmap", help="bitmap file (omit for no intent log: full resync)")
    p.add_argument("--target-name", required=True, help="the target's name in the bitmap")
    p.add_argument("--full", action="store_true", help="copy every chunk")
    p.add_argument(
        "--speed-limit",
        type=int,
        default=DEFAULT_SPEED_LIMIT_KBPS,
        metavar="KBPS",
        help="KB/s, 1 KB = 1000 bytes, 0 = unlimited (default %(default)s)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help=f"bytes per bitmap bit (default: the bitmap's, else {DEFAULT_CHUNK_SIZE})",
    )
    p.add_argument("--io-size", type=int, default=DEFAULT_IO_SIZE, help="bytes per copy")
    p.add_argument(
        "--commit-bytes",
        type=int,
        default=DEFAULT_COMMIT_BYTES,
        help="flush the target and clear bits every N bytes copied",
    )
    p.add_argument(
        "--commit-interval",
        type=float,
        default=DEFAULT_COMMIT_INTERVAL,
        help="... or every N seconds",
    )
    p.add_argument("--quiet", action="store_true", help="no PROGRESS lines")
    return p.parse_args(argv)


def _open_bitmap(args: argparse.Namespace, volume_size: int) -> tuple[IntentLog, bool]:
    """(bitmap, whether the resync must be full)."""
    name: str = args.target_name
    if args.bitmap is None:
        print(f"NOTE no bitmap: full resync of {name}", flush=True)
        return (
            MemoryBitmap(
                volume_size=volume_size,
                chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE,
                targets=[name],
            ),
            True,
        )
    full = bool(args.full)
    try:
        bm = Bitmap.open(args.bitmap, volume_size=volume_size, chunk_size=args.chunk_size)
    except BitmapInvalid as exc:
        print(f"BITMAP-INVALID {exc.reason}: rebuilding it, full resync", flush=True)
        bm = Bitmap.create(
            args.bitmap,
            volume_size=volume_size,
            chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE,
            targets=[name],
            overwrite=True,
        )
        full = True
    except BitmapError:
        if os.path.exists(args.bitmap):
            raise
        bm = Bitmap.create(
            args.bitmap,
            volume_size=volume_size,
            chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE,
            targets=[name],
        )
        full = True
    if not bm.has_target(name):
        bm.add_target(name, dirty=True)
        full = True
    return bm, full


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        source = Volume.open(args.source, readonly=True)
    except (VolumeError, OSError) as exc:
        print(f"ERROR source: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    try:
        endpoint = _nbd_endpoint(args)
    except VolumeError as exc:
        print(f"ERROR target: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    # A missing target is all zeros: mark every chunk dirty (durably) before creating it,
    # so a run killed right after the creation cannot leave an empty target "in sync".
    # (A remote target's volume exists: its node serves it.)
    target_missing = endpoint is None and not (
        os.path.exists(args.target) and os.path.getsize(args.target) > 0
    )
    try:
        bitmap, full = _open_bitmap(args, source.size)
        if target_missing:
            bitmap.set_all(args.target_name)
            full = True
    except (BitmapError, OSError) as exc:
        print(f"ERROR bitmap: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    try:
        target = _open_target(args, endpoint, target_missing, source.size)
    except (VolumeError, OSError) as exc:
        print(f"ERROR target: {exc}", file=sys.stderr, flush=True)
        bitmap.close()
        return EXIT_ERROR
    try:
        resync = Resync(
            source,
            target,
            bitmap,
            args.target_name,
            full=full or args.full,
            speed_limit_kbps=args.speed_limit,
            io_size=args.io_size,
            commit_bytes=args.commit_bytes,
            commit_interval=args.commit_interval,
            on_progress=_progress_printer(args),
        )
    except ResyncError as exc:
        print(f"ERROR {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    return _run_resync(args, resync, source, target, bitmap)


def _nbd_endpoint(args: argparse.Namespace) -> NbdEndpoint | None:
    """The target's NBD export when ``--target`` is a URI (None: a local file)."""
    if "://" not in args.target:
        return None
    return NbdEndpoint.from_uri(
        args.target,
        deadline=args.deadline,
        connect_deadline=args.deadline,
        owner_lock=args.owner_lock,
    )


def _open_target(
    args: argparse.Namespace, endpoint: NbdEndpoint | None, missing: bool, size: int
) -> TargetVolume:
    """The target volume: the NBD export, else the local file (created when ``missing``)."""
    if endpoint is not None:
        return endpoint.open_volume(size)
    if missing:
        return Volume.create(args.target, size, exist_ok=True)
    return Volume.open(args.target)


def _progress_printer(args: argparse.Namespace) -> ProgressCallback:
    """A PROGRESS line per report, unless ``--quiet``."""

    def progress(p: ResyncProgress) -> None:
        if not args.quiet:
            eta = "-" if p.eta is None else f"{p.eta:.1f}"
            print(
                f"PROGRESS {p.target} {p.bytes_done} {p.bytes_total} {p.rate:.0f} {eta}",
                flush=True,
            )

    return progress


def _run_resync(
    args: argparse.Namespace,
    resync: Resync,
    source: Volume,
    target: TargetVolume,
    bitmap: IntentLog,
) -> int:
    """Run ``resync`` (SIGTERM and SIGINT cancel it), close the volumes and the bitmap,
    print the outcome; the exit code."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        resync.cancel()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"START {args.target_name} full={int(resync.full)}", flush=True)
    try:
        result = resync.run()
    except ResyncBusy as exc:
        print(f"BUSY {exc}", file=sys.stderr, flush=True)
        return EXIT_BUSY
    except ResyncError as exc:
        print(f"OUT-OF-SYNC {args.target_name}: {exc.reason}", flush=True)
        return EXIT_ERROR
    finally:
        bitmap.close()
        target.close()
        source.close()
    if result.cancelled:
        print(f"CANCELLED {result.message}", flush=True)
        return EXIT_CANCELLED
    print(f"TARGET {result.message}", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
