"""Writes through a lab mirror: the lab's stand-in for an application's I/O.

They go through the engine's mirrored write path (bitmap first, then the source, then
every in-sync target), so a user can watch dirty chunks and partial resyncs. Only an
in-sync target is written to; the others only get their bits marked (their resync
process copies them).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from core import commands
from core.backends.lab import mirrors
from core.backends.lab.oplog import OperationLog
from core.backends.lab.steps_mirror import set_target_state
from core.checks import Problem
from core.errors import CheckFailed, OperationError
from core.model import MirrorState
from core.permissions import Op
from core.replication.mirror import Mirror as EngineMirror
from core.replication.mirror import TargetSpec
from core.rules.mirror import PAUSED_REASON, MirrorRef, find
from core.session import Session
from core.status import format_rate

if TYPE_CHECKING:
    from core.backends.lab import LabBackend


def _logged(backend: LabBackend, name: str, session: Session, command: str, line: str) -> None:
    out = OperationLog(name, None, session, command)
    out.say("INFO", line)
    out.finish(backend.store, ok=True, message=line)


StateChanges = list[tuple[str, MirrorState, str]]


def _open(backend: LabBackend, ref: MirrorRef) -> tuple[EngineMirror, StateChanges]:
    """The engine's mirror on the source, its targets as the store says."""
    layout = backend.layout
    alive = {s.name for s in backend.snapshot().servers if s.state.is_alive}
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
                asynchronous=t.asynchronous,
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


def _record_states(backend: LabBackend, ref: MirrorRef, w: MirrorWriter) -> None:
    """A target that fell out of sync during the writes (a failed write) goes in the store."""
    w.engine.drain_events()
    for target, state, reason in w.changes:
        row = ref.mirror.target(target)
        if row is None or state is not MirrorState.OUT_OF_SYNC:
            continue
        if row.state is MirrorState.TARGET:
            with backend.store.transaction() as txn:
                set_target_state(txn, ref.mirror.resource_id, target, state, reason)


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
    backend.authorize(session, Op.LAB_WRITE, f"write to {tag}", command)
    ref = find(backend.snapshot(), tag)
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
    with MirrorWriter(backend, ref) as w:
        w.engine.write(offset, data, durable=True)
        _record_states(backend, ref, w)
    chunks = (offset + length - 1) // ref.mirror.chunk_size - offset // ref.mirror.chunk_size + 1
    message = f"Wrote {length} bytes ({chunks} chunks) at offset {offset} of {ref.tag}."
    _logged(backend, f"write to {ref.tag}", session, command, message)
    return message


def workload(
    backend: LabBackend,
    tag: str,
    seconds: float,
    rate_mb: float,
    session: Session,
    block: int = 64 * 1024,
    *,
    stop: threading.Event | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> str:
    """Random writes at about ``rate_mb`` MB/s for ``seconds`` seconds."""
    command = commands.join(
        "lab", "workload", tag, "--seconds", f"{seconds:g}", "--rate", f"{rate_mb:g}"
    )
    backend.authorize(session, Op.LAB_WORKLOAD, f"workload on {tag}", command)
    if seconds <= 0 or seconds > 3600:
        raise CheckFailed(
            [Problem("seconds", "out_of_range", "Seconds must be more than 0 and at most 3600.")]
        )
    if rate_mb <= 0 or rate_mb > 10_000:
        raise CheckFailed(
            [Problem("rate", "out_of_range", "Rate must be more than 0 and at most 10000 MB/s.")]
        )
    ref = find(backend.snapshot(), tag)
    size = ref.mirror.volume_size
    blocks = max(1, size // block)
    written = 0
    start = time.monotonic()
    rng = int.from_bytes(os.urandom(4), "little")
    with MirrorWriter(backend, ref) as w:
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
    _logged(backend, f"workload on {ref.tag}", session, command, message)
    return message


class MirrorWriter:
    """Open the engine mirror for writing; a no-bitmap resync is restarted around it.

    Without a bitmap, a resync in another process cannot learn which chunks a write
    changed, so it is stopped first and started again (in full) afterwards.
    """

    def __init__(self, backend: LabBackend, ref: MirrorRef) -> None:
        self.backend, self.ref = backend, ref
        self.restart: list[str] = []

    def __enter__(self) -> MirrorWriter:
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
