"""The engine hosted in nbdkit on the source: the mirrored volume, served to the node.

``nbdkit -U SOCKET python core/replication/nbdkit_plugin.py config=ENGINE.json`` runs
one :class:`HostedEngine`: a :class:`~core.replication.mirror.Mirror` of the source
volume to its targets (over NBD, :mod:`.nbd`), and nbdkit serves the *mirrored* volume
on a local Unix socket. Every request goes through the engine:

* ``pread``: from the source volume (the source always has every byte);
* ``pwrite``: :meth:`Mirror.write`: the bitmap first (durable), the source, then every
  replicating target (synchronous mode: before the reply; asynchronous: queued);
  a write with NBD's FUA flag is ``durable`` (on disk on the source and on every
  replicating synchronous target before the reply);
* ``flush``: :meth:`Mirror.sync`: the source's ``fdatasync`` while every replicating
  synchronous target flushes, so an ``fsync`` in a filesystem above returns once the
  data is durable on the source and on every in-sync synchronous target.

Targets that stall or die are dropped (Out of Sync, their chunks dirty in the bitmap)
and reconnected and resynced when they answer again (see ``mirror.py``). The state of
every target is written to ``status_file`` (JSON, replaced atomically, at most
``STATUS_INTERVAL`` apart and at every state change): that file is how the node's
agent and the console see the mirror while nbdkit runs it.

The configuration is a JSON file (:class:`EngineConfig`); it names the key files of the
targets, never a key. The engine runs in nbdkit's embedded Python, which is the system
``python3`` (where ``python3-libnbd`` is): see :mod:`.nbd`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import LkError
from core.model import MirrorState
from core.replication.bitmap import DEFAULT_CHUNK_SIZE
from core.replication.mirror import Mirror, ResyncTuning, TargetSpec
from core.replication.nbd import DEFAULT_CONNECT_DEADLINE, DEFAULT_DEADLINE, NbdEndpoint
from core.replication.resync import DEFAULT_SPEED_LIMIT_KBPS, ResyncProgress

__all__ = [
    "STATUS_INTERVAL",
    "EngineConfig",
    "EngineConfigError",
    "EngineTarget",
    "HostedEngine",
    "read_status",
]

log = logging.getLogger(__name__)

STATUS_INTERVAL = 0.25  # seconds between two status files while only progress changes


class EngineConfigError(LkError):
    """The engine's configuration file cannot be read or is incomplete."""


@dataclass(frozen=True)
class EngineTarget:
    """One target of the hosted mirror: its name and its ``nbds://`` address."""

    name: str
    uri: str  # nbds://USER@HOST:PORT/EXPORT?tls-psk-file=KEYFILE
    state: str = MirrorState.OUT_OF_SYNC.name  # last known: TARGET = was in sync
    deadline: float = DEFAULT_DEADLINE
    connect_deadline: float = DEFAULT_CONNECT_DEADLINE
    owner_lock: str | None = None
    asynchronous: bool | None = None  # this target's own mode (None: the engine's)

    def endpoint(self) -> NbdEndpoint:
        return NbdEndpoint.from_uri(
            self.uri,
            deadline=self.deadline,
            connect_deadline=self.connect_deadline,
            owner_lock=self.owner_lock,
        )


@dataclass(frozen=True)
class EngineConfig:
    """What the hosted engine mirrors, where, and how (a JSON file)."""

    source: str
    bitmap: str | None
    targets: tuple[EngineTarget, ...]
    status_file: str
    chunk_size: int = DEFAULT_CHUNK_SIZE
    asynchronous: bool = False
    speed_limit_kbps: int = DEFAULT_SPEED_LIMIT_KBPS
    reconnect_interval: float = 2.0
    clear_delay: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)  # kept for the caller, unused here

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the configuration (mode 0600: it names the key files), atomically."""
        data = asdict(self)
        data["targets"] = [asdict(t) for t in self.targets]
        return _write_json(Path(path), data, 0o600)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EngineConfig:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            targets = tuple(EngineTarget(**t) for t in raw.pop("targets"))
            return cls(targets=targets, **raw)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise EngineConfigError(
                f"{path}: cannot read the engine's configuration ({exc}); rewrite it with "
                "EngineConfig.save"
            ) from exc


def _write_json(path: Path, data: object, mode: int) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def read_status(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The last status a hosted engine wrote (``{}`` when there is none yet)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError:
        return {}  # cannot happen with atomic replacement; treat as "not yet"
    return data if isinstance(data, dict) else {}


class HostedEngine:
    """The mirror behind nbdkit's callbacks (see the module docstring)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._status_lock = threading.Lock()
        self._progress: dict[str, ResyncProgress] = {}
        self._dirty = threading.Event()
        self._stop = threading.Event()
        specs = [
            TargetSpec(
                t.name, t.endpoint(), state=MirrorState[t.state], asynchronous=t.asynchronous
            )
            for t in config.targets
        ]
        self.mirror = Mirror(
            config.source,
            specs,
            config.bitmap,
            chunk_size=config.chunk_size,
            asynchronous=config.asynchronous,
            speed_limit_kbps=config.speed_limit_kbps,
            on_state=self._on_state,
            on_progress=self._on_progress,
            reconnect_interval=config.reconnect_interval,
            clear_delay=config.clear_delay,
            resync_tuning=ResyncTuning(),
        )
        self.size = self.mirror.source.size
        self._status_thread = threading.Thread(
            target=self._status_loop, name="engine-status", daemon=True
        )
        self._status_thread.start()
        self._write_status()

    # -- nbdkit's requests -------------------------------------------------------------
    def pread(self, buf: bytearray | memoryview, offset: int) -> None:
        self.mirror.source.readinto(offset, buf)

    def pwrite(self, buf: bytes | bytearray | memoryview, offset: int, fua: bool) -> None:
        self.mirror.write(offset, buf, durable=fua)

    def flush(self) -> None:
        self.mirror.sync()

    # -- the status file -----------------------------------------------------------------
    def _on_state(self, target: str, state: MirrorState, reason: str) -> None:
        log.info("mirror target %s: %s%s", target, state.value, f" ({reason})" if reason else "")
        self._dirty.set()

    def _on_progress(self, p: ResyncProgress) -> None:
        with self._status_lock:
            self._progress[p.target] = p
        self._dirty.set()

    def _status_loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(1.0)
            if self._stop.is_set():
                return
            if self._dirty.is_set():
                self._dirty.clear()
                self._write_status()
                self._stop.wait(STATUS_INTERVAL)

    def status(self) -> dict[str, Any]:
        """What the status file holds: every target's state, reason, dirty chunks,
        whether it replicates, and its last resync progress."""
        targets: dict[str, Any] = {}
        for st in self.mirror.statuses():
            with self._status_lock:
                p = self._progress.get(st.name)
            targets[st.name] = {
                "state": st.state.name,
                "label": st.state.value,
                "reason": st.reason,
                "address": st.volume,
                "connected": st.connected,
                "replicating": st.replicating,
                "dirty_chunks": st.dirty_chunks,
                "resyncing": st.resyncing,
                "progress": None if p is None else asdict(p),
            }
        return {
            "pid": os.getpid(),
            "source": self.config.source,
            "size": self.size,
            "chunk_size": self.config.chunk_size,
            "online": self.mirror.online,
            "time": time.time(),
            "targets": targets,
        }

    def _write_status(self) -> None:
        try:
            data = self.status()
            with self._status_lock:
                _write_json(Path(self.config.status_file), data, 0o644)
        except (OSError, LkError):
            log.exception("cannot write the status file %s", self.config.status_file)

    # -- life ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop resyncs, flush, clear idle bits, close everything; a last status."""
        self.mirror.close()
        self._stop.set()
        self._dirty.set()
        self._status_thread.join()
        self._write_status_closed()

    def _write_status_closed(self) -> None:
        data = read_status(self.config.status_file)
        data["stopped"] = True
        data["time"] = time.time()
        try:
            _write_json(Path(self.config.status_file), data, 0o644)
        except OSError:
            log.exception("cannot write the status file %s", self.config.status_file)
