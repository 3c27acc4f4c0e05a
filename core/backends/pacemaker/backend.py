"""The Pacemaker backend: a real Corosync + Pacemaker cluster behind ``core.backend.Backend``.

The CIB is the one source of truth; the console caches nothing but its records (history,
output lines) in its own data directory (``records``). Commands run through a
:class:`~core.backends.pacemaker.runner.Runner` (this node, the namespace lab, or SSH).

- :meth:`PacemakerBackend.snapshot`: ``crm_mon --output-as=xml``, ``cibadmin --query`` and
  ``corosync-cfgtool -s`` run side by side, read by ``status.cluster``.
- :meth:`PacemakerBackend.apply`: the permission table first (every step's operation
  too, and a refusal is recorded); then the plan's steps become ONE change of a copy of
  the CIB (``operations.build``), checked by ``crm_verify`` and ``crm_simulate`` (the
  transition must do what the plan says and nothing else: where each hierarchy runs
  afterwards is compared with where it would run anyway), and pushed once with
  ``cibadmin --replace``: the copy carries the version of the CIB it was made from, and
  Pacemaker refuses a replacement older than what it has, so a CIB that changed
  meanwhile is never overwritten. Then the hierarchy's version is compared again: a
  change by someone else to *this* hierarchy is :class:`ConflictError` ("reload"); any
  other change (another hierarchy, a status update) only means building the change again
  on the new CIB. After the push the backend waits until Pacemaker did it (in service
  there, stopped), then makes the second change a step needs (the In Service preference
  cleared; a deleted hierarchy removed once it stopped; a new resource that failed to
  start removed again).
- :meth:`PacemakerBackend.watch`: see ``watch.py``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import grp
import json
import logging
import os
import pwd
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.backend import SERVER_POWER, NotAvailable, StepCallback, Watch
from core.capabilities import DEPENDENCIES, FILESYSTEM_GROW, MIRROR_RESIZE, WHAT_IF

if TYPE_CHECKING:
    from core.backend import Backend, ServerPower, WhatIf
from core.backends.pacemaker import cib as cibxml
from core.backends.pacemaker import (
    dk_lifecycle,
    dk_nodes,
    mirror_node,
    mirror_ops,
    nslab,
    operations,
    resize_dk,
    status,
)
from core.backends.pacemaker.cib import HierarchyConfig
from core.backends.pacemaker.dk_names import AGENT_IN_NODE
from core.backends.pacemaker.operations import Change, FollowUp, Intent
from core.backends.pacemaker.operations_dk import NodeWork
from core.backends.pacemaker.oplog import OperationLog, record_refusal, refuse
from core.backends.pacemaker.records import Records, cluster_dir
from core.backends.pacemaker.runner import (
    Completed,
    Runner,
    RunnerError,
    SshRunner,
)
from core.errors import ConflictError, LkError, OperationError
from core.events import EventHub
from core.facts import NetworkInfo, PathInfo, VolumeInfo
from core.history import Entry, LogRow
from core.model import Cluster, ResourceKind, Role
from core.permissions import Op
from core.plan import ApplyResult, CreateDataKeeper, Plan
from core.session import Session, local_user

log = logging.getLogger(__name__)

CRM_MON = ("crm_mon", "--one-shot", "--output-as=xml", "--include=failcounts,attributes")
CIB_QUERY = ("cibadmin", "--query")
CONFIG_QUERY = ("cibadmin", "--query", "--scope", "configuration")  # what a snapshot needs
CFGTOOL = ("corosync-cfgtool", "-s")
NODELIST = ("corosync-cmapctl", "-b", "nodelist.node")
SIMULATE = ("crm_simulate", "--xml-pipe", "--simulate", "--output-as=xml")
VERIFY = ("crm_verify", "--xml-pipe")
PUSH = ("cibadmin", "--replace", "--xml-pipe")
OLD_DATA = 103  # cibadmin: "Update was older than existing configuration"
MAX_ATTEMPTS = 10  # builds of one change while the CIB keeps changing under it
POLL_S = 0.2
STOP_WAIT_S = 120.0  # a removed mirror's copies stopping before the nodes forget it
ROLE_GROUPS = (("lkadmin", Role.ADMINISTRATOR), ("lkoper", Role.OPERATOR), ("lkguest", Role.GUEST))


@dataclass(frozen=True)
class Simulation:
    """What ``crm_simulate`` says of a CIB: where things run now, and once it acted."""

    now: Mapping[str, tuple[str, ...]]
    after: Mapping[str, tuple[str, ...]]
    actions: tuple[tuple[str, str, str], ...]  # (resource, operation, node)
    promoted: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # a mirror's source
    promoted_after: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # once acted


class PacemakerBackend:
    """A Corosync + Pacemaker cluster (see the module's docstring)."""

    kind = "pacemaker"

    def __init__(self, runner: Runner, home: Path, *, lab_home: Path | None = None) -> None:
        self.runner = runner
        self.name = runner.name
        self.home = home
        self.lab_home = lab_home
        caps = {WHAT_IF, DEPENDENCIES, MIRROR_RESIZE, FILESYSTEM_GROW}
        if lab_home is not None:
            caps.add(SERVER_POWER)
        self.capabilities: frozenset[str] = frozenset(caps)
        self._pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="pcmk")
        self._nodelist: dict[str, dict[str, str]] = {}
        self._nodelist_for: frozenset[str] = frozenset()  # the node ids it was read for
        self._watches: list[Watch] = []
        self._lock = threading.Lock()
        self._pause = threading.Event()  # never set: waits with a timeout
        first = cibxml.parse_configuration(self._run(CONFIG_QUERY, what="reading the CIB").stdout)
        self.cluster_name = cibxml.cluster_name(first) or runner.name
        self.records = Records(cluster_dir(home, self.cluster_name))

    # -- commands -------------------------------------------------------------------------
    def _run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        input_text: str | None = None,
        node: str | None = None,
        what: str = "",
    ) -> Completed:
        """Run ``argv``; OperationError naming what failed, where, and the tool's words."""
        done = self.runner.run(argv, timeout=timeout, input_text=input_text, node=node)
        if not done.ok:
            raise OperationError(
                f"{what or ' '.join(argv[:2])} failed on {done.where} "
                f"(exit {done.returncode}): {done.detail}"
            )
        return done

    def _cib(self) -> ET.Element:
        return cibxml.parse(self._run(CIB_QUERY, what="reading the CIB").stdout)

    # -- snapshot -------------------------------------------------------------------------
    def snapshot(self) -> Cluster:
        for _attempt in range(3):
            sources = self._sources()
            if status.quorate(sources.crm_mon) or not self.runner.can_choose_node:
                break
            if not self.runner.next_node("its partition has no quorum"):
                break  # the best view there is
        return status.cluster(sources)

    def _sources(self) -> status.Sources:
        jobs = {
            "crm_mon": self._pool.submit(self.runner.run, CRM_MON),
            "cib": self._pool.submit(self.runner.run, CONFIG_QUERY),
            "cfgtool": self._pool.submit(self.runner.run, CFGTOOL),
        }
        done = {key: job.result() for key, job in jobs.items()}
        for key in ("crm_mon", "cib"):
            if not done[key].ok:
                raise OperationError(
                    f"{key} failed on {done[key].where} (exit {done[key].returncode}): "
                    f"{done[key].detail}"
                )
        crm_mon = status.parse_crm_mon(done["crm_mon"].stdout)
        cib = cibxml.parse_configuration(done["cib"].stdout)
        names = frozenset(v.node_id for v in status.node_views(crm_mon))
        if names != self._nodelist_for:  # read again when the nodes change, not each time
            listed = self.runner.run(NODELIST)
            self._nodelist = status.parse_nodelist(listed.stdout) if listed.ok else {}
            self._nodelist_for = names
        cfgtool = done["cfgtool"].stdout if done["cfgtool"].ok else ""
        return status.Sources(crm_mon, cib, cfgtool, self._nodelist)

    # -- facts ------------------------------------------------------------------------------
    def probe(self, server: str, path: str) -> PathInfo:
        if not path.startswith("/"):
            return PathInfo(server, path, error=f"{path} is not an absolute path")
        chain = [path]
        while chain[-1] != "/":
            chain.append(os.path.dirname(chain[-1].rstrip("/")) or "/")
        try:
            found = self.runner.run(
                ["stat", "--format=%n\t%F\t%s", "--", *chain], timeout=15, node=server
            )
            existing: dict[str, tuple[str, int | None]] = {}
            for line in found.stdout.splitlines():
                name, _t, rest = line.partition("\t")
                kind, _t, size = rest.partition("\t")
                existing[name] = (kind, int(size) if size.isdigit() else None)
            checked = next((p for p in chain if existing.get(p, ("",))[0] == "directory"), "/")
            df = self.runner.run(
                ["df", "--portability", "--print-type", "--block-size=1", "--", checked],
                timeout=15,
                node=server,
            )
            writable = self.runner.run(["test", "-w", checked], timeout=15, node=server).ok
        except RunnerError as exc:
            return PathInfo(server, path, error=str(exc))
        fs_type, mount_point = "", ""
        free: int | None = None
        rows = df.stdout.splitlines()
        if df.ok and len(rows) >= 2:
            fields = rows[-1].split()
            if len(fields) >= 7:
                fs_type, mount_point = fields[1], fields[6]
                free = int(fields[4]) if fields[4].isdigit() else None
        kind, size_found = existing.get(path, ("", None))
        return PathInfo(
            server=server,
            path=path,
            exists=path in existing,
            is_dir=kind == "directory",
            size=size_found if kind == "regular file" else None,
            checked=checked,
            fs_type=fs_type,
            mount_point=mount_point,
            writable=writable,
            free_bytes=free,
        )

    def volumes(self, server: str) -> tuple[VolumeInfo, ...]:
        """The volume files of ``server`` (``datakeeper admin volumes``: /disks/*.img, their
        size and file system); none where the agent cannot answer."""
        done = self.runner.run([AGENT_IN_NODE, "admin", "volumes"], timeout=30, node=server)
        try:
            listed = json.loads(done.stdout) if done.ok else []
        except ValueError:
            listed = []
        return tuple(
            VolumeInfo(str(v["path"]), int(v["size"]), v.get("fs") or None)
            for v in listed
            if isinstance(v, dict) and "path" in v and str(v.get("size", "")).isdigit()
        )

    def _volume_sizes(self, plan: Plan) -> dict[tuple[str, str], int]:
        """The size of each existing volume a new mirror of ``plan`` is made of."""
        wanted = {(s.server, s.volume) for s in plan.steps if isinstance(s, CreateDataKeeper)}
        return {
            (server, v.path): v.size
            for server in sorted({node for node, _path in wanted})
            for v in self.volumes(server)
            if (server, v.path) in wanted
        }

    def network(self, server: str) -> NetworkInfo:
        """The Pacemaker lab proposes a free address of its bridge's subnet and the
        nodes' interface; a real cluster proposes none (the field must be filled)."""
        if self.lab_home is None:
            return NetworkInfo(server)
        from core.backends.pacemaker import nslab_files

        try:
            address: tuple[str, ...] = (str(nslab_files.node_address(server)),)
        except ValueError:
            address = ()
        first, last = nslab_files.SERVICE_ADDRESSES
        return NetworkInfo(
            server,
            addresses=address,
            interface=nslab_files.NODE_INTERFACE,
            pool_first=str(first),
            pool_last=str(last),
            prefix_length=nslab_files.SERVICE_NETWORK.prefixlen,
        )

    # -- who may do what ----------------------------------------------------------------------
    def local_session(self) -> Session:
        """LifeKeeper's convention: root, or a member of ``lkadmin``, is an Administrator;
        ``lkoper`` an Operator; ``lkguest`` (or none of them) a Guest. The user is the
        SSH user on an SSH cluster, the local user otherwise (the lab runs as root)."""
        if isinstance(self.runner, SshRunner):
            user = self.runner.target.user or local_user()
            if user == "root":
                return Session(user, Role.ADMINISTRATOR)
            done = self.runner.run(["id", "-Gn"], timeout=15)
            groups = set(done.stdout.split()) if done.ok else set()
            return Session(user, _role(groups))
        user = local_user()
        if os.getuid() == 0:
            return Session(user, Role.ADMINISTRATOR)
        return Session(user, _role(_local_groups(user)))

    def authenticate(self, user: str, password: str) -> Session:
        raise NotAvailable(
            "signing in with a password is not available on a Pacemaker cluster: LK Console "
            "acts as the SSH user (connect as ssh://USER@node with that user's key), whose "
            "role comes from the lkadmin, lkoper and lkguest groups on the node"
        )

    def authorize(self, session: Session, op: Op, operation: str = "", command: str = "") -> None:
        refuse(self.records, session, op, operation, command)

    def record_refusal(
        self, user: str, role: str, operation: str, command: str, message: str
    ) -> None:
        record_refusal(self.records, user, role, operation, command, message)

    def history(self, since: float | None = None) -> list[Entry]:
        return self.records.history(since)

    def log_lines(self, after: int = 0, limit: int = 2000) -> list[LogRow]:
        return self.records.lines(after, limit)

    # -- mirrors (DataKeeper resources on Pacemaker come with the datakeeper agent) --------
    def server_log(self, server: str, after: int = 0) -> list[LogRow]:
        from core import serverlog

        return serverlog.for_server(self.log_lines(after, 2000), server)

    def dirty_chunks(self, resource_id: int) -> dict[str, int]:
        return {}  # no mirror here is resynchronised by this console: nothing to count

    def resync_running(self, resource_id: int, target: str) -> bool | None:
        return None  # cannot tell from the cluster's status

    def local_folder(self, server: str) -> Path | None:
        return None  # cluster nodes are real machines: no folder of this one is their /

    # -- apply -------------------------------------------------------------------------------
    def apply(
        self,
        plan: Plan,
        session: Session,
        *,
        hub: EventHub | None = None,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ApplyResult:
        refuse(self.records, session, plan.op, plan.name, plan.command)
        for op in dict.fromkeys(operations.STEP_OPS.get(type(s), plan.op) for s in plan.steps):
            refuse(self.records, session, op, plan.name, plan.command)
        out = OperationLog(self.records, plan.name, hub, session, plan.command)
        total = len(plan.steps)

        def report(status_text: str) -> None:
            if on_step is not None:
                for index, step in enumerate(plan.steps):
                    on_step(index, total, step.title, status_text)

        report("running")
        try:
            operations.check_supported(plan.steps)
            if resize_dk.is_resize(plan.steps):
                hierarchy = self._resize(plan, out, cancel)
            else:
                plan = self._force_online(plan, out)
                change = self._commit(plan, out, cancel)
                hierarchy = self._after_push(change, out, cancel)
                self._wait_copies_stopped(change.after_work, out, cancel)
                dk_nodes.do_after(self._run, change.after_work, out)
                mirror_node.send(self._run, change.node_requests, out)  # to the engines
        except LkError as exc:
            report("failed")
            out.say("ERROR", str(exc))
            out.finish(ok=False, message=str(exc))
            raise
        report("done")
        message = plan.done or mirror_ops.done_message(plan.steps) or f"{plan.name}: done."
        out.say("INFO", message)
        out.finish(ok=True, message=message)
        return ApplyResult(message, tuple(out.said), hierarchy)

    def _force_online(self, plan: Plan, out: OperationLog) -> Plan:
        """Force Online first: the waiting copy is made promotable and Pacemaker promotes
        it (the plan's version is checked before; where things run then changes)."""
        current = self._cib()
        try:
            forcings = mirror_ops.forcings(current, plan.steps)
        except cibxml.Refused as exc:
            raise OperationError(str(exc)) from exc
        if not forcings:
            return plan
        self._check_version(plan, current, self._simulate(current).now)
        mirror_node.force(self._run, forcings, out)
        return dataclasses.replace(plan, version=None)

    def _commit(self, plan: Plan, out: OperationLog, cancel: threading.Event | None) -> Change:
        """Build, check and push the plan's change (again while the CIB changes under it);
        the node work it needs before the push is undone when it fails."""
        sizes = self._volume_sizes(plan)
        done: list[NodeWork] = []  # the node work done, undone if the push fails
        try:
            return self._commit_attempts(plan, out, cancel, sizes, done)
        except LkError:
            dk_nodes.undo(self._run, done, out)
            raise

    def _commit_attempts(
        self, plan: Plan, out: OperationLog, cancel: threading.Event | None,
        sizes: Mapping[tuple[str, str], int], done: list[NodeWork],
    ) -> Change:  # fmt: skip
        cleaned = validated = said = worked = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if cancel is not None and cancel.is_set():
                raise OperationError("cancelled: nothing was changed")
            current = self._cib()
            base = self._simulate(current)
            self._check_version(plan, current, base.now)
            change = operations.build(current, plan.steps, base.now, self._addresses(),
                                      promoted=base.promoted, volumes=sizes)  # fmt: skip
            if change.cleanups and not cleaned:
                cleaned = True
                if self._clean_up(change.cleanups, out):
                    continue  # the CIB changed: read it again
            if not validated:
                self._validate(change, out)
                validated = True
            if not said:
                said = True
                for line in change.lines:
                    out.say("INFO", line)
            if not (change.created or change.touched or change.intents):
                if not change.node_requests:  # else the requests are the whole operation
                    out.say("INFO", "Nothing to change in the cluster's configuration")
                return change
            self._verify(change.cib)
            after = self._simulate(change.cib)
            check_transition(current, change, base, after)
            if change.node_work and not worked:
                worked = True
                dk_nodes.do(self._run, change.node_work, out, done)
            if self._push(change.cib):
                change.done_work = done
                actions = describe_actions(after.actions, change) or "nothing to do"
                out.say(
                    "INFO",
                    f"The cluster's configuration was changed once (from CIB "
                    f"{cibxml.version(current)}); Pacemaker: {actions}",
                )
                return change
            self._pause.wait(min(0.05 * attempt, 0.5))
        raise ConflictError(
            "The cluster's configuration kept changing while this operation was prepared; "
            "nothing was changed: reload and try again."
        )

    def _check_version(
        self, plan: Plan, current: ET.Element, running: Mapping[str, Sequence[str]]
    ) -> None:
        if plan.hierarchy_id is None:
            return
        h = cibxml.find(current, plan.hierarchy_id)
        if h is None:
            raise ConflictError(
                "The hierarchy was deleted by someone else since you looked at it; reload."
            )
        if plan.version is not None and status.version(h, running) != plan.version:
            raise ConflictError(
                f"{h.root.tag} was changed by someone else since you looked at it (its "
                "configuration, or where it runs, is not what this operation was made from); "
                "reload and try again."
            )

    def _simulate(self, cib: ET.Element) -> Simulation:
        done = self._run(SIMULATE, input_text=cibxml.to_text(cib), timeout=60, what="crm_simulate")
        try:
            root = ET.fromstring(done.stdout)
        except ET.ParseError as exc:
            raise OperationError(f"crm_simulate's output is not XML: {exc}") from exc
        actions = tuple(
            (a.get("resource", ""), a.get("op", ""), a.get("node", ""))
            for a in root.iterfind("transition/rsc_action")
            if a.get("op") != "monitor"
        )
        views = status.resource_views(root.find("cluster_status/resources"))
        revised = status.resource_views(root.find("revised_cluster_status/resources"))
        return Simulation(
            now=status.placements(root.find("cluster_status/resources")),
            after=status.placements(root.find("revised_cluster_status/resources")),
            actions=actions,
            promoted={rid: v.promoted_on for rid, v in views.items() if v.promoted_on},
            promoted_after={rid: v.promoted_on for rid, v in revised.items() if v.promoted_on},
        )

    def _verify(self, cib: ET.Element) -> None:
        done = self.runner.run(VERIFY, input_text=cibxml.to_text(cib), timeout=60)
        if not done.ok:
            errors = [
                line.strip()
                for line in (done.stderr + done.stdout).splitlines()
                if "error" in line.lower() and line.strip()
            ]
            raise OperationError(
                "Pacemaker would not accept this configuration (crm_verify): "
                + (" | ".join(errors[:3]) or done.detail)
            )

    def _addresses(self) -> dict[str, str]:
        """node → its Corosync address (a mirror's replication address)."""
        if not self._nodelist:
            listed = self.runner.run(NODELIST)
            self._nodelist = status.parse_nodelist(listed.stdout) if listed.ok else {}
        return {
            v["name"]: v["ring0_addr"]
            for v in self._nodelist.values()
            if v.get("name") and v.get("ring0_addr")
        }

    def _push(self, cib: ET.Element) -> bool:
        """Replace the CIB with ``cib`` unless it changed since ``cib`` was read (False)."""
        done = self.runner.run(PUSH, input_text=cibxml.to_text(cib), timeout=60)
        if done.ok:
            return True
        if done.returncode == OLD_DATA or "older than existing" in done.detail:
            return False
        raise OperationError(f"cibadmin --replace failed on {done.where}: {done.detail}")

    def _validate(self, change: Change, out: OperationLog) -> None:
        """The agent of each new resource checks its settings on its server."""
        for top_id in change.created:
            h = next(x for x in cibxml.hierarchies(change.cib) if x.top_id == top_id)
            intent = change.intent(top_id)
            server = intent.where if intent is not None else None
            node = server if server and self._can_run_on(server) else None
            for m in h.members:
                if m.kind is ResourceKind.DATAKEEPER:
                    continue  # it needs its volume and its CIB entry: its start checks it
                argv = ["crm_resource", "--validate", "--class", m.agent.standard]
                if m.agent.provider:
                    argv += ["--provider", m.agent.provider]
                argv += ["--agent", m.agent.type]
                for name, value in m.params:
                    argv += ["--option", f"{name}={value}"]
                done = self.runner.run(argv, timeout=60, node=node)
                if done.ok:
                    continue
                where = done.where
                reasons = [
                    line.split("ERROR:", 1)[1].strip()
                    for line in (done.stdout + done.stderr).splitlines()
                    if "ERROR:" in line
                ] + [
                    line.split("ocf-exit-reason:", 1)[1].strip()
                    for line in (done.stdout + done.stderr).splitlines()
                    if "ocf-exit-reason:" in line
                ]
                if "not installed" in done.detail and not reasons:
                    reasons = [
                        f"the agent {m.agent} is not installed on {where}"
                        + (
                            ": install packaging/ocf/lkconsole/app as "
                            "/usr/lib/ocf/resource.d/lkconsole/app on every node"
                            if m.agent == cibxml.APP_AGENT
                            else ""
                        )
                    ]
                raise OperationError(
                    f"{m.tag} would not work on {where}: {'; '.join(reasons) or done.detail}"
                    " (checked by the agent; nothing was changed)"
                )
            out.say(
                "INFO", f"{h.root.tag}: its settings were checked on {node or self.runner.node}"
            )

    def _can_run_on(self, server: str) -> bool:
        return self.runner.can_choose_node or server == self.runner.node

    def _clean_up(self, cleanups: Sequence[tuple[str, str]], out: OperationLog) -> bool:
        """Clear old failures of the hierarchies about to come in service (True if any)."""
        crm_mon = status.parse_crm_mon(self._run(CRM_MON).stdout)
        failed = {(f.xml_id, f.node) for f in status.failures(crm_mon)}
        failed |= set(status.fail_counts(crm_mon))
        current = self._cib()
        any_done = False
        for top_id, node in cleanups:
            h = next((x for x in cibxml.hierarchies(current) if x.top_id == top_id), None)
            if h is None or not any((m.xml_id, node) in failed for m in h.members):
                continue
            self._run(
                ["crm_resource", "--cleanup", "--resource", top_id, "--node", node],
                what=f"clearing the failures of {h.root.tag} on {node}",
            )
            out.say("INFO", f"{h.root.tag}: cleared its earlier failures on {node}")
            any_done = True
            self._wait(functools.partial(self._cleared, h.member_ids, node), 15)
        return any_done

    def _cleared(self, members: Sequence[str], node: str) -> bool:
        """Does crm_mon show no failure of ``members`` on ``node`` any more?"""
        crm_mon = status.parse_crm_mon(self._run(CRM_MON).stdout)
        failed = {(f.xml_id, f.node) for f in status.failures(crm_mon)}
        failed |= set(status.fail_counts(crm_mon))
        return not any((m, node) in failed for m in members)

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            self._pause.wait(POLL_S)
        return True

    # -- after the push ----------------------------------------------------------------------
    def _after_push(
        self, change: Change, out: OperationLog, cancel: threading.Event | None
    ) -> int | None:
        """Wait for each intent, then make the follow-up changes; the hierarchy id made or
        changed."""
        made = None
        for intent in change.intents:
            if intent.gone:
                continue
            outcome = self._wait_intent(intent, change.cib, cancel)
            follow = [f for f in change.follow_ups if f.top_id == intent.top_id]
            if outcome is not None:  # it did not happen
                if any(f.kind == "check-started" for f in follow):
                    self._undo_create(intent, out)
                    dk_nodes.undo(self._run, change.done_work, out)
                    raise OperationError(
                        f"{intent.tag} could not be brought in service on {intent.where}: "
                        f"{outcome}. It was removed again: nothing is left of it.",
                        step=intent.step,
                    )
                if any(f.kind == "clear-preference" for f in follow):
                    self._second_change(FollowUp("clear-preference", intent.top_id, intent.tag))
                raise OperationError(
                    f"the cluster's configuration was changed, but {outcome}",
                    step=intent.step,
                    committed=True,
                )
            out.say("INFO", f"{intent.wanted} (Pacemaker did it)")
            for f in follow:
                if f.kind == "clear-preference":
                    self._clear_preference(f, out)
                elif f.kind == "remove":
                    self._second_change(f)
                    out.say("INFO", f"{f.tag}: removed from the cluster's configuration")
        for top_id in [*change.created, *change.touched]:
            h = next((x for x in cibxml.hierarchies(change.cib) if x.top_id == top_id), None)
            if h is not None:
                made = h.hierarchy_id
                break
        return made

    def _wait_intent(
        self, intent: Intent, cib: ET.Element, cancel: threading.Event | None
    ) -> str | None:
        """Poll crm_mon until ``intent`` holds; None, or why it did not happen."""
        h = next((x for x in cibxml.hierarchies(cib) if x.top_id == intent.top_id), None)
        if h is None:
            return None
        members = h.member_ids
        mirrors = {m.xml_id for m in h.members if m.kind is ResourceKind.DATAKEEPER}
        timeout = _timeout(cib, members)
        deadline = time.monotonic() + timeout
        while True:
            crm_mon = status.parse_crm_mon(self._run(CRM_MON).stdout)
            views = status.resource_views(crm_mon.find("resources"))
            wanted = (intent.where,) if intent.where else ()
            if all(
                m in views
                and (views[m].promoted_on if m in mirrors else views[m].running_on)
                == wanted  # a mirror is in service where it is Promoted (a source): out
                # of service, its copies serve on as targets
                and not views[m].failed
                and views[m].pending.lower() not in ("starting", "stopping", "promoting")
                for m in members
            ):
                return None
            if intent.where is not None:
                gone = [
                    v for v in status.node_views(crm_mon)
                    if v.name == intent.where and (not v.online or v.unclean)
                ]  # fmt: skip
                if gone:
                    return f"{intent.where} went down meanwhile ({gone[0].state.label})"
                broken = [
                    f
                    for f in status.failures(crm_mon)
                    if f.xml_id in members and f.node == intent.where
                ]
                if broken:
                    return "; ".join(f.text for f in broken)
                banned = _banned(crm_mon, h, intent.where)
                if banned:
                    return banned
            else:
                blocked = [
                    m for m in members if m in views and (views[m].blocked or views[m].failed)
                ]
                if blocked:
                    fails = [f.text for f in status.failures(crm_mon) if f.xml_id in blocked]
                    return f"{intent.tag} failed to stop: {'; '.join(fails) or 'blocked'}"
            if cancel is not None and cancel.is_set():
                return f"cancelled while waiting for {intent.wanted} (Pacemaker carries on)"
            if time.monotonic() > deadline:
                where = sorted({n for m in members if m in views for n in views[m].running_on})
                now = f"it runs on {', '.join(where)}" if where else "it is stopped"
                return (
                    f"Pacemaker did not get {intent.wanted} within {timeout:g} s ({now}; "
                    "see crm_mon)"
                )
            self._pause.wait(POLL_S)

    def _wait_copies_stopped(
        self, works: Sequence[NodeWork], out: OperationLog, cancel: threading.Event | None
    ) -> None:
        """Until no copy of a mirror runs on a node about to forget it. Pacemaker stops a
        removed clone's copies (or an unextended target's) after the push; an engine still
        stopping would write its record and its node attributes again after they went."""
        leaving = sorted({(w.rid, w.node) for w in works if w.kind == "forget"})
        deadline = time.monotonic() + STOP_WAIT_S
        while leaving:
            views = self._views()
            leaving = [(rid, node) for rid, node in leaving
                       if rid in views and node in views[rid].running_on]  # fmt: skip
            if not leaving:
                return
            if time.monotonic() > deadline or (cancel is not None and cancel.is_set()):
                for rid, node in leaving:
                    out.say("WARNING", f"{rid} still runs on {node}: once it has stopped, "
                            f"run `{AGENT_IN_NODE} admin forget {rid}` there")  # fmt: skip
                return
            self._pause.wait(POLL_S)

    # -- Resize Mirror (resize_dk.py: its phases) -----------------------------------------
    def _resize(self, plan: Plan, out: OperationLog, cancel: threading.Event | None) -> int | None:
        current = self._cib()
        base = self._simulate(current)
        self._check_version(plan, current, base.now)
        try:
            r = resize_dk.of(current, plan.steps, base.promoted)
        except cibxml.Refused as exc:
            raise OperationError(str(exc)) from exc
        first, last = plan.steps[0].title, plan.steps[-1].title
        again = f"run `lkctl mirror resize {r.dk_tag} --size {r.new}` again to finish it"
        if r.resuming:
            out.say("INFO", f"{r.dk_tag}: finishing the resize from {r.old} to {r.new} bytes "
                    "that an earlier run began")  # fmt: skip
        self._edit(functools.partial(resize_dk.hold, r=r))
        out.say("INFO", f"{r.tag}: out of service on {r.source} while {r.dk_tag} grows "
                f"from {r.old} to {r.new} bytes")  # fmt: skip
        outcome = self._wait_intent(Intent(r.top_id, r.tag, None), self._cib(), cancel)
        done: list[NodeWork] = []
        try:
            if outcome is not None:
                raise OperationError(f"{r.tag} did not go out of service: {outcome}", step=first)
            dk_nodes.do(self._run, resize_dk.node_work(r), out, done)
        except LkError as exc:
            if r.resuming:  # an earlier run may have grown the file system: never undone
                raise OperationError(f"{exc}; {again}", step=first) from exc
            if dk_nodes.undo(self._run, done, out):  # a node kept its grown volume
                raise OperationError(
                    f"{exc}; what grew could not all be undone, so {r.tag} stays out of "
                    f"service: once every node is up, {again}", step=first,
                ) from exc  # fmt: skip
            self._edit(functools.partial(resize_dk.abandon, r=r))
            out.say("INFO", f"{r.tag}: back in service on {r.source}; {r.dk_tag} is unchanged")
            raise OperationError(
                f"{exc}; nothing was changed", step=getattr(exc, "step", "") or first
            ) from exc
        self._edit(functools.partial(resize_dk.source_back, r=r))
        out.say("INFO", f"{r.dk_tag}: every copy is {r.new} bytes; its source starts again on "
                f"{r.source}")  # fmt: skip
        if not self._wait(functools.partial(self._promoted_only, r.rid, r.source), 300):
            raise OperationError(
                f"{r.dk_tag}'s source did not start again on {r.source} within 300 s (see "
                f"crm_mon); {r.tag} stays out of service: {again}", step=last,
            )  # fmt: skip
        if r.grows_fs:
            try:
                dk_nodes.do(self._run, [NodeWork("grow-fs", r.source, r.rid)], out)
            except OperationError as exc:
                out.say("WARNING", f"{exc}: {r.tag} comes back with its file system as it was")
        self._edit(functools.partial(resize_dk.finish, r=r))
        outcome = self._wait_intent(Intent(r.top_id, r.tag, r.source), self._cib(), cancel)
        if outcome is not None:
            raise OperationError(f"{r.dk_tag} was resized, but {outcome}", step=last,
                                 committed=True)  # fmt: skip
        self._clear_preference(FollowUp("clear-preference", r.top_id, r.tag, r.source), out)
        if r.no_bitmap:  # no intent log marked the new space: every target is resynced
            mirror_node.send(self._run, [
                mirror_ops.NodeRequest(r.rid, r.dk_tag, "full_resync", t, step=last)
                for t in r.targets], out)  # fmt: skip
        return cibxml.hierarchy_id(r.top_id)

    def _views(self) -> dict[str, status.ResourceView]:
        """Each primitive as crm_mon shows it now."""
        return status.resource_views(
            status.parse_crm_mon(self._run(CRM_MON).stdout).find("resources")
        )

    def _promoted_only(self, rid: str, node: str) -> bool:
        """Is ``rid`` Promoted on ``node`` only, done promoting?"""
        view = self._views().get(rid)
        return (
            view is not None
            and view.promoted_on == (node,)
            and view.pending.lower() not in ("starting", "promoting")
        )

    def _edit(self, edit: Callable[[ET.Element], None]) -> None:
        """One change of the CIB by ``edit`` (of a fresh copy, again while it changes
        under it), checked by crm_verify."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            work = cibxml.copy_of(self._cib())
            try:
                edit(work)
            except cibxml.Refused as exc:
                raise OperationError(str(exc)) from exc
            self._verify(work)
            if self._push(work):
                return
            self._pause.wait(min(0.05 * attempt, 0.5))
        raise ConflictError("the cluster's configuration kept changing; reload and try again")

    def _second_change(self, follow_up: FollowUp) -> None:
        """Push a follow-up change (rebuilt while the CIB changes under it)."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            current = self._cib()
            work = operations.follow_up_change(current, follow_up)
            if work is None:
                return
            if self._push(work):
                return
            self._pause.wait(min(0.05 * attempt, 0.5))
        raise ConflictError(f"{follow_up.tag}: the configuration kept changing; reload")

    def _clear_preference(self, follow_up: FollowUp, out: OperationLog) -> None:
        """Clear the In Service preference unless Pacemaker would then move it away."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            current = self._cib()
            work = operations.follow_up_change(current, follow_up)
            if work is None:
                return
            after = self._simulate(work)
            h = next((x for x in cibxml.hierarchies(work) if x.top_id == follow_up.top_id), None)
            if h is not None:
                moved = _placed(h, after)
                if moved and moved != {follow_up.node}:
                    out.say(
                        "WARNING",
                        f"{follow_up.tag}: kept a preference for {follow_up.node}: without it "
                        f"Pacemaker would move it to {', '.join(sorted(moved))} (automatic "
                        "switchback, or a better priority there); an out of service or a "
                        "switchover clears it",
                    )
                    return
            if self._push(work):
                return
            self._pause.wait(min(0.05 * attempt, 0.5))

    def _undo_create(self, intent: Intent, out: OperationLog) -> None:
        out.say("WARNING", f"{intent.tag} did not start: removing it again")
        stop = FollowUp("remove", intent.top_id, intent.tag)
        current = self._cib()
        h = next((x for x in cibxml.hierarchies(current) if x.top_id == intent.top_id), None)
        if h is None:
            return
        work = cibxml.copy_of(current)
        cibxml.set_stopped(work, h.top_id, True)
        dk_lifecycle.stop_mirror(work, h)  # a new mirror's clone stops with its group
        cibxml.set_preference(work, h.top_id, None)
        if self._push(work):
            self._wait_intent(Intent(h.top_id, h.root.tag, None), work, None)
        for m in h.members:  # while they exist: a fail-count would ban a new one of the name
            self.runner.run(["crm_resource", "--cleanup", "--resource", m.xml_id], timeout=60)
        self._second_change(stop)

    # -- what if ------------------------------------------------------------------------------
    def what_if(self, plan: Plan) -> list[str]:
        """What Pacemaker would do for ``plan`` (nothing is changed): in LifeKeeper's words."""
        operations.check_supported(plan.steps)
        current = self._cib()
        base = self._simulate(current)
        sizes = self._volume_sizes(plan)
        change = operations.build(current, plan.steps, base.now, self._addresses(),
                                  promoted=base.promoted, volumes=sizes)  # fmt: skip
        self._verify(change.cib)
        after = self._simulate(change.cib)
        lines = list(change.lines)
        try:
            check_transition(current, change, base, after)
        except OperationError as exc:
            lines.append(f"Refused: {exc}")
        lines.append("Pacemaker: " + (describe_actions(after.actions, change) or "nothing to do"))
        return lines

    # -- watch --------------------------------------------------------------------------------
    def watch(self, hub: EventHub, *, shown: Cluster | None = None, last_log_id: int = 0) -> Watch:
        from core.backends.pacemaker.watch import PacemakerWatch

        w = PacemakerWatch(self, hub, shown=shown, last_log_id=last_log_id)
        with self._lock:
            self._watches.append(w)
        w.start()
        return w

    # -- server power (the lab) -----------------------------------------------------------------
    def stop_server(self, server: str, session: Session, hub: EventHub | None = None) -> list[str]:
        return self._power(server, session, hub, stop=True)

    def start_server(self, server: str, session: Session, hub: EventHub | None = None) -> list[str]:
        return self._power(server, session, hub, stop=False)

    def _power(self, server: str, session: Session, hub: EventHub | None, stop: bool) -> list[str]:
        if self.lab_home is None:
            raise NotAvailable("stopping and starting a server is only available on the lab")
        op = Op.STOP_SERVER if stop else Op.START_SERVER
        verb = "stop" if stop else "start"
        name = f"{verb} server {server}"
        command = f"lkctl lab {verb} {server}"
        refuse(self.records, session, op, name, command)
        out = OperationLog(self.records, name, hub, session, command)
        try:
            if stop:
                nslab.stop(self.lab_home, server)
                out.say("INFO", f"{server} stopped: a real failure (its corosync and everything)")
            else:
                # A node still being fenced would be cut off again as soon as it is up.
                if not self._wait(functools.partial(self._not_unclean, server), 90):
                    raise nslab.LabError(f"{server} is still being fenced: try again shortly")
                nslab.start(self.lab_home, server)
                out.say("INFO", f"{server} started: it rejoins the cluster")
        except nslab.LabError as exc:
            out.finish(ok=False, message=str(exc))
            raise OperationError(str(exc)) from exc
        out.finish(ok=True, message=out.said[-1])
        return list(out.said)

    def _not_unclean(self, server: str) -> bool:
        crm_mon = status.parse_crm_mon(self._run(CRM_MON).stdout)
        return not any(v.name == server and v.unclean for v in status.node_views(crm_mon))

    def close(self) -> None:
        with self._lock:
            watches, self._watches = self._watches, []
        for w in watches:
            w.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.runner.close()
        self.records.close()


# -- helpers ----------------------------------------------------------------------------------


def _role(groups: set[str]) -> Role:
    for group, role in ROLE_GROUPS:
        if group in groups:
            return role
    return Role.GUEST


def _local_groups(user: str) -> set[str]:
    try:
        gid = pwd.getpwnam(user).pw_gid
        return {grp.getgrgid(g).gr_name for g in os.getgrouplist(user, gid)}
    except (KeyError, OSError):
        return set()


def _timeout(cib: ET.Element, members: Sequence[str]) -> float:
    """How long Pacemaker may take to start or stop ``members``: their op timeouts + 30 s."""
    total = 30.0
    for primitive in cib.iter("primitive"):
        if primitive.get("id") not in members:
            continue
        for op in primitive.iterfind("operations/op"):
            if op.get("name") in ("start", "stop"):
                total += _seconds(op.get("timeout", "20s"))
    return min(total, 600.0)


def _seconds(text: str) -> float:
    value = text.strip().lower()
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if value.endswith(suffix) and value[: -len(suffix)].isdigit():
            return int(value[: -len(suffix)]) * factor
    return float(value) if value.isdigit() else 20.0


def check_transition(
    current: ET.Element,
    change: Change,
    base: Simulation,
    after: Simulation,
) -> None:
    """Refuse (OperationError) unless Pacemaker would do what ``change`` intends, and
    nothing else: every resource ends where it would anyway, except the intents'."""
    tags: dict[str, str] = {}
    owner: dict[str, HierarchyConfig] = {}
    mirrors: set[str] = set()
    for h in [*cibxml.hierarchies(current), *cibxml.hierarchies(change.cib)]:
        for m in h.members:
            tags[m.xml_id] = m.tag
            owner[m.xml_id] = h
            if m.kind is ResourceKind.DATAKEEPER:
                mirrors.add(m.xml_id)
    intended: dict[str, Intent] = {}
    for intent in change.intents:
        for xml_id, h in owner.items():
            if h.top_id == intent.top_id:
                intended[xml_id] = intent
    problems: list[str] = []
    seen_intents: set[str] = set()
    awaiting = _awaiting_promotion(change)
    for rid in sorted(set(base.after) | set(after.after) | set(intended)):
        got = tuple(sorted(after.after.get(rid, ())))
        expected = _expected(rid, base, change)
        if rid in intended:
            intent = intended[rid]
            if intent.gone or rid in awaiting:
                continue
            missed = _missed(rid, intent, after, expected, rid in mirrors)
            if missed and intent.top_id not in seen_intents:
                seen_intents.add(intent.top_id)
                problems.append(f"Pacemaker would not get {intent.wanted}: {missed}")
            continue
        if got != expected:
            name = tags.get(rid, rid)
            problems.append(
                f"it would also change {name}: {_where(expected, 'now')} → {_where(got)}"
            )
    if problems:
        raise OperationError(
            "refused, nothing was changed: " + "; ".join(problems) + " (crm_simulate)"
        )


def _missed(
    rid: str, intent: Intent, after: Simulation, expected: tuple[str, ...], mirror: bool
) -> str:
    """Why ``rid`` would not be where ``intent`` wants it ('': it would). A mirror is in
    service where it is Promoted; its other copies run on as they would anyway (a
    switchover moves the Promoted instance only), and none of them stops for it."""
    got = tuple(sorted(after.after.get(rid, ())))
    want = (intent.where,) if intent.where else ()
    if not mirror:
        return "" if got == want else _where(got)
    source = tuple(sorted(after.promoted_after.get(rid, ())))
    if not want:  # out of service: no source left (its copies may serve on as targets)
        return "" if not source else f"{_where(got)}, its source on {', '.join(source)}"
    if source == want and got == expected:
        return ""  # its Promoted instance moves; the Unpromoted ones stay
    stops = [n for n in expected if n not in got]
    if got == want and not stops:  # a new mirror, or Force Online (the others are down)
        return ""
    if stops:
        return f"{_where(got)} (its copy on {', '.join(stops)} would stop)"
    return f"{_where(got)}, its source on {', '.join(source) or 'no node'}"


def _expected(rid: str, base: Simulation, change: Change) -> tuple[str, ...]:
    """Where ``rid`` runs once Pacemaker acted, unless ``change`` moves it."""
    expected = tuple(sorted(base.after.get(rid, ())))
    if rid in change.grows:  # a mirror's clone starts on its new target
        expected = tuple(sorted({*expected, change.grows[rid]}))
    if rid in change.shrinks:  # and stops on a target that leaves it
        expected = tuple(n for n in expected if n != change.shrinks[rid])
    return expected


def _placed(h: HierarchyConfig, sim: Simulation) -> set[str]:
    """Where ``h`` is in service once Pacemaker acted (a mirror: where it is Promoted)."""
    return {
        n
        for m in h.members
        for n in (sim.promoted_after if m.kind is ResourceKind.DATAKEEPER else sim.after).get(
            m.xml_id, ()
        )
    }


def _banned(crm_mon: ET.Element, h: HierarchyConfig, node: str) -> str | None:
    """Why a member of ``h`` will not run on ``node`` any more (its fail-count there is
    INFINITY: a failed start; crm_mon lists some, e.g. "not installed", only in the
    node's history), or None."""
    counts = status.fail_counts(crm_mon)
    said = []
    for m in h.members:
        if counts.get((m.xml_id, node), 0) < cibxml.INFINITY:
            continue
        ops = [
            f"{op.get('task')} {op.get('rc_text') or 'rc ' + str(op.get('rc'))}"
            for hist in crm_mon.iterfind(f"node_history/node[@name='{node}']/resource_history")
            if hist.get("id") == m.xml_id
            for op in hist.iterfind("operation_history")
            if op.get("rc") not in ("0", "7", "8")
        ]
        said.append(f"{m.tag} failed on {node} ({', '.join(ops) or 'fail-count INFINITY'})")
    if not said:
        return None
    return "; ".join(said) + ": Pacemaker will not try it there again"


def _awaiting_promotion(change: Change) -> set[str]:
    """What depends on a new mirror: it runs once the mirror is Promoted, which crm_simulate
    cannot foresee (the agent gives the promotion score once it runs; the backend waits
    for it after the push)."""
    return {
        m.xml_id
        for h in cibxml.hierarchies(change.cib)
        if h.top_id in change.created and any(x.kind is ResourceKind.DATAKEEPER for x in h.members)
        for m in h.members
        if m.kind is not ResourceKind.DATAKEEPER
    }


def _where(nodes: Sequence[str], when: str = "") -> str:
    prefix = f"{when} " if when else ""
    if not nodes:
        return f"{prefix}stopped" if when else "it would not run anywhere"
    if when:
        return f"{prefix}on {', '.join(nodes)}"
    return f"it would run on {', '.join(nodes)}"


def describe_actions(actions: Sequence[tuple[str, str, str]], change: Change) -> str:
    """crm_simulate's actions on the hierarchies ``change`` touches, in LifeKeeper's words:
    "web-ip in service on lab2"."""
    tops = {*change.created, *change.touched, *(i.top_id for i in change.intents)}
    tags = {
        m.xml_id: m.tag
        for h in cibxml.hierarchies(change.cib)
        if h.top_id in tops
        for m in h.members
    }
    words = {"start": "in service on", "stop": "out of service on", "promote": "source on",
             "demote": "target on"}  # fmt: skip
    shown = [
        f"{tags[rsc]} {words[op]} {node}"
        for rsc, op, node in actions
        if op in words and rsc in tags
    ]
    return ", ".join(dict.fromkeys(shown))


__all__ = ["WHAT_IF", "PacemakerBackend", "Simulation", "check_transition", "describe_actions"]


if TYPE_CHECKING:  # mypy checks that the class is what the console expects

    def _is_a_backend(b: PacemakerBackend) -> Backend:
        return b

    def _has_server_power(b: PacemakerBackend) -> ServerPower:
        return b

    def _has_what_if(b: PacemakerBackend) -> WhatIf:
        return b
