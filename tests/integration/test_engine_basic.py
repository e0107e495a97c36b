"""The engine on real shards: a 2-shard keyspace on two PostgreSQL servers and on two MariaDB servers, queried
through the gateway and compared with the same query on one unsharded reference database holding the same rows.

Also: transactions (multi, single, two-phase with crash recovery), the row cap, flat memory for ORDER BY … LIMIT
over 200k rows, query timeouts, and a backend stopped and restarted under load.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from router import gateway
from router.engine.context import Limits
from router.engine.pools_context import PoolContext
from router.engine.run import run
from router.planner import BoundPlan
from router.planner.plan import KeyspaceRef, Limit, Opcode, OrderByParam, Plan, Route, RoutingParams
from router.planner.sqltext import SqlTemplate
from router.planner.values import Const
from sharding import db
from sharding.errors import (
    BackendError,
    BackendUnavailableError,
    QueryTimeoutError,
    ResourceLimitError,
    TransactionError,
)
from tests.integration.engine_support import ShardedCluster, build_cluster, reference, shard_of
from tests.support.backends import DatabaseServer, connected

pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]
ROOT = Path(__file__).resolve().parents[2]
BIG_PER_SHARD = 100_000


@pytest.fixture(scope="module")
async def pg_env(pg_cluster: list[DatabaseServer]) -> AsyncIterator[ShardedCluster]:
    cluster = await build_cluster(pg_cluster, "postgres", big_rows=BIG_PER_SHARD)
    yield cluster
    await asyncio.to_thread(cluster.drop)


@pytest.fixture(scope="module")
async def my_env(mysql_cluster: list[DatabaseServer]) -> AsyncIterator[ShardedCluster]:
    cluster = await build_cluster(mysql_cluster, "mysql", big_rows=BIG_PER_SHARD)
    yield cluster
    await asyncio.to_thread(cluster.drop)


@pytest.fixture(params=["postgres", "mysql"])
def env(request: pytest.FixtureRequest) -> ShardedCluster:
    return request.getfixturevalue("pg_env" if request.param == "postgres" else "my_env")  # type: ignore[no-any-return]


@pytest.fixture
async def gw(env: ShardedCluster) -> AsyncIterator[gateway.Gateway]:
    async with gateway.connect(env.config, limits=Limits(max_rows=1000)) as g:
        yield g


def _norm(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(float(v) if isinstance(v, float) else v for v in r) for r in rows]


READS = [
    # (sql, ordered)
    ("SELECT customer_id, name, region, balance, score FROM customer WHERE customer_id = 17", False),
    ("SELECT customer_id, balance FROM customer WHERE customer_id IN (1, 2, 3, 250, 599, 9999)", False),
    ("SELECT customer_id, region FROM customer WHERE balance > 700", False),
    ("SELECT customer_id, balance FROM customer ORDER BY balance DESC, customer_id LIMIT 10", True),
    ("SELECT customer_id, score FROM customer ORDER BY score, customer_id LIMIT 20", True),
    ("SELECT customer_id, score FROM customer ORDER BY score DESC, customer_id DESC LIMIT 7 OFFSET 3", True),
    ("SELECT COUNT(*), SUM(balance), MIN(balance), MAX(balance), AVG(balance) FROM customer", False),
    ("SELECT COUNT(score), SUM(score), AVG(score) FROM customer WHERE region = 'east'", False),
    ("SELECT region, COUNT(*), SUM(balance) FROM customer GROUP BY region", False),
    ("SELECT score, COUNT(*) FROM customer GROUP BY score ORDER BY score LIMIT 8", True),
    ("SELECT DISTINCT region FROM customer", False),
    ("SELECT COUNT(DISTINCT name) FROM customer", False),
    ("SELECT region, MAX(score) FROM customer GROUP BY region HAVING COUNT(*) > 100", False),
    ("SELECT COUNT(*) FROM customer WHERE customer_id = -5", False),
]


async def test_reads_match_the_reference_database(env: ShardedCluster, gw: gateway.Gateway) -> None:
    for sql, ordered in READS:
        got = await gw.execute(sql, dialect=env.engine, keyspace="customer")
        want = await reference(env, sql)
        if ordered:
            assert _norm(list(got)) == _norm(want), sql
        else:
            assert sorted(_norm(list(got)), key=repr) == sorted(_norm(want), key=repr), sql


async def test_text_order_by_follows_the_backend_collation(env: ShardedCluster, gw: gateway.Gateway) -> None:
    collate = ' COLLATE "C"' if env.engine == "postgres" else ""
    sql = f"SELECT name, customer_id FROM customer ORDER BY name{collate}, customer_id LIMIT 30"
    got = await gw.execute(sql, dialect=env.engine, keyspace="customer")
    assert list(got) == await reference(env, sql)


async def test_bind_parameters(env: ShardedCluster, gw: gateway.Gateway) -> None:
    marker = "$1" if env.engine == "postgres" else "?"
    got = await gw.execute(f"SELECT name FROM customer WHERE customer_id = {marker}", [42], dialect=env.engine,
                           keyspace="customer")
    assert list(got) == [("name42",)]


async def test_streaming_a_scatter(env: ShardedCluster, gw: gateway.Gateway) -> None:
    seen = 0
    async with gw.stream("SELECT id FROM big", dialect=env.engine, keyspace="customer") as ex:
        assert ex.column_names == ["id"]
        async for batch in ex:
            seen += len(batch)
    assert seen == 2 * BIG_PER_SHARD


async def test_order_by_limit_over_200k_rows_keeps_memory_flat(env: ShardedCluster, gw: gateway.Gateway) -> None:
    """The merge reads each shard's head only: a hand-built plan without LIMIT pushed down to the shards (the
    worst case) returns 10 rows, holds none, allocates a bounded amount and stops both shards early."""
    route = Route(RoutingParams(Opcode.Scatter, KeyspaceRef("customer", True)),
                  SqlTemplate.text("SELECT id, pad FROM big ORDER BY id DESC"), order_by=(OrderByParam(0, desc=True),))
    bound = BoundPlan(Plan(Limit(Const(10), None, route), "select"), [], "", "")
    ctx = PoolContext(gw.pools, gw.snapshot, Limits(batch_rows=500))
    await run(bound, ctx, gw.snapshot, dialect=env.engine).fetchall()  # warm: connections and caches exist
    tracemalloc.start()
    try:
        started = time.perf_counter()
        ex = run(bound, ctx, gw.snapshot, dialect=env.engine)
        rows = await ex.fetchall()
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r[0] for r in rows] == list(range(2 * BIG_PER_SHARD, 2 * BIG_PER_SHARD - 10, -1))
    assert ex.peak_rows_held == 0
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"  # 200k rows held would be tens of MB
    # The planner's own plan pushes the LIMIT down: same answer.
    planned = await gw.execute("SELECT id, pad FROM big ORDER BY id DESC LIMIT 10", dialect=env.engine,
                               keyspace="customer")
    assert list(planned) == rows
    print(f"\n{env.engine}: ORDER BY … LIMIT 10 over {2 * BIG_PER_SHARD} rows without pushdown: "
          f"{elapsed * 1000:.0f} ms, tracemalloc peak {peak / 1e6:.2f} MB")


async def test_row_cap_fails_cleanly_and_olap_lifts_it(env: ShardedCluster) -> None:
    sql = "SELECT DISTINCT balance FROM customer"  # 600 distinct values held
    async with gateway.connect(env.config, limits=Limits(max_rows=100)) as g, g.session(env.engine, "customer") as s:
        with pytest.raises(ResourceLimitError, match="row cap"):
            await s.execute(sql)
        await s.execute("SET workload = 'olap'")
        assert len(await s.execute(sql)) == 600


async def test_query_timeout_cancels_on_the_shard(env: ShardedCluster, gw: gateway.Gateway) -> None:
    sleep = "pg_sleep(5)" if env.engine == "postgres" else "SLEEP(5)"
    async with gw.session(env.engine, "customer") as s:
        await s.execute("SET query_timeout = 300")
        started = time.perf_counter()
        with pytest.raises(QueryTimeoutError):
            await s.execute(f"SELECT {sleep} FROM customer WHERE customer_id = 1")
        assert time.perf_counter() - started < 4
        await s.execute("SET query_timeout = 0")
        assert list(await s.execute("SELECT name FROM customer WHERE customer_id = 1")) == [("name01",)]


async def _names(env: ShardedCluster, ids: tuple[int, ...]) -> dict[int, str]:
    out: dict[int, str] = {}
    for dsn in env.shard_dsns.values():
        async with connected(dsn) as conn:
            rows = await db.fetch_all(conn, "SELECT customer_id, name FROM customer WHERE customer_id IN ("
                                      + ", ".join(map(str, ids)) + ")")
            out.update({r[0]: r[1] for r in rows})
    return out


def _two_shards(env: ShardedCluster) -> tuple[int, int]:
    a = next(i for i in range(100, 200) if shard_of(env.snapshot, i) == "-80")
    b = next(i for i in range(100, 200) if shard_of(env.snapshot, i) == "80-")
    return a, b


async def test_multi_shard_transaction_commits_and_rolls_back(env: ShardedCluster, gw: gateway.Gateway) -> None:
    a, b = _two_shards(env)
    before = await _names(env, (a, b))
    async with gw.session(env.engine, "customer") as s:
        await s.execute("BEGIN")
        await s.execute(f"UPDATE customer SET name = 'tx-rolled' WHERE customer_id IN ({a}, {b})")
        assert {r[0] for r in await s.execute(f"SELECT name FROM customer WHERE customer_id IN ({a}, {b})")} \
            == {"tx-rolled"}  # the transaction sees its own writes
        await s.execute("ROLLBACK")
        assert await _names(env, (a, b)) == before
        await s.execute("BEGIN")
        await s.execute(f"UPDATE customer SET name = 'tx-a' WHERE customer_id = {a}")
        await s.execute(f"UPDATE customer SET name = 'tx-b' WHERE customer_id = {b}")
        assert await _names(env, (a, b)) == before  # not yet visible outside
        await s.execute("COMMIT")
    assert await _names(env, (a, b)) == {a: "tx-a", b: "tx-b"}
    await gw.execute(f"UPDATE customer SET name = CASE customer_id WHEN {a} THEN '{before[a]}' ELSE '{before[b]}' END "
                     f"WHERE customer_id IN ({a}, {b})", dialect=env.engine, keyspace="customer")
    assert await _names(env, (a, b)) == before


async def test_single_mode_refuses_a_second_shard_and_rolls_back(env: ShardedCluster, gw: gateway.Gateway) -> None:
    a, b = _two_shards(env)
    before = await _names(env, (a, b))
    async with gw.session(env.engine, "customer") as s:
        await s.execute("SET transaction_mode = 'single'")
        await s.execute("BEGIN")
        await s.execute(f"UPDATE customer SET name = 'single' WHERE customer_id = {a}")
        with pytest.raises(TransactionError, match="single"):
            await s.execute(f"UPDATE customer SET name = 'single' WHERE customer_id = {b}")
        assert not s.in_transaction
        await s.execute("COMMIT")  # nothing left to commit
    assert await _names(env, (a, b)) == before


async def test_savepoints_in_a_single_shard_transaction(env: ShardedCluster, gw: gateway.Gateway) -> None:
    a, _ = _two_shards(env)
    before = await _names(env, (a,))
    async with gw.session(env.engine, "customer") as s:
        await s.execute("BEGIN")
        await s.execute("SAVEPOINT sp1")
        await s.execute(f"UPDATE customer SET name = 'sp' WHERE customer_id = {a}")
        await s.execute("ROLLBACK TO SAVEPOINT sp1")
        assert list(await s.execute(f"SELECT name FROM customer WHERE customer_id = {a}")) == [(before[a],)]
        await s.execute("COMMIT")


async def test_autocommit_off_keeps_a_transaction_open(my_env: ShardedCluster) -> None:
    a, _ = _two_shards(my_env)
    before = await _names(my_env, (a,))
    async with gateway.connect(my_env.config) as g, g.session("mysql", "customer") as s:
        await s.execute("SET autocommit = 0")
        await s.execute(f"UPDATE customer SET name = 'ac0' WHERE customer_id = {a}")
        assert s.in_transaction
        await s.execute("ROLLBACK")
    assert await _names(my_env, (a,)) == before


async def test_insert_draws_ids_from_the_sequence_and_places_rows(env: ShardedCluster,
                                                                  gw: gateway.Gateway) -> None:
    result = await gw.execute("INSERT INTO customer (name, region, balance) VALUES ('seq-a', 'x', 1), "
                              "('seq-b', 'x', 2), ('seq-c', 'x', 3)", dialect=env.engine, keyspace="customer")
    assert result.rows_affected == 3
    first = result.last_insert_id
    assert first is not None and first >= 100000
    ids = (first, first + 1, first + 2)
    for cid in ids:  # each row sits on the shard its keyspace id selects
        async with connected(env.shard_dsns[shard_of(env.snapshot, cid)]) as conn:
            assert await db.fetch_all(conn, f"SELECT COUNT(*) FROM customer WHERE customer_id = {cid}") == [(1,)]
    deleted = await gw.execute(f"DELETE FROM customer WHERE customer_id IN ({', '.join(map(str, ids))})",
                               dialect=env.engine, keyspace="customer")
    assert deleted.rows_affected == 3


async def test_sequence_blocks_are_cached_and_routers_never_share_an_id(env: ShardedCluster) -> None:
    """Two routers insert concurrently: ids come from memory (one sequence-table UPDATE per ``cache`` ids, 100
    here), and the routers' blocks never overlap, so no id is handed out twice."""
    from router.engine.sequences import cache_for

    async with gateway.connect(env.config) as g1, gateway.connect(env.config) as g2:
        async def insert(g: gateway.Gateway, n: int) -> list[int]:
            got = []
            async with g.session(env.engine, "customer") as s:
                for i in range(n):
                    r = await s.execute(f"INSERT INTO customer (name, region, balance) VALUES ('sq{i}', 'seq', {i})")
                    assert r.last_insert_id is not None
                    got.append(r.last_insert_id)
                r = await s.execute("INSERT INTO customer (name, region, balance) VALUES ('m1', 'seq', 0), "
                                    "('m2', 'seq', 0), ('m3', 'seq', 0)")
                assert r.last_insert_id is not None
                got += [r.last_insert_id + k for k in range(3)]
            return got

        runs = await asyncio.gather(*(insert(g, 60) for g in (g1, g2, g1, g2)))
        ids = [i for run_ids in runs for i in run_ids]
        assert len(ids) == len(set(ids)) == 4 * 63
        for run_ids in runs:
            assert run_ids == sorted(run_ids)
        reservations = cache_for(g1.pools).reservations + cache_for(g2.pools).reservations
        assert 2 <= reservations <= 6, reservations  # 252 ids in blocks of 100 over two routers
        rows = await g1.execute("SELECT customer_id FROM customer WHERE region = 'seq'", dialect=env.engine,
                                keyspace="customer")
        assert sorted(r[0] for r in rows) == sorted(ids)
        await g1.execute("DELETE FROM customer WHERE region = 'seq'", dialect=env.engine, keyspace="customer")


async def test_backend_errors_keep_their_codes(env: ShardedCluster, gw: gateway.Gateway) -> None:
    with pytest.raises(BackendError) as info:
        await gw.execute("INSERT INTO customer (customer_id, name, region, balance) VALUES (1, 'dup', 'x', 0)",
                         dialect=env.engine, keyspace="customer")
    assert info.value.mysql_errno == 1062 and info.value.pg_sqlstate == "23505"


# --- two-phase commit and crash recovery -------------------------------------------------------------------------
_CRASHER = textwrap.dedent("""
    import asyncio, json, sys
    sys.path.insert(0, {root!r})
    from router import gateway
    from tests.integration.engine_support import make_config, VSCHEMA
    from sharding.db import DSN

    async def main():
        spec = json.loads(sys.argv[1])
        shards = {{ks: {{n: DSN.parse(u) for n, u in by.items()}} for ks, by in spec["shards"].items()}}
        config = make_config(spec["engine"], shards, VSCHEMA)
        async with gateway.connect(config, twopc_dir=spec["dir"]) as gw, gw.session(spec["engine"], "customer") as s:
            await s.execute("SET transaction_mode = 'twopc'")
            await s.execute("BEGIN")
            for cid in spec["ids"]:
                await s.execute(f"UPDATE customer SET name = '2pc' WHERE customer_id = {{cid}}")
            await s.execute("COMMIT")
            print("committed")
    asyncio.run(main())
""")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["after_decision", "after_prepare"])
async def test_twopc_recovers_a_router_crash(env: ShardedCluster, fault: str, tmp_path: Path) -> None:
    a, b = _two_shards(env)
    before = await _names(env, (a, b))
    shards = {"customer": {n: d.url(with_password=True) for n, d in env.shard_dsns.items()},
              "main": {"0": env.main_dsn.url(with_password=True)}}
    spec = json.dumps({"engine": env.engine, "shards": shards, "dir": str(tmp_path), "ids": [a, b]})
    script = tmp_path / "crash.py"
    script.write_text(_CRASHER.format(root=str(ROOT)))
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), spec, env={**os.environ,
                                                "SHARDGATE_FAULT": fault}, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == -9, (out + err).decode()[-2000:]
    assert await _names(env, (a, b)) == before  # prepared, not committed: invisible
    async with gateway.connect(env.config, twopc_dir=tmp_path) as g:
        report = g.recovery
        assert not report.errors
        if fault == "after_decision":
            assert len(report.committed) == 2 and not report.rolled_back
        else:
            assert len(report.rolled_back) == 2 and not report.committed
    expected = {a: "2pc", b: "2pc"} if fault == "after_decision" else before
    assert await _names(env, (a, b)) == expected
    if fault == "after_decision":
        await gw_restore(env, before)


async def gw_restore(env: ShardedCluster, names: dict[int, str]) -> None:
    async with gateway.connect(env.config) as g:
        for cid, name in names.items():
            await g.execute(f"UPDATE customer SET name = '{name}' WHERE customer_id = {cid}", dialect=env.engine,
                            keyspace="customer")


async def test_twopc_commit_without_crash(env: ShardedCluster, tmp_path: Path) -> None:
    a, b = _two_shards(env)
    before = await _names(env, (a, b))
    async with gateway.connect(env.config, twopc_dir=tmp_path, tx_mode="twopc") as g, \
            g.session(env.engine, "customer") as s:
        await s.execute("BEGIN")
        await s.execute(f"UPDATE customer SET name = 'two' WHERE customer_id IN ({a}, {b})")
        assert await s.commit() == []
    assert await _names(env, (a, b)) == {a: "two", b: "two"}
    log = (tmp_path / "twopc-decisions.jsonl").read_text().splitlines()
    assert [json.loads(line)["state"] for line in log] == ["prepare", "commit", "done"]
    await gw_restore(env, before)


# --- a backend stopped and restarted under load ------------------------------------------------------------------
@pytest.mark.timeout(90)
async def test_a_stopped_backend_fails_only_its_queries() -> None:
    from shardgate.localdb import LocalCluster

    cluster = LocalCluster(postgres=2, mysql=0)
    await asyncio.to_thread(cluster.start)
    try:
        env = await build_cluster(cluster.servers, "postgres")
        from router.backend.pool_config import PoolConfig

        async with gateway.connect(env.config, pool_config=PoolConfig(max_size=4, acquire_timeout=2,
                                                                      connect_timeout=2, backoff_max=0.2)) as g:
            a, b = _two_shards(env)
            results: dict[str, list[Any]] = {"-80": [], "80-": []}
            stop = asyncio.Event()

            async def load(shard: str, cid: int) -> None:
                while not stop.is_set():
                    try:
                        await g.execute(f"SELECT name FROM customer WHERE customer_id = {cid}", dialect="postgres",
                                        keyspace="customer")
                        results[shard].append("ok")
                    except (BackendUnavailableError, BackendError) as exc:
                        results[shard].append(type(exc).__name__)
                    await asyncio.sleep(0.01)

            tasks = [asyncio.create_task(load("-80", a)), asyncio.create_task(load("80-", b))]
            await asyncio.sleep(0.5)
            await asyncio.to_thread(cluster.postgres[1].stop)  # the server of shard 80-
            mark = {k: len(v) for k, v in results.items()}
            await asyncio.sleep(1.0)
            during = {k: v[mark[k]:] for k, v in results.items()}
            await asyncio.to_thread(cluster.postgres[1].start)
            await asyncio.sleep(2.0)
            stop.set()
            await asyncio.gather(*tasks)
            after = results["80-"][-5:]
            assert during["-80"] and set(during["-80"]) == {"ok"}, during["-80"][:5]
            assert during["80-"] and "ok" not in during["80-"][2:], during["80-"][:10]
            assert set(during["80-"]) <= {"ok", "BackendUnavailableError"}
            assert after == ["ok"] * 5, results["80-"][-20:]
            # A scatter needs both shards: it failed while 80- was down and works again now.
            assert len(await g.execute("SELECT customer_id FROM customer", dialect="postgres",
                                       keyspace="customer")) == 600
    finally:
        await asyncio.to_thread(cluster.destroy)


# --- session statements ----------------------------------------------------------------------------------------
async def test_session_statements(env: ShardedCluster, gw: gateway.Gateway) -> None:
    async with gw.session(env.engine) as s:
        await s.execute("USE customer")
        assert s.state.keyspace == "customer"
        assert list(await s.execute("SELECT name FROM customer WHERE customer_id = 3")) == [("name03",)]
        first = (await s.execute("SELECT NEXT 5 VALUES FROM main.customer_seq"))[0][0]
        second = (await s.execute("SELECT NEXT VALUE FROM main.customer_seq"))[0][0]
        assert second == first + 5
        explained = await s.execute("VEXPLAIN QUERIES SELECT customer_id FROM customer WHERE customer_id IN (1, 2, 4)")
        assert explained.column_names == ["#", "keyspace", "shard", "query"]
        assert sorted(r[2] for r in explained) == sorted({shard_of(env.snapshot, i) for i in (1, 2, 4)})
        await s.execute("CREATE TABLE ddl_probe (id INT PRIMARY KEY)")  # DDL fans out to every shard
        for dsn in env.shard_dsns.values():
            async with connected(dsn) as conn:
                await db.execute(conn, "SELECT id FROM ddl_probe")
        await s.execute("DROP TABLE ddl_probe")
        await s.execute("ALTER VSCHEMA ON customer ADD VINDEX name_hash(name) USING hash")
        assert "name_hash" in gw.snapshot.vschema.keyspaces["customer"].vindexes
        if env.engine == "mysql":
            tables = await s.execute("SHOW TABLES")
            assert {r[0] for r in tables} >= {"customer", "big"}
