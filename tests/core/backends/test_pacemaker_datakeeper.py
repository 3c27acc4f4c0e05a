"""A DataKeeper hierarchy on Pacemaker, with no cluster: the CIB the console (and the
lab's seed) writes for it, and crm_mon's clone and node attributes in LifeKeeper's
words (the cells of the console's tree), from what the lab printed."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from core.backends.pacemaker import cib, cib_dk, nslab_seed, operations, operations_dk, resize_dk
from core.errors import OperationError
from core.model import MirrorState, Resource, ResourceKind, ResourceState, Role, SwitchbackType
from core.plan import (
    BringInService,
    ConfigureMirror,
    CreateDataKeeperTarget,
    GrowBitmap,
    GrowVolume,
    SetMirrorSize,
    SetPriorities,
    StartResync,
    Step,
)
from core.session import Session
from core.status import cell
from tests.core.backends.pacemaker_fixtures import cib_of, cluster_of


def _empty_opt_in() -> ET.Element:
    """steady's CIB without its hierarchies (nodes lab1-lab3, opt-in)."""
    work = cib.copy_of(cib_of("steady"))
    for section in ("resources", "constraints"):
        element = work.find(f"configuration/{section}")
        assert element is not None
        for child in list(element):
            if child.get("class") != "stonith" and "fence" not in child.get("id", ""):
                element.remove(child)
    return work


def test_the_seed_is_a_file_system_on_a_promotable_mirror_in_service_on_lab1_only() -> None:
    work = nslab_seed.seeded_cib(_empty_opt_in())
    [h] = cib.hierarchies(work)
    assert [(m.tag, m.kind) for m in h.members] == [
        ("datarep-data", ResourceKind.DATAKEEPER),
        ("/data", ResourceKind.FILESYSTEM),
    ]
    assert h.priorities == (("lab1", 1),)
    assert h.switchback is SwitchbackType.INTELLIGENT
    dk, fs = h.members
    assert dict(dk.params)["volume"] == "/disks/datarep-data.img"
    assert dict(dk.meta)["lk-servers"] == "lab1=10.213.0.11"
    assert dict(dk.meta)["lk-bitmaps"] == "lab1=/opt/LifeKeeper/bitmap_datarep-data"
    assert "servers" not in dict(dk.params)  # a change of a parameter would restart /data
    assert dict(dk.params)["size"] == str(64 * 1024 * 1024)
    assert dict(fs.params) == {
        "device": "/run/lkdr/datarep-data/device",
        "directory": "/data",
        "fstype": "ext4",
    }
    clone = cib_dk.clone_of(work, "datarep-data")
    assert clone is not None and cib.meta(clone)["promotable"] == "true"
    constraints = work.find("configuration/constraints")
    assert constraints is not None
    colocation = constraints.find("rsc_colocation")
    order = constraints.find("rsc_order")
    assert colocation is not None and order is not None
    assert (colocation.get("rsc"), colocation.get("with-rsc"), colocation.get("with-rsc-role")) == (
        h.top_id,
        "datarep-data-clone",
        "Promoted",
    )
    assert (order.get("first"), order.get("first-action"), order.get("then")) == (
        "datarep-data-clone",
        "promote",
        h.top_id,
    )
    locations = {
        (c.get("rsc"), c.get("node"), c.get("score")) for c in constraints.iterfind("rsc_location")
    }
    assert ("datarep-data-clone", "lab1", "999") in locations
    assert (h.top_id, "lab1", "999") in locations
    assert not [c for c in locations if c[1] != "lab1" and c[0] != "lab-fence"]


def test_a_taken_tag_is_refused_and_nothing_changes() -> None:
    work = nslab_seed.seeded_cib(_empty_opt_in())
    before = cib.to_text(work)
    with pytest.raises(cib.Refused, match="tag datarep-data is already used"):
        nslab_seed.seeded_cib(work)
    assert cib.to_text(work) == before


def test_a_resyncing_target_shows_its_percentage_rate_and_eta_and_the_source_is_source() -> None:
    c = cluster_of("mirror_resyncing")
    [h] = c.hierarchies
    dk = next(r for r in h.resources if r.kind is ResourceKind.DATAKEEPER and r.server == "lab1")
    [mirror] = h.mirrors
    assert mirror.source == "lab1"
    [target] = mirror.targets
    assert (target.server, target.state, target.percent) == ("lab2", MirrorState.RESYNCING, 14)
    assert target.eta == 14.0 and target.rate == 4097103.0
    source_cell = cell(h, dk.resource_id, "lab1")
    target_cell = cell(h, dk.resource_id, "lab2")
    assert source_cell is not None and source_cell.text == "Source"
    assert target_cell is not None and target_cell.text == "Resyncing 14 % · 4.1 MB/s · 14 s left"
    states = {(r.tag, r.server): r.state for r in h.resources}
    assert states == {
        ("datarep-data", "lab1"): ResourceState.ISP,
        ("datarep-data", "lab2"): ResourceState.OSU,
        ("/data", "lab1"): ResourceState.ISP,
        ("/data", "lab2"): ResourceState.OSU,
    }
    assert dk.volume == "/disks/datarep-data.img"
    assert dk.bitmap_file == "/opt/LifeKeeper/bitmap_datarep-data"


def test_an_in_sync_target_is_target() -> None:
    c = cluster_of("mirror_in_sync")
    [h] = c.hierarchies
    [mirror] = h.mirrors
    [target] = mirror.targets
    assert (target.server, target.state, target.reason) == ("lab2", MirrorState.TARGET, "")
    dk_id = next(m for m in h.resources if m.kind is ResourceKind.DATAKEEPER).resource_id
    shown = cell(h, dk_id, "lab2")
    assert shown is not None and shown.text == "Target"
    assert h.in_service_server == "lab1"


def test_with_the_source_dead_mid_resync_the_target_waits_for_the_previous_source() -> None:
    c = cluster_of("mirror_waiting")
    [h] = c.hierarchies
    [mirror] = h.mirrors
    assert mirror.source == "lab1"  # the previous source, dead: its copy is the newest
    [target] = mirror.targets
    assert (target.server, target.state) == ("lab2", MirrorState.WAIT_FOR_PREVIOUS_SOURCE)
    assert "the previous source lab1 is not in service" in target.reason
    assert "force lab2 online" in target.reason
    dk_id = next(m for m in h.resources if m.kind is ResourceKind.DATAKEEPER).resource_id
    shown = cell(h, dk_id, "lab2")
    assert shown is not None and shown.text == "Out of Sync (Wait for Previous Source)"
    assert h.in_service_server is None


def _extend_steps(work: ET.Element, volume: str = "/disks/datarep-data.img") -> list[Step]:
    [h] = cib.hierarchies(work)
    dk, _fs = h.members
    target = Resource(
        resource_id=dk.resource_id, hierarchy_id=h.hierarchy_id, kind=ResourceKind.DATAKEEPER,
        server="lab2", tag=dk.tag, state=ResourceState.OSU, volume=volume,
        bitmap_file="/opt/LifeKeeper/bitmap_datarep-data",
    )  # fmt: skip
    return [
        CreateDataKeeperTarget(target, 64 * 1024 * 1024),
        ConfigureMirror(dk.resource_id, dk.tag, "lab1", "lab2",
                        "/opt/LifeKeeper/bitmap_datarep-data",
                        "/opt/LifeKeeper/bitmap_datarep-data", 64 * 1024 * 1024, 65536),
        SetPriorities(h.hierarchy_id, "/data", (("lab1", 1), ("lab2", 10))),
        StartResync(dk.resource_id, dk.tag, "lab1", "lab2"),
    ]  # fmt: skip


ADDRESSES = {"lab1": "10.213.0.11", "lab2": "10.213.0.12", "lab3": "10.213.0.13"}


def test_extend_adds_the_target_to_the_mirror_and_the_node_work_it_needs() -> None:
    current = nslab_seed.seeded_cib(_empty_opt_in())
    running = {"datarep-data": ("lab1",), "_2f_data": ("lab1",)}
    change = operations.build(current, _extend_steps(current), running, ADDRESSES)
    [h] = cib.hierarchies(change.cib)
    dk = h.members[0]
    meta = dict(dk.meta)
    assert meta["lk-servers"] == "lab1=10.213.0.11 lab2=10.213.0.12"
    assert meta["lk-bitmaps"] == (
        "lab1=/opt/LifeKeeper/bitmap_datarep-data lab2=/opt/LifeKeeper/bitmap_datarep-data"
    )
    assert dict(dk.params) == dict(cib.hierarchies(current)[0].members[0].params)  # no reload
    assert h.priorities == (("lab1", 1), ("lab2", 10))
    clone_scores = {
        c.get("node"): c.get("score")
        for c in change.cib.iterfind("configuration/constraints/rsc_location")
        if c.get("rsc") == "datarep-data-clone"
    }
    assert clone_scores == {"lab1": "999", "lab2": "990"}
    assert [(w.kind, w.node) for w in change.node_work] == [("volume", "lab2"), ("key", "lab2")]
    assert change.node_work[0].path == "/disks/datarep-data.img"
    assert change.grows == {"datarep-data": "lab2"}


def test_a_target_volume_at_another_path_is_refused_and_nothing_changes() -> None:
    current = nslab_seed.seeded_cib(_empty_opt_in())
    before = cib.to_text(current)
    with pytest.raises(OperationError, match="one path on every server") as caught:
        operations.build(current, _extend_steps(current, "/disks/other.img"), {}, ADDRESSES)
    assert caught.value.step.startswith("Create DataKeeper resource datarep-data on lab2")
    assert cib.to_text(current) == before


# -- Resize Mirror (resize_dk.py: its phases) --------------------------------------------------

MIB = 1024 * 1024


def _resize_steps(work: ET.Element) -> list[Step]:
    [h] = cib.hierarchies(work)
    dk, _fs = h.members
    rid, volume, bitmap = (
        dk.resource_id,
        "/disks/datarep-data.img",
        "/opt/LifeKeeper/bitmap_datarep-data",
    )
    return [
        GrowVolume(rid, dk.tag, "lab2", volume, 64 * MIB, 96 * MIB, "target"),
        GrowVolume(rid, dk.tag, "lab1", volume, 64 * MIB, 96 * MIB, "source"),
        GrowBitmap(rid, "lab2", bitmap, 64 * MIB, 96 * MIB, 65536),
        GrowBitmap(rid, "lab1", bitmap, 64 * MIB, 96 * MIB, 65536),
        SetMirrorSize(rid, dk.tag, 64 * MIB, 96 * MIB, ("lab2",)),
        StartResync(rid, dk.tag, "lab1", "lab2"),
    ]  # fmt: skip


def _extended() -> ET.Element:
    current = nslab_seed.seeded_cib(_empty_opt_in())
    running = {"datarep-data": ("lab1",), "_2f_data": ("lab1",)}
    return operations.build(current, _extend_steps(current), running, ADDRESSES).cib


def _metas(work: ET.Element) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The mirror's, its clone's and the group's meta attributes."""
    [h] = cib.hierarchies(work)
    dk, _fs = h.members
    clone = cib_dk.clone_of(work, dk.xml_id)
    group = work.find(f".//group[@id='{h.top_id}']")
    assert clone is not None and group is not None
    return dict(dk.meta), cib.meta(clone), cib.meta(group)


def test_a_resize_holds_the_mirror_grows_every_copy_then_finishes_at_the_new_size() -> None:
    work = _extended()
    steps = _resize_steps(work)
    r = resize_dk.of(work, steps, {"datarep-data": ("lab1",)})
    assert (r.source, r.old, r.new, r.fs_id, r.grows_fs, r.no_bitmap, r.resuming) == (
        "lab1", 64 * MIB, 96 * MIB, "_2f_data", True, False, False)  # fmt: skip
    resize_dk.hold(work, r)
    dk_meta, clone_meta, group_meta = _metas(work)
    assert dk_meta["lk-resize"] == f"{64 * MIB} {96 * MIB}"
    assert dk_meta["lk-held-source"] == "lab1"
    assert clone_meta["target-role"] == "Unpromoted"  # the targets serve on
    assert group_meta["target-role"] == "Stopped"
    # the targets' volumes first, then the source's, then the bitmaps; each undone back
    works = resize_dk.node_work(r)
    assert [(w.kind, w.node) for w in works] == [
        ("grow-volume", "lab2"), ("grow-volume", "lab1"),
        ("grow-bitmap", "lab2"), ("grow-bitmap", "lab1"),
    ]  # fmt: skip
    undo = operations_dk.inverse(works[0])
    assert undo is not None and (undo.kind, undo.size, undo.old_size) == (
        "ungrow-volume", 96 * MIB, 64 * MIB)  # fmt: skip
    resize_dk.source_back(work, r)
    dk_meta, clone_meta, group_meta = _metas(work)
    assert "lk-held-source" not in dk_meta and "target-role" not in clone_meta
    assert cib_dk.source_preference(work, "datarep-data") == "lab1"
    assert group_meta["target-role"] == "Stopped"  # until its file system has grown
    assert dk_meta["lk-resize"]  # pending until it is finished
    # meanwhile every other operation of the hierarchy is refused, saying what to do
    [h] = cib.hierarchies(work)
    with pytest.raises(OperationError, match=(
        r"a resize of datarep-data from 67108864 to 100663296 bytes did not finish: run "
        r"`lkctl mirror resize datarep-data --size 100663296` again to finish it"
    )):  # fmt: skip
        operations.build(work, [BringInService(h.hierarchy_id, "/data", "lab1", ("/data",))], {})
    resize_dk.finish(work, r)
    [h] = cib.hierarchies(work)
    assert h.members[0].param("size") == str(96 * MIB)
    dk_meta, _clone_meta, group_meta = _metas(work)
    assert "lk-resize" not in dk_meta and "target-role" not in group_meta


def test_an_undo_goes_on_past_a_node_that_is_down_and_says_what_it_could_not_undo(
    tmp_path: Path,
) -> None:
    """lab2 died after its volume grew, before it answered: its grow counts as made; the
    undo of lab1's grow is made, lab2's is reported as not undone (the resize then stays
    pending), no exception escapes it."""
    from core.backends.pacemaker import dk_nodes
    from core.backends.pacemaker.oplog import OperationLog
    from core.backends.pacemaker.records import Records
    from core.backends.pacemaker.runner import Completed, Unreachable

    work = _extended()
    r = resize_dk.of(work, _resize_steps(work), {"datarep-data": ("lab1",)})
    ran: list[tuple[str, ...]] = []
    down: set[str] = set()

    def run(argv: list[str], *, node: str | None = None, **_kw: object) -> Completed:
        if node in down:
            raise Unreachable(f"{node} is not running: start it with nslab start {node}")
        ran.append((str(node), *argv[1:3]))
        if node == "lab2" and argv[2] == "grow-volume":  # grown, then killed: no answer
            down.add("lab2")
            return Completed(tuple(argv), -9, "", "", "lab2")
        return Completed(tuple(argv), 0, "{}", "", str(node))

    def checked(argv: list[str], **kw: Any) -> Completed:
        done = run(argv, **kw)
        if done.returncode:
            raise OperationError(f"{argv[2]} failed on {done.where} (exit {done.returncode})")
        return done

    out = OperationLog(Records(tmp_path), "resize", None, Session("root", Role.ADMINISTRATOR))
    done: list[operations_dk.NodeWork] = []
    with pytest.raises(OperationError, match="grow-volume failed on lab2"):
        dk_nodes.do(checked, resize_dk.node_work(r), out, done)
    assert [(w.kind, w.node) for w in done] == [("grow-volume", "lab2")]  # tried: undone
    done += resize_dk.node_work(r)[1:2]  # say lab1's grew too
    failed = dk_nodes.undo(checked, done, out)
    assert [(w.kind, w.node) for w in failed] == [("ungrow-volume", "lab2")]
    assert ran[-1] == ("lab1", "admin", "ungrow-volume")
    assert "WARNING: could not undo on lab2: lab2 is not running" in "\n".join(out.said)


def test_a_resize_that_did_not_commit_leaves_the_configuration_as_it_was() -> None:
    before = _extended()
    work = cib.copy_of(before)
    r = resize_dk.of(work, _resize_steps(work), {"datarep-data": ("lab1",)})
    resize_dk.hold(work, r)
    resize_dk.abandon(work, r)
    assert _metas(work) == _metas(before)
    assert (
        cib.hierarchies(work)[0].members[0].params == cib.hierarchies(before)[0].members[0].params
    )
    assert cib_dk.source_preference(work, "datarep-data") is None


def test_a_resize_of_a_hierarchy_not_in_service_on_its_source_is_refused() -> None:
    work = _extended()
    with pytest.raises(cib.Refused, match="/data is not in service on lab1: bring it in"):
        resize_dk.of(work, _resize_steps(work), {})
    with pytest.raises(cib.Refused, match="not in service on lab1"):
        resize_dk.of(work, _resize_steps(work), {"datarep-data": ("lab2",)})


def test_an_interrupted_resize_is_finished_by_the_same_one_and_refuses_another() -> None:
    work = _extended()
    r = resize_dk.of(work, _resize_steps(work), {"datarep-data": ("lab1",)})
    resize_dk.hold(work, r)  # the console stopped here: nothing runs but lab2's copy
    again = resize_dk.of(work, _resize_steps(work), {})
    assert again.resuming and again.source == "lab1"
    other = [
        dataclasses.replace(s, new_size=128 * MIB)
        if isinstance(s, (GrowVolume, GrowBitmap, SetMirrorSize)) else s
        for s in _resize_steps(work)
    ]  # fmt: skip
    with pytest.raises(cib.Refused, match="from 67108864 to 100663296 bytes did not finish"):
        resize_dk.of(work, other, {})
