"""The sans-I/O state machine, fed bytes: sessions captured from real clients (``captured.py``), hand-made ones,
and broken ones (sequence ids, garbage, oversized and truncated packets)."""
from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.frontend.mysql import protocol as P
from router.frontend.mysql.constants import MAX_PACKET_CHUNK, Capability, Command, FieldType, ServerStatus, WireError
from router.frontend.mysql.packets import (
    AuthSwitchRequest,
    ColumnDefinition,
    ErrPacket,
    HandshakeV10,
    OkPacket,
    SSLRequest,
    StmtPrepareOk,
    frame,
)
from sharding.auth import CACHING_SHA2, MYSQL_NATIVE
from tests.support.mysql_wire import (
    CLIENT_CAPS,
    handshake_response,
    make_user,
    packets,
    query,
    stmt_execute,
    stmt_prepare,
)
from tests.unit.frontend.mysql.captured import FIXED_NONCE, SESSIONS

USERS = {u.name: u for u in (make_user("demo", "demo", [MYSQL_NATIVE]),
                             make_user("sha", "shapw", [CACHING_SHA2]),
                             make_user("nofast", "pw", [CACHING_SHA2], fast_auth=False))}


def new_proto(**settings: Any) -> P.ServerProtocol:
    proto = P.ServerProtocol(7, P.Settings(**settings), USERS.get, nonce=FIXED_NONCE, peer_host="127.0.0.1")
    proto.initiate()
    return proto


def drain(proto: P.ServerProtocol, answer: bool = True) -> list[Any]:
    """Every event; connection-phase ones answered as the glue would, commands answered with OK."""
    events = []
    while (ev := proto.next_event()) is not None:
        events.append(ev)
        if not answer:
            continue
        if isinstance(ev, P.VerifyPassword):
            proto.password_verified(ev.step.run())
        elif isinstance(ev, P.Authenticated):
            proto.accept()
        elif isinstance(ev, P.StmtPrepare):
            proto.send_prepare_ok(1, ev.sql.count(b"?"), [])
        elif isinstance(ev, (P.Query, P.InitDB, P.SimpleCommand, P.StmtReset)):
            proto.send_ok()
        elif isinstance(ev, P.CommandError):
            proto.send_error(ev.errno, "HY000", ev.message)
    return events


def login(proto: P.ServerProtocol, user: str = "demo", password: str = "demo", **kw: Any) -> bytes:
    proto.data_to_send()
    plugin = MYSQL_NATIVE if user == "demo" else CACHING_SHA2
    proto.receive_data(frame(handshake_response(user, password, FIXED_NONCE, plugin=plugin, **kw), 1)[0])
    drain(proto)
    return proto.data_to_send()


def test_handshake_is_honest() -> None:
    proto = P.ServerProtocol(9, P.Settings(), USERS.get, nonce=FIXED_NONCE)
    proto.initiate()
    ((seq, payload),) = packets(proto.data_to_send())
    hs = HandshakeV10.decode(payload)
    assert seq == 0 and hs.connection_id == 9 and hs.auth_data == FIXED_NONCE
    for cap in ("PROTOCOL_41", "SECURE_CONNECTION", "PLUGIN_AUTH", "PLUGIN_AUTH_LENENC_CLIENT_DATA", "CONNECT_WITH_DB",
                "CONNECT_ATTRS", "DEPRECATE_EOF", "TRANSACTIONS", "MULTI_STATEMENTS", "MULTI_RESULTS",
                "PS_MULTI_RESULTS"):
        assert hs.capabilities & Capability[cap], cap
    assert not hs.capabilities & (Capability.SSL | Capability.COMPRESS | Capability.SESSION_TRACK)
    tls = P.ServerProtocol(9, P.Settings(tls_available=True), USERS.get)
    tls.initiate()
    assert HandshakeV10.decode(packets(tls.data_to_send())[0][1]).capabilities & Capability.SSL


def test_captured_pymysql_session() -> None:
    proto = new_proto()
    proto.data_to_send()
    proto.receive_data(SESSIONS["pymysql"])
    events = drain(proto)
    auth = events[0]
    assert isinstance(auth, P.Authenticated) and auth.user_name == "demo" and auth.database == "main"
    assert auth.method == MYSQL_NATIVE and auth.attributes["_client_name"] == "pymysql"
    sqls = [ev.sql.decode() for ev in events if isinstance(ev, P.Query)]
    assert sqls == ["SET NAMES utf8mb4", "SET AUTOCOMMIT = 0", "SELECT @@version_comment LIMIT 1",
                    "SELECT id, s FROM ty WHERE id = 1", "SELECT 1; SELECT 2", "COMMIT"]
    kinds = [type(ev).__name__ for ev in events[1:]]
    assert "InitDB" in kinds and kinds[-1] == "SimpleCommand"
    assert [ev.command for ev in events if isinstance(ev, P.SimpleCommand)] == [Command.PING, Command.QUIT]
    replies = packets(proto.data_to_send())
    assert replies[0] == (2, OkPacket(status=ServerStatus.AUTOCOMMIT).encode())
    assert all(seq == 1 for seq, _ in replies[1:])  # every command's reply starts at 1


def test_captured_connector_prepared_session() -> None:
    proto = new_proto()
    proto.data_to_send()
    proto.receive_data(SESSIONS["connector_prepared"])
    events = drain(proto)
    auth = events[0]
    assert isinstance(auth, P.Authenticated) and auth.user_name == "sha" and auth.method == CACHING_SHA2
    prepares = [ev for ev in events if isinstance(ev, P.StmtPrepare)]
    assert prepares[0].sql == b"SELECT id, s FROM ty WHERE id = ? AND s <> ?"
    executes = [ev for ev in events if isinstance(ev, P.StmtExecute)]
    assert [ev.params for ev in executes] == [[1, "x"], [2, None]]
    assert any(isinstance(ev, P.StmtClose) for ev in events)
    out = proto.data_to_send()
    assert b"\x01\x03" in out or AuthSwitchRequest(CACHING_SHA2, FIXED_NONCE).encode() in out


def test_auth_switch_and_sequence_ids() -> None:
    proto = new_proto()
    proto.data_to_send()
    # the client proposes mysql_native_password; the user has caching_sha2_password
    from tests.support.mysql_wire import sha2_scramble

    proto.receive_data(frame(handshake_response("sha", "shapw", FIXED_NONCE, plugin=MYSQL_NATIVE), 1)[0])
    ((seq, payload),) = packets(proto.data_to_send())
    assert seq == 2 and AuthSwitchRequest.decode(payload) == AuthSwitchRequest(CACHING_SHA2, FIXED_NONCE)
    proto.receive_data(frame(sha2_scramble("shapw", FIXED_NONCE), 3)[0])
    drain(proto)
    assert packets(proto.data_to_send()) == [(4, b"\x01\x03"), (5, OkPacket(status=2).encode())]
    assert proto.phase == P.Phase.COMMAND


def test_wrong_password_and_unknown_user() -> None:
    for user, password in [("demo", "nope"), ("ghost", "x")]:
        proto = new_proto()
        out = login(proto, user, password)
        err = ErrPacket.decode(packets(out)[-1][1])
        assert err.errno == 1045 and err.sqlstate == "28000" and f"'{user}'" in err.message
        assert proto.closed


def test_unknown_database_is_rejected_by_the_glue() -> None:
    proto = new_proto()
    proto.data_to_send()
    proto.receive_data(frame(handshake_response("demo", "demo", FIXED_NONCE, database="nosuch"), 1)[0])
    ev = proto.next_event()
    assert isinstance(ev, P.Authenticated) and ev.database == "nosuch"
    proto.reject(1049, "42000", "Unknown database 'nosuch'")
    assert ErrPacket.decode(packets(proto.data_to_send())[0][1]).errno == 1049
    assert isinstance(proto.next_event(), P.Close)


def test_handshake_sequence_id_checked() -> None:
    proto = new_proto()
    proto.data_to_send()
    proto.receive_data(frame(handshake_response("demo", "demo", FIXED_NONCE), 5)[0])
    assert isinstance(proto.next_event(), P.Close)
    assert ErrPacket.decode(packets(proto.data_to_send())[0][1]).errno == WireError.NET_PACKETS_OUT_OF_ORDER


def test_command_sequence_id_checked() -> None:
    proto = new_proto()
    login(proto)
    proto.receive_data(frame(query("SELECT 1"), 0)[0] + frame(query("SELECT 2"), 3)[0])
    first = proto.next_event()
    assert isinstance(first, P.Query)
    proto.send_ok()
    close = proto.next_event()
    assert isinstance(close, P.Close) and close.error is not None
    assert close.error[0] == WireError.NET_PACKETS_OUT_OF_ORDER
    assert proto.closed


def test_require_tls() -> None:
    proto = new_proto(tls_available=True, require_tls=True)
    out = login(proto)
    assert ErrPacket.decode(packets(out)[-1][1]).errno == WireError.SECURE_TRANSPORT_REQUIRED


def test_ssl_request_hands_over_following_bytes() -> None:
    proto = new_proto(tls_available=True)
    proto.data_to_send()
    hello = b"\x16\x03\x01 pretend ClientHello"
    proto.receive_data(frame(SSLRequest(CLIENT_CAPS | Capability.SSL, 1 << 24, 45).encode(), 1)[0] + hello)
    ev = proto.next_event()
    assert isinstance(ev, P.StartTLS) and ev.leftover == hello
    assert proto.phase == P.Phase.TLS
    proto.tls_started()
    # after TLS the response comes with sequence id 2
    proto.receive_data(frame(handshake_response("demo", "demo", FIXED_NONCE, caps=CLIENT_CAPS | Capability.SSL), 2)[0])
    assert isinstance(proto.next_event(), P.Authenticated)
    assert proto.secure


def test_ssl_request_refused_without_tls() -> None:
    proto = new_proto()
    proto.data_to_send()
    proto.receive_data(frame(SSLRequest(CLIENT_CAPS | Capability.SSL, 1 << 24, 45).encode(), 1)[0])
    assert isinstance(proto.next_event(), P.Close)


def test_sha2_full_auth_over_tls_uses_a_thread_step() -> None:
    proto = new_proto(tls_available=True)
    proto.data_to_send()
    proto.secure = True  # as after tls_started()
    from tests.support.mysql_wire import sha2_scramble

    proto.receive_data(frame(handshake_response("nofast", "pw", FIXED_NONCE, plugin=CACHING_SHA2), 1)[0])
    assert proto.next_event() is None
    ((seq, more),) = packets(proto.data_to_send())
    assert (seq, more) == (2, b"\x01\x04")  # perform_full_authentication
    proto.receive_data(frame(b"pw\0", 3)[0])
    ev = proto.next_event()
    assert isinstance(ev, P.VerifyPassword)
    proto.password_verified(ev.step.run())
    assert isinstance(proto.next_event(), P.Authenticated)
    assert sha2_scramble  # imported for symmetry with the fast path


def test_pipelined_commands_and_reply_sequence() -> None:
    proto = new_proto()
    login(proto)
    proto.receive_data(b"".join(frame(query(f"SELECT {i}"), 0)[0] for i in range(5)))
    for i in range(5):
        ev = proto.next_event()
        assert isinstance(ev, P.Query) and ev.sql == f"SELECT {i}".encode()
        proto.send_columns([ColumnDefinition("x", FieldType.LONGLONG).encode()])
        proto.send_rows([b"\x011"])
        proto.send_end()
    replies = packets(proto.data_to_send())
    assert [seq for seq, _ in replies] == [1, 2, 3, 4] * 5  # count, definition, row, end (DEPRECATE_EOF)


def test_eof_packets_without_deprecate_eof() -> None:
    proto = new_proto()
    login(proto, caps=CLIENT_CAPS & ~Capability.DEPRECATE_EOF)
    proto.receive_data(frame(query("SELECT 1"), 0)[0])
    proto.next_event()
    proto.send_columns([ColumnDefinition("1", FieldType.LONGLONG).encode()])
    proto.send_rows([b"\x011"])
    proto.send_end(more=True)
    replies = packets(proto.data_to_send())
    assert [p[:1] for _, p in replies] == [b"\x01", b"\x03", b"\xfe", b"\x01", b"\xfe"]
    assert replies[-1][1] == b"\xfe\x00\x00" + struct.pack("<H", ServerStatus.AUTOCOMMIT | 8)


def test_split_command_packet_reply_sequence() -> None:
    proto = new_proto(max_allowed_packet=64 << 20)
    login(proto)
    sql = b"SELECT '" + b"x" * (MAX_PACKET_CHUNK + 10) + b"'"
    proto.receive_data(frame(query(sql), 0)[0])
    ev = proto.next_event()
    assert isinstance(ev, P.Query) and ev.sql == sql
    proto.send_ok()
    ((seq, _),) = packets(proto.data_to_send())
    assert seq == 2  # the command took sequence ids 0 and 1


def test_oversized_command_closes_with_1153() -> None:
    proto = new_proto(max_allowed_packet=1000)
    login(proto)
    proto.receive_data(b"\xff\xff\x00\x00" + b"\x03SELECT")
    ev = proto.next_event()
    assert isinstance(ev, P.Close) and ev.error is not None and ev.error[0] == WireError.NET_PACKET_TOO_LARGE


def test_unknown_and_malformed_commands_are_not_fatal() -> None:
    proto = new_proto()
    login(proto)
    proto.receive_data(frame(b"\x99", 0)[0] + frame(b"", 0)[0] + frame(b"\x17\x01", 0)[0] + frame(b"\x0e", 0)[0])
    evs = [proto.next_event() for _ in range(4)]
    assert isinstance(evs[0], P.CommandError) and evs[0].errno == WireError.UNKNOWN_COM
    assert isinstance(evs[1], P.CommandError)
    assert isinstance(evs[2], P.CommandError)
    assert isinstance(evs[3], P.SimpleCommand) and evs[3].command == Command.PING
    assert not proto.closed


def test_execute_params_types_long_data_and_rebinding() -> None:
    proto = new_proto()
    login(proto)
    proto.receive_data(frame(stmt_prepare("SELECT ?, ?, ?"), 0)[0])
    proto.next_event()
    proto.send_prepare_ok(5, 3, [])
    ok = packets(proto.data_to_send())
    assert StmtPrepareOk.decode(ok[0][1]) == StmtPrepareOk(5, 0, 3)
    assert [p[:4] for _, p in ok[1:]] == [b"\x03def"] * 3  # parameter definitions, no EOF (DEPRECATE_EOF)
    long = struct.pack("<BIH", Command.STMT_SEND_LONG_DATA, 5, 2)
    proto.receive_data(frame(long + b"hello ", 0)[0] + frame(long + b"world", 0)[0])
    proto.receive_data(frame(stmt_execute(5, [7, "é", b"placeholder"], long_data=[2]), 0)[0])
    ev = proto.next_event()
    assert isinstance(ev, P.StmtExecute) and ev.params == [7, "é", b"hello world"]
    proto.receive_data(frame(stmt_execute(5, [8, None, b"z"], bind=False), 0)[0])
    ev = proto.next_event()
    assert isinstance(ev, P.StmtExecute) and ev.params == [8, None, b"z"]
    proto.receive_data(frame(stmt_execute(99, []), 0)[0])
    ev = proto.next_event()
    assert isinstance(ev, P.CommandError) and ev.errno == WireError.UNKNOWN_STMT_HANDLER


def test_too_many_pipelined_commands_wait_in_the_decoder() -> None:
    proto = new_proto()
    login(proto)
    proto.receive_data(frame(b"\x0e", 0)[0] * (P.MAX_PENDING_EVENTS * 3))
    assert proto.pending_events == P.MAX_PENDING_EVENTS
    n = 0
    while proto.next_event() is not None:
        n += 1
    assert n == P.MAX_PENDING_EVENTS * 3


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_garbage_never_breaks_the_machine(data: bytes, after_login: bool) -> None:
    proto = new_proto()
    if after_login:
        login(proto)
    proto.receive_data(data)
    drain(proto)  # nothing but events and bytes: no exception
    proto.data_to_send()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(SESSIONS["pymysql"]) - 1), st.integers(0, 255))
def test_mutated_captured_session(pos: int, byte: int) -> None:
    data = bytearray(SESSIONS["pymysql"])
    data[pos] = byte
    proto = new_proto()
    proto.receive_data(bytes(data))
    drain(proto)
    proto.data_to_send()


def test_connection_phase_packets_are_bounded() -> None:
    proto = new_proto()
    proto.receive_data(b"\xff\xff\xff\x01")
    assert isinstance(proto.next_event(), P.Close)
    assert pytest is not None


def test_change_user() -> None:
    from tests.support.mysql_wire import native_scramble

    proto = new_proto()
    login(proto)
    proto.receive_data(frame(stmt_prepare("SELECT ?"), 0)[0])
    proto.next_event()
    proto.send_prepare_ok(1, 1, [])
    proto.data_to_send()
    # the new user's plugin differs from the one the packet names: an auth switch, then OK
    payload = (bytes((Command.CHANGE_USER,)) + b"sha\0" + bytes((20,)) + native_scramble("x", FIXED_NONCE) + b"main\0"
               + struct.pack("<H", 45) + b"mysql_native_password\0")
    proto.receive_data(frame(payload, 0)[0])
    assert proto.next_event() is None
    ((seq, switch),) = packets(proto.data_to_send())
    assert seq == 1 and AuthSwitchRequest.decode(switch).plugin == CACHING_SHA2
    from tests.support.mysql_wire import sha2_scramble

    proto.receive_data(frame(sha2_scramble("shapw", FIXED_NONCE), 2)[0])
    ev = proto.next_event()
    assert isinstance(ev, P.Authenticated) and ev.user_name == "sha" and ev.database == "main"
    proto.accept()
    assert [seq for seq, _ in packets(proto.data_to_send())] == [3, 4]
    proto.receive_data(frame(stmt_execute(1, [1]), 0)[0])
    gone = proto.next_event()  # the statements of the previous login are gone
    assert isinstance(gone, P.CommandError) and gone.errno == WireError.UNKNOWN_STMT_HANDLER
    bad = bytes((Command.CHANGE_USER,)) + b"demo\0" + bytes((20,)) + native_scramble("wrong", FIXED_NONCE) + b"\0"
    proto.receive_data(frame(bad, 0)[0])
    assert isinstance(proto.next_event(), P.Close)
    assert ErrPacket.decode(packets(proto.data_to_send())[-1][1]).errno == 1045
