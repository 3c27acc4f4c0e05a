"""The one source of truth: an SQLite database in the data directory.

- stdlib ``sqlite3`` in WAL mode, foreign keys on, ``busy_timeout`` for several processes;
- a schema version (``PRAGMA user_version``) with forward migrations;
- one transaction per operation: :meth:`Store.transaction` takes the write lock at once
  (``BEGIN IMMEDIATE``) and commits everything or nothing;
- an optimistic version counter per hierarchy: an operation states the version it read
  (:meth:`Txn.claim`) and the loser of a race gets :class:`ConflictError`.

A ``Store`` belongs to the thread that opened it; a worker thread opens its own.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import paths
from core.backends.lab import store_servers
from core.errors import ConflictError, StoreError
from core.files import open_private, private_dir, tighten
from core.history import LogRow
from core.model import (
    Cluster,
    Dependency,
    Equivalency,
    Hierarchy,
    Mirror,
    MirrorState,
    MirrorTarget,
    Resource,
    ResourceKind,
    ResourceState,
    ServerState,
    SwitchbackType,
)

if TYPE_CHECKING:
    from core.model import Server

DB_NAME = "lkconsole.db"

_MIGRATIONS: list[str] = [
    # 1: the cluster
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE servers (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        state TEXT NOT NULL
    );
    CREATE TABLE hierarchies (
        id INTEGER PRIMARY KEY,
        switchback TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 1,
        root_id INTEGER
    );
    CREATE TABLE resources (
        id INTEGER PRIMARY KEY,
        hierarchy_id INTEGER NOT NULL REFERENCES hierarchies(id) ON DELETE CASCADE,
        kind TEXT NOT NULL
    );
    CREATE TABLE dependencies (
        parent_id INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
        child_id INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
        PRIMARY KEY (parent_id, child_id)
    );
    CREATE TABLE instances (
        resource_id INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
        server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        state TEXT NOT NULL,
        mount_point TEXT,
        fs_type TEXT,
        volume TEXT,
        bitmap_file TEXT,
        PRIMARY KEY (resource_id, server),
        UNIQUE (server, tag)
    );
    CREATE TABLE equivalencies (
        hierarchy_id INTEGER NOT NULL REFERENCES hierarchies(id) ON DELETE CASCADE,
        server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        priority INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 999),
        PRIMARY KEY (hierarchy_id, server),
        UNIQUE (hierarchy_id, priority)
    );
    CREATE TABLE mirrors (
        resource_id INTEGER PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
        source TEXT NOT NULL REFERENCES servers(name),
        volume_size INTEGER NOT NULL,
        chunk_size INTEGER NOT NULL,
        speed_limit_kbps INTEGER NOT NULL,
        asynchronous INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE mirror_targets (
        resource_id INTEGER NOT NULL REFERENCES mirrors(resource_id) ON DELETE CASCADE,
        server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        bytes_done INTEGER NOT NULL DEFAULT 0,
        bytes_total INTEGER NOT NULL DEFAULT 0,
        rate REAL NOT NULL DEFAULT 0,
        eta REAL,
        dirty_chunks INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (resource_id, server)
    );
    """,
    # 2: the output panel's lines, kept across restarts
    """
    CREATE TABLE oplog (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        operation TEXT NOT NULL,
        level TEXT NOT NULL,
        text TEXT NOT NULL
    );
    """,
    # 3: operations whose rows were committed (tells crash recovery not to undo them)
    """
    CREATE TABLE committed_ops (
        op_id TEXT PRIMARY KEY,
        finished REAL NOT NULL
    );
    """,
    # 4: the lab's users (the local owner of the data directory needs none)
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0
    );
    """,
    # 5: the operation history (append-only through core.history)
    """
    CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        started REAL NOT NULL,
        duration REAL NOT NULL,
        user TEXT NOT NULL,
        role TEXT NOT NULL,
        operation TEXT NOT NULL,
        command TEXT NOT NULL,
        steps TEXT NOT NULL,
        ok INTEGER NOT NULL,
        result TEXT NOT NULL
    );
    CREATE INDEX history_started ON history(started);
    """,
    # 6: online verify of mirror targets
    """
    ALTER TABLE mirror_targets ADD COLUMN verify_percent INTEGER;
    ALTER TABLE mirror_targets ADD COLUMN last_verified REAL;
    ALTER TABLE mirror_targets ADD COLUMN last_differences INTEGER;
    """,
    # 7: the hashing scheme of each password (older ones are re-hashed at the next
    # sign-in), and failed sign-ins counted per name, known or not
    """
    ALTER TABLE users ADD COLUMN scheme TEXT NOT NULL DEFAULT 'scrypt:16384:8:1';
    CREATE TABLE signin_failures (
        name TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        locked_until REAL NOT NULL,
        last REAL NOT NULL
    );
    """,
    # 8: the settings of IP and Generic Application resources (JSON [[name, value], ...])
    # and why a resource is in its state (a failed monitor's output)
    """
    ALTER TABLE instances ADD COLUMN settings TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE instances ADD COLUMN reason TEXT NOT NULL DEFAULT '';
    """,
    # 9: comm paths between servers, Server Properties (shutdown strategy,
    # failover confirmation) and the failovers waiting for a confirmation. Existing labs
    # get the two paths per pair of servers a new lab is made with (store_servers.py).
    """
    CREATE TABLE comm_paths (
        id INTEGER PRIMARY KEY,
        server_a TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        server_b TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        address_a TEXT NOT NULL,
        address_b TEXT NOT NULL,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL,
        UNIQUE (server_a, address_a, server_b, address_b)
    );
    ALTER TABLE servers ADD COLUMN shutdown_strategy TEXT NOT NULL DEFAULT 'SWITCHOVER';
    ALTER TABLE servers ADD COLUMN confirm_timeout INTEGER NOT NULL DEFAULT 600;
    ALTER TABLE servers ADD COLUMN confirm_default TEXT NOT NULL DEFAULT 'PROCEED';
    CREATE TABLE confirm_failover (
        server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        peer TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        PRIMARY KEY (server, peer)
    );
    CREATE TABLE pending_failovers (
        hierarchy_id INTEGER PRIMARY KEY REFERENCES hierarchies(id) ON DELETE CASCADE,
        from_server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        to_server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        asked REAL NOT NULL,
        deadline REAL NOT NULL,
        default_action TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    ALTER TABLE mirror_targets ADD COLUMN asynchronous INTEGER;
    INSERT INTO comm_paths(server_a, server_b, address_a, address_b, priority, state)
        SELECT a.name, b.name, '10.213.0.' || (10 + a.position),
               '10.213.0.' || (10 + b.position), 1, 'ALIVE'
        FROM servers a JOIN servers b ON a.position < b.position;
    INSERT INTO comm_paths(server_a, server_b, address_a, address_b, priority, state)
        SELECT a.name, b.name, '10.214.0.' || (10 + a.position),
               '10.214.0.' || (10 + b.position), 2, 'ALIVE'
        FROM servers a JOIN servers b ON a.position < b.position;
    """,
]

SCHEMA_VERSION = len(_MIGRATIONS)


class Store:
    """A connection to the cluster database. Use from the thread that opened it."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = (home or paths.data_dir()).expanduser()
        self.path = self.home / DB_NAME
        self._prepare_dir()
        self._conn = self._connect()
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- opening --------------------------------------------------------------------
    def _prepare_dir(self) -> None:
        """The data directory (0700) and the database file (0600), whatever the umask.

        SQLite gives the ``-wal`` and ``-shm`` files the database file's mode. An older
        installation made under a looser umask is tightened here (logged once)."""
        try:
            new = not self.home.exists()
            private_dir(self.home)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the data directory {self.home}: {exc.strerror or exc}"
            ) from exc
        if not os.access(self.home, os.W_OK | os.X_OK):
            raise StoreError(
                f"The data directory {self.home} is read-only: LK Console needs to write its "
                "database there. Make it writable, or set LKCONSOLE_HOME to another directory."
            )
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise StoreError(f"The database {self.path} is not readable and writable by this user.")
        if not new:
            tighten(self.home)
        if not self.path.exists():
            os.close(open_private(self.path, os.O_RDWR | os.O_CREAT))

    def _connect(self) -> sqlite3.Connection:
        try:
            # One thread uses a connection (core.backends.lab gives each its own); another
            # may only close it, once that thread is done with it.
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            # A corrupt or foreign file fails on the first real read.
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise sqlite3.DatabaseError(f"cannot switch to WAL (got {mode})")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(Exception):
                conn.close()
            if _is_readonly(exc):
                raise StoreError(
                    f"The database {self.path} is read-only ({exc}); make it writable."
                ) from exc
            raise StoreError(
                f"The database {self.path} is damaged or is not an LK Console database "
                f"({exc}). It was left untouched: move it aside to start a new lab, or "
                "restore it from a backup."
            ) from exc
        return conn

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"The database {self.path} has schema version {version}, newer than the "
                f"{SCHEMA_VERSION} this LK Console understands. Upgrade LK Console; the "
                "database was left untouched."
            )
        if version == SCHEMA_VERSION:
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            # Someone else may have migrated while we waited for the lock.
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, SCHEMA_VERSION):
                for statement in _split_sql(_MIGRATIONS[number]):
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {number + 1}")
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(f"Cannot prepare the database {self.path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    # -- writing --------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[Txn]:
        """One unit of work: every row is written, or none is."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"Cannot write to {self.path}: {exc}") from exc
        txn = Txn(self._conn)
        try:
            yield txn
        except BaseException:
            self._rollback()
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(f"Cannot write to {self.path}: {exc}") from exc

    # -- reading --------------------------------------------------------------------
    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap; for watching)."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def servers(self) -> tuple[Server, ...]:
        """The servers as they are powered (ALIVE or DEAD), with their properties."""
        return store_servers.read_servers(self._conn)

    def cluster(self) -> Cluster:
        """Everything, read in one consistent snapshot."""
        with self._snapshot():
            servers = self.servers()
            hierarchies = tuple(_read_hierarchies(self._conn))
            paths = store_servers.read_comm_paths(self._conn, servers)
            pending = store_servers.read_pending(self._conn, hierarchies)
        return Cluster(store_servers.shown_states(servers, paths), hierarchies, paths, pending)

    def hierarchy(self, hierarchy_id: int) -> Hierarchy | None:
        with self._snapshot():
            return self._hierarchy(hierarchy_id)

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Read several tables consistently (inside a write transaction: as it is)."""
        if self._conn.in_transaction:
            yield
            return
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    def _hierarchy(self, hierarchy_id: int) -> Hierarchy | None:
        return _read_hierarchy(self._conn, hierarchy_id)

    def log_lines(self, limit: int = 500) -> list[tuple[float, str, str, str]]:
        """The last ``limit`` output-panel lines, oldest first: (time, operation, level, text)."""
        rows = self._conn.execute(
            "SELECT ts, operation, level, text FROM oplog ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in reversed(rows)]

    def log_lines_after(self, last_id: int, limit: int = 2000) -> list[LogRow]:
        """Output-panel lines newer than ``last_id`` (0: the last ``limit``), oldest first."""
        rows = self._conn.execute(
            "SELECT id, ts, operation, level, text FROM oplog WHERE id > ? "
            "ORDER BY id DESC LIMIT ?",
            (last_id, limit),
        ).fetchall()
        return [LogRow(r[0], r[1], r[2], r[3], r[4]) for r in reversed(rows)]

    def committed(self, op_id: str) -> bool:
        """Whether the operation ``op_id`` committed its rows (see core.backends.lab.journal)."""
        row = self._conn.execute("SELECT 1 FROM committed_ops WHERE op_id=?", (op_id,))
        return row.fetchone() is not None

    def checkpoint(self) -> None:
        """Move everything committed from the WAL into the database file."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def integrity_check(self) -> str:
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])


class Txn:
    """The write methods, valid inside :meth:`Store.transaction` only."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._c.execute(sql, params)

    # -- meta and servers ---------------------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        self._c.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def delete_meta(self, key: str) -> None:
        self._c.execute("DELETE FROM meta WHERE key=?", (key,))

    def add_server(self, name: str, state: ServerState = ServerState.ALIVE) -> None:
        position = self._c.execute("SELECT coalesce(max(position), 0) + 1 FROM servers")
        self._c.execute(
            "INSERT INTO servers(name, position, state) VALUES (?, ?, ?)",
            (name, position.fetchone()[0], state.name),
        )

    def set_server_state(self, name: str, state: ServerState) -> None:
        self._c.execute("UPDATE servers SET state=? WHERE name=?", (state.name, name))

    # -- hierarchies ----------------------------------------------------------------
    def claim(self, hierarchy_id: int, expected_version: int) -> int:
        """Bump the hierarchy's version if it is still ``expected_version``.

        Raises ConflictError when someone else changed the hierarchy since it was read.
        """
        row = self._c.execute(
            "SELECT version FROM hierarchies WHERE id=?", (hierarchy_id,)
        ).fetchone()
        if row is None:
            raise ConflictError(
                "The hierarchy was deleted by someone else since you looked at it; reload."
            )
        if row[0] != expected_version:
            raise ConflictError(
                "The hierarchy was changed by someone else since you looked at it "
                f"(version {row[0]}, you had {expected_version}); reload and try again."
            )
        self._c.execute("UPDATE hierarchies SET version = version + 1 WHERE id=?", (hierarchy_id,))
        return expected_version + 1

    def add_hierarchy(self, switchback: SwitchbackType) -> int:
        cur = self._c.execute("INSERT INTO hierarchies(switchback) VALUES (?)", (switchback.value,))
        return int(cur.lastrowid or 0)

    def set_root(self, hierarchy_id: int, resource_id: int) -> None:
        self._c.execute("UPDATE hierarchies SET root_id=? WHERE id=?", (resource_id, hierarchy_id))

    def set_switchback(self, hierarchy_id: int, switchback: SwitchbackType) -> None:
        self._c.execute(
            "UPDATE hierarchies SET switchback=? WHERE id=?", (switchback.value, hierarchy_id)
        )

    def delete_hierarchy(self, hierarchy_id: int) -> None:
        self._c.execute("DELETE FROM hierarchies WHERE id=?", (hierarchy_id,))

    def add_resource(self, hierarchy_id: int, kind: ResourceKind) -> int:
        cur = self._c.execute(
            "INSERT INTO resources(hierarchy_id, kind) VALUES (?, ?)", (hierarchy_id, kind.value)
        )
        return int(cur.lastrowid or 0)

    def add_dependency(self, parent_id: int, child_id: int) -> None:
        self._c.execute(
            "INSERT INTO dependencies(parent_id, child_id) VALUES (?, ?)", (parent_id, child_id)
        )

    def add_instance(self, resource: Resource) -> None:
        self._c.execute(
            "INSERT INTO instances(resource_id, server, tag, state, mount_point, fs_type, "
            "volume, bitmap_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                resource.resource_id,
                resource.server,
                resource.tag,
                resource.state.name,
                resource.mount_point,
                resource.fs_type,
                resource.volume,
                resource.bitmap_file,
            ),
        )
        if resource.settings or resource.reason:  # the columns of migration 8
            self._c.execute(
                "UPDATE instances SET settings=?, reason=? WHERE resource_id=? AND server=?",
                (
                    json.dumps([list(pair) for pair in resource.settings]),
                    resource.reason,
                    resource.resource_id,
                    resource.server,
                ),
            )

    def delete_instances(self, hierarchy_id: int, server: str) -> None:
        self._c.execute(
            "DELETE FROM instances WHERE server=? AND resource_id IN "
            "(SELECT id FROM resources WHERE hierarchy_id=?)",
            (server, hierarchy_id),
        )

    def set_instance_state(
        self, resource_id: int, server: str, state: ResourceState, reason: str = ""
    ) -> None:
        self._c.execute(
            "UPDATE instances SET state=?, reason=? WHERE resource_id=? AND server=?",
            (state.name, reason, resource_id, server),
        )

    def set_priority(self, hierarchy_id: int, server: str, priority: int) -> None:
        self._c.execute(
            "INSERT INTO equivalencies(hierarchy_id, server, priority) VALUES (?, ?, ?) "
            "ON CONFLICT(hierarchy_id, server) DO UPDATE SET priority=excluded.priority",
            (hierarchy_id, server, priority),
        )

    def delete_priority(self, hierarchy_id: int, server: str) -> None:
        self._c.execute(
            "DELETE FROM equivalencies WHERE hierarchy_id=? AND server=?", (hierarchy_id, server)
        )

    # -- mirrors --------------------------------------------------------------------
    def add_mirror(self, mirror: Mirror) -> None:
        self._c.execute(
            "INSERT INTO mirrors(resource_id, source, volume_size, chunk_size, "
            "speed_limit_kbps, asynchronous) VALUES (?, ?, ?, ?, ?, ?)",
            (
                mirror.resource_id,
                mirror.source,
                mirror.volume_size,
                mirror.chunk_size,
                mirror.speed_limit_kbps,
                int(mirror.asynchronous),
            ),
        )
        for t in mirror.targets:
            self.set_mirror_target(mirror.resource_id, t)

    def set_mirror_source(self, resource_id: int, source: str) -> None:
        self._c.execute("UPDATE mirrors SET source=? WHERE resource_id=?", (source, resource_id))

    def set_speed_limit(self, resource_id: int, kbps: int) -> None:
        self._c.execute(
            "UPDATE mirrors SET speed_limit_kbps=? WHERE resource_id=?", (kbps, resource_id)
        )

    def set_mirror_target(self, resource_id: int, target: MirrorTarget) -> None:
        self._c.execute(
            "INSERT INTO mirror_targets(resource_id, server, state, reason, bytes_done, "
            "bytes_total, rate, eta, dirty_chunks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(resource_id, server) DO UPDATE SET state=excluded.state, "
            "reason=excluded.reason, bytes_done=excluded.bytes_done, "
            "bytes_total=excluded.bytes_total, rate=excluded.rate, eta=excluded.eta, "
            "dirty_chunks=excluded.dirty_chunks",
            (
                resource_id,
                target.server,
                target.state.name,
                target.reason,
                target.bytes_done,
                target.bytes_total,
                target.rate,
                target.eta,
                target.dirty_chunks,
            ),
        )

    def set_verify(
        self,
        resource_id: int,
        server: str,
        *,
        percent: int | None,
        verified: float | None = None,
        differences: int | None = None,
    ) -> None:
        """A verify's progress (percent, None when not verifying) and, when done, its result."""
        if verified is None:
            self._c.execute(
                "UPDATE mirror_targets SET verify_percent=? WHERE resource_id=? AND server=?",
                (percent, resource_id, server),
            )
            return
        self._c.execute(
            "UPDATE mirror_targets SET verify_percent=?, last_verified=?, last_differences=? "
            "WHERE resource_id=? AND server=?",
            (percent, verified, differences, resource_id, server),
        )

    def delete_mirror_target(self, resource_id: int, server: str) -> None:
        self._c.execute(
            "DELETE FROM mirror_targets WHERE resource_id=? AND server=?", (resource_id, server)
        )

    # -- undo journal -------------------------------------------------------------------
    def mark_committed(self, op_id: str) -> None:
        self._c.execute(
            "INSERT INTO committed_ops(op_id, finished) VALUES (?, ?)", (op_id, time.time())
        )

    def forget_committed(self, op_id: str) -> None:
        self._c.execute("DELETE FROM committed_ops WHERE op_id=?", (op_id,))

    # -- output panel -----------------------------------------------------------------
    def add_log_line(self, operation: str, level: str, text: str, keep: int = 2000) -> None:
        self._c.execute(
            "INSERT INTO oplog(ts, operation, level, text) VALUES (?, ?, ?, ?)",
            (time.time(), operation, level, text),
        )
        self._c.execute("DELETE FROM oplog WHERE id <= (SELECT max(id) FROM oplog) - ?", (keep,))

    # -- dependencies between hierarchies (Create / Delete Dependency) --------------------
    def move_resources(self, resource_ids: list[int], hierarchy_id: int) -> None:
        """The resources ``resource_ids`` belong to ``hierarchy_id`` from now on."""
        self._c.executemany(
            "UPDATE resources SET hierarchy_id=? WHERE id=?",
            [(hierarchy_id, rid) for rid in resource_ids],
        )

    def delete_dependency(self, parent_id: int, child_id: int) -> None:
        self._c.execute(
            "DELETE FROM dependencies WHERE parent_id=? AND child_id=?", (parent_id, child_id)
        )


def _read_hierarchy(c: sqlite3.Connection, hierarchy_id: int) -> Hierarchy | None:
    """One hierarchy with everything about it, read through ``c``."""
    found = _read_hierarchies(c, hierarchy_id)
    return found[0] if found else None


def _read_hierarchies(c: sqlite3.Connection, only: int | None = None) -> list[Hierarchy]:
    """Every hierarchy (or only one), in a handful of queries whatever their number."""
    where, args = ("WHERE r.hierarchy_id=?", (only,)) if only is not None else ("", ())
    rows = c.execute(
        "SELECT * FROM hierarchies" + (" WHERE id=?" if only is not None else "") + " ORDER BY id",
        args,
    ).fetchall()
    resources = _read_resources(c, where, args)
    dependencies = _read_dependencies(c, where, args)
    eq_where = "WHERE hierarchy_id=?" if only is not None else ""
    equivalencies = _read_equivalencies(c, eq_where, args)
    mirrors = _read_mirrors(c, where, args)
    return [
        Hierarchy(
            id=row["id"],
            switchback=SwitchbackType(row["switchback"]),
            version=row["version"],
            root_id=row["root_id"],
            resources=tuple(resources.get(row["id"], ())),
            dependencies=tuple(dependencies.get(row["id"], ())),
            equivalencies=tuple(equivalencies.get(row["id"], ())),
            mirrors=tuple(mirrors.get(row["id"], ())),
        )
        for row in rows
        if row["root_id"] is not None
    ]


# The readers below take the WHERE clause on resources r (and its arguments) of
# _read_hierarchies, and return what they read by hierarchy id.
def _read_resources(
    c: sqlite3.Connection, where: str, args: tuple[Any, ...]
) -> dict[int, list[Resource]]:
    resources: dict[int, list[Resource]] = {}
    for r in c.execute(
        "SELECT i.*, r.kind, r.hierarchy_id FROM instances i "
        "JOIN resources r ON r.id = i.resource_id JOIN servers s ON s.name = i.server "
        f"{where} ORDER BY r.hierarchy_id, i.resource_id, s.position",
        args,
    ):
        resources.setdefault(r["hierarchy_id"], []).append(
            Resource(
                resource_id=r["resource_id"],
                hierarchy_id=r["hierarchy_id"],
                kind=ResourceKind(r["kind"]),
                server=r["server"],
                tag=r["tag"],
                state=ResourceState[r["state"]],
                mount_point=r["mount_point"],
                fs_type=r["fs_type"],
                volume=r["volume"],
                bitmap_file=r["bitmap_file"],
                settings=tuple((str(k), str(v)) for k, v in json.loads(r["settings"] or "[]")),
                reason=r["reason"],
            )
        )
    return resources


def _read_dependencies(
    c: sqlite3.Connection, where: str, args: tuple[Any, ...]
) -> dict[int, list[Dependency]]:
    dependencies: dict[int, list[Dependency]] = {}
    for d in c.execute(
        "SELECT d.*, r.hierarchy_id FROM dependencies d JOIN resources r ON r.id = d.parent_id "
        f"{where} ORDER BY d.parent_id, d.child_id",
        args,
    ):
        dependencies.setdefault(d["hierarchy_id"], []).append(
            Dependency(d["parent_id"], d["child_id"])
        )
    return dependencies


def _read_equivalencies(
    c: sqlite3.Connection, eq_where: str, args: tuple[Any, ...]
) -> dict[int, list[Equivalency]]:
    """By hierarchy id; ``eq_where`` filters the equivalencies table itself."""
    equivalencies: dict[int, list[Equivalency]] = {}
    for e in c.execute(
        f"SELECT hierarchy_id, server, priority FROM equivalencies {eq_where} "
        "ORDER BY hierarchy_id, priority",
        args,
    ):
        equivalencies.setdefault(e["hierarchy_id"], []).append(
            Equivalency(e["server"], e["priority"])
        )
    return equivalencies


def _read_mirrors(
    c: sqlite3.Connection, where: str, args: tuple[Any, ...]
) -> dict[int, list[Mirror]]:
    targets = _read_mirror_targets(c, where, args)
    mirrors: dict[int, list[Mirror]] = {}
    for m in c.execute(
        "SELECT m.*, r.hierarchy_id FROM mirrors m JOIN resources r ON r.id = m.resource_id "
        f"{where} ORDER BY m.resource_id",
        args,
    ):
        mirrors.setdefault(m["hierarchy_id"], []).append(
            Mirror(
                resource_id=m["resource_id"],
                source=m["source"],
                volume_size=m["volume_size"],
                chunk_size=m["chunk_size"],
                speed_limit_kbps=m["speed_limit_kbps"],
                asynchronous=bool(m["asynchronous"]),
                targets=tuple(targets.get(m["resource_id"], ())),
            )
        )
    return mirrors


def _read_mirror_targets(
    c: sqlite3.Connection, where: str, args: tuple[Any, ...]
) -> dict[int, list[MirrorTarget]]:
    """By mirror (its resource id), not by hierarchy."""
    targets: dict[int, list[MirrorTarget]] = {}
    for t in c.execute(
        "SELECT t.* FROM mirror_targets t JOIN servers s ON s.name = t.server "
        "JOIN resources r ON r.id = t.resource_id "
        f"{where} ORDER BY t.resource_id, s.position",
        args,
    ):
        targets.setdefault(t["resource_id"], []).append(
            MirrorTarget(
                server=t["server"],
                state=MirrorState[t["state"]],
                reason=t["reason"],
                bytes_done=t["bytes_done"],
                bytes_total=t["bytes_total"],
                rate=t["rate"],
                eta=t["eta"],
                dirty_chunks=t["dirty_chunks"],
                verify_percent=t["verify_percent"],
                last_verified=t["last_verified"],
                last_differences=t["last_differences"],
                asynchronous=None if t["asynchronous"] is None else bool(t["asynchronous"]),
            )
        )
    return targets


def read_hierarchy(txn: Txn, hierarchy_id: int) -> Hierarchy | None:
    """A hierarchy as the open transaction ``txn`` sees it (after its own changes)."""
    return _read_hierarchy(txn._c, hierarchy_id)


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _is_readonly(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or getattr(exc, "errno", None) == errno.EROFS
