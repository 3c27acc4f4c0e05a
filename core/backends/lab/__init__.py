"""The embedded lab cluster as a backend: servers are folders, state is an SQLite store.

:class:`LabBackend` implements :class:`core.backend.Backend` on this machine (see
:mod:`core.backends.lab.layout` for the servers' folders, :mod:`.store` for the
database, :mod:`.apply` for how a plan is carried out, :mod:`.mirrors` and
:mod:`.resyncd` for the resync processes). Beyond the common set it can make a server
fail and come back (:mod:`.failover`), put writes through a mirror (:mod:`.writes`),
reset itself and keep its own users.

It is used from several threads at once: each thread gets its own connection to the
store (an SQLite connection belongs to the thread that opened it).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core import paths
from core.backends.lab.layout import LabLayout, ensure_lab
from core.backends.lab.store import Store
from core.backends.lab.watch import LabWatch
from core.capabilities import (
    COMM_PATH_FAULTS,
    COMM_PATHS,
    DEPENDENCIES,
    MIRROR_RESIZE,
    MIRROR_WRITES,
    RESET,
    SERVER_POWER,
    SERVER_SETTINGS,
    USERS,
    WHAT_IF,
)
from core.errors import OperationError
from core.session import Session, local_session

if TYPE_CHECKING:  # the rest loads when first used: opening the lab must be quick
    from core.backend import StepCallback, Watch
    from core.events import EventHub
    from core.facts import NetworkInfo, PathInfo, VolumeInfo
    from core.history import Entry, LogRow
    from core.model import Cluster, MirrorTarget, Role
    from core.permissions import Op
    from core.plan import ApplyResult, Plan

__all__ = ["LabBackend", "MirrorSource"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MirrorSource:
    """Where a mirror's source is, as the lab keeps it."""

    resource_id: int
    tag: str
    server: str
    volume: str
    bitmap_file: str | None
    volume_size: int
    chunk_size: int
    speed_limit_kbps: int
    asynchronous: bool


class LabBackend:
    """The embedded lab cluster (``home``: its data directory)."""

    kind = "lab"
    capabilities = frozenset(
        {SERVER_POWER, MIRROR_WRITES, RESET, USERS, DEPENDENCIES, SERVER_SETTINGS, COMM_PATHS,
         COMM_PATH_FAULTS, WHAT_IF, MIRROR_RESIZE}
    )  # fmt: skip

    def __init__(self, home: Path | None = None, *, name: str = "lab") -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stores: list[Store] = []
        self.name = name
        self.home = (home or paths.data_dir()).expanduser()
        store = self.store  # opens (and on first use creates) the database
        self.layout = LabLayout(self.home)
        try:
            from core.backends.lab import journal, mirrors, resize_files

            del resize_files  # it registers its undo actions for the recovery below
            ensure_lab(store)
            # Finish what crashed processes left: half-done operations are undone, and
            # resyncs whose process died are restarted (they resume from the bitmap).
            for line in journal.recover(store):
                log.warning("recovery: %s", line)
            mirrors.resume_resyncs(store)
            self.watch_applications()
        except BaseException:
            self.close()
            raise

    # -- the store, one connection per thread ----------------------------------------------
    @property
    def store(self) -> Store:
        found: Store | None = getattr(self._local, "store", None)
        if found is None:
            found = Store(self.home)
            self._local.store = found
            with self._lock:
                self._stores.append(found)
        return found

    def release_thread_store(self) -> None:
        """Close the calling thread's connection (a thread that ends calls it)."""
        found: Store | None = getattr(self._local, "store", None)
        if found is None:
            return
        self._local.store = None
        with self._lock:
            if found in self._stores:
                self._stores.remove(found)
        found.close()

    def close(self) -> None:
        """Close every thread's connection (call once the threads using it are done)."""
        with self._lock:
            stores, self._stores = self._stores, []
        for store in stores:
            store.close()
        self._local = threading.local()

    # -- the protocol ------------------------------------------------------------------------
    def snapshot(self) -> Cluster:
        self.settle_confirmations()
        return self.store.cluster()

    def settle_confirmations(self, hub: EventHub | None = None) -> list[str]:
        """Take the default action of the failovers whose confirmation timed out (the
        lab has no daemon: whoever reads it next does; cheap when none did)."""
        from core.backends.lab import partition

        return partition.settle_due(self, hub)

    def probe(self, server: str, path: str) -> PathInfo:
        from core.backends.lab import probe

        return probe.probe(self.layout, server, path)

    def volumes(self, server: str) -> tuple[VolumeInfo, ...]:
        from core.backends.lab import probe

        return probe.volumes(self.layout, server)

    def network(self, server: str) -> NetworkInfo:
        from core.backends.lab import kits

        return kits.network(server)

    def apply(
        self,
        plan: Plan,
        session: Session,
        *,
        hub: EventHub | None = None,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ApplyResult:
        from core.backends.lab import apply as engine
        from core.backends.lab import (
            steps_build,
            steps_kinds,
            steps_mirror,
            steps_props,
            steps_remove,
            steps_resize,
            steps_service,
        )

        # they register handlers
        del steps_build, steps_kinds, steps_mirror, steps_props, steps_remove, steps_resize
        del steps_service
        try:
            return engine.apply(self, plan, session, hub=hub, on_step=on_step, cancel=cancel)
        finally:
            self.watch_applications()

    def watch(self, hub: EventHub, *, shown: Cluster | None = None, last_log_id: int = 0) -> Watch:
        return LabWatch(self, hub, shown, last_log_id)

    def local_session(self) -> Session:
        return local_session(self.home)

    def authenticate(self, user: str, password: str) -> Session:
        from core.backends.lab import users

        return users.authenticate(self.store, user, password)

    def authorize(self, session: Session, op: Op, operation: str = "", command: str = "") -> None:
        from core.backends.lab.oplog import authorize

        authorize(self.store, session, op, operation, command)

    def record_refusal(
        self, user: str, role: str, operation: str, command: str, message: str
    ) -> None:
        from core.backends.lab.oplog import record_refusal

        record_refusal(self.store, user, role, operation, command, message)

    def history(self, since: float | None = None) -> list[Entry]:
        from core.backends.lab import history

        return history.entries(self.store, since)

    def log_lines(self, after: int = 0, limit: int = 2000) -> list[LogRow]:
        return self.store.log_lines_after(after, limit)

    def server_log(self, server: str, after: int = 0) -> list[LogRow]:
        from core import serverlog

        return serverlog.for_server(self.store.log_lines_after(after, 2000), server)

    def dirty_chunks(self, resource_id: int) -> dict[str, int]:
        """Dirty chunks per target, as the source's bitmap says now."""
        from core.replication.bitmap import Bitmap, BitmapError

        ref = self.mirror_source(resource_id)
        if not ref.bitmap_file:
            return {}
        try:
            bitmap = Bitmap.open(self.layout.server_path(ref.server, ref.bitmap_file))
        except (BitmapError, OSError):
            return {}
        try:
            return {name: bitmap.dirty_count(name) for name in bitmap.targets()}
        finally:
            bitmap.close()

    def resync_running(self, resource_id: int, target: str) -> bool | None:
        from core.backends.lab import mirrors

        return mirrors.resync_running(self.home, resource_id, target)

    def local_folder(self, server: str) -> Path | None:
        return self.layout.server_root(server)

    def what_if(self, plan: Plan) -> list[str]:
        """WHAT_IF: computed in core from the snapshot (``core.rules.whatif``)."""
        from core.rules import whatif

        return whatif.what_if(self.snapshot(), plan)

    # -- what only the lab can do -------------------------------------------------------------
    def stop_server(self, server: str, session: Session, hub: EventHub | None = None) -> list[str]:
        from core.backends.lab import failover

        try:
            return failover.stop_server(self, server, session, hub)
        finally:
            self.watch_applications()

    def start_server(self, server: str, session: Session, hub: EventHub | None = None) -> list[str]:
        from core.backends.lab import failover

        try:
            return failover.start_server(self, server, session, hub)
        finally:
            self.watch_applications()

    def shutdown_server(
        self, server: str, session: Session, hub: EventHub | None = None
    ) -> list[str]:
        from core.backends.lab import failover

        return failover.shutdown_server(self, server, session, hub)

    def confirm_failover(
        self, server: str, accept: bool, session: Session, hub: EventHub | None = None
    ) -> list[str]:
        from core.backends.lab import partition

        return partition.decide(self, server, accept, session, hub)

    def set_comm_path(
        self,
        server: str,
        peer: str,
        path: object,
        up: bool,
        session: Session,
        hub: EventHub | None = None,
    ) -> list[str]:
        from core.backends.lab import partition

        return partition.fail_path(self, server, peer, path, up, session, hub)

    def write(
        self, tag: str, offset: int, length: int, session: Session, pattern: str = "random"
    ) -> str:
        from core.backends.lab import writes

        return writes.write(self, tag, offset, length, session, pattern)

    def workload(
        self,
        tag: str,
        seconds: float,
        rate_mb: float,
        session: Session,
        stop: threading.Event | None = None,
    ) -> str:
        from core.backends.lab import writes

        return writes.workload(self, tag, seconds, rate_mb, session, stop=stop)

    def reset(self, session: Session) -> str:
        from core.backends.lab.layout import reset_lab

        return reset_lab(self.store, session)

    def add_user(self, name: str, role: Role, password: str, session: Session) -> None:
        from core.backends.lab import users

        users.add_user(self.store, name, role, password, session)

    def remove_user(self, name: str, session: Session) -> None:
        from core.backends.lab import users

        users.remove_user(self.store, name, session)

    def list_users(self) -> list[tuple[str, Role]]:
        from core.backends.lab import users

        return [(u.name, u.role) for u in users.list_users(self.store)]

    def watch_applications(self) -> None:
        """Start the local monitor (lkcheck) when an application is in service."""
        from core.backends.lab import lkcheck

        try:
            lkcheck.ensure_running(self.store)
        except OSError as exc:  # the operation happened: say it, and go on
            log.error("cannot start the local monitor (lkcheck): %s", exc)

    # -- the lab's own lookups (its step handlers use them) -----------------------------------
    def require_alive(self, server: str) -> None:
        """Raise OperationError unless ``server`` is a running server of the lab."""
        state = next((s.state for s in self.store.servers() if s.name == server), None)
        if state is None:
            raise OperationError(f"there is no server {server!r} in the lab")
        if not state.is_alive:
            raise OperationError(f"server {server} is not reachable (it is {state.value})")

    def mirror_source(self, resource_id: int) -> MirrorSource:
        row = self.store._conn.execute(
            "SELECT m.source, m.volume_size, m.chunk_size, m.speed_limit_kbps, m.asynchronous, "
            "i.tag, i.volume, i.bitmap_file FROM mirrors m JOIN instances i "
            "ON i.resource_id = m.resource_id AND i.server = m.source WHERE m.resource_id=?",
            (resource_id,),
        ).fetchone()
        if row is None:
            raise OperationError("the mirror no longer exists; reload")
        return MirrorSource(
            resource_id,
            row["tag"],
            row["source"],
            row["volume"] or "",
            row["bitmap_file"],
            row["volume_size"],
            row["chunk_size"],
            row["speed_limit_kbps"],
            bool(row["asynchronous"]),
        )

    def mirror_target(self, resource_id: int, server: str) -> MirrorTarget | None:
        for h in self.store.cluster().hierarchies:
            m = h.mirror(resource_id)
            if m is not None:
                return m.target(server)
        return None

    def volume_path(self, resource_id: int, server: str) -> Path:
        row = self.store._conn.execute(
            "SELECT volume FROM instances WHERE resource_id=? AND server=?", (resource_id, server)
        ).fetchone()
        if row is None or not row[0]:
            raise OperationError(f"{server} has no volume for this mirror")
        return self.layout.server_path(server, row[0])
