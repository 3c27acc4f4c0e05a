"""The mirror's nbdkit processes, its pre-shared keys, and what the kernel offers.

**A target** serves its volume with nbdkit's file plugin, bound to the node's replication
address, TLS required, authenticated by the mirror's pre-shared key
(:func:`serve_target`)::

    nbdkit -f -P PIDFILE --tls=require --tls-psk=KEYFILE -i ADDRESS -p PORT \
           --filter=blocksize file VOLUME maxdata=CHUNK

The blocksize filter hands the file plugin at most ``TARGET_MAX_WRITE`` bytes (a chunk of
the bitmap, 64 KiB) per ``pwrite``: a resync's 8 MiB request becomes 128 writes, in
nbdkit's C, within the one NBD request. The size of a write into pages that are not
cached decides the size of the page-cache folios the kernel makes for them (ext4 with
large folios, as in this machine's Linux 6.18), and every later write into a folio walks
all of its buffer heads, on write and on writeback: a partial resync's 64 KiB chunks
written into the folios of 8 MiB writes cost the target two to three times the CPU (the
target's nbdkit on the Pacemaker lab: 26-29 ms per partial resync of 164 chunks instead
of 9-12 ms; ``perf``: ``ext4_block_write_begin`` and ``mpage_process_page_bufs`` 40 % of
it). Benchmarks (``pacemaker_datakeeper.py``, six runs): the partial resync 0.026-0.033
of the full one instead of 0.033-0.039, the full one and the other rows unchanged within
their spread.

Nothing of ours runs there: any client without the key is refused during the TLS
handshake, a client without TLS before any data is served (nbdkit's ``--tls=require``).

**Keys.** One key per mirror, a file of ``username:hexkey`` lines (the format of
GnuTLS's ``psktool``, which nbdkit and libnbd read), mode 0600, made with
:func:`make_psk_file` on each node (at extend) and removed with :func:`remove_psk_file`
(at unextend). The key is only ever in that file: nbdkit and libnbd take the file's
*path*, so it is in no argv, no log and no other file; :func:`check_psk_file` refuses a
key file that others may read.

**Processes.** :func:`start_nbdkit` starts nbdkit as a daemon (:func:`spawn_daemon`: a
session of its own, ``setsid``, and *no living parent*: nbdkit 1.32 as built here sets
``PR_SET_PDEATHSIG(SIGTERM)`` at start, so a plain child of ours would be stopped the
moment its parent exits; the daemon execs only once its launcher has exited),
optionally inside a network namespace (``ip netns exec NS``, which execs: the PID is
nbdkit's), in the foreground (``-f``) with ``-P PIDFILE``: nbdkit writes that file once
it listens, which is when :func:`start_nbdkit` returns, and the PID it holds is the one
recorded. :class:`NbdkitProcess` stops exactly that PID (SIGTERM, then SIGKILL after a
timeout), never anything found by name.

**The kernel.** :func:`kernel_has_nbd` says whether ``/dev/nbdX`` could be used (the
``nbd`` module loaded, or loadable); where it cannot (this project's test machines: a
kernel without modules) the source's mirrored volume is reached through ``nbdfuse`` and a
loop device instead (:mod:`.localdev`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.replication.bitmap import DEFAULT_CHUNK_SIZE
from core.replication.nbd import DEFAULT_PORT, DEFAULT_PSK_USER, NbdError, tls_environment

__all__ = [
    "TARGET_MAX_WRITE",
    "NbdkitError",
    "NbdkitProcess",
    "check_psk_file",
    "kernel_has_nbd",
    "make_psk_file",
    "netns_prefix",
    "process_alive",
    "remove_psk_file",
    "serve_target",
    "spawn_daemon",
    "start_nbdkit",
    "stop_pid",
]

START_TIMEOUT = 15.0  # seconds for nbdkit to listen
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
TARGET_MAX_WRITE = DEFAULT_CHUNK_SIZE  # bytes per pwrite into a target's volume
_POLL = 0.02


class NbdkitError(NbdError):
    """nbdkit (or a helper tool) is missing, would not start, or a key file is unsafe."""


# -- keys ---------------------------------------------------------------------------------


def make_psk_file(
    path: str | os.PathLike[str], username: str = DEFAULT_PSK_USER, *, replace: bool = False
) -> Path:
    """Write a new random 256-bit key for ``username`` to ``path`` (mode 0600, created
    that way: never readable by others, not even for a moment) and return the path.

    An existing file is kept unless ``replace`` (then it is replaced atomically)."""
    target = Path(path)
    if ":" in username or not username or "\n" in username:
        raise NbdkitError(f"{target}: PSK user name {username!r} must be non-empty, without ':'")
    if target.exists() and not replace:
        raise NbdkitError(f"{target}: a key file already exists there (replace it explicitly)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    line = f"{username}:{secrets.token_hex(32)}\n".encode("ascii")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, line)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, target)
    return target


def check_psk_file(path: str | os.PathLike[str]) -> Path:
    """Refuse a key file that is missing, not a regular file, or readable by others."""
    target = Path(path)
    try:
        st = target.stat()
    except FileNotFoundError:
        raise NbdkitError(
            f"{target}: no such key file (make it with make_psk_file on each node)"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise NbdkitError(f"{target}: the key file is not a regular file")
    if st.st_mode & 0o077:
        raise NbdkitError(
            f"{target}: the key file has mode {stat.S_IMODE(st.st_mode):04o}; others could "
            f"read the key: chmod 600 {target}"
        )
    return target


def remove_psk_file(path: str | os.PathLike[str]) -> None:
    """Remove a key file (idempotent)."""
    Path(path).unlink(missing_ok=True)


# -- processes -------------------------------------------------------------------------


def netns_prefix(netns: str | None) -> list[str]:
    """``ip netns exec NS`` (which execs the command: its PID stays the command's)."""
    return [] if netns is None else ["ip", "netns", "exec", netns]


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in (b"Z", b"X")


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM ``pid``, SIGKILL it after ``timeout``; True when it ended. Only that PID
    is signalled (a daemon of ours: init reaps it)."""
    if not process_alive(pid):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return _wait_gone(pid, timeout)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        tick.wait(_POLL)
    return True


# A launcher run by the interpreter itself (single-threaded, so forking is safe): a new
# session, a fork whose parent prints the child's PID and exits, and the exec of the
# command only once the launcher is gone (its parent is then init, which never dies),
# with stdout and stderr appended to the log.
_LAUNCHER = """
import os, sys, time
os.setsid()
launcher = os.getpid()
child = os.fork()
if child:
    print(child, flush=True)
    os._exit(0)
log = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
os.dup2(log, 1)
os.dup2(log, 2)
while os.getppid() == launcher:
    time.sleep(0.001)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def outside_venv(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without an activated virtual environment: nbdkit's embedded Python is
    the system's, and it finds its prefix through ``python3`` on PATH; a venv's first on
    PATH would hide the system's packages (libnbd's bindings) from it."""
    env = {k: v for k, v in environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    kept = [
        d
        for d in env.get("PATH", "").split(os.pathsep)
        if d and not (Path(d).parent / "pyvenv.cfg").is_file()
    ]
    env["PATH"] = os.pathsep.join(kept) or "/usr/local/bin:/usr/bin:/bin"
    return env


def spawn_daemon(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> int:
    """Run ``argv`` as a daemon and return its PID: its own session, no parent of ours
    (see the module docstring), stdin ``/dev/null``, stdout and stderr appended to
    ``log``. Returns once it is started (not once it is ready)."""
    interpreter = sys.executable or "/usr/bin/python3"
    done = subprocess.run(
        [interpreter, "-I", "-c", _LAUNCHER, str(log), *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        close_fds=True,
        env=env,
        timeout=30,
        check=False,
    )
    pid = done.stdout.strip()
    if done.returncode != 0 or not pid.isdigit():
        raise NbdkitError(
            f"cannot start {argv[0]}: launcher exit {done.returncode}: {done.stderr.strip()}"
        )
    return int(pid)


@dataclass
class NbdkitProcess:
    """A running nbdkit: its PID, PID file and log (stderr). ``argv`` holds no secret."""

    pid: int
    pidfile: Path
    log: Path
    argv: list[str]
    what: str

    def alive(self) -> bool:
        return process_alive(self.pid)

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM (nbdkit closes its connections and exits), SIGKILL after ``timeout``."""
        done = stop_pid(self.pid, timeout)
        if done:
            self.pidfile.unlink(missing_ok=True)
        return done

    def log_tail(self, limit: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:].strip()
        except OSError:
            return ""


def _which(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise NbdkitError(f"{tool} is not installed: apt-get install {package}")
    return found


def start_nbdkit(
    args: Sequence[str],
    *,
    run_dir: str | os.PathLike[str],
    name: str,
    netns: str | None = None,
    timeout: float = START_TIMEOUT,
    env: dict[str, str] | None = None,
) -> NbdkitProcess:
    """Start ``nbdkit -f -P RUN_DIR/NAME.pid ARGS`` in its own session (and ``netns``),
    stderr to ``RUN_DIR/NAME.log``, with :func:`~core.replication.nbd.tls_environment`
    (and ``env``) added to its environment; return once it listens (its PID file exists).

    Raises :class:`NbdkitError` with nbdkit's own message when it exits instead, or
    when it does not listen within ``timeout`` (it is stopped then)."""
    nbdkit = _which("nbdkit", "nbdkit")
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    pidfile = folder / f"{name}.pid"
    log = folder / f"{name}.log"
    pidfile.unlink(missing_ok=True)
    argv = [*netns_prefix(netns), nbdkit, "-f", "-P", str(pidfile), *args]
    log.touch(mode=0o600)
    size_before = log.stat().st_size
    pid = spawn_daemon(argv, log, {**outside_venv(os.environ), **tls_environment(), **(env or {})})
    proc = NbdkitProcess(pid, pidfile, log, argv, name)
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not _pidfile_ready(pidfile):
        if not proc.alive():
            raise NbdkitError(
                f"nbdkit ({name}) exited instead of listening: "
                f"{_log_since(log, size_before) or 'no message'} (log: {log})"
            )
        if time.monotonic() >= deadline:
            proc.stop()
            raise NbdkitError(
                f"nbdkit ({name}) did not listen within {timeout:g} s; stopped it: "
                f"{_log_since(log, size_before) or 'no message'} (log: {log})"
            )
        tick.wait(_POLL)
    return proc


def _log_since(log: Path, offset: int, limit: int = 2000) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return f.read(limit).decode(errors="replace").strip()
    except OSError:
        return ""


def _pidfile_ready(path: Path) -> bool:
    try:
        return path.read_text().strip().isdigit()
    except FileNotFoundError:
        return False


def serve_target(
    volume: str | os.PathLike[str],
    *,
    address: str,
    psk_file: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    port: int = DEFAULT_PORT,
    netns: str | None = None,
    name: str = "target",
    options: Sequence[str] = (),
    params: Sequence[str] = (),
) -> NbdkitProcess:
    """Serve a target's volume: ``nbdkit file VOLUME`` on ``address:port``, TLS with the
    mirror's pre-shared key required, at most ``TARGET_MAX_WRITE`` bytes per write into
    the file (see the module docstring). ``options``: more nbdkit options (a filter,
    nearer the client than ours: ``--filter=log``), ``params``: their parameters
    (``logfile=FILE``)."""
    key = check_psk_file(psk_file)
    path = Path(volume)
    if not path.is_file():
        raise NbdkitError(f"{path}: no such target volume to serve")
    args = [
        "--tls=require",
        f"--tls-psk={key}",
        "-i",
        address,
        "-p",
        str(port),
        *options,
        "--filter=blocksize",
        "file",
        str(path),
        f"maxdata={TARGET_MAX_WRITE}",
        *params,
    ]
    return start_nbdkit(args, run_dir=run_dir, name=name, netns=netns)


# -- the kernel ----------------------------------------------------------------------------


def kernel_has_nbd() -> bool:
    """True when the kernel can give ``/dev/nbdX`` (``nbd-client``): the ``nbd`` module is
    loaded or built in (``/sys/module/nbd``), or ``modprobe -n nbd`` says it would load."""
    if Path("/sys/module/nbd").exists():
        return True
    modprobe = shutil.which("modprobe")
    if modprobe is None:
        return False
    try:
        done = subprocess.run(
            [modprobe, "-n", "nbd"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.ENOENT, errno.EACCES):
            raise
        return False
    return done.returncode == 0
