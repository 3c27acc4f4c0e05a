"""A mirror: one source volume replicated to one or more target volumes.

A target's volume is a local file (a path) or a volume of another machine (a
:class:`~core.replication.target.TargetLocation`, e.g. an
:class:`~core.replication.nbd.NbdEndpoint`): the mirror sees both through
:class:`~core.replication.target.TargetVolume`.

**Write path** (:meth:`Mirror.write`), for the chunks ``[first, end)`` a write covers::

    hold the chunks exclusively (ChunkLocks: threads of this process + OFD locks)
    bitmap.mark_write(...)            D bits set for every target, durable, BEFORE any I/O
    write the source                  (pwrite; then fdatasync when durable)
    write every replicating target    synchronous: every target's write started (a file:
                                      pwrite; NBD: the request sent, FUA when durable),
                                      then the source's fdatasync when durable, then every
                                      target waited for (NBD: at most its deadline), all
                                      before returning; asynchronous: through a bounded
                                      queue (ASYNC_MAX_WRITES writes or ASYNC_MAX_BYTES
                                      bytes; the writer blocks when full)

A target *replicates* when it is connected, not paused and in sync (state TARGET). A
write while a target is disconnected, paused, out of sync or resyncing only marks that
target's bits (with the C bit cancelled, see ``bitmap.py``): the resync copies the chunk.
A failed target write (``ENOSPC``, ``EIO``, ``EROFS``, ...) makes that target OUT_OF_SYNC
with the reason (``"No space left on device"``) and never fails the source write; its
bits stay set. A failed source write raises :class:`SourceWriteError`.

**Remote targets.** A remote target that does not answer within its deadline, or whose
connection breaks, fails its write like a full disk does: Out of Sync with the reason
(``"nbds://lkmirror@10.0.0.2:10809/: no reply to a write within 10 s (the target
stalled): connection dropped"``), its bits set, the source write done. A thread of the
mirror (``mirror-reconnect``, every ``reconnect_interval`` seconds) then closes the lost
connection and connects again until the target answers; once it does, the mirror
resyncs what it missed (a partial resync, when ``auto_resync``) and it is Target again.
Connecting never happens under the mirror's lock, so writers do not wait for it.
:meth:`Mirror.sync` is the durability barrier a block device's flush needs: the
source's ``fdatasync`` while every replicating synchronous target flushes, skipping
each side that has had no non-durable write since its last completed flush.

**A flush expected.** A file system doing small writes each followed by ``fdatasync``
(a database's log, fio's ``--fdatasync=1``) sends a write, then a flush. When the last
``FLUSH_EXPECTED_AFTER`` syncs each followed at most two writes, the first two small
writes (at most ``FLUSH_EXPECTED_MAX_BYTES`` each) after a sync are made durable at
once: the source's ``fdatasync`` while the targets write with FUA (one round trip to
each target instead of two); the flush that follows finds nothing to do. Durability
never depends on the guess: a wrong one costs an early ``fdatasync``, and a flush is
skipped only where every write since the last completed flush was durable.

Bits of replicating targets are cleared lazily, by extents (DRBD's activity-log idea):
the first write into an *extent* (``extent_chunks`` chunks, 64 = 4 MiB by default) marks
the whole extent in one durable bitmap update; further writes there cost no bitmap I/O
while the extent is hot. A background pass commits the bits of extents idle for
``clear_delay`` seconds (or the least recently written ones beyond ``max_hot_extents``)
after flushing the target, lazily (no fsync). The price: after a crash of the source,
the hot extents are copied again (at most ``max_hot_extents`` x 4 MiB). A stale set bit
only ever costs an extra copy.

**States** (DOMAIN.md, "The mirror"), published through ``on_state(target, state,
reason)``; resync progress through ``on_progress(ResyncProgress)``. Both callbacks are
called in order from one dispatcher thread, never with an internal lock held, so they
may call back into the mirror; they must not block for long::

    never synced / target down / paused / failed write  ->  OUT_OF_SYNC (reason)
    OUT_OF_SYNC --resume/connect/full_resync-->  RESYNCING (progress)  --done-->  TARGET
    TARGET --pause/disconnect/failed write-->  OUT_OF_SYNC
    both sides crashed (awaiting_previous_source)  ->  WAIT_FOR_PREVIOUS_SOURCE on every
        target, writes refused, until force_online() (or the caller switches roles back)

**Bitmap None** (no intent log). An in-memory bitmap still coordinates writes with an
in-process resync, but nothing says which chunks differ after a restart, so every resync
is full. Which targets need one must still survive a crash; the engine keeps it in a
small JSON file next to the *source volume* (there is no bitmap file to put it next to,
and the source is the side that must remember while a target is unreachable):
``<source>.lkdr-nobitmap`` holds ``{"clean": bool, "needs_full_resync": {target:
reason}}``. A target is added (durably) before the first write it misses; a completed
full resync removes it; ``clean`` is false while the mirror is open, so after a crash
every target needs a full resync. The same facts are published through ``on_state``
(OUT_OF_SYNC, with the reason) for the caller's store.

The engine persists only the volumes, the bitmap and that flag file; the store is the
caller's business (it subscribes through the callbacks).
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import LkError, OperationError
from core.model import MirrorState
from core.replication.bitmap import (
    DEFAULT_CHUNK_SIZE,
    Bitmap,
    BitmapError,
    BitmapInvalid,
    IntentLog,
    MemoryBitmap,
    check_bitmap_location,
)
from core.replication.resync import (
    DEFAULT_COMMIT_BYTES,
    DEFAULT_COMMIT_INTERVAL,
    DEFAULT_IO_SIZE,
    DEFAULT_SPEED_LIMIT_KBPS,
    DEFAULT_SPEED_LIMIT_MIN_KBPS,
    OWNER_LOCK_OFFSET,
    Resync,
    ResyncError,
    ResyncProgress,
)
from core.replication.target import Done, PendingIO, TargetLocation, TargetVolume
from core.replication.volume import ChunkLocks, Volume, VolumeError, try_lock_file

__all__ = [
    "ASYNC_MAX_BYTES",
    "ASYNC_MAX_WRITES",
    "NO_BITMAP_SUFFIX",
    "Mirror",
    "MirrorError",
    "MirrorNotOnline",
    "NoBitmapState",
    "ProgressCallback",
    "ResyncTuning",
    "SourceWriteError",
    "StateCallback",
    "TargetSpec",
    "TargetStatus",
]

log = logging.getLogger(__name__)

ASYNC_MAX_WRITES = 64
ASYNC_MAX_BYTES = 64 * 1024 * 1024
FLUSH_EXPECTED_AFTER = 4  # syncs in a row that followed at most 2 writes each
FLUSH_EXPECTED_MAX_BYTES = 128 * 1024  # larger writes are never made durable early
NO_BITMAP_SUFFIX = ".lkdr-nobitmap"

StateCallback = Callable[[str, MirrorState, str], None]
ProgressCallback = Callable[[ResyncProgress], None]


MODE_DRAIN_TIMEOUT = 60.0  # seconds for a target's queued writes before its mode changes


class MirrorError(OperationError):
    """A mirror action cannot be done (unknown target, closed mirror, bad arguments)."""


class MirrorNotOnline(MirrorError):
    """Writes are refused: this copy waits for the previous source (see force_online)."""


class SourceWriteError(MirrorError):
    """The source volume refused a write; ``errno`` and ``reason`` say why."""

    def __init__(self, reason: str, errno_: int | None) -> None:
        self.reason = reason
        self.errno = errno_
        super().__init__(f"write to the source volume failed: {reason}", step="write")


@dataclass(frozen=True)
class TargetSpec:
    """A target as the caller knows it (from its store) when it configures the mirror."""

    name: str
    volume: str | os.PathLike[str] | TargetLocation  # a local file, or e.g. an NbdEndpoint
    state: MirrorState = MirrorState.OUT_OF_SYNC  # last known; TARGET = was in sync
    connected: bool = True
    paused: bool = False
    asynchronous: bool | None = None  # this target's mode; None: the mirror's


@dataclass(frozen=True)
class ResyncTuning:
    """How the mirror's resync threads copy (see :class:`~core.replication.resync.Resync`)."""

    io_size: int = DEFAULT_IO_SIZE
    commit_bytes: int = DEFAULT_COMMIT_BYTES
    commit_interval: float = DEFAULT_COMMIT_INTERVAL
    skip_holes: bool = True


@dataclass(frozen=True)
class TargetStatus:
    name: str
    volume: str
    state: MirrorState
    reason: str
    connected: bool
    paused: bool
    replicating: bool
    dirty_chunks: int
    resyncing: bool
    progress: ResyncProgress | None


@dataclass
class _Item:
    """One asynchronous write queued for a target."""

    offset: int
    data: bytes
    durable: bool
    first: int
    end: int
    epoch: int
    seq: int
    error: OSError | None = None


class _Target:
    def __init__(self, spec: TargetSpec) -> None:
        self.name = spec.name
        self.spec = spec
        self.path: Path | None = None  # a local target's volume file
        self.location: TargetLocation | None = None  # a remote target's address
        if isinstance(spec.volume, str | os.PathLike):
            self.path = Path(os.path.abspath(os.fspath(spec.volume)))
            self.where = str(self.path)
        else:
            self.location = spec.volume
            self.where = spec.volume.describe()
        self.volume: TargetVolume | None = None
        self.owner_fd = -1
        self.state = MirrorState.OUT_OF_SYNC
        self.reason = ""
        self.connected = spec.connected
        self.paused = spec.paused
        self.replicating = False
        self.epoch = 0
        # hot extents of a replicating target: writes in flight, and the seq/time of the
        # last completed write (their bits are committed clear once idle)
        self.inflight: dict[int, int] = {}
        self.pending: dict[int, int] = {}
        self.pending_time: dict[int, float] = {}
        self.hot: set[int] = set()  # extents this mirror marked durably, not cleared since
        self.resync: Resync | None = None
        self.resync_thread: threading.Thread | None = None
        self.progress: ResyncProgress | None = None
        self.channel: _Channel | None = None  # asynchronous mode: the bounded queue
        self.asynchronous = spec.asynchronous  # None: the mirror's mode
        self.retry_at = 0.0  # a remote target whose connection was lost: next attempt
        self.write_gen = 0  # non-durable writes started to it (see Mirror.sync)
        self.synced_gen = 0  # of those, how many a completed flush covers
        self.problem = ""  # why the volume cannot be used ("" = usable)
        self.published = False


class _Channel:
    """Asynchronous mode: the bounded queue of one target and the thread that drains it.

    At most ``max_writes`` writes or ``max_bytes`` bytes wait (64 / 64 MiB by
    default); a writer blocks while the queue is full. Writes are applied in order.
    """

    def __init__(self, mirror: Mirror, target: _Target, max_writes: int, max_bytes: int) -> None:
        self.mirror = mirror
        self.target = target
        self.max_writes = max_writes
        self.max_bytes = max_bytes
        self._cond = threading.Condition()
        self._items: list[_Item] = []
        self._bytes = 0
        self._busy = False  # a write to the target is in progress
        self._outstanding = 0  # queued or in progress, completion not yet recorded
        self._stop = False
        self._thread = threading.Thread(
            target=self._loop, name=f"mirror-{target.name}", daemon=True
        )
        self._thread.start()

    def submit(self, item: _Item) -> bool:
        """Queue ``item`` (blocks while the queue is full); False if it was dropped."""
        size = len(item.data)
        with self._cond:
            while (
                not self._stop
                and item.epoch == self.target.epoch
                and self._items
                and (len(self._items) >= self.max_writes or self._bytes + size > self.max_bytes)
            ):
                self._cond.wait()
            if self._stop or item.epoch != self.target.epoch:
                return False
            self._items.append(item)
            self._bytes += size
            self._outstanding += 1
            self._cond.notify_all()
            return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._stop:
                    self._cond.wait()
                if not self._items:
                    return
                item = self._items.pop(0)
                self._bytes -= len(item.data)
                self._busy = True
                self._cond.notify_all()
            try:
                vol = self.target.volume
                if vol is None:
                    raise OSError(errno.EIO, "target volume closed")
                vol.write(item.offset, item.data, durable=item.durable)
            except OSError as exc:
                item.error = exc
            finally:
                with self._cond:
                    self._busy = False  # before the bookkeeping: _quiesce holds its lock
                    self._cond.notify_all()
            try:
                self.mirror._target_write_done(self.target, item)
            finally:
                with self._cond:
                    self._outstanding -= 1
                    self._cond.notify_all()

    def drop_and_wait(self) -> None:
        """Drop what is queued and wait for the write in progress (their bits stay set)."""
        with self._cond:
            self._outstanding -= len(self._items)
            self._items, self._bytes = [], 0
            self._cond.notify_all()
            while self._busy:
                self._cond.wait()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued was written and recorded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._outstanding > 0:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()


class NoBitmapState:
    """The flag file of a mirror without bitmap (see the module docstring).

    ``needs_full`` maps target names to the reason they need a full resync; ``clean``
    says whether the mirror was stopped cleanly; ``existed`` whether the file was there.
    """

    def __init__(self, source: Path) -> None:
        self.path = source.with_name(source.name + NO_BITMAP_SUFFIX)
        self.clean = True
        self.needs_full: dict[str, str] = {}
        self.existed = False
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            self.existed = True
            self.clean = bool(raw.get("clean", False))
            needs = raw.get("needs_full_resync", {})
            if isinstance(needs, dict):
                self.needs_full = {str(k): str(v) for k, v in needs.items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            # unreadable: assume the worst (every target needs a full resync)
            log.warning("cannot read %s (%s): assuming an unclean stop", self.path, exc)
            self.existed = True
            self.clean = False

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps({"clean": self.clean, "needs_full_resync": self.needs_full})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


_StateEvent = tuple[str, MirrorState, str]


_NoBitmapState = NoBitmapState  # the former private name, still imported elsewhere


@dataclass
class _Events:
    q: queue.SimpleQueue[_StateEvent | ResyncProgress | None] = field(
        default_factory=queue.SimpleQueue
    )
    pending: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)


class Mirror:
    """A source volume and its targets (see the module docstring).

    Raises ``OSError(EINVAL, "invalid argument: ...")`` when ``bitmap_file`` lies on
    btrfs, :class:`~core.replication.volume.VolumeError` when the source cannot be
    opened, :class:`MirrorError` for a bad configuration. Problems with a target or with
    the bitmap file do not raise: they are reported through ``on_state``.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        targets: Sequence[TargetSpec],
        bitmap_file: str | os.PathLike[str] | None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        asynchronous: bool = False,
        async_max_writes: int = ASYNC_MAX_WRITES,
        async_max_bytes: int = ASYNC_MAX_BYTES,
        speed_limit_kbps: int = DEFAULT_SPEED_LIMIT_KBPS,
        speed_limit_min_kbps: int = DEFAULT_SPEED_LIMIT_MIN_KBPS,
        on_state: StateCallback | None = None,
        on_progress: ProgressCallback | None = None,
        auto_resync: bool = True,
        awaiting_previous_source: str | None = None,
        create_target_volumes: bool = True,
        clear_delay: float = 5.0,
        clear_interval: float = 1.0,
        max_hot_extents: int = 1024,
        extent_chunks: int = 64,
        resync_tuning: ResyncTuning | None = None,
        reconnect_interval: float = 2.0,
    ) -> None:
        names = [t.name for t in targets]
        self._configure_paths(source, targets, names, chunk_size, bitmap_file)

        self.chunk_size = chunk_size
        self.asynchronous = asynchronous
        self.async_max_writes = max(1, async_max_writes)
        self.async_max_bytes = max(chunk_size, async_max_bytes)
        self._speed_kbps = speed_limit_kbps
        self._speed_min_kbps = speed_limit_min_kbps
        self._on_state = on_state
        self._on_progress = on_progress
        self.auto_resync = auto_resync
        self.create_target_volumes = create_target_volumes
        self.clear_delay = clear_delay
        self.clear_interval = clear_interval
        self.max_hot_extents = max(0, max_hot_extents)
        self.extent_chunks = max(1, extent_chunks)
        self._tuning = resync_tuning or ResyncTuning()
        self.reconnect_interval = max(0.05, reconnect_interval)
        self.bitmap_problem = ""  # why the bitmap file was rebuilt, if it was

        self._lock = threading.RLock()  # state of the mirror and of every target
        self._state_cond = threading.Condition(self._lock)
        self._closed = False
        self._seq = 0
        self._last_write = 0.0
        # Mirror.sync's bookkeeping: non-durable writes to the source, how many a
        # completed fdatasync covers; writes since the last sync; syncs in a row that
        # followed at most two writes (a flush is then expected after a small write)
        self._source_gen = 0
        self._source_synced = 0
        self._writes_since_sync = 0
        self._short_syncs = 0
        self._awaiting = awaiting_previous_source
        self._events = _Events()
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="mirror-events", daemon=True
        )
        self._dispatcher.start()

        self._open(targets, names)
        self._start_workers()

    # -- configuration -------------------------------------------------------------------
    def _configure_paths(
        self,
        source: str | os.PathLike[str],
        targets: Sequence[TargetSpec],
        names: list[str],
        chunk_size: int,
        bitmap_file: str | os.PathLike[str] | None,
    ) -> None:
        """Set ``source_path`` and ``bitmap_file``; refuse a bad configuration (see the
        class docstring) before anything is opened."""
        if len(set(names)) != len(names):
            raise MirrorError(f"duplicate target names: {names}", step="configure")
        if chunk_size <= 0 or chunk_size % 512:
            raise MirrorError(f"chunk size {chunk_size} must be a positive multiple of 512")
        self.source_path = Path(os.path.abspath(os.fspath(source)))
        for spec in targets:
            if self._is_source(spec):
                raise MirrorError(f"target {spec.name} is the source volume itself", "configure")
        self.bitmap_file = None if bitmap_file is None else Path(os.path.abspath(bitmap_file))
        if self.bitmap_file is not None:
            check_bitmap_location(self.bitmap_file)  # OSError(EINVAL) on btrfs

    def _open(self, targets: Sequence[TargetSpec], names: list[str]) -> None:
        """Open the source, its chunk locks, the bitmap and every target; when one fails,
        close what was opened, stop the event dispatcher, and raise."""
        self._targets: dict[str, _Target] = {}
        self._nobitmap: NoBitmapState | None = None
        chunk_size = self.chunk_size
        self.source = Volume.open(self.source_path)
        self.nchunks = (self.source.size + chunk_size - 1) // chunk_size
        locks: ChunkLocks | None = None
        bitmap: IntentLog | None = None
        try:
            locks = self._locks = ChunkLocks(self.source_path, chunk_size)
            bitmap = self.bitmap = self._open_bitmap(names)
            if self._nobitmap is not None:
                self._nobitmap.clean = False  # until close(): a crash means full resyncs
                self._nobitmap.save()
            for spec in targets:
                self._targets[spec.name] = self._setup_target(spec)
        except BaseException:
            for t in self._targets.values():
                self._close_target_volume(t)
            if bitmap is not None:
                bitmap.close()
            if locks is not None:
                locks.close()
            self._shutdown_dispatcher()
            self.source.close()
            raise

    def _start_workers(self) -> None:
        """The bitmap clearer, each target's first state (replicating, or resyncing), then
        the reconnector of remote targets."""
        self._stop_clearer = threading.Event()
        self._clearer = threading.Thread(target=self._clear_loop, name="mirror-clear", daemon=True)
        self._clearer.start()
        self._reconnector: threading.Thread | None = None
        for t in list(self._targets.values()):
            self._after_setup(t)
        self._start_reconnector()

    def _is_source(self, spec: TargetSpec) -> bool:
        volume = spec.volume
        if not isinstance(volume, str | os.PathLike):
            return False
        return Path(os.path.abspath(os.fspath(volume))) == self.source_path

    def _open_bitmap(self, names: list[str]) -> IntentLog:
        size = self.source.size
        if self.bitmap_file is None:
            self._nobitmap = NoBitmapState(self.source_path)
            if not self._nobitmap.clean:
                for n in names:
                    self._nobitmap.needs_full.setdefault(
                        n, "the mirror has no bitmap and was not stopped cleanly"
                    )
            # clean bits: the flag file says which targets need a (full) resync
            return MemoryBitmap(
                volume_size=size, chunk_size=self.chunk_size, targets=names, dirty=False
            )
        try:
            bm = Bitmap.open(self.bitmap_file, volume_size=size, chunk_size=self.chunk_size)
        except BitmapInvalid as exc:
            self.bitmap_problem = (
                f"bitmap file {self.bitmap_file} is invalid ({exc.reason}): rebuilt, "
                "full resync of every target"
            )
            log.warning("%s", self.bitmap_problem)
            return Bitmap.create(
                self.bitmap_file,
                volume_size=size,
                chunk_size=self.chunk_size,
                targets=names,
                overwrite=True,
            )
        except BitmapError:
            if self.bitmap_file.exists():
                raise
            return Bitmap.create(
                self.bitmap_file, volume_size=size, chunk_size=self.chunk_size, targets=names
            )
        return bm

    def _setup_target(self, spec: TargetSpec) -> _Target:
        t = _Target(spec)
        if not self.bitmap.has_target(t.name):
            self.bitmap.add_target(t.name, dirty=True)
            t.reason = "new target: full resync"
        if t.connected:
            self._open_target_volume(t)
        if self.bitmap_problem:
            t.reason = self.bitmap_problem
        return t

    def _volume_missing(self, path: Path) -> bool:
        try:
            return path.stat().st_size == 0
        except FileNotFoundError:
            return True
        except OSError:
            return False  # opening will fail and say why

    def _open_target_volume(self, t: _Target) -> None:
        """Open (or create) the target's volume and take ownership of it; a remote one
        is connected to (within its connect deadline).

        A local volume that does not exist yet is all zeros: before creating it, its
        chunks are marked dirty durably (bitmap, or the no-bitmap flag file), so a crash
        right after the creation cannot leave an empty volume that looks in sync.
        """
        t.problem = ""
        if t.location is not None:
            opened = self._connect_remote(t.location)
            if isinstance(opened, str):
                t.problem = opened
            else:
                t.volume, t.owner_fd = opened
            return
        assert t.path is not None
        try:
            if self._volume_missing(t.path) and self.create_target_volumes:
                self.bitmap.set_all(t.name)
                self._persist_needs_full([t.name], "new target volume: full resync")
                t.reason = "new target volume: full resync"
                vol = Volume.create(t.path, self.source.size, exist_ok=True)
            else:
                vol = Volume.open(t.path)
        except (VolumeError, OSError, BitmapError) as exc:
            t.problem = _reason(exc)
            return
        if vol.size != self.source.size:
            vol.close()
            t.problem = (
                f"target volume {t.path} has {vol.size} bytes, the source has {self.source.size}"
            )
            return
        owned = self._own(vol)
        if isinstance(owned, str):
            vol.close()
            t.problem = owned
            return
        t.volume, t.owner_fd = vol, owned

    def _connect_remote(self, location: TargetLocation) -> tuple[TargetVolume, int] | str:
        """Connect to a remote target's volume and own it; the problem when that fails.
        Touches no state of the mirror: callers run it without holding ``_lock``."""
        try:
            vol = location.open_volume(self.source.size)
        except (VolumeError, OSError) as exc:
            return _reason(exc)
        owned = self._own(vol)
        if isinstance(owned, str):
            vol.close()
            return owned
        return vol, owned

    def _own(self, vol: TargetVolume) -> int | str:
        """Take the target's resync owner lock: its descriptor, or why not."""
        try:
            fd = os.open(vol.owner_lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            return _reason(exc)
        try:
            if try_lock_file(fd, OWNER_LOCK_OFFSET, 1):
                return fd
        except OSError as exc:
            os.close(fd)
            return _reason(exc)
        os.close(fd)
        return f"another resync process is working on {vol.location}"

    def _close_target_volume(self, t: _Target) -> None:
        if t.volume is not None:
            t.volume.close()
            t.volume = None
        if t.owner_fd >= 0:
            os.close(t.owner_fd)
            t.owner_fd = -1

    def _needs_full(self, t: _Target) -> bool:
        return self._nobitmap is not None and t.name in self._nobitmap.needs_full

    def _after_setup(self, t: _Target) -> None:
        """Decide the first state of a target (the caller's last known state + facts)."""
        with self._lock:
            if self._awaiting is not None:
                self._set_state(
                    t,
                    MirrorState.WAIT_FOR_PREVIOUS_SOURCE,
                    f"this copy may be stale: waiting for the previous source "
                    f"{self._awaiting} (or force the mirror online)",
                )
                return
            if self._blocked(t):
                self._set_state(t, MirrorState.OUT_OF_SYNC, self._block_reason(t))
                return
            clean = self.bitmap.dirty_count(t.name) == 0 and not self._needs_full(t)
            if t.spec.state is MirrorState.TARGET and clean and not self.bitmap_problem:
                self._start_replicating(t)
                self._set_state(t, MirrorState.TARGET, "")
                return
            if not t.reason:
                dirty = self.bitmap.dirty_count(t.name)
                if self._needs_full(t) and self._nobitmap is not None:
                    t.reason = self._nobitmap.needs_full[t.name]
                elif t.spec.state is MirrorState.TARGET:
                    t.reason = f"{dirty} chunks written but not confirmed before the last stop"
                else:
                    t.reason = f"not in sync ({dirty} dirty chunks)"
            self._set_state(t, MirrorState.OUT_OF_SYNC, t.reason)
            if self.auto_resync:
                self._start_resync(t, full=self._needs_full(t))

    def _blocked(self, t: _Target) -> bool:
        return t.paused or not t.connected or t.volume is None

    def _block_reason(self, t: _Target) -> str:
        if t.paused:
            return "paused by the administrator"
        if not t.connected:
            return t.reason or "target not connected"
        return t.problem or "target volume not available"

    # -- events ----------------------------------------------------------------------------
    def _set_state(self, t: _Target, state: MirrorState, reason: str) -> None:
        """Record a state (caller holds ``_lock``) and queue its publication."""
        changed = (t.state, t.reason) != (state, reason)
        t.state, t.reason = state, reason
        if changed or not t.published:
            t.published = True
            self._post((t.name, state, reason))
        self._state_cond.notify_all()

    def _post(self, event: _StateEvent | ResyncProgress) -> None:
        with self._events.cond:
            self._events.pending += 1
        self._events.q.put(event)

    def _dispatch_loop(self) -> None:
        while True:
            event = self._events.q.get()
            if event is None:
                return
            try:
                if isinstance(event, ResyncProgress):
                    if self._on_progress is not None:
                        self._on_progress(event)
                elif self._on_state is not None:
                    self._on_state(*event)
            except Exception:  # a broken subscriber must not stop the mirror
                log.exception("mirror callback failed on %r", event)
            finally:
                with self._events.cond:
                    self._events.pending -= 1
                    self._events.cond.notify_all()

    def drain_events(self, timeout: float | None = 10.0) -> bool:
        """Wait until every queued callback was delivered (tests, command line)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._events.cond:
            while self._events.pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._events.cond.wait(left)
        return True

    def _shutdown_dispatcher(self) -> None:
        self._events.q.put(None)
        self._dispatcher.join(timeout=10)

    # -- queries ---------------------------------------------------------------------------
    def _target(self, name: str) -> _Target:
        try:
            return self._targets[name]
        except KeyError:
            raise MirrorError(f"no target named {name!r} in this mirror") from None

    @property
    def target_names(self) -> list[str]:
        with self._lock:
            return list(self._targets)

    def state(self, target: str) -> MirrorState:
        with self._lock:
            return self._target(target).state

    def reason(self, target: str) -> str:
        with self._lock:
            return self._target(target).reason

    def status(self, target: str) -> TargetStatus:
        with self._lock:
            t = self._target(target)
            return TargetStatus(
                name=t.name,
                volume=t.where,
                state=t.state,
                reason=t.reason,
                connected=t.connected,
                paused=t.paused,
                replicating=t.replicating,
                dirty_chunks=self.bitmap.dirty_count(t.name),
                resyncing=t.resync_thread is not None and t.resync_thread.is_alive(),
                progress=t.progress,
            )

    def statuses(self) -> list[TargetStatus]:
        return [self.status(n) for n in self.target_names]

    def replicating_targets(self) -> frozenset[str]:
        """The targets every write reaches now (connected, in sync, not paused): cheap
        enough to ask after every write."""
        with self._lock:
            return frozenset(n for n, t in self._targets.items() if t.replicating)

    @property
    def online(self) -> bool:
        return self._awaiting is None

    def wait_for_state(self, target: str, state: MirrorState, timeout: float = 30.0) -> bool:
        """Wait until ``target`` is in ``state`` (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout
        with self._state_cond:
            while self._target(target).state is not state:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._state_cond.wait(min(left, 0.5))
            return True

    def wait_resync_idle(self, target: str, timeout: float = 30.0) -> bool:
        """Wait until no resync thread runs for ``target``."""
        with self._lock:
            th = self._target(target).resync_thread
        if th is None:
            return True
        th.join(timeout)
        return not th.is_alive()

    # -- writing ---------------------------------------------------------------------------
    def read(self, offset: int, n: int) -> bytes:
        return self.source.read(offset, n)

    def write(
        self, offset: int, data: bytes | bytearray | memoryview, durable: bool = False
    ) -> None:
        """Write ``data`` at ``offset`` of the source and of every replicating target.

        Synchronous mode returns after the source and every replicating target have the
        data (on disk too when ``durable``); asynchronous mode returns after the source
        has it and the targets' copies are queued.
        """
        if self._closed:
            raise MirrorError("the mirror is closed", step="write")
        if self._awaiting is not None:
            raise MirrorNotOnline(
                f"the mirror waits for the previous source {self._awaiting}: this copy may "
                "be stale; bring the previous source back or force the mirror online",
                step="write",
            )
        mv = memoryview(data).cast("B")
        n = len(mv)
        self.source.check_range(offset, n)
        if n == 0:
            return
        cs = self.chunk_size
        first, end = offset // cs, (offset + n - 1) // cs + 1
        with self._locks.exclusive(first, end):
            self._write_locked(offset, mv, durable, first, end)

    def _write_locked(
        self, offset: int, mv: memoryview, durable: bool, first: int, end: int
    ) -> None:
        # Not split: the hot path of every write, one critical section under its chunks' lock.
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._last_write = time.monotonic()
            self._writes_since_sync += 1
            asked = durable
            if not durable:
                durable = (
                    self._short_syncs >= FLUSH_EXPECTED_AFTER
                    and self._writes_since_sync <= 2
                    and len(mv) <= FLUSH_EXPECTED_MAX_BYTES
                )
            rep = [t for t in self._targets.values() if t.replicating]
            if not durable:
                self._source_gen += 1
                for t in rep:
                    t.write_gen += 1
            unrep = [t.name for t in self._targets.values() if not t.replicating]
            epochs = {t.name: t.epoch for t in rep}
            extents = self._extents(first, end)
            # Every extent already marked (durably, by this mirror, not cleared since)
            # for every target, and no target that misses the write: no bitmap I/O.
            need_mark = bool(unrep) or any(e not in t.hot for t in rep for e in extents)
            for t in rep:
                for e in extents:
                    t.inflight[e] = t.inflight.get(e, 0) + 1
            if self._nobitmap is not None:
                self._persist_needs_full(unrep)
        try:
            if need_mark:
                ext = self.extent_chunks
                hot = (first // ext * ext, min(self.nchunks, -(-end // ext) * ext))
                self.bitmap.mark_write(
                    first, end, replicated=[t.name for t in rep], unreplicated=unrep, hot=hot
                )
                with self._lock:
                    for t in rep:
                        if t.epoch == epochs[t.name]:
                            t.hot.update(extents)
        except (OSError, BitmapError) as exc:
            with self._lock:
                for t in rep:
                    self._inflight_done(t, epochs[t.name], first, end, seq, ok=False)
            raise MirrorError(
                f"cannot record the write in the bitmap ({_reason(exc)}); nothing was written",
                step="write",
            ) from exc
        # 1. the source (page cache); a failure here leaves every target untouched
        try:
            self.source.write(offset, mv)
        except OSError as exc:
            with self._lock:
                for t in rep:
                    self._inflight_done(t, epochs[t.name], first, end, seq, ok=False)
            raise SourceWriteError(_reason(exc), exc.errno) from exc

        queued = [t for t in rep if self._is_async(t)]
        if queued:
            data = bytes(mv)
            for t in queued:
                item = _Item(offset, data, asked, first, end, epochs[t.name], seq)
                ch = t.channel
                if ch is None or not ch.submit(item):
                    with self._lock:
                        self._inflight_done(t, epochs[t.name], first, end, seq, ok=False)
            rep = [t for t in rep if not self._is_async(t)]
            if not rep:
                if durable:
                    self._source_sync()
                return

        # 2. synchronous: every target's write is started (a file: pwrite here, to the
        # page cache; NBD: the request sent), then, when durable, the source's fdatasync
        # runs here while the targets flush (a file: in its helper thread; NBD: FUA),
        # then every target is waited for (NBD: at most its deadline).
        failures: dict[str, OSError] = {}
        pending: list[tuple[_Target, PendingIO]] = []
        for t in rep:
            vol = t.volume
            if vol is None:
                pending.append((t, Done(OSError(errno.EIO, "target volume closed"))))
            else:
                pending.append((t, vol.begin_write(offset, mv, durable)))
        source_error: OSError | None = None
        if durable:
            try:
                self.source.flush()
            except OSError as exc:
                source_error = exc
        for t, p in pending:
            err = p.wait()
            if err is not None:
                failures[t.name] = err
        with self._lock:
            for t in rep:
                ok = t.name not in failures and source_error is None
                self._inflight_done(t, epochs[t.name], first, end, seq, ok=ok)
                error = failures.get(t.name)
                if t.epoch != epochs[t.name]:
                    continue
                if error is not None:
                    self._stop_replicating(t, _reason(error))
                elif source_error is not None:
                    # the target has a write the source may not: not in sync
                    self._stop_replicating(
                        t, f"the source failed to store a write: {_reason(source_error)}"
                    )
        if source_error is not None:
            raise SourceWriteError(_reason(source_error), source_error.errno)

    def _is_async(self, t: _Target) -> bool:
        """Whether writes to ``t`` are queued (asynchronous) rather than waited for."""
        return self.asynchronous if t.asynchronous is None else t.asynchronous

    def _source_sync(self) -> None:
        try:
            self.source.flush()
        except OSError as exc:
            raise SourceWriteError(_reason(exc), exc.errno) from exc

    def _inflight_done(
        self, t: _Target, epoch: int, first: int, end: int, seq: int, *, ok: bool
    ) -> None:
        """A write of chunks ``[first, end)`` to ``t`` finished (caller holds ``_lock``)."""
        if t.epoch != epoch:
            return
        now = time.monotonic()
        for e in self._extents(first, end):
            left = t.inflight.get(e, 0) - 1
            if left > 0:
                t.inflight[e] = left
            else:
                t.inflight.pop(e, None)
            if ok:
                t.pending[e] = seq
                t.pending_time[e] = now

    def _extents(self, first: int, end: int) -> range:
        """The hot extents (groups of ``extent_chunks`` chunks) chunks [first, end) touch."""
        return range(first // self.extent_chunks, (end - 1) // self.extent_chunks + 1)

    def _target_write_done(self, t: _Target, item: _Item) -> None:
        """Completion of an asynchronous target write (channel thread)."""
        with self._lock:
            self._inflight_done(
                t, item.epoch, item.first, item.end, item.seq, ok=item.error is None
            )
            if item.error is not None and t.epoch == item.epoch:
                self._stop_replicating(t, _reason(item.error))

    def flush(self) -> None:
        """Everything written so far is on disk on the source and every replicating
        target (async queues drained), and the bits of idle chunks are committed clear."""
        for t in list(self._targets.values()):
            ch = t.channel
            if ch is not None:
                ch.drain()
        self._source_sync()
        self._clear_pass(force=True)

    def sync(self) -> None:
        """Every write that returned before this call is durable on the source and on
        every replicating synchronous target: the source's ``fdatasync`` runs while each
        of those targets flushes. A target whose flush fails goes Out of Sync (its bits
        stay set) and does not fail the call; a failed source flush raises
        :class:`SourceWriteError`. Asynchronous targets are not waited for (their queue
        keeps its order; :meth:`flush` drains it). No bit is cleared here."""
        if self._closed:
            raise MirrorError("the mirror is closed", step="flush")
        with self._lock:
            writes, self._writes_since_sync = self._writes_since_sync, 0
            if writes > 2:
                self._short_syncs = 0
            elif writes:
                self._short_syncs = min(FLUSH_EXPECTED_AFTER, self._short_syncs + 1)
            source_gen = self._source_gen
            rep = [
                (t, t.epoch, t.volume, t.write_gen)
                for t in self._targets.values()
                if t.replicating
                and t.volume is not None
                and not self._is_async(t)
                and t.synced_gen < t.write_gen
            ]
        pending = [
            (t, epoch, gen, vol.begin_flush()) for t, epoch, vol, gen in rep if vol is not None
        ]
        source_error: OSError | None = None
        if self._source_synced < source_gen:
            try:
                self.source.flush()
            except OSError as exc:
                source_error = exc
            else:
                with self._lock:
                    self._source_synced = max(self._source_synced, source_gen)
        for t, epoch, gen, p in pending:
            err = p.wait()
            with self._lock:
                if t.epoch != epoch:
                    continue
                if err is not None:
                    self._stop_replicating(t, _reason(err))
                else:
                    t.synced_gen = max(t.synced_gen, gen)
        if source_error is not None:
            raise SourceWriteError(_reason(source_error), source_error.errno) from source_error

    # -- lazy clearing ------------------------------------------------------------------------
    def _clear_loop(self) -> None:
        while not self._stop_clearer.wait(self.clear_interval):
            try:
                self._clear_pass(force=False)
            except (OSError, LkError):
                log.exception("clearing mirror bits failed (they stay set: extra copies only)")

    def clear_idle(self) -> int:
        """Commit the bits of idle hot extents now (what the background pass does);
        returns how many extents were cleared."""
        return self._clear_pass(force=False)

    def _clear_pass(self, force: bool) -> int:
        now = time.monotonic()
        cleared = 0
        for t in list(self._targets.values()):
            with self._lock:
                if not t.replicating or not t.pending:
                    continue
                epoch = t.epoch
                if force:
                    cand = {c: s for c, s in t.pending.items() if c not in t.inflight}
                else:
                    cand = {
                        c: s
                        for c, s in t.pending.items()
                        if c not in t.inflight and now - t.pending_time[c] >= self.clear_delay
                    }
                    excess = len(t.pending) - len(cand) - self.max_hot_extents
                    if excess > 0:
                        older = sorted(
                            (c for c in t.pending if c not in cand and c not in t.inflight),
                            key=lambda c: t.pending_time[c],
                        )
                        cand.update({c: t.pending[c] for c in older[:excess]})
                vol = t.volume
            if not cand or vol is None:
                continue
            try:
                vol.flush()  # target data durable before the bits that say so are cleared
            except OSError as exc:
                with self._lock:
                    if t.epoch == epoch:
                        self._stop_replicating(t, _reason(exc))
                continue
            with self._lock:
                if t.epoch != epoch or not t.replicating:
                    continue
                ready = [
                    e for e, s in cand.items() if t.pending.get(e) == s and e not in t.inflight
                ]
                ext = self.extent_chunks
                chunks = [
                    c for e in ready for c in range(e * ext, min(self.nchunks, (e + 1) * ext))
                ]
                self.bitmap.commit_clears(t.name, chunks)
                for e in ready:
                    t.pending.pop(e, None)
                    t.pending_time.pop(e, None)
                    t.hot.discard(e)
                cleared += len(ready)
        return cleared

    # -- remote targets: lost connections, reconnecting -----------------------------------------
    def _start_reconnector(self) -> None:
        """Start the thread that watches remote targets, once there is one."""
        with self._lock:
            if self._reconnector is not None or self._closed:
                return
            if all(t.location is None for t in self._targets.values()):
                return
            th = threading.Thread(target=self._reconnect_loop, name="mirror-reconnect", daemon=True)
            self._reconnector = th
        th.start()

    def _reconnect_loop(self) -> None:
        """Every ``reconnect_interval``: close the volumes of remote targets whose
        connection was lost, and connect again to those that should be connected."""
        while not self._stop_clearer.wait(self.reconnect_interval):
            for t in list(self._targets.values()):
                if t.location is None or self._closed:
                    continue
                try:
                    self._watch_remote(t, t.location)
                except (OSError, LkError):
                    log.exception("watching the connection to %s failed", t.where)

    def _watch_remote(self, t: _Target, location: TargetLocation) -> None:
        vol = t.volume
        if vol is not None:
            if vol.lost:
                self._drop_lost(t, vol)
            return
        with self._lock:
            if not t.connected or self._closed or time.monotonic() < t.retry_at:
                return
        opened = self._connect_remote(location)
        with self._lock:
            if isinstance(opened, str):
                t.problem = opened  # the state keeps the reason the target was lost
                t.retry_at = time.monotonic() + self.reconnect_interval
                return
            if self._closed or not t.connected or t.volume is not None:
                _release(opened)
                return
            if self._targets.get(t.name) is not t:
                _release(opened)
                return
            self._install(t, opened)
            log.info("reconnected to %s (%s)", t.name, t.where)
            if self._awaiting is not None:
                return
            if self._blocked(t):
                self._set_state(t, MirrorState.OUT_OF_SYNC, self._block_reason(t))
            elif not t.replicating and self.auto_resync:
                self._start_resync(t, full=self._needs_full(t))

    def _drop_lost(self, t: _Target, vol: TargetVolume) -> None:
        """The connection to ``t`` is gone: stop using it (Out of Sync, bits kept) and
        close its volume; the next pass of the reconnecting thread connects again."""
        reason = vol.lost_reason or f"{t.where}: connection lost"
        self._cancel_resync(t)  # its calls fail at once on a lost connection
        with self._locks.everything(exclusive=True), self._lock:
            if t.volume is not vol:
                return
            self._quiesce(t)
            self._stop_replicating(t, reason)
            if t.state is not MirrorState.OUT_OF_SYNC:
                self._set_state(t, MirrorState.OUT_OF_SYNC, reason)
            self._close_target_volume(t)
            t.problem = reason
            t.retry_at = 0.0
        log.warning("%s: %s", t.name, reason)

    def _install(self, t: _Target, opened: tuple[TargetVolume, int] | str) -> None:
        """(caller holds ``_lock``) a connected remote volume becomes ``t``'s."""
        if isinstance(opened, str):
            t.problem = opened
            return
        t.volume, t.owner_fd = opened
        t.problem = ""

    def open_target_reader(self, target: str) -> TargetVolume:
        """A volume of ``target`` of its own, read-only (a verify reads through it):
        the file opened again, or a second connection to the remote target."""
        t = self._target(target)
        if t.location is not None:
            return t.location.open_volume(self.source.size, readonly=True)
        assert t.path is not None
        return Volume.open(t.path, readonly=True)

    # -- replication on/off ------------------------------------------------------------------
    def _start_replicating(self, t: _Target) -> None:
        """(caller holds ``_lock``) writes go to ``t`` from now on."""
        t.epoch += 1
        t.inflight.clear()
        t.pending.clear()
        t.pending_time.clear()
        t.hot.clear()
        t.replicating = True
        if self._is_async(t) and t.channel is None:
            t.channel = _Channel(self, t, self.async_max_writes, self.async_max_bytes)

    def _stop_replicating(self, t: _Target, reason: str) -> None:
        """(caller holds ``_lock``) ``t`` misses writes from now on: OUT_OF_SYNC."""
        was = t.replicating
        t.replicating = False
        t.epoch += 1
        t.inflight.clear()
        t.pending.clear()
        t.pending_time.clear()
        t.hot.clear()
        if self._nobitmap is not None:
            self._persist_needs_full([t.name], reason)
        if was or t.state is not MirrorState.OUT_OF_SYNC:
            self._set_state(t, MirrorState.OUT_OF_SYNC, reason)

    def _quiesce(self, t: _Target) -> None:
        """Wait for the async write in progress to ``t`` and drop the queued ones."""
        ch = t.channel
        if ch is not None:
            ch.drop_and_wait()

    def _persist_needs_full(self, names: list[str], reason: str = "") -> None:
        st = self._nobitmap
        if st is None:
            return
        new = [n for n in names if n not in st.needs_full]
        if not new:
            return
        for n in new:
            st.needs_full[n] = reason or "missed writes (no bitmap: full resync)"
        st.save()

    # -- resync --------------------------------------------------------------------------------
    def _start_resync(self, t: _Target, full: bool) -> None:
        """(caller holds ``_lock``) start a resync thread for ``t`` if none runs."""
        if t.resync_thread is not None and t.resync_thread.is_alive():
            if t.resync is not None and t.resync.paused and not t.paused:
                t.resync.resume()
                self._set_state(t, MirrorState.RESYNCING, "")
            return
        if self._blocked(t) or self._closed or self._awaiting is not None:
            return
        assert t.volume is not None
        full = full or not self.bitmap.persistent
        tuning = self._tuning
        resync = Resync(
            self.source,
            t.volume,
            self.bitmap,
            t.name,
            locks=self._locks,
            full=full,
            speed_limit_kbps=self._speed_kbps,
            speed_limit_min_kbps=self._speed_min_kbps,
            competing_io=self._competing_io,
            on_progress=functools.partial(self._resync_progress, t),
            on_in_sync=functools.partial(self._resync_in_sync, t),
            take_ownership=False,
            io_size=tuning.io_size,
            commit_bytes=tuning.commit_bytes,
            commit_interval=tuning.commit_interval,
            skip_holes=tuning.skip_holes,
        )
        t.resync = resync
        t.progress = None
        th = threading.Thread(
            target=self._resync_main, args=(t, resync), name=f"resync-{t.name}", daemon=True
        )
        t.resync_thread = th
        self._set_state(t, MirrorState.RESYNCING, "full resync" if full else "")
        th.start()

    def _competing_io(self) -> bool:
        return time.monotonic() - self._last_write < 0.5

    def _resync_progress(self, t: _Target, p: ResyncProgress) -> None:
        t.progress = p
        self._post(p)

    def _resync_in_sync(self, t: _Target) -> None:
        """Called by the resync under every chunk lock once the target is in sync."""
        with self._lock:
            if self._nobitmap is not None and t.name in self._nobitmap.needs_full:
                del self._nobitmap.needs_full[t.name]
                self._nobitmap.save()
            if self._blocked(t):
                return  # paused/disconnected meanwhile: in sync, but not replicating
            self._start_replicating(t)
            self._set_state(t, MirrorState.TARGET, "")

    def _resync_main(self, t: _Target, resync: Resync) -> None:
        try:
            result = resync.run()
        except ResyncError as exc:
            with self._lock:
                if t.resync is resync:
                    self._stop_replicating(t, exc.reason)
                    self._set_state(t, MirrorState.OUT_OF_SYNC, exc.reason)
            return
        except (OSError, LkError) as exc:
            with self._lock:
                if t.resync is resync:
                    self._set_state(t, MirrorState.OUT_OF_SYNC, f"resync failed: {_reason(exc)}")
            return
        with self._lock:
            if t.resync is resync and not result.in_sync and t.state is MirrorState.RESYNCING:
                self._set_state(t, MirrorState.OUT_OF_SYNC, "resync cancelled")
            elif result.in_sync and self._blocked(t) and t.paused:
                self._set_state(t, MirrorState.OUT_OF_SYNC, "paused by the administrator")

    def _cancel_resync(self, t: _Target) -> None:
        """Cancel ``t``'s resync and wait for its thread (no lock held by the caller)."""
        with self._lock:
            resync, th = t.resync, t.resync_thread
            t.resync, t.resync_thread = None, None  # its end is not news: we stopped it
        if resync is not None:
            resync.cancel()
        if th is not None:
            th.join()

    def start_resync(self, target: str) -> None:
        """Resync ``target`` now (partial: the bitmap's chunks; full without bitmap)."""
        t = self._target(target)
        with self._lock:
            if self._awaiting is not None:
                raise MirrorNotOnline("the mirror waits for the previous source", "resync")
            if t.replicating:
                return
            if self._blocked(t):
                raise MirrorError(f"{target}: {self._block_reason(t)}", step="resync")
            self._start_resync(t, full=self._needs_full(t))

    def full_resync(self, target: str) -> None:
        """Mark every chunk of ``target`` dirty (durably), then resync it."""
        t = self._target(target)
        if self._awaiting is not None:
            raise MirrorNotOnline("the mirror waits for the previous source", "full resync")
        self._cancel_resync(t)
        with self._locks.everything(exclusive=True), self._lock:
            self._quiesce(t)
            self._stop_replicating(t, "full resync requested")
            self.bitmap.set_all(t.name)
            if self._nobitmap is not None:
                self._persist_needs_full([t.name], "full resync requested")
            if self._blocked(t):
                self._set_state(t, MirrorState.OUT_OF_SYNC, self._block_reason(t))
                return
            self._start_resync(t, full=True)

    def mark_dirty(self, target: str, runs: Sequence[tuple[int, int]], reason: str) -> int:
        """Mark the chunk runs ``[first, end)`` of ``target`` dirty, durably: they may
        differ there (the target is a former source that stopped without telling what it
        wrote last). A target in sync stops replicating; what is dirty is then resynced.
        Returns how many chunks were marked (runs are clipped to the volume)."""
        t = self._target(target)
        clipped = [(max(0, a), min(self.nchunks, b)) for a, b in runs]
        clipped = [(a, b) for a, b in clipped if a < b]
        if not clipped:
            return 0
        self._cancel_resync(t)
        with self._locks.everything(exclusive=True), self._lock:
            self._quiesce(t)
            self.bitmap.mark_runs(t.name, clipped)  # one durable update for them all
            if self._nobitmap is not None:
                self._persist_needs_full([t.name], reason)
            if self._awaiting is None:  # else every target waits already (not replicating)
                self._stop_replicating(t, reason)
                if not self._blocked(t) and self.auto_resync:
                    self._start_resync(t, full=self._needs_full(t))
        return sum(b - a for a, b in clipped)

    @property
    def speed_limit_kbps(self) -> int:
        """The resync speed limit now, in KB/s (0: unlimited)."""
        return self._speed_kbps

    def target_mode(self, target: str) -> bool | None:
        """``target``'s own mode: True asynchronous, False synchronous, None the mirror's."""
        return self._target(target).asynchronous

    def set_speed_limit(self, kbps: int, min_kbps: int | None = None) -> None:
        """Resync speed limit in KB/s (1 KB = 1000 bytes), 0 = unlimited; applies at once."""
        with self._lock:
            self._speed_kbps = max(0, kbps)
            if min_kbps is not None:
                self._speed_min_kbps = max(0, min_kbps)
            for t in self._targets.values():
                if t.resync is not None:
                    t.resync.set_speed_limit(self._speed_kbps, self._speed_min_kbps)

    def set_target_mode(self, target: str, asynchronous: bool | None) -> None:
        """``target`` replicates asynchronously (True), synchronously (False) or in the
        mirror's mode (None) from the next write on; what is queued for it is sent first."""
        t = self._target(target)
        with self._locks.everything(exclusive=True):  # no write starts meanwhile
            ch = t.channel
            if ch is not None and not ch.drain(timeout=MODE_DRAIN_TIMEOUT):
                raise MirrorError(
                    f"the writes queued for {target} were not sent within "
                    f"{MODE_DRAIN_TIMEOUT:g} s: its mode is unchanged"
                )
            with self._lock:
                t.asynchronous = asynchronous
                if self._is_async(t) and t.replicating and t.channel is None:
                    t.channel = _Channel(self, t, self.async_max_writes, self.async_max_bytes)
                elif not self._is_async(t) and t.channel is not None:
                    t.channel.stop()
                    t.channel = None

    # -- actions ---------------------------------------------------------------------------------
    def pause(self, target: str) -> None:
        """Stop replicating to ``target`` (and pause its resync); writes only mark bits."""
        t = self._target(target)
        with self._locks.everything(exclusive=True), self._lock:
            t.paused = True
            self._quiesce(t)
            if t.resync is not None:
                t.resync.pause()
            self._stop_replicating(t, "paused by the administrator")
            self._set_state(t, MirrorState.OUT_OF_SYNC, "paused by the administrator")

    def resume(self, target: str) -> None:
        """Resume ``target``: resync what it missed, then replicate (TARGET)."""
        t = self._target(target)
        with self._lock:
            t.paused = False
            if self._awaiting is not None:
                return
            th = t.resync_thread
            if t.resync is not None and th is not None and t.resync.paused and th.is_alive():
                t.resync.resume()
                self._set_state(t, MirrorState.RESYNCING, "")
                return
            if t.replicating:
                return
            if self._blocked(t):
                self._set_state(t, MirrorState.OUT_OF_SYNC, self._block_reason(t))
                return
            self._start_resync(t, full=self._needs_full(t))

    def disconnect(self, target: str, reason: str = "target not connected") -> None:
        """The target went away (lab: its server stopped): stop writing to it."""
        t = self._target(target)
        self._cancel_resync(t)
        with self._locks.everything(exclusive=True), self._lock:
            t.connected = False
            self._quiesce(t)
            self._stop_replicating(t, reason)
            self._set_state(t, MirrorState.OUT_OF_SYNC, reason)
            self._close_target_volume(t)

    def connect(self, target: str) -> None:
        """The target is back: reopen its volume and resync what it missed."""
        t = self._target(target)
        opened: tuple[TargetVolume, int] | str | None = None
        if t.location is not None and t.volume is None:
            opened = self._connect_remote(t.location)  # not under _lock: it may take seconds
        with self._lock:
            t.connected = True
            if t.volume is None:
                if opened is None:
                    self._open_target_volume(t)
                else:
                    self._install(t, opened)
            elif opened is not None and not isinstance(opened, str):
                _release(opened)  # connected meanwhile by the reconnecting thread
            if self._awaiting is not None:
                return
            if self._blocked(t):
                self._set_state(t, MirrorState.OUT_OF_SYNC, self._block_reason(t))
                return
            if not t.replicating:
                self._start_resync(t, full=self._needs_full(t))

    def force_online(self) -> str:
        """Bring this (possibly stale) copy online after both sides crashed.

        Only when asked: the message says what it means. Every target then gets a full
        resync from this copy (nothing tells which chunks differ).
        """
        with self._lock:
            prev = self._awaiting
            if prev is None:
                return "The mirror is already online; nothing was forced."
            self._awaiting = None
            targets = list(self._targets.values())
            for t in targets:
                self.bitmap.set_all(t.name)
                self._persist_needs_full([t.name], "forced online: full resync")
                t.reason = "forced online: full resync"
                if self._blocked(t):
                    self._set_state(t, MirrorState.OUT_OF_SYNC, self._block_reason(t))
                elif self.auto_resync:
                    self._start_resync(t, full=True)
                else:
                    self._set_state(t, MirrorState.OUT_OF_SYNC, t.reason)
        return (
            f"Forced the mirror online on {self.source_path} without the previous source "
            f"{prev}. This copy may be stale: writes {prev} made after it last replicated "
            f"here are lost unless recovered by hand. Every target, {prev} included, gets a "
            "full resync from this copy."
        )

    def add_target(self, spec: TargetSpec) -> None:
        """Add a target (extend): new bits all dirty, then a full resync."""
        with self._lock:
            if spec.name in self._targets:
                raise MirrorError(f"target {spec.name} already exists", step="add target")
            if self._is_source(spec):
                raise MirrorError(f"target {spec.name} is the source volume", "add target")
            if self.bitmap.has_target(spec.name):
                self.bitmap.set_all(spec.name)
            t = self._setup_target(spec)
            self._targets[spec.name] = t
            self._persist_needs_full([spec.name], "new target")
        self._after_setup(t)
        self._start_reconnector()

    def remove_target(self, name: str) -> None:
        """Remove a target (unextend): its bits go, its volume is kept."""
        t = self._target(name)
        self._cancel_resync(t)
        with self._locks.everything(exclusive=True), self._lock:
            self._quiesce(t)
            t.replicating = False
            t.epoch += 1
            if t.channel is not None:
                t.channel.stop()
                t.channel = None
            self._close_target_volume(t)
            del self._targets[name]
            self.bitmap.remove_target(name)
            if self._nobitmap is not None and name in self._nobitmap.needs_full:
                del self._nobitmap.needs_full[name]
                self._nobitmap.save()

    # -- closing -----------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop resyncs, drain queues, flush, clear idle bits, release everything."""
        if self._closed:
            return
        for t in list(self._targets.values()):
            self._cancel_resync(t)
        try:
            self.flush()
        except LkError:
            log.exception("flush on close failed")
        self._closed = True
        self._stop_clearer.set()
        self._clearer.join()
        if self._reconnector is not None:
            self._reconnector.join()
        for t in list(self._targets.values()):
            if t.channel is not None:
                t.channel.stop()
                t.channel = None
            self._close_target_volume(t)
        if self._nobitmap is not None:
            self._nobitmap.clean = True
            try:
                self._nobitmap.save()
            except OSError:
                log.exception("cannot record the clean stop in %s", self._nobitmap.path)
        self.bitmap.close()
        self._locks.close()
        self.source.close()
        self.drain_events()
        self._shutdown_dispatcher()

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _release(opened: tuple[TargetVolume, int]) -> None:
    """Close a volume connected for nothing (someone else connected it meanwhile)."""
    vol, fd = opened
    vol.close()
    os.close(fd)


def _reason(exc: BaseException) -> str:
    """A short human reason: ``"No space left on device"`` for ENOSPC, etc."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.strerror or os.strerror(exc.errno)
    return str(exc)
