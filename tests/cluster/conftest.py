"""A real 3-node Pacemaker lab, brought up once per test session (marker ``cluster``).

The lab lives in a throw-away home; once the last test that uses it is done (or at the
end of the session) it is taken down and nothing of it may be left: no namespace, no
process, no mount, no loop device. Before each test every node is made running,
connected and online again, so one failing test does not leave the next one a broken
cluster.

Skips, with the reason, only where root or namespaces are truly unavailable; a missing
cluster stack is a failure (``bash packaging/bootstrap.sh --test`` installs it).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from core.backends.pacemaker import PacemakerBackend, connect, nslab
from core.errors import LkError
from tests.cluster.labtools import Lab, leftovers, wait_healthy
from tests.cluster.pcmk_plans import delete


def namespaces_unavailable() -> str:
    """Why the Pacemaker lab cannot run here at all, or ''."""
    if os.geteuid() != 0:
        return "the Pacemaker lab needs root (namespaces, mounts, a bridge)"
    try:
        done = subprocess.run(
            ["unshare", "--net", "--mount", "--uts", "--ipc", "--pid", "--fork", "true"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        return "unshare (util-linux) is missing"
    if done.returncode != 0:
        return f"this machine cannot make namespaces: {done.stderr.strip()}"
    return ""


class SessionLab:
    """The session's lab, taken down once (by the last test using it, or the session)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        began = time.monotonic()
        status = nslab.up(home, nodes=3, seed=False)  # the seed: test_nslab_seed.py
        print(f"\nPacemaker lab quorate after {time.monotonic() - began:.1f} s")
        self.pids = {n.init_pid for n in status.nodes if n.init_pid}
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.pids |= {n.init_pid for n in nslab.status(self.home).nodes if n.init_pid}
        nslab.down(self.home)
        left = leftovers(self.home, self.pids)
        assert not left, left


_session_lab: list[SessionLab] = []


@pytest.fixture(scope="session")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    session_lab = SessionLab(tmp_path_factory.mktemp("pcmk-lab"))
    _session_lab.append(session_lab)
    try:
        yield session_lab.home
    finally:
        _session_lab.remove(session_lab)
        session_lab.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    """Take the lab down right after the last test that uses it: the rest of the suite
    then runs without three idle nodes beside it."""
    yield
    if not _session_lab or "lab_home" not in getattr(item, "fixturenames", ()):
        return
    items = item.session.items
    later = items[items.index(item) + 1 :]
    if not any("lab_home" in getattr(i, "fixturenames", ()) for i in later):
        _session_lab[0].close()


@pytest.fixture
def lab(lab_home: Path) -> Lab:
    """The session's lab with every node running, connected and online."""
    for node in nslab.status(lab_home).nodes:
        if node.state == nslab.NodeState.STOPPED:
            nslab.start(lab_home, node.name)
        elif node.state == nslab.NodeState.CUT:
            nslab.mend(lab_home, node.name)
    lab = Lab(lab_home)
    wait_healthy(lab)
    return lab


@pytest.fixture
def console_home(tmp_path: Path, lab: Lab) -> Path:
    """A console's own LKCONSOLE_HOME elsewhere, naming the nodes in its ssh config."""
    home = tmp_path / "console"
    (home / "ssh").mkdir(parents=True, mode=0o700)
    (home / "ssh" / "config").write_text(
        "".join(
            f"Host {n}\n  HostName {nslab.status(lab.home).node(n).address}\n" for n in lab.nodes
        )
    )
    return home


@pytest.fixture
def backend(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Iterator[PacemakerBackend]:
    """``pacemaker-lab``: the namespace lab of this LKCONSOLE_HOME; afterwards every
    hierarchy a test left is deleted."""
    monkeypatch.setenv("LKCONSOLE_HOME", str(lab.home))
    b = connect("pacemaker-lab")
    try:
        yield b
    finally:
        with contextlib.suppress(LkError):
            for h in b.snapshot().hierarchies:
                delete(b, h)
        b.close()


@pytest.fixture(scope="module")
def seeded() -> Iterator[Lab]:
    """A lab of the module's own, two nodes, with the seed (/data on the mirror
    datarep-data, in service on lab1): the session lab is not seeded. Taken down after
    the module, and nothing of it may be left."""
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="seeded-lab-"))
    status = nslab.up(home, nodes=2)
    pids = {n.init_pid for n in status.nodes if n.init_pid}
    try:
        yield Lab(home, nodes=("lab1", "lab2"))
    finally:
        nslab.down(home)
        left = leftovers(home, pids)
        import shutil

        shutil.rmtree(home, ignore_errors=True)
        assert not left, left
