"""The lab's handlers of the steps of IP and Generic Application resources, and of
dependencies between hierarchies (Create / Delete Dependency)."""

from __future__ import annotations

from core.backends.lab import kits
from core.backends.lab.apply import Context, Handler, handles
from core.backends.lab.store import read_hierarchy
from core.errors import OperationError
from core.model import Resource, ResourceState
from core.plan import CreateResource


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
