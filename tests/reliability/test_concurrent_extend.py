"""Two consoles extend the same hierarchy at the same moment: exactly one wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.backends.lab import LabBackend
from core.backends.lab.layout import reset_lab
from tests.helpers import REPO, local_administrator, wait_until

# Each child plans from the same snapshot, waits for the other, then executes.
CHILD = """
import os, sys, threading
from pathlib import Path
from core.operations import extend
from core.backends.lab import LabBackend
from core.errors import LkError
from tests.helpers import local_administrator
target, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
b = LabBackend()
d = extend.defaults(b, target_server=target)
p = extend.plan(b, d.request)
ready.touch()
pause = threading.Event()
while not go.exists():  # the test creates it once both children are ready
    pause.wait(0.001)
try:
    extend.execute(b, p, local_administrator())
except LkError as exc:
    print(f"REFUSED {exc}")
    sys.exit(3)
print("EXTENDED")
"""


def test_exactly_one_of_two_simultaneous_extends_wins(tmp_path: Path, hermetic_env: Path) -> None:
    backend = LabBackend()
    outcomes = []
    for round_ in range(20):
        reset_lab(backend.store, local_administrator())
        go = tmp_path / f"go{round_}"
        ready = [tmp_path / f"ready{round_}-{t}" for t in ("lab2", "lab3")]
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, t, str(r), str(go)],
                cwd=REPO,
                env=os.environ.copy(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for t, r in zip(("lab2", "lab3"), ready, strict=True)
        ]
        wait_until(lambda ready=ready: all(r.exists() for r in ready), 60, "both planned")
        go.touch()  # both children planned from the same snapshot: release them together
        results = [c.communicate(timeout=60) for c in children]
        codes = sorted(c.returncode for c in children)
        assert codes == [0, 3], results
        loser = next(out for out, _err in results if out.startswith("REFUSED"))
        assert "changed by someone else" in loser
        h = backend.snapshot().hierarchies[0]
        assert len(h.servers) == 2  # the winner's extension, and nothing of the loser's
        assert backend.store.integrity_check() == "ok"
        loser_target = "lab3" if "lab2" in h.servers else "lab2"
        assert not backend.layout.server_path(loser_target, "/disks/datarep-data.img").exists()
        outcomes.append(h.servers[1])
    print(f"\n20 races: winners {', '.join(outcomes)}; every loser got the conflict message")
    backend.close()
