"""The mirror operations on Pacemaker with no cluster: each step as the requests to the
source's engine (and the CIB change, if any), the refusals (field by field, nothing
changed), what the engine's answer says, and the copy that waits for the previous
source as crm_mon shows it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.backends.pacemaker import cib, mirror_node, mirror_ops, operations, status_dk
from core.backends.pacemaker.mirror_ops import NodeRequest
from core.checks import Problem
from core.errors import CheckFailed, OperationError
from core.model import MirrorState, MirrorTarget
from core.permissions import Op
from core.plan import (
    FullResync,
    MakeSource,
    PauseMirror,
    ResumeMirror,
    SetMirrorMode,
    SetSpeedLimit,
    VerifyMirror,
)
from core.rules import mirror as rules
from tests.core.backends.pacemaker_fixtures import cib_of, cluster_of

RID = "datarep-data"
DK = cib.resource_id(RID)
RUNNING = {RID: ("lab1", "lab2"), "_2f_data": ("lab1",)}
H = cib.hierarchy_id("_2f_data-hierarchy")


def _build(*steps: object) -> operations.Change:
    return operations.build(cib_of("mirror_in_sync"), list(steps), RUNNING)  # type: ignore[arg-type]


def _unchanged(change: operations.Change) -> bool:
    return cib.to_text(change.cib) == cib.to_text(cib.copy_of(cib_of("mirror_in_sync")))


@pytest.mark.parametrize(
    ("step", "op"),
    [
        (PauseMirror(DK, RID, "lab2"), "pause"),
        (ResumeMirror(DK, RID, "lab2"), "resume"),
        (FullResync(DK, RID, "lab2"), "full_resync"),
    ],
)
def test_pause_resume_full_resync_are_requests_to_the_source_and_change_no_cib(
    step: PauseMirror, op: str
) -> None:
    change = _build(step)
    assert change.node_requests == [NodeRequest(RID, RID, op, "lab2", step=step.title)]
    assert not (change.touched or change.created or change.intents)  # never pushed
    assert _unchanged(change)
    argv = change.node_requests[0].argv()
    assert argv == ["/usr/lib/ocf/resource.d/lkconsole/datakeeper", "admin", "mirror", RID,
                    op, "lab2", "{}"]  # fmt: skip


def test_verify_with_repair_asks_the_engine_to_verify_and_repair() -> None:
    step = VerifyMirror(DK, RID, "lab2", repair=True, method="bytes", wait_repair=120.0)
    [req] = _build(step).node_requests
    assert (req.op, req.target) == ("verify", "lab2")
    assert json.loads(req.argv()[-1]) == {
        "repair": True, "method": "bytes", "wait_repair": 120.0, "timeout": 3720.0,
    }  # fmt: skip
    assert req.timeout == 3720.0


def test_the_speed_limit_is_a_meta_attribute_never_a_parameter_and_sent_at_once() -> None:
    change = _build(SetSpeedLimit(DK, RID, 2500))
    [h] = cib.hierarchies(change.cib)
    dk = h.members[0]
    assert dict(dk.meta)["lk-speed-limit"] == "2500"
    [before] = cib.hierarchies(cib_of("mirror_in_sync"))
    assert dk.params == before.members[0].params  # no restart of the source and /data
    assert change.touched == [h.top_id]
    [req] = change.node_requests
    assert (req.op, dict(req.fields), req.needed) == ("speed", {"kbps": 2500}, False)
    shown = status_dk.mirror(dk, ("lab1",), {})
    assert shown is not None and shown.speed_limit_kbps == 2500


def test_a_target_mode_is_kept_per_target_and_sent_at_once() -> None:
    change = _build(SetMirrorMode(DK, RID, "lab2", asynchronous=True))
    [h] = cib.hierarchies(change.cib)
    assert dict(h.members[0].meta)["lk-modes"] == "lab2=async"
    [req] = change.node_requests
    assert (req.op, req.target, dict(req.fields)) == ("mode", "lab2", {"asynchronous": True})
    shown = status_dk.mirror(h.members[0], ("lab1",), {})
    assert shown is not None and shown.is_asynchronous("lab2") and not shown.asynchronous


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (PauseMirror(DK, RID, "lab3"), "'lab3' is not a server of the mirror datarep-data"),
        (SetSpeedLimit(DK, RID, -5), "speed limit -5 KB/s is out of range"),
        (SetSpeedLimit(DK, RID, 10**9), "out of range: 0 \\(unlimited\\) to 100000000"),
        (VerifyMirror(DK, RID, "lab2", False, "md5"), "method 'md5' is not one of"),
        (PauseMirror(999, RID, "lab2"), "no longer in the cluster's configuration"),
        (MakeSource(H, "lab3", ((RID, "lab1"),)), "'lab3' is not a server of the mirror"),
        (MakeSource(H, "lab2", ((RID, "lab1"),), False), "made by Pacemaker \\(failover\\)"),
    ],
)
def test_bad_requests_are_refused_naming_the_step_and_nothing_changes(
    step: PauseMirror, message: str
) -> None:
    current = cib_of("mirror_in_sync")
    text = cib.to_text(current)
    with pytest.raises(OperationError, match=message) as caught:
        operations.build(current, [step], RUNNING)
    assert caught.value.step == step.title
    assert cib.to_text(current) == text


def test_the_rules_refuse_field_by_field_before_any_backend() -> None:
    c = cluster_of("mirror_in_sync")
    ref = rules.find(c, RID)
    with pytest.raises(CheckFailed) as caught:
        rules.speed_steps(ref, -1)
    assert [(p.field, p.code) for p in caught.value.problems] == [("kbps", "out_of_range")]
    alone = dataclasses.replace(ref, mirror=dataclasses.replace(ref.mirror, targets=()))
    with pytest.raises(CheckFailed) as caught:
        rules.pause_steps(alone, None)
    assert caught.value.problems == [
        Problem("tag", "no_targets", f"{RID} has no mirror target yet; extend the hierarchy first.")
    ]


def test_a_datakeeper_resource_with_no_source_is_refused_as_such_not_as_another_kind() -> None:
    c = cluster_of("mirror_in_sync")
    [h] = c.hierarchies
    sourceless = dataclasses.replace(c, hierarchies=(dataclasses.replace(h, mirrors=()),))
    with pytest.raises(CheckFailed) as caught:
        rules.find(sourceless, RID)
    [problem] = caught.value.problems
    assert (problem.field, problem.code) == ("tag", "no_source")
    assert problem.message.startswith(f"The mirror of {RID!r} has no source now")
    assert "not a DataKeeper resource" not in problem.message


def test_every_mirror_step_has_its_operation_in_the_permission_table() -> None:
    assert operations.STEP_OPS[PauseMirror] is Op.PAUSE_MIRROR
    assert operations.STEP_OPS[ResumeMirror] is Op.RESUME_MIRROR
    assert operations.STEP_OPS[FullResync] is Op.FULL_RESYNC
    assert operations.STEP_OPS[SetSpeedLimit] is Op.SPEED_LIMIT
    assert operations.STEP_OPS[VerifyMirror] is Op.VERIFY_MIRROR
    assert operations.STEP_OPS[SetMirrorMode] is Op.SET_RESOURCE_PROPERTIES


def _verify_request(repair: bool) -> NodeRequest:
    return NodeRequest(RID, RID, "verify", "lab2", {"repair": repair}, step="Verify")


def test_the_engine_verify_answer_in_the_console_words() -> None:
    found = {"chunks_checked": 1024, "chunks_differing": 3, "differing": [2, 7, 9]}
    lines = mirror_node.answer_lines(_verify_request(False), found, "lab1")
    assert lines == [
        "Verified datarep-data on lab2: 1024 chunks checked, 3 differing (chunks 2, 7, 9).",
        "lab2 is Out of Sync: resume it to copy those chunks again.",
    ]
    repaired = {**found, "repaired": True, "still_differing": []}
    assert mirror_node.answer_lines(_verify_request(True), repaired, "lab1")[-1] == (
        "Repaired lab2: 3 chunks copied again from the source, and read back equal."
    )
    with pytest.raises(OperationError, match="Not repaired: 1 of them still differ"):
        mirror_node.answer_lines(_verify_request(True), {**repaired, "still_differing": [7]}, "")
    clean = {"chunks_checked": 1024, "chunks_differing": 0}
    assert mirror_node.answer_lines(_verify_request(True), clean, "lab1") == [
        "Verified datarep-data on lab2: 1024 chunks checked, 0 differing."
    ]


def _dk() -> cib.Member:
    [h] = cib.hierarchies(cib_of("mirror_in_sync"))
    return h.members[0]


def test_a_running_copy_older_than_the_last_source_waits_for_it() -> None:
    gens = {"lab1": {f"lkdr-{RID}-gen": "3"}, "lab2": {f"lkdr-{RID}-gen": "2"}}
    shown = status_dk.mirror(_dk(), (), gens, ("lab2",))
    assert shown is not None and shown.source == "lab1"
    [t] = shown.targets
    assert (t.server, t.state) == ("lab2", MirrorState.WAIT_FOR_PREVIOUS_SOURCE)
    assert "the previous source lab1 is not in service" in t.reason
    assert status_dk.mirror(_dk(), (), gens, ("lab1", "lab2")) is None  # lab1 comes up
    same = {"lab1": gens["lab1"], "lab2": gens["lab1"]}
    assert status_dk.mirror(_dk(), (), same, ("lab2",)) is None  # in sync: promoted soon


def test_a_target_with_no_copy_running_says_so_not_that_it_lost_the_source() -> None:
    def lab2(running_on: tuple[str, ...]) -> MirrorTarget:
        shown = status_dk.mirror(_dk(), ("lab1",), {}, running_on)
        assert shown is not None
        [t] = shown.targets
        assert (t.server, t.state) == ("lab2", MirrorState.OUT_OF_SYNC)
        return t

    assert lab2(("lab1",)).reason == (
        "no copy runs on lab2: the server is down or its copy is stopped"
    )
    assert lab2(("lab1", "lab2")).reason == "not connected to the source"


def test_force_online_forces_each_mirror_of_the_hierarchy_on_that_server() -> None:
    current = cib_of("mirror_in_sync")
    step = MakeSource(H, "lab2", ((RID, "lab1"),), old_source_alive=False, full_resync=True)
    assert mirror_ops.forcings(current, [step]) == [mirror_ops.Forcing(RID, RID, "lab2")]
    change = operations.build(current, [step], RUNNING)
    assert "lab2's copy forced online" in change.lines[0] and _unchanged(change)
    with pytest.raises(cib.Refused, match="lab3 holds no copy of datarep-data"):
        mirror_ops.forcings(current, [dataclasses.replace(step, server="lab3")])
    assert mirror_ops.forcings(current, [dataclasses.replace(step, full_resync=False)]) == []


def test_a_plan_of_mirror_requests_says_what_they_did() -> None:
    speed = SetSpeedLimit(DK, RID, 3000)
    assert mirror_ops.done_message([speed]) == (
        "The resync speed limit of datarep-data is 3000 KB/s; it applies to every resync."
    )
    assert mirror_ops.done_message([speed, MakeSource(H, "lab2", ((RID, "lab1"),))]) == ""


def test_an_offline_node_generation_comes_from_the_cib_nodes() -> None:
    """crm_mon shows no attribute of an offline node: the previous source's generation
    (which makes the others wait for it) is read from the CIB's ``<nodes>``."""
    from tests.core.backends.pacemaker_fixtures import crm_mon_of

    crm_mon = crm_mon_of("mirror_in_sync")
    shown = crm_mon.find("node_attributes")
    assert shown is not None
    for node in list(shown):
        if node.get("name") == "lab1":
            shown.remove(node)
    found = status_dk.node_attributes(crm_mon, cib_of("mirror_in_sync"))
    assert found["lab1"] == {f"lkdr-{RID}-gen": "2"}  # from <nodes>
    assert found["lab2"][f"lkdr-{RID}-state"] == "TARGET"  # crm_mon's, too
    assert "lab1" not in status_dk.node_attributes(crm_mon)
