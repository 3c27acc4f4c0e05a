"""Resource Properties: Switchback Type, the priorities of every server, and a DataKeeper
resource's mirror settings (pure).

- **Switchback Type**: intelligent or automatic; automatic is refused for a hierarchy
  that contains a DataKeeper resource (DOMAIN.md: DataKeeper supports only intelligent,
  and so does every resource of its hierarchy).
- **Priorities**: the same rules as Extend: each a whole number 1-999, unique among the
  hierarchy's servers (lower = preferred), for the servers where it is defined.
- **Mirror settings** of a DataKeeper resource: asynchronous or synchronous replication
  per target and the resync speed limit (0 = unlimited). DataKeeper's compression level
  (0-9) exists only where the mirror engine compresses; this project's engine does not,
  so the field is not shown and a level given to lkctl is refused, saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.checks import Problem, priority_problems
from core.errors import CheckFailed
from core.model import Cluster, Hierarchy, SwitchbackType
from core.plan import SetMirrorMode, SetPriorities, SetSpeedLimit, Step
from core.rules.mirror import MAX_SPEED_KBPS

COMPRESSION_MIN = 0
COMPRESSION_MAX = 9


@dataclass(frozen=True)
class ResourcePropertiesRequest:
    tag: str  # any tag of the hierarchy (the DataKeeper resource's for mirror settings)
    switchback_type: str = ""  # "" = unchanged
    priorities: Mapping[str, object] = field(default_factory=dict)  # server -> priority
    asynchronous: Mapping[str, bool] = field(default_factory=dict)  # target -> asynchronous
    speed_limit_kbps: object = None  # None = unchanged
    compression_level: object = None  # None = unchanged (only where the engine has it)


def priority_field(server: str) -> str:
    """The field (and widget objectName) of ``server``'s priority."""
    return f"priority_{server}"


def asynchronous_field(server: str) -> str:
    return f"asynchronous_{server}"


def find(cluster: Cluster, tag: str) -> tuple[Hierarchy, int]:
    """The hierarchy and the logical resource tagged ``tag`` (on any server)."""
    text = (tag or "").strip()
    inst = cluster.find_tag(text) if text else None
    if inst is None:
        raise CheckFailed([Problem("tag", "unknown_tag", f"There is no resource tagged {tag!r}.")])
    h = cluster.hierarchy(inst.hierarchy_id)
    assert h is not None
    return h, inst.resource_id


def switchback_problems(h: Hierarchy, value: str) -> list[Problem]:
    text = (value or "").strip().lower()
    if text == "":
        return []
    if text not in {t.value for t in SwitchbackType}:
        return [
            Problem(
                "switchback_type",
                "unknown_switchback",
                f"Switchback Type {value!r} is not one of intelligent, automatic.",
            )
        ]
    if text == SwitchbackType.AUTOMATIC.value and h.depends_on_datakeeper():
        return [
            Problem(
                "switchback_type",
                "automatic_with_datakeeper",
                f"Switchback Type automatic is not supported for {h.root_tag}: its hierarchy "
                "contains a DataKeeper resource, and DataKeeper supports only intelligent "
                "switchback (an administrator switches back by hand). Choose intelligent.",
            )
        ]
    return []


def priority_problems_of(
    h: Hierarchy, wanted: Mapping[str, object]
) -> tuple[dict[str, int], list[Problem]]:
    """Every server's priority after the change (those not given keep theirs)."""
    problems: list[Problem] = []
    result = {e.server: e.priority for e in h.equivalencies}
    for server, value in wanted.items():
        name = priority_field(server)
        if server not in result:
            problems.append(
                Problem(
                    name,
                    "not_extended",
                    f"{h.root_tag} is not defined on {server}: it has no priority there "
                    "(extend it first).",
                )
            )
            continue
        number, found = priority_problems(name, f"Priority of {server}", value)
        problems += found
        if number is not None:
            result[server] = number
    if problems:
        return result, problems
    order = list(h.servers)
    seen: dict[int, str] = {}
    for server in sorted(result, key=lambda s: (s not in wanted, order.index(s))):
        number = result[server]
        if number in seen:
            field_server = server if server in wanted else seen[number]
            other = seen[number] if field_server == server else server
            problems.append(
                Problem(
                    priority_field(field_server),
                    "priority_in_use",
                    f"Priority {number} is also {other}'s for {h.root_tag}: each server of a "
                    "hierarchy needs its own priority (1-999, lower is preferred).",
                )
            )
        else:
            seen[number] = server
    return result, problems


def mirror_problems(
    h: Hierarchy, resource_id: int, request: ResourcePropertiesRequest
) -> list[Problem]:
    mirror = h.mirror(resource_id)
    touched = (
        request.asynchronous
        or request.speed_limit_kbps is not None
        or request.compression_level is not None
    )
    if mirror is None:
        if touched:
            return [
                Problem(
                    "tag",
                    "not_datakeeper",
                    f"{h.tag_of(resource_id)} is a {h.kind_of(resource_id).label} resource: "
                    "mirror settings belong to a DataKeeper resource.",
                )
            ]
        return []
    problems: list[Problem] = []
    for server in request.asynchronous:
        if mirror.target(server) is None:
            names = ", ".join(t.server for t in mirror.targets) or "none yet"
            problems.append(
                Problem(
                    asynchronous_field(server),
                    "not_a_target",
                    f"{server} is not a target of the mirror {h.tag_of(resource_id)} "
                    f"(its targets: {names}).",
                )
            )
    if request.speed_limit_kbps is not None:
        problems += _whole(
            "speed_limit",
            "Speed Limit",
            request.speed_limit_kbps,
            0,
            MAX_SPEED_KBPS,
            " KB/s (0 = unlimited)",
        )
    if request.compression_level is not None:
        problems.append(
            Problem(
                "compression_level",
                "not_supported",
                "The mirror engine of this cluster does not compress: there is no "
                f"Compression Level ({COMPRESSION_MIN}-{COMPRESSION_MAX}) to set.",
            )
        )
    return problems


def _whole(
    field_name: str, label: str, value: object, low: int, high: int, unit: str
) -> list[Problem]:
    text = str(value).strip()
    if isinstance(value, bool) or not (isinstance(value, int) or text.isdigit()):
        return [
            Problem(
                field_name,
                "not_integer",
                f"{label} must be a whole number from {low} to {high}{unit}, not {text!r}.",
            )
        ]
    number = value if isinstance(value, int) else int(text)
    if not low <= number <= high:
        return [
            Problem(
                field_name,
                "out_of_range",
                f"{label} {number} is out of range: use {low} to {high}{unit}.",
            )
        ]
    return []


def problems(cluster: Cluster, request: ResourcePropertiesRequest) -> list[Problem]:
    try:
        h, rid = find(cluster, request.tag)
    except CheckFailed as exc:
        return exc.problems
    found = switchback_problems(h, request.switchback_type)
    found += priority_problems_of(h, request.priorities)[1]
    found += mirror_problems(h, rid, request)
    return found


def steps(
    cluster: Cluster, request: ResourcePropertiesRequest
) -> tuple[Hierarchy, tuple[Step, ...]]:
    """The steps that make the properties what ``request`` says (none when they are so
    already); CheckFailed with every problem otherwise."""
    found = problems(cluster, request)
    if found:
        raise CheckFailed(found)
    h, rid = find(cluster, request.tag)
    result: list[Step] = []
    priorities, _ = priority_problems_of(h, request.priorities)
    text = (request.switchback_type or "").strip().lower()
    switchback = SwitchbackType(text) if text else h.switchback
    current = {e.server: e.priority for e in h.equivalencies}
    if priorities != current or switchback is not h.switchback:
        ordered = tuple(sorted(priorities.items(), key=lambda kv: kv[1]))
        result.append(
            SetPriorities(
                h.id,
                h.root_tag,
                ordered,
                switchback if switchback is not h.switchback else None,
            )
        )
    mirror = h.mirror(rid)
    if mirror is not None:
        dk = h.tag_of(rid)
        for t in mirror.targets:
            wanted = request.asynchronous.get(t.server)
            if wanted is not None and wanted != mirror.is_asynchronous(t.server):
                result.append(SetMirrorMode(rid, dk, t.server, bool(wanted)))
        if request.speed_limit_kbps is not None:
            kbps = int(str(request.speed_limit_kbps).strip())
            if kbps != mirror.speed_limit_kbps:
                result.append(SetSpeedLimit(rid, dk, kbps))
    return h, tuple(result)


__all__ = [
    "COMPRESSION_MAX",
    "COMPRESSION_MIN",
    "ResourcePropertiesRequest",
    "asynchronous_field",
    "find",
    "priority_field",
    "problems",
    "steps",
]
