"""The command handler against a scripted engine session: simple and extended query flows, portals suspended by a
row limit, the failed-transaction state, reported parameters, cancel. No servers, no sockets."""
from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from router.backend.result import Column, TypeCode
from router.frontend.postgres import messages as M
from router.frontend.postgres.auth import AuthPolicy, parse_hba
from router.frontend.postgres.describe import Describer
from router.frontend.postgres.handler import REPORTED_DEFAULTS, Handler, Metrics
from router.frontend.postgres.protocol import PgProtocol
from sharding.errors import BackendError, SyntaxError_
from tests.unit.frontend.postgres.support import drain

INT8 = Column("id", TypeCode.BIGINT, "postgres", 20, "int8")
TEXT = Column("name", TypeCode.TEXT, "postgres", 25, "text")
ROWS = [(i, f"n{i}") for i in range(1, 8)]


class FakeExecution:
    def __init__(self, columns: tuple[Column, ...], rows: list[Any], affected: int, gate: asyncio.Event | None):
        self.columns = columns
        self._batches = [rows[i:i + 3] for i in range(0, len(rows), 3)] if rows else []
        self.rows_affected = affected
        self.last_insert_id = None
        self.warnings: list[str] = []
        self.has_rows = bool(columns)
        self.gate = gate

    async def __anext__(self) -> list[Any]:
        if self.gate is not None:
            await self.gate.wait()
        if not self._batches:
            raise StopAsyncIteration
        return self._batches.pop(0)


@dataclass
class FakeState:
    keyspace: str | None = "ks"
    target: str | None = None
    user: str = "u"


@dataclass
class FakeSession:
    """Understands a few statements; records what it ran."""

    state: FakeState = field(default_factory=FakeState)
    tx: bool = False
    ran: list[tuple[str, Any]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    open_streams: int = 0  # a shard connection in a transaction runs one statement at a time

    @property
    def in_transaction(self) -> bool:
        return self.tx

    @contextlib.asynccontextmanager
    async def stream(self, sql: str, params: Any = None) -> AsyncIterator[FakeExecution]:
        assert self.open_streams == 0 or not self.tx, "a second statement while one is open in a transaction"
        self.open_streams += 1
        try:
            async with self._stream(sql, params) as ex:
                yield ex
        finally:
            self.open_streams -= 1

    @contextlib.asynccontextmanager
    async def _stream(self, sql: str, params: Any = None) -> AsyncIterator[FakeExecution]:
        self.ran.append((sql, params))
        word = sql.split()[0].upper()
        if word == "BEGIN":
            self.tx = True
            yield FakeExecution((), [], 0, None)
        elif word in ("COMMIT", "ROLLBACK"):
            self.tx = False
            yield FakeExecution((), [], 0, None)
        elif "nosuch" in sql:
            raise BackendError('relation "nosuch" does not exist', pg_sqlstate="42P01")
        elif word == "SELEC":
            raise SyntaxError_("syntax error at position 1", position=1)
        elif word == "UPDATE":
            yield FakeExecution((), [], 3, None)
        elif "sleep" in sql:
            yield FakeExecution((INT8,), [(1,)], 0, self.gate)
        elif params:
            yield FakeExecution((INT8, TEXT), [r for r in ROWS if r[0] == params[0]], 0, None)
        else:
            yield FakeExecution((INT8, TEXT), list(ROWS), 0, None)

    async def execute(self, sql: str, params: Any = None) -> Any:
        async with self.stream(sql, params) as ex:
            return ex


class FakeWire:
    def __init__(self, proto: PgProtocol) -> None:
        self.proto = proto
        self.out = bytearray()
        self.closed = False

    async def next_event(self) -> Any:
        event = self.proto.next_event()
        if event is None:
            self.flush()
        return event

    def flush(self) -> None:
        self.out += self.proto.take_output()

    async def drain(self) -> None:
        self.flush()


class Harness:
    def __init__(self, *, admin: bool = True) -> None:
        self.proto = PgProtocol(AuthPolicy((), parse_hba("host all all all trust")))
        self.proto.feed(M.fe_startup({"user": "u", "database": "ks"}))
        drain(self.proto)
        self.proto.take_output()
        self.session = FakeSession()
        self.wire = FakeWire(self.proto)
        self.handler = Handler(self.proto, self.wire, gateway=None, session=self.session,
                               describer=Describer(None), metrics=Metrics(), reported=dict(REPORTED_DEFAULTS),
                               is_admin=admin)

    async def send(self, *messages: bytes) -> list[tuple[str, bytes]]:
        self.proto.feed(b"".join(messages))
        while (event := self.proto.next_event()) is not None and event is not M.TERMINATE:
            await self.handler.dispatch(event)
        self.wire.flush()
        out, self.wire.out = bytes(self.wire.out), bytearray()
        return M.read_backend(out)


def kinds(replies: list[tuple[str, bytes]]) -> str:
    return "".join(k for k, _ in replies)


def tag(replies: list[tuple[str, bytes]], n: int = 0) -> str:
    return [b for k, b in replies if k == "C"][n].rstrip(b"\0").decode()


def error(replies: list[tuple[str, bytes]], n: int = 0) -> dict[str, str]:
    return M.error_fields([b for k, b in replies if k == "E"][n])


def status(replies: list[tuple[str, bytes]]) -> str:
    return [b for k, b in replies if k == "Z"][-1].decode()


def rows(replies: list[tuple[str, bytes]]) -> list[list[bytes | None]]:
    out = []
    for k, body in replies:
        if k != "D":
            continue
        n = struct.unpack_from("!h", body)[0]
        pos, cells = 2, []
        for _ in range(n):
            size = struct.unpack_from("!i", body, pos)[0]
            pos += 4
            cells.append(None if size < 0 else body[pos:pos + size])
            pos += max(size, 0)
        out.append(cells)
    return out


# --- simple query --------------------------------------------------------------------------------------------
async def test_simple_query_rows_and_tag() -> None:
    h = Harness()
    r = await h.send(M.fe_query("SELECT id, name FROM t"))
    assert kinds(r) == "T" + "D" * 7 + "CZ"
    assert tag(r) == "SELECT 7" and status(r) == "I"
    assert rows(r)[0] == [b"1", b"n1"]


async def test_multi_statement_query_stops_at_the_first_error() -> None:
    h = Harness()
    r = await h.send(M.fe_query("UPDATE t SET a = 1; SELECT * FROM nosuch; SELECT 1"))
    assert kinds(r) == "CEZ"
    assert tag(r) == "UPDATE 3" and error(r)["C"] == "42P01"
    assert len(h.session.ran) == 2


async def test_empty_queries_and_syntax_positions() -> None:
    h = Harness()
    assert kinds(await h.send(M.fe_query(""))) == "IZ"
    assert kinds(await h.send(M.fe_query(" -- nothing\n"))) == "IZ"
    r = await h.send(M.fe_query("SELECT 1; SELEC 2"))
    assert error(r)["C"] == "42601" and error(r)["P"] == "11"  # the position counts from the whole text
    r = await h.send(M.fe_query("SELECT 'unterminated; SELECT 2"))
    assert error(r)["C"] == "42601" and kinds(r) == "EZ"


async def test_failed_transaction_state() -> None:
    h = Harness()
    r = await h.send(M.fe_query("BEGIN"), M.fe_query("SELECT * FROM nosuch"), M.fe_query("SELECT 1"))
    assert kinds(r) == "CZEZEZ"
    assert [b for k, b in r if k == "Z"] == [b"T", b"E", b"E"]
    assert error(r, 1)["C"] == "25P02"
    r = await h.send(M.fe_query("COMMIT"))  # COMMIT of a failed transaction rolls it back
    assert tag(r) == "ROLLBACK" and status(r) == "I"
    assert h.session.ran[-1][0] == "ROLLBACK"


async def test_reported_parameters() -> None:
    h = Harness()
    r = await h.send(M.fe_query("SET application_name = 'billing'"))
    assert kinds(r) == "SCZ" and r[0][1] == b"application_name\0billing\0"
    r = await h.send(M.fe_query("SHOW application_name"))
    assert rows(r) == [[b"billing"]] and tag(r) == "SHOW"
    r = await h.send(M.fe_query("SET TIME ZONE 'Europe/Paris'"), M.fe_query("show timezone"))
    assert rows(r) == [[b"Europe/Paris"]]
    r = await h.send(M.fe_query("SET client_encoding = 'LATIN1'"))
    assert error(r)["C"] == "0A000"
    r = await h.send(M.fe_query("RESET application_name"))
    assert kinds(r) == "SCZ" and r[0][1] == b"application_name\0\0"
    assert h.session.ran == []  # all answered by the frontend


async def test_vschema_ddl_needs_the_admin_role() -> None:
    h = Harness(admin=False)
    r = await h.send(M.fe_query("ALTER VSCHEMA ON t ADD VINDEX hash(id) USING hash"))
    assert error(r)["C"] == "42501"


# --- extended query ------------------------------------------------------------------------------------------
async def test_extended_flow_with_row_limit_and_binary_results() -> None:
    h = Harness()
    r = await h.send(M.fe_parse("s", "SELECT id, name FROM t", []), M.fe_bind("p", "s", result_formats=[1, 0]),
                     M.fe_describe("P", "p"), M.fe_execute("p", 3), M.fe_execute("p", 3), M.fe_flush())
    assert kinds(r) == "12T" + "DDDs" + "DDDs"
    assert rows(r)[0] == [struct.pack("!q", 1), b"n1"]
    r = await h.send(M.fe_execute("p", 3), M.fe_sync())
    assert kinds(r) == "DCZ" and tag(r) == "SELECT 7"


async def test_extended_execute_without_describe_and_bind_parameters() -> None:
    h = Harness()
    r = await h.send(M.fe_parse("", "SELECT id, name FROM t WHERE id = $1", [20]),
                     M.fe_bind("", "", [struct.pack("!q", 4)], [1]), M.fe_execute("", 0), M.fe_sync())
    assert kinds(r) == "12DCZ" and rows(r) == [[b"4", b"n4"]]
    assert h.session.ran[-1][1] == [4]
    r = await h.send(M.fe_bind("", "", [b"5"]), M.fe_execute("", 0), M.fe_sync())  # the unnamed one again
    assert rows(r) == [[b"5", b"n5"]]


async def test_errors_skip_to_sync() -> None:
    h = Harness()
    r = await h.send(M.fe_bind("", "missing"), M.fe_execute("", 0), M.fe_sync(), M.fe_query("SELECT 1"))
    assert kinds(r) == "EZ" + "T" + "D" * 7 + "CZ"
    assert error(r)["C"] == "26000"
    r = await h.send(M.fe_parse("x", "SELECT $1::int", [23]), M.fe_parse("x", "SELECT 2", []), M.fe_sync())
    assert kinds(r) == "1EZ" and error(r)["C"] == "42P05"
    r = await h.send(M.fe_bind("", "x", [b"1", b"2"]), M.fe_sync())
    assert error(r)["C"] == "08P01" and "supplies 2 parameters" in error(r)["M"]
    r = await h.send(M.fe_bind("", "x", [b"abc"]), M.fe_sync())
    assert error(r)["C"] == "22P02"
    r = await h.send(M.fe_execute("nope", 0), M.fe_sync())
    assert error(r)["C"] == "34000"
    r = await h.send(M.fe_parse("y", "SELECT 1; SELECT 2", []), M.fe_sync())
    assert error(r)["C"] == "42601"


async def test_close_and_deallocate() -> None:
    h = Harness()
    r = await h.send(M.fe_parse("a", "SELECT 1", []), M.fe_parse("b", "SELECT 2", []), M.fe_close("S", "a"),
                     M.fe_close("S", "never"), M.fe_sync())
    assert kinds(r) == "1133Z"
    r = await h.send(M.fe_query("DEALLOCATE b"), M.fe_query("DEALLOCATE b"))
    assert tag(r) == "DEALLOCATE" and error(r)["C"] == "26000"
    r = await h.send(M.fe_parse("a", "SELECT 1", []), M.fe_query("DISCARD ALL"), M.fe_bind("", "a"), M.fe_sync())
    assert tag(r) == "DISCARD ALL" and error(r)["C"] == "26000"


async def test_describe_of_local_statements_needs_no_shard() -> None:
    h = Harness()
    r = await h.send(M.fe_parse("s", "SHOW TimeZone", []), M.fe_describe("S", "s"),
                     M.fe_parse("b", "BEGIN", []), M.fe_describe("S", "b"), M.fe_sync())
    assert kinds(r) == "1tT1tnZ"


async def test_empty_prepared_statement() -> None:
    h = Harness()
    r = await h.send(M.fe_parse("", "", []), M.fe_bind("", ""), M.fe_describe("P", ""), M.fe_execute("", 0),
                     M.fe_sync())
    assert kinds(r) == "12nIZ"


async def test_portals_close_at_sync_outside_transactions() -> None:
    h = Harness()
    await h.send(M.fe_parse("s", "SELECT id, name FROM t", []), M.fe_bind("p", "s"), M.fe_execute("p", 2),
                 M.fe_sync())
    r = await h.send(M.fe_execute("p", 2), M.fe_sync())
    assert error(r)["C"] == "34000"
    await h.send(M.fe_query("BEGIN"))
    await h.send(M.fe_bind("p", "s"), M.fe_execute("p", 2), M.fe_sync())
    r = await h.send(M.fe_bind("q", "s"), M.fe_execute("q", 0), M.fe_execute("p", 0), M.fe_sync())
    # portal p was suspended while q ran: its rows were kept, and it completes afterwards
    assert tag(r, 0) == "SELECT 7" and tag(r, 1) == "SELECT 7" and status(r) == "T"


async def test_a_suspended_portal_is_read_out_before_the_session_runs_anything_else() -> None:
    h = Harness()
    await h.send(M.fe_query("BEGIN"), M.fe_parse("s", "SELECT id, name FROM t", []), M.fe_bind("p", "s"),
                 M.fe_execute("p", 2), M.fe_sync())
    r = await h.send(M.fe_query("SELECT id, name FROM t"), M.fe_execute("p", 0), M.fe_sync(),
                     M.fe_query("COMMIT"))
    assert tag(r, 0) == "SELECT 7" and tag(r, 1) == "SELECT 7" and tag(r, 2) == "COMMIT"
    assert len(rows(r)) == 7 + 5


# --- cancel --------------------------------------------------------------------------------------------------
async def test_cancel_stops_a_running_statement() -> None:
    h = Harness()
    h.session.gate = asyncio.Event()
    h.proto.feed(M.fe_query("SELECT sleep"))
    task = asyncio.ensure_future(h.handler.dispatch(h.proto.next_event()))
    h.handler.task = task
    await asyncio.sleep(0.05)
    assert h.handler.busy
    assert h.handler.cancel()
    await asyncio.wait_for(task, 2)
    h.wire.flush()
    r = M.read_backend(bytes(h.wire.out))
    assert error(r)["C"] == "57014" and status(r) == "I"
    assert not h.handler.cancel()  # idle: a cancel request does nothing
