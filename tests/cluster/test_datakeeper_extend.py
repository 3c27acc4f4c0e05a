"""The documented extend on the Pacemaker lab, from lkctl: the seed's /data (on the
mirror datarep-data, in service on lab1) extended to lab2 with Accept Defaults. lab2
becomes a Target, its volume equals lab1's byte for byte, and /data stayed in service
on lab1 all along (the mirror's membership is a meta attribute: nothing restarts).

A lab of its own (two nodes, seeded): the session lab is not seeded."""

from __future__ import annotations

import re

import pytest

from tests.cluster.labtools import Lab, fuse_devices, loop_devices_on, same_bytes
from tests.helpers import run_lkctl, wait_until

pytestmark = pytest.mark.cluster

DISKS = "servers/{node}/disks/datarep-data.img"


def _lkctl(lab: Lab, *args: str) -> tuple[int, str, str]:
    done = run_lkctl(
        ["--cluster", "pacemaker-lab", *args],
        env={"LKCONSOLE_HOME": str(lab.home), "LKCONSOLE_CLUSTER": ""},
    )
    return done.returncode, done.stdout, done.stderr


def _row(lab: Lab, tag: str) -> str:
    rc, out, err = _lkctl(lab, "status")
    assert rc == 0, err
    line = next((x for x in out.splitlines() if x.strip().startswith(f"{tag} ")), "")
    return re.sub(r"\s{2,}", " | ", line.strip())


def _starts_of_data(lab: Lab) -> int:
    log = lab.run("lab1", "cat", "/var/log/pacemaker/pacemaker.log")
    return len(re.findall(r"executing - rsc:_2f_data action:start", log))


def test_extend_accept_defaults_makes_lab2_a_target_equal_to_lab1(seeded: Lab) -> None:
    lab = seeded
    assert _row(lab, "datarep-data") == "datarep-data | datakeeper | ISP Active | -"
    lab.run("lab1", "sh", "-c", "head -c 6000000 /dev/urandom > /data/payload && sync")
    starts = _starts_of_data(lab)
    rc, out, err = _lkctl(lab, "extend", "/data", "--target", "lab2", "--accept-defaults")
    assert rc == 0, err
    assert "[1/5] Create DataKeeper resource datarep-data on lab2" in out
    assert "/data was extended to lab2." in out
    wait_until(
        lambda: _row(lab, "datarep-data").endswith("ISP Source | OSU Target"), 90, "lab2 Target"
    )
    assert _row(lab, "/data") == "/data | filesystem | ISP Active | OSU Standby"
    one, two = (lab.home / DISKS.format(node=n) for n in ("lab1", "lab2"))
    lab.run("lab1", "sync")
    assert same_bytes(one, two)
    assert _starts_of_data(lab) == starts  # /data was never restarted
    key = lab.run("lab2", "stat", "-c", "%a", "/opt/LifeKeeper/dk/datarep-data/psk").strip()
    assert key == "600"


def test_killing_the_source_node_leaves_no_loop_device_behind(seeded: Lab) -> None:
    """lab1 runs the source: its mirrored device is a loop device over nbdfuse, and loop
    devices are the machine's, not the node's. Killed for real, it leaves none behind
    (``losetup`` would hang for ever on a loop device whose FUSE server was killed with a
    request in flight: its timeout makes that a failure, not a hang)."""
    from core.backends.pacemaker import nslab

    source = fuse_devices(seeded, "datarep-data")  # lab1's nbdfuse (not another lab's)
    assert source and loop_devices_on(source)
    nslab.stop(seeded.home, "lab1")
    try:
        wait_until(lambda: not loop_devices_on(source), 20, "lab1's loop device to go")
    finally:
        nslab.start(seeded.home, "lab1")
