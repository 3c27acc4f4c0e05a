"""What the properties panel says about a server, a resource, a cell and a mirror."""

from __future__ import annotations

import dataclasses

import pytest

from core.availability import Selection
from core.backends.lab import LabBackend
from core.model import Cluster, MirrorState
from core.properties import NOT_CONNECTED, NOTHING, Properties, properties
from tests.gui import clusters as c


@pytest.fixture
def lab() -> Cluster:
    backend = LabBackend()
    try:
        return backend.snapshot()
    finally:
        backend.close()


def rows(props: Properties, section: str) -> dict[str, str]:
    found = next(s for s in props.sections if s.title == section)
    return {r.label: r.value for r in found.rows}


def select(cluster: Cluster, tag: str, server: str | None = None) -> Selection:
    r = cluster.find_tag(tag)
    assert r is not None
    return Selection(server=server, hierarchy_id=r.hierarchy_id, resource_id=r.resource_id)


def test_nothing_and_not_connected(lab: Cluster) -> None:
    assert properties(lab, Selection()) is NOTHING
    assert "column header" in NOTHING.hint
    assert properties(None, Selection(server="lab1")) is NOT_CONNECTED


def test_server(lab: Cluster) -> None:
    cluster = c.extended(lab, "lab2", done=c.part(64 << 20, 43))
    props = properties(cluster, Selection(server="lab2"))
    assert props.heading == "Server lab2" and props.icon == "server-alive"
    assert rows(props, "Server") == {
        "Name": "lab2",
        "State": "ALIVE",
        "Hierarchies in service": "—",
        "Standby hierarchies": "/data",
        "Shutdown Strategy": "switchover",
        "Failover Confirmation": "—",
    }
    assert rows(props, "Mirrors") == {
        "Mirror source of": "—",
        "Mirror target of": "datarep-data (Resyncing 43 %)",
    }
    assert rows(properties(cluster, Selection(server="lab1")), "Mirrors")["Mirror source of"] == (
        "datarep-data"
    )


def test_resource_with_its_mirror(lab: Cluster) -> None:
    size = lab.hierarchies[0].mirrors[0].volume_size
    cluster = c.extended(lab, "lab2", done=c.part(size, 43), rate=180e6, eta=120.0)
    props = properties(cluster, select(cluster, "datarep-data"))
    assert props.heading == "datarep-data" and props.icon == "node-warning"
    general = rows(props, "Resource")
    assert general["Kind"] == "DataKeeper (replicated volume)"
    assert general["Hierarchy"] == "/data (in service on lab1)"
    assert general["Overall state"] == "Warning"
    assert general["Needed by"] == "/data" and general["Depends on"] == "—"
    assert rows(props, "State per server") == {
        "lab1": "Source — Active (ISP)",
        "lab2": "Resyncing 43 % — Standby (OSU)",
    }
    assert rows(props, "Priorities (1 = preferred)") == {"lab1": "1", "lab2": "10"}
    mirror = rows(props, "Mirror")
    assert mirror["Source"] == "lab1" and mirror["Targets"] == "lab2"
    assert mirror["Chunk size"] == "64 KiB" and mirror["Volume size"] == "64 MiB"
    assert mirror["Source bitmap"] == "/opt/LifeKeeper/bitmap_datarep-data"
    assert mirror["Replication"] == "synchronous"
    target = rows(props, "Target lab2")
    assert target["Sync state"] == "Resyncing 43 %"
    assert target["Rate"] == "180 MB/s" and target["ETA"] == "2 min left"
    assert target["Progress"] == "43 % (28 MiB of 64 MiB)"
    assert target["Dirty chunks"].startswith("0 (")


def test_filesystem_resource(lab: Cluster) -> None:
    props = properties(lab, select(lab, "/data"))
    assert rows(props, "Settings") == {"Mount point": "/data", "File system type": "ext4"}
    assert rows(props, "Resource")["Depends on"] == "datarep-data"
    assert rows(props, "State per server") == {"lab1": "Active (ISP)"}
    assert "Mirror" not in [s.title for s in props.sections]


def test_cell(lab: Cluster) -> None:
    cluster = c.in_sync(c.extended(lab, "lab2"), "lab2")
    props = properties(cluster, select(cluster, "datarep-data", "lab2"))
    assert props.heading == "datarep-data on lab2" and props.icon == "state-target"
    general = rows(props, "Resource")
    assert general["State"] == "Standby (OSU)"
    assert general["Mirror"] == "Target"
    assert general["Priority"] == "10"
    assert [s.title for s in props.sections] == ["Resource", "Settings", "Mirror", "Target lab2"]
    assert rows(props, "Target lab2")["Target bitmap"] == "/opt/LifeKeeper/bitmap_datarep-data"
    empty = properties(cluster, select(cluster, "/data", "lab3"))
    assert rows(empty, "Resource")["State"] == "Not defined on lab3"


def test_no_bitmap_says_every_resync_is_full(lab: Cluster) -> None:
    cluster = c.extended(lab, "lab3", MirrorState.OUT_OF_SYNC)
    h = cluster.hierarchies[0]
    resources = tuple(
        dataclasses.replace(r, bitmap_file=None) if r.server == "lab3" else r for r in h.resources
    )
    cluster = c.replace_hierarchy(cluster, dataclasses.replace(h, resources=resources))
    props = properties(cluster, select(cluster, "datarep-data", "lab3"))
    target = rows(props, "Target lab3")
    assert target["Target bitmap"] == "None (every resync is a full resync)"
    assert target["Sync state"] == "Out of Sync"
