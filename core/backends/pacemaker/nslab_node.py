"""PID 1 of a Pacemaker lab node: builds the node's root, starts its daemons, reaps.

Run by ``nslab.up``/``start`` as ``ip netns exec NODE unshare --mount --uts --ipc --pid
--fork --mount-proc --propagation private python -m core.backends.pacemaker.nslab_node
CONFIG``, so it starts in the node's network namespace and in new mount, UTS, IPC and
PID namespaces, as PID 1. CONFIG (JSON, written by ``nslab``) names the node, a staging
folder, the switch's namespace file and the bind mounts. Then:

1. **The node's root**: an overlay whose lower layer is the host's ``/`` (read-only in
   effect: every write goes to an upper layer on a private tmpfs), so the node sees the
   host's programs but nothing it writes outside its own folders reaches the host, and
   mount points such as ``/disks`` or ``/data`` cost the host nothing. Fresh ``/proc``
   (the node's PIDs), ``/sys`` (the node's interfaces), private tmpfs on ``/run``,
   ``/dev/shm`` and ``/tmp`` (resource agents keep their state in ``/run``; libqb its
   rings in ``/dev/shm``), ``/dev`` from the host (loop devices, FUSE).
2. **Bind mounts** of the node's own folders: ``/etc/hosts``, ``/etc/corosync``,
   ``/var/lib/corosync``, ``/var/lib/pacemaker``, ``/var/log``, sshd's ``/etc/ssh/lab``,
   the lab's client key on ``/root/.ssh``, a ``/root/.bashrc`` of its own (not the
   host's), ``/disks``, ``/opt/LifeKeeper``, ``/data``; the project's fence agent
   read-only on ``/usr/sbin/fence_lkswitch`` (where Pacemaker's fencer looks for
   ``fence_*``), the project's OCF agents read-only on
   ``/usr/lib/ocf/resource.d/lkconsole`` (``ocf:lkconsole:app``); the switch's network
   namespace file on ``/run/lkswitch/netns`` (how the fence agent reaches the switch).
3. ``pivot_root`` into it (the host's tree is then out of reach), the hostname.
4. ``corosync -f``; once ``corosync-cmapctl -g totem.cluster_name`` answers,
   ``pacemakerd``; ``sshd -D``; each in a session of its own, output in ``/var/log``.
5. Reap every child (orphans of the node land here) until killed.

Messages go to standard output, which ``nslab`` points at ``nodes/<node>/boot.log``.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COROSYNC_WAIT = 30.0

_libc = ctypes.CDLL(None, use_errno=True)


class NodeInitError(Exception):
    """The node cannot be built; PID 1 exits and the node is gone."""


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def mount(
    source: str | None, target: Path, fstype: str | None, flags: int, data: str | None = None
) -> None:
    rc: int = _libc.mount(
        source.encode() if source else None,
        str(target).encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise NodeInitError(
            f"mount {source or ''} on {target} ({fstype or 'bind'}): {os.strerror(err)}"
        )


def bind(source: Path, target: Path, read_only: bool) -> None:
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    mount(str(source), target, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def build_root(config: dict[str, Any]) -> None:
    stage = Path(config["stage"])
    mount("lknode", stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=256m")
    for sub in ("upper", "work", "root"):
        (stage / sub).mkdir()
    root = stage / "root"
    mount(
        "lknode",
        root,
        "overlay",
        0,
        f"lowerdir=/,upperdir={stage / 'upper'},workdir={stage / 'work'}",
    )
    mount("/dev", root / "dev", None, MS_BIND | MS_REC)
    mount("shm", root / "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    mount("proc", root / "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("sysfs", root / "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("run", root / "run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    mount("tmp", root / "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for item in config["binds"]:
        bind(Path(item["source"]), root / item["target"].lstrip("/"), bool(item["read_only"]))
    switch = root / "run/lkswitch/netns"
    switch.parent.mkdir(parents=True)
    switch.touch()
    mount(config["switch_netns"], switch, None, MS_BIND)
    old = root / ".oldroot"
    old.mkdir()
    os.chdir(root)
    done = subprocess.run(
        ["pivot_root", ".", ".oldroot"], capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise NodeInitError(f"pivot_root: {done.stderr.strip()}")
    os.chdir("/")
    if _libc.umount2(b"/.oldroot", MNT_DETACH) != 0:
        raise NodeInitError(f"umount /.oldroot: {os.strerror(ctypes.get_errno())}")
    Path("/.oldroot").rmdir()


def prepare_run() -> None:
    hacluster = pwd.getpwnam("hacluster")
    Path("/run/sshd").mkdir(mode=0o755)
    Path("/run/lock").mkdir(mode=0o755)
    crm = Path("/run/crm")
    crm.mkdir(mode=0o750)
    os.chown(crm, hacluster.pw_uid, hacluster.pw_gid)


def start(argv: list[str], log_name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(f"/var/log/{log_name}", "ab")  # noqa: SIM115 - the daemon keeps it
    say(f"starting {' '.join(argv)}")
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        cwd="/",
    )
    log.close()
    return proc


def corosync_answers(env: dict[str, str]) -> bool:
    done = subprocess.run(
        ["corosync-cmapctl", "-g", "totem.cluster_name"],
        capture_output=True,
        env=env,
        timeout=10,
        check=False,
    )
    return done.returncode == 0


def boot(config: dict[str, Any]) -> dict[int, str]:
    env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": "/root"}
    daemons: dict[int, str] = {}
    corosync = start(["corosync", "-f"], "corosync/corosync.out", env)
    daemons[corosync.pid] = "corosync"
    pause = threading.Event()
    deadline = time.monotonic() + COROSYNC_WAIT
    while not corosync_answers(env):
        if corosync.poll() is not None:
            raise NodeInitError(f"corosync exited with status {corosync.returncode}")
        if time.monotonic() > deadline:
            raise NodeInitError(f"corosync did not answer within {COROSYNC_WAIT:g} s")
        pause.wait(0.05)
    say("corosync answers")
    pcmk_env = {
        **env,
        "PCMK_logfile": "/var/log/pacemaker/pacemaker.log",
        "PCMK_logfacility": "none",
        "HA_LOGFACILITY": "none",
    }
    pacemaker = start(["pacemakerd"], "pacemaker/pacemakerd.out", pcmk_env)
    daemons[pacemaker.pid] = "pacemakerd"
    sshd = shutil.which("sshd", path=CLEAN_PATH) or "/usr/sbin/sshd"
    ssh = start([sshd, "-D", "-e", "-f", "/etc/ssh/lab/sshd_config"], "sshd.log", env)
    daemons[ssh.pid] = "sshd"
    return daemons


def reap(daemons: dict[int, str]) -> None:
    """Reap every child forever; say when one of the node's daemons ends."""
    pause = threading.Event()
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            pause.wait(1.0)
            continue
        name = daemons.pop(pid, None)
        if name:
            say(f"{name} (pid {pid}) ended: {describe(status)}")


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def main(argv: list[str]) -> int:
    # A node's daemons get the umask an init gives them (systemd's UMask=0022), not the
    # 077 of the lkctl that booted the node: Pacemaker's daemons run as different users
    # and meet in IPC files (libqb's /dev/shm) that must be readable by the others.
    os.umask(0o022)
    config: dict[str, Any] = json.loads(Path(argv[0]).read_text())
    name = config["name"]
    try:
        if os.getpid() != 1:
            raise NodeInitError("must run as PID 1 of a new PID namespace (see nslab.py)")
        build_root(config)
        socket.sethostname(name)
        prepare_run()
        say(f"node {name} built")
        daemons = boot(config)
    except (NodeInitError, OSError, subprocess.SubprocessError) as exc:
        say(f"node {name} failed to boot: {exc}")
        return 1
    reap(daemons)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
