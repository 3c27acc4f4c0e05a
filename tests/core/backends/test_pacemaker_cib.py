"""cib.py: LifeKeeper's hierarchies read from and written to CIB XML, with no cluster."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.backends.pacemaker import cib
from core.backends.pacemaker.cib import Refused
from core.model import ResourceKind, SwitchbackType
from tests.core.backends.pacemaker_fixtures import cib_of

IP = (("address", "10.213.0.101/24"), ("interface", "eth0"))
APP = (("start", "touch /data/x"), ("stop", "rm -f /data/x"), ("monitor", "test -f /data/x"))


@given(st.text(min_size=1, max_size=60).filter(lambda t: "\x00" not in t))
def test_a_tag_maps_to_a_valid_xml_id_and_back(tag: str) -> None:
    xml_id = cib.tag_to_id(tag)
    assert cib.is_xml_id(xml_id)
    assert cib.id_to_tag(xml_id) == tag


def test_tags_that_are_ids_stay_as_they_are_and_others_are_escaped() -> None:
    assert cib.tag_to_id("web-ip") == "web-ip"
    assert cib.tag_to_id("/data") == "_2f_data"
    assert cib.tag_to_id("datarep_data") == "datarep__data"
    assert cib.tag_to_id("1st") == "_31_st"
    assert cib.id_to_tag("lab-fence") == "lab-fence"  # not made by us: the id is the tag
    assert cib.id_to_tag("a_b") == "a_b"
    with pytest.raises(Refused):
        cib.tag_to_id("")


def test_model_ids_are_stable_hashes_of_the_xml_ids() -> None:
    # blake2b of "hierarchy:<group id>" / "resource:<primitive id>", 31 bits: the same in
    # every process and every console (these values are part of the contract).
    assert cib.hierarchy_id("web-ip-hierarchy") == 119725133
    assert cib.resource_id("web-ip") == cib.stable_int("resource:web-ip")
    assert 0 < cib.stable_int("anything") < 2**31
    first = [(h.hierarchy_id, h.root.resource_id) for h in cib.hierarchies(cib_of("steady"))]
    again = [(h.hierarchy_id, h.root.resource_id) for h in cib.hierarchies(cib_of("failed"))]
    assert first == again[:2]


def test_hierarchies_are_groups_with_tags_priorities_and_switchback() -> None:
    found = {h.root.tag: h for h in cib.hierarchies(cib_of("steady"))}
    assert sorted(found) == ["/data/app", "web-ip"]  # the fence device is no hierarchy
    ip = found["web-ip"]
    assert ip.top_id == "web-ip-hierarchy" and ip.is_group
    assert ip.priorities == (("lab1", 1), ("lab2", 10))
    assert ip.switchback is SwitchbackType.INTELLIGENT
    assert not ip.stopped and ip.preferred is None
    assert ip.root.kind is ResourceKind.IP
    assert ip.root.settings == (("address", "10.213.0.100/24"), ("interface", "eth0"))
    app = found["/data/app"]
    assert app.root.xml_id == "_2f_data_2f_app"
    assert app.root.kind is ResourceKind.APP
    assert dict(app.root.settings)["monitor"] == "test -f /data/app.on"
    assert app.priorities == (("lab2", 1), ("lab1", 10), ("lab3", 20))


def test_out_of_service_is_target_role_stopped() -> None:
    found = {h.root.tag: h for h in cib.hierarchies(cib_of("stopped_standby"))}
    assert found["web-ip"].stopped
    assert not found["/data/app"].stopped


def test_the_version_follows_the_configuration_not_the_status() -> None:
    steady = {h.root.tag: h.version for h in cib.hierarchies(cib_of("steady"))}
    failed = {h.root.tag: h.version for h in cib.hierarchies(cib_of("failed"))}
    stopped = {h.root.tag: h.version for h in cib.hierarchies(cib_of("stopped_standby"))}
    assert steady["/data/app"] == failed["/data/app"]  # its monitor failed: status only
    assert steady["web-ip"] != stopped["web-ip"]  # taken out of service: configuration
    status_changed = cib_of("steady")
    status = status_changed.find("status")
    assert status is not None
    status_changed.remove(status)
    assert {h.root.tag: h.version for h in cib.hierarchies(status_changed)} == steady


def test_the_version_of_the_cib() -> None:
    version = cib.version(cib_of("steady"))
    assert version.admin_epoch == 0 and version.epoch > 0
    assert str(version) == f"0.{version.epoch}.{version.num_updates}"
    assert cib.version(cib_of("stopped_standby")) > version


def _new(c: ET.Element, tag: str = "new-ip", server: str = "lab2", **kw: object) -> str:
    settings = kw.pop("settings", IP)
    kind = kw.pop("kind", ResourceKind.IP)
    return cib.new_hierarchy(
        c,
        tag=tag,
        kind=kind,  # type: ignore[arg-type]
        settings=settings,  # type: ignore[arg-type]
        server=server,
        switchback=kw.pop("switchback", SwitchbackType.INTELLIGENT),  # type: ignore[arg-type]
    )


def test_a_new_ip_hierarchy_is_a_group_allowed_on_its_server_with_priority_1() -> None:
    original = cib_of("steady")
    work = cib.copy_of(original)
    top = _new(work)
    assert top == "new-ip-hierarchy"
    assert len(cib.hierarchies(original)) == 2  # the original is untouched
    h = next(h for h in cib.hierarchies(work) if h.top_id == top)
    assert h.priorities == (("lab2", 1),)
    assert h.scores == (("lab2", 999),)
    assert h.root.agent == cib.IP_AGENT
    assert dict(h.root.params) == {"ip": "10.213.0.101", "cidr_netmask": "24", "nic": "eth0"}
    assert dict(h.root.meta)[cib.TAG_META] == "new-ip"
    assert h.stickiness == cib.STICKINESS_INTELLIGENT
    primitive = work.find(".//primitive[@id='new-ip']")
    assert primitive is not None
    ops = {(o.get("name"), o.get("interval")) for o in primitive.iterfind("operations/op")}
    assert ("monitor", "10s") in ops
    configuration = work.find("configuration")
    assert configuration is not None
    ids = [e.get("id") for e in configuration.iter() if e.get("id")]
    assert len(ids) == len(set(ids))  # every id of the configuration is unique


def test_a_new_app_hierarchy_uses_the_projects_agent() -> None:
    work = cib_of("steady")
    top = _new(work, "/srv/app", "lab3", kind=ResourceKind.APP, settings=(*APP, ("restart", "yes")))
    h = next(h for h in cib.hierarchies(work) if h.top_id == top)
    assert h.root.agent == cib.APP_AGENT
    assert h.root.xml_id == "_2f_srv_2f_app"
    assert h.root.tag == "/srv/app"
    assert dict(h.root.settings) == {
        "start": "touch /data/x",
        "stop": "rm -f /data/x",
        "monitor": "test -f /data/x",
        "restart": "yes",
    }
    assert dict(h.root.meta)["migration-threshold"] == "2"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"tag": "web-ip"}, "tag web-ip is already used"),
        ({"server": "lab7"}, "lab7 is not a node of this cluster"),
        ({"settings": (("address", "10.213.0.300/24"),)}, "is not an IP address"),
        ({"settings": (("address", "x"), ("color", "red"))}, "color is not a setting"),
        ({"settings": (*IP[:1], ("interface", "eth 0"))}, "not a network interface name"),
        ({"kind": ResourceKind.APP, "settings": (("stop", "x"),)}, "needs a start command"),
        ({"kind": ResourceKind.APP, "settings": (*APP, ("restart", "soon"))}, "restart mode"),
        ({"kind": ResourceKind.FILESYSTEM, "settings": ()}, "cannot be created"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_added(kw: dict[str, object], message: str) -> None:
    work = cib_of("steady")
    before = cib.to_text(work)
    with pytest.raises(Refused, match=message):
        _new(work, **kw)  # type: ignore[arg-type]
    assert cib.to_text(work) == before


def test_a_symmetric_cluster_is_refused_with_what_to_do() -> None:
    work = cib_of("steady")
    for nvpair in work.iter("nvpair"):
        if nvpair.get("name") == "symmetric-cluster":
            nvpair.set("value", "true")
    with pytest.raises(Refused, match="symmetric-cluster=false"):
        _new(work)


def test_priorities_switchback_service_and_preference() -> None:
    work = cib_of("steady")
    top = "web-ip-hierarchy"
    cib.set_priority(work, top, "lab3", 20)
    cib.set_priority(work, top, "lab2", 5)
    h = next(h for h in cib.hierarchies(work) if h.top_id == top)
    assert h.priorities == (("lab1", 1), ("lab2", 5), ("lab3", 20))
    assert len(work.findall(".//rsc_location[@rsc='web-ip-hierarchy'][@node='lab2']")) == 1
    with pytest.raises(Refused, match="out of range"):
        cib.set_priority(work, top, "lab3", 1000)
    assert cib.remove_priority(work, top, "lab3")
    assert not cib.remove_priority(work, top, "lab3")
    cib.set_switchback(work, top, SwitchbackType.AUTOMATIC)
    cib.set_stopped(work, top, True)
    cib.set_preference(work, top, "lab2")
    h = next(h for h in cib.hierarchies(work) if h.top_id == top)
    assert h.switchback is SwitchbackType.AUTOMATIC
    assert h.stopped and h.preferred == "lab2"
    assert h.priorities == (("lab1", 1), ("lab2", 5))  # the preference is no priority
    cib.set_stopped(work, top, False)
    cib.set_preference(work, top, None)
    h = next(h for h in cib.hierarchies(work) if h.top_id == top)
    assert not h.stopped and h.preferred is None


def test_crm_resource_move_constraints_are_not_priorities() -> None:
    work = cib_of("steady")
    constraints = work.find("configuration/constraints")
    assert constraints is not None
    ET.SubElement(
        constraints,
        "rsc_location",
        {"id": "cli-prefer-web-ip-hierarchy", "rsc": "web-ip-hierarchy", "node": "lab2",
         "score": "INFINITY"},
    )  # fmt: skip
    h = next(h for h in cib.hierarchies(work) if h.top_id == "web-ip-hierarchy")
    assert h.priorities == (("lab1", 1), ("lab2", 10))


def test_removing_a_hierarchy_removes_its_constraints() -> None:
    work = cib_of("steady")
    cib.remove_hierarchy(work, "web-ip-hierarchy")
    assert [h.root.tag for h in cib.hierarchies(work)] == ["/data/app"]
    assert work.find(".//rsc_location[@rsc='web-ip-hierarchy']") is None
    assert work.find(".//rsc_location[@rsc='lab-fence']") is not None
    with pytest.raises(Refused, match="no resource web-ip-hierarchy"):
        cib.remove_hierarchy(work, "web-ip-hierarchy")


def test_a_lone_primitive_made_with_crm_is_a_hierarchy_of_one() -> None:
    work = cib_of("steady")
    resources = work.find("configuration/resources")
    assert resources is not None
    ET.SubElement(
        resources, "primitive", {"id": "dummy", "class": "ocf", "provider": "pacemaker",
                                 "type": "Dummy"},
    )  # fmt: skip
    h = next(h for h in cib.hierarchies(work) if h.top_id == "dummy")
    assert not h.is_group and h.root.tag == "dummy"
    assert h.root.kind is ResourceKind.APP
    assert h.root.settings == (("agent", "ocf:pacemaker:Dummy"),)
    assert h.priorities == ()  # opt-in and no constraint: it runs nowhere


def test_not_a_cib() -> None:
    with pytest.raises(cib.CibError, match="not XML"):
        cib.parse("<cib")
    with pytest.raises(cib.CibError, match="not a CIB"):
        cib.parse("<pacemaker-result/>")


def test_scores_and_priorities() -> None:
    assert cib.parse_score("INFINITY") == cib.INFINITY
    assert cib.parse_score("-INFINITY") == -cib.INFINITY
    assert cib.parse_score("12") == 12
    assert cib.priority_to_score(1) == 999
    assert cib.score_to_priority(999) == 1
    assert cib.score_to_priority(cib.INFINITY) == 1
    assert cib.score_to_priority(0) == 999
