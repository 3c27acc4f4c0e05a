"""The lab's handlers of the steps of IP and Generic Application resources, and of
dependencies between hierarchies (Create / Delete Dependency)."""

from __future__ import annotations

from core.backends.lab import kits
from core.backends.lab.apply import Context, Handler, handles
from core.backends.lab.store import read_hierarchy
from core.errors import OperationError
from core.model import Resource, ResourceState
from core.plan import CreateDependency, CreateResource, DeleteDependency


@handles(CreateResource)
class _CreateResource(Handler):
    """A new hierarchy of one resource (out of service: BringNewInService follows)."""

    def rows(self, ctx: Context, step: CreateResource) -> None:
        ctx.backend.require_alive(step.server)
        txn = ctx.rows
        hid = txn.add_hierarchy(step.switchback)
        rid = txn.add_resource(hid, step.kind)
        txn.add_instance(
            Resource(
                rid, hid, step.kind, step.server, step.tag, ResourceState.OSU,
                settings=tuple(step.settings),
            )
        )  # fmt: skip
        txn.set_root(hid, rid)
        ctx.keys[step.key] = rid
        ctx.hierarchy_id = hid


def start_new(ctx: Context, server: str) -> None:
    """The kits of the resources this plan created start on ``server`` (children first)."""
    assert ctx.hierarchy_id is not None
    h = read_hierarchy(ctx.rows, ctx.hierarchy_id)
    if h is None:
        raise OperationError("the new hierarchy disappeared during the operation")
    act = kits.actor(ctx.backend.layout, ctx.say, ctx.record)
    for rid in reversed(h.resource_ids()):
        inst = h.instance(rid, server)
        if inst is not None and rid in ctx.keys.values():
            act(inst, True)


@handles(CreateDependency)
class _CreateDependency(Handler):
    """The child's hierarchy joins the parent's (its resources, mirrors and states kept);
    the parent's priorities and switchback hold for the whole."""

    def rows(self, ctx: Context, step: CreateDependency) -> None:
        txn = ctx.rows
        if step.child_hierarchy_id != step.parent_hierarchy_id:
            txn.claim(step.child_hierarchy_id, step.child_version)
            child_h = read_hierarchy(txn, step.child_hierarchy_id)
            if child_h is None:
                raise OperationError(f"the hierarchy of {step.child_tag} disappeared; reload")
            txn.move_resources(child_h.resource_ids(), step.parent_hierarchy_id)
            txn.delete_hierarchy(step.child_hierarchy_id)
        txn.add_dependency(step.parent_id, step.child_id)
        ctx.hierarchy_id = step.parent_hierarchy_id


@handles(DeleteDependency)
class _DeleteDependency(Handler):
    """The child and what it depends on become a hierarchy of their own, on the same
    servers with the same priorities and switchback."""

    def rows(self, ctx: Context, step: DeleteDependency) -> None:
        txn = ctx.rows
        h = read_hierarchy(txn, step.hierarchy_id)
        if h is None or h.parent(step.child_id) != step.parent_id:
            raise OperationError(f"{step.parent_tag} no longer depends on {step.child_tag}")
        moving = [rid for rid, _depth in h.walk(step.child_id)]
        txn.delete_dependency(step.parent_id, step.child_id)
        new = txn.add_hierarchy(h.switchback)
        txn.move_resources(moving, new)
        txn.set_root(new, step.child_id)
        for e in h.equivalencies:
            txn.set_priority(new, e.server, e.priority)
        ctx.hierarchy_id = step.hierarchy_id
