"""What-if: what a plan would do to every hierarchy, computed from the snapshot (pure).

Before In Service, Out of Service, Switchover, Unextend, Delete and Stop Server the
console shows, for every hierarchy of the cluster, which resources stop, where they
start, which mirrors change role and what is removed: the plan's steps played on a copy
of the snapshot's states, then compared with the snapshot. ``lkctl … --dry-run`` prints
the same text (:func:`dry_run_text`): the plan's steps, then these lines.

A failover (Stop Server) goes where the lab's failover goes (:func:`failover_target`):
the alive server with the best priority whose mirrors are all "Target"; without one the
hierarchy stays down and its copies wait for the previous source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.model import Cluster, Hierarchy, MirrorState, ResourceState
from core.plan import (
    BringInService,
    DeleteHierarchy,
    MakeSource,
    Plan,
    RemoveMirrorTarget,
    RemovePriority,
    RemoveResources,
    Step,
    StopServer,
    TakeOutOfService,
)
from core.rules.service import not_target_problems

HEADING = "What will happen:"
NOTHING = "nothing changes"


def failover_target(h: Hierarchy, failed: str, alive: Iterable[str]) -> str | None:
    """Where ``h``, in service on ``failed``, fails over: the alive server with the best
    priority whose mirrors are all "Target" (None: it stays down)."""
    up = set(alive) - {failed}
    return next((s for s in h.servers if s in up and not not_target_problems(h, s)), None)


@dataclass
class _Played:
    """One hierarchy while the steps are played: states and mirror roles, mutable."""

    h: Hierarchy
    states: dict[tuple[int, str], ResourceState]
    sources: dict[int, str]
    targets: dict[int, dict[str, MirrorState]]
    servers: list[str]
    deleted: bool = False
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, h: Hierarchy) -> _Played:
        return cls(
            h,
            {(r.resource_id, r.server): r.state for r in h.resources},
            {m.resource_id: m.source for m in h.mirrors},
            {m.resource_id: {t.server: t.state for t in m.targets} for m in h.mirrors},
            list(h.servers),
        )

    def set_all(self, server: str, state: ResourceState) -> None:
        for key in list(self.states):
            if key[1] == server:
                self.states[key] = state

    def in_service_on(self) -> str | None:
        for (rid, server), state in self.states.items():
            if rid == self.h.root_id and state.in_service:
                return server
        return None

    def make_source(self, server: str, old_alive: bool = True) -> None:
        for rid, source in list(self.sources.items()):
            if source == server:
                continue
            roles = self.targets[rid]
            roles.pop(server, None)
            roles[source] = MirrorState.RESYNCING if old_alive else MirrorState.OUT_OF_SYNC
            self.sources[rid] = server


def what_if(cluster: Cluster, plan: Plan) -> list[str]:
    """One line per hierarchy of the cluster: what ``plan`` would do to it."""
    played = {h.id: _Played.of(h) for h in cluster.hierarchies}
    alive = {s.name for s in cluster.servers if s.state.is_alive}
    for step in plan.steps:
        _play(step, played, alive)
    return [f"{p.h.root_tag}: {_describe(p, cluster)}" for p in played.values()]


def dry_run_text(plan: Plan, what_if_lines: Sequence[str]) -> list[str]:
    """What ``--dry-run`` prints and the confirmation dialog's plan page shows."""
    lines = [f"Plan: {plan.name}"]
    lines += [f"  {i}. {title}" for i, title in enumerate(plan.titles, 1)]
    lines.append(HEADING)
    lines += [f"  {line}" for line in what_if_lines]
    return lines


# -- playing the steps ----------------------------------------------------------------------
def _play(step: Step, played: dict[int, _Played], alive: set[str]) -> None:
    if isinstance(step, TakeOutOfService):
        played[step.hierarchy_id].set_all(step.server, step.state)
    elif isinstance(step, BringInService):
        played[step.hierarchy_id].set_all(step.server, ResourceState.ISP)
    elif isinstance(step, MakeSource):
        played[step.hierarchy_id].make_source(step.server, step.old_source_alive)
    elif isinstance(step, RemoveMirrorTarget):
        for p in played.values():
            if step.resource_id in p.targets:
                p.targets[step.resource_id].pop(step.target, None)
    elif isinstance(step, RemoveResources):
        p = played[step.hierarchy_id]
        for key in [k for k in p.states if k[1] == step.server]:
            del p.states[key]
    elif isinstance(step, RemovePriority):
        p = played[step.hierarchy_id]
        p.servers = [s for s in p.servers if s != step.server]
    elif isinstance(step, DeleteHierarchy):
        played[step.hierarchy_id].deleted = True
    elif isinstance(step, StopServer):
        _play_stop(step.server, played, alive)


def _play_stop(server: str, played: dict[int, _Played], alive: set[str]) -> None:
    alive.discard(server)
    for p in played.values():
        if server not in p.servers:
            continue
        was_here = p.in_service_on() == server
        for key, state in list(p.states.items()):
            if key[1] == server:
                p.states[key] = ResourceState.OSF if state.in_service else ResourceState.UNKNOWN
        for roles in p.targets.values():
            if server in roles:
                roles[server] = MirrorState.OUT_OF_SYNC
        if not was_here:
            continue
        new = failover_target(p.h, server, alive)
        if new is None:
            p.notes.append(
                f"stays down: no alive server has every mirror as Target; its copies wait "
                f"for {server} to return"
            )
            for roles in p.targets.values():
                for other, mirror_state in roles.items():
                    if other != server and mirror_state is not MirrorState.TARGET:
                        roles[other] = MirrorState.WAIT_FOR_PREVIOUS_SOURCE
            continue
        p.notes.append(f"fails over from {server} to {new} (priority {p.h.priority_of(new)})")
        p.make_source(new, old_alive=False)
        p.set_all(new, ResourceState.ISP)


# -- describing the outcome -------------------------------------------------------------------
def _describe(p: _Played, cluster: Cluster) -> str:
    h = p.h
    if p.deleted:
        return f"deleted from {', '.join(h.servers)} (every resource; no volume is deleted)"
    parts = list(p.notes)
    servers = [s.name for s in cluster.servers]
    for server in servers:  # what stops comes first, as it happens first
        stops = _changed(p, server, stopping=True)
        if stops:
            failed = any(
                p.states.get((r.resource_id, server)) is ResourceState.OSF
                for r in h.instances_on(server)
            )
            verb = "fails on" if failed else "stops on"
            parts.append(f"{verb} {server} ({', then '.join(stops)})")
    for server in servers:
        starts = _changed(p, server, stopping=False)
        if starts:
            parts.append(f"starts on {server} ({', then '.join(starts)})")
    for server in servers:
        gone = [
            h.tag_of(r.resource_id)
            for r in h.instances_on(server)
            if (r.resource_id, server) not in p.states
        ]
        if gone:
            parts.append(f"removed from {server} ({', '.join(gone)}; its volume is kept)")
    parts += _mirror_changes(p)
    if not parts:
        where = h.in_service_server
        return f"{NOTHING} ({f'in service on {where}' if where else 'out of service'})"
    return "; ".join(parts)


def _changed(p: _Played, server: str, *, stopping: bool) -> list[str]:
    """Tags whose state on ``server`` goes out of (or into) service: parents first when
    stopping, children first when starting."""
    h = p.h
    order = h.resource_ids() if stopping else list(reversed(h.resource_ids()))
    found = []
    for rid in order:
        inst = h.instance(rid, server)
        after = p.states.get((rid, server))
        if inst is None or after is None:
            continue
        was, now = inst.state.in_service, after.in_service
        if (was and not now) if stopping else (now and not was):
            found.append(inst.tag)
    return found


def _mirror_changes(p: _Played) -> list[str]:
    h = p.h
    lines = []
    for m in h.mirrors:
        tag = h.tag_of(m.resource_id)
        new_source = p.sources[m.resource_id]
        roles = p.targets[m.resource_id]
        if new_source != m.source:
            lines.append(f"mirror {tag}: {new_source} becomes the source, {m.source} a target")
        for t in m.targets:
            after = roles.get(t.server)
            if after is None and t.server != new_source:
                lines.append(f"mirror {tag}: target {t.server} removed")
            elif after is not None and after is not t.state and after in _SAID:
                lines.append(f"mirror {tag}: {t.server} {_SAID[after]}")
    return lines


_SAID = {
    MirrorState.OUT_OF_SYNC: "goes Out of Sync (resynced from the bitmap when it returns)",
    MirrorState.WAIT_FOR_PREVIOUS_SOURCE: "waits for the previous source (may be stale)",
}

__all__ = ["HEADING", "NOTHING", "dry_run_text", "failover_target", "what_if"]
