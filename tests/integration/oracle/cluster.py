"""Build one engine's oracle environment: 4 shards (2 databases on each of the session's 2 servers), the
unsharded keyspace and the reference database; load the rows through the router on one side and directly on the
other."""
from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from router import gateway
from router.backend.adapter import AdapterBase
from router.backend.connect import open_connection
from router.backend.connection import BackendTarget
from router.backend.result import ResultSet
from sharding import db
from tests.integration.engine_support import make_config
from tests.integration.oracle import schema
from tests.integration.oracle.data import Dataset, insert_sql
from tests.support.backends import DatabaseServer, connected

INSERT_BATCH = 60


@dataclass
class OracleEnv:
    engine: str
    gw: gateway.Gateway
    ref: AdapterBase  # the reference database, through the router's own backend adapter (same value types)
    data: Dataset
    shard_dsns: dict[str, db.DSN]
    main_dsn: db.DSN
    ref_dsn: db.DSN
    weights: dict[str, bytes] = field(default_factory=dict)  # MariaDB: text -> WEIGHT_STRING under general_ci

    @property
    def dialect(self) -> str:
        return self.engine

    async def ref_query(self, sql: str) -> Any:
        return await self.ref.execute(sql)


def _names(tag: str) -> dict[str, tuple[int, str]]:
    """Database name per shard / role, and the server (0 or 1) it lives on."""
    return {"-40": (0, f"orc_{tag}_s1"), "40-80": (1, f"orc_{tag}_s2"), "80-c0": (0, f"orc_{tag}_s3"),
            "c0-": (1, f"orc_{tag}_s4"), "main": (0, f"orc_{tag}_main"), "ref": (1, f"orc_{tag}_ref")}


async def _run_all(dsn: db.DSN, statements: list[str]) -> None:
    async with connected(dsn) as conn:
        for sql in statements:
            await db.execute(conn, sql)


@contextlib.asynccontextmanager
async def oracle_env(servers: list[DatabaseServer], engine: str, data: Dataset) -> AsyncIterator[OracleEnv]:
    import asyncio

    tag = secrets.token_hex(3)
    created: list[tuple[DatabaseServer, str]] = []
    dsns: dict[str, db.DSN] = {}
    try:
        for role, (server_no, name) in _names(tag).items():
            server = servers[server_no % len(servers)]
            dsns[role] = await asyncio.to_thread(server.create_database, name)
            created.append((server, name))
        await asyncio.gather(*(_run_all(dsns[s], schema.shard_ddl(engine)) for s in schema.SHARDS),
                             _run_all(dsns["main"], schema.unsharded_ddl(engine)),
                             _run_all(dsns["ref"], schema.reference_ddl(engine)))
        config = make_config(engine, {schema.SHARDED: {s: dsns[s] for s in schema.SHARDS},
                                      schema.UNSHARDED: {"0": dsns["main"]}}, schema.vschema(engine))
        ref = await open_connection(dsns["ref"], BackendTarget("reference", "0"))
        try:
            async with gateway.connect(config) as gw:
                env = OracleEnv(engine, gw, ref, data, {s: dsns[s] for s in schema.SHARDS}, dsns["main"], dsns["ref"])
                await load(env)
                yield env
        finally:
            await ref.close()
    finally:
        for server, name in created:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(server.drop_database, name)


async def load(env: OracleEnv) -> None:
    """Rows through the router (sequences fill the auto ids, lookups are written, reference rows go to every
    shard), the same rows directly into the reference database; then the MariaDB weight map."""
    for name in ("warehouse", "item", "customer", "orders", "event"):
        table = schema.TABLES[name]
        rows = env.data.table(name)
        for i in range(0, len(rows), INSERT_BATCH):
            chunk = rows[i:i + INSERT_BATCH]
            result = await env.gw.execute(insert_sql(table, chunk, env.engine, omit_auto_id=True),
                                          dialect=env.dialect)
            assert result.rows_affected == len(chunk), (name, i, result.rows_affected)
            if table.auto_id:
                assert result.last_insert_id == chunk[0][0], (name, result.last_insert_id, chunk[0][0])
            await env.ref.execute(insert_sql(table, chunk, env.engine))
    if env.engine == "mysql":
        await _weights(env)


async def _weights(env: OracleEnv) -> None:
    """Every text value of the data, mapped to its weight under utf8mb4_general_ci (what the comparison uses for
    results whose text representative the server may pick from equal values: DISTINCT, GROUP BY, MIN/MAX)."""
    texts: set[str] = set()
    for name, table in schema.TABLES.items():
        for col in table.of_kind("text"):
            texts.update(v for v in env.data.column(name, col) if v is not None)
    ordered = sorted(texts)
    for i in range(0, len(ordered), 200):
        chunk = ordered[i:i + 200]
        from tests.integration.oracle.data import literal

        sql = " UNION ALL ".join(f"SELECT {literal(t, 'mysql')} COLLATE utf8mb4_general_ci AS t, "
                                 f"WEIGHT_STRING({literal(t, 'mysql')} COLLATE utf8mb4_general_ci) AS w"
                                 for t in chunk)
        result = await env.ref.execute(sql)
        assert isinstance(result, ResultSet)
        for t, w in result.rows:
            env.weights[t] = bytes(w)
