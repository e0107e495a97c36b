"""The PostgreSQL frontend with real clients (psql, asyncpg, psycopg 3, SQLAlchemy Core) against a router in this
process over real PostgreSQL shards: keyspace ``customer`` sharded on two servers, ``commerce`` unsharded."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import ssl
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest

from sharding import db
from tests.support.backends import DatabaseServer, connected
from tests.support.pg_router import USERS, Cluster, InProcessRouter, make_cluster

pytestmark = [pytest.mark.backend, pytest.mark.timeout(120)]

UTC = dt.UTC


@pytest.fixture(scope="module")
async def cluster(pg_cluster: list[DatabaseServer]) -> AsyncIterator[Cluster]:
    c = await make_cluster(pg_cluster)
    yield c
    await asyncio.to_thread(c.drop)


@pytest.fixture(scope="module")
async def router(cluster: Cluster) -> AsyncIterator[InProcessRouter]:
    r = await InProcessRouter(cluster.doc).start()
    yield r
    assert r.frontend.metrics.internal_errors == 0
    await r.close()


async def apg(router: InProcessRouter, user: str = "app", database: str = "customer", **kw: Any) -> Any:
    return await asyncpg.connect(host="127.0.0.1", port=router.port, user=user, password=USERS.get(user, ""),
                                 database=database, **kw)


async def shard_rows(cluster: Cluster, key: str, sql: str) -> list[Any]:
    async with connected(cluster.dsns[key]) as conn:
        return list(await db.fetch_all(conn, sql))


# --- asyncpg: the extended protocol with binary types ------------------------------------------------------------
async def test_asyncpg_prepared_statements_binary_types_and_routing(router: InProcessRouter,
                                                                    cluster: Cluster) -> None:
    conn = await apg(router)
    try:
        u = uuid.uuid4()
        when = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
        rows = [(i, f"n{i}", Decimal(f"{i}.25"), when, u, f'{{"k": {i}}}', bytes([i, 0, 255]), i / 4,
                 dt.date(2024, 1, i), i % 2 == 0) for i in range(1, 21)]
        await conn.executemany("INSERT INTO customer (customer_id, name, balance, created, u, j, b, f, d, ok) "
                               "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", rows)
        stmt = await conn.prepare("SELECT customer_id, name, balance, created, u, j, b, f, d, ok FROM customer "
                                  "WHERE customer_id = $1")
        assert [t.name for t in stmt.get_parameters()] == ["int8"]
        assert [a.type.name for a in stmt.get_attributes()] == ["int8", "text", "numeric", "timestamptz", "uuid",
                                                                 "jsonb", "bytea", "float8", "date", "bool"]
        for row in rows:
            assert tuple(await stmt.fetchrow(row[0])) == row
        # each row is on the shard its keyspace id names, not on both
        on_a = {r[0] for r in await shard_rows(cluster, "customer/-80", "SELECT customer_id FROM customer")}
        on_b = {r[0] for r in await shard_rows(cluster, "customer/80-", "SELECT customer_id FROM customer")}
        assert on_a | on_b == set(range(1, 21)) and not on_a & on_b and on_a and on_b
        # scatter with merge and aggregates
        assert await conn.fetchval("SELECT count(*) FROM customer WHERE customer_id <= 20") == 20
        ids = [r[0] for r in await conn.fetch("SELECT customer_id FROM customer WHERE customer_id <= $1 "
                                              "ORDER BY customer_id DESC LIMIT 5", 20)]
        assert ids == [20, 19, 18, 17, 16]
        typed = await conn.fetchrow("SELECT $1::int2, $2::int4, $3::int8, $4::float4, $5::float8, $6::numeric, "
                                    "$7::text, $8::varchar, $9::bool, $10::bytea, $11::date, $12::timestamp, "
                                    "$13::timestamptz, $14::uuid, $15::json, $16::jsonb",
                                    -3, 2**31 - 1, -(2**63), 0.5, 1e300, Decimal("-12345.6789"), "é", "v", False,
                                    b"\x00\x01", dt.date(1999, 12, 31), dt.datetime(2000, 1, 1, 0, 0, 0, 1),
                                    when, u, "[1, 2]", '{"a": null}')
        assert tuple(typed) == (-3, 2**31 - 1, -(2**63), 0.5, 1e300, Decimal("-12345.6789"), "é", "v", False,
                                b"\x00\x01", dt.date(1999, 12, 31), dt.datetime(2000, 1, 1, 0, 0, 0, 1), when, u,
                                "[1, 2]", '{"a": null}')
        assert await conn.fetchval("SELECT $1::int[]", [1, None, 3]) == [1, None, 3]
    finally:
        await conn.execute("DELETE FROM customer WHERE customer_id <= 20")
        await conn.close()


async def test_asyncpg_transactions_commit_rollback_and_cursors(router: InProcessRouter) -> None:
    conn = await apg(router)
    try:
        async with conn.transaction():
            await conn.executemany("INSERT INTO customer (customer_id, name) VALUES ($1, $2)",
                                   [(100 + i, "t") for i in range(10)])
        with pytest.raises(asyncpg.UniqueViolationError):
            async with conn.transaction():
                await conn.execute("UPDATE customer SET name = 'changed' WHERE customer_id = 101")
                await conn.execute("INSERT INTO customer (customer_id, name) VALUES (100, 'dup')")
        assert await conn.fetchval("SELECT name FROM customer WHERE customer_id = 101") == "t"
        async with conn.transaction():
            cur = await conn.cursor("SELECT customer_id FROM customer WHERE customer_id >= 100 "
                                    "ORDER BY customer_id")  # Execute with a row limit: PortalSuspended
            assert [r[0] for r in await cur.fetch(3)] == [100, 101, 102]
            assert [r[0] for r in await cur.fetch(3)] == [103, 104, 105]
            got = [r[0] async for r in conn.cursor("SELECT customer_id FROM customer WHERE customer_id >= 100 "
                                                   "ORDER BY customer_id", prefetch=4)]
            assert got == list(range(100, 110))
    finally:
        await conn.execute("DELETE FROM customer WHERE customer_id >= 100 AND customer_id < 200")
        await conn.close()


async def test_errors_carry_sqlstate_position_and_abort_the_transaction(router: InProcessRouter) -> None:
    conn = await apg(router)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await conn.fetch("SELECT * FROM no_such_table")
        with pytest.raises(asyncpg.PostgresSyntaxError) as info:
            await conn.execute("SELECT 1; SELEC 2")
        assert info.value.sqlstate == "42601"
        tx = conn.transaction()
        await tx.start()
        with pytest.raises(asyncpg.UndefinedColumnError):
            await conn.execute("SELECT nope FROM customer")
        with pytest.raises(asyncpg.InFailedSQLTransactionError):
            await conn.execute("SELECT 1")
        await tx.rollback()
        assert await conn.fetchval("SELECT 2") == 2
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            plain = await apg(router, "plain")
            try:
                await plain.execute("ALTER VSCHEMA ON x ADD VINDEX hash(id) USING hash")
            finally:
                await plain.close()
    finally:
        await conn.close()


async def test_prepared_statements_survive_transaction_pooling(router: InProcessRouter) -> None:
    """Statements live in the router: after every backend connection is replaced they still run."""
    conns = [await apg(router) for _ in range(4)]
    try:
        stmts = [await c.prepare("SELECT $1::int * 2") for c in conns]
        for pool in router.gateway.pools.pools():
            pool.expire_connections()

        async def run(i: int) -> list[int]:
            return [await stmts[i].fetchval(i + k) for k in range(25)]

        results = await asyncio.gather(*(run(i) for i in range(4)))
        assert results == [[(i + k) * 2 for k in range(25)] for i in range(4)]
    finally:
        for c in conns:
            await c.close()


# --- psycopg 3 ------------------------------------------------------------------------------------------------
async def test_psycopg_client_and_server_side_binding_and_pipelines(router: InProcessRouter) -> None:
    async with await psycopg.AsyncConnection.connect(router.dsn(), autocommit=True) as conn:
        cur = conn.cursor()
        await cur.execute("INSERT INTO customer (customer_id, name, balance) VALUES (%s, %s, %s), (%s, %s, %s)",
                          (300, "a", Decimal("1.50"), 301, "b", None))
        assert cur.statusmessage == "INSERT 0 2"
        for prepare in (False, True, True):
            await cur.execute("SELECT name, balance FROM customer WHERE customer_id = %s", (300,), prepare=prepare)
            assert await cur.fetchall() == [("a", Decimal("1.50"))]
        client = psycopg.AsyncClientCursor(conn)
        await client.execute("SELECT name FROM customer WHERE customer_id = %s AND name = %s", (301, "b"))
        assert await client.fetchall() == [("b",)]
        async with conn.cursor(binary=True) as bcur:
            await bcur.execute("SELECT customer_id, balance, created IS NOT NULL, b FROM customer "
                               "WHERE customer_id = %s", (300,))
            assert await bcur.fetchone() == (300, Decimal("1.50"), True, None)
        async with conn.pipeline():
            await cur.execute("UPDATE customer SET name = %s WHERE customer_id = %s", ("p", 300))
            await cur.execute("SELECT name FROM customer WHERE customer_id = %s", (300,))
        assert await cur.fetchall() == [("p",)]
        await cur.execute("SELECT 1; SELECT 2")
        assert await cur.fetchall() == [(1,)]
        assert cur.nextset() and await cur.fetchall() == [(2,)]
        await cur.execute("DELETE FROM customer WHERE customer_id IN (300, 301)")
        assert cur.rowcount == 2


async def test_psycopg_copy_in_text_and_csv_and_copy_out(router: InProcessRouter, cluster: Cluster) -> None:
    async with await psycopg.AsyncConnection.connect(router.dsn(), autocommit=True) as conn:
        cur = conn.cursor()
        async with cur.copy("COPY customer (customer_id, name, balance) FROM STDIN") as copy:
            for i in range(1000, 1600):
                await copy.write_row((i, f"tab\there {i}", Decimal(i) / 100))
        assert cur.statusmessage == "COPY 600"
        async with cur.copy("COPY customer (customer_id, name, d) FROM STDIN WITH (FORMAT csv, HEADER)") as copy:
            await copy.write('customer_id,name,d\n1600,"quoted, ""name""",2024-02-29\n1601,"multi\nline",\n')
        assert cur.statusmessage == "COPY 2"
        on_a = await shard_rows(cluster, "customer/-80", "SELECT count(*) FROM customer WHERE customer_id >= 1000")
        on_b = await shard_rows(cluster, "customer/80-", "SELECT count(*) FROM customer WHERE customer_id >= 1000")
        assert on_a[0][0] + on_b[0][0] == 602 and on_a[0][0] > 200 and on_b[0][0] > 200
        await cur.execute("SELECT name, d FROM customer WHERE customer_id IN (1600, 1601) ORDER BY customer_id")
        assert await cur.fetchall() == [('quoted, "name"', dt.date(2024, 2, 29)), ("multi\nline", None)]
        with pytest.raises(psycopg.errors.UniqueViolation):  # one bad row: the whole COPY is undone
            async with cur.copy("COPY customer (customer_id, name) FROM STDIN") as copy:
                await copy.write_row((1700, "new"))
                await copy.write_row((1000, "duplicate"))
        await cur.execute("SELECT count(*) FROM customer WHERE customer_id = 1700")
        assert await cur.fetchone() == (0,)
        lines = []
        async with cur.copy("COPY (SELECT customer_id, name FROM customer WHERE customer_id IN (1000, 1601) "
                            "ORDER BY customer_id) TO STDOUT") as copy:
            async for data in copy:
                lines.append(bytes(data))
        assert b"".join(lines) == b"1000\ttab\\there 1000\n1601\tmulti\\nline\n"
        chunks = []
        async with cur.copy("COPY customer (customer_id, name) TO STDOUT (FORMAT csv)") as copy:
            async for data in copy:
                chunks.append(bytes(data))
        csv_text = b"".join(chunks).decode()
        assert '1600,"quoted, ""name"""\n' in csv_text and '1601,"multi\nline"\n' in csv_text
        assert csv_text.count("\n") == 602 + 1  # a line per row, plus the newline inside row 1601
        await cur.execute("DELETE FROM customer WHERE customer_id >= 1000 AND customer_id < 2000")


async def test_cancel_request_stops_the_running_statement(router: InProcessRouter) -> None:
    async with await psycopg.AsyncConnection.connect(router.dsn(), autocommit=True) as conn:
        cur = conn.cursor()
        task = asyncio.ensure_future(cur.execute("SELECT pg_sleep(20)"))
        await asyncio.sleep(0.5)
        await conn.cancel_safe()
        with pytest.raises(psycopg.errors.QueryCanceled):
            await asyncio.wait_for(task, 10)
        await cur.execute("SELECT 42")
        assert await cur.fetchone() == (42,)
    conn2 = await apg(router)
    try:
        with pytest.raises(asyncio.TimeoutError):  # asyncpg's timeout sends a CancelRequest itself
            await conn2.fetch("SELECT pg_sleep(20)", timeout=0.5)
        assert await conn2.fetchval("SELECT 7") == 7
    finally:
        await conn2.close()


async def test_session_parameters_and_local_statements(router: InProcessRouter) -> None:
    conn = await apg(router, server_settings={"application_name": "pgfe-test"})
    try:
        assert conn.get_settings().application_name == "pgfe-test"
        assert conn.get_settings().server_version.startswith("15.")
        assert conn.get_server_version().major == 15
        await conn.execute("SET application_name = 'renamed'")
        assert conn.get_settings().application_name == "renamed"  # ParameterStatus went out
        assert await conn.fetchval("SHOW application_name") == "renamed"
        await conn.execute("SET TIME ZONE 'Asia/Kolkata'")
        text = await conn.fetchval("SELECT '2024-01-01 00:00:00+00'::timestamptz::text")
        assert text == "2024-01-01 05:30:00+05:30"  # computed by the shard, in the session's zone (replayed)
        row = await conn.fetchrow("SHOW TimeZone")
        assert row[0] == "Asia/Kolkata"
        with pytest.raises(asyncpg.FeatureNotSupportedError):
            await conn.execute("SET client_encoding = 'LATIN1'")
        plan = await conn.fetchval("VEXPLAIN PLAN SELECT * FROM customer WHERE customer_id = 7")
        assert '"Variant": "EqualUnique"' in plan and '"Vindex": "hash"' in plan
        sent = await conn.fetch("VEXPLAIN QUERIES SELECT name FROM customer WHERE customer_id = 7")  # (described)
        assert [(r["#"], r["keyspace"]) for r in sent] == [(0, "customer")] and "customer_id" in sent[0]["query"]
        shards = await conn.fetch("SHOW SHARDGATE SHARDS")
        assert [(r["keyspace"], r["shard"], r["role"], r["health"]) for r in shards] == [
            ("commerce", "0", "primary", "serving"), ("customer", "-80", "primary", "serving"),
            ("customer", "80-", "primary", "serving")]
        assert shards[1]["engine"] == "postgres" and ":" in shards[1]["backend"]
        assert await conn.fetchval("SELECT count(*) FROM commerce.product") == 2
    finally:
        await conn.close()


async def test_startup_options_apply_settings(router: InProcessRouter) -> None:
    async with await psycopg.AsyncConnection.connect(
            router.dsn(), options="-c statement_timeout=300 --application-name=from-options",
            autocommit=True) as conn:
        assert conn.info.parameter_status("application_name") == "from-options"
        with pytest.raises(psycopg.errors.QueryCanceled):  # 57014, the statement_timeout of the options
            await conn.execute("SELECT pg_sleep(3)")
    with pytest.raises(psycopg.OperationalError, match="invalid command-line argument"):
        await psycopg.AsyncConnection.connect(router.dsn(), options="statement_timeout=1")


async def test_logins(router: InProcessRouter, tmp_path: Path) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(host="127.0.0.1", port=router.port, user="app", password="wrong", database="customer")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(host="127.0.0.1", port=router.port, user="ghost", password="x", database="customer")
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await apg(router, database="nope")
    plain = await apg(router, "plain", database="customer:-80")  # md5, pinned to one shard
    try:
        assert await plain.fetchval("SELECT 1") == 1
    finally:
        await plain.close()
    async with await psycopg.AsyncConnection.connect(router.dsn(database="commerce@primary")) as conn:
        cur = await conn.execute("SELECT count(*) FROM product")
        assert await cur.fetchone() == (2,)


async def test_tls_with_channel_binding(cluster: Cluster, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    r = await InProcessRouter(cluster.doc, tls_cert=cert, tls_key=key, require_tls=True).start()
    try:
        dsn = r.dsn(sslmode="require", channel_binding="require")
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            assert conn.pgconn.ssl_in_use
            cur = await conn.execute("SELECT 5")
            assert await cur.fetchone() == (5,)
        with pytest.raises(psycopg.OperationalError, match="TLS is required"):
            await psycopg.AsyncConnection.connect(r.dsn(sslmode="disable"))
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        conn2 = await asyncpg.connect(host="127.0.0.1", port=r.port, user="app", password=USERS["app"],
                                      database="customer", ssl=ctx)
        assert await conn2.fetchval("SELECT 6") == 6
        await conn2.close()
    finally:
        await r.close()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "server.crt", tmp / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


# --- psql ----------------------------------------------------------------------------------------------------
PSQL_SCRIPT = r"""
\set ON_ERROR_STOP 0
INSERT INTO customer (customer_id, name, balance) VALUES (501, 'psql one', 5.5), (502, 'psql two', 6);
SELECT customer_id, name, balance FROM customer WHERE customer_id IN (501, 502) ORDER BY 1;
BEGIN;
UPDATE customer SET balance = balance + 1 WHERE customer_id = 501;
SELECT no_such_column FROM customer;
SELECT 1;
ROLLBACK;
SELECT balance FROM customer WHERE customer_id = 501;
\dt
\d customer
\l
\dn
SHOW server_encoding;
;
\copy customer (customer_id, name) from stdin
503	copied
\.
SELECT count(*) FROM customer WHERE customer_id BETWEEN 501 AND 503;
DELETE FROM customer WHERE customer_id BETWEEN 501 AND 503;
"""


@pytest.mark.skipif(shutil.which("psql") is None and os.environ.get("CI") != "true", reason="psql not installed")
async def test_psql_script_with_describe_commands(router: InProcessRouter) -> None:
    env = {**os.environ, "PGPASSWORD": USERS["app"], "PGCONNECT_TIMEOUT": "10"}
    proc = await asyncio.create_subprocess_exec(
        "psql", "-X", "-h", "127.0.0.1", "-p", str(router.port), "-U", "app", "-d", "customer", "-v",
        "VERBOSITY=default", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env)
    out, _ = await asyncio.wait_for(proc.communicate(PSQL_SCRIPT.encode()), 60)
    text = out.decode()
    assert "INSERT 0 2" in text
    assert " 501 | psql one |    5.50" in text
    assert 'column "no_such_column" does not exist' in text
    assert "current transaction is aborted, commands ignored until end of transaction block" in text
    assert "    5.50\n(1 row)" in text  # the rolled-back update is gone
    assert "List of relations" in text and " customer " in text and " corder " in text
    assert 'Table "public.customer"' in text and "customer_id | bigint" in text
    assert '"customer_pkey" PRIMARY KEY' in text
    assert "List of databases" in text and "List of schemas" in text
    assert " UTF8\n" in text and "COPY 1" in text and "     3\n(1 row)" in text
    assert "DELETE 3" in text
    assert proc.returncode == 0, text


# --- SQLAlchemy Core on psycopg ---------------------------------------------------------------------------------
async def test_sqlalchemy_core(router: InProcessRouter) -> None:
    sa = pytest.importorskip("sqlalchemy")

    def work() -> list[Any]:
        engine = sa.create_engine(f"postgresql+psycopg://app:{USERS['app']}@127.0.0.1:{router.port}/customer")
        md = sa.MetaData()
        t = sa.Table("customer", md, sa.Column("customer_id", sa.BigInteger, primary_key=True),
                     sa.Column("name", sa.Text), sa.Column("balance", sa.Numeric(12, 2)))
        try:
            with engine.begin() as c:
                c.execute(t.insert(), [{"customer_id": 600 + i, "name": f"sa{i}", "balance": i} for i in range(5)])
            with engine.connect() as c:
                got = c.execute(sa.select(t.c.customer_id, t.c.name).where(t.c.customer_id >= 600)
                                .order_by(t.c.customer_id)).all()
                total = c.execute(sa.select(sa.func.sum(t.c.balance)).where(t.c.customer_id >= 600)).scalar()
                c.execute(t.update().where(t.c.customer_id == 601).values(name="updated"))
                c.commit()
                name = c.execute(sa.select(t.c.name).where(t.c.customer_id == 601)).scalar()
                c.execute(t.delete().where(t.c.customer_id >= 600))
                c.commit()
            columns = [col["name"] for col in sa.inspect(engine).get_columns("customer")]
            return [got, total, name, columns]
        finally:
            engine.dispose()

    got, total, name, columns = await asyncio.to_thread(work)
    assert [tuple(r) for r in got] == [(600 + i, f"sa{i}") for i in range(5)]
    assert total == Decimal("10.00") and name == "updated"
    assert columns[:3] == ["customer_id", "name", "balance"]


# --- the serve entry point: workers, cancel across workers, SIGTERM drain ------------------------------------
async def test_workers_share_the_port_and_cancel_reaches_the_right_one(cluster: Cluster) -> None:
    from tests.support.pg_router import RouterProcess

    router = await asyncio.to_thread(RouterProcess(cluster.doc, workers=2).start)
    dsn = (f"host=127.0.0.1 port={router.port} user=app password={USERS['app']} dbname=customer")
    conns: list[Any] = []
    try:
        by_worker: dict[int, Any] = {}
        for _ in range(30):
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
            conns.append(conn)
            by_worker.setdefault(conn.info.backend_pid >> 24, conn)
            if len(by_worker) == 2:
                break
        assert sorted(by_worker) == [0, 1], "SO_REUSEPORT spread 30 connections over one worker only"
        for conn in list(by_worker.values()) * 3:  # a cancel lands on either worker; it must find its session
            cur = conn.cursor()
            task = asyncio.ensure_future(cur.execute("SELECT pg_sleep(20)"))
            await asyncio.sleep(0.3)
            await conn.cancel_safe()
            with pytest.raises(psycopg.errors.QueryCanceled):
                await asyncio.wait_for(task, 10)
    finally:
        for conn in conns:
            await conn.close()
        code = await asyncio.to_thread(router.stop)
        assert code == 0, router.output()[-3000:]


async def test_sigterm_drains_idle_sessions_now_and_busy_ones_when_done(cluster: Cluster) -> None:
    import signal

    from tests.support.pg_router import RouterProcess

    router = await asyncio.to_thread(RouterProcess(cluster.doc).start)
    dsn = (f"host=127.0.0.1 port={router.port} user=app password={USERS['app']} dbname=customer")
    idle = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    busy = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        await busy.execute("BEGIN")
        running = asyncio.ensure_future(busy.execute("SELECT pg_sleep(1.5)"))
        await asyncio.sleep(0.3)
        assert router.proc is not None
        router.proc.send_signal(signal.SIGTERM)
        with pytest.raises(psycopg.OperationalError):  # idle: ended at once (FATAL 57P01)
            for _ in range(50):  # (the router may take a moment to see the signal on a loaded machine)
                await idle.execute("SELECT 1")
                await asyncio.sleep(0.1)
        with pytest.raises(psycopg.OperationalError):  # no new sessions
            await psycopg.AsyncConnection.connect(dsn)
        await asyncio.wait_for(running, 10)  # the busy session's statement finishes…
        await busy.execute("COMMIT")  # … and its transaction
        with pytest.raises(psycopg.OperationalError):  # then it ends too
            await busy.execute("SELECT 1")
        code = await asyncio.to_thread(router.proc.wait, 15)
        assert code == 0, router.output()[-3000:]
    finally:
        await idle.close()
        await busy.close()
        await asyncio.to_thread(router.stop)


async def test_single_shard_reads_are_forwarded_and_answer_like_the_engine(cluster: Cluster) -> None:
    """The passthrough path (shard bytes relayed) and the engine path (rows decoded, re-encoded) give clients the
    same answers, in text and in binary; errors come from the shard with their position."""
    fast = await InProcessRouter(cluster.doc).start()
    slow = await InProcessRouter(cluster.doc, passthrough=False).start()
    conns = []
    try:
        setup = await apg(fast)
        conns.append(setup)
        await setup.execute("INSERT INTO customer (customer_id, name, balance, created, u, j, b, f, d, ok) VALUES "
                            "(700, 'fwd', 1.5, '2024-05-06 07:08:09.5+02', "
                            "'12345678-1234-5678-1234-567812345678', '{\"a\": [1, 2]}', '\\x00ff', 2.5e-7, "
                            "'2024-02-29', true) ON CONFLICT DO NOTHING")
        queries = ["SELECT * FROM customer WHERE customer_id = 700",
                   "SELECT name, balance * 2, created, f, d, ok FROM customer WHERE customer_id = 700",
                   "SELECT * FROM commerce.product ORDER BY sku", "SELECT 1.5::float4, 'x'::text, NULL"]
        results = {}
        for name, router in (("fast", fast), ("slow", slow)):
            conn = await apg(router)
            conns.append(conn)
            results[name] = [[tuple(r) for r in await conn.fetch(q)] for q in queries]
            results[name].append([tuple(r) for r in await conn.fetch(
                "SELECT customer_id, name FROM customer WHERE customer_id = $1", 700)])
            async with await psycopg.AsyncConnection.connect(router.dsn(), autocommit=True) as pconn:
                cur = await pconn.execute(queries[1])
                results[name].append(await cur.fetchall())
                text = await pconn.execute("SELECT created::text, created, f FROM customer WHERE customer_id = %s",
                                           (700,))
                results[name].append(await text.fetchall())
        assert results["fast"] == results["slow"]
        assert fast.frontend.passthrough.forwarded >= 5 and slow.frontend.passthrough is None
        with pytest.raises(asyncpg.UndefinedColumnError) as info:
            await setup.fetch("SELECT nope FROM customer WHERE customer_id = 700")
        assert info.value.position == "8"
    finally:
        for conn in conns:
            await conn.close()
        await fast.close()
        await slow.close()


async def test_statements_prepared_on_shard_connections_follow_ddl(router: InProcessRouter) -> None:
    """The fast path prepares each text once per shard connection; DDL through the router retires them, so a
    changed table never meets a stale plan ("cached plan must not change result type")."""
    async with await psycopg.AsyncConnection.connect(router.dsn(database="commerce"), autocommit=True) as conn:
        await conn.execute("DROP TABLE IF EXISTS pt_cache")
        await conn.execute("CREATE TABLE pt_cache (a int PRIMARY KEY, b text)")
        await conn.execute("INSERT INTO pt_cache VALUES (1, 'one')")
        before = router.frontend.passthrough.forwarded
        for _ in range(3):
            cur = await conn.execute("SELECT * FROM pt_cache WHERE a = %s", (1,), prepare=False)
            assert await cur.fetchall() == [(1, "one")]
        await conn.execute("ALTER TABLE pt_cache ADD COLUMN c int DEFAULT 7")
        cur = await conn.execute("SELECT * FROM pt_cache WHERE a = %s", (1,), prepare=False)
        assert await cur.fetchall() == [(1, "one", 7)]
        assert router.frontend.passthrough.forwarded >= before + 4
        await conn.execute("DROP TABLE pt_cache")
