"""The Pacemaker lab as a real cluster: quorum, nodes, exec, resources, fencing, partitions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.backends.pacemaker import nslab
from core.backends.pacemaker.nslab_files import LabPaths
from core.backends.pacemaker.nslab_net import BRIDGE_NETFILTER
from tests.cluster.labtools import Lab, timed, wait_healthy
from tests.helpers import REPO, holds_for, wait_until

pytestmark = pytest.mark.cluster


def test_three_nodes_are_online_and_quorate_as_each_node_sees_it(lab: Lab) -> None:
    for node in lab.nodes:
        root = lab.crm_mon(node)
        dc = root.find("summary/current_dc")
        assert dc is not None and dc.get("present") == "true"
        assert dc.get("with_quorum") == "true"
        online = [n.get("name") for n in root.iterfind("nodes/node") if n.get("online") == "true"]
        assert sorted(online) == ["lab1", "lab2", "lab3"]
    quorum = lab.run("lab2", "corosync-quorumtool", "-s")
    assert "Quorate:          Yes" in quorum
    assert "Total votes:      3" in quorum
    # The configuration Pacemaker runs with is valid, and STONITH is on.
    lab.run("lab1", "crm_verify", "--live-check")
    stonith = lab.run("lab3", "crm_attribute", "--type", "crm_config", "--name",
                      "stonith-enabled", "--query", "--quiet")  # fmt: skip
    assert stonith.strip() == "true"


def test_status_lists_each_node_with_its_init(lab: Lab) -> None:
    status = nslab.status(lab.home)
    assert [(n.name, n.address, n.state) for n in status.nodes] == [
        ("lab1", "10.213.0.11", nslab.NodeState.RUNNING),
        ("lab2", "10.213.0.12", nslab.NodeState.RUNNING),
        ("lab3", "10.213.0.13", nslab.NodeState.RUNNING),
    ]
    for node in status.nodes:
        assert node.init_pid is not None
        nspid = next(
            line for line in Path(f"/proc/{node.init_pid}/status").read_text().splitlines()
            if line.startswith("NSpid:")
        )  # fmt: skip
        assert nspid.split()[1:] == [str(node.init_pid), "1"]  # PID 1 of its own namespace
    data = json.loads(status.to_json())
    assert data["subnet"] == "10.213.0.0/24"
    assert [n["state"] for n in data["nodes"]] == ["running"] * 3
    assert [n["init_pid"] for n in data["nodes"]] == [n.init_pid for n in status.nodes]
    cli = subprocess.run(
        [sys.executable, "-m", "core.backends.pacemaker.nslab", "--home", str(lab.home),
         "status", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(cli.stdout) == data


def test_exec_runs_an_argument_list_on_the_node(lab: Lab) -> None:
    assert nslab.exec(lab.home, "lab2", ["hostname"]) == (0, "lab2\n", "")
    assert "10.213.0.12/24" in lab.run("lab2", "ip", "-o", "-4", "addr", "show", "dev", "eth0")
    rc, out, err = nslab.exec(lab.home, "lab3", ["ls", "/no/such/file"])
    assert rc == 2 and out == "" and "No such file" in err
    assert nslab.exec(lab.home, "lab1", ["cat"], input_text="to the node\n")[1] == "to the node\n"
    with pytest.raises(nslab.LabError, match="never a shell string"):
        nslab.exec(lab.home, "lab1", "hostname")  # type: ignore[arg-type]
    with pytest.raises(nslab.LabError, match="lab7 is not a node"):
        nslab.exec(lab.home, "lab7", ["true"])
    with pytest.raises(nslab.LabTimeout):
        nslab.exec(lab.home, "lab1", ["sleep", "30"], timeout=0.5)
    # The command and its process group are killed, not left running on the node.
    wait_until(
        lambda: "sleep" not in lab.run("lab1", "ps", "-e", "-o", "comm=").split(), 10, "sleep"
    )
    # The node's PID namespace: only the node's own processes, under its own PID 1.
    init = lab.run("lab2", "cat", "/proc/1/cmdline").split("\0")
    assert "core.backends.pacemaker.nslab_node" in init
    comms = lab.run("lab2", "ps", "-e", "-o", "comm=").split()
    assert comms.count("corosync") == 1 and comms.count("pacemakerd") == 1


def test_each_node_has_its_own_files_and_the_hosts_are_untouched(lab: Lab) -> None:
    hosts = lab.run("lab3", "cat", "/etc/hosts")
    for i, node in enumerate(lab.nodes, start=1):
        assert f"10.213.0.1{i}\t{node}" in hosts
    for folder in ("/disks", "/opt/LifeKeeper", "/data"):
        lab.run("lab2", "touch", f"{folder}/probe")
        assert (lab.home / "servers" / "lab2" / folder.lstrip("/") / "probe").is_file()
        assert not (lab.home / "servers" / "lab1" / folder.lstrip("/") / "probe").exists()
        assert lab.run("lab1", "ls", folder) == ""
    probe = Path("/etc/lkconsole-lab-probe")
    lab.run("lab1", "touch", str(probe))
    assert not probe.exists()  # the node's root is an overlay: writes stay in the node
    assert lab.run("lab1", "ls", str(probe)).strip() == str(probe)
    for mount_point in ("/run", "/dev/shm", "/tmp"):
        fstype = lab.run("lab1", "findmnt", "-n", "-o", "FSTYPE", mount_point).split()
        assert fstype[-1] == "tmpfs", (mount_point, fstype)
    rc, _out, err = nslab.exec(lab.home, "lab1", ["touch", "/usr/sbin/fence_lkswitch"])
    assert rc != 0 and "Read-only file system" in err
    cib = lab.home / "pacemaker-lab" / "nodes" / "lab1" / "var-lib-pacemaker" / "cib" / "cib.xml"
    assert cib.is_file()  # Pacemaker writes its CIB into the node's own folder
    assert (lab.home / "pacemaker-lab").stat().st_mode & 0o777 == 0o700
    assert (lab.home / "pacemaker-lab" / "state.json").stat().st_mode & 0o777 == 0o600


def test_the_fence_agent_on_a_node_sees_the_switch(lab: Lab) -> None:
    lab.run("lab1", "stonith_admin", "--metadata", "--agent", "fence_lkswitch")
    assert lab.run("lab1", "fence_lkswitch", "-o", "list").split() == [
        "lab1,lab1", "lab2,lab2", "lab3,lab3",
    ]  # fmt: skip
    assert lab.run("lab2", "fence_lkswitch", "-o", "status", "-n", "lab3") == "Status: ON\n"
    rc, out, _err = nslab.exec(
        lab.home, "lab3", ["fence_lkswitch"],
        input_text="action=status\nport=lab1\nnodename=lab1\nnodeid=1\n",
    )  # fmt: skip
    assert (rc, out) == (0, "Status: ON\n")  # how Pacemaker's fencer calls it: stdin
    lab.run("lab3", "fence_lkswitch", "-o", "monitor")
    rc, _out, err = nslab.exec(lab.home, "lab1", ["fence_lkswitch", "-o", "status", "-n", "br0"])
    assert rc == 1 and "no port 'br0'" in err  # never the bridge itself
    registered = lab.run("lab2", "stonith_admin", "--list", "lab1")
    assert "lab-fence" in registered


def test_the_switch_forwards_frames_without_netfilter_and_the_host_keeps_its_own(
    lab: Lab,
) -> None:
    switch = LabPaths(lab.home).switch_netns
    script = "".join(f"[ ! -e {f} ] || cat {f}\n" for f in BRIDGE_NETFILTER)
    seen = subprocess.run(
        ["ip", "netns", "exec", switch, "sh", "-c", script],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    host = [Path(f).read_text().strip() for f in BRIDGE_NETFILTER if Path(f).exists()]
    assert seen == ["0"] * len(host)  # none where the kernel has no br_netfilter
    assert host == HOST_BRIDGE_NETFILTER  # as the host had it before any lab


#: the host's own settings when the tests started (a lab must not change them)
HOST_BRIDGE_NETFILTER = [Path(f).read_text().strip() for f in BRIDGE_NETFILTER if Path(f).exists()]


def test_a_resource_runs_only_where_it_is_allowed(lab: Lab) -> None:
    with lab.resource("only-lab3", "ocf:heartbeat:Dummy", {}, {"lab3": 100}):
        wait_until(lambda: lab.running_on("lab1", "only-lab3") == {"lab3"}, 30, "only-lab3")
        state = lab.run("lab3", "ls", "/run/resource-agents")
        assert "Dummy-only-lab3.state" in state
        for other in ("lab1", "lab2"):  # each node's /run is its own
            assert "only-lab3" not in lab.run(other, "ls", "-a", "/run/resource-agents", ok=False)


def test_stop_of_the_node_holding_a_resource_fences_it_and_fails_over(lab: Lab) -> None:
    scores = {"lab1": 300, "lab2": 200, "lab3": 100}
    with lab.resource("fo-dummy", "ocf:heartbeat:Dummy", {}, scores):
        wait_until(lambda: lab.running_on("lab2", "fo-dummy") == {"lab1"}, 30, "fo-dummy on lab1")
        fenced_before = lab.fencings("lab2", "lab1")
        nslab.stop(lab.home, "lab1")
        assert nslab.status(lab.home).node("lab1").state == nslab.NodeState.STOPPED
        seconds = timed(
            lambda: lab.running_on("lab2", "fo-dummy") == {"lab2"}, 60, "fo-dummy on lab2"
        )
        print(f"\nfailover after stop of lab1: {seconds:.2f} s")
        assert lab.fencings("lab2", "lab1") == fenced_before + 1
        # The fence agent really cut lab1's port, and it stays cut.
        agent = ["fence_lkswitch", "-o", "status", "-n", "lab1"]
        assert nslab.exec(lab.home, "lab3", agent)[:2] == (2, "Status: OFF\n")
        assert lab.view("lab3") == (True, {"lab2", "lab3"})

        nslab.start(lab.home, "lab1")
        wait_healthy(lab)
        wait_until(lambda: lab.running_on("lab2", "fo-dummy") == {"lab1"}, 60, "fo-dummy back")


def test_a_node_started_right_after_it_was_killed_is_not_fenced_once_booted(lab: Lab) -> None:
    fenced_before = lab.fencings("lab2", "lab3")
    nslab.stop(lab.home, "lab3")
    nslab.start(lab.home, "lab3")  # at once: the others have not fenced it yet
    assert lab.fencings("lab2", "lab3") == fenced_before + 1  # the fence came first
    wait_until(lambda: lab.view("lab2") == (True, set(lab.nodes)), 60, "lab3 back online")
    assert nslab.status(lab.home).node("lab3").state == nslab.NodeState.RUNNING
    holds_for(  # nothing fences it afterwards either
        lambda: nslab.status(lab.home).node("lab3").state == nslab.NodeState.RUNNING,
        2,
        "lab3 running",
    )
    assert lab.fencings("lab2", "lab3") == fenced_before + 1


def test_cut_partitions_a_node_the_majority_fences_it_and_mend_rejoins(lab: Lab) -> None:
    with lab.resource("cut-dummy", "ocf:heartbeat:Dummy", {}, {"lab3": 300, "lab2": 200}):
        wait_until(lambda: lab.running_on("lab1", "cut-dummy") == {"lab3"}, 30, "cut-dummy")
        fenced_before = lab.fencings("lab1", "lab3")
        nslab.cut(lab.home, "lab3")
        assert nslab.status(lab.home).node("lab3").state == nslab.NodeState.CUT
        wait_until(lambda: lab.fencings("lab1", "lab3") == fenced_before + 1, 60, "lab3 fenced")
        wait_until(lambda: lab.running_on("lab1", "cut-dummy") == {"lab2"}, 60, "on lab2")
        # lab3 keeps running, alone and without quorum, and stops what it ran.
        wait_until(lambda: lab.view("lab3") == (False, {"lab3"}), 60, "lab3 alone")
        wait_until(
            lambda: (
                "Dummy-cut-dummy.state"
                not in lab.run("lab3", "ls", "/run/resource-agents", ok=False)
            ),
            60,
            "lab3 to stop cut-dummy",
        )
        nslab.mend(lab.home, "lab3")
        assert nslab.status(lab.home).node("lab3").state == nslab.NodeState.RUNNING
        wait_healthy(lab)
        wait_until(lambda: lab.running_on("lab1", "cut-dummy") == {"lab3"}, 60, "back on lab3")


def test_an_ip_resource_works_inside_a_node(lab: Lab) -> None:
    params = {"ip": "10.213.0.200", "cidr_netmask": "24", "nic": "eth0"}
    with lab.resource("lab-vip", "ocf:heartbeat:IPaddr2", params, {"lab2": 100}):
        wait_until(lambda: lab.running_on("lab1", "lab-vip") == {"lab2"}, 30, "lab-vip on lab2")
        assert "10.213.0.200/24" in lab.run("lab2", "ip", "-o", "addr", "show", "dev", "eth0")
        assert "10.213.0.200" not in lab.run("lab1", "ip", "-o", "addr")
        lab.run("lab3", "ping", "-c", "1", "-W", "5", "10.213.0.200")
        host = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True)
        assert "10.213.0." not in host.stdout  # the service network exists only in the lab


def test_ssh_from_node_to_node_by_key_only(lab: Lab) -> None:
    assert lab.run("lab1", "ssh", "root@lab2", "hostname") == "lab2\n"
    rc, _out, err = nslab.exec(
        lab.home, "lab1", ["ssh", "-o", "PubkeyAuthentication=no", "root@lab3", "true"]
    )
    assert rc == 255 and "Permission denied" in err
    listening = lab.run("lab3", "ss", "-Htln", "sport", "=", ":22")
    assert "10.213.0.13:22" in listening and "0.0.0.0:22" not in listening
