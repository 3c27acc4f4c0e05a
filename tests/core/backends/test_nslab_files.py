"""The Pacemaker lab's pure parts, with no cluster and no root: names, configs, the seed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core.backends.pacemaker import nslab
from core.backends.pacemaker.nslab_files import (
    SERVICE_ADDRESSES,
    SERVICE_NETWORK,
    LabPaths,
    corosync_conf,
    hosts_file,
    node_address,
    node_names,
    seed_cib,
    sshd_config,
)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run bash packaging/bootstrap.sh --test")
    return found


def test_nodes_get_addresses_on_the_service_network_below_the_service_range() -> None:
    names = node_names(16)
    assert names[:3] == ["lab1", "lab2", "lab3"]
    addresses = [node_address(n) for n in names]
    assert str(addresses[0]) == "10.213.0.11"
    assert all(a in SERVICE_NETWORK and a < SERVICE_ADDRESSES[0] for a in addresses)
    assert len(set(addresses)) == 16


def test_namespace_names_differ_per_home_and_fit_the_kernel(tmp_path: Path) -> None:
    one, two = LabPaths(tmp_path / "a"), LabPaths(tmp_path / "b")
    assert one.prefix != two.prefix
    assert one.prefix == LabPaths(tmp_path / "a").prefix
    assert one.node_netns("lab1").startswith(one.prefix)
    assert one.switch_netns != one.node_netns("lab1")
    assert all(len(n) <= 15 for n in node_names(16))  # the switch port is named after it


def test_corosync_conf_lists_every_node_with_knet_and_the_tuned_token() -> None:
    conf = corosync_conf(["lab1", "lab2", "lab3"])
    assert "transport: knet" in conf
    assert "token: 1000" in conf and "token_coefficient: 0" in conf
    assert conf.count("ring0_addr:") == 3 and "ring0_addr: 10.213.0.13" in conf
    assert "two_node" not in conf
    assert "to_syslog: no" in conf  # the host's syslog never hears of the lab
    assert "two_node: 1" in corosync_conf(["lab1", "lab2"])


def test_hosts_and_sshd_config() -> None:
    hosts = hosts_file(["lab1", "lab2"])
    assert "10.213.0.11\tlab1\n" in hosts and "10.213.0.12\tlab2\n" in hosts
    sshd = sshd_config("lab2")
    assert "ListenAddress 10.213.0.12\n" in sshd
    assert "PermitRootLogin prohibit-password\n" in sshd
    assert "PasswordAuthentication no\n" in sshd


def test_the_seed_cib_is_valid_for_pacemaker(tmp_path: Path) -> None:
    empty = subprocess.run(
        [_tool("cibadmin"), "--empty"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    cib = seed_cib(empty, ["lab1", "lab2", "lab3"])
    seed = tmp_path / "cib.xml"
    seed.write_text(cib)
    done = subprocess.run(
        [_tool("crm_verify"), "--xml-file", str(seed), "-V"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for option in ('name="dc-deadtime" value="2s"', 'name="stonith-enabled" value="true"',
                   'name="symmetric-cluster" value="false"'):  # fmt: skip
        assert option in cib
    assert 'type="fence_lkswitch"' in cib and 'value="lab1 lab2 lab3"' in cib
    assert cib.count("<rsc_location ") == 3  # opt-in: the fence device allowed everywhere


def test_online_nodes_reads_crm_mon_xml() -> None:
    xml = (
        '<pacemaker-result><summary><current_dc present="true" with_quorum="true"/>'
        '</summary><nodes><node name="lab1" online="true"/><node name="lab2" online="false"/>'
        "</nodes></pacemaker-result>"
    )
    assert nslab.online_nodes(xml) == (True, ["lab1"])


def test_everything_needs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    for call in (
        lambda: nslab.up(tmp_path),
        lambda: nslab.down(tmp_path),
        lambda: nslab.status(tmp_path),
        lambda: nslab.exec(tmp_path, "lab1", ["true"]),
        lambda: nslab.stop(tmp_path, "lab1"),
    ):
        with pytest.raises(nslab.NotRoot, match="needs root") as caught:
            call()
        assert "\n" not in str(caught.value)
    assert not (tmp_path / "pacemaker-lab").exists()


def test_a_status_with_no_lab_has_no_nodes(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        with pytest.raises(nslab.NotRoot):
            nslab.status(tmp_path)
        return
    status = nslab.status(tmp_path)
    assert status.nodes == ()
    assert '"nodes": []' in status.to_json()
