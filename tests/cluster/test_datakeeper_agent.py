"""``ocf:lkconsole:datakeeper`` on the Pacemaker lab, for real: ``ocf-tester`` passes it;
as a promotable clone between lab1 and lab2 it makes lab1 the source and lab2 a target
in sync (lab2's volume equals lab1's byte for byte, its state in ``crm_mon``'s node
attributes); a source put in standby fails over to the in-sync target with the file
system intact; the former source returns as a target, never promoted over the newer
copy ("Wait for Previous Source"), and is brought in sync again.

Faults, each real: a target's nbdkit killed (the source goes on, the target is
restarted and resynced partially), a stalled target (SIGSTOP: writes go on within the
deadline, the target is Out of Sync, then resynced), a client with the wrong key
(refused)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from core.backends.pacemaker import dk_names as names
from core.backends.pacemaker import nslab
from tests.cluster.labtools import Lab, fuse_devices, loop_devices_on
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

AGENT = names.AGENT_IN_NODE
RID = "dktest"
VOLUME = f"/disks/{RID}.img"
SIZE = 32 * 1024 * 1024
PAIR = ("lab1", "lab2")
PORT = 10819


def _attrs(lab: Lab, node: str) -> dict[str, dict[str, str]]:
    """node → {attribute: value} as crm_mon shows the node attributes."""
    root = ET.fromstring(lab.run(node, "crm_mon", "-1", "-A", "--output-as=xml"))
    return {
        n.get("name", ""): {a.get("name", ""): a.get("value", "") for a in n.iter("attribute")}
        for n in root.iterfind("node_attributes/node")
    }


def _roles(lab: Lab, node: str) -> dict[str, str]:
    """node → role of the clone's instance there (Promoted, Unpromoted), failed ones out."""
    root = lab.crm_mon(node)
    found = {}
    for item in root.iterfind(f".//clone[@id='{names.clone_id(RID)}']/resource"):
        if item.get("failed") == "false" and item.get("active") == "true":
            for n in item.iterfind("node"):
                found[n.get("name", "")] = item.get("role", "")
    return found


def _digest(lab: Lab, node: str) -> str:
    out = lab.run(node, "sha256sum", VOLUME, timeout=60)
    return out.split()[0]


def _state_of(lab: Lab, seen_from: str, node: str) -> str:
    return _attrs(lab, seen_from).get(node, {}).get(names.attribute(RID, "state"), "")


def _clone_xml() -> str:
    servers = " ".join(f"{n}=10.213.0.1{n[-1]}" for n in PAIR)
    bitmaps = " ".join(f"{n}=/opt/LifeKeeper/{RID}.bitmap" for n in PAIR)
    params = {"volume": VOLUME, "servers": servers, "bitmaps": bitmaps, "port": str(PORT),
              "deadline": "3"}  # fmt: skip
    pairs = "".join(f'<nvpair id="{RID}-{k}" name="{k}" value="{v}"/>' for k, v in params.items())
    # sticky as the console's clones are (intelligent switchback, cib_dk): without it a
    # returning lab1, once in sync, takes the Promoted role back by its location score
    meta = {"promotable": "true", "promoted-max": "1", "notify": "true", "clone-max": "2",
            "resource-stickiness": "1000"}  # fmt: skip
    metas = "".join(f'<nvpair id="{RID}-m-{k}" name="{k}" value="{v}"/>' for k, v in meta.items())
    return (
        f'<clone id="{names.clone_id(RID)}"><meta_attributes id="{RID}-clone-meta">{metas}'
        f'</meta_attributes><primitive id="{RID}" class="ocf" provider="lkconsole" '
        f'type="datakeeper"><instance_attributes id="{RID}-ia">{pairs}</instance_attributes>'
        f'<operations><op id="{RID}-mon-p" name="monitor" interval="3s" role="Promoted" '
        f'timeout="60s"/><op id="{RID}-mon-u" name="monitor" interval="4s" '
        f'role="Unpromoted" timeout="60s"/></operations></primitive></clone>'
    )


def _loops(lab: Lab, node: str, rid: str) -> str:
    """The loop devices of mirror ``rid``'s sources (loop devices are the machine's: only
    those over ``/run/lkdr/RID/``, a name no other test's mirror has)."""
    return "\n".join(line for line in lab.run(node, "losetup", "-a").splitlines()
                     if f"/run/lkdr/{rid}/" in line)  # fmt: skip


@contextlib.contextmanager
def mirror(lab: Lab) -> Iterator[None]:
    """A fresh ext4 volume on lab1, an empty one on lab2, the mirror's key on both, and
    the clone (lab1 preferred by its location score, lab3 not a server)."""
    for node in PAIR:
        lab.run(node, AGENT, "admin", "make-disk", VOLUME, str(SIZE))
    lab.run("lab1", AGENT, "admin", "mkfs", VOLUME, "ext4", timeout=120)
    lab.run("lab1", AGENT, "admin", "key-new", RID)
    key = lab.run("lab1", AGENT, "admin", "key-get", RID)
    rc, _out, err = _node_stdin(lab, "lab2", [AGENT, "admin", "key-put", RID], key)
    assert rc == 0, err
    # the copy the mirror is created from is generation 1 (the console's Create does so)
    lab.run("lab1", "crm_attribute", "--node", "lab1", "--name", names.attribute(RID, "gen"),
            "--lifetime", "forever", "--update", "1")  # fmt: skip
    clone = names.clone_id(RID)
    lab.cib_create("resources", _clone_xml())
    for node, score in (("lab1", 1000), ("lab2", 999)):
        lab.cib_create(
            "constraints",
            f'<rsc_location id="{RID}-on-{node}" rsc="{clone}" node="{node}" score="{score}"/>',
        )
    try:
        yield
    finally:
        _remove(lab, clone)


def _remove(lab: Lab, clone: str) -> None:
    up = next(n for n in lab.nodes if lab.alive(n))
    sources = fuse_devices(lab, RID)  # this lab's, while they run (not another lab's)
    for node in PAIR:
        lab.run(up, "crm_attribute", "--node", node, "--name", "standby", "--delete", ok=False)
    lab.run(up, "crm_resource", "--resource", clone, "--meta", "--set-parameter",
            "target-role", "--parameter-value", "Stopped")  # fmt: skip
    wait_until(lambda: not _roles(lab, up), 60, f"{clone} to stop")
    for xml in (
        *(f'<rsc_location id="{RID}-on-{n}"/>' for n in PAIR),
        f'<clone id="{clone}"/>',
    ):
        lab.run(up, "cibadmin", "--delete", "--xml-text", xml)
    lab.run(up, "crm_resource", "--cleanup", "--resource", RID, ok=False)
    for node in PAIR:
        for short in names.PERMANENT:
            lab.run(up, "crm_attribute", "--node", node, "--name", names.attribute(RID, short),
                    "--lifetime", "forever", "--delete", ok=False)  # fmt: skip
        lab.run(node, AGENT, "admin", "forget", RID)
        lab.run(node, AGENT, "admin", "remove-disk", VOLUME)
        lab.run(node, AGENT, "admin", "remove-file", f"/opt/LifeKeeper/{RID}.bitmap")
    # the kernel lets go of a loop device once its last opener (the node's mount) closes
    # it, which on a busy machine may come a moment after the stop; a leak stays
    wait_until(lambda: not loop_devices_on(sources), 30, "the source's loop device to go")


def _node_stdin(lab: Lab, node: str, argv: list[str], text: str) -> tuple[int, str, str]:
    pid = nslab.status(lab.home).node(node).init_pid
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--", *argv],
        input=text, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def _file_digest(lab: Lab, node: str) -> str:
    """Mount the mirrored device on the source ``node``, hash /mnt's file, unmount."""
    out = lab.run(node, "sh", "-c",
                  f"mkdir -p /mnt/{RID} && mount {names.device(RID)} /mnt/{RID} && "
                  f"sha256sum /mnt/{RID}/f; umount /mnt/{RID}", timeout=60)  # fmt: skip
    return out.split()[0]


def test_ocf_tester_passes_the_agent_on_a_node(lab: Lab) -> None:
    lab.run("lab3", AGENT, "admin", "make-disk", "/disks/ocft.img", str(8 * 1024 * 1024))
    try:
        out = lab.run("lab3", "ocf-tester", "-n", "ocft", "-o", "volume=/disks/ocft.img",
                      "-o", "servers=lab3=10.213.0.13",
                      "-o", "bitmaps=lab3=/opt/LifeKeeper/ocft.bitmap",
                      AGENT, timeout=240)  # fmt: skip
        assert f"{AGENT} passed all tests" in out
        assert _loops(lab, "lab3", "ocft").strip() == ""
    finally:
        lab.run("lab3", "crm_attribute", "--node", "lab3", "--name", names.attribute("ocft", "gen"),
                "--lifetime", "forever", "--delete", ok=False)  # fmt: skip
        lab.run("lab3", AGENT, "admin", "remove-disk", "/disks/ocft.img")
        lab.run("lab3", AGENT, "admin", "remove-file", "/opt/LifeKeeper/ocft.bitmap")


def test_the_clone_mirrors_lab1_to_lab2_and_fails_over_to_the_in_sync_copy(lab: Lab) -> None:
    with mirror(lab):
        wait_until(lambda: _roles(lab, "lab1") == {"lab1": "Promoted", "lab2": "Unpromoted"},
                   60, "lab1 source, lab2 target")  # fmt: skip
        wait_until(lambda: _state_of(lab, "lab1", "lab2") == "TARGET", 60, "lab2 in sync")
        assert _digest(lab, "lab2") == _digest(lab, "lab1")
        attrs = _attrs(lab, "lab1")
        assert (
            attrs["lab2"][names.attribute(RID, "gen")] == attrs["lab1"][names.attribute(RID, "gen")]
        )
        assert attrs["lab2"][names.promotion_attribute(RID)] == str(names.PROMOTION_SCORE)

        # a write on the source's mirrored device, then the source goes away
        lab.run("lab1", "sh", "-c",
                f"mkdir -p /mnt/{RID} && mount {names.device(RID)} /mnt/{RID} && "
                f"head -c 3000000 /dev/urandom > /mnt/{RID}/f && sync; umount /mnt/{RID}",
                timeout=60)  # fmt: skip
        written = _file_digest(lab, "lab1")
        lab.run("lab1", "crm_attribute", "--node", "lab1", "--name", "standby", "--update", "on")
        wait_until(lambda: _roles(lab, "lab2") == {"lab2": "Promoted"}, 60, "lab2 promoted")
        assert _file_digest(lab, "lab2") == written
        assert "device" not in lab.run("lab1", "ls", names.run_dir(RID))

        # the former source returns: a target, not promoted over lab2's newer copy
        lab.run("lab1", "crm_attribute", "--node", "lab1", "--name", "standby", "--delete")
        wait_until(lambda: _state_of(lab, "lab2", "lab1") == "TARGET", 60, "lab1 in sync")
        assert _roles(lab, "lab2") == {"lab2": "Promoted", "lab1": "Unpromoted"}
        assert _digest(lab, "lab1") == _digest(lab, "lab2")


def _mounted(lab: Lab, node: str, script: str, timeout: float = 60.0) -> str:
    """Run ``script`` (sh) with the mirrored device mounted on /mnt/RID of ``node``."""
    return lab.run(node, "sh", "-c",
                   f"mkdir -p /mnt/{RID} && mount {names.device(RID)} /mnt/{RID} && "
                   f"{{ {script}; }}; rc=$?; umount /mnt/{RID}; exit $rc",
                   timeout=timeout)  # fmt: skip


def _in_sync(lab: Lab) -> None:
    wait_until(lambda: _roles(lab, "lab1") == {"lab1": "Promoted", "lab2": "Unpromoted"},
               60, "lab1 source, lab2 target")  # fmt: skip
    wait_until(lambda: _state_of(lab, "lab1", "lab2") == "TARGET", 60, "lab2 in sync")


def _target_pid(lab: Lab) -> str:
    return lab.run("lab2", "cat", f"{names.run_dir(RID)}/target/target.pid").strip()


def _dirty(lab: Lab) -> int:
    """The chunks lab2 lacks, as the source's engine counts them (its status file)."""
    status = json.loads(lab.run("lab1", "cat", f"{names.run_dir(RID)}/status.json"))
    return int(status["targets"]["lab2"]["dirty_chunks"])


def test_a_killed_target_is_restarted_and_resynced_partially(lab: Lab) -> None:
    with mirror(lab):
        _in_sync(lab)
        lab.run("lab2", "kill", "-9", _target_pid(lab))
        # the source goes on: a write returns, the target is out of sync
        _mounted(lab, "lab1", f"head -c 1000000 /dev/urandom > /mnt/{RID}/g && sync")
        wait_until(lambda: _state_of(lab, "lab1", "lab2") == "TARGET", 60, "lab2 in sync again")
        assert _digest(lab, "lab2") == _digest(lab, "lab1")
        failed = [
            op.get("task")
            for op in lab.crm_mon("lab1").iterfind(
                ".//node_history/node[@name='lab2']//operation_history"
            )
            if op.get("rc") not in ("0", "8")
        ]
        assert "monitor" in failed, failed  # Pacemaker saw the dead target and restarted it


def test_a_stalled_target_does_not_stall_the_source_and_is_resynced(lab: Lab) -> None:
    with mirror(lab):
        _in_sync(lab)
        pid = _target_pid(lab)
        lab.run("lab2", "kill", "-STOP", pid)
        try:
            began = time.monotonic()
            _mounted(lab, "lab1", f"head -c 500000 /dev/urandom > /mnt/{RID}/h && sync",
                     timeout=60)  # fmt: skip
            took = time.monotonic() - began
            wait_until(lambda: _state_of(lab, "lab1", "lab2") == "OUT_OF_SYNC", 30,
                       "lab2 out of sync")  # fmt: skip
            wait_until(lambda: _dirty(lab) > 0, 15, "the chunks lab2 missed counted")
            dirty = _dirty(lab)
        finally:
            lab.run("lab2", "kill", "-CONT", pid)
        assert took < 30, f"the write took {took:.1f} s with a stalled target (deadline 3 s)"
        assert 0 < dirty < SIZE // (64 * 1024), dirty  # only what changed, not the volume
        wait_until(lambda: _state_of(lab, "lab1", "lab2") == "TARGET", 90, "lab2 in sync again")
        assert _digest(lab, "lab2") == _digest(lab, "lab1")


def test_a_client_with_the_wrong_key_is_refused_by_a_target(lab: Lab) -> None:
    with mirror(lab):
        _in_sync(lab)
        lab.run("lab3", "sh", "-c", "umask 077; printf 'lkmirror:%064d\\n' 0 > /run/wrong.psk")
        uri = f"nbds://lkmirror@10.213.0.12:{PORT}/?tls-psk-file=/run/wrong.psk"
        rc, _out, _err = nslab.exec(lab.home, "lab3", ["nbdinfo", uri], 30)
        assert rc != 0
        rc_plain, _out, _err = nslab.exec(
            lab.home, "lab3", ["nbdinfo", f"nbd://10.213.0.12:{PORT}/"], 30
        )
        assert rc_plain != 0  # no TLS: refused as well
        lab.run("lab3", "rm", "-f", "/run/wrong.psk")
        assert _state_of(lab, "lab1", "lab2") == "TARGET"  # the mirror is untouched
