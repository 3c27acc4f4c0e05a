"""The DataKeeper agent's parts that need no cluster: its names, what its engine hooks
publish, the node-side admin commands, and ``lkctl cluster install-agents``.

The agent itself (start/stop/promote/... on a real Pacemaker node, ``ocf-tester``) is
tested on the Pacemaker lab: ``tests/cluster/test_datakeeper_agent.py``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from core.backends.pacemaker import agents, dk_admin, dk_cluster
from core.backends.pacemaker import dk_names as names
from core.backends.pacemaker.dk_hooks import target_values
from tests.helpers import run_lkctl

AGENT = Path(agents.OCF_SOURCE) / "datakeeper"


def test_pairs_and_chunk_runs_round_trip_and_malformed_text_is_refused() -> None:
    pairs = {"lab1": "10.213.0.11", "lab2": "10.213.0.12"}
    assert names.format_pairs(pairs) == "lab1=10.213.0.11 lab2=10.213.0.12"
    assert names.parse_pairs("lab1=10.213.0.11 lab2=10.213.0.12") == pairs
    with pytest.raises(ValueError, match="'lab1' is not NODE=VALUE"):
        names.parse_pairs("lab1")
    with pytest.raises(ValueError, match="may not contain spaces"):
        names.format_pairs({"lab1": "/a b"})
    assert names.format_runs([7, 0, 1, 2, 3, 10, 11, 12, 3]) == "0-3 7 10-12"
    assert names.parse_runs("0-3 7 10-12") == [(0, 4), (7, 8), (10, 13)]
    with pytest.raises(ValueError, match="the run ends before it begins"):
        names.parse_runs("5-2")
    assert names.bitmap_of({"lab1": "/opt/b", "lab2": "none"}, "lab2") is None
    assert names.bitmap_of({"lab1": "/opt/b"}, "lab1") == "/opt/b"


def test_the_hooks_publish_progress_only_while_resyncing() -> None:
    resyncing = {
        "state": "RESYNCING",
        "progress": {"bytes_done": 42, "bytes_total": 100, "rate": 1234.5, "eta": 7.9},
        "dirty_chunks": 9,
    }
    assert target_values(resyncing) == {
        "state": "RESYNCING",
        "percent": "42",
        "rate": "1234",
        "eta": "7",
        "reason": None,
        "dirty": "9",
        "verify": None,
    }
    in_sync = target_values({"state": "TARGET", "dirty_chunks": 0, "verify": {"percent": 50}})
    assert (in_sync["state"], in_sync["percent"], in_sync["rate"], in_sync["eta"]) == (
        "TARGET",
        None,
        None,
        None,
    )
    assert in_sync["verify"] == "50"


def test_cluster_commands_of_an_agent_do_not_inherit_its_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pacemaker gives an agent OCF_RESKEY_CRM_meta_on_node, and attrd_updater then
    answers ``--query --all`` for that node only: the agent's commands go without it."""
    monkeypatch.setenv("OCF_RESKEY_CRM_meta_on_node", "lab2")
    monkeypatch.setenv("OCF_RESKEY_CRM_meta_on_node_uuid", "2")
    monkeypatch.setenv("OCF_RESKEY_volume", "/disks/v.img")
    done = dk_cluster.run(["env"])
    seen = dict(line.partition("=")[::2] for line in done.stdout.splitlines())
    assert "OCF_RESKEY_CRM_meta_on_node" not in seen
    assert "OCF_RESKEY_CRM_meta_on_node_uuid" not in seen
    assert seen["OCF_RESKEY_volume"] == "/disks/v.img"
    assert seen["LC_ALL"] == "C"


def test_admin_refuses_paths_outside_disks_and_never_overwrites_a_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disks = tmp_path / "disks"
    monkeypatch.setattr(dk_admin, "DISKS", str(disks))
    volume = disks / "v.img"
    assert dk_admin.main(["make-disk", str(volume), "1048576"]) == 0
    assert volume.stat().st_size == 1048576
    assert stat.S_IMODE(volume.stat().st_mode) == 0o600
    volume.write_bytes(b"mine" + bytes(1048572))
    assert dk_admin.main(["make-disk", str(volume), "1048576"]) == 1
    assert volume.read_bytes()[:4] == b"mine"
    assert dk_admin.main(["make-disk", str(tmp_path / "elsewhere.img"), "1048576"]) == 1
    assert not (tmp_path / "elsewhere.img").exists()
    assert dk_admin.main(["make-disk", str(disks / "w.img"), "lots"]) == 1
    assert not (disks / "w.img").exists()
    assert dk_admin.main(["remove-file", str(volume)]) == 1  # a volume is never removed so
    assert volume.exists()
    assert dk_admin.main(["nonsense"]) == 2


def test_admin_grows_a_volume_keeping_its_bytes_and_never_shrinks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    disks = tmp_path / "disks"
    monkeypatch.setattr(dk_admin, "DISKS", str(disks))
    volume = disks / "v.img"
    assert dk_admin.main(["make-disk", str(volume), "1048576"]) == 0
    with volume.open("r+b") as f:
        f.seek(1048576 - 4)
        f.write(b"tail")
    capsys.readouterr()
    assert dk_admin.main(["grow-volume", str(volume), "2097152"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "path": str(volume),
        "old": 1048576,
        "size": 2097152,
    }
    data = volume.read_bytes()
    assert len(data) == 2097152
    assert data[1048572:1048576] == b"tail" and data[1048576:] == bytes(1048576)
    assert stat.S_IMODE(volume.stat().st_mode) == 0o600
    # again: kept as it is (a resize run twice, or after a crash)
    assert dk_admin.main(["grow-volume", str(volume), "2097152"]) == 0
    assert json.loads(capsys.readouterr().out)["old"] == 2097152
    # never smaller: refused in one line, the volume untouched
    assert dk_admin.main(["grow-volume", str(volume), "1048576"]) == 1
    err = capsys.readouterr().err
    assert "has 2097152 bytes, more than 1048576: a volume is never shrunk" in err
    assert volume.stat().st_size == 2097152
    for bad in (["grow-volume", str(volume), "lots"], ["grow-volume", str(volume), "0"]):
        assert dk_admin.main(bad) == 1
        assert "is not a size in bytes" in capsys.readouterr().err
    assert dk_admin.main(["grow-volume", str(tmp_path / "elsewhere.img"), "2097152"]) == 1
    assert "is not a volume in" in capsys.readouterr().err
    assert dk_admin.main(["grow-volume", str(disks / "missing.img"), "2097152"]) == 1
    assert "no volume" in capsys.readouterr().err
    assert not (disks / "missing.img").exists()
    (disks / "link.img").symlink_to(volume)
    assert dk_admin.main(["grow-volume", str(disks / "link.img"), "4194304"]) == 1
    assert volume.stat().st_size == 2097152
    assert dk_admin.main(["grow-volume", str(volume)]) == 2


def test_admin_ungrow_undoes_only_its_own_grow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    disks = tmp_path / "disks"
    monkeypatch.setattr(dk_admin, "DISKS", str(disks))
    volume = disks / "v.img"
    assert dk_admin.main(["make-disk", str(volume), "1048576"]) == 0
    volume.write_bytes(b"mine" + bytes(1048572))
    assert dk_admin.main(["grow-volume", str(volume), "2097152"]) == 0
    assert dk_admin.main(["ungrow-volume", str(volume), "1048576", "2097152"]) == 0
    assert volume.read_bytes() == b"mine" + bytes(1048572)
    # the undo again (after a crash of the console): nothing to do
    assert dk_admin.main(["ungrow-volume", str(volume), "1048576", "2097152"]) == 0
    assert volume.stat().st_size == 1048576
    # a volume of another size is not this grow's: left as it is
    assert dk_admin.main(["grow-volume", str(volume), "3145728"]) == 0
    capsys.readouterr()
    assert dk_admin.main(["ungrow-volume", str(volume), "1048576", "2097152"]) == 1
    assert "has 3145728 bytes, neither 1048576 nor 2097152: left as it is" in (
        capsys.readouterr().err
    )
    assert volume.stat().st_size == 3145728
    assert dk_admin.main(["ungrow-volume", str(volume), "3145728", "1048576"]) == 1
    assert "not the undo of a grow" in capsys.readouterr().err
    assert volume.stat().st_size == 3145728


def test_admin_grow_bitmap_marks_the_new_chunks_dirty_and_ungrow_keeps_the_old_bits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.replication.bitmap import Bitmap

    path = tmp_path / "bitmap"
    bm = Bitmap.create(path, volume_size=1 << 20, chunk_size=65536, targets=["lab2"],
                       dirty=False)  # fmt: skip
    bm.mark_write(0, 1, unreplicated=["lab2"])  # chunk 0 dirty before the resize
    bm.close()
    assert dk_admin.main(["grow-bitmap", str(path), str(2 << 20)]) == 0
    assert json.loads(capsys.readouterr().out) == {"path": str(path), "old": 1 << 20,
                                                   "size": 2 << 20}  # fmt: skip
    bm = Bitmap.open(path)
    assert bm.volume_size == 2 << 20
    assert list(bm.dirty_chunks("lab2")) == [0, *range(16, 32)]  # its bit, the new space
    bm.close()
    assert dk_admin.main(["grow-bitmap", str(path), str(1 << 20)]) == 1
    assert "covers 2097152 bytes, more than 1048576: never shrunk" in capsys.readouterr().err
    assert dk_admin.main(["ungrow-bitmap", str(path), str(1 << 20)]) == 0
    bm = Bitmap.open(path)
    assert bm.volume_size == 1 << 20 and list(bm.dirty_chunks("lab2")) == [0]
    bm.close()
    # a node that was never a source has no bitmap file yet: nothing to grow, nor undo
    assert dk_admin.main(["grow-bitmap", str(tmp_path / "none"), str(2 << 20)]) == 0
    assert json.loads(capsys.readouterr().out)["old"] is None
    assert dk_admin.main(["ungrow-bitmap", str(tmp_path / "none"), str(1 << 20)]) == 0
    assert not (tmp_path / "none").exists()
    assert dk_admin.main(["grow-bitmap", str(tmp_path), str(2 << 20)]) == 1
    assert "is not a bitmap file" in capsys.readouterr().err


def test_admin_key_put_takes_only_a_key_line_and_writes_it_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(names, "STATE_DIR", str(tmp_path / "dk"))
    psk = tmp_path / "dk" / "m1" / "psk"
    monkeypatch.setattr("sys.stdin", _lines("not a key\n"))
    assert dk_admin.main(["key-put", "m1"]) == 1
    assert "standard input is not a key line" in capsys.readouterr().err
    assert not psk.exists()
    key = "lkmirror:" + "ab" * 32
    monkeypatch.setattr("sys.stdin", _lines(key + "\n"))
    assert dk_admin.main(["key-put", "m1"]) == 0
    assert psk.read_text() == key + "\n"
    assert stat.S_IMODE(psk.stat().st_mode) == 0o600
    assert stat.S_IMODE(psk.parent.stat().st_mode) == 0o700
    assert dk_admin.main(["key-check", "m1"]) == 0
    assert capsys.readouterr().out.strip() == '{"exists": true, "mode": "0600"}'
    assert dk_admin.main(["key-put", "../m1"]) == 1


def _lines(text: str) -> object:
    import io

    return io.StringIO(text)


def test_install_agents_writes_the_agents_executable_naming_this_installation(
    tmp_path: Path,
) -> None:
    ocf, fence = tmp_path / "ocf" / "lkconsole", tmp_path / "sbin"
    done = run_lkctl(["cluster", "install-agents", str(ocf), "--fence-dir", str(fence)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"Installed {ocf / 'app'}",
        f"Installed {ocf / 'datakeeper'}",
        f"Installed {fence / 'fence_lkswitch'}",
    ]
    for path in (ocf / "app", ocf / "datakeeper", fence / "fence_lkswitch"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
    installed = (ocf / "datakeeper").read_text()
    assert f'LKCONSOLE_PROJECT="{agents.PROJECT}"' in installed
    assert (ocf / "app").read_bytes() == (agents.OCF_SOURCE / "app").read_bytes()
    # the installed agent prints its meta-data wherever it is, and it is valid XML
    meta = subprocess.run(
        [str(ocf / "datakeeper"), "meta-data"], capture_output=True, text=True, check=True
    )
    assert '<resource-agent name="datakeeper"' in meta.stdout
    lint = subprocess.run(["xmllint", "--noout", "-"], input=meta.stdout, text=True, check=False)
    assert lint.returncode == 0
    assert not [p.name for p in ocf.iterdir() if p.name.startswith(".")]  # no temporaries


def test_install_agents_into_a_folder_that_cannot_be_made_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = run_lkctl(["cluster", "install-agents", str(blocker / "ocf"), "--fence-dir",
                      str(tmp_path / "sbin")])  # fmt: skip
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert f"cannot make {blocker / 'ocf'}" in done.stderr
    assert done.stdout == ""


def test_the_agent_without_an_installation_says_how_to_install_it(tmp_path: Path) -> None:
    lone = tmp_path / "datakeeper"
    lone.write_text(AGENT.read_text())
    lone.chmod(0o755)
    env = {**os.environ, "OCF_RESOURCE_INSTANCE": "m1"}
    done = subprocess.run([str(lone), "monitor"], capture_output=True, text=True, env=env)
    assert done.returncode == 5  # OCF_ERR_INSTALLED
    assert "run lkctl cluster install-agents on" in done.stderr
