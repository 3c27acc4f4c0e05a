"""The mirrored volume as a block device on the source: nbdkit hosting the engine,
nbdfuse, a direct-I/O loop device, a real ext4 on top; the target over NBD in a network
namespace of the test's own. An fsync in the filesystem is on the target (and flushed
there) when it returns; small writes each fdatasync'ed cost one round trip each; the
device comes down cleanly even after the engine died."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.replication import localdev
from core.replication.hosted import EngineConfig, EngineTarget, read_status
from core.replication.nbdkit import process_alive
from tests.core.replication.nbdlab import NbdLab, leftovers, sha256, skip_reason, wait_until

MiB = 1024 * 1024

_why = skip_reason(fuse=True)
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[NbdLab]:
    the_lab = NbdLab(tmp_path)
    try:
        yield the_lab
    finally:
        problems = the_lab.close()
        left = leftovers(the_lab)
        assert not problems, problems
        assert not left, f"left behind: {left}"


def _engine_config(lab: NbdLab, tmp_path: Path, size: int) -> tuple[Path, Path, Path]:
    src, tgt = tmp_path / "source.img", tmp_path / "target.img"
    for p in (src, tgt):
        with open(p, "wb") as f:
            f.truncate(size)
    config = EngineConfig(
        source=str(src),
        bitmap=str(tmp_path / "bitmap"),
        targets=(EngineTarget("t1", lab.uri(), deadline=5.0, connect_deadline=5.0),),
        status_file=str(tmp_path / "status.json"),
        speed_limit_kbps=0,
        reconnect_interval=0.5,
    )
    return config.save(tmp_path / "engine.json"), src, tgt


def _target_state(tmp_path: Path) -> str:
    return str(read_status(tmp_path / "status.json").get("targets", {}).get("t1", {}).get("state"))


def _physical_offset(path: Path) -> int:
    """Byte offset on the device of the first block of ``path`` (``filefrag -v``)."""
    out = subprocess.run(
        ["filefrag", "-v", "-b4096", str(path)], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"^\s*0:\s+0\.\.\s*\d+:\s+(\d+)\.\.", out, re.MULTILINE)
    assert match, out
    return int(match.group(1)) * 4096


@dataclass
class _Mounted:
    dev: localdev.LocalDevice
    mnt: Path
    src: Path
    tgt: Path
    requests: Path  # the target's nbdkit logs every request there


@contextlib.contextmanager
def _ext4_on_the_mirror(lab: NbdLab, tmp_path: Path, size: int) -> Iterator[_Mounted]:
    """The mirrored device up (its target logging its requests), in sync, ext4 made
    and mounted on it; unmounted at the end (the device stays up)."""
    config, src, tgt = _engine_config(lab, tmp_path, size)
    requests = tmp_path / "target-requests.log"
    lab.serve(tgt, log_requests=requests)
    dev = lab.device_up(config, tmp_path / "dev")
    wait_until(lambda: _target_state(tmp_path) == "TARGET", 60, "the first resync")
    localdev.make_filesystem(dev.device)
    mnt = tmp_path / "mnt"
    localdev.mount(dev.device, mnt)
    try:
        yield _Mounted(dev, mnt, src, tgt, requests)
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=60)


def test_ext4_on_the_mirrored_device_an_fsync_is_on_the_target_when_it_returns(
    lab: NbdLab, tmp_path: Path
) -> None:
    with _ext4_on_the_mirror(lab, tmp_path, 96 * MiB) as m:
        dev, mnt, tgt, requests = m.dev, m.mnt, m.tgt, m.requests
        assert dev.device.startswith("/dev/loop") and dev.volume_file.stat().st_size == 96 * MiB
        data = random.Random(7).randbytes(3 * MiB + 123)
        seen_before = len(requests.read_text().splitlines())
        fd = os.open(mnt / "file", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
            # fsync returned: the data is on the target, and the target flushed since
            new = requests.read_text().splitlines()[seen_before:]
            offset = _physical_offset(mnt / "file")
            with open(tgt, "rb") as t:
                t.seek(offset)
                assert t.read(len(data)) == data
        finally:
            os.close(fd)
        writes = [i for i, line in enumerate(new) if " Write " in line]
        flushes = [i for i, line in enumerate(new) if "...Flush" in line and "return=0" in line]
        assert writes and flushes and flushes[-1] > writes[0], new[-20:]
    # everything the filesystem wrote went through the mirror: the copies are equal
    assert _target_state(tmp_path) == "TARGET"
    assert sha256(m.src) == sha256(tgt)
    fsck = subprocess.run(["e2fsck", "-fn", str(tgt)], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    cat = subprocess.run(
        ["debugfs", "-R", "cat /file", str(tgt)], capture_output=True, check=True, timeout=60
    )
    assert cat.stdout == data
    assert localdev.bring_down(tmp_path / "dev") == []
    assert read_status(tmp_path / "status.json")["stopped"] is True


def test_small_writes_each_fdatasynced_reach_the_target_in_one_round_trip_each(
    lab: NbdLab, tmp_path: Path
) -> None:
    """A database-like pattern (4 KiB written, then fdatasync, again and again): once
    the mirror has seen it, each write goes to the target with FUA and the fdatasync
    that follows needs no flush there; every block is on the target when its
    fdatasync returns."""
    blocks = 40
    rnd = random.Random(11)
    with _ext4_on_the_mirror(lab, tmp_path, 64 * MiB) as m:
        mnt, tgt, requests = m.mnt, m.tgt, m.requests
        fd = os.open(mnt / "log", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, rnd.randbytes(blocks * 4096))  # laid out first
            os.fsync(fd)
            offset = _physical_offset(mnt / "log")
            steady = blocks // 2
            seen = 0
            with open(tgt, "rb") as t:
                for i in range(blocks):
                    if i == steady:
                        seen = len(requests.read_text().splitlines())
                    block = rnd.randbytes(4096)
                    os.pwrite(fd, block, i * 4096)
                    os.fdatasync(fd)
                    t.seek(offset + i * 4096)
                    assert t.read(4096) == block, f"block {i} not on the target after fdatasync"
        finally:
            os.close(fd)
        new = requests.read_text().splitlines()[seen:]
        writes = [line for line in new if " Write " in line]  # requests (replies: "...Write")
        flushes = [line for line in new if " Flush " in line]
        assert len(writes) >= blocks - steady, new[-10:]
        # (ext4's journal may commit once meanwhile, every 5 s: a few writes and a flush)
        fua = [w for w in writes if "fua=1" in w]
        assert len(fua) >= (blocks - steady) * 0.8, [w for w in writes if "fua=1" not in w]
        assert len(flushes) <= 2, flushes
    assert _target_state(tmp_path) == "TARGET"
    assert sha256(m.src) == sha256(tgt)
    assert localdev.bring_down(tmp_path / "dev") == []


def test_the_device_comes_down_cleanly_after_the_engine_died(lab: NbdLab, tmp_path: Path) -> None:
    config, _, tgt = _engine_config(lab, tmp_path, 64 * MiB)
    lab.serve(tgt)
    dev = lab.device_up(config, tmp_path / "dev")
    wait_until(lambda: _target_state(tmp_path) == "TARGET", 60, "the first resync")
    localdev.make_filesystem(dev.device)
    mnt = tmp_path / "mnt"
    localdev.mount(dev.device, mnt)
    os.kill(dev.engine_pid, signal.SIGKILL)  # the NBD server under nbdfuse dies
    wait_until(lambda: not process_alive(dev.engine_pid), 10, "the engine to die")
    # the next read from the device fails: nbdfuse gives up on its server
    read = subprocess.run(
        ["dd", f"if={dev.volume_file}", "of=/dev/null", "bs=4096", "count=1", "iflag=direct"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert read.returncode != 0
    assert localdev.mounted_on(dev.device) == [str(mnt)]
    assert localdev.bring_down(tmp_path / "dev") == []  # unmount, detach, fusermount, stop
    assert localdev.mounted_on(dev.device) == []
    assert not process_alive(dev.fuse_pid)
    assert localdev.LocalDevice.load(tmp_path / "dev") is None
