"""The hosted engine's status file follows a target's dirty count while writes go on
and nothing else changes (a paused target: no state change, only chunks to copy later),
at most about once a second: the node's agent and the console read it from there."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.replication.hosted import read_status
from tests.core.replication.nbdlab import NbdLab, skip_reason, wait_until
from tests.core.replication.test_nbd_control import CHUNK, Up, _block
from tests.core.replication.test_nbd_control import lab as lab  # the fixture

_why = skip_reason(fuse=True)
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")


def _dirty_in_file(up: Up) -> int:
    return int(read_status(up.work / "status.json")["targets"]["t1"]["dirty_chunks"])


def test_the_status_file_follows_the_dirty_count_of_a_paused_target(
    lab: NbdLab, tmp_path: Path
) -> None:
    up = Up(lab, tmp_path)
    wait_until(lambda: up.state() == "TARGET", 60, "the first resync")
    up.ask("pause", target="t1")
    wait_until(lambda: read_status(up.work / "status.json")["targets"]["t1"]["paused"], 10,
               "the pause in the status file")  # fmt: skip
    assert _dirty_in_file(up) == 0
    for n in range(1, 4):
        up.write(n * 10 * CHUNK, _block(n))
        wait_until(lambda n=n: _dirty_in_file(up) == n, 10, f"{n} dirty chunks in the file")
    assert up.target_status()["state"] == "OUT_OF_SYNC"
    up.ask("resume", target="t1")
    wait_until(lambda: up.state() == "TARGET" and _dirty_in_file(up) == 0, 60, "in sync again")
