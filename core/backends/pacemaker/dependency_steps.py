"""Create Dependency and Delete Dependency as a change of the CIB copy; pure, like
:mod:`core.backends.pacemaker.operations`, which dispatches to these handlers. The mapping
is :mod:`core.backends.pacemaker.cib_tree`'s: a hierarchy is a group, the tree is kept in
``lk-parent``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from core.backends.pacemaker import cib as cibxml
from core.backends.pacemaker import cib_tree
from core.backends.pacemaker.cib import HierarchyConfig, Member, Refused
from core.plan import CreateDependency, DeleteDependency

if TYPE_CHECKING:
    from core.backends.pacemaker.operations import Change


def _find(cib: ET.Element, hid: int) -> HierarchyConfig:
    h = cibxml.find(cib, hid)
    if h is None:
        raise Refused(
            "the hierarchy is no longer in the cluster's configuration (someone removed it); reload"
        )
    return h


def _member(h: HierarchyConfig, rid: int, tag: str) -> Member:
    found = h.member(rid)
    if found is None:
        raise Refused(f"{tag} is no longer in {h.root.tag}: someone changed it; reload")
    return found


def _where(h: HierarchyConfig, running: Mapping[str, Sequence[str]]) -> list[str]:
    return sorted({n for m in h.members for n in running.get(m.xml_id, ())})


def create_dependency(
    work: ET.Element,
    step: CreateDependency,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    """The child's hierarchy joins the parent's; it runs where the parent runs."""
    from core.backends.pacemaker.operations import Intent

    parent_h = _find(work, step.parent_hierarchy_id)
    child_h = _find(work, step.child_hierarchy_id)
    parent = _member(parent_h, step.parent_id, step.parent_tag)
    child = _member(child_h, step.child_id, step.child_tag)
    on_parent, on_child = _where(parent_h, running), _where(child_h, running)
    if on_parent and on_child and on_parent != on_child:
        raise Refused(
            f"{step.parent_tag} is in service on {', '.join(on_parent)} and {step.child_tag} on "
            f"{', '.join(on_child)}: switch one over first"
        )
    change.lines.extend(
        cib_tree.join(work, parent_h.top_id, parent.xml_id, child_h.top_id, child.xml_id)
    )
    where: str | None = None if parent_h.stopped else next(iter(on_parent or on_child), None)
    change.set_intent(Intent(parent_h.top_id, parent_h.root.tag, where, step=step.title))


def delete_dependency(
    work: ET.Element,
    step: DeleteDependency,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    """The child and what it depends on become a hierarchy of their own, kept where
    they run (a temporary preference, cleared once they run there)."""
    from core.backends.pacemaker.operations import FollowUp, Intent

    h = _find(work, step.hierarchy_id)
    parent = _member(h, step.parent_id, step.parent_tag)
    child = _member(h, step.child_id, step.child_tag)
    new_top, lines = cib_tree.split(work, h.top_id, parent.xml_id, child.xml_id)
    change.lines.extend(lines)
    where = None if h.stopped else next(iter(_where(h, running)), None)
    change.set_intent(Intent(h.top_id, h.root.tag, where, step=step.title))
    change.set_intent(Intent(new_top, child.tag, where, step=step.title))
    if where is not None:
        cibxml.set_preference(work, new_top, where)
        change.follow_ups.append(FollowUp("clear-preference", new_top, child.tag, where))
        change.cleanups.append((new_top, where))


__all__ = ["create_dependency", "delete_dependency"]
