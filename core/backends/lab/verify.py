"""The lab's online verify of a mirror target (both copies are local files here).

Each chunk of the target is compared with the source (blake2b per chunk, or the bytes);
every differing chunk is marked dirty in the source's bitmap. With repair, those chunks
are resynced, and the repair is reported done only after the resync ended and the
chunks that differed were read back equal on both sides.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.backends.lab import mirrors
from core.backends.lab.steps_mirror import set_target_state
from core.model import MirrorState, MirrorTarget
from core.plan import VerifyMirror
from core.replication.bitmap import Bitmap
from core.replication.verify import Verify, VerifyProgress, VerifyResult
from core.replication.volume import Volume

if TYPE_CHECKING:
    from core.backends.lab.apply import Context


def verify_target(ctx: Context, step: VerifyMirror) -> list[str]:
    """Verify (and repair) one target; the lines to say. A repair that was not checked to
    be done goes to ``ctx.failures``."""
    home = ctx.store.home
    if mirrors.resync_running(home, step.resource_id, step.target):
        from core.checks import Problem
        from core.errors import CheckFailed

        raise CheckFailed(
            [
                Problem(
                    "target",
                    "resync_running",
                    f"A resync of {step.dk_tag} to {step.target} is running: verify it once "
                    "the resync is done (Target).",
                )
            ]
        )
    result = _compare(ctx, step)
    if result.cancelled:
        return [
            f"Verify of {step.dk_tag} on {step.target} cancelled after "
            f"{result.chunks_checked} chunks."
        ]
    shown = ", ".join(str(c) for c in result.differing[:10])
    more = " …" if len(result.differing) > 10 else ""
    lines = [
        f"Verified {step.dk_tag} on {step.target}: {result.chunks_checked} chunks checked, "
        f"{result.chunks_differing} differing" + (f" (chunks {shown}{more})." if shown else ".")
    ]
    if not result.chunks_differing:
        return lines
    if not step.repair:
        with ctx.store.transaction() as txn:
            set_target_state(
                txn,
                step.resource_id,
                step.target,
                MirrorState.OUT_OF_SYNC,
                f"verify found {result.chunks_differing} differing chunks: resume to repair them",
            )
        return lines
    line, ok = _repair(ctx, step, result)
    if ok:
        lines.append(line)
    else:
        ctx.failures.append(line)
    return lines


def _volumes(ctx: Context, resource_id: int, target: str) -> tuple[Volume, Volume]:
    source = ctx.backend.mirror_source(resource_id)
    target_volume = ctx.backend.volume_path(resource_id, target)
    return (
        Volume.open(ctx.backend.layout.server_path(source.server, source.volume), readonly=True),
        Volume.open(target_volume, readonly=True),
    )


def _compare(ctx: Context, step: VerifyMirror) -> VerifyResult:
    """Compare the target with the source; progress and result in the store."""
    rid, store = step.resource_id, ctx.store
    ref = ctx.backend.mirror_source(rid)
    source, target = _volumes(ctx, rid, step.target)
    bitmap = (
        Bitmap.open(ctx.backend.layout.server_path(ref.server, ref.bitmap_file))
        if ref.bitmap_file
        else None
    )
    last = [0.0]

    def progress(p: VerifyProgress) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.2 or p.bytes_done >= p.bytes_total:
            last[0] = now
            with store.transaction() as txn:
                txn.set_verify(rid, step.target, percent=p.percent)

    job = Verify(
        source,
        target,
        bitmap,
        step.target,
        on_progress=progress,
        speed_limit_kbps=ref.speed_limit_kbps,
        method="bytes" if step.method == "bytes" else "blake2b",
    )
    cancel = ctx.cancel
    if cancel is not None:

        def stop_when_cancelled() -> None:
            cancel.wait()
            job.cancel()

        threading.Thread(target=stop_when_cancelled, daemon=True).start()
    try:
        result = job.run()
    finally:
        source.close()
        target.close()
        if bitmap is not None:
            bitmap.close()
    with store.transaction() as txn:
        txn.set_verify(
            rid,
            step.target,
            percent=None,
            verified=None if result.cancelled else time.time(),
            differences=None if result.cancelled else result.chunks_differing,
        )
    return result


def _repair(ctx: Context, step: VerifyMirror, result: VerifyResult) -> tuple[str, bool]:
    """Resync what verify found, wait for it, and read the chunks back on both sides."""
    rid, home, target = step.resource_id, ctx.store.home, step.target
    ref = ctx.backend.mirror_source(rid)
    if ref.bitmap_file is None:  # nothing but a full resync knows what to copy
        if not mirrors.stop_resync(home, rid, target):
            return f"Not repaired: the resync to {target} did not stop.", False
        reason = "repairing what verify found (a full resync)"
    else:
        reason = "repairing what verify found"
    with ctx.store.transaction() as txn:
        set_target_state(txn, rid, target, MirrorState.RESYNCING, reason)
    mirrors.start_resync(home, rid, target)
    state = _wait_resync(ctx, rid, target, step.wait_repair)
    if state is None:
        return f"Not repaired: {target} is no longer a target of {step.dk_tag}.", False
    if state.state is MirrorState.RESYNCING:
        return (
            f"Not repaired yet: the resync to {target} was still running after "
            f"{step.wait_repair:g} s ({state.percent} %); it goes on in the background.",
            False,
        )
    if state.state is not MirrorState.TARGET:
        why = f" ({state.reason})" if state.reason else ""
        return f"Not repaired: the resync to {target} ended {state.state.label}{why}.", False
    still = _still_differing(ctx, rid, target, result.differing)
    if still:
        return (
            f"Not repaired: after the resync, {len(still)} of the chunks that differed on "
            f"{target} still differ (chunks {', '.join(map(str, still[:10]))}).",
            False,
        )
    repaired = min(result.chunks_differing * ref.chunk_size, ref.volume_size)
    return (
        f"Repaired {target}: {repaired} bytes ({result.chunks_differing} chunks) copied "
        "again from the source, and read back equal.",
        True,
    )


def _wait_resync(ctx: Context, rid: int, target: str, wait: float) -> MirrorTarget | None:
    deadline = time.monotonic() + wait
    pause = threading.Event()
    while True:
        state = ctx.backend.mirror_target(rid, target)
        if state is None or state.state is not MirrorState.RESYNCING:
            return state
        if time.monotonic() >= deadline:
            return state
        pause.wait(0.1)


def _still_differing(ctx: Context, rid: int, target: str, chunks: Sequence[int]) -> list[int]:
    """Which of ``chunks`` still differ between the source and ``target``'s copy."""
    ref = ctx.backend.mirror_source(rid)
    size, chunk = ref.volume_size, ref.chunk_size
    source, copy = _volumes(ctx, rid, target)
    try:
        return [
            c
            for c in chunks
            if source.read(c * chunk, min(chunk, size - c * chunk))
            != copy.read(c * chunk, min(chunk, size - c * chunk))
        ]
    finally:
        source.close()
        copy.close()
