"""What-if: what a plan would do to every hierarchy, from the snapshot (and lkctl --dry-run)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backends.lab import LabBackend
from core.errors import CheckFailed
from core.model import MirrorState, MirrorTarget, Resource, ResourceKind, ResourceState, ServerState
from core.operations import hierarchy as hierarchy_ops
from core.operations import service, whatif
from core.operations.hierarchy import UnextendRequest
from core.rules import whatif as rules
from tests.core.labtools import add_hierarchy, set_server, settled_digest
from tests.helpers import local_administrator, run_lkctl

ADMIN = local_administrator()


def _extend_rows(lab: LabBackend, hid: int, server: str, priority: int, state: MirrorState) -> None:
    """``server`` has the hierarchy as a standby, its mirror target in ``state``."""
    h = lab.store.hierarchy(hid)
    assert h is not None
    with lab.store.transaction() as txn:
        for r in h.instances_on(h.home_server):
            txn.add_instance(
                Resource(r.resource_id, hid, r.kind, server, r.tag, ResourceState.OSU,
                         mount_point=r.mount_point, fs_type=r.fs_type, volume=r.volume,
                         bitmap_file=r.bitmap_file)
            )  # fmt: skip
        txn.set_priority(hid, server, priority)
        for m in h.mirrors:
            txn.set_mirror_target(m.resource_id, MirrorTarget(server, state))


@pytest.fixture
def lab(hermetic_env: Path) -> Iterator[LabBackend]:
    """/data on lab1 (targets lab2 in sync, lab3 out of sync); web on lab3 (lab2 in sync)."""
    backend = LabBackend()
    data = backend.snapshot().hierarchies[0].id
    _extend_rows(backend, data, "lab2", 10, MirrorState.TARGET)
    _extend_rows(backend, data, "lab3", 20, MirrorState.OUT_OF_SYNC)
    web = add_hierarchy(backend, "lab3", "webrep", fs_tag="/web", mount_point="/web")
    _extend_rows(backend, web, "lab2", 10, MirrorState.TARGET)
    yield backend
    backend.close()


def test_switchover_says_what_stops_starts_and_changes_role(lab: LabBackend) -> None:
    plan = service.plan_switchover(lab.snapshot(), "/data", "lab2")
    assert whatif.what_if(lab, plan) == [
        "/data: stops on lab1 (/data, then datarep-data); starts on lab2 (datarep-data, "
        "then /data); mirror datarep-data: lab2 becomes the source, lab1 a target",
        "/web: nothing changes (in service on lab3)",
    ]
    text = whatif.dry_run(lab, plan)
    assert text[0] == "Plan: switchover /data to lab2"
    assert text[1] == "  1. /data out of service on lab1 (/data, then datarep-data)"
    assert text[4] == rules.HEADING


def test_the_what_if_is_what_then_happens(lab: LabBackend) -> None:
    plan = service.plan_switchover(lab.snapshot(), "/web", "lab2")
    predicted = whatif.what_if(lab, plan)
    assert predicted[1].startswith("/web: stops on lab3 (/web, then webrep); starts on lab2")
    lab.apply(plan, ADMIN)
    h = next(x for x in lab.snapshot().hierarchies if x.root_tag == "/web")
    assert h.in_service_server == "lab2"
    assert [r.state for r in h.instances_on("lab3")] == [ResourceState.OSU] * 2
    assert h.mirrors[0].source == "lab2"
    # Nothing is left to happen once it happened.
    again = service.plan_out_of_service(lab.snapshot(), "/web")
    assert whatif.what_if(lab, again)[1] == "/web: stops on lab2 (/web, then webrep)"


def test_stop_server_fails_over_to_the_best_target_in_sync(lab: LabBackend) -> None:
    plan = whatif.plan_stop_server(lab.snapshot(), "lab1")
    assert whatif.what_if(lab, plan) == [
        "/data: fails over from lab1 to lab2 (priority 10); fails on lab1 (/data, then "
        "datarep-data); starts on lab2 (datarep-data, then /data); mirror datarep-data: "
        "lab2 becomes the source, lab1 a target",
        "/web: nothing changes (in service on lab3)",
    ]
    # And the lab does exactly that.
    lab.stop_server("lab1", ADMIN)
    h = lab.snapshot().hierarchies[0]
    assert h.in_service_server == "lab2"


def test_stop_server_without_a_target_in_sync_stays_down(lab: LabBackend) -> None:
    set_server(lab, "lab2", ServerState.DEAD)
    plan = whatif.plan_stop_server(lab.snapshot(), "lab1")
    lines = whatif.what_if(lab, plan)
    assert lines[0] == (
        "/data: stays down: no alive server has every mirror as Target; its copies wait for "
        "lab1 to return; fails on lab1 (/data, then datarep-data); mirror datarep-data: lab3 "
        "waits for the previous source (may be stale)"
    )
    lab.stop_server("lab1", ADMIN)
    h = lab.snapshot().hierarchies[0]
    assert h.in_service_server is None
    assert h.mirrors[0].target("lab3").state is MirrorState.WAIT_FOR_PREVIOUS_SOURCE  # type: ignore[union-attr]


def test_unextend_and_delete(lab: LabBackend) -> None:
    cluster = lab.snapshot()
    unextend = hierarchy_ops.plan_unextend(cluster, hierarchy_ops.UnextendRequest("/data", "lab3"))
    assert whatif.what_if(lab, unextend)[0] == (
        "/data: removed from lab3 (/data, datarep-data; its volume is kept); mirror "
        "datarep-data: target lab3 removed"
    )
    delete = hierarchy_ops.plan_delete(cluster, hierarchy_ops.DeleteRequest("/web"))
    assert whatif.what_if(lab, delete) == [
        "/data: nothing changes (in service on lab1)",
        "/web: deleted from lab3, lab2 (every resource; no volume is deleted)",
    ]


def test_in_service_of_a_hierarchy_out_of_service(lab: LabBackend) -> None:
    lab.apply(service.plan_out_of_service(lab.snapshot(), "/data"), ADMIN)
    plan = service.plan_in_service(lab.snapshot(), "/data", "lab2")
    assert whatif.what_if(lab, plan)[0] == (
        "/data: starts on lab2 (datarep-data, then /data); mirror datarep-data: lab2 becomes "
        "the source, lab1 a target"
    )


# Bad input: every refusal names its field, and nothing changes.
BAD = [
    (lambda c: service.plan_switchover(c, "/nope", "lab2"), "tag"),
    (lambda c: service.plan_switchover(c, "/data", "lab9"), "to"),
    (lambda c: service.plan_switchover(c, "/data", "lab1"), "to"),
    (lambda c: service.plan_switchover(c, "/data", "lab3"), "to"),  # out of sync there
    (lambda c: service.plan_in_service(c, "/data", "lab1"), "server"),
    (lambda c: service.plan_out_of_service(c, "/nope"), "tag"),
    (lambda c: whatif.plan_stop_server(c, "lab9"), "server"),
    (lambda c: hierarchy_ops.plan_unextend(c, UnextendRequest("/data", "lab1")), "server"),
    (lambda c: hierarchy_ops.plan_delete(c, hierarchy_ops.DeleteRequest("")), "tag"),
]


@pytest.mark.parametrize(("make", "field"), BAD)
def test_bad_input_names_the_field_and_changes_nothing(lab: LabBackend, make, field) -> None:  # type: ignore[no-untyped-def]
    before = settled_digest(lab)
    with pytest.raises(CheckFailed) as caught:
        make(lab.snapshot())
    assert caught.value.problems[0].field == field
    assert settled_digest(lab) == before


def test_stop_server_of_a_server_already_down(lab: LabBackend) -> None:
    set_server(lab, "lab3", ServerState.DEAD)
    with pytest.raises(CheckFailed) as caught:
        whatif.plan_stop_server(lab.snapshot(), "lab3")
    assert caught.value.problems[0].message == "lab3 is already down."


# -- lkctl --dry-run ------------------------------------------------------------------------
DRY_RUNS = [
    (["switchover", "/data", "--to", "lab2"], "Plan: switchover /data to lab2"),
    (["inservice", "/data", "--on", "lab2"], "Plan: switchover /data to lab2"),
    (["outofservice", "/data"], "Plan: out of service /data on lab1"),
    (["unextend", "/data", "--server", "lab2"], "Plan: unextend /data from lab2"),
    (["delete", "/data"], "Plan: delete /data"),
    (["lab", "stop", "lab1"], "Plan: stop server lab1"),
]


@pytest.mark.parametrize(("words", "first"), DRY_RUNS)
def test_lkctl_dry_run_prints_the_what_if_and_changes_nothing(
    lab: LabBackend, hermetic_env: Path, words: list[str], first: str
) -> None:
    before = settled_digest(lab)
    done = run_lkctl([*words, "--dry-run", "--json"])
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True and data["dry_run"] is True
    assert data["text"][0] == first
    assert rules.HEADING in data["text"]
    assert len(data["what_if"]) == 2  # every hierarchy
    assert data["text"][-2:] == [f"  {line}" for line in data["what_if"]]
    text = run_lkctl([*words, "--dry-run"])
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == data["text"]
    assert settled_digest(lab) == before


def test_lkctl_dry_run_refusal_is_one_line_naming_the_field(lab: LabBackend) -> None:
    before = settled_digest(lab)
    done = run_lkctl(["switchover", "/data", "--to", "lab3", "--dry-run", "--json"])
    assert done.returncode == 2
    assert json.loads(done.stdout)["problems"][0]["field"] == "to"
    assert done.stderr.startswith("to: datarep-data on lab3 is Out of Sync")
    assert settled_digest(lab) == before


def test_a_backend_without_its_own_what_if_gets_core_s(lab: LabBackend) -> None:
    class Plain:
        capabilities = frozenset[str]()

        def snapshot(self):  # type: ignore[no-untyped-def]
            return lab.snapshot()

    plan = service.plan_switchover(lab.snapshot(), "/data", "lab2")
    assert whatif.what_if(Plain(), plan) == whatif.what_if(lab, plan)  # type: ignore[arg-type]
    assert ResourceKind.DATAKEEPER  # the lab's hierarchies are DataKeeper ones
