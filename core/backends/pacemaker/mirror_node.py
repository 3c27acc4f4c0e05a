"""The mirror operations' work on the nodes (:mod:`.mirror_ops`), through the backend's
runner: each request to the engine of the mirror's source (the node where its clone is
Promoted, as ``crm_mon`` says now), and Force Online's forcing of a waiting copy.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from core.backends.pacemaker import dk_names as names
from core.backends.pacemaker import status
from core.backends.pacemaker.mirror_ops import Forcing, NodeRequest
from core.backends.pacemaker.oplog import OperationLog
from core.errors import LkError, OperationError

Run = Callable[..., Any]  # PacemakerBackend._run
CRM_MON = ("crm_mon", "--one-shot", "--output-as=xml", "--include=failcounts,attributes")
PROMOTE_TIMEOUT = 120.0  # seconds for Pacemaker to promote a forced copy
POLL_S = 0.3


def promoted_on(run: Run, rid: str) -> tuple[str, ...]:
    """Where the clone of mirror ``rid`` is Promoted now."""
    crm_mon = status.parse_crm_mon(run(CRM_MON, what="crm_mon").stdout)
    view = status.resource_views(crm_mon.find("resources")).get(rid)
    return view.promoted_on if view is not None else ()


def send(run: Run, requests: Sequence[NodeRequest], out: OperationLog) -> None:
    """Each request to its mirror's source; what the engine answered, said."""
    sources: dict[str, tuple[str, ...]] = {}
    for req in requests:
        if req.rid not in sources:
            sources[req.rid] = promoted_on(run, req.rid)
        where = sources[req.rid]
        try:
            if not where:
                raise OperationError(
                    f"{req.tag} has no source running (its clone is not Promoted on any "
                    "node): the engine cannot be asked"
                )
            done = run(req.argv(), node=where[0], timeout=req.timeout + 30,
                       what=f"asking the source of {req.tag} on {where[0]} ({req.op})")  # fmt: skip
        except LkError as exc:  # failed, or the node went down meanwhile
            if req.needed:
                raise OperationError(str(exc), step=req.step) from exc
            out.say("WARNING", f"{exc}; the cluster's configuration has it: the source's "
                    "agent applies it at its next check")  # fmt: skip
            continue
        for line in answer_lines(req, json.loads(done.stdout or "{}"), where[0]):
            out.say("INFO", line)


def answer_lines(req: NodeRequest, answer: dict[str, Any], source: str) -> list[str]:
    """What the engine's answer means, in the console's words (a failed repair raises)."""
    if req.op != "verify":
        return [f"{req.tag}: {req.op.replace('_', ' ')} done by the source's engine on {source}"]
    differing = list(answer.get("differing") or [])
    count = int(answer.get("chunks_differing") or 0)
    shown = ", ".join(str(c) for c in differing[:10]) + (" …" if count > 10 else "")
    if answer.get("cancelled"):
        return [f"Verify of {req.tag} on {req.target} cancelled after "
                f"{answer.get('chunks_checked', 0)} chunks."]  # fmt: skip
    lines = [
        f"Verified {req.tag} on {req.target}: {answer.get('chunks_checked', 0)} chunks "
        f"checked, {count} differing" + (f" (chunks {shown})." if count else ".")
    ]
    if not count:
        return lines
    if not req.fields.get("repair"):
        lines.append(f"{req.target} is Out of Sync: resume it to copy those chunks again.")
        return lines
    still = list(answer.get("still_differing") or [])
    if answer.get("repaired") is not True or still:
        why = (
            f"{len(still)} of them still differ after the resync"
            if answer.get("repaired")
            else f"the resync did not finish ({answer.get('state', '?')}"
            f"{': ' + str(answer['reason']) if answer.get('reason') else ''})"
        )
        raise OperationError(f"Not repaired: {why}", step=req.step, committed=True)
    lines.append(
        f"Repaired {req.target}: {count} chunks copied again from the source, and read back equal."
    )
    return lines


def force(run: Run, forcings: Sequence[Forcing], out: OperationLog) -> None:
    """Each forced copy gets the promotion score (``lkdr-RID-forced`` kept for the agent);
    then Pacemaker promotes it: waited for."""
    for f in forcings:
        run(["crm_attribute", "--node", f.node, "--name", names.attribute(f.rid, "forced"),
             "--lifetime", "forever", "--update", "1"],
            what=f"forcing {f.tag} online on {f.node}")  # fmt: skip
        run(["crm_attribute", f"--promotion={f.rid}", "--node", f.node, "--lifetime", "reboot",
             "--update", str(names.PROMOTION_SCORE)],
            what=f"giving {f.node}'s copy of {f.tag} its promotion score")  # fmt: skip
        out.say("INFO", f"{f.tag}: {f.node}'s copy forced online (it may be stale)")
    pause = threading.Event()
    for f in forcings:
        deadline = time.monotonic() + PROMOTE_TIMEOUT
        while promoted_on(run, f.rid) != (f.node,):
            if time.monotonic() > deadline:
                raise OperationError(
                    f"Pacemaker did not make {f.node} the source of {f.tag} within "
                    f"{PROMOTE_TIMEOUT:g} s (see crm_mon); {f.node}'s copy stays forced",
                    committed=True,
                )
            pause.wait(POLL_S)
        out.say("INFO", f"{f.tag}: {f.node} is the source now (Pacemaker promoted it)")


__all__ = ["answer_lines", "force", "promoted_on", "send"]
