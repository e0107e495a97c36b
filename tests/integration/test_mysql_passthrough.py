"""The MySQL frontend's single-shard fast path (``router.frontend.mysql.passthrough``) over real MariaDB shards.

Each forwarded answer is compared with the engine's answer to the same statement (inside a transaction, which
never takes the fast path): values of many types, column metadata, text protocol (PyMySQL, raw packets) and binary
protocol (mysql-connector ``prepared=True``, raw COM_STMT_EXECUTE). Also: shard errors keep their errno/SQLSTATE,
KILL QUERY stops a forwarded SLEEP on the shard, clients with and without CLIENT_DEPRECATE_EOF, warnings, a dead
shard connection, DDL re-preparing, and connection ids that never leak.
"""
from __future__ import annotations

import asyncio
import datetime
import os
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pymysql
import pytest

from router.frontend.mysql.constants import Capability, Command
from router.frontend.mysql.packets import ColumnDefinition, ErrPacket, HandshakeV10, PacketDecoder, frame
from tests.support.backends import DatabaseServer
from tests.support.mysql_frontend import Router, start_router
from tests.support.mysql_wire import CLIENT_CAPS, handshake_response, query, stmt_execute, stmt_prepare

pytestmark = [pytest.mark.backend, pytest.mark.timeout(180)]

SCHEMA = [
    "USE customer",
    "CREATE TABLE typed (id BIGINT PRIMARY KEY, i INT, u BIGINT UNSIGNED, d DECIMAL(14,4), f DOUBLE, fl FLOAT, "
    "dt DATE, ts DATETIME(6), tm TIME, name VARCHAR(64), txt TEXT, bin BLOB, e ENUM('a','b'), y YEAR, "
    "b BIT(8), j JSON)",
    "ALTER VSCHEMA ON typed ADD VINDEX hash(id) USING hash",
    "USE main",
    "CREATE TABLE plain (id INT PRIMARY KEY, name VARCHAR(32))",
    "USE customer",
    "CREATE TABLE big (id BIGINT PRIMARY KEY, data LONGBLOB)",
    "ALTER VSCHEMA ON big ADD VINDEX hash(id) USING hash",
]
ROWS = [
    (1, -7, 18446744073709551615, Decimal("12345.6789"), 1.5, 0.25, datetime.date(2024, 2, 29),
     datetime.datetime(2024, 2, 29, 23, 59, 58, 123456), datetime.timedelta(hours=-838), "ünïcødé ✓ 😀",
     "x" * 300, b"\x00\xff\x10binary", "b", 2024, b"\x05", '{"k": [1, 2]}'),
    (2, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None),
    (3, 0, 0, Decimal("-0.0001"), -1e300, 3.5, datetime.date(1000, 1, 1), datetime.datetime(1970, 1, 1),
     datetime.timedelta(seconds=1, microseconds=0), "", "", b"", "a", 1901, b"\x00", "null"),
]
for n in range(4, 40):
    ROWS.append((n, n, n * 1000, Decimal(n) / 7, n / 3, float(n), datetime.date(2000, 1, n % 28 + 1),
                 datetime.datetime(2000, 1, 1, n % 24, n, 0), datetime.timedelta(minutes=n), f"name {n}", "t" * n,
                 bytes(range(n)), "a", 2000 + n, bytes((n,)), f"[{n}]"))
COLUMNS = "id, i, u, d, f, fl, dt, ts, tm, name, txt, bin, e, y, b, j"
# mysql-connector's binary-protocol reader loses its place after a YEAR or BIT column that other columns follow
# (through the engine path too): those two are compared in the text protocol and on raw packets only.
BINARY_COLUMNS = COLUMNS.replace(", y, b,", ",")


@pytest.fixture(scope="module")
async def router(mysql_cluster: list[DatabaseServer]) -> AsyncIterator[Router]:
    r = await start_router(mysql_cluster)

    def schema() -> None:
        conn = connect(r, database=None, autocommit=True)
        with conn.cursor() as cur:
            for sql in SCHEMA:
                cur.execute(sql)
            cur.execute("USE customer")
            marks = ", ".join(["%s"] * len(ROWS[0]))
            cur.executemany(f"INSERT INTO typed ({COLUMNS}) VALUES ({marks})", ROWS)
            cur.execute("USE main")
            cur.executemany("INSERT INTO plain VALUES (%s, %s)", [(i, f"p{i}") for i in range(1, 6)])
        conn.close()

    await asyncio.to_thread(schema)
    yield r
    internal = r.stats.internal_errors
    await r.close()
    assert internal == 0


def connect(r: Router, database: str | None = "customer", **kw: Any) -> pymysql.connections.Connection:
    kw.setdefault("autocommit", True)
    return pymysql.connect(host="127.0.0.1", port=r.port, user="demo", password="demo", database=database, **kw)


def forwarded(r: Router) -> int:
    pt = r.listener.frontend.passthrough
    assert pt is not None
    return pt.forwarded


def fetch(conn: Any, sql: str, args: Any = None) -> tuple[list[Any], list[tuple[Any, ...]]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return [d[:2] for d in cur.description or ()], list(cur.fetchall())


def both_paths(r: Router, sql: str, args: Any = None, database: str = "customer"
               ) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """(fast path answer, engine answer) of ``sql``; asserts the first one was forwarded and the second not."""
    conn = connect(r, database=database)
    try:
        before = forwarded(r)
        fast = fetch(conn, sql, args)
        assert forwarded(r) == before + 1, "the statement did not take the fast path"
        conn.begin()
        engine = fetch(conn, sql, args)
        conn.commit()
        assert forwarded(r) == before + 1, "a statement in a transaction took the fast path"
        return fast, engine
    finally:
        conn.close()


# --- text protocol --------------------------------------------------------------------------------------------------
async def test_text_results_match_engine(router: Router) -> None:
    def run() -> None:
        for row in ROWS:
            fast, engine = both_paths(router, f"SELECT {COLUMNS} FROM typed WHERE id = %s", (row[0],))
            assert fast == engine
            assert len(fast[1]) == 1
        fast, engine = both_paths(router, "SELECT id, name, UPPER(name) FROM typed WHERE id = 5 ORDER BY name")
        assert fast == engine
        fast, engine = both_paths(router, "SELECT * FROM plain ORDER BY id", database="main")
        assert fast == engine and len(fast[1]) == 5
        fast, engine = both_paths(router, "SELECT id FROM typed WHERE id = 999")  # no rows
        assert fast == engine == (fast[0], [])

    await asyncio.to_thread(run)


async def test_values_read_back(router: Router) -> None:
    def run() -> list[tuple[Any, ...]]:
        conn = connect(router)
        try:
            return fetch(conn, "SELECT id, d, ts, tm, name, bin FROM typed WHERE id = 1")[1]
        finally:
            conn.close()

    (row,) = await asyncio.to_thread(run)
    assert row == (1, Decimal("12345.6789"), datetime.datetime(2024, 2, 29, 23, 59, 58, 123456),
                   datetime.timedelta(hours=-838), "ünïcødé ✓ 😀", b"\x00\xff\x10binary")


# --- binary protocol ------------------------------------------------------------------------------------------------
async def test_binary_results_match_engine(router: Router) -> None:
    mysql_connector = pytest.importorskip("mysql.connector")

    def run() -> None:
        conn = mysql_connector.connect(host="127.0.0.1", port=router.port, user="demo", password="demo",
                                       database="customer", use_pure=True, autocommit=True)
        try:
            cur = conn.cursor(prepared=True)
            for row in ROWS:
                before = forwarded(router)
                cur.execute(f"SELECT {BINARY_COLUMNS} FROM typed WHERE id = ?", (row[0],))
                fast = (cur.description, cur.fetchall())
                assert forwarded(router) == before + 1
                conn.start_transaction()
                cur.execute(f"SELECT {BINARY_COLUMNS} FROM typed WHERE id = ?", (row[0],))
                engine = (cur.description, cur.fetchall())
                conn.commit()
                assert forwarded(router) == before + 1
                assert [d[:2] for d in fast[0]] == [d[:2] for d in engine[0]]
                assert fast[1] == engine[1]
            cur.execute("SELECT id, name FROM typed WHERE id = ? AND name = ?", (1, "ünïcødé ✓ 😀"))
            assert cur.fetchall() == [(1, "ünïcødé ✓ 😀")]
            cur.execute("SELECT id FROM typed WHERE id = ? AND d > ?", (1, Decimal("1.5")))
            assert cur.fetchall() == [(1,)]
            cur.execute("SELECT id FROM typed WHERE id = ? AND dt = ?", (1, datetime.date(2024, 2, 29)))
            assert cur.fetchall() == [(1,)]
            cur.execute("SELECT id FROM typed WHERE id = ? AND i IS NULL", (2,))
            assert cur.fetchall() == [(2,)]
            cur.close()
        finally:
            conn.close()

    await asyncio.to_thread(run)


async def test_raw_binary_execute_with_rebound_types(router: Router) -> None:
    """COM_STMT_EXECUTE without types after the first one (new-params-bound 0): the router re-binds them."""
    def run() -> None:
        with RawClient(router) as c:
            ok = c.command(stmt_prepare("SELECT id, name FROM typed WHERE id = ?"))
            stmt_id = struct.unpack_from("<I", ok[0][1], 1)[0]
            before = forwarded(router)
            first = c.command(stmt_execute(stmt_id, [4]))
            again = c.command(stmt_execute(stmt_id, [5], bind=False))
            assert forwarded(router) == before + 2
            assert first[-2][1][:1] == b"\x00" and again[-2][1][:1] == b"\x00"  # binary rows
            assert b"name 4" in first[-2][1] and b"name 5" in again[-2][1]
            assert [seq for seq, _ in again] == list(range(1, len(again) + 1))

    await asyncio.to_thread(run)


# --- errors, warnings, ids --------------------------------------------------------------------------------------------
async def test_shard_errors_keep_errno_and_sqlstate(router: Router) -> None:
    def run() -> list[tuple[int, str]]:
        out = []
        for db, sql in (("customer", "SELECT nosuch FROM typed WHERE id = 1"), ("main", "SELECT * FROM nosuch"),
                        ("customer", "SELECT id FROM typed WHERE id = 1 AND nosuchfunc(id) = 1")):
            conn = connect(router, database=db)
            try:
                codes = []
                for in_tx in (False, True):
                    if in_tx:
                        conn.begin()
                    with pytest.raises(pymysql.MySQLError) as info, conn.cursor() as cur:
                        cur.execute(sql)
                    codes.append((info.value.args[0], info.value.args[1]))
                    if in_tx:
                        conn.rollback()
                assert codes[0] == codes[1]  # the fast path's ERR is the engine's
                out.append(codes[0][0])
                with conn.cursor() as cur:  # the connection goes on
                    cur.execute("SELECT 1")
            finally:
                conn.close()
        return out

    before = forwarded(router)
    codes = await asyncio.to_thread(run)
    assert forwarded(router) > before
    assert codes[0] == 1054 and codes[1] == 1146 and codes[2] == 1305


async def test_sqlstate_on_the_wire(router: Router) -> None:
    def run() -> ErrPacket:
        with RawClient(router) as c:
            (_, payload), = c.command(query("SELECT nosuch FROM typed WHERE id = 1"))
            return ErrPacket.decode(payload)

    err = await asyncio.to_thread(run)
    assert (err.errno, err.sqlstate) == (1054, "42S22")


async def test_warnings_are_the_shards(router: Router) -> None:
    def run() -> tuple[int, list[tuple[Any, ...]]]:
        conn = connect(router)
        try:
            with conn.cursor() as cur:
                before = forwarded(router)
                cur.execute("SELECT id, CAST('12abc' AS SIGNED) AS n FROM typed WHERE id = 1")
                assert forwarded(router) == before + 1
                assert cur.fetchall() == ((1, 12),)
                count = conn.warning_count if hasattr(conn, "warning_count") else cur._result.warning_count
                cur.execute("SHOW WARNINGS")
                return count, list(cur.fetchall())
        finally:
            conn.close()

    count, warnings = await asyncio.to_thread(run)
    assert count == 1
    assert len(warnings) == 1 and "12abc" in warnings[0][2]


async def test_connection_ids_never_leak(router: Router) -> None:
    """The shard connection's thread id reaches no client: the handshake is the router's, and statements that
    read session state (CONNECTION_ID(), LAST_INSERT_ID(), user variables, locks) are not forwarded."""
    def run() -> None:
        conn = connect(router)
        try:
            before = forwarded(router)
            for sql in ("SELECT CONNECTION_ID(), id FROM typed WHERE id = 1",
                        "SELECT LAST_INSERT_ID(), id FROM typed WHERE id = 1",
                        "SELECT @x, id FROM typed WHERE id = 1", "SELECT GET_LOCK('l', 0), id FROM typed WHERE id = 1",
                        "SELECT id INTO @y FROM typed WHERE id = 1"):
                try:
                    fetch(conn, sql)
                except pymysql.MySQLError:
                    pass  # whatever the engine says of it
            assert forwarded(router) == before
        finally:
            conn.close()
        fresh = connect(router)  # (GET_LOCK pinned the other session to its shard connection: engine only)
        try:
            fetch(fresh, "SELECT id FROM typed WHERE id = 1")
            assert forwarded(router) == before + 1
        finally:
            fresh.close()

    await asyncio.to_thread(run)


# --- KILL -----------------------------------------------------------------------------------------------------------
async def test_kill_query_stops_a_forwarded_sleep(router: Router, mysql_cluster: list[DatabaseServer]) -> None:
    def run() -> tuple[float, Any, list[tuple[Any, ...]]]:
        conn = connect(router)
        killer = connect(router)
        outcome: dict[str, Any] = {}

        def sleeper() -> None:
            start = time.monotonic()
            try:
                fetch(conn, "SELECT SLEEP(30), id FROM typed WHERE id = 1")
            except pymysql.MySQLError as exc:
                outcome["error"] = exc.args
            outcome["took"] = time.monotonic() - start

        before = forwarded(router)
        t = threading.Thread(target=sleeper)
        t.start()
        time.sleep(1.0)
        with killer.cursor() as cur:
            cur.execute(f"KILL QUERY {conn.thread_id()}")
        t.join(20)
        after = fetch(conn, "SELECT id FROM typed WHERE id = 1")[1]  # the connection lives
        conn.close()
        killer.close()
        assert forwarded(router) >= before + 1
        return outcome["took"], outcome.get("error"), after

    took, error, after = await asyncio.to_thread(run)
    assert took < 10
    assert error is not None and error[0] == 1317
    assert after == [(1,)]

    def sleeping() -> list[Any]:
        found = []
        for server in mysql_cluster:
            conn = pymysql.connect(host=server.dsn.host, port=server.dsn.port, user=server.dsn.user,
                                   password=server.dsn.password)
            with conn.cursor() as cur:
                cur.execute("SELECT id, info FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(30)%'")
                found += list(cur.fetchall())
            conn.close()
        return found

    assert await asyncio.to_thread(sleeping) == []


# --- CLIENT_DEPRECATE_EOF on and off ----------------------------------------------------------------------------------
class RawClient:
    """A blocking client with a choice of CLIENT_DEPRECATE_EOF; ``command`` returns (sequence id, payload)s."""

    def __init__(self, r: Router, *, deprecate_eof: bool = True, database: str = "customer") -> None:
        self.sock = socket.create_connection(("127.0.0.1", r.port), timeout=20)
        self.dec = PacketDecoder(1 << 30)
        self.deprecate_eof = deprecate_eof
        seq, payload = self.read()
        hs = HandshakeV10.decode(payload)
        caps = CLIENT_CAPS if deprecate_eof else CLIENT_CAPS & ~int(Capability.DEPRECATE_EOF)
        self.sock.sendall(frame(handshake_response("demo", "demo", hs.auth_data, database=database, caps=caps),
                                seq + 1)[0])
        _, reply = self.read()
        assert reply[:1] == b"\x00", reply

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.sendall(frame(bytes((Command.QUIT,)), 0)[0])
        self.sock.close()

    def read(self) -> tuple[int, bytes]:
        while True:
            p = self.dec.next_packet()
            if p is not None:
                return p[0], p[2]
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.dec.feed(chunk)

    def command(self, payload: bytes) -> list[tuple[int, bytes]]:
        """One command's answer, for a single result set, an OK, an ERR or a COM_STMT_PREPARE answer."""
        self.sock.sendall(frame(payload, 0)[0])
        out = [self.read()]
        first = out[0][1]
        if first[:1] == b"\xff" or (first[:1] == b"\x00" and payload[0] != Command.STMT_PREPARE):
            return out
        if payload[0] == Command.STMT_PREPARE:
            params, columns = struct.unpack_from("<HH", first, 7)[0], struct.unpack_from("<H", first, 5)[0]
            for n in (params, columns):
                if n:
                    out += [self.read() for _ in range(n + (0 if self.deprecate_eof else 1))]
            return out
        count = first[0]
        out += [self.read() for _ in range(count)]
        if not self.deprecate_eof:
            out.append(self.read())  # EOF after the column definitions
        while True:
            out.append(self.read())
            p = out[-1][1]
            if (p[:1] == b"\xfe" and len(p) < 0xFFFFFF) or p[:1] == b"\xff":
                return out


def _shape(answer: list[tuple[int, bytes]]) -> list[str]:
    kinds = []
    for _, p in answer:
        kinds.append("end" if p[:1] == b"\xfe" and len(p) < 0xFFFFFF else "err" if p[:1] == b"\xff" else "data")
    return kinds


@pytest.mark.parametrize("deprecate_eof", [True, False])
async def test_deprecate_eof_on_and_off(router: Router, deprecate_eof: bool) -> None:
    sql = "SELECT id, name FROM typed WHERE id = 4"

    def run() -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        with RawClient(router, deprecate_eof=deprecate_eof) as c:
            before = forwarded(router)
            fast = c.command(query(sql))
            assert forwarded(router) == before + 1
            c.command(query("BEGIN"))
            engine = c.command(query(sql))
            c.command(query("COMMIT"))
            assert forwarded(router) == before + 1
            return fast, engine

    fast, engine = await asyncio.to_thread(run)
    assert [seq for seq, _ in fast] == list(range(1, len(fast) + 1))
    assert _shape(fast) == _shape(engine)
    ends = [p for _, p in fast if p[:1] == b"\xfe"]
    if deprecate_eof:
        assert len(ends) == 1 and len(ends[0]) >= 7  # OK with the EOF header
        status = struct.unpack_from("<H", ends[0], 3)[0]
    else:
        assert len(ends) == 2 and all(len(p) == 5 for p in ends)
        status = struct.unpack_from("<H", ends[-1], 3)[0]
    assert status & 0x0002 and not status & 0x0001  # autocommit, not in a transaction
    rows = [p for _, p in fast if p[:1] not in (b"\xfe",)][3:]
    assert rows == [p for _, p in engine if p[:1] not in (b"\xfe",)][3:]
    definition = ColumnDefinition.decode(fast[1][1])
    assert (definition.schema, definition.name) == ("customer", "id")  # the keyspace, not the shard's database


async def test_mysql_cli_batch(router: Router) -> None:
    import shutil
    import subprocess

    if shutil.which("mysql") is None:
        pytest.skip("the mysql client is not installed")

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["mysql", "-h127.0.0.1", f"-P{router.port}", "-udemo", "-pdemo", "customer", "--batch",
                               "-e", "SELECT id, name, d FROM typed WHERE id = 1; "
                                     "SELECT id, name FROM typed WHERE id = 5"],
                              capture_output=True, text=True, timeout=60, check=False)

    before = forwarded(router)
    out = await asyncio.to_thread(run)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["id\tname\td", "1\tünïcødé ✓ 😀\t12345.6789", "id\tname", "5\tname 5"]
    assert forwarded(router) == before + 2


async def test_multi_statement(router: Router) -> None:
    def run() -> list[Any]:
        conn = connect(router, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT id FROM typed WHERE id = 4; SELECT name FROM typed WHERE id = 5; SELECT 7")
                out = [cur.fetchall()]
                while cur.nextset():
                    out.append(cur.fetchall())
                return out
        finally:
            conn.close()

    assert await asyncio.to_thread(run) == [((4,),), (("name 5",),), ((7,),)]


# --- what never takes the fast path; recovery -------------------------------------------------------------------------
async def test_transactions_and_autocommit_off_take_the_engine(router: Router) -> None:
    def run() -> None:
        conn = connect(router, autocommit=False)
        try:
            before = forwarded(router)
            assert fetch(conn, "SELECT id FROM typed WHERE id = 4")[1] == [(4,)]
            conn.commit()
            conn.autocommit(True)
            conn.begin()
            assert fetch(conn, "SELECT id FROM typed WHERE id = 4")[1] == [(4,)]
            conn.commit()
            assert forwarded(router) == before
            assert fetch(conn, "SELECT id FROM typed WHERE id = 4")[1] == [(4,)]
            assert forwarded(router) == before + 1
            # A scatter read, and a write, take the engine.
            fetch(conn, "SELECT COUNT(*) FROM typed")
            with conn.cursor() as cur:
                cur.execute("UPDATE typed SET i = i WHERE id = 4")
            assert forwarded(router) == before + 1
        finally:
            conn.close()

    await asyncio.to_thread(run)


async def test_dead_shard_connection_recovers(router: Router, mysql_cluster: list[DatabaseServer]) -> None:
    pt = router.listener.frontend.passthrough
    assert pt is not None

    def run() -> None:
        conn = connect(router)
        try:
            assert fetch(conn, "SELECT id FROM typed WHERE id = 6")[1] == [(6,)]
            ids = [c.thread_id for idle in pt.pool._idle.values() for c in idle]
            assert ids
            for server in mysql_cluster:  # the shard ends the fast path's connections under the router
                admin = pymysql.connect(host=server.dsn.host, port=server.dsn.port, user=server.dsn.user,
                                        password=server.dsn.password, autocommit=True)
                with admin.cursor() as cur:
                    for tid in ids:
                        try:
                            cur.execute(f"KILL CONNECTION {tid}")
                        except pymysql.MySQLError:
                            pass  # a thread of the other server
                admin.close()
            for _ in range(3):
                assert fetch(conn, "SELECT id FROM typed WHERE id = 6")[1] == [(6,)]
                assert fetch(conn, "SELECT id FROM typed WHERE id = 7")[1] == [(7,)]
        finally:
            conn.close()

    await asyncio.to_thread(run)


async def test_ddl_prepares_again(router: Router) -> None:
    mysql_connector = pytest.importorskip("mysql.connector")

    def run() -> None:
        conn = mysql_connector.connect(host="127.0.0.1", port=router.port, user="demo", password="demo",
                                       database="main", use_pure=True, autocommit=True)
        try:
            cur = conn.cursor(prepared=True)
            cur.execute("SELECT * FROM plain WHERE id = ?", (1,))
            assert cur.fetchall() == [(1, "p1")]
            plain = conn.cursor()
            plain.execute("ALTER TABLE plain ADD COLUMN extra INT DEFAULT 5")
            before = forwarded(router)
            cur.execute("SELECT * FROM plain WHERE id = ?", (1,))
            assert cur.fetchall() == [(1, "p1", 5)]
            assert forwarded(router) == before + 1
            plain.execute("ALTER TABLE plain DROP COLUMN extra")
            plain.close()
            cur.close()
        finally:
            conn.close()

    await asyncio.to_thread(run)


async def test_rows_of_16mb_and_more(router: Router) -> None:
    """A row split over several wire packets is joined and split again with the client's sequence ids."""
    blob = os.urandom((17 << 20) + 3)

    def run() -> None:
        conn = connect(router, max_allowed_packet=64 << 20)
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO big (id, data) VALUES (%s, %s)", (7, blob))
                before = forwarded(router)
                cur.execute("SELECT data, LENGTH(data), id FROM big WHERE id = 7")
                assert cur.fetchall() == ((blob, len(blob), 7),)
                assert forwarded(router) == before + 1
        finally:
            conn.close()
        with RawClient(router) as c:  # (mysql-connector's binary reader cannot take such rows, on any path)
            ok = c.command(stmt_prepare("SELECT data, id FROM big WHERE id = ?"))
            stmt_id = struct.unpack_from("<I", ok[0][1], 1)[0]
            before = forwarded(router)
            answer = c.command(stmt_execute(stmt_id, [7]))
            assert forwarded(router) == before + 1
            row = answer[-2][1]
            assert row[:3] == b"\x00\x00\xfe" and struct.unpack_from("<Q", row, 3)[0] == len(blob)
            assert row[11:-8] == blob and struct.unpack_from("<q", row, len(row) - 8)[0] == 7

    await asyncio.to_thread(run)


async def test_client_gone_stops_the_shard_statement(router: Router, mysql_cluster: list[DatabaseServer]) -> None:
    def run() -> list[Any]:
        c = RawClient(router)
        c.sock.sendall(frame(query("SELECT SLEEP(40), id FROM typed WHERE id = 2"), 0)[0])
        time.sleep(1.0)
        c.sock.close()  # gone without COM_QUIT, mid-statement
        deadline = time.monotonic() + 10
        while True:
            left = []
            for server in mysql_cluster:
                conn = pymysql.connect(host=server.dsn.host, port=server.dsn.port, user=server.dsn.user,
                                       password=server.dsn.password)
                with conn.cursor() as cur:
                    cur.execute("SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(40)%'")
                    left += list(cur.fetchall())
                conn.close()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    assert await asyncio.to_thread(run) == []


async def test_concurrent_prepared_reads_all_forwarded(router: Router) -> None:
    """One prepared text with different parameters at once: each execution is its own read (consolidation keys
    take the parameters), so all of them take the fast path and each gets its own row."""
    def worker(ids: list[int], out: list[Any]) -> None:
        with RawClient(router) as c:
            ok = c.command(stmt_prepare("SELECT id, name FROM typed WHERE id = ?"))
            stmt_id = struct.unpack_from("<I", ok[0][1], 1)[0]
            for i in ids:
                answer = c.command(stmt_execute(stmt_id, [i]))
                out.append((i, f"name {i}".encode() in answer[-2][1]))

    def run() -> list[Any]:
        out: list[Any] = []
        # Ids of one thread are no other thread's: an identical read running meanwhile would be consolidated.
        threads = [threading.Thread(target=worker, args=([4 + 6 * k + j % 6 for j in range(40)], out))
                   for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return out

    before = forwarded(router)
    out = await asyncio.to_thread(run)
    assert len(out) == 240 and all(ok for _, ok in out)
    assert forwarded(router) == before + 240
