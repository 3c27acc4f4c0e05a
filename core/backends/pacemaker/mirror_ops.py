"""The mirror operations of a DataKeeper resource on Pacemaker: what each step changes in
the CIB copy (pure), and the requests to the source's running engine that the backend
sends once the change (if any) is pushed.

A mirror's source is the node where its clone is Promoted; its engine listens on a
private control socket there (:mod:`core.replication.control`), reached with
``datakeeper admin mirror RID OP [TARGET] [JSON]`` through the backend's runner:

- ``PauseMirror``/``ResumeMirror``/``FullResync``: ``pause``/``resume``/``full_resync``
  of one target; no CIB change (the admin command keeps a pause as the target's
  ``lkdr-RID-paused``, so a restarted source honours it);
- ``VerifyMirror``: ``verify`` (with ``repair``: the differing chunks resynced, then read
  back on both sides); no CIB change;
- ``SetSpeedLimit``: the primitive's meta attribute ``lk-speed-limit`` (a parameter's
  change would restart the source and what depends on it), and ``speed`` at once;
- ``SetMirrorMode``: the primitive's ``lk-modes`` (``NODE=sync|async``), and ``mode``;
- ``MakeSource`` with a full resync (Force Online): before anything else the copy is
  forced (``lkdr-RID-forced``, and its promotion score), so Pacemaker promotes it; the
  agent then resyncs every other copy in full from it.
- a plain ``MakeSource`` (a switchover, the old source alive): a temporary preference
  for the clone's Promoted role on the new server (``RID-clone-in-service``, role
  Promoted), cleared with the group's In Service preference once the hierarchy is in
  service there. Only an in-sync copy has a promotion score (the agent's): the rules
  refuse a switchover to any other, and ``crm_simulate`` shows no promotion there.

A plan without CIB change is never pushed: its requests are all it does.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.backends.pacemaker import cib as cibxml
from core.backends.pacemaker import cib_dk, resize_dk
from core.backends.pacemaker import dk_names as names
from core.backends.pacemaker.cib import HierarchyConfig, Member, Refused
from core.model import ResourceKind
from core.permissions import Op
from core.plan import (
    FullResync,
    MakeSource,
    PauseMirror,
    ResumeMirror,
    SetMirrorMode,
    SetSpeedLimit,
    Step,
    VerifyMirror,
)
from core.rules.mirror import MAX_SPEED_KBPS, METHODS

if TYPE_CHECKING:
    from core.backends.pacemaker.operations import Change

REQUEST_TIMEOUT = 60.0  # seconds for the engine to answer a request
VERIFY_TIMEOUT = 3600.0  # a verify reads every chunk on both sides

STEP_OPS: Mapping[type[Step], Op] = {
    PauseMirror: Op.PAUSE_MIRROR,
    ResumeMirror: Op.RESUME_MIRROR,
    FullResync: Op.FULL_RESYNC,
    SetSpeedLimit: Op.SPEED_LIMIT,
    VerifyMirror: Op.VERIFY_MIRROR,
    SetMirrorMode: Op.SET_RESOURCE_PROPERTIES,
    MakeSource: Op.IN_SERVICE,  # a Force Online plan's own op (FORCE_ONLINE) is checked too
}


@dataclass(frozen=True)
class NodeRequest:
    """A request to the engine of mirror ``rid``'s source, made after the push."""

    rid: str
    tag: str
    op: str  # the control channel's op: pause, resume, full_resync, verify, speed, mode
    target: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    step: str = ""  # the title of the step that wants it
    needed: bool = True  # False: the agent applies the CIB's value anyway (a warning)

    @property
    def timeout(self) -> float:
        return float(self.fields.get("timeout", REQUEST_TIMEOUT))

    def argv(self) -> list[str]:
        args = [self.target] if self.target else [""]
        return [names.AGENT_IN_NODE, "admin", "mirror", self.rid, self.op, *args,
                json.dumps(dict(self.fields))]  # fmt: skip


@dataclass(frozen=True)
class Forcing:
    """Force Online: ``node``'s copy of ``rid`` gets the promotion score (before the push)."""

    rid: str
    tag: str
    node: str


def _mirror_of(work: ET.Element, resource_id: int) -> tuple[HierarchyConfig, Member]:
    for h in cibxml.hierarchies(work):
        m = h.member(resource_id)
        if m is not None and m.kind is ResourceKind.DATAKEEPER:
            resize_dk.refuse_if_pending(h)
            return h, m
    raise Refused("the mirror is no longer in the cluster's configuration; reload")


def _pairs(m: Member, meta_name: str, param: str = "") -> dict[str, str]:
    text = dict(m.meta).get(meta_name) or (m.param(param) if param else "")
    try:
        return names.parse_pairs(text)
    except ValueError as exc:
        raise Refused(f"{m.tag}'s {meta_name} cannot be read ({exc}): fix it with crm") from exc


def _check_target(m: Member, target: str) -> None:
    servers = _pairs(m, names.SERVERS_META, "servers")
    if target not in servers:
        known = ", ".join(servers) or "none"
        raise Refused(f"{target!r} is not a server of the mirror {m.tag} ({known})")


def _target_step(
    work: ET.Element,
    step: PauseMirror | ResumeMirror | FullResync,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    _h, m = _mirror_of(work, step.resource_id)
    _check_target(m, step.target)
    op = {PauseMirror: "pause", ResumeMirror: "resume", FullResync: "full_resync"}[type(step)]
    change.node_requests.append(NodeRequest(m.xml_id, m.tag, op, step.target, step=step.title))


def _verify(
    work: ET.Element,
    step: VerifyMirror,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    _h, m = _mirror_of(work, step.resource_id)
    _check_target(m, step.target)
    if step.method not in METHODS:
        raise Refused(f"method {step.method!r} is not one of {', '.join(METHODS)}")
    if not 0 < step.wait_repair <= VERIFY_TIMEOUT:
        raise Refused(f"the repair's wait {step.wait_repair:g} s is not 1 to {VERIFY_TIMEOUT:g}")
    fields = {"repair": step.repair, "method": step.method, "wait_repair": step.wait_repair,
              "timeout": VERIFY_TIMEOUT + step.wait_repair}  # fmt: skip
    change.node_requests.append(
        NodeRequest(m.xml_id, m.tag, "verify", step.target, fields, step=step.title)
    )


def _speed(
    work: ET.Element,
    step: SetSpeedLimit,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    h, m = _mirror_of(work, step.resource_id)
    if not 0 <= step.kbps <= MAX_SPEED_KBPS:
        raise Refused(
            f"speed limit {step.kbps} KB/s is out of range: 0 (unlimited) to {MAX_SPEED_KBPS}"
        )
    cibxml.set_meta(work, m.xml_id, names.SPEED_META, str(step.kbps))
    change.node_requests.append(
        NodeRequest(m.xml_id, m.tag, "speed", "", {"kbps": step.kbps}, step.title, needed=False)
    )
    change.lines.append(
        f"{m.tag}: {names.SPEED_META}={step.kbps} (a meta attribute: nothing restarts)"
    )
    change.touch(h)


def _mode(
    work: ET.Element,
    step: SetMirrorMode,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    h, m = _mirror_of(work, step.resource_id)
    _check_target(m, step.target)
    modes = _pairs(m, names.MODES_META)
    modes[step.target] = "async" if step.asynchronous else "sync"
    cibxml.set_meta(work, m.xml_id, names.MODES_META, names.format_pairs(modes))
    fields = {"asynchronous": step.asynchronous}
    change.node_requests.append(
        NodeRequest(m.xml_id, m.tag, "mode", step.target, fields, step.title, needed=False)
    )
    change.lines.append(f"{m.tag}: {names.MODES_META} {modes[step.target]} for {step.target}")
    change.touch(h)


def _make_source(
    work: ET.Element,
    step: MakeSource,
    running: Mapping[str, Sequence[str]],
    change: Change,
    extended: dict[str, dict[str, int]],
) -> None:
    if step.full_resync:
        for tag, old in step.mirrors:
            change.lines.append(
                f"{tag}: {step.server}'s copy forced online (it waited for {old}); every "
                "other copy is resynced in full from it"
            )
        return
    if not step.old_source_alive:
        raise Refused(
            "on a Pacemaker cluster a source whose old source is down is made by Pacemaker "
            "(failover) or by Force Online"
        )
    _switch_source(work, step, change)


def _switch_source(work: ET.Element, step: MakeSource, change: Change) -> None:
    """A switchover: each mirror's Promoted role preferred on ``step.server`` until the
    hierarchy is in service there (the agent demotes the old source, which becomes a
    target resynced from the bitmap, and promotes the in-sync copy)."""
    from core.backends.pacemaker.operations import FollowUp, Intent  # it imports this module

    h = cibxml.find(work, step.hierarchy_id)
    if h is None:
        raise Refused("the hierarchy is no longer in the cluster's configuration; reload")
    cibxml.check_node(work, step.server)
    old = dict(step.mirrors)
    mirrors = {m.tag for m in h.members if m.kind is ResourceKind.DATAKEEPER}
    for tag in sorted(set(old) - mirrors) or ([] if mirrors else ["(none named)"]):
        raise Refused(f"{h.root.tag} has no DataKeeper mirror {tag}: nothing to make a source")
    for m in h.members:
        if m.kind is not ResourceKind.DATAKEEPER:
            continue
        _check_target(m, step.server)
        cib_dk.set_source_preference(work, m.xml_id, step.server)
        was = old.get(m.tag) or "the old source"
        change.lines.append(
            f"{m.tag}: {step.server} is the source now (its Promoted role preferred there "
            f"until {h.root.tag} is in service on it), {was} a target"
        )
    change.set_intent(Intent(h.top_id, h.root.tag, step.server, step=step.title))
    if not any(f.top_id == h.top_id and f.kind == "clear-preference" for f in change.follow_ups):
        change.follow_ups.append(FollowUp("clear-preference", h.top_id, h.root.tag, step.server))


HANDLERS: Mapping[type[Step], Callable[..., None]] = {
    PauseMirror: _target_step,
    ResumeMirror: _target_step,
    FullResync: _target_step,
    VerifyMirror: _verify,
    SetSpeedLimit: _speed,
    SetMirrorMode: _mode,
    MakeSource: _make_source,
}


def done_message(steps: Sequence[Step]) -> str:
    """A plan of mirror requests only says what they did, as on the lab ('': other)."""
    if not steps or any(type(s) not in HANDLERS or isinstance(s, MakeSource) for s in steps):
        return ""
    return " ".join(dict.fromkeys(s.title for s in steps))


def forcings(cib: ET.Element, steps: Sequence[Step]) -> list[Forcing]:
    """The copies Force Online makes promotable, before the CIB change is built."""
    found: list[Forcing] = []
    for step in steps:
        if not isinstance(step, MakeSource) or not step.full_resync:
            continue
        h = cibxml.find(cib, step.hierarchy_id)
        if h is None:
            raise Refused("the hierarchy is no longer in the cluster's configuration; reload")
        cibxml.check_node(cib, step.server)
        for m in h.members:
            if m.kind is ResourceKind.DATAKEEPER:
                if step.server not in _pairs(m, names.SERVERS_META, "servers"):
                    raise Refused(f"{step.server} holds no copy of {m.tag}")
                found.append(Forcing(m.xml_id, m.tag, step.server))
    return found


__all__ = ["HANDLERS", "STEP_OPS", "Forcing", "NodeRequest", "done_message", "forcings"]
