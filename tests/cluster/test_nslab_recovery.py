"""A lab of its own: up after a SIGKILL of the process running it, and down leaving nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.backends.pacemaker import nslab
from core.backends.pacemaker.nslab_proc import start_time
from tests.cluster.conftest import namespaces_unavailable
from tests.cluster.labtools import lab_netns, leftovers, loop_devices_under
from tests.helpers import REPO, wait_until

pytestmark = pytest.mark.cluster


def _recorded_inits(home: Path) -> list[int]:
    try:
        state = json.loads((home / "pacemaker-lab" / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [n["init"]["pid"] for n in state["nodes"] if n.get("init")]


def test_up_after_a_sigkill_of_up_cleans_up_comes_up_and_down_leaves_nothing(
    tmp_path: Path,
) -> None:
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    home = tmp_path / "killed-lab"
    up = subprocess.Popen(
        [sys.executable, "-m", "core.backends.pacemaker.nslab", "--home", str(home),
         "up", "--nodes", "2"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        # Killed in the middle: a node booted, the lab not yet quorate.
        wait_until(lambda: len(_recorded_inits(home)) >= 1, 60, "a node of the lab to boot")
    finally:
        up.send_signal(signal.SIGKILL)
        up.communicate(timeout=30)
    orphans = _recorded_inits(home)
    assert lab_netns(home), "the killed up left nothing behind: the test proves nothing"
    assert all(start_time(pid) is not None for pid in orphans)

    pids = set(orphans)
    try:
        status = nslab.up(home, nodes=2)
        pids |= {n.init_pid for n in status.nodes if n.init_pid}
        assert [n.state for n in status.nodes] == [nslab.NodeState.RUNNING] * 2
        assert all(start_time(pid) is None for pid in orphans)  # the killed run's nodes
        rc, out, err = nslab.exec(home, "lab1", ["crm_mon", "-1", "--output-as=xml"])
        assert rc == 0, err
        assert out.count('online="true"') == 2
        # A loop device attached on a node is host-wide: down must detach it too.
        (home / "servers" / "lab1" / "disks" / "loop.img").write_bytes(b"\0" * (1 << 20))
        rc, out, err = nslab.exec(home, "lab1", ["losetup", "-f", "--show", "/disks/loop.img"])
        assert rc == 0, err
        assert loop_devices_under(home) == [out.strip()]
    finally:
        nslab.down(home)
    assert leftovers(home, pids) == []
    nslab.down(home)  # idempotent
    assert nslab.status(home).nodes == ()


def test_a_corrupt_state_file_is_reported_and_down_still_cleans(tmp_path: Path) -> None:
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    state = tmp_path / "pacemaker-lab" / "state.json"
    state.parent.mkdir(mode=0o700)
    state.write_text('{"nodes": [{"name": "lab1", "init": {"pid": "x"')
    with pytest.raises(nslab.LabError, match=r"is not a lab state .*: run down"):
        nslab.status(tmp_path)
    nslab.down(tmp_path)
    assert not state.exists()
    assert nslab.status(tmp_path).nodes == ()
