"""Noticing every change of a Pacemaker cluster within a fraction of a second, for ~nothing.

``crm_mon`` in its interactive mode subscribes to the CIB's change notifications and
prints a progress dot for every change it is told of, at once (its screen is redrawn at
most every 2 s, which is why the dot, and not the screen, is what we wait for). Run as
``stdbuf -o0 crm_mon --output-as=text`` on the node (unbuffered, so each dot comes alone),
its output is a stream of "something changed" with no polling anywhere: while nothing
changes, the watch sleeps in ``select`` and costs nothing, on the console and on the
node. On a dot the watch waits 50 ms for the rest of the burst, takes a snapshot and
publishes :class:`~core.events.ClusterChanged` when the cluster differs from what it last
published; new output lines of the console's records go out as
:class:`~core.events.LogRows`.

Each change seen (a server down, a hierarchy in service elsewhere, a new failure) is
also written to the console's records as an output line of "cluster" (``status.changes``),
so the output panel and ``lkctl log`` say what Pacemaker did.

When the stream ends (the node died, the SSH connection dropped) the watch takes a
snapshot at once, through the next node where the runner can go there (the namespace
lab), and starts the stream again there; a failure to read is published as
:class:`~core.events.WatchFailed` and retried. A full snapshot every 30 s keeps it honest
should a notification ever be lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from typing import TYPE_CHECKING

from core.backends.pacemaker.runner import Stream
from core.backends.pacemaker.status import changes
from core.errors import LkError
from core.events import ClusterChanged, EventHub, LogRows, WatchFailed
from core.model import Cluster

if TYPE_CHECKING:
    from core.backends.pacemaker.backend import PacemakerBackend

log = logging.getLogger(__name__)

STREAM = (
    "stdbuf", "-o0", "crm_mon", "--output-as=text", "--interval=2s",
    "--exclude=all", "--include=summary",
)  # fmt: skip
BURST_S = 0.05  # wait this long for the rest of a burst of changes
BURST_MAX_S = 0.25  # but never longer than this before a snapshot
SAFETY_S = 30.0  # a full snapshot at least this often
RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # after failures, longer and longer
CLUSTER_LOG = "cluster"  # the output panel's name for what the cluster did on its own


def share_unchanged(old: Cluster | None, new: Cluster) -> Cluster:
    """``new``, with the hierarchy objects of ``old`` that did not change (the GUI keeps
    its rows for them)."""
    if old is None:
        return new
    before = {h.id: h for h in old.hierarchies}
    shared = tuple(before[h.id] if before.get(h.id) == h else h for h in new.hierarchies)
    return Cluster(new.servers, shared, new.comm_paths)


class PacemakerWatch:
    """A thread publishing what changes on the cluster (see the module's docstring)."""

    def __init__(
        self,
        backend: PacemakerBackend,
        hub: EventHub,
        *,
        shown: Cluster | None = None,
        last_log_id: int = 0,
    ) -> None:
        self.backend = backend
        self.hub = hub
        self.published = shown
        self.last_log_id = last_log_id or backend.records.last_line_id()
        self.snapshots = 0  # how many snapshots it took (for tests and benchmarks)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake_lock = threading.Lock()  # around the wake pipe's two numbers
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._thread = threading.Thread(target=self._run, name="pacemaker-watch", daemon=True)
        self._stream: Stream | None = None

    def start(self) -> None:
        self._thread.start()

    @property
    def stream_pid(self) -> int | None:
        """The local process of the crm_mon stream, while there is one."""
        stream = self._stream
        return stream.pid if stream is not None else None

    def reload(self) -> None:
        self._reload.set()
        self._wake()

    def stop(self) -> None:
        """Stop the thread; called again (the window, the backend and a finalizer each
        may), it does nothing."""
        self._stop.set()
        self._wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(30)
        if not self._thread.is_alive():
            self._close_wake()  # else the thread does, as it ends

    def _wake(self) -> None:
        with self._wake_lock, contextlib.suppress(OSError):
            if self._wake_w >= 0:
                os.write(self._wake_w, b"!")

    def _close_wake(self) -> None:
        """Close the wake pipe once: a number closed twice may by then be a file
        somebody else opened (a later test's read failed with EBADF)."""
        with self._wake_lock:
            fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    # -- the loop -----------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        pause = threading.Event()
        try:
            force = True
            while not self._stop.is_set():
                try:
                    if self._stream is None or self._stream.where != self.backend.runner.node:
                        self._close_stream()
                        self._stream = self.backend.runner.stream(STREAM)
                        force = True
                    if not force:
                        force = self._wait_for_change()
                    if self._stop.is_set():
                        break
                    self._publish(force)
                    force = False
                    failures = 0
                except Exception as exc:  # the watch goes on whatever happens (and says so)
                    self._close_stream()
                    message = f"cannot watch {self.backend.name}: {exc}"
                    if isinstance(exc, LkError | OSError):
                        log.warning("%s", message)
                    else:
                        log.exception("%s", message)  # a bug: with its traceback
                    if failures == 0:
                        self.hub.publish(WatchFailed(message))
                    pause.wait(RETRY_S[min(failures, len(RETRY_S) - 1)])
                    failures += 1
                    force = True
        finally:
            self._close_stream()
            if self._stop.is_set():
                self._close_wake()

    def _wait_for_change(self) -> bool:
        """Sleep until the cluster changes (or a reload, or the safety timeout); True to
        publish even an unchanged snapshot (a reload)."""
        stream = self._stream
        assert stream is not None
        ready, _w, _x = select.select([stream.fileno(), self._wake_r], [], [], SAFETY_S)
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
        if stream.fileno() in ready:
            if not stream.read():
                self._close_stream()  # the node went away: look now, from where we can
                return False
            began = time.monotonic()
            while time.monotonic() - began < BURST_MAX_S:
                more, _w, _x = select.select([stream.fileno()], [], [], BURST_S)
                if not more:
                    break
                if not stream.read():
                    self._close_stream()
                    break
        if self._reload.is_set():
            self._reload.clear()
            return True
        return False

    def _publish(self, force: bool) -> None:
        cluster = self.backend.snapshot()
        self.snapshots += 1
        if force or cluster != self.published:
            if self.published is not None:  # what happened, for the output panel
                self.backend.records.add_lines(CLUSTER_LOG, changes(self.published, cluster))
            self.published = share_unchanged(self.published, cluster)
            self.hub.publish(ClusterChanged(cluster=self.published))
        rows = self.backend.records.lines(after=self.last_log_id)
        if rows:
            self.last_log_id = rows[-1].id
            self.hub.publish(LogRows(tuple(rows)))

    def _close_stream(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.close()
            self._stream = None


__all__ = ["STREAM", "PacemakerWatch", "share_unchanged"]
