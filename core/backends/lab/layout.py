"""The embedded lab cluster: three servers on one machine, state in the store.

Each server is a folder ``servers/<name>/`` under the data directory, holding its
``disks/`` (volume files), its ``opt/LifeKeeper/`` (where default bitmap files go) and its
mount-point folders. Paths a user types for a server (``/data``, ``/opt/LifeKeeper/x``)
are paths *of that server* and resolve under its folder: :func:`server_path`.

First use creates the servers and one DataKeeper hierarchy in service on ``lab1``, not
yet extended: the filesystem resource ``/data`` on top of the DataKeeper resource
``datarep-data``. Creation is idempotent: files first (each made atomically), then every
row in one transaction that also marks the lab ready, so an interrupted creation is
simply finished by the next start.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core import commands
from core.backends.lab import store_servers
from core.backends.lab.store import Store, Txn
from core.errors import LkError
from core.files import open_private, private_dir
from core.model import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_SPEED_LIMIT_KBPS,
    LIFEKEEPER_DIR,
    Mirror,
    Resource,
    ResourceKind,
    ResourceState,
    ServerState,
    SwitchbackType,
    default_bitmap_file,
)
from core.permissions import Op
from core.session import Session

log = logging.getLogger(__name__)

LAB_SERVERS = ("lab1", "lab2", "lab3")
SEED_ROOT_TAG = "/data"
SEED_MOUNT_POINT = "/data"
SEED_DK_TAG = "datarep-data"
SEED_VOLUME = "/disks/datarep-data.img"
SEED_VOLUME_SIZE = 64 * 1024 * 1024
LAB_READY = "ready"


class PathOutsideServer(LkError):
    """A server path that would leave the server's folder."""


@dataclass(frozen=True)
class LabLayout:
    """Where the lab's servers live on this machine."""

    home: Path

    @property
    def servers_dir(self) -> Path:
        return self.home / "servers"

    def server_root(self, server: str) -> Path:
        return self.servers_dir / server

    def server_path(self, server: str, path: str) -> Path:
        """The local file behind ``path`` on ``server`` (an absolute server path)."""
        return server_path(self.server_root(server), path)


def server_path(root: Path, path: str) -> Path:
    """Resolve the absolute server path ``path`` under the server folder ``root``."""
    pure = PurePosixPath(path)
    if not pure.is_absolute():
        raise PathOutsideServer(f"{path!r} is not an absolute path")
    parts = [p for p in pure.parts[1:] if p not in ("", ".")]
    if ".." in parts:
        raise PathOutsideServer(f"{path!r} must not contain '..'")
    return root.joinpath(*parts) if parts else root


def is_created(store: Store) -> bool:
    return store.meta("lab") == LAB_READY


def ensure_lab(store: Store) -> bool:
    """Create the lab on first use (or finish an interrupted creation).

    Returns True when it created the lab now, False when it was already there.
    """
    if is_created(store):
        return False
    layout = LabLayout(store.home)
    _make_server_folders(layout)
    _make_volume(layout.server_path(LAB_SERVERS[0], SEED_VOLUME), SEED_VOLUME_SIZE)
    with store.transaction() as txn:
        if store.meta("lab") == LAB_READY:  # another process won the race
            return False
        for name in LAB_SERVERS:
            txn.add_server(name, ServerState.ALIVE)
        store_servers.seed_comm_paths(txn, LAB_SERVERS)
        _add_seed_hierarchy(txn)
        txn.set_meta("lab", LAB_READY)
        servers = ", ".join(LAB_SERVERS)
        txn.add_log_line("lab", "INFO", f"Created the lab cluster: servers {servers}")
    log.info("created the lab cluster in %s", store.home)
    return True


def _add_seed_hierarchy(txn: Txn) -> None:
    """The seed hierarchy: a filesystem on a DataKeeper mirror, in service on the first
    server with priority 1."""
    hid = txn.add_hierarchy(SwitchbackType.INTELLIGENT)
    fs_id = txn.add_resource(hid, ResourceKind.FILESYSTEM)
    dk_id = txn.add_resource(hid, ResourceKind.DATAKEEPER)
    txn.set_root(hid, fs_id)
    txn.add_dependency(fs_id, dk_id)
    home = LAB_SERVERS[0]
    txn.add_instance(
        Resource(
            resource_id=fs_id,
            hierarchy_id=hid,
            kind=ResourceKind.FILESYSTEM,
            server=home,
            tag=SEED_ROOT_TAG,
            state=ResourceState.ISP,
            mount_point=SEED_MOUNT_POINT,
            fs_type="ext4",
        )
    )
    txn.add_instance(
        Resource(
            resource_id=dk_id,
            hierarchy_id=hid,
            kind=ResourceKind.DATAKEEPER,
            server=home,
            tag=SEED_DK_TAG,
            state=ResourceState.ISP,
            volume=SEED_VOLUME,
            bitmap_file=default_bitmap_file(SEED_DK_TAG),
        )
    )
    txn.set_priority(hid, home, 1)
    txn.add_mirror(
        Mirror(
            resource_id=dk_id,
            source=home,
            volume_size=SEED_VOLUME_SIZE,
            chunk_size=DEFAULT_CHUNK_SIZE,
            speed_limit_kbps=DEFAULT_SPEED_LIMIT_KBPS,
            asynchronous=False,
        )
    )


def reset_lab(store: Store, session: Session) -> str:
    """Throw the whole lab away (servers, volumes, hierarchies) and create it anew.

    The resyncs at work stop first: their files are about to go. The history and the
    users stay."""
    from core.backends.lab import mirrors  # the replication engine: only for a reset
    from core.backends.lab.oplog import OperationLog, authorize

    command = commands.join("lab", "reset", "--yes")
    authorize(store, session, Op.LAB_RESET, "reset the lab", command)

    for h in store.cluster().hierarchies:
        for m in h.mirrors:
            for t in m.targets:
                mirrors.stop_resync(store.home, m.resource_id, t.server)
    with store.transaction() as txn:
        txn.execute("DELETE FROM hierarchies")
        txn.execute("DELETE FROM servers")
        txn.execute("DELETE FROM oplog")
        txn.delete_meta("lab")
    servers_dir = LabLayout(store.home).servers_dir
    if servers_dir.exists():
        shutil.rmtree(servers_dir)
    ensure_lab(store)
    out = OperationLog("reset the lab", None, session, command)
    message = (
        f"The lab was reset: {', '.join(LAB_SERVERS)} with {SEED_ROOT_TAG} in service "
        f"on {LAB_SERVERS[0]}."
    )
    out.say("INFO", message)
    out.finish(store, ok=True, message=message)
    return message


def _make_server_folders(layout: LabLayout) -> None:
    for name in LAB_SERVERS:
        for sub in ("disks", LIFEKEEPER_DIR, SEED_MOUNT_POINT):
            private_dir(layout.server_path(name, "/" + sub.lstrip("/")))


def _make_volume(path: Path, size: int) -> None:
    """A sparse volume file of ``size`` bytes, created atomically (temp + rename)."""
    if path.exists() and path.stat().st_size == size:
        return
    tmp = path.with_name(path.name + ".creating")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
