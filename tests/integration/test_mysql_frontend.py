"""The MySQL frontend with real clients, through a router in this process, over real MariaDB shards.

Clients: the ``mysql`` command-line client (batch, and interactive in a pseudo-terminal with Ctrl-C), PyMySQL and
aiomysql (executemany, transactions, unicode, decimals, dates, blobs, 16 MB packets), mysql-connector-python pure
and C with ``prepared=True`` (the binary protocol, COM_CHANGE_USER), SQLAlchemy Core on PyMySQL, and raw packets
where a client library would hide the detail. TLS, ``require_tls``, caching_sha2_password over TLS and through RSA
key retrieval, KILL (also across worker processes), cursors, client character sets, draining, and error codes.
"""
from __future__ import annotations

import asyncio
import datetime
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest

from router.frontend.mysql.constants import Command
from router.frontend.mysql.packets import ColumnDefinition, ErrPacket, OkPacket, Reader
from tests.support.backends import DatabaseServer
from tests.support.mysql_frontend import Router, start_router
from tests.support.mysql_wire import WireClient, WireError, query

pytestmark = [pytest.mark.backend, pytest.mark.timeout(180)]

SCHEMA = [
    "USE customer",
    "CREATE TABLE customer (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, balance DECIMAL(12,2), born DATE, "
    "seen DATETIME(6), photo BLOB)",
    "ALTER VSCHEMA ON customer ADD VINDEX hash(id) USING hash",
    "CREATE TABLE corder (order_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, amount DECIMAL(10,2))",
    "ALTER VSCHEMA ADD SEQUENCE main.corder_seq",
    "ALTER VSCHEMA ON customer.corder ADD VINDEX hash(customer_id) USING hash",
    "ALTER VSCHEMA ON customer.corder ADD AUTO_INCREMENT order_id USING main.corder_seq",
    "CREATE TABLE big (id BIGINT PRIMARY KEY, data LONGBLOB)",
    "ALTER VSCHEMA ON big ADD VINDEX hash(id) USING hash",
]


@pytest.fixture(scope="module")
async def router(mysql_cluster: list[DatabaseServer], tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Router]:
    r = await start_router(mysql_cluster, tls_dir=tmp_path_factory.mktemp("tls"))

    def schema() -> None:
        conn = connect(r, autocommit=True)
        with conn.cursor() as cur:
            for sql in SCHEMA:
                cur.execute(sql)
        conn.close()

    await asyncio.to_thread(schema)
    yield r
    internal = r.stats.internal_errors
    await r.close()
    assert internal == 0


def connect(r: Router, user: str = "demo", password: str = "demo", database: str | None = "customer",
            **kw: Any) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=r.port, user=user, password=password, database=database,
                           **kw)


def rows(r: Router, sql: str, args: Any = None, **kw: Any) -> list[tuple[Any, ...]]:
    conn = connect(r, autocommit=True, **kw)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def mysql_cli(r: Router, *args: str, user: str = "demo", password: str = "demo", stdin: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    if shutil.which("mysql") is None:
        pytest.skip("the mysql client is not installed")
    return subprocess.run(["mysql", "-h127.0.0.1", f"-P{r.port}", f"-u{user}", f"-p{password}", *args],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


# --- the mysql command-line client --------------------------------------------------------------------------------
async def test_mysql_cli_batch(router: Router) -> None:
    out = await asyncio.to_thread(mysql_cli, router, "customer", "--batch", "-e",
                                  "SELECT @@version_comment; SHOW DATABASES; SELECT DATABASE(); "
                                  "INSERT INTO customer (id, name, balance) VALUES (900, 'cli✓', 1.50); "
                                  "SELECT name, balance FROM customer WHERE id = 900; SHOW SHARDGATE SHARDS; "
                                  "DELETE FROM customer WHERE id = 900")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "shardgate: a sharding router speaking the MySQL protocol" in lines
    assert lines[lines.index("Database") + 1:lines.index("Database") + 3] == ["customer", "main"]
    assert "DATABASE()" in lines and lines[lines.index("DATABASE()") + 1] == "customer"
    assert "cli✓\t1.50" in lines
    header = "keyspace\tshard\tkey_range\tengine\tbackend\trole\thealth"  # the PostgreSQL frontend's columns too
    assert header in lines
    shards = [line.split("\t") for line in lines[lines.index(header) + 1:]]
    assert [r[:3] for r in shards if r[5] == "primary"][:3] == [["customer", "-80", "-80"], ["customer", "80-", "80-"],
                                                                ["main", "0", "-"]]
    assert all(r[3] == "mysql" and r[6] == "serving" for r in shards[:3])


async def test_mysql_cli_errors(router: Router) -> None:
    syntax = await asyncio.to_thread(mysql_cli, router, "customer", "-e", "SELEC 1")
    assert "ERROR 1064 (42000)" in syntax.stderr
    table = await asyncio.to_thread(mysql_cli, router, "customer", "-e", "SELECT * FROM nosuch")
    assert "ERROR 1146 (42S02)" in table.stderr
    db = await asyncio.to_thread(mysql_cli, router, "nosuch", "-e", "SELECT 1")
    assert "ERROR 1049 (42000)" in db.stderr
    denied = await asyncio.to_thread(mysql_cli, router, "customer", "-e", "SELECT 1", password="wrong")
    assert "ERROR 1045 (28000)" in denied.stderr
    acl = await asyncio.to_thread(mysql_cli, router, "customer", "-e",
                                  "ALTER VSCHEMA ON x ADD VINDEX hash(id) USING hash", user="plain",
                                  password="plainpw")
    assert "ERROR 1142 (42000)" in acl.stderr


async def test_mysql_cli_script_on_stdin(router: Router) -> None:
    script = textwrap.dedent("""\
        use main
        SELECT DATABASE();
        use customer:-80
        SELECT DATABASE();
        SHOW TABLES;
        VEXPLAIN PLAN SELECT name FROM customer WHERE id = 3;
        SHOW WARNINGS;
        SHOW CREATE TABLE customer;
        """)
    out = await asyncio.to_thread(mysql_cli, router, "--batch", "customer", stdin=script)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:4] == ["DATABASE()", "main", "DATABASE()", "customer:-80"]
    assert "customer" in lines and "corder" in lines
    assert any(line.startswith("customer\tCREATE TABLE `customer`") for line in lines)
    plan = json.loads(out.stdout.split("JSON\n", 1)[1].splitlines()[0].replace("\\n", "\n"))
    assert plan["Instructions"]["Variant"] == "ByDestination"  # USE customer:-80 targets one shard


def _interactive(port: int, steps: list[tuple[str, str]], kill_after: str | None = None,
                 running: Any = None) -> str:
    """Run the mysql client on a pseudo-terminal; send each line once ``expect`` appeared (Ctrl-C after
    ``kill_after``, once ``running()`` says the router runs it). Returns everything the client printed."""
    pid, fd = pty.fork()
    if pid == 0:  # the client
        os.execvp("mysql", ["mysql", "-h127.0.0.1", f"-P{port}", "-udemo", "-pdemo", "customer"])
    out = b""

    def wait_for(text: str, limit: float = 20.0) -> None:
        nonlocal out
        deadline = time.monotonic() + limit
        while text.encode() not in out:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in {out.decode(errors='replace')[-2000:]}")
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    return

    try:
        wait_for("]>")  # MariaDB [customer]>
        for line, expect in steps:
            os.write(fd, line.encode() + b"\n")
            if kill_after is not None and line.startswith(kill_after):
                deadline = time.monotonic() + 10
                while running is not None and not running() and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.2)
                os.write(fd, b"\x03")
            wait_for(expect)
        os.write(fd, b"quit\n")
        wait_for("Bye", 10)
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
    return out.decode(errors="replace")


async def test_mysql_cli_interactive_and_ctrl_c(router: Router) -> None:
    if shutil.which("mysql") is None:
        pytest.skip("the mysql client is not installed")
    steps = [("SELECT 40 + 2 AS answer;", "1 row in set"),
             ("status", "Server version:"),
             ("SELECT SLEEP(5) AS slept;", "Query execution was interrupted"),
             ("SELECT 'still here' AS s;", "still here")]
    started = time.monotonic()
    def running() -> bool:
        conns = list(router.listener.frontend.connections.values())
        return any((getattr(c.runner, "current_sql", None) or "").startswith("SELECT SLEEP") for c in conns)

    out = await asyncio.to_thread(_interactive, router.port, steps, "SELECT SLEEP", running)
    assert time.monotonic() - started < 8, "Ctrl-C did not interrupt the query"
    assert "| answer |" in out and "|     42 |" in out
    assert "8.0.31-shardgate" in out
    assert "Query execution was interrupted" in out  # KILL QUERY sent by the client on a second connection


# --- PyMySQL -----------------------------------------------------------------------------------------------------
async def test_pymysql_types_executemany_and_transactions(router: Router) -> None:
    def run() -> None:
        conn = connect(router)
        try:
            with conn.cursor() as cur:
                data = [(i, f"näme✓{i}", Decimal(i) / 4, datetime.date(2000, 1, i),
                         datetime.datetime(2024, 1, 2, 3, 4, 5, i * 1000), bytes([i, 0, 255, 39, 92]))
                        for i in range(1, 21)]
                n = cur.executemany("INSERT INTO customer (id, name, balance, born, seen, photo) "
                                    "VALUES (%s, %s, %s, %s, %s, %s)", data)
                assert n == 20
                conn.commit()
                cur.execute("SELECT id, name, balance, born, seen, photo FROM customer WHERE id <= 20 ORDER BY id")
                assert list(cur.fetchall()) == data
                cur.execute("SELECT SUM(balance), COUNT(*) FROM customer WHERE id <= 20")
                assert cur.fetchone() == (Decimal("52.50"), 20)
                # a transaction across both shards, rolled back
                cur.execute("UPDATE customer SET name = 'gone' WHERE id IN (1, 2, 3, 4)")
                assert cur.rowcount == 4
                conn.rollback()
                cur.execute("SELECT COUNT(*) FROM customer WHERE name = 'gone'")
                assert cur.fetchone() == (0,)
                cur.execute("DELETE FROM customer WHERE id <= 20")
                conn.commit()
                assert conn.get_server_info() == "8.0.31-shardgate"
        finally:
            conn.close()

    await asyncio.to_thread(run)


async def test_pymysql_status_flags_and_last_insert_id(router: Router) -> None:
    def run() -> None:
        conn = connect(router, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO corder (customer_id, amount) VALUES (%s, %s), (%s, %s)", (5, 1, 6, 2))
                first = cur.lastrowid
                assert first > 0
                cur.execute("SELECT LAST_INSERT_ID()")
                assert cur.fetchone() == (first,)
                cur.execute("SELECT order_id FROM corder WHERE order_id IN (%s, %s) ORDER BY 1", (first, first + 1))
                assert [r[0] for r in cur.fetchall()] == [first, first + 1]
                assert conn.get_autocommit()
                cur.execute("BEGIN")
                assert conn.server_status & 1  # SERVER_STATUS_IN_TRANS
                cur.execute("COMMIT")
                assert not conn.server_status & 1
                cur.execute("SET autocommit = 0")
                assert not conn.get_autocommit()
                cur.execute("SELECT @@autocommit, @@max_allowed_packet, @@version")
                assert cur.fetchone() == (0, 64 << 20, "8.0.31-shardgate")
                cur.execute("SELECT @@session.autocommit AS ac, @@global.max_allowed_packet map, @@tx_isolation")
                assert [d[0] for d in cur.description] == ["ac", "map", "@@tx_isolation"]
                cur.execute("SHOW VARIABLES LIKE 'version%'")  # a shard answers; the router's values go in
                found = dict(cur.fetchall())
                assert found["version"] == "8.0.31-shardgate" and "version_compile_os" in found
        finally:
            conn.close()

    await asyncio.to_thread(run)


async def test_pymysql_multi_statements_and_warnings(router: Router) -> None:
    def run() -> None:
        conn = connect(router, autocommit=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 AS a; SELECT 'two' AS b, 3; UPDATE customer SET name = name WHERE id = -1")
                assert cur.fetchall() == ((1,),)
                assert cur.nextset() and cur.fetchall() == (("two", 3),)
                assert cur.nextset() and cur.rowcount == 0
                assert not cur.nextset()
                with pytest.raises(pymysql.err.ProgrammingError) as info:
                    cur.execute("SELECT 1; SELEC 2; SELECT 3")
                    while cur.nextset():
                        pass
                assert info.value.args[0] == 1064
                cur.execute("SET NAMES utf8mb4")
                with pytest.raises(pymysql.err.OperationalError) as info:  # run on a shard, which refuses it
                    cur.execute("SET some_unknown_variable = 5")
                assert info.value.args[0] == 1193
        finally:
            conn.close()

    await asyncio.to_thread(run)


async def test_pymysql_16mb_packets(router: Router) -> None:
    blob = os.urandom(17 << 20)

    def run() -> None:
        conn = connect(router, autocommit=True, max_allowed_packet=64 << 20)
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO big (id, data) VALUES (%s, %s)", (1, blob))
                cur.execute("SELECT data, LENGTH(data) FROM big WHERE id = 1")
                got, length = cur.fetchone()
                assert length == len(blob) and got == blob
                cur.execute("DELETE FROM big WHERE id = 1")
        finally:
            conn.close()

    await asyncio.to_thread(run)


async def test_error_codes(router: Router) -> None:
    def run() -> dict[str, tuple[int, str]]:
        got = {}
        conn = connect(router, autocommit=True)
        for name, sql in [("syntax", "SELEC 1"), ("table", "SELECT * FROM nosuch"),
                          ("duplicate", "INSERT INTO customer (id, name) VALUES (1000, 'a'), (1000, 'b')")]:
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
            except pymysql.err.MySQLError as exc:
                got[name] = (exc.args[0], str(exc.args[1]))
        conn.close()
        try:
            connect(router, user="plain", password="plainpw").cursor().execute(
                "ALTER VSCHEMA ON customer ADD VINDEX hash(id) USING hash")
        except pymysql.err.MySQLError as exc:
            got["acl"] = (exc.args[0], str(exc.args[1]))
        return got

    got = await asyncio.to_thread(run)
    assert got["syntax"][0] == 1064
    assert got["table"][0] == 1146
    assert got["duplicate"][0] == 1062  # the shard's own code passes through
    assert got["acl"][0] == 1142


async def test_sqlstates_on_the_wire(router: Router) -> None:
    def run() -> list[ErrPacket]:
        c = WireClient("127.0.0.1", router.port, "demo", "demo", "customer")
        try:
            out = []
            for sql in ("SELEC 1", "SELECT * FROM nosuch", "SELECT * FROM customer WHERE"):
                (reply,) = c.query(sql)
                out.append(ErrPacket.decode(reply))
            (empty,) = c.query("   ")
            out.append(ErrPacket.decode(empty))
            return out
        finally:
            c.close()

    errs = await asyncio.to_thread(run)
    assert [(e.errno, e.sqlstate) for e in errs] == [(1064, "42000"), (1146, "42S02"), (1064, "42000"),
                                                     (1065, "42000")]


# --- auth and TLS -------------------------------------------------------------------------------------------------
async def test_caching_sha2_fast_and_full_auth(router: Router) -> None:
    def run() -> None:
        assert rows(router, "SELECT CURRENT_USER()", user="sha", password="shapw") == [("sha@%",)]
        # full authentication without TLS: RSA key retrieval (PyMySQL asks for the key)
        assert rows(router, "SELECT 1", user="slow", password="slowpw") == [(1,)]
        # now cached in the router: fast auth
        assert rows(router, "SELECT 2", user="slow", password="slowpw") == [(2,)]
        with pytest.raises(pymysql.err.OperationalError) as info:
            rows(router, "SELECT 1", user="sha", password="wrong")
        assert info.value.args[0] == 1045

    await asyncio.to_thread(run)


async def test_tls_and_full_auth_over_tls(router: Router, mysql_cluster: list[DatabaseServer],
                                          tmp_path: Path) -> None:
    def run(r: Router) -> None:
        conn = connect(r, user="slow", password="slowpw", ssl={"ca": str(r.cert)})
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@have_ssl")
                assert cur.fetchone() == ("YES",)
            assert conn._sock.version().startswith("TLS")  # type: ignore[union-attr]
        finally:
            conn.close()

    await asyncio.to_thread(run, router)
    strict = await start_router(mysql_cluster, tls_dir=tmp_path, require_tls=True)
    try:
        with pytest.raises(WireError) as info:  # a client without TLS (PyMySQL would start TLS by itself)
            await asyncio.to_thread(WireClient, "127.0.0.1", strict.port, "demo", "demo")
        assert info.value.err.errno == 3159
        await asyncio.to_thread(run, strict)
        cli = await asyncio.to_thread(mysql_cli, strict, "--ssl", f"--ssl-ca={strict.cert}", "-e", "SELECT 1 AS x")
        assert cli.returncode == 0 and cli.stdout.split() == ["x", "1"], cli.stderr
    finally:
        await strict.close()


# --- aiomysql ------------------------------------------------------------------------------------------------------
async def test_aiomysql(router: Router) -> None:
    import aiomysql

    conn = await aiomysql.connect(host="127.0.0.1", port=router.port, user="demo", password="demo", db="customer")
    try:
        async with conn.cursor() as cur:
            data = [(100 + i, f"ünï{i}", Decimal(f"{i}.05"), datetime.date(1990, 5, i + 1)) for i in range(10)]
            await cur.executemany("INSERT INTO customer (id, name, balance, born) VALUES (%s, %s, %s, %s)", data)
            await conn.commit()
            await cur.execute("SELECT id, name, balance, born FROM customer WHERE id BETWEEN 100 AND 109 ORDER BY id")
            assert list(await cur.fetchall()) == data
            await cur.execute("UPDATE customer SET photo = X'00FF' WHERE id = 100")
            await conn.commit()
            await cur.execute("SELECT photo FROM customer WHERE id = 100")
            assert await cur.fetchone() == (b"\x00\xff",)
            await conn.begin()
            await cur.execute("DELETE FROM customer WHERE id BETWEEN 100 AND 109")
            await conn.rollback()
            await cur.execute("SELECT COUNT(*) FROM customer WHERE id BETWEEN 100 AND 109")
            assert await cur.fetchone() == (10,)
            await cur.execute("DELETE FROM customer WHERE id BETWEEN 100 AND 109")
            await conn.commit()
    finally:
        conn.close()


# --- mysql-connector-python, pure and C, prepared statements ------------------------------------------------------
CONNECTOR_SCRIPT = """
import datetime, json, sys
from decimal import Decimal
import mysql.connector
port, pure, user, password = int(sys.argv[1]), sys.argv[2] == "pure", sys.argv[3], sys.argv[4]
c = mysql.connector.connect(host="127.0.0.1", port=port, user=user, password=password, database="customer",
                            use_pure=pure)
out = {"class": type(c).__name__}
cur = c.cursor(prepared=True)
base = 5000 if pure else 6000
rows = [(base + i, "✓p" + str(i), Decimal("1.25") * i, datetime.date(2001, 2, i + 1),
         datetime.datetime(2022, 3, 4, 5, 6, 7, 1000 * i), bytes([i, 255, 0])) for i in range(1, 6)]
for r in rows:
    cur.execute("INSERT INTO customer (id, name, balance, born, seen, photo) VALUES (?, ?, ?, ?, ?, ?)", r)
c.commit()
cur.execute("SELECT id, name, balance, born, seen, photo FROM customer WHERE id BETWEEN ? AND ? ORDER BY id",
            (base, base + 10))
got = [tuple(x) for x in cur.fetchall()]
out["roundtrip"] = [tuple(bytes(v) if isinstance(v, (bytes, bytearray)) else v for v in g) for g in got] == rows
cur.execute("SELECT name FROM customer WHERE id = ?", (base + 3,))
out["point"] = cur.fetchall()[0][0]
cur.execute("SELECT ?, ?, ?", (7, None, "x"))
out["literals"] = [list(r) for r in cur.fetchall()]
cur.execute("DELETE FROM customer WHERE id BETWEEN ? AND ?", (base, base + 10))
out["deleted"] = cur.rowcount
c.commit()
try:
    cur.execute("SELECT * FROM nosuch WHERE id = ?", (1,))
except mysql.connector.Error as exc:
    out["errno"] = exc.errno
cur.close()
c.cmd_change_user(username="plain", password="plainpw", database="main")  # COM_CHANGE_USER
plain = c.cursor()
plain.execute("SELECT CURRENT_USER(), DATABASE()")
out["changed_user"] = list(plain.fetchall()[0])
plain.close()
c.close()
print(json.dumps(out, default=str))
"""


def _connector_env() -> dict[str, str]:
    env = dict(os.environ)
    try:
        import mysql.connector  # noqa: F401
    except ImportError:
        pytest.skip("mysql-connector-python is not installed")
    vendor = Path(sys.modules["mysql.connector"].__file__ or "").parent.parent / "vendor"
    if vendor.is_dir():  # the C extension links the OpenSSL it ships with
        env["LD_LIBRARY_PATH"] = f"{vendor}:{env.get('LD_LIBRARY_PATH', '')}"
    return env


@pytest.mark.parametrize("impl", ["pure", "c"])
@pytest.mark.parametrize("user", [("demo", "demo"), ("sha", "shapw")])
async def test_mysql_connector_prepared(router: Router, impl: str, user: tuple[str, str]) -> None:
    env = _connector_env()
    proc = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", CONNECTOR_SCRIPT, str(router.port), impl,
                                                    *user], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["class"] == ("MySQLConnection" if impl == "pure" else "CMySQLConnection")
    assert out["roundtrip"] is True
    assert out["point"] == "✓p3"
    assert out["literals"] == [[7, None, "x"]]
    assert out["deleted"] == 5
    assert out["errno"] == 1146
    assert out["changed_user"] == ["plain@%", "main"]


# --- KILL, processlist, commands ----------------------------------------------------------------------------------
async def test_kill_query_and_connection(router: Router) -> None:
    def run() -> None:
        victim = connect(router, autocommit=True)
        killer = connect(router, autocommit=True)
        try:
            vid = victim.thread_id()
            with killer.cursor() as kc:
                kc.execute("SHOW PROCESSLIST")
                assert vid in [r[0] for r in kc.fetchall()]

            import threading

            def kill() -> None:
                with killer.cursor() as kc:
                    for _ in range(200):  # until the victim's statement runs
                        kc.execute("SHOW FULL PROCESSLIST")
                        if any(r[0] == vid and (r[7] or "").startswith("SELECT SLEEP") for r in kc.fetchall()):
                            break
                        time.sleep(0.05)
                    kc.execute(f"KILL QUERY {vid}")

            t = threading.Thread(target=kill)
            t.start()
            started = time.monotonic()
            with pytest.raises(pymysql.err.OperationalError) as info, victim.cursor() as vc:
                vc.execute("SELECT SLEEP(10)")
            t.join()
            assert info.value.args[0] == 1317
            assert time.monotonic() - started < 5
            with victim.cursor() as vc:
                vc.execute("SELECT 1")
                assert vc.fetchone() == (1,)
            with killer.cursor() as kc:
                kc.execute(f"KILL {vid}")
                with pytest.raises(pymysql.err.OperationalError) as unknown:
                    kc.execute("KILL 999999")
                assert unknown.value.args[0] == 1094
            with pytest.raises(pymysql.err.OperationalError), victim.cursor() as vc:
                vc.execute("SELECT 1")
        finally:
            killer.close()

    await asyncio.to_thread(run)


async def test_commands_on_the_wire(router: Router) -> None:
    def run() -> None:
        c = WireClient("127.0.0.1", router.port, "demo", "demo", "customer")
        try:
            assert c.command(bytes((Command.PING,)))[0][:1] == b"\x00"
            (ok,) = c.command(bytes((Command.INIT_DB,)) + b"main")
            assert ok[:1] == b"\x00"
            (err,) = c.command(bytes((Command.INIT_DB,)) + b"nosuch")
            assert ErrPacket.decode(err).errno == 1049
            c.command(bytes((Command.INIT_DB,)) + b"customer")
            c.send(bytes((Command.STATISTICS,)))
            stats = c.read()[1]  # a bare string, not an OK packet
            assert stats.startswith(b"Uptime: ")
            # COM_FIELD_LIST: definitions (with a default) then EOF
            c.send(bytes((Command.FIELD_LIST,)) + b"customer\0")
            fields = []
            while True:
                _, p = c.read()
                if p[:1] == b"\xfe":
                    break
                fields.append(ColumnDefinition.decode(p).name)
            assert fields == ["id", "name", "balance", "born", "seen", "photo"]
            # COM_SET_OPTION off: multi-statements refused
            (eof,) = c.command(bytes((Command.SET_OPTION,)) + b"\x01\x00")
            assert eof[:1] == b"\xfe"
            (err,) = c.query("SELECT 1; SELECT 2")
            assert ErrPacket.decode(err).errno == 1064
            # COM_RESET_CONNECTION keeps the database, ends the transaction
            c.query("BEGIN")
            (ok,) = c.command(bytes((Command.RESET_CONNECTION,)))
            assert not OkPacket.decode(ok).status & 1
            answer = c.query("SELECT DATABASE()")
            assert answer[2][1:] == b"customer"
            (unknown,) = c.command(b"\x1d")
            assert ErrPacket.decode(unknown).errno == 1047
            c.send(query("SELECT 1"), seq=3)  # out of order: the connection ends
            _, err = c.read()
            assert ErrPacket.decode(err).errno == 1156
            with pytest.raises((ConnectionError, OSError)):
                c.read()
        finally:
            c.sock.close()

    await asyncio.to_thread(run)


async def test_cursor_fetch(router: Router) -> None:
    import struct

    from tests.support.mysql_wire import stmt_execute, stmt_prepare

    def run() -> None:
        c = WireClient("127.0.0.1", router.port, "demo", "demo", "main")
        try:
            c.send(stmt_prepare("SELECT 1 AS a UNION ALL SELECT 2 UNION ALL SELECT ?"))
            _, ok = c.read()
            stmt_id = Reader(ok, 1).u32()
            ncols, nparams = struct.unpack_from("<HH", ok, 5)
            for _ in range(nparams + ncols):
                c.read()
            c.send(stmt_execute(stmt_id, [3], flags=1))  # CURSOR_TYPE_READ_ONLY
            _, count = c.read()
            assert count == b"\x01"
            c.read()  # the column definition
            _, eof = c.read()
            assert eof[:1] == b"\xfe" and struct.unpack_from("<H", eof, 3)[0] & 64  # SERVER_STATUS_CURSOR_EXISTS
            c.send(bytes((Command.STMT_FETCH,)) + struct.pack("<II", stmt_id, 2))
            got = [c.read()[1] for _ in range(3)]
            assert got[0][:1] == b"\x00" and got[1][:1] == b"\x00" and got[2][:1] == b"\xfe"
            c.send(bytes((Command.STMT_FETCH,)) + struct.pack("<II", stmt_id, 2))
            last = [c.read()[1] for _ in range(2)]
            assert struct.unpack_from("<H", last[1], 3)[0] & 128  # SERVER_STATUS_LAST_ROW_SENT
            c.send(bytes((Command.STMT_RESET,)) + struct.pack("<I", stmt_id))
            assert c.read()[1][:1] == b"\x00"
        finally:
            c.close()

    await asyncio.to_thread(run)


async def test_wire_client_reports_errors(router: Router) -> None:
    with pytest.raises(WireError) as info:
        await asyncio.to_thread(WireClient, "127.0.0.1", router.port, "demo", "wrong")
    assert info.value.err.errno == 1045


# --- SQLAlchemy Core, character sets, draining ----------------------------------------------------------------------
async def test_sqlalchemy_core(router: Router) -> None:
    sa = pytest.importorskip("sqlalchemy")

    def run() -> None:
        engine = sa.create_engine(f"mysql+pymysql://demo:demo@127.0.0.1:{router.port}/customer")
        md = sa.MetaData()
        items = sa.Table("sa_items", md, sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
                         sa.Column("name", sa.String(40)), sa.Column("price", sa.Numeric(10, 2)))
        try:
            with engine.begin() as c:
                md.create_all(c)  # DESCRIBE first (answered as SHOW COLUMNS), then CREATE TABLE on every shard
                c.execute(sa.text("ALTER VSCHEMA ON sa_items ADD VINDEX hash(id) USING hash"))
            with engine.begin() as c:
                c.execute(items.insert(), [{"id": i, "name": f"it✓{i}", "price": Decimal(i) * 3 / 2}
                                           for i in range(1, 7)])
            with engine.connect() as c:
                got = c.execute(sa.select(items).where(items.c.id.in_([1, 3, 5])).order_by(items.c.id)).all()
                assert [tuple(r) for r in got] == [(1, "it✓1", Decimal("1.50")), (3, "it✓3", Decimal("4.50")),
                                                   (5, "it✓5", Decimal("7.50"))]
                assert c.execute(sa.select(sa.func.count()).select_from(items)).scalar() == 6
                assert sa.inspect(c).has_table("sa_items")
            assert engine.dialect.server_version_info == (8, 0, 31)
        finally:
            with engine.begin() as c:
                md.drop_all(c)
            engine.dispose()

    await asyncio.to_thread(run)


async def test_client_character_set_latin1(router: Router) -> None:
    def run() -> None:
        conn = connect(router, autocommit=True, charset="latin1")
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO customer (id, name) VALUES (%s, %s)", (7001, "café"))
                cur.execute("SELECT name FROM customer WHERE id = 7001")
                assert cur.fetchone() == ("café",)
                cur.execute("SELECT @@character_set_client, @@character_set_results")
                assert cur.fetchone() == ("latin1", "latin1")
                cur.execute("DELETE FROM customer WHERE id = 7001")
        finally:
            conn.close()
        # stored as utf8mb4 on the shard: a utf8mb4 client reads the same text
        assert rows(router, "SELECT COUNT(*) FROM customer WHERE id = 7001") == [(0,)]

    await asyncio.to_thread(run)


async def test_drain_waits_for_open_transactions(mysql_cluster: list[DatabaseServer]) -> None:
    r = await start_router(mysql_cluster)
    try:
        import aiomysql

        idle = await aiomysql.connect(host="127.0.0.1", port=r.port, user="demo", password="demo", db="main",
                                      autocommit=True)
        in_tx = await aiomysql.connect(host="127.0.0.1", port=r.port, user="demo", password="demo", db="main",
                                       autocommit=True)
        async with in_tx.cursor() as cur:
            await cur.execute("BEGIN")
            await cur.execute("SELECT 1")
        drain = asyncio.create_task(r.listener.drain(timeout=10))
        await asyncio.sleep(0.3)
        assert len(r.listener.frontend.connections) == 1  # the idle one is gone, the transaction goes on
        async with in_tx.cursor() as cur:
            await cur.execute("SELECT 2")
            assert await cur.fetchone() == (2,)
            await cur.execute("COMMIT")
        await asyncio.wait_for(drain, 10)
        assert not r.listener.frontend.connections
        idle.close()
        in_tx.close()
    finally:
        await r.gateway.close()
        await asyncio.to_thread(r.drop)


async def test_kill_across_worker_processes(router: Router, tmp_path: Path) -> None:
    """Two listeners as two workers of one router (ids 1, 3, 5… and 2, 4, 6…): a KILL reaches the other one."""
    from router.frontend.mysql.server import start_mysql_listener

    config = router.listener.frontend.config
    workers = [await start_mysql_listener(router.gateway, config, host="127.0.0.1", port=0, worker=i, workers=2,
                                          kill_dir=tmp_path) for i in range(2)]
    try:
        def run() -> None:
            victim = pymysql.connect(host="127.0.0.1", port=workers[0].port, user="demo", password="demo",
                                     database="main", autocommit=True)
            killer = pymysql.connect(host="127.0.0.1", port=workers[1].port, user="demo", password="demo",
                                     database="main", autocommit=True)
            other = pymysql.connect(host="127.0.0.1", port=workers[1].port, user="plain", password="plainpw",
                                    database="main", autocommit=True)
            try:
                assert victim.thread_id() % 2 == 1 and killer.thread_id() % 2 == 0
                with pytest.raises(pymysql.err.OperationalError) as denied, other.cursor() as oc:
                    oc.execute(f"KILL QUERY {victim.thread_id()}")
                assert denied.value.args[0] == 1095
                with killer.cursor() as kc:
                    kc.execute(f"KILL {victim.thread_id()}")
                    with pytest.raises(pymysql.err.OperationalError) as unknown:
                        kc.execute("KILL 999999")
                    assert unknown.value.args[0] == 1094
                with pytest.raises(pymysql.err.OperationalError), victim.cursor() as vc:
                    vc.execute("SELECT 1")
            finally:
                killer.close()
                other.close()

        await asyncio.to_thread(run)
    finally:
        for w in workers:
            await w.drain(timeout=5)
    assert not list(tmp_path.glob("*.sock"))


async def test_silent_clients_are_dropped(router: Router, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from router.frontend.mysql import server

    monkeypatch.setattr(server, "CONNECT_TIMEOUT", 0.3)

    def run() -> bytes:
        with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
            data = s.recv(1024)  # the handshake; then say nothing
            started = time.monotonic()
            while s.recv(1024):
                pass
            assert time.monotonic() - started < 3
            return data

    assert (await asyncio.to_thread(run))[4] == 10  # HandshakeV10, then the router hung up
