"""cib_tree.py: Create and Delete Dependency on CIB XML (a hierarchy is a group; the tree
is in each primitive's lk-parent), with no cluster."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from core.backends.pacemaker import cib, cib_tree
from core.backends.pacemaker.cib import HierarchyConfig, Refused
from core.model import ResourceKind, SwitchbackType
from tests.core.backends.pacemaker_fixtures import cib_of

APP = (("start", "touch /data/x"), ("stop", "rm -f /data/x"), ("monitor", "test -f /data/x"))


def _ip(work: ET.Element, tag: str, address: str, server: str = "lab1") -> str:
    return cib.new_hierarchy(
        work,
        tag=tag,
        kind=ResourceKind.IP,
        settings=(("address", address), ("interface", "eth0")),
        server=server,
        switchback=SwitchbackType.INTELLIGENT,
    )


def _app(work: ET.Element, tag: str = "app") -> str:
    return cib.new_hierarchy(
        work, tag=tag, kind=ResourceKind.APP, settings=APP, server="lab1",
        switchback=SwitchbackType.INTELLIGENT,
    )  # fmt: skip


def _h(work: ET.Element, top: str) -> HierarchyConfig:
    return next(h for h in cib.hierarchies(work) if h.top_id == top)


def _unique_ids(work: ET.Element) -> bool:
    configuration = work.find("configuration")
    assert configuration is not None
    ids = [e.get("id") for e in configuration.iter() if e.get("id")]
    return len(ids) == len(set(ids))


@pytest.fixture
def work() -> ET.Element:
    """The steady CIB with an app and two IP addresses, each a hierarchy of its own on
    lab1 (priority 1) and lab2 (priority 10)."""
    c = cib_of("steady")
    for top in (_app(c), _ip(c, "ip-a", "10.213.0.150/24"), _ip(c, "ip-b", "10.213.0.151/24")):
        cib.set_priority(c, top, "lab2", 10)
    return c


def test_a_group_made_with_crm_is_a_chain_the_root_last(work: ET.Element) -> None:
    group = work.find(".//group[@id='app-hierarchy']")
    assert group is not None
    for tag in ("ip-b", "ip-a"):  # as crm configure group would: in the order given
        primitive = work.find(f".//primitive[@id='{tag}']")
        assert primitive is not None
        cib.remove_hierarchy(work, f"{tag}-hierarchy")
        group.insert(0, primitive)
    h = _h(work, "app-hierarchy")
    assert h.member_ids == ("ip-a", "ip-b", "app")
    assert cib_tree.parents(h) == {"ip-a": "ip-b", "ip-b": "app", "app": None}
    assert cib_tree.subtree(h, "ip-b") == ["ip-a", "ip-b"]


def test_create_dependency_joins_the_childs_hierarchy_before_its_parent(
    work: ET.Element,
) -> None:
    before = len(cib.hierarchies(work))
    lines = cib_tree.join(work, "app-hierarchy", "app", "ip-a-hierarchy", "ip-a")
    assert lines == ["app: app depends on ip-a (ip-a joined the hierarchy)"]
    assert len(cib.hierarchies(work)) == before - 1
    h = _h(work, "app-hierarchy")
    assert h.member_ids == ("ip-a", "app")
    assert cib_tree.parents(h) == {"ip-a": "app", "app": None}
    assert h.priorities == (("lab1", 1), ("lab2", 10))
    assert work.find(".//group[@id='ip-a-hierarchy']") is None
    assert work.find(".//rsc_location[@rsc='ip-a-hierarchy']") is None  # its constraints too
    # A second child of the same parent: a tree, kept in lk-parent.
    cib_tree.join(work, "app-hierarchy", "app", "ip-b-hierarchy", "ip-b")
    h = _h(work, "app-hierarchy")
    assert h.member_ids == ("ip-a", "ip-b", "app")
    assert cib_tree.parents(h) == {"ip-a": "app", "ip-b": "app", "app": None}
    assert dict(h.members[0].meta)[cib_tree.PARENT_META] == "app"
    assert cib_tree.PARENT_META not in dict(h.members[1].meta)  # the next one: implicit
    assert _unique_ids(work)


def test_the_joined_hierarchy_is_on_the_servers_where_both_were(work: ET.Element) -> None:
    cib.remove_priority(work, "ip-a-hierarchy", "lab2")
    lines = cib_tree.join(work, "app-hierarchy", "app", "ip-a-hierarchy", "ip-a")
    assert "app: no longer on lab2 (ip-a is not defined there)" in lines
    assert _h(work, "app-hierarchy").priorities == (("lab1", 1),)


@pytest.mark.parametrize(
    ("parent_top", "parent", "child_top", "child", "message"),
    [
        ("app-hierarchy", "app", "app-hierarchy", "app", "already in the same hierarchy"),
        ("app-hierarchy", "app", "web-ip-hierarchy", "web-ip", "no server in common"),
        ("gone-hierarchy", "gone", "ip-a-hierarchy", "ip-a", "no hierarchy gone-hierarchy"),
    ],
)
def test_create_dependency_refusals_change_nothing(
    work: ET.Element, parent_top: str, parent: str, child_top: str, child: str, message: str
) -> None:
    if "web-ip" in child_top:  # lab3 only: nothing in common with the app (lab1, lab2)
        for node in ("lab1", "lab2"):
            cib.remove_priority(work, "web-ip-hierarchy", node)
        cib.set_priority(work, "web-ip-hierarchy", "lab3", 1)
    before = cib.to_text(work)
    with pytest.raises(Refused, match=message):
        cib_tree.join(work, parent_top, parent, child_top, child)
    assert cib.to_text(work) == before


def test_a_child_that_is_not_the_root_of_its_hierarchy_is_refused(work: ET.Element) -> None:
    cib_tree.join(work, "app-hierarchy", "app", "ip-a-hierarchy", "ip-a")
    other = _app(work, "other")
    cib.set_priority(work, other, "lab2", 20)
    before = cib.to_text(work)
    with pytest.raises(Refused, match="ip-a is not the root of its hierarchy"):
        cib_tree.join(work, other, "other", "app-hierarchy", "ip-a")
    assert cib.to_text(work) == before


def test_delete_dependency_makes_the_child_a_hierarchy_of_its_own(work: ET.Element) -> None:
    cib_tree.join(work, "app-hierarchy", "app", "ip-a-hierarchy", "ip-a")
    cib_tree.join(work, "app-hierarchy", "app", "ip-b-hierarchy", "ip-b")
    cib.set_switchback(work, "app-hierarchy", SwitchbackType.AUTOMATIC)
    cib.set_stopped(work, "app-hierarchy", True)
    new_top, lines = cib_tree.split(work, "app-hierarchy", "app", "ip-a")
    assert lines == ["app: app no longer depends on ip-a (ip-a now a hierarchy of its own)"]
    h, child = _h(work, "app-hierarchy"), _h(work, new_top)
    assert h.member_ids == ("ip-b", "app") and child.member_ids == ("ip-a",)
    assert cib_tree.parents(h) == {"ip-b": "app", "app": None}
    assert cib_tree.PARENT_META not in dict(child.root.meta)
    assert child.priorities == h.priorities == (("lab1", 1), ("lab2", 10))
    assert child.switchback is SwitchbackType.AUTOMATIC and child.stopped
    assert _unique_ids(work)
    before = cib.to_text(work)
    with pytest.raises(Refused, match="app does not depend on ip-a"):
        cib_tree.split(work, "app-hierarchy", "app", "ip-a")
    assert cib.to_text(work) == before


def test_delete_dependency_takes_what_the_child_depends_on_along(work: ET.Element) -> None:
    cib_tree.join(work, "ip-a-hierarchy", "ip-a", "ip-b-hierarchy", "ip-b")  # ip-a → ip-b
    cib_tree.join(work, "app-hierarchy", "app", "ip-a-hierarchy", "ip-a")  # app → ip-a
    assert _h(work, "app-hierarchy").member_ids == ("ip-b", "ip-a", "app")
    new_top, _lines = cib_tree.split(work, "app-hierarchy", "app", "ip-a")
    assert _h(work, "app-hierarchy").member_ids == ("app",)
    child = _h(work, new_top)
    assert child.member_ids == ("ip-b", "ip-a")
    assert cib_tree.parents(child) == {"ip-b": "ip-a", "ip-a": None}
