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

**Control.** With ``control_socket`` the engine listens on a private Unix socket
(:mod:`.control`) for what nbdkit cannot carry: pause, resume, a full resync, the speed
limit, a target's synchronous or asynchronous mode (``mode``), a target joining
(``add_target``, ``connect``) or leaving, chunks a returning
former source may have written last (``mark_dirty``), a verify with repair, and
``wait``: the answer comes when a target reaches a state (``TARGET`` by default) or
after ``seconds`` (``{"reached": false}``), without polling the status.

**Hooks.** With ``hooks`` (``"module:factory"``) the caller learns, in the engine's own
threads, when a target is in sync again and, *before* a write a target missed is
acknowledged, that the target is outdated (:class:`EngineHooks`): a cluster records it
where a failover decision reads it, so no node whose copy lacks an acknowledged write is
ever promoted (DRBD's fence-peer handler does the same).

The configuration is a JSON file (:class:`EngineConfig`); it names the key files of the
targets, never a key. The engine runs in nbdkit's embedded Python, which is the system
``python3`` (where ``python3-libnbd`` is): see :mod:`.nbd`.
"""

from __future__ import annotations

import errno
import importlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.errors import LkError
from core.model import MirrorState
from core.replication.bitmap import DEFAULT_CHUNK_SIZE
from core.replication.control import ControlServer
from core.replication.mirror import Mirror, ResyncTuning, TargetSpec
from core.replication.nbd import DEFAULT_CONNECT_DEADLINE, DEFAULT_DEADLINE, NbdEndpoint
from core.replication.resync import DEFAULT_SPEED_LIMIT_KBPS, ResyncProgress

__all__ = [
    "STATUS_INTERVAL",
    "STATUS_REFRESH",
    "EngineConfig",
    "EngineConfigError",
    "EngineHooks",
    "EngineTarget",
    "HostedEngine",
    "load_hooks",
    "read_status",
]

log = logging.getLogger(__name__)

MAX_WAIT = 3600.0  # the most ``seconds`` a ``wait`` request may ask for
STATUS_INTERVAL = 0.25  # seconds between two status files while only progress changes
STATUS_REFRESH = 2.0  # seconds between two status files when nothing happens


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
    connected: bool = True  # False: not connected to until told (control: connect)
    paused: bool = False
    full: bool = False  # every chunk is copied again (a copy that cannot be trusted)
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
    control_socket: str | None = None  # the control channel (:mod:`.control`), if any
    hooks: str | None = None  # "module:factory" of the caller's EngineHooks, if any
    extra: dict[str, Any] = field(default_factory=dict)  # for the caller's hooks

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


class EngineHooks(Protocol):
    """What the caller (a cluster's agent) learns from the engine, in order, from the
    engine's own threads. ``outdated`` is called before a write that ``target`` missed is
    acknowledged (the write waits for it; an exception fails the write with EIO, so
    nothing that the cluster might lose is ever acknowledged); ``in_sync`` once a target
    receives every write again (Target); ``status`` with every status file written."""

    def in_sync(self, target: str) -> None: ...

    def outdated(self, target: str, reason: str) -> None: ...

    def status(self, status: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def load_hooks(config: EngineConfig) -> EngineHooks | None:
    """The hooks ``config.hooks`` names ("package.module:factory", called with the
    configuration), or None."""
    if not config.hooks:
        return None
    module_name, _sep, attr = config.hooks.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise EngineConfigError(f"engine hooks {config.hooks}: {exc}") from exc
    hooks: EngineHooks = factory(config)
    return hooks


class HostedEngine:
    """The mirror behind nbdkit's callbacks (see the module docstring)."""

    def __init__(self, config: EngineConfig, hooks: EngineHooks | None = None) -> None:
        self.config = config
        self.hooks = hooks if hooks is not None else load_hooks(config)
        self._status_lock = threading.Lock()
        self._progress: dict[str, ResyncProgress] = {}
        self._verify: dict[str, dict[str, Any]] = {}
        self._dirty = threading.Event()
        self._stop = threading.Event()
        # Targets the hooks were told are in sync (and not told otherwise since).
        self._current: set[str] = set()
        self._publish = threading.Lock()
        specs = [
            TargetSpec(
                t.name,
                t.endpoint(),
                state=MirrorState[t.state],
                connected=t.connected,
                paused=t.paused,
                asynchronous=t.asynchronous,
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
        for t in config.targets:
            if t.full:
                self.mirror.full_resync(t.name)
        self.size = self.mirror.source.size
        self._status_thread = threading.Thread(
            target=self._status_loop, name="engine-status", daemon=True
        )
        self._status_thread.start()
        self._write_status()
        self._control = (
            ControlServer(config.control_socket, self.control) if config.control_socket else None
        )

    # -- nbdkit's requests -------------------------------------------------------------
    def pread(self, buf: bytearray | memoryview, offset: int) -> None:
        self.mirror.source.readinto(offset, buf)

    def pwrite(self, buf: bytes | bytearray | memoryview, offset: int, fua: bool) -> None:
        self.mirror.write(offset, buf, durable=fua)
        self._confirm()

    def flush(self) -> None:
        self.mirror.sync()
        self._confirm()

    def _confirm(self) -> None:
        """Before the reply: every target the hooks believe in sync that missed this
        write is outdated first (see :class:`EngineHooks`)."""
        if not self._current:
            return
        missed = self._current - self.mirror.replicating_targets()
        for target in sorted(missed):
            self._outdate(target, self.mirror.reason(target) or "it missed a write")

    def _outdate(self, target: str, reason: str) -> None:
        with self._publish:
            if target not in self._current or self.hooks is None:
                return
            try:
                self.hooks.outdated(target, reason)
            except Exception as exc:
                log.error("cannot outdate %s: %s: the write is refused", target, exc)
                raise OSError(
                    errno.EIO, f"cannot record that {target} is out of sync: {exc}"
                ) from exc
            self._current.discard(target)

    # -- the status file -----------------------------------------------------------------
    def _on_state(self, target: str, state: MirrorState, reason: str) -> None:
        log.info("mirror target %s: %s%s", target, state.value, f" ({reason})" if reason else "")
        if state is MirrorState.RESYNCING:  # a new resync: the last one's progress is over
            with self._status_lock:
                self._progress.pop(target, None)
        if self.hooks is not None:
            if state is MirrorState.TARGET:
                with self._publish:
                    if target in self.mirror.replicating_targets():
                        try:
                            self.hooks.in_sync(target)
                        except Exception:
                            log.exception("cannot record that %s is in sync", target)
                        else:
                            self._current.add(target)
            elif target in self._current:
                self._outdate(target, reason)
        self._dirty.set()

    def _on_progress(self, p: ResyncProgress) -> None:
        with self._status_lock:
            self._progress[p.target] = p
        self._dirty.set()

    def _status_loop(self) -> None:
        """A status at each change (at most every STATUS_INTERVAL); while a target's dirty
        count moves with no state change (a paused or dropped target as writes come),
        about once a second; and at least every STATUS_REFRESH."""
        dirty = self._dirty_counts()
        last = time.monotonic()
        while not self._stop.is_set():
            self._dirty.wait(1.0)
            if self._stop.is_set():
                return
            # writes to a target that does not replicate change no state, only its
            # dirty count: a status once a second while it moves
            moved = self._dirty_counts()
            stale = time.monotonic() - last >= STATUS_REFRESH
            if self._dirty.is_set() or moved != dirty or stale:
                self._dirty.clear()
                dirty, last = moved, time.monotonic()
                self._write_status()
                self._stop.wait(STATUS_INTERVAL)

    def _dirty_counts(self) -> dict[str, int]:
        counts = {}
        for name in self.mirror.target_names:
            try:
                counts[name] = self.mirror.bitmap.dirty_count(name)
            except LkError:  # removed meanwhile
                continue
        return counts

    def status(self) -> dict[str, Any]:
        """What the status file holds: every target's state, reason, dirty chunks,
        whether it replicates, its last resync progress and verify."""
        targets: dict[str, Any] = {}
        for st in self.mirror.statuses():
            with self._status_lock:
                p = self._progress.get(st.name)
                verify = dict(self._verify.get(st.name, {}))
            targets[st.name] = {
                "state": st.state.name,
                "label": st.state.value,
                "reason": st.reason,
                "address": st.volume,
                "connected": st.connected,
                "paused": st.paused,
                "replicating": st.replicating,
                "dirty_chunks": st.dirty_chunks,
                "asynchronous": self.mirror.target_mode(st.name),
                "resyncing": st.resyncing,
                "progress": None if p is None else asdict(p),
                "verify": verify,
            }
        return {
            "pid": os.getpid(),
            "source": self.config.source,
            "size": self.size,
            "chunk_size": self.config.chunk_size,
            "online": self.mirror.online,
            "speed_limit_kbps": self.mirror.speed_limit_kbps,
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
            return
        if self.hooks is not None:
            try:
                self.hooks.status(data)
            except Exception:
                log.exception("the engine's hooks failed on a status")

    # -- the control channel ---------------------------------------------------------------
    def control(self, req: dict[str, Any]) -> dict[str, Any]:
        """One request of the control channel (:mod:`.control`); its answer."""
        op = req["op"]
        target = str(req.get("target", ""))
        if op == "status":
            return self.status()
        if op == "wait":
            name = str(req.get("state", "TARGET"))
            state = MirrorState.__members__.get(name)
            if state is None:
                raise LkError(
                    f"unknown mirror state {name!r} (one of {', '.join(MirrorState.__members__)})"
                )
            seconds = min(max(float(req.get("seconds", 30.0)), 0.0), MAX_WAIT)
            return {"reached": self.mirror.wait_for_state(target, state, seconds)}
        if op in ("pause", "resume", "full_resync", "connect", "disconnect"):
            getattr(self.mirror, op)(target)
        elif op == "mark_dirty":
            runs = [(int(a), int(b)) for a, b in req.get("runs", [])]
            marked = self.mirror.mark_dirty(target, runs, str(req.get("reason", "")))
            self._dirty.set()
            return {"marked": marked}
        elif op == "speed":
            floor = req.get("min_kbps")  # while writes compete (None: unchanged)
            self.mirror.set_speed_limit(int(req["kbps"]), None if floor is None else int(floor))
        elif op == "mode":
            mode = req.get("asynchronous")
            self.mirror.set_target_mode(target, None if mode is None else bool(mode))
        elif op == "add_target":
            spec = EngineTarget(**req["spec"])
            self.mirror.add_target(
                TargetSpec(spec.name, spec.endpoint(), connected=spec.connected, paused=spec.paused)
            )
        elif op == "remove_target":
            with self._publish:
                self._current.discard(target)
            self.mirror.remove_target(target)
        elif op == "verify":
            return self._run_verify(
                target,
                repair=bool(req.get("repair", False)),
                method=str(req.get("method", "blake2b")),
                wait=float(req.get("wait_repair", 600.0)),
            )
        else:
            raise LkError(f"unknown control request {op!r}")
        self._dirty.set()
        return {}

    def _run_verify(self, target: str, *, repair: bool, method: str, wait: float) -> dict[str, Any]:
        """Verify ``target`` (differing chunks marked); with ``repair`` resync them and
        read them back on both sides."""
        from core.replication.verify import VerifyProgress, verify_mirror_target

        def progress(p: VerifyProgress) -> None:
            with self._status_lock:
                self._verify.setdefault(target, {})["percent"] = p.percent
            self._dirty.set()

        v = verify_mirror_target(
            self.mirror,
            target,
            speed_limit_kbps=self.mirror.speed_limit_kbps,
            on_progress=progress,
            method="bytes" if method == "bytes" else "blake2b",
        )
        try:
            result = v.run()
        finally:
            with self._status_lock:
                self._verify.setdefault(target, {})["percent"] = None
        with self._status_lock:
            if not result.cancelled:
                self._verify[target].update(last=time.time(), differences=result.chunks_differing)
        self._dirty.set()
        answer: dict[str, Any] = {
            "chunks_checked": result.chunks_checked,
            "chunks_differing": result.chunks_differing,
            "differing": list(result.differing[:100]),
            "cancelled": result.cancelled,
            "repaired": None,
            "still_differing": [],
        }
        if result.cancelled or not result.chunks_differing:
            return answer
        self.mirror.pause(target)  # the marked chunks are copied by the resume's resync
        if not repair:
            return answer
        self.mirror.resume(target)
        reached = self.mirror.wait_for_state(target, MirrorState.TARGET, wait)
        answer["repaired"] = reached
        if reached:
            answer["still_differing"] = self._differing(target, result.differing)
        else:
            answer["state"] = self.mirror.state(target).value
            answer["reason"] = self.mirror.reason(target)
        return answer

    def _differing(self, target: str, chunks: list[int] | tuple[int, ...]) -> list[int]:
        """Which of ``chunks`` differ between the source and ``target`` (read back)."""
        size, cs = self.size, self.config.chunk_size
        copy = self.mirror.open_target_reader(target)
        try:
            return [
                c
                for c in chunks
                if self.mirror.source.read(c * cs, min(cs, size - c * cs))
                != copy.read(c * cs, min(cs, size - c * cs))
            ]
        finally:
            copy.close()

    # -- life ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the control channel, the resyncs; flush, clear idle bits, close
        everything; a last status."""
        if self._control is not None:
            self._control.close()
        self.mirror.close()
        self._stop.set()
        self._dirty.set()
        self._status_thread.join()
        self._write_status_closed()
        if self.hooks is not None:
            self.hooks.close()

    def _write_status_closed(self) -> None:
        data = read_status(self.config.status_file)
        data["stopped"] = True
        data["time"] = time.time()
        try:
            _write_json(Path(self.config.status_file), data, 0o644)
        except OSError:
            log.exception("cannot write the status file %s", self.config.status_file)
