"""Engine speed against direct connections, in one run (run by hand, not a test):

- a point select through the gateway (plan-cache hit, routing, pool, backend round trip, result) against the same
  statement on a direct asyncpg / aiomysql connection to the shard that holds the row;
- a scatter ``ORDER BY … LIMIT 10`` over 4 shards through the gateway against the same statement sent directly to
  the 4 shards at once (the floor: 4 shards on 2 servers share 2 cores), and against the slowest shard answering
  alone (each shard sorts 50k rows on an unindexed column).

Starts its own servers (2 PostgreSQL, 2 MariaDB; 4 shards per engine, 2 databases per server).

    .venv/bin/python bench/engine.py [--n 2000]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from router import gateway
from router.engine.context import Limits
from shardgate.localdb import LocalCluster
from sharding import db
from sharding.config_model import ClusterConfig, KeyspaceConfig, Listeners, SecretRef, ShardConfig, TopologyConfig
from sharding.keyrange import KeyRange
from sharding.snapshot import ClusterSnapshot
from sharding.vindexes import registry
from sharding.vschema import parse_vschema

SHARDS = ("-40", "40-80", "80-c0", "c0-")
VSCHEMA = {"keyspaces": {"ks": {"sharded": True, "vindexes": {"hash": {"type": "hash"}},
                                "tables": {"t": {"column_vindexes": [{"column": "id", "name": "hash"}]}}}}}
ROWS_PER_SHARD = 50_000


async def _timed(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    """Median µs per call over 5 rounds of n calls."""
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


async def _compare(a: Callable[[], Awaitable[Any]], b: Callable[[], Awaitable[Any]], n: int,
                   rounds: int = 9) -> tuple[float, float]:
    """Median µs per call of ``a`` and of ``b``, their rounds interleaved so that load from other processes on
    these shared machines falls on both alike."""
    sa, sb = [], []
    for _ in range(rounds):
        for fn, out in ((a, sa), (b, sb)):
            start = time.perf_counter()
            for _ in range(n):
                await fn()
            out.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(sa), statistics.median(sb)


async def setup(cluster: LocalCluster, engine: str) -> tuple[ClusterConfig, dict[str, db.DSN], ClusterSnapshot]:
    import os

    servers = cluster.postgres if engine == "postgres" else cluster.mysql
    dsns = {name: servers[i // 2].create_database(f"bench_{engine[:2]}_{i}") for i, name in enumerate(SHARDS)}
    configs = []
    for name, dsn in dsns.items():
        var = f"SG_BENCH_PW_{dsn.port}"
        os.environ[var] = dsn.password
        configs.append(ShardConfig("ks", name, KeyRange.parse(name), dsn.engine, dsn.host, dsn.port, dsn.database,
                                   dsn.user, SecretRef(env=var)))
    config = ClusterConfig("<bench>", Listeners(), None, (), {"ks": KeyspaceConfig("ks", engine, tuple(configs))},
                           parse_vschema(VSCHEMA), TopologyConfig())
    snapshot = ClusterSnapshot.build(1, config.vschema, {"ks": list(SHARDS)})
    for i, (_name, dsn) in enumerate(dsns.items()):
        conn = await db.connect(dsn)
        try:
            await db.execute(conn, "CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, c VARCHAR(64))")
            lo = i * ROWS_PER_SHARD + 1
            hi = lo + ROWS_PER_SHARD - 1
            if engine == "postgres":
                await db.execute(conn, f"INSERT INTO t SELECT g, (g * 7919) % 1000003, 'c' || g "
                                       f"FROM generate_series({lo}, {hi}) g")
                await db.execute(conn, "ANALYZE t")
            else:
                await db.execute(conn, f"INSERT INTO t SELECT seq, (seq * 7919) % 1000003, CONCAT('c', seq) "
                                       f"FROM seq_{lo}_to_{hi}")
        finally:
            await db.close(conn)
    return config, dsns, snapshot


async def bench_engine(cluster: LocalCluster, engine: str, n: int) -> None:
    config, dsns, snapshot = await setup(cluster, engine)
    hash_vindex = registry.create("hash", "hash", {})[0]
    # A row that really is on the shard its keyspace id selects (the setup placed rows by range, not by hash).
    point_id = 1
    (dest,) = hash_vindex.map([point_id])  # type: ignore[attr-defined]
    shard = snapshot.shard_for_ksid("ks", dest.ksid).name
    direct = await db.connect(dsns[shard])
    sql = f"SELECT id, v, c FROM t WHERE id = {point_id}"
    try:
        if engine == "postgres":
            async def run_direct() -> Any:
                return await direct.fetch(sql)
        else:
            async def run_direct() -> Any:
                async with direct.cursor() as cur:
                    await cur.execute(sql)
                    return await cur.fetchall()

        async with gateway.connect(config, limits=Limits()) as gw:
            session = gw.session(engine, "ks")

            async def run_gateway() -> Any:
                return await session.execute(sql)

            await run_gateway()
            await run_direct()
            g, d = await _compare(run_gateway, run_direct, n)
            print(f"{engine:8s} point select: gateway {g:7.0f} µs/op, direct {d:7.0f} µs/op, ratio {g / d:.2f}")

            scatter = "SELECT id, v FROM t ORDER BY v DESC, id LIMIT 10"
            got = await session.execute(scatter)
            per_shard = []
            for name, dsn in dsns.items():
                conn = await db.connect(dsn)
                try:
                    async def one(c: Any = conn) -> Any:
                        return await db.fetch_all(c, scatter)

                    await one()
                    per_shard.append((await _timed(one, 20), name))
                finally:
                    await db.close(conn)
            conns = [await db.connect(dsn) for dsn in dsns.values()]
            try:
                async def all_direct() -> Any:
                    return await asyncio.gather(*(db.fetch_all(c, scatter) for c in conns))

                await all_direct()
                s, parallel = await _compare(run_scatter(session, scatter), all_direct, 20)
            finally:
                for c in conns:
                    await db.close(c)
            slowest, name = max(per_shard)
            print(f"{engine:8s} scatter ORDER BY … LIMIT 10 over 4 shards x {ROWS_PER_SHARD} rows: gateway "
                  f"{s / 1000:6.1f} ms; direct to the 4 shards at once {parallel / 1000:6.1f} ms (ratio "
                  f"{s / parallel:.2f}); slowest shard alone ({name}) {slowest / 1000:6.1f} ms "
                  f"(ratio {s / slowest:.2f})")
            assert len(got) == 10
            await session.close()
    finally:
        await db.close(direct)


def run_scatter(session: Any, sql: str) -> Callable[[], Awaitable[Any]]:
    async def go() -> Any:
        return await session.execute(sql)
    return go


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    cluster = LocalCluster(postgres=2, mysql=2)
    await asyncio.to_thread(cluster.start)
    try:
        for engine in ("postgres", "mysql"):
            await bench_engine(cluster, engine, args.n)
    finally:
        await asyncio.to_thread(cluster.destroy)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
