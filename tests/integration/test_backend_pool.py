"""Pools against real servers: bounds, acquire timeout, lifetime/idle/generation/max-queries recycling, discarding
broken or mid-transaction connections, TLS from a ShardConfig, PoolSet over a snapshot, and a real server stopped
and restarted under concurrent load (its own LocalCluster, so no other test is disturbed).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from router.backend.connection import BackendTarget
from router.backend.pool import Pool
from router.backend.pool_config import PoolConfig
from router.backend.pools import PoolSet
from router.backend.result import ResultSet
from shardgate.localdb import LocalCluster, PostgresInstance
from sharding import db
from sharding.config_model import SecretRef, ShardConfig
from sharding.errors import BackendUnavailableError, TooManyConnectionsError
from sharding.keyrange import KeyRange
from sharding.snapshot import ClusterSnapshot, Shard
from sharding.vschema import parse_vschema
from tests.support.backends import Backends, backend_unavailable, connected

pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]

FAST = dict(maintenance_interval=0.1, backoff_initial=0.05, backoff_max=0.5, connect_timeout=3.0)


@pytest.fixture(scope="module")
def dsns(backends: Backends) -> Iterator[dict[str, db.DSN]]:
    name = f"t_pool_{secrets.token_hex(3)}"
    servers = {"postgres": backends.postgres[0], "mysql": backends.mysql[0]}
    yield {engine: server.create_database(name) for engine, server in servers.items()}
    for server in servers.values():
        with contextlib.suppress(BackendUnavailableError):
            server.drop_database(name)


@pytest.fixture(params=["postgres", "mysql"])
def dsn(request: pytest.FixtureRequest, dsns: dict[str, db.DSN]) -> db.DSN:
    return dsns[request.param]


@pytest.fixture
async def make_pool(dsn: db.DSN) -> AsyncIterator[object]:
    pools: list[Pool] = []

    def make(**config: object) -> Pool:
        pool = Pool(BackendTarget("customer", "-80"), dsn, PoolConfig(**{**FAST, **config}))  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close(timeout=1)


async def conn_id(pool: Pool) -> int:
    async with pool.acquire() as conn:
        return conn.conn_id


async def server_sessions(dsn: db.DSN) -> int:
    """Sessions the server has open on the test database (excluding the one asking)."""
    async with connected(dsn) as admin:
        if dsn.engine == "postgres":
            sql = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid()")
        else:
            sql = ("SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE() "
                   "AND id <> CONNECTION_ID()")
        return int((await db.fetch_all(admin, sql))[0][0])


async def kill_session(dsn: db.DSN, session: int) -> None:
    async with connected(dsn) as admin:
        if dsn.engine == "postgres":
            await db.fetch_all(admin, f"SELECT pg_terminate_backend({session})")
        else:
            await db.execute(admin, f"KILL {session}")
    await asyncio.sleep(0.1)  # the FIN reaches our side


async def test_bounded_concurrency_reuses_connections(make_pool, dsn: db.DSN) -> None:
    pool = make_pool(max_size=3)
    sleep = "SELECT pg_sleep(0.05)" if dsn.engine == "postgres" else "SELECT SLEEP(0.05)"
    seen: set[int] = set()
    peak = 0

    async def query() -> None:
        nonlocal peak
        async with pool.acquire() as conn:
            seen.add(conn.conn_id)
            peak = max(peak, pool.stats().in_use)
            await conn.execute(sleep)

    await asyncio.gather(*(query() for _ in range(12)))
    stats = pool.stats()
    assert len(seen) == 3 and peak == 3 and stats.size == 3 and stats.created == 3 and stats.acquired == 12
    assert await server_sessions(dsn) == 3


async def test_acquire_timeout_is_a_clear_error(make_pool) -> None:
    pool = make_pool(max_size=1)
    async with pool.acquire():
        started = time.monotonic()
        with pytest.raises(TooManyConnectionsError) as info:
            await pool.acquire(timeout=0.2)
        assert 0.15 < time.monotonic() - started < 1.0
    assert "customer/-80/primary" in info.value.message and info.value.mysql_errno == 1040
    assert pool.stats().timeouts == 1


async def test_lifetime_idle_generation_and_max_queries_recycle(make_pool, dsn: db.DSN) -> None:
    pool = make_pool(max_lifetime=0.3, lifetime_jitter=0.0)
    first = await conn_id(pool)
    assert await conn_id(pool) == first
    await asyncio.sleep(0.35)
    assert await conn_id(pool) != first

    pool = make_pool(idle_timeout=0.2)
    await conn_id(pool)
    assert pool.stats().idle == 1
    await asyncio.sleep(0.5)  # the sweep (every 0.1 s) closes it
    assert pool.stats().size == 0

    pool = make_pool()
    first = await conn_id(pool)
    async with pool.acquire() as loaned:
        pool.expire_connections()
        held = loaned.conn_id
    assert held == first
    assert await conn_id(pool) != first and pool.generation == 1

    pool = make_pool(max_queries=2)
    async with pool.acquire() as conn:
        first = conn.conn_id
        await conn.execute("SELECT 1")
        await conn.execute("SELECT 2")
    assert await conn_id(pool) != first
    await asyncio.sleep(0.1)
    assert await server_sessions(dsn) <= 4  # recycled connections were really closed


async def test_broken_connections_are_discarded(make_pool, dsn: db.DSN) -> None:
    pool = make_pool(max_size=2)
    idle = await conn_id(pool)
    await kill_session(dsn, idle)  # killed while idle: checkout notices, no query fails
    async with pool.acquire() as conn:
        assert conn.conn_id != idle
        assert isinstance(await conn.execute("SELECT 1"), ResultSet)
        in_use = conn.conn_id
        await kill_session(dsn, in_use)  # killed while lent: the query fails cleanly
        with pytest.raises(BackendUnavailableError):
            await conn.execute("SELECT 1")
    assert await conn_id(pool) not in (idle, in_use)
    stats = pool.stats()
    assert stats.discarded == 2 and stats.size == 1


async def test_a_connection_left_mid_transaction_is_rolled_back(make_pool, dsn: db.DSN) -> None:
    pool = make_pool(max_size=1)
    t = f"left_{secrets.token_hex(3)}"
    async with pool.acquire() as conn:
        await conn.execute(f"CREATE TABLE {t} (id int PRIMARY KEY)")
        await conn.begin()
        await conn.execute(f"INSERT INTO {t} VALUES (1)")
        first = conn.conn_id
    async with pool.acquire() as conn:
        assert conn.conn_id == first and not conn.in_transaction  # reset worked: reused
        result = await conn.execute(f"SELECT count(*) FROM {t}")
        assert isinstance(result, ResultSet) and result.rows == [(0,)]
        await conn.begin()
        await conn.execute(f"INSERT INTO {t} VALUES (2)")
        stream = conn.stream(f"SELECT * FROM {t}")
        await stream.__aenter__()  # an abandoned stream inside an abandoned transaction
    async with pool.acquire() as conn:
        result = await conn.execute(f"SELECT count(*) FROM {t}")
        assert isinstance(result, ResultSet) and result.rows == [(0,)]


async def test_pool_set_over_a_snapshot_of_real_servers(dsns: dict[str, db.DSN],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    shard_configs = {}
    for engine, dsn in dsns.items():
        var = f"SG_TEST_PW_{engine.upper()}"
        monkeypatch.setenv(var, dsn.password)
        shard_configs[engine] = ShardConfig(keyspace=engine, name="0", key_range=KeyRange.parse("-"),
                                            engine=dsn.engine, host=dsn.host, port=dsn.port, database=dsn.database,
                                            user=dsn.user, password=SecretRef(env=var))
    vschema = parse_vschema({"keyspaces": {"postgres": {"sharded": False}, "mysql": {"sharded": False}}})

    def snap(version: int, mysql_backend: object) -> ClusterSnapshot:
        return ClusterSnapshot.build(version, vschema, {
            "postgres": [Shard.from_name("0", {"primary": shard_configs["postgres"]})],
            "mysql": [Shard.from_name("0", {"primary": mysql_backend})]})

    pools = PoolSet(PoolConfig(**FAST))  # type: ignore[arg-type]
    try:
        await pools.apply(snap(1, shard_configs["mysql"]))
        for engine in dsns:
            async with pools.acquire(engine, "0") as conn:
                assert conn.engine == engine
                result = await conn.execute("SELECT 1")
                assert isinstance(result, ResultSet) and result.rows == [(1,)]
        old_mysql = pools.pool("mysql", "0")
        report = await pools.apply(snap(2, dsns["mysql"]))  # same server, now named by a DSN: a new pool
        assert report.kept == ("postgres/0/primary",) and report.added == report.removed == ("mysql/0/primary",)
        await asyncio.wait_for(pools.drained(), 5)
        assert old_mysql.stats().size == 0
        async with pools.acquire("mysql", "0") as conn:
            assert isinstance(await conn.execute("SELECT 2"), ResultSet)
    finally:
        await pools.close(timeout=1)


# --- TLS ----------------------------------------------------------------------------------------------------------
@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[PostgresInstance, Path]]:
    if shutil.which("openssl") is None:
        backend_unavailable("openssl is needed to make a test certificate")
    server = PostgresInstance(password=secrets.token_urlsafe(12))
    try:
        server.init()
    except BackendUnavailableError as exc:
        backend_unavailable(exc)
    cert, key = server.base_dir / "server.crt", server.base_dir / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        for path in (cert, key):
            os.chown(path, user.pw_uid, user.pw_gid)
    server.settings.update({"ssl": "on", "ssl_cert_file": str(cert), "ssl_key_file": str(key)})
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert.read_bytes())
    try:
        server.start()
    except BackendUnavailableError as exc:
        server.destroy()
        backend_unavailable(exc)
    yield server, ca
    server.destroy()


async def test_tls_to_the_backend_from_shard_config(tls_server: tuple[PostgresInstance, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    server, ca = tls_server
    monkeypatch.setenv("SG_TEST_TLS_PW", server.password)
    config = ShardConfig(keyspace="ks", name="0", key_range=KeyRange.parse("-"), engine="postgres", host=server.host,
                         port=server.port, database="postgres", user=server.user,
                         password=SecretRef(env="SG_TEST_TLS_PW"), tls_mode=db.TLSMode.VERIFY_FULL, tls_ca_file=ca)
    pool = Pool(BackendTarget("ks", "0"), config, PoolConfig(**FAST))  # type: ignore[arg-type]
    try:
        async with pool.acquire() as conn:
            result = await conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert isinstance(result, ResultSet) and result.rows[0][0] is True and result.rows[0][1].startswith("TLS")
            assert await conn.cancel() is False
    finally:
        await pool.close(timeout=1)


# --- a server stops and comes back under load ------------------------------------------------------------------------
async def test_server_restart_under_load_fails_only_outage_queries() -> None:
    cluster = LocalCluster(postgres=1, mysql=1)
    try:
        await asyncio.to_thread(cluster.start)
    except BackendUnavailableError as exc:
        backend_unavailable(exc)
    config = PoolConfig(max_size=4, acquire_timeout=2.0, health_check_idle=5.0, **FAST)  # type: ignore[arg-type]
    pools = {s.engine: Pool(BackendTarget("ks", s.engine), s.dsn, config) for s in cluster.servers}
    events: list[tuple[str, float, float, BaseException | None]] = []
    done = asyncio.Event()

    async def client(engine: str, pool: Pool) -> None:
        while not done.is_set():
            began = time.monotonic()
            try:
                async with pool.acquire() as conn:
                    await conn.execute("SELECT 1", timeout=3.0)
            except Exception as exc:
                events.append((engine, began, time.monotonic(), exc))
                await asyncio.sleep(0.02)  # a client pausing after an error
            else:
                events.append((engine, began, time.monotonic(), None))
            await asyncio.sleep(0.005)

    clients = [asyncio.ensure_future(client(e, p)) for e, p in pools.items() for _ in range(6)]
    try:
        await asyncio.sleep(1.0)
        down_at = time.monotonic()
        await asyncio.gather(*(asyncio.to_thread(s.stop) for s in cluster.servers))
        await asyncio.sleep(1.0)
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in cluster.servers))
        up_at = time.monotonic()
        await asyncio.sleep(3.0)
    finally:
        done.set()
        await asyncio.gather(*clients, return_exceptions=True)
        for pool in pools.values():
            await pool.close(timeout=1)
        await asyncio.to_thread(cluster.destroy)

    for engine, pool in pools.items():
        mine = [e for e in events if e[0] == engine]
        failures = [e for e in mine if e[3] is not None]
        assert [e for e in mine if e[2] < down_at and e[3] is None], f"{engine}: no traffic before the outage"
        assert failures, f"{engine}: the outage went unnoticed"
        kinds = {type(e[3]).__name__ for e in failures}
        assert all(isinstance(e[3], BackendUnavailableError) for e in failures), f"{engine}: {kinds}"
        recovered = min(e[2] for e in mine if e[3] is None and e[1] >= up_at)
        assert recovered - up_at < 3.0, f"{engine}: served again only {recovered - up_at:.2f} s after restart"
        stray = [e for e in failures if not (e[2] >= down_at and e[1] <= recovered)]
        assert not stray, f"{engine}: {len(stray)} queries failed outside the outage"
        after = [e for e in mine if e[1] > recovered]
        assert len(after) > 50 and all(e[3] is None for e in after)
        stats = pool.stats()
        assert stats.errors > 0 and stats.created > 1
        # No stampede: hundreds of failed queries, a handful of connect attempts (the backoff's probes).
        assert stats.errors < 20 < len(failures), (stats.errors, len(failures))
