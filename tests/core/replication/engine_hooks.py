"""Engine hooks for the NBD tests: every call recorded, with its time, in a file.

Loaded by the hosted engine inside nbdkit (``EngineConfig.hooks =
"tests.core.replication.engine_hooks:Recorder"``); ``EngineConfig.extra`` says where to
record (``record``), how long ``outdated`` takes (``outdated_delay``, seconds) and
whether it fails (``outdated_fails``), as a cluster that cannot be reached would.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from core.errors import LkError
from core.replication.hosted import EngineConfig


class Recorder:
    def __init__(self, config: EngineConfig) -> None:
        self.path = Path(config.extra["record"])
        self.delay = float(config.extra.get("outdated_delay", 0.0))
        self.fails = bool(config.extra.get("outdated_fails", False))
        self._lock = threading.Lock()

    def _record(self, **event: Any) -> None:
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": time.time(), **event}) + "\n")

    def in_sync(self, target: str) -> None:
        self._record(hook="in_sync", target=target)

    def outdated(self, target: str, reason: str) -> None:
        threading.Event().wait(self.delay)
        if self.fails:
            self._record(hook="outdated_failed", target=target, reason=reason)
            raise LkError("the cluster cannot be reached")
        self._record(hook="outdated", target=target, reason=reason)

    def status(self, status: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        self._record(hook="close", target="")


def recorded(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
