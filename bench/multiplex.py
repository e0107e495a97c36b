"""Multiplexing (transaction pooling): many client connections over a few backend connections per shard.

2,000 client connections by default (half asyncpg through the PostgreSQL frontend, half aiomysql through the
MySQL frontend), all held open at once, run a mixed read/write load (point reads, updates, short transactions,
inserts and deletes, with think time between statements) for ``--seconds``, through one router whose pools allow
at most ``--cap`` backend connections per shard (engine pool + fast-path pool). The router runs in a child process
(its own core); the clients in this one. A monitor polls the servers themselves (``pg_stat_activity``,
``information_schema.PROCESSLIST``) for the connections each shard database has.

Prints: clients held, backend connections used per shard (the most the servers showed at once, against the cap),
errors by kind, statements per second and latency percentiles. Starts its own servers (2 PostgreSQL, 2 MariaDB;
2 shards per engine); stops by itself.

    .venv/bin/python bench/multiplex.py [--clients 2000] [--cap 20] [--seconds 20]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import multiprocessing
import os
import random
import statistics
import time
from typing import Any

import aiomysql
import asyncpg

from sharding import db
from sharding.auth import make_user_entry

VSCHEMA = {"keyspaces": {ks: {"sharded": True, "vindexes": {"hash": {"type": "hash"}},
                              "tables": {"t": {"column_vindexes": [{"column": "id", "name": "hash"}]}}}
                         for ks in ("pgks", "myks")}}
SHARDS = ("-80", "80-")
USER, PASSWORD = "bench", "bench-pw"


# --- the router, in a child process ---------------------------------------------------------------------------------
def _router_child(doc: dict[str, Any], pool_size: int, passthrough_size: int, pipe: Any,
                  profile: str | None = None) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    if not profile:
        asyncio.run(_router_main(doc, pool_size, passthrough_size, pipe))
        return
    import cProfile

    cProfile.runctx("asyncio.run(_router_main(doc, pool_size, passthrough_size, pipe))", globals(), locals(),
                    profile)


async def _router_main(doc: dict[str, Any], pool_size: int, passthrough_size: int, pipe: Any) -> None:
    import logging

    logging.getLogger("shardgate").setLevel(logging.ERROR)  # the slow-query log would flood the terminal
    from router.backend.pool_config import PoolConfig
    from router.frontend.mysql.server import start_mysql_listener
    from router.frontend.postgres.server import FrontendOptions, PgFrontend
    from router.gateway import Gateway
    from sharding.config import parse_config

    config = parse_config(doc, source="<bench>")
    pools = PoolConfig(max_size=pool_size, max_waiters=0, acquire_timeout=120.0)
    gateway = Gateway(config, pool_config=pools)
    await gateway.start()
    pg = await PgFrontend(gateway, FrontendOptions(port=0, passthrough_pool_size=passthrough_size,
                                                   login_timeout=300), config.users).start()
    my = await start_mysql_listener(gateway, config, host="127.0.0.1", port=0, backlog=4096,
                                    passthrough_pool=PoolConfig(max_size=passthrough_size, max_waiters=0,
                                                                acquire_timeout=120.0))
    pipe.send((pg.port, my.port))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # the parent says stop
    stats = [(st.target, st.size, st.acquired, st.timeouts, st.settings_synced) for st in gateway.pools.stats()]
    pipe.send(stats)
    await pg.close(5)
    await my.drain(5)
    await gateway.close()


# --- setup ----------------------------------------------------------------------------------------------------------
async def _setup(cluster: Any) -> tuple[dict[str, Any], dict[str, db.DSN]]:
    dsns: dict[str, db.DSN] = {}
    for servers, ks in ((cluster.postgres, "pgks"), (cluster.mysql, "myks")):
        for i, shard in enumerate(SHARDS):
            dsn = servers[i].create_database(f"mux_{ks}_{i}")
            dsns[f"{ks}/{shard}"] = dsn
            conn = await db.connect(dsn)
            try:
                await db.execute(conn, "CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, c VARCHAR(32))")
            finally:
                await db.close(conn)
    keyspaces: dict[str, Any] = {}
    for key, dsn in dsns.items():
        ks, shard = key.split("/")
        var = f"SG_MUX_PW_{dsn.port}"
        os.environ[var] = dsn.password
        keyspaces.setdefault(ks, {"shards": {}})["shards"][shard] = {
            "engine": dsn.engine, "host": dsn.host, "port": dsn.port, "database": dsn.database, "user": dsn.user,
            "password_env": var}
    doc = {"users": [make_user_entry(USER, PASSWORD, methods=["md5", "mysql_native_password"])],
           "keyspaces": keyspaces, "vschema": VSCHEMA, "listeners": {"postgres": "127.0.0.1:0"}}
    return doc, dsns


# --- watching the servers -------------------------------------------------------------------------------------------
class Monitor:
    """The most connections each shard database had at once, as the servers report them."""

    def __init__(self, cluster: Any, dsns: dict[str, db.DSN]) -> None:
        self.cluster = cluster
        self.names = {dsn.database: key for key, dsn in dsns.items()}
        self.peak: dict[str, int] = collections.defaultdict(int)
        self.samples = 0

    async def run(self, stop: asyncio.Event) -> None:
        conns = [await db.connect(s.dsn) for s in (*self.cluster.postgres, *self.cluster.mysql)]
        names = list(self.names)
        in_list = ", ".join(f"'{n}'" for n in names)
        try:
            while not stop.is_set():
                for conn in conns:
                    if isinstance(conn, asyncpg.Connection):
                        rows = await conn.fetch("SELECT datname, count(*) FROM pg_stat_activity WHERE "
                                                "datname = ANY($1::text[]) GROUP BY datname", names)
                    else:
                        rows = await db.fetch_all(conn, "SELECT db, COUNT(*) FROM information_schema.PROCESSLIST "
                                                        f"WHERE db IN ({in_list}) GROUP BY db")
                    for name, n in rows:
                        key = self.names[name]
                        self.peak[key] = max(self.peak[key], int(n))
                self.samples += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.05)
        finally:
            for conn in conns:
                await db.close(conn)


# --- the clients ---------------------------------------------------------------------------------------------------
class Load:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.errors: collections.Counter[str] = collections.Counter()
        self.statements = 0
        self.latencies: list[float] = []
        self.held = 0
        self.peak_held = 0

    def error(self, exc: BaseException) -> None:
        self.errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1


async def _pg_client(port: int, i: int, load: Load, ready: asyncio.Event, login: asyncio.Semaphore) -> None:
    async with login:
        conn = await asyncpg.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, database="pgks",
                                     timeout=300, command_timeout=300)
    load.held += 1
    load.peak_held = max(load.peak_held, load.held)
    try:
        key = 1_000_000 + i
        await conn.execute("INSERT INTO t (id, v, c) VALUES ($1, 0, 'pg')", key)
        await ready.wait()

        async def op(rng: random.Random) -> None:
            r = rng.random()
            if r < 0.6:
                await conn.fetchval("SELECT v FROM t WHERE id = $1", key)
            elif r < 0.85:
                await conn.execute("UPDATE t SET v = v + 1 WHERE id = $1", key)
            elif r < 0.95:
                async with conn.transaction():
                    await conn.execute("UPDATE t SET v = v + 10 WHERE id = $1", key)
                    await conn.fetchval("SELECT v FROM t WHERE id = $1", key)
            else:
                await conn.execute("INSERT INTO t (id, v, c) VALUES ($1, 0, 'tmp')", key + 5_000_000)
                await conn.execute("DELETE FROM t WHERE id = $1", key + 5_000_000)

        await _drive(op, i, load)
    finally:
        load.held -= 1
        await conn.close()


async def _my_client(port: int, i: int, load: Load, ready: asyncio.Event, login: asyncio.Semaphore) -> None:
    async with login:
        conn = await aiomysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, db="myks",
                                      autocommit=True, connect_timeout=300)
    load.held += 1
    load.peak_held = max(load.peak_held, load.held)
    try:
        key = 2_000_000 + i
        cur = await conn.cursor()
        await cur.execute("INSERT INTO t (id, v, c) VALUES (%s, 0, 'my')", (key,))
        await ready.wait()

        async def op(rng: random.Random) -> None:
            r = rng.random()
            if r < 0.6:
                await cur.execute("SELECT v FROM t WHERE id = %s", (key,))
                await cur.fetchone()
            elif r < 0.85:
                await cur.execute("UPDATE t SET v = v + 1 WHERE id = %s", (key,))
            elif r < 0.95:
                await conn.begin()
                await cur.execute("UPDATE t SET v = v + 10 WHERE id = %s", (key,))
                await cur.execute("SELECT v FROM t WHERE id = %s", (key,))
                await cur.fetchone()
                await conn.commit()
            else:
                await cur.execute("INSERT INTO t (id, v, c) VALUES (%s, 0, 'tmp')", (key + 5_000_000,))
                await cur.execute("DELETE FROM t WHERE id = %s", (key + 5_000_000,))

        await _drive(op, i, load)
    finally:
        load.held -= 1
        conn.close()


async def _drive(op: Any, i: int, load: Load) -> None:
    rng = random.Random(i)
    deadline = time.monotonic() + load.seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            await op(rng)
        except Exception as exc:
            load.error(exc)
        else:
            load.statements += 1
            load.latencies.append(time.perf_counter() - started)
        await asyncio.sleep(rng.random() * 0.05)  # think time: the client holds its connection, not a backend


async def run(args: argparse.Namespace) -> None:
    from shardgate.localdb import LocalCluster

    cluster = LocalCluster(postgres=2, mysql=2)
    print("starting 2 PostgreSQL and 2 MariaDB servers ...", flush=True)
    await asyncio.to_thread(cluster.start)
    proc = None
    try:
        doc, dsns = await _setup(cluster)
        passthrough = max(1, args.cap * 3 // 10)
        pool_size = args.cap - passthrough
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_router_child, args=(doc, pool_size, passthrough, child, args.profile), daemon=True)
        proc.start()
        pg_port, my_port = await asyncio.wait_for(asyncio.to_thread(parent.recv), 120)
        print(f"router: engine pool {pool_size} + fast-path pool {passthrough} = {args.cap} backend connections per "
              f"shard at most; {args.clients} clients; {args.seconds:g} s of load", flush=True)
        load = Load(args.seconds)
        ready = asyncio.Event()
        login = asyncio.Semaphore(64)
        half = args.clients // 2
        clients = [asyncio.ensure_future(_pg_client(pg_port, i, load, ready, login)) for i in range(half)]
        clients += [asyncio.ensure_future(_my_client(my_port, i, load, ready, login))
                    for i in range(args.clients - half)]
        stop = asyncio.Event()
        monitor = Monitor(cluster, dsns)
        watching = asyncio.ensure_future(monitor.run(stop))
        connect_started = time.monotonic()
        while load.held < args.clients and not all(c.done() for c in clients):
            if time.monotonic() - connect_started > 300:
                break
            await asyncio.sleep(0.2)
        connected = time.monotonic() - connect_started
        print(f"{load.held} clients connected in {connected:.1f} s; load starts", flush=True)
        started = time.monotonic()
        ready.set()
        results = await asyncio.wait_for(asyncio.gather(*clients, return_exceptions=True), args.seconds + 300)
        elapsed = time.monotonic() - started
        stop.set()
        await watching
        for r in results:
            if isinstance(r, BaseException):
                load.error(r)
        parent.send("stop")
        pool_stats = await asyncio.wait_for(asyncio.to_thread(parent.recv), 30)
        lat = sorted(load.latencies) or [0.0]
        print("\n--- multiplexing ---")
        print(f"clients held at once:        {load.peak_held} of {args.clients} "
              f"({half} PostgreSQL, {args.clients - half} MySQL)")
        print(f"backend connections per shard (most the servers showed at once, cap {args.cap}):")
        for key in sorted(dsns):
            print(f"  {key:12} {monitor.peak.get(key, 0):4}")
        ratio = args.clients / max(1, sum(monitor.peak.get(k, 0) for k in dsns))
        print(f"clients per backend connection: {ratio:.0f} ({monitor.samples} samples)")
        print(f"errors:                      {sum(load.errors.values())}")
        for kind, n in load.errors.most_common(5):
            print(f"  {n:6}  {kind}")
        print(f"operations:                  {load.statements} in {elapsed:.1f} s = "
              f"{load.statements / elapsed:.0f} ops/s")
        print(f"latency ms p50 / p99 / max:  {1000 * statistics.median(lat):.1f} / "
              f"{1000 * lat[int(len(lat) * 0.99) - 1]:.1f} / {1000 * lat[-1]:.1f}")
        print("router pools (target, size, checkouts, timeouts, settings synced):")
        for row in pool_stats:
            print(f"  {row}")
    finally:
        if proc is not None:
            await asyncio.to_thread(proc.join, 30)  # the router closes its listeners and pools
            if proc.is_alive():
                proc.terminate()
                proc.join(10)
        await asyncio.to_thread(cluster.destroy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--cap", type=int, default=20, help="backend connections per shard, at most")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the router process into FILE")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
