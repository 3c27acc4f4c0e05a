"""The Pacemaker backend against the real 3-node lab: status, operations, the watch,
concurrency, bad input, failover, SSH, roles. Each test removes what it made."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from core.backend import SERVER_POWER
from core.backends.pacemaker import PacemakerBackend, connect, nslab
from core.errors import ConflictError, LkError, OperationError, PermissionDenied
from core.events import ClusterChanged, EventHub
from core.model import (
    Cluster,
    CommPathState,
    ResourceState,
    Role,
    ServerState,
)
from core.permissions import Op
from core.plan import (
    BringInService,
    MakeSource,
    Plan,
    RemovePriority,
    RemoveResources,
    SetPriorities,
    TakeOutOfService,
)
from core.session import Session
from tests.cluster.clientns import PYTHON, client_namespace, run_in
from tests.cluster.labtools import Lab, host_fingerprint, lab_key, wait_healthy
from tests.cluster.pcmk_plans import ADMIN, app, delete, extend, find, ip, plan, states, switchover
from tests.helpers import REPO, run_lkctl, wait_until

pytestmark = pytest.mark.cluster


def cib_version(lab: Lab) -> tuple[str, str]:
    """(admin_epoch, epoch) of the CIB, read with ElementTree on a running node."""
    node = next(n for n in lab.nodes if lab.alive(n))
    root = ET.fromstring(lab.run(node, "cibadmin", "--query", "--xpath", "/cib", "--no-children"))
    return root.get("admin_epoch", ""), root.get("epoch", "")


def running_on(lab: Lab, node: str, resource: str) -> set[str]:
    """Where crm_mon (on ``node``) says ``resource`` runs, in a group or not; ∅ if it
    cannot say."""
    rc, out, _err = nslab.exec(lab.home, node, ["crm_mon", "-1", "--output-as=xml"], 30)
    if rc != 0:
        return set()
    for item in ET.fromstring(out).iterfind("resources//resource"):
        if item.get("id") == resource and item.get("role") == "Started":
            return {n.get("name", "") for n in item.iterfind("node")}
    return set()


def addresses(lab: Lab, node: str) -> set[str]:
    out = lab.run(node, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
    return {line.split()[3].split("/")[0] for line in out.splitlines()}


# -- status ----------------------------------------------------------------------------------


def test_the_snapshot_is_what_crm_mon_says(lab: Lab, backend: PacemakerBackend) -> None:
    cluster = backend.snapshot()
    assert [(s.name, s.state) for s in cluster.servers] == [
        (n, ServerState.ALIVE) for n in lab.nodes
    ]
    peers = {(p.server, p.peer, p.state) for p in cluster.comm_paths}
    here = backend.runner.node
    assert peers == {(here, n, CommPathState.ALIVE) for n in lab.nodes if n != here}
    assert backend.kind == "pacemaker" and backend.name == "pacemaker-lab"
    assert SERVER_POWER in backend.capabilities
    assert backend.local_session().role is Role.ADMINISTRATOR  # root on the nodes
    assert backend.volumes("lab1") == ()
    info = backend.probe("lab2", "/data/no/such/file")
    assert not info.exists and info.checked == "/data" and info.writable
    assert info.fs_type and info.free_bytes is not None and info.free_bytes > 0


# -- the life of an IP and an app hierarchy --------------------------------------------------


def test_ip_and_app_hierarchies_from_create_to_delete(lab: Lab, backend: PacemakerBackend) -> None:
    made = backend.apply(ip("t-web-ip", "10.213.0.150"), ADMIN)
    assert "10.213.0.150" in addresses(lab, "lab1")
    web = find(backend, "t-web-ip")
    assert made.hierarchy_id == web.id
    assert states(web) == {"lab1": ResourceState.ISP}
    backend.apply(app("t-app"), ADMIN)
    assert lab.run("lab1", "cat", "/data/t-app.running") == "started\n"
    assert states(find(backend, "t-app")) == {"lab1": ResourceState.ISP}

    extend(backend, "t-web-ip", ("lab2", 10), ("lab3", 20))
    extend(backend, "t-app", ("lab2", 10), ("lab3", 20))
    web = find(backend, "t-web-ip")
    assert [(e.server, e.priority) for e in web.equivalencies] == [
        ("lab1", 1), ("lab2", 10), ("lab3", 20),
    ]  # fmt: skip
    assert states(web) == {
        "lab1": ResourceState.ISP, "lab2": ResourceState.OSU, "lab3": ResourceState.OSU,
    }  # fmt: skip
    # In CIB terms: one location constraint per server, score 1000 - priority.
    cib = ET.fromstring(lab.run("lab2", "cibadmin", "--query", "--scope", "constraints"))
    scores = {
        c.get("node"): c.get("score")
        for c in cib.iter("rsc_location")
        if c.get("rsc") == "t-web-ip-hierarchy"
    }
    assert scores == {"lab1": "999", "lab2": "990", "lab3": "980"}

    web = find(backend, "t-web-ip")
    before = cib_version(lab)
    what_if = backend.what_if(
        plan(Op.SWITCHOVER, "switchover t-web-ip to lab3",
             TakeOutOfService(web.id, "t-web-ip", "lab1", ("t-web-ip",)),
             BringInService(web.id, "t-web-ip", "lab3", ("t-web-ip",)), h=web)
    )  # fmt: skip
    assert what_if[-1] == (
        "Pacemaker: t-web-ip out of service on lab1, t-web-ip in service on lab3"
    )
    assert cib_version(lab) == before  # a what-if changes nothing

    switchover(backend, "t-web-ip", "lab2")
    assert "10.213.0.150" in addresses(lab, "lab2")
    assert "10.213.0.150" not in addresses(lab, "lab1")
    web = find(backend, "t-web-ip")
    assert web.in_service_server == "lab2"
    # The temporary preference is gone: stickiness keeps it there (intelligent switchback).
    constraints = lab.run("lab2", "cibadmin", "--query", "--scope", "constraints")
    assert "t-web-ip-hierarchy-in-service" not in constraints

    a = find(backend, "t-app")
    step = TakeOutOfService(a.id, "t-app", "lab1", ("t-app",))
    backend.apply(plan(Op.OUT_OF_SERVICE, "out of service t-app", step, h=a), ADMIN)
    assert states(find(backend, "t-app")) == {n: ResourceState.OSU for n in lab.nodes}
    assert lab.run("lab1", "ls", "/data").split().count("t-app.running") == 0
    a = find(backend, "t-app")
    step2 = BringInService(a.id, "t-app", "lab3", ("t-app",))
    backend.apply(plan(Op.IN_SERVICE, "in service t-app on lab3", step2, h=a), ADMIN)
    assert find(backend, "t-app").in_service_server == "lab3"
    assert lab.run("lab3", "cat", "/data/t-app.running") == "started\n"

    web = find(backend, "t-web-ip")
    steps = (
        RemoveResources(web.id, "lab3", ("t-web-ip",)),
        RemovePriority(web.id, "t-web-ip", "lab3"),
    )
    backend.apply(plan(Op.UNEXTEND_HIERARCHY, "unextend t-web-ip from lab3", *steps, h=web), ADMIN)
    web = find(backend, "t-web-ip")
    assert web.servers == ("lab1", "lab2")
    assert web.in_service_server == "lab2"

    for tag in ("t-web-ip", "t-app"):
        delete(backend, find(backend, tag))
    assert backend.snapshot().hierarchies == ()
    assert "10.213.0.150" not in addresses(lab, "lab2")
    assert "t-app.running" not in lab.run("lab3", "ls", "/data").split()
    resources = lab.run("lab1", "cibadmin", "--query", "--scope", "resources")
    assert "t-web-ip" not in resources and "t-app" not in resources
    names = [e.operation for e in backend.history()]
    assert names[-2:] == ["delete t-web-ip", "delete t-app"]
    assert all(e.ok for e in backend.history()[-10:])


# -- failover, the watch, concurrency ----------------------------------------------------------


def test_a_failure_of_the_node_holding_it_shows_it_on_the_best_priority_node(
    lab: Lab, backend: PacemakerBackend
) -> None:
    backend.apply(ip("t-fo-ip", "10.213.0.151", server="lab1"), ADMIN)
    extend(backend, "t-fo-ip", ("lab3", 10), ("lab2", 20))
    hub = EventHub()
    shown: list[tuple[float, Cluster]] = []
    hub.subscribe(lambda e: shown.append((time.monotonic(), e.cluster)), ClusterChanged)  # type: ignore[attr-defined]
    watch = backend.watch(hub)
    try:
        wait_until(lambda: bool(shown), 10, "the first snapshot")
        began = time.monotonic()
        nslab.stop(lab.home, "lab1")
        crm_mon_saw: list[float] = []

        def on_lab3_for_crm_mon() -> bool:
            if not crm_mon_saw and running_on(lab, "lab2", "t-fo-ip") == {"lab3"}:
                crm_mon_saw.append(time.monotonic())
            return bool(crm_mon_saw)

        wait_until(on_lab3_for_crm_mon, 60, "crm_mon to show t-fo-ip on lab3")

        def console_shows() -> float | None:
            for at, cluster in shown:
                h = next((x for x in cluster.hierarchies if x.root_tag == "t-fo-ip"), None)
                if h is not None and states(h).get("lab3") is ResourceState.ISP:
                    return at
            return None

        wait_until(lambda: console_shows() is not None, 10, "the console to show it on lab3")
        at = console_shows()
        assert at is not None
        print(f"\nfailover: crm_mon {crm_mon_saw[0] - began:.2f} s, console {at - began:.2f} s")
        assert at - crm_mon_saw[0] <= 1.0
        latest = shown[-1][1]
        assert latest.server("lab1").state is ServerState.DEAD  # type: ignore[union-attr]
        # What Pacemaker did is in the console's output lines too.
        wait_until(
            lambda: any("t-fo-ip is in service on lab3" in r.text for r in backend.log_lines()),
            5,
            "the failover in the output lines",
        )
        assert any(r.text.startswith("lab1 is DEAD") for r in backend.log_lines())
    finally:
        watch.stop()
        nslab.start(lab.home, "lab1")
        wait_healthy(lab)


def test_a_change_behind_the_consoles_back_shows_in_the_watch_within_a_second(
    lab: Lab, backend: PacemakerBackend
) -> None:
    backend.apply(ip("t-watch-ip", "10.213.0.152"), ADMIN)
    hub = EventHub()
    shown: list[tuple[float, Cluster]] = []
    hub.subscribe(lambda e: shown.append((time.monotonic(), e.cluster)), ClusterChanged)  # type: ignore[attr-defined]
    watch = backend.watch(hub)
    try:
        wait_until(lambda: bool(shown), 10, "the first snapshot")

        def stopped_at() -> float | None:
            for at, cluster in shown:
                h = next((x for x in cluster.hierarchies if x.root_tag == "t-watch-ip"), None)
                if h is not None and h.in_service_server is None:
                    return at
            return None

        began = time.monotonic()
        lab.run("lab3", "crm_resource", "--resource", "t-watch-ip-hierarchy", "--meta",
                "--set-parameter", "target-role", "--parameter-value", "Stopped")  # fmt: skip
        wait_until(lambda: not running_on(lab, "lab3", "t-watch-ip"), 20, "it to stop")
        stopped = time.monotonic()
        wait_until(lambda: stopped_at() is not None, 5, "the watch to show it stopped")
        at = stopped_at()
        assert at is not None
        print(f"\nwatch: {at - stopped:.3f} s after crm_mon showed it stopped")
        assert at - stopped <= 1.0
        assert at - began <= 10
        h = next(x for x in shown[-1][1].hierarchies if x.root_tag == "t-watch-ip")
        assert states(h) == {"lab1": ResourceState.OSU}
    finally:
        watch.stop()


def test_two_consoles_changing_one_hierarchy_at_once_only_one_succeeds(
    lab: Lab, backend: PacemakerBackend
) -> None:
    backend.apply(ip("t-race-ip", "10.213.0.153"), ADMIN)
    extend(backend, "t-race-ip", ("lab2", 10), ("lab3", 20))
    other = connect("pacemaker-lab", home=lab.home)
    try:
        h = find(backend, "t-race-ip")
        plans = [
            plan(Op.SWITCHOVER, f"switchover t-race-ip to {to}",
                 TakeOutOfService(h.id, "t-race-ip", "lab1", ("t-race-ip",)),
                 BringInService(h.id, "t-race-ip", to, ("t-race-ip",)), h=h)
            for to in ("lab2", "lab3")
        ]  # fmt: skip
        barrier = threading.Barrier(2)
        outcomes: dict[str, object] = {}

        def run(b: PacemakerBackend, p: Plan) -> None:
            barrier.wait()
            try:
                outcomes[p.name] = b.apply(p, ADMIN)
            except LkError as exc:
                outcomes[p.name] = exc

        threads = [
            threading.Thread(target=run, args=(b, p))
            for b, p in zip((backend, other), plans, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        failed = [o for o in outcomes.values() if isinstance(o, Exception)]
        assert len(outcomes) == 2 and len(failed) == 1, outcomes
        assert isinstance(failed[0], ConflictError), failed
        assert "changed by someone else" in str(failed[0])
        won = next(name for name, o in outcomes.items() if not isinstance(o, Exception))
        assert find(backend, "t-race-ip").in_service_server == won.rsplit(" ", 1)[1]
        # The same plan again, later: the hierarchy moved since it was made.
        with pytest.raises(ConflictError, match="reload"):
            other.apply(plans[0], ADMIN)
    finally:
        other.close()


# -- bad input: one message, nothing pushed ------------------------------------------------------


def test_bad_input_gives_one_message_and_leaves_the_cib_as_it_was(
    lab: Lab, backend: PacemakerBackend
) -> None:
    backend.apply(ip("t-bad-ip", "10.213.0.154"), ADMIN)
    h = find(backend, "t-bad-ip")
    before = cib_version(lab)
    cases: list[tuple[Plan, str]] = [
        (ip("t-other", "10.213.0.155", server="lab7"), "lab7 is not a node of this cluster"),
        (ip("t-other", "10.213.0.300"), "is not an IP address"),
        (ip("t-other", "10.213.0.155", interface="eth9"), 'Device "eth9" does not exist'),
        (app("t-other-app", start="no-such-program --now"), "no-such-program not found on lab1"),
        (ip("t-bad-ip", "10.213.0.155"), "tag t-bad-ip is already used"),
        (
            plan(
                Op.EXTEND_HIERARCHY, "extend", SetPriorities(h.id, "t-bad-ip", (("lab9", 10),)), h=h
            ),
            "lab9 is not a node",
        ),
        (
            plan(
                Op.EXTEND_HIERARCHY, "extend", SetPriorities(h.id, "t-bad-ip", (("lab2", 1),)), h=h
            ),
            "priority 1 is already in use",
        ),
        (
            plan(Op.SWITCHOVER, "mirror", MakeSource(h.id, "lab2", (("datarep", "lab1"),)), h=h),
            "t-bad-ip has no DataKeeper mirror datarep: nothing to make a source",
        ),
    ]
    for bad, message in cases:
        with pytest.raises(OperationError) as caught:
            backend.apply(bad, ADMIN)
        assert message in str(caught.value), (bad.name, str(caught.value))
        assert "\n" not in str(caught.value)
        assert cib_version(lab) == before, f"{bad.name} changed the CIB"
    assert [x.root_tag for x in backend.snapshot().hierarchies] == ["t-bad-ip"]
    assert all(not e.ok for e in backend.history()[-len(cases) :])


def test_an_app_that_fails_to_start_is_removed_again(lab: Lab, backend: PacemakerBackend) -> None:
    with pytest.raises(OperationError, match="removed again") as caught:
        backend.apply(app("t-fail-app", start="sh -c 'echo no licence >&2; exit 4'"), ADMIN)
    assert "start command exited 4: no licence" in str(caught.value)
    assert not caught.value.committed
    assert backend.snapshot().hierarchies == ()
    assert "t-fail-app" not in lab.run("lab1", "cibadmin", "--query", "--scope", "resources")


def test_roles_are_checked_and_refusals_recorded(lab: Lab, backend: PacemakerBackend) -> None:
    guest = Session("visitor", Role.GUEST)
    before = cib_version(lab)
    with pytest.raises(PermissionDenied, match="needs the Administrator role"):
        backend.apply(ip("t-guest-ip", "10.213.0.156"), guest)
    # A plan cannot name a lesser operation than its steps need.
    sneaky = ip("t-op-ip", "10.213.0.156")
    sneaky = Plan(Op.IN_SERVICE, sneaky.name, sneaky.command, sneaky.steps)
    with pytest.raises(PermissionDenied, match="Create Resource Hierarchy"):
        backend.apply(sneaky, Session("oper", Role.OPERATOR))
    assert cib_version(lab) == before
    refused = [e for e in backend.history() if e.result.startswith("refused: ")]
    assert [e.user for e in refused[-2:]] == ["visitor", "oper"]


def test_server_power_in_the_lab_is_a_real_failure(lab: Lab, backend: PacemakerBackend) -> None:
    try:
        backend.stop_server("lab3", ADMIN)
        wait_until(
            lambda: backend.snapshot().server("lab3").state is ServerState.DEAD,  # type: ignore[union-attr]
            30,
            "lab3 to be DEAD",
        )
        backend.start_server("lab3", ADMIN)
        wait_until(
            lambda: backend.snapshot().server("lab3").state is ServerState.ALIVE,  # type: ignore[union-attr]
            60,
            "lab3 to be ALIVE again",
        )
    finally:
        if not lab.alive("lab3"):
            nslab.start(lab.home, "lab3")
        wait_healthy(lab)
    assert [e.operation for e in backend.history()[-2:]] == [
        "stop server lab3",
        "start server lab3",
    ]


# -- the console on a node: "pacemaker" ---------------------------------------------------------


def test_a_console_on_a_node_uses_the_local_tools(lab: Lab) -> None:
    home = "/data/t-console-home"
    try:
        rc, out, err = nslab.exec(
            lab.home, "lab2",
            ["env", f"LKCONSOLE_HOME={home}", f"PYTHONPATH={REPO}", PYTHON, "-m",
             "tests.cluster.pcmk_client", "connect", "pacemaker"],
            timeout=120,
        )  # fmt: skip
        assert rc == 0, err
        result = json.loads(out)
        assert result["connected"]["node"] == "lab2", result
        assert result["connected"]["role"] == "ADMINISTRATOR"
        assert set(result["connected"]["servers"]) == set(lab.nodes)
    finally:
        lab.run("lab2", "rm", "-rf", home)


# -- SSH ------------------------------------------------------------------------------------------


def _client(
    lab: Lab,
    home: Path,
    scenario: str,
    identity: Path,
    *args: str,
    spec: str = "ssh://root@lab1",
) -> dict[str, object]:
    tmp = home.parent / "tmp"  # where its ssh connection keeps its socket, while it runs
    tmp.mkdir(exist_ok=True)
    env = {
        "LKCONSOLE_HOME": str(home),
        "LKCONSOLE_SSH_IDENTITY": str(identity),
        "TMPDIR": str(tmp),
        "XDG_RUNTIME_DIR": "",
    }
    with client_namespace(lab.home) as namespace:
        done = run_in(
            namespace, [PYTHON, "-m", "tests.cluster.pcmk_client", scenario, spec, *args], env
        )
    assert done.returncode == 0, done.stderr
    assert list(tmp.iterdir()) == []  # the connection and its private folder are gone
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_ssh_an_unknown_host_key_is_refused_with_its_fingerprint(
    lab: Lab, console_home: Path
) -> None:
    result = _client(lab, console_home, "connect", lab_key(lab))
    error = result["error"]
    assert isinstance(error, dict) and error["type"] == "HostKeyUnknown"
    assert host_fingerprint(lab, "lab1") in str(error["message"])
    assert "connected" not in result
    assert (console_home / "ssh" / "known_hosts").read_text() == ""


def test_ssh_once_trusted_the_console_works_over_ssh(lab: Lab, console_home: Path) -> None:
    result = _client(lab, console_home, "use", lab_key(lab), "10.213.0.157")
    assert "error" not in result, result.get("error")
    connected = result["connected"]
    assert isinstance(connected, dict)
    assert connected["node"] == "lab1" and connected["role"] == "ADMINISTRATOR"
    assert connected["servers"] == {n: "ALIVE" for n in lab.nodes}
    assert result["created"] == {"in_service_on": "lab1"}
    watch = result["watch"]
    assert isinstance(watch, dict) and watch["seconds"] <= 1.0, watch
    assert watch["states"] == {"lab1": "ALIVE_STANDBY", "lab2": "ALIVE", "lab3": "ALIVE"}
    assert result["deleted"] is True
    known = (console_home / "ssh" / "known_hosts").read_text()
    assert known.startswith("lab1,10.213.0.11 ssh-ed25519 ")
    again = _client(lab, console_home, "connect", lab_key(lab))  # trusted now: no question
    assert "unknown" not in again and "connected" in again


def test_ssh_a_wrong_key_is_refused(lab: Lab, console_home: Path, tmp_path: Path) -> None:
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    _client(lab, console_home, "trust", lab_key(lab))  # the host is known; the key is not
    result = _client(lab, console_home, "connect", key)
    error = result["error"]
    assert isinstance(error, dict) and error["type"] == "AuthRefused", result
    assert "refused the key of root" in str(error["message"])


def test_ssh_a_changed_host_key_is_refused_loudly(
    lab: Lab, console_home: Path, tmp_path: Path
) -> None:
    other = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    blob = (tmp_path / "impostor.pub").read_text().split()[1]
    known = console_home / "ssh" / "known_hosts"
    known.write_text(f"lab1,10.213.0.11 ssh-ed25519 {blob}\n")
    known.chmod(0o600)
    result = _client(lab, console_home, "connect", lab_key(lab))
    error = result["error"]
    assert isinstance(error, dict) and error["type"] == "HostKeyChanged", result
    assert "HAS CHANGED" in str(error["message"]) and "man-in-the-middle" in str(error["message"])
    assert "connected" not in result


def test_ssh_roles_come_from_the_lk_groups_on_the_node(lab: Lab, console_home: Path) -> None:
    public = (lab.home / "pacemaker-lab" / "ssh" / "id_ed25519.pub").read_text()
    lab.run("lab1", "groupadd", "--force", "lkoper")
    lab.run("lab1", "useradd", "--create-home", "--groups", "lkoper,haclient", "--shell",
            "/bin/sh", "oper")  # fmt: skip
    try:
        lab.run("lab1", "usermod", "--password", "*", "oper")  # no password, not locked
        lab.run("lab1", "install", "-d", "-o", "oper", "-m", "0700", "/home/oper/.ssh")
        keys = "/home/oper/.ssh/authorized_keys"
        assert nslab.exec(lab.home, "lab1", ["tee", keys], 30, input_text=public)[0] == 0
        lab.run("lab1", "chown", "oper", "/home/oper/.ssh/authorized_keys")
        before = cib_version(lab)
        result = _client(
            lab, console_home, "create", lab_key(lab), "10.213.0.158", spec="ssh://oper@lab1"
        )
        connected = result.get("connected")
        assert isinstance(connected, dict) and "user" in connected, result
        assert (connected["user"], connected["role"]) == ("oper", "OPERATOR")
        create = result["create"]
        assert isinstance(create, dict) and create["type"] == "PermissionDenied", create
        assert "needs the Administrator role; oper is signed in as Operator" in str(
            create["message"]
        )
        assert cib_version(lab) == before
    finally:
        lab.run("lab1", "userdel", "--remove", "oper", ok=False)
        lab.run("lab1", "groupdel", "lkoper", ok=False)


def test_in_service_where_it_failed_before_clears_that_failure_first(
    lab: Lab, backend: PacemakerBackend
) -> None:
    """An app whose start works only where /data/t-flaky.ok exists: a switchover to lab2
    fails there (Pacemaker brings it back to lab1, by priority); once fixed on lab2, the
    next switchover clears lab2's old failure before it asks Pacemaker again."""
    ok = "/data/t-flaky.ok"
    lab.run("lab1", "touch", ok)
    try:
        start = f"test -f {ok} && touch /data/t-flaky.running"
        backend.apply(app("t-flaky", start=start), ADMIN)
        extend(backend, "t-flaky", ("lab2", 10))
        with pytest.raises(OperationError) as caught:
            switchover(backend, "t-flaky", "lab2")
        assert caught.value.committed
        assert "start failed on lab2" in str(caught.value)
        assert "start command exited 1" in str(caught.value)
        wait_until(lambda: find(backend, "t-flaky").in_service_server == "lab1", 60, "lab1")
        h = find(backend, "t-flaky")
        assert states(h)["lab2"] is ResourceState.OSF
        constraints = lab.run("lab1", "cibadmin", "--query", "--scope", "constraints")
        assert "t-flaky-hierarchy-in-service" not in constraints  # no preference left
        lab.run("lab2", "touch", ok)
        switchover(backend, "t-flaky", "lab2")
        h = find(backend, "t-flaky")
        assert h.in_service_server == "lab2"
        assert states(h) == {"lab1": ResourceState.OSU, "lab2": ResourceState.ISP}
        lines = [e for e in backend.history() if e.operation == "switchover t-flaky to lab2"]
        assert "t-flaky: cleared its earlier failures on lab2" in lines[-1].steps
    finally:
        for node in ("lab1", "lab2"):
            lab.run(node, "rm", "-f", ok, "/data/t-flaky.running")


# -- lkctl status --json: one schema for every backend ---------------------------------------


def test_lkctl_status_json_has_the_lab_s_schema(
    lab: Lab, backend: PacemakerBackend, tmp_path: Path
) -> None:
    backend.apply(ip("json-ip", "10.213.0.161"), ADMIN)
    extend(backend, "json-ip", ("lab2", 2))
    env = {"LKCONSOLE_HOME": str(lab.home), "LKCONSOLE_CLUSTER": "pacemaker-lab"}
    done = run_lkctl(["status", "--json"], env=env)
    assert done.returncode == 0, done.stderr
    ours = json.loads(done.stdout)
    folder = run_lkctl(["status", "--json"], env={"LKCONSOLE_HOME": str(tmp_path / "lab"),
                                                  "LKCONSOLE_CLUSTER": "lab"})  # fmt: skip
    theirs = json.loads(folder.stdout)
    assert [s["name"] for s in ours["servers"]] == list(lab.nodes)
    (h,) = [h for h in ours["hierarchies"] if h["root"] == "json-ip"]
    assert h["in_service_on"] == "lab1" and h["priorities"] == {"lab1": 1, "lab2": 2}
    (r,) = h["resources"]
    assert r["kind"] == "ip" and r["servers"]["lab1"]["state"] == "ISP"
    assert r["servers"]["lab2"]["state"] == "OSU"
    # Every key the folder lab's document has, this one has (new ones may be added).
    lab_h, lab_r = theirs["hierarchies"][0], theirs["hierarchies"][0]["resources"][0]
    assert set(theirs) <= set(ours)
    assert set(theirs["servers"][0]) <= set(ours["servers"][0])
    assert set(lab_h) <= set(h)
    assert set(lab_r) <= set(r)
    for server in r["servers"].values():
        assert {"tag", "state", "text"} <= set(server)
