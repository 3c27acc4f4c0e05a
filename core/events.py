"""A small thread-safe publish/subscribe hub for core events.

Publishers call :meth:`EventHub.publish` from any thread; every subscriber is called
synchronously in the publisher's thread, so subscribers must not block (the GUI bridge
only queues the event to the GUI thread). A subscriber that raises is logged and kept.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.history import LogRow
    from core.model import Cluster

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Base of every event; ``seq`` orders events published through one hub."""

    seq: int = field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True)
class ClusterChanged(Event):
    """The cluster changed: ``cluster`` is the new snapshot (a backend's watch sends
    it), or None when it must be read again."""

    cluster: Cluster | None = None


@dataclass(frozen=True)
class LogRows(Event):
    """New lines of the output panel, as the backend keeps them (oldest first)."""

    rows: tuple[LogRow, ...]


@dataclass(frozen=True)
class WatchFailed(Event):
    """The watch of the cluster could not read it (the message says why); it goes on."""

    message: str


@dataclass(frozen=True)
class ServerStateChanged(Event):
    server: str
    state: str  # a core.model.ServerState name


@dataclass(frozen=True)
class ResourceStateChanged(Event):
    resource_id: int  # the logical resource (row of the status tree)
    server: str
    state: str  # a core.model.ResourceState name


@dataclass(frozen=True)
class MirrorStateChanged(Event):
    """The sync state of one target of a mirror changed."""

    mirror: str  # the DataKeeper tag on the source
    target: str  # server name
    state: str  # a core.model.MirrorState name
    reason: str = ""


@dataclass(frozen=True)
class MirrorProgress(Event):
    """Progress of a resync of one target (published at most ~10 times a second)."""

    mirror: str
    target: str
    bytes_done: int
    bytes_total: int
    rate: float  # bytes per second
    eta: float | None  # seconds, None while unknown


@dataclass(frozen=True)
class LogLine(Event):
    operation: str
    level: str  # "INFO", "WARNING", "ERROR"
    text: str


@dataclass(frozen=True)
class OperationFinished(Event):
    operation: str
    ok: bool
    message: str


Subscriber = Callable[[Event], Any]


class EventHub:
    """Thread-safe fan-out of :class:`Event` values to subscribers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, tuple[Subscriber, tuple[type[Event], ...]]] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)

    def subscribe(self, callback: Subscriber, *kinds: type[Event]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event (or only those of ``kinds``).

        Returns a function that unsubscribes.
        """
        with self._lock:
            token = next(self._ids)
            self._subscribers[token] = (callback, kinds or (Event,))

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(token, None)

        return unsubscribe

    def publish(self, event: Event) -> Event:
        """Stamp ``event`` with the next sequence number and deliver it."""
        with self._lock:
            object.__setattr__(event, "seq", next(self._seq))
            targets = list(self._subscribers.values())
        for callback, kinds in targets:
            if isinstance(event, kinds):
                try:
                    callback(event)
                except Exception:  # a broken subscriber must not break the publisher
                    log.exception("event subscriber %r failed on %r", callback, event)
        return event
