"""Server Properties: the Shutdown Strategy and the Failover Confirmation (pure).

- **Shutdown Strategy** (LifeKeeper's): what a *clean* stop of the server does to the
  hierarchies in service on it: ``switchover`` (the default) switches each over to the
  best standby server whose mirrors are Target; ``do not switchover`` takes them out of
  service, and they come back in service there when the server starts again. A crash
  (``lkctl lab stop``) is a failure, not a clean stop: the hierarchies fail over.
- **Failover Confirmation** per peer (LifeKeeper's ``confirmso``): when it is on for peer
  P on server S, a failover of a hierarchy from P to S waits for the administrator's
  answer: ``lkctl confirm-failover S`` lets it proceed, ``lkctl confirm-failover S
  --deny`` blocks it (the hierarchy then stays out of service until someone brings it in
  service). With no answer within the timeout (**(ours)** 600 s by default, as
  LifeKeeper's ``CONFIRMSOTO``; 1-86400 s) the default action is taken: ``proceed``
  (LifeKeeper's ``CONFIRMSODEF`` 0, the default) or ``block`` (``CONFIRMSODEF`` 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.checks import Problem
from core.errors import CheckFailed
from core.model import Cluster, ConfirmDefault, Server, ShutdownStrategy
from core.plan import SetServerProperties

CONFIRM_TIMEOUT_MIN = 1
CONFIRM_TIMEOUT_MAX = 86_400


@dataclass(frozen=True)
class ServerPropertiesRequest:
    server: str
    shutdown_strategy: str  # "switchover", "do not switchover" (or "do-not-switchover")
    confirm_failover_from: Sequence[str]  # the peers whose failovers wait for a yes
    confirm_timeout: object  # seconds, 1-86400
    confirm_default: str  # "proceed" or "block"


def request_of(server: Server) -> ServerPropertiesRequest:
    """The request that changes nothing (the dialog starts from it)."""
    return ServerPropertiesRequest(
        server.name,
        server.shutdown_strategy.value,
        server.confirm_failover_from,
        server.confirm_timeout,
        server.confirm_default.value,
    )


def parse_strategy(text: str) -> ShutdownStrategy | None:
    wanted = (text or "").strip().lower().replace("-", " ").replace("_", " ")
    return next((s for s in ShutdownStrategy if s.value == wanted), None)


def parse_default(text: str) -> ConfirmDefault | None:
    wanted = (text or "").strip().lower()
    return next((d for d in ConfirmDefault if d.value == wanted), None)


def problems(cluster: Cluster, request: ServerPropertiesRequest) -> list[Problem]:
    """Every problem of ``request``, each naming its field."""
    names = [s.name for s in cluster.servers]
    server = (request.server or "").strip()
    if server not in names:
        return [
            Problem(
                "server",
                "unknown_server",
                f"Server {request.server!r} is not a server of this cluster ({', '.join(names)}).",
            )
        ]
    found: list[Problem] = []
    if parse_strategy(request.shutdown_strategy) is None:
        found.append(
            Problem(
                "shutdown_strategy",
                "unknown_strategy",
                f"Shutdown Strategy {request.shutdown_strategy!r} is not one of switchover, "
                "do not switchover.",
            )
        )
    for peer in request.confirm_failover_from:
        if peer == server:
            found.append(
                Problem(
                    "confirm_failover",
                    "own_server",
                    f"Failover Confirmation is set per peer: {server} does not fail over "
                    "from itself.",
                )
            )
        elif peer not in names:
            found.append(
                Problem(
                    "confirm_failover",
                    "unknown_server",
                    f"Failover Confirmation for {peer!r}: not a server of this cluster "
                    f"({', '.join(names)}).",
                )
            )
    found += timeout_problems(request.confirm_timeout)
    if parse_default(request.confirm_default) is None:
        found.append(
            Problem(
                "confirm_default",
                "unknown_default",
                f"Default action {request.confirm_default!r} is not one of proceed, block.",
            )
        )
    return found


def timeout_problems(value: object) -> list[Problem]:
    text = str(value).strip() if value is not None else ""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif not isinstance(value, bool) and text.isdigit():
        number = int(text, 10)
    if number is None:
        return [
            Problem(
                "confirm_timeout",
                "timeout_not_integer",
                f"Confirmation Timeout must be a whole number of seconds "
                f"({CONFIRM_TIMEOUT_MIN}-{CONFIRM_TIMEOUT_MAX}), not {text!r}.",
            )
        ]
    if not CONFIRM_TIMEOUT_MIN <= number <= CONFIRM_TIMEOUT_MAX:
        return [
            Problem(
                "confirm_timeout",
                "timeout_out_of_range",
                f"Confirmation Timeout {number} s is out of range: use {CONFIRM_TIMEOUT_MIN} "
                f"to {CONFIRM_TIMEOUT_MAX} seconds.",
            )
        ]
    return []


def step(cluster: Cluster, request: ServerPropertiesRequest) -> SetServerProperties | None:
    """The step that makes the server's properties what ``request`` says; None when they
    are so already. CheckFailed with every problem otherwise."""
    found = problems(cluster, request)
    if found:
        raise CheckFailed(found)
    server = cluster.server(request.server.strip())
    assert server is not None
    strategy = parse_strategy(request.shutdown_strategy)
    default = parse_default(request.confirm_default)
    assert strategy is not None and default is not None
    order = [s.name for s in cluster.servers]
    peers = tuple(sorted(set(request.confirm_failover_from), key=order.index))
    timeout = int(str(request.confirm_timeout).strip())
    new = SetServerProperties(server.name, strategy, peers, timeout, default)
    current = SetServerProperties(
        server.name,
        server.shutdown_strategy,
        server.confirm_failover_from,
        server.confirm_timeout,
        server.confirm_default,
    )
    return None if new == current else new


__all__ = [
    "ServerPropertiesRequest",
    "parse_default",
    "parse_strategy",
    "problems",
    "request_of",
    "step",
]
