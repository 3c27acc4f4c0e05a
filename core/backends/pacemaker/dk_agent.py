"""``ocf:lkconsole:datakeeper``: the actions of the promotable DataKeeper agent on a node.

``packaging/ocf/lkconsole/datakeeper`` (installed by ``lkctl cluster install-agents``)
prints the meta-data itself and runs everything else here, under the system
``python3`` (where ``python3-libnbd`` is)::

    python3 -m core.backends.pacemaker.dk_agent ACTION

**Roles.** Unpromoted = a *target*: the node's volume served by ``nbdkit file`` on the
node's replication address and the mirror's port, TLS with the mirror's pre-shared key
(``--tls=require --tls-psk``). Promoted = the *source*: the engine hosted in nbdkit
(every write to the local volume and, through libnbd, to every in-sync target), the
mirrored volume as a block device (``nbdfuse`` + ``losetup --direct-io=on``), whose
path is ``/run/lkdr/RID/device`` for ``ocf:heartbeat:Filesystem``.

**Who may be promoted** (the promotion score, ``master-RID``): the source itself; else
only a node whose copy's generation (``lkdr-RID-gen``, see :mod:`.dk_names`) is the
highest of the mirror's nodes, i.e. whose copy the last source confirmed in sync and
never outdated since, or a node the administrator forced online. A copy that is older
waits for the previous source ("Wait for Previous Source"): promote refuses it too,
whatever the score said. Promotion makes the source's generation one more than any.

**A returning former source** reports, at start, the chunks it may have written last
that the others lack (from its own bitmap: ``lkdr-RID-stale``); the source copies them
again before it connects to it. Every target announces that it serves
(``lkdr-RID-serving``, a new token at each start); the source connects to a target
only then (monitor, notify, reload: :meth:`Agent.reconcile`).

Exit codes and exit reasons are OCF's; every outside command has a timeout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.backends.pacemaker import dk_names as names
from core.backends.pacemaker.dk_cluster import Attributes, ClusterError, live_meta, node_name
from core.errors import LkError
from core.replication import control, localdev
from core.replication.bitmap import Bitmap, BitmapError, check_bitmap_location
from core.replication.hosted import EngineConfig, EngineTarget
from core.replication.mirror import NoBitmapState
from core.replication.nbd import NbdEndpoint
from core.replication.nbdkit import NbdkitError, process_alive, serve_target, stop_pid

OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_ARGS = 2
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_PERM = 4
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7
OCF_RUNNING_MASTER = 8
OCF_FAILED_MASTER = 9

PROMOTED, UNPROMOTED = "promoted", "unpromoted"
HOOKS = "core.backends.pacemaker.dk_hooks:PacemakerHooks"
CONTROL_TIMEOUT = 15.0
ALL = "all"  # a stale report: every chunk (a former source without bitmap)
TOOLS = (("nbdkit", "nbdkit"), ("nbdfuse", "libnbd-bin"), ("losetup", "mount"))


class AgentError(LkError):
    """An action cannot be done; ``code`` is its OCF exit code."""

    def __init__(self, message: str, code: int = OCF_ERR_GENERIC) -> None:
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    print(f"datakeeper: {message}", file=sys.stderr, flush=True)


def exit_reason(message: str) -> None:
    print(f"ocf-exit-reason:{message}", file=sys.stderr, flush=True)


# -- parameters ---------------------------------------------------------------------------


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(f"OCF_RESKEY_{name}", "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise AgentError(f"{name}={text!r} is not a whole number", OCF_ERR_CONFIGURED)
    return int(text)


def _membership(env: Mapping[str, str], rid: str, param: str, meta: str) -> str:
    """A mirror's ``servers``/``bitmaps``: the parameter when the resource has one, else
    the primitive's meta attribute, read live from the CIB (Pacemaker does not hand an
    agent meta attributes of its own; none: '')."""
    if env.get(f"OCF_RESKEY_{param}"):
        return env[f"OCF_RESKEY_{param}"]
    try:
        return live_meta(rid, meta)
    except ClusterError as exc:
        raise AgentError(f"cannot read {meta} of {rid}: {exc}") from exc


@dataclass(frozen=True)
class Params:
    """The resource's parameters, and the paths of this mirror on this node."""

    rid: str
    volume: str
    size: int  # 0: the volume's own
    servers: dict[str, str]  # node → replication address
    bitmaps: dict[str, str]  # node → bitmap file, or "none"
    port: int
    chunk_size: int
    asynchronous: bool
    speed_limit_kbps: int
    deadline: float
    me: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Params:
        rid = env.get("OCF_RESOURCE_INSTANCE", "").split(":")[0]
        if not rid:
            raise AgentError("OCF_RESOURCE_INSTANCE is not set", OCF_ERR_CONFIGURED)
        volume = env.get("OCF_RESKEY_volume", "").strip()
        if not volume.startswith("/"):
            raise AgentError(
                f"volume={volume!r}: give the absolute path of the volume", OCF_ERR_CONFIGURED
            )
        try:
            servers = names.parse_pairs(_membership(env, rid, "servers", names.SERVERS_META))
            bitmaps = names.parse_pairs(_membership(env, rid, "bitmaps", names.BITMAPS_META))
        except ValueError as exc:
            raise AgentError(f"servers/bitmaps: {exc}", OCF_ERR_CONFIGURED) from exc
        port = _int(env, "port", names.PORT_BASE)
        if not 0 < port < 65536:
            raise AgentError(f"port={port} is not a TCP port", OCF_ERR_CONFIGURED)
        deadline = float(_int(env, "deadline", 10))
        return cls(
            rid=rid,
            volume=volume,
            size=_int(env, "size", 0),
            servers=servers,
            bitmaps=bitmaps,
            port=port,
            chunk_size=_int(env, "chunk_size", 65536),
            asynchronous=env.get("OCF_RESKEY_asynchronous", "false").lower() in ("true", "1"),
            speed_limit_kbps=_int(env, "speed_limit_kbps", 500_000),
            deadline=max(1.0, deadline),
            me=node_name(),
        )

    @property
    def targets(self) -> list[str]:
        return [n for n in self.servers if n != self.me]

    @property
    def bitmap(self) -> str | None:
        return names.bitmap_of(self.bitmaps, self.me)

    @property
    def state_dir(self) -> Path:
        return Path(names.state_dir(self.rid))

    @property
    def run_dir(self) -> Path:
        return Path(names.run_dir(self.rid))

    @property
    def psk(self) -> Path:
        return self.state_dir / "psk"

    @property
    def dev_dir(self) -> Path:
        return self.run_dir / "dev"

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "ctl" / "control.sock"

    def endpoint(self, node: str) -> NbdEndpoint:
        return NbdEndpoint(
            host=self.servers[node],
            port=self.port,
            psk_file=self.psk,
            psk_user=names.PSK_USER,
            deadline=self.deadline,
            connect_deadline=self.deadline,
            owner_lock=self.run_dir / f"owner-{node}",
        )


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# -- the agent -------------------------------------------------------------------------------


class Agent:
    """The actions of one DataKeeper resource on this node (see the module docstring)."""

    def __init__(self, params: Params, attrs: Attributes | None = None) -> None:
        self.p = params
        self.attrs = attrs or Attributes(params.rid)

    # -- files of this node
    @property
    def role_file(self) -> Path:
        return self.p.run_dir / "role"

    def role(self) -> str:
        try:
            return self.role_file.read_text().strip()
        except FileNotFoundError:
            return ""

    def _set_role(self, role: str | None) -> None:
        if role is None:
            self.role_file.unlink(missing_ok=True)
        else:
            _write_private(self.role_file, role)

    @property
    def applied_file(self) -> Path:
        """target → the serving token the source's engine was connected to it for."""
        return self.p.run_dir / "applied.json"

    @property
    def local_file(self) -> Path:
        return self.p.state_dir / "local.json"

    def local(self) -> dict[str, Any]:
        return _read_json(self.local_file)

    def _set_local(self, **values: Any) -> None:
        _write_private(self.local_file, json.dumps({**self.local(), **values}))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One action or admin command of this mirror at a time on this node."""
        self.p.run_dir.mkdir(parents=True, exist_ok=True)
        self.p.run_dir.chmod(0o700)
        fd = os.open(self.p.run_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- validate-all
    def validate(self, *, for_start: bool = False) -> None:
        missing = [f"{tool} ({pkg})" for tool, pkg in TOOLS if shutil.which(tool) is None]
        if missing:
            raise AgentError(
                f"not installed on {self.p.me}: {', '.join(missing)}", OCF_ERR_INSTALLED
            )
        try:
            import nbd  # type: ignore[import-not-found]  # noqa: F401  # the system's libnbd
        except ImportError:
            raise AgentError(
                f"{sys.executable} on {self.p.me} cannot import nbd: apt-get install "
                "python3-libnbd",
                OCF_ERR_INSTALLED,
            ) from None
        if self.p.servers and self.p.me not in self.p.servers:
            raise AgentError(
                f"{self.p.me} is not one of the mirror's servers ({', '.join(self.p.servers)})",
                OCF_ERR_CONFIGURED,
            )
        if self.p.bitmap is not None:
            try:
                check_bitmap_location(self.p.bitmap)
            except OSError as exc:
                raise AgentError(str(exc.strerror or exc), OCF_ERR_CONFIGURED) from exc
        volume = Path(self.p.volume)
        if not volume.is_file():
            if for_start or volume.parent.is_dir():
                raise AgentError(f"no volume {volume} on {self.p.me}", OCF_ERR_CONFIGURED)
            return
        size = volume.stat().st_size
        if self.p.size and size != self.p.size and size not in self._resizing():
            raise AgentError(
                f"{volume} on {self.p.me} has {size} bytes, the mirror {self.p.size}",
                OCF_ERR_CONFIGURED,
            )

    def _resizing(self) -> tuple[int, ...]:
        """The sizes a volume may have while Resize Mirror grows them (``lk-resize``)."""
        try:
            text = live_meta(self.p.rid, names.RESIZE_META)
        except ClusterError:
            return ()
        return tuple(int(part) for part in text.split() if part.isdigit())

    # -- what runs here
    def _target_pid(self) -> int:
        try:
            text = (self.p.run_dir / "target" / "target.pid").read_text().strip()
        except FileNotFoundError:
            return 0
        return int(text) if text.isdigit() else 0

    def _serves(self) -> bool:
        """Is there anything to serve: another server, and the mirror's key here."""
        return bool(self.p.targets) and self.p.psk.is_file()

    def source_alive(self) -> str:
        """'' while the engine, nbdfuse and the loop device are up; else what is not."""
        try:
            dev = localdev.LocalDevice.load(self.p.dev_dir)
        except localdev.LocalDeviceError as exc:
            return str(exc)
        if dev is None:
            return "the engine is not running"
        if not dev.engine_pid or not process_alive(dev.engine_pid):
            return f"the engine (nbdkit, pid {dev.engine_pid}) died"
        if not dev.fuse_pid or not process_alive(dev.fuse_pid):
            return f"nbdfuse (pid {dev.fuse_pid}) died"
        if not dev.loop:
            return "the loop device is not attached"
        return ""

    # -- OCF actions
    def monitor(self) -> int:
        role = self.role()
        if role == PROMOTED:
            broken = self.source_alive()
            if broken:
                exit_reason(f"the mirror's source is broken on {self.p.me}: {broken}")
                return OCF_FAILED_MASTER
            self._quietly(self.reconcile)
            self._quietly(self.update_score)
            return OCF_RUNNING_MASTER
        if role == UNPROMOTED:
            if self._serves() and not process_alive(self._target_pid()):
                exit_reason(f"the target's nbdkit on {self.p.me} is not running")
                return OCF_ERR_GENERIC
            self._quietly(self.update_score)
            return OCF_SUCCESS
        return OCF_NOT_RUNNING

    def start(self) -> int:
        role = self.role()
        if role in (PROMOTED, UNPROMOTED):
            return OCF_SUCCESS
        self.validate(for_start=True)
        self._serve()
        self._set_role(UNPROMOTED)
        self._announce()
        self._quietly(self.update_score)
        return OCF_SUCCESS

    def stop(self) -> int:
        if self.role() == PROMOTED or localdev.LocalDevice.load(self.p.dev_dir) is not None:
            self._bring_down()
        self._stop_serving()
        for short in names.TRANSIENT_TARGET:
            self._quietly(self.attrs.set_transient, self.p.me, short, None)
        self._quietly(self.attrs.set_score, self.p.me, None)
        self._set_role(None)
        return OCF_SUCCESS

    def promote(self) -> int:
        if self.role() == PROMOTED and not self.source_alive():
            return OCF_SUCCESS
        if not self.role():
            raise AgentError("promote before start", OCF_ERR_GENERIC)
        permanent = self.attrs.permanent()
        gens = {n: int(v.get("gen", "0") or 0) for n, v in permanent.items() if n in self._nodes()}
        mine, top = gens.get(self.p.me, 0), max(gens.values(), default=0)
        forced = permanent.get(self.p.me, {}).get("forced") == "1"
        if mine < top and not forced:
            newer = sorted(n for n, g in gens.items() if g == top)
            raise AgentError(
                f"the copy on {self.p.me} may be stale (generation {mine}, {', '.join(newer)} "
                f"has {top}): waiting for the previous source; bring it back, or force "
                f"{self.p.me} online"
            )
        self._stop_serving()
        new = top + 1
        config = self._engine_config(permanent, gens, mine, new, forced)
        self.attrs.set_permanent(self.p.me, "gen", str(new))  # before any write is taken
        if forced:
            self.attrs.set_permanent(self.p.me, "forced", None)
        self._set_local(role="source", bitmap_gen=new, clean=False)
        path = config.save(self.p.run_dir / "engine.json")
        # a new engine has connected no target: each is connected again once it serves,
        # even with the token a former engine here applied (a source recovered in place)
        self.applied_file.unlink(missing_ok=True)
        try:
            dev = localdev.bring_up(path, self.p.dev_dir)
        except (NbdkitError, OSError) as exc:
            raise AgentError(f"the mirror's source could not start: {exc}") from exc
        link = Path(names.device(self.p.rid))
        link.unlink(missing_ok=True)
        link.symlink_to(dev.device)
        self._set_role(PROMOTED)
        for target in self.p.targets:
            for short in names.TRANSIENT_SOURCE:
                self._quietly(self.attrs.set_transient, target, short, None)
        self._quietly(self.attrs.set_score, self.p.me, names.PROMOTION_SCORE)
        self._quietly(self.reconcile)
        say(f"{self.p.me} is the source of {self.p.rid} (generation {new})")
        return OCF_SUCCESS

    def demote(self) -> int:
        if self.role() != PROMOTED:
            return OCF_SUCCESS if self.role() == UNPROMOTED else OCF_NOT_RUNNING
        problems = self._bring_down()
        if problems:
            raise AgentError(f"the mirror's source did not stop cleanly: {'; '.join(problems)}")
        self._set_local(role="source", clean=True)
        for target in self.p.targets:
            for short in names.TRANSIENT_SOURCE:
                self._quietly(self.attrs.set_transient, target, short, None)
        self._serve()
        self._set_role(UNPROMOTED)
        self._announce()
        self._quietly(self.update_score)
        return OCF_SUCCESS

    def notify(self) -> int:
        kind = os.environ.get("OCF_RESKEY_CRM_meta_notify_type", "")  # noqa: SIM112  # OCF's name
        if self.role() == PROMOTED and kind == "post":
            self._quietly(self.reconcile)
        return OCF_SUCCESS

    def reload(self) -> int:
        if self.role() == PROMOTED:
            self._quietly(self.reconcile, True)
        elif self.role() == UNPROMOTED and self._serves() and not self._target_pid():
            self._serve()  # extended to: there is a source to serve now
            self._announce()
        return OCF_SUCCESS

    # -- the target side
    def _serve(self) -> None:
        if not self._serves():
            return
        if process_alive(self._target_pid()):
            return
        address = self.p.servers[self.p.me]
        try:
            serve_target(
                self.p.volume,
                address=address,
                psk_file=self.p.psk,
                run_dir=self.p.run_dir / "target",
                port=self.p.port,
                name="target",
            )
        except NbdkitError as exc:
            raise AgentError(f"cannot serve {self.p.volume} on {address}: {exc}") from exc

    def _stop_serving(self) -> None:
        pid = self._target_pid()
        if pid and not stop_pid(pid):
            raise AgentError(f"the target's nbdkit (pid {pid}) does not stop")
        (self.p.run_dir / "target" / "target.pid").unlink(missing_ok=True)

    def _announce(self) -> None:
        """Tell the source this copy is served (a new token), and what it may hold that
        the others lack when it was the source before."""
        if not self._serves():
            return
        self.attrs.set_transient(self.p.me, "stale", self.stale_report() or None)
        self.attrs.set_transient(self.p.me, "serving", f"{time.time():.3f}-{os.getpid()}")

    def stale_report(self) -> str:
        """``"NODE:RUNS NODE:RUNS"``: per other node, the chunks this node's bitmap says
        it may have written without that node having them (only for a former source;
        ``NODE:all`` without a bitmap)."""
        if self.local().get("role") != "source":
            return ""
        bitmap = self.p.bitmap
        if bitmap is None:
            return " ".join(f"{n}:{ALL}" for n in self.p.targets)
        try:
            bm = Bitmap.open(bitmap)
        except (BitmapError, OSError) as exc:
            say(f"cannot read {bitmap} ({exc}): every chunk counts as written")
            return " ".join(f"{n}:{ALL}" for n in self.p.targets)
        try:
            parts = []
            for node in self.p.targets:
                if not bm.has_target(node):
                    parts.append(f"{node}:{ALL}")
                    continue
                runs = names.format_runs(bm.dirty_chunks(node)).replace(" ", ",")
                parts.append(f"{node}:{runs}")
            return " ".join(parts)
        finally:
            bm.close()

    def update_score(self) -> None:
        """The promotion score of this node (see the module docstring)."""
        if self.role() == PROMOTED:
            self.attrs.set_score(self.p.me, names.PROMOTION_SCORE)
            return
        permanent = self.attrs.permanent()
        gens = {n: int(v.get("gen", "0") or 0) for n, v in permanent.items() if n in self._nodes()}
        mine, top = gens.get(self.p.me, 0), max(gens.values(), default=0)
        forced = permanent.get(self.p.me, {}).get("forced") == "1"
        current = forced or (mine > 0 and mine == top)
        local = self.local()
        if current and local.get("role") == "source" and local.get("bitmap_gen") != mine:
            # a newer source confirmed this copy: what it wrote as a source is moot now
            self._set_local(role="target")
        have = self.attrs.scores().get(self.p.me)
        want = str(names.PROMOTION_SCORE) if current else None
        if have != want:
            self.attrs.set_score(self.p.me, names.PROMOTION_SCORE if current else None)

    def _nodes(self) -> set[str]:
        return set(self.p.servers) | {self.p.me}

    # -- the source side
    def _engine_config(
        self,
        permanent: dict[str, dict[str, str]],
        gens: dict[str, int],
        mine: int,
        new: int,
        forced: bool,
    ) -> EngineConfig:
        """The engine of this source: every target not connected until it serves."""
        in_sync = {t for t in self.p.targets if gens.get(t, 0) == mine and mine and not forced}
        self._prepare_bitmap(in_sync, mine, forced)
        speed, modes = self.settings()
        targets = tuple(
            EngineTarget(
                name=t,
                uri=self.p.endpoint(t).uri(),
                state="TARGET" if t in in_sync else "OUT_OF_SYNC",
                deadline=self.p.deadline,
                connect_deadline=self.p.deadline,
                owner_lock=str(self.p.run_dir / f"owner-{t}"),
                connected=False,
                paused=permanent.get(t, {}).get("paused") == "1",
                full=forced,
                asynchronous=modes.get(t),
            )
            for t in self.p.targets
        )
        return EngineConfig(
            source=self.p.volume,
            bitmap=self.p.bitmap,
            targets=targets,
            status_file=str(self.p.run_dir / "status.json"),
            chunk_size=self.p.chunk_size,
            asynchronous=self.p.asynchronous,
            speed_limit_kbps=speed,
            control_socket=str(self.p.control_socket),
            hooks=HOOKS,
            extra={"rid": self.p.rid, "gen": new, "node": self.p.me},
        )

    def _prepare_bitmap(self, in_sync: set[str], mine: int, forced: bool) -> None:
        """Keep this node's intent log when it was the last source at this generation;
        else start one: clean for the targets in sync with this copy, dirty for others."""
        local = self.local()
        reuse = not forced and local.get("role") == "source" and local.get("bitmap_gen") == mine
        size = Path(self.p.volume).stat().st_size
        if self.p.bitmap is None:
            state = NoBitmapState(Path(self.p.volume))
            if not reuse:
                state.clean = True
                state.needs_full = {
                    t: "not in sync with the new source" for t in self.p.targets if t not in in_sync
                }
                state.save()
            return
        if reuse and Path(self.p.bitmap).exists():
            return
        bm = Bitmap.create(
            self.p.bitmap,
            volume_size=size,
            chunk_size=self.p.chunk_size,
            targets=self.p.targets,
            dirty=False,
            overwrite=True,
        )
        try:
            for t in self.p.targets:
                if t not in in_sync:
                    bm.set_all(t)
        finally:
            bm.close()

    def _bring_down(self) -> list[str]:
        Path(names.device(self.p.rid)).unlink(missing_ok=True)
        try:
            return localdev.bring_down(self.p.dev_dir)
        except localdev.LocalDeviceError as exc:
            return [str(exc)]

    def settings(self) -> tuple[int, dict[str, bool]]:
        """The speed limit and each target's mode (True: asynchronous) the console keeps
        as meta attributes (``lk-speed-limit``, ``lk-modes``); else the parameters'."""
        try:
            speed_text = live_meta(self.p.rid, names.SPEED_META)
            pairs = names.parse_pairs(live_meta(self.p.rid, names.MODES_META))
        except (ClusterError, ValueError) as exc:
            raise AgentError(
                f"cannot read the speed limit or modes of {self.p.rid}: {exc}"
            ) from exc
        speed = int(speed_text) if speed_text.isdigit() else self.p.speed_limit_kbps
        return speed, {n: m == "async" for n, m in pairs.items() if m in names.MODES}

    def _apply_settings(self, status: dict[str, Any]) -> None:
        """The running engine gets the console's speed limit and modes when it differs
        (they were sent at once; this is for an engine that missed it)."""
        speed, modes = self.settings()
        if status.get("speed_limit_kbps", speed) != speed:
            self.ask("speed", kbps=speed)
            say(f"speed limit of {self.p.rid}: {speed} KB/s")
        for t, st in (status.get("targets") or {}).items():
            if t in modes and st.get("asynchronous") != modes[t]:
                self.ask("mode", target=t, asynchronous=modes[t])
                say(f"{t}: {'asynchronous' if modes[t] else 'synchronous'} replication")

    def ask(self, op: str, timeout: float = CONTROL_TIMEOUT, **fields: Any) -> dict[str, Any]:
        return control.request(self.p.control_socket, op, timeout=timeout, **fields)

    def reconcile(self, reload: bool = False) -> None:
        """The source's engine matches the parameters (targets joining or leaving, the
        speed limit) and connects every target that announced it serves (after copying
        again what a former source reported)."""
        status = self.ask("status")
        have, wanted = set(status.get("targets", {})), set(self.p.targets)
        permanent = self.attrs.permanent() if wanted - have else {}
        for t in sorted(wanted - have):
            spec = EngineTarget(
                name=t,
                uri=self.p.endpoint(t).uri(),
                deadline=self.p.deadline,
                connect_deadline=self.p.deadline,
                owner_lock=str(self.p.run_dir / f"owner-{t}"),
                connected=False,
                paused=permanent.get(t, {}).get("paused") == "1",
            )
            self.ask("add_target", spec=dataclasses.asdict(spec))
            say(f"{t} joined the mirror {self.p.rid}")
        for t in sorted(have - wanted):
            self.ask("remove_target", target=t)
            for short in names.TRANSIENT_SOURCE:
                self._quietly(self.attrs.set_transient, t, short, None)
            say(f"{t} left the mirror {self.p.rid}")
        if reload:
            self.ask("speed", kbps=self.p.speed_limit_kbps)
        self._apply_settings(self.ask("status") if reload else status)
        serving = self.attrs.transient("serving")
        stale = self.attrs.transient("stale")
        applied_file = self.applied_file
        applied = _read_json(applied_file)
        for t in sorted(wanted):
            token = serving.get(t)
            if not token or applied.get(t) == token:
                continue
            report = dict(
                part.partition(":")[::2] for part in stale.get(t, "").split() if ":" in part
            )
            mine = report.get(self.p.me)
            if mine == ALL:
                self.ask("full_resync", target=t)
            elif mine:
                runs = names.parse_runs(mine.replace(",", " "))
                self.ask(
                    "mark_dirty",
                    target=t,
                    runs=runs,
                    reason=f"{t} was the source before: what it wrote last is copied again",
                )
            self.ask("connect", target=t)
            applied[t] = token
            _write_private(applied_file, json.dumps(applied))
            say(f"connected to {t}" + (f" (its own chunks {mine} copied again)" if mine else ""))

    def _quietly(self, action: Any, *args: Any) -> None:
        """Do something that may fail without failing the action (said in the log)."""
        try:
            action(*args)
        except (LkError, OSError, ValueError) as exc:
            say(f"{getattr(action, '__name__', 'step')}: {exc}")


ACTIONS = ("start", "stop", "monitor", "promote", "demote", "notify", "reload", "reload-agent")


def main(argv: list[str]) -> int:
    action = argv[0] if argv else os.environ.get("__OCF_ACTION", "")
    if action in ("usage", "help", ""):
        print(f"usage: datakeeper {{{'|'.join((*ACTIONS, 'validate-all', 'meta-data'))}}}")
        return OCF_SUCCESS if action else OCF_ERR_ARGS
    if action not in (*ACTIONS, "validate-all"):
        return OCF_ERR_UNIMPLEMENTED
    try:
        params = Params.from_env(os.environ)
        agent = Agent(params)
        if action == "validate-all":
            agent.validate()
            return OCF_SUCCESS
        if action == "monitor" and os.environ.get("OCF_TESTER_FAIL_HAVE_BINARY"):
            return OCF_NOT_RUNNING if not agent.role() else agent.monitor()
        with agent.locked():
            method = "reload" if action == "reload-agent" else action
            rc: int = getattr(agent, method)()
            return rc
    except AgentError as exc:
        exit_reason(str(exc))
        return exc.code
    except (ClusterError, LkError, OSError) as exc:
        exit_reason(f"{action}: {exc}")
        return OCF_ERR_GENERIC


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
