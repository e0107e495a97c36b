"""The PostgreSQL frontend protocol as a state machine that never touches a socket (asyncpg's ``CoreProtocol``).

Bytes go in with ``feed()``; ``next_event()`` hands out what the connection must act on, one at a time, in order;
replies accumulate in ``out`` until the glue (``router.frontend.postgres.server``) takes them with
``take_output()``. The machine itself answers everything that needs no router work: SSLRequest/GSSENCRequest,
the authentication exchange, decode errors, skipping to the next Sync after an error in an extended-query
sequence, ignoring stray COPY messages.

States::

    STARTUP ──SSLRequest──▶ TLS ──(glue finished the handshake)──▶ STARTUP
       │ StartupMessage
       ▼
     AUTH ──(exchange done)──▶ LOGIN ──accept()──▶ READY ◀──end_copy()── COPY_IN
       │                          └──fatal()──▶ CLOSED        └──begin_copy_in()──▲
       └── CancelRequest ─▶ CLOSED (after the Cancel event)

Events: ``NeedTLS``, ``Cancel``, ``Login`` (authenticated: the glue opens a session, then ``accept()`` or
``fatal()``), and in READY/COPY_IN the decoded frontend messages themselves (``messages.Query``, ``Parse``,
``Bind``, ``Describe``, ``Execute``, ``Close``, ``Sync``, ``Flush``, ``Terminate``, ``CopyData``, ``CopyDone``,
``CopyFail``). After a failed extended-query message the handler calls ``fail_extended()``; messages up to the
next Sync are then dropped here, never seen by the handler.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from router.frontend.postgres import messages as M
from router.frontend.postgres.auth import AuthExchange, AuthPolicy
from sharding.errors import AuthenticationError

__all__ = ["Cancel", "Login", "NeedTLS", "PgProtocol", "State"]


class State(IntEnum):
    STARTUP = 0
    TLS = 1
    AUTH = 2
    LOGIN = 3
    READY = 4
    COPY_IN = 5
    CLOSED = 6


@dataclass(frozen=True, slots=True)
class NeedTLS:
    """The client asked for TLS and we said 'S': the glue upgrades the transport, then calls ``tls_started``."""


@dataclass(frozen=True, slots=True)
class Cancel:
    pid: int
    secret: int


@dataclass(frozen=True, slots=True)
class Login:
    user: str
    database: str
    params: dict[str, str]
    is_admin: bool


# Extended-query messages: an error while handling one starts the skip to Sync.
EXTENDED = (M.Parse, M.Bind, M.Describe, M.Execute, M.Close, M.Flush)
_COPY_TYPES = (ord("d"), ord("c"), ord("f"))


class PgProtocol:
    """One connection's protocol state (see the module docstring)."""

    def __init__(self, policy: AuthPolicy | None = None, *, peer: str | None = None, tls_available: bool = False,
                 tls_required: bool = False, max_message: int = M.DEFAULT_MAX_MESSAGE) -> None:
        self.policy = policy if policy is not None else AuthPolicy(())
        self.peer = peer
        self.tls_available = tls_available
        self.tls_required = tls_required
        self.tls_active = False
        self.channel_binding: bytes | None = None
        self.state = State.STARTUP
        self.framer = M.Framer(max_message)
        self.out = bytearray()
        self.tx_status = "I"
        self.skipping = False
        self.closing = False  # the glue must write out what is left and close
        self.exchange: AuthExchange | None = None
        self.startup: M.Startup | None = None
        self._ssl_asked = False
        self._last_type = 0
        self._gss_asked = False
        # counters, read by tests and the fuzz test
        self.messages = 0  # frontend messages decoded (startup packets included)
        self.dispatched = 0  # events handed to the handler in READY/COPY_IN
        self.skipped = 0

    # --- input --------------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.state is not State.CLOSED:
            self.framer.feed(data)

    @property
    def buffered(self) -> int:
        return self.framer.buffered

    def next_event(self) -> Any:
        """The next thing to act on, or None when more bytes are needed (or the connection is closing)."""
        while not self.closing:
            state = self.state
            try:
                if state is State.READY or state is State.COPY_IN:
                    frame = self.framer.next_message()
                    if frame is None:
                        return None
                    event = self._command(*frame)
                elif state is State.STARTUP:
                    body = self.framer.next_startup()
                    if body is None:
                        return None
                    event = self._startup(body)
                elif state is State.AUTH:
                    frame = self.framer.next_message()
                    if frame is None:
                        return None
                    event = self._auth(*frame)
                else:  # TLS handshake or LOGIN: wait for the glue; CLOSED: nothing more
                    return None
            except M.PgError as exc:
                if exc.fatal or state not in (State.READY, State.COPY_IN):
                    self.fatal(exc.sqlstate, exc.message)
                    return None
                event = self._bad_message(exc)
            except AuthenticationError as exc:
                self.fatal(exc.pg_sqlstate, exc.message)
                return None
            if event is not None:
                return event
        return None

    # --- startup and authentication ------------------------------------------------------------------------------
    def _startup(self, body: bytes) -> Any:
        self.messages += 1
        msg = M.decode_startup(body)
        if isinstance(msg, M.SSLRequest):
            if self._ssl_asked or self.tls_active:
                raise M.ProtocolViolation("duplicate SSLRequest", fatal=True)
            self._ssl_asked = True
            if not self.tls_available:
                self.out += b"N"
                return None
            if self.framer.buffered:
                # Bytes sent before the handshake would be read as if they came over TLS (CVE-2021-23214).
                raise M.ProtocolViolation("received unencrypted data after SSL request", fatal=True)
            self.out += b"S"
            self.state = State.TLS
            return NeedTLS()
        if isinstance(msg, M.GSSENCRequest):
            if self._gss_asked:
                raise M.ProtocolViolation("duplicate GSSENCRequest", fatal=True)
            self._gss_asked = True
            self.out += b"N"
            return None
        if isinstance(msg, M.CancelRequest):
            self.state = State.CLOSED
            self.closing = True
            return Cancel(msg.pid, msg.secret)
        return self._login_start(msg)

    def tls_started(self, channel_binding: bytes | None = None) -> None:
        """The glue finished the TLS handshake; the client now sends its StartupMessage over TLS."""
        self.tls_active = True
        self.channel_binding = channel_binding
        self.state = State.STARTUP

    def _login_start(self, msg: M.Startup) -> Any:
        if self.tls_required and not self.tls_active:
            raise M.PgError("TLS is required: connect with sslmode=require (or stronger)", sqlstate="28000",
                            fatal=True)
        if msg.minor > 0 or msg.unknown_options:
            self.out += M.negotiate_protocol_version(0, msg.unknown_options)
        user = msg.params.get("user", "")
        if not user:
            raise M.ProtocolViolation("no PostgreSQL user name specified in startup packet", fatal=True,
                                      sqlstate="28000")
        database = msg.params.get("database") or user
        self.startup = msg
        plan = self.policy.plan(user, database, self.peer, self.tls_active)
        self.exchange = AuthExchange(plan, user, channel_binding=self.channel_binding)
        self.out += self.exchange.start()
        return self._after_auth_step()

    def _auth(self, kind: int, body: bytes) -> Any:
        self.messages += 1
        if kind != ord("p"):
            raise M.ProtocolViolation(f"expected password response, got message type {kind}", fatal=True)
        assert self.exchange is not None
        self.out += self.exchange.step(body)
        return self._after_auth_step()

    def _after_auth_step(self) -> Any:
        exchange = self.exchange
        assert exchange is not None and self.startup is not None
        if not exchange.done:
            self.state = State.AUTH
            return None
        self.state = State.LOGIN
        params = self.startup.params
        user = exchange.plan.user
        return Login(exchange.user_name, params.get("database") or exchange.user_name, dict(params),
                     bool(user is not None and user.is_admin))

    def accept(self, parameters: dict[str, str], pid: int, secret: int) -> None:
        """The session is open: report the parameters, the cancel key, and become ready."""
        out = self.out
        for name, value in parameters.items():
            out += M.parameter_status(name, value)
        out += M.backend_key_data(pid, secret)
        self.state = State.READY
        self.tx_status = "I"
        out += M.ready_for_query("I")

    # --- commands ---------------------------------------------------------------------------------------------------
    def _command(self, kind: int, body: bytes) -> Any:
        self.messages += 1
        self._last_type = kind
        if self.state is State.COPY_IN:
            return self._copy_message(kind, body)
        if self.skipping:
            if kind == 0x53:  # Sync
                M.decode_frontend(kind, body)
                self.skipping = False
                self.dispatched += 1
                return M.SYNC
            if kind == 0x58:  # Terminate
                self.state = State.CLOSED
                self.closing = True
                return M.TERMINATE
            if kind not in M.MESSAGE_NAMES or kind == 0x70:
                raise M.ProtocolViolation(f"invalid frontend message type {kind}", fatal=True)
            self.skipped += 1
            return None
        if kind in _COPY_TYPES:
            return None  # stray COPY messages after a failed COPY: ignored, as the protocol says
        if kind == 0x70:  # 'p' outside authentication
            raise M.ProtocolViolation(f"invalid frontend message type {kind}", fatal=True)
        if kind not in M.MESSAGE_NAMES:
            raise M.ProtocolViolation(f"invalid frontend message type {kind}", fatal=True)
        msg = M.decode_frontend(kind, body)
        if msg is M.TERMINATE:
            self.state = State.CLOSED
            self.closing = True
        self.dispatched += 1
        return msg

    def _copy_message(self, kind: int, body: bytes) -> Any:
        if kind in (0x48, 0x53):  # Flush and Sync are ignored during COPY IN
            return None
        if kind == 0x58:
            self.state = State.CLOSED
            self.closing = True
            return M.TERMINATE
        self.dispatched += 1
        if kind in _COPY_TYPES:
            return M.decode_frontend(kind, body)
        name = M.MESSAGE_NAMES.get(kind)
        if name is None:
            raise M.ProtocolViolation(f"invalid frontend message type {kind}", fatal=True)
        return M.CopyFail(f"unexpected message type 0x{kind:02X} during COPY from stdin")

    def _bad_message(self, exc: M.PgError) -> Any:
        """A well-framed message that did not decode: costs that message, as in PostgreSQL. A malformed Query (or
        FunctionCall) ends with ReadyForQuery; a malformed extended-query message starts the skip to Sync."""
        self.error(exc.sqlstate, exc.message)
        if self.state is State.COPY_IN:
            return M.CopyFail(exc.message)
        if self._last_type in (0x51, 0x46):
            self.ready()
        else:
            self.skipping = True
        return None

    def next_is_execute(self, portal: str) -> bool:
        """Whether the next message, already received, is Execute of ``portal`` for all its rows (the handler may
        then answer Describe and Execute in one exchange with a shard)."""
        frame = self.framer.peek()
        if frame is None or frame[0] != 0x45 or self.skipping:
            return False
        try:
            msg = M.decode_frontend(*frame)
        except M.PgError:
            return False
        return bool(msg.portal == portal and msg.max_rows == 0)

    def begin_copy_in(self) -> None:
        self.state = State.COPY_IN

    def end_copy(self) -> None:
        if self.state is State.COPY_IN:
            self.state = State.READY

    # --- output ----------------------------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.out += data

    def error(self, sqlstate: str, message: str, *, detail: str | None = None, hint: str | None = None,
              position: int | None = None) -> None:
        self.out += M.error_response(sqlstate, message, detail=detail, hint=hint, position=position)

    def fail_extended(self) -> None:
        """An extended-query message failed (its ErrorResponse is out): drop messages until the next Sync."""
        self.skipping = True

    def ready(self) -> None:
        self.out += M.READY[self.tx_status]

    def fatal(self, sqlstate: str, message: str, *, detail: str | None = None) -> None:
        self.out += M.error_response(sqlstate, message, severity="FATAL", detail=detail)
        self.state = State.CLOSED
        self.closing = True

    def take_output(self) -> bytes:
        if not self.out:
            return b""
        data = bytes(self.out)
        self.out.clear()
        return data
