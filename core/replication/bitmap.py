"""The persistent intent log of a mirror: one bit per chunk and per target.

A bit of target *T* set for chunk *c* ("D bit", dirty) means "the target may differ from
the source in chunk *c*". The rules (DOMAIN.md, "The mirror"):

* a D bit is set and made durable (``fdatasync``) **before** the write it covers reaches
  either side (:meth:`Bitmap.mark_write`);
* it is cleared only after the target has the chunk *and* the target file was flushed
  (:meth:`Bitmap.commit_clears`); clearing is lazy and batched: a stale set bit only
  costs an extra copy.

**Clearing safely while others write.** Next to every D bit there is a "C bit" (copied,
clear pending). Whoever brings chunk *c* to target *T* (the resync after copying it, the
mirror when it writes *c* to an in-sync *T*) sets C; every write that does *not* reach
*T* sets D and **cancels** C. A later commit, done after the target was flushed, clears
D only where C is still set and the committer itself copied the chunk before the flush.
So a write that lands between the copy and the commit is never forgotten, even when it
comes from another process. C bits need no durability (after a crash only the
committer's own list of copied chunks counts), so they live outside the checksummed
slots, in a plain region updated in place.

**File format** (all integers little-endian)::

    slot 0 | slot 1 | C region

    slot   = header (64 bytes) | target table (capacity x 64 bytes) | D bits
             (capacity x bytes_per_target), padded to a multiple of 4096 bytes
    header = magic "LKDRBMP1" (8s), version (H), header size (H), chunk size (I),
             volume size (Q), chunk count (Q), generation (Q), slot size (Q),
             capacity (H), flags (H), 2 x reserved (I), CRC-32 (I)
    entry  = target name, UTF-8, NUL padded (60 bytes) | reserved (4 bytes)
    C region = capacity x bytes_per_target, padded to 4096

The CRC-32 covers the whole slot (with the CRC field taken as zero). Updates are written
to the slot that does *not* hold the current generation, with generation + 1; a torn
update fails its CRC and the reader falls back to the other slot, which still holds the
previous state (at most one slot is ever being written). Marks are synced (``fdatasync``)
before :meth:`Bitmap.mark_write` returns; clears may be lazy (not synced), but an
update never overwrites the last durable slot while the current one may not be on disk
(it syncs first), so a crash finds either the new state or the last durable one. Only
the 4 KiB pages of a slot that differ from what is known to be on disk are rewritten.
Changing the table's capacity rewrites the whole file through a temporary file and an
atomic rename (other processes notice the new inode under the lock and reopen).

A file that cannot be verified (too short or too long, wrong magic, unknown version,
inconsistent layout, both slots failing their CRC, chunk size or volume size other than
expected) raises :class:`BitmapInvalid` with the reason on open; the mirror then rebuilds
it with every chunk dirty (a full resync) and reports why. It never trusts it.

**Concurrency.** Several processes may use one bitmap file (a writer and a resync). Every
read-modify-write happens under an OFD ``fcntl`` lock on the whole file (plus a
``threading.RLock`` for the threads of one process) and first re-reads both slot headers;
when another process changed the file, the current slot is reloaded.

**Location.** A bitmap file on btrfs is refused with ``OSError(EINVAL, "invalid argument:
...")``, as DataKeeper does (btrfs cannot provide the block map an external bitmap needs).

:class:`MemoryBitmap` has the same interface with no file (the "None" bitmap: no intent
log; the mirror remembers "needs a full resync" elsewhere, see ``mirror.py``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from core import fsinfo
from core.errors import LkError
from core.replication.volume import lock_file, unlock_file

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_CHUNK_SIZE",
    "MAGIC",
    "VERSION",
    "Bitmap",
    "BitmapError",
    "BitmapInvalid",
    "IntentLog",
    "MemoryBitmap",
    "check_bitmap_location",
    "chunk_count",
]

MAGIC = b"LKDRBMP1"
VERSION = 1
DEFAULT_CHUNK_SIZE = 64 * 1024
DEFAULT_CAPACITY = 8
MAX_CAPACITY = 1024
NAME_BYTES = 60
ENTRY_BYTES = 64
PAGE = 4096

_HEADER = struct.Struct("<8sHHIQQQQHHIII")
HEADER_SIZE = _HEADER.size  # 64
_CRC_OFFSET = HEADER_SIZE - 4
_NONZERO = re.compile(rb"[^\x00]")


class BitmapError(LkError):
    """A bitmap operation failed (unknown target, full table, bad arguments)."""


class BitmapInvalid(BitmapError):
    """The bitmap file cannot be verified; it must not be trusted."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"bitmap file {path} is invalid: {reason}")


# -- helpers ---------------------------------------------------------------------------


def chunk_count(volume_size: int, chunk_size: int) -> int:
    return (volume_size + chunk_size - 1) // chunk_size


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def _bytes_per_target(nchunks: int) -> int:
    return _round_up((nchunks + 7) // 8, 8)


def _layout(nchunks: int, capacity: int) -> tuple[int, int, int]:
    """(bytes per target, slot size, C region size)."""
    bpt = _bytes_per_target(nchunks)
    slot = _round_up(HEADER_SIZE + capacity * ENTRY_BYTES + capacity * bpt, PAGE)
    cregion = _round_up(capacity * bpt, PAGE)
    return bpt, slot, cregion


def _set_range(buf: bytearray, base: int, a: int, b: int, value: bool) -> bool:
    """Set bits ``[a, b)`` of the bit array starting at byte ``base``; True if changed."""
    changed = False
    c = a
    while c < b and (c & 7):
        changed |= _set_bit(buf, base, c, value)
        c += 1
    nbytes = (b - c) // 8
    if nbytes > 0:
        i = base + c // 8
        fill = (b"\xff" if value else b"\x00") * nbytes
        if buf[i : i + nbytes] != fill:
            buf[i : i + nbytes] = fill
            changed = True
        c += nbytes * 8
    while c < b:
        changed |= _set_bit(buf, base, c, value)
        c += 1
    return changed


def _set_bit(buf: bytearray, base: int, c: int, value: bool) -> bool:
    i = base + (c >> 3)
    mask = 1 << (c & 7)
    old = buf[i]
    new = (old | mask) if value else (old & ~mask)
    if new != old:
        buf[i] = new
        return True
    return False


def _get_bit(buf: bytes | bytearray, base: int, c: int) -> bool:
    return bool(buf[base + (c >> 3)] >> (c & 7) & 1)


def _all_set(buf: bytes | bytearray, base: int, first: int, end: int) -> bool:
    return all(buf[base + (c >> 3)] >> (c & 7) & 1 for c in range(first, end))


def _iter_set(seg: bytes | bytearray | memoryview, limit: int) -> Iterator[int]:
    for m in _NONZERO.finditer(seg):
        byte_index = m.start()
        v = seg[byte_index]
        c0 = byte_index * 8
        while v:
            low = v & -v
            c = c0 + low.bit_length() - 1
            if c < limit:
                yield c
            v ^= low


def check_bitmap_location(path: str | os.PathLike[str]) -> None:
    """Refuse a bitmap file on btrfs with ``OSError(EINVAL, "invalid argument: ...")``."""
    info = fsinfo.filesystem_of(path)
    if info.is_btrfs:
        raise OSError(
            errno.EINVAL,
            f"invalid argument: bitmap file {os.fspath(path)} is on btrfs "
            f"({info.path_checked} is on btrfs mounted at {info.mount_point}); "
            "btrfs cannot provide the block map an external bitmap needs: choose a bitmap "
            "location on another filesystem (e.g. ext4 or xfs), or None (no intent log: "
            "every resync is a full resync)",
        )


# -- the interface both implementations share ------------------------------------------


class IntentLog(Protocol):
    """What the mirror and the resync need from a bitmap (file or memory)."""

    @property
    def chunk_size(self) -> int: ...
    @property
    def volume_size(self) -> int: ...
    @property
    def nchunks(self) -> int: ...
    @property
    def persistent(self) -> bool: ...

    def targets(self) -> list[str]: ...
    def has_target(self, name: str) -> bool: ...
    def add_target(self, name: str, *, dirty: bool = True) -> None: ...
    def remove_target(self, name: str) -> None: ...
    def mark_write(
        self,
        first: int,
        end: int,
        *,
        replicated: Sequence[str] = (),
        unreplicated: Sequence[str] = (),
        hot: tuple[int, int] | None = None,
    ) -> bool: ...
    def mark_runs(self, name: str, runs: Sequence[tuple[int, int]]) -> bool: ...
    def note_copied(self, name: str, first: int, end: int) -> None: ...
    def note_copied_runs(self, name: str, runs: Sequence[tuple[int, int]]) -> None: ...
    def commit_clears(self, name: str, chunks: Iterable[int], *, durable: bool = False) -> int: ...
    def set_all(self, name: str) -> None: ...
    def dirty_chunks(self, name: str) -> list[int]: ...
    def dirty_count(self, name: str) -> int: ...
    def is_dirty(self, name: str, chunk: int) -> bool: ...
    def close(self) -> None: ...


class _Arrays:
    """D bits and C bits of every target, in memory (the common logic)."""

    def __init__(self, nchunks: int, capacity: int) -> None:
        self.nchunks = nchunks
        self.capacity = capacity
        self.bpt = _bytes_per_target(nchunks)
        self.names: list[str] = [""] * capacity
        self.d = bytearray(capacity * self.bpt)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise BitmapError(f"no target named {name!r} in the bitmap") from None

    def seg(self, buf: bytearray, idx: int) -> memoryview:
        return memoryview(buf)[idx * self.bpt : (idx + 1) * self.bpt]


def _check_range(nchunks: int, first: int, end: int) -> None:
    if first < 0 or end > nchunks or first > end:
        raise BitmapError(f"chunk range [{first}, {end}) outside [0, {nchunks})")


def _check_name(name: str) -> None:
    raw = name.encode("utf-8")
    if not name or len(raw) > NAME_BYTES or "\x00" in name:
        raise BitmapError(f"target name {name!r} must be 1-{NAME_BYTES} bytes of UTF-8 without NUL")


# -- the in-memory bitmap (bitmap "None") ----------------------------------------------


class MemoryBitmap:
    """The same bits without a file: nothing survives the process (no intent log).

    Used when the bitmap file is None: it still lets an in-process resync and the
    writers of the same process coordinate (which chunks were written since they were
    copied), but after a crash every resync must be a full one.
    """

    persistent = False

    def __init__(
        self,
        *,
        volume_size: int,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        targets: Sequence[str] = (),
        dirty: bool = True,
    ) -> None:
        if chunk_size <= 0 or volume_size <= 0:
            raise BitmapError("chunk size and volume size must be > 0")
        self._chunk_size = chunk_size
        self._volume_size = volume_size
        n = chunk_count(volume_size, chunk_size)
        self._a = _Arrays(n, max(DEFAULT_CAPACITY, len(targets)))
        self._c = bytearray(self._a.capacity * self._a.bpt)
        self._lock = threading.RLock()
        for t in targets:
            self.add_target(t, dirty=dirty)

    @property
    def chunk_size(self) -> int:
        return self._chunk_size

    @property
    def volume_size(self) -> int:
        return self._volume_size

    @property
    def nchunks(self) -> int:
        return self._a.nchunks

    def targets(self) -> list[str]:
        with self._lock:
            return [n for n in self._a.names if n]

    def has_target(self, name: str) -> bool:
        with self._lock:
            return name in self._a.names

    def add_target(self, name: str, *, dirty: bool = True) -> None:
        _check_name(name)
        with self._lock:
            if name in self._a.names:
                return
            if "" not in self._a.names:
                self._grow()
            idx = self._a.names.index("")
            self._a.names[idx] = name
            _set_range(self._a.d, idx * self._a.bpt, 0, self._a.nchunks, dirty)
            _set_range(self._c, idx * self._a.bpt, 0, self._a.nchunks, False)

    def _grow(self) -> None:
        old = self._a
        new = _Arrays(old.nchunks, old.capacity * 2)
        new.names[: old.capacity] = old.names
        new.d[: len(old.d)] = old.d
        c = bytearray(new.capacity * new.bpt)
        c[: len(self._c)] = self._c
        self._a, self._c = new, c

    def remove_target(self, name: str) -> None:
        with self._lock:
            if name in self._a.names:
                idx = self._a.index(name)
                self._a.names[idx] = ""
                _set_range(self._a.d, idx * self._a.bpt, 0, self._a.nchunks, False)
                _set_range(self._c, idx * self._a.bpt, 0, self._a.nchunks, False)

    def mark_write(
        self,
        first: int,
        end: int,
        *,
        replicated: Sequence[str] = (),
        unreplicated: Sequence[str] = (),
        hot: tuple[int, int] | None = None,
    ) -> bool:
        _check_range(self._a.nchunks, first, end)
        with self._lock:
            rep = [self._a.index(n) * self._a.bpt for n in replicated]
            unrep = [self._a.index(n) * self._a.bpt for n in unreplicated]
            lo, hi = first, end
            if hot is not None:
                lo, hi = max(0, min(first, hot[0])), min(self._a.nchunks, max(end, hot[1]))
            changed = not all(_all_set(self._a.d, b, lo, hi) for b in rep) or not all(
                _all_set(self._a.d, b, first, end) for b in unrep
            )
            if changed:
                for base in rep:  # C set only where this call marks (see Bitmap)
                    for c in range(lo, hi):
                        if _set_bit(self._a.d, base, c, True):
                            _set_bit(self._c, base, c, True)
            for base in unrep:
                _set_range(self._a.d, base, first, end, True)
                _set_range(self._c, base, first, end, False)
            return False

    def mark_runs(self, name: str, runs: Sequence[tuple[int, int]]) -> bool:
        for first, end in runs:
            _check_range(self._a.nchunks, first, end)
        with self._lock:
            base = self._a.index(name) * self._a.bpt
            for first, end in runs:
                _set_range(self._a.d, base, first, end, True)
                _set_range(self._c, base, first, end, False)
            return False

    def note_copied(self, name: str, first: int, end: int) -> None:
        self.note_copied_runs(name, [(first, end)])

    def note_copied_runs(self, name: str, runs: Sequence[tuple[int, int]]) -> None:
        for first, end in runs:
            _check_range(self._a.nchunks, first, end)
        with self._lock:
            base = self._a.index(name) * self._a.bpt
            for first, end in runs:
                _set_range(self._c, base, first, end, True)

    def commit_clears(self, name: str, chunks: Iterable[int], *, durable: bool = False) -> int:
        with self._lock:
            base = self._a.index(name) * self._a.bpt
            n = 0
            for c in chunks:
                if _get_bit(self._c, base, c):
                    _set_bit(self._c, base, c, False)
                    n += _set_bit(self._a.d, base, c, False)
            return n

    def set_all(self, name: str) -> None:
        with self._lock:
            base = self._a.index(name) * self._a.bpt
            _set_range(self._a.d, base, 0, self._a.nchunks, True)
            _set_range(self._c, base, 0, self._a.nchunks, False)

    def dirty_chunks(self, name: str) -> list[int]:
        with self._lock:
            idx = self._a.index(name)
            return list(_iter_set(bytes(self._a.seg(self._a.d, idx)), self._a.nchunks))

    def dirty_count(self, name: str) -> int:
        with self._lock:
            idx = self._a.index(name)
            return int.from_bytes(self._a.seg(self._a.d, idx), "little").bit_count()

    def is_dirty(self, name: str, chunk: int) -> bool:
        with self._lock:
            return _get_bit(self._a.d, self._a.index(name) * self._a.bpt, chunk)

    def close(self) -> None:
        """Nothing to release."""


# -- the file ---------------------------------------------------------------------------


class _Slot:
    __slots__ = (
        "capacity",
        "chunk_size",
        "crc",
        "generation",
        "nchunks",
        "slot_size",
        "volume_size",
    )

    def __init__(
        self,
        chunk_size: int,
        volume_size: int,
        nchunks: int,
        generation: int,
        slot_size: int,
        capacity: int,
        crc: int,
    ) -> None:
        self.chunk_size = chunk_size
        self.volume_size = volume_size
        self.nchunks = nchunks
        self.generation = generation
        self.slot_size = slot_size
        self.capacity = capacity
        self.crc = crc


def _parse_header(raw: bytes) -> tuple[_Slot | None, str]:
    """Check a slot header on its own; (slot, "") or (None, reason)."""
    if len(raw) < HEADER_SIZE:
        return None, f"truncated (only {len(raw)} bytes of header)"
    (magic, version, hsize, chunk, vsize, nchunks, gen, slot_size, cap, _flags, _r1, _r2, crc) = (
        _HEADER.unpack_from(raw)
    )
    if magic != MAGIC:
        return None, f"wrong magic {magic!r} (expected {MAGIC!r})"
    if version != VERSION:
        return None, f"unsupported version {version} (this program reads version {VERSION})"
    if hsize != HEADER_SIZE or chunk <= 0 or vsize <= 0 or not 1 <= cap <= MAX_CAPACITY:
        return None, "inconsistent header (header size, chunk size, volume size or capacity)"
    if nchunks != chunk_count(vsize, chunk):
        return None, f"inconsistent header (chunk count {nchunks} for {vsize}/{chunk})"
    if slot_size != _layout(nchunks, cap)[1]:
        return None, f"inconsistent header (slot size {slot_size})"
    return _Slot(chunk, vsize, nchunks, gen, slot_size, cap, crc), ""


def _slot_crc(img: bytes | bytearray | memoryview) -> int:
    mv = memoryview(img)
    crc = zlib.crc32(mv[:_CRC_OFFSET])
    crc = zlib.crc32(b"\x00\x00\x00\x00", crc)
    return zlib.crc32(mv[HEADER_SIZE:], crc) & 0xFFFFFFFF


def _build_slot(
    chunk_size: int, volume_size: int, generation: int, arrays: _Arrays, slot_size: int
) -> bytearray:
    img = bytearray(slot_size)
    _HEADER.pack_into(
        img,
        0,
        MAGIC,
        VERSION,
        HEADER_SIZE,
        chunk_size,
        volume_size,
        arrays.nchunks,
        generation,
        slot_size,
        arrays.capacity,
        0,
        0,
        0,
        0,
    )
    off = HEADER_SIZE
    for name in arrays.names:
        raw = name.encode("utf-8")
        img[off : off + len(raw)] = raw
        off += ENTRY_BYTES
    img[off : off + len(arrays.d)] = arrays.d
    struct.pack_into("<I", img, _CRC_OFFSET, _slot_crc(img))
    return img


class Bitmap:
    """A bitmap file (see the module docstring for the format and the rules)."""

    persistent = True

    def __init__(self, path: Path, fd: int) -> None:
        """Use :meth:`create` or :meth:`open`."""
        self.path = path
        self._fd = fd
        self._tlock = threading.RLock()
        self._locked_depth = 0
        self._chunk_size = 0
        self._volume_size = 0
        self._arrays = _Arrays(1, 1)
        self._slot_size = 0
        self._c_offset = 0
        self._generation = 0
        self._current = 0  # index of the slot holding the current generation
        self._headers: list[bytes] = [b"", b""]  # raw headers as last seen on disk
        self._images: list[bytes | bytearray | None] = [None, None]  # known slot content
        self.fsyncs = 0  # durable slot writes done by this object (for tests/benchmarks)
        self._synced = False  # the current slot is known to be on disk

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        volume_size: int,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        targets: Sequence[str] = (),
        dirty: bool = True,
        capacity: int | None = None,
        overwrite: bool = False,
    ) -> Bitmap:
        """Create a bitmap file; every chunk of every target dirty unless ``dirty=False``.

        Refuses a location on btrfs (``OSError(EINVAL)``) and an existing file unless
        ``overwrite``. The file appears atomically (temporary file, fsync, rename).
        """
        p = Path(os.path.abspath(os.fspath(path)))
        check_bitmap_location(p)
        if volume_size <= 0 or chunk_size <= 0:
            raise BitmapError(
                f"volume size ({volume_size}) and chunk size ({chunk_size}) must be > 0"
            )
        for t in targets:
            _check_name(t)
        if len(set(targets)) != len(targets):
            raise BitmapError(f"duplicate target names in {list(targets)}")
        if not overwrite and p.exists():
            raise BitmapError(f"bitmap file {p} already exists")
        cap = capacity or max(DEFAULT_CAPACITY, len(targets))
        if not len(targets) <= cap <= MAX_CAPACITY:
            raise BitmapError(
                f"capacity {cap} must hold {len(targets)} targets, max {MAX_CAPACITY}"
            )
        arrays = _Arrays(chunk_count(volume_size, chunk_size), cap)
        for i, t in enumerate(targets):
            arrays.names[i] = t
            _set_range(arrays.d, i * arrays.bpt, 0, arrays.nchunks, dirty)
        _write_new_file(p, chunk_size, volume_size, arrays, generation=1)
        return cls.open(p, volume_size=volume_size, chunk_size=chunk_size)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        volume_size: int | None = None,
        chunk_size: int | None = None,
    ) -> Bitmap:
        """Open and verify a bitmap file; :class:`BitmapInvalid` when it cannot be trusted.

        ``volume_size``/``chunk_size``, when given, must match the file's.
        """
        p = Path(os.path.abspath(os.fspath(path)))
        check_bitmap_location(p)
        try:
            fd = os.open(p, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise BitmapError(f"bitmap file {p} does not exist") from exc
        bm = cls(p, fd)
        try:
            with bm._locked():
                pass  # loads and verifies
            if chunk_size is not None and bm._chunk_size != chunk_size:
                raise BitmapInvalid(
                    p, f"chunk size in the file is {bm._chunk_size} bytes, expected {chunk_size}"
                )
            if volume_size is not None and bm._volume_size != volume_size:
                raise BitmapInvalid(
                    p,
                    f"volume size in the file is {bm._volume_size} bytes, expected {volume_size}",
                )
        except BaseException:
            bm.close()
            raise
        return bm

    # -- properties --------------------------------------------------------------------
    @property
    def chunk_size(self) -> int:
        return self._chunk_size

    @property
    def volume_size(self) -> int:
        return self._volume_size

    @property
    def nchunks(self) -> int:
        return self._arrays.nchunks

    @property
    def capacity(self) -> int:
        return self._arrays.capacity

    @property
    def generation(self) -> int:
        with self._locked():
            return self._generation

    # -- locking and (re)loading ----------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._tlock:
            if self._locked_depth:
                self._locked_depth += 1
                try:
                    yield
                finally:
                    self._locked_depth -= 1
                return
            if self._fd < 0:
                raise BitmapError(f"bitmap file {self.path} is closed")
            while True:
                lock_file(self._fd, 0, 0, exclusive=True)
                if self._same_inode():
                    break
                unlock_file(self._fd, 0, 0)
                self._reopen()
            self._locked_depth = 1
            try:
                self._refresh()
                yield
            finally:
                self._locked_depth = 0
                unlock_file(self._fd, 0, 0)

    def _same_inode(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True  # removed (unextend): keep using what is open
        mine = os.fstat(self._fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def _reopen(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        os.close(self._fd)
        self._fd = fd
        self._headers = [b"", b""]
        self._images = [None, None]

    def _refresh(self) -> None:
        """Re-read both headers; reload the current slot if someone else changed it."""
        if self._slot_size:
            h0 = os.pread(self._fd, HEADER_SIZE, 0)
            h1 = os.pread(self._fd, HEADER_SIZE, self._slot_size)
            if h0 == self._headers[0] and h1 == self._headers[1]:
                return
        self._load()

    def _load(self) -> None:
        fd = self._fd
        layout_from = self._layout_of(os.fstat(fd).st_size)
        slot_size = layout_from.slot_size
        candidates = self._valid_slots(layout_from)
        gen, idx, img = max(candidates)
        arrays = self._decode_arrays(layout_from, idx, img)
        self._chunk_size = layout_from.chunk_size
        self._volume_size = layout_from.volume_size
        self._arrays = arrays
        self._slot_size = slot_size
        self._c_offset = 2 * slot_size
        self._generation = gen
        self._current = idx
        self._synced = False  # written by someone else: maybe not on disk yet
        self._images = [None, None]
        self._images[idx] = img
        for other_gen, other_idx, other_img in candidates:
            if other_idx != idx and other_gen < gen:
                self._images[other_idx] = other_img
        self._headers = [os.pread(fd, HEADER_SIZE, 0), os.pread(fd, HEADER_SIZE, slot_size)]

    def _layout_of(self, size: int) -> _Slot:
        """The layout slot 0's header names (else slot 1's), checked against ``size``."""
        h0 = os.pread(self._fd, HEADER_SIZE, 0)
        first, why0 = _parse_header(h0)
        layout_from = first
        if layout_from is None:
            layout_from = self._guess_layout(size)
        if layout_from is None:
            if size < HEADER_SIZE:
                raise BitmapInvalid(self.path, f"truncated: the file has only {size} bytes")
            raise BitmapInvalid(self.path, f"slot 0: {why0}; no usable header")
        slot_size = layout_from.slot_size
        cregion = _layout(layout_from.nchunks, layout_from.capacity)[2]
        expected = 2 * slot_size + cregion
        if size != expected:
            what = "truncated" if size < expected else "too long"
            raise BitmapInvalid(
                self.path, f"{what}: the file has {size} bytes, its layout needs {expected}"
            )
        return layout_from

    def _valid_slots(self, layout_from: _Slot) -> list[tuple[int, int, bytes]]:
        """(generation, slot, image) of each slot with that layout and a good checksum."""
        slot_size = layout_from.slot_size
        candidates: list[tuple[int, int, bytes]] = []
        reasons: list[str] = []
        for idx in (0, 1):
            img = os.pread(self._fd, slot_size, idx * slot_size)
            hdr, why = _parse_header(img)
            if hdr is None:
                reasons.append(f"slot {idx}: {why}")
                continue
            if (hdr.slot_size, hdr.chunk_size, hdr.volume_size, hdr.capacity) != (
                layout_from.slot_size,
                layout_from.chunk_size,
                layout_from.volume_size,
                layout_from.capacity,
            ):
                reasons.append(f"slot {idx}: layout differs from the other slot")
                continue
            if _slot_crc(img) != hdr.crc:
                reasons.append(f"slot {idx}: bad checksum")
                continue
            candidates.append((hdr.generation, idx, img))
        if not candidates:
            raise BitmapInvalid(self.path, "; ".join(reasons))
        return candidates

    def _decode_arrays(self, layout_from: _Slot, idx: int, img: bytes) -> _Arrays:
        """The target names and the dirty bits of slot ``idx``'s image."""
        arrays = _Arrays(layout_from.nchunks, layout_from.capacity)
        off = HEADER_SIZE
        for i in range(arrays.capacity):
            raw = img[off : off + NAME_BYTES].rstrip(b"\x00")
            try:
                arrays.names[i] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BitmapInvalid(
                    self.path, f"slot {idx}: target name {i} is not UTF-8"
                ) from None
            off += ENTRY_BYTES
        arrays.d[:] = img[off : off + len(arrays.d)]
        return arrays

    def _guess_layout(self, size: int) -> _Slot | None:
        """Slot 0's header is unreadable: find the layout from slot 1's header.

        Slot 1 starts at ``slot_size``, a multiple of the page size, and its header
        names that size: probe every page boundary up to half the file.
        """
        off = PAGE
        while off <= size // 2:
            hdr, _why = _parse_header(os.pread(self._fd, HEADER_SIZE, off))
            if hdr is not None and hdr.slot_size == off:
                return hdr
            off += PAGE
        return None

    def _write_current(self, durable: bool = True) -> None:
        """Write the in-memory state as generation + 1 into the other slot.

        ``durable``: ``fdatasync`` before returning. A lazy (not durable) update is
        allowed for clears only, and never overwrites the last durable slot: when the
        current slot may not be on disk yet, it is synced before the other slot (the
        last durable state) is overwritten.
        """
        if not self._synced:
            os.fdatasync(self._fd)
            self._synced = True
        target = 1 - self._current
        gen = self._generation + 1
        img = _build_slot(self._chunk_size, self._volume_size, gen, self._arrays, self._slot_size)
        base = target * self._slot_size
        known = self._images[target]
        if known is None or len(known) != len(img):
            os.pwrite(self._fd, img, base)
        else:
            mv_new = memoryview(img)
            mv_old = memoryview(known)
            page = 0
            n = len(img)
            while page < n:
                if mv_new[page : page + PAGE] != mv_old[page : page + PAGE]:
                    run_end = page + PAGE
                    while (
                        run_end < n
                        and mv_new[run_end : run_end + PAGE] != mv_old[run_end : run_end + PAGE]
                    ):
                        run_end += PAGE
                    os.pwrite(self._fd, mv_new[page:run_end], base + page)
                    page = run_end
                else:
                    page += PAGE
        if durable:
            os.fdatasync(self._fd)
            self.fsyncs += 1
        self._synced = durable
        self._images[target] = img
        self._headers[target] = bytes(img[:HEADER_SIZE])
        self._current = target
        self._generation = gen

    # -- C region -------------------------------------------------------------------------
    def _c_read(self, idx: int, first: int, end: int) -> tuple[int, bytearray]:
        """The C bytes covering chunks [first, end) of target ``idx``: (bit base, bytes)."""
        b0 = first >> 3
        b1 = (end + 7) >> 3
        raw = bytearray(os.pread(self._fd, b1 - b0, self._c_offset + idx * self._arrays.bpt + b0))
        return b0 * 8, raw

    def _c_write(self, idx: int, bit_base: int, raw: bytearray) -> None:
        os.pwrite(self._fd, raw, self._c_offset + idx * self._arrays.bpt + bit_base // 8)

    def _c_set(self, idx: int, runs: Sequence[tuple[int, int]], value: bool) -> None:
        """Set the C bits of the chunk runs ``[first, end)`` of target ``idx`` to ``value``:
        one read and at most one write of the bytes spanning them all."""
        runs = [(f, e) for f, e in runs if f < e]
        if not runs:
            return
        bit_base, raw = self._c_read(idx, min(f for f, _e in runs), max(e for _f, e in runs))
        changed = False
        for first, end in runs:
            changed |= _set_range(raw, 0, first - bit_base, end - bit_base, value)
        if changed:
            self._c_write(idx, bit_base, raw)

    # -- targets --------------------------------------------------------------------------
    def targets(self) -> list[str]:
        with self._locked():
            return [n for n in self._arrays.names if n]

    def has_target(self, name: str) -> bool:
        with self._locked():
            return name in self._arrays.names

    def add_target(self, name: str, *, dirty: bool = True) -> None:
        """Add a target (every chunk dirty: a new target needs a full resync)."""
        _check_name(name)
        with self._locked():
            a = self._arrays
            if name in a.names:
                return
            if "" not in a.names:
                self._relayout(min(MAX_CAPACITY, a.capacity * 2))
                a = self._arrays
                if "" not in a.names:
                    raise BitmapError(f"bitmap {self.path} is full ({a.capacity} targets)")
            idx = a.names.index("")
            self._c_set(idx, [(0, a.nchunks)], False)
            a.names[idx] = name
            _set_range(a.d, idx * a.bpt, 0, a.nchunks, dirty)
            self._write_current()

    def remove_target(self, name: str) -> None:
        with self._locked():
            a = self._arrays
            if name not in a.names:
                return
            idx = a.index(name)
            a.names[idx] = ""
            _set_range(a.d, idx * a.bpt, 0, a.nchunks, False)
            self._write_current()

    def _relayout(self, capacity: int) -> None:
        old = self._arrays
        new = _Arrays(old.nchunks, capacity)
        new.names[: old.capacity] = old.names
        for i in range(old.capacity):
            new.d[i * new.bpt : (i + 1) * new.bpt] = old.d[i * old.bpt : (i + 1) * old.bpt]
        _write_new_file(self.path, self._chunk_size, self._volume_size, new, self._generation + 1)
        # We hold the lock on the old inode; switch to the new one (others will notice).
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        lock_file(fd, 0, 0, exclusive=True)
        unlock_file(self._fd, 0, 0)
        os.close(self._fd)
        self._fd = fd
        self._slot_size = 0
        self._load()

    def resize(self, volume_size: int) -> None:
        """Cover a volume of ``volume_size`` bytes (a mirror resize).

        Growing: the chunks of the new space, and the old last chunk when the old size
        ended inside it, are dirty for every target (the new space is resynced like any
        dirty region). Shrinking (only to undo a grow that did not commit): the bits of
        the chunks that remain are kept. The file is rewritten through a temporary file
        and an atomic rename, as a change of capacity is: a crash leaves the old bitmap
        or the new one, never a mix; other processes notice the new inode and reopen.
        """
        if volume_size <= 0:
            raise BitmapError(f"a bitmap needs a volume size > 0 (got {volume_size})")
        with self._locked():
            if volume_size == self._volume_size:
                return
            old = self._arrays
            nchunks = chunk_count(volume_size, self._chunk_size)
            new = _Arrays(nchunks, old.capacity)
            new.names[:] = old.names
            keep = min(old.nchunks, nchunks)
            first_new = self._volume_size // self._chunk_size  # a partial last chunk grows
            for i, name in enumerate(old.names):
                if not name:
                    continue
                for c in _iter_set(bytes(old.seg(old.d, i)), keep):
                    _set_bit(new.d, i * new.bpt, c, True)
                if nchunks > first_new:
                    _set_range(new.d, i * new.bpt, first_new, nchunks, True)
            _write_new_file(self.path, self._chunk_size, volume_size, new, self._generation + 1)
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            lock_file(fd, 0, 0, exclusive=True)
            unlock_file(self._fd, 0, 0)
            os.close(self._fd)
            self._fd = fd
            self._slot_size = 0
            self._load()

    # -- bits ----------------------------------------------------------------------------
    def mark_write(
        self,
        first: int,
        end: int,
        *,
        replicated: Sequence[str] = (),
        unreplicated: Sequence[str] = (),
        hot: tuple[int, int] | None = None,
    ) -> bool:
        """Record a write of chunks ``[first, end)`` before it starts; durable on return.

        ``replicated`` targets will get the write too: the chunks this call marks for
        them (D from 0 to 1) get their C bit set, so once the write completed and the
        target was flushed the mark may be committed clear; a chunk someone else had
        already marked keeps its C bit as it was (that earlier write may not be on the
        target). ``unreplicated`` targets will not get the write: their C bits are
        cancelled. ``hot``, a chunk range around the write (the mirror's hot extent), is
        marked as well for replicated targets (every chunk of it is marked on return):
        later writes there then cost no bitmap I/O (DRBD's activity-log extents).
        Returns True when the file was updated durably.
        """
        _check_range(self.nchunks, first, end)
        with self._locked():
            a = self._arrays
            rep = [a.index(n) for n in replicated]
            unrep = [a.index(n) for n in unreplicated]
            lo, hi = first, end
            if hot is not None:
                lo, hi = max(0, min(first, hot[0])), min(a.nchunks, max(end, hot[1]))
            changed = not all(_all_set(a.d, i * a.bpt, lo, hi) for i in rep) or not all(
                _all_set(a.d, i * a.bpt, first, end) for i in unrep
            )
            if changed:
                fresh: dict[int, list[int]] = {}
                for idx in rep:
                    fresh[idx] = [c for c in range(lo, hi) if _set_bit(a.d, idx * a.bpt, c, True)]
                for idx in unrep:
                    _set_range(a.d, idx * a.bpt, first, end, True)
                self._write_current()
                for idx, chunks in fresh.items():
                    if chunks:
                        bit_base, raw = self._c_read(idx, chunks[0], chunks[-1] + 1)
                        for c in chunks:
                            _set_bit(raw, 0, c - bit_base, True)
                        self._c_write(idx, bit_base, raw)
            for idx in unrep:
                self._c_set(idx, [(first, end)], False)
            return changed

    def mark_runs(self, name: str, runs: Sequence[tuple[int, int]]) -> bool:
        """Mark the chunk runs ``[first, end)`` dirty for ``name``, a target that
        does not have what they hold (``mark_write``'s ``unreplicated``), with one durable
        update for them all; returns True when the file was updated."""
        for first, end in runs:
            _check_range(self.nchunks, first, end)
        runs = [(f, e) for f, e in runs if f < e]
        if not runs:
            return False
        with self._locked():
            a = self._arrays
            idx = a.index(name)
            base = idx * a.bpt
            changed = not all(_all_set(a.d, base, f, e) for f, e in runs)
            if changed:
                for first, end in runs:
                    _set_range(a.d, base, first, end, True)
                self._write_current()
            self._c_set(idx, runs, False)
            return changed

    def note_copied(self, name: str, first: int, end: int) -> None:
        """The target now has chunks ``[first, end)`` (not yet flushed): set their C bits."""
        self.note_copied_runs(name, [(first, end)])

    def note_copied_runs(self, name: str, runs: Sequence[tuple[int, int]]) -> None:
        """:meth:`note_copied` for several runs (sorted), in one update."""
        if not runs:
            return
        for first, end in runs:
            _check_range(self.nchunks, first, end)
        with self._locked():
            self._c_set(self._arrays.index(name), runs, True)

    def commit_clears(self, name: str, chunks: Iterable[int], *, durable: bool = False) -> int:
        """Clear the D bits of ``chunks`` whose C bit survived; returns how many.

        Call only after the target was flushed, with chunks the caller itself brought
        to the target before that flush. Lazy by default (no ``fdatasync``): a clear
        lost in a crash only costs an extra copy.
        """
        wanted = sorted(set(chunks))
        if not wanted:
            return 0
        with self._locked():
            a = self._arrays
            idx = a.index(name)
            base = idx * a.bpt
            bit_base, craw = self._c_read(idx, wanted[0], wanted[-1] + 1)
            cleared = 0
            ccleared = False
            for c in wanted:
                if _get_bit(craw, 0, c - bit_base):
                    _set_bit(craw, 0, c - bit_base, False)
                    ccleared = True
                    cleared += _set_bit(a.d, base, c, False)
            if cleared:
                self._write_current(durable=durable)
            if ccleared:
                self._c_write(idx, bit_base, craw)
            return cleared

    def set_all(self, name: str) -> None:
        """Every chunk of ``name`` dirty, durably (a full resync will follow)."""
        with self._locked():
            a = self._arrays
            idx = a.index(name)
            self._c_set(idx, [(0, a.nchunks)], False)
            _set_range(a.d, idx * a.bpt, 0, a.nchunks, True)
            self._write_current()

    def dirty_chunks(self, name: str) -> list[int]:
        with self._locked():
            a = self._arrays
            return list(_iter_set(bytes(a.seg(a.d, a.index(name))), a.nchunks))

    def dirty_count(self, name: str) -> int:
        with self._locked():
            a = self._arrays
            return int.from_bytes(a.seg(a.d, a.index(name)), "little").bit_count()

    def is_dirty(self, name: str, chunk: int) -> bool:
        with self._locked():
            a = self._arrays
            return _get_bit(a.d, a.index(name) * a.bpt, chunk)

    def sync(self) -> None:
        """Make everything written so far durable (lazy clears and C bits included)."""
        with self._locked():
            os.fdatasync(self._fd)
            self._synced = True

    def close(self) -> None:
        with self._tlock:
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                try:
                    if not self._synced:
                        os.fdatasync(fd)  # lazy clears: cheap now, saves a copy later
                finally:
                    os.close(fd)

    def __enter__(self) -> Bitmap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Bitmap({str(self.path)!r}, chunk_size={self._chunk_size})"


def _write_new_file(
    path: Path, chunk_size: int, volume_size: int, arrays: _Arrays, generation: int
) -> None:
    """Write a complete bitmap file through a temporary file and an atomic rename."""
    _bpt, slot_size, cregion = _layout(arrays.nchunks, arrays.capacity)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        # Both slots valid: the older generation is the same state (nothing to fall back
        # from yet), so a torn first update still finds a good slot.
        os.pwrite(fd, _build_slot(chunk_size, volume_size, generation - 1, arrays, slot_size), 0)
        os.pwrite(
            fd, _build_slot(chunk_size, volume_size, generation, arrays, slot_size), slot_size
        )
        os.ftruncate(fd, 2 * slot_size + cregion)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
