"""Transaction pooling through both frontends, on real servers: many clients over a few backend connections.

- Several hundred concurrent clients (asyncpg; aiomysql) run mixed reads, writes and transactions over pools of
  at most ``CAP`` backend connections per shard, with zero errors, while the servers themselves
  (``pg_stat_activity``, ``information_schema.PROCESSLIST``) never show more than ``CAP`` connections per shard.
- Settings replay: two sessions with different settings take turns on one backend connection and each sees its own.
- Pins: temporary tables, user-level locks, unknown variables keep their connection (counted by reason) until the
  state is dropped or the session ends.
- Limits: global and per-user client-session limits refuse with PostgreSQL 53300 / MySQL 1040.
- A client that leaves mid-transaction or mid-statement: its statement stops on the server, its transaction is
  rolled back, and its connections go back to the pool.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomysql
import asyncpg
import pymysql
import pytest

from router.backend.pool_config import PoolConfig
from router.engine.session_state import pin_counts
from router.frontend.mysql.server import start_mysql_listener
from router.frontend.postgres.server import FrontendOptions, PgFrontend
from router.gateway import Gateway
from sharding import db
from sharding.config import parse_config
from sharding.config_model import ClientLimits
from tests.integration.engine_support import make_config
from tests.support.backends import DatabaseServer, connected
from tests.support.mysql_frontend import VSCHEMA as MY_VSCHEMA
from tests.support.mysql_frontend import Router as MyRouter
from tests.support.mysql_frontend import users as my_users
from tests.support.pg_router import USERS, Cluster, make_cluster

pytestmark = [pytest.mark.backend, pytest.mark.timeout(300)]

CLIENTS = int(os.environ.get("SHARDGATE_MULTIPLEX_CLIENTS", "300"))
CAP = 5  # backend connections per shard, at most (engine pool 3 + the fast path's pool 2)
ROUNDS = 4


def pool_config(max_size: int, **extra: Any) -> PoolConfig:
    return PoolConfig(max_size=max_size, acquire_timeout=120.0, max_waiters=0, **extra)


# --- the routers ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PgRouter:
    cluster: Cluster
    gateway: Gateway
    frontend: PgFrontend

    @property
    def port(self) -> int:
        return int(self.frontend.port)

    async def connect(self, user: str = "plain", database: str = "customer", **kw: Any) -> asyncpg.Connection:
        return await asyncpg.connect(host="127.0.0.1", port=self.port, user=user, password=USERS[user],
                                     database=database, timeout=60, **kw)

    async def close(self) -> None:
        await self.frontend.close(5)
        await self.gateway.close()


async def start_pg(servers: list[DatabaseServer], cluster: Cluster, *, pool_size: int,
                   passthrough_size: int = 2) -> PgRouter:
    gateway = Gateway(parse_config(cluster.doc, source="<test>"), pool_config=pool_config(pool_size))
    await gateway.start()
    options = FrontendOptions(port=0, passthrough_pool_size=passthrough_size, login_timeout=120)
    frontend = await PgFrontend(gateway, options, gateway.config.users).start()
    return PgRouter(cluster, gateway, frontend)


@pytest.fixture(scope="module")
async def pg_cluster_db(pg_cluster: list[DatabaseServer]) -> AsyncIterator[Cluster]:
    cluster = await make_cluster(pg_cluster)
    yield cluster
    await asyncio.to_thread(cluster.drop)


@pytest.fixture
async def pg(pg_cluster: list[DatabaseServer], pg_cluster_db: Cluster) -> AsyncIterator[PgRouter]:
    router = await start_pg(pg_cluster, pg_cluster_db, pool_size=CAP - 2)
    yield router
    await router.close()


MY_SCHEMA = [
    "USE customer",
    "CREATE TABLE acct (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL DEFAULT 0, note VARCHAR(64))",
    "ALTER VSCHEMA ON customer.acct ADD VINDEX hash(id) USING hash",
    "USE main",
    "CREATE TABLE counter (id INT PRIMARY KEY, n BIGINT NOT NULL)",
    "INSERT INTO counter VALUES (1, 0)",
]


async def start_my(servers: list[DatabaseServer], *, pool_size: int, passthrough_size: int = 2) -> MyRouter:
    """``tests.support.mysql_frontend.start_router`` with both pools bounded: the engine's and the fast path's."""
    tag = secrets.token_hex(3)
    names: list[tuple[DatabaseServer, str]] = []

    def create(server: DatabaseServer, name: str) -> db.DSN:
        names.append((server, name))
        return server.create_database(name)

    dsns = await asyncio.to_thread(lambda: {
        "customer/-80": create(servers[0], f"mx_{tag}_a"),
        "customer/80-": create(servers[1 % len(servers)], f"mx_{tag}_b"),
        "main/0": create(servers[0], f"mx_{tag}_main"),
    })
    config = make_config("mysql", {"customer": {"-80": dsns["customer/-80"], "80-": dsns["customer/80-"]},
                                   "main": {"0": dsns["main/0"]}}, MY_VSCHEMA)
    config = dataclasses.replace(config, users=my_users())
    gateway = Gateway(config, pool_config=pool_config(pool_size))
    await gateway.start()
    listener = await start_mysql_listener(gateway, config, host="127.0.0.1", port=0,
                                          passthrough_pool=pool_config(passthrough_size))
    return MyRouter(gateway, listener, dsns, names)


@pytest.fixture
async def my(mysql_cluster: list[DatabaseServer]) -> AsyncIterator[MyRouter]:
    router = await start_my(mysql_cluster, pool_size=CAP - 2)

    def schema() -> None:
        conn = pymysql.connect(host="127.0.0.1", port=router.port, user="demo", password="demo", autocommit=True)
        with conn.cursor() as cur:
            for sql in MY_SCHEMA:
                cur.execute(sql)
        conn.close()

    await asyncio.to_thread(schema)
    yield router
    await router.close()


async def my_connect(router: MyRouter, user: str = "demo", database: str = "customer",
                     **kw: Any) -> aiomysql.Connection:
    password = {"demo": "demo", "plain": "plainpw"}[user]
    return await aiomysql.connect(host="127.0.0.1", port=router.port, user=user, password=password, db=database,
                                  autocommit=True, connect_timeout=60, **kw)


# --- watching the servers ------------------------------------------------------------------------------------------
class Watch:
    """Polls the servers for connections per shard database; ``peak`` is the most seen at once."""

    def __init__(self, probe: Callable[[], Awaitable[dict[str, int]]]) -> None:
        self.probe = probe
        self.peak: dict[str, int] = {}
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            counts = await self.probe()
            self.samples += 1
            for name, n in counts.items():
                self.peak[name] = max(self.peak.get(name, 0), n)
            await asyncio.sleep(0.02)

    def __enter__(self) -> Watch:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


@contextlib.asynccontextmanager
async def pg_watch(servers: list[DatabaseServer], databases: list[str]) -> AsyncIterator[Watch]:
    monitors = [await db.connect(s.dsn) for s in servers]

    async def probe() -> dict[str, int]:
        out: dict[str, int] = {}
        for conn in monitors:
            for name, n in await conn.fetch("SELECT datname, count(*) FROM pg_stat_activity "
                                            "WHERE datname = ANY($1::text[]) GROUP BY datname", databases):
                out[name] = out.get(name, 0) + n
        return out

    try:
        with Watch(probe) as watch:
            yield watch
    finally:
        for conn in monitors:
            await conn.close()


@contextlib.asynccontextmanager
async def my_watch(servers: list[DatabaseServer], databases: list[str]) -> AsyncIterator[Watch]:
    monitors = [await db.connect(s.dsn) for s in servers]
    names = ", ".join("'" + d + "'" for d in databases)

    async def probe() -> dict[str, int]:
        out: dict[str, int] = {}
        for conn in monitors:
            for name, n in await db.fetch_all(conn, "SELECT db, COUNT(*) FROM information_schema.PROCESSLIST "
                                                    f"WHERE db IN ({names}) GROUP BY db"):
                out[name] = out.get(name, 0) + int(n)
        return out

    try:
        with Watch(probe) as watch:
            yield watch
    finally:
        for conn in monitors:
            await db.close(conn)


async def all_at_once(n: int, connect: Callable[[int], Awaitable[Any]], work: Callable[[Any, int], Awaitable[None]],
                      close: Callable[[Any], Awaitable[None]]) -> tuple[int, list[BaseException]]:
    """``n`` clients connect (all held open at once), then all run ``work``; (clients held, errors)."""
    errors: list[BaseException] = []
    conns: list[Any] = []
    sem = asyncio.Semaphore(50)  # logins at once (authentication is CPU work on both sides)

    async def open_one(i: int) -> None:
        async with sem:
            try:
                conns.append((i, await connect(i)))
            except Exception as exc:
                errors.append(exc)

    await asyncio.gather(*(open_one(i) for i in range(n)))
    held = len(conns)

    async def run(i: int, conn: Any) -> None:
        try:
            await work(conn, i)
        except Exception as exc:
            errors.append(exc)

    await asyncio.gather(*(run(i, c) for i, c in conns))
    await asyncio.gather(*(close(c) for _, c in conns), return_exceptions=True)
    return held, errors


# --- hundreds of clients over a few connections --------------------------------------------------------------------
async def test_pg_hundreds_of_clients_over_a_few_connections_per_shard(pg: PgRouter, pg_cluster: list[DatabaseServer]
                                                                        ) -> None:
    base = 5_000_000

    async def work(conn: asyncpg.Connection, i: int) -> None:
        rng = random.Random(i)
        cid = base + i
        await conn.execute("INSERT INTO customer (customer_id, name, balance) VALUES ($1, $2, 0)", cid, f"c{i}")
        for r in range(ROUNDS):
            op = rng.random()
            if op < 0.4:
                assert await conn.fetchval("SELECT name FROM customer WHERE customer_id = $1", cid) == f"c{i}"
            elif op < 0.7:
                await conn.execute("UPDATE customer SET balance = balance + 1 WHERE customer_id = $1", cid)
            elif op < 0.9:
                async with conn.transaction():
                    await conn.execute("UPDATE customer SET balance = balance + 10 WHERE customer_id = $1", cid)
                    await conn.fetchval("SELECT balance FROM customer WHERE customer_id = $1", cid)
            else:
                await conn.fetchval("SELECT count(*) FROM customer")
            if r == 1:
                await asyncio.sleep(rng.random() * 0.05)  # clients idle between statements, holding no backend
        await conn.execute("DELETE FROM customer WHERE customer_id = $1", cid)

    databases = [d.database for d in pg.cluster.dsns.values()]
    async with pg_watch(pg_cluster, databases) as watch:
        started = time.monotonic()
        held, errors = await all_at_once(CLIENTS, lambda i: pg.connect(), work, lambda c: c.close())
        elapsed = time.monotonic() - started
    assert not errors, f"{len(errors)} errors, first: {errors[0]!r}"
    assert held == CLIENTS
    assert watch.samples > 3
    print(f"\nPostgreSQL: {held} clients held, peak backend connections per shard {watch.peak} "
          f"(cap {CAP}), {elapsed:.1f} s")
    assert watch.peak and max(watch.peak.values()) <= CAP, watch.peak
    assert all(st.in_use == 0 for st in pg.gateway.pools.stats())


async def test_mysql_hundreds_of_clients_over_a_few_connections_per_shard(my: MyRouter,
                                                                           mysql_cluster: list[DatabaseServer]
                                                                           ) -> None:
    base = 7_000_000

    async def work(conn: aiomysql.Connection, i: int) -> None:
        rng = random.Random(i)
        cid = base + i
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO acct (id, balance, note) VALUES (%s, 0, %s)", (cid, f"a{i}"))
            for r in range(ROUNDS):
                op = rng.random()
                if op < 0.4:
                    await cur.execute("SELECT note FROM acct WHERE id = %s", (cid,))
                    assert (await cur.fetchone()) == (f"a{i}",)
                elif op < 0.7:
                    await cur.execute("UPDATE acct SET balance = balance + 1 WHERE id = %s", (cid,))
                elif op < 0.9:
                    await conn.begin()
                    await cur.execute("UPDATE acct SET balance = balance + 10 WHERE id = %s", (cid,))
                    await cur.execute("SELECT balance FROM acct WHERE id = %s", (cid,))
                    await cur.fetchone()
                    await conn.commit()
                else:
                    await cur.execute("SELECT COUNT(*) FROM acct")
                    await cur.fetchone()
                if r == 1:
                    await asyncio.sleep(rng.random() * 0.05)
            await cur.execute("DELETE FROM acct WHERE id = %s", (cid,))

    async def close(conn: aiomysql.Connection) -> None:
        conn.close()

    databases = [d.database for d in my.dsns.values()]
    async with my_watch(mysql_cluster, databases) as watch:
        started = time.monotonic()
        held, errors = await all_at_once(CLIENTS, lambda i: my_connect(my), work, close)
        elapsed = time.monotonic() - started
    assert not errors, f"{len(errors)} errors, first: {errors[0]!r}"
    assert held == CLIENTS
    assert watch.samples > 3
    print(f"\nMySQL: {held} clients held, peak backend connections per shard {watch.peak} (cap {CAP}), "
          f"{elapsed:.1f} s; pools: {[(st.target, st.created, st.discarded) for st in my.gateway.pools.stats()]}")
    assert watch.peak and max(watch.peak.values()) <= CAP, watch.peak
    for _ in range(50):
        if all(st.in_use == 0 for st in my.gateway.pools.stats()):
            break
        await asyncio.sleep(0.1)
    assert all(st.in_use == 0 for st in my.gateway.pools.stats())


# --- settings replay -------------------------------------------------------------------------------------------------
async def test_pg_sessions_with_different_settings_share_one_connection(pg_cluster: list[DatabaseServer],
                                                                        pg_cluster_db: Cluster) -> None:
    router = await start_pg(pg_cluster, pg_cluster_db, pool_size=1, passthrough_size=1)
    try:
        a, b, c = [await router.connect(database="commerce") for _ in range(3)]
        await a.execute("SET work_mem = '5MB'")
        await b.execute("SET work_mem = '7MB'")
        await a.execute("SET TimeZone = 'Asia/Tokyo'")
        await b.execute("SET search_path = commerce, pg_catalog")  # the keyspace name is the router's, not sent
        for _ in range(3):  # interleaved: each statement takes the one connection and finds its own settings
            assert await a.fetchval("SELECT current_setting('work_mem')") == "5MB"
            assert await b.fetchval("SELECT current_setting('work_mem')") == "7MB"
            assert await c.fetchval("SELECT current_setting('work_mem')") == "4MB"  # the server's default
            assert await a.fetchval("SELECT current_setting('TimeZone')") == "Asia/Tokyo"
            assert await b.fetchval("SELECT current_setting('TimeZone')") != "Asia/Tokyo"
            assert await b.fetchval("SELECT current_setting('search_path')") == "pg_catalog"
            assert await a.fetchval("SELECT current_setting('search_path')") != "pg_catalog"
        pids = {await x.fetchval("SELECT pg_backend_pid()") for x in (a, b, c)}
        assert len(pids) == 1  # one backend connection served all three sessions
        with pytest.raises(asyncpg.PostgresError, match="work_mem"):  # an invalid value fails the SET itself
            await a.execute("SET work_mem = 'lots'")
        assert await a.fetchval("SELECT current_setting('work_mem')") == "5MB"  # and the session keeps its value
        await a.execute("RESET work_mem")
        assert await a.fetchval("SELECT current_setting('work_mem')") == "4MB"
        (stats,) = [st for st in router.gateway.pools.stats() if st.target == "commerce/0/primary"]
        assert stats.size == 1 and stats.settings_synced >= 6
        for x in (a, b, c):
            await x.close()
    finally:
        await router.close()


async def test_mysql_sessions_with_different_time_zones_share_one_connection(mysql_cluster: list[DatabaseServer]
                                                                              ) -> None:
    router = await start_my(mysql_cluster, pool_size=1, passthrough_size=1)
    try:
        a, b, c = [await my_connect(router, database="main") for _ in range(3)]
        cur_a, cur_b, cur_c = [await x.cursor() for x in (a, b, c)]
        await cur_a.execute("SET time_zone = '+05:00'")
        await cur_b.execute("SET SESSION time_zone = '-03:00', SESSION group_concat_max_len = 7")
        await cur_a.execute("SET sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES'")  # ANSI_QUOTES stays in the router

        async def one(cur: Any, sql: str) -> Any:
            await cur.execute(sql)
            return (await cur.fetchone())[0]

        for _ in range(3):
            assert str(await one(cur_a, "SELECT TIMEDIFF(NOW(), UTC_TIMESTAMP())")) == "5:00:00"
            assert str(await one(cur_b, "SELECT TIMEDIFF(NOW(), UTC_TIMESTAMP())")) == "-1 day, 21:00:00"
            assert await one(cur_b, "SELECT GROUP_CONCAT(x) FROM (SELECT 'abcdef' AS x UNION ALL "
                                    "SELECT 'ghijkl') AS t") == "abcdef,"
            assert len(await one(cur_c, "SELECT GROUP_CONCAT(x) FROM (SELECT 'abcdef' AS x UNION ALL "
                                        "SELECT 'ghijkl') AS t")) == 13
        tz_c = str(await one(cur_c, "SELECT TIMEDIFF(NOW(), UTC_TIMESTAMP())"))
        assert tz_c not in ("5:00:00", "-1 day, 21:00:00")
        with pytest.raises(pymysql.err.MySQLError) as info:  # an unknown zone fails the SET itself
            await cur_a.execute("SET time_zone = 'Not/AZone'")
        assert info.value.args[0] == 1298
        assert str(await one(cur_a, "SELECT TIMEDIFF(NOW(), UTC_TIMESTAMP())")) == "5:00:00"
        (stats,) = [st for st in router.gateway.pools.stats() if st.target == "main/0/primary"]
        assert stats.size == 1 and stats.settings_synced >= 6
        for x in (a, b, c):
            x.close()
    finally:
        await router.close()


# --- pins ------------------------------------------------------------------------------------------------------------
def _in_use(gateway: Gateway, target: str) -> int:
    return sum(st.in_use for st in gateway.pools.stats() if st.target == target)


async def test_pg_pins_temporary_tables_locks_and_unknown_variables(pg_cluster: list[DatabaseServer],
                                                                    pg_cluster_db: Cluster) -> None:
    router = await start_pg(pg_cluster, pg_cluster_db, pool_size=3, passthrough_size=1)
    before = pin_counts()
    try:
        a = await router.connect(user="app", database="commerce")
        await a.execute("CREATE TEMPORARY TABLE scratch (v int)")
        await a.execute("INSERT INTO scratch VALUES (1), (2)")
        assert _in_use(router.gateway, "commerce/0/primary") == 1  # held while the session is idle
        others = [await router.connect(database="commerce") for _ in range(4)]

        async def reads(conn: asyncpg.Connection) -> None:
            for _ in range(5):
                await conn.fetchval("SELECT count(*) FROM product")

        await asyncio.gather(*(reads(o) for o in others))
        assert await a.fetchval("SELECT count(*) FROM scratch") == 2  # still its own connection
        await a.execute("SELECT pg_advisory_lock(4242)")
        assert not await others[0].fetchval("SELECT pg_try_advisory_lock(4242)")  # the lock is still held
        await a.execute("SET myapp.tenant = 'acme'")  # not a setting the router can replay: runs there, pins
        assert await a.fetchval("SELECT current_setting('myapp.tenant')") == "acme"
        after = pin_counts()
        for reason in ("temporary_table", "user_lock", "session_variable"):
            assert after.get(reason, 0) > before.get(reason, 0), reason
        await a.close()  # the session ends: the connection is reset and goes back
        for _ in range(50):
            if _in_use(router.gateway, "commerce/0/primary") == 0:
                break
            await asyncio.sleep(0.05)
        assert _in_use(router.gateway, "commerce/0/primary") == 0
        assert await others[0].fetchval("SELECT pg_try_advisory_lock(4243)")
        b = await router.connect(user="app", database="commerce")
        with pytest.raises(asyncpg.UndefinedTableError):
            await b.fetchval("SELECT count(*) FROM scratch")  # reset: the temporary table went with it
        assert await b.fetchval("SELECT pg_try_advisory_lock(4242)")  # and the lock
        # DISCARD TEMP drops the temporary tables and their pin; DISCARD ALL gives every pinned connection back.
        await b.execute("SELECT pg_advisory_unlock_all()")  # b holds nothing now (others[0] keeps its pin)
        held = _in_use(router.gateway, "commerce/0/primary")
        await b.execute("CREATE TEMPORARY TABLE scratch2 (v int)")
        assert _in_use(router.gateway, "commerce/0/primary") == held + 1
        await b.execute("DISCARD TEMP")
        assert _in_use(router.gateway, "commerce/0/primary") == held
        with pytest.raises(asyncpg.UndefinedTableError):
            await b.fetchval("SELECT count(*) FROM scratch2")
        await b.execute("CREATE TEMPORARY TABLE scratch3 (v int)")
        await b.execute("SELECT pg_advisory_lock(4244)")
        assert _in_use(router.gateway, "commerce/0/primary") == held + 1
        await b.execute("DISCARD ALL")
        assert _in_use(router.gateway, "commerce/0/primary") == held
        assert await others[1].fetchval("SELECT pg_try_advisory_lock(4244)")  # the lock went with the reset
        with pytest.raises(asyncpg.UndefinedTableError):
            await b.fetchval("SELECT count(*) FROM scratch3")
        await b.close()
        for o in others:
            await o.close()
    finally:
        await router.close()


async def test_mysql_pins_user_locks_until_released(mysql_cluster: list[DatabaseServer]) -> None:
    router = await start_my(mysql_cluster, pool_size=3, passthrough_size=1)
    before = pin_counts()
    try:
        a = await my_connect(router, database="main")
        b = await my_connect(router, database="main")
        ca, cb = await a.cursor(), await b.cursor()
        await ca.execute("SELECT GET_LOCK('sg_pin', 5)")
        assert (await ca.fetchone())[0] == 1
        assert _in_use(router.gateway, "main/0/primary") == 1
        for _ in range(5):  # others keep working over the remaining connections
            await cb.execute("SELECT IS_FREE_LOCK('sg_pin')")
            assert (await cb.fetchone())[0] == 0
        await ca.execute("CREATE TEMPORARY TABLE scratch (v INT)")
        await ca.execute("INSERT INTO scratch VALUES (1)")
        await ca.execute("SELECT COUNT(*) FROM scratch")
        assert (await ca.fetchone())[0] == 1
        await ca.execute("SET SESSION sql_select_limit = 1")  # not replayed: run there, pinned
        after = pin_counts()
        for reason in ("user_lock", "temporary_table", "session_variable"):
            assert after.get(reason, 0) > before.get(reason, 0), reason
        a.close()
        for _ in range(50):
            if _in_use(router.gateway, "main/0/primary") == 0:
                break
            await asyncio.sleep(0.05)
        assert _in_use(router.gateway, "main/0/primary") == 0
        await cb.execute("SELECT IS_FREE_LOCK('sg_pin')")
        assert (await cb.fetchone())[0] == 1  # the pinned connection was reset: its lock is gone
        b.close()
    finally:
        await router.close()


# --- limits ----------------------------------------------------------------------------------------------------------
async def test_pg_client_limits(pg: PgRouter) -> None:
    config = pg.gateway.config
    pg.gateway.config = dataclasses.replace(config, limits=ClientLimits(max_client_connections=3))
    try:
        held = [await pg.connect() for _ in range(3)]
        with pytest.raises(asyncpg.TooManyConnectionsError, match="max_client_connections"):
            await pg.connect()
        await held.pop().close()
        await asyncio.sleep(0.1)
        held.append(await pg.connect())  # a slot freed up
        for c in held:
            await c.close()
        users = tuple(dataclasses.replace(u, max_connections=1) if u.name == "plain" else u for u in config.users)
        pg.gateway.config = dataclasses.replace(config, users=users)
        first = await pg.connect()
        with pytest.raises(asyncpg.TooManyConnectionsError, match="user 'plain'"):
            await pg.connect()
        other = await pg.connect(user="app")  # another user is not limited by plain's limit
        await first.close()
        await other.close()
    finally:
        pg.gateway.config = config


async def test_mysql_client_limits(my: MyRouter) -> None:
    config = my.gateway.config
    my.gateway.config = dataclasses.replace(config, limits=ClientLimits(max_client_connections=2))
    try:
        held = [await my_connect(my) for _ in range(2)]
        with pytest.raises(pymysql.err.OperationalError) as info:
            await my_connect(my)
        assert info.value.args[0] == 1040 and "max_client_connections" in info.value.args[1]
        for c in held:
            c.close()
        my.gateway.config = dataclasses.replace(config, limits=ClientLimits(max_user_connections=1))
        await asyncio.sleep(0.1)
        first = await my_connect(my)
        with pytest.raises(pymysql.err.OperationalError) as info:
            await my_connect(my)
        assert info.value.args[0] == 1040 and "user 'demo'" in info.value.args[1]
        other = await my_connect(my, user="plain")
        first.close()
        other.close()
    finally:
        my.gateway.config = config


# --- abandoned clients -----------------------------------------------------------------------------------------------
async def _settled(gateway: Gateway, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(st.in_use == 0 for st in gateway.pools.stats()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"shard connections still in use: {gateway.pools.stats()}")


async def test_pg_abandoned_transaction_and_statement_are_rolled_back(pg: PgRouter,
                                                                      pg_cluster: list[DatabaseServer]) -> None:
    setup = await pg.connect()
    await setup.execute("INSERT INTO customer (customer_id, name, balance) VALUES (9100, 'x', 0) "
                        "ON CONFLICT (customer_id) DO UPDATE SET balance = 0")
    # 1. a transaction left open: the client vanishes (no Terminate)
    gone = await pg.connect()
    await gone.execute("BEGIN")
    await gone.execute("UPDATE customer SET balance = 99 WHERE customer_id = 9100")
    gone.terminate()
    await _settled(pg.gateway)
    await setup.execute("SET lock_timeout = '2s'")
    await setup.execute("UPDATE customer SET balance = balance + 1 WHERE customer_id = 9100")  # no lock left
    assert await setup.fetchval("SELECT balance FROM customer WHERE customer_id = 9100") == 1  # 99 rolled back
    # 2. a statement running when the client vanishes: it stops on the server at once
    for sql in ("SELECT pg_sleep(30)", "SELECT pg_sleep(30) FROM customer WHERE customer_id = 9100",
                "SELECT count(*) FROM customer, pg_sleep(30)"):
        sleeper = await pg.connect()
        task = asyncio.ensure_future(sleeper.fetchval(sql))
        await asyncio.sleep(0.5)
        sleeper.terminate()
        with contextlib.suppress(BaseException):
            await task
        started = time.monotonic()
        await _settled(pg.gateway)
        monitors = [await db.connect(s.dsn) for s in pg_cluster]
        try:
            for _ in range(60):
                running = sum([await m.fetchval("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                                "'%pg_sleep(30)%' AND state = 'active' AND pid <> "
                                                "pg_backend_pid()") for m in monitors])
                if not running:
                    break
                await asyncio.sleep(0.1)
            if running:
                rows = [tuple(r) for m in monitors for r in await m.fetch(
                    "SELECT pid, datname, application_name, state, query, now() - query_start FROM "
                    "pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()")]
                raise AssertionError(f"{sql}: still running on the shards: {rows}")
        finally:
            for m in monitors:
                await m.close()
        assert time.monotonic() - started < 10
    await setup.close()


async def test_mysql_abandoned_transaction_and_statement_are_rolled_back(my: MyRouter,
                                                                         mysql_cluster: list[DatabaseServer]
                                                                         ) -> None:
    setup = await my_connect(my)
    cur = await setup.cursor()
    await cur.execute("INSERT INTO acct (id, balance) VALUES (9100, 0) ON DUPLICATE KEY UPDATE balance = 0")
    gone = await my_connect(my)
    gcur = await gone.cursor()
    await gone.begin()
    await gcur.execute("UPDATE acct SET balance = 99 WHERE id = 9100")
    gone.close()  # the socket closes without COM_QUIT
    await _settled(my.gateway)
    await cur.execute("SET SESSION innodb_lock_wait_timeout = 2")
    await cur.execute("UPDATE acct SET balance = balance + 1 WHERE id = 9100")
    await cur.execute("SELECT balance FROM acct WHERE id = 9100")
    assert (await cur.fetchone())[0] == 1
    sleeper = await my_connect(my)
    scur = await sleeper.cursor()
    task = asyncio.ensure_future(scur.execute("SELECT SLEEP(30) FROM acct WHERE id = 9100"))
    await asyncio.sleep(0.5)
    sleeper.close()
    with contextlib.suppress(BaseException):
        await task
    await _settled(my.gateway)
    monitors = [await db.connect(s.dsn) for s in mysql_cluster]
    try:
        for _ in range(60):
            running = 0
            for m in monitors:
                rows = await db.fetch_all(m, "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                             "WHERE INFO LIKE 'SELECT SLEEP(30)%'")
                running += int(rows[0][0])
            if not running:
                break
            await asyncio.sleep(0.1)
        assert not running
    finally:
        for m in monitors:
            await db.close(m)
    setup.close()


async def test_pg_fast_path_falls_back_to_the_engine_for_sessions_with_settings(pg: PgRouter) -> None:
    conn = await pg.connect(database="commerce")
    forwarded = pg.frontend.passthrough.forwarded if pg.frontend.passthrough else 0
    point = "SELECT description FROM product WHERE sku = 'SKU-1'"  # simple query: the fast path's case
    await conn.execute(point)
    assert pg.frontend.passthrough is not None and pg.frontend.passthrough.forwarded == forwarded + 1
    await conn.execute("SET work_mem = '6MB'")
    assert await conn.fetchval("SELECT current_setting('work_mem')") == "6MB"  # the engine's pools carry it
    await conn.execute(point)
    assert pg.frontend.passthrough.forwarded == forwarded + 1  # not forwarded: the raw connections lack it
    await conn.execute("RESET work_mem")
    await conn.execute(point)
    assert pg.frontend.passthrough.forwarded == forwarded + 2
    await conn.close()
    async with connected(pg.cluster.dsns["commerce/0"]) as direct:
        assert await db.fetch_all(direct, "SELECT 1")
