"""The Pacemaker namespace lab: a real Corosync + Pacemaker cluster on this one machine.

Nodes ``lab1`` … ``labN``, each in its own network, mount, UTS, IPC and PID namespaces
(PID 1 of each is :mod:`nslab_node`), plugged into a switch (a bridge in a namespace of
its own) on the lab's service network ``10.213.0.0/24`` (see :mod:`nslab_files`).
Corosync uses knet, as corosync 3 does by default and as a real cluster's comm paths do
(``corosync-cfgtool -s`` shows each link per peer); token 1000 ms. Pacemaker runs with
STONITH on: the fence device ``lab-fence`` (``fence_lkswitch``, the project's own agent)
sets the victim's switch port down, and the victim stays cut off until ``start`` or
``mend``. Needs root.

State (the nodes' names, addresses and PIDs) is in ``$home/pacemaker-lab/state.json``;
``down`` also finds what a killed ``up`` left behind by the namespaces' names, which carry
a hash of the home. One lock per home serialises ``up``, ``down``, ``stop``, ``start``,
``cut`` and ``mend``.

CLI: ``python -m core.backends.pacemaker.nslab [--home HOME] up [--nodes N] | down |
status [--json] | exec NODE -- CMD… | stop NODE | start NODE | cut NODE | mend NODE``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from core.backends.pacemaker.nslab_files import (
    MAX_NODES,
    NODE_INTERFACE,
    SERVICE_ADDRESSES,
    SERVICE_NETWORK,
    LabPaths,
    node_address,
    node_names,
)
from core.backends.pacemaker.nslab_net import (
    make_network,
    port_states,
    set_port,
    stop_node,
    teardown,
)
from core.backends.pacemaker.nslab_proc import (
    CLEAN_PATH,
    LabError,
    LabTimeout,
    NotRoot,
    ProcessId,
    clean_env,
    run_rc,
    wait_for,
)
from core.backends.pacemaker.nslab_setup import (
    boot,
    boot_log_tail,
    prepare_files,
    private_dir,
    write_private,
)

__all__ = [
    "LabError",
    "LabNode",
    "LabStatus",
    "LabTimeout",
    "NodeState",
    "NotRoot",
    "cut",
    "down",
    "exec",
    "mend",
    "start",
    "status",
    "stop",
    "up",
]

QUORUM_TIMEOUT = 60.0
FENCE_WAIT = 30.0  # lab start: how long to let the others finish fencing the node
TOOLS = (
    "corosync", "corosync-cmapctl", "pacemakerd", "crm_mon", "cibadmin", "sshd",
    "ssh-keygen", "ip", "nsenter", "unshare", "setsid", "pivot_root", "losetup",
)  # fmt: skip


class NodeState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    CUT = "cut"  # running, its switch port down (a partition, or fenced)


@dataclass(frozen=True)
class LabNode:
    name: str
    address: str
    state: NodeState
    init_pid: int | None


@dataclass(frozen=True)
class LabStatus:
    """What the lab of one home is made of, and the state of each node."""

    home: Path
    nodes: tuple[LabNode, ...]
    subnet: str = str(SERVICE_NETWORK)
    interface: str = NODE_INTERFACE

    def node(self, name: str) -> LabNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise LabError(f"{name} is not a node of the lab in {self.home}")

    def to_json(self) -> str:
        return json.dumps(
            {
                "home": str(self.home),
                "subnet": self.subnet,
                "interface": self.interface,
                "service_addresses": [str(a) for a in SERVICE_ADDRESSES],
                "nodes": [
                    {
                        "name": n.name,
                        "address": n.address,
                        "state": n.state.value,
                        "init_pid": n.init_pid,
                    }
                    for n in self.nodes
                ],
            },
            indent=2,
        )


# --- state file -------------------------------------------------------------------


def _load(paths: LabPaths, strict: bool = True) -> dict[str, dict[str, int] | None]:
    """Node name → its recorded init ({pid, start}) or None, in node order.

    Not ``strict`` (up, down): an unreadable state file counts as none, since the
    teardown finds the lab's namespaces by their names anyway.
    """
    try:
        data = json.loads(paths.state_file.read_text())
        return {n["name"]: n.get("init") for n in data.get("nodes", [])}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if not strict:
            return {}
        raise LabError(f"{paths.state_file} is not a lab state ({exc}): run down") from exc


def _save(paths: LabPaths, inits: dict[str, ProcessId | None]) -> None:
    nodes = [
        {
            "name": name,
            "address": str(node_address(name)),
            "netns": paths.node_netns(name),
            "init": {"pid": p.pid, "start": p.start} if p else None,
        }
        for name, p in inits.items()
    ]
    state = {"version": 1, "switch": paths.switch_netns, "nodes": nodes}
    write_private(paths.state_file, json.dumps(state, indent=1))


def _inits(paths: LabPaths, strict: bool = True) -> dict[str, ProcessId | None]:
    recorded = _load(paths, strict)
    try:
        return {
            name: ProcessId(int(rec["pid"]), int(rec["start"])) if rec else None
            for name, rec in recorded.items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        if not strict:
            return {}
        raise LabError(f"{paths.state_file} is not a lab state ({exc}): run down") from exc


@contextlib.contextmanager
def _locked(paths: LabPaths, strict: bool = True) -> Iterator[dict[str, ProcessId | None]]:
    """Hold the home's lab lock; yield the recorded inits."""
    private_dir(paths.lab_dir)
    fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield _inits(paths, strict)
    finally:
        os.close(fd)


def _paths(home: Path) -> LabPaths:
    if os.geteuid() != 0:
        raise NotRoot("the Pacemaker lab needs root (namespaces, mounts, a bridge): run as root")
    return LabPaths(Path(os.path.abspath(home.expanduser())))


def _known(inits: dict[str, ProcessId | None], node: str, paths: LabPaths) -> ProcessId | None:
    if node not in inits:
        names = ", ".join(inits) or "none: run up first"
        raise LabError(f"{node} is not a node of the lab in {paths.home} (nodes: {names})")
    return inits[node]


# --- the API ------------------------------------------------------------------------


def up(home: Path, nodes: int = 3, seed: bool = True) -> LabStatus:
    """(Re)start the lab of ``home`` from scratch with ``nodes`` nodes; return once quorate
    and, with ``seed``, once the seed's /data is in service on lab1 (``nslab_seed``).

    Whatever an earlier run left (even one killed with SIGKILL) is removed first. The
    nodes' data folders (``$home/servers/<node>/``) and SSH keys are kept.
    """
    paths = _paths(home)
    if not 1 <= nodes <= MAX_NODES:
        raise LabError(f"a lab has 1 to {MAX_NODES} nodes, not {nodes}")
    missing = [t for t in TOOLS if shutil.which(t, path=CLEAN_PATH) is None]
    if missing:
        raise LabError(f"{', '.join(missing)} not found: run bash packaging/bootstrap.sh --cluster")
    names = node_names(nodes)
    with _locked(paths, strict=False) as recorded:
        teardown(paths, [p for p in recorded.values() if p])
        inits: dict[str, ProcessId | None] = dict.fromkeys(names)
        _save(paths, inits)
        try:
            _mark_seeded(paths, seed)
            prepare_files(paths, names)
            make_network(paths, names)
            for name in names:
                inits[name] = boot(paths, name)
                _save(paths, inits)
            _wait_quorate(paths, inits, QUORUM_TIMEOUT)
            if seed:
                _seed(home, paths)
        except BaseException:
            teardown(paths, [p for p in inits.values() if p])
            paths.state_file.unlink(missing_ok=True)
            raise
    return status(home)


def _mark_seeded(paths: LabPaths, seed: bool) -> None:
    if seed:
        write_private(paths.seeded_file, "/data is the seed's mirrored file system\n")
    else:
        paths.seeded_file.unlink(missing_ok=True)


def _seed(home: Path, paths: LabPaths) -> None:
    from core.backends.pacemaker import nslab_seed

    def run(
        node: str, argv: list[str], timeout: float, input_text: str | None
    ) -> tuple[int, str, str]:
        return exec(home, node, argv, timeout, input_text)

    nslab_seed.seed(run, paths.data_folder(nslab_seed.SERVER, "/disks"))


def down(home: Path) -> None:
    """Remove every process, namespace, mount and loop device of the lab; idempotent."""
    paths = _paths(home)
    if not paths.lab_dir.exists():
        teardown(paths, [])
        return
    with _locked(paths, strict=False) as recorded:
        teardown(paths, [p for p in recorded.values() if p])
        paths.state_file.unlink(missing_ok=True)


def status(home: Path) -> LabStatus:
    paths = _paths(home)
    inits = _inits(paths)
    ports = port_states(paths) if inits else {}
    nodes = []
    for name, init in inits.items():
        alive = init is not None and init.alive()
        if not alive:
            state = NodeState.STOPPED
        elif ports.get(name, False):
            state = NodeState.RUNNING
        else:
            state = NodeState.CUT
        nodes.append(
            LabNode(name, str(node_address(name)), state, init.pid if alive and init else None)
        )
    return LabStatus(paths.home, tuple(nodes))


def exec(  # the lab's verb, as in `nslab exec NODE -- CMD`
    home: Path,
    node: str,
    argv: Sequence[str],
    timeout: float = 60.0,
    input_text: str | None = None,
) -> tuple[int, str, str]:
    """Run ``argv`` on ``node`` (its namespaces, a clean environment): (rc, stdout, stderr)."""
    paths = _paths(home)
    if isinstance(argv, str) or not argv:
        raise LabError("exec takes a non-empty list of arguments, never a shell string")
    init = _known(_inits(paths), node, paths)
    if init is None or not init.alive():
        raise LabError(f"{node} is not running: start it with nslab start {node}")
    done = run_rc(
        ["nsenter", "-t", str(init.pid), "-m", "-u", "-i", "-n", "-p", "--", *argv],
        timeout,
        env=clean_env(),
        input_text=input_text,
    )
    return done.returncode, done.stdout, done.stderr


def shell_command(home: Path, node: str) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of an interactive login shell on ``node`` (``lab shell``)."""
    paths = _paths(home)
    init = _known(_inits(paths), node, paths)
    if init is None or not init.alive():
        raise LabError(f"{node} is not running: start it with lkctl lab start {node}")
    env = clean_env({"TERM": os.environ.get("TERM", "xterm"), "PS1": f"[{node}] \\w # "})
    argv = ["nsenter", "-t", str(init.pid), "-m", "-u", "-i", "-n", "-p", "--"]
    return [*argv, "/bin/bash", "--norc", "-i"], env


def stop(home: Path, node: str) -> None:
    """Kill ``node`` for real: its PID 1 and everything in it, as a power failure would."""
    paths = _paths(home)
    with _locked(paths) as inits:
        init = _known(inits, node, paths)
        if init is None or not init.alive():
            raise LabError(f"{node} is not running")
        stop_node(paths, node, init)
        inits[node] = None
        _save(paths, inits)


def start(home: Path, node: str) -> None:
    """Boot ``node`` again (its switch port up, its disks as they were); it rejoins."""
    paths = _paths(home)
    with _locked(paths) as inits:
        init = _known(inits, node, paths)
        if init is not None and init.alive():
            raise LabError(f"{node} is running already: stop it first")
        _boot_again(paths, inits, node)


def _boot_again(paths: LabPaths, inits: dict[str, ProcessId | None], node: str) -> None:
    # A node killed a moment ago is still to be fenced by the others: booting it
    # before that would have the fence (its switch port set down) hit the new node.
    _wait_fenced(paths, inits, node, FENCE_WAIT)
    set_port(paths, node, up=True)
    inits[node] = boot(paths, node)
    _save(paths, inits)
    running = inits[node]
    assert running is not None
    wait_for(
        f"corosync on {node} (see {paths.node_dir(node) / 'boot.log'})",
        30.0,
        lambda: _corosync_answers(paths, node, running),
    )


def cut(home: Path, node: str) -> None:
    """Set ``node``'s switch port down: the node is cut off from the others."""
    _port(home, node, up=False)


def mend(home: Path, node: str) -> bool:
    """Set ``node``'s switch port up again (after a cut, or to unfence it); True when the
    node was rebooted first.

    A node the others fenced while it was cut is rebooted, as a machine fenced at its
    switch port must be before it is unfenced: its own fencer still holds the fencing it
    queued against the others while cut (in a two-node cluster both halves keep quorum),
    and with its port up again it would carry it out and fence the node that runs the
    resources (measured). A cut the others have not noticed yet only needs the port."""
    paths = _paths(home)
    with _locked(paths) as inits:
        init = _known(inits, node, paths)
        alive = init is not None and init.alive()
        if not alive or _peer_view(paths, inits, node) in (None, "online"):
            set_port(paths, node, up=True)
            return False
        assert init is not None
        stop_node(paths, node, init)
        inits[node] = None
        _save(paths, inits)
        _boot_again(paths, inits, node)
        return True


def _port(home: Path, node: str, up: bool) -> None:
    paths = _paths(home)
    with _locked(paths) as inits:
        _known(inits, node, paths)
        set_port(paths, node, up)


# --- waiting for the cluster ----------------------------------------------------------


def _corosync_answers(paths: LabPaths, node: str, init: ProcessId) -> bool:
    if not init.alive():
        raise LabError(f"{node} died while booting: {boot_log_tail(paths, node)}")
    rc, _out, _err = exec(paths.home, node, ["corosync-cmapctl", "-g", "totem.cluster_name"], 10)
    return rc == 0


def online_nodes(crm_mon_xml: str) -> tuple[bool, list[str]]:
    """(quorate, names of online nodes) from ``crm_mon --output-as=xml``."""
    root = ET.fromstring(crm_mon_xml)
    dc = root.find("summary/current_dc")
    quorate = dc is not None and dc.get("with_quorum") == "true"
    online = [n.get("name", "") for n in root.iterfind("nodes/node") if n.get("online") == "true"]
    return quorate, online


def _peer_view(paths: LabPaths, inits: dict[str, ProcessId | None], node: str) -> str | None:
    """How a running peer's cluster sees ``node``: "online", "unclean", "offline", or
    None when no running peer answers."""
    for name, init in inits.items():
        if name == node or init is None or not init.alive():
            continue
        rc, out, _err = exec(paths.home, name, ["crm_mon", "-1", "--output-as=xml"], 10)
        if rc != 0:
            continue
        for element in ET.fromstring(out).iterfind("nodes/node"):
            if element.get("name") == node:
                if element.get("unclean") == "true":
                    return "unclean"
                return "online" if element.get("online") == "true" else "offline"
    return None


def _wait_fenced(
    paths: LabPaths, inits: dict[str, ProcessId | None], node: str, timeout: float
) -> None:
    """Until the running peers no longer see ``node`` as online or unclean (its fence is
    done), or ``timeout``: then it boots anyway (a cluster without quorum fences no one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _peer_view(paths, inits, node) in (None, "offline"):
            return
        time.sleep(0.2)


def _wait_quorate(paths: LabPaths, inits: dict[str, ProcessId | None], timeout: float) -> None:
    names = list(inits)
    first = names[0]

    def quorate() -> bool:
        for name, init in inits.items():
            if init is None or not init.alive():
                raise LabError(f"{name} died while booting: {boot_log_tail(paths, name)}")
        rc, out, _err = exec(paths.home, first, ["crm_mon", "-1", "--output-as=xml"], 10)
        if rc != 0:
            return False
        with_quorum, online = online_nodes(out)
        return with_quorum and sorted(online) == sorted(names)

    try:
        wait_for("the lab to be quorate with every node online", timeout, quorate, 0.2)
    except LabTimeout as exc:
        logs = paths.node_dir(first) / "var-log"
        raise LabTimeout(f"{exc}; see the logs in {logs}; the lab was taken down") from exc


if __name__ == "__main__":
    from core.backends.pacemaker.nslab_cli import main

    sys.exit(main())
