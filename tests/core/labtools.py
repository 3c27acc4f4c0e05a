"""Building lab situations for tests, through the store as an operation would."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from core.backends.lab import LabBackend
from core.backends.lab.layout import DEFAULT_CHUNK_SIZE, default_bitmap_file
from core.model import (
    Hierarchy,
    Mirror,
    MirrorState,
    Resource,
    ResourceKind,
    ResourceState,
    ServerState,
    SwitchbackType,
)
from tests.helpers import db_digest, wait_until


def add_hierarchy(
    backend: LabBackend,
    server: str,
    dk_tag: str,
    *,
    fs_tag: str | None = None,
    mount_point: str | None = None,
    size: int = 4 * 1024 * 1024,
    bitmap: str | None = "default",
) -> int:
    """A DataKeeper hierarchy in service on ``server`` (with a filesystem on top or not)."""
    volume = f"/disks/{dk_tag}.img"
    path = backend.layout.server_path(server, volume)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    with backend.store.transaction() as txn:
        hid = txn.add_hierarchy(SwitchbackType.INTELLIGENT)
        dk = txn.add_resource(hid, ResourceKind.DATAKEEPER)
        root = dk
        if fs_tag is not None:
            root = txn.add_resource(hid, ResourceKind.FILESYSTEM)
            txn.add_dependency(root, dk)
            txn.add_instance(
                Resource(
                    root,
                    hid,
                    ResourceKind.FILESYSTEM,
                    server,
                    fs_tag,
                    ResourceState.ISP,
                    mount_point=mount_point,
                    fs_type="ext4",
                )
            )
        txn.set_root(hid, root)
        txn.add_instance(
            Resource(
                dk,
                hid,
                ResourceKind.DATAKEEPER,
                server,
                dk_tag,
                ResourceState.ISP,
                volume=volume,
                bitmap_file=default_bitmap_file(dk_tag) if bitmap == "default" else bitmap,
            )
        )
        txn.set_priority(hid, server, 1)
        txn.add_mirror(Mirror(dk, server, size, DEFAULT_CHUNK_SIZE, 0, False))
    return hid


def set_server(backend: LabBackend, server: str, state: ServerState) -> None:
    with backend.store.transaction() as txn:
        txn.set_server_state(server, state)


def fill_source(
    backend: LabBackend,
    volume: str = "/disks/datarep-data.img",
    server: str = "lab1",
    every: int = 1024 * 1024,
    length: int = 200_000,
) -> None:
    """Real data in the source volume (not only holes): random bytes every ``every`` bytes."""
    path = backend.layout.server_path(server, volume)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        for offset in range(0, size - length, every):
            f.seek(offset)
            f.write(os.urandom(length))


def digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def settled_digest(backend: LabBackend) -> str:
    """The database's bytes with everything committed checkpointed into the file."""
    backend.store.checkpoint()
    return db_digest(backend.store.home)


def seed(backend: LabBackend) -> Hierarchy:
    h = backend.snapshot().hierarchies[0]
    assert h.root_tag == "/data"
    return h


def wait_for_mirror(
    backend: LabBackend,
    hid: int,
    target: str,
    state: MirrorState = MirrorState.TARGET,
    timeout: float = 60.0,
) -> None:
    def reached() -> bool:
        h = backend.store.hierarchy(hid)
        assert h is not None
        t = h.mirrors[0].target(target)
        return t is not None and t.state is state

    wait_until(reached, timeout, f"{target} to become {state.label}")
