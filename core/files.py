"""Private files: what LK Console writes is readable by its owner only, whatever the umask.

The data directory holds the cluster's state, the users' password hashes and the
volumes' bytes; the log and settings files say what was done. Folders are made 0700 and
files 0600 (``os.open`` with the mode, ``mkdir`` with the mode, then ``chmod`` in case
the path existed). :func:`tighten` brings an older installation (made under umask 022)
to the same modes when it is opened, and says what it changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600

log = logging.getLogger(__name__)


def private_dir(path: Path) -> Path:
    """``path`` and its missing parents as folders only the owner can enter."""
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            folder.mkdir(mode=DIR_MODE)
        os.chmod(folder, DIR_MODE)
    make_private(path)
    return path


def open_private(path: Path, flags: int) -> int:
    """``os.open`` that creates ``path`` 0600 (and leaves an existing file at most 0600)."""
    fd = os.open(path, flags | os.O_CLOEXEC, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (temp file 0600, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def make_private(path: Path) -> bool:
    """Take group and other permissions off an existing file or folder; True if changed.

    A path that cannot be changed (a read-only file system) is logged and left."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode) or not stat.S_IMODE(st.st_mode) & 0o077:
        return False
    try:
        # The owner keeps what they had (an executable stays executable for them).
        mode = DIR_MODE if stat.S_ISDIR(st.st_mode) else stat.S_IMODE(st.st_mode) & 0o700
        os.chmod(path, mode)
    except OSError as exc:
        log.warning("cannot make %s private: %s", path, exc.strerror or exc)
        return False
    return True


def tighten(home: Path) -> list[Path]:
    """Make every file and folder under ``home`` (and ``home``) private; returns what changed.

    Symbolic links are neither followed nor changed."""
    changed = [home] if make_private(home) else []
    for folder, dirs, files in os.walk(home):
        base = Path(folder)
        for name in (*dirs, *files):
            if make_private(base / name):
                changed.append(base / name)
    if changed:
        shown = ", ".join(str(p.relative_to(home)) if p != home else str(home) for p in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        log.warning(
            "made %d files and folders in %s private (owner only): %s%s",
            len(changed),
            home,
            shown,
            more,
        )
    return changed


def private_file_handler(path: Path) -> logging.Handler:
    """A rotating log handler writing ``path`` (its folder made private), 0600 files."""
    import logging.handlers  # not at start-up: it costs a noticeable part of it

    class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
        """A rotating log file whose every generation is created 0600."""

        def _open(self):  # type: ignore[no-untyped-def]
            fd = open_private(Path(self.baseFilename), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            return os.fdopen(fd, self.mode, encoding=self.encoding, errors=self.errors)

    private_dir(path.parent)
    handler = PrivateRotatingFileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler
