"""Query consolidation figure (by hand, not a test): 64 clients run the same expensive read through the router with
consolidation on, with it off, and directly against PostgreSQL.

    .venv/bin/python bench/consolidation.py [--clients 64] [--seconds 5] [--rounds 3] [--rows 100000]

Starts its own PostgreSQL (shardgate.localdb), loads ``big`` (``--rows`` rows), and two routers (``python -m
router.serve``, one worker each, PostgreSQL listener only): one with ``consolidation: {enabled: true}``, one with
it off. The read is an aggregate over the whole table (its backend time is printed: it must be >= 5 ms, or the
proxy itself is what is measured). Each variant runs ``--seconds`` with ``--clients`` asyncpg connections looping
on the statement; variants run interleaved (A B C A B C …, PITFALLS.md) and each figure is the median over
``--rounds``. Printed: statements/s per variant, the consolidation hit ratio, and on/direct, off/direct.
"""
from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from shardgate.localdb.postgres import PostgresInstance
from sharding import db
from sharding.auth import make_user_entry
from tests.support.pg_router import RouterProcess

SQL = "SELECT count(*), sum(a), avg(b), max(c) FROM big WHERE a % 7 <> 3"
USER, PASSWORD = "bench", "bench-" + secrets.token_hex(4)


async def load(dsn: db.DSN, rows: int) -> float:
    """Create and fill ``big``; returns the read's backend time in ms (median of 5, one connection)."""
    conn = await db.connect(dsn)
    try:
        await db.execute(conn, "DROP TABLE IF EXISTS big")
        await db.execute(conn, "CREATE TABLE big (id int PRIMARY KEY, a int NOT NULL, b float8 NOT NULL, "
                               "c text NOT NULL)")
        await db.execute(conn, f"INSERT INTO big SELECT g, g % 1000, g * 0.5, md5(g::text) "
                               f"FROM generate_series(1, {rows}) g")
        await db.execute(conn, "VACUUM ANALYZE big")
        times = []
        for _ in range(6):
            began = time.perf_counter()
            await db.fetch_all(conn, SQL)
            times.append((time.perf_counter() - began) * 1000)
        return statistics.median(times[1:])
    finally:
        await db.close(conn)


def router_doc(dsn: db.DSN, consolidation: bool) -> dict[str, Any]:
    import os

    os.environ["SG_BENCH_PW"] = dsn.password
    return {
        "users": [make_user_entry(USER, PASSWORD, roles=["admin"])],
        "keyspaces": {"main": {"shards": {"0": {
            "engine": "postgres", "host": dsn.host, "port": dsn.port, "database": dsn.database, "user": dsn.user,
            "password_env": "SG_BENCH_PW"}}}},
        "vschema": {"keyspaces": {"main": {"sharded": False, "tables": {"big": {}}}}},
        "consolidation": {"enabled": consolidation},
    }


async def run_clients(connect: dict[str, Any], clients: int, seconds: float) -> tuple[float, int]:
    """Statements per second over ``seconds`` with ``clients`` connections; and the errors seen."""
    conns = await asyncio.gather(*(asyncpg.connect(**connect) for _ in range(clients)))
    done = 0
    errors = 0
    stop_at = 0.0

    async def loop(conn: Any) -> None:
        nonlocal done, errors
        while time.perf_counter() < stop_at:
            try:
                await conn.fetch(SQL)
                done += 1
            except Exception:
                errors += 1

    try:
        for conn in conns:
            await conn.fetch(SQL)  # warm: the statement is prepared on every connection
        began = time.perf_counter()
        stop_at = began + seconds
        await asyncio.gather(*(loop(c) for c in conns))
        elapsed = time.perf_counter() - began
    finally:
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    return done / elapsed, errors


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    server = PostgresInstance(database="bench", settings={"max_connections": "300"})
    server.start()
    routers: dict[str, RouterProcess] = {}
    try:
        backend_ms = await load(server.dsn, args.rows)
        print(f"backend time of the read: {backend_ms:.1f} ms (one client, direct)")
        if backend_ms < 5:
            print("WARNING: under 5 ms: raise --rows, or the proxy is what is measured")
        for name, on in (("on", True), ("off", False)):
            routers[name] = RouterProcess(router_doc(server.dsn, on)).start()
        targets = {
            "direct": {"host": server.host, "port": server.port, "user": server.user, "password": server.password,
                       "database": server.database},
            "on": {"host": "127.0.0.1", "port": routers["on"].port, "user": USER, "password": PASSWORD,
                   "database": "main"},
            "off": {"host": "127.0.0.1", "port": routers["off"].port, "user": USER, "password": PASSWORD,
                    "database": "main"},
        }
        results: dict[str, list[float]] = {k: [] for k in targets}
        errors = dict.fromkeys(targets, 0)
        for r in range(args.rounds):
            for name, connect in targets.items():
                qps, errs = await run_clients(connect, args.clients, args.seconds)
                results[name].append(qps)
                errors[name] += errs
                print(f"round {r + 1} {name:>6}: {qps:8.1f} statements/s  errors {errs}", flush=True)
        med = {k: statistics.median(v) for k, v in results.items()}
        print()
        print(f"{args.clients} clients, {args.seconds:g} s x {args.rounds} rounds, read = {backend_ms:.1f} ms on "
              f"the backend")
        for name in targets:
            print(f"  {name:>6}: {med[name]:8.1f} statements/s (median)  errors {errors[name]}")
        print(f"  consolidation on / direct:  {med['on'] / med['direct']:.2f}x")
        print(f"  consolidation off / direct: {med['off'] / med['direct']:.2f}x")
        print(f"  on / off:                   {med['on'] / med['off']:.2f}x")
    finally:
        for router in routers.values():
            router.stop()
        server.destroy()


if __name__ == "__main__":
    asyncio.run(main())
