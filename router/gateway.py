"""The Python API of the router, for tests and embedding: SQL in, rows out, through real shards.

    from router import gateway

    async with gateway.connect("cluster.yaml") as gw:
        rows = await gw.execute("SELECT name FROM customer WHERE customer_id = %s", [5],
                                dialect="mysql", keyspace="customer")
        async with gw.stream("SELECT * FROM corder ORDER BY order_id", keyspace="customer") as ex:
            async for batch in ex:
                ...
        async with gw.session(dialect="postgres", keyspace="customer") as s:
            await s.execute("BEGIN")
            await s.execute("UPDATE customer SET name = 'x' WHERE customer_id = 5")
            await s.execute("COMMIT")

``connect`` takes a config file path, a parsed ``ClusterConfig``, or a config document (dict). It builds the
cluster snapshot (from the config, or, with ``topology=True``, from the topology store the config names, seeded
with the config's VSchema and followed as it changes), the backend pools for that snapshot, the planner, and, with
``twopc_dir``, the two-phase-commit coordinator, whose decision log is recovered before the first statement.

The gateway also keeps the schema the shards report (``router.engine.schema_tracker``): read at start, after
every DDL the engine runs and on ``reload_schema()``, and published in the snapshot (``snapshot.schema``) for the
planner. Each published change moves the snapshot's version on, so plans made against the old schema retire. With a
topology store the snapshot's version is the store's VSchema version until the first schema change; after that it
runs ahead of it (the store version still guards ALTER VSCHEMA's compare-and-swap).

``execute`` returns a ``Result``: a list of row tuples with ``columns``, ``column_names``, ``rows_affected``,
``last_insert_id`` and ``warnings``. Bind parameters: positional (``?`` / ``%s`` / ``$1``) as a sequence, or
named (``:name``) as a mapping.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from router.access import AccessPolicy
from router.backend.health import ReplicaHealth
from router.backend.pool_config import PoolConfig
from router.backend.pools import PoolSet
from router.backend.sqlkind import first_keyword
from router.config_sections import load_config, parse_config
from router.engine.buffering import Buffer
from router.engine.client_limits import ClientLimiter
from router.engine.consolidate import Consolidator
from router.engine.context import Limits
from router.engine.pools_context import backend_dialect_of
from router.engine.run import Execution
from router.engine.schema_tracker import SchemaTracker
from router.engine.session import Result, Session
from router.engine.transaction import TxMode
from router.planner import Planner
from sharding.config import ClusterConfig
from sharding.errors import ConfigError
from sharding.schema import EMPTY_SCHEMA, SchemaSet
from sharding.snapshot import ClusterSnapshot
from sharding.topology.vschema_store import SnapshotSource, save_vschema, shards_from_config

__all__ = ["Gateway", "Result", "Session", "connect"]

log = logging.getLogger("shardgate.schema")
# Statements after which the tables of a keyspace may have changed (TRUNCATE, COMMENT… leave columns alone).
_SCHEMA_WORDS = frozenset({"CREATE", "ALTER", "DROP", "RENAME"})


def _load(config: ClusterConfig | str | os.PathLike[str] | Mapping[str, Any]) -> ClusterConfig:
    if isinstance(config, ClusterConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(dict(config), source="<dict>")
    return load_config(config)


class Gateway:
    """A router in this process (see the module docstring)."""

    def __init__(self, config: ClusterConfig | str | os.PathLike[str] | Mapping[str, Any], *,
                 limits: Limits | None = None, pool_config: PoolConfig | None = None,
                 twopc_dir: str | os.PathLike[str] | None = None, topology: bool = False,
                 tx_mode: TxMode | str = TxMode.MULTI, router_id: str = "", track_schema: bool = True,
                 schema_timeout: float = 10.0) -> None:
        self.config = _load(config)
        self.access = AccessPolicy.of(self.config)  # users, table ACLs, query rules; RELOAD swaps it
        self.reloader: Any = None  # router.admin_reload.ConfigReloader, made on the first RELOAD
        self.clients = ClientLimiter(lambda: self.config)  # client sessions at once, over both protocols
        self.limits = limits or Limits()
        self.pools = PoolSet(pool_config or PoolConfig())
        # Consolidation, the buffering hook, replica health: their config sections are read as they are in force
        # (RELOAD replaces ``self.config``).
        self.consolidator = Consolidator(source=lambda: self.config.sections.get("consolidation"))
        self.buffer = Buffer(source=lambda: self.config.sections.get("buffering"), pools=self.pools)
        self.replica_health = ReplicaHealth(self.pools, source=lambda: self.config.sections.get("replica_health"))
        self.planner = Planner()
        self.coordinator: Any = None
        self.tx_mode = TxMode(tx_mode)
        self.dialect_cache: dict[str, str] = {}
        self._twopc_dir = twopc_dir
        self._router_id = router_id
        self._topology = topology
        self._store: Any = None
        self._source: SnapshotSource | None = None
        self._snapshot: ClusterSnapshot | None = None
        self._sessions: set[Session] = set()
        self.recovery: Any = None
        self.track_schema = track_schema
        self.schema_tracker = SchemaTracker(self.pools, self.backend_dialect, timeout=schema_timeout)
        self._schema: SchemaSet = EMPTY_SCHEMA
        self._vschema_version: int | None = None  # the VSchema's own version (the store's, with a topology store)
        self._started = False

    # --- lifecycle -----------------------------------------------------------------------------------------------
    async def start(self) -> Gateway:
        shards = shards_from_config(self.config)
        if self._topology:
            from sharding.topology import open_store

            self._store = open_store(self.config.topology)
            self._source = SnapshotSource(self._store, shards, on_snapshot=self._install, seed=self.config.vschema)
            snapshot = await self._source.start()
        else:
            snapshot = ClusterSnapshot.build(1, self.config.vschema, shards)
        await self._install(snapshot)
        if self.track_schema:
            await self.reload_schema()
        if self._twopc_dir is not None:
            from router.engine.twopc import TwoPhaseCoordinator

            self.coordinator = TwoPhaseCoordinator(self._twopc_dir, self._router_id)
            self.recovery = await self.coordinator.recover(self.pools)
        self._started = True
        return self

    async def _install(self, snapshot: ClusterSnapshot) -> None:
        """Switch to a snapshot of a new VSchema (``snapshot.version`` is the VSchema's version). It keeps the
        tracked schema, and its version moves past the current snapshot's (schema changes may have run ahead)."""
        def stale() -> bool:
            return self._vschema_version is not None and snapshot.version <= self._vschema_version

        if stale():
            return
        await self.pools.apply(snapshot)
        if stale():  # a newer VSchema was installed meanwhile
            return
        self.replica_health.start_if_needed()
        current = self._snapshot
        version = snapshot.version if current is None else max(snapshot.version, current.version + 1)
        self._vschema_version = snapshot.version
        self.dialect_cache.clear()
        self._snapshot = snapshot.replace(version=version, schema=self._schema)

    # --- the tracked schema ------------------------------------------------------------------------------------
    @property
    def schema(self) -> SchemaSet:
        """The schema the shards reported last (``snapshot.schema``)."""
        return self._schema

    async def reload_schema(self, keyspace: str | None = None) -> SchemaSet:
        """Read the tables of every keyspace (or one) from the shards' catalogs and publish them; returns the
        schema now in force. Shards that disagree are in ``.disagreements``; unreadable ones in ``.errors``."""
        snapshot = self.snapshot
        names = None if keyspace is None else [keyspace]
        read = await self.schema_tracker.load(snapshot, names, base=EMPTY_SCHEMA)
        schema = self._schema
        for name in read.keyspaces:
            newest = self.schema_tracker.latest(name)  # a later refresh may have finished before this one resumed
            if newest is not None:
                schema = schema.with_keyspace(newest)
        self._publish_schema(schema)
        return self._schema

    def _publish_schema(self, schema: SchemaSet) -> None:
        if schema == self._schema:
            return  # nothing the planner sees changed: cached plans stay
        self._schema = schema
        current = self._snapshot
        if current is None:
            return
        # Before start() returns nothing has planned against the snapshot: the schema joins it at its version.
        version = current.version + 1 if self._started else current.version
        self._snapshot = current.replace(version=version, schema=schema)

    async def schema_changed(self, keyspace: str, session: Session | None = None, sql: str = "") -> None:
        """Called by the engine after it ran DDL on ``keyspace`` (``sql``: the statement, to skip those that change
        no table). Inside a PostgreSQL transaction the change is seen by others only at COMMIT, so the refresh waits
        for the session's transaction to end."""
        if not self.track_schema or keyspace not in self.snapshot.keyspaces:
            return
        if sql and first_keyword(sql) not in _SCHEMA_WORDS:
            return
        if session is not None and session.tx is not None and self.backend_dialect(keyspace) == "postgres" \
                and isinstance(session, _TrackedSession):
            session.schema_pending.add(keyspace)
            return
        try:
            await self.reload_schema(keyspace)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the DDL itself went through: report, keep the last schema
            log.warning("schema_reload_failed keyspace=%s error=%s", keyspace, type(exc).__name__,
                        extra={"event": "schema_reload_failed", "keyspace": keyspace, "error": type(exc).__name__})

    async def close(self) -> None:
        for session in list(self._sessions):
            await session.close()
        if self._source is not None:
            await self._source.stop()
        await self.replica_health.stop()
        await self.pools.close(timeout=5)
        if self.coordinator is not None:
            self.coordinator.close()

    async def __aenter__(self) -> Gateway:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __await__(self) -> Any:
        return self.start().__await__()

    # --- what sessions use ------------------------------------------------------------------------------------
    @property
    def snapshot(self) -> ClusterSnapshot:
        if self._snapshot is None:
            raise ConfigError("the gateway is not started (use `async with connect(...)`)")
        return self._snapshot

    def backend_dialect(self, keyspace: str) -> str:
        d = self.dialect_cache.get(keyspace)
        if d is None:
            d = self.dialect_cache[keyspace] = backend_dialect_of(self.snapshot, keyspace)
        return d

    async def apply_vschema_ddl(self, statement: Any, keyspace: str) -> list[str]:
        """ALTER VSCHEMA: edit the VSchema, create missing sequence tables, store the result (compare-and-swap
        against the snapshot's version when a topology store is used) and switch to the new snapshot."""
        from router.planner.vschema_ddl import CreateSequenceTable, apply_vschema_ddl

        snapshot = self.snapshot
        based_on = self._vschema_version if self._vschema_version is not None else snapshot.version
        change = apply_vschema_ddl(snapshot.vschema.to_json(), statement, keyspace)
        created: set[str] = set()
        for effect in change.effects:
            if isinstance(effect, CreateSequenceTable):
                await self._create_sequence_table(effect.keyspace, effect.table)
                created.add(effect.keyspace)
        if self._store is not None:
            version = await save_vschema(self._store, change.doc, expected_version=based_on)
        else:
            version = based_on + 1
        shards = {name: list(ks.shards) for name, ks in snapshot.keyspaces.items()}
        await self._install(ClusterSnapshot.build(version, change.vschema, shards))
        for name in sorted(created):
            await self.schema_changed(name)
        return list(change.notes)

    async def _create_sequence_table(self, keyspace: str, table: str) -> None:
        shard = self.snapshot.shards(keyspace)[0]
        dialect = self.backend_dialect(keyspace)
        if dialect == "postgres":
            name = '"' + table.replace('"', '""') + '"'
            sqls = [f"CREATE TABLE IF NOT EXISTS {name} (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT)",
                    f"INSERT INTO {name} (id, next_id, cache) VALUES (0, 1, 1000) ON CONFLICT DO NOTHING"]
        else:
            name = "`" + table.replace("`", "``") + "`"
            sqls = [f"CREATE TABLE IF NOT EXISTS {name} (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT)",
                    f"INSERT IGNORE INTO {name} (id, next_id, cache) VALUES (0, 1, 1000)"]
        async with self.pools.acquire(keyspace, shard.name) as conn:
            for sql in sqls:
                await conn.execute(sql)

    # --- the API -----------------------------------------------------------------------------------------------
    def session(self, dialect: str = "mysql", keyspace: str | None = None, *, user: str = "",
                tx_mode: TxMode | str | None = None) -> Session:
        """A stateful session (transactions, SET, USE). Close it (or use ``async with``) to end its transaction."""
        session = _TrackedSession(self, dialect, keyspace, user=user, tx_mode=tx_mode or self.tx_mode)
        tablet_type = self.replica_health.tablet_type_of(user)
        if tablet_type in ("replica", "rdonly"):
            session.read_role = "replica"  # the user's reads go to replicas; writes and transactions to the primary
        self._sessions.add(session)
        return session

    async def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None, *,
                      dialect: str = "mysql", keyspace: str | None = None) -> Result:
        """Run one statement in a session of its own (autocommit) and return its rows / totals."""
        async with self.session(dialect, keyspace) as session:
            return await session.execute(sql, params)

    @contextlib.asynccontextmanager
    async def stream(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None, *,
                     dialect: str = "mysql", keyspace: str | None = None) -> AsyncIterator[Execution]:
        """``async with gw.stream(sql) as ex: async for batch in ex: …`` (rows as they come from the shards)."""
        async with self.session(dialect, keyspace) as session, session.stream(sql, params) as ex:
            yield ex  # type: ignore[misc]


class _TrackedSession(Session):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema_pending: set[str] = set()  # keyspaces changed by DDL inside this session's open transaction

    @contextlib.asynccontextmanager
    async def stream(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
                     ) -> AsyncIterator[Any]:
        try:
            async with super().stream(sql, params) as ex:
                yield ex
        finally:
            if self.schema_pending and self.tx is None:
                await self._refresh_pending()

    async def _refresh_pending(self) -> None:
        pending, self.schema_pending = self.schema_pending, set()
        for keyspace in sorted(pending):
            await self.host.schema_changed(keyspace)  # type: ignore[attr-defined]

    async def close(self) -> None:
        await super().close()
        if self.schema_pending:
            await self._refresh_pending()
        sessions = getattr(self.host, "_sessions", None)
        if sessions is not None:
            sessions.discard(self)


def connect(config: ClusterConfig | str | os.PathLike[str] | Mapping[str, Any], **options: Any) -> Gateway:
    """A ``Gateway`` for ``config``: ``async with connect(...) as gw`` (or ``gw = await connect(...)`` and
    ``await gw.close()``). Options: ``limits``, ``pool_config``, ``twopc_dir``, ``topology``, ``tx_mode``,
    ``track_schema`` (default True: read the shards' schema at start and after DDL), ``schema_timeout``."""
    if isinstance(config, (str, os.PathLike)) and not Path(config).exists():
        raise ConfigError(f"config file {config} does not exist")
    return Gateway(config, **options)
