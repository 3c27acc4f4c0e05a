"""Growing a mirror's files, and undoing it (the undo journal's "shrink_volume" and
"resize_bitmap" actions, registered here so that crash recovery knows them as soon as
the lab is opened)."""

from __future__ import annotations

import os
from pathlib import Path

from core.backends.lab import journal
from core.files import open_private


def grow_volume(path: Path, size: int) -> None:
    """The volume file is ``size`` bytes (the new bytes read as zeros), durably."""
    fd = open_private(path, os.O_RDWR)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def resize_bitmap(path: Path, size: int) -> None:
    """The bitmap covers ``size`` bytes (see ``Bitmap.resize``)."""
    from core.replication.bitmap import Bitmap

    bitmap = Bitmap.open(path)
    try:
        bitmap.resize(size)
    finally:
        bitmap.close()


def _undo_grow_volume(args: list[object]) -> None:
    path, size = Path(str(args[0])), int(str(args[1]))
    if path.exists() and path.stat().st_size > size:
        grow_volume(path, size)  # back to the old size: nothing was written past it


def _undo_resize_bitmap(args: list[object]) -> None:
    path, size = Path(str(args[0])), int(str(args[1]))
    if path.exists():
        resize_bitmap(path, size)


journal.UNDO_HANDLERS["shrink_volume"] = _undo_grow_volume
journal.UNDO_HANDLERS["resize_bitmap"] = _undo_resize_bitmap
