"""Online verify: find the chunks where a target differs from its source, mark them dirty.

DRBD's online verify, done our way. A :class:`Verify` reads the source and the target
volume (a file, or a remote volume over NBD: any
:class:`~core.replication.target.TargetVolume`; a remote one reports no holes, so all
of it is read) chunk by chunk, compares each chunk, and sets the target's D bit (``bitmap.py``)
of every chunk that differs, durably, so that the next *partial*
:class:`~core.replication.resync.Resync` copies exactly those chunks. It copies nothing
itself: repairing is the resync's job (the caller runs it and records the bytes it
copied in :attr:`VerifyResult.bytes_repaired`, see :meth:`VerifyResult.with_bytes_repaired`).

**Like a resync.** :meth:`Verify.run` works in the calling thread; :meth:`Verify.start`
runs it in a daemon thread. It honours the same speed limit (KB/s of the *source*, 1 KB =
1000 bytes, 500000 by default, 0 = unlimited: a verify reads the target as well, so the
disks see twice that), can be paused (between pieces, holding no lock), resumed and
cancelled (the result then has ``cancelled=True`` and the counts of what was compared),
and reports progress (:class:`VerifyProgress`) at most ~10 times a second. The same work
runs as a process: ``python -m core.replication.verify --source S --target T
[--bitmap B] --target-name N [--no-mark] [--speed-limit KBPS] [--method M]`` (``T`` a
file or an ``nbds://`` address, see :mod:`.nbd`; then under the system ``python3``) prints
``PROGRESS`` lines and ends with ``VERIFIED checked=N differing=M`` (exit 0), ``CANCELLED
...`` (exit 3, SIGTERM/SIGINT) or ``BUSY <reason>`` on stderr (exit 4).

**Comparing.** Both volumes are read in large pieces (``io_size``, 4 MiB) into reused
buffers (page-aligned, see :class:`_Buffer`). Two methods:

* ``"blake2b"`` (the default, the issue's method): each chunk of both sides is hashed
  with ``hashlib.blake2b(digest_size=16)`` (on memoryview slices, no copy) and the
  digests are compared; pieces are hashed on a small thread pool while the next piece
  is read (hashlib drops the GIL for such sizes). It is the method a target on another
  machine needs (only digests would travel), and it is CPU bound: about 1 GB/s of data
  per core (measured on a 2-vCPU VM, which reads its disk at ~2.5 GB/s).
* ``"bytes"``: each piece of the source is compared with the target's (one libc
  ``memcmp``, in the reading thread); only a piece that differs is compared chunk by
  chunk. Exact (no collision, however unlikely) and limited by the disks, not the CPU.

Both find the same chunks (a blake2b-128 collision aside).

**Locks.** Each piece is read while its chunk range is held *shared* through
:class:`~core.replication.volume.ChunkLocks` on the source volume's path (what the mirror's
writers hold exclusively while they mark the bitmap and write the source and, in
synchronous mode, the targets), so a mirrored write is never seen half done: both sides
are read between two writes. The lock is released before hashing and before marking.
A chunk may be marked that no longer differs by then (an asynchronous mirror's target
lags its source and catches up; a write made both sides equal after the read): that
costs one extra copy, never a lost write. Marking uses
``mark_write(first, end, unreplicated=[target])``: D set durably and the C bit cancelled,
so a concurrent committer cannot clear it.

**Holes.** A chunk that is a hole in the source *and* in the target (``lseek(SEEK_DATA)``
finds no data in its range in either file, checked under the chunk lock) reads as zeros
on both sides: it is equal by construction, so it is neither read nor hashed (it counts
as checked, and in ``chunks_skipped``; the speed limit does not count it: no I/O).
Writes fill holes and nothing here punches new
ones, so when either file has no hole at all when the verify starts, no hole check is
made for the rest of the run. Filesystems without hole support report everything as
data: a hole is never wrongly assumed, only missed.

**Refused while a resync runs.** A resync owns its target through an OFD lock on one byte
of the target file (``resync.OWNER_LOCK_OFFSET``; the kernel drops it when the owner
dies). :func:`resync_running` tests that lock without taking it, and a verify takes the
same lock (exclusively) for its whole run, so no resync can start under it, and it is
refused with :class:`VerifyBusy` ("a resync of <target> is running: verify it once the
resync is done") while a resync (thread or process, running or paused) holds it. A
:class:`~core.replication.mirror.Mirror` takes that lock for every target volume it has
open, resync or not (its resync threads inherit it): a target that an open mirror of
*another* process serves is therefore busy too. Inside the process that runs the mirror,
use :func:`verify_mirror_target`: it asks the mirror whether a resync of the target runs
(refused if so), reads the target through its own descriptor, and stops (``cancelled``,
with the reason) if the mirror starts a resync meanwhile. Marked chunks of a target the
mirror replicates to stay dirty until the mirror resyncs it (``pause`` + ``resume``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import mmap
import os
import signal
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from types import FrameType
from typing import TYPE_CHECKING, Final, Literal

from core.errors import OperationError
from core.replication.bitmap import (
    DEFAULT_CHUNK_SIZE,
    Bitmap,
    BitmapError,
    IntentLog,
)
from core.replication.nbd import DEFAULT_DEADLINE, NbdEndpoint
from core.replication.resync import (
    DEFAULT_IO_SIZE,
    DEFAULT_SPEED_LIMIT_KBPS,
    OWNER_LOCK_OFFSET,
)
from core.replication.target import TargetVolume
from core.replication.volume import (
    ChunkLocks,
    Volume,
    VolumeError,
    has_hole,
    is_hole,
    try_lock_file,
)

if TYPE_CHECKING:
    from core.replication.mirror import Mirror

__all__ = [
    "DEFAULT_METHOD",
    "DIGEST_SIZE",
    "MAX_LISTED",
    "METHODS",
    "Method",
    "Verify",
    "VerifyBusy",
    "VerifyError",
    "VerifyProgress",
    "VerifyResult",
    "busy_reason",
    "chunk_digest",
    "main",
    "resync_running",
    "verify_mirror_target",
]

Method = Literal["blake2b", "bytes"]
METHODS: Final[tuple[Method, ...]] = ("blake2b", "bytes")
DEFAULT_METHOD: Final[Method] = "blake2b"
DIGEST_SIZE = 16  # blake2b-128 per chunk
MAX_LISTED = 100_000  # differing chunk indexes kept in the result (the count is exact)
PROGRESS_INTERVAL = 0.1  # at most ~10 reports a second
BUSY_CHECK_INTERVAL = 0.2  # how often the ``busy`` callback is asked during a run
MAX_HASH_WORKERS = 4

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_BUSY = 4

_FLOCK = "@hhqqi4x"  # struct flock on LP64 Linux (see volume._flock_struct)


class VerifyError(OperationError):
    """The verify could not run or complete (size mismatch, read failure, bitmap)."""

    def __init__(
        self, target: str, reason: str, errno_: int | None = None, *, what: str = "failed"
    ) -> None:
        self.target = target
        self.reason = reason
        self.errno = errno_
        super().__init__(f"verify of {target} {what}: {reason}", step="verify")


class VerifyBusy(VerifyError):
    """A resync works on the target (or a mirror owns it): verify it once that is done."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(target, reason, what="refused")


@dataclass(frozen=True)
class VerifyProgress:
    """One progress report of a verify (bytes are bytes of the source compared)."""

    target: str
    bytes_done: int
    bytes_total: int
    rate: float  # bytes of the source per second, over the last seconds
    eta: float | None  # seconds, None while unknown
    differing_so_far: int
    paused: bool = False
    chunks_checked: int = 0

    @property
    def percent(self) -> int:
        if self.bytes_total <= 0:
            return 100
        return min(100, int(self.bytes_done * 100 / self.bytes_total))


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    """What a verify found. ``differing`` lists at most ``MAX_LISTED`` chunk indexes
    (ascending); ``chunks_differing`` is the exact count. ``bytes_repaired`` is filled in
    by the caller once a resync repaired the chunks (:meth:`with_bytes_repaired`)."""

    target: str
    chunks_checked: int
    chunks_differing: int
    differing: tuple[int, ...]
    bytes_repaired: int = 0
    elapsed: float
    cancelled: bool
    message: str
    bytes_checked: int = 0  # bytes of the source compared (holes included)
    chunks_skipped: int = 0  # holes in both files: equal without reading them
    chunks_marked: int = 0  # chunks whose bit this verify set (0 with mark=False)
    method: Method = DEFAULT_METHOD

    @property
    def differing_truncated(self) -> bool:
        """True when ``differing`` lists fewer chunks than ``chunks_differing``."""
        return len(self.differing) < self.chunks_differing

    def with_bytes_repaired(self, n: int) -> VerifyResult:
        """This result with ``bytes_repaired`` set (e.g. ``ResyncResult.bytes_copied``)."""
        return replace(self, bytes_repaired=n)


ProgressCallback = Callable[[VerifyProgress], None]
BusyCheck = Callable[[], str | None]


def _same_file(a: Volume, b: TargetVolume) -> bool:
    if not isinstance(b, Volume):
        return False  # a remote target is on another machine
    sa, sb = os.fstat(a.fileno()), os.fstat(b.fileno())
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def chunk_digest(data: bytes | bytearray | memoryview) -> bytes:
    """The digest a verify compares for one chunk: blake2b with a 16-byte digest."""
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


def busy_reason(target_name: str, target_path: str | os.PathLike[str] | None = None) -> str:
    """The reason given when a verify is refused because a resync owns the target."""
    where = (
        f" (the target volume {os.fspath(target_path)} is owned by a resync, or by a "
        "mirror that has it open)"
        if target_path is not None
        else ""
    )
    return f"a resync of {target_name} is running{where}: verify it once the resync is done"


def resync_running(target_volume: str | os.PathLike[str]) -> bool:
    """True when a resync (or a mirror serving it) owns ``target_volume`` now.

    Tests the owner lock a :class:`~core.replication.resync.Resync` takes (an OFD lock
    on byte ``OWNER_LOCK_OFFSET`` of the target file) with ``F_OFD_GETLK``, without
    taking it, so asking never makes a starting resync fail. Holders in this process
    count as well (OFD locks belong to open file descriptions, not processes). A missing
    file is owned by nobody.
    """
    try:
        fd = os.open(target_volume, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        getlk = getattr(fcntl, "F_OFD_GETLK", None)
        if getlk is not None and struct.calcsize("@q") == 8:
            query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, OWNER_LOCK_OFFSET, 1, 0)
            answer = fcntl.fcntl(fd, getlk, query)
            return bool(struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK)
        # no OFD locks: take a shared lock and drop it at once (closing the descriptor)
        return not try_lock_file(fd, OWNER_LOCK_OFFSET, 1, exclusive=False)
    finally:
        os.close(fd)


def _load_memcmp() -> Callable[[int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.memcmp
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    fn.restype = ctypes.c_int
    f: Callable[[int, int, int], int] = fn
    return f


_memcmp = _load_memcmp()


class _Buffer:
    """A reused read buffer: anonymous ``mmap``, so page aligned.

    Alignment matters: the kernel copies from the page cache into a ``bytearray`` of a few
    MiB (whose data starts 16 bytes into a page) at less than half the speed on some CPUs.
    ``same`` compares two buffers with libc ``memcmp`` (one call, GIL released; a
    ``memoryview`` comparison goes item by item), or through ``bytes`` copies without it.
    """

    __slots__ = ("_anchor", "addr", "mm", "view")

    def __init__(self, size: int) -> None:
        self.mm = mmap.mmap(-1, size)
        self.view = memoryview(self.mm)
        self._anchor: ctypes.c_char | None = None
        self.addr = 0
        if _memcmp is not None:
            self._anchor = ctypes.c_char.from_buffer(self.mm)  # keeps the address valid
            self.addr = ctypes.addressof(self._anchor)

    def same(self, other: _Buffer, offset: int, n: int) -> bool:
        """True when bytes ``[offset, offset+n)`` of both buffers are equal."""
        if n <= 0:
            return True
        if _memcmp is not None:
            return _memcmp(self.addr + offset, other.addr + offset, n) == 0
        return bytes(self.view[offset : offset + n]) == bytes(other.view[offset : offset + n])

    def close(self) -> None:
        self._anchor = None
        # a slice still referenced somewhere (a traceback) keeps the mapping alive: the
        # garbage collector unmaps it later
        with contextlib.suppress(BufferError):
            self.view.release()
            self.mm.close()


class _Piece:
    """A piece read (or known equal by holes) and its comparison, done or in flight."""

    __slots__ = ("differing", "end", "first", "future", "pair", "skipped")

    def __init__(
        self,
        first: int,
        end: int,
        pair: int,
        skipped: int,
        *,
        future: Future[list[int]] | None = None,
        differing: list[int] | None = None,
    ) -> None:
        self.first = first
        self.end = end
        self.pair = pair  # index of the buffer pair, -1 when nothing was read
        self.skipped = skipped  # chunks equal by holes
        self.future = future  # the comparison in a pool thread, or None when done:
        self.differing = differing  # its result (None with a future)

    def done(self) -> bool:
        return self.future is None or self.future.done()

    def result(self) -> list[int]:
        if self.future is not None:
            return self.future.result()
        return self.differing or []


def _check_setup(
    source: Volume,
    target: TargetVolume,
    bitmap: IntentLog | None,
    target_name: str,
    chunk_size: int | None,
    method: Method,
    mark: bool,
) -> int:
    """The chunk size of a verify of ``target`` (see :class:`Verify`); VerifyError when
    the verify cannot be: an unknown method, the source itself, sizes that differ, a
    bitmap that does not fit or lacks the target."""
    if method not in METHODS:
        raise VerifyError(target_name, f"unknown method {method!r} (one of {METHODS})")
    if _same_file(source, target):
        raise VerifyError(target_name, f"the target {target.location} is the source volume")
    if target.size != source.size:
        raise VerifyError(
            target_name,
            f"target volume {target.location} has {target.size} bytes, source "
            f"{source.path} has {source.size}",
        )
    if bitmap is not None:
        if bitmap.volume_size != source.size:
            raise VerifyError(
                target_name,
                f"bitmap covers {bitmap.volume_size} bytes, the source has {source.size}",
            )
        if chunk_size is not None and chunk_size != bitmap.chunk_size:
            raise VerifyError(
                target_name,
                f"chunk size {chunk_size} differs from the bitmap's ({bitmap.chunk_size})",
            )
        chunk_size = bitmap.chunk_size
        if mark and not bitmap.has_target(target_name):
            raise VerifyError(target_name, f"the bitmap has no target named {target_name!r}")
    chunk_size = chunk_size or DEFAULT_CHUNK_SIZE
    if chunk_size <= 0:
        raise VerifyError(target_name, f"chunk size {chunk_size} must be > 0")
    return chunk_size


class Verify:
    """Compare ``target`` with ``source`` chunk by chunk; mark what differs (module doc)."""

    def __init__(
        self,
        source: Volume,
        target: TargetVolume,
        bitmap: IntentLog | None,
        target_name: str,
        *,
        chunk_size: int | None = None,
        speed_limit_kbps: int = DEFAULT_SPEED_LIMIT_KBPS,
        io_size: int = DEFAULT_IO_SIZE,
        on_progress: ProgressCallback | None = None,
        mark: bool = True,
        method: Method = DEFAULT_METHOD,
        locks: ChunkLocks | None = None,
        take_ownership: bool = True,
        busy: BusyCheck | None = None,
        hash_workers: int | None = None,
        skip_holes: bool = True,
        max_listed: int = MAX_LISTED,
    ) -> None:
        """``bitmap`` None (or ``mark=False``): only report. ``chunk_size`` defaults to the
        bitmap's (and must equal it), else 64 KiB. ``locks``: the mirror's
        :class:`ChunkLocks` when given, else a private one on the source's path (other
        lockers are excluded either way: OFD locks). ``take_ownership``: hold the
        target's resync owner lock for the run (refused with :class:`VerifyBusy` when
        held); False only when the caller knows no resync runs and calls ``busy`` (a
        reason while one does) to check it, as :func:`verify_mirror_target` does.
        ``hash_workers``: threads comparing pieces while the next one is read (default:
        up to 4 for ``"blake2b"``; 0 for ``"bytes"``: compared in the reading thread,
        while the data is still in the CPU caches)."""
        chunk_size = _check_setup(source, target, bitmap, target_name, chunk_size, method, mark)
        self.source = source
        self.target = target
        self.bitmap = bitmap
        self.name = target_name
        self.chunk_size = chunk_size
        self.nchunks = (source.size + chunk_size - 1) // chunk_size
        self.mark = mark and bitmap is not None
        self.method: Method = method
        self._locks_arg = locks
        self.locks: ChunkLocks | None = locks
        self._speed_kbps = max(0, speed_limit_kbps)
        self.io_chunks = max(1, io_size // chunk_size)
        self._on_progress = on_progress
        self._take_ownership = take_ownership
        self._busy = busy
        if hash_workers is None:  # hashing is CPU bound; a memcmp keeps up with any disk
            hash_workers = min(MAX_HASH_WORKERS, os.cpu_count() or 1) if method == "blake2b" else 0
        self.hash_workers = max(0, hash_workers)
        self.skip_holes = skip_holes
        self.max_listed = max(0, max_listed)
        self._close_after: list[TargetVolume] = []  # volumes opened for us (verify_mirror_target)
        self._buffers: list[tuple[_Buffer, _Buffer]] = []  # reused read buffers
        self._init_run_state()

    def _init_run_state(self) -> None:
        """The run's control, its result and its counters, before it starts."""
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: VerifyResult | None = None
        self._error: BaseException | None = None
        self._started = False
        self._stop_reason = ""

        # counters (only the thread running run() changes them)
        self.bytes_total = self.source.size
        self.bytes_read = 0  # bytes of the source read or skipped (what the limit paces)
        self.bytes_done = 0  # bytes of the source compared
        self.chunks_checked = 0
        self.chunks_differing = 0
        self.chunks_skipped = 0
        self.chunks_marked = 0
        self._differing: list[int] = []
        self._run_first = -1  # differing chunks not marked yet: [first, end)
        self._run_end = -1
        self._read_samples: deque[tuple[float, int]] = deque()
        self._done_samples: deque[tuple[float, int]] = deque()
        self._last_report = 0.0
        self._last_busy_check = 0.0

    # -- control ------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop between two pieces (no lock is held while paused)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()
        self._wake.set()

    def cancel(self) -> None:
        """Stop at the next piece: what was compared is reported (and marked)."""
        self._cancel.set()
        self._running.set()
        self._wake.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def set_speed_limit(self, kbps: int) -> None:
        """Change the speed limit (KB/s of the source, 1 KB = 1000 bytes; 0 = unlimited)."""
        self._speed_kbps = max(0, kbps)
        self._wake.set()

    # -- thread --------------------------------------------------------------------------
    def start(self) -> threading.Thread:
        """Run in a daemon thread; :meth:`join` waits for the result."""
        if self._thread is not None:
            raise OperationError("verify already started", step="verify")
        t = threading.Thread(target=self._thread_main, name=f"verify-{self.name}", daemon=True)
        self._thread = t
        t.start()
        return t

    def _thread_main(self) -> None:
        try:
            self._result = self.run()
        except BaseException as exc:  # handed to join(); the thread must not die silently
            self._error = exc

    def join(self, timeout: float | None = None) -> VerifyResult | None:
        """The result once the thread finished (None on timeout); re-raises its error."""
        if self._thread is None:
            raise OperationError("verify not started", step="verify")
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
    def run(self) -> VerifyResult:
        """Verify in the calling thread; returns when every chunk was compared, or when
        cancelled (or stopped because a resync started: ``cancelled``, with the reason).

        Raises :class:`VerifyBusy` when a resync owns the target, :class:`VerifyError`
        when reading a volume or marking the bitmap fails (the chunks found differing
        until then are marked first, when possible).
        """
        if self._started:
            raise OperationError("a Verify object runs once", step="verify")
        self._started = True
        owner_fd = -1
        try:
            if self._busy is not None:
                reason = self._busy()
                if reason:
                    raise VerifyBusy(self.name, reason)
            if self._take_ownership:
                owner_fd = self._acquire_ownership()
            if self.locks is None:
                self.locks = ChunkLocks(self.source.path, self.chunk_size)
            return self._run(self.locks)
        finally:
            if owner_fd >= 0:
                os.close(owner_fd)  # releases the OFD lock
            if self._locks_arg is None and self.locks is not None:
                self.locks.close()
                self.locks = None
            for v in self._close_after:
                v.close()
            for pair in self._buffers:
                for buf in pair:
                    buf.close()
            self._buffers = []

    def _acquire_ownership(self) -> int:
        path = self.target.owner_lock_path  # the file, or a remote target's lock file
        exclusive = True
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise VerifyError(self.name, f"{path}: {exc.strerror}", exc.errno) from exc
            # a read-only target: a shared lock still excludes (and detects) a resync
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            exclusive = False
        try:
            if try_lock_file(fd, OWNER_LOCK_OFFSET, 1, exclusive=exclusive):
                return fd
        except OSError:
            os.close(fd)
            raise
        os.close(fd)
        raise VerifyBusy(self.name, busy_reason(self.name, path))

    def _run(self, locks: ChunkLocks) -> VerifyResult:
        t0 = time.monotonic()
        self._read_samples.append((t0, 0))
        self._done_samples.append((t0, 0))
        self._last_busy_check = t0
        try:
            holes = self._holes_in_both()
            buf_len = self.io_chunks * self.chunk_size
            depth = self.hash_workers + 1  # buffer pairs: one being read, the rest compared
            self._buffers = [(_Buffer(buf_len), _Buffer(buf_len)) for _ in range(depth)]
            free = list(range(depth))
            inflight: deque[_Piece] = deque()

            def collect_oldest() -> None:
                pair = self._collect(inflight.popleft())
                if pair >= 0:
                    free.append(pair)

            pool = (
                ThreadPoolExecutor(self.hash_workers, f"verify-{self.name}")
                if self.hash_workers > 0
                else None
            )
            try:
                first = 0
                while first < self.nchunks:
                    if self._cancel.is_set() or self._check_busy():
                        break
                    if not self._running.is_set():
                        while inflight:  # account for what was read before pausing
                            collect_oldest()
                        self._flush_marks()
                        if not self._wait_running():
                            break
                    self._throttle()
                    if self._cancel.is_set():
                        break
                    end = min(self.nchunks, first + self._piece_limit())
                    while not free:
                        collect_oldest()
                    inflight.append(self._read_piece(locks, pool, first, end, holes, free))
                    first = end
                    while inflight and inflight[0].done():
                        collect_oldest()
                while inflight:
                    collect_oldest()
            finally:
                if pool is not None:  # after an error: drop what waits, let the rest end
                    pool.shutdown(wait=True, cancel_futures=True)
            self._flush_marks()
        except (OSError, BitmapError, VolumeError) as exc:
            with contextlib.suppress(OSError, BitmapError):
                self._flush_marks()
            raise VerifyError(
                self.name, getattr(exc, "strerror", None) or str(exc), getattr(exc, "errno", None)
            ) from exc
        return self._finish(t0)

    def _holes_in_both(self) -> bool:
        """Whether a chunk can be a hole in both volumes (then it is skipped, unread)."""
        # Writes fill holes, nothing here makes new ones: when either file has no
        # hole now, no chunk can be a hole in both during the run.
        return (
            self.skip_holes
            and has_hole(self.source.fileno(), 0, self.source.size)
            and self.target.has_hole(0, self.target.size)
        )

    def _read_piece(
        self,
        locks: ChunkLocks,
        pool: ThreadPoolExecutor | None,
        first: int,
        end: int,
        holes: bool,
        free: list[int],
    ) -> _Piece:
        """Read chunks ``[first, end)`` of both volumes under their shared chunk lock and
        hand the comparison to the pool (nothing is read when both are holes)."""
        cs = self.chunk_size
        off = first * cs
        length = self._span(first, end)
        skip: frozenset[int] = frozenset()
        with locks.shared(first, end):
            if holes:
                sfd, target = self.source.fileno(), self.target
                if is_hole(sfd, off, length) and target.is_hole(off, length):
                    return _Piece(first, end, -1, end - first)  # no I/O: not paced
                if has_hole(sfd, off, length) and target.has_hole(off, length):
                    skip = frozenset(
                        c
                        for c in range(first, end)
                        if is_hole(sfd, c * cs, self._span(c, c + 1))
                        and target.is_hole(c * cs, self._span(c, c + 1))
                    )
            pair = free.pop()
            sbuf, tbuf = self._buffers[pair]
            self.source.readinto(off, sbuf.view[:length])
            self.target.readinto(off, tbuf.view[:length])
        self._count_read(length)
        if pool is None:  # compared here, while the data is still in the CPU caches
            differing = self._compare(first, end, sbuf, tbuf, skip)
            return _Piece(first, end, pair, len(skip), differing=differing)
        fut = pool.submit(self._compare, first, end, sbuf, tbuf, skip)
        return _Piece(first, end, pair, len(skip), future=fut)

    def _compare(
        self, first: int, end: int, sbuf: _Buffer, tbuf: _Buffer, skip: frozenset[int]
    ) -> list[int]:
        """The differing chunks of ``[first, end)`` (in a pool thread, or inline)."""
        cs = self.chunk_size
        if self.method == "bytes":
            if not skip and sbuf.same(tbuf, 0, self._span(first, end)):
                return []
            return [
                c
                for c in range(first, end)
                if c not in skip and not sbuf.same(tbuf, (c - first) * cs, self._span(c, c + 1))
            ]
        smv, tmv = sbuf.view, tbuf.view
        differing: list[int] = []
        blake2b = hashlib.blake2b
        for c in range(first, end):
            if c in skip:
                continue
            a = (c - first) * cs
            b = a + self._span(c, c + 1)
            if (
                blake2b(smv[a:b], digest_size=DIGEST_SIZE).digest()
                != blake2b(tmv[a:b], digest_size=DIGEST_SIZE).digest()
            ):
                differing.append(c)
        return differing

    def _collect(self, piece: _Piece) -> int:
        """Account for a compared piece (in order); returns its buffer pair, if any."""
        differing = piece.result()
        self.chunks_checked += piece.end - piece.first
        self.chunks_skipped += piece.skipped
        self.bytes_done += self._span(piece.first, piece.end)
        for c in differing:
            self.chunks_differing += 1
            if len(self._differing) < self.max_listed:
                self._differing.append(c)
            if self.mark:
                self._note_differing(c)
        self._report()
        return piece.pair

    # -- marking ---------------------------------------------------------------------------
    def _note_differing(self, c: int) -> None:
        """Gather contiguous differing chunks into one mark (one durable bitmap update)."""
        if c == self._run_end:
            self._run_end += 1
            return
        self._flush_marks()
        self._run_first, self._run_end = c, c + 1

    def _flush_marks(self) -> None:
        if self._run_first < 0 or self.bitmap is None:
            return
        first, end = self._run_first, self._run_end
        self._run_first = self._run_end = -1
        self.bitmap.mark_write(first, end, unreplicated=[self.name])
        self.chunks_marked += end - first

    # -- pacing, busy, progress ---------------------------------------------------------------
    def _span(self, first: int, end: int) -> int:
        return min(end * self.chunk_size, self.source.size) - first * self.chunk_size

    def _piece_limit(self) -> int:
        """Chunks per piece: the I/O size, or less so that the speed limit paces smoothly."""
        limit = self.io_chunks
        rate = self._speed_kbps * 1000.0
        if rate:
            limit = max(1, min(limit, int(rate * 0.05) // self.chunk_size))
        return limit

    def _count_read(self, n: int) -> None:
        self.bytes_read += n
        now = time.monotonic()
        self._read_samples.append((now, self.bytes_read))
        _trim(self._read_samples, now)

    def throttle_delay(self, now: float | None = None) -> float:
        """Seconds to wait before reading more to stay under the speed limit (0 = go).

        Paced on the bytes of the source read over the last second or two, so that a
        limit change applies quickly; unlimited (0) never waits.
        """
        rate = self._speed_kbps * 1000.0
        if rate <= 0:
            return 0.0
        if now is None:
            now = time.monotonic()
        t_ref, b_ref = self._read_samples[0] if self._read_samples else (now, self.bytes_read)
        return max(0.0, t_ref + (self.bytes_read - b_ref) / rate - now)

    def _throttle(self) -> None:
        while not self._cancel.is_set():
            delay = self.throttle_delay()
            if delay <= 0:
                return
            self._wake.clear()
            self._wake.wait(min(delay, 0.2))

    def _wait_running(self) -> bool:
        """Block while paused; False when cancelled."""
        if not self._running.is_set():
            self._report(force=True, paused=True)
            paused_at = time.monotonic()
            while not self._running.wait(0.5):
                if self._cancel.is_set():
                    break
            # paused time counts neither for the rate nor for the speed limit
            shift = time.monotonic() - paused_at
            self._done_samples = deque((t + shift, b) for t, b in self._done_samples)
            self._read_samples = deque((t + shift, b) for t, b in self._read_samples)
        return not self._cancel.is_set()

    def _check_busy(self) -> bool:
        """Ask ``busy`` (a few times a second): True, and the reason kept, to stop."""
        if self._busy is None:
            return False
        now = time.monotonic()
        if now - self._last_busy_check < BUSY_CHECK_INTERVAL:
            return False
        self._last_busy_check = now
        reason = self._busy()
        if reason:
            self._stop_reason = reason
            return True
        return False

    def _rate(self, now: float) -> float:
        self._done_samples.append((now, self.bytes_done))
        _trim(self._done_samples, now)
        t_ref, b_ref = self._done_samples[0]
        if now - t_ref <= 1e-6:
            return 0.0
        return (self.bytes_done - b_ref) / (now - t_ref)

    def progress(self) -> VerifyProgress:
        """The progress now (from any thread; the numbers may be a piece behind)."""
        now = time.monotonic()
        t_ref, b_ref = self._done_samples[0] if self._done_samples else (now, self.bytes_done)
        rate = (self.bytes_done - b_ref) / (now - t_ref) if now - t_ref > 1e-6 else 0.0
        return self._make_progress(rate, self.paused)

    def _make_progress(self, rate: float, paused: bool) -> VerifyProgress:
        remaining = max(0, self.bytes_total - self.bytes_done)
        eta = remaining / rate if rate > 0 else (0.0 if remaining == 0 else None)
        return VerifyProgress(
            target=self.name,
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
            rate=rate,
            eta=eta,
            differing_so_far=self.chunks_differing,
            paused=paused,
            chunks_checked=self.chunks_checked,
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

    def _finish(self, t0: float) -> VerifyResult:
        elapsed = time.monotonic() - t0
        complete = self.chunks_checked == self.nchunks
        cancelled = not complete
        d = self.chunks_differing
        if complete:
            msg = (
                f"{self.name} verified: {self.chunks_checked} chunks checked "
                f"({self.chunks_skipped} holes in both), {d} differing"
            )
        else:
            why = f"stopped: {self._stop_reason}" if self._stop_reason else "cancelled"
            msg = (
                f"{self.name} verify {why} after {self.chunks_checked} of {self.nchunks} "
                f"chunks, {d} differing so far"
            )
        if d:
            if self.mark:
                msg += f"; {self.chunks_marked} marked dirty: a partial resync repairs them"
            elif self.bitmap is None:
                msg += "; not marked (no bitmap)"
            else:
                msg += "; not marked (report only)"
        self._report(force=True)
        return VerifyResult(
            target=self.name,
            chunks_checked=self.chunks_checked,
            chunks_differing=d,
            differing=tuple(self._differing),
            elapsed=elapsed,
            cancelled=cancelled,
            message=msg,
            bytes_checked=self.bytes_done,
            chunks_skipped=self.chunks_skipped,
            chunks_marked=self.chunks_marked,
            method=self.method,
        )


def _trim(samples: deque[tuple[float, int]], now: float) -> None:
    """Keep about the last two seconds of samples (at least two)."""
    while len(samples) > 2 and now - samples[1][0] > 2.0:
        samples.popleft()


# -- in the process that runs the mirror -------------------------------------------------


def verify_mirror_target(
    mirror: Mirror,
    target: str,
    *,
    mark: bool = True,
    speed_limit_kbps: int = DEFAULT_SPEED_LIMIT_KBPS,
    io_size: int = DEFAULT_IO_SIZE,
    on_progress: ProgressCallback | None = None,
    method: Method = DEFAULT_METHOD,
    hash_workers: int | None = None,
) -> Verify:
    """A :class:`Verify` of ``target`` of an open ``mirror`` of this process (not started).

    The mirror owns its target volumes (it holds their resync owner lock as long as it
    has them open), so the owner lock cannot tell here whether a resync runs: the mirror
    is asked instead. Raises :class:`VerifyBusy` ("a resync of <target> is running:
    verify it once the resync is done") while one runs (or is paused); the verify stops
    with ``cancelled`` and that reason if the mirror starts one meanwhile. The target is
    read through a descriptor of its own (closed when the run ends), the source through
    the mirror's, the chunk locks are taken on the source's path like the mirror's
    writers take them, and differing chunks are marked in the mirror's bitmap. A target
    in state TARGET keeps its marked chunks until the mirror resyncs it: ``pause`` then
    ``resume`` it (a partial resync; a full one when the mirror has no bitmap file).
    """
    status = mirror.status(target)
    if status.resyncing:
        raise VerifyBusy(target, busy_reason(target))

    def busy() -> str | None:
        return busy_reason(target) if mirror.status(target).resyncing else None

    try:
        volume = mirror.open_target_reader(target)
    except (VolumeError, OSError) as exc:
        raise VerifyError(target, str(exc), getattr(exc, "errno", None)) from exc
    try:
        v = Verify(
            mirror.source,
            volume,
            mirror.bitmap,
            target,
            speed_limit_kbps=speed_limit_kbps,
            io_size=io_size,
            on_progress=on_progress,
            mark=mark,
            method=method,
            take_ownership=False,
            busy=busy,
            hash_workers=hash_workers,
        )
    except BaseException:
        volume.close()
        raise
    v._close_after.append(volume)
    return v


# -- the command line (a verify in its own process) ---------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m core.replication.verify",
        description="Compare a mirror target with its source chunk by chunk and mark the "
        "differing chunks dirty in the bitmap (a partial resync then repairs them).",
    )
    p.add_argument("--source", required=True, help="source volume file")
    p.add_argument(
        "--target",
        required=True,
        help="target volume file, or the target's NBD export: "
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
    p.add_argument("--bitmap", help="bitmap file (omit: report only)")
    p.add_argument("--target-name", required=True, help="the target's name in the bitmap")
    p.add_argument("--no-mark", action="store_true", help="report only, mark nothing")
    p.add_argument(
        "--speed-limit",
        type=int,
        default=DEFAULT_SPEED_LIMIT_KBPS,
        metavar="KBPS",
        help="KB/s of the source, 1 KB = 1000 bytes, 0 = unlimited (default %(default)s)",
    )
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD)
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help=f"bytes per chunk (default: the bitmap's, else {DEFAULT_CHUNK_SIZE})",
    )
    p.add_argument("--io-size", type=int, default=DEFAULT_IO_SIZE, help="bytes per read")
    p.add_argument("--quiet", action="store_true", help="no PROGRESS lines")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when verified (``VERIFIED checked=N differing=M``), 3 when cancelled
    (SIGTERM/SIGINT), 4 when a resync owns the target, 1 on errors."""
    args = _parse_args(argv)
    name: str = args.target_name
    opened: list[TargetVolume | Bitmap] = []
    try:
        try:
            source, target = _open_volumes(args, opened)
        except (VolumeError, OSError) as exc:
            print(f"ERROR volume: {exc}", file=sys.stderr, flush=True)
            return EXIT_ERROR
        bitmap: Bitmap | None = None
        if args.bitmap is not None:
            try:
                bitmap = Bitmap.open(
                    args.bitmap, volume_size=source.size, chunk_size=args.chunk_size
                )
                opened.append(bitmap)
            except (BitmapError, OSError) as exc:
                print(f"ERROR bitmap: {exc}", file=sys.stderr, flush=True)
                return EXIT_ERROR
        elif not args.no_mark:
            print("NOTE no bitmap: report only", flush=True)
        try:
            verify = Verify(
                source,
                target,
                bitmap,
                name,
                chunk_size=args.chunk_size,
                speed_limit_kbps=args.speed_limit,
                io_size=args.io_size,
                on_progress=_progress_printer(args),
                mark=not args.no_mark,
                method=args.method,
            )
        except VerifyError as exc:
            print(f"ERROR {exc}", file=sys.stderr, flush=True)
            return EXIT_ERROR
        return _run_verify(verify, name)
    finally:
        for o in reversed(opened):
            o.close()


def _open_volumes(
    args: argparse.Namespace, opened: list[TargetVolume | Bitmap]
) -> tuple[Volume, TargetVolume]:
    """The source and the target (a file, or an NBD export), read-only; each one opened
    joins ``opened`` at once, to be closed even when the next one fails."""
    source = Volume.open(args.source, readonly=True)
    opened.append(source)
    target: TargetVolume
    if "://" in args.target:
        endpoint = NbdEndpoint.from_uri(
            args.target,
            deadline=args.deadline,
            connect_deadline=args.deadline,
            owner_lock=args.owner_lock,
        )
        target = endpoint.open_volume(source.size, readonly=True)
    else:
        target = Volume.open(args.target, readonly=True)
    opened.append(target)
    return source, target


def _progress_printer(args: argparse.Namespace) -> ProgressCallback:
    """A PROGRESS line per report, unless ``--quiet``."""

    def progress(p: VerifyProgress) -> None:
        if not args.quiet:
            eta = "-" if p.eta is None else f"{p.eta:.1f}"
            print(
                f"PROGRESS {p.target} {p.bytes_done} {p.bytes_total} {p.rate:.0f} {eta} "
                f"{p.differing_so_far}",
                flush=True,
            )

    return progress


def _run_verify(verify: Verify, name: str) -> int:
    """Run ``verify`` (SIGTERM and SIGINT cancel it) and print the outcome; the exit code."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        verify.cancel()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"START {name} method={verify.method} mark={int(verify.mark)}", flush=True)
    try:
        result = verify.run()
    except VerifyBusy as exc:
        print(f"BUSY {exc.reason}", file=sys.stderr, flush=True)
        return EXIT_BUSY
    except VerifyError as exc:
        print(f"ERROR {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    if result.differing:
        more = " ..." if result.differing_truncated else ""
        print("DIFFERING " + " ".join(map(str, result.differing)) + more, flush=True)
    counts = f"checked={result.chunks_checked} differing={result.chunks_differing}"
    if result.cancelled:
        print(f"CANCELLED {counts} ({result.message})", flush=True)
        return EXIT_CANCELLED
    print(f"NOTE {result.message}", flush=True)
    print(f"VERIFIED {counts}", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
