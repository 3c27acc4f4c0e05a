"""A volume: a file of fixed size standing for a disk of the lab (sparse files allowed).

I/O is by offset (``os.pread``/``os.pwrite`` on one file descriptor, no Python-level
buffering, safe to share between threads). Out-of-range I/O raises
:class:`VolumeRangeError` (an :class:`~core.errors.LkError` naming the path, the offset,
the size and the volume size); failures of the underlying file (``ENOSPC``, ``EROFS``,
``EIO``, ...) surface as the ``OSError`` subclasses Python raises, for the mirror to catch
and turn into a target state.

A :class:`Volume` is the local implementation of
:class:`~core.replication.target.TargetVolume` (the remote one is
:class:`~core.replication.nbd.NbdVolume`): ``copy_from`` copies in the kernel
(``copy_file_range``, else ``preadv``/``pwrite`` through one reused buffer), and
``begin_flush`` runs the ``fdatasync`` in a helper thread of the volume (started on first
use), so that a mirror flushes its targets while it flushes its source.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from core.errors import LkError
from core.replication.target import Done, PendingIO

__all__ = [
    "ChunkLocks",
    "Volume",
    "VolumeError",
    "VolumeRangeError",
    "VolumeSizeMismatch",
    "has_hole",
    "is_hole",
    "lock_file",
    "start_writeback",
    "try_lock_file",
    "unlock_file",
]


class VolumeError(LkError):
    """A volume cannot be created, opened or used as asked."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(message)


class VolumeRangeError(VolumeError):
    """I/O outside ``[0, size)`` of a volume."""

    def __init__(self, path: str | os.PathLike[str], offset: int, size: int, volume_size: int):
        self.offset = offset
        self.size = size
        self.volume_size = volume_size
        super().__init__(
            f"{path}: I/O of {size} bytes at offset {offset} is outside the volume "
            f"(size {volume_size} bytes)",
            path,
        )


class VolumeSizeMismatch(VolumeError):
    """An existing file has another size than the one expected."""


class Volume:
    """A fixed-size volume file opened for reading (and writing unless ``readonly``)."""

    def __init__(self, path: str | os.PathLike[str], fd: int, size: int, readonly: bool) -> None:
        self.path = Path(path)
        self._fd = fd
        self.size = size
        self.readonly = readonly
        self._flusher: _Flusher | None = None
        self._flusher_lock = threading.Lock()
        self._use_cfr = hasattr(os, "copy_file_range")
        self._copy_buf: bytearray | None = None
        self._copy_lock = threading.Lock()

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], size: int, *, exist_ok: bool = False) -> Volume:
        """Create a sparse volume of ``size`` bytes (a new file full of zeros).

        With ``exist_ok`` an existing file of exactly ``size`` bytes is opened instead
        (its content kept); another size raises :class:`VolumeSizeMismatch`.
        """
        if size <= 0:
            raise VolumeError(f"{path}: a volume needs a size > 0 (got {size})", path)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | (0 if exist_ok else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError as exc:
            raise VolumeError(f"{path}: a file already exists there", path) from exc
        try:
            current = os.fstat(fd).st_size
            if current == 0:
                os.ftruncate(fd, size)
            elif current != size:
                raise VolumeSizeMismatch(
                    f"{path}: existing file has {current} bytes, expected {size}", path
                )
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, size, readonly=False)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, readonly: bool = False) -> Volume:
        """Open an existing volume; its size is the file's size."""
        flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError as exc:
            raise VolumeError(f"{path}: no such volume", path) from exc
        except IsADirectoryError as exc:
            raise VolumeError(f"{path}: is a directory, not a volume", path) from exc
        size = os.fstat(fd).st_size
        if size <= 0:
            os.close(fd)
            raise VolumeError(f"{path}: empty file, not a volume", path)
        return cls(path, fd, size, readonly=readonly)

    # -- I/O ----------------------------------------------------------------------------
    @property
    def location(self) -> str:
        """Where the volume is, for messages (its path)."""
        return str(self.path)

    @property
    def owner_lock_path(self) -> Path:
        """The file whose owner lock byte a resync takes: the volume file itself."""
        return self.path

    @property
    def lost(self) -> bool:
        """A local file is never lost (its failures are per call)."""
        return False

    @property
    def lost_reason(self) -> str:
        return ""

    def fileno(self) -> int:
        if self._fd < 0:
            raise VolumeError(f"{self.path}: volume is closed", self.path)
        return self._fd

    def check_range(self, offset: int, size: int) -> None:
        if offset < 0 or size < 0 or offset + size > self.size:
            raise VolumeRangeError(self.path, offset, size, self.size)

    def read(self, offset: int, n: int) -> bytes:
        """``n`` bytes at ``offset`` (holes read as zeros)."""
        self.check_range(offset, n)
        fd = self.fileno()
        parts: list[bytes] = []
        done = 0
        while done < n:
            b = os.pread(fd, n - done, offset + done)
            if not b:  # cannot happen for a fixed-size file unless it was truncated
                raise VolumeError(f"{self.path}: short read at {offset + done}", self.path)
            parts.append(b)
            done += len(b)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, offset: int, buf: bytearray | memoryview) -> int:
        """Fill ``buf`` from ``offset``; returns ``len(buf)``."""
        mv = memoryview(buf).cast("B")
        self.check_range(offset, len(mv))
        fd = self.fileno()
        done = 0
        while done < len(mv):
            got = os.preadv(fd, [mv[done:]], offset + done)
            if got == 0:
                raise VolumeError(f"{self.path}: short read at {offset + done}", self.path)
            done += got
        return done

    def write(
        self, offset: int, data: bytes | bytearray | memoryview, durable: bool = False
    ) -> None:
        """Write ``data`` at ``offset``; with ``durable`` also ``fdatasync`` before returning."""
        mv = memoryview(data).cast("B")
        self.check_range(offset, len(mv))
        if self.readonly:
            raise OSError(errno.EBADF, f"{self.path}: volume is open read-only")
        fd = self.fileno()
        done = 0
        while done < len(mv):
            done += os.pwrite(fd, mv[done:], offset + done)
        if durable:
            os.fdatasync(fd)

    def begin_write(
        self, offset: int, data: bytes | bytearray | memoryview, durable: bool = False
    ) -> PendingIO:
        """Write now (``pwrite``: the page cache); with ``durable`` start the
        ``fdatasync`` in the helper thread (see :meth:`begin_flush`)."""
        try:
            self.write(offset, data)
        except OSError as exc:
            return Done(exc)
        return self.begin_flush() if durable else Done()

    def flush(self) -> None:
        """Make written data durable (``fdatasync``: data and the metadata to read it)."""
        os.fdatasync(self.fileno())

    def begin_flush(self) -> PendingIO:
        """Start an ``fdatasync`` in the volume's helper thread; when that thread is busy
        with another caller's flush, flush here and return it done."""
        fd = self.fileno()
        with self._flusher_lock:
            if self._flusher is None:
                self._flusher = _Flusher(self.path.name)
            flusher = self._flusher
        if flusher.start(fd):
            return flusher
        try:
            os.fdatasync(fd)
        except OSError as exc:
            return Done(exc)
        return Done()

    def copy_from(self, source: Volume, offset: int, length: int) -> None:
        """Copy ``[offset, offset+length)`` of ``source`` here: ``copy_file_range`` (in
        the kernel, no copy through Python), else ``preadv``/``pwrite`` through one
        reused buffer. The bytes are in the page cache when it returns (:meth:`flush`)."""
        self.check_range(offset, length)
        sfd, tfd = source.fileno(), self.fileno()
        done = 0
        if self._use_cfr:
            try:
                while done < length:
                    n = os.copy_file_range(sfd, tfd, length - done, offset + done, offset + done)
                    if n == 0:
                        raise OSError(errno.EIO, f"{source.path}: unexpected end of the volume")
                    done += n
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                self._use_cfr = False  # not supported between these files: plain copy
        with self._copy_lock:
            if self._copy_buf is None:
                self._copy_buf = bytearray(COPY_BUFFER_SIZE)
            mv = memoryview(self._copy_buf)
            while done < length:
                want = min(length - done, len(mv))
                got = os.preadv(sfd, [mv[:want]], offset + done)
                if got == 0:
                    raise OSError(errno.EIO, f"{source.path}: unexpected end of the volume")
                w = 0
                while w < got:
                    w += os.pwrite(tfd, mv[w:got], offset + done + w)
                done += got

    def fsync(self) -> None:
        """Make data and all metadata durable (``fsync``)."""
        os.fsync(self.fileno())

    def start_writeback(self, offset: int, length: int) -> None:
        """Ask the kernel to start writing ``[offset, offset+length)`` out, without waiting
        (a hint that lets a later :meth:`flush` find less to do); see :func:`start_writeback`."""
        start_writeback(self.fileno(), offset, length)

    def read_ahead(self, offset: int, length: int) -> None:
        """Ask the kernel to read ``[offset, offset+length)`` into the page cache, without
        waiting (``POSIX_FADV_WILLNEED``): a hint, its failures are ignored (the read that
        follows reports real I/O errors)."""
        if length > 0:
            with contextlib.suppress(OSError):
                os.posix_fadvise(self.fileno(), offset, length, os.POSIX_FADV_WILLNEED)

    def is_hole(self, offset: int, length: int) -> bool:
        """True when ``[offset, offset+length)`` provably holds no data (see :func:`is_hole`)."""
        self.check_range(offset, length)
        return is_hole(self.fileno(), offset, length)

    def has_hole(self, offset: int, length: int) -> bool:
        """True when the kernel reports a hole in ``[offset, offset+length)`` (see
        :func:`has_hole`)."""
        self.check_range(offset, length)
        return has_hole(self.fileno(), offset, length)

    # -- life ---------------------------------------------------------------------------
    def close(self) -> None:
        with self._flusher_lock:
            flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.stop()
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def __enter__(self) -> Volume:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Volume({str(self.path)!r}, size={self.size})"


COPY_BUFFER_SIZE = 4 * 1024 * 1024  # the plain copy's buffer (no copy_file_range)


class _Flusher:
    """The helper thread that ``fdatasync``s one volume on demand (a
    :class:`~core.replication.target.PendingIO` while it runs), so that a target's flush
    runs while the source's flush runs in the writer's thread. Two bare locks hand the
    work over (the cheapest wake-up); one caller's flush at a time."""

    def __init__(self, name: str) -> None:
        self._go = threading.Lock()
        self._go.acquire()
        self._done = threading.Lock()
        self._done.acquire()
        self._use = threading.Lock()  # one caller's flush at a time
        self._fd = -1
        self._error: OSError | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name=f"sync-{name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        go, done = self._go, self._done
        while True:
            go.acquire()
            if self._stop:
                done.release()
                return
            try:
                os.fdatasync(self._fd)
                self._error = None
            except OSError as exc:
                self._error = exc
            done.release()

    def start(self, fd: int) -> bool:
        """Start flushing ``fd``; False when busy with another caller's flush."""
        if not self._use.acquire(blocking=False):
            return False
        self._fd = fd
        self._go.release()
        return True

    def wait(self) -> OSError | None:
        """Wait for the flush :meth:`start` began; its error, if any."""
        self._done.acquire()
        err = self._error
        self._use.release()
        return err

    def stop(self) -> None:
        with self._use:
            self._stop = True
            self._go.release()
            self._done.acquire()
        self._thread.join()


class ChunkLocks:
    """Shared/exclusive locks on ranges of chunks of a source volume.

    Two layers, always taken in this order:

    1. an in-process interval lock (a ``threading.Condition`` over the held ranges):
       threads of one process exclude each other; in-process holders are always
       exclusive, so the ranges this object holds in the kernel never overlap (which
       keeps the kernel unlock of one range from releasing another thread's range);
    2. a Linux *open file description* lock (``F_OFD_SETLKW``) on the chunk's byte range
       of the source volume file, through a file descriptor private to this object:
       other processes (and other ``ChunkLocks`` objects) are excluded. OFD locks are
       released by the kernel when the process dies (SIGKILL included), and closing some
       other descriptor of the same file does not drop them (unlike classic POSIX
       locks). Where OFD locks do not exist, classic ``lockf`` locks are used.

    Writers take a chunk range exclusively for their source write; a resync takes it
    shared for read-source/write-target/note-copied, so resyncs of two targets do not
    exclude each other across processes. The locks are advisory: they do not stop I/O,
    only other lockers.
    """

    def __init__(self, path: str | os.PathLike[str], chunk_size: int) -> None:
        self.path = Path(path)
        self.chunk_size = chunk_size
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            self._writable = True
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            self._writable = False
        self._cond = threading.Condition()
        self._held: list[tuple[int, int]] = []

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    @contextlib.contextmanager
    def exclusive(self, first: int, end: int) -> Iterator[None]:
        """Hold chunks ``[first, end)`` exclusively."""
        with self._hold(first, end, exclusive=True):
            yield

    @contextlib.contextmanager
    def shared(self, first: int, end: int) -> Iterator[None]:
        """Hold chunks ``[first, end)`` shared with other processes' shared holders."""
        with self._hold(first, end, exclusive=False):
            yield

    @contextlib.contextmanager
    def everything(self, exclusive: bool = False) -> Iterator[None]:
        """Hold every chunk (waits for every writer in flight)."""
        with self._hold(0, _INFINITY, exclusive=exclusive):
            yield

    @contextlib.contextmanager
    def _hold(self, first: int, end: int, exclusive: bool) -> Iterator[None]:
        if end <= first:
            yield
            return
        rng = (first, end)
        with self._cond:
            while any(s < end and first < e for s, e in self._held):
                self._cond.wait()
            self._held.append(rng)
        try:
            start = first * self.chunk_size
            length = 0 if end >= _INFINITY else (end - first) * self.chunk_size
            _ofd_lock(self._fd, start, length, exclusive and self._writable)
            try:
                yield
            finally:
                _ofd_unlock(self._fd, start, length)
        finally:
            with self._cond:
                self._held.remove(rng)
                self._cond.notify_all()


_INFINITY = 1 << 62


def _flock_struct(kind: int, start: int, length: int) -> bytes:
    # struct flock on LP64 Linux: short l_type, short l_whence, off_t l_start,
    # off_t l_len, pid_t l_pid (must be 0 for OFD locks), padding.
    return struct.pack("@hhqqi4x", kind, os.SEEK_SET, start, length, 0)


_HAVE_OFD = hasattr(fcntl, "F_OFD_SETLKW") and struct.calcsize("@q") == 8


def _ofd_lock(fd: int, start: int, length: int, exclusive: bool) -> None:
    kind = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
    if _HAVE_OFD:
        while True:
            try:
                fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, _flock_struct(kind, start, length))
                return
            except InterruptedError:
                continue
    fcntl.lockf(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, length, start)


def _ofd_unlock(fd: int, start: int, length: int) -> None:
    if _HAVE_OFD:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_UNLCK, start, length))
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, length, start)


def try_lock_file(fd: int, start: int, length: int, exclusive: bool = True) -> bool:
    """Non-blocking OFD lock of a byte range of ``fd``; False when someone holds it."""
    kind = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
    try:
        if _HAVE_OFD:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock_struct(kind, start, length))
        else:
            fcntl.lockf(
                fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB, length, start
            )
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def lock_file(fd: int, start: int, length: int, exclusive: bool = True) -> None:
    """Blocking OFD lock of a byte range of ``fd`` (``length`` 0 = to the end of time)."""
    _ofd_lock(fd, start, length, exclusive)


def unlock_file(fd: int, start: int, length: int) -> None:
    _ofd_unlock(fd, start, length)


def is_hole(fd: int, offset: int, length: int) -> bool:
    """True when the kernel says ``[offset, offset+length)`` of ``fd`` holds no data.

    Uses ``lseek(SEEK_DATA)``: if the next data at or after ``offset`` starts at or after
    the end of the range (or there is none, ``ENXIO``), the range is a hole and reads as
    zeros. Filesystems without hole support report everything as data, so the answer is
    never a false "hole" (only a missed one). The file offset of ``fd`` is moved, which is
    harmless here: all volume I/O is positional.
    """
    if length <= 0:
        return True
    seek_data = getattr(os, "SEEK_DATA", None)
    if seek_data is None:
        return False
    try:
        nxt = os.lseek(fd, offset, seek_data)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return True
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return False
        raise
    return nxt >= offset + length


def has_hole(fd: int, offset: int, length: int) -> bool:
    """True when the kernel reports a hole somewhere in ``[offset, offset+length)``.

    ``lseek(SEEK_HOLE)`` returns the next hole at or after ``offset`` (the end of the
    file counts as one). Without hole support the answer is always False.
    """
    if length <= 0:
        return False
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_hole is None:
        return False
    try:
        nxt = os.lseek(fd, offset, seek_hole)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.EINVAL, errno.EOPNOTSUPP):
            return False
        raise
    return nxt < offset + length


_SYNC_FILE_RANGE_WRITE = 2
_sfr: Callable[[int, int, int, int], int] | None = None
_sfr_loaded = False


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    global _sfr, _sfr_loaded
    if not _sfr_loaded:
        _sfr_loaded = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fn = libc.sync_file_range
            fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _sfr = fn
        except (OSError, AttributeError):
            _sfr = None
    return _sfr


def start_writeback(fd: int, offset: int, length: int) -> None:
    """``sync_file_range(SYNC_FILE_RANGE_WRITE)``: start writeback of a range, no wait.

    Only a hint: it makes no promise of durability (an ``fdatasync`` still must follow)
    and its failures are ignored (the ``fdatasync`` reports real I/O errors). Copying
    and writing back then overlap instead of the final flush doing all the work.
    """
    fn = _load_sync_file_range()
    if fn is not None and length > 0:
        fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
