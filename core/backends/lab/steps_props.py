"""The lab's handlers of Server Properties, a mirror target's mode and the comm paths."""

from __future__ import annotations

from core.backends.lab import store_servers
from core.backends.lab.apply import Context, Handler, handles
from core.errors import OperationError
from core.plan import CreateCommPath, DeleteCommPath, SetMirrorMode, SetServerProperties


@handles(SetServerProperties)
class _SetServerProperties(Handler):
    def rows(self, ctx: Context, step: SetServerProperties) -> None:
        store_servers.set_server_properties(
            ctx.rows,
            step.server,
            shutdown_strategy=step.shutdown_strategy,
            confirm_failover_from=step.confirm_failover_from,
            confirm_timeout=step.confirm_timeout,
            confirm_default=step.confirm_default,
        )
        ctx.say(step.title)


@handles(SetMirrorMode)
class _SetMirrorMode(Handler):
    def rows(self, ctx: Context, step: SetMirrorMode) -> None:
        done = ctx.rows.execute(
            "UPDATE mirror_targets SET asynchronous=? WHERE resource_id=? AND server=?",
            (int(step.asynchronous), step.resource_id, step.target),
        )
        if done.rowcount != 1:
            raise OperationError(f"{step.target} is no longer a target of {step.dk_tag}; reload")
        ctx.say(f"{step.title} (for the writes from now on)")


@handles(CreateCommPath)
class _CreateCommPath(Handler):
    def rows(self, ctx: Context, step: CreateCommPath) -> None:
        store_servers.add_comm_path(
            ctx.rows,
            step.server,
            step.peer,
            step.local_address,
            step.remote_address,
            step.priority,
        )
        ctx.say(step.title)


@handles(DeleteCommPath)
class _DeleteCommPath(Handler):
    def rows(self, ctx: Context, step: DeleteCommPath) -> None:
        if store_servers.row(ctx.rows._c, step.path_id) is None:
            raise OperationError("the comm path was deleted by someone else; reload")
        store_servers.delete_comm_path(ctx.rows, step.path_id)
        ctx.say(step.title)
