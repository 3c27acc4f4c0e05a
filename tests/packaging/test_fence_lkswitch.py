"""fence_lkswitch, the lab's fence agent, from the outside as Pacemaker's fencer calls it.

Without root: its metadata and how it reads and checks its options. As root: the real
thing on a switch made for the test (a bridge in a namespace, two ports).
"""

from __future__ import annotations

import os
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO

AGENT = REPO / "packaging" / "ocf" / "fence" / "fence_lkswitch"


def agent(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGENT), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_it_is_an_executable_named_as_pacemaker_looks_for_fence_agents() -> None:
    assert AGENT.name.startswith("fence_")
    assert os.access(AGENT, os.X_OK)
    assert AGENT.read_text().startswith("#!/usr/bin/python3\n")  # the system's Python


def test_metadata_follows_the_fence_agent_api() -> None:
    done = agent("-o", "metadata")
    assert done.returncode == 0, done.stderr
    root = ET.fromstring(done.stdout)
    assert root.tag == "resource-agent" and root.get("name") == "fence_lkswitch"
    actions = {a.get("name") for a in root.iterfind("actions/action")}
    assert {"on", "off", "reboot", "status", "list", "monitor", "metadata"} <= actions
    params = {p.get("name"): p for p in root.iterfind("parameters/parameter")}
    assert params["plug"].get("obsoletes") == "port"
    assert params["port"].get("deprecated") == "1"
    assert params["action"].get("required") == "1"
    # Fabric fencing: no automatic unfencing (a cut node cannot be reached to be unfenced).
    on = next(a for a in root.iterfind("actions/action") if a.get("name") == "on")
    assert on.get("automatic") == "0"
    assert agent(stdin="action=metadata\n").stdout == done.stdout


def test_bad_input_is_refused_with_the_reason() -> None:
    done = agent("-o", "explode", "-n", "lab1")
    assert done.returncode == 2 and "unsupported action 'explode'" in done.stderr
    done = agent("-o", "off")
    assert done.returncode == 2 and "needs a plug" in done.stderr
    done = agent(stdin="action=off\nplug=../../etc\n")
    assert done.returncode == 2 and "not a switch port name" in done.stderr
    done = agent("--delay", "x", "-o", "list")
    assert done.returncode == 2 and "not a number" in done.stderr
    assert agent("-o", "status", "lab1").returncode == 2  # a stray argument
    assert agent("--help").returncode == 0


def test_a_switch_it_cannot_reach_is_an_error_not_a_state(tmp_path: Path) -> None:
    done = agent(
        stdin=f"action=status\nport=lab1\nnodename=lab1\nswitch_netns={tmp_path / 'none'}\n"
        "pcmk_unknown=1\n"
    )
    assert done.returncode == 1, done.stdout
    assert "failed" in done.stderr and "Status" not in done.stdout
    assert "ignoring unknown option 'pcmk_unknown'" in done.stderr
    assert "nodename" not in done.stderr  # Pacemaker always passes it: not an unknown option


@pytest.fixture
def switch() -> Iterator[Path]:
    """A bridge ``br0`` in a namespace of its own with ports ``n1`` and ``n2``."""
    if os.geteuid() != 0:
        pytest.skip("a switch in a network namespace needs root")
    name = f"lkft-{uuid.uuid4().hex[:8]}"
    peers = [f"{name}-{i}" for i in (1, 2)]

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    ip("netns", "add", name)
    for peer in peers:
        ip("netns", "add", peer)
    try:
        ip("-n", name, "link", "add", "br0", "type", "bridge")
        ip("-n", name, "link", "set", "br0", "up")
        for i, peer in enumerate(peers, start=1):
            ip("-n", name, "link", "add", f"n{i}", "type", "veth", "peer", "eth0", "netns", peer)
            ip("-n", name, "link", "set", f"n{i}", "master", "br0", "up")
        yield Path("/run/netns") / name
    finally:
        for ns in (name, *peers):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)


@pytest.mark.cluster
def test_off_on_reboot_and_status_set_and_read_the_port(switch: Path) -> None:
    opts = ["--switch-netns", str(switch)]
    assert agent(*opts, "-o", "list").stdout == "n1,n1\nn2,n2\n"
    assert agent(*opts, "-o", "status", "-n", "n1").stdout == "Status: ON\n"
    assert agent(*opts, "-o", "off", "-n", "n1").returncode == 0
    status = agent(*opts, "-o", "status", "-n", "n1")
    assert (status.returncode, status.stdout) == (2, "Status: OFF\n")
    assert agent(*opts, "-o", "list-status").stdout == "n1,n1,off\nn2,n2,on\n"
    assert agent(*opts, "-o", "on", "-n", "n1").returncode == 0
    assert agent(*opts, "-o", "status", "-n", "n1").returncode == 0
    # reboot is off for a fabric: the port stays down until unfenced.
    reboot = agent(stdin=f"action=reboot\nplug=n2\nswitch_netns={switch}\n")
    assert reboot.returncode == 0, reboot.stderr
    assert agent(*opts, "-o", "status", "-n", "n2").returncode == 2
    assert agent(*opts, "-o", "monitor").returncode == 0
    missing = agent(*opts, "-o", "off", "-n", "n9")
    assert missing.returncode == 1 and "no port 'n9'" in missing.stderr


@pytest.mark.cluster
def test_a_node_whose_own_port_is_down_cannot_fence(switch: Path) -> None:
    """In-band management: n1 cut off (its port down) cannot reach the switch to fence n2;
    n2, still on it, can fence n1 (a two-node cut has one winner)."""

    def as_node(node: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["unshare", "--uts", "sh", "-c", f'hostname {node} && exec "$@"', "sh",
             str(AGENT), "--switch-netns", str(switch), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    assert agent("--switch-netns", str(switch), "-o", "off", "-n", "n1").returncode == 0
    refused = as_node("n1", "-o", "off", "-n", "n2")
    assert refused.returncode == 1
    assert "n1's own port on the switch is down" in refused.stderr
    assert agent("--switch-netns", str(switch), "-o", "status", "-n", "n2").returncode == 0
    assert as_node("n2", "-o", "reboot", "-n", "n1").returncode == 0
    assert as_node("n1", "-o", "on", "-n", "n1").returncode == 1  # nor unfence itself
    assert as_node("n2", "-o", "on", "-n", "n1").returncode == 0
