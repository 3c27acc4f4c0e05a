"""Create Dependency / Delete Dependency in core and lkctl (LifeKeeper's dep_create and
dep_remove)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backends.lab import LabBackend
from core.errors import CheckFailed, PermissionDenied
from core.model import Role, SwitchbackType
from core.operations import create_kinds, dependency, extend, service
from core.rules.dependency import DependencyRequest
from core.rules.kinds import APP, IP, ResourceRequest
from core.session import Session
from tests.core.labtools import settled_digest
from tests.helpers import db_tables, local_administrator, refusal_recorded, run_lkctl

ADMIN = local_administrator()


@pytest.fixture
def lab(hermetic_env: Path) -> Iterator[LabBackend]:
    backend = LabBackend()
    yield backend
    backend.close()


def _app(lab: LabBackend, tag: str, server: str = "lab1", switchback: str = "intelligent") -> None:
    create_kinds.create(
        lab,
        ResourceRequest(APP, server, tag, switchback, start=f"touch {tag}.run",
                        stop=f"rm -f {tag}.run"),
        ADMIN,
    )  # fmt: skip


def _ip(lab: LabBackend, tag: str = "vip", switchback: str = "intelligent") -> None:
    create_kinds.create(
        lab,
        ResourceRequest(IP, "lab1", tag, switchback, address="10.214.0.150/24", interface="eth0"),
        ADMIN,
    )


def _tree(lab: LabBackend, root: str) -> list[tuple[str, int]]:
    cluster = lab.snapshot()
    r = cluster.find_tag(root)
    assert r is not None
    h = cluster.hierarchy(r.hierarchy_id)
    assert h is not None and h.root_tag == root
    return [(h.tag_of(rid), depth) for rid, depth in h.walk()]


def test_app_on_ip_on_the_datakeeper_hierarchy_is_one_tree(lab: LabBackend) -> None:
    _app(lab, "web")
    _ip(lab)
    dependency.create(lab, DependencyRequest("lab1", "web", "vip"), ADMIN)
    result = dependency.create(lab, DependencyRequest("lab1", "vip", "/data"), ADMIN)
    assert result.message.startswith("vip now depends on /data on lab1")
    assert _tree(lab, "web") == [("web", 0), ("vip", 1), ("/data", 2), ("datarep-data", 3)]
    assert len(lab.snapshot().hierarchies) == 1
    lines = service.out_of_service(lab, "web", ADMIN)
    assert "web out of service on lab1 (web, then vip, then /data, then datarep-data)" in lines
    lines = service.in_service(lab, "web", "lab1", ADMIN)
    assert "web in service on lab1 (datarep-data, then /data, then vip, then web)" in lines
    entry = lab.history()[-3]
    assert entry.operation == "create dependency vip → /data" and entry.ok
    assert entry.command == "lkctl dependency create vip /data --server lab1"


def test_a_dependency_is_made_on_every_server_and_extends_with_the_hierarchy(
    lab: LabBackend,
) -> None:
    _app(lab, "web")
    _app(lab, "db")
    for tag in ("web", "db"):
        extend.extend(lab, extend.defaults(lab, tag=tag).request, ADMIN)
    dependency.create(lab, DependencyRequest("lab1", "web", "db"), ADMIN)
    h = lab.snapshot().hierarchies[-1]
    assert h.root_tag == "web" and h.servers == ("lab1", "lab2")
    for server in ("lab1", "lab2"):
        assert [r.tag for r in h.instances_on(server)] == ["web", "db"]
    service.switchover(lab, "web", "lab2", ADMIN)
    lab2 = lab.layout.server_root("lab2")
    assert (lab2 / "web.run").exists() and (lab2 / "db.run").exists()


def test_delete_dependency_gives_the_child_its_own_hierarchy_with_the_same_priorities(
    lab: LabBackend,
) -> None:
    _app(lab, "web")
    dependency.create(lab, DependencyRequest("lab1", "web", "/data"), ADMIN)
    extend.extend(lab, extend.defaults(lab, tag="web").request, ADMIN)
    result = dependency.delete(lab, DependencyRequest("lab1", "web", "/data"), ADMIN)
    assert "/data is the root of a hierarchy of its own on lab1, lab2" in result.message
    assert _tree(lab, "/data") == [("/data", 0), ("datarep-data", 1)]
    assert _tree(lab, "web") == [("web", 0)]
    cluster = lab.snapshot()
    by_root = {h.root_tag: h for h in cluster.hierarchies}
    assert by_root["/data"].equivalencies == by_root["web"].equivalencies
    assert by_root["/data"].mirror(by_root["/data"].resource_ids()[1]) is not None
    assert by_root["/data"].in_service_server == "lab1"


def _apart(lab: LabBackend) -> None:
    """app1 and app2 on lab1 and lab2; app2 in service on lab2."""
    _app(lab, "app1")
    _app(lab, "app2")
    for tag in ("app1", "app2"):
        extend.extend(lab, extend.defaults(lab, tag=tag).request, ADMIN)
    service.switchover(lab, "app2", "lab2", ADMIN)


def _app1_out(lab: LabBackend) -> None:
    _apart(lab)
    service.out_of_service(lab, "app1", ADMIN)


def _app2_out(lab: LabBackend) -> None:
    _app(lab, "app1")
    _app(lab, "app2")
    service.out_of_service(lab, "app2", ADMIN)


def _automatic_ip(lab: LabBackend) -> None:
    _ip(lab, switchback="automatic")


def _ip_on_data(lab: LabBackend) -> None:
    _ip(lab)
    _app(lab, "web")
    dependency.create(lab, DependencyRequest("lab1", "vip", "/data"), ADMIN)


def _only_lab1(lab: LabBackend) -> None:
    _app(lab, "web")
    _app(lab, "db")
    extend.extend(lab, extend.defaults(lab, tag="db").request, ADMIN)


def _nothing(lab: LabBackend) -> None:
    _app(lab, "web")


def _web_on_two(lab: LabBackend) -> None:
    _app(lab, "web")
    extend.extend(lab, extend.defaults(lab, tag="web").request, ADMIN)


CREATE_BAD = [
    (_nothing, ("lab7", "web", "/data"), "server", "unknown_server", "lab7"),
    (_nothing, ("lab1", "", "/data"), "parent", "tag_empty", "Parent Resource Tag"),
    (_nothing, ("lab1", "nope", "/data"), "parent", "unknown_tag", "no such resource on lab1"),
    (_nothing, ("lab1", "web", "nope"), "child", "unknown_tag", "Child Resource Tag 'nope'"),
    (
        _web_on_two,
        ("lab2", "web", "/data"),
        "child",
        "unknown_tag",
        "'/data': there is no such resource on lab2",
    ),
    (_nothing, ("lab1", "web", "web"), "child", "cycle", "cannot depend on itself"),
    (_ip_on_data, ("lab1", "/data", "vip"), "child", "cycle", "vip → /data"),
    (_ip_on_data, ("lab1", "datarep-data", "vip"), "child", "cycle", "vip → /data → datarep"),
    (_ip_on_data, ("lab1", "vip", "/data"), "child", "already_dependent", "already depends"),
    (
        _nothing,
        ("lab1", "web", "datarep-data"),
        "child",
        "child_has_parent",
        "already has a parent, /data",
    ),
    (_only_lab1, ("lab1", "web", "db"), "child", "servers_differ", "extend or unextend"),
    (
        _apart,
        ("lab1", "app1", "app2"),
        "child",
        "in_service_apart",
        "app1 is in service on lab1 but app2 on lab2",
    ),
    (
        _app1_out,
        ("lab1", "app1", "app2"),
        "child",
        "child_in_service_elsewhere",
        "app2 is in service on lab2, not on lab1",
    ),
    (
        _app2_out,
        ("lab1", "app1", "app2"),
        "child",
        "child_not_in_service",
        "bring app2 in service on lab1 first",
    ),
    (
        _automatic_ip,
        ("lab1", "vip", "/data"),
        "parent",
        "automatic_with_datakeeper",
        "DataKeeper supports only intelligent",
    ),
]


@pytest.mark.parametrize(("setup", "request_", "field", "code", "message"), CREATE_BAD)
def test_a_refused_dependency_says_why_in_its_field_and_changes_nothing(
    lab: LabBackend,
    setup: object,
    request_: tuple[str, str, str],
    field: str,
    code: str,
    message: str,
) -> None:
    setup(lab)  # type: ignore[operator]
    before = settled_digest(lab)
    with pytest.raises(CheckFailed) as failed:
        dependency.create(lab, DependencyRequest(*request_), ADMIN)
    assert [(p.field, p.code) for p in failed.value.problems] == [(field, code)]
    assert message in failed.value.problems[0].message
    assert settled_digest(lab) == before


def test_the_merged_hierarchy_takes_the_parent_s_switchback_and_priorities(
    lab: LabBackend,
) -> None:
    _app(lab, "web", switchback="automatic")
    _app(lab, "db")
    plan = dependency.create_plan(lab.snapshot(), DependencyRequest("lab1", "web", "db"))
    assert plan.titles == [
        "Create dependency web → db on lab1 (db and what it depends on join the hierarchy of web)"
    ]
    dependency.create(lab, DependencyRequest("lab1", "web", "db"), ADMIN)
    h = lab.snapshot().hierarchies[-1]
    assert h.switchback is SwitchbackType.AUTOMATIC and h.root_tag == "web"


def test_delete_of_a_dependency_that_does_not_exist_names_what_it_depends_on(
    lab: LabBackend,
) -> None:
    _app(lab, "web")
    before = settled_digest(lab)
    with pytest.raises(CheckFailed) as failed:
        dependency.delete(lab, DependencyRequest("lab1", "/data", "web"), ADMIN)
    assert failed.value.problems[0].message == (
        "/data does not depend on web on lab1 (it depends on datarep-data)."
    )
    assert failed.value.problems[0].field == "child"
    assert settled_digest(lab) == before


def test_an_operator_may_not_create_a_dependency_and_the_refusal_is_recorded(
    lab: LabBackend,
) -> None:
    _app(lab, "web")
    before = db_tables(lab.home)
    with pytest.raises(PermissionDenied) as refused:
        dependency.create(
            lab, DependencyRequest("lab1", "web", "/data"), Session("olga", Role.OPERATOR)
        )
    assert "Create Dependency needs the Administrator role" in str(refused.value)
    results = refusal_recorded(before, lab.home)
    assert results == [f"refused: {refused.value}"]


def test_lkctl_dependency_create_and_delete_with_json(hermetic_env: Path) -> None:
    assert run_lkctl(["create", "--kind", "app", "--tag", "web", "--start", "true",
                      "--accept-defaults"]).returncode == 0  # fmt: skip
    done = run_lkctl(["dependency", "create", "web", "/data", "--json"])
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["request"] == {"server": "lab1", "parent": "web", "child": "/data"}
    [h] = data["hierarchies"]
    assert [(r["tag"], r["depth"]) for r in h["resources"]] == [
        ("web", 0), ("/data", 1), ("datarep-data", 2)
    ]  # fmt: skip
    refused = run_lkctl(["dependency", "create", "/data", "web", "--json"])
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["problems"][0]["code"] == "cycle"
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("child: ")
    gone = run_lkctl(["dependency", "delete", "web", "/data", "--json"])
    assert gone.returncode == 0, gone.stderr
    roots = {h["root"] for h in json.loads(gone.stdout)["hierarchies"]}
    assert roots == {"web", "/data"}
    help_text = run_lkctl(["dependency", "--help"]).stdout
    assert "dep_create" in help_text and "dep_remove" in help_text


def test_a_cluster_that_cannot_make_dependencies_says_so_and_changes_nothing(
    lab: LabBackend,
) -> None:
    from core import availability as av
    from core.backend import NotAvailable

    _app(lab, "web")
    cluster = lab.snapshot()
    web = cluster.find_tag("web")
    assert web is not None
    selection = av.Selection(
        server="lab1", hierarchy_id=web.hierarchy_id, resource_id=web.resource_id
    )
    able = av.Connection(capabilities=lab.capabilities)
    unable = av.Connection(capabilities=frozenset())  # a Pacemaker cluster, today
    assert av.create_dependency(cluster, selection, able).enabled
    for rule, what in ((av.create_dependency, "Create"), (av.delete_dependency, "Delete")):
        shown = rule(cluster, selection, unable)
        assert not shown.enabled
        assert shown.reason.startswith(f"{what} Dependency is not available on this cluster")
    before = db_tables(lab.home)
    lab.capabilities = frozenset(lab.capabilities - {"dependencies"})
    with pytest.raises(NotAvailable, match="Create Dependency is not available on a lab"):
        dependency.create(lab, DependencyRequest("lab1", "web", "/data"), ADMIN)
    with pytest.raises(NotAvailable, match="Delete Dependency is not available on a lab"):
        dependency.delete(lab, DependencyRequest("lab1", "/data", "datarep-data"), ADMIN)
    assert db_tables(lab.home) == before
