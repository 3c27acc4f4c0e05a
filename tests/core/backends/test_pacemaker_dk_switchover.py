"""The switchover of a DataKeeper hierarchy on Pacemaker with no cluster: the plan's CIB
change (a temporary preference for the clone's Promoted role on the new server beside the
group's), the follow-up that clears both, the transition check of a promotable clone whose
Promoted instance moves, and the refusal of a switchover to a copy not in sync."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from core.backends.pacemaker import operations
from core.backends.pacemaker.backend import Simulation, check_transition
from core.errors import CheckFailed, OperationError
from core.model import Cluster, MirrorState
from core.plan import MakeSource, Step
from core.rules import service
from core.rules.mirror import PAUSED_REASON
from tests.core.backends.pacemaker_fixtures import cib_of, cluster_of

RID = "datarep-data"
FS = "_2f_data"
GROUP = "_2f_data-hierarchy"
RUNNING = {RID: ("lab1", "lab2"), FS: ("lab1",)}
SOURCE_PREFERENCE = f"configuration/constraints/rsc_location[@id='{RID}-clone-in-service']"
GROUP_PREFERENCE = f"configuration/constraints/rsc_location[@id='{GROUP}-in-service']"


def _switchover(cluster: Cluster, to: str) -> tuple[Step, ...]:
    _h, steps = service.switchover_steps(cluster, "/data", to)
    return steps


def _change() -> operations.Change:
    steps = _switchover(cluster_of("mirror_in_sync"), "lab2")
    assert [type(s) for s in steps][1] is MakeSource
    return operations.build(cib_of("mirror_in_sync"), steps, RUNNING, promoted={RID: ("lab1",)})


def test_a_switchover_prefers_the_clone_promoted_role_and_the_group_on_the_new_server() -> None:
    change = _change()
    source = change.cib.find(SOURCE_PREFERENCE)
    assert source is not None and source.attrib == {
        "id": f"{RID}-clone-in-service",
        "rsc": f"{RID}-clone",
        "role": "Promoted",
        "node": "lab2",
        "score": "INFINITY",
    }
    group = change.cib.find(GROUP_PREFERENCE)
    assert group is not None and group.get("node") == "lab2"
    assert [(i.top_id, i.where) for i in change.intents] == [(GROUP, "lab2")]
    assert [(f.kind, f.top_id, f.node) for f in change.follow_ups] == [
        ("clear-preference", GROUP, "lab2")
    ]
    assert change.lines[:2] == [
        "/data: out of service on lab1",  # a mirror is in service where it is Promoted
        "datarep-data: lab2 is the source now (its Promoted role preferred there until "
        "/data is in service on it), lab1 a target",
    ]
    assert cib_of("mirror_in_sync").find(SOURCE_PREFERENCE) is None  # the CIB read: unchanged


def test_the_follow_up_clears_both_preferences_and_then_has_nothing_to_do() -> None:
    change = _change()
    [follow] = change.follow_ups
    cleared = operations.follow_up_change(change.cib, follow)
    assert cleared is not None
    assert cleared.find(SOURCE_PREFERENCE) is None and cleared.find(GROUP_PREFERENCE) is None
    assert change.cib.find(SOURCE_PREFERENCE) is not None  # built on a copy
    assert operations.follow_up_change(cleared, follow) is None


def _simulation(promoted: tuple[str, ...], fs: tuple[str, ...]) -> Simulation:
    return Simulation(RUNNING, {RID: ("lab1", "lab2"), FS: fs}, (), {RID: ("lab1",)},
                      {RID: promoted})  # fmt: skip


def test_the_check_accepts_the_promoted_instance_moving_and_the_unpromoted_staying() -> None:
    change = _change()
    current = cib_of("mirror_in_sync")
    base = _simulation(("lab1",), ("lab1",))
    check_transition(current, change, base, _simulation(("lab2",), ("lab2",)))
    with pytest.raises(OperationError, match="would not get /data in service on lab2: it"):
        check_transition(current, change, base, _simulation(("lab1",), ()))  # no promotion
    with pytest.raises(OperationError, match="lab1, lab2, its source on lab1 "):
        check_transition(current, change, base, _simulation(("lab1",), ("lab2",)))
    stopped = Simulation(RUNNING, {RID: ("lab2",), FS: ("lab2",)}, (), {}, {RID: ("lab2",)})
    with pytest.raises(OperationError, match="its copy on lab1 would stop"):
        check_transition(current, change, base, stopped)  # lab1's copy would stop


def _with_target_state(cluster: Cluster, state: MirrorState, reason: str = "") -> Cluster:
    [h] = cluster.hierarchies
    [m] = h.mirrors
    [t] = m.targets
    m = dataclasses.replace(m, targets=(dataclasses.replace(t, state=state, reason=reason),))
    return dataclasses.replace(cluster, hierarchies=(dataclasses.replace(h, mirrors=(m,)),))


@pytest.mark.parametrize(
    ("cluster", "said"),
    [
        (cluster_of("mirror_resyncing"), "datarep-data on lab2 is Resyncing (14 %)"),
        (_with_target_state(cluster_of("mirror_in_sync"), MirrorState.OUT_OF_SYNC),
         "datarep-data on lab2 is Out of Sync"),
        (_with_target_state(cluster_of("mirror_in_sync"), MirrorState.OUT_OF_SYNC, PAUSED_REASON),
         "datarep-data on lab2 is Out of Sync"),
    ],
)  # fmt: skip
def test_a_switchover_to_a_copy_not_in_sync_is_refused_naming_it(
    cluster: Cluster, said: str
) -> None:
    """The rules refuse before any plan exists: nothing is built, nothing pushed."""
    with pytest.raises(CheckFailed) as caught:
        _switchover(cluster, "lab2")
    [problem] = caught.value.problems
    assert (problem.field, problem.code) == ("to", "mirror_not_target")
    assert said in problem.message and "until the mirror is Target" in problem.message


def test_a_switchover_naming_a_mirror_the_hierarchy_lacks_is_refused_and_changes_nothing() -> None:
    steps = _switchover(cluster_of("mirror_in_sync"), "lab2")
    make = next(s for s in steps if isinstance(s, MakeSource))
    bad = dataclasses.replace(make, mirrors=(("datarep-other", "lab1"),))
    current = cib_of("mirror_in_sync")
    before = ET.tostring(current)
    with pytest.raises(OperationError, match="/data has no DataKeeper mirror datarep-other"):
        operations.build(current, [bad], RUNNING, promoted={RID: ("lab1",)})
    assert ET.tostring(current) == before


def test_out_of_service_or_a_delete_is_reached_once_no_copy_is_promoted() -> None:
    """The intent "out of service" of a mirrored hierarchy holds once no copy of its
    mirror is Promoted, whether its copies serve on as targets or stop (a delete); while
    one is still the source, crm_simulate's answer is refused, naming it."""
    current = cib_of("mirror_in_sync")
    _h, steps = service.out_of_service_steps(cluster_of("mirror_in_sync"), "/data")
    change = operations.build(current, steps, RUNNING, promoted={RID: ("lab1",)})
    base = Simulation(RUNNING, RUNNING, (), promoted_after={RID: ("lab1",)})
    served = Simulation(RUNNING, {RID: ("lab1", "lab2")}, (), promoted_after={})
    check_transition(current, change, base, served)  # both copies serve as targets
    check_transition(current, change, base, Simulation(RUNNING, {}, (), promoted_after={}))
    still = Simulation(RUNNING, {RID: ("lab1", "lab2")}, (), promoted_after={RID: ("lab1",)})
    with pytest.raises(OperationError, match="its source on lab1"):
        check_transition(current, change, base, still)


def test_out_of_service_holds_the_clone_unpromoted_and_in_service_releases_it() -> None:
    cluster, cib = cluster_of("mirror_in_sync"), cib_of("mirror_in_sync")
    _h, steps = service.out_of_service_steps(cluster, "/data")
    change = operations.build(cib, steps, RUNNING, promoted={RID: ("lab1",)})
    clone = f"configuration/resources/clone[@id='{RID}-clone']/meta_attributes/nvpair"
    roles = [n.get("value") for n in change.cib.findall(clone) if n.get("name") == "target-role"]
    assert roles == ["Unpromoted"]  # its source demoted, its targets serve on
    held = f"configuration/resources/clone/primitive[@id='{RID}']/meta_attributes/nvpair"
    assert [n.get("value") for n in change.cib.findall(held)
            if n.get("name") == "lk-held-source"] == ["lab1"]  # fmt: skip
    assert [(i.top_id, i.where) for i in change.intents] == [(GROUP, None)]

    back = operations.build(
        change.cib,
        (service.bring_in(service.hierarchy(cluster, "/data"), "lab2"),),
        {RID: ("lab1", "lab2")},
        promoted={},
    )
    assert not [n for n in back.cib.findall(clone) if n.get("name") == "target-role"]
    assert not [n for n in back.cib.findall(held) if n.get("name") == "lk-held-source"]
    source = back.cib.find(SOURCE_PREFERENCE)
    assert source is not None and source.get("node") == "lab2" and source.get("role") == "Promoted"


def test_a_mirror_out_of_service_keeps_its_source_and_its_targets_states() -> None:
    from core.backends.pacemaker import cib as cibxml
    from core.backends.pacemaker import status_dk

    h = next(x for x in cibxml.hierarchies(cib_of("mirror_in_sync")) if x.top_id == GROUP)
    m = next(x for x in h.members if x.xml_id == RID)
    m = dataclasses.replace(m, meta=(*m.meta, ("lk-held-source", "lab1")))
    gen = f"lkdr-{RID}-gen"
    shown = status_dk.mirror(m, (), {"lab1": {gen: "4"}, "lab2": {gen: "4"}}, ("lab1", "lab2"))
    assert shown is not None and shown.source == "lab1"
    assert [(t.server, t.state) for t in shown.targets] == [("lab2", MirrorState.TARGET)]
    shown = status_dk.mirror(m, (), {"lab1": {gen: "4"}, "lab2": {gen: "3"}}, ("lab1", "lab2"))
    assert shown is not None and shown.source == "lab1"
    assert [(t.server, t.state) for t in shown.targets] == [("lab2", MirrorState.OUT_OF_SYNC)]
    assert "missed writes of lab1" in shown.targets[0].reason
