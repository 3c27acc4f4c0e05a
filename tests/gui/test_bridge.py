"""Core events → the GUI thread: queued, coalesced, at most ten updates a second."""

from __future__ import annotations

import itertools
import threading
import time

from core.events import (
    ClusterChanged,
    EventHub,
    LogLine,
    MirrorProgress,
    OperationFinished,
    ServerStateChanged,
)
from core.model import Cluster, share_unchanged
from gui.bridge import EventBatch, EventBridge
from tests.gui import clusters as c


def _publish_from_a_thread(hub: EventHub, events: list[object]) -> None:
    thread = threading.Thread(target=lambda: [hub.publish(e) for e in events])
    thread.start()
    thread.join()


def test_events_from_another_thread_arrive_in_one_coalesced_batch(qtbot) -> None:
    hub = EventHub()
    bridge = EventBridge(hub, interval_ms=100)
    batches: list[EventBatch] = []
    bridge.batch.connect(batches.append)
    events = [MirrorProgress("datarep-data", "lab2", i, 1000, 5e6, None) for i in range(500)]
    events += [LogLine("extend", "INFO", "one"), LogLine("extend", "INFO", "two")]
    events += [ServerStateChanged("lab3", "DEAD"), OperationFinished("extend", True, "Done.")]
    with qtbot.waitSignal(bridge.batch, timeout=5_000):
        _publish_from_a_thread(hub, events)
    assert len(batches) == 1
    batch = batches[0]
    assert batch.events == len(events)
    assert list(batch.progress) == [("datarep-data", "lab2")]
    assert batch.progress[("datarep-data", "lab2")].bytes_done == 499  # the latest only
    assert [line.text for line in batch.log_lines] == ["one", "two"]
    assert batch.reload  # a state change: read the store
    assert [f.message for f in batch.finished] == ["Done."]
    bridge.close()


def test_at_most_ten_batches_a_second(qtbot) -> None:
    hub = EventHub()
    bridge = EventBridge(hub)
    stamps: list[float] = []
    bridge.batch.connect(lambda batch: stamps.append(time.monotonic()))
    stop = threading.Event()

    def flood() -> None:
        done = 0
        while not stop.is_set():
            done += 1
            hub.publish(MirrorProgress("datarep-data", "lab2", done, 10**9, 1e6, None))

    thread = threading.Thread(target=flood)
    thread.start()
    qtbot.waitUntil(lambda: len(stamps) >= 6, timeout=5_000)
    stop.set()
    thread.join()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.09  # 100 ms apart, give or take the timer's precision
    bridge.close()


def test_a_closed_bridge_no_longer_listens(qtbot) -> None:
    hub = EventHub()
    bridge = EventBridge(hub)
    bridge.close()
    got: list[EventBatch] = []
    bridge.batch.connect(got.append)
    hub.publish(ClusterChanged())
    bridge.flush()
    assert got == []


def test_snapshots_share_unchanged_hierarchies(lab_cluster: Cluster) -> None:
    fresh_equal = Cluster(lab_cluster.servers, tuple(lab_cluster.hierarchies))
    shared = share_unchanged(lab_cluster, c.created(fresh_equal))
    assert shared.hierarchies[0] is lab_cluster.hierarchies[0]
    assert shared.hierarchies[1].root_tag == "/web"
    changed = share_unchanged(lab_cluster, c.extended(lab_cluster))
    assert changed.hierarchies[0] is not lab_cluster.hierarchies[0]
    assert share_unchanged(None, lab_cluster) is lab_cluster


def test_a_window_closed_while_connecting_leaves_no_traceback_and_no_open_backend(
    qapp, tmp_path, monkeypatch
) -> None:
    """The window (and with it the opener's signals) went away while the worker was still
    connecting: its answer has nobody to reach; it closes the backend it opened."""
    import shiboken6

    from core import connection
    from gui import bridge

    opened: list[object] = []
    real_open = connection.open

    def open_and_keep(spec: str | None = None):
        backend = real_open(spec)
        opened.append(backend)
        return backend

    monkeypatch.setattr(connection, "open", open_and_keep)
    opener = bridge.BackendOpener(f"lab:{tmp_path}")
    bridge._OPENING.add(opener)
    shiboken6.delete(opener.signals)
    opener.run()  # on this thread: a RuntimeError here would be the traceback
    assert opener not in bridge._OPENING
    assert len(opened) == 1
    assert opened[0]._stores == []  # closed: no store connection left open
