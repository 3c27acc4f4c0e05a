"""Field helpers shared by the operations' checks: paths of a server, free space."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from core.fsinfo import FsProbeError, filesystem_of, nearest_existing_ancestor
from core.backends.lab.layout import LabLayout, PathOutsideServer


def text(value: object) -> str:
    return "" if value is None else str(value).strip()


def path_problem(path: str) -> str:
    """Why ``path`` is not a usable absolute server path ("" when it is)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "contains control characters."
    if not path.startswith("/"):
        return "is not an absolute path (it must start with /)."
    if ".." in PurePosixPath(path).parts:
        return "must not contain '..'."
    if len(path) > 4096:
        return "is longer than 4096 characters."
    return ""


def norm(path: str) -> str:
    return str(PurePosixPath(path))


def local_path(layout: LabLayout, server: str, path: str) -> Path | None:
    try:
        return layout.server_path(server, path)
    except PathOutsideServer:
        return None


def server_path(layout: LabLayout, server: str, local: Path) -> str:
    try:
        relative = local.relative_to(layout.server_root(server))
    except ValueError:
        return str(local)
    return "/" + str(relative) if str(relative) != "." else "/"


def on_btrfs(layout: LabLayout, server: str, path: str) -> bool:
    found = local_path(layout, server, path)
    if found is None:
        return False
    try:
        return filesystem_of(found).is_btrfs
    except FsProbeError:
        return False


def writable(layout: LabLayout, server: str, path: str) -> bool:
    found = local_path(layout, server, path)
    if found is None:
        return False
    return os.access(nearest_existing_ancestor(found), os.W_OK | os.X_OK)


def free_bytes(folder: Path) -> int | None:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None
