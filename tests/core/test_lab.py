"""The embedded lab: first run, idempotence, interrupted creation, reset."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.backends.lab.layout import (
    SEED_VOLUME_SIZE,
    LabLayout,
    PathOutsideServer,
    ensure_lab,
    reset_lab,
    server_path,
)
from core.backends.lab.store import Store
from core.model import MirrorState, ResourceKind, ResourceState, ServerState
from tests.helpers import REPO, local_administrator


def test_first_run_creates_three_servers_and_the_seed_hierarchy(hermetic_env: Path) -> None:
    store = Store()
    assert ensure_lab(store) is True
    cluster = store.cluster()
    assert [(s.name, s.state) for s in cluster.servers] == [
        ("lab1", ServerState.ALIVE),
        ("lab2", ServerState.ALIVE),
        ("lab3", ServerState.ALIVE),
    ]
    (h,) = cluster.hierarchies
    assert h.root_tag == "/data"
    assert h.servers == ("lab1",)
    assert h.priority_of("lab1") == 1
    fs, dk = (h.instance(rid, "lab1") for rid in h.resource_ids())
    assert fs is not None and dk is not None
    assert (fs.kind, fs.tag, fs.mount_point, fs.state) == (
        ResourceKind.FILESYSTEM,
        "/data",
        "/data",
        ResourceState.ISP,
    )
    assert (dk.kind, dk.tag, dk.state) == (
        ResourceKind.DATAKEEPER,
        "datarep-data",
        ResourceState.ISP,
    )
    assert h.mirrors[0].source == "lab1" and h.mirrors[0].targets == ()

    layout = LabLayout(hermetic_env)
    for name in ("lab1", "lab2", "lab3"):
        root = layout.server_root(name)
        assert (root / "disks").is_dir()
        assert (root / "opt" / "LifeKeeper").is_dir()
        assert (root / "data").is_dir()
    volume = layout.server_path("lab1", dk.volume or "")
    assert volume.stat().st_size == SEED_VOLUME_SIZE == 64 * 1024 * 1024


def test_creating_the_lab_twice_is_a_no_op() -> None:
    store = Store()
    ensure_lab(store)
    before = store.cluster()
    assert ensure_lab(store) is False
    assert Store().cluster() == before


def test_interrupted_creation_is_finished_on_next_start(hermetic_env: Path) -> None:
    # A real crash: the process is SIGKILLed in the middle of the lab's transaction.
    script = (
        "import os, signal\n"
        "from core.backends.lab.store import Store, Txn\n"
        "from core.backends.lab import layout as lab\n"
        "original = Txn.add_resource\n"
        "def dying(self, *a, **k):\n"
        "    original(self, *a, **k)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "Txn.add_resource = dying\n"
        "lab.ensure_lab(Store())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, check=False)
    assert done.returncode == -9
    store = Store()
    assert store.cluster().servers == ()  # the half-made rows were never committed
    assert ensure_lab(store) is True
    cluster = store.cluster()
    assert len(cluster.servers) == 3 and len(cluster.hierarchies) == 1
    assert store.integrity_check() == "ok"


def test_reset_throws_everything_away(hermetic_env: Path) -> None:
    store = Store()
    ensure_lab(store)
    layout = LabLayout(hermetic_env)
    stray = layout.server_path("lab2", "/disks/extra.img")
    stray.write_bytes(b"x")
    with store.transaction() as txn:
        txn.set_server_state("lab3", ServerState.DEAD)
    reset_lab(store, local_administrator())
    cluster = store.cluster()
    assert all(s.state is ServerState.ALIVE for s in cluster.servers)
    assert not stray.exists()
    assert len(cluster.hierarchies) == 1
    assert cluster.hierarchies[0].mirrors[0].targets == ()
    assert MirrorState.TARGET.label == "Target"


def test_server_paths_stay_inside_the_server(tmp_path: Path) -> None:
    assert server_path(tmp_path, "/opt/LifeKeeper/bitmap_x") == tmp_path / "opt/LifeKeeper/bitmap_x"
    assert server_path(tmp_path, "/") == tmp_path
    for bad in ("relative/path", "/data/../../etc"):
        try:
            server_path(tmp_path, bad)
        except PathOutsideServer as exc:
            assert bad in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")
