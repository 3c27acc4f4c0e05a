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
  and the console reads: Out of Sync with its reason at once, before the write the
  target missed is acknowledged; from a publisher thread, any other state change
  within ``STATE_SETTLE`` (0.2 s; the states of a burst go as one, the last), anything
  else (progress, the dirty count while writes go on) at most every
  ``PROGRESS_INTERVAL`` (2 s), and only what changed; what a throttled status said is
  published once the interval is over (the last word is never lost). Each value is
  one ``attrd_updater`` run, about 30 ms of CPU with the daemons' share (measured on
  the lab): publishing every value at each state and every second cost a 1 GiB full
  resync about a quarter of its CPU. A target in sync has no percent, rate or ETA: a
  finished resync does not look like a running one.
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
STATE_SETTLE = 0.2  # a state change is published this long after it (bursts: the last)
PROGRESS_INTERVAL = 2.0  # anything else: at most once every this many seconds
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
        # what attrd holds (as far as we set it), what is to be set, and when
        self._shown: dict[str, dict[str, str | None]] = {}
        self._pending: dict[str, dict[str, str | None]] = {}
        self._due: dict[str, float] = {}
        self._published_at: dict[str, float] = {}
        self._publisher: threading.Thread | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._setting = threading.Lock()  # one flush at a time (see _flush)

    def in_sync(self, target: str) -> None:
        self.attrs.set_permanent(target, "gen", str(self.gen))
        self._try(self.attrs.set_score, target, PROMOTION_SCORE)
        self._publish(target, {"state": "TARGET", "reason": None, **NO_PROGRESS})

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
        self._publish(target, {"state": "OUT_OF_SYNC", "reason": reason, **NO_PROGRESS}, now=True)

    def status(self, status: dict[str, Any]) -> None:
        for target, st in (status.get("targets") or {}).items():
            self._publish(target, target_values(st))

    def _publish(self, target: str, values: dict[str, str | None], now: bool = False) -> None:
        """Publish ``values`` now, in this thread (``now``: what ``outdated`` says must be
        shown before the write it refuses to confirm is acknowledged), or queue them for
        the publisher: a state change within ``STATE_SETTLE`` (the states of a burst go
        as one: the last), anything else at most once every ``PROGRESS_INTERVAL`` (the
        latest values win)."""
        with self._cond:
            if self._closed:
                return
            pending = self._pending.setdefault(target, {})
            pending.update(values)
            if not now:
                shown = self._shown.get(target, {})
                at = time.monotonic()
                if pending.get("state", shown.get("state")) != shown.get("state"):
                    due = at + STATE_SETTLE
                else:
                    due = self._published_at.get(target, -PROGRESS_INTERVAL) + PROGRESS_INTERVAL
                self._due[target] = min(self._due.get(target, due), due)
                if self._publisher is None:
                    self._publisher = threading.Thread(
                        target=self._publish_loop, name="engine-attributes", daemon=True
                    )
                    self._publisher.start()
                self._cond.notify()
                return
        self._flush(target)

    def _publish_loop(self) -> None:
        """Publish each target's values when they are due."""
        while True:
            with self._cond:
                if self._closed:
                    return
                at = time.monotonic()
                ready = [t for t, due in self._due.items() if due <= at]
                if not ready:
                    self._cond.wait(min(self._due.values(), default=at + 60.0) - at)
                    continue
            for target in ready:
                self._flush(target)

    def _flush(self, target: str) -> None:
        """Set what is pending for ``target`` and differs from what attrd holds. One flush
        at a time, taking the values under the same lock as it sets them: a later
        flush's values are set after an earlier one's (what was said last stays). A
        value that cannot be set stays pending (tried again with the next ones)."""
        with self._setting:
            with self._cond:
                if self._closed:
                    return
                self._due.pop(target, None)
                self._published_at[target] = time.monotonic()
                shown = self._shown.setdefault(target, {})
                todo = {
                    k: v
                    for k, v in self._pending.pop(target, {}).items()
                    if k not in shown or shown[k] != v
                }
            done = {k: v for k, v in todo.items() if self._set(target, k, v)}
            with self._cond:
                shown.update(done)
                failed = {k: v for k, v in todo.items() if k not in done}
                if failed:
                    later = self._pending.setdefault(target, {})
                    for k, v in failed.items():
                        later.setdefault(k, v)  # unless newer values came meanwhile
                    self._due.setdefault(target, time.monotonic() + PROGRESS_INTERVAL)

    def _set(self, target: str, name: str, value: str | None) -> bool:
        return self._try(self.attrs.set_transient, target, name, value)

    def _try(self, action: Any, *args: Any) -> bool:
        try:
            action(*args)
        except ClusterError as exc:
            log.warning("%s%s: %s", getattr(action, "__name__", "?"), args, exc)
            return False
        return True

    def close(self) -> None:
        """No publication after this (the attributes stay what they last said)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            publisher = self._publisher
        if publisher is not None and publisher is not threading.current_thread():
            publisher.join(OUTDATE_TIMEOUT)


__all__ = ["NO_PROGRESS", "OUTDATE_TIMEOUT", "PROGRESS_INTERVAL", "PacemakerHooks", "target_values"]
