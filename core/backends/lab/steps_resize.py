"""The lab's handlers of Resize Mirror: volumes, bitmaps, then the mirror's size.

Every file action notes first, in the operation's undo journal, how to undo it: a grown
volume is truncated back to its old size, a grown bitmap is rewritten for the old size
(keeping its bits). The mirror's new size is committed with the rest; a process killed
before the commit leaves the journal, and the next opening of the lab undoes what was
grown (``core.backends.lab.journal.recover``); killed after it, the resyncs of the new
space are restarted by that opening as any resync whose process died.
"""

from __future__ import annotations

from core.backends.lab.apply import Context, Handler, handles
from core.backends.lab.resize_files import grow_volume, resize_bitmap
from core.backends.lab.steps_mirror import set_target_state
from core.errors import OperationError
from core.model import MirrorState
from core.plan import GrowBitmap, GrowVolume, SetMirrorSize


@handles(GrowVolume)
class _GrowVolume(Handler):
    def rows(self, ctx: Context, step: GrowVolume) -> None:
        local = ctx.local(step.server, step.path)
        try:
            current = local.stat().st_size
        except FileNotFoundError:
            raise OperationError(f"the volume {step.path} is missing on {step.server}") from None
        if current >= step.new_size:
            ctx.say(f"{step.path} on {step.server} is already {current} bytes: kept as it is")
            return
        ctx.record({"shrink_volume": [str(local), current]})
        grow_volume(local, step.new_size)


@handles(GrowBitmap)
class _GrowBitmap(Handler):
    def rows(self, ctx: Context, step: GrowBitmap) -> None:
        from core.replication.bitmap import Bitmap, BitmapInvalid

        local = ctx.local(step.server, step.path)
        if not local.exists():
            return  # made when needed, at the new size (a target's own, not used yet)
        try:
            bitmap = Bitmap.open(local)
        except BitmapInvalid as exc:
            ctx.say(f"{exc}: left for the resync, which rebuilds it (a full resync)", "WARNING")
            return
        try:
            covered = bitmap.volume_size
        finally:
            bitmap.close()
        if covered == step.new_size:
            return
        ctx.record({"resize_bitmap": [str(local), covered]})
        resize_bitmap(local, step.new_size)


@handles(SetMirrorSize)
class _SetMirrorSize(Handler):
    def rows(self, ctx: Context, step: SetMirrorSize) -> None:
        txn = ctx.rows
        txn.execute(
            "UPDATE mirrors SET volume_size=? WHERE resource_id=?",
            (step.new_size, step.resource_id),
        )
        for server in step.targets:
            set_target_state(
                txn,
                step.resource_id,
                server,
                MirrorState.RESYNCING,
                f"resync of the new space after the resize to {step.new_size} bytes",
            )
        txn.execute(
            "UPDATE mirror_targets SET bytes_total=? WHERE resource_id=?",
            (step.new_size, step.resource_id),
        )
