"""The resync worker: full and partial copies, holes, speed limit, pause/resume/cancel."""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.replication.bitmap import Bitmap, MemoryBitmap
from core.replication.resync import Resync, ResyncBusy, ResyncError, ResyncProgress
from core.replication.volume import Volume
from tests.helpers import wait_until

MiB = 1024 * 1024
CS = 65536


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def random_source(path: Path, size: int, seed: int = 1) -> Volume:
    v = Volume.create(path, size)
    v.write(0, random.Random(seed).randbytes(size))
    return v


def setup(tmp_path: Path, size: int = 4 * MiB, dirty: bool = True) -> tuple[Volume, Volume, Bitmap]:
    src = random_source(tmp_path / "src", size)
    tgt = Volume.create(tmp_path / "tgt", size)
    bm = Bitmap.create(tmp_path / "bm", volume_size=size, chunk_size=CS, targets=["t"], dirty=dirty)
    return src, tgt, bm


def test_full_resync_copies_everything(tmp_path: Path) -> None:
    src, tgt, bm = setup(tmp_path, size=4 * MiB + 1000)  # a partial last chunk too
    reports: list[ResyncProgress] = []
    result = Resync(
        src, tgt, bm, "t", full=True, speed_limit_kbps=0, on_progress=reports.append
    ).run()
    assert result.in_sync and not result.cancelled
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")
    assert result.bytes_copied == 4 * MiB + 1000
    assert bm.dirty_count("t") == 0
    assert reports[-1].bytes_done == reports[-1].bytes_total == 4 * MiB + 1000
    assert reports[-1].percent == 100 and reports[-1].eta == 0.0


def test_partial_resync_copies_only_dirty_chunks(tmp_path: Path) -> None:
    src, tgt, bm = setup(tmp_path, dirty=False)
    tgt.write(0, src.read(0, src.size))  # in sync ...
    changed = [3, 4, 17, 40, 63]
    for c in changed:  # ... then the source changes under marks
        bm.mark_write(c, c + 1, unreplicated=["t"])
        src.write(c * CS + 5, os.urandom(100))
    assert sha(tmp_path / "src") != sha(tmp_path / "tgt")
    result = Resync(src, tgt, bm, "t", speed_limit_kbps=0).run()
    assert result.in_sync
    assert result.chunks_copied == len(changed)
    assert result.bytes_copied == len(changed) * CS
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")


def test_nothing_dirty_is_in_sync_at_once(tmp_path: Path) -> None:
    src, tgt, bm = setup(tmp_path, dirty=False)
    tgt.write(0, src.read(0, src.size))
    result = Resync(src, tgt, bm, "t").run()
    assert result.in_sync and result.chunks_copied == 0


def test_holes_in_both_files_are_skipped(tmp_path: Path) -> None:
    size = 8 * MiB
    src = Volume.create(tmp_path / "src", size)
    src.write(MiB, os.urandom(CS))  # data in chunk 16 only
    tgt = Volume.create(tmp_path / "tgt", size)
    tgt.write(5 * MiB, b"stale data in the target")  # a hole in the source, data here
    bm = Bitmap.create(tmp_path / "bm", volume_size=size, chunk_size=CS, targets=["t"])
    result = Resync(src, tgt, bm, "t", full=True, speed_limit_kbps=0, io_size=CS).run()
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")
    # copied: the chunk with data, and the target's stale chunk; the rest were holes
    assert result.chunks_copied == 2
    assert result.chunks_skipped == size // CS - 2
    assert os.stat(tmp_path / "tgt").st_blocks * 512 < 2 * MiB  # the target stays sparse


def test_a_sparse_source_over_a_target_without_holes_is_copied_whole(tmp_path: Path) -> None:
    """No chunk can be a hole in both: the source's holes are written as zeros."""
    size = 4 * MiB
    src = Volume.create(tmp_path / "src", size)
    src.write(MiB, os.urandom(CS))  # data in chunk 16, holes elsewhere
    tgt = random_source(tmp_path / "tgt", size, seed=7)  # data everywhere
    bm = Bitmap.create(tmp_path / "bm", volume_size=size, chunk_size=CS, targets=["t"])
    result = Resync(src, tgt, bm, "t", full=True, speed_limit_kbps=0, io_size=CS).run()
    assert result.in_sync
    assert (result.chunks_copied, result.chunks_skipped) == (size // CS, 0)
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")
    assert (tmp_path / "tgt").read_bytes()[:MiB] == bytes(MiB)


def test_without_bitmap_memory_resync_is_full(tmp_path: Path) -> None:
    src = random_source(tmp_path / "src", 2 * MiB)
    tgt = Volume.create(tmp_path / "tgt", 2 * MiB)
    mem = MemoryBitmap(volume_size=2 * MiB, chunk_size=CS, targets=["t"])
    result = Resync(src, tgt, mem, "t", full=True, speed_limit_kbps=0).run()
    assert result.in_sync and result.bytes_copied == 2 * MiB
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")


def test_speed_limit_is_honoured(tmp_path: Path) -> None:
    src, tgt, bm = setup(tmp_path, size=2 * MiB)
    t0 = time.monotonic()
    result = Resync(src, tgt, bm, "t", speed_limit_kbps=10_000).run()  # 10 MB/s
    elapsed = time.monotonic() - t0
    assert result.in_sync
    # 2 MiB at 10 MB/s is 0.21 s; allow the first slice to go unpaced
    assert elapsed >= 0.15
    assert result.bytes_copied / elapsed < 10_000_000 * 1.3


def test_progress_is_rate_limited_and_has_eta(tmp_path: Path) -> None:
    src, tgt, bm = setup(tmp_path, size=4 * MiB)
    reports: list[tuple[float, ResyncProgress]] = []
    t0 = time.monotonic()
    Resync(
        src,
        tgt,
        bm,
        "t",
        speed_limit_kbps=16_000,
        io_size=CS,
        on_progress=lambda p: reports.append((time.monotonic(), p)),
    ).run()
    elapsed = time.monotonic() - t0
    assert len(reports) <= elapsed * 10 + 3  # ~10 a second, plus the final ones
    assert len(reports) >= 2
    mid = [p for _t, p in reports if 0 < p.bytes_done < p.bytes_total]
    assert mid and all(p.rate > 0 for p in mid)
    assert any(p.eta is not None and p.eta > 0 for p in mid)
    dones = [p.bytes_done for _t, p in reports]
    assert dones == sorted(dones)


def test_pause_resume_and_cancel(tmp_path: Path) -> None:
    src, tgt, bm = setup(tmp_path, size=4 * MiB)
    moved = threading.Event()
    seen: list[ResyncProgress] = []

    def on_progress(p: ResyncProgress) -> None:
        seen.append(p)
        if p.bytes_done > 0:
            moved.set()

    rs = Resync(src, tgt, bm, "t", speed_limit_kbps=8_000, io_size=CS, on_progress=on_progress)
    rs.start()
    assert moved.wait(10)
    rs.pause()
    paused_at = None
    # wait until the worker reported that it is paused, then check it stays still
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(p.paused for p in seen):
        assert rs.join(timeout=0.05) is None
    assert any(p.paused for p in seen)
    paused_at = rs.bytes_done
    assert rs.join(timeout=0.3) is None
    assert rs.bytes_done == paused_at
    rs.resume()
    rs.cancel()
    result = rs.join(timeout=10)
    assert result is not None and result.cancelled and not result.in_sync
    left = bm.dirty_count("t")
    assert 0 < left < 64  # what was copied was committed, the rest is still dirty
    # a new resync finishes the job (partial: only what is left)
    r2 = Resync(src, tgt, bm, "t", speed_limit_kbps=0).run()
    assert r2.in_sync and r2.chunks_copied == left
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")


def test_target_owned_by_someone_else_is_busy(tmp_path: Path) -> None:
    src, tgt, bm = setup(tmp_path, size=MiB)
    gate = threading.Event()
    first = Resync(
        src,
        tgt,
        bm,
        "t",
        speed_limit_kbps=1_000,
        io_size=CS,
        on_progress=lambda p: gate.set(),
    )
    first.start()
    assert gate.wait(10)
    with pytest.raises(ResyncBusy):
        Resync(src, tgt, bm, "t").run()
    first.cancel()
    first.join(10)


def test_size_mismatch_is_refused(tmp_path: Path) -> None:
    src = random_source(tmp_path / "src", MiB)
    tgt = Volume.create(tmp_path / "tgt", 2 * MiB)
    bm = MemoryBitmap(volume_size=MiB, chunk_size=CS, targets=["t"])
    with pytest.raises(ResyncError, match="bytes"):
        Resync(src, tgt, bm, "t")


def test_writes_from_another_thread_during_resync(tmp_path: Path) -> None:
    """A writer marking the bitmap under the chunk locks while the resync copies."""
    from core.replication.volume import ChunkLocks

    size = 4 * MiB
    src, tgt, bm = setup(tmp_path, size=size)
    locks = ChunkLocks(tmp_path / "src", CS)
    stop = threading.Event()
    rng = random.Random(7)
    writes = 0

    def writer() -> None:
        nonlocal writes
        wlocks = ChunkLocks(tmp_path / "src", CS)  # as another process would
        while not stop.is_set():
            off = rng.randrange(size - 3000)
            first, end = off // CS, (off + 2999) // CS + 1
            with wlocks.exclusive(first, end):
                bm.mark_write(first, end, unreplicated=["t"])
                src.write(off, rng.randbytes(3000))
            writes += 1
        wlocks.close()

    rs = Resync(src, tgt, bm, "t", locks=locks, speed_limit_kbps=10_000, io_size=4 * CS)
    rs.start()
    th = threading.Thread(target=writer)
    th.start()
    rs.join(timeout=0.2)  # let both run for a while (the resync needs ~0.4 s)
    still_running = rs.running
    stop.set()
    th.join()
    result = rs.join(timeout=30)
    assert result is not None and result.in_sync
    assert writes > 0
    if still_running:  # every write happened before the end: the target has them all
        assert sha(tmp_path / "src") == sha(tmp_path / "tgt")
        assert result.passes >= 2  # chunks written behind the copy were copied again
    # writes made after the resync ended are marked: a second (partial) resync fixes them
    Resync(src, tgt, bm, "t", speed_limit_kbps=0).run()
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")
    assert bm.dirty_count("t") == 0


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    writes=st.lists(
        st.tuples(st.integers(0, 2 * MiB - 1), st.integers(1, 200_000)), min_size=1, max_size=12
    )
)
def test_random_writes_then_partial_resync(tmp_path: Path, writes: list[tuple[int, int]]) -> None:
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    size = 2 * MiB
    src = random_source(d / "src", size, seed=3)
    tgt = Volume.create(d / "tgt", size)
    tgt.write(0, src.read(0, size))
    bm = Bitmap.create(d / "bm", volume_size=size, chunk_size=CS, targets=["t"], dirty=False)
    expected: set[int] = set()
    for off, n in writes:
        n = min(n, size - off)
        first, end = off // CS, (off + n - 1) // CS + 1
        bm.mark_write(first, end, unreplicated=["t"])
        src.write(off, os.urandom(n))
        expected |= set(range(first, end))
    result = Resync(src, tgt, bm, "t", speed_limit_kbps=0).run()
    assert result.in_sync
    assert result.chunks_copied == len(expected)
    assert sha(d / "src") == sha(d / "tgt")
    for v in (src, tgt):
        v.close()
    bm.close()


def _resident(path: Path, offset: int, length: int) -> bool:
    """Whether every page of ``[offset, offset+length)`` of ``path`` is in the page cache
    (``mincore`` of a read-only mapping made with libc's ``mmap``)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
    ]  # fmt: skip
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    pages = -(-length // mmap.PAGESIZE)
    vec = (ctypes.c_ubyte * pages)()
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, offset)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap")
        try:
            if libc.mincore(addr, length, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            libc.munmap(addr, length)
    finally:
        os.close(fd)
    return all(b & 1 for b in vec)


def _evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_a_resync_asks_for_the_scattered_source_chunks_ahead_of_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.replication import resync

    src = random_source(tmp_path / "src", 32 * MiB)
    _evict(tmp_path / "src")
    if _resident(tmp_path / "src", 0, CS):
        src.close()
        pytest.skip("this file system keeps its pages cached (tmpfs): nothing to read ahead")
    monkeypatch.setattr(resync, "READ_AHEAD_BYTES", 4 * CS)
    extents = [(c * MiB, CS) for c in range(0, 32, 2)]  # every other MiB: 16 lone chunks
    ahead = resync._ReadAhead(src, extents)
    ahead.advance(CS)  # about to copy the first chunk: it and the next 4 are asked for
    asked, beyond = extents[:5], extents[5:]
    wait_until(
        lambda: all(_resident(tmp_path / "src", o, n) for o, n in asked),
        timeout=10,
        what="the five chunks asked for to be in the page cache",
    )
    assert not any(_resident(tmp_path / "src", o, n) for o, n in beyond)
    ahead.advance(CS)  # the second chunk: one more
    wait_until(lambda: _resident(tmp_path / "src", *extents[5]), timeout=10, what="chunk 6")
    assert not any(_resident(tmp_path / "src", o, n) for o, n in extents[6:])
    src.close()
