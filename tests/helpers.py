"""Shared test helpers (no Qt here)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from core.model import Role
from core.session import Session, local_user

REPO = Path(__file__).resolve().parent.parent


def local_administrator() -> Session:
    """The session of the data directory's owner (the tests' own user): Administrator."""
    return Session(local_user(), Role.ADMINISTRATOR)


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def run_lkctl(
    args: Sequence[str],
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    umask: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run lkctl as a user would, in a child process (started under ``umask`` if given)."""
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        cwd=REPO,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
        preexec_fn=None if umask is None else (lambda: os.umask(umask) and None),
    )


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[Path]:
    """Make ``path`` a directory nobody can write to, really (even root).

    As root, permissions are not enforced, so the directory becomes a read-only tmpfs
    mount; otherwise it is chmod 0555. Skips when neither is possible.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs as root: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def wait_until(
    predicate: Callable[[], bool],
    timeout: float = 30.0,
    what: str = "",
    seen: Callable[[], str] | None = None,
) -> None:
    """Poll ``predicate`` (for work done by another process) until true or time out;
    ``seen``, if given, says what was last seen instead (in the failure's message)."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            last = f" (last seen: {seen()})" if seen is not None else ""
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what or predicate}{last}"
            )
        pause.wait(0.05)


def holds_for(predicate: Callable[[], bool], seconds: float, what: str = "") -> None:
    """Check ``predicate`` all through ``seconds`` (something that must not happen, such
    as a fence or a reconnect): fail at the first moment it is false."""
    pause = threading.Event()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            raise AssertionError(f"{what or predicate} stopped holding")
        pause.wait(0.05)


def _root_can_mount() -> str:
    if os.geteuid() != 0:
        return "mounting a filesystem image needs root"
    if not Path("/dev/loop-control").exists() and not Path("/dev/loop0").exists():
        return "no loop devices on this machine"
    return ""


@contextlib.contextmanager
def mounted_image(mount_point: Path, fs: str, size_mib: int) -> Iterator[Path]:
    """Loop-mount a fresh ``fs`` (btrfs, ext4) image of ``size_mib`` at ``mount_point``.

    Skips the test, with the reason, only where mounting is impossible.
    """
    reason = _root_can_mount()
    mkfs = shutil.which(f"mkfs.{fs}")
    if not reason and mkfs is None:
        reason = f"mkfs.{fs} is not installed (bash packaging/bootstrap.sh --test installs it)"
    if reason:
        pytest.skip(reason)
    assert mkfs is not None
    image = mount_point.parent / f".{mount_point.name}.{fs}.img"
    with open(image, "wb") as f:
        f.truncate(size_mib * 1024 * 1024)
    quiet = ["-q"] if fs == "btrfs" else ["-q", "-F"]
    subprocess.run([mkfs, *quiet, str(image)], check=True, capture_output=True)
    mount_point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        image.unlink()
        pytest.skip(f"cannot loop-mount a {fs} image here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True)
        if os.path.ismount(mount_point):
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
        image.unlink(missing_ok=True)


def db_tables(home: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the lab's database, read without changing it."""
    import sqlite3

    conn = sqlite3.connect(f"file:{home / 'lkconsole.db'}?mode=ro", uri=True)
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        return {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall() for n in names}
    finally:
        conn.close()


def refusal_recorded(
    before: dict[str, list[tuple[object, ...]]], home: Path, *, also: tuple[str, ...] = ()
) -> list[str]:
    """Assert that only the history (and the tables in ``also``) changed since ``before``,
    by refusals; returns the results of the new history rows ("refused: ...")."""
    after = db_tables(home)
    for table in set(before) | set(after):
        if table == "history" or table in also:
            continue
        assert after.get(table) == before.get(table), f"table {table} changed"
    new = after["history"][len(before["history"]) :]
    results = [str(row[-1]) for row in new]
    assert results and all(r.startswith("refused: ") for r in results), results
    assert not any(row[8] for row in new)  # ok = 0
    return results


def db_digest(home: Path) -> str:
    """The database files' bytes (after every connection closed): to prove nothing changed."""
    digest = hashlib.sha256()
    for name in ("lkconsole.db", "lkconsole.db-wal"):
        path = home / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()
