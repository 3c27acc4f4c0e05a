"""The NBD transport's configuration, keys and environment: no network, no root."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path

import pytest

from core.replication import nbd, nbdkit
from core.replication.hosted import EngineConfig, EngineConfigError, EngineTarget
from core.replication.nbd import NbdEndpoint, NbdError, NbdUnavailable
from core.replication.nbdkit import NbdkitError, check_psk_file, make_psk_file


def test_an_nbds_uri_gives_the_endpoint_and_back() -> None:
    ep = NbdEndpoint.from_uri(
        "nbds://alice@10.0.0.2:10900/vol1?tls-psk-file=/etc/lk/keys/m.psk", deadline=3
    )
    assert (ep.host, ep.port, ep.export, ep.psk_user) == ("10.0.0.2", 10900, "vol1", "alice")
    assert ep.psk_file == Path("/etc/lk/keys/m.psk") and ep.deadline == 3
    assert ep.describe() == "nbds://alice@10.0.0.2:10900/vol1"  # no key file, no secret
    assert NbdEndpoint.from_uri(ep.uri()) == ep.with_deadlines(nbd.DEFAULT_DEADLINE)
    assert ep.owner_lock_path == Path("/etc/lk/keys/m.psk.10.0.0.2_10900.owner")
    v6 = NbdEndpoint.from_uri("nbds://[fd00::2]/?tls-psk-file=/k")
    assert v6.host == "fd00::2" and v6.port == 10809 and v6.psk_user == "lkmirror"
    assert v6.describe() == "nbds://lkmirror@[fd00::2]:10809/"


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("nbd://10.0.0.2/?tls-psk-file=/k", "must be an nbds://"),
        ("nbds+unix:///?socket=/s&tls-psk-file=/k", "must be an nbds://"),
        ("nbds://10.0.0.2/", "tls-psk-file"),
        ("nbds://10.0.0.2:99999/?tls-psk-file=/k", "port"),
        ("nbds:///?tls-psk-file=/k", "needs a host"),
    ],
)
def test_targets_need_tls_with_a_key(uri: str, says: str) -> None:
    with pytest.raises(NbdError, match=says):
        NbdEndpoint.from_uri(uri)


def test_deadlines_must_be_positive() -> None:
    with pytest.raises(NbdError, match="deadlines must be > 0"):
        NbdEndpoint(host="h", psk_file=Path("/k"), deadline=0)


def test_a_key_file_is_0600_from_the_start_and_never_overwritten(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        key = make_psk_file(tmp_path / "keys" / "m.psk", "lkmirror")
    finally:
        os.umask(old)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    user, hexkey = key.read_text().strip().split(":")
    assert user == "lkmirror" and len(hexkey) == 64 and int(hexkey, 16) >= 0
    with pytest.raises(NbdkitError, match="already exists"):
        make_psk_file(key)
    assert make_psk_file(key, replace=True).read_text() != f"{user}:{hexkey}\n"
    assert check_psk_file(key) == key
    key.chmod(0o644)
    with pytest.raises(NbdkitError, match="chmod 600"):
        check_psk_file(key)
    with pytest.raises(NbdkitError, match="no such key file"):
        check_psk_file(tmp_path / "missing.psk")
    with pytest.raises(NbdkitError, match="user name"):
        make_psk_file(tmp_path / "bad.psk", "a:b")


def test_the_aes_priority_file_applies_only_where_the_cpu_has_aes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "tls-disabled-cipher = CHACHA20-POLY1305" in nbd.TLS_PRIORITY_FILE.read_text()
    monkeypatch.delenv("GNUTLS_SYSTEM_PRIORITY_FILE", raising=False)
    monkeypatch.setattr(nbd, "cpu_has_aes", lambda: True)
    assert nbd.tls_environment() == {"GNUTLS_SYSTEM_PRIORITY_FILE": str(nbd.TLS_PRIORITY_FILE)}
    monkeypatch.setattr(nbd, "cpu_has_aes", lambda: False)
    assert nbd.tls_environment() == {}
    monkeypatch.setenv("GNUTLS_SYSTEM_PRIORITY_FILE", "/etc/mine")
    monkeypatch.setattr(nbd, "cpu_has_aes", lambda: True)
    assert nbd.tls_environment() == {}  # the administrator's choice wins


@pytest.mark.skipif(
    importlib.util.find_spec("nbd") is not None, reason="this interpreter has libnbd"
)
def test_without_libnbd_the_error_says_what_to_install_and_where() -> None:
    with pytest.raises(NbdUnavailable, match=r"python3-libnbd.*/usr/bin/python3"):
        nbd.load_libnbd()
    assert not nbd.libnbd_available()


def test_kernel_nbd_detection_matches_the_system() -> None:
    has = nbdkit.kernel_has_nbd()
    if Path("/sys/module/nbd").exists():
        assert has
    assert isinstance(has, bool)


def test_the_engine_configuration_is_private_and_round_trips(tmp_path: Path) -> None:
    config = EngineConfig(
        source="/data/src.img",
        bitmap="/opt/LifeKeeper/bitmap_datarep",
        targets=(EngineTarget("lab2", "nbds://lkmirror@10.0.0.2/?tls-psk-file=/k", "TARGET"),),
        status_file="/run/lk/status.json",
        asynchronous=True,
    )
    path = config.save(tmp_path / "engine.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert EngineConfig.load(path) == config
    assert config.targets[0].endpoint().describe() == "nbds://lkmirror@10.0.0.2:10809/"
    path.write_text("{}")
    with pytest.raises(EngineConfigError, match="cannot read the engine's configuration"):
        EngineConfig.load(path)


def test_nbdkit_runs_outside_an_activated_virtual_environment(tmp_path: Path) -> None:
    """nbdkit's embedded Python is the system's; a venv first on PATH (an activated one)
    would hide libnbd's bindings from it, so its PATH leaves the venv out."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    env = nbdkit.outside_venv(
        {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin", "VIRTUAL_ENV": str(venv), "X": "1"}
    )
    assert env == {"PATH": "/usr/local/bin:/usr/bin", "X": "1"}
