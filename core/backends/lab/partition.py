"""The lab's comm paths fail and come back; failovers wait for a confirmation.

**Comm paths** (``lkctl lab commpath-down/-up``): when the last ALIVE path between the
server holding a hierarchy and one of its standby servers goes down, the hierarchy fails
over to the best standby that may take it over (:func:`core.rules.commpaths.may_take_over`:
quorum, and no witness still reaching the holder); the holder, which then has lost its
quorum, takes it out of service first ("Failed" there), so it never runs on two servers
at once. The mirror targets that the holder no longer reaches go Out of Sync ("every comm
path between … is down"); when a path comes back they resync what they missed (from the
bitmap), and a server that stepped down becomes a standby again.

**Failover Confirmation**: a failover to a server that asks for a confirmation of
failovers from that peer is recorded as waiting (``pending_failovers``) and said in the
output panel and the message bar; :func:`decide` (``lkctl confirm-failover SERVER
[--deny]``) carries it out or blocks it, and with no answer by its deadline the server's
default action is taken by whichever process reads the lab next (:func:`settle_due`: the
console's watch does every quarter of a second; the lab has no daemon).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from core import commands
from core.backends.lab import kits, store_servers, takeover
from core.backends.lab.service_rows import take_out
from core.backends.lab.store import Txn, read_hierarchy
from core.checks import Problem
from core.errors import CheckFailed, OperationError
from core.events import EventHub
from core.model import (
    Cluster,
    ConfirmDefault,
    Hierarchy,
    MirrorState,
    MirrorTarget,
    PendingFailover,
    ResourceState,
    Role,
    Server,
)
from core.permissions import Op
from core.rules import commpaths
from core.rules import service as rules
from core.session import Session

if TYPE_CHECKING:
    from core.backends.lab import LabBackend
    from core.backends.lab.failover import _Change

UNREACHABLE = "every comm path between {a} and {b} is down"
TIMEOUT_SESSION = Session("LifeKeeper (confirmation timeout)", Role.ADMINISTRATOR)


def _reread(txn: Txn, h: Hierarchy) -> Hierarchy:
    fresh = read_hierarchy(txn, h.id)
    if fresh is None:
        raise OperationError(f"{h.root_tag} disappeared during the operation")
    return fresh


# -- confirmation -------------------------------------------------------------------------------
def ask_first(
    txn: Txn,
    h: Hierarchy,
    from_server: str,
    to_server: str,
    servers: tuple[Server, ...],
    reason: str,
    change: _Change,
) -> bool:
    """When ``to_server`` asks for a confirmation of failovers from ``from_server``:
    record the failover as waiting and say so (True); else False (go ahead)."""
    target = next((s for s in servers if s.name == to_server), None)
    if target is None or from_server not in target.confirm_failover_from:
        return False
    now = time.time()
    store_servers.add_pending(
        txn,
        PendingFailover(
            h.id,
            h.root_tag,
            from_server,
            to_server,
            now,
            now + target.confirm_timeout,
            target.confirm_default,
            reason,
        ),
    )
    change.lines.append(waiting_text(h.root_tag, from_server, to_server, target))
    return True


def waiting_text(root: str, from_server: str, to_server: str, target: Server) -> str:
    return (
        f"Failover of {root} from {from_server} to {to_server} waits for the administrator's "
        f"confirmation: lkctl confirm-failover {to_server} (or --deny). With no answer "
        f"within {target.confirm_timeout} s it will {target.confirm_default.value}."
    )


def forget_pending(txn: Txn, cluster: Cluster, server: str, change: _Change) -> None:
    """``server`` is back: the failovers from it that were waiting are not needed."""
    for p in cluster.pending_failovers:
        if p.from_server == server:
            store_servers.delete_pending(txn, p.hierarchy_id)
            change.lines.append(
                f"{server} is back: the failover of {p.root_tag} to {p.to_server} that waited "
                "for confirmation is no longer needed."
            )


def decide(
    backend: LabBackend,
    server: str,
    accept: bool,
    session: Session,
    hub: EventHub | None = None,
) -> list[str]:
    """Carry out (``accept``) or block the failovers that wait for a confirmation on
    ``server``."""
    from core.backends.lab.failover import _run

    command = commands.confirm_failover(server, accept)
    verb = "confirm" if accept else "block"
    backend.authorize(session, Op.CONFIRM_FAILOVER, f"{verb} failover to {server}", command)
    cluster = backend.snapshot()
    server = rules.server(cluster, server)
    waiting = [p for p in cluster.pending_failovers if p.to_server == server]
    if not waiting:
        raise CheckFailed(
            [
                Problem(
                    "server",
                    "nothing_pending",
                    f"No failover waits for a confirmation on {server}.",
                )
            ]
        )

    def work(txn: Txn, change: _Change) -> None:
        for p in waiting:
            _settle(backend, txn, p, accept, f"by {session.user}", change)

    return _run(backend, f"{verb} failover to {server}", session, work, hub, command)


def settle_due(backend: LabBackend, hub: EventHub | None = None) -> list[str]:
    """Take the default action of every failover whose confirmation timed out (cheap
    when none did)."""
    from core.backends.lab.failover import _run

    store = backend.store
    due = store_servers.next_deadline(store._conn)
    now = time.time()
    if due is None or due > now:
        return []
    cluster = store.cluster()
    expired = [p for p in cluster.pending_failovers if p.deadline <= now]

    def work(txn: Txn, change: _Change) -> None:
        for p in expired:
            still = txn.execute(
                "SELECT 1 FROM pending_failovers WHERE hierarchy_id=? AND asked=?",
                (p.hierarchy_id, p.asked),
            ).fetchone()
            if still is not None:  # not settled by another process meanwhile
                waited = int(p.deadline - p.asked)
                _settle(
                    backend,
                    txn,
                    p,
                    p.default is ConfirmDefault.PROCEED,
                    f"by its default action, with no answer within {waited} s",
                    change,
                )

    name = "failover confirmation timeout"
    return _run(backend, name, TIMEOUT_SESSION, work, hub, "")


def _settle(
    backend: LabBackend, txn: Txn, p: PendingFailover, accept: bool, how: str, change: _Change
) -> None:
    store_servers.delete_pending(txn, p.hierarchy_id)
    h = read_hierarchy(txn, p.hierarchy_id)
    if h is None:
        return
    txn.claim(h.id, h.version)
    if not accept:
        where = h.in_service_server
        stays = f"stays in service on {where}" if where else "stays out of service"
        change.lines.append(
            f"Failover of {p.root_tag} from {p.from_server} to {p.to_server} blocked {how}: "
            f"{p.root_tag} {stays}."
        )
        return
    change.lines.append(
        f"Failover of {p.root_tag} from {p.from_server} to {p.to_server} confirmed {how}."
    )
    carry_out(backend, txn, h, p.from_server, p.to_server, change)


def carry_out(
    backend: LabBackend, txn: Txn, h: Hierarchy, old: str, new: str, change: _Change
) -> None:
    """Fail ``h`` over from ``old`` to ``new``: ``old`` steps down first when it still
    runs it (it cannot be reached, and has lost its quorum)."""
    cluster = backend.store.cluster()
    if h.in_service_server == old:
        down = takeover.Attempt()  # its kits stop there: the address down, the app stopped
        act = kits.actor(backend.layout, down.say, down.undo.append)
        change.lines.append(
            take_out(txn, h, old, ResourceState.OSF, act)
            + f": {old} lost its quorum, so it steps down (the hierarchy never runs twice)"
        )
        change.lines += down.lines
        h = _reread(txn, h)
    s = cluster.server(new)
    problems = takeover_problems(h, old, new)
    if s is None or not s.state.is_alive or problems:
        why = "; ".join(p.message for p in problems) or f"{new} is not running"
        change.lines.append(f"{h.root_tag} cannot fail over to {new} now: {why}")
        return
    if (
        takeover.bring_up(
            backend.layout, txn, h, [new], change.follow, change.lines, origin=old, old_alive=False
        )
        is None
    ):
        change.lines.append(f"{h.root_tag} stays down: it could not be started on {new}.")
        return
    old_server = cluster.server(old)
    if old_server is not None and old_server.state.is_alive:
        for m in h.mirrors:  # it is up, only out of reach: it rejoins when a path is back
            txn.set_mirror_target(
                m.resource_id,
                MirrorTarget(
                    old,
                    MirrorState.OUT_OF_SYNC,
                    UNREACHABLE.format(a=new, b=old),
                    bytes_total=m.volume_size,
                ),
            )


def takeover_problems(h: Hierarchy, old: str, new: str) -> list[Problem]:
    """Why ``new`` cannot take ``h`` over from ``old``: a mirror there that is not
    Target; a copy that is Out of Sync only because ``old`` could no longer reach it was
    in sync when the paths went down, and may take over (what ``old`` wrote since is
    lost, as in any failover)."""
    cut = UNREACHABLE.format(a=old, b=new)
    mirrors = tuple(
        replace(
            m,
            targets=tuple(
                replace(t, state=MirrorState.TARGET, reason="")
                if t.server == new and t.state is MirrorState.OUT_OF_SYNC and t.reason == cut
                else t
                for t in m.targets
            ),
        )
        for m in h.mirrors
    )
    return rules.not_target_problems(replace(h, mirrors=mirrors), new)


# -- comm path faults ----------------------------------------------------------------------------
def fail_path(
    backend: LabBackend,
    server: str,
    peer: str,
    path: object,
    up: bool,
    session: Session,
    hub: EventHub | None = None,
) -> list[str]:
    """``lkctl lab commpath-down|-up SERVER PEER [--path N]`` (every path between them
    without ``path``), and what the cluster does about it."""
    from core.backends.lab.failover import _run

    action = "up" if up else "down"
    command = commands.commpath_fault(action, server, peer, path)
    name = f"comm path {action} {server}-{peer}"
    backend.authorize(session, Op.COMM_PATH_FAULT, name, command)
    cluster = backend.snapshot()
    chosen = commpaths.find_paths(cluster, server, peer, path)
    state = "ALIVE" if up else "DEAD"
    links = store_servers.link_states(backend.store._conn)
    if all(links.get(p.path_id) == state for p in chosen):
        raise CheckFailed(
            [
                Problem(
                    "path",
                    f"already_{action}",
                    f"The comm path{'s' if len(chosen) > 1 else ''} between {server} and "
                    f"{peer} {'are' if len(chosen) > 1 else 'is'} already {state}.",
                )
            ]
        )

    def work(txn: Txn, change: _Change) -> None:
        for p in chosen:
            store_servers.set_link(txn, p.path_id, up)
            change.lines.append(
                f"Comm path {p.server} {p.local_address} → {p.peer} {p.peer_address} "
                f"(priority {p.priority}) is {state}."
            )
        after = backend.store.cluster()
        change.lines.append(
            f"{server} sees {peer} as {commpaths.peer_state(after, server, peer).value}."
        )
        if up:
            _reconnected(backend, txn, after, change)
            after = backend.store.cluster()
        react(backend, txn, after, change)

    return _run(backend, name, session, work, hub, command)


def react(backend: LabBackend, txn: Txn, cluster: Cluster, change: _Change) -> None:
    """What the cluster does about who reaches whom now: failovers (or their requests for
    confirmation) and the mirror targets the holders no longer reach."""
    waiting = {p.hierarchy_id for p in cluster.pending_failovers}
    for h in cluster.hierarchies:
        holder = h.in_service_server
        server = cluster.server(holder) if holder else None
        if holder is None or server is None or not server.state.is_alive or h.id in waiting:
            continue
        lost = [
            y
            for y in h.servers
            if y != holder
            and y in commpaths.running(cluster)
            and not commpaths.connected(cluster, holder, y)
        ]
        if not lost:
            continue
        able = [y for y in h.servers if y in lost and commpaths.may_take_over(cluster, holder, y)]
        # A copy still in sync first; else one that was in sync when its paths went down.
        candidates = [y for y in able if not rules.not_target_problems(h, y)] or [
            y for y in able if not takeover_problems(h, holder, y)
        ]
        stale = [
            (m.resource_id, m.volume_size, t.server)
            for m in h.mirrors
            if m.source == holder
            for t in m.targets
            if t.server in lost and t.state in (MirrorState.TARGET, MirrorState.RESYNCING)
        ]
        if not candidates and not stale:
            continue
        txn.claim(h.id, h.version)
        if candidates:
            new = candidates[0]
            reason = UNREACHABLE.format(a=holder, b=new)
            if not ask_first(txn, h, holder, new, cluster.servers, reason, change):
                carry_out(backend, txn, _reread(txn, h), holder, new, change)
                continue  # the new source's mirrors were made anew (make_source)
        for rid, size, y in stale:
            change.follow.stop.append((rid, y))
            txn.set_mirror_target(
                rid,
                MirrorTarget(
                    y, MirrorState.OUT_OF_SYNC, UNREACHABLE.format(a=holder, b=y), bytes_total=size
                ),
            )
        if not candidates:
            for y in lost:
                change.lines.append(
                    f"{h.root_tag} stays on {holder}: {y} does not take it over "
                    f"({commpaths.why_not(cluster, holder, y)})."
                )


def _reconnected(backend: LabBackend, txn: Txn, cluster: Cluster, change: _Change) -> None:
    """Targets out of reach that are reached again resync what they missed; a server that
    stepped down is a standby again; waiting failovers no longer needed are dropped."""
    from core.backends.lab.failover import _rejoin_mirrors

    for p in cluster.pending_failovers:
        if commpaths.connected(cluster, p.from_server, p.to_server):
            store_servers.delete_pending(txn, p.hierarchy_id)
            change.lines.append(
                f"{p.to_server} reaches {p.from_server} again: the failover of {p.root_tag} "
                "that waited for confirmation is no longer needed."
            )
    for h in cluster.hierarchies:
        back: list[str] = []
        for m in h.mirrors:
            for t in m.targets:
                if (
                    t.state is MirrorState.OUT_OF_SYNC
                    and t.reason == UNREACHABLE.format(a=m.source, b=t.server)
                    and commpaths.connected(cluster, m.source, t.server)
                    and t.server not in back
                ):
                    back.append(t.server)
        holder = h.in_service_server
        for server in back:
            txn.claim(h.id, h.version)
            fresh = _reread(txn, h)
            for r in fresh.instances_on(server):
                if r.state is ResourceState.OSF and holder is not None and holder != server:
                    txn.set_instance_state(r.resource_id, server, ResourceState.OSU)
            _rejoin_mirrors(backend, txn, fresh, server, change)
            h = _reread(txn, h)


__all__ = ["ask_first", "carry_out", "decide", "fail_path", "forget_pending", "react", "settle_due"]
