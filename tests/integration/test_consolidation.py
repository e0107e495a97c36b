"""Query consolidation on real shards (``router.engine.consolidate``): identical reads in flight share one backend
execution, through the gateway's sessions (both backend engines) and through the PostgreSQL frontend's
passthrough path.

Proof of "one execution" comes from the backend: the shared read calls a function that counts its calls
(PostgreSQL: a VOLATILE SQL function inserting into a log table; MariaDB: a stored function updating a counter),
so the count says how many times the statement really ran.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from router import gateway
from router.engine.consolidate import ConsolidationConfig
from sharding import db
from sharding.errors import BackendError
from tests.integration.engine_support import ShardedCluster, build_cluster
from tests.support.backends import DatabaseServer, connected

pytestmark = [pytest.mark.backend, pytest.mark.timeout(90)]
N = 8
SLEEP = 0.4


async def _prepare_main(cluster: ShardedCluster) -> None:
    async with connected(cluster.main_dsn) as conn:
        if cluster.engine == "postgres":
            for sql in (
                "CREATE TABLE cons_t (id INT PRIMARY KEY, v INT NOT NULL)",
                "INSERT INTO cons_t SELECT g, g * 10 FROM generate_series(1, 20) AS g",
                "CREATE TABLE cons_log (n INT)",
                "CREATE FUNCTION sg_bump() RETURNS INT LANGUAGE sql VOLATILE AS "
                "$$ INSERT INTO cons_log VALUES (1) RETURNING 1 $$",
            ):
                await db.execute(conn, sql)
        else:
            for sql in (
                "CREATE TABLE cons_t (id INT PRIMARY KEY, v INT NOT NULL)",
                "INSERT INTO cons_t SELECT seq, seq * 10 FROM seq_1_to_20",
                "CREATE TABLE cons_log (id INT PRIMARY KEY, n INT NOT NULL)",
                "INSERT INTO cons_log VALUES (1, 0)",
                "CREATE FUNCTION sg_bump() RETURNS INT DETERMINISTIC MODIFIES SQL DATA "
                "BEGIN UPDATE cons_log SET n = n + 1 WHERE id = 1; RETURN 1; END",
            ):
                await db.execute(conn, sql)


_UNIT: dict[str, int] = {}


async def _bumps(cluster: ShardedCluster) -> int:
    """Executions of the slow read so far (MariaDB may evaluate the counting condition more than once per
    execution: the calls of one direct execution are the unit)."""
    sql = "SELECT count(*) FROM cons_log" if cluster.engine == "postgres" else "SELECT n FROM cons_log WHERE id = 1"
    async with connected(cluster.main_dsn) as conn:
        if cluster.engine not in _UNIT:
            before = int((await db.fetch_all(conn, sql))[0][0])
            await db.fetch_all(conn, _slow_read(cluster.engine))
            _UNIT[cluster.engine] = int((await db.fetch_all(conn, sql))[0][0]) - before
        calls = int((await db.fetch_all(conn, sql))[0][0])
    unit = _UNIT[cluster.engine]
    assert unit >= 1 and calls % unit == 0, (calls, unit)
    return calls // unit


def _sleep(engine: str) -> str:
    return f"pg_sleep({SLEEP}) IS NOT NULL" if engine == "postgres" else f"SLEEP({SLEEP}) = 0"


def _slow_read(engine: str, where: str = "id <= 3", first: int = 1) -> str:
    """Sleeps and counts once per execution: on its first row only."""
    return (f"SELECT id, v FROM cons_t WHERE {where} AND (id <> {first} OR ({_sleep(engine)} AND sg_bump() = 1)) "
            "ORDER BY id")


async def _env(servers: list[DatabaseServer], engine: str) -> ShardedCluster:
    cluster = await build_cluster(servers, engine, rows=[(i, f"n{i}", "north", i, i) for i in range(1, 41)])
    await _prepare_main(cluster)
    return cluster


@pytest.fixture(scope="module")
async def pg_env(pg_cluster: list[DatabaseServer]) -> AsyncIterator[ShardedCluster]:
    cluster = await _env(pg_cluster, "postgres")
    yield cluster
    await asyncio.to_thread(cluster.drop)


@pytest.fixture(scope="module")
async def my_env(mysql_cluster: list[DatabaseServer]) -> AsyncIterator[ShardedCluster]:
    cluster = await _env(mysql_cluster, "mysql")
    yield cluster
    await asyncio.to_thread(cluster.drop)


@pytest.fixture(params=["postgres", "mysql"])
def env(request: pytest.FixtureRequest) -> ShardedCluster:
    return request.getfixturevalue("pg_env" if request.param == "postgres" else "my_env")  # type: ignore[no-any-return]


async def _run_many(gw: Any, dialect: str, sql: str, n: int = N, keyspace: str = "main",
                    user: str = "") -> list[Any]:
    async def one() -> Any:
        async with gw.session(dialect, keyspace, user=user) as s:
            return await s.execute(sql)

    return await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)


async def test_concurrent_identical_reads_share_one_execution(env: ShardedCluster) -> None:
    async with gateway.connect(env.config) as gw:
        before = await _bumps(env)
        results = await _run_many(gw, "mysql", _slow_read(env.engine))
        assert all(not isinstance(r, BaseException) for r in results), results
        assert all([tuple(row) for row in r] == [(1, 10), (2, 20), (3, 30)] for r in results)
        assert await _bumps(env) - before == 1  # one backend execution for N clients
        stats = gw.consolidator.stats()
        assert stats["hits"] == N - 1 and stats["in_flight"] == 0

        # Off: every client runs its own.
        gw.consolidator.reconfigure(ConsolidationConfig(enabled=False))
        before = await _bumps(env)
        results = await _run_many(gw, "mysql", _slow_read(env.engine), n=3)
        assert all(not isinstance(r, BaseException) for r in results), results
        assert await _bumps(env) - before == 3


async def test_sharded_point_reads_share_per_shard(pg_env: ShardedCluster) -> None:
    """A vindex point read (whole answer, prepared form) on a sharded keyspace."""
    sql = f"SELECT customer_id, name FROM customer WHERE customer_id = 7 AND {_sleep('postgres')}"
    async with gateway.connect(pg_env.config) as gw:
        results = await _run_many(gw, "postgres", sql, keyspace="customer")
        assert all(not isinstance(r, BaseException) and [tuple(x) for x in r] == [(7, "n7")] for r in results)
        assert gw.consolidator.stats()["hits"] == N - 1


async def test_never_inside_a_transaction(env: ShardedCluster) -> None:
    async with gateway.connect(env.config) as gw:
        before = await _bumps(env)

        async def in_tx() -> Any:
            async with gw.session("mysql", "main") as s:
                await s.execute("BEGIN")
                await asyncio.sleep(0.05)  # the autocommit reader leads first
                rows = await s.execute(_slow_read(env.engine))
                await s.execute("COMMIT")
                return rows

        results = await asyncio.gather(_run_many(gw, "mysql", _slow_read(env.engine), n=1), in_tx())
        assert len(results[0][0]) == 3 and len(results[1]) == 3
        assert await _bumps(env) - before == 2
        assert gw.consolidator.stats()["hits"] == 0


async def test_not_joined_after_the_sessions_own_write(env: ShardedCluster) -> None:
    read = _slow_read(env.engine, "id = 5", first=5)
    async with gateway.connect(env.config) as gw:
        async def leader() -> Any:
            async with gw.session("mysql", "main") as s:
                return await s.execute(read)

        lead = asyncio.create_task(leader())
        while gw.consolidator.in_flight() == 0:
            await asyncio.sleep(0.005)
        async with gw.session("mysql", "main") as writer, gw.session("mysql", "main") as other:
            joined = asyncio.create_task(other.execute(read))  # no write of its own: joins the leader
            await writer.execute("UPDATE cons_t SET v = 555 WHERE id = 5")
            mine = await writer.execute(read)  # same text, same shard, leader still in flight
            assert [tuple(r) for r in mine] == [(5, 555)]  # its own write is visible: it did not join
            assert [tuple(r) for r in await joined] == [(5, 50)]
        assert [tuple(r) for r in await lead] == [(5, 50)]
        assert gw.consolidator.stats()["hits"] == 1
        async with gw.session("mysql", "main") as s:
            await s.execute("UPDATE cons_t SET v = 50 WHERE id = 5")

        # Inside a transaction the write counts from COMMIT on.
        lead = asyncio.create_task(leader())
        while gw.consolidator.in_flight() == 0:
            await asyncio.sleep(0.005)
        async with gw.session("mysql", "main") as writer:
            await writer.execute("BEGIN")
            await writer.execute("UPDATE cons_t SET v = 556 WHERE id = 5")
            await writer.execute("COMMIT")
            assert [tuple(r) for r in await writer.execute(read)] == [(5, 556)]
        await lead
        async with gw.session("mysql", "main") as s:
            await s.execute("UPDATE cons_t SET v = 50 WHERE id = 5")


async def test_errors_reach_every_waiter(pg_env: ShardedCluster) -> None:
    sql = (f"SELECT id, 1 / (v - v) FROM cons_t WHERE id = 2 AND {_sleep('postgres')}")
    async with gateway.connect(pg_env.config) as gw:
        results = await _run_many(gw, "postgres", sql)
        assert all(isinstance(r, BackendError) and "division by zero" in str(r) for r in results), results
        stats = gw.consolidator.stats()
        assert stats["errors_shared"] == N - 1 and stats["hits"] == 0 and stats["in_flight"] == 0


async def test_waiter_cap_large_results_and_switches(pg_env: ShardedCluster) -> None:
    env = pg_env
    async with gateway.connect(env.config) as gw:
        gw.consolidator.reconfigure(ConsolidationConfig(max_waiters=2))
        before = await _bumps(env)
        results = await _run_many(gw, "postgres", _slow_read("postgres"), n=6)
        assert all(len(r) == 3 for r in results)
        stats = gw.consolidator.stats()
        assert stats["hits"] == 2 and await _bumps(env) - before == 4  # leader + 3 over the cap

        # Larger than max_rows: not shared, and the next identical reads do not wait for it.
        gw.consolidator.reconfigure(ConsolidationConfig(max_rows=2))
        before = await _bumps(env)
        results = await _run_many(gw, "postgres", _slow_read("postgres"), n=4)
        assert all(not isinstance(r, BaseException) and len(r) == 3 for r in results), results
        stats = gw.consolidator.stats()
        assert stats["too_large"] == 1 and stats["hits"] == 2 and await _bumps(env) - before == 4

        for cfg in (ConsolidationConfig(tables={"main.cons_*": False}), ConsolidationConfig(users={"batch": False})):
            gw.consolidator.reconfigure(cfg)
            before = await _bumps(env)
            results = await _run_many(gw, "postgres", _slow_read("postgres"), n=3, user="batch")
            assert all(len(r) == 3 for r in results)
            assert await _bumps(env) - before == 3


async def test_passthrough_reads_share_one_execution(pg_cluster: list[DatabaseServer]) -> None:
    """The PostgreSQL frontend forwards single-shard reads byte for byte; identical ones in flight share one
    (simple and extended query protocol; the same text with other bind values does not)."""
    asyncpg = pytest.importorskip("asyncpg")
    from tests.support.pg_router import InProcessRouter, make_cluster

    cluster = await make_cluster(pg_cluster)
    env = ShardedCluster("postgres", None, None, {}, cluster.dsns["commerce/0"], cluster.dsns["commerce/0"],  # type: ignore[arg-type]
                         pg_cluster, [])
    await _prepare_main(env)
    doc = dict(cluster.doc)
    doc["vschema"] = {"keyspaces": {**cluster.doc["vschema"]["keyspaces"], "commerce": {
        "sharded": False, "tables": {"product": {}, "order_seq": {"type": "sequence"}, "cons_t": {}}}}}
    router = await InProcessRouter(doc).start()
    try:
        gw = router.gateway

        # Connected first (authentication takes time): then the reads start together.
        conns = await asyncio.gather(*(asyncpg.connect(router.url(database="commerce")) for _ in range(N)))
        turn = iter(range(10**6))

        async def client(extended: bool, upto: int = 3) -> Any:
            conn = conns[next(turn) % N]
            if extended:
                return await conn.fetch(_slow_read("postgres", "id <= $1"), upto)
            return await conn.fetch(_slow_read("postgres"))

        expected = [(1, 10), (2, 20), (3, 30)]
        before = await _bumps(env)
        results = await asyncio.gather(*(client(False) for _ in range(N)))
        assert all([tuple(r) for r in rows] == expected for rows in results)
        assert await _bumps(env) - before == 1
        results = await asyncio.gather(*(client(True) for _ in range(N)))
        assert all([tuple(r) for r in rows] == expected for rows in results)
        assert await _bumps(env) - before == 2
        assert gw.consolidator.stats()["hits"] == 2 * (N - 1)
        results = await asyncio.gather(client(True, 2), client(True, 3))  # other values: two executions
        assert [len(r) for r in results] == [2, 3] and await _bumps(env) - before == 4
        assert router.frontend.passthrough.forwarded == 2 * N + 2  # all of them took the passthrough path
        await asyncio.gather(*(c.close() for c in conns))
    finally:
        await router.close()
        await asyncio.to_thread(cluster.drop)


async def test_mysql_frontend_reads_share_one_execution(mysql_cluster: list[DatabaseServer]) -> None:
    """Through the MySQL frontend: the first of identical reads may take the fast path; those that arrive while it
    runs take the engine path and share one execution there (the statement's text as written, and with values
    bound by the client library)."""
    aiomysql = pytest.importorskip("aiomysql")
    from tests.support.mysql_frontend import start_router

    router = await start_router(mysql_cluster)
    env = ShardedCluster("mysql", None, None, {}, router.dsns["main/0"], router.dsns["main/0"],  # type: ignore[arg-type]
                         mysql_cluster, [])
    try:
        await _prepare_main(env)

        conns = await asyncio.gather(*(aiomysql.connect(host="127.0.0.1", port=router.port, user="demo",
                                                        password="demo", db="main", autocommit=True)
                                       for _ in range(N)))

        async def client(conn: Any, prepared: bool) -> Any:
            async with conn.cursor() as cur:
                if prepared:
                    await cur.execute(_slow_read("mysql", "id <= %s"), (3,))
                else:
                    await cur.execute(_slow_read("mysql"))
                return await cur.fetchall()

        fast = router.listener.frontend.passthrough
        for prepared in (False, True):
            hits = router.gateway.consolidator.stats()["hits"]
            forwarded = fast.forwarded if fast is not None else 0
            results = await asyncio.gather(*(client(c, prepared) for c in conns))
            assert all([tuple(r) for r in rows] == [(1, 10), (2, 20), (3, 30)] for rows in results)
            # At most one took the fast path (the first); the others shared one engine execution.
            assert (fast.forwarded if fast is not None else 0) - forwarded <= 1
            assert router.gateway.consolidator.stats()["hits"] - hits >= N - 2, router.gateway.consolidator.stats()
        for c in conns:
            c.close()
    finally:
        await router.close()
