"""The lab's handlers of the steps that unextend and delete hierarchies.

The rows change in the one transaction; bitmap files and bitmap sections are cleaned up
after the commit, best effort (a deleted file cannot be undone; a file left behind is
harmless: a later extend resets it).
"""

from __future__ import annotations

from core.backends.lab import kits, mirrors
from core.backends.lab.apply import Context, Handler, handles
from core.backends.lab.service_rows import take_out
from core.backends.lab.store import read_hierarchy
from core.errors import OperationError
from core.model import ResourceKind, ResourceState
from core.plan import (
    DeleteHierarchy,
    RemoveBitmapFile,
    RemoveMirrorTarget,
    RemovePriority,
    RemoveResources,
    StopMirrors,
)


@handles(StopMirrors)
class _StopMirrors(Handler):
    def before(self, ctx: Context, step: StopMirrors) -> None:
        for rid, target in step.targets:
            if not mirrors.stop_resync(ctx.store.home, rid, target):
                raise OperationError(f"the resync to {target} did not stop; try again")
            ctx.stopped.append((rid, target))


@handles(RemoveMirrorTarget)
class _RemoveMirrorTarget(Handler):
    best_effort = True

    def rows(self, ctx: Context, step: RemoveMirrorTarget) -> None:
        ctx.rows.delete_mirror_target(step.resource_id, step.target)

    def after(self, ctx: Context, step: RemoveMirrorTarget) -> None:
        if step.source_bitmap:
            path = ctx.backend.layout.server_path(step.source, step.source_bitmap)
            mirrors.remove_bitmap_target(path, step.target)


@handles(RemoveBitmapFile)
class _RemoveBitmapFile(Handler):
    best_effort = True

    def after(self, ctx: Context, step: RemoveBitmapFile) -> None:
        ctx.backend.layout.server_path(step.server, step.path).unlink(missing_ok=True)


@handles(RemoveResources)
class _RemoveResources(Handler):
    def rows(self, ctx: Context, step: RemoveResources) -> None:
        ctx.rows.delete_instances(step.hierarchy_id, step.server)


@handles(RemovePriority)
class _RemovePriority(Handler):
    def rows(self, ctx: Context, step: RemovePriority) -> None:
        ctx.rows.delete_priority(step.hierarchy_id, step.server)


@handles(DeleteHierarchy)
class _DeleteHierarchy(Handler):
    def rows(self, ctx: Context, step: DeleteHierarchy) -> None:
        # In service somewhere: its kits' remove runs first, parents first (an IP address
        # goes down, an application's stop command runs), as a Pacemaker cluster stops a
        # resource before removing it.
        h = read_hierarchy(ctx.rows, step.hierarchy_id)
        where = h.in_service_server if h is not None else None
        kits_in = h is not None and any(
            r.kind in (ResourceKind.IP, ResourceKind.APP) for r in h.resources
        )
        if h is not None and where is not None and kits_in:
            act = kits.actor(ctx.backend.layout, ctx.say, ctx.record)
            ctx.say(take_out(ctx.rows, h, where, ResourceState.OSU, act))
        ctx.rows.delete_hierarchy(step.hierarchy_id)
