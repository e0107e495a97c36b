"""The real servers the other integration tests stand on: configured as replication, 2PC and routing need.

Uses the session's servers (``pg_cluster``, ``mysql_cluster``) through ``sharding.db``; the restart test starts
its own pair so stopping them disturbs no other test.
"""
from __future__ import annotations

import asyncio
import dataclasses
import socket

import pytest

from shardgate.localdb import LocalCluster, LocalServer, PostgresInstance
from sharding import db
from sharding.errors import BackendUnavailableError
from tests.support.backends import Backends, DatabaseServer, backend_unavailable, connected

pytestmark = pytest.mark.backend

CHECK = "\u2713"  # ✓: outside latin1, so a server left in latin1 rejects it


async def _settings(dsn: db.DSN, names: list[str]) -> dict[str, str]:
    async with connected(dsn) as conn:
        if dsn.engine == "postgres":
            rows = await db.fetch_all(conn, "SELECT name, setting FROM pg_settings WHERE name IN ("
                                      + ", ".join(f"'{n}'" for n in names) + ")")
        else:
            rows = await db.fetch_all(conn, "SELECT " + ", ".join(f"@@{n}" for n in names))
            rows = list(zip(names, rows[0], strict=True))
    return {name: str(value) for name, value in rows}


# --- PostgreSQL -------------------------------------------------------------------------------------------------
async def test_postgres_servers_are_configured_for_replication_and_2pc(pg_cluster: list[DatabaseServer]) -> None:
    assert len(pg_cluster) >= 2
    assert len({server.port for server in pg_cluster}) == len(pg_cluster)
    for server in pg_cluster:
        settings = await _settings(server.dsn, ["server_version_num", "wal_level", "max_prepared_transactions",
                                                "max_replication_slots", "max_wal_senders", "server_encoding",
                                                "lc_collate", "listen_addresses"])
        if isinstance(server, PostgresInstance):
            assert settings["server_version_num"].startswith("15"), settings
            assert settings["listen_addresses"] == "127.0.0.1"
        assert int(settings["server_version_num"]) >= 150000
        assert settings["wal_level"] == "logical"
        assert int(settings["max_prepared_transactions"]) > 0
        assert int(settings["max_replication_slots"]) > 0
        assert int(settings["max_wal_senders"]) > 0
        assert settings["server_encoding"] == "UTF8"
        assert settings["lc_collate"] == "C"


async def test_postgres_prepared_transaction_round_trip(pg_databases: list[db.DSN]) -> None:
    dsn = pg_databases[0]
    gid_commit, gid_rollback = f"sg-commit-{dsn.port}", f"sg-rollback-{dsn.port}"
    async with connected(dsn) as conn:
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        for gid, row in ((gid_commit, 1), (gid_rollback, 2)):
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO t VALUES ($1, 'x')", row)
            await conn.execute(f"PREPARE TRANSACTION '{gid}'")
        prepared = {r["gid"] for r in await conn.fetch("SELECT gid FROM pg_prepared_xacts")}
        assert {gid_commit, gid_rollback} <= prepared
        assert await conn.fetchval("SELECT count(*) FROM t") == 0  # prepared, not yet visible
        await conn.execute(f"COMMIT PREPARED '{gid_commit}'")
        await conn.execute(f"ROLLBACK PREPARED '{gid_rollback}'")
        assert [r["id"] for r in await conn.fetch("SELECT id FROM t")] == [1]
        assert not await conn.fetch("SELECT gid FROM pg_prepared_xacts WHERE gid = ANY($1::text[])",
                                    [gid_commit, gid_rollback])


# --- MariaDB ----------------------------------------------------------------------------------------------------
async def test_mysql_servers_have_row_binlog_gtids_and_utf8mb4(mysql_cluster: list[DatabaseServer]) -> None:
    assert len(mysql_cluster) >= 2
    server_ids = set()
    for server in mysql_cluster:
        settings = await _settings(server.dsn, ["version", "log_bin", "binlog_format", "gtid_strict_mode",
                                                "log_slave_updates", "character_set_server", "collation_server",
                                                "server_id", "bind_address", "gtid_domain_id"])
        assert "MariaDB" in settings["version"], settings
        assert settings["log_bin"] == "1"
        assert settings["binlog_format"] == "ROW"
        assert settings["gtid_strict_mode"] == "1"
        assert settings["log_slave_updates"] == "1"
        assert settings["character_set_server"] == "utf8mb4"
        assert settings["collation_server"] == "utf8mb4_general_ci"
        if isinstance(server, LocalServer):
            assert settings["bind_address"] == "127.0.0.1"
        server_ids.add(int(settings["server_id"]))
    assert len(server_ids) == len(mysql_cluster), "server_id must differ per instance"


async def test_mysql_writes_get_gtids_of_their_server(mysql_databases: list[db.DSN]) -> None:
    for dsn in mysql_databases:
        async with connected(dsn) as conn:
            server_id = (await db.fetch_all(conn, "SELECT @@server_id"))[0][0]
            await db.execute(conn, "CREATE TABLE t (id int PRIMARY KEY)")
            await db.execute(conn, "INSERT INTO t VALUES (1)")
            (pos,), = await db.fetch_all(conn, "SELECT @@gtid_binlog_pos")
            _domain, gtid_server, seq = pos.split(",")[-1].split("-")
            assert int(gtid_server) == server_id and int(seq) > 0, pos


async def test_mysql_xa_round_trip(mysql_databases: list[db.DSN]) -> None:
    # Prepare on connections that then go away, finish from another: a 2PC coordinator's recovery path.
    dsn = mysql_databases[0]
    async with connected(dsn) as conn:
        await db.execute(conn, "CREATE TABLE t (id int PRIMARY KEY, note varchar(10)) ENGINE=InnoDB")
    xids = {f"sg-commit-{dsn.database}": 1, f"sg-rollback-{dsn.database}": 2}
    for xid, row in xids.items():
        async with connected(dsn) as conn:
            await db.execute(conn, f"XA START '{xid}'")
            await db.execute(conn, f"INSERT INTO t VALUES ({row}, '{CHECK}')")
            await db.execute(conn, f"XA END '{xid}'")
            await db.execute(conn, f"XA PREPARE '{xid}'")
    commit_xid, rollback_xid = xids
    async with connected(dsn) as conn:
        recovered = {_text(row[3]) for row in await db.fetch_all(conn, "XA RECOVER")}
        try:
            assert set(xids) <= recovered
            assert await db.fetch_all(conn, "SELECT id FROM t") == []  # prepared, not yet visible
        finally:
            await db.execute(conn, f"XA COMMIT '{commit_xid}'")
            await db.execute(conn, f"XA ROLLBACK '{rollback_xid}'")
        assert await db.fetch_all(conn, "SELECT id, note FROM t") == [(1, CHECK)]
        assert not set(xids) & {_text(row[3]) for row in await db.fetch_all(conn, "XA RECOVER")}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- both engines -----------------------------------------------------------------------------------------------
async def test_probe_reports_version_and_latency(backends: Backends) -> None:
    for server in [*backends.postgres, *backends.mysql]:
        result = await db.probe(server.dsn, timeout=10)
        assert result.ok, result
        assert result.error is None
        assert result.latency_ms > 0
        expected = "MariaDB" if server.engine == "mysql" else "15."
        assert result.server_version and expected in result.server_version, result


async def test_probe_of_a_closed_port_is_not_ok() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, and that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for engine in ("postgres", "mysql"):
        dsn = db.DSN(engine=engine, host="127.0.0.1", port=port, user="u", password="closed-port-secret")
        result = await db.probe(dsn, timeout=5)
        assert not result.ok
        assert result.server_version is None
        assert result.error and str(port) in result.error
        assert "closed-port-secret" not in result.error
        with pytest.raises(BackendUnavailableError):
            await db.connect(dsn, timeout=5)


async def test_wrong_password_is_refused(backends: Backends) -> None:
    for server in (backends.postgres[0], backends.mysql[0]):
        result = await db.probe(dataclasses.replace(server.dsn, password="wrong-password"))
        assert not result.ok, f"{server.name} accepted a wrong password over TCP"
        assert "wrong-password" not in (result.error or "")


async def test_unicode_round_trip(pg_databases: list[db.DSN], mysql_databases: list[db.DSN]) -> None:
    text = f"{CHECK} caf\u00e9 \U0001f600"  # 3- and 4-byte UTF-8 (utf8mb4, not MySQL's 3-byte utf8)
    async with connected(pg_databases[0]) as conn:
        await conn.execute("CREATE TABLE u (s text)")
        await conn.execute("INSERT INTO u VALUES ($1)", text)
        await conn.execute(f"INSERT INTO u VALUES ('{CHECK}')")
        assert [r["s"] for r in await conn.fetch("SELECT s FROM u ORDER BY s DESC")] == [text, CHECK]
    async with connected(mysql_databases[0]) as conn:
        await db.execute(conn, "CREATE TABLE u (s varchar(20))")
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO u VALUES (%s)", (text,))
        await db.execute(conn, f"INSERT INTO u VALUES ('{CHECK}')")
        assert sorted(await db.fetch_all(conn, "SELECT s FROM u")) == sorted([(text,), (CHECK,)])


async def test_fresh_databases_are_empty_and_per_server(pg_databases: list[db.DSN],
                                                        mysql_databases: list[db.DSN]) -> None:
    for dsns in (pg_databases, mysql_databases):
        assert len({d.database for d in dsns}) == 1 and len({d.port for d in dsns}) == len(dsns)
        for dsn in dsns:
            async with connected(dsn) as conn:
                query = ("SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                         + ("'public'" if dsn.engine == "postgres" else "DATABASE()"))
                assert (await db.fetch_all(conn, query))[0][0] == 0


# --- lifecycle ----------------------------------------------------------------------------------------------------
async def test_stop_start_and_kill_keep_port_and_data() -> None:
    cluster = LocalCluster(postgres=1, mysql=1)
    try:
        await asyncio.to_thread(cluster.start)
    except BackendUnavailableError as exc:
        backend_unavailable(exc)
    try:
        for server in cluster.servers:
            port, dsn = server.port, server.dsn
            server.execute("CREATE TABLE kept (id int PRIMARY KEY)", "INSERT INTO kept VALUES (1)")

            await asyncio.to_thread(server.stop)
            assert not server.running
            assert not (await db.probe(dsn, timeout=3)).ok

            await asyncio.to_thread(server.start)
            assert server.port == port and server.dsn == dsn
            async with connected(dsn) as conn:
                assert await db.fetch_all(conn, "SELECT id FROM kept") == [(1,)]
                await db.execute(conn, "INSERT INTO kept VALUES (2)")

            pid = server.pid
            await asyncio.to_thread(server.kill)  # a crash: recovery must bring committed rows back
            assert pid is not None and not server.running
            await asyncio.to_thread(server.restart)
            async with connected(dsn) as conn:
                assert await db.fetch_all(conn, "SELECT id FROM kept ORDER BY id") == [(1,), (2,)]
            assert server.startup_seconds is not None and server.startup_seconds < 30
    finally:
        await asyncio.to_thread(cluster.destroy)
    assert all(server.pid is None for server in cluster.servers)
