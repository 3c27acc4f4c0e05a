"""Pure functions on CIB XML: LifeKeeper's hierarchies read from, and written to, a CIB.

No I/O here: every function takes an ``xml.etree.ElementTree`` element (the ``<cib>``
root from ``cibadmin --query``) and reads it, or changes it in place; the backend calls
the changing ones on a copy (:func:`copy_of`), checks the copy with ``crm_simulate`` and
pushes it once. The mapping (CLUSTER.md, "LifeKeeper's words on Pacemaker"):

- **hierarchy**: a ``<group>`` of primitives in dependency order, child first (the last
  one is the root). A primitive outside any group (made with ``crm`` or ``pcs``) is a
  hierarchy of one resource; fence devices, clones and bundles are not hierarchies.
- **tag**: the resource's XML id; the LifeKeeper tag is kept in the meta attribute
  ``lk-tag`` and mapped both ways (:func:`tag_to_id`, :func:`id_to_tag`).
- **extended to a server, priority**: an opt-in cluster (``symmetric-cluster=false``)
  and one ``rsc_location`` per server on the group with score 1000 − priority; no
  constraint = the hierarchy never runs there.
- **switchback**: ``resource-stickiness`` on the group: 1000 (above every difference of
  two scores, 998 at most) = intelligent, 0 = automatic.
- **Out of Service**: ``target-role=Stopped`` on the group. **In Service on S**: no
  target-role, and a temporary location preference for S (``<group>-in-service``, score
  INFINITY), cleared once it runs there.
- **ids for the model**: ``hierarchy_id`` and ``resource_id`` are 31-bit hashes of the
  group's and the primitive's XML ids (:func:`stable_int`), the same in every snapshot
  and every console; ``Hierarchy.version`` is a hash of the hierarchy's configuration
  (its group and every constraint on it or its primitives), so "changed by someone else"
  means its configuration changed, not the state of the cluster.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from core.errors import LkError
from core.model import PRIORITY_MAX, PRIORITY_MIN, ResourceKind, SwitchbackType

TAG_META = "lk-tag"  # the LifeKeeper tag of a primitive
RESTART_META = "lk-restart"  # an app's restart mode, as the console was given it
PRIORITY_BASE = 1000  # score = 1000 - priority
STICKINESS_INTELLIGENT = 1000  # above every score difference (999 - 1)
INFINITY = 1_000_000  # Pacemaker's INFINITY
IN_SERVICE_SUFFIX = "-in-service"
GROUP_SUFFIX = "-hierarchy"
CLI_PREFIX = "cli-"  # crm_resource --move/--ban constraints

_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_ID_SAFE = re.compile(r"[A-Za-z0-9.-]")


class CibError(LkError):
    """A CIB that cannot be read (not XML, or not a CIB)."""


class Refused(LkError):
    """A change that cannot be made to this CIB (the message says why and what to do)."""


# -- the agents ------------------------------------------------------------------------


@dataclass(frozen=True)
class Agent:
    """A resource agent: ``ocf:heartbeat:IPaddr2``."""

    standard: str
    provider: str
    type: str

    def __str__(self) -> str:
        if self.provider:
            return f"{self.standard}:{self.provider}:{self.type}"
        return f"{self.standard}:{self.type}"


IP_AGENT = Agent("ocf", "heartbeat", "IPaddr2")
APP_AGENT = Agent("ocf", "lkconsole", "app")  # packaging/ocf/lkconsole/app
ANYTHING_AGENT = Agent("ocf", "heartbeat", "anything")
FILESYSTEM_AGENT = Agent("ocf", "heartbeat", "Filesystem")
IP_AGENTS = {IP_AGENT, Agent("ocf", "heartbeat", "IPaddr"), Agent("ocf", "heartbeat", "IPv6addr")}
DATAKEEPER_AGENTS = {Agent("ocf", "lkconsole", "datakeeper")}  # cib_dk.py

# Operations of the primitives the console makes: (name, interval, timeout).
IP_OPERATIONS = (("monitor", "10s", "20s"), ("start", "0s", "20s"), ("stop", "0s", "20s"))
APP_OPERATIONS = (("monitor", "10s", "30s"), ("start", "0s", "90s"), ("stop", "0s", "90s"))


def kind_of(agent: Agent) -> ResourceKind:
    if agent in IP_AGENTS:
        return ResourceKind.IP
    if agent == FILESYSTEM_AGENT:
        return ResourceKind.FILESYSTEM
    if agent in DATAKEEPER_AGENTS:
        return ResourceKind.DATAKEEPER
    return ResourceKind.APP  # any other agent is a generic application


# -- reading a CIB -----------------------------------------------------------------------


def parse(text: str) -> ET.Element:
    """The ``<cib>`` element of ``cibadmin --query``'s output."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CibError(f"the CIB is not XML: {exc}") from exc
    if root.tag != "cib" or root.find("configuration") is None:
        raise CibError(f"not a CIB (its root element is <{root.tag}>)")
    return root


def parse_configuration(text: str) -> ET.Element:
    """A ``<cib>`` holding the ``<configuration>`` of ``cibadmin --query --scope
    configuration`` (a quarter of the whole CIB: no status section, no version)."""
    try:
        configuration = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CibError(f"the CIB's configuration is not XML: {exc}") from exc
    if configuration.tag != "configuration":
        raise CibError(f"not a CIB's configuration (its root element is <{configuration.tag}>)")
    root = ET.Element("cib")
    root.append(configuration)
    return root


def to_text(cib: ET.Element) -> str:
    return ET.tostring(cib, encoding="unicode")


def copy_of(cib: ET.Element) -> ET.Element:
    """A copy to change (the original stays what was read)."""
    return copy.deepcopy(cib)


@dataclass(frozen=True, order=True)
class Version:
    """A CIB's version: ``admin_epoch.epoch.num_updates`` (compared in that order)."""

    admin_epoch: int
    epoch: int
    num_updates: int

    def __str__(self) -> str:
        return f"{self.admin_epoch}.{self.epoch}.{self.num_updates}"


def version(cib: ET.Element) -> Version:
    def number(name: str) -> int:
        try:
            return int(cib.get(name, "0"))
        except ValueError:
            return 0

    return Version(number("admin_epoch"), number("epoch"), number("num_updates"))


def _section(cib: ET.Element, name: str) -> ET.Element:
    found = cib.find(f"configuration/{name}")
    if found is None:
        configuration = cib.find("configuration")
        if configuration is None:
            raise CibError("not a CIB: no <configuration>")
        found = ET.SubElement(configuration, name)
    return found


def nodes(cib: ET.Element) -> tuple[str, ...]:
    """The cluster's nodes, as the CIB's ``<nodes>`` section names them."""
    return tuple(
        n.get("uname", "") for n in cib.iterfind("configuration/nodes/node") if n.get("uname")
    )


def cluster_property(cib: ET.Element, name: str) -> str | None:
    for nvpair in cib.iterfind("configuration/crm_config/cluster_property_set/nvpair"):
        if nvpair.get("name") == name:
            return nvpair.get("value")
    return None


def is_opt_in(cib: ET.Element) -> bool:
    """``symmetric-cluster=false``: a resource runs only where a constraint allows it."""
    value = cluster_property(cib, "symmetric-cluster")
    return value is not None and value.strip().lower() in ("false", "no", "0", "off", "n")


def cluster_name(cib: ET.Element) -> str:
    return cluster_property(cib, "cluster-name") or ""


def parse_score(text: str | None) -> int:
    """A Pacemaker score: an integer, or [+-]INFINITY (±1000000)."""
    value = (text or "0").strip().upper()
    if value in ("INFINITY", "+INFINITY"):
        return INFINITY
    if value == "-INFINITY":
        return -INFINITY
    try:
        return max(-INFINITY, min(INFINITY, int(value)))
    except ValueError:
        return 0


def priority_to_score(priority: int) -> int:
    """LifeKeeper's priority 1 (best) … 999 → score 999 … 1."""
    return PRIORITY_BASE - priority


def score_to_priority(score: int) -> int:
    return max(PRIORITY_MIN, min(PRIORITY_MAX, PRIORITY_BASE - score))


def _nvpairs(element: ET.Element, set_tag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for attributes in element.findall(set_tag):
        for nvpair in attributes.findall("nvpair"):
            name = nvpair.get("name")
            if name is not None and name not in pairs:
                pairs[name] = nvpair.get("value", "")
    return pairs


def meta(element: ET.Element) -> dict[str, str]:
    return _nvpairs(element, "meta_attributes")


def params(element: ET.Element) -> dict[str, str]:
    return _nvpairs(element, "instance_attributes")


# -- tags and ids ------------------------------------------------------------------------


def is_xml_id(text: str) -> bool:
    return bool(_NCNAME.match(text))


def tag_to_id(tag: str) -> str:
    """A valid XML id for a LifeKeeper tag, reversible by :func:`id_to_tag`.

    Letters, digits, ``.`` and ``-`` stay (a first character that is not a letter is
    escaped); ``_`` becomes ``__``; any other character ``_<hex code point>_``:
    ``/data`` → ``_2f_data``, ``web-ip`` → ``web-ip``.
    """
    if not tag:
        raise Refused("a tag cannot be empty")
    out = []
    for index, char in enumerate(tag):
        if char == "_":
            out.append("__")
        elif _ID_SAFE.match(char) and (index > 0 or char.isalpha()):
            out.append(char)
        else:
            out.append(f"_{ord(char):x}_")
    return "".join(out)


def id_to_tag(xml_id: str) -> str:
    """The tag an XML id stands for (an id that is no escape of a tag is its own tag)."""
    out = []
    i = 0
    while i < len(xml_id):
        char = xml_id[i]
        if char != "_":
            out.append(char)
            i += 1
            continue
        if xml_id.startswith("__", i):
            out.append("_")
            i += 2
            continue
        end = xml_id.find("_", i + 1)
        code = xml_id[i + 1 : end] if end > 0 else ""
        if not code or not all(c in "0123456789abcdef" for c in code):
            return xml_id  # not one of ours: the id is the tag
        out.append(chr(int(code, 16)))
        i = end + 1
    return "".join(out)


def stable_int(text: str) -> int:
    """A positive 31-bit integer for ``text``, the same in every process (blake2b)."""
    digest = hashlib.blake2b(text.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF or 1


def hierarchy_id(top_id: str) -> int:
    return stable_int(f"hierarchy:{top_id}")


def resource_id(primitive_id: str) -> int:
    return stable_int(f"resource:{primitive_id}")


# -- hierarchies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One primitive of a hierarchy (a LifeKeeper resource)."""

    xml_id: str
    tag: str
    agent: Agent
    kind: ResourceKind
    params: tuple[tuple[str, str], ...]
    meta: tuple[tuple[str, str], ...]
    resource_id: int

    @property
    def settings(self) -> tuple[tuple[str, str], ...]:
        return settings_of(self.agent, dict(self.params), dict(self.meta))

    def param(self, name: str) -> str:
        return next((v for k, v in self.params if k == name), "")


@dataclass(frozen=True)
class HierarchyConfig:
    """What the CIB says about one hierarchy."""

    top_id: str  # the group's id (a lone primitive's own id)
    is_group: bool
    members: tuple[Member, ...]  # dependency order: child first, the root last
    scores: tuple[tuple[str, int], ...]  # server → score of its location constraints
    stickiness: int
    stopped: bool  # target-role=Stopped: out of service
    preferred: str | None  # the temporary In Service preference (our constraint)
    version: int
    hierarchy_id: int

    @property
    def root(self) -> Member:
        return self.members[-1]

    @property
    def priorities(self) -> tuple[tuple[str, int], ...]:
        """(server, priority), best first."""
        pairs = [(node, score_to_priority(score)) for node, score in self.scores]
        return tuple(sorted(pairs, key=lambda p: (p[1], p[0])))

    def priority_of(self, server: str) -> int | None:
        return next((p for s, p in self.priorities if s == server), None)

    @property
    def switchback(self) -> SwitchbackType:
        values = [score for _node, score in self.scores]
        spread = max(values) - min(values) if values else 0
        if self.stickiness > spread:
            return SwitchbackType.INTELLIGENT
        return SwitchbackType.AUTOMATIC

    def member(self, rid: int) -> Member | None:
        return next((m for m in self.members if m.resource_id == rid), None)

    def tag_of(self, xml_id: str) -> str:
        return next((m.tag for m in self.members if m.xml_id == xml_id), xml_id)

    @property
    def member_ids(self) -> tuple[str, ...]:
        return tuple(m.xml_id for m in self.members)


def _agent(primitive: ET.Element) -> Agent:
    return Agent(
        primitive.get("class", ""), primitive.get("provider", ""), primitive.get("type", "")
    )


def _member(primitive: ET.Element) -> Member:
    xml_id = primitive.get("id", "")
    pmeta = meta(primitive)
    agent = _agent(primitive)
    return Member(
        xml_id=xml_id,
        tag=pmeta.get(TAG_META) or id_to_tag(xml_id),
        agent=agent,
        kind=kind_of(agent),
        params=tuple(params(primitive).items()),
        meta=tuple(pmeta.items()),
        resource_id=resource_id(xml_id),
    )


def _tops(cib: ET.Element) -> Iterator[ET.Element]:
    """Groups, primitives outside any group (not fence devices), and the promotable
    clones of a DataKeeper resource that no group depends on (DataKeeper only)."""
    mirrored = {
        c.get("with-rsc")
        for c in cib.iterfind("configuration/constraints/rsc_colocation")
        if c.get("with-rsc-role") in ("Promoted", "Master")
    }
    for child in _section(cib, "resources"):
        is_primitive = child.tag == "primitive" and child.get("class") != "stonith"
        if child.tag == "group" or is_primitive:
            yield child
        elif child.tag == "clone" and child.get("id") not in mirrored:
            primitive = child.find("primitive")
            if primitive is not None and _agent(primitive) in DATAKEEPER_AGENTS:
                yield child


def _constraints(cib: ET.Element) -> list[ET.Element]:
    return list(_section(cib, "constraints"))


def _referenced(constraint: ET.Element) -> set[str]:
    """Every resource id a constraint names."""
    names = {
        constraint.get(a, "") for a in ("rsc", "with-rsc", "first", "then") if constraint.get(a)
    }
    names |= {ref.get("id", "") for ref in constraint.iter("resource_ref")}
    return names


def _references(constraint: ET.Element, ids: set[str]) -> bool:
    if constraint.get("rsc") in ids or constraint.get("with-rsc") in ids:
        return True
    if constraint.get("first") in ids or constraint.get("then") in ids:
        return True
    return any(ref.get("id") in ids for ref in constraint.iter("resource_ref"))


def _canonical(element: ET.Element) -> str:
    """The element as text without whitespace between elements, attributes sorted."""
    attrs = " ".join(f'{k}="{v}"' for k, v in sorted(element.attrib.items()))
    inner = "".join(_canonical(child) for child in element)
    text = (element.text or "").strip()
    return f"<{element.tag} {attrs}>{text}{inner}</{element.tag}>"


def _location_node_scores(
    constraints: Iterable[ET.Element], top_id: str, preference_id: str
) -> dict[str, int]:
    scores: dict[str, int] = {}
    for c in constraints:
        cid = c.get("id", "")
        if c.tag != "rsc_location" or c.get("rsc") != top_id or c.get("node") is None:
            continue
        if cid.startswith(CLI_PREFIX) or cid == preference_id:
            continue
        node = c.get("node", "")
        scores[node] = scores.get(node, 0) + parse_score(c.get("score"))
    return scores


def _stickiness(top: ET.Element, members: Sequence[ET.Element], cib: ET.Element) -> int:
    for element in (top, *members):
        value = meta(element).get("resource-stickiness")
        if value is not None:
            return parse_score(value)
    for defaults in cib.iterfind("configuration/rsc_defaults"):
        value = meta(defaults).get("resource-stickiness")
        if value is not None:
            return parse_score(value)
    return 0


def _is_stopped(element: ET.Element) -> bool:
    return meta(element).get("target-role", "").strip().lower() == "stopped"


def hierarchies(cib: ET.Element) -> list[HierarchyConfig]:
    """Every hierarchy of the CIB, in the order of its ``<resources>`` section.

    Ids that collide (a chance of about n²/2³² for n hierarchies) are hashed again with
    a suffix, in the order of their XML ids, so the result is still deterministic."""
    opt_in = is_opt_in(cib)
    all_nodes = nodes(cib)
    constraints = _constraints(cib)
    by_id: dict[str, list[ET.Element]] = {}  # resource id → the constraints naming it
    for c in constraints:
        for name in _referenced(c):
            by_id.setdefault(name, []).append(c)
    found = []
    for top in _tops(cib):
        top_id = top.get("id", "")
        is_group = top.tag == "group"
        primitives = top.findall("primitive") if top.tag in ("group", "clone") else [top]
        if not primitives:
            continue  # an empty group: nothing to show
        mirror = mirror_primitive(cib, top_id) if is_group else None
        if mirror is not None:  # a DataKeeper hierarchy: the mirror is the child
            primitives = [mirror, *primitives]
        members = tuple(_member(p) for p in primitives)
        preference_id = top_id + IN_SERVICE_SUFFIX
        scores = _location_node_scores(by_id.get(top_id, ()), top_id, preference_id)
        if opt_in:
            allowed = {n: s for n, s in scores.items() if s >= 0}
        else:  # opt-out: every node not banned, at the lowest priority unless scored
            allowed = {n: scores.get(n, 1) for n in all_nodes if scores.get(n, 1) >= 0}
        preferred = next(
            (
                c.get("node")
                for c in by_id.get(top_id, ())
                if c.tag == "rsc_location" and c.get("id") == preference_id
            ),
            None,
        )
        ids = {top_id, *(m.xml_id for m in members)}
        if mirror is not None:
            ids.add(mirror.get("id", "") + "-clone")
        unique = {id(c): c for i in ids for c in by_id.get(i, ())}
        related = sorted(unique.values(), key=lambda c: c.get("id", ""))
        digest = _canonical(top) + "".join(_canonical(c) for c in related)
        found.append(
            HierarchyConfig(
                top_id=top_id,
                is_group=is_group,
                members=members,
                scores=tuple(sorted(allowed.items())),
                stickiness=_stickiness(top, primitives, cib),
                stopped=_is_stopped(top) or any(_is_stopped(p) for p in primitives),
                preferred=preferred,
                version=stable_int(digest),
                hierarchy_id=hierarchy_id(top_id),
            )
        )
    return _without_collisions(found)


def mirror_primitive(cib: ET.Element, group_id: str) -> ET.Element | None:
    """The DataKeeper primitive (in a promotable clone) whose Promoted role the group
    ``group_id`` is colocated with (see :mod:`.cib_dk`)."""
    constraints = cib.find("configuration/constraints")
    resources = cib.find("configuration/resources")
    if constraints is None or resources is None:
        return None
    for c in constraints.iterfind("rsc_colocation"):
        if c.get("rsc") != group_id or c.get("with-rsc-role") not in ("Promoted", "Master"):
            continue
        clone = resources.find(f"clone[@id='{c.get('with-rsc')}']")
        primitive = clone.find("primitive") if clone is not None else None
        if primitive is not None and _agent(primitive) in DATAKEEPER_AGENTS:
            return primitive
    return None


def _without_collisions(found: list[HierarchyConfig]) -> list[HierarchyConfig]:
    seen_h: set[int] = set()
    seen_r: set[int] = set()
    fixed_h: dict[str, int] = {}
    fixed_r: dict[str, int] = {}
    for h in sorted(found, key=lambda h: h.top_id):
        hid, n = h.hierarchy_id, 0
        while hid in seen_h:
            n += 1
            hid = stable_int(f"hierarchy:{h.top_id}#{n}")
        seen_h.add(hid)
        fixed_h[h.top_id] = hid
        for m in sorted(h.members, key=lambda m: m.xml_id):
            rid, n = m.resource_id, 0
            while rid in seen_r:
                n += 1
                rid = stable_int(f"resource:{m.xml_id}#{n}")
            seen_r.add(rid)
            fixed_r[m.xml_id] = rid
    out = []
    for h in found:
        members = tuple(
            m if m.resource_id == fixed_r[m.xml_id] else _replace_rid(m, fixed_r[m.xml_id])
            for m in h.members
        )
        if members != h.members or fixed_h[h.top_id] != h.hierarchy_id:
            h = HierarchyConfig(
                h.top_id, h.is_group, members, h.scores, h.stickiness, h.stopped,
                h.preferred, h.version, fixed_h[h.top_id],
            )  # fmt: skip
        out.append(h)
    return out


def _replace_rid(m: Member, rid: int) -> Member:
    return Member(m.xml_id, m.tag, m.agent, m.kind, m.params, m.meta, rid)


def find(cib: ET.Element, hid: int) -> HierarchyConfig | None:
    """The hierarchy whose ``hierarchy_id`` is ``hid``."""
    return next((h for h in hierarchies(cib) if h.hierarchy_id == hid), None)


def find_tag(cib: ET.Element, tag: str) -> tuple[HierarchyConfig, Member] | None:
    for h in hierarchies(cib):
        for m in h.members:
            if m.tag == tag:
                return h, m
    return None


# -- settings ------------------------------------------------------------------------------

IP_SETTINGS = ("address", "interface")
APP_SETTINGS = ("start", "stop", "monitor", "restart")


def settings_of(
    agent: Agent, given: dict[str, str], pmeta: dict[str, str]
) -> tuple[tuple[str, str], ...]:
    """The console's settings of a primitive (see ``core.model.Resource.settings``)."""
    if agent in IP_AGENTS:
        address = given.get("ip", given.get("ipv6addr", ""))
        netmask = given.get("cidr_netmask", "")
        if address and netmask:
            address = f"{address}/{netmask}"
        return (("address", address), ("interface", given.get("nic", "")))
    if agent == APP_AGENT:
        return (
            ("start", given.get("start", "")),
            ("stop", given.get("stop", "")),
            ("monitor", given.get("monitor", "")),
            ("restart", pmeta.get(RESTART_META, "")),
        )
    if agent == ANYTHING_AGENT:
        start = " ".join(
            x for x in (given.get("binfile", ""), given.get("cmdline_options", "")) if x
        )
        return (
            ("start", start),
            ("stop", ""),
            ("monitor", given.get("monitor_hook", "")),
            ("restart", ""),
        )
    return (("agent", str(agent)), *sorted(given.items()))


def restart_threshold(restart: str) -> str | None:
    """``migration-threshold`` for an app's restart mode (**ours**).

    "" (the default): Pacemaker's own (restart in place at each failure); "no": fail
    over at the first failure; "yes": one restart in place, then fail over (LifeKeeper's
    local recovery); a number N: N restarts in place, then fail over."""
    value = restart.strip().lower()
    if value in ("",):
        return None
    if value in ("no", "never", "false", "off", "0", "failover"):
        return "1"
    if value in ("yes", "true", "on", "local"):
        return "2"
    if value.isdigit():
        return str(int(value) + 1)
    raise Refused(
        f"restart {restart!r} is not a restart mode: use yes (restart once in place, then "
        "fail over), no (fail over at once), a number of restarts, or nothing"
    )


def primitive_params(kind: ResourceKind, settings: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The agent's instance attributes for the console's settings of a new resource."""
    given = dict(settings)
    known = IP_SETTINGS if kind is ResourceKind.IP else APP_SETTINGS
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise Refused(
            f"{', '.join(unknown)} is not a setting of a {kind.label} resource "
            f"(its settings: {', '.join(known)})"
        )
    if kind is ResourceKind.IP:
        address = given.get("address", "").strip()
        try:
            interface = ipaddress.ip_interface(address)
        except ValueError:
            raise Refused(
                f"address {address!r} is not an IP address: give one like 10.213.0.100/24"
            ) from None
        out = {"ip": str(interface.ip)}
        if "/" in address:
            out["cidr_netmask"] = str(interface.network.prefixlen)
        nic = given.get("interface", "").strip()
        if nic:
            if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", nic):
                raise Refused(f"interface {nic!r} is not a network interface name")
            out["nic"] = nic
        return out
    if kind is ResourceKind.APP:
        start = given.get("start", "").strip()
        if not start:
            raise Refused("a Generic Application needs a start command")
        out = {"start": start}
        for name in ("stop", "monitor"):
            if given.get(name, "").strip():
                out[name] = given[name].strip()
        return out
    raise Refused(f"a {kind.label} resource cannot be created on a Pacemaker cluster yet")


# -- changing a CIB (always a copy: see copy_of) ------------------------------------------------


def _ids(cib: ET.Element) -> set[str]:
    return {e.get("id", "") for e in cib.iter() if e.get("id")}


def _unique(taken: set[str], wanted: str) -> str:
    candidate, n = wanted, 1
    while candidate in taken:
        n += 1
        candidate = f"{wanted}-{n}"
    taken.add(candidate)
    return candidate


def _set_nvpair(
    element: ET.Element, set_tag: str, name: str, value: str | None, taken: set[str]
) -> None:
    """Set (or with None remove) ``name`` in ``element``'s first ``set_tag`` set."""
    sets = element.findall(set_tag)
    for attributes in sets:
        for nvpair in attributes.findall("nvpair"):
            if nvpair.get("name") == name:
                if value is None:
                    attributes.remove(nvpair)
                else:
                    nvpair.set("value", value)
                    value = None  # set once; later duplicates are removed
                    continue
    if value is None:
        return
    if sets:
        attributes = sets[0]
    else:
        suffix = "meta" if set_tag == "meta_attributes" else "params"
        attributes = ET.Element(set_tag, {"id": _unique(taken, f"{element.get('id')}-{suffix}")})
        element.insert(
            0 if set_tag == "instance_attributes" else _set_position(element), attributes
        )
    nvpair_id = _unique(taken, f"{attributes.get('id')}-{name}")
    ET.SubElement(attributes, "nvpair", {"id": nvpair_id, "name": name, "value": value})


def _set_position(element: ET.Element) -> int:
    """Where a new meta_attributes set goes: after any instance_attributes/operations."""
    position = 0
    for index, child in enumerate(element):
        if child.tag in ("instance_attributes", "operations", "meta_attributes"):
            position = index + 1
    return position


def hierarchy_of(cib: ET.Element, resource_id: int) -> HierarchyConfig:
    """The hierarchy that has the resource ``resource_id`` (Refused: it is gone)."""
    h = next((x for x in hierarchies(cib) if x.member(resource_id)), None)
    if h is None:
        raise Refused("the mirror is no longer in the cluster's configuration; reload")
    return h


def set_meta(cib: ET.Element, xml_id: str, name: str, value: str | None) -> None:
    element = _element(cib, xml_id)
    _set_nvpair(element, "meta_attributes", name, value, _ids(cib))


def set_param(cib: ET.Element, xml_id: str, name: str, value: str | None) -> None:
    """An instance attribute of a primitive (its change restarts or reloads it)."""
    element = _element(cib, xml_id)
    _set_nvpair(element, "instance_attributes", name, value, _ids(cib))


def _element(cib: ET.Element, xml_id: str) -> ET.Element:
    for element in _section(cib, "resources").iter():
        if element.get("id") == xml_id and element.tag in ("group", "primitive", "clone"):
            return element
    raise Refused(f"no resource {xml_id} in the CIB: reload, someone may have removed it")


def check_node(cib: ET.Element, node: str) -> None:
    known = nodes(cib)
    if node not in known:
        raise Refused(
            f"{node} is not a node of this cluster (its nodes: {', '.join(known) or 'none'})"
        )


def new_hierarchy(
    cib: ET.Element,
    *,
    tag: str,
    kind: ResourceKind,
    settings: Sequence[tuple[str, str]],
    server: str,
    switchback: SwitchbackType,
) -> str:
    """Add a hierarchy of one new resource, allowed on ``server`` with priority 1; the
    group's id. Raises Refused for bad input (nothing is changed then)."""
    check_node(cib, server)
    check_opt_in(cib)
    agent_params = primitive_params(kind, settings)
    restart = dict(settings).get("restart", "") if kind is ResourceKind.APP else ""
    threshold = restart_threshold(restart) if kind is ResourceKind.APP else None
    taken = _ids(cib)
    primitive_id = new_primitive_id(cib, taken, tag)
    group_id = _unique(taken, primitive_id + GROUP_SUFFIX)
    group = ET.SubElement(_section(cib, "resources"), "group", {"id": group_id})
    pairs = [(TAG_META, tag)]
    if restart:
        pairs.append((RESTART_META, restart))
    if threshold is not None:
        pairs.append(("migration-threshold", threshold))
    add_primitive(
        group,
        taken,
        primitive_id,
        IP_AGENT if kind is ResourceKind.IP else APP_AGENT,
        agent_params,
        pairs,
        IP_OPERATIONS if kind is ResourceKind.IP else APP_OPERATIONS,
    )
    add_meta(group, taken, [("resource-stickiness", str(_stickiness_for(switchback)))])
    set_priority(cib, group_id, server, PRIORITY_MIN)
    return group_id


def check_opt_in(cib: ET.Element) -> None:
    """Refused unless the cluster is opt-in (``symmetric-cluster=false``)."""
    if not is_opt_in(cib):
        raise Refused(
            "this cluster is symmetric (opt-out): a hierarchy would run on every node, "
            "not only on the servers it is extended to. LK Console needs "
            "symmetric-cluster=false: give your other resources location constraints, "
            "then run: crm_attribute --type crm_config --name symmetric-cluster --update false"
        )


def new_primitive_id(cib: ET.Element, taken: set[str], tag: str) -> str:
    """The XML id of a new resource tagged ``tag`` (added to ``taken``); Refused when the
    tag or its id is in use."""
    existing = find_tag(cib, tag)
    if existing is not None:
        raise Refused(f"tag {tag} is already used by a resource of hierarchy {existing[0].top_id}")
    primitive_id = tag_to_id(tag)
    if primitive_id in taken:
        raise Refused(
            f"tag {tag} is already used in this cluster (an element with id {primitive_id})"
        )
    taken.add(primitive_id)
    return primitive_id


def _nvpair_set(
    parent: ET.Element, taken: set[str], set_tag: str, set_id: str, pairs: Iterable[tuple[str, str]]
) -> ET.Element:
    attributes = ET.SubElement(parent, set_tag, {"id": _unique(taken, set_id)})
    for name, value in pairs:
        ET.SubElement(
            attributes,
            "nvpair",
            {"id": _unique(taken, f"{attributes.get('id')}-{name}"), "name": name, "value": value},
        )
    return attributes


def add_meta(element: ET.Element, taken: set[str], pairs: Iterable[tuple[str, str]]) -> None:
    """A ``meta_attributes`` set of ``pairs`` on ``element`` (a group, a clone)."""
    _nvpair_set(element, taken, "meta_attributes", f"{element.get('id')}-meta", pairs)


def add_primitive(
    parent: ET.Element,
    taken: set[str],
    primitive_id: str,
    agent: Agent,
    agent_params: Mapping[str, str],
    meta_pairs: Sequence[tuple[str, str]],
    operations: Iterable[tuple[str, ...]],
) -> ET.Element:
    """A primitive of ``agent`` in ``parent``: its parameters, meta attributes and
    operations (name, interval, timeout[, role])."""
    primitive = ET.SubElement(
        parent,
        "primitive",
        {"id": primitive_id, "class": agent.standard, "provider": agent.provider,
         "type": agent.type},
    )  # fmt: skip
    _nvpair_set(primitive, taken, "instance_attributes", f"{primitive_id}-params",
                agent_params.items())  # fmt: skip
    _nvpair_set(primitive, taken, "meta_attributes", f"{primitive_id}-meta", meta_pairs)
    ops = ET.SubElement(primitive, "operations")
    for name, interval, timeout, *role in operations:
        attrs = {"id": _unique(taken, f"{primitive_id}-{name}-{interval}"), "name": name,
                 "interval": interval, "timeout": timeout}  # fmt: skip
        if role:
            attrs["id"] = _unique(taken, f"{primitive_id}-{name}-{interval}-{role[0].lower()}")
            attrs["role"] = role[0]
        ET.SubElement(ops, "op", attrs)
    return primitive


def _stickiness_for(switchback: SwitchbackType) -> int:
    return STICKINESS_INTELLIGENT if switchback is SwitchbackType.INTELLIGENT else 0


def _location_id(top_id: str, node: str) -> str:
    return f"{top_id}-on-{tag_to_id(node)}"


def set_priority(cib: ET.Element, top_id: str, node: str, priority: int) -> None:
    """Allow ``top_id`` on ``node`` with ``priority`` (one location constraint)."""
    check_node(cib, node)
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise Refused(f"priority {priority} is out of range {PRIORITY_MIN}-{PRIORITY_MAX}")
    _element(cib, top_id)
    constraints = _section(cib, "constraints")
    preference_id = top_id + IN_SERVICE_SUFFIX
    mine = [
        c
        for c in constraints
        if c.tag == "rsc_location"
        and c.get("rsc") == top_id
        and c.get("node") == node
        and not c.get("id", "").startswith(CLI_PREFIX)
        and c.get("id") != preference_id
    ]
    score = str(priority_to_score(priority))
    if mine:
        mine[0].set("score", score)
        for extra in mine[1:]:
            constraints.remove(extra)
        return
    ET.SubElement(
        constraints,
        "rsc_location",
        {"id": _unique(_ids(cib), _location_id(top_id, node)), "rsc": top_id, "node": node,
         "score": score},
    )  # fmt: skip


def remove_priority(cib: ET.Element, top_id: str, node: str) -> bool:
    """Remove ``node`` from the servers of ``top_id``; False if it was not there."""
    constraints = _section(cib, "constraints")
    preference_id = top_id + IN_SERVICE_SUFFIX
    gone = [
        c
        for c in constraints
        if c.tag == "rsc_location"
        and c.get("rsc") == top_id
        and c.get("node") == node
        and c.get("id") != preference_id
        and parse_score(c.get("score")) >= 0
    ]
    for c in gone:
        constraints.remove(c)
    return bool(gone)


def set_switchback(cib: ET.Element, top_id: str, switchback: SwitchbackType) -> None:
    set_meta(cib, top_id, "resource-stickiness", str(_stickiness_for(switchback)))


def set_stopped(cib: ET.Element, top_id: str, stopped: bool) -> None:
    """Out of Service (target-role=Stopped on the group), or In Service (none anywhere)."""
    top = _element(cib, top_id)
    taken = _ids(cib)
    if stopped:
        _set_nvpair(top, "meta_attributes", "target-role", "Stopped", taken)
        return
    for element in (top, *top.findall("primitive")):
        if "target-role" in meta(element):
            _set_nvpair(element, "meta_attributes", "target-role", None, taken)


def set_preference(cib: ET.Element, top_id: str, node: str | None) -> None:
    """The temporary In Service preference of ``top_id`` for ``node`` (None: none)."""
    constraints = _section(cib, "constraints")
    preference_id = top_id + IN_SERVICE_SUFFIX
    for c in [c for c in constraints if c.get("id") == preference_id]:
        constraints.remove(c)
    if node is None:
        return
    check_node(cib, node)
    ET.SubElement(
        constraints,
        "rsc_location",
        {"id": preference_id, "rsc": top_id, "node": node, "score": "INFINITY"},
    )


def remove_hierarchy(cib: ET.Element, top_id: str) -> None:
    """Remove the hierarchy and every constraint on it or on its resources (a DataKeeper
    hierarchy's mirror too: its clone and the clone's constraints)."""
    top = _element(cib, top_id)
    ids = {top_id, *(p.get("id", "") for p in top.iter("primitive"))}
    resources = _section(cib, "resources")
    mirror = mirror_primitive(cib, top_id)
    clone = next((c for c in resources.findall("clone") if mirror in list(c)), None)
    if clone is not None:
        ids |= {clone.get("id", ""), *(p.get("id", "") for p in clone.iter("primitive"))}
        resources.remove(clone)
    resources.remove(top)
    constraints = _section(cib, "constraints")
    for c in list(constraints):
        if not _references(c, ids):
            continue
        refs = list(c.iter("resource_ref"))
        if refs and any(r.get("id") not in ids for r in refs):
            for parent in c.iter():  # a set that names others too: only ours go
                for ref in [r for r in parent.findall("resource_ref") if r.get("id") in ids]:
                    parent.remove(ref)
            continue
        constraints.remove(c)


__all__ = [
    "ANYTHING_AGENT",
    "APP_AGENT",
    "IP_AGENT",
    "Agent",
    "CibError",
    "HierarchyConfig",
    "Member",
    "Refused",
    "Version",
    "check_node",
    "cluster_name",
    "copy_of",
    "find",
    "find_tag",
    "hierarchies",
    "hierarchy_id",
    "hierarchy_of",
    "id_to_tag",
    "is_opt_in",
    "kind_of",
    "new_hierarchy",
    "nodes",
    "parse",
    "parse_configuration",
    "priority_to_score",
    "remove_hierarchy",
    "remove_priority",
    "resource_id",
    "score_to_priority",
    "set_preference",
    "set_priority",
    "set_stopped",
    "set_switchback",
    "stable_int",
    "tag_to_id",
    "to_text",
    "version",
]
