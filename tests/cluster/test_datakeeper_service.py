"""Out of Service and In Service of an extended DataKeeper hierarchy on the Pacemaker lab,
from lkctl as a user types it: the seed's /data (on the mirror datarep-data, in service on
lab1) extended to lab2. ``lkctl outofservice /data`` stops the file system and demotes the
mirror's source (no copy Promoted, /data mounted nowhere), the targets serve on; ``lkctl
inservice /data --on lab1`` brings it back with the files written before and no full
resync; In Service on lab2, an in-sync target, works too; on a copy that is not in sync it
is refused and nothing changes.

A lab of its own (two nodes, seeded): the session lab is not seeded."""

from __future__ import annotations

import json

import pytest

from tests.cluster.labtools import Lab
from tests.cluster.test_datakeeper_extend import _lkctl, _row
from tests.cluster.test_datakeeper_switchover import FILES, _hashes, _volumes_equal
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

NODES = ("lab1", "lab2")


def _promoted(lab: Lab) -> list[str]:
    """The nodes where datarep-data is Promoted, as crm_mon says."""
    xml = lab.run("lab1", "crm_mon", "-1", "--output-as=xml", timeout=60)
    return [
        line.split('name="', 1)[1].split('"', 1)[0]
        for chunk in xml.split("<resource ")[1:]
        if 'id="datarep-data"' in chunk and 'role="Promoted"' in chunk
        for line in chunk.split("<node ")[1:2]
    ]


def _mounted(lab: Lab, node: str) -> bool:
    return " /data " in lab.run(node, "cat", "/proc/mounts")


def _out_of_service(lab: Lab) -> None:
    rc, out, err = _lkctl(lab, "outofservice", "/data")
    assert rc == 0, f"{out}\n{err}"
    assert "/data: out of service" in out
    assert _promoted(lab) == []
    assert not any(_mounted(lab, n) for n in NODES)
    row = _row(lab, "/data")
    assert "ISP" not in row and row.startswith("/data | filesystem | OSU"), row
    assert "ISP" not in _row(lab, "datarep-data")


def _in_service(lab: Lab, on: str, other: str, written: dict[str, str]) -> None:
    rc, out, err = _lkctl(lab, "inservice", "/data", "--on", on)
    assert rc == 0, f"{out}\n{err}"
    assert f"/data: in service on {on}" in out
    assert _promoted(lab) == [on]
    assert _mounted(lab, on) and not _mounted(lab, other)
    assert _hashes(lab, on) == written
    roles = {on: "ISP Source", other: "OSU Target"}
    wanted = f"datarep-data | datakeeper | {roles['lab1']} | {roles['lab2']}"
    wait_until(lambda: _row(lab, "datarep-data") == wanted, 180, f"{other} Target again")
    wait_until(lambda: _volumes_equal(lab, on), 120, "the volumes equal byte for byte")
    engine = json.loads(lab.run(on, "cat", "/run/lkdr/datarep-data/status.json"))
    progress = engine["targets"][other]["progress"]  # only what changed, never all of it
    assert progress["full"] is False and progress["chunks_copied"] < 1024, progress
    constraints = lab.run(on, "cibadmin", "--query", "--scope", "constraints")
    assert "-in-service" not in constraints  # the follow-up cleared both preferences


def test_out_of_service_and_back_on_the_source_then_on_the_target(seeded: Lab) -> None:
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

    _out_of_service(lab)
    _in_service(lab, "lab1", "lab2", written)

    lab.run("lab1", "dd", "if=/dev/urandom", "of=/data/two", "bs=256k", "count=4",
            "conv=fsync", "status=none", timeout=60)  # fmt: skip
    written = _hashes(lab, "lab1")
    _out_of_service(lab)
    _in_service(lab, "lab2", "lab1", written)  # an in-sync target may be the source


def test_in_service_on_a_copy_not_in_sync_is_refused(seeded: Lab) -> None:
    """After the first test: /data in service on lab2, lab1 a Target."""
    lab = seeded
    rc, out, err = _lkctl(lab, "mirror", "pause", "datarep-data", "--target", "lab1")
    assert rc == 0, f"{out}\n{err}"
    lab.run("lab2", "dd", "if=/dev/urandom", "of=/data/three", "bs=256k", "count=4",
            "conv=fsync", "status=none", timeout=60)  # fmt: skip
    written = _hashes(lab, "lab2")
    _out_of_service(lab)
    constraints = lab.run("lab2", "cibadmin", "--query", "--scope", "constraints")
    rc, out, err = _lkctl(lab, "inservice", "/data", "--on", "lab1")
    assert rc != 0 and "datarep-data on lab1 is Out of Sync" in err, f"{out}\n{err}"
    assert "until the mirror is Target" in err
    assert lab.run("lab2", "cibadmin", "--query", "--scope", "constraints") == constraints
    assert _promoted(lab) == [] and not any(_mounted(lab, n) for n in NODES)

    rc, out, err = _lkctl(lab, "inservice", "/data", "--on", "lab2")
    assert rc == 0, f"{out}\n{err}"
    assert _hashes(lab, "lab2") == written
    rc, out, err = _lkctl(lab, "mirror", "resume", "datarep-data", "--target", "lab1")
    assert rc == 0, f"{out}\n{err}"
    wanted = "datarep-data | datakeeper | OSU Target | ISP Source"
    wait_until(lambda: _row(lab, "datarep-data") == wanted, 180, "lab1 Target again")
    wait_until(lambda: _volumes_equal(lab, "lab2"), 120, "the volumes equal byte for byte")
