"""Commands against a recording fake session (no servers): what reaches the session, what is answered here, and
the packets that come back."""
from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from router.backend.result import Column, TypeCode
from router.frontend.mysql import protocol as P
from router.frontend.mysql.commands import CommandRunner
from router.frontend.mysql.constants import Command, ServerStatus
from router.frontend.mysql.packets import ErrPacket, OkPacket, StmtPrepareOk, frame, read_text_row
from sharding.auth import MYSQL_NATIVE
from sharding.errors import SyntaxError_, UnknownTableError
from tests.support.mysql_wire import handshake_response, make_user, packets, query, stmt_execute, stmt_prepare

NONCE = bytes(range(1, 21))
INT = Column(name="n", type=TypeCode.BIGINT, engine="router", backend_type=0, backend_type_name="bigint")


@dataclass
class State:
    keyspace: str | None = "customer"
    target: str | None = None
    tablet_type: str = "primary"
    autocommit: bool = True
    sql_mode: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    characteristics: Any = None
    next_characteristics: Any = None


class Result:
    def __init__(self, columns: tuple[Column, ...], rows: list[tuple[Any, ...]], affected: int = 0) -> None:
        self.columns, self._rows, self.rows_affected, self.last_insert_id = columns, rows, affected, None

    def __aiter__(self) -> AsyncIterator[list[tuple[Any, ...]]]:
        async def gen() -> AsyncIterator[list[tuple[Any, ...]]]:
            if self._rows:
                yield self._rows
        return gen()


class FakeSession:
    """Answers ``SELECT <n>`` with n, ``BOOM`` with a non-shardgate exception, anything else with OK."""

    def __init__(self) -> None:
        self.state = State()
        self.last_warnings: list[str] = []
        self.in_transaction = False
        self.seen: list[tuple[str, Any]] = []

    def view(self) -> Any:
        return type("View", (), {"fingerprint_flags": 0})()

    @contextlib.asynccontextmanager
    async def stream(self, sql: str, params: Sequence[Any] | None = None) -> AsyncIterator[Result]:
        self.seen.append((sql, params))
        self.last_warnings = []
        words = sql.split()
        if sql == "BOOM":
            raise KeyError("a bug")
        if words[0].upper() == "SELEC":
            raise SyntaxError_("syntax error at position 1")
        if "nosuch" in sql:
            raise UnknownTableError("table nosuch not found in keyspace customer")
        if words[0].upper() == "SELECT" and words[1].rstrip(",").isdigit():
            yield Result((INT,), [(int(words[1].rstrip(",")),)])
            return
        if words[0].upper() == "SET":
            self.last_warnings = ["SET x is kept by the router but not applied to the shards' connections"]
        if words[0].upper() == "BEGIN":
            self.in_transaction = True
        yield Result((), [], affected=1)

    async def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        async with self.stream(sql, params):
            pass

    async def close(self) -> None:
        pass


class Gateway:
    def __init__(self) -> None:
        self.sessions: list[FakeSession] = []

    def session(self, *a: Any, **k: Any) -> FakeSession:
        self.sessions.append(FakeSession())
        return self.sessions[-1]


class Host:
    connection_id = 5
    peer_host = "127.0.0.1"
    started = 0.0

    def __init__(self) -> None:
        self.internal = 0

    async def flush(self) -> None:
        pass

    def others(self) -> list[Any]:
        return []

    def find(self, connection_id: int) -> Any:
        return None

    def count_internal_error(self, exc: BaseException | None = None) -> None:
        self.internal += 1

    async def forward_kill(self, kind: str, connection_id: int, user: str, admin: bool) -> str | None:
        return None


@pytest.fixture
def conn() -> tuple[P.ServerProtocol, CommandRunner, Host]:
    users = {"demo": make_user("demo", "demo", [MYSQL_NATIVE]), "plain": make_user("plain", "p", [MYSQL_NATIVE],
                                                                                    roles=())}
    proto = P.ServerProtocol(5, P.Settings(), users.get, nonce=NONCE)
    proto.initiate()
    proto.receive_data(frame(handshake_response("demo", "demo", NONCE), 1)[0])
    proto.next_event()
    proto.accept()
    proto.data_to_send()
    host = Host()
    runner = CommandRunner(proto, Gateway(), host, user="demo", user_is_admin=True, server_version="8.0.31-shardgate",
                           max_allowed_packet=1 << 20, tls=False)
    return proto, runner, host


async def roundtrip(proto: P.ServerProtocol, runner: CommandRunner, payload: bytes) -> list[bytes]:
    proto.receive_data(frame(payload, 0)[0])
    ev = proto.next_event()
    assert ev is not None
    await runner.handle(ev)
    return [p for _, p in packets(proto.data_to_send())]


async def test_local_system_variables(conn: Any) -> None:
    proto, runner, _ = conn
    out = await roundtrip(proto, runner, query("SELECT @@version AS v, DATABASE(), CONNECTION_ID()"))
    assert out[0] == b"\x03"
    assert read_text_row(out[4], 3) == [b"8.0.31-shardgate", b"customer", b"5"]
    assert runner.session.seen == []  # never reached the session


async def test_multi_statement_results_and_stop_at_error(conn: Any) -> None:
    proto, runner, _ = conn
    out = await roundtrip(proto, runner, query("SELECT 1; SELECT 2; SELEC 3; SELECT 4"))
    ends = [p for p in out if p[:1] == b"\xfe"]
    assert [struct.unpack_from("<H", e, 3)[0] & ServerStatus.MORE_RESULTS_EXISTS for e in ends] == [8, 8]
    assert ErrPacket.decode(out[-1]).errno == 1064
    assert [sql for sql, _ in runner.session.seen] == ["SELECT 1", "SELECT 2", "SELEC 3"]


async def test_empty_and_undecodable_queries(conn: Any) -> None:
    proto, runner, _ = conn
    (empty,) = await roundtrip(proto, runner, query("  "))
    assert ErrPacket.decode(empty).errno == 1065
    (bad,) = await roundtrip(proto, runner, query(b"SELECT '\xff\xfe'"))
    assert ErrPacket.decode(bad).errno == 1366


async def test_error_codes_and_internal_errors(conn: Any) -> None:
    proto, runner, host = conn
    (err,) = await roundtrip(proto, runner, query("SELECT * FROM nosuch"))
    assert (ErrPacket.decode(err).errno, ErrPacket.decode(err).sqlstate) == (1146, "42S02")
    (bug,) = await roundtrip(proto, runner, query("BOOM"))
    assert ErrPacket.decode(bug).errno == 1105 and host.internal == 1
    (ok,) = await roundtrip(proto, runner, bytes((Command.PING,)))
    assert ok[:1] == b"\x00"  # the connection goes on


async def test_show_warnings_keeps_the_previous_statements(conn: Any) -> None:
    proto, runner, _ = conn
    (ok,) = await roundtrip(proto, runner, query("SET x = 1"))
    assert OkPacket.decode(ok).warnings == 1
    out = await roundtrip(proto, runner, query("SHOW WARNINGS"))
    assert read_text_row(out[4], 3)[:2] == [b"Warning", b"1105"]
    again = await roundtrip(proto, runner, query("SHOW COUNT(*) WARNINGS"))
    assert read_text_row(again[2], 1) == [b"1"]


async def test_describe_becomes_show_columns(conn: Any) -> None:
    proto, runner, _ = conn
    await roundtrip(proto, runner, query("DESCRIBE `customer`.`t` id"))
    assert runner.session.seen[-1][0] == "SHOW COLUMNS FROM `customer`.`t` LIKE 'id'"


async def test_kill_statements(conn: Any) -> None:
    proto, runner, _ = conn
    (err,) = await roundtrip(proto, runner, query("KILL QUERY 99"))
    assert ErrPacket.decode(err).errno == 1094
    (err,) = await roundtrip(proto, runner, query("KILL me"))
    assert ErrPacket.decode(err).errno == 1064


async def test_vschema_ddl_needs_admin(conn: Any) -> None:
    proto, runner, _ = conn
    runner.user_is_admin = False
    (err,) = await roundtrip(proto, runner, query("ALTER VSCHEMA ON t ADD VINDEX hash(id) USING hash"))
    assert (ErrPacket.decode(err).errno, ErrPacket.decode(err).sqlstate) == (1142, "42000")


async def test_status_flags_follow_the_session(conn: Any) -> None:
    proto, runner, _ = conn
    (ok,) = await roundtrip(proto, runner, query("BEGIN"))
    assert OkPacket.decode(ok).status & ServerStatus.IN_TRANS


async def test_prepare_execute_close(conn: Any) -> None:
    proto, runner, _ = conn
    out = await roundtrip(proto, runner, stmt_prepare("SELECT 7 FROM t WHERE a = ? AND b IN (?, ?)"))
    ok = StmtPrepareOk.decode(out[0])
    assert ok.num_params == 3 and ok.num_columns == 1  # described by running it once with NULL parameters
    assert runner.session.seen[-1] == ("SELECT 7 FROM t WHERE a = ? AND b IN (?, ?)", [None, None, None])
    out = await roundtrip(proto, runner, stmt_execute(ok.statement_id, [1, "x", None]))
    assert out[0] == b"\x01" and out[2][:1] == b"\x00"  # a binary row
    assert runner.session.seen[-1][1] == [1, "x", None]
    (err,) = await roundtrip(proto, runner, stmt_prepare("SELECT 1; SELECT 2"))
    assert ErrPacket.decode(err).errno == 1064
    proto.receive_data(frame(bytes((Command.STMT_CLOSE,)) + struct.pack("<I", ok.statement_id), 0)[0])
    await runner.handle(proto.next_event())
    assert proto.data_to_send() == b""  # no answer to COM_STMT_CLOSE
    (err,) = await roundtrip(proto, runner, stmt_execute(ok.statement_id, [1, "x", None]))
    assert ErrPacket.decode(err).errno == 1243
