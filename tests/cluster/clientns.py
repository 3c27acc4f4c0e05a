"""A machine of the test's own on the Pacemaker lab's switch: a network namespace with one
veth into the lab's bridge and an address on the service network (``10.213.0.99``).

What runs there (``ip netns exec``) reaches the nodes' sshd as an administrator's desktop
on the cluster's network would; the host's own network is not touched. Removed on exit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from core.backends.pacemaker.nslab_files import BRIDGE, SERVICE_NETWORK, LabPaths
from tests.helpers import REPO

CLIENT_ADDRESS = "10.213.0.99"


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def client_namespace(home: Path) -> Iterator[str]:
    """A namespace plugged into the lab's switch; its name."""
    paths = LabPaths(home)
    tag = hashlib.sha256(str(home).encode()).hexdigest()[:6]
    name, port = f"lkcl{tag}", f"cl{tag}"
    _ip("netns", "add", name)
    try:
        _ip("-n", paths.switch_netns, "link", "add", port, "type", "veth", "peer", "name",
            "eth0", "netns", name)  # fmt: skip
        _ip("-n", paths.switch_netns, "link", "set", port, "master", BRIDGE, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "addr", "add", f"{CLIENT_ADDRESS}/{SERVICE_NETWORK.prefixlen}",
            "dev", "eth0")  # fmt: skip
        _ip("-n", name, "link", "set", "eth0", "up")
        yield name
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("-n", paths.switch_netns, "link", "delete", port)
        _ip("netns", "delete", name)


def run_in(
    namespace: str, argv: Sequence[str], env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (a Python module of the tests, usually) in ``namespace``."""
    return subprocess.run(
        ["ip", "netns", "exec", namespace, *argv],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


PYTHON = sys.executable
