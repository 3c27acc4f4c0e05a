"""The switchover of a DataKeeper hierarchy on the Pacemaker lab, from lkctl as a user
types it: the seed's /data (on the mirror datarep-data, in service on lab1) extended to
lab2; once lab2 is a Target, ``lkctl switchover /data --to lab2`` makes lab2 the source
with /data in service there and the files written on lab1 intact; lab1 becomes a Target
in sync again (the volumes equal byte for byte, never a full resync); then the same
back to lab1. A switchover to a copy that is paused or resyncing is refused, naming it.

A lab of its own (two nodes, seeded): the session lab is not seeded."""

from __future__ import annotations

import json

import pytest

from tests.cluster.labtools import Lab, same_bytes
from tests.cluster.test_datakeeper_extend import _lkctl, _row
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

DISKS = "servers/{node}/disks/datarep-data.img"
FILES = ("/data/one", "/data/two", "/data/three")


def _hashes(lab: Lab, node: str) -> dict[str, str]:
    out = lab.run(node, "sha256sum", *FILES, timeout=60)
    return {path: digest for digest, path in (line.split() for line in out.splitlines())}


def _volumes_equal(lab: Lab, source: str) -> bool:
    lab.run(source, "sync", timeout=60)
    one, two = (lab.home / DISKS.format(node=n) for n in ("lab1", "lab2"))
    return same_bytes(one, two)


def _switch(lab: Lab, to: str, other: str, written: dict[str, str]) -> None:
    """``lkctl switchover /data --to TO``: /data in service on ``to`` with the files
    intact, ``other`` a Target in sync again and the volumes equal."""
    rc, out, err = _lkctl(lab, "switchover", "/data", "--to", to)
    assert rc == 0, f"{out}\n{err}"
    assert f"/data: out of service on {other}\n" in out
    assert f"datarep-data target on {other}, datarep-data source on {to}" in out
    snapshot = {"lab1": "ISP Active", "lab2": "ISP Active"}
    snapshot[other] = "OSU Standby"
    assert _row(lab, "/data") == f"/data | filesystem | {snapshot['lab1']} | {snapshot['lab2']}"
    assert _hashes(lab, to) == written
    constraints = lab.run(to, "cibadmin", "--query", "--scope", "constraints")
    assert "-in-service" not in constraints  # the follow-up cleared both preferences
    roles = {to: "ISP Source", other: "OSU Target"}
    wanted = f"datarep-data | datakeeper | {roles['lab1']} | {roles['lab2']}"
    wait_until(lambda: _row(lab, "datarep-data") == wanted, 180, f"{other} Target again")
    wait_until(lambda: _volumes_equal(lab, to), 120, "the volumes equal byte for byte")
    engine = json.loads(lab.run(to, "cat", "/run/lkdr/datarep-data/status.json"))
    progress = engine["targets"][other]["progress"]  # only what changed, never all of it
    assert progress["full"] is False and progress["chunks_copied"] < 1024, progress


def test_switchover_of_datakeeper_to_the_target_and_back(seeded: Lab) -> None:
    lab = seeded
    rc, out, err = _lkctl(lab, "extend", "/data", "--target", "lab2", "--accept-defaults")
    assert rc == 0, f"{out}\n{err}"
    wait_until(
        lambda: _row(lab, "datarep-data").endswith("ISP Source | OSU Target"), 180, "lab2 Target"
    )
    for path in FILES:
        lab.run("lab1", "dd", "if=/dev/urandom", f"of={path}", "bs=256k", "count=8",
                "conv=fsync", "status=none", timeout=60)  # fmt: skip
    written = _hashes(lab, "lab1")

    _switch(lab, "lab2", "lab1", written)
    assert "/data" not in lab.run("lab1", "cat", "/proc/mounts")

    lab.run("lab2", "dd", "if=/dev/urandom", "of=/data/two", "bs=256k", "count=4",
            "conv=fsync", "status=none", timeout=60)  # fmt: skip
    written = _hashes(lab, "lab2")
    _switch(lab, "lab1", "lab2", written)
    assert "/data" not in lab.run("lab2", "cat", "/proc/mounts")


def _refused(lab: Lab, said: str) -> None:
    """``lkctl switchover /data --to lab2`` is refused naming lab2's copy; nothing changes."""
    before = _row(lab, "/data")
    constraints = lab.run("lab1", "cibadmin", "--query", "--scope", "constraints")
    rc, out, err = _lkctl(lab, "switchover", "/data", "--to", "lab2")
    assert rc != 0 and f"datarep-data on lab2 is {said}" in err, f"{out}\n{err}"
    assert "until the mirror is Target" in err
    assert _row(lab, "/data") == before == "/data | filesystem | ISP Active | OSU Standby"
    assert lab.run("lab1", "cibadmin", "--query", "--scope", "constraints") == constraints


def test_a_switchover_to_a_paused_or_resyncing_copy_is_refused(seeded: Lab) -> None:
    """After the switchover and back: /data on lab1, lab2 a Target."""
    lab = seeded
    in_sync = "datarep-data | datakeeper | ISP Source | OSU Target"
    assert _row(lab, "datarep-data") == in_sync
    rc, out, err = _lkctl(lab, "mirror", "pause", "datarep-data", "--target", "lab2")
    assert rc == 0, f"{out}\n{err}"
    _refused(lab, "Out of Sync")
    rc, out, err = _lkctl(lab, "mirror", "resume", "datarep-data", "--target", "lab2")
    assert rc == 0, f"{out}\n{err}"
    wait_until(lambda: _row(lab, "datarep-data") == in_sync, 180, "lab2 Target again")

    for args in (("speed", "datarep-data", "1000"),
                 ("fullresync", "datarep-data", "--target", "lab2", "--yes")):  # fmt: skip
        rc, out, err = _lkctl(lab, "mirror", *args)
        assert rc == 0, f"{out}\n{err}"
    wait_until(lambda: "Resyncing" in _row(lab, "datarep-data"), 60, "lab2 resyncing")
    _refused(lab, "Resyncing")
    rc, out, err = _lkctl(lab, "mirror", "speed", "datarep-data", "0")
    assert rc == 0, f"{out}\n{err}"
    wait_until(lambda: _row(lab, "datarep-data") == in_sync, 180, "lab2 Target again")
    assert _volumes_equal(lab, "lab1")
