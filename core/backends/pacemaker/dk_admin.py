"""What the console does on a node for its DataKeeper resources (``datakeeper admin …``).

The console (the Pacemaker backend) runs these through its runner (``nsenter`` in the
lab, SSH on a real cluster) as ``/usr/lib/ocf/resource.d/lkconsole/datakeeper admin
COMMAND …``; they run under the system ``python3`` beside the agent. Output is JSON on
standard output; a failure is one line on standard error and exit status 1; bad usage
exit status 2. A key never passes through an argument: ``key-get`` prints it,
``key-put`` reads it from standard input (the console carries it from node to node in
its own memory, never in a file, a log or a command line).

Commands::

    volumes                        the volume files in /disks: path, size, file system
    make-disk PATH SIZE            a new volume of SIZE bytes (mode 0600), never over one
    remove-disk PATH               remove a volume made by make-disk (an undo)
    grow-volume PATH SIZE          a volume grown to SIZE bytes (never shrunk): its old size
    ungrow-volume PATH OLD SIZE    back to OLD bytes, only when it has SIZE (grow's undo)
    grow-bitmap PATH SIZE          a bitmap file covers SIZE bytes (the new chunks dirty)
    ungrow-bitmap PATH OLD         back to OLD bytes (grow-bitmap's undo; the bits kept)
    grow-fs RID                    the file system on the source's device fills it (offline)
    mkfs PATH FSTYPE               make a file system on a volume (its content is erased)
    key-new RID | key-get RID | key-put RID | key-check RID
    forget RID                     the mirror's key and record on this node (the volume stays)
    remove-file PATH               a bitmap file
    mirror RID OP [TARGET] [JSON]  a request to the source's engine (pause, resume, …)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.backends.pacemaker import dk_names as names
from core.backends.pacemaker.dk_cluster import Attributes, ClusterError
from core.errors import LkError
from core.replication import control
from core.replication.nbdkit import NbdkitError, check_psk_file, make_psk_file

if TYPE_CHECKING:
    from core.replication.bitmap import Bitmap

DISKS = "/disks"
FS_TYPES = ("ext4", "ext3", "xfs")
MAX_SIZE = 64 * 1024**4


class AdminError(LkError):
    """The command failed (its message is the one line printed)."""


def _json(value: Any) -> int:
    print(json.dumps(value))
    return 0


def _volume_path(text: str) -> Path:
    path = Path(text)
    if not path.is_absolute() or path.parent != Path(DISKS) or path.name in ("", ".", ".."):
        raise AdminError(f"{text} is not a volume in {DISKS}")
    return path


def _fs_type(path: Path) -> str | None:
    done = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "TYPE", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    value = done.stdout.strip()
    return value or None


def volumes() -> list[dict[str, Any]]:
    folder = Path(DISKS)
    found = []
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix == ".img":
                found.append({"path": str(p), "size": p.stat().st_size, "fs": _fs_type(p)})
    return found


def _size(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= MAX_SIZE:
        raise AdminError(f"size {text!r} is not a size in bytes")
    return int(text)


def make_disk(text: str, size_text: str) -> None:
    path = _volume_path(text)
    size = _size(size_text)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise AdminError(f"{path} exists already: choose it as an existing disk") from None
    _truncate(fd, size)


def remove_disk(text: str) -> None:
    _volume_path(text).unlink(missing_ok=True)


def _truncate(fd: int, size: int) -> None:
    """The file open at ``fd`` has ``size`` bytes, durably (new bytes read as zeros); the
    descriptor is closed."""
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _set_size(path: Path, size: int) -> None:
    _truncate(os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW), size)


def _existing_volume(text: str) -> Path:
    path = _volume_path(text)
    if path.is_symlink() or not path.is_file():
        raise AdminError(f"no volume {path}")
    return path


def grow_volume(text: str, size_text: str) -> dict[str, Any]:
    """Grow a mirror's volume to ``SIZE`` bytes (Resize Mirror); a volume already of that
    size is kept, a larger one refused (a volume never shrinks: the end of the file
    system on it would be cut off). Answers its size before, for the undo."""
    path = _existing_volume(text)
    size = _size(size_text)
    old = path.stat().st_size
    if old > size:
        raise AdminError(f"{path} has {old} bytes, more than {size}: a volume is never shrunk")
    if old < size:
        _set_size(path, size)
    return {"path": str(path), "old": old, "size": size}


def ungrow_volume(text: str, old_text: str, size_text: str) -> None:
    """Undo :func:`grow_volume` of a resize that did not commit: back to ``OLD`` bytes,
    only while the volume has the ``SIZE`` the grow gave it (nothing past ``OLD`` is
    part of the mirror before the commit); a volume of ``OLD`` bytes is kept."""
    path = _existing_volume(text)
    old, size = _size(old_text), _size(size_text)
    if old > size:
        raise AdminError(f"{old} bytes is more than {size}: not the undo of a grow")
    have = path.stat().st_size
    if have == old:
        return
    if have != size:
        raise AdminError(f"{path} has {have} bytes, neither {old} nor {size}: left as it is")
    _set_size(path, old)


def _bitmap_path(text: str) -> Path | None:
    """The bitmap file at ``text``; None where there is none (a node that was never a
    source has none: it is made at the volume's size when it becomes one)."""
    path = Path(text)
    if not path.is_absolute() or path.is_symlink() or (path.exists() and not path.is_file()):
        raise AdminError(f"{text} is not a bitmap file")
    return path if path.exists() else None


@contextlib.contextmanager
def _opened_bitmap(path: Path) -> Iterator[Bitmap]:
    """The bitmap file at ``path``, open (closed afterwards); AdminError if unreadable."""
    from core.replication.bitmap import Bitmap, BitmapError

    try:
        bitmap = Bitmap.open(path)
    except BitmapError as exc:
        raise AdminError(f"{path}: {exc}") from exc
    try:
        yield bitmap
    finally:
        bitmap.close()


def grow_bitmap(text: str, size_text: str) -> dict[str, Any]:
    """A mirror's bitmap file covers a volume of ``SIZE`` bytes (Resize Mirror, while no
    engine has it open): the chunks of the new space are dirty for every target. Answers
    the size it covered before, for the undo (``old`` None: there is no file here)."""
    path, size = _bitmap_path(text), _size(size_text)
    if path is None:
        return {"path": text, "old": None, "size": size}
    with _opened_bitmap(path) as bitmap:
        old = bitmap.volume_size
        if old > size:
            raise AdminError(f"{path} covers {old} bytes, more than {size}: never shrunk")
        bitmap.resize(size)
    return {"path": str(path), "old": old, "size": size}


def ungrow_bitmap(text: str, old_text: str) -> None:
    """Undo :func:`grow_bitmap`: the bitmap covers ``OLD`` bytes again (its bits kept)."""
    path, old = _bitmap_path(text), _size(old_text)
    if path is not None:
        with _opened_bitmap(path) as bitmap:
            bitmap.resize(old)


def _tool(argv: list[str], timeout: float, ok: tuple[int, ...] = (0,)) -> str:
    if shutil.which(argv[0]) is None:
        raise AdminError(f"{argv[0]} is not installed")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode not in ok:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise AdminError(f"{' '.join(argv)}: {said[-1] if said else f'exit {done.returncode}'}")
    return done.stdout


def grow_fs(rid: str) -> dict[str, Any]:
    """The ext2/3/4 file system on the source's device of ``rid`` (not mounted: the
    hierarchy's group is held stopped) is checked and grown to fill the device, through
    the engine (the targets get every byte it writes). An xfs grows only mounted:
    refused with what to run."""
    device = Path(names.device(rid))
    if not device.exists():
        raise AdminError(f"{rid} has no device on this node: it is not the source here")
    real = str(device.resolve())
    fs = _fs_type(device.resolve())
    if fs == "xfs":
        raise AdminError("an xfs grows only while mounted: run xfs_growfs on its mount point")
    if fs not in ("ext2", "ext3", "ext4"):
        raise AdminError(f"{device} holds {fs or 'no file system'}: nothing to grow")
    mounted = Path("/proc/self/mounts").read_text().split()
    if real in mounted or str(device) in mounted:
        raise AdminError(f"{device} is mounted: stop its Filesystem resource first")
    _tool(["e2fsck", "-f", "-p", real], 3600, ok=(0, 1))  # 1: errors fixed
    _tool(["resize2fs", real], 3600)
    return {"device": str(device), "fs": fs, "size": _block_size(real)}


def _block_size(device: str) -> int:
    return int(_tool(["blockdev", "--getsize64", device], 30).strip() or 0)


def mkfs(text: str, fs_type: str) -> None:
    path = _volume_path(text)
    if fs_type not in FS_TYPES:
        raise AdminError(f"file system {fs_type!r} is not one of {', '.join(FS_TYPES)}")
    if not path.is_file():
        raise AdminError(f"no volume {path}")
    tool = shutil.which(f"mkfs.{fs_type}")
    if tool is None:
        raise AdminError(f"mkfs.{fs_type} is not installed")
    # every inode table and the journal written now: no lazy init writing behind the
    # mirror later (chunks dirty for a target that is out of sync while it runs)
    ext = ["-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0"]
    args = ext if fs_type.startswith("ext") else ["-q", "-f", "-K"]
    done = subprocess.run(
        [tool, *args, str(path)], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise AdminError(f"mkfs.{fs_type} {path}: {(done.stderr or done.stdout).strip()}")


def _psk(rid: str) -> Path:
    if not rid or "/" in rid or rid.startswith("."):
        raise AdminError(f"{rid!r} is not a resource id")
    return Path(names.state_dir(rid)) / "psk"


def _private_state_dir(rid: str) -> Path:
    folder = Path(names.state_dir(rid))
    folder.mkdir(parents=True, exist_ok=True)
    for p in (folder, folder.parent):
        p.chmod(0o700)
    return folder


def key_new(rid: str) -> None:
    path = _psk(rid)
    _private_state_dir(rid)
    if not path.exists():
        make_psk_file(path, names.PSK_USER)
    check_psk_file(path)


def key_get(rid: str) -> None:
    path = check_psk_file(_psk(rid))
    sys.stdout.write(path.read_text())


def key_put(rid: str) -> None:
    line = sys.stdin.readline().strip()
    user, sep, key = line.partition(":")
    if (
        user != names.PSK_USER
        or not sep
        or len(key) < 32
        or any(c not in "0123456789abcdef" for c in key)
    ):
        raise AdminError("standard input is not a key line (lkmirror:HEX)")
    path = _psk(rid)
    _private_state_dir(rid)
    tmp = path.with_name(".psk.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def key_check(rid: str) -> dict[str, Any]:
    path = _psk(rid)
    if not path.exists():
        return {"exists": False}
    mode = stat.S_IMODE(path.stat().st_mode)
    return {"exists": True, "mode": f"{mode:04o}"}


FORGET_WAIT_S = 60.0  # for a copy still stopping on this node (its agent's stop)


def forget(rid: str) -> None:
    """The mirror's key and record on this node go, once no copy of it runs here: an
    agent still stopping it (an orphan's demote and stop after a delete) writes its
    record again, so its role file must be gone first."""
    folder = Path(names.state_dir(rid))
    _psk(rid)
    role = Path(names.run_dir(rid)) / "role"
    deadline, pause = time.monotonic() + FORGET_WAIT_S, threading.Event()
    while role.exists():
        if time.monotonic() > deadline:
            raise AdminError(f"{rid} still runs here ({role.read_text().strip()}): stop it first")
        pause.wait(0.2)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):  # the last mirror of this node: nothing is left
        folder.parent.rmdir()


def remove_file(text: str) -> None:
    path = Path(text)
    if not path.is_absolute() or path.parent == Path(DISKS):
        raise AdminError(f"{text} is not a bitmap file (volumes are never removed)")
    if path.is_dir():
        raise AdminError(f"{text} is a folder")
    path.unlink(missing_ok=True)


def mirror(rid: str, op: str, target: str = "", fields_text: str = "{}") -> dict[str, Any]:
    """A request to the engine of the source of ``rid`` on this node; for pause and
    resume, the administrator's choice is also kept (``lkdr-RID-paused`` of the target),
    so a restarted source honours it."""
    fields = json.loads(fields_text)
    if not isinstance(fields, dict):
        raise AdminError("the request's fields are a JSON object")
    socket = Path(names.run_dir(rid)) / "ctl" / "control.sock"
    if target:
        fields["target"] = target
    timeout = float(fields.pop("timeout", 60.0))
    answer = control.request(socket, op, timeout=timeout, **fields)
    if op in ("pause", "resume") and target:
        Attributes(rid).set_permanent(target, "paused", "1" if op == "pause" else None)
    return answer


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.split("Commands::", 1)[1], file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    simple: dict[str, tuple[Callable[..., None], int]] = {
        "make-disk": (make_disk, 2),
        "remove-disk": (remove_disk, 1),
        "mkfs": (mkfs, 2),
        "key-new": (key_new, 1),
        "key-get": (key_get, 1),
        "key-put": (key_put, 1),
        "forget": (forget, 1),
        "remove-file": (remove_file, 1),
    }
    try:
        if command == "volumes" and not args:
            return _json(volumes())
        if command == "key-check" and len(args) == 1:
            return _json(key_check(args[0]))
        if command == "grow-volume" and len(args) == 2:
            return _json(grow_volume(*args))
        if command == "ungrow-volume" and len(args) == 3:
            ungrow_volume(*args)
            return 0
        if command == "grow-bitmap" and len(args) == 2:
            return _json(grow_bitmap(*args))
        if command == "ungrow-bitmap" and len(args) == 2:
            ungrow_bitmap(*args)
            return 0
        if command == "grow-fs" and len(args) == 1:
            return _json(grow_fs(*args))
        if command == "mirror" and 2 <= len(args) <= 4:
            return _json(mirror(*args))
        if command in simple and len(args) == simple[command][1]:
            simple[command][0](*args)
            return 0
    except (AdminError, ClusterError, control.ControlError, NbdkitError, OSError) as exc:
        print(f"datakeeper admin {command}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"datakeeper admin {command}: {exc}", file=sys.stderr)
        return 2
    print(f"datakeeper admin: bad usage: {' '.join(argv)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
