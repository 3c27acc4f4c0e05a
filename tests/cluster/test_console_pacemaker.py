"""lkctl and File › Connect on the Pacemaker lab: bringing a lab up and down, the session
lab through ``--cluster pacemaker-lab``, and an unknown SSH host key: refused in a script,
asked about in the console (trusted only on yes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from core.backends.pacemaker import nslab
from tests.cluster.clientns import PYTHON, client_namespace, run_in
from tests.cluster.labtools import Lab, host_fingerprint, lab_key, leftovers
from tests.helpers import run_lkctl


def _lkctl(home: Path, *args: str) -> tuple[int, str, str]:
    done = run_lkctl(list(args), env={"LKCONSOLE_HOME": str(home), "LKCONSOLE_CLUSTER": ""})
    return done.returncode, done.stdout, done.stderr


def test_lkctl_brings_a_pacemaker_lab_up_uses_it_and_takes_it_down(tmp_path: Path) -> None:
    home = tmp_path / "own-lab"
    rc, out, err = _lkctl(home, "lab", "up", "--engine", "pacemaker", "--nodes", "1")
    pids: set[int] = set()
    try:
        assert rc == 0, err
        assert "Quorate, with /data in service on lab1, after" in out
        assert "LKCONSOLE_CLUSTER=pacemaker-lab" in out
        rc, out, err = _lkctl(home, "lab", "status", "--engine", "pacemaker", "--json")
        assert rc == 0, err
        shown = json.loads(out)
        assert [(n["name"], n["state"]) for n in shown["nodes"]] == [("lab1", "running")]
        pids = {n["init_pid"] for n in shown["nodes"]}
        rc, out, err = _lkctl(
            home, "--cluster", "pacemaker-lab", "lab", "exec", "lab1", "--", "crm_node", "-n"
        )
        assert (rc, out.strip()) == (0, "lab1"), err
        rc, out, err = _lkctl(home, "--cluster", "pacemaker-lab", "lab", "cut", "lab1")
        assert rc == 2 and "add --yes" in err and "cannot be undone" not in err
        assert nslab.status(home).node("lab1").state is nslab.NodeState.RUNNING
        rc, out, err = _lkctl(home, "--cluster", "pacemaker-lab", "status", "--json")
        assert rc == 0, err
        assert [s["name"] for s in json.loads(out)["servers"]] == ["lab1"]
        # the seed: /data on the mirror datarep-data, in service on lab1
        rc, out, err = _lkctl(home, "--cluster", "pacemaker-lab", "status")
        assert rc == 0, err
        assert "Hierarchy /data  (in service on lab1;" in out
        assert "datarep-data  datakeeper  ISP Active" in out
        rc, out, err = _lkctl(
            home, "--cluster", "pacemaker-lab", "lab", "exec", "lab1", "--",
            "findmnt", "-n", "-o", "FSTYPE", "/data",
        )  # fmt: skip
        assert (rc, out.strip()) == (0, "ext4"), err
    finally:
        rc, out, err = _lkctl(home, "lab", "down", "--engine", "pacemaker", "--yes")
    assert rc == 0, err
    assert "is down" in out
    assert leftovers(home, pids) == []
    rc, out, err = _lkctl(home, "lab", "status", "--engine", "pacemaker")
    assert rc == 0 and "No Pacemaker lab is up" in out


def test_lkctl_on_the_pacemaker_lab_refuses_what_only_the_folder_lab_does(lab: Lab) -> None:
    rc, out, err = _lkctl(lab.home, "--cluster", "pacemaker-lab", "status")
    assert rc == 0, err
    assert "Cluster: pacemaker-lab" in out
    for node in lab.nodes:
        assert f"{node:<10}ALIVE" in out
    rc, out, err = _lkctl(
        lab.home, "--cluster", "pacemaker-lab", "lab", "write", "any", "--offset", "0",
        "--length", "4K",
    )  # fmt: skip
    assert rc == 2
    assert err.strip() == "lkctl: lkctl lab write is not available on a pacemaker cluster"
    rc, out, err = _lkctl(lab.home, "lab", "exec", "lab1", "--", "true")  # the folder lab's
    assert rc == 2 and "--engine pacemaker" in err


def _elsewhere(lab: Lab, home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a module of the console on a machine of its own on the lab's network."""
    tmp = home.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {
        "LKCONSOLE_HOME": str(home),
        "LKCONSOLE_SSH_IDENTITY": str(lab_key(lab)),
        "LKCONSOLE_CLUSTER": "",
        "TMPDIR": str(tmp),
        "XDG_RUNTIME_DIR": "",
    }
    with client_namespace(lab.home) as namespace:
        return run_in(namespace, [PYTHON, "-m", *argv], env)


def test_lkctl_over_ssh_in_a_script_refuses_an_unknown_host_key(
    lab: Lab, console_home: Path
) -> None:
    done = _elsewhere(lab, console_home, "core.cli", "--cluster", "ssh://root@lab1", "status")
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    message = done.stderr.strip()
    assert message.count("\n") == 0  # one line, no traceback
    assert host_fingerprint(lab, "lab1") in message
    assert "There is no terminal to ask at" in message
    assert (console_home / "ssh" / "known_hosts").read_text() == ""


def test_connect_asks_about_an_unknown_host_key_and_connects_only_on_yes(
    lab: Lab, console_home: Path
) -> None:
    fingerprint = host_fingerprint(lab, "lab1")
    known = console_home / "ssh" / "known_hosts"
    done = _elsewhere(lab, console_home, "tests.cluster.gui_client", "no", "ssh://root@lab1")
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert fingerprint in said["asked"]
    assert said["error"] == "The host key was not trusted: nothing was sent to the host."
    assert said["servers"] is None
    assert known.read_text() == ""
    done = _elsewhere(lab, console_home, "tests.cluster.gui_client", "yes", "ssh://root@lab1")
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert fingerprint in said["asked"]
    assert said["error"] is None
    assert said["servers"] == {n: "ALIVE" for n in lab.nodes}
    assert known.read_text().startswith("lab1,10.213.0.11 ssh-ed25519 ")
    done = _elsewhere(lab, console_home, "tests.cluster.gui_client", "no", "ssh://root@lab1")
    said = json.loads(done.stdout)
    assert said["asked"] is None  # trusted now: no question
    assert said["servers"] == {n: "ALIVE" for n in lab.nodes}
