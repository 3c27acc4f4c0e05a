"""A hierarchy comes in service on the first server that can take it: the lab's failover.

Used when a server stops (:mod:`core.backends.lab.failover`) and when an application's
local recovery failed (:mod:`core.backends.lab.lkcheck`). For each candidate server in
priority order, inside the caller's transaction: every mirror gets that server as its
source, and every resource comes in service there, children first, its kit's restore
run (an IP address up, an application's start command). When a kit fails there, what
was done on that server is undone (rows back to a savepoint, the kits' actions undone)
and the next candidate is tried, as LifeKeeper does; the resource that failed is left
"Failed" on that server with the reason.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.backends.lab import kits
from core.backends.lab.journal import undo_action
from core.backends.lab.service_rows import Act, FollowUp, bring_in, make_source
from core.backends.lab.store import Txn
from core.errors import OperationError
from core.model import Hierarchy, Resource, ResourceState

if TYPE_CHECKING:
    from core.backends.lab.layout import LabLayout

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    """What one try on one server did: the kits' lines, and how to undo them."""

    lines: list[str] = field(default_factory=list)
    undo: list[dict[str, Any]] = field(default_factory=list)
    current: Resource | None = None  # the resource whose kit runs now

    def say(self, text: str, level: str = "INFO") -> None:
        self.lines.append(text if level == "INFO" else f"{level}: {text}")

    def undo_all(self) -> None:
        while self.undo:
            action = self.undo.pop()
            try:
                undo_action(action)
            except OSError as exc:  # a failover must go on: say it, and go on
                log.error("undo of %s failed: %s", action, exc)
                self.lines.append(f"WARNING: could not undo {action}: {exc.strerror or exc}")


def bring_up(
    layout: LabLayout,
    txn: Txn,
    h: Hierarchy,
    candidates: list[str],
    follow: FollowUp,
    lines: list[str],
    *,
    origin: str,
    old_alive: bool,
    how: str = "fails over",
) -> str | None:
    """``h`` in service on the first of ``candidates`` where every kit starts; which one
    (None: none could take it). What happened is appended to ``lines``."""
    for new in candidates:
        attempt = Attempt()
        kept = copy.deepcopy(follow)
        txn.execute("SAVEPOINT takeover")
        act = kits.actor(layout, attempt.say, attempt.undo.append)

        def tracked(r: Resource, up: bool, act: Act = act, attempt: Attempt = attempt) -> None:
            attempt.current = r
            act(r, up)

        try:
            moved = make_source(txn, layout, h, new, follow, old_alive=old_alive)
            done = bring_in(txn, h, new, tracked)
        except OperationError as exc:
            txn.execute("ROLLBACK TO takeover")
            txn.execute("RELEASE takeover")
            follow.__dict__.update(kept.__dict__)
            attempt.undo_all()
            lines += attempt.lines
            lines.append(f"{h.root_tag} cannot come in service on {new}: {exc}")
            failed = attempt.current
            if failed is not None:
                txn.set_instance_state(failed.resource_id, new, ResourceState.OSF, str(exc))
            continue
        txn.execute("RELEASE takeover")
        lines.append(f"{h.root_tag} {how} from {origin} to {new} (priority {h.priority_of(new)}).")
        lines += moved
        lines += attempt.lines
        lines.append(done)
        return new
    return None
