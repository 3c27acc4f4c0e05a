"""A plan's steps as one change of a CIB copy, and what Pacemaker must then do.

Pure (no I/O): :func:`build` takes the CIB as read, where each resource runs now, and the
plan's steps; it returns the changed copy, the *intents* (where each hierarchy it touches
must run once Pacemaker has acted, which ``crm_simulate`` checks before the push and the
backend waits for after it) and the *follow-ups* (a second change once an intent is
reached: clear the temporary In Service preference; remove a hierarchy once stopped).

Steps and their CIB change:

- ``CreateResource``: a new group of one primitive (``IPaddr2`` or ``lkconsole:app``),
  allowed on its server with priority 1, in service there.
- ``BringNewInService``: what CreateResource already does (the intent is checked).
- ``AddResource``: the hierarchy defined on one more server: its tag and settings must be
  the ones it has (one primitive serves every server); the server gets a priority from the
  plan's ``SetPriorities``, else the next multiple of 10.
- ``SetPriorities``: one location constraint per server (score 1000 − priority), and the
  switchback (stickiness) when given.
- ``RemovePriority``/``RemoveResources`` (unextend): that server's constraint goes.
- ``TakeOutOfService``: ``target-role=Stopped``, no preference.
- ``BringInService``: no target-role, a temporary preference for the server.
- ``DeleteHierarchy``: stopped first, removed once stopped (at once if not running).
- ``CreateDependency``/``DeleteDependency``: the child's group joins the parent's, or a
  child and what it depends on leave for a group of their own (:mod:`cib_tree`).
- DataKeeper's extend (``operations_dk``), create, unextend and delete
  (``dk_lifecycle``); the mirror operations (pause, resume, full resync, verify,
  speed limit, mode, Force Online, a switchover's MakeSource): :mod:`mirror_ops`;
  Resize Mirror is not one change but phases the backend makes (:mod:`resize_dk`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from core.backends.pacemaker import cib as cibxml
from core.backends.pacemaker import (
    cib_dk,
    dependency_steps,
    dk_lifecycle,
    mirror_ops,
    operations_dk,
    resize_dk,
)
from core.backends.pacemaker.cib import HierarchyConfig, Refused
from core.backends.pacemaker.mirror_ops import NodeRequest
from core.backends.pacemaker.operations_dk import NodeWork
from core.errors import OperationError
from core.model import ResourceKind
from core.permissions import Op
from core.plan import (
    AddResource,
    BringInService,
    BringNewInService,
    ConfigureMirror,
    CreateDataKeeper,
    CreateDataKeeperTarget,
    CreateDependency,
    CreateDisk,
    CreateFileSystemResource,
    CreateResource,
    DeleteDependency,
    DeleteHierarchy,
    GrowBitmap,
    GrowVolume,
    MakeFileSystem,
    RemoveBitmapFile,
    RemoveMirrorTarget,
    RemovePriority,
    RemoveResources,
    SetMirrorSize,
    SetPriorities,
    StartResync,
    Step,
    StopMirrors,
    TakeOutOfService,
)

# The least operation (permission table) each step needs: a plan cannot smuggle a step
# past the role its own ``op`` says.
STEP_OPS: Mapping[type[Step], Op] = {
    CreateResource: Op.CREATE_HIERARCHY,
    BringNewInService: Op.CREATE_HIERARCHY,
    AddResource: Op.EXTEND_HIERARCHY,
    SetPriorities: Op.EXTEND_HIERARCHY,
    RemovePriority: Op.UNEXTEND_HIERARCHY,
    RemoveResources: Op.UNEXTEND_HIERARCHY,
    DeleteHierarchy: Op.DELETE_HIERARCHY,
    TakeOutOfService: Op.OUT_OF_SERVICE,
    BringInService: Op.IN_SERVICE,
    CreateDependency: Op.CREATE_DEPENDENCY,
    DeleteDependency: Op.DELETE_DEPENDENCY,
    CreateDataKeeperTarget: Op.EXTEND_HIERARCHY,
    ConfigureMirror: Op.EXTEND_HIERARCHY,
    StartResync: Op.EXTEND_HIERARCHY,
    # DataKeeper's create, unextend and delete (dk_lifecycle.py)
    CreateDisk: Op.CREATE_HIERARCHY,
    MakeFileSystem: Op.CREATE_HIERARCHY,
    CreateDataKeeper: Op.CREATE_HIERARCHY,
    CreateFileSystemResource: Op.CREATE_HIERARCHY,
    StopMirrors: Op.UNEXTEND_HIERARCHY,
    RemoveMirrorTarget: Op.UNEXTEND_HIERARCHY,
    RemoveBitmapFile: Op.UNEXTEND_HIERARCHY,
    **mirror_ops.STEP_OPS,  # pause, resume, full resync, verify, speed, mode, force online
    # Resize Mirror: its phases are the backend's (resize_dk.py), not one change
    GrowVolume: Op.RESIZE_MIRROR,
    GrowBitmap: Op.RESIZE_MIRROR,
    SetMirrorSize: Op.RESIZE_MIRROR,
}


class Unsupported(OperationError):
    """A step this backend cannot carry out (DataKeeper's, for now)."""


@dataclass(frozen=True)
class Intent:
    """Where a hierarchy must run once Pacemaker acted (None: nowhere; gone: removed)."""

    top_id: str
    tag: str
    where: str | None
    gone: bool = False
    step: str = ""  # the title of the step that wants it

    @property
    def wanted(self) -> str:
        if self.gone:
            return f"{self.tag} removed"
        if self.where is None:
            return f"{self.tag} out of service"
        return f"{self.tag} in service on {self.where}"


@dataclass(frozen=True)
class FollowUp:
    """A second change once ``intent`` is reached."""

    kind: str  # "clear-preference" or "remove"
    top_id: str
    tag: str
    node: str = ""


@dataclass
class Change:
    """What :func:`build` made of a plan."""

    cib: ET.Element
    intents: list[Intent] = field(default_factory=list)
    follow_ups: list[FollowUp] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # top ids of new hierarchies
    touched: list[str] = field(default_factory=list)  # top ids changed
    cleanups: list[tuple[str, str]] = field(default_factory=list)  # (top id, node)
    node_work: list[NodeWork] = field(default_factory=list)  # before the push (DataKeeper)
    node_requests: list[NodeRequest] = field(default_factory=list)  # after it (mirror_ops)
    grows: dict[str, str] = field(default_factory=dict)  # primitive id → a node it joins
    addresses: Mapping[str, str] = field(default_factory=dict)  # node → Corosync address
    promoted: Mapping[str, Sequence[str]] = field(default_factory=dict)  # clone → its source
    volume_sizes: dict[tuple[str, str], int] = field(default_factory=dict)  # (node, path)
    after_work: list[NodeWork] = field(default_factory=list)  # after the push (best effort)
    shrinks: dict[str, str] = field(default_factory=dict)  # primitive id → a node it leaves
    made: dict[str, str] = field(default_factory=dict)  # a create's step key → mirror id
    done_work: list[NodeWork] = field(default_factory=list)  # node work done (to undo)

    def intent(self, top_id: str) -> Intent | None:
        return next((i for i in reversed(self.intents) if i.top_id == top_id), None)

    def touch(self, h: HierarchyConfig) -> None:
        """``h`` is changed by this plan (once)."""
        if h.top_id not in self.touched:
            self.touched.append(h.top_id)

    def set_intent(self, intent: Intent) -> None:
        self.intents = [i for i in self.intents if i.top_id != intent.top_id] + [intent]
        if intent.top_id not in self.touched:
            self.touched.append(intent.top_id)


def unsupported(steps: Sequence[Step]) -> list[Step]:
    return [s for s in steps if type(s) not in STEP_OPS]


def check_supported(steps: Sequence[Step]) -> None:
    """Raise :class:`Unsupported` for the first step this backend cannot do."""
    for step in unsupported(steps):
        raise Unsupported(
            f"{type(step).__name__} is not available on a Pacemaker cluster yet: DataKeeper "
            "mirrors between real nodes come in a later version of LK Console (IP and "
            "Generic Application hierarchies are available now)",
            step=step.title,
        )


def _hierarchy(cib: ET.Element, hid: int) -> HierarchyConfig:
    """The hierarchy a step names; Refused while a resize of its mirror is pending."""
    h = cibxml.find(cib, hid)
    if h is None:
        raise Refused(
            "the hierarchy is no longer in the cluster's configuration (someone removed it); reload"
        )
    resize_dk.refuse_if_pending(h)
    return h


def running_nodes(h: HierarchyConfig, running: Mapping[str, Sequence[str]]) -> list[str]:
    """Where any resource of ``h`` runs now."""
    return sorted({n for m in h.members for n in running.get(m.xml_id, ())})


def _next_priority(h: HierarchyConfig, pending: Mapping[str, int]) -> int:
    used = {p for _s, p in h.priorities} | set(pending.values())
    top = max(used, default=0)
    candidate = (top // 10 + 1) * 10
    if candidate <= 999:
        return candidate
    return next(p for p in range(1, 1000) if p not in used)


def build(
    current: ET.Element,
    steps: Sequence[Step],
    running: Mapping[str, Sequence[str]],
    addresses: Mapping[str, str] | None = None,
    *,
    promoted: Mapping[str, Sequence[str]] | None = None,
    volumes: Mapping[tuple[str, str], int] | None = None,
) -> Change:
    """The change ``steps`` make to a copy of ``current`` (``running``: primitive id →
    the nodes it runs on now; ``addresses``: node → its Corosync address, for a mirror;
    ``promoted``: a mirror's primitive id → where it is Promoted (its source);
    ``volumes``: (node, path) → size of the volumes the plan's new mirrors use).
    Raises Refused (bad input) or Unsupported, naming the step (as
    ``OperationError.step``)."""
    check_supported(steps)
    change = Change(cibxml.copy_of(current), addresses=dict(addresses or {}),
                    promoted=dict(promoted or {}), volume_sizes=dict(volumes or {}))  # fmt: skip
    work = change.cib
    extended: dict[str, dict[str, int]] = {}  # top id → servers given by AddResource
    for step in steps:
        try:
            _apply_step(work, step, running, change, extended)
        except Refused as exc:
            raise OperationError(str(exc), step=step.title) from exc
    for top_id, servers in extended.items():  # AddResource without a SetPriorities
        h = next(x for x in cibxml.hierarchies(work) if x.top_id == top_id)
        for server in servers:
            if h.priority_of(server) is None:
                priority = _next_priority(h, {})
                cibxml.set_priority(work, top_id, server, priority)
                change.lines.append(f"{h.root.tag}: {server} gets priority {priority}")
                h = next(x for x in cibxml.hierarchies(work) if x.top_id == top_id)
    return change


def _create(
    work: ET.Element,
    step: CreateResource,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    title = step.title
    if step.kind not in (ResourceKind.IP, ResourceKind.APP):
        raise Refused(f"a {step.kind.label} resource cannot be created on Pacemaker yet")
    top_id = cibxml.new_hierarchy(
        work,
        tag=step.tag,
        kind=step.kind,
        settings=step.settings,
        server=step.server,
        switchback=step.switchback,
    )
    change.created.append(top_id)
    change.set_intent(Intent(top_id, step.tag, step.server, step=title))
    change.follow_ups.append(FollowUp("check-started", top_id, step.tag, step.server))
    change.lines.append(
        f"{step.tag}: a new hierarchy ({_agent_of(step.kind)}) on {step.server}, priority 1"
    )


def _bring_new_in_service(
    work: ET.Element,
    step: BringNewInService,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    found = cibxml.find_tag(work, step.root_tag)
    if found is None or found[0].top_id not in change.created:
        raise Refused(f"{step.root_tag} is not a hierarchy this plan creates")
    intent = change.intent(found[0].top_id)
    if intent is None or intent.where != step.server:
        raise Refused(f"{step.root_tag} is created on another server than {step.server}")


def _add_resource(
    work: ET.Element,
    step: AddResource,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    r = step.resource
    h = _hierarchy(work, r.hierarchy_id)
    member = h.member(r.resource_id)
    if member is None:
        raise Refused(f"resource {r.tag} is not in hierarchy {h.root.tag}")
    if r.tag != member.tag:
        raise Refused(
            f"on a Pacemaker cluster a resource has one tag on every server: {r.tag} "
            f"would be {member.tag} on {r.server} too"
        )
    if r.settings and dict(r.settings) != dict(member.settings):
        raise Refused(
            f"on a Pacemaker cluster a resource has the same settings on every server: "
            f"{r.tag} cannot differ on {r.server}"
        )
    cibxml.check_node(work, r.server)
    extended.setdefault(h.top_id, {})[r.server] = 0
    change.lines.append(f"{member.tag}: defined on {r.server}")
    change.touch(h)


def _set_priorities(
    work: ET.Element,
    step: SetPriorities,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    h = _hierarchy(work, step.hierarchy_id)
    servers = [s for s, _p in step.priorities]
    priorities = [p for _s, p in step.priorities]
    if len(set(servers)) != len(servers):
        raise Refused("a server is named twice in the priorities")
    others = {s: p for s, p in h.priorities if s not in servers}
    clash = [p for p in priorities if p in others.values()] + [
        p for p in priorities if priorities.count(p) > 1
    ]
    if clash:
        owner = next((s for s, p in others.items() if p == clash[0]), None)
        used = f" (used by {owner})" if owner else " (given twice)"
        raise Refused(f"priority {clash[0]} is already in use{used}: priorities are unique")
    for server, priority in step.priorities:
        cibxml.set_priority(work, h.top_id, server, priority)
    operations_dk.clone_scores(
        work, h, {s: cibxml.priority_to_score(p) for s, p in step.priorities}
    )
    if step.switchback is not None:
        cibxml.set_switchback(work, h.top_id, step.switchback)
    shown = ", ".join(f"{s}={p}" for s, p in step.priorities)
    change.lines.append(f"{h.root.tag}: priorities {shown}")
    change.touch(h)


def _unextend(
    work: ET.Element,
    step: RemovePriority | RemoveResources,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    h = _hierarchy(work, step.hierarchy_id)
    if isinstance(step, RemoveResources):
        tags = {m.tag for m in h.members}
        if set(step.tags) != tags:
            raise Refused(
                "on a Pacemaker cluster a hierarchy is unextended from a server as a "
                f"whole: {', '.join(sorted(tags))}, not only {', '.join(step.tags)}"
            )
    if step.server in operations_dk.in_service_nodes(h, running, change.promoted):
        raise Refused(
            f"{h.root.tag} is in service on {step.server}: switch it over to another server first"
        )
    if h.priority_of(step.server) is None:
        if isinstance(step, RemoveResources) or h.top_id in change.touched:
            return  # the other step of the unextend did it
        raise Refused(f"{h.root.tag} is not extended to {step.server}")
    cibxml.remove_priority(work, h.top_id, step.server)
    remaining = cibxml.find(work, step.hierarchy_id)
    if remaining is not None and not remaining.priorities:
        raise Refused(
            f"{step.server} is the last server of {h.root.tag}: delete the hierarchy instead"
        )
    change.lines.append(f"{h.root.tag}: no longer on {step.server}")
    change.touch(h)


def _take_out_of_service(
    work: ET.Element,
    step: TakeOutOfService,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    title = step.title
    h = _hierarchy(work, step.hierarchy_id)
    cibxml.set_stopped(work, h.top_id, True)
    cibxml.set_preference(work, h.top_id, None)
    operations_dk.hold_sources(work, h, True, step.server)
    change.set_intent(Intent(h.top_id, h.root.tag, None, step=title))
    where = operations_dk.in_service_nodes(h, running, change.promoted)
    change.lines.append(
        f"{h.root.tag}: out of service" + (f" on {', '.join(where)}" if where else "")
    )


def _bring_in_service(
    work: ET.Element,
    step: BringInService,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    title = step.title
    h = _hierarchy(work, step.hierarchy_id)
    if h.priority_of(step.server) is None:
        raise Refused(f"{h.root.tag} is not extended to {step.server}: extend it there first")
    cibxml.set_stopped(work, h.top_id, False)
    cibxml.set_preference(work, h.top_id, step.server)
    operations_dk.hold_sources(work, h, False, step.server)
    change.set_intent(Intent(h.top_id, h.root.tag, step.server, step=title))
    change.follow_ups = [f for f in change.follow_ups if f.top_id != h.top_id]
    change.follow_ups.append(FollowUp("clear-preference", h.top_id, h.root.tag, step.server))
    change.cleanups.append((h.top_id, step.server))
    change.lines.append(f"{h.root.tag}: in service on {step.server}")


def _delete(
    work: ET.Element,
    step: DeleteHierarchy,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    title = step.title
    h = _hierarchy(work, step.hierarchy_id)
    dk_lifecycle.delete_mirror(work, h, change)  # its clone stops and goes too
    if running_nodes(h, running):
        cibxml.set_stopped(work, h.top_id, True)
        cibxml.set_preference(work, h.top_id, None)
        change.set_intent(Intent(h.top_id, h.root.tag, None, step=title))
        change.follow_ups = [f for f in change.follow_ups if f.top_id != h.top_id]
        change.follow_ups.append(FollowUp("remove", h.top_id, h.root.tag))
        change.lines.append(f"{h.root.tag}: out of service, then removed")
    else:
        cibxml.remove_hierarchy(work, h.top_id)
        change.set_intent(Intent(h.top_id, h.root.tag, None, gone=True, step=title))
        change.lines.append(f"{h.root.tag}: removed")


def _dk_target(
    work: ET.Element,
    step: CreateDataKeeperTarget,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    h = _hierarchy(work, step.resource.hierarchy_id)
    change.node_work += operations_dk.create_target(
        work, h, step, change.addresses, running, change.promoted
    )
    dk = operations_dk.mirror_member(h)
    change.grows[dk.xml_id] = step.resource.server
    change.lines.append(f"{dk.tag}: {step.resource.server} joins the mirror")
    change.touch(h)


def _configure_mirror(
    work: ET.Element,
    step: ConfigureMirror,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    h = cibxml.hierarchy_of(work, step.resource_id)
    operations_dk.configure_mirror(work, h, step)
    change.lines.append(f"{step.dk_tag}: {step.target}'s bitmap {step.target_bitmap or 'none'}")
    change.touch(h)


def _start_resync(
    work: ET.Element,
    step: StartResync,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    change.lines.append(
        operations_dk.start_resync(cibxml.hierarchy_of(work, step.resource_id), step)
    )


_HANDLERS: Mapping[type[Step], Callable[..., None]] = {
    CreateResource: _create,
    BringNewInService: _bring_new_in_service,
    AddResource: _add_resource,
    SetPriorities: _set_priorities,
    RemovePriority: _unextend,
    RemoveResources: _unextend,
    TakeOutOfService: _take_out_of_service,
    BringInService: _bring_in_service,
    DeleteHierarchy: _delete,
    CreateDependency: dependency_steps.create_dependency,
    DeleteDependency: dependency_steps.delete_dependency,
    CreateDataKeeperTarget: _dk_target,
    ConfigureMirror: _configure_mirror,
    StartResync: _start_resync,
    CreateDisk: dk_lifecycle.create_disk,
    MakeFileSystem: dk_lifecycle.make_file_system,
    CreateDataKeeper: dk_lifecycle.create_datakeeper,
    CreateFileSystemResource: dk_lifecycle.create_filesystem_resource,
    StopMirrors: dk_lifecycle.stop_mirrors,
    RemoveMirrorTarget: dk_lifecycle.remove_mirror_target,
    RemoveBitmapFile: dk_lifecycle.remove_bitmap_file,
    **mirror_ops.HANDLERS,
}


def _apply_step(
    work: ET.Element,
    step: Step,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    handler = _HANDLERS.get(type(step))
    if handler is None:
        raise Unsupported(
            f"{type(step).__name__} is not available on a Pacemaker cluster", step.title
        )
    handler(work, step, running, change, extended)


def _agent_of(kind: ResourceKind) -> str:
    return str(cibxml.IP_AGENT if kind is ResourceKind.IP else cibxml.APP_AGENT)


def follow_up_change(current: ET.Element, follow_up: FollowUp) -> ET.Element | None:
    """The second change of ``follow_up`` on a copy of ``current`` (None: nothing to do)."""
    work = cibxml.copy_of(current)
    h = next((x for x in cibxml.hierarchies(work) if x.top_id == follow_up.top_id), None)
    if h is None:
        return None
    if follow_up.kind == "clear-preference":  # the group's, and a switchover's source's
        mirrors = [
            m.xml_id
            for m in h.members
            if m.kind is ResourceKind.DATAKEEPER and cib_dk.source_preference(work, m.xml_id)
        ]
        if h.preferred is None and not mirrors:
            return None
        cibxml.set_preference(work, h.top_id, None)
        for rid in mirrors:
            cib_dk.set_source_preference(work, rid, None)
        return work
    if follow_up.kind == "remove":
        cibxml.remove_hierarchy(work, h.top_id)
        return work
    return None


__all__ = [
    "STEP_OPS",
    "Change",
    "FollowUp",
    "Intent",
    "Unsupported",
    "build",
    "check_supported",
    "follow_up_change",
    "running_nodes",
    "unsupported",
]
