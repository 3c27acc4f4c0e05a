"""The events hub: ordered, thread-safe, filtered, and robust to broken subscribers."""

from __future__ import annotations

import threading

from core.events import EventHub, LogLine, MirrorProgress, ServerStateChanged


def test_subscribers_get_events_of_their_kinds_in_order() -> None:
    hub = EventHub()
    everything: list[object] = []
    logs: list[object] = []
    hub.subscribe(everything.append)
    unsubscribe = hub.subscribe(logs.append, LogLine)
    first = hub.publish(ServerStateChanged("lab2", "DEAD"))
    second = hub.publish(LogLine("extend", "INFO", "step 1"))
    assert everything == [first, second]
    assert logs == [second]
    assert second.seq == first.seq + 1
    unsubscribe()
    hub.publish(LogLine("extend", "INFO", "step 2"))
    assert len(logs) == 1 and len(everything) == 3


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    hub = EventHub()
    seen: list[object] = []

    def broken(_event: object) -> None:
        raise RuntimeError("subscriber bug")

    hub.subscribe(broken)
    hub.subscribe(seen.append)
    hub.publish(LogLine("op", "INFO", "x"))
    assert len(seen) == 1


def test_publishing_from_many_threads_loses_nothing() -> None:
    hub = EventHub()
    seen: list[int] = []
    lock = threading.Lock()

    def record(event: object) -> None:
        assert isinstance(event, MirrorProgress)
        with lock:
            seen.append(event.seq)

    hub.subscribe(record, MirrorProgress)

    def publisher() -> None:
        for i in range(500):
            hub.publish(MirrorProgress("dk", "lab2", i, 500, 0.0, None))

    threads = [threading.Thread(target=publisher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 2001))
