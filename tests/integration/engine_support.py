"""Sharded test clusters for the engine's integration tests, on the session's real servers.

``build_keyspace(servers, engine)`` makes one database per shard (``-80`` on the first server, ``80-`` on the
second) plus an unsharded reference database holding the same rows, loads ``customer`` rows on the shard their
keyspace id selects (Vitess hash vindex, placed through ``sharding.vindexes.registry`` and the snapshot), and
returns a ``ClusterConfig`` for the gateway. Passwords reach the config through environment variables, as
production configs do.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sharding import db
from sharding.config_model import ClusterConfig, KeyspaceConfig, Listeners, SecretRef, ShardConfig, TopologyConfig
from sharding.keyrange import KeyRange
from sharding.snapshot import ClusterSnapshot
from sharding.vindexes import registry
from sharding.vschema import parse_vschema
from tests.support.backends import DatabaseServer, connected

VSCHEMA: dict[str, Any] = {
    "keyspaces": {
        "main": {"sharded": False, "tables": {"customer_seq": {"type": "sequence"}}},
        "customer": {
            "sharded": True,
            "vindexes": {"hash": {"type": "hash"}},
            "tables": {
                "customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"}],
                             "auto_increment": {"column": "customer_id", "sequence": "main.customer_seq"}},
                "big": {"column_vindexes": [{"column": "id", "name": "hash"}]},
            },
        },
    }
}
REGIONS = ("north", "south", "east", "west")
N_ROWS = 600


def customer_rows(n: int = N_ROWS) -> list[tuple[Any, ...]]:
    """(customer_id, name, region, balance, score): some NULL scores, names shared between rows."""
    out = []
    for i in range(1, n + 1):
        score = None if i % 7 == 0 else (i * 37) % 101
        out.append((i, f"name{i % 53:02d}", REGIONS[i % 4], Decimal(i * 125) / 100, score))
    return out


def schema(engine: str) -> list[str]:
    text = "VARCHAR(64)" if engine == "postgres" else "VARCHAR(64) COLLATE utf8mb4_general_ci"
    return [
        f"CREATE TABLE customer (customer_id BIGINT PRIMARY KEY, name {text} NOT NULL, region {text} NOT NULL, "
        "balance DECIMAL(12, 2) NOT NULL, score INT NULL)",
        "CREATE TABLE big (id BIGINT PRIMARY KEY, pad VARCHAR(64) NOT NULL)",
    ]


def _literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return str(v)


def insert_sql(rows: list[tuple[Any, ...]]) -> str:
    return "INSERT INTO customer (customer_id, name, region, balance, score) VALUES " + ", ".join(
        "(" + ", ".join(_literal(v) for v in r) + ")" for r in rows)


@dataclass
class ShardedCluster:
    engine: str
    config: ClusterConfig
    snapshot: ClusterSnapshot
    shard_dsns: dict[str, db.DSN]
    main_dsn: db.DSN
    ref_dsn: db.DSN
    servers: list[DatabaseServer]
    names: list[tuple[DatabaseServer, str]]

    def drop(self) -> None:
        for server, name in self.names:
            try:
                server.drop_database(name)
            except Exception:
                pass


def shard_of(snapshot: ClusterSnapshot, customer_id: int) -> str:
    vindex = registry.create("hash", "hash", {})[0]
    (dest,) = vindex.map([customer_id])  # type: ignore[attr-defined]
    return snapshot.shard_for_ksid("customer", dest.ksid).name


def make_config(engine: str, shards: dict[str, dict[str, db.DSN]], vschema_doc: dict[str, Any]) -> ClusterConfig:
    keyspaces = {}
    for ks, by_shard in shards.items():
        configs = []
        for name, dsn in by_shard.items():
            var = f"SG_TEST_PW_{dsn.port}"
            os.environ[var] = dsn.password
            configs.append(ShardConfig(ks, name, KeyRange.parse(name) if "-" in name else KeyRange.parse("-"),
                                       dsn.engine, dsn.host, dsn.port, dsn.database, dsn.user,
                                       SecretRef(env=var) if dsn.password else None))
        keyspaces[ks] = KeyspaceConfig(ks, configs[0].engine, tuple(configs))
    return ClusterConfig(source="<test>", listeners=Listeners(), tls=None, users=(), keyspaces=keyspaces,
                         vschema=parse_vschema(vschema_doc), topology=TopologyConfig())


async def build_cluster(servers: list[DatabaseServer], engine: str, rows: list[tuple[Any, ...]] | None = None,
                        big_rows: int = 0) -> ShardedCluster:
    tag = secrets.token_hex(3)
    names: list[tuple[DatabaseServer, str]] = []

    def create(server: DatabaseServer, name: str) -> db.DSN:
        names.append((server, name))
        return server.create_database(name)

    dsns = {"-80": create(servers[0], f"eng_{tag}_a"), "80-": create(servers[1], f"eng_{tag}_b")}
    main = create(servers[0], f"eng_{tag}_main")
    ref = create(servers[1], f"eng_{tag}_ref")
    config = make_config(engine, {"customer": dsns, "main": {"0": main}}, VSCHEMA)
    snapshot = ClusterSnapshot.build(1, config.vschema, {"customer": ["-80", "80-"], "main": ["0"]})
    rows = customer_rows() if rows is None else rows
    placed: dict[str, list[tuple[Any, ...]]] = {"-80": [], "80-": []}
    for row in rows:
        placed[shard_of(snapshot, row[0])].append(row)
    for name, dsn in (*dsns.items(), ("ref", ref)):
        async with connected(dsn) as conn:
            for sql in schema(engine):
                await db.execute(conn, sql)
            chunk = rows if name == "ref" else placed[name]
            for i in range(0, len(chunk), 500):
                await db.execute(conn, insert_sql(chunk[i:i + 500]))
            if big_rows and name != "ref":
                await _fill_big(conn, engine, name, big_rows)
    async with connected(main) as conn:
        await db.execute(conn, "CREATE TABLE customer_seq (id INT PRIMARY KEY, next_id BIGINT, cache BIGINT)")
        await db.execute(conn, "INSERT INTO customer_seq (id, next_id, cache) VALUES (0, 100000, 100)")
    return ShardedCluster(engine, config, snapshot, dsns, main, ref, servers, names)


async def _fill_big(conn: Any, engine: str, shard: str, n: int) -> None:
    """``n`` rows per shard with disjoint ids (placement does not matter to the scatter reads that use them)."""
    start = 1 if shard == "-80" else n + 1
    if engine == "postgres":
        await db.execute(conn, f"INSERT INTO big SELECT g, 'pad-' || g FROM generate_series({start}, "
                               f"{start + n - 1}) AS g")
    else:
        await db.execute(conn, f"INSERT INTO big SELECT seq, CONCAT('pad-', seq) FROM seq_{start}_to_{start + n - 1}")


async def reference(cluster: ShardedCluster, sql: str) -> list[tuple[Any, ...]]:
    async with connected(cluster.ref_dsn) as conn:
        return await db.fetch_all(conn, sql)
