"""core.fsinfo: statfs magic cross-checked with mountinfo, nearest existing ancestor."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import fsinfo
from core.fsinfo import (
    FsProbeError,
    MountEntry,
    filesystem_of,
    find_mount,
    nearest_existing_ancestor,
    parse_mountinfo,
    unescape_mountinfo,
)

SAMPLE = (
    "22 1 0:21 / /proc rw,relatime - proc proc rw\n"
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "40 27 0:40 / /mnt/my\\040disk rw,relatime shared:5 - xfs /dev/sdb1 rw\n"
    "41 40 0:41 / /mnt/my\\040disk/inner rw master:2 - btrfs /dev/sdc rw,subvol=/\n"
    "42 27 0:42 /sub/dir /srv/bind rw - btrfs /dev/sdc rw\n"
    "43 27 0:43 / /srv/bind rw - tmpfs tmpfs rw\n"
    "44 27 0:44 / /back\\134slash\\011tab rw - nfs4 server:/export rw\n"
    "garbage line without separator\n"
)


def test_unescape_octal() -> None:
    assert unescape_mountinfo(r"/a\040b") == "/a b"
    assert unescape_mountinfo(r"/x\011y\012z\134w") == "/x\ty\nz\\w"
    assert unescape_mountinfo(r"/no\escape\04") == r"/no\escape\04"
    assert unescape_mountinfo("/plain") == "/plain"


def test_parse_mountinfo_fields_and_escapes() -> None:
    entries = parse_mountinfo(SAMPLE)
    assert len(entries) == 7  # the garbage line is skipped
    e = entries[2]
    assert e.mount_point == "/mnt/my disk"
    assert (e.fs_type, e.source, e.device) == ("xfs", "/dev/sdb1", "0:40")
    assert entries[4].root == "/sub/dir"
    assert entries[6].mount_point == "/back\\slash\ttab"


def test_longest_prefix_wins_and_prefix_is_not_a_path_prefix() -> None:
    entries = parse_mountinfo(SAMPLE)

    def fs(p: str) -> str:
        m = find_mount(p, entries)
        assert m is not None
        return m.fs_type

    assert fs("/mnt/my disk/file") == "xfs"
    assert fs("/mnt/my disk/inner/deeper/file") == "btrfs"
    assert fs("/mnt/my disk/innerness") == "xfs"  # not under /mnt/my disk/inner
    assert fs("/mnt/my diskette") == "ext4"
    assert fs("/proc") == "proc"
    assert fs("/") == "ext4"
    # two mounts on /srv/bind: the later one (on top) is the visible one
    assert fs("/srv/bind/x") == "tmpfs"


def test_nearest_existing_ancestor(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert nearest_existing_ancestor(tmp_path / "a" / "b" / "c") == str(tmp_path / "a")
    assert nearest_existing_ancestor(tmp_path / "a") == str(tmp_path / "a")
    info = filesystem_of(tmp_path / "a" / "not" / "yet" / "bitmap")
    assert info.path_checked == str(tmp_path / "a")


def test_tmp_path_reports_a_real_type(tmp_path: Path) -> None:
    info = filesystem_of(tmp_path)
    assert info.fs_type not in ("", "unknown")
    assert info.magic is not None and info.statfs_type is not None
    assert info.mount_point and str(tmp_path).startswith(info.mount_point.rstrip("/") or "/")
    assert info.disagreement == ""
    assert fsinfo.is_btrfs(tmp_path) is (info.fs_type == "btrfs")
    assert "is on" in fsinfo.describe(tmp_path)


def test_relative_and_odd_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert filesystem_of("some/relative/file").path_checked == str(tmp_path)
    assert filesystem_of("").path_checked == str(tmp_path)
    assert filesystem_of(b"bytes/path").path_checked == str(tmp_path)
    (tmp_path / "link").symlink_to(tmp_path / "nowhere" / "deep")
    assert filesystem_of(tmp_path / "link").path_checked == str(tmp_path)
    (tmp_path / "file").write_text("x")
    assert filesystem_of(tmp_path / "file" / "under" / "a" / "file").path_checked == str(
        tmp_path / "file"
    )
    assert filesystem_of("x" * 5000).path_checked == str(tmp_path)  # too long: its parent
    with pytest.raises(FsProbeError):
        filesystem_of("bad\x00path")


def test_statfs_wins_over_a_disagreeing_mountinfo(tmp_path: Path) -> None:
    real = filesystem_of(tmp_path)
    fake = [
        MountEntry(1, 0, "0:1", "/", "/", "rw", "xfs" if real.fs_type != "xfs" else "ext4", "x", "")
    ]
    info = filesystem_of(tmp_path, mountinfo=fake)
    assert info.fs_type == real.statfs_type or info.fs_type == real.fs_type
    assert info.mountinfo_type == fake[0].fs_type
    assert "statfs" in info.disagreement
    none = filesystem_of(tmp_path, mountinfo=[])
    assert none.fs_type == real.statfs_type and "no entry" in none.disagreement


def test_proc_is_proc() -> None:
    assert filesystem_of("/proc/self").fs_type == "proc"


@contextlib.contextmanager
def _mounted(args: list[str], mnt: Path) -> Iterator[None]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting needs root and mount(8)")
    r = subprocess.run(["mount", *args, str(mnt)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount here: {r.stderr.strip()}")
    try:
        yield
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


@pytest.mark.needs_root
def test_real_mount_with_a_space_and_a_bind_mount(tmp_path: Path) -> None:
    mnt = tmp_path / "with space"
    mnt.mkdir()
    with _mounted(["-t", "tmpfs", "-o", "size=1m", "tmpfs"], mnt):
        info = filesystem_of(mnt / "not-yet" / "file")
        assert info.fs_type == "tmpfs"
        assert info.mount_point == str(mnt)  # "\040" decoded
        assert info.path_checked == str(mnt)
        assert info.disagreement == ""
        (mnt / "sub").mkdir()
        bind = tmp_path / "bind"
        bind.mkdir()
        with _mounted(["--bind", str(mnt / "sub")], bind):
            b = filesystem_of(bind / "x")
            assert b.fs_type == "tmpfs" and b.mount_point == str(bind)
