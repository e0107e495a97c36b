"""The engine adapters against real PostgreSQL 15 and MariaDB servers (no mocks): types, streaming, errors,
cancel, timeouts, transactions, two-phase commit, reset.

Every test runs once per engine on one database per engine for the module (dropped at the end).
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import json
import secrets
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import pytest

from router.backend.adapter import AdapterBase
from router.backend.connect import open_connection
from router.backend.connection import BackendConnection, BackendTarget, RowStream
from router.backend.result import ExecResult, ResultSet, TypeCode
from sharding import db
from sharding.errors import (
    BackendError,
    BackendUnavailableError,
    QueryCanceledError,
    QueryTimeoutError,
    TransactionError,
)
from tests.support.backends import Backends, connected

pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]

TARGET = BackendTarget("customer", "-80", "primary")
CHECK = "\u2713"
TEXT = f"caf\u00e9 {CHECK} \U0001f600"  # 2-, 3- and 4-byte UTF-8
BIG_DECIMAL = Decimal("12345678901234567890.0123456789")
STREAM_ROWS = 200_000


@pytest.fixture(scope="module")
def dsns(backends: Backends) -> Iterator[dict[str, db.DSN]]:
    name = f"t_adapters_{secrets.token_hex(3)}"
    servers = {"postgres": backends.postgres[0], "mysql": backends.mysql[0]}
    yield {engine: server.create_database(name) for engine, server in servers.items()}
    for server in servers.values():
        with contextlib.suppress(BackendUnavailableError):
            server.drop_database(name)


@pytest.fixture(params=["postgres", "mysql"])
def dsn(request: pytest.FixtureRequest, dsns: dict[str, db.DSN]) -> db.DSN:
    return dsns[request.param]


@pytest.fixture
async def conn(dsn: db.DSN) -> AsyncIterator[AdapterBase]:
    c = await open_connection(dsn, TARGET)
    yield c
    await c.close()


def pg(conn: BackendConnection) -> bool:
    return conn.engine == "postgres"


def table(name: str) -> str:
    return f"{name}_{secrets.token_hex(3)}"


async def rows(conn: BackendConnection, sql: str) -> list[tuple[object, ...]]:
    result = await conn.execute(sql)
    assert isinstance(result, ResultSet)
    return result.rows


def big_select(conn: BackendConnection, n: int = STREAM_ROWS) -> str:
    if pg(conn):
        return f"SELECT g, repeat('x', 100) FROM generate_series(1, {n}) AS g"
    return f"SELECT seq, repeat('x', 100) FROM seq_1_to_{n}"


# --- types ----------------------------------------------------------------------------------------------------
async def test_types_round_trip_with_nulls(conn: AdapterBase) -> None:
    t = table("types")
    if pg(conn):
        await conn.execute(f"""CREATE TABLE {t} (id int PRIMARY KEY, i2 smallint, i4 int, i8 bigint, d numeric(30,10),
            f4 real, f8 double precision, tx text, vc varchar(10), ch char(3), b bytea, dte date, tm time(6),
            ts timestamp(6), tstz timestamptz, iv interval, j json, jb jsonb, u uuid, bo boolean, bi bit(3))""")
        await conn.execute(f"""INSERT INTO {t} VALUES (1, -32768, 2147483647, 9223372036854775807, {BIG_DECIMAL},
            1.5, 2.25, '{TEXT}', '{CHECK}{CHECK}', 'abc', '\\x00ff10'::bytea, '2024-02-29', '23:59:59.123456',
            '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012+02', '1 day 02:03:04', '{{"a": [1, "{CHECK}"]}}',
            '{{"b": 2}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, B'101')""")
    else:
        await conn.execute(f"""CREATE TABLE {t} (id int PRIMARY KEY, ti tinyint, si smallint, mi mediumint, i int,
            bu bigint unsigned, d decimal(30,10), f float, db double, vc varchar(10), ch char(3), tx text,
            vb varbinary(10), bl blob, dte date, tm time(6), dtm datetime(6), ts timestamp(6) NULL, y year, j json,
            bi bit(3), e enum('a','b'), s set('x','y'), bo boolean)""")
        await conn.execute(f"""INSERT INTO {t} VALUES (1, -128, -32768, -8388608, 2147483647, 18446744073709551615,
            {BIG_DECIMAL}, 1.5, 2.25, '{CHECK}{CHECK}', 'abc', '{TEXT}', x'00ff10', x'00', '2024-02-29',
            '23:59:59.123456', '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012', 2024,
            '{{"a": [1, "{CHECK}"]}}', b'101', 'b', 'x,y', true)""")
    await conn.execute(f"INSERT INTO {t} (id) VALUES (2)")

    result = await conn.execute(f"SELECT * FROM {t} ORDER BY id")
    assert isinstance(result, ResultSet) and len(result.rows) == 2
    full, nulls = result.rows
    got = dict(zip(result.column_names, full, strict=True))
    types = {c.name: c.type for c in result.columns}
    assert all(v is None for v in nulls[1:]), nulls  # NULL stays None, for every type

    assert got["d"] == BIG_DECIMAL and isinstance(got["d"], Decimal)  # exact, never a float
    assert types["d"] is TypeCode.DECIMAL
    assert got["tx"] == TEXT and got["vc"] == CHECK * 2 and got["ch"] == "abc"
    assert got["dte"] == dt.date(2024, 2, 29)
    assert json.loads(got["j"]) == {"a": [1, CHECK]}
    if pg(conn):
        assert (got["i2"], got["i4"], got["i8"]) == (-32768, 2147483647, 9223372036854775807)
        assert (got["f4"], got["f8"]) == (1.5, 2.25)
        assert got["b"] == b"\x00\xff\x10"
        assert got["tm"] == dt.time(23, 59, 59, 123456)
        assert got["ts"] == dt.datetime(2024, 2, 29, 12, 34, 56, 789012)
        assert got["tstz"] == dt.datetime(2024, 2, 29, 10, 34, 56, 789012, tzinfo=dt.UTC)
        assert got["iv"] == dt.timedelta(days=1, hours=2, minutes=3, seconds=4)
        assert json.loads(got["jb"]) == {"b": 2}
        assert got["u"] == uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11") and isinstance(got["u"], uuid.UUID)
        assert got["bo"] is True and got["bi"].as_string() == "101"
        assert [types[k] for k in ("i2", "i4", "i8", "f4", "f8", "tx", "vc", "ch", "b", "dte", "tm", "ts", "tstz",
                                   "iv", "j", "jb", "u", "bo", "bi")] == [
            TypeCode.SMALLINT, TypeCode.INT, TypeCode.BIGINT, TypeCode.FLOAT, TypeCode.DOUBLE, TypeCode.TEXT,
            TypeCode.VARCHAR, TypeCode.CHAR, TypeCode.BLOB, TypeCode.DATE, TypeCode.TIME, TypeCode.DATETIME,
            TypeCode.TIMESTAMPTZ, TypeCode.INTERVAL, TypeCode.JSON, TypeCode.JSON, TypeCode.UUID, TypeCode.BOOL,
            TypeCode.BIT]
        assert result.status == "SELECT 2"
    else:
        assert (got["ti"], got["si"], got["mi"], got["i"]) == (-128, -32768, -8388608, 2147483647)
        assert got["bu"] == 18446744073709551615
        assert (got["f"], got["db"]) == (1.5, 2.25)
        assert got["vb"] == b"\x00\xff\x10" and got["bl"] == b"\x00"
        assert got["tm"] == dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=123456)
        assert got["dtm"] == got["ts"] == dt.datetime(2024, 2, 29, 12, 34, 56, 789012)
        assert got["y"] == 2024 and got["bi"] == b"\x05" and got["e"] == "b" and got["s"] == "x,y"
        assert got["bo"] == 1
        assert [types[k] for k in ("ti", "si", "mi", "i", "bu", "f", "db", "vc", "ch", "tx", "vb", "bl", "dte", "tm",
                                   "dtm", "ts", "y", "bi", "e", "s", "bo")] == [
            TypeCode.TINYINT, TypeCode.SMALLINT, TypeCode.MEDIUMINT, TypeCode.INT, TypeCode.BIGINT, TypeCode.FLOAT,
            TypeCode.DOUBLE, TypeCode.VARCHAR, TypeCode.CHAR, TypeCode.TEXT, TypeCode.VARBINARY, TypeCode.BLOB,
            TypeCode.DATE, TypeCode.TIME, TypeCode.DATETIME, TypeCode.TIMESTAMP, TypeCode.YEAR, TypeCode.BIT,
            TypeCode.ENUM, TypeCode.SET, TypeCode.TINYINT]
        cols = {c.name: c for c in result.columns}
        assert cols["bu"].unsigned and (cols["d"].precision, cols["d"].scale) == (30, 10)
        assert cols["vc"].charset == "utf8mb4" and cols["vb"].charset == "binary"
        assert cols["id"].nullable is False and cols["ti"].nullable is True and cols["id"].table == t
        assert cols["dtm"].scale == 6


async def test_exec_results_count_rows(conn: AdapterBase) -> None:
    t = table("ex")
    key = "id serial PRIMARY KEY" if pg(conn) else "id int AUTO_INCREMENT PRIMARY KEY"
    created = await conn.execute(f"CREATE TABLE {t} ({key}, v int)")
    assert isinstance(created, ExecResult) and created.rows_affected == 0
    inserted = await conn.execute(f"INSERT INTO {t} (v) VALUES (1), (2), (3)")
    assert isinstance(inserted, ExecResult) and inserted.rows_affected == 3
    updated = await conn.execute(f"UPDATE {t} SET v = v + 1 WHERE v >= 2")
    assert isinstance(updated, ExecResult) and updated.rows_affected == 2
    if pg(conn):
        assert inserted.status == "INSERT 0 3" and inserted.last_insert_id is None
        returned = await conn.execute(f"INSERT INTO {t} (v) VALUES (9) RETURNING id, v")
        assert isinstance(returned, ResultSet) and returned.rows == [(4, 9)] and returned.status == "INSERT 0 1"
    else:
        assert inserted.last_insert_id == 1  # MySQL reports the first id of a multi-row insert
        assert updated.status.startswith("Rows matched: 2")
        single = await conn.execute(f"INSERT INTO {t} (v) VALUES (9)")
        assert isinstance(single, ExecResult) and single.last_insert_id == 4


async def test_params_are_bound_not_spliced(conn: AdapterBase) -> None:
    tricky = f"{CHECK}' OR 1=1 -- "
    if pg(conn):
        result = await conn.execute("SELECT $1::int + 1, $2::text", (41, tricky))
    else:
        result = await conn.execute("SELECT %s + 1, %s", (41, tricky))
    assert isinstance(result, ResultSet) and result.rows == [(42, tricky)]


async def test_warnings_and_notices_are_counted(conn: AdapterBase) -> None:
    if pg(conn):
        result = await conn.execute("DO $$ BEGIN RAISE NOTICE 'fyi'; RAISE WARNING 'careful'; END $$")
        assert isinstance(result, ExecResult) and result.warnings == 1
        assert [(n.severity, n.message) for n in result.notices] == [("NOTICE", "fyi"), ("WARNING", "careful")]
        again = await conn.execute("SELECT 1")
        assert isinstance(again, ResultSet) and again.notices == ()  # notices belong to one statement
    else:
        result = await conn.execute("SELECT CAST('abc' AS SIGNED)")
        assert isinstance(result, ResultSet) and result.rows == [(0,)] and result.warnings == 1


# --- errors -----------------------------------------------------------------------------------------------------
async def test_errors_carry_the_server_codes_and_the_shard(conn: AdapterBase) -> None:
    t = table("dup")
    await conn.execute(f"CREATE TABLE {t} (id int PRIMARY KEY)")
    await conn.execute(f"INSERT INTO {t} VALUES (1)")
    with pytest.raises(BackendError) as dup:
        await conn.execute(f"INSERT INTO {t} VALUES (1)")
    with pytest.raises(BackendError) as missing:
        await conn.execute("SELECT * FROM no_such_table")
    with pytest.raises(BackendError) as syntax:
        await conn.execute("SELEKT 1")
    for info in (dup, missing, syntax):
        assert info.value.shard == "customer/-80"
    if pg(conn):
        assert dup.value.pg_sqlstate == "23505" and missing.value.pg_sqlstate == "42P01"
        assert syntax.value.pg_sqlstate == "42601"
    else:
        assert (dup.value.mysql_errno, dup.value.mysql_sqlstate) == (1062, "23000")
        assert (missing.value.mysql_errno, missing.value.mysql_sqlstate) == (1146, "42S02")
        assert (syntax.value.mysql_errno, syntax.value.mysql_sqlstate) == (1064, "42000")
    # Both protocols' codes are filled, whichever engine answered.
    assert (dup.value.mysql_errno, dup.value.pg_sqlstate) == (1062, "23505")
    assert (missing.value.mysql_errno, missing.value.pg_sqlstate) == (1146, "42P01")
    assert not conn.broken and await rows(conn, "SELECT 1") == [(1,)]  # an error costs the statement only


async def test_a_killed_session_is_unavailable_and_broken(conn: AdapterBase, dsn: db.DSN) -> None:
    async with connected(dsn) as admin:
        if pg(conn):
            await db.fetch_all(admin, f"SELECT pg_terminate_backend({conn.conn_id})")
        else:
            await db.execute(admin, f"KILL {conn.conn_id}")
    await asyncio.sleep(0.1)
    with pytest.raises(BackendUnavailableError) as info:
        await conn.execute("SELECT 1")
    assert conn.broken and not conn.is_alive() and info.value.retryable
    assert "customer/-80/primary" in info.value.message and dsn.password not in info.value.message
    with pytest.raises(BackendUnavailableError):
        await conn.execute("SELECT 1")
    assert await conn.reset() is False


# --- cancel and timeouts ----------------------------------------------------------------------------------------
async def test_cancel_stops_a_sleep_within_a_second(conn: AdapterBase) -> None:
    sleep = "SELECT pg_sleep(10)" if pg(conn) else "SELECT SLEEP(10)"
    assert await conn.cancel() is False  # nothing running
    task = asyncio.ensure_future(conn.execute(sleep))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    assert await conn.cancel() is True
    with pytest.raises(QueryCanceledError):
        await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - started < 1.0
    assert not conn.broken and await rows(conn, "SELECT 7") == [(7,)]


async def test_timeout_cancels_on_the_server(conn: AdapterBase) -> None:
    sleep = "SELECT pg_sleep(5)" if pg(conn) else "SELECT SLEEP(5)"
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError):
        await conn.execute(sleep, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert not conn.broken and await rows(conn, "SELECT 8") == [(8,)]


# --- streaming --------------------------------------------------------------------------------------------------
async def test_streaming_200k_rows_keeps_memory_flat(conn: AdapterBase) -> None:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        count = total = batches = 0
        async with conn.stream(big_select(conn), batch_rows=1000) as stream:
            assert [c.type for c in stream.columns] == [TypeCode.INT if pg(conn) else TypeCode.BIGINT,
                                                        TypeCode.TEXT if pg(conn) else TypeCode.VARCHAR]
            async for batch in stream:
                batches += 1
                count += len(batch)
                total += sum(row[0] for row in batch)
                assert len(batch[0][1]) == 100
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert count == STREAM_ROWS and total == STREAM_ROWS * (STREAM_ROWS + 1) // 2 and batches == 200
    assert stream.rows_read == STREAM_ROWS
    # Buffered, these rows take ~45 MB of Python objects; a stream holds about one batch (~0.3 MB).
    assert peak < 4 * 1024 * 1024, f"streaming peaked at {peak / 1e6:.1f} MB"
    assert not conn.needs_reset and not conn.in_transaction
    assert await rows(conn, "SELECT 9") == [(9,)]


async def test_early_stop_leaves_a_reusable_connection(conn: AdapterBase) -> None:
    started = time.monotonic()
    async with conn.stream(big_select(conn), batch_rows=500) as stream:
        async for _batch in stream:
            if stream.rows_read >= 1000:
                break
    assert stream.rows_read == 1000
    assert time.monotonic() - started < 3.0
    assert not conn.broken and not conn.in_transaction
    assert await rows(conn, "SELECT 10") == [(10,)]
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()  # a closed stream stays closed


async def test_early_stop_inside_a_transaction_keeps_the_transaction(conn: AdapterBase) -> None:
    t = table("txs")
    await conn.execute(f"CREATE TABLE {t} (id int PRIMARY KEY)")
    await conn.begin()
    await conn.execute(f"INSERT INTO {t} VALUES (1)")
    stream: RowStream = conn.stream(big_select(conn), batch_rows=100)
    async with stream:
        await stream.__anext__()
    assert conn.in_transaction and not conn.broken
    assert await rows(conn, f"SELECT count(*) FROM {t}") == [(1,)]  # still our transaction
    await conn.rollback()
    assert not conn.in_transaction
    assert await rows(conn, f"SELECT count(*) FROM {t}") == [(0,)]


async def test_stream_errors_map_and_release_the_connection(conn: AdapterBase) -> None:
    with pytest.raises(BackendError) as info:
        async with conn.stream("SELECT * FROM no_such_table") as stream:
            async for _ in stream:
                pass
    assert info.value.mysql_errno == 1146
    assert not conn.busy and not conn.in_transaction
    empty = conn.stream("SELECT 1 WHERE 1 = 0", batch_rows=10)
    assert [batch async for batch in empty] == []
    assert len(empty.columns) == 1 and await rows(conn, "SELECT 11") == [(11,)]


# --- transactions -----------------------------------------------------------------------------------------------
async def test_begin_commit_rollback(conn: AdapterBase) -> None:
    t = table("tx")
    await conn.execute(f"CREATE TABLE {t} (id int PRIMARY KEY)")
    assert not conn.in_transaction
    await conn.begin()
    assert conn.in_transaction
    await conn.execute(f"INSERT INTO {t} VALUES (1)")
    await conn.rollback()
    assert not conn.in_transaction
    await conn.begin()
    await conn.execute(f"INSERT INTO {t} VALUES (2)")
    await conn.commit()
    assert await rows(conn, f"SELECT id FROM {t}") == [(2,)]


async def test_two_phase_commit_prepare_recover_commit(conn: AdapterBase, dsn: db.DSN) -> None:
    t = table("tpc")
    await conn.execute(f"CREATE TABLE {t} (id int PRIMARY KEY)")
    token = secrets.token_hex(4)
    commit_xid, rollback_xid = f"sg-{token}-c", f"sg-{token}-r"
    other = await open_connection(dsn, TARGET)
    try:
        await conn.begin(commit_xid)
        await conn.execute(f"INSERT INTO {t} VALUES (1)")
        await conn.prepare_transaction(commit_xid)
        assert commit_xid in await other.recover_prepared()
        assert await rows(other, f"SELECT count(*) FROM {t}") == [(0,)]  # prepared, not visible yet
        await conn.commit_prepared(commit_xid)
        assert not conn.in_transaction
        assert await rows(other, f"SELECT id FROM {t}") == [(1,)]

        # The coordinator's recovery path: prepare, lose the session, finish from another one.
        await conn.begin(rollback_xid)
        await conn.execute(f"INSERT INTO {t} VALUES (2)")
        await conn.prepare_transaction(rollback_xid)
        await conn.close()
        pending = await other.recover_prepared()
        assert rollback_xid in pending and commit_xid not in pending
        await other.rollback_prepared(rollback_xid)
        assert rollback_xid not in await other.recover_prepared()
        assert await rows(other, f"SELECT id FROM {t}") == [(1,)]
        with pytest.raises(BackendError) as unknown:
            await other.commit_prepared(f"sg-{token}-none")
        assert unknown.value.pg_sqlstate == "42704" and unknown.value.mysql_errno == 1397
    finally:
        await other.close()


async def test_prepare_needs_an_open_transaction(conn: AdapterBase) -> None:
    with pytest.raises(TransactionError):
        await conn.prepare_transaction("sg-nothing-open")
    if not pg(conn):
        await conn.begin()  # MySQL: a plain BEGIN cannot become an XA branch
        with pytest.raises(TransactionError, match=r"begin\(xid=\.\.\.\)"):
            await conn.prepare_transaction("sg-late")
        await conn.rollback()


# --- reset ------------------------------------------------------------------------------------------------------
async def test_reset_discards_session_state(conn: AdapterBase, dsn: db.DSN) -> None:
    if pg(conn):
        await conn.execute("SET application_name = 'dirty'")
        await conn.execute("CREATE TEMP TABLE scratch (a int)")
    else:
        await conn.execute("SET @leftover = 5")
        await conn.execute("SET SESSION sql_mode = 'ANSI_QUOTES'")
        await conn.execute("CREATE TEMPORARY TABLE scratch (a int)")
    await conn.begin()
    assert conn.needs_reset and conn.in_transaction
    assert await conn.reset() is True
    assert not conn.needs_reset and not conn.in_transaction
    with pytest.raises(BackendError) as gone:
        await conn.execute("SELECT * FROM scratch")
    assert gone.value.mysql_errno == 1146
    if pg(conn):
        assert await rows(conn, "SHOW application_name") == [("shardgate",)]
    else:
        assert await rows(conn, "SELECT @leftover, @@SESSION.sql_mode = @@GLOBAL.sql_mode, DATABASE()") == [
            (None, 1, dsn.database)]
        assert await rows(conn, f"SELECT '{TEXT}'") == [(TEXT,)]  # still utf8mb4 after the reset
    assert conn.server_version and conn.queries > 0


async def test_a_stream_timeout_covers_the_whole_stream(conn: AdapterBase) -> None:
    with pytest.raises(QueryTimeoutError):
        async with conn.stream(big_select(conn), batch_rows=1000, timeout=0.3) as stream:
            async for _batch in stream:
                await asyncio.sleep(0.1)  # a slow consumer: the deadline passes between batches
    assert stream.rows_read < STREAM_ROWS
    assert not conn.broken and not conn.in_transaction and not conn.busy
    assert await rows(conn, "SELECT 12") == [(12,)]
