"""The lab store's servers beyond their power state: comm paths, Server Properties and
the failovers that wait for a confirmation (read and written through the store).

A comm path is one row for both of its servers (``server_a`` < ``server_b`` in the
order they were given); the snapshot shows it from each side, as LifeKeeper lists a
server's paths. A path's state in the snapshot is DEAD when the lab failed it
(``lkctl lab commpath-down``) or when either server is stopped. A running server with a
DEAD path to a running peer shows "ALIVE (warning)" in its column header (DOMAIN.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from core.model import (
    CommPath,
    CommPathState,
    ConfirmDefault,
    Hierarchy,
    PendingFailover,
    Server,
    ServerState,
    ShutdownStrategy,
)

if TYPE_CHECKING:
    from core.backends.lab.store import Txn

# The lab's two heartbeat networks (ours): server N of the lab is .1N on each.
LAB_NETWORKS = ("10.213.0.", "10.214.0.")


def lab_address(network: int, position: int) -> str:
    """The address of the lab server at ``position`` (1, 2, ...) on heartbeat ``network``."""
    return f"{LAB_NETWORKS[network]}{10 + position}"


# -- reading ---------------------------------------------------------------------------------
def read_servers(c: sqlite3.Connection) -> tuple[Server, ...]:
    confirm: dict[str, list[str]] = {}
    for r in c.execute("SELECT server, peer FROM confirm_failover ORDER BY server, peer"):
        confirm.setdefault(r[0], []).append(r[1])
    rows = c.execute(
        "SELECT name, position, state, shutdown_strategy, confirm_timeout, confirm_default "
        "FROM servers ORDER BY position"
    )
    return tuple(
        Server(
            r["name"],
            ServerState[r["state"]],
            r["position"],
            shutdown_strategy=ShutdownStrategy[r["shutdown_strategy"]],
            confirm_failover_from=tuple(confirm.get(r["name"], ())),
            confirm_timeout=r["confirm_timeout"],
            confirm_default=ConfirmDefault[r["confirm_default"]],
        )
        for r in rows
    )


def read_comm_paths(c: sqlite3.Connection, servers: Sequence[Server]) -> tuple[CommPath, ...]:
    """Every path from both of its sides, as the snapshot shows them."""
    alive = {s.name for s in servers if s.state.is_alive}
    order = {s.name: s.position for s in servers}
    paths: list[CommPath] = []
    for r in c.execute("SELECT * FROM comm_paths ORDER BY priority, id"):
        up = r["state"] == "ALIVE" and r["server_a"] in alive and r["server_b"] in alive
        state = CommPathState.ALIVE if up else CommPathState.DEAD
        for server, peer, local, remote in (
            (r["server_a"], r["server_b"], r["address_a"], r["address_b"]),
            (r["server_b"], r["server_a"], r["address_b"], r["address_a"]),
        ):
            paths.append(CommPath(server, peer, local, remote, state, r["priority"], r["id"]))
    return tuple(
        sorted(paths, key=lambda p: (order.get(p.server, 0), order.get(p.peer, 0), p.priority))
    )


def link_states(c: sqlite3.Connection) -> dict[int, str]:
    """Each path's link as the lab keeps it (ALIVE, or DEAD when it was failed)."""
    return {r[0]: r[1] for r in c.execute("SELECT id, state FROM comm_paths")}


def shown_states(servers: Iterable[Server], paths: Sequence[CommPath]) -> tuple[Server, ...]:
    """The column headers' states (core.rules.commpaths.shown_states)."""
    from core.rules.commpaths import shown_states as shown

    return shown(tuple(servers), tuple(paths))


def read_pending(
    c: sqlite3.Connection, hierarchies: Sequence[Hierarchy]
) -> tuple[PendingFailover, ...]:
    roots = {h.id: h.root_tag for h in hierarchies}
    return tuple(
        PendingFailover(
            r["hierarchy_id"],
            roots.get(r["hierarchy_id"], "?"),
            r["from_server"],
            r["to_server"],
            r["asked"],
            r["deadline"],
            ConfirmDefault[r["default_action"]],
            r["reason"],
        )
        for r in c.execute("SELECT * FROM pending_failovers ORDER BY asked, hierarchy_id")
    )


def next_deadline(c: sqlite3.Connection) -> float | None:
    """The earliest deadline of a failover waiting for confirmation (cheap)."""
    row = c.execute("SELECT min(deadline) FROM pending_failovers").fetchone()
    return None if row is None or row[0] is None else float(row[0])


# -- writing ---------------------------------------------------------------------------------
def seed_comm_paths(txn: Txn, servers: Sequence[str]) -> None:
    """Two paths between every pair of a new lab's servers (one per heartbeat network)."""
    for network in range(len(LAB_NETWORKS)):
        for i, a in enumerate(servers):
            for j in range(i + 1, len(servers)):
                add_comm_path(
                    txn,
                    a,
                    servers[j],
                    lab_address(network, i + 1),
                    lab_address(network, j + 1),
                    network + 1,
                )


def add_comm_path(txn: Txn, server: str, peer: str, local: str, remote: str, priority: int) -> int:
    cur = txn.execute(
        "INSERT INTO comm_paths(server_a, server_b, address_a, address_b, priority, state) "
        "VALUES (?, ?, ?, ?, ?, 'ALIVE')",
        (server, peer, local, remote, priority),
    )
    return int(cur.lastrowid or 0)


def delete_comm_path(txn: Txn, path_id: int) -> None:
    txn.execute("DELETE FROM comm_paths WHERE id=?", (path_id,))


def set_link(txn: Txn, path_id: int, alive: bool) -> None:
    txn.execute("UPDATE comm_paths SET state=? WHERE id=?", ("ALIVE" if alive else "DEAD", path_id))


def set_server_properties(
    txn: Txn,
    server: str,
    *,
    shutdown_strategy: ShutdownStrategy,
    confirm_failover_from: Sequence[str],
    confirm_timeout: int,
    confirm_default: ConfirmDefault,
) -> None:
    txn.execute(
        "UPDATE servers SET shutdown_strategy=?, confirm_timeout=?, confirm_default=? WHERE name=?",
        (shutdown_strategy.name, confirm_timeout, confirm_default.name, server),
    )
    txn.execute("DELETE FROM confirm_failover WHERE server=?", (server,))
    for peer in confirm_failover_from:
        txn.execute("INSERT INTO confirm_failover(server, peer) VALUES (?, ?)", (server, peer))


def add_pending(txn: Txn, pending: PendingFailover) -> None:
    txn.execute(
        "INSERT INTO pending_failovers(hierarchy_id, from_server, to_server, asked, deadline, "
        "default_action, reason) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(hierarchy_id) DO UPDATE SET from_server=excluded.from_server, "
        "to_server=excluded.to_server, asked=excluded.asked, deadline=excluded.deadline, "
        "default_action=excluded.default_action, reason=excluded.reason",
        (
            pending.hierarchy_id,
            pending.from_server,
            pending.to_server,
            pending.asked,
            pending.deadline,
            pending.default.name,
            pending.reason,
        ),
    )


def delete_pending(txn: Txn, hierarchy_id: int) -> None:
    txn.execute("DELETE FROM pending_failovers WHERE hierarchy_id=?", (hierarchy_id,))


def row(c: sqlite3.Connection, path_id: int) -> dict[str, Any] | None:
    found = c.execute("SELECT * FROM comm_paths WHERE id=?", (path_id,)).fetchone()
    return dict(found) if found is not None else None
