"""IP and Generic Application resources on the folder lab: rules, kits, lkctl."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.backends.lab import LabBackend, kits
from core.backends.pacemaker.backend import PacemakerBackend
from core.errors import CheckFailed, OperationError
from core.facts import Facts, NetworkInfo
from core.model import ResourceKind, ResourceState
from core.operations import create_kinds, dependency, extend, service
from core.rules import kinds as rules
from core.rules.dependency import DependencyRequest
from core.rules.kinds import ResourceRequest
from tests.core.labtools import settled_digest
from tests.helpers import db_tables, local_administrator, run_lkctl

ADMIN = local_administrator()


@pytest.fixture
def lab(hermetic_env: Path) -> Iterator[LabBackend]:
    backend = LabBackend()
    yield backend
    backend.close()


def _ip(lab: LabBackend, **changes: str) -> ResourceRequest:
    return dataclasses.replace(create_kinds.defaults(lab, rules.IP).request, **changes)


def _app(tag: str = "web", server: str = "lab1", **changes: str) -> ResourceRequest:
    request = ResourceRequest(
        rules.APP,
        server,
        tag,
        start=f"echo started >> {tag}.starts; touch {tag}.run",
        stop=f"rm -f {tag}.run",
        monitor=f"test -f {tag}.run",
    )
    return dataclasses.replace(request, **changes)


def _up(lab: LabBackend) -> dict[str, list[str]]:
    return {s: kits.addresses_up(lab.layout, s) for s in ("lab1", "lab2", "lab3")}


def test_the_lab_proposes_the_next_free_address_of_its_service_network(lab: LabBackend) -> None:
    d = create_kinds.defaults(lab, rules.IP)
    assert (d.request.address, d.request.interface) == ("10.214.0.100/24", "eth0")
    assert d.request.tag == "ip-10.214.0.100" and "service network" in d.note
    create_kinds.create(lab, d.request, ADMIN)
    again = create_kinds.defaults(lab, rules.IP, server="lab2")
    assert again.request.address == "10.214.0.101/24" and again.request.server == "lab2"


def test_a_cluster_that_proposes_nothing_leaves_the_fields_to_fill(lab: LabBackend) -> None:
    cluster = lab.snapshot()
    facts = Facts(networks={s.name: NetworkInfo(s.name) for s in cluster.servers})
    d = rules.defaults(cluster, facts, rules.IP, "lab1")
    assert (d.request.address, d.request.interface, d.request.tag) == ("", "", "")
    assert "proposes no address" in d.note
    fields = {p.field for p in rules.check_request(cluster, facts, d.request)}
    assert {"address", "interface", "tag"} <= fields


def test_the_pacemaker_lab_proposes_its_bridge_subnet_and_a_real_cluster_nothing() -> None:
    lab_answer = PacemakerBackend.network(SimpleNamespace(lab_home=Path("/x")), "lab2")  # type: ignore[arg-type]
    assert lab_answer.addresses == ("10.213.0.12",) and lab_answer.interface == "eth0"
    assert (lab_answer.pool_first, lab_answer.pool_last) == ("10.213.0.100", "10.213.0.254")
    real = PacemakerBackend.network(SimpleNamespace(lab_home=None), "node1")  # type: ignore[arg-type]
    assert not real.proposes and real.interface is None


IP_BAD = [
    ({"address": ""}, "address", "address_empty"),
    ({"address": "10.214.0.300/24"}, "address", "not_an_address"),
    ({"address": "web server"}, "address", "not_an_address"),
    ({"address": "10.214.0.100"}, "address", "no_prefix"),
    ({"address": "127.0.0.5/8"}, "address", "not_unicast"),
    ({"address": "224.0.0.9/24"}, "address", "not_unicast"),
    ({"address": "10.214.0.0/24"}, "address", "network_address"),
    ({"address": "10.214.0.255/24"}, "address", "network_address"),
    ({"address": "10.214.0.12/24"}, "address", "server_address"),
    ({"address": "10.214.0.50/24"}, "address", "already_protected"),
    ({"interface": ""}, "interface", "interface_empty"),
    ({"interface": "eth 0"}, "interface", "bad_interface"),
    ({"interface": "a-very-long-interface"}, "interface", "bad_interface"),
    ({"tag": ""}, "tag", "tag_empty"),
    ({"tag": "my ip"}, "tag", "tag_bad_characters"),
    ({"tag": "/data"}, "tag", "tag_in_use"),
    ({"server": "lab9"}, "server", "unknown_server"),
    ({"switchback_type": "sometimes"}, "switchback_type", "unknown_switchback"),
]


@pytest.mark.parametrize(("changes", "field", "code"), IP_BAD)
def test_a_bad_ip_request_names_its_field_and_changes_nothing(
    lab: LabBackend, changes: dict[str, str], field: str, code: str
) -> None:
    create_kinds.create(lab, _ip(lab, address="10.214.0.50/24", tag="taken-ip"), ADMIN)
    request = _ip(lab, **changes)
    before, up = settled_digest(lab), _up(lab)
    with pytest.raises(CheckFailed) as failed:
        create_kinds.create(lab, request, ADMIN)
    assert [(p.field, p.code) for p in failed.value.problems] == [(field, code)]
    message = failed.value.problems[0].message
    assert rules.LABELS[field] in message or field == "server"
    assert settled_digest(lab) == before and _up(lab) == up


APP_BAD = [
    ({"start": ""}, "start", "start_empty"),
    ({"start": "   "}, "start", "start_empty"),
    ({"stop": "rm -f a\nrm -f b"}, "stop", "control_characters"),
    ({"monitor": "test -f x\x00"}, "monitor", "control_characters"),
    ({"start": "x" * 5000}, "start", "too_long"),
    ({"restart_mode": "sometimes"}, "restart_mode", "unknown_restart_mode"),
    ({"restart_mode": "11"}, "restart_mode", "unknown_restart_mode"),
    ({"tag": "datarep-data"}, "tag", "tag_in_use"),
]


@pytest.mark.parametrize(("changes", "field", "code"), APP_BAD)
def test_a_bad_app_request_names_its_field_and_changes_nothing(
    lab: LabBackend, changes: dict[str, str], field: str, code: str
) -> None:
    before = settled_digest(lab)
    with pytest.raises(CheckFailed) as failed:
        create_kinds.create(lab, _app(**changes), ADMIN)
    assert [(p.field, p.code) for p in failed.value.problems] == [(field, code)]
    assert rules.LABELS[field] in failed.value.problems[0].message
    assert settled_digest(lab) == before
    assert not list(lab.layout.server_root("lab1").glob("web.*"))


def test_an_ip_is_up_exactly_where_it_is_in_service(lab: LabBackend) -> None:
    result = create_kinds.create(lab, _ip(lab), ADMIN)
    up = lab.layout.server_path("lab1", "/run/lkconsole/ip/10.214.0.100")
    assert up.read_text() == "10.214.0.100/24 dev eth0\n"
    assert up.stat().st_mode & 0o777 == 0o600
    h = lab.store.hierarchy(result.hierarchy_id)
    assert h is not None and h.kind_of(h.root_id) is ResourceKind.IP
    service.out_of_service(lab, "ip-10.214.0.100", ADMIN)
    assert _up(lab) == {"lab1": [], "lab2": [], "lab3": []}
    service.in_service(lab, "ip-10.214.0.100", "lab1", ADMIN)
    assert _up(lab)["lab1"] == ["10.214.0.100"]
    extend.extend(lab, extend.defaults(lab, tag="ip-10.214.0.100").request, ADMIN)
    service.switchover(lab, "ip-10.214.0.100", "lab2", ADMIN)
    assert _up(lab) == {"lab1": [], "lab2": ["10.214.0.100"], "lab3": []}
    lab.stop_server("lab2", ADMIN)
    assert _up(lab) == {"lab1": ["10.214.0.100"], "lab2": [], "lab3": []}
    r = lab.snapshot().find_tag("ip-10.214.0.100", "lab2")
    assert r is not None and r.setting("address") == "10.214.0.100/24"


def test_extend_gives_an_ip_the_target_s_own_interface_and_refuses_its_own_address(
    lab: LabBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_kinds.create(lab, _ip(lab), ADMIN)
    lab_network = lab.network

    def lab2_is_another_machine(server: str) -> NetworkInfo:
        found = lab_network(server)
        if server != "lab2":
            return found
        return dataclasses.replace(found, addresses=("10.214.0.100/24",), interface="ens4")

    monkeypatch.setattr(lab, "network", lab2_is_another_machine)
    before = settled_digest(lab)
    request = extend.defaults(lab, tag="ip-10.214.0.100", target_server="lab2").request
    with pytest.raises(CheckFailed) as refused:
        extend.extend(lab, request, ADMIN)
    [problem] = refused.value.problems
    assert (problem.field, problem.code) == ("target_server", "address_of_target")
    assert problem.message == (
        "ip-10.214.0.100 protects 10.214.0.100, which is lab2's own address; choose another target."
    )
    assert settled_digest(lab) == before

    def lab2_names_ens4(server: str) -> NetworkInfo:
        found = lab_network(server)
        return dataclasses.replace(found, interface="ens4") if server == "lab2" else found

    monkeypatch.setattr(lab, "network", lab2_names_ens4)
    request = extend.defaults(lab, tag="ip-10.214.0.100", target_server="lab2").request
    extend.extend(lab, request, ADMIN)
    service.switchover(lab, "ip-10.214.0.100", "lab2", ADMIN)
    up = lab.layout.server_path("lab2", "/run/lkconsole/ip/10.214.0.100")
    assert up.read_text() == "10.214.0.100/24 dev ens4\n"
    on = {r.server: r.setting("interface") for r in lab.snapshot().hierarchies[-1].resources}
    assert on == {"lab1": "eth0", "lab2": "ens4"}


def test_an_application_s_commands_run_in_its_server_s_folder(lab: LabBackend) -> None:
    create_kinds.create(lab, _app(), ADMIN)
    lab1, lab2 = lab.layout.server_root("lab1"), lab.layout.server_root("lab2")
    assert (lab1 / "web.run").exists() and (lab1 / "web.starts").read_text() == "started\n"
    extend.extend(lab, extend.defaults(lab, tag="web").request, ADMIN)
    assert not (lab2 / "web.run").exists()  # extended: standby, not started there
    service.out_of_service(lab, "web", ADMIN)
    assert not (lab1 / "web.run").exists()
    lines = service.in_service(lab, "web", "lab2", ADMIN)
    assert (lab2 / "web.run").exists() and not (lab1 / "web.run").exists()
    assert "web: start command done on lab2" in lines
    log = [row.text for row in lab.log_lines()]
    assert any("web: start command done on lab2" in t for t in log)
    entry = lab.history()[-1]
    assert "web" in entry.operation and entry.ok
    assert "web: start command done on lab2" in entry.steps


def test_a_failing_start_undoes_what_came_before_it(lab: LabBackend) -> None:
    create_kinds.create(lab, _ip(lab), ADMIN)
    create_kinds.create(lab, _app(), ADMIN)
    dependency.create(lab, DependencyRequest("lab1", "web", "ip-10.214.0.100"), ADMIN)
    service.out_of_service(lab, "web", ADMIN)
    (lab.layout.server_root("lab1") / "web.starts").unlink()
    broken = dataclasses.replace(_app(), start="echo no licence; exit 3")
    with lab.store.transaction() as txn:  # the application's start command now fails
        txn.execute(
            "UPDATE instances SET settings=? WHERE tag='web'",
            (json.dumps([list(p) for p in broken.settings()]),),
        )
    before = db_tables(lab.home)
    with pytest.raises(OperationError) as failed:
        service.in_service(lab, "web", "lab1", ADMIN)
    assert "the start command of web on lab1 (echo no licence; exit 3) exited 3" in str(
        failed.value
    )
    assert "no licence" in str(failed.value)
    after = db_tables(lab.home)
    assert after["instances"] == before["instances"]
    assert _up(lab)["lab1"] == []  # the address it had brought up went down again


def test_lkctl_creates_ip_and_app_resources_with_json(hermetic_env: Path) -> None:
    done = run_lkctl(["create", "--kind", "ip", "--accept-defaults", "--json"])
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["request"] == {
        "kind": "ip",
        "server": "lab1",
        "switchback_type": "intelligent",
        "address": "10.214.0.100/24",
        "interface": "eth0",
        "tag": "ip-10.214.0.100",
    }
    assert data["hierarchy"]["resources"][0]["tag"] == "ip-10.214.0.100"
    app = run_lkctl(
        ["create", "--kind", "app", "--tag", "db", "--start", "touch db.run", "--stop",
         "rm -f db.run", "--monitor", "test -f db.run", "--restart-mode", "no",
         "--server", "lab2", "--switchback", "automatic", "--json"]
    )  # fmt: skip
    assert app.returncode == 0, app.stderr
    assert json.loads(app.stdout)["hierarchy"]["switchback"] == "automatic"
    assert (hermetic_env / "servers" / "lab2" / "db.run").exists()
    status = json.loads(run_lkctl(["status", "--json"]).stdout)
    kinds = {r["tag"]: r["kind"] for h in status["hierarchies"] for r in h["resources"]}
    assert kinds["db"] == "app" and kinds["ip-10.214.0.100"] == "ip"
    on = {r["tag"]: r["servers"] for h in status["hierarchies"] for r in h["resources"]}
    assert on["db"]["lab2"]["settings"] == {
        "start": "touch db.run", "stop": "rm -f db.run", "monitor": "test -f db.run",
        "restart": "no",
    }  # fmt: skip
    assert on["ip-10.214.0.100"]["lab1"]["settings"] == {
        "address": "10.214.0.100/24", "interface": "eth0"
    }  # fmt: skip
    assert "settings" not in on["/data"]["lab1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "ip", "--disk", "/disks/x.img"], "kind: --disk is not an option of --kind ip."),
        (["--kind", "app", "--address", "10.0.0.1/24"], "--address is not an option of --kind app"),
        (["--start", "x"], "--start is not an option of --kind datakeeper"),
        (["--kind", "nfs"], "--kind 'nfs' is not one of datakeeper, ip, app"),
        (["--kind", "app", "--tag", "x"], "start: no value given; pass --start"),
        (["--kind", "ip", "--address", "10.214.0.11/24", "--accept-defaults"],
         "address: IP Address 10.214.0.11 is the address of server lab1"),
    ],
)  # fmt: skip
def test_lkctl_create_refuses_bad_kind_options_in_one_line(
    hermetic_env: Path, args: list[str], message: str
) -> None:
    LabBackend().close()
    before = db_tables(hermetic_env)
    done = run_lkctl(["create", *args])
    assert done.returncode == 2 and message in done.stderr, done.stderr
    after = db_tables(hermetic_env)
    assert {k: v for k, v in after.items() if k != "history"} == {
        k: v for k, v in before.items() if k != "history"
    }


def test_lkctl_create_dry_run_shows_the_proposal_and_the_plan(hermetic_env: Path) -> None:
    done = run_lkctl(["create", "--kind", "ip", "--accept-defaults", "--dry-run"])
    assert done.returncode == 0, done.stderr
    assert "IP Address                       10.214.0.100/24" in done.stdout
    assert "1. Create IP Address resource ip-10.214.0.100 on lab1" in done.stdout
    assert "2. Bring ip-10.214.0.100 in service on lab1 (priority 1)" in done.stdout


def test_the_kinds_states_are_what_the_status_shows(lab: LabBackend) -> None:
    create_kinds.create(lab, _app(), ADMIN)
    r = lab.snapshot().find_tag("web")
    assert r is not None and r.state is ResourceState.ISP and r.kind is ResourceKind.APP
    assert r.setting("restart") == "yes" and r.setting("monitor") == "test -f web.run"
