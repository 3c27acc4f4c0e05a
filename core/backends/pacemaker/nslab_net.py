"""The Pacemaker lab's network and its teardown: namespaces, the switch, ports, sweeping.

The switch is a bridge ``br0`` in a network namespace of its own; each node's namespace
holds ``eth0``, a veth whose peer is the switch port named after the node. A port down
is a node cut off (``cut``, and what the fence agent does). Everything is made with
``ip -n NAMESPACE``, so the host's own network namespace is never touched.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from core.backends.pacemaker.nslab_files import (
    BRIDGE,
    NODE_INTERFACE,
    SERVICE_NETWORK,
    LabPaths,
    node_address,
)
from core.backends.pacemaker.nslab_proc import (
    NETNS_DIR,
    LabError,
    ProcessId,
    kill,
    kill_netns_processes,
    netns_inode,
    run,
    run_rc,
)

_OCTAL = re.compile(r"\\([0-7]{3})")  # how mountinfo writes a space, a tab...


def ip_batch(commands: Sequence[str], what: str, netns: str | None = None) -> None:
    """Run ``ip`` commands in one go (``ip -batch -``), in ``netns`` when given."""
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    run(argv, what, input_text="".join(f"{c}\n" for c in commands))


def make_network(paths: LabPaths, nodes: Sequence[str]) -> None:
    """The switch, one namespace per node, and the cable between each node and its port."""
    switch = paths.switch_netns
    ip_batch(
        [f"netns add {switch}", *(f"netns add {paths.node_netns(n)}" for n in nodes)],
        "creating the lab's network namespaces",
    )
    switch_commands = [
        "link set lo up",
        f"link add {BRIDGE} type bridge stp_state 0",
        f"link set {BRIDGE} up",
    ]
    for node in nodes:
        switch_commands += [
            f"link add {node} type veth peer name {NODE_INTERFACE} netns {paths.node_netns(node)}",
            f"link set {node} master {BRIDGE}",
            f"link set {node} up",
        ]
    ip_batch(switch_commands, "building the lab's switch", switch)
    plain_switch(switch)
    for node in nodes:
        ip_batch(
            [
                "link set lo up",
                f"addr add {node_address(node)}/{SERVICE_NETWORK.prefixlen} dev {NODE_INTERFACE}",
                f"link set {NODE_INTERFACE} up",
            ],
            f"configuring {node}'s network",
            paths.node_netns(node),
        )


#: Where the kernel has br_netfilter, a new namespace's bridges pass every frame through
#: iptables (these are per namespace, 1 by default). A switch does not: without this the
#: bridge's netfilter hooks cost a full resync of the mirror a tenth of its time.
BRIDGE_NETFILTER = tuple(
    f"/proc/sys/net/bridge/bridge-nf-call-{table}"
    for table in ("iptables", "ip6tables", "arptables")
)


def plain_switch(switch: str) -> None:
    """The switch namespace's bridges forward frames without netfilter (a plain switch);
    nothing to do where the kernel has no br_netfilter."""
    script = "".join(f"[ ! -e {f} ] || echo 0 > {f}\n" for f in BRIDGE_NETFILTER)
    run(["ip", "netns", "exec", switch, "sh", "-c", script], "making the lab's switch plain")


def set_port(paths: LabPaths, node: str, up: bool) -> None:
    """Set ``node``'s switch port up or down."""
    state = "up" if up else "down"
    run(
        ["ip", "-n", paths.switch_netns, "link", "set", "dev", node, state],
        f"setting {node}'s switch port {state}",
    )


def port_states(paths: LabPaths) -> dict[str, bool]:
    """Switch port (node name) → up, for every port of the switch; empty without a switch."""
    if netns_inode(NETNS_DIR / paths.switch_netns) is None:
        return {}
    done = run_rc(["ip", "-n", paths.switch_netns, "-j", "link", "show", "master", BRIDGE])
    if done.returncode != 0:
        return {}
    try:
        links = json.loads(done.stdout or "[]")
    except ValueError:
        return {}
    return {link["ifname"]: "UP" in link.get("flags", []) for link in links}


def lab_namespaces(paths: LabPaths) -> list[str]:
    """This home's network namespaces that exist now (nodes first, the switch last)."""
    prefix = f"{paths.prefix}-"
    try:
        names = sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []
    return sorted(names, key=lambda n: n == paths.switch_netns)


def stop_node(paths: LabPaths, node: str, init: ProcessId) -> None:
    """Kill ``node``'s PID 1, then whatever else still lives in its network namespace."""
    detach_mirror_loops([init])  # freed once the node's mounts go with it (autoclear)
    fuse = fuse_connections([init])
    kill([init])
    abort_fuse(fuse)
    inode = netns_inode(NETNS_DIR / paths.node_netns(node))
    kill_netns_processes([inode] if inode is not None else [])


FUSECTL = Path("/sys/fs/fuse/connections")


def fuse_connections(inits: Sequence[ProcessId]) -> set[int]:
    """The FUSE connections of the nodes' mounts (a DataKeeper source's nbdfuse), by the
    number fusectl names them with: the mount's device (MKDEV(major, minor))."""
    found = set()
    for init in inits:
        if not init.alive():
            continue
        try:
            lines = Path(f"/proc/{init.pid}/mountinfo").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields, _sep, rest = line.partition(" - ")
            if not rest.startswith("fuse"):
                continue
            major, _colon, minor = fields.split()[2].partition(":")
            if major.isdigit() and minor.isdigit():
                found.add((int(major) << 20) | int(minor))
    return found


def abort_fuse(connections: set[int]) -> None:
    """Abort those FUSE connections once their servers are killed. A FUSE server killed
    with a request in flight (a loop device's read, say) otherwise leaves the request
    waiting for ever: the server cannot exit, the loop device above it never detaches,
    and every ``losetup`` that looks at it hangs, on the whole machine."""
    if not connections:
        return
    mounted = os.path.ismount(FUSECTL)
    if not mounted:
        run_rc(["mount", "-t", "fusectl", "fusectl", str(FUSECTL)])
    try:
        for number in connections:
            abort = FUSECTL / str(number) / "abort"
            try:
                abort.write_text("1")
            except OSError:
                continue  # gone with its server already
    finally:
        if not mounted:
            run_rc(["umount", str(FUSECTL)])


def teardown(paths: LabPaths, inits: Sequence[ProcessId]) -> None:
    """Remove every process, namespace, mount and loop device of this home's lab.

    Kills each node's PID 1 (the kernel then ends its PID namespace), then anything
    still living in the lab's network namespaces, then deletes those namespaces (which
    deletes the veths and the bridge with them). Idempotent.
    """
    detach_mirror_loops(inits)
    fuse = fuse_connections(inits)
    kill(inits)
    abort_fuse(fuse)
    namespaces = lab_namespaces(paths)
    inodes = [i for i in (netns_inode(NETNS_DIR / n) for n in namespaces) if i is not None]
    kill_netns_processes(inodes)
    for name in namespaces:
        done = run_rc(["ip", "netns", "delete", name])
        if done.returncode != 0 and (NETNS_DIR / name).exists():
            raise LabError(
                f"cannot delete the lab's network namespace {name}: {done.stderr.strip()};"
                " see what still uses it with: ip netns pids " + name
            )
    detach_loop_devices(paths.home)
    unmount_under(paths.home)


def _under(path: str, root: Path) -> bool:
    return path == str(root) or path.startswith(f"{root}/")


def detach_loop_devices(home: Path) -> None:
    """Detach every loop device backed by a file under ``home`` (loop devices are host-wide).

    A device is matched by its backing file's device and inode: the path the kernel
    reports is the one the attaching process saw, which for a node is a path in the
    node (``/disks/x.img``), and is meaningless once the node is gone.
    """
    done = run_rc(["losetup", "-J", "-l", "-O", "NAME,BACK-INO,BACK-MAJ:MIN"])
    if done.returncode != 0 or not done.stdout.strip():
        return
    devices = json.loads(done.stdout).get("loopdevices", [])
    if not devices:
        return
    files = _files_under(home)
    for device in devices:
        major, _sep, minor = str(device.get("back-maj:min") or "").strip().partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        if (int(major), int(minor), int(device.get("back-ino") or 0)) in files:
            run(["losetup", "-d", device["name"]], f"detaching {device['name']}")


def detach_mirror_loops(inits: Sequence[ProcessId]) -> None:
    """Detach the loop devices of the DataKeeper sources running in the nodes (backed by
    an nbdfuse file in a node's own ``/run``, which the host reaches through the node's
    ``/proc/PID/root``): once a node is gone its loop device would stay behind. A device
    still mounted in the node is freed when the node's mounts go (autoclear)."""
    files = set()
    for init in inits:
        if not init.alive():
            continue
        for path in Path(f"/proc/{init.pid}/root/run/lkdr").glob("*/dev/fuse/volume"):
            try:
                st = os.stat(path)
            except OSError:
                continue
            files.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
    if files:
        _detach_matching(files)


def _detach_matching(files: set[tuple[int, int, int]]) -> None:
    done = run_rc(["losetup", "-J", "-l", "-O", "NAME,BACK-INO,BACK-MAJ:MIN"])
    if done.returncode != 0 or not done.stdout.strip():
        return
    for device in json.loads(done.stdout).get("loopdevices", []):
        major, _sep, minor = str(device.get("back-maj:min") or "").strip().partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        if (int(major), int(minor), int(device.get("back-ino") or 0)) in files:
            run(["losetup", "-d", device["name"]], f"detaching {device['name']}")


def _files_under(home: Path) -> set[tuple[int, int, int]]:
    """(major, minor, inode) of every regular file under ``home``."""
    found = set()
    for folder, _dirs, names in os.walk(home):
        for name in names:
            try:
                st = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
    return found


def unmount_under(home: Path) -> None:
    """Unmount whatever the host has mounted under ``home`` (deepest first)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if _under(point, home):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        run(["umount", "-l", point], f"unmounting {point}")
