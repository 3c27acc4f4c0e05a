"""The console's own SSH host keys: ``$LKCONSOLE_HOME/ssh/known_hosts`` (0600, in 0700).

OpenSSH checks every node against this file only (never the user's or the system's), in
``BatchMode``: an unknown key is refused, and the console shows its fingerprint so that the
user can compare it with the node's (``ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub``
on the node) and trust it (:func:`trust`); a key that changed is refused loudly, and only
:func:`forget` (after the user checked why: a reinstalled node) lets a new one in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.files import open_private, private_dir, write_private


def ssh_dir(home: Path) -> Path:
    return private_dir(home / "ssh")


def known_hosts_file(home: Path) -> Path:
    """The console's known_hosts (made empty and private when missing)."""
    path = ssh_dir(home) / "known_hosts"
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.close(fd)
    return path


def host_field(host: str, port: int) -> str:
    """How known_hosts names ``host``: ``lab1``, or ``[lab1]:2222`` on another port."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class HostKey:
    """One public host key, as ``ssh-keyscan`` prints it."""

    key_type: str  # ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa
    blob: str  # base64

    @property
    def fingerprint(self) -> str:
        """OpenSSH's SHA256 fingerprint: ``SHA256:…`` (what ``ssh-keygen -l`` prints)."""
        try:
            raw = base64.b64decode(self.blob, validate=True)
        except (binascii.Error, ValueError):
            return "SHA256:(not a key)"
        digest = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    @property
    def shown(self) -> str:
        return f"{self.key_type} {self.fingerprint}"


def parse_keyscan(text: str) -> list[HostKey]:
    """The keys of ``ssh-keyscan``'s output (comments and other lines skipped)."""
    keys = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) >= 3 and (parts[1].startswith(("ssh-", "ecdsa-", "sk-"))):
            keys.append(HostKey(parts[1], parts[2]))
    return keys


def _lines(home: Path) -> list[str]:
    return known_hosts_file(home).read_text().splitlines()


def known(home: Path, host: str, port: int) -> list[HostKey]:
    """The keys trusted for ``host``:``port``."""
    name = host_field(host, port)
    found = []
    for line in _lines(home):
        parts = line.split()
        if len(parts) >= 3 and name in parts[0].split(","):
            found.append(HostKey(parts[1], parts[2]))
    return found


def trust(
    home: Path, host: str, port: int, keys: Iterable[HostKey], also: Iterable[str] = ()
) -> None:
    """Trust ``keys`` for ``host``:``port`` (after the user compared the fingerprints);
    ``also``: other names of the host (the address ssh's configuration resolves it to,
    which is the name OpenSSH looks up)."""
    names = list(dict.fromkeys([host, *also]))
    name = ",".join(host_field(n, port) for n in names)
    have = {(k.key_type, k.blob) for n in names for k in known(home, n, port)}
    lines = _lines(home)
    lines += [f"{name} {k.key_type} {k.blob}" for k in keys if (k.key_type, k.blob) not in have]
    write_private(known_hosts_file(home), ("\n".join(lines) + "\n").encode())


def forget(home: Path, host: str, port: int) -> int:
    """Forget every key of ``host``:``port``; how many were forgotten."""
    name = host_field(host, port)
    kept, gone = [], 0
    for line in _lines(home):
        parts = line.split()
        if len(parts) >= 3 and name in parts[0].split(","):
            gone += 1
            continue
        kept.append(line)
    write_private(known_hosts_file(home), ("\n".join(kept) + "\n").encode() if kept else b"")
    return gone


__all__ = [
    "HostKey",
    "forget",
    "host_field",
    "known",
    "known_hosts_file",
    "parse_keyscan",
    "ssh_dir",
    "trust",
]
