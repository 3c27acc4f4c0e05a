"""What lkctl prints: exit codes, ``--json``, the status as text and as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from core.model import Cluster, Hierarchy
from core.status import cell

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE


def print_json(out: TextIO, data: object) -> None:
    """What --json prints: indented JSON and a final newline."""
    json.dump(data, out, indent=2)
    out.write("\n")


def print_lines(args: argparse.Namespace, out: TextIO, lines: list[str]) -> int:
    if getattr(args, "json", False):
        print_json(out, {"ok": True, "steps": lines})
    else:
        for line in lines:
            print(line, file=out)
    return EXIT_OK


def table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Rows as left-aligned columns (the first row is the heading)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]


def status_json(cluster: Cluster, kind: str = "lab") -> dict[str, Any]:
    return {
        "cluster": kind,
        "servers": [{"name": s.name, "state": s.state.name} for s in cluster.servers],
        "hierarchies": [hierarchy_json(h, cluster) for h in cluster.hierarchies],
    }


def hierarchy_json(h: Hierarchy | None, cluster: Cluster) -> dict[str, Any]:
    if h is None:
        return {}
    return {
        "id": h.id,
        "root": h.root_tag,
        "switchback": h.switchback.value,
        "version": h.version,
        "in_service_on": h.in_service_server,
        "priorities": {e.server: e.priority for e in h.equivalencies},
        "resources": [_resource_json(h, rid, depth, cluster) for rid, depth in h.walk()],
        "mirrors": [
            {
                "tag": h.tag_of(m.resource_id),
                "source": m.source,
                "volume_size": m.volume_size,
                "chunk_size": m.chunk_size,
                "speed_limit_kbps": m.speed_limit_kbps,
                "asynchronous": m.asynchronous,
                "targets": [
                    {
                        "server": t.server,
                        "state": t.state.name,
                        "percent": t.percent,
                        "reason": t.reason,
                        "asynchronous": m.is_asynchronous(t.server),
                    }
                    for t in m.targets
                ],
            }
            for m in h.mirrors
        ],
    }


def _resource_json(h: Hierarchy, rid: int, depth: int, cluster: Cluster) -> dict[str, Any]:
    states: dict[str, Any] = {}
    for server in cluster.servers:
        inst = h.instance(rid, server.name)
        c = cell(h, rid, server.name)
        if inst is None or c is None:
            continue
        entry: dict[str, Any] = {"tag": inst.tag, "state": inst.state.name, "text": c.text}
        if c.mirror_state is not None:
            entry["mirror_state"] = c.mirror_state.name
        if inst.mount_point:
            entry["mount_point"] = inst.mount_point
        if inst.volume:
            entry["volume"] = inst.volume
            entry["bitmap_file"] = inst.bitmap_file
        if inst.settings:  # an IP address's, an application's (core.model.Resource.settings)
            entry["settings"] = dict(inst.settings)
        states[server.name] = entry
    return {
        "id": rid,
        "tag": h.tag_of(rid),
        "kind": h.kind_of(rid).value,
        "depth": depth,
        "parent": h.parent(rid),
        "status": h.status(rid).name,
        "servers": states,
    }


def status_text(cluster: Cluster, title: str = "Cluster: lab (embedded)") -> str:
    lines = [title, "", "SERVER    STATE"]
    lines += [f"{s.name:<9} {s.state.value}" for s in cluster.servers]
    names = [s.name for s in cluster.servers]
    for h in cluster.hierarchies:
        prios = ", ".join(f"{e.server}={e.priority}" for e in h.equivalencies)
        where = h.in_service_server or "nowhere"
        lines += [
            "",
            f"Hierarchy {h.root_tag}  (in service on {where}; switchback {h.switchback.value}; "
            f"priorities {prios})",
        ]
        rows = [["TAG", "KIND", *names]]
        for rid, depth in h.walk():
            row = ["  " * depth + h.tag_of(rid), h.kind_of(rid).value]
            for name in names:
                c = cell(h, rid, name)
                inst = h.instance(rid, name)
                row.append("-" if c is None or inst is None else f"{inst.state.name} {c.text}")
            rows.append(row)
        lines += table(rows)
    if not cluster.hierarchies:
        lines += ["", "No resource hierarchies."]
    return "\n".join(lines) + "\n"
