"""The bitmap file: format, crash safety, verification on open, the D/C protocol."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.replication.bitmap import (
    HEADER_SIZE,
    MAGIC,
    Bitmap,
    BitmapError,
    BitmapInvalid,
    MemoryBitmap,
)

MiB = 1024 * 1024
CS = 65536
SIZE = 4 * MiB  # 64 chunks


def make(tmp_path: Path, **kw: object) -> Bitmap:
    args: dict[str, object] = {"volume_size": SIZE, "chunk_size": CS, "targets": ["t1"]}
    args.update(kw)
    return Bitmap.create(tmp_path / "bm", dirty=False, **args)  # type: ignore[arg-type]


def test_create_open_round_trip(tmp_path: Path) -> None:
    bm = Bitmap.create(tmp_path / "bm", volume_size=SIZE + 100, chunk_size=CS, targets=["a", "b"])
    assert bm.nchunks == 65
    assert bm.targets() == ["a", "b"]
    assert bm.dirty_count("a") == 65  # a new target needs a full resync
    bm.close()
    again = Bitmap.open(tmp_path / "bm", volume_size=SIZE + 100, chunk_size=CS)
    assert again.targets() == ["a", "b"] and again.dirty_chunks("b") == list(range(65))
    with open(tmp_path / "bm", "rb") as f:
        assert f.read(8) == MAGIC
    again.close()


def test_create_refuses_existing_file_and_bad_names(tmp_path: Path) -> None:
    make(tmp_path).close()
    with pytest.raises(BitmapError, match="exists"):
        make(tmp_path)
    with pytest.raises(BitmapError):
        Bitmap.create(tmp_path / "x", volume_size=SIZE, targets=["a", "a"])
    with pytest.raises(BitmapError):
        Bitmap.create(tmp_path / "x", volume_size=SIZE, targets=["n" * 61])
    with pytest.raises(BitmapError):
        Bitmap.open(tmp_path / "missing")


def test_mark_sets_durably_and_commit_clears_only_copied(tmp_path: Path) -> None:
    bm = make(tmp_path)
    before = bm.fsyncs
    assert bm.mark_write(3, 5, unreplicated=["t1"]) is True
    assert bm.fsyncs == before + 1
    assert bm.mark_write(3, 5, unreplicated=["t1"]) is False  # already set: no I/O
    assert bm.dirty_chunks("t1") == [3, 4]
    # committing a chunk nobody copied does nothing
    assert bm.commit_clears("t1", [3, 4]) == 0
    bm.note_copied("t1", 3, 5)
    # a write after the copy cancels the pending clear of chunk 4
    bm.mark_write(4, 5, unreplicated=["t1"])
    assert bm.commit_clears("t1", [3, 4]) == 1
    assert bm.dirty_chunks("t1") == [4]
    bm.close()


def test_scattered_runs_are_marked_with_one_durable_update(tmp_path: Path) -> None:
    bm = make(tmp_path)
    bm.note_copied_runs("t1", [(0, 64)])  # copied, not committed: the marks cancel that
    runs = [(c, c + 1) for c in range(0, 64, 10)] + [(33, 36)]
    before = bm.fsyncs
    assert bm.mark_runs("t1", runs) is True
    assert bm.fsyncs == before + 1
    assert bm.mark_runs("t1", runs) is False  # all set already: no I/O
    assert bm.fsyncs == before + 1
    marked = [0, 10, 20, 30, 33, 34, 35, 40, 50, 60]
    assert bm.dirty_chunks("t1") == marked
    assert bm.commit_clears("t1", range(64)) == 0  # every copy before the marks is void
    bm.close()
    again = Bitmap.open(tmp_path / "bm", volume_size=SIZE, chunk_size=CS)
    assert again.dirty_chunks("t1") == marked
    again.close()


def test_cancel_from_another_process_view(tmp_path: Path) -> None:
    """Two Bitmap objects on one file (two processes) see each other's changes."""
    a = make(tmp_path)
    b = Bitmap.open(tmp_path / "bm")
    a.mark_write(10, 11, unreplicated=["t1"])
    assert b.is_dirty("t1", 10)
    b.note_copied("t1", 10, 11)
    a.mark_write(10, 11, unreplicated=["t1"])  # the writer cancels b's pending clear
    assert b.commit_clears("t1", [10]) == 0
    assert a.is_dirty("t1", 10)
    b.note_copied("t1", 10, 11)
    assert b.commit_clears("t1", [10]) == 1
    assert not a.is_dirty("t1", 10)
    a.close()
    b.close()


def test_replicated_marks_and_hot_extent(tmp_path: Path) -> None:
    bm = make(tmp_path, targets=["in", "out"])
    bm.mark_write(4, 5, unreplicated=["in"])  # someone else marked chunk 4 (C cancelled)
    bm.mark_write(1, 2, replicated=["in"], unreplicated=["out"], hot=(0, 8))
    assert bm.dirty_chunks("in") == list(range(8))
    assert bm.dirty_chunks("out") == [1]
    # the written chunk and the hot ones nobody else marked may be committed clear;
    # chunk 4 keeps its bit: another writer marked it and the target lacks its write
    assert bm.commit_clears("in", range(8)) == 7
    assert bm.dirty_chunks("in") == [4]
    assert bm.commit_clears("out", [1]) == 0
    # the extent is not all marked any more: marking it again is a durable update ...
    assert bm.mark_write(4, 5, replicated=["in"], hot=(0, 8)) is True
    # ... and then, all marked, further writes there cost no bitmap I/O
    before = bm.fsyncs
    assert bm.mark_write(6, 7, replicated=["in"], hot=(0, 8)) is False
    assert bm.fsyncs == before
    # chunk 4 was marked by someone else before: its C bit stays cancelled
    assert bm.commit_clears("in", range(8)) == 7
    assert bm.dirty_chunks("in") == [4]
    bm.close()


def test_targets_add_remove_and_growth(tmp_path: Path) -> None:
    bm = make(tmp_path, capacity=2)
    other = Bitmap.open(tmp_path / "bm")
    bm.add_target("t2", dirty=False)
    bm.mark_write(1, 2, unreplicated=["t1", "t2"])
    bm.add_target("t3")  # table full: the file is rewritten with a bigger table
    assert bm.capacity == 4
    assert bm.targets() == ["t1", "t2", "t3"]
    # the other "process" notices the new file under the lock and reopens it
    assert other.targets() == ["t1", "t2", "t3"]
    assert other.dirty_chunks("t2") == [1] and other.dirty_count("t3") == 64
    other.mark_write(2, 3, unreplicated=["t2"])
    assert bm.dirty_chunks("t2") == [1, 2]
    bm.remove_target("t1")
    assert other.targets() == ["t2", "t3"]
    with pytest.raises(BitmapError):
        bm.dirty_count("t1")
    bm.close()
    other.close()


def test_torn_update_falls_back_to_previous_slot(tmp_path: Path) -> None:
    bm = make(tmp_path)
    bm.mark_write(7, 8, unreplicated=["t1"])  # durable: generation n
    with open(tmp_path / "bm", "rb") as f:
        raw = f.read(HEADER_SIZE)
    slot_size = struct.unpack_from("<Q", raw, 40)[0]
    gen = bm.generation
    cur = 0 if struct.unpack_from("<Q", raw, 32)[0] == gen else 1
    torn_at = (1 - cur) * slot_size  # where the next update would go
    bm.close()
    with open(tmp_path / "bm", "r+b") as f:
        f.seek(torn_at + HEADER_SIZE + 10)
        f.write(b"\xff" * 100)  # half-written garbage
        f.seek(torn_at + 32)
        f.write(struct.pack("<Q", gen + 1))  # with a newer generation in its header
    again = Bitmap.open(tmp_path / "bm")
    assert again.dirty_chunks("t1") == [7]
    assert again.generation == gen
    again.mark_write(9, 10, unreplicated=["t1"])  # and it goes on from there
    assert Bitmap.open(tmp_path / "bm").dirty_chunks("t1") == [7, 9]
    again.close()


def _corrupt(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    slot = struct.unpack_from("<Q", data, 40)[0]
    if how == "truncated":
        data = data[: len(data) - 100]
    elif how == "magic":
        data[0:8] = b"NOTABMAP"
        data[slot : slot + 8] = b"NOTABMAP"
    elif how == "checksum":
        for base in (0, slot):
            data[base + HEADER_SIZE + 64 * 8 + 1] ^= 0xFF  # a bit byte in both slots
    elif how == "tiny":
        data = data[:10]
    elif how == "long":
        data += b"\0" * 4096
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("truncated", "truncated"),
        ("magic", "magic"),
        ("checksum", "checksum"),
        ("tiny", "truncated"),
        ("long", "too long"),
    ],
)
def test_damaged_file_is_detected_on_open(tmp_path: Path, how: str, words: str) -> None:
    make(tmp_path).close()
    _corrupt(tmp_path / "bm", how)
    with pytest.raises(BitmapInvalid) as info:
        Bitmap.open(tmp_path / "bm", volume_size=SIZE, chunk_size=CS)
    assert words in info.value.reason
    assert str(tmp_path / "bm") in str(info.value)


def test_mismatched_chunk_or_volume_size_is_invalid(tmp_path: Path) -> None:
    make(tmp_path).close()
    with pytest.raises(BitmapInvalid, match="chunk size"):
        Bitmap.open(tmp_path / "bm", volume_size=SIZE, chunk_size=4096)
    with pytest.raises(BitmapInvalid, match="volume size"):
        Bitmap.open(tmp_path / "bm", volume_size=2 * SIZE, chunk_size=CS)


def test_slot0_header_destroyed_layout_found_from_slot1(tmp_path: Path) -> None:
    bm = make(tmp_path)
    bm.mark_write(5, 6, unreplicated=["t1"])
    bm.mark_write(6, 7, unreplicated=["t1"])
    bm.close()
    data = bytearray((tmp_path / "bm").read_bytes())
    data[0:HEADER_SIZE] = b"\0" * HEADER_SIZE
    (tmp_path / "bm").write_bytes(bytes(data))
    again = Bitmap.open(tmp_path / "bm")
    assert set(again.dirty_chunks("t1")) >= {5}
    again.close()


# -- a model check: the file always says what a plain set of bits says -----------------

ops = st.lists(
    st.tuples(
        st.sampled_from(["mark", "mark_runs", "mark_rep", "copy", "commit", "set_all", "reopen"]),
        st.integers(0, 63),
        st.integers(1, 6),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, database=None)
@given(ops=ops)
@example(ops=[("mark", 0, 1), ("mark_rep", 0, 2), ("commit", 0, 2)])
@example(ops=[("mark_rep", 3, 2), ("copy", 0, 6), ("mark", 4, 1), ("commit", 0, 8)])
def test_bitmap_matches_a_model(tmp_path_factory: pytest.TempPathFactory, ops: list) -> None:  # type: ignore[type-arg]
    d = tmp_path_factory.mktemp("bm")
    bm = Bitmap.create(d / "bm", volume_size=SIZE, chunk_size=CS, targets=["t"], dirty=False)
    mem = MemoryBitmap(volume_size=SIZE, chunk_size=CS, targets=["t"])
    mem.commit_clears("t", [])  # (nothing)
    for c in range(64):
        mem.note_copied("t", c, c + 1)
    mem.commit_clears("t", range(64))
    dirty: set[int] = set()
    copied: set[int] = set()
    for op, first, n in ops:
        end = min(64, first + n)
        if op == "mark":
            for b in (bm, mem):
                b.mark_write(first, end, unreplicated=["t"])
            dirty |= set(range(first, end))
            copied -= set(range(first, end))
        elif op == "mark_runs":  # the run and another one two chunks further (clipped)
            runs = [(first, end), (min(64, end + 2), min(64, end + 2 + n))]
            for b in (bm, mem):
                b.mark_runs("t", runs)
            for a, z in runs:
                dirty |= set(range(a, z))
                copied -= set(range(a, z))
        elif op == "mark_rep":
            for b in (bm, mem):
                b.mark_write(first, end, replicated=["t"])
            fresh = set(range(first, end)) - dirty  # only chunks it marks get C set
            dirty |= fresh
            copied |= fresh
        elif op == "copy":
            for b in (bm, mem):
                b.note_copied("t", first, end)
            copied |= set(range(first, end))
        elif op == "commit":
            chunks = list(range(first, end))
            n1 = bm.commit_clears("t", chunks)
            n2 = mem.commit_clears("t", chunks)
            gone = {c for c in chunks if c in copied}
            assert n1 == n2 == len(gone & dirty)
            dirty -= gone
            copied -= gone
        elif op == "set_all":
            for b in (bm, mem):
                b.set_all("t")
            dirty = set(range(64))
            copied = set()
        elif op == "reopen":
            bm.close()
            bm = Bitmap.open(d / "bm", volume_size=SIZE, chunk_size=CS)
        assert bm.dirty_chunks("t") == sorted(dirty) == mem.dirty_chunks("t")
        assert bm.dirty_count("t") == len(dirty)
    bm.close()
