"""The lab's servers fail and come back: failover as LifeKeeper does it.

Stopping a lab server is a failure of that server: each hierarchy in service there fails
over to the alive server with the best priority whose mirrors are all "Target"; if there
is none it stays down, and its copies that may be stale wait for the previous source
("Out of Sync (Wait for Previous Source)") until it returns or an administrator forces
one online. Starting the server again makes it rejoin: its copies resync from the bitmap
(a returning former source's own dirty bits are merged in).

A server that takes a hierarchy over must have quorum (it reaches more than half of the
running servers, see :mod:`core.rules.commpaths`), and when it asks for a confirmation
of failovers from the failed server (Server Properties, Failover Confirmation) the
failover waits for it (:mod:`core.backends.lab.partition`). A *clean* stop
(:func:`shutdown_server`) follows the server's Shutdown Strategy instead of failing over.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core import commands
from core.backends.lab import kits, partition, takeover
from core.backends.lab.oplog import OperationLog
from core.backends.lab.service_rows import FollowUp, bring_in, take_out
from core.backends.lab.store import Txn, read_hierarchy
from core.checks import Problem
from core.errors import CheckFailed, OperationError
from core.events import EventHub
from core.model import (
    Cluster,
    Hierarchy,
    MirrorState,
    MirrorTarget,
    ResourceState,
    Server,
    ServerState,
    ShutdownStrategy,
)
from core.permissions import Op
from core.rules import commpaths
from core.rules import service as rules
from core.rules.service import TARGET_DOWN, WAITING
from core.session import Session

if TYPE_CHECKING:
    from core.backends.lab import LabBackend


@dataclass
class _Change:
    lines: list[str] = field(default_factory=list)
    follow: FollowUp = field(default_factory=FollowUp)


def _run(
    backend: LabBackend,
    name: str,
    session: Session,
    work: Callable[[Txn, _Change], None],
    hub: EventHub | None,
    command: str,
) -> list[str]:
    """``work`` in one transaction, then what must follow it (resyncs, bitmaps)."""
    store = backend.store
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
        out.say("ERROR", f"{name} failed: {exc}. Nothing was changed.")
        out.finish(store, ok=False, message=str(exc))
        raise
    try:
        change.follow.run(store, out.say)
    except Exception as exc:
        reason = f"{exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
        message = f"{'; '.join(change.lines)} (committed), but what follows it failed: {reason}."
        out.say("ERROR", message)
        out.finish(store, ok=False, message=message)
        raise OperationError(message, committed=True) from exc
    out.finish(store, ok=True, message="; ".join(change.lines))
    return change.lines


def _reread(txn: Txn, h: Hierarchy) -> Hierarchy:
    """``h`` as the transaction sees it now (after the changes made so far)."""
    fresh = read_hierarchy(txn, h.id)
    if fresh is None:
        raise OperationError(f"{h.root_tag} disappeared during the operation")
    return fresh


def _stopped_view(cluster: Cluster, server: str) -> Cluster:
    """``cluster`` as it is once ``server`` is stopped (its paths DEAD with it)."""
    servers = tuple(
        dataclasses.replace(s, state=ServerState.DEAD) if s.name == server else s
        for s in cluster.servers
    )
    return dataclasses.replace(cluster, servers=servers)


def stop_server(
    backend: LabBackend, server: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    """The server fails: its hierarchies fail over where a mirror is Target, or wait."""
    backend.authorize(
        session, Op.STOP_SERVER, f"stop server {server}", commands.lab_server("stop", server)
    )
    cluster = backend.snapshot()
    server = rules.server(cluster, server)
    s = cluster.server(server)
    assert s is not None
    if not s.state.is_alive:
        raise CheckFailed([Problem("server", "already_down", f"{server} is already down.")])
    after = _stopped_view(cluster, server)
    alive = [x.name for x in after.servers if x.state.is_alive]
    able = [x for x in alive if commpaths.has_quorum(after, x)]

    def work(txn: Txn, change: _Change) -> None:
        txn.set_server_state(server, ServerState.DEAD)
        change.lines.append(f"Server {server} stopped (DEAD).")
        for x in alive:
            if x not in able:
                change.lines.append(
                    f"{x} takes nothing over: {commpaths.why_not(after, server, x)}."
                )
        for h in cluster.hierarchies:
            if server in h.servers:
                txn.claim(h.id, h.version)
                _server_down(txn, h, server, change)
                kits.server_stopped(backend.layout, h.instances_on(server))
                if h.in_service_server == server:
                    _fail_over(
                        backend,
                        txn,
                        _reread(txn, h),
                        server,
                        able,
                        change,
                        servers=cluster.servers,
                        reason=f"{server} stopped",
                    )

    return _run(
        backend, f"stop server {server}", session, work, hub, commands.lab_server("stop", server)
    )


def _server_down(txn: Txn, h: Hierarchy, server: str, change: _Change) -> None:
    """What ``server`` going down does to ``h``'s resources there and to its mirrors."""
    for r in h.instances_on(server):
        txn.set_instance_state(
            r.resource_id,
            server,
            ResourceState.OSF if r.state.in_service else ResourceState.UNKNOWN,
        )
    for m in h.mirrors:
        for other in m.targets:
            change.follow.stop.append((m.resource_id, other.server))
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
    if h.in_service_server != server:
        for m in h.mirrors:  # resyncs to the other targets go on
            for t in m.targets:
                if t.server != server and t.state is MirrorState.RESYNCING:
                    change.follow.resyncs.append((m.resource_id, t.server))


def _fail_over(
    backend: LabBackend,
    txn: Txn,
    h: Hierarchy,
    server: str,
    alive: list[str],
    change: _Change,
    *,
    servers: tuple[Server, ...] = (),
    reason: str = "",
) -> None:
    """``h`` was in service on ``server``: in service on the best alive server whose
    mirrors are all Target (after its administrator's confirmation, when it asks for
    one), or it stays down and its stale copies wait."""
    candidates = [x for x in h.servers if x in alive and not rules.not_target_problems(h, x)]
    if candidates:
        first = candidates[0]
        if partition.ask_first(
            txn, h, server, first, servers, reason or f"{server} failed", change
        ):
            return
        new = takeover.bring_up(
            backend.layout,
            txn,
            h,
            candidates,
            change.follow,
            change.lines,
            origin=server,
            old_alive=False,
        )
        if new is None:
            change.lines.append(
                f"{h.root_tag} stays down: it could not be started on "
                f"{', '.join(candidates)} (see above)."
            )
        return
    why = (
        "; ".join(
            p.message.rstrip(".")
            for x in h.servers
            if x in alive
            for p in rules.not_target_problems(h, x)
        )
        or "no other server"
    )
    change.lines.append(
        f"{h.root_tag} stays down: no alive server has every mirror as Target ({why})."
    )
    for m in h.mirrors:
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


def start_server(
    backend: LabBackend, server: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    """The server returns: it rejoins as a standby and its copies resync."""
    backend.authorize(
        session, Op.START_SERVER, f"start server {server}", commands.lab_server("start", server)
    )
    cluster = backend.snapshot()
    server = rules.server(cluster, server)
    s = cluster.server(server)
    assert s is not None
    if s.state.is_alive:
        raise CheckFailed([Problem("server", "already_up", f"{server} is already running.")])

    def work(txn: Txn, change: _Change) -> None:
        txn.set_server_state(server, ServerState.ALIVE)
        change.lines.append(f"Server {server} started (ALIVE).")
        partition.forget_pending(txn, cluster, server, change)
        for h in cluster.hierarchies:
            if server in h.servers:
                txn.claim(h.id, h.version)
                _server_up(backend, txn, h, server, change)

    return _run(
        backend, f"start server {server}", session, work, hub, commands.lab_server("start", server)
    )


def _server_up(backend: LabBackend, txn: Txn, h: Hierarchy, server: str, change: _Change) -> None:
    """What ``server`` coming back does to ``h``: its resources there are standby, and
    either ``h`` comes back in service there or its copies there resync."""
    for r in h.instances_on(server):
        txn.set_instance_state(r.resource_id, server, ResourceState.OSU)
    down_here = h.in_service_server is None and all(m.source == server for m in h.mirrors)
    if down_here:
        _back_in_service(txn, h, server, change)
    else:
        _rejoin_mirrors(backend, txn, h, server, change)


def _back_in_service(txn: Txn, h: Hierarchy, server: str, change: _Change) -> None:
    """``h`` stayed down, ``server`` its source: in service there, every copy resyncs."""
    # It was the source when everything stopped: its copy is the newest.
    change.lines.append(
        f"{h.root_tag} had stayed down: {server} has the newest "
        "copy, so it comes back in service there."
    )
    fresh = _reread(txn, h)
    change.lines.append(bring_in(txn, fresh, server))
    for m in fresh.mirrors:
        for t in m.targets:
            txn.set_mirror_target(
                m.resource_id,
                MirrorTarget(t.server, MirrorState.RESYNCING, bytes_total=m.volume_size),
            )
            change.follow.resyncs.append((m.resource_id, t.server))


def _rejoin_mirrors(
    backend: LabBackend, txn: Txn, h: Hierarchy, server: str, change: _Change
) -> None:
    """``server``'s copies resync from their sources (its own dirty bits merged in)."""
    for m in h.mirrors:
        mine = m.target(server)
        inst = h.instance(m.resource_id, server)
        src = h.instance(m.resource_id, m.source)
        if mine is not None and inst and src and inst.bitmap_file and src.bitmap_file:
            change.follow.merges.append(
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
            change.follow.resyncs.append((m.resource_id, server))
            change.lines.append(
                f"{h.tag_of(m.resource_id)}: {server} resyncs from "
                f"{m.source} (only what changed, from the bitmap)."
            )


def shutdown_server(
    backend: LabBackend, server: str, session: Session, hub: EventHub | None = None
) -> list[str]:
    """A clean stop (LifeKeeper's ``lkstop``): the server's Shutdown Strategy says what
    happens to the hierarchies in service on it, then it stops. ``switchover``: each goes
    to the best running server whose mirrors are Target (no confirmation: nothing
    failed); ``do not switchover``: each goes out of service and comes back there when
    the server starts again."""
    command = commands.lab_shutdown(server)
    backend.authorize(session, Op.STOP_SERVER, f"stop server {server} cleanly", command)
    cluster = backend.snapshot()
    server = rules.server(cluster, server)
    s = cluster.server(server)
    assert s is not None
    if not s.state.is_alive:
        raise CheckFailed([Problem("server", "already_down", f"{server} is already down.")])
    strategy = s.shutdown_strategy
    alive = [x.name for x in cluster.servers if x.state.is_alive and x.name != server]

    def work(txn: Txn, change: _Change) -> None:
        change.lines.append(f"Stopping {server} cleanly (Shutdown Strategy: {strategy.value}).")
        for h in cluster.hierarchies:
            if server not in h.servers:
                continue
            txn.claim(h.id, h.version)
            if h.in_service_server == server:
                _leave(backend, txn, h, server, alive, strategy, change)
            _server_down(txn, _reread(txn, h), server, change)
        txn.set_server_state(server, ServerState.DEAD)
        change.lines.append(f"Server {server} stopped (DEAD).")

    return _run(backend, f"stop server {server} cleanly", session, work, hub, command)


def _leave(
    backend: LabBackend,
    txn: Txn,
    h: Hierarchy,
    server: str,
    alive: list[str],
    strategy: ShutdownStrategy,
    change: _Change,
) -> None:
    """``h`` is in service on ``server``, which stops cleanly: its kits stop there (the
    application's stop command, the address down), then it switches over or waits."""
    stopped = takeover.Attempt()
    act = kits.actor(backend.layout, stopped.say, stopped.undo.append)
    change.lines.append(take_out(txn, h, server, ResourceState.OSU, act))
    change.lines += stopped.lines
    if strategy is ShutdownStrategy.DO_NOT_SWITCHOVER:
        change.lines.append(
            f"{h.root_tag} stays out of service (do not switchover): it comes back in "
            f"service on {server} when {server} starts."
        )
        return
    candidates = [x for x in h.servers if x in alive and not rules.not_target_problems(h, x)]
    if not candidates:
        change.lines.append(
            f"{h.root_tag} stays out of service: no running server has every mirror as Target."
        )
        return
    new = takeover.bring_up(
        backend.layout,
        txn,
        _reread(txn, h),
        candidates,
        change.follow,
        change.lines,
        origin=server,
        old_alive=False,
        how="switches over (Shutdown Strategy)",
    )
    if new is None:
        change.lines.append(
            f"{h.root_tag} stays out of service: it could not be started on "
            f"{', '.join(candidates)} (see above)."
        )
