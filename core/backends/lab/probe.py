"""The lab's answers to probes: a server path looked up in that server's folder.

A server path (``/opt/LifeKeeper/bitmap_x``) resolves under ``servers/<name>/`` (see
:mod:`core.backends.lab.layout`); the file system type comes from the real path
(``core.fsinfo``), so a folder of a server that is a loop-mounted btrfs is btrfs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from core.backends.lab.layout import LabLayout, PathOutsideServer
from core.facts import PathInfo, VolumeInfo
from core.fsinfo import FsProbeError, filesystem_of, nearest_existing_ancestor

FS_LABEL = b"LKLABFS1"  # the lab's file-system label, at offset 0 of a volume


def probe(layout: LabLayout, server: str, path: str) -> PathInfo:
    """``path`` on ``server`` as the rules need to know it."""
    try:
        local = layout.server_path(server, path)
    except PathOutsideServer as exc:
        return PathInfo(server, path, error=str(exc))
    try:
        info = filesystem_of(local)
    except FsProbeError as exc:
        return PathInfo(server, path, error=str(exc))
    exists = local.exists()
    checked = Path(info.path_checked)
    try:
        free: int | None = shutil.disk_usage(checked).free
    except OSError:
        free = None
    return PathInfo(
        server=server,
        path=path,
        exists=exists,
        is_dir=local.is_dir(),
        size=local.stat().st_size if exists and local.is_file() else None,
        checked=server_path_of(layout, server, checked),
        fs_type=info.fs_type,
        mount_point=server_path_of(layout, server, Path(info.mount_point)),
        writable=os.access(nearest_existing_ancestor(local), os.W_OK | os.X_OK),
        free_bytes=free,
    )


def volumes(layout: LabLayout, server: str) -> tuple[VolumeInfo, ...]:
    """The volume files in a server's /disks, with their size and lab file system."""
    folder = layout.server_path(server, "/disks")
    if not folder.is_dir():
        return ()
    found = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix == ".img":
            found.append(VolumeInfo(f"/disks/{p.name}", p.stat().st_size, fs_label(p)))
    return tuple(found)


def fs_label(path: Path) -> str | None:
    """The lab file system on a volume ("ext4"...), or None when it has none."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError:
        return None
    if not head.startswith(FS_LABEL):
        return None
    return head[len(FS_LABEL) :].split(b"\0", 1)[0].decode("ascii", "replace") or None


def server_path_of(layout: LabLayout, server: str, local: Path) -> str:
    """The server path of a local path under that server's folder (else the local one)."""
    try:
        relative = PurePosixPath(local.relative_to(layout.server_root(server)))
    except ValueError:
        return str(local)
    return "/" + str(relative) if str(relative) != "." else "/"
