"""Connecting to a Pacemaker cluster: :func:`connect` turns a spec into a backend.


- ``"pacemaker"``: the console runs on a cluster node (the local ``crm_*`` tools);
- ``"pacemaker-lab"``: the namespace lab of this ``LKCONSOLE_HOME`` (``nslab``; root);
- ``"ssh://[user@]host[:port]"``: a node of a real cluster over OpenSSH (the key from the
  agent, ``LKCONSOLE_SSH_IDENTITY``, or ``$LKCONSOLE_HOME/ssh/id_ed25519``; host keys in
  ``$LKCONSOLE_HOME/ssh/known_hosts``; ``$LKCONSOLE_HOME/ssh/config``, when it exists,
  is the ssh configuration used: host aliases, jump hosts).

Errors are one line naming what is missing: "crm_mon not found on lab1: is Pacemaker
installed?". An unknown host key raises :class:`HostKeyUnknown` (its ``keys`` and their
fingerprints): after the user's yes, :func:`trust_host` stores them and connect works.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from core import paths
from core.backends.pacemaker import hostkeys, nslab
from core.backends.pacemaker.backend import WHAT_IF, PacemakerBackend
from core.backends.pacemaker.hostkeys import HostKey
from core.backends.pacemaker.runner import (
    SBIN_PATH,
    AuthRefused,
    HostKeyChanged,
    HostKeyUnknown,
    LabRunner,
    LocalRunner,
    Runner,
    RunnerError,
    SshRunner,
    ToolMissing,
    Unreachable,
    parse_ssh_spec,
)
from core.errors import LkError

SPECS = ("pacemaker", "pacemaker-lab", "ssh://[user@]host[:port]")


class ConnectError(LkError):
    """The cluster cannot be reached or used (the message says what is missing)."""


def is_spec(spec: str) -> bool:
    """Is ``spec`` one of this backend's (for ``core.connection.open``)?"""
    return spec in ("pacemaker", "pacemaker-lab") or spec.startswith("ssh://")


def connect(spec: str, home: Path | None = None, identity: Path | None = None) -> PacemakerBackend:
    """A backend for ``spec`` (see the module's docstring); ConnectError (or one of the
    SSH errors: HostKeyUnknown, HostKeyChanged, AuthRefused) when it cannot be used."""
    home = home or paths.data_dir()
    runner: Runner
    lab_home = None
    if spec == "pacemaker":
        if shutil.which("crm_mon", path=SBIN_PATH + ":" + os.environ.get("PATH", "")) is None:
            raise ConnectError(
                "crm_mon not found on this machine: is Pacemaker installed? (or connect to "
                "a node with ssh://root@node)"
            )
        runner = LocalRunner()
    elif spec == "pacemaker-lab":
        try:
            runner = LabRunner(home)
        except nslab.NotRoot as exc:
            raise ConnectError(str(exc)) from exc
        except Unreachable as exc:
            raise ConnectError(str(exc)) from exc
        lab_home = home
    elif spec.startswith("ssh://"):
        target = parse_ssh_spec(spec)
        ssh_dir = hostkeys.ssh_dir(home)
        key = identity or _identity(ssh_dir)
        config = ssh_dir / "config"
        runner = SshRunner(target, home, key, config if config.is_file() else None)
        try:
            runner.connect()
        except LkError:
            runner.close()  # its private folder goes too
            raise
    else:
        raise ConnectError(f"{spec!r} is not a Pacemaker cluster: use one of {', '.join(SPECS)}")
    try:
        _check_tools(runner)
        return PacemakerBackend(runner, home, lab_home=lab_home)
    except LkError as exc:
        runner.close()
        if isinstance(exc, ConnectError | RunnerError):
            raise
        raise ConnectError(f"cannot use the cluster at {spec}: {exc}") from exc


def _identity(ssh_dir: Path) -> Path | None:
    given = os.environ.get("LKCONSOLE_SSH_IDENTITY", "")
    if given:
        return Path(given).expanduser()
    own = ssh_dir / "id_ed25519"
    return own if own.is_file() else None


def _check_tools(runner: Runner) -> None:
    for tool in ("crm_mon", "cibadmin", "crm_simulate"):
        try:
            done = runner.run([tool, "--version"], timeout=30)
        except ToolMissing:
            done = None
        if done is None or done.returncode == 127:
            where = done.where if done is not None else runner.node or runner.name
            raise ConnectError(f"{tool} not found on {where}: is Pacemaker installed?")
    done = runner.run(["cibadmin", "--query", "--xpath", "/cib", "--no-children"], timeout=30)
    if not done.ok:
        raise ConnectError(
            f"cannot read the cluster's configuration on {done.where}: {done.detail} "
            "(is Pacemaker running there? is the user root or in the haclient group?)"
        )


def trust_host(home: Path, error: HostKeyUnknown) -> None:
    """Trust the keys an unknown host showed (after the user compared the fingerprints)."""
    hostkeys.trust(home, error.host, error.port, error.keys, error.also)


def forget_host(home: Path, host: str, port: int = 22) -> int:
    """Forget a host's keys (a reinstalled node); how many were forgotten."""
    return hostkeys.forget(home, host, port)


__all__ = [
    "SPECS",
    "WHAT_IF",
    "AuthRefused",
    "ConnectError",
    "HostKey",
    "HostKeyChanged",
    "HostKeyUnknown",
    "PacemakerBackend",
    "connect",
    "forget_host",
    "is_spec",
    "trust_host",
]
