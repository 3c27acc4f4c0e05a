"""Helpers for tests on the Pacemaker lab: commands on nodes, crm_mon's XML, leftovers.

The XML is read here with ElementTree on purpose, not with the lab's own parser, so a
test does not trust the code it checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.backends.pacemaker import nslab
from core.backends.pacemaker.nslab_files import LabPaths
from tests.helpers import wait_until

NODES = ("lab1", "lab2", "lab3")


@dataclass
class Lab:
    home: Path
    nodes: tuple[str, ...] = NODES
    made: list[str] = field(default_factory=list)

    def run(self, node: str, *argv: str, timeout: float = 30.0, ok: bool = True) -> str:
        """Run ``argv`` on ``node``; its stdout (asserting exit status 0 when ``ok``)."""
        rc, out, err = nslab.exec(self.home, node, list(argv), timeout)
        if ok:
            assert rc == 0, f"{' '.join(argv)} on {node}: exit {rc}: {err.strip()}"
        return out

    def crm_mon(self, node: str) -> ET.Element:
        return ET.fromstring(self.run(node, "crm_mon", "-1", "--output-as=xml"))

    def view(self, node: str) -> tuple[bool, set[str]]:
        """(quorate, online nodes) as ``node`` sees the cluster; (False, ∅) if it cannot say."""
        rc, out, _err = nslab.exec(self.home, node, ["crm_mon", "-1", "--output-as=xml"], 30)
        if rc != 0:
            return False, set()
        root = ET.fromstring(out)
        dc = root.find("summary/current_dc")
        quorate = dc is not None and dc.get("with_quorum") == "true"
        online = {
            n.get("name", "") for n in root.iterfind("nodes/node") if n.get("online") == "true"
        }
        return quorate, online

    def running_on(self, node: str, resource: str) -> set[str]:
        """The nodes where ``resource`` has started (and not failed), as ``node`` sees it."""
        rc, out, _err = nslab.exec(self.home, node, ["crm_mon", "-1", "--output-as=xml"], 30)
        if rc != 0:
            return set()
        for item in ET.fromstring(out).iterfind(".//resources/resource"):
            if (
                item.get("id") == resource
                and item.get("role") == "Started"
                and item.get("failed") == "false"
            ):
                return {n.get("name", "") for n in item.iterfind("node")}
        return set()

    def fencings(self, node: str, target: str) -> int:
        """How many successful fencing actions against ``target`` ``node``'s fencer records
        (``--verbose``: without it, stonith_admin lists only the latest one)."""
        out = self.run(node, "stonith_admin", "--history", target, "--verbose", "--output-as=xml")
        return sum(
            1
            for event in ET.fromstring(out).iterfind(".//fence_event")
            if event.get("target") == target and event.get("status") == "success"
        )

    def cib_create(self, section: str, xml: str) -> None:
        self.run(self.nodes[0], "cibadmin", "--create", "-o", section, "--xml-text", xml)

    @contextlib.contextmanager
    def resource(
        self, rid: str, agent: str, params: dict[str, str], scores: dict[str, int]
    ) -> Iterator[str]:
        """An OCF primitive allowed (opt-in) on the nodes of ``scores``; removed afterwards."""
        provider, kind = agent.removeprefix("ocf:").split(":")
        pairs = "".join(
            f'<nvpair id="{rid}-{k}" name="{k}" value="{v}"/>' for k, v in params.items()
        )
        self.cib_create(
            "resources",
            f'<primitive id="{rid}" class="ocf" provider="{provider}" type="{kind}">'
            f'<instance_attributes id="{rid}-params">{pairs}</instance_attributes>'
            f'<operations><op id="{rid}-monitor" name="monitor" interval="5s"/></operations>'
            "</primitive>",
        )
        for node, score in scores.items():
            self.cib_create(
                "constraints",
                f'<rsc_location id="{rid}-on-{node}" rsc="{rid}" node="{node}" score="{score}"/>',
            )
        try:
            yield rid
        finally:
            self.remove_resource(rid, list(scores))

    def remove_resource(self, rid: str, nodes: list[str]) -> None:
        """Stop ``rid``, then delete it and its constraints (Pacemaker's order of things)."""
        up = next(n for n in self.nodes if self.alive(n))
        self.run(up, "crm_resource", "--resource", rid, "--set-parameter", "target-role",
                 "--meta", "--parameter-value", "Stopped")  # fmt: skip
        wait_until(lambda: not self.running_on(up, rid), 60, f"{rid} to stop")
        for xml in (
            *(f'<rsc_location id="{rid}-on-{n}"/>' for n in nodes),
            f'<primitive id="{rid}"/>',
        ):
            self.run(up, "cibadmin", "--delete", "--xml-text", xml)

    def alive(self, node: str) -> bool:
        return nslab.status(self.home).node(node).state == nslab.NodeState.RUNNING


def wait_healthy(lab: Lab, timeout: float = 90.0) -> None:
    """Every node sees a quorate cluster with every node online."""
    everyone = set(lab.nodes)

    def healthy() -> bool:
        return all(lab.view(n) == (True, everyone) for n in lab.nodes)

    wait_until(healthy, timeout, "every node to see a quorate cluster of all nodes")


def timed(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate`` holds (polled; never a fixed sleep)."""
    began = time.monotonic()
    wait_until(predicate, timeout, what)
    return time.monotonic() - began


def lab_netns(home: Path) -> list[str]:
    prefix = f"{LabPaths(home).prefix}-"
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))


def leftovers(home: Path, pids: set[int]) -> list[str]:
    """Everything of the lab of ``home`` still on this machine (empty when it is clean)."""
    found = [f"network namespace {n}" for n in lab_netns(home)]
    for pid in pids:  # still a node's init (not a process that got its number since)
        if "Z" not in _state(pid) and b"nslab_node" in _cmdline(pid):
            found.append(f"process {pid} (a node's init)")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if str(home) in cmdline:
            found.append(f"process {proc.name}: {cmdline.strip()}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith(str(home)):
            found.append(f"mount {point}")
    found += [f"loop device {d}" for d in loop_devices_under(home)]
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return "Z"
    return stat[stat.rindex(")") + 2]


def loop_devices_under(home: Path) -> list[str]:
    """Loop devices whose backing file is a file under ``home`` (matched by inode)."""
    done = subprocess.run(
        ["losetup", "-J", "-l", "-O", "NAME,BACK-INO,BACK-MAJ:MIN"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    if not done.stdout.strip():
        return []
    files = set()
    for folder, _dirs, names in os.walk(home):
        for name in names:
            st = os.lstat(os.path.join(folder, name))
            files.add((f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}", st.st_ino))
    return [
        d["name"]
        for d in json.loads(done.stdout)["loopdevices"]
        if (str(d.get("back-maj:min", "")).strip(), d.get("back-ino")) in files
    ]


def fuse_devices(lab: Lab, rid: str) -> set[str]:
    """The device numbers (``major:minor``) of the FUSE file systems of mirror ``rid``'s
    sources on this lab's running nodes (a source's nbdfuse, under ``/run/lkdr/RID/``):
    loop devices are the machine's, shared with every other lab, and these tell ours."""
    found = set()
    for node in lab.nodes:
        if not lab.alive(node):
            continue
        for line in lab.run(node, "cat", "/proc/self/mountinfo").splitlines():
            fields = line.split()
            if fields[4].startswith(f"/run/lkdr/{rid}/") and " - fuse " in line:
                found.add(fields[2])
    return found


def loop_devices_on(devices: set[str]) -> list[str]:
    """The loop devices (the machine's) whose backing file is on one of ``devices``
    (``major:minor``); ``losetup`` with a timeout (it hangs on a dead FUSE file)."""
    done = subprocess.run(
        ["losetup", "-J", "-l", "-O", "NAME,BACK-MAJ:MIN"],
        capture_output=True, text=True, timeout=20, check=True,
    )  # fmt: skip
    if not done.stdout.strip():
        return []
    return [
        d["name"]
        for d in json.loads(done.stdout)["loopdevices"]
        if str(d.get("back-maj:min", "")).strip() in devices
    ]


def same_bytes(a: Path, b: Path) -> bool:
    """Two volumes (or any files) hold the same bytes, read 1 MiB at a time."""
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def lab_key(lab: Lab) -> Path:
    """The key the lab's nodes let root in with."""
    return lab.home / "pacemaker-lab" / "ssh" / "id_ed25519"


def host_fingerprint(lab: Lab, node: str) -> str:
    """The SHA256 fingerprint of a node's ed25519 host key, as ssh-keygen -l shows it."""
    public = (
        lab.home / "pacemaker-lab" / "nodes" / node / "etc-ssh-lab" / "ssh_host_ed25519_key.pub"
    )
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(public)], capture_output=True, text=True)
    return out.stdout.split()[1]
