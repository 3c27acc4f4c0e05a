"""A mirror engine process for the NBD tests, driven over stdin/stdout (JSON lines).

Run under the system interpreter, where libnbd's bindings are, inside the source's
network namespace::

    ip netns exec NS /usr/bin/python3 -m tests.core.replication.nbd_engine

Each request is one JSON object on a line (``{"op": "write", ...}``); each answer one
line, ``{"ok": true, ...}`` or ``{"ok": false, "error": ..., "type": ...}``. Nothing is
mocked: the ops call the real :class:`~core.replication.mirror.Mirror` over real
:class:`~core.replication.nbd.NbdVolume` connections. Data written is
``random.Random(seed).randbytes(size)`` so the test can compute what to expect.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from core.errors import LkError
from core.model import MirrorState
from core.replication.mirror import Mirror, TargetSpec
from core.replication.nbd import NbdEndpoint
from core.replication.resync import ResyncProgress
from core.replication.verify import verify_mirror_target

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def data_for(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


class Engine:
    def __init__(self) -> None:
        self.mirror: Mirror | None = None
        self.events: list[tuple[str, str, str]] = []
        self.progress: dict[str, ResyncProgress] = {}
        self.lock = threading.Lock()

    def _m(self) -> Mirror:
        if self.mirror is None:
            raise LkError("open the mirror first")
        return self.mirror

    def _on_state(self, target: str, state: MirrorState, reason: str) -> None:
        with self.lock:
            self.events.append((target, state.name, reason))

    def _on_progress(self, p: ResyncProgress) -> None:
        with self.lock:
            self.progress[p.target] = p

    # -- ops ----------------------------------------------------------------------------
    def op_open(self, req: dict[str, Any]) -> dict[str, Any]:
        specs = []
        for t in req["targets"]:
            ep = NbdEndpoint.from_uri(
                t["uri"],
                deadline=t.get("deadline", 2.0),
                connect_deadline=t.get("connect_deadline", 2.0),
            )
            specs.append(
                TargetSpec(t["name"], ep, state=MirrorState[t.get("state", "OUT_OF_SYNC")])
            )
        self.mirror = Mirror(
            req["source"],
            specs,
            req.get("bitmap"),
            chunk_size=req.get("chunk_size", 65536),
            asynchronous=req.get("asynchronous", False),
            speed_limit_kbps=req.get("speed_limit_kbps", 0),
            on_state=self._on_state,
            on_progress=self._on_progress,
            clear_delay=req.get("clear_delay", 0.2),
            clear_interval=req.get("clear_interval", 0.1),
            extent_chunks=req.get("extent_chunks", 64),
            reconnect_interval=req.get("reconnect_interval", 0.3),
            auto_resync=req.get("auto_resync", True),
        )
        return {}

    def op_write(self, req: dict[str, Any]) -> dict[str, Any]:
        data = data_for(req["seed"], req["size"])
        t0 = time.monotonic()
        self._m().write(req["offset"], data, durable=req.get("durable", False))
        return {"elapsed": time.monotonic() - t0}

    def op_sync(self, req: dict[str, Any]) -> dict[str, Any]:
        t0 = time.monotonic()
        self._m().sync()
        return {"elapsed": time.monotonic() - t0}

    def op_flush(self, req: dict[str, Any]) -> dict[str, Any]:
        self._m().flush()
        return {}

    def op_status(self, req: dict[str, Any]) -> dict[str, Any]:
        st = self._m().status(req["target"])
        with self.lock:
            p = self.progress.get(req["target"])
        out = dataclasses.asdict(st)
        out["state"] = st.state.name
        out["progress"] = None if p is None else dataclasses.asdict(p)
        return out

    def op_wait_state(self, req: dict[str, Any]) -> dict[str, Any]:
        m = self._m()
        reached = m.wait_for_state(req["target"], MirrorState[req["state"]], req["timeout"])
        if reached and req["state"] == "TARGET":
            m.wait_resync_idle(req["target"], req["timeout"])  # its last progress report
            m.drain_events()  # ... delivered
        return {"reached": reached, **self.op_status(req)}

    def op_wait_clean(self, req: dict[str, Any]) -> dict[str, Any]:
        """Wait until the target's bits are all clear (lazy clearing done)."""
        m = self._m()
        deadline = time.monotonic() + req["timeout"]
        tick = threading.Event()
        while m.status(req["target"]).dirty_chunks and time.monotonic() < deadline:
            tick.wait(0.05)
        return self.op_status(req)

    def op_events(self, req: dict[str, Any]) -> dict[str, Any]:
        self._m().drain_events()
        with self.lock:
            return {"events": list(self.events)}

    def op_action(self, req: dict[str, Any]) -> dict[str, Any]:
        getattr(self._m(), req["action"])(req["target"])
        return {}

    def op_verify(self, req: dict[str, Any]) -> dict[str, Any]:
        v = verify_mirror_target(self._m(), req["target"], speed_limit_kbps=0)
        result = v.run()
        return dataclasses.asdict(result)

    def op_close(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.mirror is not None:
            self.mirror.close()
            self.mirror = None
        return {"closed": True}


def main() -> int:
    engine = Engine()
    handlers: dict[str, Handler] = {
        name[3:]: getattr(engine, name) for name in dir(engine) if name.startswith("op_")
    }
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            answer = {"ok": True, **handlers[req["op"]](req)}
        except Exception as exc:  # reported to the test, which fails with it
            answer = {
                "ok": False,
                "type": type(exc).__name__,
                "error": str(exc),
                "trace": traceback.format_exc(),
            }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if req["op"] == "close":
            break
    if engine.mirror is not None:
        engine.mirror.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
