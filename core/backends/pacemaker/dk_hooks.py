"""What the engine of a DataKeeper source tells Pacemaker (its :class:`EngineHooks`).

Loaded by the hosted engine inside nbdkit on the source node (the agent names it in the
engine's configuration: ``hooks = "core.backends.pacemaker.dk_hooks:PacemakerHooks"``,
``extra = {"rid": ..., "gen": ...}``):

- a target in sync (Target) gets the source's generation as its copy's (``lkdr-RID-gen``)
  and the promotion score: it may take over if the source fails;
- before a write a target missed is acknowledged, its promotion score goes and its
  generation is lowered below the source's (retried for ``OUTDATE_TIMEOUT`` seconds;
  if the cluster cannot record it, the write fails: nothing is acknowledged that a
  failover to that target would lose);
- the mirror's state of each target as transient attributes of the target's node
  (state, percent, rate, ETA, reason, dirty chunks, verify), which ``crm_mon`` shows
  and the console reads; a state change at once, anything else (progress, the dirty
  count while writes go on) at most once a second, and what a throttled status said
  is published once the second is over (the last word is never lost). A target in
  sync has no percent, rate or ETA: a finished resync does not look like a running one.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from core.backends.pacemaker.dk_cluster import Attributes, ClusterError
from core.backends.pacemaker.dk_names import PROMOTION_SCORE
from core.replication.hosted import EngineConfig

log = logging.getLogger("lkdr-engine")

OUTDATE_TIMEOUT = 10.0
PROGRESS_INTERVAL = 1.0
NO_PROGRESS: dict[str, str | None] = {"percent": None, "rate": None, "eta": None}


def target_values(st: dict[str, Any]) -> dict[str, str | None]:
    """The transient attributes of one target of the engine's status (None: none)."""
    progress = st.get("progress") or {}
    resyncing = st.get("state") == "RESYNCING"
    total = int(progress.get("bytes_total") or 0)
    percent = min(100, int(progress.get("bytes_done", 0) * 100 / total)) if total else 0
    eta = progress.get("eta")
    verify = (st.get("verify") or {}).get("percent")
    return {
        "state": str(st.get("state", "OUT_OF_SYNC")),
        "percent": str(percent) if resyncing else None,
        "rate": str(int(progress.get("rate") or 0)) if resyncing else None,
        "eta": str(int(eta)) if resyncing and eta is not None else None,
        "reason": str(st.get("reason") or "") or None,
        "dirty": str(int(st.get("dirty_chunks") or 0)),
        "verify": None if verify is None else str(verify),
    }


class PacemakerHooks:
    """The engine's hooks on a Pacemaker node (see the module docstring)."""

    def __init__(self, config: EngineConfig) -> None:
        self.rid = str(config.extra["rid"])
        self.gen = int(config.extra["gen"])
        self.attrs = Attributes(self.rid)
        self._shown: dict[str, dict[str, str | None]] = {}
        self._pending: dict[str, dict[str, str | None]] = {}
        self._progress_at: dict[str, float] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._closed = False
        self._lock = threading.Lock()

    def in_sync(self, target: str) -> None:
        self.attrs.set_permanent(target, "gen", str(self.gen))
        self._try(self.attrs.set_score, target, PROMOTION_SCORE)
        self._publish(target, {"state": "TARGET", "reason": None, **NO_PROGRESS}, force=True)

    def outdated(self, target: str, reason: str) -> None:
        deadline = time.monotonic() + OUTDATE_TIMEOUT
        pause = threading.Event()
        while True:
            self._try(self.attrs.set_score, target, None)  # gone with its node, if down
            try:
                self.attrs.set_permanent(target, "gen", str(self.gen - 1))
                break
            except ClusterError as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("cannot outdate %s yet (%s): retrying", target, exc)
                pause.wait(0.5)
        log.info("%s outdated (generation %d): %s", target, self.gen - 1, reason)
        self._publish(target, {"state": "OUT_OF_SYNC", "reason": reason, **NO_PROGRESS}, force=True)

    def status(self, status: dict[str, Any]) -> None:
        for target, st in (status.get("targets") or {}).items():
            self._publish(target, target_values(st))

    def _publish(self, target: str, values: dict[str, str | None], force: bool = False) -> None:
        """Publish ``values`` now (a state change, ``force``) or, within a second of the
        last publication, once that second is over (the latest values win)."""
        with self._lock:
            if self._closed:
                return
            pending = self._pending.setdefault(target, {})
            pending.update(values)
            shown = self._shown.get(target, {})
            state_changed = pending.get("state", shown.get("state")) != shown.get("state")
            wait = self._progress_at.get(target, -PROGRESS_INTERVAL) + PROGRESS_INTERVAL
            wait -= time.monotonic()
            if force or state_changed or wait <= 0:
                self._flush(target)
            elif target not in self._timers:
                timer = threading.Timer(wait, self._flush_later, args=(target,))
                timer.daemon = True
                self._timers[target] = timer
                timer.start()

    def _flush_later(self, target: str) -> None:
        with self._lock:
            self._timers.pop(target, None)
            if not self._closed:
                self._flush(target)

    def _flush(self, target: str) -> None:
        """Set every pending value of ``target`` that differs from what is shown (under
        the lock); one that cannot be set stays pending."""
        timer = self._timers.pop(target, None)
        if timer is not None:
            timer.cancel()
        self._progress_at[target] = time.monotonic()
        shown = self._shown.setdefault(target, {})
        pending = self._pending.pop(target, {})
        for name, value in pending.items():
            if name in shown and shown[name] == value:
                continue
            if self._try(self.attrs.set_transient, target, name, value):
                shown[name] = value
            else:
                self._pending.setdefault(target, {})[name] = value

    def _try(self, action: Any, *args: Any) -> bool:
        try:
            action(*args)
        except ClusterError as exc:
            log.warning("%s%s: %s", getattr(action, "__name__", "?"), args, exc)
            return False
        return True

    def close(self) -> None:
        """No publication after this (the attributes stay what they last said)."""
        with self._lock:
            self._closed = True
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()


__all__ = ["NO_PROGRESS", "OUTDATE_TIMEOUT", "PROGRESS_INTERVAL", "PacemakerHooks", "target_values"]
