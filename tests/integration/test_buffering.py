"""The buffering hook on real shards (``router.engine.buffering``): while a shard is paused, statements for it
wait (bounded) and then run against the routing in force when it resumes; past the bound they get a clear
retryable error.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import time
from collections.abc import AsyncIterator
from types import MappingProxyType
from typing import Any

import pytest

from router import gateway
from router.engine.buffering import BufferConfig
from sharding import db
from sharding.config_model import SecretRef
from sharding.errors import BufferTimeoutError
from sharding.snapshot import ClusterSnapshot, Shard
from tests.integration.engine_support import ShardedCluster, build_cluster, insert_sql, schema, shard_of
from tests.support.backends import DatabaseServer, connected

pytestmark = [pytest.mark.backend, pytest.mark.timeout(120)]
ROWS = [(i, f"n{i}", "north", i, i) for i in range(1, 65)]


@pytest.fixture(scope="module")
async def env(pg_cluster: list[DatabaseServer]) -> AsyncIterator[ShardedCluster]:
    cluster = await build_cluster(pg_cluster, "postgres", rows=ROWS)
    yield cluster
    await asyncio.to_thread(cluster.drop)


async def _new_primary(cluster: ShardedCluster, shard: str) -> db.DSN:
    """A copy of ``shard`` on another database whose names end in ``-new`` (so reads show where they went)."""
    name = f"buf_{secrets.token_hex(3)}"
    server = cluster.servers[1]
    dsn = await asyncio.to_thread(server.create_database, name)
    cluster.names.append((server, name))
    rows = [(r[0], r[1] + "-new", *r[2:]) for r in ROWS if shard_of(cluster.snapshot, r[0]) == shard]
    async with connected(dsn) as conn:
        for sql in schema("postgres"):
            await db.execute(conn, sql)
        await db.execute(conn, insert_sql(rows))
    return dsn


async def _switch(gw: Any, shard: str, dsn: db.DSN) -> None:
    """Install a snapshot whose ``customer/<shard>`` primary is ``dsn`` (what a planned primary change does)."""
    current = gw.snapshot
    shards: dict[str, list[Shard]] = {}
    for ks, entry in current.keyspaces.items():
        out = []
        for s in entry.shards:
            if ks == "customer" and s.name == shard:
                os.environ[f"SG_TEST_PW_{dsn.port}"] = dsn.password
                primary = dataclasses.replace(s.backends["primary"], port=dsn.port, database=dsn.database,
                                              host=dsn.host, password=SecretRef(env=f"SG_TEST_PW_{dsn.port}"))
                s = Shard(s.name, s.key_range, MappingProxyType({"primary": primary}))
            out.append(s)
        shards[ks] = out
    await gw._install(ClusterSnapshot.build(gw._vschema_version + 1, current.vschema, shards))


async def test_pause_and_resume_under_load(env: ShardedCluster) -> None:
    paused_ids = [r[0] for r in ROWS if shard_of(env.snapshot, r[0]) == "-80"]
    new_dsn = await _new_primary(env, "-80")
    async with gateway.connect(env.config) as gw:
        gw.buffer.reconfigure(BufferConfig(max_wait=5.0, max_requests=1000))
        errors: list[BaseException] = []
        waits: list[float] = []
        seen_after: list[str] = []
        stop = asyncio.Event()
        resumed_at: list[float] = []

        async def client(k: int) -> None:
            async with gw.session("postgres", "customer") as s:
                i = 0
                while not stop.is_set():
                    cid = ROWS[(k * 7 + i) % len(ROWS)][0]
                    i += 1
                    began = time.monotonic()
                    try:
                        if i % 3 == 0:
                            await s.execute(f"UPDATE customer SET score = {i} WHERE customer_id = {cid}")
                        else:
                            rows = await s.execute(f"SELECT name FROM customer WHERE customer_id = {cid}")
                            if resumed_at and began > resumed_at[0] and cid in paused_ids:
                                seen_after.append(rows[0][0])
                    except Exception as exc:
                        errors.append(exc)
                    waits.append(time.monotonic() - began)
                    await asyncio.sleep(0.005)

        tasks = [asyncio.create_task(client(k)) for k in range(24)]
        await asyncio.sleep(0.4)
        handle = gw.buffer.pause("customer", ["-80"], reason="planned primary change")
        assert await handle.quiesce(5)  # what was running on the old primary has finished
        await asyncio.sleep(0.8)  # statements for -80 pile up; -80 of the old primary is no longer used
        await _switch(gw, "-80", new_dsn)
        handle.resume()
        resumed_at.append(time.monotonic())
        await asyncio.sleep(0.6)
        stop.set()
        await asyncio.gather(*tasks)

        assert errors == []
        stats = gw.buffer.stats
        assert stats.buffered >= 5 and stats.replanned == stats.buffered and stats.timeouts == 0
        assert max(waits) < 5.0  # nobody waited beyond the bound
        assert seen_after and all(name.endswith("-new") for name in seen_after)  # the new routing
        assert not gw.buffer.active and gw.buffer.waiting() == 0


async def test_bound_exceeded_gives_a_clear_retryable_error(env: ShardedCluster) -> None:
    cid = next(r[0] for r in ROWS if shard_of(env.snapshot, r[0]) == "80-")
    other = next(r[0] for r in ROWS if shard_of(env.snapshot, r[0]) == "-80")
    async with gateway.connect(env.config) as gw:
        gw.buffer.reconfigure(BufferConfig(max_wait=0.3, max_requests=2))
        with gw.buffer.pause("customer", ["80-"], reason="reshard cutover"):
            began = time.monotonic()
            with pytest.raises(BufferTimeoutError) as info:
                await gw.execute(f"SELECT name FROM customer WHERE customer_id = {cid}", keyspace="customer")
            waited = time.monotonic() - began
            assert 0.25 <= waited < 1.0
            err = info.value
            assert err.retryable and err.pg_sqlstate == "40001"
            assert "customer/80-" in str(err) and "reshard cutover" in str(err) and "0.3 s" in str(err)
            # Other shards are not held.
            assert len(await gw.execute(f"SELECT name FROM customer WHERE customer_id = {other}",
                                        keyspace="customer")) == 1
            # A full buffer refuses at once.
            results = await asyncio.gather(*(gw.execute(f"SELECT name FROM customer WHERE customer_id = {cid}",
                                                        keyspace="customer") for _ in range(3)),
                                           return_exceptions=True)
            assert all(isinstance(r, BufferTimeoutError) for r in results)
            assert sum("buffer is full" in str(r) for r in results) == 1
            # A scatter read reaches the paused shard too; a transaction is not buffered.
            with pytest.raises(BufferTimeoutError):
                await gw.execute("SELECT count(*) FROM customer", keyspace="customer")
            async with gw.session("postgres", "customer") as s:
                await s.execute("BEGIN")
                assert len(await s.execute(f"SELECT name FROM customer WHERE customer_id = {cid}")) == 1
                await s.execute("ROLLBACK")
        assert gw.buffer.stats.timeouts == 4 and gw.buffer.stats.rejected == 1


async def test_quiesce_waits_for_statements_already_running(env: ShardedCluster) -> None:
    cid = next(r[0] for r in ROWS if shard_of(env.snapshot, r[0]) == "-80")
    async with gateway.connect(env.config) as gw, gw.session("postgres", "customer") as s:
        await s.execute("BEGIN")
        await s.execute(f"UPDATE customer SET score = 1 WHERE customer_id = {cid}")  # holds a -80 connection
        with gw.buffer.pause("customer", ["-80"], reason="switch") as handle:
            assert not await handle.quiesce(0.2)
            await s.execute("ROLLBACK")
            assert await handle.quiesce(2)


async def test_pause_expires_by_itself(env: ShardedCluster) -> None:
    cid = ROWS[0][0]
    async with gateway.connect(env.config) as gw:
        handle = gw.buffer.pause("customer", None, reason="workflow died", max_pause=0.2)
        rows = await gw.execute(f"SELECT name FROM customer WHERE customer_id = {cid}", keyspace="customer")
        assert len(rows) == 1 and not handle.active and gw.buffer.stats.expired_pauses == 1


async def test_through_the_postgres_frontend(pg_cluster: list[DatabaseServer]) -> None:
    """A client of the PostgreSQL frontend (its single-shard fast path included) waits while the shard is paused;
    past the bound it gets SQLSTATE 40001 with the reason."""
    asyncpg = pytest.importorskip("asyncpg")
    from tests.support.pg_router import InProcessRouter, make_cluster

    cluster = await make_cluster(pg_cluster)
    router = await InProcessRouter(cluster.doc).start()
    try:
        gw = router.gateway
        gw.buffer.reconfigure(BufferConfig(max_wait=0.3))
        conn = await asyncpg.connect(router.url(database="commerce"))
        try:
            sql = "SELECT description FROM product WHERE sku = 'SKU-1'"
            with gw.buffer.pause("commerce", None, reason="failover drill"):
                with pytest.raises(asyncpg.PostgresError) as info:
                    await conn.fetch(sql)
                assert info.value.sqlstate == "40001" and "failover drill" in str(info.value)
            handle = gw.buffer.pause("commerce", None, reason="planned primary change")
            task = asyncio.create_task(conn.fetch(sql))
            await asyncio.sleep(0.15)
            assert not task.done()
            handle.resume()
            assert [tuple(r) for r in await task] == [("Monitor",)]
        finally:
            await conn.close()
    finally:
        await router.close()
        await asyncio.to_thread(cluster.drop)
