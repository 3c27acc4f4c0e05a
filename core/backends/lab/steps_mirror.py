"""The lab's handlers of the mirror actions: pause, resume, full resync, speed, verify.

A resync runs in its own process (:mod:`core.backends.lab.resyncd`); pausing stops that
process (the bitmap keeps what is left to copy) and marks the target "Out of Sync";
resuming starts it again.
"""

from __future__ import annotations

from core.backends.lab import mirrors
from core.backends.lab.apply import Context, Handler, handles
from core.backends.lab.store import Txn
from core.errors import OperationError
from core.model import MirrorState, MirrorTarget
from core.plan import FullResync, PauseMirror, ResumeMirror, SetSpeedLimit, VerifyMirror
from core.rules.mirror import PAUSED_REASON


def set_target_state(
    txn: Txn, resource_id: int, server: str, state: MirrorState, reason: str
) -> None:
    """A mirror target's state (its progress reset, its size and dirty count kept)."""
    row = txn.execute(
        "SELECT bytes_total, dirty_chunks FROM mirror_targets WHERE resource_id=? AND server=?",
        (resource_id, server),
    ).fetchone()
    if row is None:
        raise OperationError(f"{server} is no longer a target of this mirror; reload")
    txn.set_mirror_target(
        resource_id, MirrorTarget(server, state, reason, 0, row[0], 0.0, None, row[1])
    )


def stop(ctx: Context, resource_id: int, dk_tag: str, server: str) -> None:
    """Stop the resync process to ``server`` (it keeps the bitmap); refuse if it does not."""
    if not mirrors.stop_resync(ctx.store.home, resource_id, server):
        raise OperationError(
            f"the resync of {dk_tag} to {server} did not stop within 30 s; nothing was "
            "changed for it. Try again."
        )
    ctx.stopped.append((resource_id, server))


@handles(PauseMirror)
class _Pause(Handler):
    def before(self, ctx: Context, step: PauseMirror) -> None:
        stop(ctx, step.resource_id, step.dk_tag, step.target)

    def rows(self, ctx: Context, step: PauseMirror) -> None:
        set_target_state(
            ctx.rows, step.resource_id, step.target, MirrorState.OUT_OF_SYNC, PAUSED_REASON
        )
        ctx.say(step.title)


@handles(ResumeMirror)
class _Resume(Handler):
    def rows(self, ctx: Context, step: ResumeMirror) -> None:
        set_target_state(ctx.rows, step.resource_id, step.target, MirrorState.RESYNCING, "")

    def after(self, ctx: Context, step: ResumeMirror) -> None:
        mirrors.start_resync(ctx.store.home, step.resource_id, step.target)
        ctx.say(step.title)


@handles(FullResync)
class _FullResync(Handler):
    def before(self, ctx: Context, step: FullResync) -> None:
        """Stopped, and every chunk marked dirty for it, before the state says so: a
        failure later leaves only more to copy."""
        stop(ctx, step.resource_id, step.dk_tag, step.target)
        ref = ctx.backend.mirror_source(step.resource_id)
        if ref.bitmap_file:
            mirrors.add_bitmap_target(
                ctx.backend.layout.server_path(ref.server, ref.bitmap_file),
                step.target,
                ref.volume_size,
                ref.chunk_size,
            )

    def rows(self, ctx: Context, step: FullResync) -> None:
        set_target_state(
            ctx.rows, step.resource_id, step.target, MirrorState.RESYNCING, step.reason
        )

    def after(self, ctx: Context, step: FullResync) -> None:
        mirrors.start_resync(ctx.store.home, step.resource_id, step.target)
        ctx.say(step.title)


@handles(SetSpeedLimit)
class _SetSpeedLimit(Handler):
    def rows(self, ctx: Context, step: SetSpeedLimit) -> None:
        ctx.rows.set_speed_limit(step.resource_id, step.kbps)

    def after(self, ctx: Context, step: SetSpeedLimit) -> None:
        # A resync running now picks the new limit up by restarting (from the bitmap).
        home = ctx.store.home
        rows = ctx.store._conn.execute(
            "SELECT server FROM mirror_targets WHERE resource_id=? AND state=?",
            (step.resource_id, MirrorState.RESYNCING.name),
        ).fetchall()
        for (server,) in rows:
            if mirrors.stop_resync(home, step.resource_id, server):
                mirrors.start_resync(home, step.resource_id, server)
        ctx.say(step.title)


@handles(VerifyMirror)
class _Verify(Handler):
    def before(self, ctx: Context, step: VerifyMirror) -> None:
        from core.backends.lab.verify import verify_target  # the engine: only when verifying

        for line in verify_target(ctx, step):
            ctx.say(line)
