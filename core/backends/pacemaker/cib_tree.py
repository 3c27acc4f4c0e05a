"""Dependencies inside a hierarchy on a CIB: Create Dependency and Delete Dependency.

Pure, like :mod:`core.backends.pacemaker.cib`. A hierarchy is a ``<group>``: Pacemaker
starts its primitives in order and keeps them on one node, so a group is a valid order
for any tree of dependencies whose children come before their parents. The tree itself
is kept in each primitive's meta attribute ``lk-parent`` (the XML id of the resource
that depends on it); a primitive without one depends on the next (the parent of a
group made with ``crm`` or ``pcs`` is simply the next primitive: a chain, the root last).

- **Create Dependency** parent → child, where the child is the root of another
  hierarchy: the child's primitives move into the parent's group, just before the
  parent; the child's group and its constraints go; the joined hierarchy keeps the
  parent's priorities, on the servers where both were defined.
- **Delete Dependency** parent → child: the child and what it depends on leave the
  group for a group of their own, with the same priorities, switchback and service
  state, so it keeps running where it runs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from core.backends.pacemaker import cib as cibxml
from core.backends.pacemaker.cib import GROUP_SUFFIX, HierarchyConfig, Refused

PARENT_META = "lk-parent"  # the XML id of the primitive that depends on this one


def parents(h: HierarchyConfig) -> dict[str, str | None]:
    """Each member's parent (XML ids; None for the root): its ``lk-parent`` when that
    names a later member of the group, else the next member."""
    ids = h.member_ids
    found: dict[str, str | None] = {}
    for index, m in enumerate(h.members):
        explicit = dict(m.meta).get(PARENT_META)
        later = ids[index + 1 :]
        if explicit in later:
            found[m.xml_id] = explicit
        else:
            found[m.xml_id] = later[0] if later else None
    return found


def subtree(h: HierarchyConfig, xml_id: str) -> list[str]:
    """``xml_id`` and every member that it depends on, directly or not, in group order."""
    parent_of = parents(h)
    inside = {xml_id}
    for m in reversed(h.members):  # parents come after their children
        if parent_of[m.xml_id] in inside:
            inside.add(m.xml_id)
    return [i for i in h.member_ids if i in inside]


def _group(cib: ET.Element, top_id: str) -> ET.Element:
    element = cibxml._element(cib, top_id)
    if element.tag != "group":
        raise Refused(
            f"{top_id} is a resource outside any group (made with crm or pcs): make it a "
            "hierarchy of LK Console's first (crm configure group)"
        )
    return element


def _primitive(group: ET.Element, xml_id: str) -> ET.Element:
    found = next((p for p in group.findall("primitive") if p.get("id") == xml_id), None)
    if found is None:
        raise Refused(f"{xml_id} is not in {group.get('id')}: reload, the CIB changed")
    return found


def _write_parents(cib: ET.Element, group: ET.Element, wanted: dict[str, str | None]) -> None:
    """Set ``lk-parent`` where the next primitive is not the parent, remove it where it is."""
    order = [p.get("id", "") for p in group.findall("primitive")]
    for index, xml_id in enumerate(order):
        implicit = order[index + 1] if index + 1 < len(order) else None
        parent = wanted.get(xml_id)
        cibxml.set_meta(cib, xml_id, PARENT_META, None if parent == implicit else parent)


def _sole_hierarchy(cib: ET.Element, top_id: str) -> HierarchyConfig:
    h = next((x for x in cibxml.hierarchies(cib) if x.top_id == top_id), None)
    if h is None:
        raise Refused(f"no hierarchy {top_id} in the CIB: reload, someone may have removed it")
    return h


def join(
    cib: ET.Element, parent_top: str, parent_id: str, child_top: str, child_id: str
) -> list[str]:
    """Create Dependency: the hierarchy ``child_top``, whose root is ``child_id``, joins
    ``parent_top`` under ``parent_id``. What changed, in lines; Refused for what cannot
    be (the caller works on a copy: nothing is pushed then)."""
    if parent_top == child_top:
        raise Refused("the parent and the child are already in the same hierarchy")
    parent_h = _sole_hierarchy(cib, parent_top)
    child_h = _sole_hierarchy(cib, child_top)
    if child_h.root.xml_id != child_id:
        raise Refused(
            f"{child_h.tag_of(child_id)} is not the root of its hierarchy "
            f"({child_h.root.tag} depends on it): on a Pacemaker cluster a resource has one "
            "parent at most"
        )
    both = [(s, p) for s, p in parent_h.priorities if child_h.priority_of(s) is not None]
    if not both:
        raise Refused(
            f"{parent_h.root.tag} and {child_h.root.tag} are defined on no server in common"
        )
    parent_group = _group(cib, parent_top)
    wanted = parents(parent_h) | parents(child_h)
    wanted[child_h.root.xml_id] = parent_id
    moved = [cibxml._element(cib, i) for i in child_h.member_ids]
    cibxml.remove_hierarchy(cib, child_top)  # its group and every constraint on it go
    position = list(parent_group).index(_primitive(parent_group, parent_id))
    for offset, primitive in enumerate(moved):
        parent_group.insert(position + offset, primitive)
    _write_parents(cib, parent_group, wanted)
    lines = [
        f"{parent_h.root.tag}: {parent_h.tag_of(parent_id)} depends on {child_h.root.tag} "
        f"({', '.join(m.tag for m in child_h.members)} joined the hierarchy)"
    ]
    for server, _priority in parent_h.priorities:
        if (server, _priority) not in both:
            cibxml.remove_priority(cib, parent_top, server)
            lines.append(
                f"{parent_h.root.tag}: no longer on {server} ({child_h.root.tag} is not "
                "defined there)"
            )
    return lines


def split(cib: ET.Element, top_id: str, parent_id: str, child_id: str) -> tuple[str, list[str]]:
    """Delete Dependency: ``child_id`` and what it depends on leave ``top_id`` for a new
    group with the same priorities, switchback and service state. The new group's id,
    and what changed in lines."""
    h = _sole_hierarchy(cib, top_id)
    parent_of = parents(h)
    if parent_of.get(child_id) != parent_id:
        raise Refused(
            f"{h.tag_of(parent_id)} does not depend on {h.tag_of(child_id)}: reload, the CIB "
            "changed"
        )
    leaving = subtree(h, child_id)
    group = _group(cib, top_id)
    primitives = [_primitive(group, i) for i in leaving]
    taken = cibxml._ids(cib)
    new_top = cibxml._unique(taken, child_id + GROUP_SUFFIX)
    resources = cibxml._section(cib, "resources")
    new_group = ET.Element("group", {"id": new_top})
    resources.insert(list(resources).index(group), new_group)
    for primitive in primitives:
        group.remove(primitive)
        new_group.append(primitive)
    stays = {i: p for i, p in parent_of.items() if i not in leaving}
    _write_parents(cib, group, stays)
    _write_parents(cib, new_group, {i: parent_of[i] for i in leaving} | {child_id: None})
    for node, score in h.scores:
        cibxml.set_priority(cib, new_top, node, cibxml.score_to_priority(score))
    cibxml.set_meta(cib, new_top, "resource-stickiness", str(h.stickiness))
    if h.stopped:
        cibxml.set_stopped(cib, new_top, True)
    tags = ", ".join(h.tag_of(i) for i in leaving)
    return new_top, [
        f"{h.root.tag}: {h.tag_of(parent_id)} no longer depends on {h.tag_of(child_id)} "
        f"({tags} now a hierarchy of its own)"
    ]


__all__ = ["PARENT_META", "join", "parents", "split", "subtree"]
