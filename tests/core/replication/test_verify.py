"""Online verify: finds exactly the chunks that differ, marks them, a partial resync repairs.

Real bytes: the target volume file is changed behind the engine's back (``os.pwrite`` on
a descriptor of its own) and the verify must find exactly those chunks.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import OperationError
from core.model import MirrorState
from core.replication.bitmap import Bitmap, MemoryBitmap
from core.replication.mirror import Mirror, TargetSpec
from core.replication.resync import OWNER_LOCK_OFFSET, Resync, ResyncBusy, ResyncProgress
from core.replication.verify import (
    METHODS,
    Method,
    Verify,
    VerifyBusy,
    VerifyError,
    VerifyProgress,
    VerifyResult,
    chunk_digest,
    main,
    resync_running,
    verify_mirror_target,
)
from core.replication.volume import ChunkLocks, Volume, is_hole, try_lock_file

MiB = 1024 * 1024
CS = 65536
ROOT = Path(__file__).resolve().parents[3]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_pair(d: Path, size: int, seed: int = 1) -> tuple[Volume, Volume]:
    """A source of random bytes and a target with the same bytes (not sparse)."""
    data = random.Random(seed).randbytes(size)
    src = Volume.create(d / "src", size)
    src.write(0, data)
    tgt = Volume.create(d / "tgt", size)
    tgt.write(0, data)
    return src, tgt


def flip(path: Path, chunks: Iterable[int], size: int, cs: int = CS, seed: int = 7) -> None:
    """Change one byte somewhere in each of ``chunks`` of the file, behind everyone's back."""
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDWR)
    try:
        for c in chunks:
            off = c * cs + rng.randrange(min(cs, size - c * cs))
            old = os.pread(fd, 1, off)
            os.pwrite(fd, bytes([old[0] ^ 0xFF]), off)
    finally:
        os.close(fd)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Volume, Volume]]:
    src, tgt = make_pair(tmp_path, 4 * MiB + 1000)  # 65 chunks, the last one partial
    yield src, tgt
    src.close()
    tgt.close()


# -- finding, marking, repairing ----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_identical_volumes_have_no_differing_chunk(
    tmp_path: Path, pair: tuple[Volume, Volume], method: Method
) -> None:
    src, tgt = pair
    bm = Bitmap.create(tmp_path / "bm", volume_size=src.size, targets=["t"], dirty=False)
    result = Verify(src, tgt, bm, "t", speed_limit_kbps=0, method=method).run()
    assert result.chunks_checked == 65 and result.bytes_checked == src.size
    assert result.chunks_differing == 0 and result.differing == ()
    assert not result.cancelled and result.chunks_marked == 0
    assert result.method == method
    assert bm.dirty_count("t") == 0


@pytest.mark.parametrize("method", METHODS)
def test_flipped_chunks_are_found_marked_durably_and_repaired(
    tmp_path: Path, pair: tuple[Volume, Volume], method: Method
) -> None:
    src, tgt = pair
    bm = Bitmap.create(tmp_path / "bm", volume_size=src.size, targets=["t"], dirty=False)
    flipped = sorted([*random.Random(3).sample(range(64), 6), 64])  # the partial chunk too
    flip(tmp_path / "tgt", flipped, src.size)
    assert sha(tmp_path / "src") != sha(tmp_path / "tgt")

    result = Verify(src, tgt, bm, "t", speed_limit_kbps=0, method=method, io_size=CS * 5).run()
    assert list(result.differing) == flipped
    assert result.chunks_differing == len(flipped) == result.chunks_marked
    assert result.chunks_checked == 65 and not result.cancelled
    assert "marked dirty" in result.message
    assert bm.dirty_chunks("t") == flipped
    # durable: another opener of the file sees the same bits
    with Bitmap.open(tmp_path / "bm", volume_size=src.size) as again:
        assert again.dirty_chunks("t") == flipped

    repair = Resync(src, tgt, bm, "t", speed_limit_kbps=0).run()  # partial
    assert repair.in_sync and not repair.full
    assert repair.chunks_copied == len(flipped)
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")
    done = result.with_bytes_repaired(repair.bytes_copied)
    assert done.bytes_repaired == 6 * CS + 1000 and result.bytes_repaired == 0

    again_result = Verify(src, tgt, bm, "t", speed_limit_kbps=0, method=method).run()
    assert again_result.chunks_differing == 0


def test_mark_false_reports_without_marking(tmp_path: Path, pair: tuple[Volume, Volume]) -> None:
    src, tgt = pair
    bm = Bitmap.create(tmp_path / "bm", volume_size=src.size, targets=["t"], dirty=False)
    flip(tmp_path / "tgt", [2, 9], src.size)
    result = Verify(src, tgt, bm, "t", speed_limit_kbps=0, mark=False).run()
    assert result.differing == (2, 9) and result.chunks_marked == 0
    assert "report only" in result.message
    assert bm.dirty_count("t") == 0


def test_memory_bitmap_is_marked_and_no_bitmap_only_reports(
    tmp_path: Path, pair: tuple[Volume, Volume]
) -> None:
    src, tgt = pair
    flip(tmp_path / "tgt", [0, 33, 64], src.size)
    mem = MemoryBitmap(volume_size=src.size, chunk_size=CS, targets=["t"], dirty=False)
    result = Verify(src, tgt, mem, "t", speed_limit_kbps=0).run()
    assert result.differing == (0, 33, 64) and result.chunks_marked == 3
    assert mem.dirty_chunks("t") == [0, 33, 64]
    assert Resync(src, tgt, mem, "t", speed_limit_kbps=0).run().chunks_copied == 3
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")

    flip(tmp_path / "tgt", [5], src.size)
    none = Verify(src, tgt, None, "t", speed_limit_kbps=0, chunk_size=4096).run()
    assert none.chunks_checked == (src.size + 4095) // 4096
    assert none.chunks_differing == 1 and none.differing[0] in range(5 * 16, 6 * 16)
    assert none.chunks_marked == 0 and "no bitmap" in none.message


def test_differing_list_is_capped_but_the_count_is_exact(
    tmp_path: Path, pair: tuple[Volume, Volume]
) -> None:
    src, tgt = pair
    flip(tmp_path / "tgt", range(10, 20), src.size)
    result = Verify(src, tgt, None, "t", speed_limit_kbps=0, max_listed=4).run()
    assert result.chunks_differing == 10 and result.differing == (10, 11, 12, 13)
    assert result.differing_truncated


def test_contiguous_differing_chunks_are_marked_in_one_update(
    tmp_path: Path, pair: tuple[Volume, Volume]
) -> None:
    src, tgt = pair
    bm = Bitmap.create(tmp_path / "bm", volume_size=src.size, targets=["t"], dirty=False)
    flip(tmp_path / "tgt", [*range(3, 12), 40], src.size)  # a run across pieces, and one
    before = bm.fsyncs
    result = Verify(src, tgt, bm, "t", speed_limit_kbps=0, io_size=4 * CS).run()
    assert bm.dirty_chunks("t") == [*range(3, 12), 40]
    assert result.chunks_marked == 10
    assert bm.fsyncs - before == 2  # one durable update per run of chunks


def test_both_methods_use_blake2b_digests_the_same_way() -> None:
    data = os.urandom(CS)
    assert chunk_digest(data) == hashlib.blake2b(data, digest_size=16).digest()
    assert len(chunk_digest(memoryview(data)[:100])) == 16


# -- holes ---------------------------------------------------------------------------------


def test_holes_in_both_files_are_equal_without_reading(tmp_path: Path) -> None:
    size = 64 * CS
    src = Volume.create(tmp_path / "src", size)  # sparse: all holes
    tgt = Volume.create(tmp_path / "tgt", size)
    if not is_hole(src.fileno(), 0, size):
        pytest.skip("this filesystem does not report holes")
    data = os.urandom(CS)
    for c in (1, 2, 30):  # the same data in both
        src.write(c * CS, data)
        tgt.write(c * CS, data)
    src.write(10 * CS, data)  # data in the source over a hole in the target
    tgt.write(50 * CS + 7, b"x")  # data in the target over a hole in the source
    src.write(20 * CS, bytes(CS))  # zeros written in the source: data, but equal
    bm = MemoryBitmap(volume_size=size, chunk_size=CS, targets=["t"], dirty=False)
    for method in METHODS:
        result = Verify(src, tgt, bm, "t", speed_limit_kbps=0, method=method, io_size=8 * CS).run()
        assert result.differing == (10, 50)
        assert result.chunks_checked == 64
        # holes in both: every chunk but 1, 2, 30 (data in both), 10, 20 and 50
        assert result.chunks_skipped == 64 - 6
    assert bm.dirty_chunks("t") == [10, 50]
    assert Resync(src, tgt, bm, "t", speed_limit_kbps=0).run().in_sync
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")


# -- pacing, progress, pause, cancel ---------------------------------------------------


def test_throttle_computes_the_expected_wait(tmp_path: Path, pair: tuple[Volume, Volume]) -> None:
    src, tgt = pair
    v = Verify(src, tgt, None, "t", speed_limit_kbps=1_000)  # 1 MB/s
    v._read_samples = deque([(100.0, 0)])
    v.bytes_read = 500_000
    assert v.throttle_delay(now=100.0) == pytest.approx(0.5)
    assert v.throttle_delay(now=100.3) == pytest.approx(0.2)
    assert v.throttle_delay(now=101.0) == 0.0
    v.set_speed_limit(2_000)
    assert v.throttle_delay(now=100.0) == pytest.approx(0.25)
    v.set_speed_limit(0)  # unlimited
    assert v.throttle_delay(now=100.0) == 0.0
    # pieces shrink so that the limit paces smoothly (50 ms worth at most)
    v.set_speed_limit(2_000)
    assert v._piece_limit() == 1
    v.set_speed_limit(0)
    assert v._piece_limit() == 64


def test_speed_limit_is_honoured(tmp_path: Path) -> None:
    src, tgt = make_pair(tmp_path, MiB)
    t0 = time.monotonic()
    result = Verify(src, tgt, None, "t", speed_limit_kbps=4_000).run()  # 4 MB/s
    elapsed = time.monotonic() - t0
    assert result.chunks_checked == 16
    # 1 MiB at 4 MB/s is 0.26 s; the first piece (3 chunks) goes unpaced: >= 0.21 s
    assert elapsed >= 0.2


def test_progress_is_increasing_and_rate_limited(
    tmp_path: Path, pair: tuple[Volume, Volume]
) -> None:
    src, tgt = pair
    flip(tmp_path / "tgt", [1, 60], src.size)
    reports: list[tuple[float, VerifyProgress]] = []
    t0 = time.monotonic()
    Verify(
        src,
        tgt,
        None,
        "t",
        speed_limit_kbps=12_000,
        on_progress=lambda p: reports.append((time.monotonic(), p)),
    ).run()
    elapsed = time.monotonic() - t0
    assert len(reports) >= 2
    assert len(reports) <= elapsed * 10 + 3  # ~10 a second, plus the final one
    dones = [p.bytes_done for _t, p in reports]
    assert dones == sorted(dones)
    diffs = [p.differing_so_far for _t, p in reports]
    assert diffs == sorted(diffs) and diffs[-1] == 2
    mid = [p for _t, p in reports if 0 < p.bytes_done < p.bytes_total]
    assert mid and all(p.rate > 0 for p in mid)
    assert any(p.eta is not None and p.eta > 0 for p in mid)
    last = reports[-1][1]
    assert last.bytes_done == last.bytes_total == src.size and last.percent == 100


def test_pause_resume_and_cancel(tmp_path: Path, pair: tuple[Volume, Volume]) -> None:
    src, tgt = pair
    bm = Bitmap.create(tmp_path / "bm", volume_size=src.size, targets=["t"], dirty=False)
    flip(tmp_path / "tgt", [0, 64], src.size)
    moved = threading.Event()
    seen: list[VerifyProgress] = []

    def on_progress(p: VerifyProgress) -> None:
        seen.append(p)
        if p.bytes_done > 0:
            moved.set()

    v = Verify(src, tgt, bm, "t", speed_limit_kbps=2_000, on_progress=on_progress)
    v.start()
    assert moved.wait(10)
    v.pause()
    assert v.paused
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(p.paused for p in seen):
        assert v.join(timeout=0.05) is None
    assert any(p.paused for p in seen)
    paused_at = v.bytes_done
    # paused: the differing chunk found so far is already marked, nothing more is read
    assert bm.dirty_chunks("t") == [0]
    assert v.join(timeout=0.3) is None
    assert v.bytes_done == paused_at
    v.resume()
    v.cancel()
    result = v.join(timeout=10)
    assert result is not None and result.cancelled
    assert 0 < result.chunks_checked < 65
    assert result.differing == (0,) and "cancelled" in result.message
    assert bm.dirty_chunks("t") == [0]


def test_start_twice_and_join_before_start_are_refused(
    tmp_path: Path, pair: tuple[Volume, Volume]
) -> None:
    src, tgt = pair
    v = Verify(src, tgt, None, "t", speed_limit_kbps=0)
    with pytest.raises(OperationError, match="not started"):
        v.join()
    v.start()
    with pytest.raises(OperationError, match="already started"):
        v.start()
    result = v.join(10)
    assert result is not None and result.chunks_differing == 0
    with pytest.raises(OperationError, match="runs once"):
        v.run()


# -- refused while a resync runs ---------------------------------------------------------------


def test_refused_while_a_paused_resync_owns_the_target(tmp_path: Path) -> None:
    src, tgt = make_pair(tmp_path, MiB)
    bm = Bitmap.create(tmp_path / "bm", volume_size=MiB, targets=["t"], dirty=True)
    paused = threading.Event()

    def on_progress(p: ResyncProgress) -> None:
        if p.paused:
            paused.set()

    rs = Resync(src, tgt, bm, "t", speed_limit_kbps=0, on_progress=on_progress)
    rs.pause()
    rs.start()
    assert paused.wait(10)  # it owns the target and waits, paused
    assert resync_running(tmp_path / "tgt")
    with pytest.raises(VerifyBusy) as info:
        Verify(src, tgt, bm, "t").run()
    assert "a resync of t is running" in info.value.reason
    assert "verify it once the resync is done" in info.value.reason
    assert "refused" in str(info.value)
    rs.resume()
    result = rs.join(10)
    assert result is not None and result.in_sync
    assert not resync_running(tmp_path / "tgt")
    assert Verify(src, tgt, bm, "t", speed_limit_kbps=0).run().chunks_differing == 0


def test_refused_while_another_process_holds_the_owner_lock(tmp_path: Path) -> None:
    src, tgt = make_pair(tmp_path, MiB)
    fd = os.open(tmp_path / "tgt", os.O_RDWR)  # the way Resync._acquire_ownership does
    try:
        assert try_lock_file(fd, OWNER_LOCK_OFFSET, 1)
        assert resync_running(tmp_path / "tgt")
        with pytest.raises(VerifyBusy):
            Verify(src, tgt, None, "t").run()
        assert resync_running(tmp_path / "tgt")  # asking did not take or drop the lock
    finally:
        os.close(fd)
    assert not resync_running(tmp_path / "tgt")
    assert not resync_running(tmp_path / "missing")


def test_a_running_verify_keeps_resyncs_out(tmp_path: Path, pair: tuple[Volume, Volume]) -> None:
    src, tgt = pair
    bm = Bitmap.create(tmp_path / "bm", volume_size=src.size, targets=["t"], dirty=False)
    paused = threading.Event()
    v = Verify(src, tgt, bm, "t", on_progress=lambda p: paused.set() if p.paused else None)
    v.pause()
    v.start()
    assert paused.wait(10)
    assert resync_running(tmp_path / "tgt")
    with pytest.raises(ResyncBusy):
        Resync(src, tgt, bm, "t").run()
    v.cancel()
    assert v.join(10) is not None
    assert not resync_running(tmp_path / "tgt")


def test_bad_arguments_are_refused(tmp_path: Path, pair: tuple[Volume, Volume]) -> None:
    src, tgt = pair
    other = Volume.create(tmp_path / "other", 2 * MiB)
    with pytest.raises(VerifyError, match="bytes"):
        Verify(src, other, None, "t")
    bm = Bitmap.create(tmp_path / "bm", volume_size=src.size, targets=["u"], dirty=False)
    with pytest.raises(VerifyError, match="no target named 't'"):
        Verify(src, tgt, bm, "t")
    assert Verify(src, tgt, bm, "t", mark=False).chunk_size == CS  # reporting needs no bits
    with pytest.raises(VerifyError, match="chunk size"):
        Verify(src, tgt, bm, "u", chunk_size=4096)
    small = MemoryBitmap(volume_size=MiB, chunk_size=CS, targets=["t"])
    with pytest.raises(VerifyError, match="bitmap covers"):
        Verify(src, tgt, small, "t")
    with (
        Volume.open(tmp_path / "src", readonly=True) as again,
        pytest.raises(VerifyError, match="is the source volume"),
    ):
        Verify(src, again, None, "t")
    with pytest.raises(VerifyError, match="unknown method"):
        Verify(src, tgt, None, "t", method="md5")  # type: ignore[arg-type]
    other.close()


def test_read_errors_become_verify_errors(tmp_path: Path, pair: tuple[Volume, Volume]) -> None:
    src, tgt = pair
    v = Verify(src, tgt, None, "t", speed_limit_kbps=0)
    os.truncate(tmp_path / "tgt", MiB)  # the target shrank under us: short read
    with pytest.raises(VerifyError, match="short read"):
        v.run()


# -- the mirror of this process ----------------------------------------------------------------


@pytest.fixture
def resync_reports() -> list[ResyncProgress]:
    return []


@pytest.fixture
def mirror(tmp_path: Path, resync_reports: list[ResyncProgress]) -> Iterator[Mirror]:
    size = 4 * MiB
    with Volume.create(tmp_path / "src", size) as v:
        v.write(0, random.Random(5).randbytes(size))
    m = Mirror(
        tmp_path / "src",
        [TargetSpec("t1", tmp_path / "t1")],
        tmp_path / "bitmap",
        on_progress=resync_reports.append,
    )
    assert m.wait_for_state("t1", MirrorState.TARGET)
    assert m.wait_resync_idle("t1")  # TARGET is set just before its thread ends
    yield m
    m.close()


def test_verify_a_mirror_target_then_repair_through_the_mirror(
    tmp_path: Path, mirror: Mirror, resync_reports: list[ResyncProgress]
) -> None:
    # the mirror owns its target volume: a verify in another process would be refused
    assert resync_running(tmp_path / "t1")
    flipped = [3, 17, 63]
    flip(tmp_path / "t1", flipped, mirror.source.size)
    result = verify_mirror_target(mirror, "t1", speed_limit_kbps=0).run()
    assert list(result.differing) == flipped and not result.cancelled
    assert mirror.status("t1").dirty_chunks == 3
    assert mirror.drain_events()
    resync_reports.clear()  # the first full resync's
    mirror.pause("t1")
    mirror.resume("t1")  # a partial resync of the marked chunks
    assert mirror.wait_for_state("t1", MirrorState.TARGET)
    assert mirror.wait_resync_idle("t1")
    assert mirror.drain_events()
    assert resync_reports and resync_reports[-1].chunks_copied == 3
    assert not resync_reports[-1].full
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")


def test_writes_between_source_and_target_are_never_seen_half_done(tmp_path: Path) -> None:
    """A writer that, like the mirror, holds its chunks exclusively from the source write
    to the target write, and is slow in between (a hash of 1 MiB: a slow link). Without
    the shared chunk locks the verify sees such half-done writes (tried: a few differing
    chunks per run); with them, never."""
    src, tgt = make_pair(tmp_path, 4 * MiB)
    writer_locks = ChunkLocks(src.path, CS)  # another OFD: excludes the verify's locks
    filler = os.urandom(MiB)
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        rng = random.Random(2)
        while not stop.is_set():
            n = rng.randrange(1, 200_000)
            off = rng.randrange(src.size - n)
            data = rng.randbytes(n)
            with writer_locks.exclusive(off // CS, (off + n - 1) // CS + 1):
                src.write(off, data)
                hashlib.sha256(filler).digest()  # drops the GIL: the verify runs meanwhile
                tgt.write(off, data)
            writes += 1

    th = threading.Thread(target=writer)
    th.start()
    try:
        results = [
            Verify(src, tgt, None, "t", speed_limit_kbps=0, io_size=2 * CS, method=m).run()
            for m in (*METHODS, *METHODS, *METHODS)
        ]
    finally:
        stop.set()
        th.join()
        writer_locks.close()
    assert writes > 0
    assert [r.chunks_differing for r in results] == [0] * 6
    assert sha(tmp_path / "src") == sha(tmp_path / "tgt")


def test_mirrored_writes_during_a_verify_of_a_mirror_target(tmp_path: Path, mirror: Mirror) -> None:
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        rng = random.Random(2)
        while not stop.is_set():
            n = rng.randrange(1, 300_000)
            mirror.write(rng.randrange(mirror.source.size - n), rng.randbytes(n))
            writes += 1

    th = threading.Thread(target=writer)
    th.start()
    try:
        results = [
            verify_mirror_target(mirror, "t1", speed_limit_kbps=0, io_size=2 * CS, method=m).run()
            for m in (*METHODS, *METHODS)
        ]
    finally:
        stop.set()
        th.join()
    assert writes > 0
    # synchronous mirror: source and target change together under the chunk locks
    assert [r.chunks_differing for r in results] == [0, 0, 0, 0]
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")


def test_verify_of_a_mirror_target_is_refused_while_it_resyncs(tmp_path: Path) -> None:
    size = 4 * MiB
    with Volume.create(tmp_path / "src", size) as v:
        v.write(0, random.Random(5).randbytes(size))
    m = Mirror(
        tmp_path / "src",
        [TargetSpec("t1", tmp_path / "t1")],
        tmp_path / "bitmap",
        speed_limit_kbps=1_000,  # a 4 MiB full resync: about 4 s, then paused
    )
    try:
        m.pause("t1")
        assert m.status("t1").resyncing  # paused, its thread alive
        with pytest.raises(VerifyBusy, match="a resync of t1 is running"):
            verify_mirror_target(m, "t1")
    finally:
        m.close()


# -- the command line ----------------------------------------------------------------------


def test_command_line_verifies_and_marks(
    tmp_path: Path, pair: tuple[Volume, Volume], capsys: pytest.CaptureFixture[str]
) -> None:
    src, _tgt = pair
    Bitmap.create(tmp_path / "bm", volume_size=src.size, targets=["t"], dirty=False).close()
    flip(tmp_path / "tgt", [4, 5, 64], src.size)
    args = ["--source", str(tmp_path / "src"), "--target", str(tmp_path / "tgt")]
    args += ["--bitmap", str(tmp_path / "bm"), "--target-name", "t", "--speed-limit", "0"]
    assert main([*args, "--no-mark"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "START t method=blake2b mark=0"
    assert "DIFFERING 4 5 64" in out
    assert out[-1] == "VERIFIED checked=65 differing=3"
    with Bitmap.open(tmp_path / "bm") as bm:
        assert bm.dirty_count("t") == 0
    assert main([*args, "--method", "bytes"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("PROGRESS t ") for line in out)
    assert out[-1] == "VERIFIED checked=65 differing=3"
    with Bitmap.open(tmp_path / "bm") as bm:
        assert bm.dirty_chunks("t") == [4, 5, 64]


def test_command_line_busy_and_errors(
    tmp_path: Path, pair: tuple[Volume, Volume], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--source", str(tmp_path / "src"), "--target", str(tmp_path / "tgt")]
    args += ["--target-name", "t"]
    fd = os.open(tmp_path / "tgt", os.O_RDWR)
    try:
        assert try_lock_file(fd, OWNER_LOCK_OFFSET, 1)
        assert main(args) == 4
        assert "BUSY a resync of t is running" in capsys.readouterr().err
    finally:
        os.close(fd)
    assert main(args) == 0
    assert "NOTE no bitmap: report only" in capsys.readouterr().out
    assert main([*args, "--bitmap", str(tmp_path / "nope")]) == 1
    assert "ERROR bitmap" in capsys.readouterr().err
    assert main(["--source", str(tmp_path / "nope"), "--target", "x", "--target-name", "t"]) == 1


def test_command_line_sigterm_cancels_with_exit_3(tmp_path: Path) -> None:
    make_pair(tmp_path, 4 * MiB)
    cmd = [sys.executable, "-m", "core.replication.verify", "--target-name", "t"]
    cmd += ["--source", str(tmp_path / "src"), "--target", str(tmp_path / "tgt")]
    proc = subprocess.Popen(
        [*cmd, "--speed-limit", "2000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("PROGRESS") and int(line.split()[2]) > 0:
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        assert proc.wait(10) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "CANCELLED checked=" in rest and "differing=0" in rest


# -- property -------------------------------------------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    flipped=st.sets(st.integers(0, 64), max_size=20),
    method=st.sampled_from(METHODS),
    io_chunks=st.integers(1, 9),
)
def test_verify_finds_exactly_the_flipped_chunks(
    tmp_path: Path, flipped: set[int], method: Method, io_chunks: int
) -> None:
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    size = 64 * 4096 + 100  # 65 chunks of 4 KiB, the last one partial
    src, tgt = make_pair(d, size, seed=len(flipped))
    flip(d / "tgt", sorted(flipped), size, cs=4096, seed=io_chunks)
    bm = MemoryBitmap(volume_size=size, chunk_size=4096, targets=["t"], dirty=False)
    result: VerifyResult = Verify(
        src, tgt, bm, "t", speed_limit_kbps=0, method=method, io_size=io_chunks * 4096
    ).run()
    assert list(result.differing) == sorted(flipped)
    assert bm.dirty_chunks("t") == sorted(flipped)
    assert result.chunks_checked == 65
    repair = Resync(src, tgt, bm, "t", speed_limit_kbps=0).run()
    assert repair.chunks_copied == len(flipped)
    assert sha(d / "src") == sha(d / "tgt")
    src.close()
    tgt.close()
