"""The server side of the MySQL protocol as a state machine that never touches a socket (asyncpg's ``CoreProtocol``).

Bytes go in (``receive_data``), events come out (``next_event``), and the replies the caller asks for
(``send_ok``, ``send_columns`` …) pile up as bytes for ``data_to_send``. The caller owns the socket, TLS, threads
and the gateway session.

Connection phase: ``initiate`` queues the HandshakeV10; the client answers with an SSLRequest (event ``StartTLS``:
the caller wraps the connection in TLS, feeds the bytes that followed, and calls ``tls_started``) or a
HandshakeResponse41. ``MysqlAuthenticator`` runs the plugin exchange; a clear-text password to check becomes a
``VerifyPassword`` event (answered with ``password_verified``); success becomes ``Authenticated`` (the caller selects
the database, then ``accept`` sends OK or ``reject`` sends ERR). Sequence ids are checked throughout.

Command phase: each client packet must start a command with sequence id 0; it becomes one event, in order. A reply
starts at sequence id 1 and continues across the result sets of a multi-statement. A packet that cannot be read
as its command is answered with ERR (``CommandError``) and the connection lives; broken framing (sequence ids,
oversized packets) ends it (``Close`` after the ERR).
"""
from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from router.frontend.mysql import auth
from router.frontend.mysql.binary import decode_params
from router.frontend.mysql.columns import ClientCharset
from router.frontend.mysql.constants import (
    SERVER_CAPABILITIES,
    WIRE_SQLSTATE,
    Capability,
    Command,
    CursorType,
    FieldType,
    ServerStatus,
    WireError,
)
from router.frontend.mysql.packets import (
    ColumnDefinition,
    EofPacket,
    ErrPacket,
    HandshakeResponse41,
    HandshakeV10,
    OkPacket,
    PacketDecoder,
    PacketError,
    Reader,
    SSLRequest,
    StmtPrepareOk,
    frame,
    frame_many,
    lenenc_int,
)
from sharding.auth import mysql_nonce
from sharding.config_model import UserConfig

__all__ = ["Phase", "ServerProtocol", "Settings"]

# Plain ints on the hot path: IntFlag arithmetic costs a microsecond per operation.
_DEPRECATE_EOF = int(Capability.DEPRECATE_EOF)
_MULTI_STATEMENTS = int(Capability.MULTI_STATEMENTS)
_MORE_RESULTS = int(ServerStatus.MORE_RESULTS_EXISTS)
_CURSOR_EXISTS = int(ServerStatus.CURSOR_EXISTS)
_CURSOR_FLAGS = int(CursorType.READ_ONLY | CursorType.FOR_UPDATE | CursorType.SCROLLABLE)
_U16x2 = struct.Struct("<HH")
_EXECUTE_HEAD = struct.Struct("<IBI")

CONNECTION_PHASE_MAX = 1 << 16  # a handshake response or auth packet larger than this is garbage
MAX_PENDING_EVENTS = 256  # pipelined commands decoded ahead; the rest waits in the decoder (bounded by reading)


class Phase(IntEnum):
    INIT = 0
    HANDSHAKE = 1  # waiting for HandshakeResponse41 / SSLRequest
    TLS = 2  # the caller is starting TLS
    AUTH = 3  # waiting for the client's next auth packet
    VERIFYING = 4  # the caller is checking a password
    ACCEPTING = 5  # the caller is selecting the database
    COMMAND = 6
    CLOSED = 7


@dataclass(frozen=True, slots=True)
class Settings:
    server_version: str = "8.0.31-shardgate"
    tls_available: bool = False
    require_tls: bool = False
    default_auth_plugin: str = "mysql_native_password"
    max_allowed_packet: int = 64 << 20
    charset: int = 45  # utf8mb4_general_ci


# --- events ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StartTLS:
    leftover: bytes  # bytes that followed the SSLRequest: the start of the TLS handshake


@dataclass(frozen=True, slots=True)
class VerifyPassword:
    step: auth.Verify


@dataclass(frozen=True, slots=True)
class Authenticated:
    user: UserConfig
    user_name: str
    database: str | None
    attributes: dict[str, str]
    capabilities: int
    charset: ClientCharset
    method: str


@dataclass(frozen=True, slots=True)
class Close:
    """Flush, then close. ``error`` (command phase): send it first (``send_error``), after earlier replies."""

    reason: str
    error: tuple[int, str, str] | None = None


@dataclass(frozen=True, slots=True)
class CommandError:
    """A command that cannot be read: answer with this ERR (``send_error``) and go on."""

    errno: int
    message: str
    command: int = -1


@dataclass(frozen=True, slots=True)
class Query:
    sql: bytes


@dataclass(frozen=True, slots=True)
class InitDB:
    schema: bytes


@dataclass(frozen=True, slots=True)
class SimpleCommand:
    """COM_PING, COM_QUIT, COM_STATISTICS, COM_RESET_CONNECTION, COM_DEBUG."""

    command: int


@dataclass(frozen=True, slots=True)
class FieldList:
    table: bytes
    wildcard: bytes


@dataclass(frozen=True, slots=True)
class SetOption:
    option: int  # 0: multi-statements on, 1: off


@dataclass(frozen=True, slots=True)
class ProcessKill:
    connection_id: int


@dataclass(frozen=True, slots=True)
class StmtPrepare:
    sql: bytes


@dataclass(frozen=True, slots=True)
class StmtExecute:
    statement_id: int
    flags: int
    params: list[Any]


@dataclass(frozen=True, slots=True)
class StmtFetch:
    statement_id: int
    rows: int


@dataclass(frozen=True, slots=True)
class StmtClose:
    statement_id: int


@dataclass(frozen=True, slots=True)
class StmtReset:
    statement_id: int


Event = (StartTLS | VerifyPassword | Authenticated | Close | CommandError | Query | InitDB | SimpleCommand
         | FieldList | SetOption | ProcessKill | StmtPrepare | StmtExecute | StmtFetch | StmtClose | StmtReset)


@dataclass(frozen=True, slots=True)
class _Deferred:
    payload: bytes


@dataclass(slots=True)
class _Statement:
    num_params: int
    types: list[tuple[int, bool]] | None = None
    long_data: dict[int, bytes] = field(default_factory=dict)
    long_data_size: int = 0


# --- the machine -------------------------------------------------------------------------------------------------
class ServerProtocol:
    """One client connection's protocol state (see the module docstring)."""

    def __init__(self, connection_id: int, settings: Settings, lookup: Callable[[str], UserConfig | None], *,
                 rsa: auth.RsaKeyPair | None = None, fast_cache: dict[tuple[str, str], bytes] | None = None,
                 peer_host: str = "", nonce: bytes | None = None) -> None:
        self.connection_id = connection_id
        self.settings = settings
        self.phase = Phase.INIT
        self.capabilities = 0  # the client's, masked by ours
        self.charset = ClientCharset()
        self.status = int(ServerStatus.AUTOCOMMIT)  # the caller keeps IN_TRANS / AUTOCOMMIT up to date
        self.secure = False
        self.packets_in = 0  # logical packets read (the fuzz test's denominator)
        self.commands_in = 0  # of which reached command dispatch
        self._lookup = lookup
        self._rsa = rsa
        self._fast_cache = fast_cache
        self._peer_host = peer_host
        self._nonce = nonce or mysql_nonce()
        self._decoder = PacketDecoder(CONNECTION_PHASE_MAX)
        self._out: list[bytes] = []
        self._events: deque[tuple[Event | _Deferred, int]] = deque()  # (event, first reply sequence id or -1)
        self._seq = 0  # the next sequence id we send
        self._expect_seq = 0  # the sequence id the client's next packet must carry
        self._auth: auth.MysqlAuthenticator | None = None
        self._response: HandshakeResponse41 | None = None
        self._done: auth.Done | None = None
        self._statements: dict[int, _Statement] = {}
        self.server_capabilities = int(SERVER_CAPABILITIES | (Capability.SSL if settings.tls_available else 0))

    # --- I/O surface ----------------------------------------------------------------------------------------------
    def initiate(self) -> None:
        """Queue the HandshakeV10."""
        hs = HandshakeV10(self.connection_id, self.settings.server_version, self._nonce, self.server_capabilities,
                          self.settings.charset, self.status, self.settings.default_auth_plugin)
        self._send(hs.encode())
        self.phase = Phase.HANDSHAKE
        self._expect_seq = self._seq

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client (already decrypted when TLS is on)."""
        if self.phase == Phase.CLOSED:
            return
        self._decoder.feed(data)
        self._pump()

    def next_event(self) -> Event | None:
        while self._events:
            item, reply_seq = self._events.popleft()
            if self._decoder.buffered and self.phase == Phase.COMMAND and len(self._events) < MAX_PENDING_EVENTS // 2:
                self._pump()
            ev: Event | None
            if isinstance(item, _Deferred):
                # Statement commands read the statement registry as it is when their turn comes (a pipelined
                # execute follows the prepare it names).
                try:
                    ev = self._statement_command(item.payload, reply_seq)
                except PacketError as exc:
                    ev = CommandError(exc.errno, exc.message, item.payload[0])
                if ev is None:
                    continue
            else:
                ev = item
            if reply_seq >= 0:
                self._seq = reply_seq
            return ev
        return None

    @property
    def pending_events(self) -> int:
        return len(self._events)

    @property
    def buffered(self) -> int:
        return self._decoder.buffered

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def take_unread(self) -> bytes:
        """Input not read yet (after an SSLRequest: the start of the TLS handshake)."""
        return self._decoder.take_rest()

    @property
    def closed(self) -> bool:
        return self.phase == Phase.CLOSED

    @property
    def deprecate_eof(self) -> bool:
        return bool(self.capabilities & _DEPRECATE_EOF)

    @property
    def multi_statements(self) -> bool:
        return bool(self.capabilities & _MULTI_STATEMENTS)

    @multi_statements.setter
    def multi_statements(self, on: bool) -> None:
        if on:
            self.capabilities |= _MULTI_STATEMENTS
        else:
            self.capabilities &= ~_MULTI_STATEMENTS

    # --- connection phase: answers from the caller ---------------------------------------------------------------
    def tls_started(self) -> None:
        if self.phase != Phase.TLS:
            return
        self.secure = True
        self.phase = Phase.HANDSHAKE
        self._pump()

    def password_verified(self, ok: bool) -> None:
        if self.phase != Phase.VERIFYING or self._auth is None:
            return
        self._auth_step(self._auth.verified(ok))
        self._pump()

    def accept(self) -> None:
        """The database is selected: send OK, and read commands from now on."""
        if self.phase != Phase.ACCEPTING or self._done is None:
            return
        for packet in self._done.before_ok:
            self._send(packet)
        self._send(OkPacket(status=self.status).encode())
        self._done = None
        self._auth = None
        self.phase = Phase.COMMAND
        self._decoder = _replace_limit(self._decoder, self.settings.max_allowed_packet)
        self._pump()

    def reject(self, errno: int, sqlstate: str, message: str) -> None:
        self._fatal(errno, message, sqlstate)

    # --- command phase: replies -------------------------------------------------------------------------------------
    def send_ok(self, affected_rows: int = 0, last_insert_id: int = 0, warnings: int = 0, info: bytes = b"",
                *, more: bool = False) -> None:
        status = self.status | _MORE_RESULTS if more else self.status
        if affected_rows < 251 and last_insert_id < 251 and not info:
            self._send(bytes((0, affected_rows, last_insert_id)) + _U16x2.pack(status, min(warnings, 0xFFFF)))
        else:
            self._send(OkPacket(affected_rows, last_insert_id, status, warnings, info).encode())

    def send_error(self, errno: int, sqlstate: str, message: str) -> None:
        self._send(ErrPacket(errno, sqlstate, message[:8000]).encode())

    def send_end(self, warnings: int = 0, *, more: bool = False, extra_status: int = 0) -> None:
        """The end of a result set (EOF, or OK with the EOF header under CLIENT_DEPRECATE_EOF)."""
        status = self.status | extra_status | (_MORE_RESULTS if more else 0)
        warnings = min(warnings, 0xFFFF)
        if self.capabilities & _DEPRECATE_EOF:
            self._send(b"\xfe\x00\x00" + _U16x2.pack(status, warnings))
        else:
            self._send(b"\xfe" + _U16x2.pack(warnings, status))

    def send_columns(self, definitions: Sequence[bytes], *, cursor: bool = False) -> None:
        """Column count and definitions of a result set (+ EOF without CLIENT_DEPRECATE_EOF, or for a cursor)."""
        data, self._seq = frame_many([lenenc_int(len(definitions)), *definitions], self._seq)
        self._out.append(data)
        if cursor:
            self._send(b"\xfe\x00\x00" + struct.pack("<H", self.status | _CURSOR_EXISTS))
        elif not self.capabilities & _DEPRECATE_EOF:
            self._send(b"\xfe\x00\x00" + struct.pack("<H", self.status))

    def send_rows(self, payloads: Sequence[bytes]) -> None:
        if payloads:
            data, self._seq = frame_many(payloads, self._seq)
            self._out.append(data)

    def send_raw(self, payload: bytes) -> None:
        self._send(payload)

    def send_prepare_ok(self, statement_id: int, num_params: int, columns: Sequence[bytes], warnings: int = 0
                        ) -> None:
        self._statements[statement_id] = _Statement(num_params)
        self._send(StmtPrepareOk(statement_id, len(columns), num_params, warnings).encode())
        if num_params:
            param = ColumnDefinition("?", FieldType.VAR_STRING, 63, 0, 0, 0).encode()
            self.send_rows([param] * num_params)
            if not self.deprecate_eof:
                self._send(EofPacket(0, self.status).encode())
        if columns:
            self.send_rows(columns)
            if not self.deprecate_eof:
                self._send(EofPacket(0, self.status).encode())

    def forget_statement(self, statement_id: int) -> None:
        self._statements.pop(statement_id, None)

    def forget_statements(self) -> None:
        self._statements.clear()

    # --- internals ------------------------------------------------------------------------------------------------
    def _send(self, payload: bytes) -> None:
        data, self._seq = frame(payload, self._seq)
        self._out.append(data)

    def _fatal(self, errno: int, message: str, sqlstate: str | None = None) -> None:
        """ERR now, then close: for the connection phase and broken framing."""
        if self.phase == Phase.CLOSED:
            return
        state = sqlstate or WIRE_SQLSTATE.get(errno, "HY000")
        if self.phase == Phase.COMMAND:  # earlier commands are answered first
            self._events.append((Close(message, (errno, state, message)), -1))
        else:
            self._send(ErrPacket(errno, state, message).encode())
            self._events.append((Close(message), -1))
        self.phase = Phase.CLOSED

    def _pump(self) -> None:
        while self.phase in (Phase.HANDSHAKE, Phase.AUTH, Phase.COMMAND):
            if len(self._events) >= MAX_PENDING_EVENTS:
                return
            try:
                packet = self._decoder.next_packet()
            except PacketError as exc:
                self._fatal(exc.errno, exc.message)
                return
            if packet is None:
                return
            self.packets_in += 1
            first, last, payload = packet
            if self.phase == Phase.COMMAND:
                if first != 0:
                    self._fatal(WireError.NET_PACKETS_OUT_OF_ORDER,
                                f"Got packets out of order (a command with sequence id {first}, expected 0)")
                    return
                self._command((last + 1) & 0xFF, payload)
                continue
            if first != self._expect_seq:
                self._fatal(WireError.NET_PACKETS_OUT_OF_ORDER,
                            f"Got packets out of order (sequence id {first}, expected {self._expect_seq})")
                return
            self._seq = self._expect_seq = (last + 1) & 0xFF
            try:
                if self.phase == Phase.HANDSHAKE:
                    self._handshake_response(payload)
                else:
                    assert self._auth is not None
                    self._auth_step(self._auth.next(payload))
            except PacketError as exc:
                self._fatal(WireError.HANDSHAKE if exc.errno == WireError.MALFORMED_PACKET else exc.errno,
                            f"Bad handshake: {exc.message}")
                return

    def _handshake_response(self, payload: bytes) -> None:
        response = HandshakeResponse41.decode(payload)
        if isinstance(response, SSLRequest):
            if not self.settings.tls_available or self.secure:
                raise PacketError("TLS is not available on this listener", WireError.HANDSHAKE)
            self.capabilities = response.capabilities & self.server_capabilities
            self.phase = Phase.TLS
            self._events.append((StartTLS(self._decoder.take_rest()), -1))
            return
        if self.settings.require_tls and not self.secure:
            self._fatal(WireError.SECURE_TRANSPORT_REQUIRED,
                        "Connections using insecure transport are prohibited while --require_secure_transport=ON.")
            return
        self.capabilities = response.capabilities & self.server_capabilities
        self.charset = ClientCharset.from_id(response.charset)
        self._response = response
        user = response.user.decode("utf-8", "replace")
        self._auth = auth.MysqlAuthenticator(self._lookup, self._nonce, secure=self.secure, rsa=self._rsa,
                                             fast_cache=self._fast_cache, host=self._peer_host)
        self._auth_step(self._auth.begin(user, response.auth_plugin if response.capabilities & Capability.PLUGIN_AUTH
                                         else None, response.auth_response,
                                         plugin_auth=bool(response.capabilities & Capability.PLUGIN_AUTH)))

    def _auth_step(self, step: auth.Step) -> None:
        if isinstance(step, auth.Send):
            self._send(step.payload)
            self._expect_seq = self._seq
            self.phase = Phase.AUTH
        elif isinstance(step, auth.Verify):
            self.phase = Phase.VERIFYING
            self._events.append((VerifyPassword(step), -1))
        elif isinstance(step, auth.Done):
            r = self._response
            assert r is not None
            self._done = step
            self.phase = Phase.ACCEPTING
            database = r.database.decode("utf-8", "replace") if r.database else None
            self._events.append((Authenticated(step.user, r.user.decode("utf-8", "replace"), database,
                                               r.attributes, self.capabilities, self.charset, step.method), -1))
        else:
            self._fatal(WireError.ACCESS_DENIED, step.message)

    def _command(self, reply_seq: int, payload: bytes) -> None:
        self.commands_in += 1
        if not payload:
            self._events.append((CommandError(WireError.MALFORMED_PACKET, "Malformed communication packet."),
                                 reply_seq))
            return
        cmd = payload[0]
        try:
            ev = self._decode_command(cmd, payload)
        except PacketError as exc:
            if exc.fatal:
                self._fatal(exc.errno, exc.message)
                return
            ev = CommandError(exc.errno, exc.message, cmd)
        if ev is not None:
            self._events.append((ev, reply_seq))

    def _decode_command(self, cmd: int, payload: bytes) -> Event | _Deferred | None:
        if cmd == Command.QUERY:
            return Query(payload[1:])
        if cmd in (Command.STMT_EXECUTE, Command.STMT_SEND_LONG_DATA, Command.STMT_CLOSE, Command.STMT_RESET):
            if len(payload) < 5:
                raise PacketError("malformed packet: no statement id", fatal=False)
            return _Deferred(payload)
        if cmd == Command.CHANGE_USER:
            return _Deferred(payload)
        if cmd in (Command.PING, Command.QUIT, Command.STATISTICS, Command.RESET_CONNECTION, Command.DEBUG):
            return SimpleCommand(cmd)
        if cmd == Command.INIT_DB:
            return InitDB(payload[1:])
        if cmd == Command.STMT_PREPARE:
            return StmtPrepare(payload[1:])
        if cmd == Command.STMT_FETCH:
            r = Reader(payload, 1)
            return StmtFetch(r.u32("statement id"), r.u32("row count"))
        if cmd == Command.FIELD_LIST:
            r = Reader(payload, 1)
            return FieldList(r.nul_bytes("table", eof_ok=True), r.rest())
        if cmd == Command.SET_OPTION:
            return SetOption(Reader(payload, 1).u16("option"))
        if cmd == Command.PROCESS_KILL:
            return ProcessKill(Reader(payload, 1).u32("connection id"))
        return CommandError(WireError.UNKNOWN_COM, "Unknown command", cmd)

    def _statement_command(self, payload: bytes, reply_seq: int) -> Event | None:
        cmd = payload[0]
        if cmd == Command.CHANGE_USER:
            self._change_user(payload, reply_seq)
            return None
        if cmd == Command.STMT_EXECUTE:
            return self._execute(payload)
        if cmd == Command.STMT_SEND_LONG_DATA:
            self._long_data(payload)
            return None
        stmt_id = Reader(payload, 1).u32("statement id")
        if cmd == Command.STMT_CLOSE:
            self._statements.pop(stmt_id, None)
            return StmtClose(stmt_id)
        st = self._statements.get(stmt_id)  # COM_STMT_RESET
        if st is not None:
            st.long_data.clear()
            st.long_data_size = 0
        return StmtReset(stmt_id)

    def _change_user(self, payload: bytes, reply_seq: int) -> None:
        """COM_CHANGE_USER: log in again on this connection (answered like a handshake response; a refusal ends
        the connection, as in MySQL). Prepared statements are gone either way."""
        caps = self.capabilities
        r = Reader(payload, 1)
        user = r.nul_bytes("user name", eof_ok=True)
        if caps & Capability.SECURE_CONNECTION:
            response = r.fixed(r.u8("auth response length"), "auth response")
        else:
            response = r.nul_bytes("auth response", eof_ok=True)
        database = r.nul_bytes("database", eof_ok=True) if r.remaining else b""
        charset = r.u16("character set") if r.remaining >= 2 else 0
        plugin = r.nul_bytes("auth plugin name", eof_ok=True).decode("ascii", "replace") \
            if caps & Capability.PLUGIN_AUTH and r.remaining else None
        if charset:
            self.charset = ClientCharset.from_id(charset)
        self._response = HandshakeResponse41(caps, 0, charset or self.charset.collation_id, user, response,
                                             database or None, plugin)
        self._statements.clear()
        self._seq = reply_seq
        self.phase = Phase.AUTH
        self._auth = auth.MysqlAuthenticator(self._lookup, self._nonce, secure=self.secure, rsa=self._rsa,
                                             fast_cache=self._fast_cache, host=self._peer_host)
        self._auth_step(self._auth.begin(user.decode("utf-8", "replace"), plugin, response,
                                         plugin_auth=bool(caps & Capability.PLUGIN_AUTH)))

    def _long_data(self, payload: bytes) -> None:
        r = Reader(payload, 1)
        stmt_id = r.u32("statement id")
        param = r.u16("parameter id")
        st = self._statements.get(stmt_id)
        if st is None or param >= st.num_params:
            return  # no reply to this command: errors show at execute (as MySQL)
        data = r.rest()
        st.long_data_size += len(data)
        if st.long_data_size > self.settings.max_allowed_packet:
            st.long_data[param] = b""
            st.long_data_size = self.settings.max_allowed_packet + 1  # reported at execute
            return
        st.long_data[param] = st.long_data.get(param, b"") + data

    def _execute(self, payload: bytes) -> Event:
        if len(payload) < 10:
            raise PacketError("malformed packet: COM_STMT_EXECUTE is too short", fatal=False)
        stmt_id, flags, _ = _EXECUTE_HEAD.unpack_from(payload, 1)
        st = self._statements.get(stmt_id)
        if st is None:
            raise PacketError(f"Unknown prepared statement handler ({stmt_id}) given to mysqld_stmt_execute",
                              WireError.UNKNOWN_STMT_HANDLER, fatal=False)
        try:
            if st.long_data_size > self.settings.max_allowed_packet:
                raise PacketError("Parameter of prepared statement is too large (long data over "
                                  "max_allowed_packet)", WireError.NET_PACKET_TOO_LARGE, fatal=False)
            params, types = decode_params(payload, 10, st.num_params, st.types, st.long_data, self.charset)
        finally:
            st.long_data.clear()
            st.long_data_size = 0
        if types:
            st.types = types
        return StmtExecute(stmt_id, flags & _CURSOR_FLAGS, params)


def _replace_limit(decoder: PacketDecoder, limit: int) -> PacketDecoder:
    fresh = PacketDecoder(limit)
    fresh.feed(decoder.take_rest())
    return fresh
