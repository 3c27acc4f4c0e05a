"""Running a cluster's commands: on this node, on the namespace lab, or over SSH.

Every command is an argument list with a timeout; its stderr is kept for the message;
never a shell string on this side (over SSH the list is quoted once, with
:func:`shlex.join`, for the remote user's shell, which is how OpenSSH passes commands).

- :class:`LocalRunner` (``pacemaker``): the console runs on a cluster node.
- :class:`LabRunner` (``pacemaker-lab``): the Pacemaker lab of a ``LKCONSOLE_HOME``
  (``nslab``); commands run on its first running node, the next one when that is down.
- :class:`SshRunner` (``ssh://[user@]host[:port]``): OpenSSH in ``BatchMode`` (key
  authentication through the agent or a key file, never a password), one multiplexed
  ControlMaster connection per runner whose socket lives in a private folder of its own,
  host keys checked against the console's own known_hosts (``hostkeys``): an unknown key
  raises :class:`HostKeyUnknown` with its fingerprints, a changed one
  :class:`HostKeyChanged`.
"""

from __future__ import annotations

import abc
import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from core.backends.pacemaker import hostkeys, nslab
from core.backends.pacemaker.hostkeys import HostKey
from core.errors import LkError

SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SSH_CONNECT_TIMEOUT = 10


class RunnerError(LkError):
    """A command could not be run on the cluster (the message says where and why)."""


class Unreachable(RunnerError):
    """The node or host cannot be reached (down, refused, unknown name...)."""


class CommandTimeout(RunnerError):
    """A command took longer than its timeout (it was killed)."""


class ToolMissing(RunnerError):
    """A program the console needs is not installed where it runs."""


class HostKeyUnknown(Unreachable):
    """The host's key is not in the console's known_hosts: the user must check and trust it."""

    def __init__(
        self, host: str, port: int, keys: Sequence[HostKey], also: Sequence[str] = ()
    ) -> None:
        self.host, self.port, self.keys = host, port, tuple(keys)
        self.also = tuple(also)  # other names of the host (the address it resolves to)
        shown = "; ".join(k.shown for k in keys) or "ssh-keyscan got no key from it"
        super().__init__(
            f"The host key of {hostkeys.host_field(host, port)} is not known to LK Console: "
            f"{shown}. Compare it with the node's own (ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key.pub on the node) and trust it only if it matches."
        )


class HostKeyChanged(Unreachable):
    """The host presented a key other than the one trusted: refused, loudly."""

    def __init__(self, host: str, port: int, detail: str) -> None:
        self.host, self.port = host, port
        super().__init__(
            f"WARNING: THE HOST KEY OF {hostkeys.host_field(host, port)} HAS CHANGED. "
            "Someone may be intercepting the connection (a man-in-the-middle attack), or the "
            "node was reinstalled. Nothing was sent to it. Check with the node's "
            "administrator; only if the new key is the node's own, forget the old one "
            f"(lkctl cluster forget-host {host}) and connect again. ({detail})"
        )


class AuthRefused(Unreachable):
    """The host refused the user's key."""


@dataclass(frozen=True)
class Completed:
    """A finished command: where it ran, its exit status and output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    where: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def detail(self) -> str:
        """The command's own words on a failure: its stderr (or stdout), last lines."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-3:]) if text else f"exit status {self.returncode}"


def _process(
    argv: Sequence[str],
    timeout: float,
    input_text: str | None,
    env: Mapping[str, str] | None,
    where: str,
) -> tuple[int, str, str]:
    """Run ``argv`` in a session of its own; kill its process group on timeout."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ToolMissing(f"{argv[0]} not found on {where}: is it installed?") from None
    try:
        out, err = proc.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise CommandTimeout(
            f"{shlex.join(argv)} did not finish within {timeout:g} s on {where}"
        ) from None
    return proc.returncode, out, err


class Stream:
    """A long-running command whose output is read as it comes (the watch's trigger)."""

    def __init__(self, proc: subprocess.Popen[bytes], where: str) -> None:
        self._proc = proc
        self.where = where

    @property
    def stdout(self) -> IO[bytes]:
        assert self._proc.stdout is not None
        return self._proc.stdout

    def read(self, size: int = 4096) -> bytes:
        """Block until some output (b"" once the command ended)."""
        return os.read(self.stdout.fileno(), size)

    def fileno(self) -> int:
        return self.stdout.fileno()

    @property
    def pid(self) -> int:
        """The local process (ssh, nsenter, or the command itself)."""
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self.stdout.close()


def _popen_stream(argv: Sequence[str], env: Mapping[str, str] | None, where: str) -> Stream:
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ToolMissing(f"{argv[0]} not found on {where}: is it installed?") from None
    return Stream(proc, where)


class Runner(abc.ABC):
    """Where the cluster's commands run (see the module's docstring)."""

    name = ""
    can_choose_node = False  # can run a command on a node of the caller's choice

    @abc.abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        input_text: str | None = None,
        node: str | None = None,
    ) -> Completed: ...

    @abc.abstractmethod
    def stream(self, argv: Sequence[str]) -> Stream: ...

    @property
    @abc.abstractmethod
    def node(self) -> str:
        """The node commands run on when none is named ("" while not known)."""

    def next_node(self, reason: str = "") -> bool:
        """Run on another node from now on (False: there is none to go to)."""
        return False

    def close(self) -> None:  # noqa: B027 - a default: a local runner holds nothing
        """Release what the runner holds (an SSH connection)."""


# -- this node ------------------------------------------------------------------------------


def local_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIB_", "LC_"))}
    env["PATH"] = SBIN_PATH + (":" + env["PATH"] if env.get("PATH") else "")
    env["LC_ALL"] = "C"
    return env


class LocalRunner(Runner):
    """The console on a cluster node: the local ``crm_*`` tools."""

    name = "pacemaker"

    def __init__(self) -> None:
        self._node = ""

    @property
    def node(self) -> str:
        if not self._node:
            done = self.run(["crm_node", "--name"], timeout=10)
            self._node = done.stdout.strip() if done.ok else socket.gethostname()
        return self._node

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        input_text: str | None = None,
        node: str | None = None,
    ) -> Completed:
        if node is not None and self._node and node != self._node:
            raise Unreachable(
                f"the console runs on {self._node} and cannot run commands on {node}; "
                f"connect with ssh://root@{node} for that"
            )
        where = self._node or "this node"
        rc, out, err = _process(argv, timeout, input_text, local_env(), where)
        return Completed(tuple(argv), rc, out, err, where)

    def stream(self, argv: Sequence[str]) -> Stream:
        return _popen_stream(argv, local_env(), self.node)


# -- the namespace lab ---------------------------------------------------------------------


class LabRunner(Runner):
    """The Pacemaker lab of ``home``: commands run on a running node (root)."""

    name = "pacemaker-lab"
    can_choose_node = True

    def __init__(self, home: Path) -> None:
        self.home = home
        self._lock = threading.Lock()
        try:
            nodes = nslab.status(home).nodes
        except nslab.LabError as exc:
            raise Unreachable(str(exc)) from exc
        if not nodes:
            raise Unreachable(
                f"there is no Pacemaker lab in {home}: start one with "
                "lkctl lab up --engine pacemaker"
            )
        self._names = [n.name for n in nodes]
        running = [n.name for n in nodes if n.state == nslab.NodeState.RUNNING]
        self._node = (running or self._names)[0]

    @property
    def node(self) -> str:
        with self._lock:
            return self._node

    @property
    def nodes(self) -> list[str]:
        return list(self._names)

    def next_node(self, reason: str = "") -> bool:
        """The next running node after the current one (in node order)."""
        status = nslab.status(self.home)
        with self._lock:
            order = self._names[self._names.index(self._node) + 1 :] + self._names
            for name in order:
                if name != self._node and status.node(name).state == nslab.NodeState.RUNNING:
                    self._node = name
                    return True
        return False

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        input_text: str | None = None,
        node: str | None = None,
    ) -> Completed:
        target = node or self.node
        for _attempt in range(len(self._names)):
            try:
                rc, out, err = nslab.exec(self.home, target, argv, timeout, input_text)
            except nslab.LabTimeout as exc:
                raise CommandTimeout(f"{exc} (on {target})") from exc
            except nslab.LabError as exc:
                if node is not None or not self.next_node(str(exc)):
                    raise Unreachable(str(exc)) from exc
                target = self.node
                continue
            if rc != 0 and err.startswith("nsenter: "):  # the node died under us
                if node is not None or not self.next_node(err.strip()):
                    raise Unreachable(f"{target} went down: {err.strip()}")
                target = self.node
                continue
            if rc == 127 and "No such file" in err:
                raise ToolMissing(f"{argv[0]} not found on {target}: is Pacemaker installed?")
            return Completed(tuple(argv), rc, out, err, target)
        raise Unreachable(f"no node of the lab in {self.home} is running")

    def stream(self, argv: Sequence[str]) -> Stream:
        target = self.node
        init = nslab.status(self.home).node(target).init_pid
        if init is None:
            if self.next_node():
                return self.stream(argv)
            raise Unreachable(f"no node of the lab in {self.home} is running")
        command = ["nsenter", "-t", str(init), "-m", "-u", "-i", "-n", "-p", "--", *argv]
        return _popen_stream(command, nslab_env(), target)


def nslab_env() -> dict[str, str]:
    return {"PATH": SBIN_PATH, "LANG": "C.UTF-8", "LC_ALL": "C", "HOME": "/root"}


# -- SSH ---------------------------------------------------------------------------------------

_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_][A-Za-z0-9_.-]*)$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SshTarget:
    user: str  # "" = OpenSSH's default (the local user)
    host: str
    port: int = 22

    @property
    def spec(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port != 22 else ""
        return f"ssh://{user}{self.host}{port}"

    @property
    def bare_host(self) -> str:
        return self.host.strip("[]")


def parse_ssh_spec(spec: str) -> SshTarget:
    """``ssh://[user@]host[:port]`` → its parts; LkError naming what is wrong."""
    if not spec.startswith("ssh://"):
        raise LkError(f"{spec!r} is not an ssh://[user@]host[:port] address")
    rest = spec.removeprefix("ssh://").rstrip("/")
    user, sep, hostport = rest.rpartition("@")
    if not sep:
        user, hostport = "", rest
    if user and not _USER.match(user):
        raise LkError(f"{user!r} is not a user name (in {spec})")
    port = 22
    host = hostport
    if hostport.startswith("["):
        end = hostport.find("]")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        if tail:
            if not tail.startswith(":"):
                raise LkError(f"{spec!r}: expected :port after the address")
            port_text = tail[1:]
        else:
            port_text = ""
    else:
        host, _sep, port_text = hostport.partition(":")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise LkError(f"{port_text!r} is not a port (in {spec})")
        port = int(port_text)
    if not host or not _HOST.match(host):
        raise LkError(f"{host!r} is not a host name or address (in {spec})")
    return SshTarget(user, host, port)


def _control_dir() -> Path:
    """A private, short folder for the ControlMaster socket (sun_path holds 108 bytes)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    base = runtime if runtime and len(runtime) < 60 and os.path.isdir(runtime) else None
    return Path(tempfile.mkdtemp(prefix="lkc-ssh-", dir=base))


class SshRunner(Runner):
    """A node of a real cluster over OpenSSH (see the module's docstring)."""

    def __init__(
        self,
        target: SshTarget,
        home: Path,
        identity: Path | None = None,
        ssh_config: Path | None = None,
    ) -> None:
        self.target = target
        self.name = target.spec
        self.home = home
        self.identity = identity
        self.ssh_config = ssh_config
        self.known_hosts = hostkeys.known_hosts_file(home)
        self._control = _control_dir()
        self._socket = self._control / "master"
        self._lock = threading.Lock()
        self._node = ""
        if shutil.which("ssh") is None:
            raise ToolMissing("ssh (OpenSSH's client) not found here: install openssh-client")

    # -- the options every ssh call gets
    def _options(self) -> list[str]:
        options = [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "CheckHostIP=no",
            "-o", "UpdateHostKeys=no",
            "-o", "PasswordAuthentication=no",
            "-o", "KbdInteractiveAuthentication=no",
            "-o", f"ConnectTimeout={SSH_CONNECT_TIMEOUT}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
            "-o", f"ControlPath={self._socket}",
            "-p", str(self.target.port),
        ]  # fmt: skip
        if self.ssh_config is not None:
            options = ["-F", str(self.ssh_config), *options]
        if self.identity is not None:
            options += ["-o", f"IdentityFile={self.identity}", "-o", "IdentitiesOnly=yes"]
        if self.target.user:
            options += ["-l", self.target.user]
        return options

    def _master_alive(self) -> bool:
        if not self._socket.exists():
            return False
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self._socket))
        except OSError:
            return False
        finally:
            probe.close()
        return True

    def connect(self) -> None:
        """Open the multiplexed connection (once; again after it dropped)."""
        with self._lock:
            if self._master_alive():
                return
            self._socket.unlink(missing_ok=True)
            log = self._control / "master.log"
            with open(log, "w") as err:
                argv = [
                    "ssh", "-M", "-N", "-f", "-o", "ControlMaster=yes",
                    "-o", "ControlPersist=300", *self._options(), "--", self.target.bare_host,
                ]  # fmt: skip
                try:
                    done = subprocess.run(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                        timeout=SSH_CONNECT_TIMEOUT + 20,
                        check=False,
                        start_new_session=True,
                    )
                except subprocess.TimeoutExpired:
                    raise Unreachable(
                        f"{self.target.spec} did not answer within {SSH_CONNECT_TIMEOUT + 20} s"
                    ) from None
            message = log.read_text(errors="replace").strip()
            if done.returncode != 0:
                raise self._classify(message)

    def _classify(self, message: str) -> Unreachable:
        target = self.target
        lines = [line for line in message.splitlines() if line.strip() and "@@@" not in line]
        last = lines[-1] if lines else "ssh failed"
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in message or "has changed" in message:
            return HostKeyChanged(target.bare_host, target.port, last)
        if "host key is known" in message or "Host key verification failed" in message:
            address, port = self._resolved()
            also = [address] if address != target.bare_host else []
            return HostKeyUnknown(target.bare_host, port, self.scan_host_keys(), also)
        if "Permission denied" in message:
            who = target.user or "your user"
            return AuthRefused(
                f"{target.spec} refused the key of {who} ({last}): add your public key to "
                f"{who}'s authorized_keys on {target.bare_host}, or load the right key in "
                "your ssh-agent"
            )
        return Unreachable(f"cannot connect to {target.spec}: {last}")

    def _resolved(self) -> tuple[str, int]:
        """The address and port ssh connects to (its configuration may alias the host)."""
        argv = ["ssh", "-G", *self._options(), "--", self.target.bare_host]
        host, port = self.target.bare_host, self.target.port
        try:
            rc, out, _err = _process(argv, 15, None, None, "this machine")
        except RunnerError:
            return host, port
        for line in out.splitlines() if rc == 0 else []:
            key, _sep, value = line.partition(" ")
            if key == "hostname" and value:
                host = value.strip()
            elif key == "port" and value.strip().isdigit():
                port = int(value)
        return host, port

    def scan_host_keys(self) -> list[HostKey]:
        """The keys the host offers now (unauthenticated: for the user to compare)."""
        host, port = self._resolved()
        argv = ["ssh-keyscan", "-T", "5", "-p", str(port), host]
        try:
            _rc, out, _err = _process(argv, 20, None, None, "this machine")
        except RunnerError:
            return []
        return hostkeys.parse_keyscan(out)

    def trust(self, keys: Sequence[HostKey]) -> None:
        address, port = self._resolved()
        also = [address] if address != self.target.bare_host else []
        hostkeys.trust(self.home, self.target.bare_host, port, keys, also)

    def _argv(self, argv: Sequence[str]) -> list[str]:
        # Pacemaker's tools live in sbin, which a non-root user's PATH often lacks.
        remote = shlex.join(["env", "LC_ALL=C", f"PATH={SBIN_PATH}", *argv])
        return [
            "ssh",
            "-o",
            "ControlMaster=no",
            *self._options(),
            "--",
            self.target.bare_host,
            remote,
        ]

    @property
    def node(self) -> str:
        if not self._node:
            done = self.run(["crm_node", "--name"], timeout=15)
            self._node = done.stdout.strip() if done.ok else self.target.bare_host
        return self._node

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        input_text: str | None = None,
        node: str | None = None,
    ) -> Completed:
        if node is not None and self._node and node != self._node:
            raise Unreachable(
                f"commands run on {self._node} ({self.target.spec}); {node} cannot be "
                f"reached from there: connect with ssh://{self.target.user or 'root'}@{node}"
            )
        self.connect()
        where = self._node or self.target.bare_host
        rc, out, err = _process(self._argv(argv), timeout, input_text, None, "this machine")
        if rc == 255 and not self._master_alive():
            raise self._classify(err)
        if rc == 127 and "not found" in err:
            raise ToolMissing(f"{argv[0]} not found on {where}: is Pacemaker installed?")
        return Completed(tuple(argv), rc, out, err, where)

    def stream(self, argv: Sequence[str]) -> Stream:
        where = self.node
        self.connect()
        return _popen_stream(self._argv(argv), None, where)

    def close(self) -> None:
        with self._lock:
            if self._master_alive():
                with contextlib.suppress(RunnerError):
                    _process(
                        ["ssh", "-o", f"ControlPath={self._socket}", "-O", "exit", "--",
                         self.target.bare_host],
                        15, None, None, "this machine",
                    )  # fmt: skip
            shutil.rmtree(self._control, ignore_errors=True)


__all__ = [
    "AuthRefused",
    "CommandTimeout",
    "Completed",
    "HostKeyChanged",
    "HostKeyUnknown",
    "LabRunner",
    "LocalRunner",
    "Runner",
    "RunnerError",
    "SshRunner",
    "SshTarget",
    "Stream",
    "ToolMissing",
    "Unreachable",
    "parse_ssh_spec",
]
