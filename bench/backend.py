"""Point selects through the backend adapters and pools against raw asyncpg / raw aiomysql, in one run (by hand,
not a test).

    .venv/bin/python bench/backend.py [--queries 2000] [--rounds 5] [--stream]

Starts its own PostgreSQL and MariaDB (shardgate.localdb), loads a 10,000-row ``sbtest`` table into each, then
times one client issuing ``SELECT c FROM sbtest WHERE id = N`` back to back with random ids. Variants run
interleaved (A B C A B C …, PITFALLS.md: a shared 2-core machine moves single runs by 10-30 %) and each figure is
the median over ``--rounds``; the ratio is against the raw driver running the same SQL text.

- ``raw asyncpg literal``: ``conn.fetch(sql)`` with the id rendered into the text (what the planner sends);
- ``raw asyncpg $1``: ``conn.fetch(sql, id)``, the driver's cached prepared statement (the best asyncpg can do);
- ``raw aiomysql``: a cursor, ``execute`` + ``fetchall``;
- ``adapter``: ``BackendConnection.execute(sql)`` (``params`` variant: ``execute(sql, (id,))``);
- ``pool+adapter``: ``async with pool.acquire() as conn: await conn.execute(sql)`` (checkout and return included).

``--stream`` adds 200,000 rows streamed in batches of 1,000 (adapter vs the raw driver's cursor), rows/s.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiomysql

from router.backend.connect import open_connection
from router.backend.connection import BackendTarget
from router.backend.pool import Pool
from router.backend.pool_config import PoolConfig
from shardgate.localdb import LocalCluster
from sharding import db

ROWS = 10_000
STREAM_ROWS = 200_000
TARGET = BackendTarget("bench", "0")
Variant = Callable[[int], Awaitable[object]]


async def load(dsn: db.DSN) -> None:
    conn = await db.connect(dsn)
    try:
        await db.execute(conn, "DROP TABLE IF EXISTS sbtest")
        await db.execute(conn, "CREATE TABLE sbtest (id int PRIMARY KEY, k int NOT NULL, c char(120) NOT NULL, "
                               "pad char(60) NOT NULL)")
        if dsn.engine == "postgres":
            await db.execute(conn, f"INSERT INTO sbtest SELECT g, g % 1000, repeat('c', 120), repeat('p', 60) "
                                   f"FROM generate_series(1, {ROWS}) g")
            await db.execute(conn, "ANALYZE sbtest")
        else:
            await db.execute(conn, f"INSERT INTO sbtest SELECT seq, seq % 1000, repeat('c', 120), repeat('p', 60) "
                                   f"FROM seq_1_to_{ROWS}")
    finally:
        await db.close(conn)


def sql_for(i: int) -> str:
    return f"SELECT c FROM sbtest WHERE id = {i}"


async def variants(dsn: db.DSN) -> tuple[dict[str, Variant], list[Callable[[], Awaitable[None]]]]:
    """The variants for one engine (the first is the reference), and their cleanups."""
    adapter = await open_connection(dsn, TARGET)
    pool = Pool(TARGET, dsn, PoolConfig(max_size=2))
    async with pool.acquire():
        pass
    raw = await db.connect(dsn)
    out: dict[str, Variant] = {}
    if dsn.engine == "postgres":
        out["raw asyncpg literal"] = lambda i: raw.fetch(sql_for(i))
        out["raw asyncpg $1"] = lambda i: raw.fetch("SELECT c FROM sbtest WHERE id = $1", i)
        out["adapter"] = lambda i: adapter.execute(sql_for(i))
        out["adapter params $1"] = lambda i: adapter.execute("SELECT c FROM sbtest WHERE id = $1", (i,))
    else:
        async def raw_mysql(i: int) -> object:
            async with raw.cursor() as cur:
                await cur.execute(sql_for(i))
                return await cur.fetchall()

        out["raw aiomysql"] = raw_mysql
        out["adapter"] = lambda i: adapter.execute(sql_for(i))

    async def pooled(i: int) -> object:
        async with pool.acquire() as conn:
            return await conn.execute(sql_for(i))

    out["pool+adapter"] = pooled
    return out, [adapter.close, pool.close, lambda: db.close(raw)]


async def time_variant(fn: Variant, ids: list[int]) -> float:
    """Microseconds per query."""
    started = time.perf_counter()
    for i in ids:
        await fn(i)
    return (time.perf_counter() - started) / len(ids) * 1e6


async def point_selects(dsn: db.DSN, queries: int, rounds: int) -> None:
    named, cleanups = await variants(dsn)
    rng = random.Random(42)
    for fn in named.values():  # warm up: caches, connections, server buffers
        await time_variant(fn, [rng.randint(1, ROWS) for _ in range(200)])
    results: dict[str, list[float]] = {name: [] for name in named}
    for _ in range(rounds):
        ids = [rng.randint(1, ROWS) for _ in range(queries)]
        for name, fn in named.items():
            results[name].append(await time_variant(fn, ids))
    reference = next(iter(named))
    base = statistics.median(results[reference])
    print(f"\n{dsn.engine}: point select, {queries} queries x {rounds} rounds, one client (median us/query)")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"  {name:<22} {med:8.1f} us  {1e6 / med:8.0f} q/s  x{med / base:5.2f} of {reference}"
              f"   (runs: {', '.join(f'{v:.0f}' for v in values)})")
    for cleanup in cleanups:
        await cleanup()


async def streams(dsn: db.DSN, rounds: int) -> None:
    if dsn.engine == "postgres":
        sql = f"SELECT g, repeat('x', 100) FROM generate_series(1, {STREAM_ROWS}) g"
    else:
        sql = f"SELECT seq, repeat('x', 100) FROM seq_1_to_{STREAM_ROWS}"
    adapter = await open_connection(dsn, TARGET)
    raw = await db.connect(dsn)

    async def via_adapter() -> int:
        n = 0
        async with adapter.stream(sql, batch_rows=1000) as rows:
            async for batch in rows:
                n += len(batch)
        return n

    async def via_raw() -> int:
        n = 0
        if dsn.engine == "postgres":
            async with raw.transaction():
                cursor = await raw.cursor(sql)
                while batch := await cursor.fetch(1000):
                    n += len(batch)
        else:
            async with raw.cursor(aiomysql.SSCursor) as cur:
                await cur.execute(sql)
                while batch := await cur.fetchmany(1000):
                    n += len(batch)
        return n

    timings: dict[str, list[float]] = {"raw cursor": [], "adapter stream": []}
    for _ in range(rounds):
        for name, fn in (("raw cursor", via_raw), ("adapter stream", via_adapter)):
            started = time.perf_counter()
            assert await fn() == STREAM_ROWS
            timings[name].append(time.perf_counter() - started)
    base = statistics.median(timings["raw cursor"])
    print(f"\n{dsn.engine}: stream {STREAM_ROWS} rows in batches of 1000 (median of {rounds})")
    for name, values in timings.items():
        med = statistics.median(values)
        print(f"  {name:<22} {med * 1000:8.1f} ms  {STREAM_ROWS / med:10.0f} rows/s  x{med / base:5.2f}")
    await adapter.close()
    await db.close(raw)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="aiomysql")  # "Unknown table" notes of DROP TABLE IF EXISTS
    cluster = LocalCluster(postgres=1, mysql=1)
    await asyncio.to_thread(cluster.start)
    try:
        for server in cluster.servers:
            await load(server.dsn)
            await point_selects(server.dsn, args.queries, args.rounds)
            if args.stream:
                await streams(server.dsn, args.rounds)
    finally:
        await asyncio.to_thread(cluster.destroy)


if __name__ == "__main__":
    asyncio.run(main())
