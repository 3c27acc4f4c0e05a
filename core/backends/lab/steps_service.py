"""The lab's handlers of In Service, Out of Service, Switchover and Force Online."""

from __future__ import annotations

from core.backends.lab import kits
from core.backends.lab.apply import Context, Handler, handles
from core.backends.lab.service_rows import FollowUp, bring_in, make_source, take_out
from core.backends.lab.store import read_hierarchy
from core.errors import OperationError
from core.model import Hierarchy
from core.plan import BringInService, MakeSource, TakeOutOfService


def _current(ctx: Context, hierarchy_id: int) -> Hierarchy:
    """The hierarchy as the transaction sees it now (after the steps so far)."""
    h = read_hierarchy(ctx.rows, hierarchy_id)
    if h is None:
        raise OperationError("the hierarchy disappeared during the operation")
    return h


@handles(TakeOutOfService)
class _TakeOut(Handler):
    def rows(self, ctx: Context, step: TakeOutOfService) -> None:
        act = kits.actor(ctx.backend.layout, ctx.say, ctx.record)
        ctx.say(take_out(ctx.rows, _current(ctx, step.hierarchy_id), step.server, step.state, act))


@handles(BringInService)
class _BringIn(Handler):
    def rows(self, ctx: Context, step: BringInService) -> None:
        ctx.backend.require_alive(step.server)
        act = kits.actor(ctx.backend.layout, ctx.say, ctx.record)
        ctx.say(bring_in(ctx.rows, _current(ctx, step.hierarchy_id), step.server, act))


@handles(MakeSource)
class _MakeSource(Handler):
    def rows(self, ctx: Context, step: MakeSource) -> None:
        follow = FollowUp()
        h = _current(ctx, step.hierarchy_id)
        lines = make_source(
            ctx.rows,
            ctx.backend.layout,
            h,
            step.server,
            follow,
            old_alive=step.old_source_alive,
            full_resync=step.full_resync,
        )
        for line in lines:
            ctx.say(line)
        ctx.pending[id(step)] = follow

    def after(self, ctx: Context, step: MakeSource) -> None:
        follow: FollowUp = ctx.pending.pop(id(step))
        follow.run(ctx.store, lambda level, text: ctx.say(text, level))
