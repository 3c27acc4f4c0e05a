"""In Service, Out of Service, Switchover, and the lab's server stop/start (failover).

DOMAIN.md, "Other operations": a hierarchy comes in service children first and goes out
of service parents first. A switchover or failover to a server whose mirror is not
"Target" is refused: while a mirror resyncs, neither the DataKeeper resource nor
anything that depends on it may move there. After a switchover the old source becomes a
target and resyncs only what changed (the bitmap); the new source is "Source".

Stopping a lab server is a failure of that server: each hierarchy in service there fails
over to the alive server with the best priority whose mirrors are all "Target"; if there
is none it stays down, and its copies that may be stale wait for the previous source
("Out of Sync (Wait for Previous Source)") until it returns or an administrator forces
one online. Starting the server again makes it rejoin: its copies resync from the bitmap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import commands
from core.backends.lab import mirrors
from core.backend import LabBackend
from core.checks import Problem
from core.errors import CheckFailed, OperationError
from core.events import EventHub
from core.backends.lab.layout import LabLayout
from core.model import (
    Cluster,
    Hierarchy,
    MirrorState,
    MirrorTarget,
    ResourceState,
    ServerState,
)
from core.backends.lab.oplog import OperationLog, authorize
from core.permissions import Op
from core.session import Session
from core.backends.lab.store import Store, Txn, read_hierarchy

log = logging.getLogger(__name__)

TARGET_DOWN = "target server {server} is down"
WAITING = "the previous source {server} is down: this copy may be stale"


@dataclass
class _Change:
    """What one operation does: rows in one transaction, then resyncs to start."""

    lines: list[str] = field(default_factory=list)
    resyncs: list[tuple[int, str]] = field(default_factory=list)
    stop: list[tuple[int, str]] = field(default_factory=list)
    bitmap_targets: list[tuple[Path, str, int, int, bool]] = field(default_factory=list)
    merges: list[tuple[Path, str, Path, str]] = field(default_factory=list)


def _hierarchy(cluster: Cluster, tag: str) -> Hierarchy:
    inst = cluster.find_tag((tag or "").strip())
    if inst is None:
        raise CheckFailed([Problem("tag", "unknown_tag", f"There is no resource tagged {tag!r}.")])
    h = cluster.hierarchy(inst.hierarchy_id)
    assert h is not None
    return h


def _server(cluster: Cluster, name: str, field_name: str = "server") -> str:
    names = [s.name for s in cluster.servers]
    if name not in names:
        raise CheckFailed(
            [
                Problem(
                    field_name,
                    "unknown_server",
                    f"Server {name!r} is not a server of this cluster ({', '.join(names)}).",
                )
            ]
        )
    return name


def not_target_problems(h: Hierarchy, server: str, field_name: str = "server") -> list[Problem]:
    """Why ``server`` cannot take ``h`` over: a mirror there that is not "Target"."""
    problems = []
    for m in h.mirrors:
        if m.source == server:
            continue
        t = m.target(server)
        if t is None or t.state is MirrorState.TARGET:
            continue
        tag = h.tag_of(m.resource_id)
        state = f"Resyncing ({t.percent} %)" if t.state is MirrorState.RESYNCING else t.state.label
        dependants = [h.tag_of(r) for r in _ancestors(h, m.resource_id)]
        verb = "depends" if len(dependants) == 1 else "depend"
        also = f" (nor {', '.join(dependants)}, which {verb} on it)" if dependants else ""
        problems.append(
            Problem(
                field_name,
                "mirror_not_target",
                f"{tag} on {server} is {state}: its data may not match the source, so "
                f"{tag}{also} cannot be brought in service there until the mirror is Target.",
            )
        )
    return problems


def _ancestors(h: Hierarchy, rid: int) -> list[int]:
    found = []
    parent = h.parent(rid)
    while parent is not None:
        found.append(parent)
        parent = h.parent(parent)
    return found


# -- the state changes, shared by every operation ---------------------------------------
def _take_out(txn: Txn, h: Hierarchy, server: str, state: ResourceState, change: _Change) -> None:
    """Parents first: every resource of ``h`` on ``server`` goes to ``state``."""
    order = h.resource_ids()  # root first = parents first
    for rid in order:
        if h.instance(rid, server) is not None:
            txn.set_instance_state(rid, server, state)
    change.lines.append(
        f"{h.root_tag} out of service on {server} ("
        + ", then ".join(h.tag_of(r) for r in order)
        + ")"
    )


def _bring_in(txn: Txn, h: Hierarchy, server: str, change: _Change) -> None:
    """Children first: every resource of ``h`` on ``server`` in service."""
    order = list(reversed(h.resource_ids()))
    for rid in order:
        txn.set_instance_state(rid, server, ResourceState.ISP)
    change.lines.append(
        f"{h.root_tag} in service on {server} (" + ", then ".join(h.tag_of(r) for r in order) + ")"
    )


def _make_source(
    txn: Txn, layout: LabLayout, h: Hierarchy, new: str, change: _Change, old_alive: bool
) -> None:
    """Every mirror of ``h``: ``new`` becomes the source, the old source a target."""
    for m in h.mirrors:
        if m.source == new:
            continue
        old = m.source
        for t in m.targets:
            change.stop.append((m.resource_id, t.server))
        txn.set_mirror_source(m.resource_id, new)
        txn.delete_mirror_target(m.resource_id, new)
        new_inst = h.instance(m.resource_id, new)
        assert new_inst is not None
        # The old source had what the new one has (it was Target): only changes from now on
        # need copying. Others keep being in sync if they were, else copy everything.
        rows = [(old, True)] + [
            (t.server, t.state is MirrorState.TARGET) for t in m.targets if t.server != new
        ]
        for server, in_sync in rows:
            alive = old_alive if server == old else True
            state = MirrorState.RESYNCING if alive else MirrorState.OUT_OF_SYNC
            reason = "" if alive else TARGET_DOWN.format(server=server)
            txn.set_mirror_target(
                m.resource_id,
                MirrorTarget(server, state, reason, bytes_total=m.volume_size),
            )
            if new_inst.bitmap_file:
                change.bitmap_targets.append(
                    (
                        layout.server_path(new, new_inst.bitmap_file),
                        server,
                        m.volume_size,
                        m.chunk_size,
                        not in_sync,
                    )
                )
            if alive:
                change.resyncs.append((m.resource_id, server))
        change.lines.append(f"{h.tag_of(m.resource_id)}: {new} is the source now, {old} a target")


def _apply(
    backend: LabBackend,
    name: str,
    session: Session,
    op: Op,
    work: Callable[[Txn, _Change], None],
    hub: EventHub | None = None,
    command: str = "",
) -> list[str]:
    """Run ``work(txn, change)`` in one transaction, then its bitmap and resync follow-ups."""
    store = backend.store
    action = op.label
    out = OperationLog(name, hub, session, command)
    change = _Change()
    try:
        with store.transaction() as txn:
            work(txn, change)
            for line in change.lines:
                out.say("INFO", line)
            out.flush(txn)
    except CheckFailed:
        raise
    except Exception as exc:
        out.say("ERROR", f"{action} failed: {exc}. Nothing was changed.")
        out.finish(store, ok=False, message=str(exc))
        raise
    try:
        _follow_up(store, change, out)
    except Exception as exc:
        reason = f"{exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
        message = (
            f"{'; '.join(change.lines)} (committed), but what follows it failed: {reason}. "
            "See lkctl mirror status; resume the mirrors once the cause is fixed."
        )
        out.say("ERROR", message)
        out.finish(store, ok=False, message=message)
        raise OperationError(message, committed=True) from exc
    out.finish(store, ok=True, message="; ".join(change.lines))
    return change.lines


def _follow_up(store: Store, change: _Change, out: OperationLog) -> None:
    """After the commit: stop the old resyncs, prepare the bitmaps, start the new ones."""
    for rid, server in change.stop:
        if not mirrors.stop_resync(store.home, rid, server):
            raise OperationError(f"the resync to {server} did not stop within 30 s")
    for path, target, size, chunk, dirty in change.bitmap_targets:
        try:
            mirrors.add_bitmap_target(path, target, size, chunk, dirty=dirty)
        except OSError as exc:
            out.say(
                "WARNING",
                f"bitmap {path.name}: {exc.strerror or exc}; the next resync "
                f"of {target} is a full one",
            )
    for returning, section, into, target in change.merges:
        merged = mirrors.merge_dirty(returning, section, into, target)
        if merged:
            out.say(
                "INFO",
                f"{target}: {merged} chunks it may have written before it went "
                "down are copied back from the source too.",
            )
    for rid, server in change.resyncs:
        mirrors.start_resync(store.home, rid, server)


# -- In Service, Out of Service, Switchover --------------------------------------------
def switchover(
    backend: LabBackend, tag: str, to: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    authorize(
        backend.store,
        session,
        Op.SWITCHOVER,
        f"switchover {tag} to {to}",
        commands.switchover(tag, to),
    )
    cluster = backend.cluster()
    h = _hierarchy(cluster, tag)
    to = _server(cluster, to, "to")
    problems = _takeover_problems(cluster, h, to, "to")
    current = h.in_service_server
    if current == to:
        problems.append(
            Problem("to", "already_there", f"{h.root_tag} is already in service on {to}.")
        )
    if problems:
        raise CheckFailed(problems)

    def work(txn: Txn, change: _Change) -> None:
        txn.claim(h.id, h.version)
        if current is not None:
            _take_out(txn, h, current, ResourceState.OSU, change)
        _make_source(txn, backend.layout, h, to, change, old_alive=True)
        _bring_in(txn, h, to, change)

    name = f"switchover {h.root_tag} to {to}"
    return _apply(backend, name, session, Op.SWITCHOVER, work, hub, commands.switchover(tag, to))


def in_service(
    backend: LabBackend, tag: str, server: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    authorize(
        backend.store,
        session,
        Op.IN_SERVICE,
        f"in service {tag} on {server}",
        commands.in_service(tag, server),
    )
    cluster = backend.cluster()
    h = _hierarchy(cluster, tag)
    server = _server(cluster, server)
    current = h.in_service_server
    if current == server:
        raise CheckFailed(
            [
                Problem(
                    "server",
                    "already_in_service",
                    f"{h.root_tag} is already in service on {server}.",
                )
            ]
        )
    if current is not None:
        return switchover(backend, tag, server, session, hub)
    problems = _takeover_problems(cluster, h, server, "server")
    if problems:
        raise CheckFailed(problems)

    def work(txn: Txn, change: _Change) -> None:
        txn.claim(h.id, h.version)
        _make_source(txn, backend.layout, h, server, change, old_alive=True)
        _bring_in(txn, h, server, change)

    name = f"in service {h.root_tag} on {server}"
    return _apply(
        backend,
        name,
        session,
        Op.IN_SERVICE,
        work,
        hub,
        commands.in_service(tag, server),
    )


def out_of_service(
    backend: LabBackend, tag: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    authorize(
        backend.store,
        session,
        Op.OUT_OF_SERVICE,
        f"out of service {tag}",
        commands.out_of_service(tag),
    )
    cluster = backend.cluster()
    h = _hierarchy(cluster, tag)
    current = h.in_service_server
    if current is None:
        raise CheckFailed(
            [Problem("tag", "not_in_service", f"{h.root_tag} is not in service anywhere.")]
        )

    def work(txn: Txn, change: _Change) -> None:
        txn.claim(h.id, h.version)
        _take_out(txn, h, current, ResourceState.OSU, change)

    name = f"out of service {h.root_tag} on {current}"
    return _apply(
        backend,
        name,
        session,
        Op.OUT_OF_SERVICE,
        work,
        hub,
        commands.out_of_service(tag),
    )


def _takeover_problems(
    cluster: Cluster, h: Hierarchy, server: str, field_name: str
) -> list[Problem]:
    problems = []
    if server not in h.servers:
        problems.append(
            Problem(
                field_name,
                "not_extended",
                f"{h.root_tag} is not defined on {server}; extend it first.",
            )
        )
        return problems
    s = cluster.server(server)
    if s is not None and not s.state.is_alive:
        problems.append(
            Problem(field_name, "server_down", f"{server} is {s.state.value}; start it first.")
        )
    problems += not_target_problems(h, server, field_name)
    return problems


# -- the lab's servers: failure and return -----------------------------------------------
def stop_server(
    backend: LabBackend, server: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    """The server fails: its hierarchies fail over where a mirror is Target, or wait."""
    authorize(
        backend.store,
        session,
        Op.STOP_SERVER,
        f"stop server {server}",
        commands.lab_server("stop", server),
    )
    cluster = backend.cluster()
    server = _server(cluster, server)
    s = cluster.server(server)
    assert s is not None
    if not s.state.is_alive:
        raise CheckFailed([Problem("server", "already_down", f"{server} is already down.")])
    alive = [x.name for x in cluster.servers if x.state.is_alive and x.name != server]

    def work(txn: Txn, change: _Change) -> None:
        txn.set_server_state(server, ServerState.DEAD)
        change.lines.append(f"Server {server} stopped (DEAD).")
        for h in cluster.hierarchies:
            if server not in h.servers:
                continue
            txn.claim(h.id, h.version)
            was_active = h.in_service_server == server
            for r in h.instances_on(server):
                txn.set_instance_state(
                    r.resource_id,
                    server,
                    ResourceState.OSF if r.state.in_service else ResourceState.UNKNOWN,
                )
            for m in h.mirrors:
                for other in m.targets:
                    change.stop.append((m.resource_id, other.server))
                if m.target(server) is not None:
                    txn.set_mirror_target(
                        m.resource_id,
                        MirrorTarget(
                            server,
                            MirrorState.OUT_OF_SYNC,
                            TARGET_DOWN.format(server=server),
                            bytes_total=m.volume_size,
                        ),
                    )
                elif m.source == server:
                    for t in m.targets:  # resyncs from the dead source stop here
                        if t.state is MirrorState.RESYNCING:
                            txn.set_mirror_target(
                                m.resource_id,
                                MirrorTarget(
                                    t.server,
                                    MirrorState.OUT_OF_SYNC,
                                    f"source {server} went down during the resync",
                                    bytes_total=m.volume_size,
                                ),
                            )
            if not was_active:
                for m in h.mirrors:  # resyncs to the other targets go on
                    for t in m.targets:
                        if t.server != server and t.state is MirrorState.RESYNCING:
                            change.resyncs.append((m.resource_id, t.server))
                continue
            fresh = _reread(txn, h)
            candidates = [
                x for x in fresh.servers if x in alive and not not_target_problems(fresh, x)
            ]
            if candidates:
                new = candidates[0]
                change.lines.append(
                    f"{h.root_tag} fails over from {server} to {new} "
                    f"(priority {h.priority_of(new)})."
                )
                _make_source(txn, backend.layout, fresh, new, change, old_alive=False)
                _bring_in(txn, fresh, new, change)
                continue
            why = (
                "; ".join(
                    p.message.rstrip(".")
                    for x in fresh.servers
                    if x in alive
                    for p in not_target_problems(fresh, x)
                )
                or "no other server"
            )
            change.lines.append(
                f"{h.root_tag} stays down: no alive server has every mirror as Target ({why})."
            )
            for m in fresh.mirrors:
                for t in m.targets:
                    if t.server != server and t.state is not MirrorState.TARGET:
                        txn.set_mirror_target(
                            m.resource_id,
                            MirrorTarget(
                                t.server,
                                MirrorState.WAIT_FOR_PREVIOUS_SOURCE,
                                WAITING.format(server=server),
                                bytes_total=m.volume_size,
                            ),
                        )

    return _apply(
        backend,
        f"stop server {server}",
        session,
        Op.STOP_SERVER,
        work,
        hub,
        commands.lab_server("stop", server),
    )


def start_server(
    backend: LabBackend, server: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    """The server returns: it rejoins as a standby and its copies resync."""
    authorize(
        backend.store,
        session,
        Op.START_SERVER,
        f"start server {server}",
        commands.lab_server("start", server),
    )
    cluster = backend.cluster()
    server = _server(cluster, server)
    s = cluster.server(server)
    assert s is not None
    if s.state.is_alive:
        raise CheckFailed([Problem("server", "already_up", f"{server} is already running.")])

    def work(txn: Txn, change: _Change) -> None:
        txn.set_server_state(server, ServerState.ALIVE)
        change.lines.append(f"Server {server} started (ALIVE).")
        for h in cluster.hierarchies:
            if server not in h.servers:
                continue
            txn.claim(h.id, h.version)
            for r in h.instances_on(server):
                txn.set_instance_state(r.resource_id, server, ResourceState.OSU)
            down_here = h.in_service_server is None and all(m.source == server for m in h.mirrors)
            if down_here:
                # It was the source when everything stopped: its copy is the newest.
                change.lines.append(
                    f"{h.root_tag} had stayed down: {server} has the newest "
                    "copy, so it comes back in service there."
                )
                fresh = _reread(txn, h)
                _bring_in(txn, fresh, server, change)
                for m in fresh.mirrors:
                    for t in m.targets:
                        txn.set_mirror_target(
                            m.resource_id,
                            MirrorTarget(
                                t.server, MirrorState.RESYNCING, bytes_total=m.volume_size
                            ),
                        )
                        change.resyncs.append((m.resource_id, t.server))
                continue
            for m in h.mirrors:
                mine = m.target(server)
                inst = h.instance(m.resource_id, server)
                src = h.instance(m.resource_id, m.source)
                if mine is not None and inst and src and inst.bitmap_file and src.bitmap_file:
                    change.merges.append(
                        (
                            backend.layout.server_path(server, inst.bitmap_file),
                            m.source,
                            backend.layout.server_path(m.source, src.bitmap_file),
                            server,
                        )
                    )
                if mine is not None and mine.state is not MirrorState.TARGET:
                    txn.set_mirror_target(
                        m.resource_id,
                        MirrorTarget(server, MirrorState.RESYNCING, bytes_total=m.volume_size),
                    )
                    change.resyncs.append((m.resource_id, server))
                    change.lines.append(
                        f"{h.tag_of(m.resource_id)}: {server} resyncs from "
                        f"{m.source} (only what changed, from the bitmap)."
                    )

    return _apply(
        backend,
        f"start server {server}",
        session,
        Op.START_SERVER,
        work,
        hub,
        commands.lab_server("start", server),
    )


def force_online(
    backend: LabBackend, tag: str, server: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    """Bring a copy that waits for the previous source online anyway (it may be stale)."""
    authorize(
        backend.store,
        session,
        Op.FORCE_ONLINE,
        f"force online {tag} on {server}",
        commands.force_online(tag, server),
    )
    cluster = backend.cluster()
    h = _hierarchy(cluster, tag)
    server = _server(cluster, server)
    waiting = [
        m
        for m in h.mirrors
        if (t := m.target(server)) is not None and t.state is MirrorState.WAIT_FOR_PREVIOUS_SOURCE
    ]
    if not waiting:
        raise CheckFailed(
            [
                Problem(
                    "server",
                    "not_waiting",
                    f"No mirror of {h.root_tag} on {server} waits for the "
                    "previous source; Force Online is only for such a copy.",
                )
            ]
        )
    s = cluster.server(server)
    if s is None or not s.state.is_alive:
        raise CheckFailed([Problem("server", "server_down", f"{server} is not running.")])

    def work(txn: Txn, change: _Change) -> None:
        txn.claim(h.id, h.version)
        old = {m.resource_id: m.source for m in h.mirrors}
        _make_source(txn, backend.layout, h, server, change, old_alive=False)
        # Nothing says what the previous source wrote last: every other copy resyncs fully.
        change.bitmap_targets = [
            (p, t, size, chunk, True) for p, t, size, chunk, _ in change.bitmap_targets
        ]
        _bring_in(txn, h, server, change)
        change.lines.append(
            f"Forced online on {server}: data written on {', '.join(sorted(set(old.values())))} "
            "after this copy was last in sync is lost; the other copies will be fully resynced "
            "from it."
        )

    return _apply(
        backend,
        f"force online {h.root_tag} on {server}",
        session,
        Op.FORCE_ONLINE,
        work,
        hub,
        commands.force_online(tag, server),
    )


def _reread(txn: Txn, h: Hierarchy) -> Hierarchy:
    """``h`` as the transaction sees it now (after the changes made so far)."""
    fresh = read_hierarchy(txn, h.id)
    if fresh is None:
        raise OperationError(f"{h.root_tag} disappeared during the operation")
    return fresh
