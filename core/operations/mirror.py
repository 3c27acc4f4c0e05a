"""The mirror actions through a backend: pause, resume, full resync, speed, verify, status."""

from __future__ import annotations

import threading

from core import commands
from core.backend import Backend
from core.permissions import Op
from core.plan import Plan
from core.rules import mirror as rules
from core.rules.mirror import MirrorRef, TargetLine
from core.session import Session

__all__ = ["find", "full_resync", "pause", "resume", "set_speed_limit", "status", "verify"]


def find(backend: Backend, tag: str) -> MirrorRef:
    return rules.find(backend.snapshot(), tag)


def _run(
    backend: Backend, session: Session, plan: Plan, notes: list[str] | None = None
) -> list[str]:
    if not plan.steps:  # nothing to do (a target already in sync)
        return list(notes or [])
    return [*(notes or []), *backend.apply(plan, session).lines]


def pause(backend: Backend, tag: str, target: str | None, session: Session) -> list[str]:
    command = commands.mirror("pause", tag, target)
    backend.authorize(session, Op.PAUSE_MIRROR, f"pause mirror {tag}", command)
    ref = find(backend, tag)
    steps = rules.pause_steps(ref, target)
    return _run(backend, session, Plan(Op.PAUSE_MIRROR, f"pause mirror {ref.tag}", command, steps))


def resume(backend: Backend, tag: str, target: str | None, session: Session) -> list[str]:
    command = commands.mirror("resume", tag, target)
    backend.authorize(session, Op.RESUME_MIRROR, f"resume mirror {tag}", command)
    ref = find(backend, tag)
    steps, notes = rules.resume_steps(ref, target)
    plan = Plan(Op.RESUME_MIRROR, f"resume mirror {ref.tag}", command, steps)
    return _run(backend, session, plan, notes)


def full_resync(backend: Backend, tag: str, target: str | None, session: Session) -> list[str]:
    command = commands.mirror("fullresync", tag, target)
    backend.authorize(session, Op.FULL_RESYNC, f"full resync {tag}", command)
    ref = find(backend, tag)
    steps = rules.full_resync_steps(ref, target)
    return _run(backend, session, Plan(Op.FULL_RESYNC, f"full resync {ref.tag}", command, steps))


def set_speed_limit(backend: Backend, tag: str, kbps: int, session: Session) -> str:
    command = commands.speed(tag, kbps)
    backend.authorize(session, Op.SPEED_LIMIT, f"speed limit {tag}", command)
    ref = find(backend, tag)
    plan = Plan(Op.SPEED_LIMIT, f"speed limit {ref.tag}", command, rules.speed_steps(ref, kbps))
    return backend.apply(plan, session).message


def verify(
    backend: Backend,
    tag: str,
    target: str | None,
    session: Session,
    *,
    repair: bool = False,
    cancel: threading.Event | None = None,
    wait_repair: float = 600.0,
    method: str = "blake2b",
) -> list[str]:
    """Compare each target with the source chunk by chunk and mark every differing chunk
    dirty; with ``repair``, resync them (reported done only once read back equal)."""
    command = commands.join(
        "mirror",
        "verify",
        tag,
        *(["--target", target] if target else []),
        *(["--repair"] if repair else []),
    )
    backend.authorize(session, Op.VERIFY_MIRROR, f"verify mirror {tag}", command)
    ref = find(backend, tag)
    steps = rules.verify_steps(ref, target, repair=repair, method=method, wait_repair=wait_repair)
    plan = Plan(Op.VERIFY_MIRROR, f"verify mirror {ref.tag}", command, steps)
    return list(backend.apply(plan, session, cancel=cancel).lines)


def status(backend: Backend, ref: MirrorRef) -> list[TargetLine]:
    """One line per server of the mirror, with the dirty chunks the backend counts now."""
    dirty = getattr(backend, "dirty_chunks", None)
    counts = dirty(ref.mirror.resource_id) if callable(dirty) else {}
    return rules.status(ref, counts)
