"""Unextend and Delete Resource Hierarchy: request → checks → plan → execute.

- **Unextend** removes a hierarchy from one server that is not the one where it is in
  service: its resources, its priority, its mirror target (the resync to it is stopped)
  and its bitmap file. The data volume on that server is kept.
- **Delete** removes a hierarchy from every server. No volume is ever deleted.

The rows change in one transaction (with the optimistic version check); the bitmap
files are cleaned up after the commit, because a deleted file cannot be undone: a crash
before the cleanup leaves only an unused bitmap section, which a later extend resets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import commands
from core.backends.lab import mirrors
from core.backend import LabBackend
from core.checks import Problem
from core.errors import CheckFailed, LkError, OperationError
from core.events import EventHub
from core.backends.lab.layout import LabLayout
from core.model import Cluster, Hierarchy
from core.backends.lab.oplog import OperationLog, authorize
from core.permissions import Op
from core.session import Session
from core.backends.lab.store import Txn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnextendRequest:
    tag: str  # any tag of the hierarchy, on any server
    server: str  # the server to remove it from


@dataclass(frozen=True)
class DeleteRequest:
    tag: str


@dataclass(frozen=True)
class OpStep:
    title: str
    rows: Callable[[Txn], None] | None = field(default=None, repr=False, compare=False)
    # file work after the commit (best effort, logged)
    after: Callable[[], None] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class OpPlan:
    name: str  # "unextend /data from lab2"
    hierarchy_id: int
    version: int
    steps: tuple[OpStep, ...]
    stop_resyncs: tuple[tuple[int, str], ...] = ()
    command: str = ""

    @property
    def titles(self) -> list[str]:
        return [s.title for s in self.steps]


def _hierarchy_of(
    cluster: Cluster, tag: str, field_name: str
) -> tuple[Hierarchy | None, list[Problem]]:
    text = (tag or "").strip()
    if not text:
        return None, [Problem(field_name, "required", "Give the tag of the hierarchy.")]
    inst = cluster.find_tag(text)
    if inst is None:
        return None, [Problem(field_name, "unknown_tag", f"There is no resource tagged {text!r}.")]
    return cluster.hierarchy(inst.hierarchy_id), []


def unextend_problems(cluster: Cluster, request: UnextendRequest) -> list[Problem]:
    h, problems = _hierarchy_of(cluster, request.tag, "tag")
    server = (request.server or "").strip()
    names = [s.name for s in cluster.servers]
    if not server:
        problems.append(Problem("server", "required", "Choose the server to unextend from."))
    elif server not in names:
        problems.append(
            Problem(
                "server",
                "unknown_server",
                f"Server {server!r} is not a server of this cluster ({', '.join(names)}).",
            )
        )
    elif h is not None:
        if server not in h.servers:
            problems.append(
                Problem("server", "not_extended", f"{h.root_tag} is not defined on {server}.")
            )
        elif server == h.in_service_server:
            problems.append(
                Problem(
                    "server",
                    "in_service_here",
                    f"{h.root_tag} is in service on {server}: unextend removes a standby. "
                    "Switch it over to another server first, or delete the hierarchy.",
                )
            )
        elif len(h.servers) == 1:
            problems.append(
                Problem(
                    "server",
                    "last_server",
                    f"{server} is the only server of {h.root_tag}; use Delete Resource "
                    "Hierarchy to remove it.",
                )
            )
    return problems


def plan_unextend(cluster: Cluster, layout: LabLayout, request: UnextendRequest) -> OpPlan:
    problems = unextend_problems(cluster, request)
    if problems:
        raise CheckFailed(problems)
    h, _ = _hierarchy_of(cluster, request.tag, "tag")
    assert h is not None
    server = request.server.strip()
    steps: list[OpStep] = []
    resyncs: list[tuple[int, str]] = []
    for m in h.mirrors:
        target = m.target(server)
        dk = h.instance(m.resource_id, server)
        source = h.instance(m.resource_id, m.source)
        if target is not None:
            resyncs.append((m.resource_id, server))
            source_bitmap = (
                layout.server_path(m.source, source.bitmap_file)
                if source is not None and source.bitmap_file
                else None
            )
            steps.append(
                OpStep(
                    f"Remove mirror target {server} from {h.tag_of(m.resource_id)}",
                    rows=_delete_target(m.resource_id, server),
                    after=_remove_section(source_bitmap, server),
                )
            )
        if dk is not None and dk.bitmap_file:
            steps.append(
                OpStep(
                    f"Remove bitmap file {dk.bitmap_file} on {server} (the volume "
                    f"{dk.volume} is kept)",
                    after=_delete_file(layout.server_path(server, dk.bitmap_file)),
                )
            )
    tags = ", ".join(r.tag for r in h.instances_on(server))
    steps.append(
        OpStep(f"Remove resources {tags} from {server}", rows=_delete_instances(h.id, server))
    )
    steps.append(
        OpStep(
            f"Remove {server} from the priorities of {h.root_tag}",
            rows=_delete_priority(h.id, server),
        )
    )
    return OpPlan(
        f"unextend {h.root_tag} from {server}",
        h.id,
        h.version,
        tuple(steps),
        tuple(resyncs),
        commands.unextend(request.tag, server),
    )


def delete_problems(cluster: Cluster, request: DeleteRequest) -> list[Problem]:
    _h, problems = _hierarchy_of(cluster, request.tag, "tag")
    return problems


def plan_delete(cluster: Cluster, layout: LabLayout, request: DeleteRequest) -> OpPlan:
    problems = delete_problems(cluster, request)
    if problems:
        raise CheckFailed(problems)
    h, _ = _hierarchy_of(cluster, request.tag, "tag")
    assert h is not None
    steps: list[OpStep] = []
    resyncs = [(m.resource_id, t.server) for m in h.mirrors for t in m.targets]
    if resyncs:
        steps.append(
            OpStep("Stop the mirrors of " + ", ".join(h.tag_of(m.resource_id) for m in h.mirrors))
        )
    for server in h.servers:
        for inst in h.instances_on(server):
            if inst.bitmap_file:
                steps.append(
                    OpStep(
                        f"Remove bitmap file {inst.bitmap_file} on {server} (the volume "
                        f"{inst.volume} is kept)",
                        after=_delete_file(layout.server_path(server, inst.bitmap_file)),
                    )
                )
    steps.append(
        OpStep(
            f"Remove {h.root_tag} and its resources from {', '.join(h.servers)}",
            rows=_delete_hierarchy(h.id),
        )
    )
    return OpPlan(
        f"delete {h.root_tag}",
        h.id,
        h.version,
        tuple(steps),
        tuple(resyncs),
        commands.delete(request.tag),
    )


def execute(
    backend: LabBackend,
    op_plan: OpPlan,
    session: Session,
    *,
    hub: EventHub | None = None,
    on_step: Callable[[int, int, str, str], None] | None = None,
) -> str:
    """Run an unextend or delete plan; returns the result message."""
    verb = op_plan.name.split(" ", 1)[0].capitalize()
    store = backend.store
    op = Op.DELETE_HIERARCHY if verb == "Delete" else Op.UNEXTEND_HIERARCHY
    authorize(store, session, op, op_plan.name, op_plan.command)
    out = OperationLog(op_plan.name, hub, session, op_plan.command)
    home = store.home
    total = len(op_plan.steps)
    out.say("INFO", f"{verb}: {op_plan.name.split(' ', 1)[1]} ({total} steps)")
    for rid, target in op_plan.stop_resyncs:
        if not mirrors.stop_resync(home, rid, target):
            raise OperationError(
                f"the resync to {target} did not stop; try again", step="stop the resync"
            )
    current = -1
    try:
        with store.transaction() as txn:
            txn.claim(op_plan.hierarchy_id, op_plan.version)
            for current, step in enumerate(op_plan.steps):
                if on_step:
                    on_step(current, total, step.title, "running")
                if step.rows is not None:
                    step.rows(txn)
            out.flush(txn)
    except BaseException as exc:
        title = op_plan.steps[current].title if current >= 0 else "before the first step"
        out.say("ERROR", f"Step failed: {title}: {exc}. Nothing was changed.")
        out.finish(store, ok=False, message=str(exc))
        mirrors.resume_resyncs(store)  # what was stopped goes on
        if isinstance(exc, LkError) or not isinstance(exc, Exception):
            raise
        raise OperationError(str(exc), step=title) from exc
    left = []
    for index, step in enumerate(op_plan.steps):
        status = "done"
        if step.after is not None:
            try:
                step.after()
            except OSError as exc:
                status = f"not done, left in place ({exc.strerror or exc})"
                left.append(step.title)
        out.say(
            "INFO" if status == "done" else "WARNING",
            f"[{index + 1}/{total}] {step.title}: {status}",
        )
        if on_step:
            on_step(index, total, step.title, "done" if status == "done" else "failed")
    message = f"{verb} done: {op_plan.name.split(' ', 1)[1]}."
    if left:
        message += f" Left in place (remove by hand if unwanted): {'; '.join(left)}."
    out.say("INFO", message)
    out.finish(store, ok=True, message=message)
    return message


def _delete_target(rid: int, server: str) -> Callable[[Txn], None]:
    return lambda txn: txn.delete_mirror_target(rid, server)


def _delete_instances(hid: int, server: str) -> Callable[[Txn], None]:
    return lambda txn: txn.delete_instances(hid, server)


def _delete_priority(hid: int, server: str) -> Callable[[Txn], None]:
    return lambda txn: txn.delete_priority(hid, server)


def _delete_hierarchy(hid: int) -> Callable[[Txn], None]:
    return lambda txn: txn.delete_hierarchy(hid)


def _remove_section(path: Path | None, target: str) -> Callable[[], None] | None:
    if path is None:
        return None
    return lambda: mirrors.remove_bitmap_target(path, target)


def _delete_file(path: Path) -> Callable[[], None]:
    return lambda: path.unlink(missing_ok=True)
