"""Put the lab in the states the console must show, by writing the store directly.

Stand-ins for core operations that are built elsewhere (extend, the replication
engine): they write the same rows (core.backends.lab.store's Txn API) the real operations write, so
the console under test sees exactly what it will see then. No Qt here.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable

from core.backends.lab.layout import (
    DEFAULT_CHUNK_SIZE,
    SEED_DK_TAG,
    SEED_ROOT_TAG,
    SEED_VOLUME_SIZE,
)
from core.backends.lab.store import Store
from core.model import MirrorState, MirrorTarget, ResourceKind, ResourceState


@dataclasses.dataclass(frozen=True)
class Seed:
    hierarchy_id: int
    root_id: int
    dk_id: int


def seed(store: Store) -> Seed:
    """Ids of the lab's seed hierarchy (/data on datarep-data)."""
    cluster = store.cluster()
    resource = cluster.find_tag(SEED_DK_TAG, "lab1")
    root = cluster.find_tag(SEED_ROOT_TAG, "lab1")
    assert resource is not None and root is not None
    return Seed(resource.hierarchy_id, root.resource_id, resource.resource_id)


def extend_seed(
    store: Store,
    server: str = "lab2",
    priority: int = 10,
    state: MirrorState = MirrorState.RESYNCING,
    bytes_done: int = 0,
    rate: float = 0.0,
    eta: float | None = None,
) -> Seed:
    """The seed hierarchy extended to ``server`` (Standby), its mirror target in ``state``."""
    ids = seed(store)
    h = store.hierarchy(ids.hierarchy_id)
    assert h is not None
    with store.transaction() as txn:
        for inst in h.instances_on("lab1"):
            bitmap = (
                f"/opt/LifeKeeper/bitmap_{inst.tag}"
                if inst.kind is ResourceKind.DATAKEEPER
                else None
            )
            txn.add_instance(
                dataclasses.replace(
                    inst, server=server, state=ResourceState.OSU, bitmap_file=bitmap
                )
            )
        txn.set_priority(ids.hierarchy_id, server, priority)
        txn.set_mirror_target(
            ids.dk_id,
            MirrorTarget(
                server,
                state,
                bytes_done=bytes_done,
                bytes_total=SEED_VOLUME_SIZE,
                rate=rate,
                eta=eta,
                dirty_chunks=(SEED_VOLUME_SIZE - bytes_done) // DEFAULT_CHUNK_SIZE,
            ),
        )
        txn.claim(ids.hierarchy_id, h.version)
        txn.add_log_line("extend", "INFO", f"Extended {SEED_ROOT_TAG} from lab1 to {server}")
    return ids


def set_progress(
    store: Store, dk_id: int, server: str, bytes_done: int, rate: float = 180e6
) -> None:
    """The resync of ``server`` has copied ``bytes_done`` bytes (the engine's row write)."""
    left = SEED_VOLUME_SIZE - bytes_done
    with store.transaction() as txn:
        txn.set_mirror_target(
            dk_id,
            MirrorTarget(
                server,
                MirrorState.RESYNCING,
                bytes_done=bytes_done,
                bytes_total=SEED_VOLUME_SIZE,
                rate=rate,
                eta=left / rate if rate else None,
                dirty_chunks=left // DEFAULT_CHUNK_SIZE,
            ),
        )


def finish_resync(store: Store, dk_id: int, server: str) -> None:
    with store.transaction() as txn:
        txn.set_mirror_target(
            dk_id,
            MirrorTarget(
                server,
                MirrorState.TARGET,
                bytes_done=SEED_VOLUME_SIZE,
                bytes_total=SEED_VOLUME_SIZE,
            ),
        )
        txn.add_log_line("resync", "INFO", f"Mirror {SEED_DK_TAG} to {server} is in sync (Target)")


class ResyncDriver(threading.Thread):
    """Advances a resync in a background thread (its own Store), one step per go().

    Lock-step with the test: the test waits for what the window shows after a step,
    then calls :meth:`go` for the next one; nothing sleeps.
    """

    def __init__(self, steps: Iterable[int], server: str = "lab2") -> None:
        super().__init__(name="resync-driver", daemon=True)
        self.steps = list(steps)
        self.server = server
        self.seed: Seed | None = None
        self.error: BaseException | None = None
        self._go = threading.Semaphore(0)
        self._ready = threading.Event()
        self.on_step: Callable[[int], None] | None = None

    def go(self) -> None:
        self._go.release()

    def wait_ready(self, timeout: float = 10.0) -> Seed:
        assert self._ready.wait(timeout), "the driver did not start"
        if self.error is not None:
            raise self.error
        assert self.seed is not None
        return self.seed

    def run(self) -> None:
        try:
            with Store() as store:
                self.seed = extend_seed(store, self.server)
                self._ready.set()
                for done in self.steps:
                    if not self._go.acquire(timeout=30):
                        return
                    set_progress(store, self.seed.dk_id, self.server, done)
                if self._go.acquire(timeout=30):
                    finish_resync(store, self.seed.dk_id, self.server)
        except BaseException as exc:  # reported to the test by wait_ready / error
            self.error = exc
            self._ready.set()
