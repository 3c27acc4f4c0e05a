"""The lab's handlers of the steps that create and extend hierarchies.

A lab disk is a file in the server's ``/disks``; "making a file system" writes the lab's
file-system label at the start of the volume (real bytes, replicated like any others).
"""

from __future__ import annotations

import os

from core.backends.lab import mirrors
from core.backends.lab.apply import Context, Handler, handles
from core.backends.lab.probe import FS_LABEL
from core.files import open_private, private_dir
from core.model import Mirror, MirrorState, MirrorTarget, Resource, ResourceKind, ResourceState
from core.plan import (
    AddResource,
    BringNewInService,
    ConfigureMirror,
    CreateDataKeeper,
    CreateDataKeeperTarget,
    CreateDisk,
    CreateFileSystemResource,
    MakeFileSystem,
    SetPriorities,
    StartResync,
)


@handles(CreateDisk)
class _CreateDisk(Handler):
    def rows(self, ctx: Context, step: CreateDisk) -> None:
        local = ctx.local(step.server, step.path)
        ctx.record({"delete_file": str(local)})
        mirrors.prepare_target_volume(local, step.size)


@handles(MakeFileSystem)
class _MakeFileSystem(Handler):
    def rows(self, ctx: Context, step: MakeFileSystem) -> None:
        local = ctx.local(step.server, step.path)
        label = FS_LABEL + step.fs_type.encode("ascii")
        fd = open_private(local, os.O_WRONLY)
        try:
            os.pwrite(fd, label.ljust(4096, b"\0"), 0)
        finally:
            os.close(fd)


@handles(CreateDataKeeper)
class _CreateDataKeeper(Handler):
    def rows(self, ctx: Context, step: CreateDataKeeper) -> None:
        local = ctx.local(step.server, step.volume)
        size = local.stat().st_size
        if step.bitmap_file is not None:
            bitmap = ctx.local(step.server, step.bitmap_file)
            if not bitmap.exists():
                ctx.record({"delete_file": str(bitmap)})
            mirrors.create_bitmap(bitmap, size, step.chunk_size)
        txn = ctx.rows
        hid = txn.add_hierarchy(step.switchback)
        rid = txn.add_resource(hid, ResourceKind.DATAKEEPER)
        txn.add_instance(
            Resource(
                rid,
                hid,
                ResourceKind.DATAKEEPER,
                step.server,
                step.tag,
                ResourceState.OSU,
                volume=step.volume,
                bitmap_file=step.bitmap_file,
            )
        )
        txn.set_root(hid, rid)
        txn.add_mirror(
            Mirror(
                rid, step.server, size, step.chunk_size, step.speed_limit_kbps, step.asynchronous
            )
        )
        ctx.keys[step.key] = rid
        ctx.hierarchy_id = hid


@handles(CreateFileSystemResource)
class _CreateFileSystemResource(Handler):
    def rows(self, ctx: Context, step: CreateFileSystemResource) -> None:
        folder = ctx.local(step.server, step.mount_point)
        if not folder.exists():
            ctx.record({"rmdir": str(folder)})
            private_dir(folder)
        assert ctx.hierarchy_id is not None
        txn = ctx.rows
        rid = txn.add_resource(ctx.hierarchy_id, ResourceKind.FILESYSTEM)
        txn.add_instance(
            Resource(
                rid,
                ctx.hierarchy_id,
                ResourceKind.FILESYSTEM,
                step.server,
                step.tag,
                ResourceState.OSU,
                mount_point=step.mount_point,
                fs_type=step.fs_type,
            )
        )
        txn.add_dependency(rid, ctx.keys[step.on])
        txn.set_root(ctx.hierarchy_id, rid)
        ctx.keys[step.key] = rid


@handles(BringNewInService)
class _BringNewInService(Handler):
    def rows(self, ctx: Context, step: BringNewInService) -> None:
        assert ctx.hierarchy_id is not None
        from core.backends.lab.steps_kinds import start_new

        start_new(ctx, step.server)  # an IP address up, an application's start command
        txn = ctx.rows
        for rid in ctx.keys.values():
            txn.set_instance_state(rid, step.server, ResourceState.ISP)
        txn.set_priority(ctx.hierarchy_id, step.server, 1)


@handles(CreateDataKeeperTarget)
class _CreateDataKeeperTarget(Handler):
    def rows(self, ctx: Context, step: CreateDataKeeperTarget) -> None:
        r = step.resource
        assert r.volume is not None
        volume = ctx.local(r.server, r.volume)
        if not volume.exists():
            ctx.record({"delete_file": str(volume)})
        mirrors.prepare_target_volume(volume, step.size)
        ctx.rows.add_instance(r)


@handles(AddResource)
class _AddResource(Handler):
    def rows(self, ctx: Context, step: AddResource) -> None:
        r = step.resource
        ctx.backend.require_alive(r.server)
        if r.kind is ResourceKind.FILESYSTEM and r.mount_point:
            folder = ctx.local(r.server, r.mount_point)
            if not folder.exists():
                ctx.record({"rmdir": str(folder)})
                private_dir(folder)
        ctx.rows.add_instance(r)


@handles(ConfigureMirror)
class _ConfigureMirror(Handler):
    def rows(self, ctx: Context, step: ConfigureMirror) -> None:
        # The target's own bitmap (used when it becomes the source): btrfs fails here.
        if step.target_bitmap is not None:
            path = ctx.local(step.target, step.target_bitmap)
            if not path.exists():
                ctx.record({"delete_file": str(path)})
            mirrors.create_bitmap(path, step.volume_size, step.chunk_size)
        # The source's intent log gets a section for the new target, every chunk dirty.
        if step.source_bitmap is not None:
            path = ctx.local(step.source, step.source_bitmap)
            if path.exists():
                ctx.record({"remove_bitmap_target": [str(path), step.target]})
            else:
                ctx.record({"delete_file": str(path)})
            mirrors.add_bitmap_target(path, step.target, step.volume_size, step.chunk_size)
        ctx.rows.set_mirror_target(
            step.resource_id,
            MirrorTarget(
                step.target,
                MirrorState.RESYNCING,
                reason="initial full resync after extend",
                bytes_total=step.volume_size,
            ),
        )
        ctx.rows.execute(
            "UPDATE mirror_targets SET asynchronous=? WHERE resource_id=? AND server=?",
            (int(step.asynchronous), step.resource_id, step.target),
        )


@handles(SetPriorities)
class _SetPriorities(Handler):
    def rows(self, ctx: Context, step: SetPriorities) -> None:
        # Removed first: priorities that trade places must not meet on the way.
        for server, _priority in step.priorities:
            ctx.rows.delete_priority(step.hierarchy_id, server)
        for server, priority in step.priorities:
            ctx.rows.set_priority(step.hierarchy_id, server, priority)
        if step.switchback is not None:
            ctx.rows.set_switchback(step.hierarchy_id, step.switchback)


@handles(StartResync)
class _StartResync(Handler):
    def after(self, ctx: Context, step: StartResync) -> None:
        mirrors.start_resync(ctx.store.home, step.resource_id, step.target)
