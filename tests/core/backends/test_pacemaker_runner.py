"""The runner's parts that need no cluster: SSH specs, host keys, local commands, records."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from core.backends.pacemaker import hostkeys
from core.backends.pacemaker.records import Records, cluster_dir
from core.backends.pacemaker.runner import (
    CommandTimeout,
    Completed,
    LocalRunner,
    SshTarget,
    ToolMissing,
    parse_ssh_spec,
)
from core.errors import LkError


@pytest.mark.parametrize(
    ("spec", "target"),
    [
        ("ssh://root@lab1", SshTarget("root", "lab1", 22)),
        ("ssh://lab1", SshTarget("", "lab1", 22)),
        ("ssh://admin@node-1.example.com:2222", SshTarget("admin", "node-1.example.com", 2222)),
        ("ssh://root@10.213.0.11", SshTarget("root", "10.213.0.11", 22)),
        ("ssh://root@[fd00::1]:22", SshTarget("root", "[fd00::1]", 22)),
    ],
)
def test_ssh_specs(spec: str, target: SshTarget) -> None:
    assert parse_ssh_spec(spec) == target
    assert parse_ssh_spec(target.spec) == target


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("root@lab1", "not an ssh://"),
        ("ssh://root@-oProxyCommand=x", "not a host name"),
        ("ssh://ro ot@lab1", "not a user name"),
        ("ssh://root@lab1:99999", "not a port"),
        ("ssh://root@", "not a host name"),
    ],
)
def test_bad_ssh_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(LkError, match=message):
        parse_ssh_spec(spec)


def _keypair(tmp_path: Path) -> tuple[str, str]:
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = (tmp_path / "k.pub").read_text()
    shown = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")],
        capture_output=True, text=True, check=True,
    ).stdout.split()[1]  # fmt: skip
    return public, shown


def test_host_key_fingerprints_are_openssh_s(tmp_path: Path) -> None:
    public, fingerprint = _keypair(tmp_path)
    keys = hostkeys.parse_keyscan(f"# lab1:22 SSH-2.0-OpenSSH_9.2\nlab1 {public}")
    assert len(keys) == 1
    assert keys[0].fingerprint == fingerprint
    assert keys[0].shown == f"ssh-ed25519 {fingerprint}"


def test_known_hosts_are_the_consoles_own_and_private(tmp_path: Path, hermetic_env: Path) -> None:
    public, _fingerprint = _keypair(tmp_path)
    keys = hostkeys.parse_keyscan(f"lab1 {public}")
    assert hostkeys.known(hermetic_env, "lab1", 22) == []
    hostkeys.trust(hermetic_env, "lab1", 22, keys)
    hostkeys.trust(hermetic_env, "lab1", 22, keys)  # once is enough
    hostkeys.trust(hermetic_env, "lab2", 2222, keys)
    path = hostkeys.known_hosts_file(hermetic_env)
    assert path == hermetic_env / "ssh" / "known_hosts"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("[lab2]:2222 ssh-ed25519 ")
    assert hostkeys.known(hermetic_env, "lab1", 22) == keys
    assert hostkeys.forget(hermetic_env, "lab1", 22) == 1
    assert hostkeys.known(hermetic_env, "lab1", 22) == []
    assert hostkeys.known(hermetic_env, "lab2", 2222) == keys


def test_local_commands_are_argument_lists_with_a_timeout() -> None:
    runner = LocalRunner()
    done = runner.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert done.detail == "err"
    assert runner.run(["cat"], input_text="in\n").stdout == "in\n"
    with pytest.raises(CommandTimeout, match=r"did not finish within 0\.3 s"):
        runner.run(["sleep", "30"], timeout=0.3)
    with pytest.raises(ToolMissing, match="no-such-tool not found"):
        runner.run(["no-such-tool"])
    assert runner.run(["printenv", "LC_ALL"]).stdout == "C\n"
    name = "CIB_" + "file"  # Pacemaker's spelling: the console's own never leaks in
    os.environ[name] = "/tmp/x.xml"
    try:
        assert runner.run(["printenv", name]).returncode == 1
    finally:
        del os.environ[name]


def test_completed_detail_is_the_last_lines() -> None:
    done = Completed(("x",), 1, "", "a\nb\nc\nd\n", "lab1")
    assert done.detail == "b | c | d" and not done.ok
    assert Completed(("x",), 2, "", "", "lab1").detail == "exit status 2"


def test_records_keep_history_and_lines_privately(hermetic_env: Path) -> None:
    folder = cluster_dir(hermetic_env, "lkconsole-lab")
    assert folder == hermetic_env / "clusters" / "lkconsole-lab"
    assert cluster_dir(hermetic_env, "../evil name").name == "_evil_name"
    records = Records(folder)
    records.add_lines("create web-ip", [("INFO", "one"), ("ERROR", "two")])
    records.record(
        started=time.time(), user="root", role="Administrator", operation="create web-ip",
        command="lkctl create", steps=["one"], ok=True, result="done",
    )  # fmt: skip
    rows = records.lines()
    assert [(r.level, r.text) for r in rows] == [("INFO", "one"), ("ERROR", "two")]
    assert records.lines(after=rows[0].id) == rows[1:]
    assert records.last_line_id() == rows[-1].id
    (entry,) = records.history()
    assert (entry.user, entry.operation, entry.steps, entry.ok) == (
        "root", "create web-ip", ("one",), True,
    )  # fmt: skip
    records.close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
