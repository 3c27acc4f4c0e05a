"""A DataKeeper hierarchy's life on Pacemaker, with no cluster: the CIB changes (and the
node work around them) of create, unextend and delete, a DataKeeper-only hierarchy in
the status, and whose key a new target gets."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from core.backends.pacemaker import cib, cib_dk, nslab_seed, operations, status
from core.errors import OperationError
from core.model import MirrorState, ResourceKind, ResourceState, SwitchbackType
from core.plan import (
    BringNewInService,
    CreateDataKeeper,
    CreateDisk,
    CreateFileSystemResource,
    DeleteHierarchy,
    MakeFileSystem,
    RemoveBitmapFile,
    RemoveMirrorTarget,
    RemovePriority,
    RemoveResources,
    Step,
    StopMirrors,
)
from core.status import cell
from tests.core.backends.pacemaker_fixtures import cib_of, crm_mon_of
from tests.core.backends.test_pacemaker_datakeeper import (
    ADDRESSES,
    _empty_opt_in,
    _extend_steps,
)

BITMAP = "/opt/LifeKeeper/bitmap_datarep-data"
RUNNING = {"datarep-data": ("lab1", "lab2"), "_2f_data": ("lab1",)}
PROMOTED = {"datarep-data": ("lab1",)}


def _extended() -> ET.Element:
    """The seed extended to lab2 (lab1 the source)."""
    current = nslab_seed.seeded_cib(_empty_opt_in())
    change = operations.build(current, _extend_steps(current), {}, ADDRESSES)
    return change.cib


def _unextend_steps(work: ET.Element, server: str) -> list[Step]:
    [h] = cib.hierarchies(work)
    dk = h.members[0]
    return [
        StopMirrors(((dk.resource_id, server),), (dk.tag,)),
        RemoveMirrorTarget(dk.resource_id, dk.tag, "lab1", server, BITMAP),
        RemoveBitmapFile(server, BITMAP, "/disks/datarep-data.img"),
        RemoveResources(h.hierarchy_id, server, ("datarep-data", "/data")),
        RemovePriority(h.hierarchy_id, "/data", server),
    ]


def _locations(work: ET.Element) -> set[tuple[str | None, str | None]]:
    return {
        (c.get("rsc"), c.get("node"))
        for c in work.iterfind("configuration/constraints/rsc_location")
        if c.get("rsc") != "lab-fence"
    }


def test_unextend_drops_the_target_from_the_mirror_its_constraints_and_forgets_it_after() -> None:
    current = _extended()
    change = operations.build(current, _unextend_steps(current, "lab2"), RUNNING, ADDRESSES,
                              promoted=PROMOTED)  # fmt: skip
    [h] = cib.hierarchies(change.cib)
    dk = h.members[0]
    assert dict(dk.meta)["lk-servers"] == "lab1=10.213.0.11"
    assert dict(dk.meta)["lk-bitmaps"] == f"lab1={BITMAP}"
    # a parameter's change would restart /data on lab1: they are the same
    assert dict(dk.params) == dict(cib.hierarchies(current)[0].members[0].params)
    assert h.priorities == (("lab1", 1),)
    assert _locations(change.cib) == {
        ("_2f_data-hierarchy", "lab1"),
        ("datarep-data-clone", "lab1"),
    }
    assert change.shrinks == {"datarep-data": "lab2"}
    assert change.node_work == []  # nothing before the push
    after = [(w.kind, w.node, w.path or " ".join(w.argv[:1])) for w in change.after_work]
    assert after[0] == ("forget", "lab2", "")
    assert ("remove-file", "lab2", BITMAP) in after
    assert all(node == "lab2" for _kind, node, _x in after)
    # its attributes go too: two commands, whatever the number of attributes
    assert [a for _k, _n, a in after if a in ("cibadmin", "crm_attribute")] == [
        "cibadmin", "crm_attribute"]  # fmt: skip


def test_forgetting_a_mirror_s_attributes_names_each_in_full() -> None:
    """The commands that clear ``datarep-data``'s node attributes leave those of a mirror
    whose name it begins (``datarep-data-2``), and of other nodes, alone."""
    import re

    permanent, transient = cib_dk.forget_attributes("datarep-data", "lab2")
    xpath = permanent[permanent.index("--xpath") + 1]
    assert xpath.startswith("/cib/configuration/nodes/node[@uname='lab2']/")
    assert re.findall(r"@name='([^']+)'", xpath) == [
        f"lkdr-datarep-data-{n}" for n in ("gen", "forced", "paused")]  # fmt: skip
    assert transient[:3] == ["crm_attribute", "--node", "lab2"]
    assert transient[-3:] == ["--lifetime", "reboot", "--delete"]
    pattern = re.compile(transient[transient.index("--pattern") + 1])
    for name in ("state", "percent", "rate", "eta", "reason", "dirty", "verify", "serving"):
        assert pattern.match(f"lkdr-datarep-data-{name}")
    assert pattern.match("master-datarep-data")
    for other in ("lkdr-datarep-data-2-state", "master-datarep-data-2", "lkdr-datarep-data-gen",
                  "xlkdr-datarep-data-state", "lkdr-datarepxdata-state"):  # fmt: skip
        assert not pattern.match(other), other
    dotted_argv = cib_dk.forget_attributes("web.1", "lab2")[1]
    dotted = re.compile(dotted_argv[dotted_argv.index("--pattern") + 1])
    assert dotted.match("master-web.1") and not dotted.match("master-webx1")


def test_unextending_the_source_is_refused_and_nothing_changes() -> None:
    current = _extended()
    before = cib.to_text(current)
    with pytest.raises(OperationError, match="source on lab1") as caught:
        operations.build(current, _unextend_steps(current, "lab1"), RUNNING, ADDRESSES,
                         promoted=PROMOTED)  # fmt: skip
    assert "switch it over" in str(caught.value)
    assert caught.value.step == "Remove mirror target lab1 from datarep-data"
    assert cib.to_text(current) == before


def test_a_target_where_the_clone_runs_unpromoted_is_not_in_service_there() -> None:
    """The mirror runs on its target too: that is not "in service" (the group is not)."""
    current = _extended()
    steps = _unextend_steps(current, "lab2")[3:]  # RemoveResources, RemovePriority only
    change = operations.build(current, steps, RUNNING, ADDRESSES, promoted=PROMOTED)
    assert cib.hierarchies(change.cib)[0].priorities == (("lab1", 1),)


def _delete_step(work: ET.Element) -> DeleteHierarchy:
    [h] = cib.hierarchies(work)
    return DeleteHierarchy(h.hierarchy_id, "/data", ("lab1", "lab2"))


def test_delete_of_a_running_mirrored_hierarchy_stops_the_clone_too_then_removes_it() -> None:
    current = _extended()
    change = operations.build(current, [_delete_step(current)], RUNNING, ADDRESSES,
                              promoted=PROMOTED)  # fmt: skip
    clone = cib_dk.clone_of(change.cib, "datarep-data")
    assert clone is not None and cib.meta(clone)["target-role"] == "Stopped"
    [intent] = change.intents
    assert intent.where is None and not intent.gone
    [follow] = change.follow_ups
    removed = operations.follow_up_change(change.cib, follow)
    assert removed is not None
    assert cib.hierarchies(removed) == []
    assert removed.find("configuration/resources/clone") is None
    assert _locations(removed) == set()
    left = [c.get("id") for c in removed.iterfind("configuration/constraints/*")]
    assert all("lab-fence" in str(c) for c in left)
    forgets = [(w.kind, w.node) for w in change.after_work if w.kind == "forget"]
    assert forgets == [("forget", "lab1"), ("forget", "lab2")]
    assert not [w for w in change.after_work if w.kind in ("remove-disk", "remove-file")]


def test_delete_of_a_stopped_hierarchy_removes_the_clone_and_its_constraints_at_once() -> None:
    current = _extended()
    change = operations.build(current, [_delete_step(current)], {}, ADDRESSES)
    assert change.cib.find("configuration/resources/clone") is None
    assert change.cib.find("configuration/resources/group") is None
    assert _locations(change.cib) == set()
    assert change.intents[0].gone


def _create_steps(kind: str = "new", volume: str = "/disks/web.img") -> list[Step]:
    steps: list[Step] = []
    if kind != "existing":
        steps.append(CreateDisk("lab1", volume, 16 << 20))
    if kind == "new":
        steps.append(MakeFileSystem("lab1", volume, "ext4"))
    steps.append(CreateDataKeeper("dk", "lab1", "datarep-web", volume, None, False,
                                  SwitchbackType.INTELLIGENT, 65536, 500000))  # fmt: skip
    if kind != "dk-only":
        steps.append(CreateFileSystemResource("fs", "dk", "lab1", "/web", "/web", "ext4"))
    steps.append(BringNewInService("lab1", "datarep-web" if kind == "dk-only" else "/web"))
    return steps


def test_create_on_a_new_volume_is_a_file_system_on_a_new_mirror_after_the_node_work() -> None:
    current = nslab_seed.seeded_cib(_empty_opt_in())
    change = operations.build(current, _create_steps(), {}, ADDRESSES)
    web = next(h for h in cib.hierarchies(change.cib) if h.root.tag == "/web")
    assert [(m.tag, m.kind) for m in web.members] == [
        ("datarep-web", ResourceKind.DATAKEEPER),
        ("/web", ResourceKind.FILESYSTEM),
    ]
    assert web.priorities == (("lab1", 1),) and web.switchback is SwitchbackType.INTELLIGENT
    dk = web.members[0]
    assert dict(dk.params)["size"] == str(16 << 20)
    assert dict(dk.params)["port"] == "10811"  # the seed's mirror has 10810
    assert dict(dk.meta)["lk-bitmaps"] == "lab1=none"
    assert [(w.kind, w.node) for w in change.node_work] == [
        ("make-disk", "lab1"), ("mkfs", "lab1"), ("key-new", "lab1"), ("command", "lab1")
    ]  # fmt: skip
    assert change.node_work[3].argv == tuple(cib_dk.first_generation("datarep-web", "lab1"))
    assert change.created == [web.top_id]
    assert [(i.top_id, i.where) for i in change.intents] == [(web.top_id, "lab1")]
    assert [f.kind for f in change.follow_ups] == ["check-started"]
    assert all("psk" not in " ".join(w.argv) for w in change.node_work)  # no secret in argv


def test_what_create_did_on_the_node_is_what_its_undo_removes() -> None:
    from core.backends.pacemaker.operations_dk import inverse

    change = operations.build(nslab_seed.seeded_cib(_empty_opt_in()), _create_steps(), {},
                              ADDRESSES)  # fmt: skip
    undone = [inverse(w) for w in change.node_work]
    assert [(u.kind, u.path) if u else None for u in undone] == [
        ("remove-disk", "/disks/web.img"), None, ("forget", ""), ("command", "")
    ]  # fmt: skip
    assert undone[3] is not None and "--delete" in undone[3].argv


def test_create_on_an_existing_volume_takes_its_size_from_the_node_or_is_refused() -> None:
    current = nslab_seed.seeded_cib(_empty_opt_in())
    before = cib.to_text(current)
    with pytest.raises(OperationError, match=r"Source Disk /disks/web\.img is not a volume"):
        operations.build(current, _create_steps("existing"), {}, ADDRESSES)
    assert cib.to_text(current) == before
    change = operations.build(current, _create_steps("existing"), {}, ADDRESSES,
                              volumes={("lab1", "/disks/web.img"): 8 << 20})  # fmt: skip
    web = next(h for h in cib.hierarchies(change.cib) if h.root.tag == "/web")
    assert dict(web.members[0].params)["size"] == str(8 << 20)
    assert [w.kind for w in change.node_work] == ["key-new", "command"]


def test_a_datakeeper_only_hierarchy_is_the_clone_alone() -> None:
    current = nslab_seed.seeded_cib(_empty_opt_in())
    change = operations.build(current, _create_steps("dk-only"), {}, ADDRESSES)
    web = next(h for h in cib.hierarchies(change.cib) if h.root.tag == "datarep-web")
    assert web.top_id == "datarep-web-clone" and not web.is_group
    assert [m.tag for m in web.members] == ["datarep-web"]
    assert web.priorities == (("lab1", 1),)
    assert web.switchback is SwitchbackType.INTELLIGENT
    assert change.created == ["datarep-web-clone"]
    assert len(cib.hierarchies(change.cib)) == 2  # the seed's is still one hierarchy


def test_a_taken_tag_at_create_is_refused_and_nothing_changes() -> None:
    current = nslab_seed.seeded_cib(_empty_opt_in())
    before = cib.to_text(current)
    steps = [s if not isinstance(s, CreateDataKeeper) else CreateDataKeeper(
        "dk", "lab1", "datarep-data", "/disks/web.img", None, False,
        SwitchbackType.INTELLIGENT, 65536, 500000) for s in _create_steps()]  # fmt: skip
    with pytest.raises(OperationError, match="tag datarep-data is already used"):
        operations.build(current, steps, {}, ADDRESSES)
    assert cib.to_text(current) == before


def _dk_only_in_sync() -> status.Sources:
    """mirror_in_sync without its file system: the clone alone, on lab1 and lab2."""
    work = cib.copy_of(cib_of("mirror_in_sync"))
    resources = work.find("configuration/resources")
    constraints = work.find("configuration/constraints")
    assert resources is not None and constraints is not None
    group = resources.find("group")
    assert group is not None
    resources.remove(group)
    for c in list(constraints):
        if "_2f_data" in c.get("id", ""):
            constraints.remove(c)
    cib_dk.set_clone_allowed(work, "datarep-data-clone", "lab2", 990)
    return status.Sources(crm_mon_of("mirror_in_sync"), work)


def test_a_datakeeper_only_hierarchy_shows_its_source_and_target() -> None:
    c = status.cluster(_dk_only_in_sync())
    [h] = c.hierarchies
    assert [(r.tag, r.server, r.state) for r in h.resources] == [
        ("datarep-data", "lab1", ResourceState.ISP),
        ("datarep-data", "lab2", ResourceState.OSU),
    ]
    [mirror] = h.mirrors
    assert mirror.source == "lab1"
    assert [(t.server, t.state) for t in mirror.targets] == [("lab2", MirrorState.TARGET)]
    dk = h.resources[0].resource_id
    shown = [cell(h, dk, s) for s in ("lab1", "lab2")]
    assert [x.text if x else None for x in shown] == ["Source", "Target"]
    assert h.root_tag == "datarep-data" and h.in_service_server == "lab1"


def test_extend_after_a_switchover_takes_the_key_from_the_source_now() -> None:
    """lk-servers lists lab1 first, but lab2 is the source since the switchover: the new
    target lab3 gets the key from lab2 (lab1 may well be down)."""
    from core.model import Resource
    from core.plan import CreateDataKeeperTarget

    current = _extended()
    [h] = cib.hierarchies(current)
    dk = h.members[0]
    target = Resource(
        resource_id=dk.resource_id, hierarchy_id=h.hierarchy_id, kind=ResourceKind.DATAKEEPER,
        server="lab3", tag=dk.tag, state=ResourceState.OSU, volume="/disks/datarep-data.img",
    )  # fmt: skip
    steps = [CreateDataKeeperTarget(target, 64 << 20)]
    running = {"datarep-data": ("lab2",), "_2f_data": ("lab2",)}  # lab1 is down
    for promoted in ({"datarep-data": ("lab2",)}, {}):  # crm_mon says; else the group's node
        change = operations.build(current, steps, running, ADDRESSES, promoted=promoted)
        [key] = [w for w in change.node_work if w.kind == "key"]
        assert (key.node, key.source) == ("lab3", "lab2")
    change = operations.build(current, steps, {}, ADDRESSES)  # nothing runs: the first listed
    [key] = [w for w in change.node_work if w.kind == "key"]
    assert key.source == "lab1"
