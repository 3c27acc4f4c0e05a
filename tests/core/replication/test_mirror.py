"""The mirror: write path, states, actions, bitmap problems, no bitmap, crash recovery."""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.events import EventHub, MirrorProgress, MirrorStateChanged
from core.model import MirrorState
from core.replication.bitmap import HEADER_SIZE, Bitmap
from core.replication.mirror import (
    NO_BITMAP_SUFFIX,
    Mirror,
    MirrorError,
    MirrorNotOnline,
    TargetSpec,
)
from core.replication.resync import ResyncProgress
from core.replication.volume import Volume

MiB = 1024 * 1024
CS = 65536
SIZE = 4 * MiB


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Recorder:
    """Collects the callbacks; lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.states: list[tuple[str, MirrorState, str]] = []
        self.progress: list[ResyncProgress] = []

    def on_state(self, target: str, state: MirrorState, reason: str) -> None:
        with self.cond:
            self.states.append((target, state, reason))
            self.cond.notify_all()

    def on_progress(self, p: ResyncProgress) -> None:
        with self.cond:
            self.progress.append(p)
            self.cond.notify_all()

    def wait(self, pred: Callable[[], bool], timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def reasons(self, target: str) -> list[str]:
        return [r for t, _s, r in self.states if t == target]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    with Volume.create(tmp_path / "src", SIZE) as v:
        v.write(0, random.Random(5).randbytes(SIZE))
    return tmp_path / "src"


def make_mirror(
    tmp_path: Path, rec: Recorder, targets: list[TargetSpec] | None = None, **kw: object
) -> Mirror:
    kw.setdefault("speed_limit_kbps", 0)
    bitmap = kw.pop("bitmap", tmp_path / "bitmap")
    return Mirror(
        tmp_path / "src",
        targets if targets is not None else [TargetSpec("t1", tmp_path / "t1")],
        bitmap,  # type: ignore[arg-type]
        on_state=rec.on_state,
        on_progress=rec.on_progress,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def mirror(tmp_path: Path, source: Path, rec: Recorder) -> Iterator[Mirror]:
    m = make_mirror(tmp_path, rec)
    assert m.wait_for_state("t1", MirrorState.TARGET)
    yield m
    m.close()


def rand_writes(m: Mirror, n: int, seed: int = 1, durable: bool = False) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        size = rng.randrange(1, 100_000)
        m.write(rng.randrange(SIZE - size), rng.randbytes(size), durable=durable)


def test_new_target_gets_a_full_resync_then_is_target(
    tmp_path: Path, mirror: Mirror, rec: Recorder
) -> None:
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")
    mirror.drain_events()
    states = [s for t, s, _r in rec.states if t == "t1"]
    assert states[0] is MirrorState.OUT_OF_SYNC and states[-1] is MirrorState.TARGET
    assert MirrorState.RESYNCING in states
    assert any("new target" in r for r in rec.reasons("t1"))
    assert rec.progress and rec.progress[-1].bytes_done == SIZE


def test_synchronous_writes_reach_the_target_before_returning(
    tmp_path: Path, mirror: Mirror
) -> None:
    rand_writes(mirror, 50)
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")  # no flush needed
    rand_writes(mirror, 20, seed=2, durable=True)
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")
    mirror.flush()  # commits the bits of idle chunks
    assert mirror.status("t1").dirty_chunks == 0
    assert mirror.read(0, 10) == (tmp_path / "src").read_bytes()[:10]


def test_asynchronous_writes_are_queued_and_drained(
    tmp_path: Path, source: Path, rec: Recorder
) -> None:
    m = make_mirror(tmp_path, rec, asynchronous=True, async_max_writes=4, async_max_bytes=CS)
    assert m.wait_for_state("t1", MirrorState.TARGET)
    rand_writes(m, 200, durable=False)
    m.flush()
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")
    assert m.status("t1").dirty_chunks == 0
    m.close()


def test_hot_extents_cost_one_bitmap_update_and_clear_lazily(
    tmp_path: Path, mirror: Mirror
) -> None:
    bm = mirror.bitmap
    assert isinstance(bm, Bitmap)
    before = bm.fsyncs
    for i in range(64):  # the first extent (64 chunks = 4 MiB): one durable update
        mirror.write(i * CS, os.urandom(CS))
    rng = random.Random(2)
    for _ in range(200):  # random writes in a hot extent: no bitmap I/O at all
        mirror.write(rng.randrange(SIZE - 4096), os.urandom(4096))
    assert bm.fsyncs - before == 1
    assert mirror.status("t1").dirty_chunks == 64  # hot: stays marked
    mirror.flush()  # the extent is idle: its bits are committed clear
    assert mirror.status("t1").dirty_chunks == 0
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")


def test_idle_and_least_recent_extents_are_cleared(
    tmp_path: Path, source: Path, rec: Recorder
) -> None:
    m = make_mirror(
        tmp_path, rec, clear_delay=3600, clear_interval=3600, extent_chunks=4, max_hot_extents=1
    )
    assert m.wait_for_state("t1", MirrorState.TARGET)
    for c in (1, 10, 20):  # three extents: chunks 0-3, 8-11, 20-23
        m.write(CS * c, b"x" * 100)
    assert m.status("t1").dirty_chunks == 12
    assert m.clear_idle() == 2  # only one may stay hot: the two oldest go
    assert sorted(Bitmap.open(tmp_path / "bitmap").dirty_chunks("t1")) == [20, 21, 22, 23]
    m.close()
    m2 = make_mirror(tmp_path, rec, clear_delay=0, clear_interval=3600, extent_chunks=4)
    assert m2.wait_for_state("t1", MirrorState.TARGET)
    m2.write(CS * 30, b"y")
    assert m2.clear_idle() == 1  # idle for >= 0 s: cleared
    assert m2.status("t1").dirty_chunks == 0
    m2.close()


def test_pause_marks_and_resume_copies_only_what_was_missed(
    tmp_path: Path, mirror: Mirror, rec: Recorder
) -> None:
    mirror.pause("t1")
    assert mirror.state("t1") is MirrorState.OUT_OF_SYNC
    assert "paused" in mirror.reason("t1")
    written = set()
    for c in (1, 2, 30, 61):
        mirror.write(c * CS + 10, b"while paused")
        written.add(c)
    assert sha(tmp_path / "src") != sha(tmp_path / "t1")
    assert mirror.status("t1").dirty_chunks == len(written)
    n_progress = len(rec.progress)
    mirror.resume("t1")
    assert mirror.wait_for_state("t1", MirrorState.TARGET)
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")
    mirror.drain_events()
    last = rec.progress[-1]
    assert len(rec.progress) > n_progress
    assert last.bytes_total == len(written) * CS and last.chunks_copied == len(written)


def test_writes_through_the_mirror_during_a_resync(
    tmp_path: Path, source: Path, rec: Recorder
) -> None:
    m = make_mirror(tmp_path, rec, speed_limit_kbps=8_000, speed_limit_min_kbps=8_000)
    assert m.wait_for_state("t1", MirrorState.RESYNCING, 5) or m.state("t1") is MirrorState.TARGET
    stop = threading.Event()
    count = 0

    def writer() -> None:
        nonlocal count
        rng = random.Random(11)
        while not stop.is_set():
            size = rng.randrange(1, 30_000)
            m.write(rng.randrange(SIZE - size), rng.randbytes(size))
            count += 1

    th = threading.Thread(target=writer)
    th.start()
    assert rec.wait(lambda: any(p.bytes_done > MiB for p in rec.progress), 20)
    stop.set()
    th.join()
    assert count > 0
    assert m.wait_for_state("t1", MirrorState.TARGET)
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")
    rand_writes(m, 10)  # and it replicates afterwards
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")
    m.close()


def test_full_resync_marks_everything_durably_then_copies(
    tmp_path: Path, mirror: Mirror, rec: Recorder
) -> None:
    mirror.set_speed_limit(4_000)
    mirror.full_resync("t1")
    assert mirror.state("t1") is MirrorState.RESYNCING
    # before any copy finished, every chunk is marked in the file itself
    assert Bitmap.open(tmp_path / "bitmap").dirty_count("t1") > 0
    mirror.set_speed_limit(0)
    assert mirror.wait_for_state("t1", MirrorState.TARGET)
    mirror.drain_events()
    assert rec.progress[-1].bytes_total == SIZE and rec.progress[-1].full
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    slot = struct.unpack_from("<Q", data, 40)[0]
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "magic":
        data[0:8] = data[slot : slot + 8] = b"XXXXXXXX"
    elif how == "checksum":
        for base in (0, slot):
            data[base + HEADER_SIZE + 8 * 64] ^= 0x55
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("truncated", "truncated"),
        ("magic", "magic"),
        ("checksum", "checksum"),
        ("chunk", "chunk size"),
    ],
)
def test_damaged_bitmap_means_full_resync_with_the_reason(
    tmp_path: Path, source: Path, how: str, words: str
) -> None:
    rec1 = Recorder()
    m = make_mirror(tmp_path, rec1)
    assert m.wait_for_state("t1", MirrorState.TARGET)
    m.close()
    # the target silently differs: only a full resync can find it
    with Volume.open(tmp_path / "t1") as t:
        t.write(3 * CS, b"corrupted behind our back")
    chunk = CS
    if how == "chunk":
        chunk = CS * 2  # the mirror is reconfigured with another chunk size
    else:
        _damage(tmp_path / "bitmap", how)
    rec2 = Recorder()
    m2 = make_mirror(
        tmp_path, rec2, [TargetSpec("t1", tmp_path / "t1", MirrorState.TARGET)], chunk_size=chunk
    )
    assert m2.bitmap_problem and words in m2.bitmap_problem
    assert m2.wait_for_state("t1", MirrorState.TARGET)
    m2.drain_events()
    reasons = " ".join(rec2.reasons("t1"))
    assert "invalid" in reasons and words in reasons and "full resync" in reasons
    assert rec2.progress[-1].bytes_total == SIZE  # everything was copied
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")
    m2.close()


def test_restart_after_a_crash_resyncs_the_marked_chunks(
    tmp_path: Path, source: Path, rec: Recorder
) -> None:
    m = make_mirror(tmp_path, rec)
    assert m.wait_for_state("t1", MirrorState.TARGET)
    m.close()
    # a crash between the bitmap update and the target write: marked, target stale
    bm = Bitmap.open(tmp_path / "bitmap")
    bm.mark_write(5, 7, replicated=["t1"])
    bm.close()
    with Volume.open(tmp_path / "src") as s:
        s.write(5 * CS, os.urandom(2 * CS))
    rec2 = Recorder()
    m2 = make_mirror(tmp_path, rec2, [TargetSpec("t1", tmp_path / "t1", MirrorState.TARGET)])
    assert m2.wait_for_state("t1", MirrorState.TARGET)
    m2.drain_events()
    assert any("not confirmed" in r for r in rec2.reasons("t1"))
    assert rec2.progress[-1].chunks_copied == 2
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")
    m2.close()


def test_clean_restart_of_an_in_sync_target_copies_nothing(
    tmp_path: Path, mirror: Mirror, rec: Recorder
) -> None:
    rand_writes(mirror, 30)
    mirror.close()
    rec2 = Recorder()
    m2 = make_mirror(tmp_path, rec2, [TargetSpec("t1", tmp_path / "t1", MirrorState.TARGET)])
    assert m2.state("t1") is MirrorState.TARGET
    assert m2.status("t1").replicating
    m2.drain_events()
    assert not rec2.progress
    m2.close()


def test_no_bitmap_remembers_full_resyncs_in_a_flag_file(
    tmp_path: Path, source: Path, rec: Recorder
) -> None:
    m = make_mirror(tmp_path, rec, bitmap=None)
    flag = tmp_path / ("src" + NO_BITMAP_SUFFIX)
    assert m.wait_for_state("t1", MirrorState.TARGET)
    assert json.loads(flag.read_text())["clean"] is False  # open: a crash would be unclean
    m.pause("t1")
    m.write(0, b"missed")
    assert "t1" in json.loads(flag.read_text())["needs_full_resync"]
    m.resume("t1")
    assert m.wait_for_state("t1", MirrorState.TARGET)
    m.drain_events()
    assert rec.progress[-1].bytes_total == SIZE  # without a bitmap: always full
    assert json.loads(flag.read_text())["needs_full_resync"] == {}
    m.close()
    assert json.loads(flag.read_text())["clean"] is True
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")

    # clean stop, target was in sync: no resync at all
    rec2 = Recorder()
    m2 = make_mirror(
        tmp_path, rec2, [TargetSpec("t1", tmp_path / "t1", MirrorState.TARGET)], bitmap=None
    )
    assert m2.state("t1") is MirrorState.TARGET
    saved = flag.read_bytes()  # as a crash would leave it: clean = false
    m2.close()
    flag.write_bytes(saved)

    # unclean stop: full resync, and the reason says why
    with Volume.open(tmp_path / "t1") as t:
        t.write(100, b"diverged")
    rec3 = Recorder()
    m3 = make_mirror(
        tmp_path, rec3, [TargetSpec("t1", tmp_path / "t1", MirrorState.TARGET)], bitmap=None
    )
    assert m3.wait_for_state("t1", MirrorState.TARGET)
    m3.drain_events()
    assert any("not stopped cleanly" in r for r in rec3.reasons("t1"))
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")
    m3.close()


def test_two_targets_one_paused(tmp_path: Path, source: Path, rec: Recorder) -> None:
    targets = [TargetSpec("a", tmp_path / "a"), TargetSpec("b", tmp_path / "b")]
    m = make_mirror(tmp_path, rec, targets)
    assert m.wait_for_state("a", MirrorState.TARGET) and m.wait_for_state("b", MirrorState.TARGET)
    m.pause("b")
    rand_writes(m, 30)
    assert sha(tmp_path / "src") == sha(tmp_path / "a") != sha(tmp_path / "b")
    m.resume("b")
    assert m.wait_for_state("b", MirrorState.TARGET)
    assert sha(tmp_path / "src") == sha(tmp_path / "b")
    m.close()


def test_disconnect_connect_and_remove_add(tmp_path: Path, mirror: Mirror, rec: Recorder) -> None:
    mirror.disconnect("t1", "server2 is down")
    assert mirror.state("t1") is MirrorState.OUT_OF_SYNC
    assert mirror.reason("t1") == "server2 is down"
    rand_writes(mirror, 10)
    mirror.connect("t1")
    assert mirror.wait_for_state("t1", MirrorState.TARGET)
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")
    mirror.remove_target("t1")
    assert mirror.target_names == []
    assert (tmp_path / "t1").exists()  # the data volume is kept
    mirror.add_target(TargetSpec("t2", tmp_path / "t2"))
    assert mirror.wait_for_state("t2", MirrorState.TARGET)
    assert sha(tmp_path / "src") == sha(tmp_path / "t2")
    with pytest.raises(MirrorError):
        mirror.pause("t1")


def test_wait_for_previous_source_and_force_online(
    tmp_path: Path, source: Path, rec: Recorder
) -> None:
    Volume.create(tmp_path / "old", SIZE).close()
    m = make_mirror(
        tmp_path,
        rec,
        [TargetSpec("server1", tmp_path / "old", MirrorState.TARGET)],
        awaiting_previous_source="server1",
    )
    assert m.state("server1") is MirrorState.WAIT_FOR_PREVIOUS_SOURCE
    assert not m.online
    with pytest.raises(MirrorNotOnline):
        m.write(0, b"x")
    message = m.force_online()
    assert "stale" in message and "server1" in message and "full resync" in message
    assert m.online
    assert m.wait_for_state("server1", MirrorState.TARGET)
    m.write(0, b"now it works")
    assert sha(tmp_path / "src") == sha(tmp_path / "old")
    assert "already online" in m.force_online()
    m.close()


def test_callbacks_may_call_back_and_may_fail(tmp_path: Path, source: Path) -> None:
    hub = EventHub()
    got: list[object] = []
    hub.subscribe(got.append)
    statuses: list[object] = []
    m_ref: list[Mirror] = []

    def on_state(target: str, state: MirrorState, reason: str) -> None:
        hub.publish(MirrorStateChanged("datarep-data", target, state.name, reason))
        if m_ref:
            statuses.append(m_ref[0].status(target))  # re-entrant: no deadlock
        raise RuntimeError("a broken subscriber")

    def on_progress(p: ResyncProgress) -> None:
        hub.publish(p.as_event("datarep-data"))

    m = Mirror(
        tmp_path / "src",
        [TargetSpec("t1", tmp_path / "t1")],
        tmp_path / "bitmap",
        on_state=on_state,
        on_progress=on_progress,
        speed_limit_kbps=0,
    )
    m_ref.append(m)
    assert m.wait_for_state("t1", MirrorState.TARGET)
    m.drain_events()
    assert any(isinstance(e, MirrorStateChanged) and e.state == "TARGET" for e in got)
    assert any(isinstance(e, MirrorProgress) for e in got)
    m.write(0, b"still working")
    m.close()


def test_bad_configuration_is_refused(tmp_path: Path, source: Path) -> None:
    with pytest.raises(MirrorError):
        Mirror(tmp_path / "src", [TargetSpec("a", tmp_path / "src")], None)
    with pytest.raises(MirrorError):
        Mirror(
            tmp_path / "src",
            [TargetSpec("a", tmp_path / "x"), TargetSpec("a", tmp_path / "y")],
            None,
        )


def test_target_of_the_wrong_size_is_out_of_sync(
    tmp_path: Path, source: Path, rec: Recorder
) -> None:
    Volume.create(tmp_path / "t1", SIZE // 2).close()
    m = make_mirror(tmp_path, rec)
    assert m.state("t1") is MirrorState.OUT_OF_SYNC
    assert "bytes" in m.reason("t1")
    m.write(0, b"source still works")
    m.close()


# Each target has its own mode (Extend "Next Server" asks per target).
def test_a_synchronous_and_an_asynchronous_target(
    tmp_path: Path, source: Path, rec: Recorder
) -> None:
    targets = [
        TargetSpec("t1", tmp_path / "t1"),
        TargetSpec("t2", tmp_path / "t2", asynchronous=True),
    ]
    m = make_mirror(tmp_path, rec, targets, async_max_writes=4, async_max_bytes=CS)
    assert m.wait_for_state("t1", MirrorState.TARGET)
    assert m.wait_for_state("t2", MirrorState.TARGET)
    # Only the asynchronous target has a queue; the synchronous one is written in place.
    assert m._targets["t1"].channel is None
    assert m._targets["t2"].channel is not None
    gate = threading.Event()
    volume = m._targets["t2"].volume
    assert volume is not None
    original = volume.write

    def held(offset: int, data: bytes, durable: bool = False) -> None:
        gate.wait(10)  # the target is slow: its queue holds the writes meanwhile
        original(offset, data, durable=durable)

    volume.write = held  # type: ignore[method-assign]
    rand_writes(m, 3, durable=True)
    # The writes returned with t2's copies still queued: t1 has them already.
    assert sha(tmp_path / "src") == sha(tmp_path / "t1")
    assert sha(tmp_path / "src") != sha(tmp_path / "t2")
    gate.set()
    m.flush()
    assert sha(tmp_path / "src") == sha(tmp_path / "t2")
    assert m.status("t2").dirty_chunks == 0
    m.close()
