"""What the engine's Pacemaker hooks publish as a target's node attributes, with the
cluster's commands recorded instead of run (the attributes on a real cluster:
tests/cluster/test_datakeeper_faults.py): a finished resync leaves no percent, rate or
ETA behind, a burst of states is published once (the last), and the dirty count follows
the writes, throttled, its last value never lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from core.backends.pacemaker import dk_hooks
from core.backends.pacemaker.dk_hooks import PacemakerHooks
from core.replication.hosted import EngineConfig
from tests.helpers import holds_for, wait_until


class FakeAttributes:
    """The node attributes as attrd would hold them, set by the hooks."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}
        self.calls = 0
        self.history: list[tuple[tuple[str, str], str | None]] = []
        self.lock = threading.Lock()

    def set_transient(self, node: str, short: str, value: str | None) -> None:
        with self.lock:
            self.calls += 1
            self.history.append(((node, short), value))
            if value is None:
                self.values.pop((node, short), None)
            else:
                self.values[(node, short)] = value

    def set_permanent(self, node: str, short: str, value: str | None) -> None:
        self.set_transient(node, f"permanent-{short}", value)

    def set_score(self, node: str, score: int | None) -> None:
        self.set_transient(node, "score", None if score is None else str(score))

    def of(self, node: str, short: str) -> str | None:
        with self.lock:
            return self.values.get((node, short))


@pytest.fixture
def hooks() -> Iterator[tuple[PacemakerHooks, FakeAttributes]]:
    config = EngineConfig(source="/v", bitmap=None, targets=(), status_file="/s",
                          extra={"rid": "r", "gen": 3})  # fmt: skip
    made = PacemakerHooks(config)
    fake = FakeAttributes()
    made.attrs = fake  # type: ignore[assignment]
    yield made, fake
    made.close()


def _status(state: str, dirty: int, done: int = 0) -> dict[str, object]:
    progress = {"bytes_done": done, "bytes_total": 100, "rate": 5.0, "eta": 3.0}
    target = {"state": state, "dirty_chunks": dirty}
    target["progress"] = progress if state == "RESYNCING" else None
    return {"targets": {"lab2": target}}


def test_a_finished_resync_leaves_no_percent_rate_or_eta(
    hooks: tuple[PacemakerHooks, FakeAttributes],
) -> None:
    made, fake = hooks
    made.status(_status("RESYNCING", 40, done=97))
    wait_until(lambda: fake.of("lab2", "state") == "RESYNCING", 5, "Resyncing published")
    assert (fake.of("lab2", "percent"), fake.of("lab2", "rate")) == ("97", "5")
    made.in_sync("lab2")  # within the interval of the progress above
    made.status(_status("TARGET", 0))
    wait_until(lambda: fake.of("lab2", "state") == "TARGET", 5, "Target published")
    assert [fake.of("lab2", s) for s in ("percent", "rate", "eta")] == [None, None, None]
    wait_until(lambda: fake.of("lab2", "dirty") == "0", 5, "the dirty count of a Target")


def test_a_burst_of_states_is_published_once_the_last(
    hooks: tuple[PacemakerHooks, FakeAttributes],
) -> None:
    """Statuses saying Out of Sync, then Resyncing within the settle time (a resync
    starting): attrd is told Resyncing once, and never the Out of Sync in between."""
    made, fake = hooks
    made.status(_status("OUT_OF_SYNC", 64))
    made.status(_status("RESYNCING", 64, done=10))
    wait_until(lambda: fake.of("lab2", "state") == "RESYNCING", 5, "Resyncing published")
    assert fake.of("lab2", "percent") == "10"
    assert [v for (_node, name), v in fake.history if name == "state"] == ["RESYNCING"]


def test_out_of_sync_is_published_before_outdated_returns(
    hooks: tuple[PacemakerHooks, FakeAttributes],
) -> None:
    """What a missed write waits for: on return the target's score is gone, its copy
    older and its state Out of Sync with the reason, though Target was queued just
    before (it never shows after)."""
    made, fake = hooks
    made.in_sync("lab2")  # Target queued for the publisher
    made.outdated("lab2", "it missed a write")
    assert (fake.of("lab2", "score"), fake.of("lab2", "permanent-gen")) == (None, "2")
    assert (fake.of("lab2", "state"), fake.of("lab2", "reason")) == (
        "OUT_OF_SYNC", "it missed a write",
    )  # fmt: skip
    holds_for(lambda: fake.of("lab2", "state") == "OUT_OF_SYNC", 0.5, "Out of Sync kept")


def test_the_dirty_count_follows_the_writes_throttled(
    hooks: tuple[PacemakerHooks, FakeAttributes], monkeypatch: pytest.MonkeyPatch
) -> None:
    made, fake = hooks
    monkeypatch.setattr(dk_hooks, "PROGRESS_INTERVAL", 0.5)
    made.status(_status("OUT_OF_SYNC", 1))
    wait_until(lambda: fake.of("lab2", "dirty") == "1", 5, "the first dirty count")
    calls = fake.calls
    for dirty in range(2, 40):  # a status for every write, all within the interval
        made.status(_status("OUT_OF_SYNC", dirty))
    assert fake.calls == calls  # throttled: nothing set yet
    wait_until(lambda: fake.of("lab2", "dirty") == "39", 5, "the last dirty count")
    assert fake.calls == calls + 1  # one update for the 38 statuses
