"""Communication paths: their rules, what a server sees of its peers, and when a
hierarchy may fail over because its server can no longer be reached (pure).

A comm path is a pair of addresses, one on each of two servers, over which LifeKeeper's
heartbeat runs; two servers usually have two or more (one per network). As seen from a
server, a peer is:

- ALIVE when two or more of the paths to it are ALIVE;
- ALIVE (warning) when only one is (DOMAIN.md: one more failure and they lose sight of
  each other);
- DEAD when none is (or it is stopped); UNKNOWN when there is no path to it at all.

A server's column header shows ALIVE (warning) when a peer that is running is ALIVE
(warning) or DEAD to it.

**Failover after a comm-path loss, and split brain (ours, as LifeKeeper's majority
quorum with a witness check does it).** A hierarchy in service on ``holder`` fails over
to ``candidate`` only when every path between them is down *and*:

1. ``candidate`` has quorum: it reaches (directly, through an ALIVE path) more than half
   of the running servers, counting itself; a stopped server has left the cluster and is
   not counted;
2. no server that ``candidate`` reaches still reaches ``holder`` (the witness check: a
   third server that still sees the holder alive vetoes the failover).

The holder then cannot have quorum (the candidate's side has the majority), so it takes
the hierarchy out of service ("Failed" there, as LifeKeeper's quorum-loss action does):
the hierarchy never runs on two servers at once. In an even split (two running servers,
every path between them down) neither side has a majority: nothing moves, the holder
keeps the hierarchy, and the standby's mirror is Out of Sync until a path comes back.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from core.checks import Problem
from core.errors import CheckFailed
from core.model import Cluster, CommPath, CommPathState, Server, ServerState

PATH_PRIORITY_MIN = 1
PATH_PRIORITY_MAX = 99  # LifeKeeper's comm path priorities


# -- what a server sees -------------------------------------------------------------------------
def peer_state(cluster: Cluster, server: str, peer: str) -> ServerState:
    """``peer`` as ``server`` sees it through their comm paths (see the module docstring)."""
    other = cluster.server(peer)
    if other is None or not other.state.is_alive:
        return ServerState.DEAD
    paths = cluster.paths_between(server, peer)
    if not paths:
        return ServerState.UNKNOWN
    alive = sum(1 for p in paths if p.state is CommPathState.ALIVE)
    if alive == 0:
        return ServerState.DEAD
    return ServerState.ALIVE_WARNING if alive == 1 else ServerState.ALIVE


@dataclass(frozen=True)
class PeerView:
    """One peer of a server: its state as the server sees it, and the paths to it."""

    peer: str
    state: ServerState
    alive_paths: int
    paths: tuple[CommPath, ...]

    @property
    def text(self) -> str:
        total = len(self.paths)
        if total == 0:
            return "UNKNOWN (no comm path)"
        return f"{self.state.value} ({self.alive_paths} of {total} paths ALIVE)"


def peers(cluster: Cluster, server: str) -> list[PeerView]:
    """Every other server, as ``server`` sees it."""
    found = []
    for s in cluster.servers:
        if s.name == server:
            continue
        paths = cluster.paths_between(server, s.name)
        alive = sum(1 for p in paths if p.state is CommPathState.ALIVE)
        found.append(PeerView(s.name, peer_state(cluster, server, s.name), alive, paths))
    return found


def shown_states(servers: tuple[Server, ...], paths: tuple[CommPath, ...]) -> tuple[Server, ...]:
    """The servers with the state their column header shows (ALIVE (warning) for a
    running server to which a running peer is ALIVE (warning) or DEAD)."""
    from dataclasses import replace

    view = Cluster(servers, (), paths)
    shown = []
    for s in servers:
        if s.state is ServerState.ALIVE and any(
            peer_state(view, s.name, p.name) in (ServerState.ALIVE_WARNING, ServerState.DEAD)
            for p in servers
            if p.name != s.name and p.state.is_alive and view.paths_between(s.name, p.name)
        ):
            s = replace(s, state=ServerState.ALIVE_WARNING)
        shown.append(s)
    return tuple(shown)


def connected(cluster: Cluster, a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` (both running) see each other through an ALIVE path."""
    if a == b:
        return True
    return peer_state(cluster, a, b) in (ServerState.ALIVE, ServerState.ALIVE_WARNING)


def running(cluster: Cluster) -> list[str]:
    return [s.name for s in cluster.servers if s.state.is_alive]


def has_quorum(cluster: Cluster, server: str) -> bool:
    """More than half of the running servers are reached from ``server`` (itself counted)."""
    up = running(cluster)
    if server not in up:
        return False
    reached = sum(1 for s in up if connected(cluster, server, s))
    return reached * 2 > len(up)


def may_take_over(cluster: Cluster, holder: str, candidate: str) -> bool:
    """Whether ``candidate`` may bring up what runs on the running ``holder``: every path
    between them is down, it has quorum, and no server it reaches still reaches
    ``holder`` (the witness check)."""
    if candidate == holder or candidate not in running(cluster):
        return False
    if connected(cluster, holder, candidate) or not has_quorum(cluster, candidate):
        return False
    witnesses = [s for s in running(cluster) if s not in (holder, candidate)]
    return not any(
        connected(cluster, candidate, w) and connected(cluster, w, holder) for w in witnesses
    )


def why_not(cluster: Cluster, holder: str, candidate: str) -> str:
    """Why ``candidate`` does not take over from ``holder`` (for the output panel)."""
    if connected(cluster, holder, candidate):
        return f"{candidate} still reaches {holder}"
    if not has_quorum(cluster, candidate):
        return (
            f"{candidate} reaches only {_count(cluster, candidate)} of the "
            f"{len(running(cluster))} running servers (no majority)"
        )
    witness = next(
        s
        for s in running(cluster)
        if s not in (holder, candidate)
        and connected(cluster, candidate, s)
        and connected(cluster, s, holder)
    )
    return f"{witness} still reaches {holder}"


def _count(cluster: Cluster, server: str) -> int:
    return sum(1 for s in running(cluster) if connected(cluster, server, s))


# -- create and delete ------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateCommPathRequest:
    server: str
    peer: str
    local_address: str
    remote_address: str
    priority: object = ""  # 1-99; "" = the next free one


@dataclass(frozen=True)
class DeleteCommPathRequest:
    server: str
    peer: str
    path: object = ""  # the path's priority; "" = the only path


def _server_problems(cluster: Cluster, field: str, label: str, name: str) -> list[Problem]:
    text = (name or "").strip()
    names = [s.name for s in cluster.servers]
    if not text:
        return [Problem(field, "required", f"Choose the {label.lower()}.")]
    if text not in names:
        return [
            Problem(
                field,
                "unknown_server",
                f"{label} {text!r} is not a server of this cluster ({', '.join(names)}).",
            )
        ]
    return []


def _address(
    field: str, label: str, value: str
) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address | None, list[Problem]]:
    text = (value or "").strip()
    if not text:
        return None, [Problem(field, "required", f"{label} is required (an IPv4 or IPv6 address).")]
    try:
        return ipaddress.ip_address(text), []
    except ValueError:
        return None, [
            Problem(
                field,
                "bad_address",
                f"{label} {text!r} is not an IPv4 or IPv6 address (e.g. 10.213.0.11).",
            )
        ]


def next_priority(cluster: Cluster, server: str, peer: str) -> int:
    used = {p.priority for p in cluster.paths_between(server, peer)}
    return next(n for n in range(PATH_PRIORITY_MIN, PATH_PRIORITY_MAX + 2) if n not in used)


def _own_addresses(cluster: Cluster) -> dict[str, str]:
    """Address -> the server it belongs to, from the paths there are."""
    return {p.local_address: p.server for p in cluster.comm_paths}


def create_problems(cluster: Cluster, request: CreateCommPathRequest) -> list[Problem]:
    problems = _server_problems(cluster, "server", "Server", request.server)
    problems += _server_problems(cluster, "peer", "Peer server", request.peer)
    server, peer = (request.server or "").strip(), (request.peer or "").strip()
    if not problems and server == peer:
        problems.append(
            Problem(
                "peer",
                "same_server",
                f"A comm path joins two servers: choose a peer other than {server}.",
            )
        )
    local, found = _address("local_address", "Local Address", request.local_address)
    problems += found
    remote, found = _address("remote_address", "Remote Address", request.remote_address)
    problems += found
    if local is not None and remote is not None:
        problems += _pair_problems(local, remote)
    problems += _owner_problems(cluster, ((local, server), (remote, peer)))
    priority = _priority(cluster, request, problems)
    if not problems:
        problems += _taken_problems(cluster, server, peer, str(local), str(remote), priority)
    return problems


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _pair_problems(local: Address, remote: Address) -> list[Problem]:
    """Both ends of a path: one protocol, two addresses."""
    if local.version != remote.version:
        return [
            Problem(
                "remote_address",
                "mixed_families",
                f"Remote Address {remote} is IPv{remote.version} but the Local Address is "
                f"IPv{local.version}: both ends of a path use the same protocol.",
            )
        ]
    if local == remote:
        return [
            Problem(
                "remote_address",
                "same_address",
                f"Remote Address {remote} is the Local Address: each end is an address of "
                "its own server.",
            )
        ]
    return []


def _owner_problems(
    cluster: Cluster, ends: tuple[tuple[Address | None, str], tuple[Address | None, str]]
) -> list[Problem]:
    """An end that is already an address of another server."""
    owners = _own_addresses(cluster)
    problems = []
    for (field, label), (addr, owner_wanted) in zip(
        (("local_address", "Local Address"), ("remote_address", "Remote Address")),
        ends,
        strict=True,
    ):
        owner = owners.get(str(addr)) if addr is not None else None
        if owner is not None and owner_wanted and owner != owner_wanted:
            problems.append(
                Problem(
                    field,
                    "address_of_other_server",
                    f"{label} {addr} is an address of {owner}, not of {owner_wanted}.",
                )
            )
    return problems


def _taken_problems(
    cluster: Cluster, server: str, peer: str, local: str, remote: str, priority: int | None
) -> list[Problem]:
    """The same pair of addresses, or the same priority, already between the two."""
    problems = []
    for p in cluster.paths_between(server, peer):
        if p.local_address == local and p.peer_address == remote:
            problems.append(
                Problem(
                    "remote_address",
                    "path_exists",
                    f"There is already a comm path {local} → {remote} between {server} "
                    f"and {peer} (priority {p.priority}).",
                )
            )
        elif priority is not None and p.priority == priority:
            problems.append(
                Problem(
                    "priority",
                    "priority_in_use",
                    f"Priority {priority} is already the path {p.local_address} → "
                    f"{p.peer_address} between {server} and {peer}; use "
                    f"{next_priority(cluster, server, peer)}.",
                )
            )
    return problems


def _priority(
    cluster: Cluster, request: CreateCommPathRequest, problems: list[Problem]
) -> int | None:
    value = request.priority
    text = str(value).strip() if value is not None else ""
    if text == "":
        return None
    try:
        number = int(text, 10)
    except ValueError:
        problems.append(
            Problem(
                "priority",
                "priority_not_integer",
                f"Priority must be a whole number from {PATH_PRIORITY_MIN} to "
                f"{PATH_PRIORITY_MAX}, not {text!r}.",
            )
        )
        return None
    if not PATH_PRIORITY_MIN <= number <= PATH_PRIORITY_MAX:
        problems.append(
            Problem(
                "priority",
                "priority_out_of_range",
                f"Priority {number} is out of range: use {PATH_PRIORITY_MIN} to "
                f"{PATH_PRIORITY_MAX} (lower is tried first).",
            )
        )
        return None
    return number


def checked_create(cluster: Cluster, request: CreateCommPathRequest) -> CreateCommPathRequest:
    """The request with its addresses normalised and its priority chosen; CheckFailed
    with every problem otherwise."""
    problems = create_problems(cluster, request)
    if problems:
        raise CheckFailed(problems)
    server, peer = request.server.strip(), request.peer.strip()
    text = str(request.priority).strip() if request.priority is not None else ""
    priority = int(text) if text else next_priority(cluster, server, peer)
    return CreateCommPathRequest(
        server,
        peer,
        str(ipaddress.ip_address(request.local_address.strip())),
        str(ipaddress.ip_address(request.remote_address.strip())),
        priority,
    )


def find_paths(
    cluster: Cluster, server: str, peer: str, path: object = "", *, field: str = "path"
) -> list[CommPath]:
    """The paths of ``server`` to ``peer`` that ``path`` names (its priority), or every
    one when it is empty; CheckFailed naming the field otherwise."""
    problems = _server_problems(cluster, "server", "Server", server)
    problems += _server_problems(cluster, "peer", "Peer server", peer)
    if problems:
        raise CheckFailed(problems)
    paths = list(cluster.paths_between(server.strip(), peer.strip()))
    if not paths:
        raise CheckFailed(
            [Problem("peer", "no_comm_path", f"There is no comm path between {server} and {peer}.")]
        )
    text = str(path).strip() if path is not None else ""
    if text == "":
        return paths
    chosen = [p for p in paths if str(p.priority) == text]
    if not chosen:
        listed = ", ".join(f"{p.priority} ({p.local_address} → {p.peer_address})" for p in paths)
        raise CheckFailed(
            [
                Problem(
                    field,
                    "unknown_path",
                    f"There is no comm path {text!r} between {server} and {peer}; "
                    f"the paths are {listed}.",
                )
            ]
        )
    return chosen


def delete_problems(cluster: Cluster, request: DeleteCommPathRequest) -> list[Problem]:
    try:
        chosen = find_paths(cluster, request.server, request.peer, request.path)
    except CheckFailed as exc:
        return exc.problems
    server, peer = request.server.strip(), request.peer.strip()
    paths = cluster.paths_between(server, peer)
    if len(chosen) > 1:
        listed = ", ".join(f"{p.priority} ({p.local_address} → {p.peer_address})" for p in paths)
        return [
            Problem(
                "path",
                "choose_path",
                f"{server} and {peer} have {len(paths)} comm paths: choose which one to "
                f"delete ({listed}).",
            )
        ]
    if len(paths) == 1:
        shared = [
            h.root_tag for h in cluster.hierarchies if server in h.servers and peer in h.servers
        ]
        if shared:
            return [
                Problem(
                    "path",
                    "last_path",
                    f"This is the last comm path between {server} and {peer}, which share "
                    f"{', '.join(shared)}: without it each would think the other dead and "
                    "bring the hierarchy in service (split brain). Create another path "
                    "first, or unextend the hierarchy.",
                )
            ]
    return []


def checked_delete(cluster: Cluster, request: DeleteCommPathRequest) -> CommPath:
    problems = delete_problems(cluster, request)
    if problems:
        raise CheckFailed(problems)
    return find_paths(cluster, request.server, request.peer, request.path)[0]


__all__ = [
    "CreateCommPathRequest",
    "DeleteCommPathRequest",
    "PeerView",
    "checked_create",
    "checked_delete",
    "connected",
    "create_problems",
    "delete_problems",
    "find_paths",
    "has_quorum",
    "may_take_over",
    "next_priority",
    "peer_state",
    "peers",
    "shown_states",
    "why_not",
]
