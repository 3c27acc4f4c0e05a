"""How the lab carries out a plan: one SQLite transaction plus an undo journal.

Each step type has a :class:`Handler` (registered in :data:`HANDLERS` by the ``steps_*``
modules) with up to three phases:

1. ``before``: work that must precede any change (stop a resync); a failure here changes
   nothing that the operation made (what was stopped goes on);
2. ``rows``: inside the one transaction that claims the hierarchy's version; file
   actions done here note first, in the durable journal, how to undo them; a failure
   rolls the transaction back and undoes them, newest first (a crash leaves the journal
   for :func:`core.backends.lab.journal.recover`);
3. ``after``: once committed (start a resync, remove a bitmap file). A failure here is
   reported as what it is: the operation happened, then this step failed
   (``OperationError(committed=True)``); a ``best_effort`` handler's failure only leaves
   a file in place, said in a warning.

Every line said goes to the output panel (and the hub), and the whole operation to the
history, with the session that ran it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from core.backends.lab.journal import Journal, undo_action
from core.backends.lab.oplog import OperationLog
from core.backends.lab.store import Store, Txn
from core.errors import LkError, OperationError
from core.events import EventHub
from core.plan import ApplyResult, Plan, Step
from core.session import Session

if TYPE_CHECKING:
    from core.backends.lab import LabBackend

log = logging.getLogger(__name__)

StepCallback = Callable[[int, int, str, str], None]


@dataclass
class Context:
    """What the steps of one plan share while they run."""

    backend: LabBackend
    plan: Plan
    out: OperationLog
    cancel: threading.Event | None = None
    journal: Journal | None = None
    txn: Txn | None = None
    undo: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)  # key of a new resource -> its id
    hierarchy_id: int | None = None  # the hierarchy made or changed
    lines: list[str] = field(default_factory=list)  # what happened (for the result)
    pending: dict[int, Any] = field(default_factory=dict)  # id(step) -> its follow-up
    stopped: list[tuple[int, str]] = field(default_factory=list)  # resyncs stopped before
    failures: list[str] = field(default_factory=list)  # done, but not as asked (a repair)

    @property
    def store(self) -> Store:
        return self.backend.store

    @property
    def rows(self) -> Txn:
        assert self.txn is not None, "rows are written inside the transaction only"
        return self.txn

    def record(self, action: dict[str, Any]) -> None:
        """Before a file action: how to undo it, in memory and in the durable journal."""
        assert self.journal is not None
        self.journal.record(action)
        self.undo.append(action)

    def say(self, text: str, level: str = "INFO") -> None:
        self.out.say(level, text)
        if level == "INFO":
            self.lines.append(text)

    def local(self, server: str, path: str) -> Path:
        """The local file behind ``path`` on ``server``, which must be running."""
        self.backend.require_alive(server)
        return self.backend.layout.server_path(server, path)


class Handler:
    """The phases of one step type (each may be absent)."""

    best_effort: ClassVar[bool] = False  # a failure after the commit only leaves a file

    def before(self, ctx: Context, step: Any) -> None:
        """Before the transaction."""

    def rows(self, ctx: Context, step: Any) -> None:
        """Inside the transaction."""

    def after(self, ctx: Context, step: Any) -> None:
        """After the commit."""


HANDLERS: dict[type[Step], Handler] = {}


def handles(step_type: type[Step]) -> Callable[[type[Handler]], type[Handler]]:
    """Class decorator: register a Handler for ``step_type``."""

    def register(cls: type[Handler]) -> type[Handler]:
        HANDLERS[step_type] = cls()
        return cls

    return register


def apply(
    backend: LabBackend,
    plan: Plan,
    session: Session,
    *,
    hub: EventHub | None = None,
    on_step: StepCallback | None = None,
    cancel: threading.Event | None = None,
) -> ApplyResult:
    """Carry ``plan`` out: see the module's docstring."""
    backend.authorize(session, plan.op, plan.name, plan.command)
    missing = [type(s).__name__ for s in plan.steps if type(s) not in HANDLERS]
    if missing:
        raise OperationError(
            f"the lab cannot do {', '.join(sorted(set(missing)))} (no such step in the lab)"
        )
    out = OperationLog(plan.name, hub, session, plan.command)
    ctx = Context(backend, plan, out, cancel, hierarchy_id=plan.hierarchy_id)
    runner = _Runner(ctx, on_step)
    if plan.intro:
        out.say("INFO", plan.intro.replace("{total}", str(len(plan.steps))))
    runner.before()
    runner.transaction()
    runner.after()
    for line in plan.extra:
        ctx.say(line, "WARNING")
    if ctx.failures:  # every step ran, but one did not get what it was for
        message = " ".join([*ctx.lines, *ctx.failures])
        out.finish(backend.store, ok=False, message=message)
        raise OperationError(message, committed=True)
    message = plan.done or "; ".join(ctx.lines) or f"{plan.name}: done."
    out.say("INFO", message)
    out.finish(backend.store, ok=True, message=message)
    return ApplyResult(message, tuple(ctx.lines), ctx.hierarchy_id)


class _Runner:
    """The three phases over the steps, with the reporting."""

    def __init__(self, ctx: Context, on_step: StepCallback | None) -> None:
        self.ctx = ctx
        self.steps = ctx.plan.steps
        self.total = len(self.steps)
        self.on_step = on_step

    def report(self, index: int, status: str) -> None:
        if self.on_step is not None:
            self.on_step(index, self.total, self.steps[index].title, status)

    def _has(self, step: Step, phase: str) -> bool:
        handler = HANDLERS[type(step)]
        return getattr(type(handler), phase) is not getattr(Handler, phase)

    def before(self) -> None:
        ctx = self.ctx
        for index, step in enumerate(self.steps):
            if not self._has(step, "before"):
                continue
            self.report(index, "running")
            try:
                HANDLERS[type(step)].before(ctx, step)
            except BaseException as exc:
                self.report(index, "failed")
                self._give_up_before_commit(step.title, exc)
            if not self._has(step, "rows") and not self._has(step, "after"):
                ctx.out.say("INFO", f"[{index + 1}/{self.total}] {step.title}: done")
                self.report(index, "done")

    def transaction(self) -> None:
        ctx = self.ctx
        store = ctx.store
        current = -1
        with Journal(store, ctx.out.operation) as jour:
            ctx.journal = jour
            try:
                with store.transaction() as txn:
                    ctx.txn = txn
                    if ctx.plan.hierarchy_id is not None and ctx.plan.version is not None:
                        txn.claim(ctx.plan.hierarchy_id, ctx.plan.version)
                    for current, step in enumerate(self.steps):
                        if not self._has(step, "rows"):
                            continue
                        if ctx.cancel is not None and ctx.cancel.is_set():
                            raise OperationError("cancelled by the user", step=step.title)
                        self.report(current, "running")
                        HANDLERS[type(step)].rows(ctx, step)
                        if not self._has(step, "after"):
                            ctx.out.say("INFO", f"[{current + 1}/{self.total}] {step.title}: done")
                            self.report(current, "done")
                    jour.mark_committed(txn)
                    ctx.out.flush(txn)
                    current = -1
            except BaseException as exc:
                ctx.txn = None
                self._roll_back(current, exc, jour)
            ctx.txn = None

    def _roll_back(self, current: int, exc: BaseException, jour: Journal) -> None:
        ctx = self.ctx
        title = self.steps[current].title if current >= 0 else "before the first step"
        left = _undo(ctx)
        if current >= 0:
            self.report(current, "failed")
        reason = _reason(exc)
        ctx.out.say("ERROR", f"Step failed: {title}: {reason}")
        if left:
            jour.keep_for_recovery()
            ctx.out.say(
                "WARNING",
                f"Could not undo everything now ({left}); it will be undone when LK Console "
                "next opens the lab.",
            )
        else:
            ctx.out.say("INFO", f"Rolled back: {ctx.plan.name} did not happen; nothing changed.")
        self._give_up_before_commit(title, exc, said=True)

    def _give_up_before_commit(self, title: str, exc: BaseException, *, said: bool = False) -> None:
        ctx = self.ctx
        reason = _reason(exc)
        if not said:
            ctx.out.say("ERROR", f"Step failed: {title}: {reason}. Nothing was changed.")
        _resume_stopped(ctx)
        ctx.out.finish(ctx.store, ok=False, message=reason)
        if isinstance(exc, LkError) and not isinstance(exc, OperationError):
            raise exc
        if not isinstance(exc, Exception):
            raise exc
        if isinstance(exc, OperationError) and exc.step:
            raise exc
        raise OperationError(reason, step=title) from exc

    def after(self) -> None:
        ctx = self.ctx
        for index, step in enumerate(self.steps):
            if not self._has(step, "after"):
                continue
            handler = HANDLERS[type(step)]
            try:
                handler.after(ctx, step)
            except Exception as exc:
                if handler.best_effort and isinstance(exc, OSError):
                    ctx.out.say(
                        "WARNING",
                        f"[{index + 1}/{self.total}] {step.title}: not done, left in place "
                        f"({exc.strerror or exc})",
                    )
                    ctx.lines.append(f"Left in place (remove by hand if unwanted): {step.title}")
                    self.report(index, "failed")
                    continue
                self.report(index, "failed")
                self._failed_after_commit(index, step, exc)
            ctx.out.say("INFO", f"[{index + 1}/{self.total}] {step.title}: done")
            self.report(index, "done")

    def _failed_after_commit(self, index: int, step: Step, exc: Exception) -> None:
        ctx = self.ctx
        done = ctx.plan.committed or f"{ctx.plan.name} was done"
        message = (
            f"{done} (every step up to the commit was done), but step {index + 1} "
            f"failed: {step.title}: {_reason(exc)}."
        )
        if ctx.plan.after_failure:
            message += " " + ctx.plan.after_failure
        ctx.out.say("ERROR", message)
        ctx.out.finish(ctx.store, ok=False, message=message)
        raise OperationError(message, committed=True) from exc


def _undo(ctx: Context) -> str:
    """Undo the file actions done so far, newest first; returns what could not be."""
    while ctx.undo:
        action = ctx.undo[-1]
        try:
            undo_action(action)
        except OSError as exc:
            log.error("undo of %s failed (left for recovery at next start): %s", action, exc)
            return f"{exc.strerror or exc}"
        ctx.undo.pop()
    return ""


def _resume_stopped(ctx: Context) -> None:
    """What ``before`` stopped goes on (the operation did not happen)."""
    if ctx.stopped:
        from core.backends.lab import mirrors

        mirrors.resume_resyncs(ctx.store)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
        return f"{text} ({exc.filename})" if exc.filename else text
    if isinstance(exc, OperationError) and exc.step:
        return str(exc).split(": ", 1)[-1]
    return str(exc) or type(exc).__name__
