"""The node work of DataKeeper operations (``operations_dk.NodeWork``), done through the
backend's runner with the agent's admin commands (``dk_admin.py``) before the CIB change
is pushed: the target's volume (made when missing; one of another size is refused) and
the mirror's key, carried from the source to the target in this process's memory only
(``key-get``'s output is never logged, ``key-put`` reads it on standard input).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from core.backends.pacemaker.dk_names import AGENT_IN_NODE
from core.backends.pacemaker.operations_dk import NodeWork
from core.backends.pacemaker.oplog import OperationLog
from core.errors import OperationError

Run = Callable[..., Any]  # PacemakerBackend._run


def _admin(*args: str) -> list[str]:
    return [AGENT_IN_NODE, "admin", *args]


def _volume(run: Run, work: NodeWork, out: OperationLog) -> None:
    listed = run(_admin("volumes"), node=work.node, what=f"listing the volumes of {work.node}")
    have = next((v for v in json.loads(listed.stdout) if v.get("path") == work.path), None)
    if have is None:
        run(_admin("make-disk", work.path, str(work.size)), node=work.node,
            what=f"creating {work.path} on {work.node}")  # fmt: skip
        out.say("INFO", f"{work.path} created on {work.node} ({work.size} bytes)")
    elif int(have.get("size", 0)) != work.size:
        raise OperationError(
            f"{work.path} on {work.node} has {have.get('size')} bytes, the mirror {work.size}: "
            "choose another volume or remove that one"
        )
    else:
        out.say("INFO", f"{work.path} on {work.node} is kept (its content will be overwritten)")


def _key(run: Run, work: NodeWork, out: OperationLog) -> None:
    key = run(_admin("key-get", work.rid), node=work.source,
              what=f"reading the mirror's key on {work.source}")  # fmt: skip
    run(_admin("key-put", work.rid), node=work.node, input_text=key.stdout,
        what=f"giving {work.node} the mirror's key")  # fmt: skip
    out.say("INFO", f"{work.node} has the mirror's key of {work.rid} (mode 0600)")


def do(run: Run, works: Sequence[NodeWork], out: OperationLog) -> None:
    for work in works:
        if work.kind == "volume":
            _volume(run, work, out)
        elif work.kind == "key":
            _key(run, work, out)
        else:
            raise OperationError(f"unknown node work {work.kind}")


__all__ = ["do"]
