"""Volumes: fixed-size files, I/O by offset, clear range errors, holes, chunk locks."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from core.errors import LkError
from core.replication.volume import (
    ChunkLocks,
    Volume,
    VolumeError,
    VolumeRangeError,
    VolumeSizeMismatch,
    is_hole,
)

MiB = 1024 * 1024


def test_create_is_sparse_and_reads_zeros(tmp_path: Path) -> None:
    with Volume.create(tmp_path / "v", 4 * MiB) as v:
        assert v.size == 4 * MiB
        assert v.read(0, 4096) == b"\0" * 4096
        assert v.is_hole(0, 4 * MiB)
    assert os.stat(tmp_path / "v").st_blocks == 0


def test_write_read_round_trip_and_durable(tmp_path: Path) -> None:
    with Volume.create(tmp_path / "v", MiB) as v:
        v.write(1000, b"hello", durable=True)
        v.write(MiB - 3, bytearray(b"end"))
        assert v.read(998, 9) == b"\0\0hello\0\0"
        buf = bytearray(3)
        assert v.readinto(MiB - 3, buf) == 3 and buf == b"end"
        assert not v.is_hole(0, 4096)
        v.flush()
        v.fsync()
    with Volume.open(tmp_path / "v") as v2:
        assert v2.size == MiB
        assert v2.read(1000, 5) == b"hello"


@pytest.mark.parametrize(("offset", "size"), [(-1, 1), (0, 2 * MiB), (MiB, 1), (MiB - 1, 2)])
def test_out_of_range_io_names_path_offset_and_size(tmp_path: Path, offset: int, size: int) -> None:
    with Volume.create(tmp_path / "v", MiB) as v:
        with pytest.raises(VolumeRangeError) as info:
            v.write(offset, b"x" * size)
        err = info.value
        assert isinstance(err, LkError)
        assert (err.offset, err.size, err.volume_size) == (offset, size, MiB)
        text = str(err)
        assert str(tmp_path / "v") in text and str(offset) in text and str(size) in text
        with pytest.raises(VolumeRangeError):
            v.read(offset, size)


def test_create_refuses_existing_and_size_mismatch(tmp_path: Path) -> None:
    Volume.create(tmp_path / "v", MiB).close()
    with pytest.raises(VolumeError, match="already exists"):
        Volume.create(tmp_path / "v", MiB)
    with pytest.raises(VolumeSizeMismatch):
        Volume.create(tmp_path / "v", 2 * MiB, exist_ok=True)
    Volume.create(tmp_path / "v", MiB, exist_ok=True).close()
    with pytest.raises(VolumeError):
        Volume.create(tmp_path / "w", 0)


def test_open_errors_are_lk_errors(tmp_path: Path) -> None:
    with pytest.raises(VolumeError, match="no such volume"):
        Volume.open(tmp_path / "missing")
    (tmp_path / "empty").touch()
    with pytest.raises(VolumeError, match="empty"):
        Volume.open(tmp_path / "empty")
    with pytest.raises(VolumeError, match="directory"):
        Volume.open(tmp_path)


def test_readonly_volume_refuses_writes_with_oserror(tmp_path: Path) -> None:
    Volume.create(tmp_path / "v", MiB).close()
    with Volume.open(tmp_path / "v", readonly=True) as v, pytest.raises(OSError):
        v.write(0, b"x")


def test_is_hole_sees_data_and_holes(tmp_path: Path) -> None:
    with Volume.create(tmp_path / "v", 4 * MiB) as v:
        v.write(MiB, b"x" * 4096)
        fd = v.fileno()
        assert not is_hole(fd, 0, 2 * MiB)
        assert not is_hole(fd, MiB, 1)
        assert is_hole(fd, 2 * MiB, 2 * MiB)
        assert is_hole(fd, 0, 0)


def test_chunk_locks_exclude_threads_and_allow_disjoint(tmp_path: Path) -> None:
    Volume.create(tmp_path / "v", MiB).close()
    locks = ChunkLocks(tmp_path / "v", 65536)
    entered = threading.Event()
    release = threading.Event()
    got = threading.Event()

    def holder() -> None:
        with locks.exclusive(2, 4):
            entered.set()
            release.wait(10)

    def contender() -> None:
        with locks.shared(3, 5):
            got.set()

    th = threading.Thread(target=holder)
    th.start()
    assert entered.wait(10)
    with locks.exclusive(4, 8):  # disjoint: no wait
        pass
    th2 = threading.Thread(target=contender)
    th2.start()
    assert not got.wait(0.2)  # overlapping: waits for the holder
    release.set()
    assert got.wait(10)
    th.join()
    th2.join()
    with locks.everything():
        pass
    locks.close()


def test_chunk_locks_exclude_another_open_file_description(tmp_path: Path) -> None:
    """Two ChunkLocks objects (as two processes would be) exclude each other."""
    Volume.create(tmp_path / "v", MiB).close()
    a = ChunkLocks(tmp_path / "v", 65536)
    b = ChunkLocks(tmp_path / "v", 65536)
    got = threading.Event()

    def take() -> None:
        with b.exclusive(0, 1):
            got.set()

    with a.shared(0, 2):
        th = threading.Thread(target=take)
        th.start()
        assert not got.wait(0.2)
    assert got.wait(10)
    th.join()
    a.close()
    b.close()
