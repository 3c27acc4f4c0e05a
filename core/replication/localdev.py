"""The mirrored volume as a block device on the source: bring it up, take it down.

Up, in this order (:func:`bring_up`)::

    nbdkit -U RUN/engine.sock python nbdkit_plugin.py config=ENGINE.json   the engine
    nbdfuse RUN/fuse/volume --unix RUN/engine.sock                         a file
    losetup --direct-io=on --find --show RUN/fuse/volume                   /dev/loopN

then a filesystem on ``/dev/loopN`` (:func:`make_filesystem`, :func:`mount`). The kernel
here has no ``nbd`` module, so the export becomes a file (``nbdfuse``) and the file a
block device (a loop device, direct I/O so the page cache is not doubled and a
``fsync`` above reaches the engine as a flush). Where the kernel has ``nbd``
(:func:`~core.replication.nbdkit.kernel_has_nbd`), ``nbd-client -unix RUN/engine.sock
/dev/nbd0`` would give the block device directly, without FUSE and the loop; that path
is not used (nor tested) here.

Down, in the reverse order (:func:`bring_down`): unmount whatever is mounted from the
loop device, ``losetup -d``, ``fusermount3 -u`` (lazily when the FUSE mount is dead),
wait for nbdfuse to exit, then stop nbdkit (SIGTERM: the engine flushes, commits its
bits and closes; SIGKILL only after a timeout). Every step is recorded in
``RUN/localdev.json`` as soon as it is done, so :func:`bring_down` cleans up after a
:func:`bring_up` that failed half way, or after a crash of the process that called it.
It copes with the failure modes seen: nbdfuse aborts when its server dies (the mount then
answers "transport endpoint is not connected"), and loop devices are host-wide (only the
one whose backing file is ours is detached).

Everything here is the standard library and outside commands (argument lists, a
timeout, stderr kept for the message); it runs under any interpreter. nbdkit hosts the
engine in its embedded system Python (see :mod:`.nbd`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from core.replication.nbdkit import (
    NbdkitError,
    process_alive,
    spawn_daemon,
    start_nbdkit,
    stop_pid,
)

__all__ = [
    "PLUGIN",
    "LocalDevice",
    "LocalDeviceError",
    "bring_down",
    "bring_up",
    "make_filesystem",
    "mount",
    "mounted_on",
]

PLUGIN = Path(__file__).resolve().with_name("nbdkit_plugin.py")
STATE_FILE = "localdev.json"
COMMAND_TIMEOUT = 60.0
READY_TIMEOUT = 30.0
_POLL = 0.02


class LocalDeviceError(NbdkitError):
    """A step of bringing the mirrored device up or down failed (which, and why)."""


@dataclass
class LocalDevice:
    """What :func:`bring_up` started (also the content of ``RUN/localdev.json``)."""

    run_dir: str
    engine_pid: int = 0
    socket: str = ""
    fuse_dir: str = ""
    fuse_pid: int = 0
    loop: str = ""
    netns: str | None = None

    @property
    def volume_file(self) -> Path:
        """The mirrored volume as a file (nbdfuse's)."""
        return Path(self.fuse_dir) / "volume"

    @property
    def device(self) -> str:
        """The block device (``/dev/loopN``)."""
        return self.loop

    def save(self) -> None:
        path = Path(self.run_dir) / STATE_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> LocalDevice | None:
        path = Path(run_dir) / STATE_FILE
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise LocalDeviceError(f"{path}: unreadable ({exc}); clean up by hand") from exc


def _run(argv: list[str], what: str, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run a command; its stdout, or :class:`LocalDeviceError` with its stderr."""
    tool = shutil.which(argv[0])
    if tool is None:
        raise LocalDeviceError(f"{what}: {argv[0]} is not installed")
    try:
        done = subprocess.run(
            [tool, *argv[1:]], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalDeviceError(f"{what}: {argv[0]} did not finish in {timeout:g} s") from exc
    if done.returncode != 0:
        raise LocalDeviceError(
            f"{what}: {' '.join(argv)} failed (exit {done.returncode}): "
            f"{done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def _wait(condition: str, ready: Callable[[], bool], timeout: float, alive: int = 0) -> None:
    """Wait until ``ready()`` is true; fail when ``alive`` (a PID) died or on timeout."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not ready():
        if alive and not process_alive(alive):
            raise LocalDeviceError(f"{condition}: the process ({alive}) exited")
        if time.monotonic() >= deadline:
            raise LocalDeviceError(f"{condition}: not ready within {timeout:g} s")
        tick.wait(_POLL)


def _fuse_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/mounts", encoding="utf-8") as f:
        return any(line.split()[1] == target and line.split()[2].startswith("fuse") for line in f)


def mounted_on(device: str) -> list[str]:
    """Mount points of ``device`` (from ``/proc/mounts``)."""
    with open("/proc/mounts", encoding="utf-8") as f:
        return [line.split()[1] for line in f if line.split()[0] == device]


def bring_up(
    config: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    netns: str | None = None,
    timeout: float = READY_TIMEOUT,
) -> LocalDevice:
    """Start the engine, nbdfuse and the loop device (see the module docstring).

    ``config``: the engine's JSON file (:class:`~core.replication.hosted.EngineConfig`);
    ``netns``: the network namespace the engine runs in (where the targets are
    reachable). On any failure what was started is taken down again before the
    :class:`LocalDeviceError` (or :class:`~core.replication.nbdkit.NbdkitError`) is raised.
    """
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if LocalDevice.load(folder) is not None:
        raise LocalDeviceError(f"{folder}: a device is already up there (bring it down first)")
    dev = LocalDevice(run_dir=str(folder), netns=netns)
    dev.save()
    try:
        _start_engine(dev, Path(config), timeout)
        _start_fuse(dev, timeout)
        dev.loop = _run(
            ["losetup", "--direct-io=on", "--find", "--show", str(dev.volume_file)],
            "attach the loop device",
        ).strip()
        dev.save()
    except BaseException:
        bring_down(folder)
        raise
    return dev


def _start_engine(dev: LocalDevice, config: Path, timeout: float) -> None:
    sock = Path(dev.run_dir) / "engine.sock"
    sock.unlink(missing_ok=True)
    proc = start_nbdkit(
        ["-U", str(sock), "python", str(PLUGIN), f"config={config.resolve()}"],
        run_dir=dev.run_dir,
        name="engine",
        netns=dev.netns,
        timeout=timeout,
    )
    dev.engine_pid, dev.socket = proc.pid, str(sock)
    dev.save()


def _start_fuse(dev: LocalDevice, timeout: float) -> None:
    fuse_dir = Path(dev.run_dir) / "fuse"
    fuse_dir.mkdir(exist_ok=True)
    pidfile = Path(dev.run_dir) / "nbdfuse.pid"
    pidfile.unlink(missing_ok=True)
    dev.fuse_dir = str(fuse_dir)
    dev.save()  # before starting: a crash right after leaves the mount to clean
    argv = ["nbdfuse", "-P", str(pidfile), str(fuse_dir / "volume"), "--unix", dev.socket]
    if shutil.which("nbdfuse") is None:
        raise LocalDeviceError("nbdfuse is not installed: apt-get install libnbd-bin fuse3")
    dev.fuse_pid = spawn_daemon(argv, Path(dev.run_dir) / "nbdfuse.log")
    dev.save()
    _wait("nbdfuse", pidfile.exists, timeout, alive=dev.fuse_pid)


def bring_down(run_dir: str | os.PathLike[str], timeout: float = 30.0) -> list[str]:
    """Take down what :func:`bring_up` left in ``run_dir`` (idempotent); returns the
    problems met (each step is tried anyway). Raises only when nothing can be read."""
    dev = LocalDevice.load(run_dir)
    if dev is None:
        return []
    problems: list[str] = []
    if dev.loop:
        for point in mounted_on(dev.loop):
            _step(problems, "unmount " + point, functools.partial(_umount, point))
        _step(problems, "detach " + dev.loop, lambda: _detach(dev))
    if dev.fuse_dir:
        _step(problems, "unmount nbdfuse", lambda: _fuse_unmount(Path(dev.fuse_dir)))
    if dev.fuse_pid and not stop_pid(dev.fuse_pid, timeout):
        problems.append(f"nbdfuse ({dev.fuse_pid}) does not exit")
    if dev.engine_pid and not stop_pid(dev.engine_pid, timeout):
        problems.append(f"the engine's nbdkit ({dev.engine_pid}) does not exit")
    if not problems:
        (Path(dev.run_dir) / STATE_FILE).unlink(missing_ok=True)
        if dev.socket:
            Path(dev.socket).unlink(missing_ok=True)
    return problems


def _step(problems: list[str], what: str, action: Callable[[], object]) -> None:
    try:
        action()
    except (LocalDeviceError, OSError) as exc:
        problems.append(f"{what}: {exc}")


def _umount(point: str) -> None:
    try:
        _run(["umount", point], f"unmount {point}")
    except LocalDeviceError:
        _run(["umount", "-l", point], f"unmount {point} lazily")  # a dead device below


def _detach(dev: LocalDevice) -> None:
    """``losetup -d``, only when the loop device is still backed by our file."""
    name = Path(dev.loop).name
    backing = Path(f"/sys/block/{name}/loop/backing_file")
    with contextlib.suppress(FileNotFoundError):
        if backing.read_text().strip() != str(dev.volume_file):
            return  # detached already, and reused by someone else: not ours any more
        _run(["losetup", "-d", dev.loop], f"detach {dev.loop}")


def _fuse_unmount(path: Path) -> None:
    if not _fuse_mounted(path):
        return
    try:
        _run(["fusermount3", "-u", str(path)], "unmount nbdfuse")
    except LocalDeviceError:
        _run(["fusermount3", "-u", "-z", str(path)], "unmount nbdfuse lazily")


def make_filesystem(device: str, fstype: str = "ext4") -> None:
    """``mkfs.FSTYPE`` on the mirrored device (no discard: the engine has no trim)."""
    ext = fstype.startswith("ext")
    args = ["-q", "-F", "-b", "4096", "-E", "nodiscard"] if ext else ["-q", "-K"]
    _run([f"mkfs.{fstype}", *args, device], f"make {fstype} on {device}", timeout=300)


def mount(device: str, point: str | os.PathLike[str], fstype: str = "ext4") -> None:
    Path(point).mkdir(parents=True, exist_ok=True)
    _run(["mount", "-t", fstype, device, str(point)], f"mount {device} on {point}")
