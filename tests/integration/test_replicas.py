"""Replica routing and health with a real PostgreSQL streaming replica (``pg_basebackup -R`` from a primary
started for this module): ``@replica`` reads (and a user's default) go to the replica, writes and transactions to
the primary; a replica that is stopped, or that lags, is banned and reads fall back to the primary without client
errors; once healthy again it serves reads again.

Which server answered is read from the answer itself: ``inet_server_port()``.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from router import gateway
from router.backend.health import ReplicaHealthConfig
from sharding import db
from sharding.config_model import ClusterConfig, SecretRef
from sharding.errors import RoutingError
from tests.integration.engine_support import make_config
from tests.support.backends import backend_unavailable, connected

pytestmark = [pytest.mark.backend, pytest.mark.timeout(180)]
VSCHEMA = {"keyspaces": {"main": {"sharded": False, "tables": {"item": {}}}}}
PORT_SQL = "SELECT inet_server_port() AS port, v FROM item WHERE id = 1"


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Any, Any]]:
    try:
        from shardgate.localdb.postgres import PostgresInstance
        from tests.support.replicas import PostgresReplica

        primary = PostgresInstance(database="rep")
        primary.start()
    except Exception as exc:
        backend_unavailable(f"cannot start a PostgreSQL primary: {exc}")
    try:
        primary.execute("SELECT 1")
        from shardgate.localdb.admin import run_sql

        run_sql(primary.dsn, "CREATE TABLE item (id INT PRIMARY KEY, v TEXT NOT NULL)",
                "INSERT INTO item SELECT g, 'v' || g FROM generate_series(1, 50) AS g")
        replica = PostgresReplica(primary)
        replica.start()
    except Exception as exc:
        primary.destroy()
        backend_unavailable(f"cannot start a PostgreSQL streaming replica: {exc}")
    yield primary, replica
    replica.destroy()
    primary.destroy()


def _config(primary: Any, replica: Any, **health: Any) -> ClusterConfig:
    config = make_config("postgres", {"main": {"0": primary.dsn}}, VSCHEMA)
    var = f"SG_TEST_PW_{replica.port}"
    os.environ[var] = replica.password
    shard = config.keyspaces["main"].shards[0]
    rep = replace(shard, host=replica.host, port=replica.port, password=SecretRef(env=var))
    shard = replace(shard, replicas=(rep,))
    keyspaces = {"main": replace(config.keyspaces["main"], shards=(shard,))}
    cfg = ReplicaHealthConfig(**{"check_interval": 0.1, "ban_seconds": 1.0, "max_lag": 30.0, "timeout": 1.0,
                                 "users": {"reporting": "replica"}, **health})
    return replace(config, keyspaces=keyspaces, sections={"replica_health": cfg})


async def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def _replica_has(replica: Any, value: str) -> bool:
    async with connected(replica.dsn) as conn:
        rows = await db.fetch_all(conn, "SELECT v FROM item WHERE id = 1")
        return bool(rows) and rows[0][0] == value


async def test_reads_go_to_the_replica_writes_to_the_primary(pair: tuple[Any, Any]) -> None:
    primary, replica = pair
    async with gateway.connect(_config(primary, replica)) as gw:
        async with gw.session("mysql", "main") as s:
            assert (await s.execute(PORT_SQL))[0][0] == primary.port  # default: the primary
            await s.execute("USE `main@replica`")
            assert (await s.execute(PORT_SQL))[0][0] == replica.port
            with pytest.raises(RoutingError, match="writes go to primary"):  # Vitess: @replica is read-only
                await s.execute("UPDATE item SET v = 'written' WHERE id = 1")
        async with gw.session("postgres", "main", user="reporting") as s:  # the user's default: reads only
            assert (await s.execute(PORT_SQL))[0][0] == replica.port
            await s.execute("UPDATE item SET v = 'written' WHERE id = 1")  # a write: the primary
            async with connected(primary.dsn) as conn:
                assert (await db.fetch_all(conn, "SELECT v FROM item WHERE id = 1"))[0][0] == "written"
            await _wait(lambda: _replica_has(replica, "written"))
            assert tuple((await s.execute(PORT_SQL))[0]) == (replica.port, "written")
            await s.execute("BEGIN")  # a transaction: the primary, reads included
            assert (await s.execute(PORT_SQL))[0][0] == primary.port
            await s.execute("COMMIT")
            assert (await s.execute(PORT_SQL))[0][0] == replica.port
        await _wait(lambda: _rounds(gw))
        (status,) = gw.replica_health.snapshot()
        assert status.ok and status.lag is not None and status.lag < 30


async def _rounds(gw: Any) -> bool:
    return gw.replica_health.rounds >= 2


async def test_stopped_replica_is_banned_and_reads_fall_back(pair: tuple[Any, Any]) -> None:
    primary, replica = pair
    async with gateway.connect(_config(primary, replica)) as gw:
        errors: list[BaseException] = []
        ports: list[tuple[float, int]] = []
        stop = asyncio.Event()

        async def reader() -> None:
            async with gw.session("postgres", "main", user="reporting") as s:
                while not stop.is_set():
                    try:
                        began = time.monotonic()
                        port = (await s.execute(PORT_SQL))[0][0]
                        ports.append((began, port))
                    except Exception as exc:
                        errors.append(exc)
                    await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(reader()) for _ in range(12)]
        await asyncio.sleep(0.5)
        stopped_at = time.monotonic()
        await asyncio.to_thread(replica.stop)
        await asyncio.sleep(1.5)
        stop.set()
        await asyncio.gather(*tasks)
        assert errors == []
        before = {p for t, p in ports if t < stopped_at - 0.2}  # started (and so ended) well before the stop
        after = {p for t, p in ports if t > stopped_at + 0.5}
        assert before == {replica.port}, [(round(t - stopped_at, 3), p) for t, p in ports if p != replica.port]
        assert after == {primary.port}
        (status,) = gw.replica_health.snapshot()
        assert not status.ok and status.reason.startswith("down") and status.bans == 1

        await asyncio.to_thread(replica.start)
        await _wait(lambda: _healthy(gw))
        async with gw.session("postgres", "main", user="reporting") as s:
            await _wait(lambda: _answers_from(s, replica.port))


async def _healthy(gw: Any) -> bool:
    return all(s.ok for s in gw.replica_health.snapshot())


async def _answers_from(session: Any, port: int) -> bool:
    return bool((await session.execute(PORT_SQL))[0][0] == port)


async def test_lagging_replica_is_banned(pair: tuple[Any, Any]) -> None:
    primary, replica = pair
    async with gateway.connect(_config(primary, replica, max_lag=0.5)) as gw:
        async with gw.session("postgres", "main", user="reporting") as s:
            await _wait(lambda: _answers_from(s, replica.port))
            async with connected(replica.dsn) as rconn:
                await db.execute(rconn, "SELECT pg_wal_replay_pause()")
                try:
                    async with connected(primary.dsn) as pconn:
                        await db.execute(pconn, "UPDATE item SET v = 'lagged' WHERE id = 2")
                    await _wait(lambda: _banned_for_lag(gw))
                    assert (await s.execute(PORT_SQL))[0][0] == primary.port
                finally:
                    await db.execute(rconn, "SELECT pg_wal_replay_resume()")
            await _wait(lambda: _healthy(gw))
            await _wait(lambda: _answers_from(s, replica.port))


async def _banned_for_lag(gw: Any) -> bool:
    return any(not s.ok and s.reason.startswith("lagging") for s in gw.replica_health.snapshot())


# --- MariaDB: GTID replication ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def maria_pair() -> Iterator[tuple[Any, Any]]:
    from shardgate.localdb.admin import run_sql

    try:
        from shardgate.localdb.mariadb import MariaDBInstance

        primary = MariaDBInstance()
        primary.start()
        replica = MariaDBInstance()
        replica.start()
    except Exception as exc:
        backend_unavailable(f"cannot start MariaDB: {exc}")

    async def gtid_pos() -> str:
        async with connected(primary.dsn) as conn:
            return str((await db.fetch_all(conn, "SELECT @@gtid_binlog_pos"))[0][0])

    try:
        pos = asyncio.run(gtid_pos())
        run_sql(replica.dsn, f"SET GLOBAL gtid_slave_pos = '{pos}'",
                f"CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {primary.port}, "
                f"MASTER_USER = '{primary.user}', MASTER_PASSWORD = '{primary.password}', "
                "MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
                "START SLAVE")
        primary.create_database("repl")  # after the replica's start position: it replicates
        run_sql(primary.dsn_for("repl"), "CREATE TABLE item (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL)",
                "INSERT INTO item VALUES (1, 'v1'), (2, 'v2')")
    except Exception:
        replica.destroy()
        primary.destroy()
        raise
    yield primary, replica
    replica.destroy()
    primary.destroy()


def _maria_config(primary: Any, replica: Any) -> ClusterConfig:
    config = make_config("mysql", {"main": {"0": primary.dsn_for("repl")}}, VSCHEMA)
    var = f"SG_TEST_PW_{replica.port}"
    os.environ[var] = replica.password
    shard = config.keyspaces["main"].shards[0]
    shard = replace(shard, replicas=(replace(shard, port=replica.port, password=SecretRef(env=var)),))
    cfg = ReplicaHealthConfig(check_interval=0.1, ban_seconds=1.0, max_lag=30.0, timeout=1.0,
                              users={"reporting": "replica"})
    return replace(config, keyspaces={"main": replace(config.keyspaces["main"], shards=(shard,))},
                   sections={"replica_health": cfg})


async def test_mariadb_replica_routing_and_stopped_replication(maria_pair: tuple[Any, Any]) -> None:
    primary, replica = maria_pair
    rdsn = replica.dsn_for("repl")
    await _wait(lambda: _has_table(rdsn))  # the table comes by replication
    async with connected(rdsn) as conn:
        # A row only the replica has (not binlogged): whoever answers with it is the replica.
        await db.execute(conn, "SET SESSION sql_log_bin = 0")
        await db.execute(conn, "INSERT INTO item VALUES (999, 'replica-only')")
    probe = "SELECT v FROM item WHERE id = 999"
    async with gateway.connect(_maria_config(primary, replica)) as gw:
        async with gw.session("mysql", "main", user="reporting") as s:
            assert [tuple(r) for r in await s.execute(probe)] == [("replica-only",)]
            await s.execute("UPDATE item SET v = 'w' WHERE id = 1")  # a write: the primary
            async with connected(primary.dsn_for("repl")) as conn:
                assert (await db.fetch_all(conn, "SELECT v FROM item WHERE id = 1"))[0][0] == "w"
            async with gw.session("mysql", "main") as plain:  # no default: the primary
                assert list(await plain.execute(probe)) == []
            async with connected(rdsn) as conn:
                await db.execute(conn, "STOP SLAVE")
                try:
                    await _wait(lambda: _banned(gw, "replication stopped"))
                    assert list(await s.execute(probe)) == []  # banned: the primary answers
                finally:
                    await db.execute(conn, "START SLAVE")
            await _wait(lambda: _healthy(gw))
            await _wait(lambda: _probe_is(s, probe, [("replica-only",)]))


async def _has_table(dsn: db.DSN) -> bool:
    try:
        async with connected(dsn) as conn:
            return bool(await db.fetch_all(conn, "SELECT 1 FROM item WHERE id = 2"))
    except Exception:
        return False


async def _banned(gw: Any, reason: str) -> bool:
    return any(not s.ok and s.reason.startswith(reason) for s in gw.replica_health.snapshot())


async def _probe_is(session: Any, sql: str, rows: list[tuple[Any, ...]]) -> bool:
    return [tuple(r) for r in await session.execute(sql)] == rows


async def test_postgres_frontend_database_at_replica(pair: tuple[Any, Any]) -> None:
    """A PostgreSQL client naming database ``main@replica`` reads from the replica; ``main`` from the primary."""
    asyncpg = pytest.importorskip("asyncpg")
    from sharding.auth import make_user_entry
    from tests.support.pg_router import USERS, InProcessRouter

    primary, replica = pair
    for server in (primary, replica):
        os.environ[f"SG_TEST_PW_{server.port}"] = server.password
    doc = {
        "users": [make_user_entry("app", USERS["app"], roles=["admin"])],
        "keyspaces": {"main": {"shards": {"0": {
            "engine": "postgres", "host": primary.host, "port": primary.port, "database": primary.database,
            "user": primary.user, "password_env": f"SG_TEST_PW_{primary.port}",
            "replicas": [{"host": replica.host, "port": replica.port,
                          "password_env": f"SG_TEST_PW_{replica.port}"}]}}}},
        "vschema": VSCHEMA,
    }
    router = await InProcessRouter(doc).start()
    try:
        for database, port in (("main@replica", replica.port), ("main", primary.port)):
            conn = await asyncpg.connect(router.url(database=database))
            try:
                assert await conn.fetchval("SELECT inet_server_port() FROM item WHERE id = 1") == port
            finally:
                await conn.close()
    finally:
        await router.close()
