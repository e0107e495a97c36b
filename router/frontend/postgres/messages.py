"""PostgreSQL protocol 3.0 messages: the one place where bytes become messages and messages become bytes.

Frontend messages decode into small frozen dataclasses (``Query``, ``Parse``, ``Bind``…); backend messages are
built by functions returning ``bytes`` (``row_description``, ``data_row``, ``error_response``…). Decoding is
strict, as the server's own ``pq_getmsg*`` functions are: a string without its NUL, a count that does not fit,
a byte left over after the last field, a negative length — each is ``ProtocolViolation`` (SQLSTATE 08P01).

Framing (``Framer``): every message after the startup packet is ``type byte + int32 length (including itself) +
body``. A length below 4, or above the configured maximum, cannot be resynchronised, so the framer reports it
and the connection ends; the body of a well-framed message that fails to decode costs only that message.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "MAX_STARTUP_PACKET",
    "Bind",
    "CancelRequest",
    "Close",
    "CopyData",
    "CopyDone",
    "CopyFail",
    "Describe",
    "Execute",
    "Flush",
    "Framer",
    "FunctionCall",
    "GSSENCRequest",
    "Parse",
    "PasswordData",
    "PgError",
    "ProtocolViolation",
    "Query",
    "SSLRequest",
    "Startup",
    "Sync",
    "Terminate",
    "decode_frontend",
    "decode_startup",
]

DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024  # bytes of one frontend message; COPY rows and big statements fit
SMALL_MESSAGE = 10_000  # PostgreSQL's PQ_SMALL_MESSAGE_LIMIT: Sync, Flush, Describe, Close, Execute, …
MAX_STARTUP_PACKET = 10_000  # PostgreSQL's MAX_STARTUP_PACKET_LENGTH
PROTOCOL_3_0 = 196608
CANCEL_CODE, SSL_CODE, GSSENC_CODE = 80877102, 80877103, 80877104

_I32 = struct.Struct("!i")
_I16 = struct.Struct("!h")
_U16 = struct.Struct("!H")
_HDR = struct.Struct("!ci")


class PgError(Exception):
    """An error the frontend itself reports with a PostgreSQL SQLSTATE that ``sharding.errors`` has no class for
    (yet): protocol violations, unknown statement and portal names, the failed-transaction state.
    ``fatal``: the connection cannot go on."""

    def __init__(self, message: str, *, sqlstate: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.fatal = fatal


class ProtocolViolation(PgError):
    """The client broke the protocol (SQLSTATE 08P01 unless said otherwise)."""

    def __init__(self, message: str, *, fatal: bool = False, sqlstate: str = "08P01") -> None:
        super().__init__(message, sqlstate=sqlstate, fatal=fatal)


# --- frontend messages ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Startup:
    major: int
    minor: int
    params: dict[str, str]
    unknown_options: tuple[str, ...] = ()  # ``_pq_.*`` protocol options we do not know


@dataclass(frozen=True, slots=True)
class SSLRequest:
    pass


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    pass


@dataclass(frozen=True, slots=True)
class CancelRequest:
    pid: int
    secret: int


@dataclass(frozen=True, slots=True)
class Query:
    sql: str


@dataclass(frozen=True, slots=True)
class Parse:
    name: str
    sql: str
    param_types: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Bind:
    portal: str
    statement: str
    param_formats: tuple[int, ...]
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]
    # the body after the two names, as received (forwarded to a shard unchanged)
    tail: bytes = field(default=b"", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Describe:
    kind: str  # "S" statement | "P" portal
    name: str


@dataclass(frozen=True, slots=True)
class Execute:
    portal: str
    max_rows: int  # 0: all


@dataclass(frozen=True, slots=True)
class Close:
    kind: str  # "S" | "P"
    name: str


@dataclass(frozen=True, slots=True)
class Sync:
    pass


@dataclass(frozen=True, slots=True)
class Flush:
    pass


@dataclass(frozen=True, slots=True)
class Terminate:
    pass


@dataclass(frozen=True, slots=True)
class CopyData:
    data: bytes


@dataclass(frozen=True, slots=True)
class CopyDone:
    pass


@dataclass(frozen=True, slots=True)
class CopyFail:
    message: str


@dataclass(frozen=True, slots=True)
class FunctionCall:
    oid: int


@dataclass(frozen=True, slots=True)
class PasswordData:
    """A 'p' message: PasswordMessage, SASLInitialResponse or SASLResponse; which one depends on the auth state."""

    data: bytes


SYNC, FLUSH, TERMINATE, COPY_DONE = Sync(), Flush(), Terminate(), CopyDone()


class _Reader:
    """Reads one message body field by field, as ``pq_getmsg*`` do."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def _short(self) -> ProtocolViolation:
        return ProtocolViolation(f"invalid {self.what} message format: message too short")

    def int16(self) -> int:
        if self.pos + 2 > len(self.data):
            raise self._short()
        v = _I16.unpack_from(self.data, self.pos)[0]
        self.pos += 2
        return int(v)

    def uint16(self) -> int:
        if self.pos + 2 > len(self.data):
            raise self._short()
        v = _U16.unpack_from(self.data, self.pos)[0]
        self.pos += 2
        return int(v)

    def int32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise self._short()
        v = _I32.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return int(v)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self._short()
        v = self.data[self.pos]
        self.pos += 1
        return v

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self._short()
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolViolation(f"invalid {self.what} message format: string is not NUL-terminated")
        raw = self.data[self.pos:end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation('invalid byte sequence for encoding "UTF8"', sqlstate="22021") from None

    def rest(self) -> bytes:
        v = self.data[self.pos:]
        self.pos = len(self.data)
        return v

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolViolation(f"invalid {self.what} message format: {len(self.data) - self.pos} "
                                    "unexpected bytes at the end")


def decode_startup(body: bytes) -> Startup | SSLRequest | GSSENCRequest | CancelRequest:
    """The packet a connection starts with (its int32 length already removed)."""
    r = _Reader(body, "startup packet")
    code = r.int32()
    if code == SSL_CODE:
        r.end()
        return SSLRequest()
    if code == GSSENC_CODE:
        r.end()
        return GSSENCRequest()
    if code == CANCEL_CODE:
        pid, secret = r.int32(), r.int32() & 0xFFFFFFFF
        r.end()
        return CancelRequest(pid, secret)
    major, minor = code >> 16, code & 0xFFFF
    if major != 3:
        raise ProtocolViolation(f"unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0",
                                fatal=True, sqlstate="0A000")
    params: dict[str, str] = {}
    unknown: list[str] = []
    while True:
        name = r.cstring()
        if not name:
            break
        value = r.cstring()
        if name.startswith("_pq_."):
            unknown.append(name)
        elif name in params:
            raise ProtocolViolation(f"duplicate startup parameter {name!r}", fatal=True)
        else:
            params[name] = value
    r.end()
    return Startup(major, minor, params, tuple(unknown))


def _formats(r: _Reader, what: str) -> tuple[int, ...]:
    n = r.int16()
    if n < 0:
        raise ProtocolViolation(f"invalid {what} message format: negative format count")
    out = tuple(r.int16() for _ in range(n))
    for f in out:
        if f not in (0, 1):
            raise ProtocolViolation(f"unsupported format code: {f}")
    return out


def _parse(r: _Reader) -> Parse:
    name, sql = r.cstring(), r.cstring()
    n = r.int16()
    if n < 0:
        raise ProtocolViolation("invalid Parse message format: negative parameter type count")
    types = tuple(r.int32() & 0xFFFFFFFF for _ in range(n))
    r.end()
    return Parse(name, sql, types)


def _bind(r: _Reader) -> Bind:
    portal, statement = r.cstring(), r.cstring()
    names_end = r.pos
    formats = _formats(r, "Bind")
    n = r.int16()
    if n < 0:
        raise ProtocolViolation("invalid Bind message format: negative parameter count")
    params: list[bytes | None] = []
    for _ in range(n):
        size = r.int32()
        if size == -1:
            params.append(None)
        elif size < 0:
            raise ProtocolViolation(f"invalid Bind message format: parameter length {size}")
        else:
            params.append(r.raw(size))
    results = _formats(r, "Bind")
    r.end()
    if len(formats) > 1 and len(formats) != n:
        raise ProtocolViolation(f"bind message has {len(formats)} parameter formats but {n} parameters")
    return Bind(portal, statement, formats, tuple(params), results, r.data[names_end:])


def _kind_and_name(r: _Reader, what: str) -> tuple[str, str]:
    kind = chr(r.byte())
    if kind not in ("S", "P"):
        raise ProtocolViolation(f"invalid {what} message subtype {ord(kind)}")
    name = r.cstring()
    r.end()
    return kind, name


def _describe(r: _Reader) -> Describe:
    return Describe(*_kind_and_name(r, "DESCRIBE"))


def _close(r: _Reader) -> Close:
    return Close(*_kind_and_name(r, "CLOSE"))


def _execute(r: _Reader) -> Execute:
    portal = r.cstring()
    rows = r.int32()
    r.end()
    return Execute(portal, max(rows, 0))  # PostgreSQL treats a negative limit as "all rows"


def _query(r: _Reader) -> Query:
    sql = r.cstring()
    r.end()
    return Query(sql)


def _empty(msg: Any, what: str) -> Any:
    def dec(r: _Reader) -> Any:
        if r.data:
            raise ProtocolViolation(f"invalid {what} message format: it must be empty")
        return msg

    return dec


def _copy_fail(r: _Reader) -> CopyFail:
    msg = r.cstring()
    r.end()
    return CopyFail(msg)


def _function_call(r: _Reader) -> FunctionCall:
    oid = r.int32()
    r.rest()
    return FunctionCall(oid & 0xFFFFFFFF)


_DECODERS: dict[int, Any] = {
    ord("Q"): _query, ord("P"): _parse, ord("B"): _bind, ord("D"): _describe, ord("E"): _execute,
    ord("C"): _close, ord("S"): _empty(SYNC, "Sync"), ord("H"): _empty(FLUSH, "Flush"),
    ord("X"): _empty(TERMINATE, "Terminate"), ord("d"): lambda r: CopyData(r.rest()),
    ord("c"): _empty(COPY_DONE, "CopyDone"), ord("f"): _copy_fail, ord("F"): _function_call,
    ord("p"): lambda r: PasswordData(r.rest()),
}
_LARGE_TYPES = frozenset(ord(c) for c in "QPBdFpf")
MESSAGE_NAMES = {
    ord("Q"): "Query", ord("P"): "Parse", ord("B"): "Bind", ord("D"): "Describe", ord("E"): "Execute",
    ord("C"): "Close", ord("S"): "Sync", ord("H"): "Flush", ord("X"): "Terminate", ord("d"): "CopyData",
    ord("c"): "CopyDone", ord("f"): "CopyFail", ord("F"): "FunctionCall", ord("p"): "PasswordMessage",
}


def decode_frontend(kind: int, body: bytes) -> Any:
    """One frontend message. ``ProtocolViolation`` for an unknown type or a malformed body (not fatal: the
    framing was fine, so the next message can still be read)."""
    dec = _DECODERS.get(kind)
    if dec is None:
        raise ProtocolViolation(f"invalid frontend message type {kind}")
    return dec(_Reader(body, MESSAGE_NAMES[kind]))


# --- framing ------------------------------------------------------------------------------------------------------
class Framer:
    """Accumulates bytes; hands out whole messages. ``startup=True`` reads length-prefixed startup packets."""

    __slots__ = ("buf", "max_message", "pos")

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.max_message = max_message

    def feed(self, data: bytes) -> None:
        if self.pos and self.pos == len(self.buf):
            self.buf.clear()
            self.pos = 0
        self.buf += data

    @property
    def buffered(self) -> int:
        return len(self.buf) - self.pos

    def next_startup(self) -> bytes | None:
        """The body of the next startup-phase packet, or None when it is not complete yet."""
        buf, pos = self.buf, self.pos
        if len(buf) - pos < 4:
            return None
        size = _I32.unpack_from(buf, pos)[0]
        if size < 8 or size > MAX_STARTUP_PACKET:
            raise ProtocolViolation("invalid length of startup packet", fatal=True)
        if len(buf) - pos < size:
            return None
        body = bytes(buf[pos + 4:pos + size])
        self._advance(size)
        return body

    def next_message(self) -> tuple[int, bytes] | None:
        """``(type, body)`` of the next message, or None when it is not complete yet.

        As PostgreSQL does, the type is checked as soon as its byte arrives, and messages that are always short
        may not announce more than ``SMALL_MESSAGE`` bytes: a stream that lost its framing ends at once instead
        of waiting for a body that will never come."""
        buf, pos = self.buf, self.pos
        have = len(buf) - pos
        if have < 1:
            return None
        kind = buf[pos]
        if kind not in MESSAGE_NAMES:
            raise ProtocolViolation(f"invalid frontend message type {kind}", fatal=True)
        if have < 5:
            return None
        size = _I32.unpack_from(buf, pos + 1)[0]
        if size < 4:
            raise ProtocolViolation(f"invalid message length {size}", fatal=True)
        limit = self.max_message if kind in _LARGE_TYPES else min(SMALL_MESSAGE, self.max_message)
        if size > limit:
            raise ProtocolViolation(f"invalid {MESSAGE_NAMES[kind]} message length {size} (the maximum is {limit})",
                                    fatal=True, sqlstate="54000" if kind in _LARGE_TYPES else "08P01")
        end = pos + 1 + size
        if len(buf) < end:
            return None
        body = bytes(buf[pos + 5:end])
        self._advance(1 + size)
        return kind, body

    def peek(self) -> tuple[int, bytes] | None:
        """The next whole message, left in the buffer (None when it has not fully arrived)."""
        buf, pos = self.buf, self.pos
        if len(buf) - pos < 5:
            return None
        size = _I32.unpack_from(buf, pos + 1)[0]
        if size < 4 or len(buf) < pos + 1 + size:
            return None
        return buf[pos], bytes(buf[pos + 5:pos + 1 + size])

    def _advance(self, n: int) -> None:
        self.pos += n
        if self.pos > 65536 and self.pos * 2 > len(self.buf):
            del self.buf[:self.pos]
            self.pos = 0

    def take_rest(self) -> bytes:
        rest = bytes(self.buf[self.pos:])
        self.buf.clear()
        self.pos = 0
        return rest


# --- backend messages -------------------------------------------------------------------------------------------
def _msg(kind: bytes, body: bytes) -> bytes:
    return kind + _I32.pack(len(body) + 4) + body


def _cstr(s: str) -> bytes:
    return s.encode("utf-8").replace(b"\0", b"") + b"\0"


AUTH_OK = _msg(b"R", _I32.pack(0))
PARSE_COMPLETE = b"1\x00\x00\x00\x04"
BIND_COMPLETE = b"2\x00\x00\x00\x04"
CLOSE_COMPLETE = b"3\x00\x00\x00\x04"
NO_DATA = b"n\x00\x00\x00\x04"
EMPTY_QUERY = b"I\x00\x00\x00\x04"
PORTAL_SUSPENDED = b"s\x00\x00\x00\x04"
COPY_DONE_MSG = b"c\x00\x00\x00\x04"
READY = {"I": b"Z\x00\x00\x00\x05I", "T": b"Z\x00\x00\x00\x05T", "E": b"Z\x00\x00\x00\x05E"}


def auth_md5(salt: bytes) -> bytes:
    return _msg(b"R", _I32.pack(5) + salt)


def auth_cleartext() -> bytes:
    return _msg(b"R", _I32.pack(3))


def auth_sasl(mechanisms: Sequence[str]) -> bytes:
    return _msg(b"R", _I32.pack(10) + b"".join(_cstr(m) for m in mechanisms) + b"\0")


def auth_sasl_continue(data: bytes) -> bytes:
    return _msg(b"R", _I32.pack(11) + data)


def auth_sasl_final(data: bytes) -> bytes:
    return _msg(b"R", _I32.pack(12) + data)


def parameter_status(name: str, value: str) -> bytes:
    return _msg(b"S", _cstr(name) + _cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    return _msg(b"K", struct.pack("!iI", pid, secret & 0xFFFFFFFF))


def negotiate_protocol_version(minor: int, unknown: Sequence[str]) -> bytes:
    return _msg(b"v", _I32.pack(minor) + _I32.pack(len(unknown)) + b"".join(_cstr(u) for u in unknown))


def ready_for_query(status: str) -> bytes:
    return READY[status]


def command_complete(tag: str) -> bytes:
    return _msg(b"C", _cstr(tag))


def parameter_description(oids: Sequence[int]) -> bytes:
    return _msg(b"t", _I16.pack(len(oids)) + b"".join(struct.pack("!I", o & 0xFFFFFFFF) for o in oids))


_FIELD = struct.Struct("!IhIhih")


def row_description(fields: Sequence[tuple[str, int, int, int, int]]) -> bytes:
    """``fields``: (name, type oid, typlen, typmod, format) per column; table OID and attnum are 0."""
    parts = [_I16.pack(len(fields))]
    for name, oid, typlen, typmod, fmt in fields:
        parts.append(_cstr(name))
        parts.append(_FIELD.pack(0, 0, oid & 0xFFFFFFFF, typlen, typmod, fmt))
    return _msg(b"T", b"".join(parts))


_NULL = b"\xff\xff\xff\xff"


def data_row(cells: Sequence[bytes | None]) -> bytes:
    parts = [_I16.pack(len(cells))]
    for c in cells:
        if c is None:
            parts.append(_NULL)
        else:
            parts.append(_I32.pack(len(c)))
            parts.append(c)
    body = b"".join(parts)
    return b"D" + _I32.pack(len(body) + 4) + body


def copy_in_response(text: bool, ncols: int) -> bytes:
    return _msg(b"G", bytes((0 if text else 1,)) + _I16.pack(ncols) + _I16.pack(0 if text else 1) * ncols)


def copy_out_response(text: bool, ncols: int) -> bytes:
    return _msg(b"H", bytes((0 if text else 1,)) + _I16.pack(ncols) + _I16.pack(0 if text else 1) * ncols)


def copy_data(data: bytes) -> bytes:
    return b"d" + _I32.pack(len(data) + 4) + data


def _fields(severity: str, sqlstate: str, message: str, *, detail: str | None = None, hint: str | None = None,
            position: int | None = None) -> bytes:
    parts = [b"S", _cstr(severity), b"V", _cstr(severity), b"C", _cstr(sqlstate), b"M", _cstr(message)]
    if detail:
        parts += [b"D", _cstr(detail)]
    if hint:
        parts += [b"H", _cstr(hint)]
    if position is not None:
        parts += [b"P", _cstr(str(position))]
    parts.append(b"\0")
    return b"".join(parts)


def error_response(sqlstate: str, message: str, *, severity: str = "ERROR", detail: str | None = None,
                   hint: str | None = None, position: int | None = None) -> bytes:
    return _msg(b"E", _fields(severity, sqlstate, message, detail=detail, hint=hint, position=position))


def notice_response(message: str, *, severity: str = "WARNING", sqlstate: str = "01000",
                    detail: str | None = None) -> bytes:
    return _msg(b"N", _fields(severity, sqlstate, message, detail=detail))


# --- encoding frontend messages (tests, the fuzzer, the cancel forwarder) ------------------------------------------
def fe_startup(params: dict[str, str], version: int = PROTOCOL_3_0) -> bytes:
    body = _I32.pack(version) + b"".join(_cstr(k) + _cstr(v) for k, v in params.items()) + b"\0"
    return _I32.pack(len(body) + 4) + body


def fe_ssl_request() -> bytes:
    return _I32.pack(8) + _I32.pack(SSL_CODE)


def fe_gssenc_request() -> bytes:
    return _I32.pack(8) + _I32.pack(GSSENC_CODE)


def fe_cancel(pid: int, secret: int) -> bytes:
    return _I32.pack(16) + _I32.pack(CANCEL_CODE) + struct.pack("!iI", pid, secret & 0xFFFFFFFF)


def fe_query(sql: str) -> bytes:
    return _msg(b"Q", _cstr(sql))


def fe_parse(name: str, sql: str, types: Sequence[int] = ()) -> bytes:
    return _msg(b"P", _cstr(name) + _cstr(sql) + _I16.pack(len(types)) + b"".join(struct.pack("!I", t)
                                                                                  for t in types))


def fe_bind(portal: str, statement: str, params: Sequence[bytes | None] = (), param_formats: Sequence[int] = (),
            result_formats: Sequence[int] = ()) -> bytes:
    body = [_cstr(portal), _cstr(statement), _I16.pack(len(param_formats))]
    body += [_I16.pack(f) for f in param_formats]
    body.append(_I16.pack(len(params)))
    for p in params:
        body.append(_NULL if p is None else _I32.pack(len(p)) + p)
    body.append(_I16.pack(len(result_formats)))
    body += [_I16.pack(f) for f in result_formats]
    return _msg(b"B", b"".join(body))


def fe_describe(kind: str, name: str) -> bytes:
    return _msg(b"D", kind.encode() + _cstr(name))


def fe_execute(portal: str, max_rows: int = 0) -> bytes:
    return _msg(b"E", _cstr(portal) + _I32.pack(max_rows))


def fe_close(kind: str, name: str) -> bytes:
    return _msg(b"C", kind.encode() + _cstr(name))


def fe_sync() -> bytes:
    return b"S\x00\x00\x00\x04"


def fe_flush() -> bytes:
    return b"H\x00\x00\x00\x04"


def fe_terminate() -> bytes:
    return b"X\x00\x00\x00\x04"


def fe_password(data: bytes) -> bytes:
    return _msg(b"p", data)


def fe_copy_data(data: bytes) -> bytes:
    return _msg(b"d", data)


def fe_copy_done() -> bytes:
    return b"c\x00\x00\x00\x04"


def fe_copy_fail(message: str) -> bytes:
    return _msg(b"f", _cstr(message))


# --- decoding backend messages (tests and the fuzzer read what the router answers) --------------------------------
def read_backend(data: bytes) -> list[tuple[str, bytes]]:
    """Split a byte string of backend messages into ``(type, body)``; a trailing partial message is an error."""
    out = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 5:
            raise ValueError("truncated backend message")
        kind = chr(data[pos])
        size = _I32.unpack_from(data, pos + 1)[0]
        if size < 4 or pos + 1 + size > len(data):
            raise ValueError("truncated backend message")
        out.append((kind, bytes(data[pos + 5:pos + 1 + size])))
        pos += 1 + size
    return out


def error_fields(body: bytes) -> dict[str, str]:
    """The fields of an ErrorResponse/NoticeResponse body, keyed by their one-letter codes."""
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out
