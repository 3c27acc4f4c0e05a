"""A DataKeeper hierarchy in the CIB **(ours)**: the mirror as a promotable clone, the file
system (and what depends on it) as a group that runs where the mirror's source is.

- the mirror ``RID``: a primitive of ``ocf:lkconsole:datakeeper`` (its LifeKeeper tag in
  ``lk-tag``) in the promotable clone ``RID-clone`` (one Promoted instance: the source;
  ``notify``), allowed (opt-in) on each server of the hierarchy with the same score as
  the group;
- the group ``<fs id>-hierarchy``: ``ocf:heartbeat:Filesystem`` on the mirror's device
  (:func:`~core.backends.pacemaker.dk_names.device`), colocated with the clone's
  Promoted role and ordered after its promotion. The hierarchy's members are the mirror
  (the child) then the group's primitives.

Pure: functions of a CIB copy. The promotion itself is the agent's (only an in-sync
copy gets a score); the copy the mirror is created from is generation 1
(:func:`first_generation`), set on the node with ``crm_attribute`` before the clone is
pushed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

from core.backends.pacemaker import cib as cibxml
from core.backends.pacemaker import dk_names as names
from core.model import DEFAULT_CHUNK_SIZE, DEFAULT_SPEED_LIMIT_KBPS, PRIORITY_MIN, SwitchbackType

DATAKEEPER_AGENT = cibxml.Agent("ocf", "lkconsole", names.AGENT_TYPE)
FS_OPERATIONS = (("monitor", "20s", "40s"), ("start", "0s", "60s"), ("stop", "0s", "60s"))
DK_OPERATIONS = (
    ("monitor", "5s", "60s", "Promoted"),
    ("monitor", "7s", "60s", "Unpromoted"),
    ("start", "0s", "90s"),
    ("stop", "0s", "120s"),
    ("promote", "0s", "120s"),
    ("demote", "0s", "120s"),
    ("notify", "0s", "60s"),
)
COLOCATION_SUFFIX = "-with-source"
ORDER_SUFFIX = "-after-source"


def mirror_of(cib: ET.Element, group_id: str) -> ET.Element | None:
    """The DataKeeper primitive whose Promoted role ``group_id`` is colocated with."""
    return cibxml.mirror_primitive(cib, group_id)


def clone_of(cib: ET.Element, rid: str) -> ET.Element | None:
    return cib.find(f"configuration/resources/clone[@id='{names.clone_id(rid)}']")


def new_mirrored_hierarchy(
    cib: ET.Element,
    *,
    fs_tag: str,
    dk_tag: str,
    volume: str,
    size: int,
    mount_point: str,
    fs_type: str,
    server: str,
    addresses: Mapping[str, str],
    bitmap: str | None,
    port: int,
    switchback: SwitchbackType,
) -> tuple[str, str]:
    """A file system on a new mirror, in service on ``server`` (priority 1) and not
    extended: (the group's id, the mirror's primitive id). Refused for bad input."""
    rid = new_mirror(cib, dk_tag=dk_tag, volume=volume, size=size, server=server,
                     addresses=addresses, bitmap=bitmap, port=port,
                     switchback=switchback)  # fmt: skip
    group_id = add_filesystem(cib, rid, fs_tag=fs_tag, mount_point=mount_point,
                              fs_type=fs_type, server=server, switchback=switchback)  # fmt: skip
    return group_id, rid


def new_mirror(
    cib: ET.Element,
    *,
    dk_tag: str,
    volume: str,
    size: int,
    server: str,
    addresses: Mapping[str, str],
    bitmap: str | None,
    port: int,
    switchback: SwitchbackType,
    asynchronous: bool = False,
) -> str:
    """A new mirror on ``server`` (a DataKeeper-only hierarchy: the clone, allowed there
    with priority 1, its switchback as its stickiness); its primitive's id."""
    cibxml.check_node(cib, server)
    cibxml.check_opt_in(cib)
    if server not in addresses:
        raise cibxml.Refused(f"{server} has no replication address")
    taken = cibxml._ids(cib)
    rid = cibxml.new_primitive_id(cib, taken, dk_tag)
    clone_id = cibxml._unique(taken, names.clone_id(rid))
    resources = cib.find("configuration/resources")
    assert resources is not None  # check_opt_in read the configuration
    clone = ET.SubElement(resources, "clone", {"id": clone_id})
    dk_params = {
        "volume": volume,
        "size": str(size),
        "port": str(port),
        "chunk_size": str(DEFAULT_CHUNK_SIZE),
        "speed_limit_kbps": str(DEFAULT_SPEED_LIMIT_KBPS),
    }
    if asynchronous:
        dk_params["asynchronous"] = "true"
    membership = [
        (names.SERVERS_META, names.format_pairs({server: addresses[server]})),
        (names.BITMAPS_META, names.format_pairs({server: bitmap or names.NO_BITMAP})),
    ]
    cibxml.add_primitive(clone, taken, rid, DATAKEEPER_AGENT, dk_params,
                         [(cibxml.TAG_META, dk_tag), *membership], DK_OPERATIONS)  # fmt: skip
    clone_meta = [("promotable", "true"), ("promoted-max", "1"), ("notify", "true"),
                  ("resource-stickiness", str(_stickiness(switchback)))]  # fmt: skip
    cibxml.add_meta(clone, taken, clone_meta)
    set_clone_allowed(cib, clone_id, server, cibxml.priority_to_score(PRIORITY_MIN))
    return rid


def add_filesystem(
    cib: ET.Element,
    rid: str,
    *,
    fs_tag: str,
    mount_point: str,
    fs_type: str,
    server: str,
    switchback: SwitchbackType,
) -> str:
    """A file system on mirror ``rid`` (its group, colocated with the clone's Promoted
    role and ordered after its promotion; the group has the priority and the switchback
    from then on); the group's id."""
    clone = clone_of(cib, rid)
    if clone is None:
        raise cibxml.Refused(f"the mirror {rid} is not a promotable clone")
    clone_id = clone.get("id", "")
    cibxml.set_meta(cib, clone_id, "resource-stickiness", None)
    taken = cibxml._ids(cib)
    fs_id = cibxml.new_primitive_id(cib, taken, fs_tag)
    group_id = cibxml._unique(taken, fs_id + cibxml.GROUP_SUFFIX)
    resources = cib.find("configuration/resources")
    assert resources is not None
    group = ET.SubElement(resources, "group", {"id": group_id})
    fs_params = {"device": names.device(rid), "directory": mount_point, "fstype": fs_type}
    cibxml.add_primitive(group, taken, fs_id, cibxml.FILESYSTEM_AGENT, fs_params,
                         [(cibxml.TAG_META, fs_tag)], FS_OPERATIONS)  # fmt: skip
    cibxml.add_meta(group, taken, [("resource-stickiness", str(_stickiness(switchback)))])
    constraints = cib.find("configuration/constraints")
    assert constraints is not None
    ET.SubElement(constraints, "rsc_colocation", {
        "id": cibxml._unique(taken, group_id + COLOCATION_SUFFIX), "rsc": group_id,
        "with-rsc": clone_id, "with-rsc-role": "Promoted", "score": "INFINITY"})  # fmt: skip
    ET.SubElement(constraints, "rsc_order", {
        "id": cibxml._unique(taken, group_id + ORDER_SUFFIX), "first": clone_id,
        "first-action": "promote", "then": group_id, "then-action": "start",
        "kind": "Mandatory"})  # fmt: skip
    cibxml.set_priority(cib, group_id, server, PRIORITY_MIN)
    return group_id


def next_port(cib: ET.Element) -> int:
    """The port of a new mirror: the first above every mirror's (each has its own)."""
    used = [
        int(nv.get("value", "0"))
        for p in cib.iter("primitive")
        if cibxml._agent(p) == DATAKEEPER_AGENT
        for nv in p.iterfind("instance_attributes/nvpair[@name='port']")
        if nv.get("value", "").isdigit()
    ]
    return max([names.PORT_BASE - 1, *used]) + 1


def set_clone_allowed(cib: ET.Element, clone_id: str, node: str, score: int) -> None:
    """The clone may run on ``node`` (opt-in), with ``score``."""
    constraints = cib.find("configuration/constraints")
    assert constraints is not None
    cid = f"{clone_id}-on-{cibxml.tag_to_id(node)}"
    found = constraints.find(f"rsc_location[@id='{cid}']")
    if found is None:
        found = ET.SubElement(constraints, "rsc_location", {"id": cid, "rsc": clone_id})
    found.set("node", node)
    found.set("score", str(score))


def set_source_preference(cib: ET.Element, rid: str, node: str | None) -> None:
    """The temporary preference of mirror ``rid``'s Promoted role (its source) for ``node``
    (None: none): a switchover's MakeSource, cleared with the group's In Service one."""
    clone = clone_of(cib, rid)
    if clone is None:
        raise cibxml.Refused(f"the mirror {rid} is not a promotable clone")
    clone_id = clone.get("id", "")
    constraints = cibxml._section(cib, "constraints")
    preference_id = clone_id + cibxml.IN_SERVICE_SUFFIX
    for c in [c for c in constraints if c.get("id") == preference_id]:
        constraints.remove(c)
    if node is None:
        return
    cibxml.check_node(cib, node)
    ET.SubElement(constraints, "rsc_location", {
        "id": preference_id, "rsc": clone_id, "role": "Promoted", "node": node,
        "score": "INFINITY"})  # fmt: skip


def source_preference(cib: ET.Element, rid: str) -> str | None:
    """The node :func:`set_source_preference` prefers for ``rid``'s source, or None."""
    clone = clone_of(cib, rid)
    if clone is None:
        return None
    found = cib.find(
        f"configuration/constraints/rsc_location[@id='{clone.get('id', '')}"
        f"{cibxml.IN_SERVICE_SUFFIX}']"
    )
    return None if found is None else found.get("node")


def first_generation(rid: str, node: str) -> list[str]:
    """The command that makes ``node``'s copy the first source's (generation 1)."""
    return ["crm_attribute", "--node", node, "--name", names.attribute(rid, "gen"),
            "--lifetime", "forever", "--update", "1"]  # fmt: skip


def forget_generation(rid: str, node: str) -> list[str]:
    """The command that undoes :func:`first_generation`."""
    return ["crm_attribute", "--node", node, "--name", names.attribute(rid, "gen"),
            "--lifetime", "forever", "--delete"]  # fmt: skip


def forget_attributes(rid: str, node: str) -> list[list[str]]:
    """The two commands that clear every node attribute of mirror ``rid`` on ``node`` (a
    node that left it, or a mirror deleted: a copy's old generation must not hold back a
    new mirror of the same tag): the permanent ones in the CIB's ``nodes`` section by one
    XPath, the transient ones (and the promotion score) in the attribute manager by one
    pattern. Both name each attribute in full (``datarep-data``'s must not take
    ``datarep-data-2``'s along) and succeed when there is none left."""
    permanent = " or ".join(f"@name='{names.attribute(rid, n)}'" for n in names.PERMANENT)
    xpath = (f"/cib/configuration/nodes/node[@uname='{node}']/instance_attributes"
             f"/nvpair[{permanent}]")  # fmt: skip
    transient = [names.attribute(rid, n) for n in (*names.TRANSIENT_SOURCE,
                                                   *names.TRANSIENT_TARGET)]  # fmt: skip
    pattern = (
        "^("
        + "|".join(_ere_literal(n) for n in [*transient, names.promotion_attribute(rid)])
        + ")$"
    )
    return [
        ["cibadmin", "--delete-all", "--force", "--xpath", xpath],
        ["crm_attribute", "--node", node, "--pattern", pattern, "--lifetime", "reboot",
         "--delete"],
    ]  # fmt: skip


def _ere_literal(text: str) -> str:
    """``text`` matched literally in a POSIX extended regular expression (Pacemaker's)."""
    return "".join(f"\\{c}" if c in ".[]()*+?{}|^$\\" else c for c in text)


def _stickiness(switchback: SwitchbackType) -> int:
    return cibxml.STICKINESS_INTELLIGENT if switchback is SwitchbackType.INTELLIGENT else 0


__all__ = [
    "DATAKEEPER_AGENT",
    "add_filesystem",
    "clone_of",
    "first_generation",
    "forget_attributes",
    "forget_generation",
    "mirror_of",
    "new_mirror",
    "new_mirrored_hierarchy",
    "next_port",
    "set_clone_allowed",
    "set_source_preference",
    "source_preference",
]
