"""A DataKeeper hierarchy's life on the Pacemaker lab, from lkctl as a user types it:
the seed's /data extended to lab2 and unextended again (/data stays mounted on lab1, lab2
forgets the mirror and keeps its volume), new hierarchies created (a file system on a
new volume, a DataKeeper resource only) and seen in the status, bad input refused with
the field's message and nothing changed, and every hierarchy deleted (the clone, the
group and their constraints go, every node forgets the mirror, no volume is removed).

A lab of its own (two nodes, seeded; module-scoped): the tests run in order."""

from __future__ import annotations

import re

import pytest

from tests.cluster.labtools import Lab
from tests.cluster.test_datakeeper_extend import _lkctl, _row, _starts_of_data
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

KEY_DIR = "/opt/LifeKeeper/dk/{rid}"


def _configuration(lab: Lab) -> str:
    return lab.run("lab1", "cibadmin", "--query", "--scope", "configuration")


def _constraints_on(lab: Lab, node: str, *rscs: str) -> list[str]:
    return [
        c
        for c in re.findall(r"<rsc_location [^>]*>", _configuration(lab))
        if f'node="{node}"' in c and any(f'rsc="{r}"' in c for r in rscs)
    ]


def _mirror_on(lab: Lab, rid: str) -> set[str]:
    """The nodes where the mirror's clone runs (Promoted or not)."""
    return {
        n.get("name", "")
        for r in lab.crm_mon("lab1").iterfind(f".//clone/resource[@id='{rid}']")
        if r.get("active") == "true"
        for n in r.iterfind("node")
    }


def _log(lab: Lab, server: str) -> str:
    """``lkctl log SERVER``: what the operations said of the server."""
    rc, out, err = _lkctl(lab, "log", server)
    assert rc == 0, err
    return out


def _data_mount(lab: Lab) -> str:
    """lab1's mount of /data: its mount id and device (a new mount has another id)."""
    for line in lab.run("lab1", "cat", "/proc/self/mountinfo").splitlines():
        fields = line.split()
        if fields[4] == "/data":
            return f"{fields[0]} {fields[2]}"
    return ""


def _exists(lab: Lab, node: str, path: str) -> bool:
    from core.backends.pacemaker import nslab

    rc, _out, _err = nslab.exec(lab.home, node, ["test", "-e", path], 10.0)
    return rc == 0


def _create_web(fs_type: str) -> list[str]:
    return [
        "create", "--server", "lab1", "--type", "new", "--disk", "/disks/web.img",
        "--size-mib", "16", "--mount-point", "/web", "--root-tag", "/web", "--fs-type", fs_type,
        "--dk-tag", "datarep-web", "--bitmap", "none", "--switchback", "intelligent",
    ]  # fmt: skip


def test_unextend_from_lab2_keeps_data_mounted_on_lab1_and_lab2_forgets_the_mirror(
    seeded: Lab,
) -> None:
    lab = seeded
    rc, out, err = _lkctl(lab, "extend", "/data", "--target", "lab2", "--accept-defaults")
    assert rc == 0, err
    wait_until(
        lambda: _row(lab, "datarep-data").endswith("ISP Source | OSU Target"), 90, "lab2 Target"
    )
    assert _exists(lab, "lab2", KEY_DIR.format(rid="datarep-data") + "/psk")
    mount, starts = _data_mount(lab), _starts_of_data(lab)
    assert mount

    rc, out, err = _lkctl(lab, "unextend", "/data", "--server", "lab1", "--yes")
    assert rc != 0
    assert "in service on lab1" in out + err and "server" in out + err
    before = _configuration(lab)

    rc, out, err = _lkctl(lab, "unextend", "/data", "--server", "lab2", "--yes")
    assert rc == 0, out + err
    assert "lab2 leaves the mirror" in _log(lab, "lab2")
    assert "lab2 forgot the mirror datarep-data" in _log(lab, "lab2")
    assert "by hand" not in _log(lab, "lab2")  # its attributes were cleared too
    wait_until(lambda: _row(lab, "datarep-data") == "datarep-data | datakeeper | ISP Active | -",
               60, "lab2's cell to go")  # fmt: skip
    assert _row(lab, "/data") == "/data | filesystem | ISP Active | -"
    assert before != _configuration(lab)
    assert _constraints_on(lab, "lab2", "datarep-data-clone", "_2f_data-hierarchy") == []
    assert 'lk-servers" value="lab1=' in _configuration(lab)
    assert "lab2=" not in re.findall(r'name="lk-servers" value="([^"]*)"', _configuration(lab))[0]
    assert not _exists(lab, "lab2", KEY_DIR.format(rid="datarep-data"))
    assert (lab.home / "servers/lab2/disks/datarep-data.img").is_file()  # the volume stays
    wait_until(lambda: _mirror_on(lab, "datarep-data") == {"lab1"}, 60, "lab2's instance to stop")
    assert _data_mount(lab) == mount  # /data was never unmounted on lab1
    assert _starts_of_data(lab) == starts  # nor restarted


def test_create_a_file_system_on_a_new_volume_and_a_datakeeper_only_hierarchy(
    seeded: Lab,
) -> None:
    lab = seeded
    before = _configuration(lab)
    rc, out, err = _lkctl(
        lab, "create", "--server", "lab1", "--type", "new", "--disk", "/disks/web.img",
        "--size-mib", "16", "--mount-point", "/", "--root-tag", "/web", "--fs-type", "ext4",
        "--dk-tag", "datarep-web", "--bitmap", "none", "--switchback", "intelligent",
    )  # fmt: skip
    assert rc != 0
    assert "mount_point" in out + err and "Mount Point / is the root filesystem" in out + err
    assert _configuration(lab) == before
    assert not (lab.home / "servers/lab1/disks/web.img").exists()  # nothing was made

    # a failure after the node work began: the volume made is removed again
    rc, out, err = _lkctl(lab, *_create_web("xfs"))  # mkfs.xfs is not installed here
    assert rc != 0
    assert "mkfs.xfs is not installed" in out + err
    assert _configuration(lab) == before
    assert not (lab.home / "servers/lab1/disks/web.img").exists()
    assert not _exists(lab, "lab1", KEY_DIR.format(rid="datarep-web"))

    rc, out, err = _lkctl(lab, *_create_web("ext4"))
    assert rc == 0, out + err
    assert "/web was created and is in service on lab1" in out
    assert _row(lab, "/web") == "/web | filesystem | ISP Active | -"
    assert _row(lab, "datarep-web") == "datarep-web | datakeeper | ISP Active | -"
    assert lab.run("lab1", "findmnt", "-n", "-o", "FSTYPE", "/web").strip() == "ext4"
    mode = lab.run("lab1", "stat", "-c", "%a", KEY_DIR.format(rid="datarep-web") + "/psk")
    assert mode.strip() == "600"
    assert (lab.home / "servers/lab1/disks/web.img").stat().st_size == 16 << 20
    lab.run("lab1", "sh", "-c", "echo kept > /web/proof && sync")

    rc, out, err = _lkctl(
        lab, "create", "--server", "lab2", "--type", "dk-only", "--disk", "/disks/raw.img",
        "--size-mib", "8", "--dk-tag", "datarep-raw", "--accept-defaults",
    )  # fmt: skip
    assert rc == 0, out + err
    assert "datarep-raw was created and is in service on lab2" in out
    assert _row(lab, "datarep-raw") == "datarep-raw | datakeeper | - | ISP Active"
    assert "datarep-raw-hierarchy" not in _configuration(lab)  # no group: the clone alone


def test_delete_removes_clone_group_and_constraints_and_every_node_forgets_the_mirror(
    seeded: Lab,
) -> None:
    lab = seeded
    for tag in ("/web", "datarep-raw"):
        rc, out, err = _lkctl(lab, "delete", tag, "--yes")
        assert rc == 0, out + err
    config = _configuration(lab)
    assert "datarep-web" not in config and "_2f_web" not in config
    assert "datarep-raw" not in config
    assert not _exists(lab, "lab1", KEY_DIR.format(rid="datarep-web"))
    assert not _exists(lab, "lab2", KEY_DIR.format(rid="datarep-raw"))
    assert (lab.home / "servers/lab1/disks/web.img").is_file()
    assert (lab.home / "servers/lab2/disks/raw.img").is_file()
    assert lab.run("lab1", "findmnt", "-n", "/web", ok=False) == ""

    # the kept volume, as an existing file system: its data is still there
    rc, out, err = _lkctl(
        lab, "create", "--server", "lab1", "--type", "existing", "--disk", "/disks/web.img",
        "--mount-point", "/web2", "--root-tag", "/web2", "--dk-tag", "datarep-web2",
        "--accept-defaults",
    )  # fmt: skip
    assert rc == 0, out + err
    assert _row(lab, "/web2") == "/web2 | filesystem | ISP Active | -"
    assert lab.run("lab1", "cat", "/web2/proof").strip() == "kept"
    rc, out, err = _lkctl(lab, "delete", "/web2", "--yes")
    assert rc == 0, out + err
    assert (lab.home / "servers/lab1/disks/web.img").is_file()

    # a hierarchy that cannot come in service (its mount point is a file) is removed
    # again, clone and all; the node forgets its key; the existing volume is kept
    lab.run("lab1", "touch", "/web3")
    before = _configuration(lab)
    rc, out, err = _lkctl(
        lab, "create", "--server", "lab1", "--type", "existing", "--disk", "/disks/web.img",
        "--mount-point", "/web3", "--root-tag", "/web3", "--dk-tag", "datarep-web3",
        "--accept-defaults",
    )  # fmt: skip
    assert rc != 0
    assert "could not be brought in service on lab1" in out + err
    assert "removed again" in out + err
    config = _configuration(lab)
    assert "datarep-web3" not in config and "_2f_web3" not in config
    assert not _exists(lab, "lab1", KEY_DIR.format(rid="datarep-web3"))
    assert "lkdr-datarep-web3" not in lab.run("lab1", "cibadmin", "--query", "--scope", "nodes")
    assert (lab.home / "servers/lab1/disks/web.img").is_file()
    assert len(config) == len(before)  # as it was (the CIB's version aside)
    lab.run("lab1", "rm", "/web3")

    # the seed, extended again: deleted, both nodes forget it and keep their volumes
    rc, out, err = _lkctl(lab, "extend", "/data", "--target", "lab2", "--accept-defaults")
    assert rc == 0, out + err
    wait_until(
        lambda: _row(lab, "datarep-data").endswith("ISP Source | OSU Target"), 90, "lab2 Target"
    )
    rc, out, err = _lkctl(lab, "delete", "/data", "--yes")
    assert rc == 0, out + err
    assert "lab1 forgot the mirror datarep-data" in _log(lab, "lab1")
    assert "lab2 forgot the mirror datarep-data" in _log(lab, "lab2")
    config = _configuration(lab)
    assert "datarep-data" not in config and "<clone" not in config
    assert "_2f_data" not in config
    for node in ("lab1", "lab2"):
        assert not _exists(lab, node, KEY_DIR.format(rid="datarep-data"))
        assert (lab.home / f"servers/{node}/disks/datarep-data.img").is_file()
        attrs = lab.run(node, "cibadmin", "--query", "--scope", "nodes")
        assert "lkdr-datarep-data" not in attrs
    transient = lab.run("lab1", "cibadmin", "--query", "--scope", "status")
    assert "lkdr-datarep-data-" not in transient and "master-datarep-data" not in transient
    assert lab.run("lab1", "findmnt", "-n", "/data", ok=False) == ""
    rc, out, _err = _lkctl(lab, "status")
    assert "datarep" not in out
