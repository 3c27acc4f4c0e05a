"""The one seam between operations and a cluster.

Operations and consoles talk to a :class:`Backend`: read the cluster state, run a step on
one server, notice changes made by others. The embedded lab (:class:`LabBackend`)
implements it on this machine; a backend for real clusters (LifeKeeper's command line
over SSH, or Pacemaker with DRBD) can be added later without touching the wizards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from core import journal, mirrors
from core.errors import OperationError
from core.events import ClusterChanged, EventHub
from core.lab import LabLayout, ensure_lab
from core.model import Cluster
from core.store import Store

T = TypeVar("T")
log = logging.getLogger(__name__)


class Backend(Protocol):
    """What a console needs from a cluster."""

    name: str

    def cluster(self) -> Cluster:
        """A consistent snapshot of servers and hierarchies."""
        ...

    def run_step(self, server: str, action: Callable[[Path], T]) -> T:
        """Run ``action`` on ``server`` (given the server's root); fail if unreachable."""
        ...

    def poll(self, hub: EventHub) -> bool:
        """Publish ClusterChanged on ``hub`` if someone else changed the cluster."""
        ...

    def close(self) -> None: ...


class LabBackend:
    """The embedded lab cluster: servers are folders, state is the store."""

    name = "lab"

    def __init__(self, home: Path | None = None) -> None:
        self.store = Store(home)
        try:
            ensure_lab(self.store)
            # Finish what crashed processes left: half-done operations are undone, and
            # resyncs whose process died are restarted (they resume from the bitmap).
            for line in journal.recover(self.store):
                log.warning("recovery: %s", line)
            mirrors.resume_resyncs(self.store)
        except BaseException:
            self.store.close()
            raise
        self.layout = LabLayout(self.store.home)
        self._seen_version = self.store.data_version()

    def cluster(self) -> Cluster:
        return self.store.cluster()

    def run_step(self, server: str, action: Callable[[Path], T]) -> T:
        state = next((s.state for s in self.store.servers() if s.name == server), None)
        if state is None:
            raise OperationError(f"there is no server {server!r} in the lab")
        if not state.is_alive:
            raise OperationError(f"server {server} is not reachable (it is {state.value})")
        return action(self.layout.server_root(server))

    def poll(self, hub: EventHub) -> bool:
        version = self.store.data_version()
        if version == self._seen_version:
            return False
        self._seen_version = version
        hub.publish(ClusterChanged())
        return True

    def close(self) -> None:
        self.store.close()
