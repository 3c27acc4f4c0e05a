"""The mirror menu of a DataKeeper resource on a Pacemaker cluster (its capabilities, a
snapshot read from what crm_mon and the CIB said): every mirror action is there, with
the same rules as on the lab; Resize Mirror says the hierarchy goes out of service for it,
and is greyed out with the reason where it cannot run."""

from __future__ import annotations

import dataclasses

import pytest

from core import availability as av
from core.availability import Connection, Selection
from core.capabilities import DEPENDENCIES, FILESYSTEM_GROW, MIRROR_RESIZE, WHAT_IF
from core.model import Cluster, MirrorState, ResourceState
from tests.core.backends.pacemaker_fixtures import cluster_of

PACEMAKER = Connection(
    cluster_name="lkconsole-lab",
    capabilities=frozenset({WHAT_IF, DEPENDENCIES, MIRROR_RESIZE, FILESYSTEM_GROW}),
)


def _dk(cluster: Cluster, server: str | None = None) -> Selection:
    r = cluster.find_tag("datarep-data")
    assert r is not None
    return Selection(server=server, hierarchy_id=r.hierarchy_id, resource_id=r.resource_id)


def _menu(cluster: Cluster, selection: Selection, conn: Connection = PACEMAKER) -> dict[str, bool]:
    shown = av.availability(cluster, selection, conn)
    return {name: shown[name].enabled for name in (*av.MIRROR_ACTIONS, av.RESIZE_MIRROR)}


def test_an_in_sync_mirror_offers_every_action_and_resize_out_of_service() -> None:
    c = cluster_of("mirror_in_sync")
    assert _menu(c, _dk(c, "lab2")) == {
        av.PAUSE_MIRROR: True, av.RESUME_MIRROR: False, av.FULL_RESYNC: True,
        av.FORCE_ONLINE: False, av.SPEED_LIMIT: True, av.VERIFY_MIRROR: True,
        av.RESIZE_MIRROR: True,
    }  # fmt: skip
    assert av.resize_mirror(c, _dk(c), PACEMAKER).reason == (
        "Grow datarep-data on lab1, lab2 (the targets first, then the source); the new "
        "space is resynced; /data is out of service meanwhile."
    )
    without = dataclasses.replace(PACEMAKER, capabilities=frozenset({WHAT_IF, DEPENDENCIES}))
    assert av.resize_mirror(c, _dk(c), without).reason == (
        "Resize Mirror is not available on this cluster yet: its backend cannot grow "
        "datarep-data's volume on every server under a running mirror (the folder lab can)."
    )


def test_resize_waits_for_the_hierarchy_in_service_on_its_source() -> None:
    c = cluster_of("mirror_in_sync")
    [h] = c.hierarchies
    out = dataclasses.replace(
        c, hierarchies=(dataclasses.replace(h, resources=tuple(
            dataclasses.replace(r, state=ResourceState.OSU) for r in h.resources)),)
    )  # fmt: skip
    shown = av.resize_mirror(out, _dk(out), PACEMAKER)
    assert not shown.enabled
    assert shown.reason == (
        "/data is not in service on lab1: bring it in service first (the mirror grows from "
        "its source)."
    )


def _with_target(c: Cluster, **changes: object) -> Cluster:
    [h] = c.hierarchies
    [m] = h.mirrors
    t = dataclasses.replace(m.targets[0], **changes)  # type: ignore[arg-type]
    m2 = dataclasses.replace(m, targets=(t,))
    return dataclasses.replace(c, hierarchies=(dataclasses.replace(h, mirrors=(m2,)),))


@pytest.mark.parametrize(
    ("state", "reason", "enabled"),
    [
        (MirrorState.OUT_OF_SYNC, "paused by the administrator",
         {av.PAUSE_MIRROR: False, av.RESUME_MIRROR: True, av.VERIFY_MIRROR: True}),
        (MirrorState.RESYNCING, "",
         {av.PAUSE_MIRROR: True, av.RESUME_MIRROR: False, av.VERIFY_MIRROR: False}),
        (MirrorState.WAIT_FOR_PREVIOUS_SOURCE, "its copy may be stale",
         {av.RESUME_MIRROR: False, av.FULL_RESYNC: False, av.FORCE_ONLINE: True}),
    ],
)  # fmt: skip
def test_the_target_state_decides_the_menu_as_on_the_lab(
    state: MirrorState, reason: str, enabled: dict[str, bool]
) -> None:
    c = _with_target(cluster_of("mirror_in_sync"), state=state, reason=reason)
    menu = _menu(c, _dk(c, "lab2"))
    assert {k: menu[k] for k in enabled} == enabled
    assert menu[av.RESIZE_MIRROR] is (state is not MirrorState.WAIT_FOR_PREVIOUS_SOURCE)
