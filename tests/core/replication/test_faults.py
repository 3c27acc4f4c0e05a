"""Real faults on real filesystems: a target that fills up, a read-only target.

The target lives on a tiny loop-mounted ext4 image (or, where a loop mount is
impossible, a size-limited tmpfs); the tests skip, saying why, only when neither can
be mounted (not root, no loop device, no mkfs.ext4).
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.model import MirrorState
from core.replication.mirror import Mirror, TargetSpec
from core.replication.volume import Volume

MiB = 1024 * 1024
CS = 65536
SIZE = 4 * MiB

pytestmark = pytest.mark.needs_root


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False)


def _umount(mnt: Path) -> None:
    if _run("umount", str(mnt)).returncode != 0:
        _run("umount", "-l", str(mnt))


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A ~8 MiB filesystem mounted in tmp_path; unmounted at teardown in every case."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    why: list[str] = []
    if shutil.which("mkfs.ext4"):
        img = tmp_path / "tiny.img"
        with open(img, "wb") as f:
            f.truncate(8 * MiB)
        r = _run("mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", str(img))
        if r.returncode == 0:
            r = _run("mount", "-o", "loop", str(img), str(mnt))
            if r.returncode == 0:
                try:
                    yield mnt
                finally:
                    _umount(mnt)
                return
        why.append(f"ext4 loop mount failed: {r.stderr.strip()}")
    else:
        why.append("mkfs.ext4 is missing")
    r = _run("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt))
    if r.returncode != 0:
        why.append(f"tmpfs mount failed: {r.stderr.strip()}")
        pytest.skip("; ".join(why))
    try:
        yield mnt
    finally:
        _umount(mnt)


def _fill(mnt: Path) -> Path:
    """Write a file until the filesystem is full; returns it."""
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    block = b"\xaa" * CS
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                assert exc.errno in (errno.ENOSPC, errno.EDQUOT)
                break
        for size in (4096, 512, 1):
            try:
                while True:
                    os.write(fd, block[:size])
            except OSError:
                pass
        try:
            os.fsync(fd)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_full_target_goes_out_of_sync_and_source_is_untouched(
    tmp_path: Path, tiny_fs: Path
) -> None:
    rng = random.Random(3)
    src = tmp_path / "src"
    with Volume.create(src, SIZE) as v:  # data in the first MiB, holes after it
        v.write(0, rng.randbytes(MiB))
    states: list[tuple[str, MirrorState, str]] = []
    m = Mirror(
        src,
        [TargetSpec("tiny", tiny_fs / "tgt")],
        tmp_path / "bitmap",
        chunk_size=CS,
        speed_limit_kbps=0,
        on_state=lambda t, s, r: states.append((t, s, r)),
    )
    try:
        assert m.wait_for_state("tiny", MirrorState.TARGET)
        assert sha(src.read_bytes()) == sha((tiny_fs / "tgt").read_bytes())
        filler = _fill(tiny_fs)

        before = bytearray(src.read_bytes())
        data = rng.randbytes(256 * 1024)
        m.write(2 * MiB, data, durable=True)  # a hole in the target: needs new blocks
        before[2 * MiB : 2 * MiB + len(data)] = data
        assert m.state("tiny") is MirrorState.OUT_OF_SYNC
        assert "No space left on device" in m.reason("tiny")
        m.drain_events()
        assert ("tiny", MirrorState.OUT_OF_SYNC, m.reason("tiny")) in states
        # the source has exactly what was written, and takes more writes
        assert sha(src.read_bytes()) == sha(bytes(before))
        m.write(3 * MiB, b"more", durable=True)
        before[3 * MiB : 3 * MiB + 4] = b"more"
        assert sha(src.read_bytes()) == sha(bytes(before))
        assert m.status("tiny").dirty_chunks >= 4  # what the target missed is marked

        # space comes back: resume, resync, in sync again
        filler.unlink()
        m.resume("tiny")
        assert m.wait_for_state("tiny", MirrorState.TARGET)
        assert sha(src.read_bytes()) == sha((tiny_fs / "tgt").read_bytes())
    finally:
        m.close()


def test_read_only_target_is_out_of_sync_until_writable(tmp_path: Path, tiny_fs: Path) -> None:
    src = tmp_path / "src"
    with Volume.create(src, SIZE) as v:
        v.write(0, random.Random(4).randbytes(MiB))
    target = TargetSpec("ro", tiny_fs / "tgt", MirrorState.TARGET)
    m = Mirror(src, [target], tmp_path / "bitmap", chunk_size=CS, speed_limit_kbps=0)
    assert m.wait_for_state("ro", MirrorState.TARGET)
    m.close()

    r = _run("mount", "-o", "remount,ro", str(tiny_fs))
    if r.returncode != 0:
        pytest.skip(f"cannot remount read-only: {r.stderr.strip()}")
    try:
        m = Mirror(src, [target], tmp_path / "bitmap", chunk_size=CS, speed_limit_kbps=0)
        assert m.state("ro") is MirrorState.OUT_OF_SYNC
        assert "Read-only file system" in m.reason("ro")
        m.write(100, b"the source goes on", durable=True)
        assert src.read_bytes()[100:118] == b"the source goes on"
        assert m.status("ro").dirty_chunks == 1
    finally:
        assert _run("mount", "-o", "remount,rw", str(tiny_fs)).returncode == 0
    m.connect("ro")
    assert m.wait_for_state("ro", MirrorState.TARGET)
    assert sha(src.read_bytes()) == sha((tiny_fs / "tgt").read_bytes())
    m.close()
