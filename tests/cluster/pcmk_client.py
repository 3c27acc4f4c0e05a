"""A console somewhere else: run by the cluster tests in a namespace of their own on the
lab's switch (or in a node), it connects to a cluster as LK Console would there and prints
what happened as one JSON object.

    python -m tests.cluster.pcmk_client SCENARIO SPEC [ADDRESS]

``LKCONSOLE_HOME`` (and ``LKCONSOLE_SSH_IDENTITY``) come from the environment.
Scenarios: ``connect`` (connect, or say why not), ``trust`` (trust an unknown host key
first, as a user answering yes would), ``use`` (connect, then create an IP hierarchy at
ADDRESS, see a change made behind the console's back through the watch, delete it),
``create`` (trust, then try to create an IP hierarchy at ADDRESS as the session's user).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.backends.pacemaker import HostKeyUnknown, connect, trust_host
from core.errors import LkError
from core.events import ClusterChanged, EventHub
from core.model import ResourceKind, SwitchbackType
from core.permissions import Op
from core.plan import CreateResource, DeleteHierarchy, Plan


def _use(backend: Any, address: str, result: dict[str, Any]) -> None:
    session = backend.local_session()
    create = Plan(
        Op.CREATE_HIERARCHY,
        "create ssh-ip",
        "lkctl create ip ssh-ip",
        (
            CreateResource(
                "ip", backend.runner.node, ResourceKind.IP, "ssh-ip",
                (("address", f"{address}/24"), ("interface", "eth0")),
                SwitchbackType.INTELLIGENT,
            ),
        ),
    )  # fmt: skip
    made = backend.apply(create, session)
    cluster = backend.snapshot()
    h = cluster.hierarchy(made.hierarchy_id)
    result["created"] = {"in_service_on": h.in_service_server if h else None}
    hub = EventHub()
    seen: list[tuple[float, Any]] = []
    hub.subscribe(lambda e: seen.append((time.monotonic(), e)), ClusterChanged)
    watch = backend.watch(hub)
    pause = threading.Event()
    deadline = time.monotonic() + 20
    while not seen and time.monotonic() < deadline:
        pause.wait(0.02)
    before = len(seen)
    began = time.monotonic()
    backend.runner.run(
        ["crm_attribute", "--node", backend.runner.node, "--name", "standby", "--update", "on"]
    )
    while len(seen) == before and time.monotonic() < began + 20:
        pause.wait(0.01)
    if len(seen) > before:
        latest = seen[-1][1].cluster
        result["watch"] = {
            "seconds": seen[-1][0] - began,
            "states": {s.name: s.state.name for s in latest.servers},
        }
    backend.runner.run(
        ["crm_attribute", "--node", backend.runner.node, "--name", "standby", "--delete"]
    )
    watch.stop()
    deadline = time.monotonic() + 30  # back in service there once the standby is over
    h = backend.snapshot().hierarchy(made.hierarchy_id)
    while h is not None and h.in_service_server is None and time.monotonic() < deadline:
        pause.wait(0.1)
        h = backend.snapshot().hierarchy(made.hierarchy_id)
    if h is not None:
        backend.apply(
            Plan(
                Op.DELETE_HIERARCHY,
                "delete ssh-ip",
                "lkctl delete ssh-ip",
                (DeleteHierarchy(h.id, h.root_tag, h.servers),),
                hierarchy_id=h.id,
                version=h.version,
            ),
            session,
        )
    result["deleted"] = backend.snapshot().hierarchy(made.hierarchy_id) is None


def _create(backend: Any, address: str, result: dict[str, Any]) -> None:
    """Try to create an IP hierarchy as the session's user (and delete it if made)."""
    step = CreateResource(
        "ip", backend.runner.node, ResourceKind.IP, "ssh-role-ip",
        (("address", f"{address}/24"), ("interface", "eth0")), SwitchbackType.INTELLIGENT,
    )  # fmt: skip
    session = backend.local_session()
    try:
        made = backend.apply(Plan(Op.CREATE_HIERARCHY, "create", "lkctl create", (step,)), session)
    except LkError as exc:
        result["create"] = {"type": type(exc).__name__, "message": str(exc)}
        return
    result["create"] = {"made": made.hierarchy_id}
    h = backend.snapshot().hierarchy(made.hierarchy_id)
    if h is not None:
        delete = DeleteHierarchy(h.id, h.root_tag, h.servers)
        backend.apply(
            Plan(Op.DELETE_HIERARCHY, "delete", "lkctl delete", (delete,), h.id, h.version),
            session,
        )


def main(argv: list[str]) -> int:
    scenario, spec = argv[0], argv[1]
    home = Path(os.environ["LKCONSOLE_HOME"])
    result: dict[str, Any] = {}
    try:
        try:
            backend = connect(spec, home=home)
        except HostKeyUnknown as unknown:
            result["unknown"] = {
                "message": str(unknown),
                "fingerprints": [k.fingerprint for k in unknown.keys],
            }
            if scenario == "connect":
                raise
            trust_host(home, unknown)
            backend = connect(spec, home=home)
        try:
            session = backend.local_session()
            cluster = backend.snapshot()
            result["connected"] = {
                "name": backend.name,
                "node": backend.runner.node,
                "user": session.user,
                "role": session.role.name,
                "servers": {s.name: s.state.name for s in cluster.servers},
            }
            if scenario == "use":
                _use(backend, argv[2], result)
            elif scenario == "create":
                _create(backend, argv[2], result)
        finally:
            backend.close()
    except LkError as exc:
        result["error"] = {"type": type(exc).__name__, "message": str(exc)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
