"""Extend Resource Hierarchy in core: defaults, every check, plan, transactional execute."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.backends.lab import LabBackend
from core.checks import Problem
from core.errors import CheckFailed, ConflictError, OperationError, PermissionDenied
from core.model import MirrorState, ResourceState, Role, ServerState
from core.operations import extend
from core.rules import extend as extend_rules
from core.rules.extend import DataKeeperExtend, ExtendRequest
from core.session import Session
from tests.core.labtools import (
    add_hierarchy,
    digest,
    fill_source,
    seed,
    set_server,
    settled_digest,
    wait_for_mirror,
)
from tests.helpers import (
    db_digest,
    db_tables,
    local_administrator,
    mounted_image,
    read_only_dir,
    refusal_recorded,
)


@pytest.fixture
def lab() -> Iterator[LabBackend]:
    backend = LabBackend()
    yield backend
    backend.close()


def _defaults(lab: LabBackend, **kw: str) -> extend.ExtendDefaults:
    return extend.defaults(lab, **kw)  # type: ignore[arg-type]


def _request(
    lab: LabBackend, dk: dict[str, object] | None = None, **changes: object
) -> ExtendRequest:
    d = (
        _defaults(lab, target_server=str(changes["target_server"]))
        if "target_server" in changes and changes["target_server"] in ("lab2", "lab3")
        else _defaults(lab)
    )
    request = dataclasses.replace(d.request, **changes)  # type: ignore[arg-type]
    if dk:
        entry = dataclasses.replace(request.datakeeper[0], **dk)  # type: ignore[arg-type]
        request = dataclasses.replace(request, datakeeper=(entry,))
    return request


def _extend(lab: LabBackend, **changes: object) -> extend.ExtendResult:
    return extend.extend(lab, _request(lab, **changes), local_administrator())


# -- defaults ---------------------------------------------------------------------------
def test_defaults_for_the_documented_first_extend(lab: LabBackend) -> None:
    d = _defaults(lab)
    assert d.request == ExtendRequest(
        template_server="lab1",
        tag_to_extend="/data",
        target_server="lab2",
        switchback_type="intelligent",
        target_priority=10,
        template_priority=1,
        datakeeper=(
            DataKeeperExtend(
                resource_id=d.pages[0].resource_id,
                dk_tag="datarep-data",
                bitmap_file="/opt/LifeKeeper/bitmap_datarep-data",
                mount_point="/data",
                root_tag="/data",
            ),
        ),
    )
    assert d.initial
    assert d.shown == extend_rules.PRE_EXTEND_FIELDS
    assert d.pages[0].shown == ("mount_point", "root_tag", "dk_tag", "bitmap_file")
    assert d.choices["template_server"] == ("lab1", "lab2", "lab3")
    assert d.choices["tag_to_extend"] == ("/data", "datarep-data")
    assert d.choices["target_server"] == ("lab2", "lab3")
    assert [(b.template_tag, b.target_tag, b.read_only) for b in d.info] == [
        ("/data", "/data", False),
        ("datarep-data", "datarep-data", False),
    ]
    after_create = _defaults(lab, template_server="lab1", tag="/data")
    assert "template_server" in after_create.shown
    hidden = extend.defaults(lab, tag="/data", from_create=True)
    assert "template_server" not in hidden.shown and "tag_to_extend" not in hidden.shown


def test_second_extend_hides_template_priority_and_defaults_to_20(lab: LabBackend) -> None:
    _extend(lab)
    d = _defaults(lab)
    assert d.request.target_server == "lab3"
    assert d.request.target_priority == 20
    assert d.request.template_priority is None
    assert "template_priority" not in d.shown
    assert not d.initial


def test_no_filesystem_hides_mount_point_and_root_tag(lab: LabBackend) -> None:
    add_hierarchy(lab, "lab1", "datarep-raw")
    d = _defaults(lab, tag="datarep-raw")
    assert d.pages[0].shown == ("dk_tag", "bitmap_file")
    assert d.request.datakeeper[0].mount_point is None
    assert [(b.template_tag, b.read_only) for b in d.info] == [("datarep-raw", False)]


def test_target_priority_default_rule() -> None:
    from core.model import Equivalency, Hierarchy, SwitchbackType

    def h(*prios: int) -> Hierarchy:
        eqs = tuple(Equivalency(f"s{i}", p) for i, p in enumerate(prios))
        return Hierarchy(1, SwitchbackType.INTELLIGENT, 1, 1, (), (), eqs)

    assert extend_rules.default_target_priority(h(1)) == 10
    assert extend_rules.default_target_priority(h(1, 10)) == 20
    assert extend_rules.default_target_priority(h(1, 15)) == 20
    assert extend_rules.default_target_priority(h(1, 995)) == 2
    assert extend_rules.default_target_priority(h(1, 2, 999)) == 3


# -- the documented walk --------------------------------------------------------------
def test_extend_copies_the_real_bytes_and_becomes_target(lab: LabBackend) -> None:
    fill_source(lab)
    before = lab.snapshot()
    result = _extend(lab)
    h = lab.store.hierarchy(result.hierarchy_id)
    assert h is not None
    assert h.priority_of("lab1") == 1 and h.priority_of("lab2") == 10
    assert h.version == seed_version(before) + 1
    assert [r.state for r in h.instances_on("lab2")] == [ResourceState.OSU, ResourceState.OSU]
    assert h.mirrors[0].target("lab2") is not None
    wait_for_mirror(lab, h.id, "lab2")
    source = lab.layout.server_path("lab1", "/disks/datarep-data.img")
    target = lab.layout.server_path("lab2", "/disks/datarep-data.img")
    assert digest(target) == digest(source)
    assert lab.layout.server_path("lab2", "/opt/LifeKeeper/bitmap_datarep-data").is_file()
    assert lab.layout.server_path("lab2", "/data").is_dir()
    lines = [row.text for row in lab.store.log_lines_after(0)]
    assert any("[1/5] Create DataKeeper resource datarep-data on lab2" in t for t in lines)
    assert any("lab2 is Target" in t for t in lines)
    assert lab.store.integrity_check() == "ok"


def seed_version(cluster: object) -> int:
    from core.model import Cluster

    assert isinstance(cluster, Cluster)
    return cluster.hierarchies[0].version


def test_extend_to_a_second_and_third_server(lab: LabBackend) -> None:
    _extend(lab)
    _extend(lab, target_server="lab3", target_priority=20, template_priority=None)
    h = seed(lab)
    assert dict((e.server, e.priority) for e in h.equivalencies) == {
        "lab1": 1,
        "lab2": 10,
        "lab3": 20,
    }
    assert [t.server for t in h.mirrors[0].targets] == ["lab2", "lab3"]
    wait_for_mirror(lab, h.id, "lab2")
    wait_for_mirror(lab, h.id, "lab3")


def test_plan_lists_the_steps_a_user_sees(lab: LabBackend) -> None:
    p = extend.plan(lab, _request(lab))
    assert p.titles == [
        "Create DataKeeper resource datarep-data on lab2 (volume /disks/datarep-data.img, 64 MiB)",
        "Configure mirror datarep-data: lab1 → lab2 with bitmap "
        "/opt/LifeKeeper/bitmap_datarep-data",
        "Create filesystem resource /data on lab2 (mount point /data)",
        "Set priorities of /data: lab1=1, lab2=10",
        "Start resync of datarep-data from lab1 to lab2",
    ]


def test_no_bitmap_is_accepted_and_means_full_resyncs(lab: LabBackend) -> None:
    fill_source(lab)
    result = _extend(lab, dk={"bitmap_file": None})
    h = lab.store.hierarchy(result.hierarchy_id)
    assert h is not None
    assert h.instance(h.mirrors[0].resource_id, "lab2").bitmap_file is None  # type: ignore[union-attr]
    wait_for_mirror(lab, h.id, "lab2")
    assert digest(lab.layout.server_path("lab2", "/disks/datarep-data.img")) == digest(
        lab.layout.server_path("lab1", "/disks/datarep-data.img")
    )
    assert not lab.layout.server_path("lab2", "/opt/LifeKeeper/bitmap_datarep-data").exists()


def test_only_an_administrator_may_extend(lab: LabBackend) -> None:
    before = db_tables(lab.store.home)
    for role in (Role.GUEST, Role.OPERATOR):
        p = extend.plan(lab, _request(lab))
        with pytest.raises(PermissionDenied, match="needs the Administrator role"):
            extend.execute(lab, p, Session("op", role))
    lab.close()
    refused = refusal_recorded(before, lab.store.home)
    assert len(refused) == 2 and "op is signed in as Guest" in refused[0]


def test_two_consoles_extending_at_once_one_wins(lab: LabBackend) -> None:
    other = LabBackend()
    stale = extend.plan(other, _request(other, target_server="lab3"))
    _extend(lab)  # the other console's snapshot is now stale
    with pytest.raises(ConflictError, match="changed by someone else"):
        extend.execute(other, stale, local_administrator())
    other.close()
    h = seed(lab)
    assert h.servers == ("lab1", "lab2")
    assert not lab.layout.server_path("lab3", "/disks/datarep-data.img").exists()


# -- bad input: every one a Problem naming its field, nothing changed -------------------
BAD = [
    ({"template_server": "lab9"}, "template_server", "unknown_server"),
    ({"template_server": ""}, "template_server", "required"),
    ({"tag_to_extend": "nope"}, "tag_to_extend", "unknown_tag"),
    ({"tag_to_extend": ""}, "tag_to_extend", "required"),
    ({"target_server": "lab1"}, "target_server", "same_as_template"),
    ({"target_server": "lab7"}, "target_server", "unknown_server"),
    ({"switchback_type": "automatic"}, "switchback_type", "automatic_with_datakeeper"),
    ({"switchback_type": "sometimes"}, "switchback_type", "unknown_switchback"),
    ({"target_priority": 0}, "target_priority", "priority_out_of_range"),
    ({"target_priority": 1000}, "target_priority", "priority_out_of_range"),
    ({"target_priority": -5}, "target_priority", "priority_out_of_range"),
    ({"target_priority": "abc"}, "target_priority", "priority_not_integer"),
    ({"target_priority": ""}, "target_priority", "priority_empty"),
    ({"target_priority": "2.5"}, "target_priority", "priority_not_integer"),
    ({"target_priority": 1}, "target_priority", "same_as_template_priority"),
    ({"template_priority": 0}, "template_priority", "priority_out_of_range"),
    ({"template_priority": "x"}, "template_priority", "priority_not_integer"),
    ({"template_priority": 10}, "target_priority", "same_as_template_priority"),
    ({"dk": {"dk_tag": ""}}, "dk_tag", "tag_empty"),
    ({"dk": {"dk_tag": "d" * 257}}, "dk_tag", "tag_too_long"),
    ({"dk": {"dk_tag": "bad tag"}}, "dk_tag", "tag_bad_characters"),
    ({"dk": {"dk_tag": "it's"}}, "dk_tag", "tag_bad_characters"),
    ({"dk": {"root_tag": ""}}, "root_tag", "tag_empty"),
    ({"dk": {"root_tag": "a\tb"}}, "root_tag", "tag_bad_characters"),
    ({"dk": {"root_tag": "datarep-data"}}, "dk_tag", "tag_repeated"),
    ({"dk": {"mount_point": "data"}}, "mount_point", "bad_path"),
    ({"dk": {"mount_point": "/"}}, "mount_point", "root_mount_point"),
    ({"dk": {"mount_point": ""}}, "mount_point", "required"),
    ({"dk": {"mount_point": "/x/../etc"}}, "mount_point", "bad_path"),
    ({"dk": {"bitmap_file": "relative/bitmap"}}, "bitmap_file", "bad_path"),
    ({"dk": {"bitmap_file": ""}}, "bitmap_file", "required"),
    ({"dk": {"bitmap_file": "/opt/LifeKeeper"}}, "bitmap_file", "bitmap_is_directory"),
    ({"dk": {"bitmap_file": "/opt/"}}, "bitmap_file", "bitmap_is_directory"),
]


def _apply(lab: LabBackend, changes: dict[str, object]) -> ExtendRequest:
    changes = dict(changes)
    dk = changes.pop("dk", None)
    return _request(lab, dk=dk, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "field", "code"), BAD)
def test_bad_input_is_a_problem_of_its_field(
    lab: LabBackend, changes: dict[str, object], field: str, code: str
) -> None:
    before = settled_digest(lab)
    request = _apply(lab, changes)
    problems = extend.check(lab, request)
    assert (field, code) in [(p.field, p.code) for p in problems], problems
    assert all(p.message for p in problems)
    with pytest.raises(CheckFailed):
        extend.plan(lab, request)
    lab.close()
    assert db_digest(lab.store.home) == before


def test_checks_that_need_another_situation(lab: LabBackend) -> None:
    add_hierarchy(lab, "lab2", "datarep-web", fs_tag="/web", mount_point="/web")
    cluster = lab.snapshot()

    def codes(**changes: object) -> list[tuple[str, str]]:
        return [
            (p.field, p.code)
            for p in extend.check(lab, cluster=cluster, request=_apply(lab, changes))
        ]

    assert ("dk_tag", "tag_in_use_on_target") in codes(dk={"dk_tag": "datarep-web"})
    assert ("root_tag", "tag_in_use_on_target") in codes(dk={"root_tag": "/web"})
    assert ("mount_point", "mount_point_protected") in codes(dk={"mount_point": "/web/"})
    set_server(lab, "lab3", ServerState.DEAD)
    assert ("target_server", "target_not_alive") in [
        (p.field, p.code)
        for p in extend.check(
            lab, cluster=lab.snapshot(), request=_apply(lab, {"target_server": "lab3"})
        )
    ]
    set_server(lab, "lab3", ServerState.ALIVE)

    _extend(lab)
    cluster = lab.snapshot()
    second = _request(lab, target_server="lab3", template_priority=None)

    def codes2(**changes: object) -> list[tuple[str, str]]:
        r = dataclasses.replace(second, **changes)  # type: ignore[arg-type]
        return [(p.field, p.code) for p in extend.check(lab, cluster=cluster, request=r)]

    assert ("target_server", "already_extended") in codes2(target_server="lab2")
    assert ("target_priority", "priority_in_use") in codes2(target_priority=10)
    assert ("target_priority", "priority_in_use") in codes2(target_priority=1)
    assert ("template_priority", "not_initial_extend") in codes2(template_priority=5)
    assert ("tag_to_extend", "not_in_service") in codes2(template_server="lab2")
    problem = next(
        p
        for p in extend.check(
            lab, cluster=cluster, request=dataclasses.replace(second, template_server="lab2")
        )
        if p.code == "not_in_service"
    )
    assert "'/data' is not in service on lab2" in problem.message
    assert "in service on lab1" in problem.message


def test_bitmap_in_a_read_only_folder(lab: LabBackend) -> None:
    folder = lab.layout.server_path("lab2", "/ro")
    with read_only_dir(folder):
        problems = extend.check(
            lab,
            cluster=lab.snapshot(),
            request=_apply(lab, {"dk": {"bitmap_file": "/ro/bitmap_x"}}),
        )
    assert [(p.field, p.code) for p in problems] == [("bitmap_file", "bitmap_folder_read_only")]
    assert "read-only" in problems[0].message


def test_bitmap_on_a_real_btrfs_is_refused_and_the_default_moves(lab: LabBackend) -> None:
    opt = lab.layout.server_path("lab2", "/opt/LifeKeeper")
    with mounted_image(opt, "btrfs", 128):
        problems = extend.check(
            lab,
            cluster=lab.snapshot(),
            request=_apply(lab, {"dk": {"bitmap_file": "/opt/LifeKeeper/bitmap_datarep-data"}}),
        )
        assert [(p.field, p.code) for p in problems] == [("bitmap_file", "bitmap_on_btrfs")]
        assert "btrfs" in problems[0].message and "invalid argument" in problems[0].message
        d = _defaults(lab)
        assert d.request.datakeeper[0].bitmap_file == "/var/lib/LifeKeeper/bitmap_datarep-data"
        assert "btrfs" in d.pages[0].bitmap_note
        assert "/var/lib/LifeKeeper/bitmap_datarep-data" in d.pages[0].bitmap_note
        assert extend.check(lab, d.request) == []


def test_a_failing_step_rolls_everything_back(lab: LabBackend) -> None:
    """The bitmap folder turns read-only after the checks: the configure step fails."""
    before_rows = lab.snapshot()
    before_db = settled_digest(lab)
    extend_plan = extend.plan(lab, _request(lab))
    steps: list[tuple[int, str]] = []
    with (
        read_only_dir(lab.layout.server_path("lab2", "/opt/LifeKeeper")),
        pytest.raises(OperationError) as err,
    ):
        extend.execute(
            lab,
            extend_plan,
            local_administrator(),
            on_step=lambda i, n, title, status: steps.append((i, status)),
        )
    assert err.value.step is not None and err.value.step.startswith("Configure mirror")
    assert "Read-only file system" in str(err.value) or "Permission denied" in str(err.value)
    assert steps[-1] == (1, "failed")
    after = lab.snapshot()
    assert after.hierarchies == before_rows.hierarchies
    assert not lab.layout.server_path("lab2", "/disks/datarep-data.img").exists()
    assert not (lab.store.home / "pending").exists() or not list(
        (lab.store.home / "pending").iterdir()
    )
    lines = [r.text for r in lab.store.log_lines_after(0)]
    assert any(t.startswith("Step failed: Configure mirror") for t in lines)
    assert any("Rolled back" in t for t in lines)
    assert lab.store.integrity_check() == "ok"
    assert db_digest(lab.store.home) != before_db  # only the log lines were added


@settings(
    max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(
    field=st.sampled_from(extend_rules.PRE_EXTEND_FIELDS + extend_rules.EXTEND_FIELDS),
    value=st.one_of(st.text(max_size=300), st.integers(), st.none(), st.floats()),
)
def test_random_values_only_ever_give_problems(lab: LabBackend, field: str, value: object) -> None:
    if field in extend_rules.EXTEND_FIELDS:
        request = _apply(lab, {"dk": {field: value}})
    else:
        request = _apply(lab, {field: value})
    for p in extend.check(lab, request):
        assert isinstance(p, Problem) and p.message
    for name in extend_rules.PRE_EXTEND_FIELDS + extend_rules.EXTEND_FIELDS:
        extend_rules.check_field(
            lab.snapshot(), extend.facts_for(lab, lab.snapshot(), request), request, name
        )


def test_check_field_names_only_that_field(lab: LabBackend) -> None:
    request = _apply(lab, {"target_priority": "abc", "dk": {"dk_tag": "a b"}})
    assert [
        p.field
        for p in extend_rules.check_field(
            lab.snapshot(),
            extend.facts_for(lab, lab.snapshot(), request),
            request,
            "target_priority",
        )
    ] == ["target_priority"]
    dk_id = request.datakeeper[0].resource_id
    assert [
        p.field
        for p in extend_rules.check_field(
            lab.snapshot(), extend.facts_for(lab, lab.snapshot(), request), request, "dk_tag", dk_id
        )
    ] == ["dk_tag"]
    assert (
        extend_rules.check_field(
            lab.snapshot(), extend.facts_for(lab, lab.snapshot(), request), request, "target_server"
        )
        == []
    )


def test_pre_extend_page_and_extend_page_are_separate(lab: LabBackend) -> None:
    request = _apply(lab, {"dk": {"dk_tag": "a b"}})
    assert (
        extend_rules.check_page(
            lab.snapshot(),
            extend.facts_for(lab, lab.snapshot(), request),
            request,
            extend_rules.PRE_EXTEND_PAGE,
        )
        == []
    )
    page = extend_rules.check_page(
        lab.snapshot(),
        extend.facts_for(lab, lab.snapshot(), request),
        request,
        extend_rules.EXTEND_PAGE,
        request.datakeeper[0].resource_id,
    )
    assert [(p.field, p.resource_id) for p in page] == [
        ("dk_tag", request.datakeeper[0].resource_id)
    ]


def test_disk_space_on_the_target_is_checked(lab: LabBackend, tmp_path: Path) -> None:
    disks = lab.layout.server_path("lab2", "/disks")
    with mounted_image(disks, "ext4", 16):
        problems = extend.check(lab, _request(lab))
    assert [(p.field, p.code) for p in problems] == [("target_server", "no_disk_space")]
    assert "64 MiB" in problems[0].message


def test_mirror_target_row_says_resyncing_right_after_extend(lab: LabBackend) -> None:
    result = _extend(lab)
    h = lab.store.hierarchy(result.hierarchy_id)
    assert h is not None
    t = h.mirrors[0].target("lab2")
    assert t is not None and t.state in (MirrorState.RESYNCING, MirrorState.TARGET)
