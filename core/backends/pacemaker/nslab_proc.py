"""Commands, processes and namespaces of the Pacemaker lab, as the host sees them.

Outside commands run with argument lists and a timeout, their stderr kept for the
message. A process is known by its PID *and* its start time (``/proc/PID/stat``), so a
PID the kernel reused for someone else's process is never signalled. Processes of a
node are found by the network namespace they live in: ``/proc/PID/ns/net`` has the
inode of the namespace's nsfs file under ``/run/netns``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import LkError

NETNS_DIR = Path("/run/netns")
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LabError(LkError):
    """The Pacemaker lab cannot do what was asked (the message says what to do)."""


class NotRoot(LabError):
    """The Pacemaker lab needs root."""


class LabTimeout(LabError):
    """A command on the lab, or a wait for the lab, took longer than allowed."""


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a command on the lab: none of the caller's, a plain PATH."""
    env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
    if extra:
        env.update(extra)
    return env


def run(
    argv: Sequence[str],
    what: str,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> str:
    """Run ``argv``; its stdout, or :class:`LabError` naming ``what`` failed and why."""
    done = run_rc(argv, timeout, env=env, input_text=input_text)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise LabError(f"{what} failed: {' '.join(argv)}: {detail}")
    return done.stdout


def run_rc(
    argv: Sequence[str],
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a session of its own; kill its whole process group on timeout."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else clean_env(),
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise LabError(
            f"{argv[0]} is not installed: run bash packaging/bootstrap.sh --cluster"
        ) from exc
    try:
        out, err = proc.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc.pid)
        proc.communicate()
        raise LabTimeout(f"{' '.join(argv)} did not finish within {timeout:g} s") from exc
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.killpg(pgid, signal.SIGKILL)


def wait_for(what: str, timeout: float, check: Callable[[], bool], interval: float = 0.1) -> None:
    """Call ``check()`` until it is true; :class:`LabTimeout` naming ``what`` after ``timeout``."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise LabTimeout(f"timed out after {timeout:g} s waiting for {what}")
        pause.wait(interval)


@dataclass(frozen=True)
class ProcessId:
    """A process as the host knows it: its PID and the tick it started at."""

    pid: int
    start: int

    def alive(self) -> bool:
        return start_time(self.pid) == self.start


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is gone, whoever reaps it
        return None
    return int(fields[19])


def process_id(pid: int) -> ProcessId | None:
    start = start_time(pid)
    return None if start is None else ProcessId(pid, start)


def netns_inode(path: Path) -> int | None:
    """The inode that identifies the network namespace bound at ``path``."""
    try:
        return os.stat(path).st_ino
    except (FileNotFoundError, PermissionError):
        return None


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def pids_in_netns(inodes: Iterable[int]) -> list[int]:
    """Every process whose network namespace is one of ``inodes``."""
    wanted = set(inodes)
    found = []
    for pid in all_pids():
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino in wanted:
                found.append(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def namespace_init(inode: int) -> ProcessId | None:
    """The PID 1 of a PID namespace whose processes live in the network namespace ``inode``."""
    for pid in pids_in_netns([inode]):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                levels = line.split()[1:]
                if len(levels) == 2 and levels[-1] == "1":
                    return process_id(pid)
    return None


def kill(processes: Iterable[ProcessId]) -> None:
    """SIGKILL each process that is still the one recorded."""
    for proc in processes:
        if proc.alive():
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue


def kill_netns_processes(inodes: Sequence[int], timeout: float = 10.0) -> None:
    """SIGKILL every process living in the network namespaces ``inodes``; wait until gone."""
    if not inodes:
        return

    def none_left() -> bool:
        left = [p for p in (process_id(pid) for pid in pids_in_netns(inodes)) if p]
        kill(left)
        return not left

    wait_for("the lab's processes to end", timeout, none_left, interval=0.05)
