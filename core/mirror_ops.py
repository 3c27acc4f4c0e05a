"""Mirror actions and writes through the mirror, for the lab's DataKeeper resources.

- :func:`status`: role, state, progress, rate and ETA of every target of a mirror;
- :func:`pause` / :func:`resume` / :func:`full_resync` / :func:`set_speed_limit`;
- :func:`write` and :func:`workload`: put writes through the engine's mirrored write
  path (bitmap first, then source, then every in-sync target), so that a user can watch
  dirty chunks and partial resyncs.

A resync runs in its own process (:mod:`core.backends.lab.resyncd`); the store says what state each
target is in. Pausing stops that process (the bitmap keeps what is left to copy) and
marks the target "Out of Sync"; resuming starts it again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core import commands
from core.backends.lab import mirrors
from core.backend import LabBackend
from core.checks import Problem
from core.errors import CheckFailed, OperationError
from core.backends.lab.layout import LabLayout
from core.model import Hierarchy, Mirror, MirrorState, MirrorTarget, Resource
from core.backends.lab.oplog import OperationLog, authorize
from core.permissions import Op
from core.replication.bitmap import Bitmap, BitmapError
from core.replication.mirror import Mirror as EngineMirror
from core.replication.mirror import TargetSpec
from core.replication.volume import Volume
from core.session import Session
from core.status import format_eta, format_rate

if TYPE_CHECKING:
    from core.replication.verify import VerifyResult

PAUSED_REASON = "paused by the administrator"


@dataclass(frozen=True)
class MirrorRef:
    """A DataKeeper resource found by tag: its hierarchy, mirror and source instance."""

    hierarchy: Hierarchy
    mirror: Mirror
    source: Resource

    @property
    def tag(self) -> str:
        return self.source.tag


def find(backend: LabBackend, tag: str, field: str = "tag") -> MirrorRef:
    """The mirror of the DataKeeper resource tagged ``tag`` (on any server)."""
    cluster = backend.cluster()
    inst = cluster.find_tag(tag)
    if inst is None:
        raise CheckFailed([Problem(field, "unknown_tag", f"There is no resource tagged {tag!r}.")])
    h = cluster.hierarchy(inst.hierarchy_id)
    assert h is not None
    mirror = h.mirror(inst.resource_id)
    if mirror is None:
        raise CheckFailed(
            [
                Problem(
                    field,
                    "not_datakeeper",
                    f"{tag!r} is a {inst.kind.label} resource, not a DataKeeper resource: "
                    "it has no mirror.",
                )
            ]
        )
    source = h.instance(inst.resource_id, mirror.source)
    assert source is not None
    return MirrorRef(h, mirror, source)


def _targets(ref: MirrorRef, target: str | None) -> list[MirrorTarget]:
    if target is None:
        if not ref.mirror.targets:
            raise CheckFailed(
                [
                    Problem(
                        "tag",
                        "no_targets",
                        f"{ref.tag} has no mirror target yet; extend the hierarchy first.",
                    )
                ]
            )
        return list(ref.mirror.targets)
    found = ref.mirror.target(target)
    if found is None:
        names = ", ".join(t.server for t in ref.mirror.targets) or "none"
        raise CheckFailed(
            [
                Problem(
                    "target",
                    "unknown_target",
                    f"{target!r} is not a target of {ref.tag} (targets: {names}).",
                )
            ]
        )
    return [found]


def _set_state(
    backend: LabBackend, ref: MirrorRef, target: MirrorTarget, state: MirrorState, reason: str
) -> None:
    with backend.store.transaction() as txn:
        txn.set_mirror_target(
            ref.mirror.resource_id,
            MirrorTarget(
                target.server, state, reason, 0, target.bytes_total, 0.0, None, target.dirty_chunks
            ),
        )


def _stop(backend: LabBackend, ref: MirrorRef, server: str) -> None:
    """Stop the resync process to ``server`` (it keeps the bitmap); refuse if it does not."""
    if not mirrors.stop_resync(backend.store.home, ref.mirror.resource_id, server):
        raise OperationError(
            f"the resync of {ref.tag} to {server} did not stop within 30 s; nothing was "
            "changed for it. Try again."
        )


# -- status -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetLine:
    server: str
    role: str
    state: str
    percent: int | None
    rate: str
    eta: str
    reason: str
    dirty_chunks: int


def status(ref: MirrorRef, layout: LabLayout | None = None) -> list[TargetLine]:
    """One line per server of the mirror; dirty chunks read from the bitmap when given
    the lab's layout (the store's count is only updated by a running resync)."""
    dirty = _dirty_counts(ref, layout) if layout is not None else {}
    lines = [TargetLine(ref.mirror.source, "Source", "Source", None, "", "", "", 0)]
    for t in ref.mirror.targets:
        resyncing = t.state is MirrorState.RESYNCING
        lines.append(
            TargetLine(
                t.server,
                "Target",
                t.state.label,
                t.percent if resyncing else (100 if t.state is MirrorState.TARGET else None),
                format_rate(t.rate) if resyncing and t.rate > 0 else "",
                format_eta(t.eta) if resyncing and t.eta is not None else "",
                t.reason,
                dirty.get(t.server, t.dirty_chunks),
            )
        )
    return lines


def _dirty_counts(ref: MirrorRef, layout: LabLayout) -> dict[str, int]:
    if not ref.source.bitmap_file:
        return {}
    path = layout.server_path(ref.mirror.source, ref.source.bitmap_file)
    try:
        bitmap = Bitmap.open(path)
    except (BitmapError, OSError):
        return {}
    try:
        return {name: bitmap.dirty_count(name) for name in bitmap.targets()}
    finally:
        bitmap.close()


# -- actions ------------------------------------------------------------------------------
def _logged(
    backend: LabBackend,
    name: str,
    session: Session,
    command: str,
    lines: list[str],
    *,
    ok: bool = True,
) -> list[str]:
    """Say what a mirror action did in the output panel, and record it in the history."""
    out = OperationLog(name, None, session, command)
    for line in lines:
        out.say("INFO" if ok else "WARNING", line)
    out.finish(backend.store, ok=ok, message=lines[-1] if lines else "")
    return lines


def pause(backend: LabBackend, tag: str, target: str | None, session: Session) -> list[str]:
    command = commands.mirror("pause", tag, target)
    authorize(backend.store, session, Op.PAUSE_MIRROR, f"pause mirror {tag}", command)
    ref = find(backend, tag)
    done = []
    for t in _targets(ref, target):
        _stop(backend, ref, t.server)
        _set_state(backend, ref, t, MirrorState.OUT_OF_SYNC, PAUSED_REASON)
        done.append(
            f"Paused the mirror of {ref.tag} to {t.server}: writes are only recorded "
            "in the bitmap until it is resumed."
        )
    return _logged(backend, f"pause mirror {ref.tag}", session, command, done)


def resume(backend: LabBackend, tag: str, target: str | None, session: Session) -> list[str]:
    command = commands.mirror("resume", tag, target)
    authorize(backend.store, session, Op.RESUME_MIRROR, f"resume mirror {tag}", command)
    ref = find(backend, tag)
    done = []
    for t in _targets(ref, target):
        if t.state is MirrorState.TARGET:
            done.append(f"{t.server} is already in sync (Target).")
            continue
        if t.state is MirrorState.WAIT_FOR_PREVIOUS_SOURCE:
            raise OperationError(
                f"{t.server} waits for the previous source: it may be stale. Use Force "
                "Online if you are sure, or start the previous source."
            )
        _set_state(backend, ref, t, MirrorState.RESYNCING, "")
        mirrors.start_resync(backend.store.home, ref.mirror.resource_id, t.server)
        done.append(f"Resumed the mirror of {ref.tag} to {t.server}: resyncing what it missed.")
    return _logged(backend, f"resume mirror {ref.tag}", session, command, done)


def full_resync(backend: LabBackend, tag: str, target: str | None, session: Session) -> list[str]:
    command = commands.mirror("fullresync", tag, target)
    authorize(backend.store, session, Op.FULL_RESYNC, f"full resync {tag}", command)
    ref = find(backend, tag)
    done = []
    for t in _targets(ref, target):
        _restart_full(backend, ref, t, "full resync requested")
        done.append(f"Full resync of {ref.tag} to {t.server} started: every chunk is copied.")
    return _logged(backend, f"full resync {ref.tag}", session, command, done)


def _restart_full(backend: LabBackend, ref: MirrorRef, t: MirrorTarget, reason: str) -> None:
    """Stop the resync to ``t``, mark every chunk dirty for it, and start it again."""
    _stop(backend, ref, t.server)
    if ref.source.bitmap_file:
        mirrors.add_bitmap_target(
            backend.layout.server_path(ref.mirror.source, ref.source.bitmap_file),
            t.server,
            ref.mirror.volume_size,
            ref.mirror.chunk_size,
        )
    _set_state(backend, ref, t, MirrorState.RESYNCING, reason)
    mirrors.start_resync(backend.store.home, ref.mirror.resource_id, t.server)


def set_speed_limit(backend: LabBackend, tag: str, kbps: int, session: Session) -> str:
    authorize(
        backend.store, session, Op.SPEED_LIMIT, f"speed limit {tag}", commands.speed(tag, kbps)
    )
    if not 0 <= kbps <= 100_000_000:
        raise CheckFailed(
            [
                Problem(
                    "kbps",
                    "out_of_range",
                    f"Speed limit {kbps} KB/s is out of range: 0 (unlimited) to 100000000 KB/s.",
                )
            ]
        )
    ref = find(backend, tag)
    shown = "unlimited" if kbps == 0 else f"{kbps} KB/s"
    with backend.store.transaction() as txn:
        txn.set_speed_limit(ref.mirror.resource_id, kbps)
    # A resync running now picks the new limit up by restarting (it resumes from the bitmap).
    for t in ref.mirror.targets:
        if t.state is MirrorState.RESYNCING and mirrors.stop_resync(
            backend.store.home, ref.mirror.resource_id, t.server
        ):
            mirrors.start_resync(backend.store.home, ref.mirror.resource_id, t.server)
    message = f"The resync speed limit of {ref.tag} is {shown}; it applies to every resync."
    _logged(backend, f"speed limit {ref.tag}", session, commands.speed(tag, kbps), [message])
    return message


# -- writes -------------------------------------------------------------------------------
StateChanges = list[tuple[str, MirrorState, str]]


def _open(backend: LabBackend, ref: MirrorRef) -> tuple[EngineMirror, StateChanges]:
    """The engine's mirror on the source, its targets as the store says."""
    layout = backend.layout
    alive = {s.name for s in backend.cluster().servers if s.state.is_alive}
    specs = []
    for t in ref.mirror.targets:
        inst = ref.hierarchy.instance(ref.mirror.resource_id, t.server)
        if inst is None or not inst.volume:
            continue
        specs.append(
            TargetSpec(
                name=t.server,
                volume=layout.server_path(t.server, inst.volume),
                state=t.state,
                # Only an in-sync target is written to; the others only get their bits
                # marked (their resync process copies them), so the writer does not
                # take them from that process.
                connected=t.server in alive and t.state is MirrorState.TARGET,
                paused=t.reason == PAUSED_REASON,
            )
        )
    bitmap = (
        layout.server_path(ref.mirror.source, ref.source.bitmap_file)
        if ref.source.bitmap_file
        else None
    )
    changes: StateChanges = []

    def on_state(target: str, state: MirrorState, reason: str) -> None:
        changes.append((target, state, reason))

    engine = EngineMirror(
        layout.server_path(ref.mirror.source, ref.source.volume or ""),
        specs,
        bitmap,
        chunk_size=ref.mirror.chunk_size,
        asynchronous=ref.mirror.asynchronous,
        on_state=on_state,
        auto_resync=False,
        create_target_volumes=False,
    )
    return engine, changes


def _record_states(backend: LabBackend, ref: MirrorRef, w: _writer) -> None:
    """A target that fell out of sync during the writes (a failed write) goes in the store."""
    w.engine.drain_events()
    for target, state, reason in w.changes:
        row = ref.mirror.target(target)
        if row is None or state is not MirrorState.OUT_OF_SYNC:
            continue
        if row.state is MirrorState.TARGET:
            _set_state(backend, ref, row, state, reason)


def write(
    backend: LabBackend,
    tag: str,
    offset: int,
    length: int,
    session: Session,
    pattern: str = "random",
) -> str:
    """One write through the mirror (the lab's stand-in for an application's I/O)."""
    command = commands.join(
        "lab", "write", tag, "--offset", str(offset), "--length", str(length), "--pattern", pattern
    )
    authorize(backend.store, session, Op.LAB_WRITE, f"write to {tag}", command)
    ref = find(backend, tag)
    size = ref.mirror.volume_size
    problems = []
    if offset < 0 or offset >= size:
        problems.append(
            Problem(
                "offset",
                "out_of_range",
                f"Offset {offset} is outside the volume (0 to {size - 1}).",
            )
        )
    if length <= 0 or offset + length > size:
        problems.append(
            Problem(
                "length",
                "out_of_range",
                f"Length {length} does not fit the {size}-byte volume at offset {offset}.",
            )
        )
    if pattern not in ("random", "zero"):
        problems.append(
            Problem(
                "pattern", "unknown_pattern", f"Pattern {pattern!r} is not one of random, zero."
            )
        )
    if problems:
        raise CheckFailed(problems)
    if not ref.source.state.in_service:
        raise OperationError(
            f"{ref.tag} is not in service on {ref.mirror.source}: nothing writes to it"
        )
    data = os.urandom(length) if pattern == "random" else bytes(length)
    with _writer(backend, ref) as w:
        w.engine.write(offset, data, durable=True)
        _record_states(backend, ref, w)
    chunks = (offset + length - 1) // ref.mirror.chunk_size - offset // ref.mirror.chunk_size + 1
    message = f"Wrote {length} bytes ({chunks} chunks) at offset {offset} of {ref.tag}."
    _logged(backend, f"write to {ref.tag}", session, command, [message])
    return message


def workload(
    backend: LabBackend,
    tag: str,
    seconds: float,
    rate_mb: float,
    session: Session,
    block: int = 64 * 1024,
    stop: threading.Event | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> str:
    """Random writes at about ``rate_mb`` MB/s for ``seconds`` seconds."""
    command = commands.join(
        "lab", "workload", tag, "--seconds", f"{seconds:g}", "--rate", f"{rate_mb:g}"
    )
    authorize(backend.store, session, Op.LAB_WORKLOAD, f"workload on {tag}", command)
    if seconds <= 0 or seconds > 3600:
        raise CheckFailed(
            [Problem("seconds", "out_of_range", "Seconds must be more than 0 and at most 3600.")]
        )
    if rate_mb <= 0 or rate_mb > 10_000:
        raise CheckFailed(
            [Problem("rate", "out_of_range", "Rate must be more than 0 and at most 10000 MB/s.")]
        )
    ref = find(backend, tag)
    size = ref.mirror.volume_size
    blocks = max(1, size // block)
    written = 0
    start = time.monotonic()
    rng = int.from_bytes(os.urandom(4), "little")
    with _writer(backend, ref) as w:
        engine = w.engine
        while time.monotonic() - start < seconds and not (stop and stop.is_set()):
            rng = (rng * 1103515245 + 12345) & 0x7FFFFFFF
            offset = (rng % blocks) * block
            engine.write(offset, os.urandom(min(block, size - offset)))
            written += block
            if on_progress is not None:
                on_progress(written)
            ahead = written / (rate_mb * 1e6) - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        engine.flush()
        _record_states(backend, ref, w)
    elapsed = time.monotonic() - start
    message = (
        f"Wrote {written / 1e6:.1f} MB to {ref.tag} in {elapsed:.1f} s "
        f"({format_rate(written / elapsed if elapsed else 0)})."
    )
    _logged(backend, f"workload on {ref.tag}", session, command, [message])
    return message


class _writer:
    """Open the engine mirror for writing; a no-bitmap resync is restarted around it.

    Without a bitmap, a resync in another process cannot learn which chunks a write
    changed, so it is stopped first and started again (in full) afterwards.
    """

    def __init__(self, backend: LabBackend, ref: MirrorRef) -> None:
        self.backend, self.ref = backend, ref
        self.restart: list[str] = []

    def __enter__(self) -> _writer:
        home, rid = self.backend.store.home, self.ref.mirror.resource_id
        if self.ref.source.bitmap_file is None:
            for t in self.ref.mirror.targets:
                if t.state is MirrorState.RESYNCING and mirrors.stop_resync(home, rid, t.server):
                    self.restart.append(t.server)
        self.engine, self.changes = _open(self.backend, self.ref)
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.close()
        for server in self.restart:
            mirrors.start_resync(self.backend.store.home, self.ref.mirror.resource_id, server)


def volume_path(backend: LabBackend, ref: MirrorRef, server: str) -> Path:
    inst = ref.hierarchy.instance(ref.mirror.resource_id, server)
    assert inst is not None and inst.volume
    return backend.layout.server_path(server, inst.volume)


# -- online verify -------------------------------------------------------------------------
def verify(
    backend: LabBackend,
    tag: str,
    target: str | None,
    session: Session,
    *,
    repair: bool = False,
    cancel: threading.Event | None = None,
    wait_repair: float = 600.0,
    method: str = "blake2b",
) -> list[str]:
    """Compare each target with the source chunk by chunk (blake2b per chunk) and mark
    every differing chunk dirty in the source's bitmap; with ``repair``, resync them.

    Refused while a resync of that target runs. Progress goes to the store (the cell
    shows "Verifying n %"), the result too ("last verified ..., N differences"). A
    repair is reported done only after the resync finished and the chunks that differed
    were read back equal on both sides; otherwise OperationError says what happened.
    """
    command = commands.join(
        "mirror",
        "verify",
        tag,
        *(["--target", target] if target else []),
        *(["--repair"] if repair else []),
    )
    authorize(backend.store, session, Op.VERIFY_MIRROR, f"verify mirror {tag}", command)
    if method not in ("blake2b", "bytes"):
        raise CheckFailed(
            [
                Problem(
                    "method", "unknown_method", f"Method {method!r} is not one of blake2b, bytes."
                )
            ]
        )
    ref = find(backend, tag)
    targets = _targets(ref, target)
    home, rid = backend.store.home, ref.mirror.resource_id
    for t in targets:
        if t.state is MirrorState.RESYNCING or mirrors.resync_running(home, rid, t.server):
            raise CheckFailed(
                [
                    Problem(
                        "target",
                        "resync_running",
                        f"A resync of {ref.tag} to {t.server} is running: verify it once "
                        "the resync is done (Target).",
                    )
                ]
            )
    lines: list[str] = []
    failures: list[str] = []
    for t in targets:
        result = _verify_target(backend, ref, t, method, cancel)
        if result.cancelled:
            lines.append(
                f"Verify of {ref.tag} on {t.server} cancelled after {result.chunks_checked} chunks."
            )
            continue
        shown = ", ".join(str(c) for c in result.differing[:10])
        more = " …" if len(result.differing) > 10 else ""
        lines.append(
            f"Verified {ref.tag} on {t.server}: {result.chunks_checked} chunks checked, "
            f"{result.chunks_differing} differing" + (f" (chunks {shown}{more})." if shown else ".")
        )
        if not result.chunks_differing:
            continue
        if not repair:
            _set_state(
                backend,
                ref,
                t,
                MirrorState.OUT_OF_SYNC,
                f"verify found {result.chunks_differing} differing chunks: resume to repair them",
            )
            continue
        line, ok = _repair(backend, ref, t, result, wait_repair)
        lines.append(line)
        if not ok:
            failures.append(line)
    _logged(backend, f"verify mirror {ref.tag}", session, command, lines, ok=not failures)
    if failures:
        raise OperationError(" ".join([*lines, "Not repaired: see above."]))
    return lines


def _verify_target(
    backend: LabBackend,
    ref: MirrorRef,
    t: MirrorTarget,
    method: str,
    cancel: threading.Event | None,
) -> VerifyResult:
    """One target compared with the source; its progress and result in the store."""
    from core.replication.verify import Verify, VerifyProgress  # only when verifying

    rid, layout = ref.mirror.resource_id, backend.layout
    source = Volume.open(
        layout.server_path(ref.mirror.source, ref.source.volume or ""), readonly=True
    )
    target_volume = Volume.open(volume_path(backend, ref, t.server), readonly=True)
    bitmap = (
        Bitmap.open(layout.server_path(ref.mirror.source, ref.source.bitmap_file))
        if ref.source.bitmap_file
        else None
    )
    last = [0.0]

    def progress(p: VerifyProgress) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.2 or p.bytes_done >= p.bytes_total:
            last[0] = now
            with backend.store.transaction() as txn:
                txn.set_verify(rid, t.server, percent=p.percent)

    job = Verify(
        source,
        target_volume,
        bitmap,
        t.server,
        on_progress=progress,
        speed_limit_kbps=ref.mirror.speed_limit_kbps,
        method="bytes" if method == "bytes" else "blake2b",
    )
    if cancel is not None:

        def stop_when_cancelled() -> None:
            cancel.wait()
            job.cancel()

        threading.Thread(target=stop_when_cancelled, daemon=True).start()
    try:
        result = job.run()
    finally:
        source.close()
        target_volume.close()
        if bitmap is not None:
            bitmap.close()
    with backend.store.transaction() as txn:
        txn.set_verify(
            rid,
            t.server,
            percent=None,
            verified=None if result.cancelled else time.time(),
            differences=None if result.cancelled else result.chunks_differing,
        )
    return result


def _repair(
    backend: LabBackend, ref: MirrorRef, t: MirrorTarget, result: VerifyResult, wait: float
) -> tuple[str, bool]:
    """Resync what verify found, wait for it, and read the chunks back on both sides.

    Returns the line to show and whether the repair was checked to be done."""
    rid, home = ref.mirror.resource_id, backend.store.home
    if ref.source.bitmap_file is None:  # nothing but a full resync knows what to copy
        _restart_full(backend, ref, t, "repairing what verify found (a full resync)")
    else:
        _set_state(backend, ref, t, MirrorState.RESYNCING, "repairing what verify found")
        mirrors.start_resync(home, rid, t.server)
    deadline = time.monotonic() + wait
    state: MirrorTarget | None = t
    while time.monotonic() < deadline:
        row = backend.store.hierarchy(ref.hierarchy.id)
        found = row.mirror(rid) if row is not None else None
        state = found.target(t.server) if found is not None else None
        if state is None or state.state is not MirrorState.RESYNCING:
            break
        threading.Event().wait(0.1)
    if state is None:
        return f"Not repaired: {t.server} is no longer a target of {ref.tag}.", False
    if state.state is MirrorState.RESYNCING:
        return (
            f"Not repaired yet: the resync to {t.server} was still running after {wait:g} s "
            f"({state.percent} %); it goes on in the background.",
            False,
        )
    if state.state is not MirrorState.TARGET:
        why = f" ({state.reason})" if state.reason else ""
        return f"Not repaired: the resync to {t.server} ended {state.state.label}{why}.", False
    still = _still_differing(backend, ref, t.server, result.differing)
    if still:
        return (
            f"Not repaired: after the resync, {len(still)} of the chunks that differed on "
            f"{t.server} still differ (chunks {', '.join(map(str, still[:10]))}).",
            False,
        )
    repaired = min(result.chunks_differing * ref.mirror.chunk_size, ref.mirror.volume_size)
    return (
        f"Repaired {t.server}: {repaired} bytes ({result.chunks_differing} chunks) copied "
        "again from the source, and read back equal.",
        True,
    )


def _still_differing(
    backend: LabBackend, ref: MirrorRef, server: str, chunks: Sequence[int]
) -> list[int]:
    """Which of ``chunks`` still differ between the source and ``server``'s copy."""
    size, chunk = ref.mirror.volume_size, ref.mirror.chunk_size
    source = Volume.open(
        backend.layout.server_path(ref.mirror.source, ref.source.volume or ""), readonly=True
    )
    target = Volume.open(volume_path(backend, ref, server), readonly=True)
    try:
        return [
            c
            for c in chunks
            if source.read(c * chunk, min(chunk, size - c * chunk))
            != target.read(c * chunk, min(chunk, size - c * chunk))
        ]
    finally:
        source.close()
        target.close()
