"""The lab's local monitor: ``python -m core.backends.lab.lkcheck --home H`` (LifeKeeper's
``lkcheck``, which runs each resource's quickCheck periodically).

One process per lab, detached like the resync processes (the console or ``lkctl`` that
started it may exit). Every :data:`INTERVAL_S` (``$LKCONSOLE_LKCHECK_INTERVAL``) it runs
the monitor command of every Generic Application in service on a running server. When
one fails, as LifeKeeper does:

1. the application is "Failed" (OSF) there, with the monitor's output as the reason;
2. **local recovery**: its stop and start commands run on the same server, as many times
   as its restart mode says (``yes``: once; ``no``: never; N: N times), each followed by
   the monitor again. The first success brings it back "Active" there;
3. else its hierarchy **fails over**: out of service there (parents first: the other
   kits' remove runs), in service on the best other server that can take it (children
   first; mirrors switched over), as a server failure would (:mod:`.takeover`).

Every step is in the output panel and the history (user ``lkcheck``). The process holds
``run/lkcheck.lock`` (its pid inside) and ends by itself once no application is in
service (the next one that comes in service starts it again: :func:`ensure_running`),
or when its lab is gone; SIGTERM stops it between two checks.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from core.backends.lab import kits
from core.backends.lab.layout import LabLayout
from core.backends.lab.oplog import OperationLog
from core.backends.lab.service_rows import FollowUp, take_out
from core.backends.lab.store import DB_NAME, Store, read_hierarchy
from core.backends.lab.takeover import Attempt, bring_up
from core.errors import ConflictError, LkError, OperationError
from core.files import open_private, private_dir
from core.model import Resource, ResourceKind, ResourceState, Role
from core.rules import kinds as kind_rules
from core.rules.service import not_target_problems
from core.session import Session

log = logging.getLogger("lkconsole.lkcheck")

INTERVAL_ENV = "LKCONSOLE_LKCHECK_INTERVAL"
INTERVAL_S = 10.0  # (ours) LifeKeeper checks every 120 s by default; a lab is for watching
SESSION = Session("lkcheck", Role.ADMINISTRATOR)
_APPS_IN_SERVICE = (
    "SELECT 1 FROM instances i JOIN resources r ON r.id = i.resource_id "
    "JOIN servers s ON s.name = i.server "
    "WHERE r.kind = ? AND i.state = ? AND s.state IN ('ALIVE', 'ALIVE_WARNING') LIMIT 1"
)


def interval() -> float:
    try:
        return max(0.05, float(os.environ.get(INTERVAL_ENV, INTERVAL_S)))
    except ValueError:
        return INTERVAL_S


def lock_path(home: Path) -> Path:
    return private_dir(home / "run") / "lkcheck.lock"


def running(home: Path) -> bool:
    """Whether the monitor of the lab in ``home`` runs."""
    fd = os.open(lock_path(home), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def apps_in_service(store: Store) -> bool:
    row = store._conn.execute(_APPS_IN_SERVICE, (ResourceKind.APP.value, ResourceState.ISP.name))
    return row.fetchone() is not None


def ensure_running(store: Store) -> subprocess.Popen[bytes] | None:
    """Start the monitor when an application is in service and none runs.

    The lock is taken here and handed to the new process (``--lock-fd``): once this
    returns, :func:`running` says so, and two callers never start two monitors."""
    if not apps_in_service(store):
        return None
    home = store.home
    fd = os.open(lock_path(home), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # one runs
        log_fd = open_private(
            private_dir(home / "logs") / "lkcheck.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND
        )
        command = (
            [sys.executable, "--lkconsole-lkcheck"]
            if getattr(sys, "frozen", False)
            else [sys.executable, "-m", "core.backends.lab.lkcheck"]
        )
        options = ["--home", str(home), "--interval", str(interval()), "--lock-fd", str(fd)]
        with os.fdopen(log_fd, "ab") as out:
            process = subprocess.Popen(
                [*command, *options],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=Path(__file__).resolve().parent.parent.parent.parent,
                close_fds=True,
                pass_fds=(fd,),
            )
        os.ftruncate(fd, 0)
        os.write(fd, str(process.pid).encode())
        return process
    finally:
        os.close(fd)  # the new process holds the lock from now on


def stop(home: Path, timeout: float = 30.0) -> bool:
    """Ask the monitor to stop and wait for it; True when none runs any more."""
    path = lock_path(home)
    deadline = time.monotonic() + timeout
    signalled = False
    while running(home):
        if not signalled:
            with contextlib.suppress(ValueError, OSError):
                pid = int(path.read_text().strip() or 0)
                if pid > 0:
                    os.kill(pid, signal.SIGTERM)
                    signalled = True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- the checks -----------------------------------------------------------------------------
class Monitor:
    """The checks of one lab (see the module)."""

    def __init__(self, home: Path, every: float) -> None:
        self.home = home
        self.every = every
        self.layout = LabLayout(home)
        self.store = Store(home)
        self.stopping = threading.Event()

    def run(self) -> int:
        try:
            while not self.stopping.is_set():
                if not (self.home / DB_NAME).exists():
                    return 0  # the lab is gone
                if not apps_in_service(self.store):
                    return 0
                self.check_all()
                self.stopping.wait(self.every)
            return 0
        finally:
            self.store.close()

    def check_all(self) -> None:
        alive = {s.name for s in self.store.servers() if s.state.is_alive}
        for h in self.store.cluster().hierarchies:
            for r in h.resources:
                if self.stopping.is_set():
                    return
                if (
                    r.kind is ResourceKind.APP
                    and r.state is ResourceState.ISP
                    and r.server in alive
                ):
                    result = kits.monitor(self.layout, r)
                    if result is not None and not result.ok:
                        self.recover(h.id, r.resource_id, r.server, result)

    def recover(self, hid: int, rid: int, server: str, result: kits.CommandRun) -> None:
        """Local recovery, then failover (see the module)."""
        h = self.store.hierarchy(hid)
        r = h.instance(rid, server) if h is not None else None
        if h is None or r is None or r.state is not ResourceState.ISP:
            return  # changed since it was checked
        name = f"local recovery of {r.tag} on {server}"
        out = OperationLog(name, None, SESSION)
        reason = f"quickCheck failed: {result.failure(r.tag, server)}"
        try:
            with self.store.transaction() as txn:
                txn.claim(h.id, h.version)
                txn.set_instance_state(rid, server, ResourceState.OSF, reason)
                out.say("WARNING", f"{r.tag} on {server}: {reason}; it is Failed (OSF).")
                kits.say_output(result, r.tag, lambda text, level: out.say(level, text))
                out.flush(txn)
        except ConflictError:
            return  # someone changed the hierarchy meanwhile: checked again next time
        restarts = kind_rules.restarts(r.setting("restart"))
        for attempt in range(1, restarts + 1):
            out.say(
                "INFO",
                f"{r.tag}: restarting it on {server} (local recovery, try {attempt} of {restarts})",
            )
            if (
                self._restart(r, out)
                and self._healthy(r, out)
                and self._back(hid, rid, server, out)
            ):
                message = (
                    f"{r.tag} recovered on {server}: restarted in place ({attempt} of {restarts})."
                )
                out.say("INFO", message)
                out.finish(self.store, ok=True, message=message)
                return
        if restarts == 0:
            out.say("INFO", f"{r.tag}: restart mode no: no local recovery, failing over.")
        message = self.fail_over(hid, rid, server, reason, out)
        out.finish(self.store, ok=False, message=message)

    def _restart(self, r: Resource, out: OperationLog) -> bool:
        def say(text: str, level: str) -> None:
            out.say(level, text)

        for what in ("stop", "start"):
            command = r.setting(what).strip()
            if not command:
                continue
            run = kits.run_command(self.layout, r.server, what, command)
            kits.say_output(run, r.tag, say)
            if not run.ok:
                out.say("ERROR", run.failure(r.tag, r.server))
                if what == "start":
                    return False
        return True

    def _healthy(self, r: Resource, out: OperationLog) -> bool:
        again = kits.monitor(self.layout, r)
        if again is None or again.ok:
            return True
        out.say("ERROR", f"after the restart, {again.failure(r.tag, r.server)}")
        return False

    def _back(self, hid: int, rid: int, server: str, out: OperationLog) -> bool:
        with self.store.transaction() as txn:
            h = read_hierarchy(txn, hid)
            r = h.instance(rid, server) if h is not None else None
            if h is None or r is None or r.state is not ResourceState.OSF:
                return False
            txn.claim(h.id, h.version)
            txn.set_instance_state(rid, server, ResourceState.ISP)
            out.flush(txn)
        return True

    def fail_over(self, hid: int, rid: int, server: str, reason: str, out: OperationLog) -> str:
        """The hierarchy out of service on ``server``, in service where it can be."""
        follow = FollowUp()
        lines: list[str] = []
        attempt = Attempt()
        try:
            with self.store.transaction() as txn:
                h = read_hierarchy(txn, hid)
                if h is None:
                    return "the hierarchy was deleted meanwhile"
                txn.claim(h.id, h.version)
                alive = {s.name for s in self.store.servers() if s.state.is_alive}
                candidates = [
                    x
                    for x in h.servers
                    if x != server and x in alive and not not_target_problems(h, x)
                ]
                if not candidates:
                    message = (
                        f"{h.root_tag} stays on {server} with {h.tag_of(rid)} Failed: no other "
                        "running server can take it over (extended, with every mirror Target)."
                    )
                    out.say("ERROR", message)
                    out.flush(txn)
                    return message
                act = kits.actor(self.layout, attempt.say, attempt.undo.append)
                lines.append(take_out(txn, h, server, ResourceState.OSU, act))
                lines[:0] = attempt.lines
                txn.set_instance_state(rid, server, ResourceState.OSF, reason)
                fresh = read_hierarchy(txn, hid)
                assert fresh is not None
                new = bring_up(
                    self.layout,
                    txn,
                    fresh,
                    candidates,
                    follow,
                    lines,
                    origin=server,
                    old_alive=True,
                )
                if new is None:
                    where = ", ".join(candidates)
                    lines.append(f"{h.root_tag} stays down: it could not be started on {where}.")
                for line in lines:
                    out.say(
                        "INFO" if not line.startswith(("WARNING: ", "ERROR: ")) else "WARNING", line
                    )
                out.flush(txn)
        except (ConflictError, OperationError) as exc:
            attempt.undo_all()
            message = (
                f"failover of the hierarchy of {server}'s failed application did not happen: {exc}"
            )
            out.say("ERROR", message)
            return message
        follow.run(self.store, out.say)
        return "; ".join(lines)


def _serve(home: Path, every: float, lock_fd: int | None) -> int:
    if lock_fd is None:  # started by hand: take the lock
        lock_fd = os.open(lock_path(home), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            return 0  # another one runs
        os.ftruncate(lock_fd, 0)
        os.write(lock_fd, str(os.getpid()).encode())
    try:
        monitor = Monitor(home, every)

        def on_term(signum: int, frame: FrameType | None) -> None:
            monitor.stopping.set()

        signal.signal(signal.SIGTERM, on_term)
        code = monitor.run()
    finally:
        os.close(lock_fd)
    if not monitor.stopping.is_set() and (home / DB_NAME).exists():
        # An application may have come in service while this one was ending.
        with Store(home) as store:
            ensure_running(store)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.backends.lab.lkcheck")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=None)
    parser.add_argument("--lock-fd", type=int, default=None, help="the lock, taken already")
    args = parser.parse_args(argv)
    os.umask(0o077)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return _serve(args.home, args.interval if args.interval else interval(), args.lock_fd)
    except LkError as exc:
        print(f"ERROR {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
