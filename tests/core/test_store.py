"""The SQLite store: round trips, migrations, optimistic locking and every bad case."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.backends.lab.store import DB_NAME, SCHEMA_VERSION, Store
from core.errors import ConflictError, StoreError
from core.model import (
    Mirror,
    MirrorState,
    MirrorTarget,
    Resource,
    ResourceKind,
    ResourceState,
    ServerState,
    SwitchbackType,
)
from tests.helpers import file_digest, read_only_dir


def _hierarchy(store: Store) -> int:
    with store.transaction() as txn:
        txn.add_server("a")
        txn.add_server("b", ServerState.DEAD)
        hid = txn.add_hierarchy(SwitchbackType.INTELLIGENT)
        top = txn.add_resource(hid, ResourceKind.FILESYSTEM)
        dk = txn.add_resource(hid, ResourceKind.DATAKEEPER)
        txn.set_root(hid, top)
        txn.add_dependency(top, dk)
        txn.add_instance(
            Resource(
                top,
                hid,
                ResourceKind.FILESYSTEM,
                "a",
                "/mnt",
                ResourceState.ISP,
                mount_point="/mnt",
                fs_type="xfs",
            )
        )
        txn.add_instance(
            Resource(
                dk,
                hid,
                ResourceKind.DATAKEEPER,
                "a",
                "dk-mnt",
                ResourceState.ISP,
                volume="/disks/v.img",
                bitmap_file=None,
            )
        )
        txn.set_priority(hid, "a", 1)
        txn.add_mirror(
            Mirror(
                dk,
                "a",
                1 << 20,
                65536,
                500_000,
                False,
                (MirrorTarget("b", MirrorState.RESYNCING, bytes_done=5, bytes_total=10),),
            )
        )
    return hid


def test_round_trip_of_a_hierarchy(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    hid = _hierarchy(store)
    store.close()

    again = Store(tmp_path / "home")
    cluster = again.cluster()
    assert [(s.name, s.state) for s in cluster.servers] == [
        ("a", ServerState.ALIVE),
        ("b", ServerState.DEAD),
    ]
    h = cluster.hierarchy(hid)
    assert h is not None
    assert h.root_tag == "/mnt"
    assert [h.tag_of(r) for r in h.resource_ids()] == ["/mnt", "dk-mnt"]
    assert h.in_service_server == "a"
    assert h.priority_of("a") == 1
    fs = h.instance(h.root_id, "a")
    assert fs is not None and fs.mount_point == "/mnt" and fs.fs_type == "xfs"
    mirror = h.mirrors[0]
    assert mirror.target("b") == MirrorTarget(
        "b", MirrorState.RESYNCING, bytes_done=5, bytes_total=10
    )
    assert mirror.target("b").percent == 50  # type: ignore[union-attr]
    assert again.integrity_check() == "ok"


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(RuntimeError), store.transaction() as txn:
        txn.add_server("a")
        raise RuntimeError("step failed")
    assert store.servers() == ()


def test_missing_directory_is_created(tmp_path: Path) -> None:
    home = tmp_path / "does" / "not" / "exist"
    Store(home).close()
    assert (home / DB_NAME).is_file()


def test_new_database_is_migrated_to_the_current_schema(tmp_path: Path) -> None:
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_older_schema_is_migrated_forward_keeping_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.backends.lab.store as store_module

    # A database written by the first release (schema 1: no output-panel table).
    with monkeypatch.context() as m:
        m.setattr(store_module, "_MIGRATIONS", store_module._MIGRATIONS[:1])
        m.setattr(store_module, "SCHEMA_VERSION", 1)
        old = Store(tmp_path)
        hid = _hierarchy(old)
        old.close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "oplog" not in tables

    again = Store(tmp_path)
    h = again.hierarchy(hid)
    assert h is not None and h.root_tag == "/mnt"
    with again.transaction() as txn:
        txn.add_log_line("test", "INFO", "after migration")
    assert again.log_lines()[-1][3] == "after migration"
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused_with_both_versions(tmp_path: Path) -> None:
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    before = file_digest(tmp_path / DB_NAME)
    with pytest.raises(StoreError) as err:
        Store(tmp_path)
    assert f"schema version {SCHEMA_VERSION + 7}" in str(err.value)
    assert f"newer than the {SCHEMA_VERSION}" in str(err.value)
    assert file_digest(tmp_path / DB_NAME) == before


def test_corrupt_database_is_named_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    db.write_bytes(b"this is not an sqlite database at all " * 200)
    before = file_digest(db)
    with pytest.raises(StoreError) as err:
        Store(tmp_path)
    assert str(db) in str(err.value)
    assert "damaged" in str(err.value)
    assert file_digest(db) == before


def test_damaged_pages_are_reported_not_overwritten(tmp_path: Path) -> None:
    store = Store(tmp_path)
    _hierarchy(store)
    store.close()
    db = tmp_path / DB_NAME
    data = bytearray(db.read_bytes())
    data[0:16] = b"garbage-header!!"  # the SQLite magic is gone
    db.write_bytes(bytes(data))
    before = file_digest(db)
    with pytest.raises(StoreError, match="damaged"):
        Store(tmp_path)
    assert file_digest(db) == before


def test_read_only_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    with read_only_dir(tmp_path / "ro") as home, pytest.raises(StoreError) as err:
        Store(home)
    assert "read-only" in str(err.value)
    assert str(tmp_path / "ro") in str(err.value)


def test_two_consoles_cannot_both_change_one_hierarchy(tmp_path: Path) -> None:
    first, second = Store(tmp_path), Store(tmp_path)
    hid = _hierarchy(first)
    seen_by_first = first.hierarchy(hid)
    seen_by_second = second.hierarchy(hid)
    assert seen_by_first is not None and seen_by_second is not None
    with first.transaction() as txn:
        txn.claim(hid, seen_by_first.version)
        txn.set_switchback(hid, SwitchbackType.INTELLIGENT)
    with pytest.raises(ConflictError, match="changed by someone else"), second.transaction() as t:
        t.claim(hid, seen_by_second.version)
    h = second.hierarchy(hid)
    assert h is not None and h.version == seen_by_first.version + 1


def test_data_version_tells_a_watcher_about_other_writers(tmp_path: Path) -> None:
    watcher, writer = Store(tmp_path), Store(tmp_path)
    before = watcher.data_version()
    assert watcher.data_version() == before
    with writer.transaction() as txn:
        txn.add_server("x")
    assert watcher.data_version() != before


def test_output_lines_are_capped(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.transaction() as txn:
        for i in range(30):
            txn.add_log_line("op", "INFO", f"line {i}", keep=10)
    lines = store.log_lines()
    assert [t for *_rest, t in lines] == [f"line {i}" for i in range(20, 30)]


def test_output_lines_after_an_id() -> None:
    store = Store()
    with store.transaction() as txn:
        for i in range(5):
            txn.add_log_line("op", "INFO", f"line {i}")
    rows = store.log_lines_after(0)
    assert [r.text for r in rows] == [f"line {i}" for i in range(5)]
    assert [r.text for r in store.log_lines_after(rows[2].id)] == ["line 3", "line 4"]
