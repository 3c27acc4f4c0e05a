"""A real btrfs: fsinfo sees it, and a bitmap there fails with EINVAL as in DataKeeper."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import fsinfo
from core.replication.bitmap import Bitmap, check_bitmap_location
from core.replication.mirror import Mirror, TargetSpec
from core.replication.volume import Volume

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.needs_root


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False)


@pytest.fixture
def btrfs(tmp_path: Path) -> Iterator[Path]:
    """A 128 MiB (sparse) btrfs image loop-mounted in tmp_path, unmounted at teardown."""
    if os.geteuid() != 0:
        pytest.skip("loop-mounting btrfs needs root")
    if shutil.which("mkfs.btrfs") is None:
        pytest.skip("mkfs.btrfs (btrfs-progs) is not installed")
    img = tmp_path / "btrfs.img"
    with open(img, "wb") as f:
        f.truncate(128 * MiB)
    r = _run("mkfs.btrfs", "-q", str(img))
    if r.returncode != 0:
        pytest.skip(f"mkfs.btrfs failed: {r.stderr.strip()}")
    mnt = tmp_path / "btrfs"
    mnt.mkdir()
    r = _run("mount", "-o", "loop", str(img), str(mnt))
    if r.returncode != 0:
        pytest.skip(f"cannot loop-mount btrfs (no loop device or no btrfs module?): {r.stderr}")
    try:
        yield mnt
    finally:
        if _run("umount", str(mnt)).returncode != 0:
            _run("umount", "-l", str(mnt))


def test_fsinfo_reports_btrfs_inside_and_for_paths_not_yet_there(btrfs: Path) -> None:
    (btrfs / "opt").mkdir()
    info = fsinfo.filesystem_of(btrfs / "opt")
    assert info.fs_type == "btrfs" and info.magic == 0x9123683E
    assert info.mount_point == str(btrfs)
    assert info.disagreement == ""
    future = fsinfo.filesystem_of(btrfs / "opt" / "LifeKeeper" / "bitmap_datarep-data")
    assert future.fs_type == "btrfs"
    assert future.path_checked == str(btrfs / "opt")
    assert fsinfo.is_btrfs(btrfs / "no" / "such" / "file")
    assert not fsinfo.is_btrfs(btrfs.parent)  # tmp_path itself is not btrfs


def _assert_einval(exc: OSError) -> None:
    assert exc.errno == errno.EINVAL
    assert "invalid argument" in str(exc)
    assert "btrfs" in str(exc)


def test_creating_a_bitmap_on_btrfs_fails_with_einval(btrfs: Path) -> None:
    target = btrfs / "LifeKeeper" / "bitmap_datarep-data"
    with pytest.raises(OSError) as info:
        Bitmap.create(target, volume_size=4 * MiB)
    _assert_einval(info.value)
    assert not target.exists()
    with pytest.raises(OSError) as info2:
        check_bitmap_location(btrfs / "x")
    _assert_einval(info2.value)


def test_opening_an_existing_bitmap_on_btrfs_fails_too(tmp_path: Path, btrfs: Path) -> None:
    Bitmap.create(tmp_path / "bm", volume_size=4 * MiB).close()
    shutil.copy(tmp_path / "bm", btrfs / "bm")
    with pytest.raises(OSError) as info:
        Bitmap.open(btrfs / "bm")
    _assert_einval(info.value)


def test_configuring_a_mirror_with_a_btrfs_bitmap_fails(tmp_path: Path, btrfs: Path) -> None:
    Volume.create(tmp_path / "src", 4 * MiB).close()
    with pytest.raises(OSError) as info:
        Mirror(tmp_path / "src", [TargetSpec("t", tmp_path / "tgt")], btrfs / "bitmap")
    _assert_einval(info.value)
    assert "choose a bitmap location on another filesystem" in str(info.value)
    assert not (btrfs / "bitmap").exists()
    assert not (tmp_path / "tgt").exists()  # nothing was configured
    # volumes on btrfs are fine; only the bitmap is refused
    Volume.create(btrfs / "vol", 4 * MiB).close()
    m = Mirror(tmp_path / "src", [TargetSpec("t", btrfs / "vol")], tmp_path / "bitmap")
    m.close()


def test_resync_process_refuses_a_btrfs_bitmap(tmp_path: Path, btrfs: Path) -> None:
    Volume.create(tmp_path / "src", MiB).close()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.replication.resync",
            "--source",
            str(tmp_path / "src"),
            "--target",
            str(tmp_path / "tgt"),
            "--bitmap",
            str(btrfs / "bm"),
            "--target-name",
            "t",
        ],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert r.returncode == 1
    assert "invalid argument" in r.stderr
