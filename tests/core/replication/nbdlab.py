"""An NBD lab on one machine, for the NBD tests and benchmarks.

Two network namespaces of our own (``…-t``, the target node; ``…-s``, the source node)
joined by a veth pair on a private /30 that exists only on those two interfaces: the
host's network is never touched and no traffic leaves them. Targets are real nbdkit
processes (TLS-PSK) in the target namespace; the engine is a real process under the
system ``python3`` in the source namespace (:mod:`tests.core.replication.nbd_engine`).
Everything started is recorded and :meth:`NbdLab.close` stops it by PID, deletes the
namespaces, detaches loop devices and unmounts FUSE, whatever happened before.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from core.replication import localdev
from core.replication.nbd import NbdEndpoint
from core.replication.nbdkit import NbdkitProcess, make_psk_file, serve_target

REPO = Path(__file__).resolve().parents[3]
SYSTEM_PYTHON = "/usr/bin/python3"
ENGINE_MODULE = "tests.core.replication.nbd_engine"
PSK_USER = "lkmirror"
_counter = itertools.count(1)


def skip_reason(*, fuse: bool = False) -> str | None:
    """Why the NBD lab cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, nbdkit on a veth pair)"
    for tool, package in (("ip", "iproute2"), ("nbdkit", "nbdkit"), ("nbdcopy", "libnbd-bin")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    plugin = subprocess.run(
        ["nbdkit", "python", "--version"], capture_output=True, text=True, check=False
    )
    if plugin.returncode != 0:
        return "nbdkit's python plugin is not installed (apt-get install nbdkit-plugin-python)"
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import nbd"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return f"{SYSTEM_PYTHON} cannot import nbd (apt-get install python3-libnbd)"
    if fuse:
        for tool, package in (("nbdfuse", "libnbd-bin"), ("fusermount3", "fuse3")):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (apt-get install {package})"
        if not Path("/dev/fuse").exists():
            return "no /dev/fuse"
    return None


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        tick.wait(0.05)


class Engine:
    """The engine process (system python3, in the source namespace), as an RPC."""

    def __init__(self, netns: str, log: Path) -> None:
        self.log = log
        self._log_file = open(log, "ab")  # noqa: SIM115  # closed in close()
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                netns,
                SYSTEM_PYTHON,
                "-m",
                "tests.core.replication.nbd_engine",
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
        )

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the engine died during {op}: {self.log.read_text()[-3000:]}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.pop("ok"):
            raise AssertionError(
                f"{op} failed: {answer['type']}: {answer['error']}\n{answer['trace']}"
            )
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(AssertionError, BrokenPipeError, OSError, ValueError):
                self.call("close")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        self._log_file.close()


class NbdLab:
    """The two namespaces, the key, and everything started in them (see the module doc)."""

    def __init__(self, work: Path) -> None:
        n = next(_counter)
        tag = f"{os.getpid() % 100000}x{n}"
        self.work = work
        self.target_ns = f"lknbd{tag}t"
        self.source_ns = f"lknbd{tag}s"
        self.target_ip = f"10.213.{n % 250}.1"
        self.source_ip = f"10.213.{n % 250}.2"
        self._veth = (f"lkt{tag}"[:15], f"lks{tag}"[:15])
        self.servers: list[NbdkitProcess] = []
        self.engines: list[Engine] = []
        self.devices: list[Path] = []
        self.key = make_psk_file(work / "keys" / "mirror.psk", PSK_USER)
        self._up()

    def _up(self) -> None:
        t, s = self.target_ns, self.source_ns
        ip("netns", "add", t)
        try:
            ip("netns", "add", s)
            vt, vs = self._veth
            ip("link", "add", vt, "netns", t, "type", "veth", "peer", "name", vs, "netns", s)
            ip("-n", t, "addr", "add", f"{self.target_ip}/30", "dev", vt)
            ip("-n", s, "addr", "add", f"{self.source_ip}/30", "dev", vs)
            for ns, dev in ((t, vt), (s, vs)):
                ip("-n", ns, "link", "set", "lo", "up")
                ip("-n", ns, "link", "set", dev, "up")
        except BaseException:
            self._delete_namespaces()
            raise

    # -- targets ------------------------------------------------------------------------
    def serve(
        self,
        volume: Path,
        port: int = 10809,
        *,
        key: Path | None = None,
        log_requests: Path | None = None,
    ) -> NbdkitProcess:
        """A target's nbdkit; ``log_requests``: every request logged there (log filter)."""
        proc = serve_target(
            volume,
            address=self.target_ip,
            port=port,
            psk_file=key or self.key,
            run_dir=self.work / "run",
            netns=self.target_ns,
            name=f"target-{port}",
            options=() if log_requests is None else ("--filter=log",),
            params=() if log_requests is None else (f"logfile={log_requests}",),
        )
        self.servers.append(proc)
        return proc

    def uri(self, port: int = 10809, key: Path | None = None) -> str:
        return NbdEndpoint(host=self.target_ip, port=port, psk_file=key or self.key).uri()

    def endpoint(self, port: int = 10809, **kw: Any) -> NbdEndpoint:
        return NbdEndpoint(host=self.target_ip, port=port, psk_file=self.key, **kw)

    # -- the source side ------------------------------------------------------------------
    def engine(self) -> Engine:
        eng = Engine(self.source_ns, self.work / f"engine-{len(self.engines)}.log")
        self.engines.append(eng)
        return eng

    def in_source(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command in the source namespace (the project dir as working dir)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.source_ns, *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def device_up(self, config: Path, run_dir: Path) -> localdev.LocalDevice:
        self.devices.append(run_dir)
        return localdev.bring_up(config, run_dir, netns=self.source_ns)

    # -- the end ----------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Stop everything (by PID), remove the namespaces; the problems met."""
        problems: list[str] = []
        for run_dir in self.devices:
            problems += localdev.bring_down(run_dir)
        for eng in self.engines:
            eng.close()
        for proc in self.servers:
            if not proc.stop(timeout=10):
                problems.append(f"{proc.what} ({proc.pid}) does not stop")
        self._delete_namespaces()
        return problems

    def _delete_namespaces(self) -> None:
        for ns in (self.source_ns, self.target_ns):
            with contextlib.suppress(RuntimeError):
                ip("netns", "del", ns)


def leftovers(lab: NbdLab) -> list[str]:
    """What the lab left behind: namespaces, loop devices or FUSE mounts of its own."""
    found: list[str] = []
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    found += [n for n in names.stdout.split() if n in (lab.target_ns, lab.source_ns)]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=False)
    found += [line for line in loops.stdout.splitlines() if str(lab.work) in line]
    with open("/proc/mounts", encoding="utf-8") as f:
        found += [line for line in f if str(lab.work) in line]
    for proc in lab.servers:
        if proc.alive():
            found.append(f"process {proc.pid} ({proc.what})")
    return found
