"""MySQL packets: framing, length-encoded values, and one dataclass per packet with ``encode``/``decode``.

Framing (https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html): a 3-byte little-endian
payload length, a 1-byte sequence id, the payload. A payload of 2^24-1 bytes or more is sent as several packets:
every packet but the last carries exactly 0xFFFFFF bytes (a last one of 0 bytes when the length is an exact
multiple), each with the next sequence id. ``PacketDecoder`` joins them and checks the limit as the bytes arrive,
so an oversized packet is refused before it is buffered; ``frame`` splits.

Both directions are here (the server's packets and the client's), so tests can play either side. Decoding never
raises anything but ``PacketError``.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from router.frontend.mysql.constants import MAX_PACKET_CHUNK, Capability, WireError

__all__ = [
    "AuthMoreData",
    "AuthSwitchRequest",
    "ColumnDefinition",
    "EofPacket",
    "ErrPacket",
    "HandshakeResponse41",
    "HandshakeV10",
    "OkPacket",
    "PacketDecoder",
    "PacketError",
    "Reader",
    "SSLRequest",
    "StmtPrepareOk",
    "frame",
    "frame_many",
    "lenenc_bytes",
    "lenenc_int",
    "text_row",
]

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEADER = struct.Struct("<I")


class PacketError(Exception):
    """A packet that cannot be read: the connection answers with an ERR (``errno``) and, if ``fatal``, closes."""

    def __init__(self, message: str, errno: int = WireError.MALFORMED_PACKET, *, fatal: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.errno = int(errno)
        self.fatal = fatal


# --- length-encoded values ------------------------------------------------------------------------------------
def lenenc_int(n: int) -> bytes:
    if n < 251:
        return bytes((n,))
    if n < 0x10000:
        return b"\xfc" + _U16.pack(n)
    if n < 0x1000000:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + _U64.pack(n)


def lenenc_bytes(b: bytes) -> bytes:
    n = len(b)
    if n < 251:
        return bytes((n,)) + b
    return lenenc_int(n) + b


class Reader:
    """Reads a payload front to back; every short read is a ``PacketError``."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _need(self, n: int, what: str) -> int:
        p = self.pos
        if n < 0 or p + n > len(self.data):
            raise PacketError(f"malformed packet: {what} runs past the end of the packet")
        self.pos = p + n
        return p

    def u8(self, what: str = "a byte") -> int:
        p = self._need(1, what)
        return self.data[p]

    def u16(self, what: str = "a 2-byte integer") -> int:
        p = self._need(2, what)
        return int(_U16.unpack_from(self.data, p)[0])

    def u24(self, what: str = "a 3-byte integer") -> int:
        p = self._need(3, what)
        return int.from_bytes(self.data[p:p + 3], "little")

    def u32(self, what: str = "a 4-byte integer") -> int:
        p = self._need(4, what)
        return int(_U32.unpack_from(self.data, p)[0])

    def u64(self, what: str = "an 8-byte integer") -> int:
        p = self._need(8, what)
        return int(_U64.unpack_from(self.data, p)[0])

    def fixed(self, n: int, what: str = "a field") -> bytes:
        p = self._need(n, what)
        return bytes(self.data[p:p + n])

    def lenenc_int(self, what: str = "a length-encoded integer") -> int | None:
        """The integer, or None for 0xFB (a NULL in a text row)."""
        first = self.u8(what)
        if first < 0xFB:
            return first
        if first == 0xFB:
            return None
        if first == 0xFC:
            return self.u16(what)
        if first == 0xFD:
            return self.u24(what)
        if first == 0xFE:
            return self.u64(what)
        raise PacketError(f"malformed packet: {what} starts with 0xFF")

    def lenenc_bytes(self, what: str = "a length-encoded string") -> bytes:
        n = self.lenenc_int(what)
        if n is None:
            raise PacketError(f"malformed packet: {what} is NULL")
        return self.fixed(n, what)

    def nul_bytes(self, what: str = "a string", *, eof_ok: bool = False) -> bytes:
        """A NUL-terminated string; with ``eof_ok``, the end of the packet ends it too (clients differ)."""
        data, p = self.data, self.pos
        end = data.find(b"\0", p)
        if end < 0:
            if not eof_ok:
                raise PacketError(f"malformed packet: {what} has no terminating NUL")
            end = len(data)
            self.pos = end
        else:
            self.pos = end + 1
        return bytes(data[p:end])

    def rest(self) -> bytes:
        p, self.pos = self.pos, len(self.data)
        return bytes(self.data[p:])


# --- framing --------------------------------------------------------------------------------------------------
def frame(payload: bytes, seq: int) -> tuple[bytes, int]:
    """The packet(s) carrying ``payload`` starting at sequence id ``seq``, and the next sequence id."""
    n = len(payload)
    if n < MAX_PACKET_CHUNK:
        return _HEADER.pack(n | (seq & 0xFF) << 24) + payload, (seq + 1) & 0xFF
    parts: list[bytes | memoryview] = []
    view = memoryview(payload)
    pos = 0
    while True:
        size = min(MAX_PACKET_CHUNK, n - pos)
        parts.append(_HEADER.pack(size | (seq & 0xFF) << 24))
        parts.append(view[pos:pos + size])
        seq = (seq + 1) & 0xFF
        pos += size
        if size < MAX_PACKET_CHUNK:
            break
    return b"".join(parts), seq


def frame_many(payloads: Iterable[bytes], seq: int) -> tuple[bytes, int]:
    """Several payloads one after the other (a result set), as one buffer."""
    out = []
    pack = _HEADER.pack
    for payload in payloads:
        n = len(payload)
        if n < MAX_PACKET_CHUNK:
            out.append(pack(n | seq << 24))
            out.append(payload)
            seq = (seq + 1) & 0xFF
        else:
            data, seq = frame(payload, seq)
            out.append(data)
    return b"".join(out), seq


class PacketDecoder:
    """Bytes in, logical packets out: ``feed(data)`` then ``next_packet()`` until None.

    A packet is ``(first_seq, last_seq, payload)``; a split packet's parts must carry consecutive sequence ids.
    ``max_payload`` bounds a joined payload: ``PacketError(NET_PACKET_TOO_LARGE)`` as soon as the header of a part
    shows it would be passed, before its bytes arrive. The decoder keeps no more than one unfinished packet plus
    what ``feed`` gave it.
    """

    __slots__ = ("_buf", "_first_seq", "_max", "_parts", "_parts_len", "_pos", "_want_seq")

    def __init__(self, max_payload: int = 64 << 20) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max = max_payload
        self._parts: list[bytes] = []
        self._parts_len = 0
        self._first_seq = -1
        self._want_seq = -1

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes held: unread input plus the parts of an unfinished split packet."""
        return len(self._buf) - self._pos + self._parts_len

    def take_rest(self) -> bytes:
        """Whatever was fed but not read (bytes after an SSLRequest belong to the TLS layer)."""
        rest = bytes(self._buf[self._pos:])
        self._buf.clear()
        self._pos = 0
        return rest

    def next_packet(self) -> tuple[int, int, bytes] | None:
        buf = self._buf
        while True:
            pos = self._pos
            if len(buf) - pos < 4:
                return None
            header = _HEADER.unpack_from(buf, pos)[0]
            n = header & 0xFFFFFF
            seq = header >> 24
            if self._parts:
                if seq != self._want_seq:
                    raise PacketError(f"got packets out of order: part of a split packet has sequence id {seq}, "
                                      f"expected {self._want_seq}", WireError.NET_PACKETS_OUT_OF_ORDER)
            if self._parts_len + n > self._max:
                raise PacketError(f"Got a packet bigger than 'max_allowed_packet' bytes ({self._max})",
                                  WireError.NET_PACKET_TOO_LARGE)
            if len(buf) - pos - 4 < n:
                return None
            payload = bytes(buf[pos + 4:pos + 4 + n])
            self._pos = pos + 4 + n
            if n == MAX_PACKET_CHUNK:
                if not self._parts:
                    self._first_seq = seq
                self._parts.append(payload)
                self._parts_len += n
                self._want_seq = (seq + 1) & 0xFF
                continue
            if self._parts:
                self._parts.append(payload)
                first = self._first_seq
                joined = b"".join(self._parts)
                self._parts = []
                self._parts_len = 0
                return first, seq, joined
            return seq, seq, payload


# --- connection phase ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HandshakeV10:
    connection_id: int
    server_version: str
    auth_data: bytes  # 20 bytes of nonce
    capabilities: int
    charset: int = 45  # utf8mb4_general_ci
    status: int = 2  # SERVER_STATUS_AUTOCOMMIT
    auth_plugin: str = "mysql_native_password"

    def encode(self) -> bytes:
        caps = self.capabilities
        data = self.auth_data
        part2 = data[8:] + b"\0"
        return b"".join((
            b"\x0a", self.server_version.encode("utf-8"), b"\0",
            _U32.pack(self.connection_id & 0xFFFFFFFF), data[:8], b"\0",
            _U16.pack(caps & 0xFFFF), bytes((self.charset & 0xFF,)), _U16.pack(self.status),
            _U16.pack(caps >> 16 & 0xFFFF), bytes((len(data) + 1,)), b"\0" * 10,
            part2 + b"\0" * max(0, 13 - len(part2)), self.auth_plugin.encode("ascii"), b"\0",
        ))

    @classmethod
    def decode(cls, payload: bytes) -> HandshakeV10:
        r = Reader(payload)
        if r.u8("protocol version") != 10:
            raise PacketError("not a HandshakeV10 packet")
        version = r.nul_bytes("server version").decode("utf-8", "replace")
        conn_id = r.u32("connection id")
        part1 = r.fixed(8, "auth data")
        r.u8("filler")
        caps = r.u16("capabilities")
        charset = r.u8("charset")
        status = r.u16("status")
        caps |= r.u16("capabilities") << 16
        data_len = r.u8("auth data length")
        r.fixed(10, "reserved")
        part2 = r.fixed(max(13, data_len - 8), "auth data")
        plugin = r.nul_bytes("auth plugin name", eof_ok=True).decode("ascii", "replace")
        return cls(conn_id, version, part1 + part2.rstrip(b"\0"), caps, charset, status, plugin)


@dataclass(frozen=True, slots=True)
class SSLRequest:
    """The first 32 bytes of a HandshakeResponse41, sent alone with CLIENT_SSL set: TLS starts after it."""

    capabilities: int
    max_packet: int
    charset: int

    def encode(self) -> bytes:
        return _U32.pack(self.capabilities) + _U32.pack(self.max_packet) + bytes((self.charset,)) + b"\0" * 23


@dataclass(frozen=True, slots=True)
class HandshakeResponse41:
    capabilities: int
    max_packet: int
    charset: int
    user: bytes
    auth_response: bytes = b""
    database: bytes | None = None
    auth_plugin: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def decode(payload: bytes) -> HandshakeResponse41 | SSLRequest:
        r = Reader(payload)
        caps = r.u32("client capabilities")
        if not caps & Capability.PROTOCOL_41:
            raise PacketError("the client does not speak protocol 4.1 (CLIENT_PROTOCOL_41)", WireError.HANDSHAKE)
        max_packet = r.u32("max packet size")
        charset = r.u8("character set")
        r.fixed(23, "filler")
        if r.remaining == 0:
            if caps & Capability.SSL:
                return SSLRequest(caps, max_packet, charset)
            raise PacketError("handshake response without a user name", WireError.HANDSHAKE)
        user = r.nul_bytes("user name", eof_ok=True)
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth = r.lenenc_bytes("auth response")
        elif caps & Capability.SECURE_CONNECTION:
            auth = r.fixed(r.u8("auth response length"), "auth response")
        else:
            auth = r.nul_bytes("auth response", eof_ok=True)
        database = None
        if caps & Capability.CONNECT_WITH_DB and r.remaining:
            database = r.nul_bytes("database", eof_ok=True)
        plugin = None
        if caps & Capability.PLUGIN_AUTH and r.remaining:
            plugin = r.nul_bytes("auth plugin name", eof_ok=True).decode("ascii", "replace")
        attrs: dict[str, str] = {}
        if caps & Capability.CONNECT_ATTRS and r.remaining:
            total = r.lenenc_int("connect attributes length") or 0
            end = r.pos + total
            if end > len(payload):
                raise PacketError("malformed packet: connect attributes run past the end of the packet")
            sub = Reader(payload[:end], r.pos)
            while sub.remaining and len(attrs) < 256:
                key = sub.lenenc_bytes("attribute name").decode("utf-8", "replace")
                attrs[key] = sub.lenenc_bytes("attribute value").decode("utf-8", "replace")
            r.pos = end
        return HandshakeResponse41(caps, max_packet, charset, user, auth, database, plugin, attrs)

    def encode(self) -> bytes:
        caps = self.capabilities
        out = [_U32.pack(caps), _U32.pack(self.max_packet), bytes((self.charset,)), b"\0" * 23, self.user, b"\0"]
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            out.append(lenenc_bytes(self.auth_response))
        elif caps & Capability.SECURE_CONNECTION:
            out.append(bytes((len(self.auth_response),)) + self.auth_response)
        else:
            out.append(self.auth_response + b"\0")
        if caps & Capability.CONNECT_WITH_DB:
            out.append((self.database or b"") + b"\0")
        if caps & Capability.PLUGIN_AUTH:
            out.append((self.auth_plugin or "").encode("ascii") + b"\0")
        if caps & Capability.CONNECT_ATTRS:
            attrs = b"".join(lenenc_bytes(k.encode()) + lenenc_bytes(v.encode()) for k, v in self.attributes.items())
            out.append(lenenc_bytes(attrs))
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class AuthSwitchRequest:
    plugin: str
    data: bytes  # the nonce, NUL-terminated on the wire

    def encode(self) -> bytes:
        return b"\xfe" + self.plugin.encode("ascii") + b"\0" + self.data + b"\0"

    @classmethod
    def decode(cls, payload: bytes) -> AuthSwitchRequest:
        r = Reader(payload)
        if r.u8() != 0xFE:
            raise PacketError("not an AuthSwitchRequest")
        plugin = r.nul_bytes("plugin name").decode("ascii", "replace")
        data = r.rest()
        return cls(plugin, data[:-1] if data.endswith(b"\0") else data)


@dataclass(frozen=True, slots=True)
class AuthMoreData:
    data: bytes

    def encode(self) -> bytes:
        return b"\x01" + self.data


# --- generic responses -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OkPacket:
    affected_rows: int = 0
    last_insert_id: int = 0
    status: int = 0
    warnings: int = 0
    info: bytes = b""
    eof: bool = False  # the OK that ends a result set under CLIENT_DEPRECATE_EOF (header 0xFE)

    def encode(self) -> bytes:
        return b"".join((b"\xfe" if self.eof else b"\x00", lenenc_int(self.affected_rows),
                         lenenc_int(self.last_insert_id), _U16.pack(self.status & 0xFFFF),
                         _U16.pack(min(self.warnings, 0xFFFF)), self.info))

    @classmethod
    def decode(cls, payload: bytes) -> OkPacket:
        r = Reader(payload)
        header = r.u8()
        if header not in (0x00, 0xFE):
            raise PacketError("not an OK packet")
        return cls(r.lenenc_int() or 0, r.lenenc_int() or 0, r.u16(), r.u16(), r.rest(), header == 0xFE)


@dataclass(frozen=True, slots=True)
class EofPacket:
    warnings: int = 0
    status: int = 0

    def encode(self) -> bytes:
        return b"\xfe" + _U16.pack(min(self.warnings, 0xFFFF)) + _U16.pack(self.status & 0xFFFF)

    @classmethod
    def decode(cls, payload: bytes) -> EofPacket:
        r = Reader(payload)
        if r.u8() != 0xFE or len(payload) > 5:
            raise PacketError("not an EOF packet")
        return cls(r.u16(), r.u16())


@dataclass(frozen=True, slots=True)
class ErrPacket:
    errno: int
    sqlstate: str
    message: str

    def encode(self) -> bytes:
        state = (self.sqlstate.encode("ascii", "replace") + b"HY000")[:5]
        return b"\xff" + _U16.pack(self.errno & 0xFFFF) + b"#" + state + self.message.encode("utf-8", "replace")

    @classmethod
    def decode(cls, payload: bytes) -> ErrPacket:
        r = Reader(payload)
        if r.u8() != 0xFF:
            raise PacketError("not an ERR packet")
        errno = r.u16()
        state = "HY000"
        if r.remaining and payload[r.pos] == 0x23:  # '#'
            r.pos += 1
            state = r.fixed(5).decode("ascii", "replace")
        return cls(errno, state, r.rest().decode("utf-8", "replace"))


# --- result sets --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ColumnDefinition:
    name: str
    type: int
    charset: int = 63
    length: int = 0
    flags: int = 0
    decimals: int = 0
    schema: str = ""
    table: str = ""
    org_table: str = ""
    org_name: str = ""
    default: bytes | None = None  # COM_FIELD_LIST only

    def encode(self) -> bytes:
        enc = _lenenc_text
        out = b"".join((b"\x03def", enc(self.schema), enc(self.table), enc(self.org_table), enc(self.name),
                        enc(self.org_name), b"\x0c", _U16.pack(self.charset & 0xFFFF),
                        _U32.pack(min(self.length, 0xFFFFFFFF)), bytes((self.type & 0xFF,)),
                        _U16.pack(self.flags & 0xFFFF), bytes((self.decimals & 0xFF,)), b"\0\0"))
        if self.default is not None:
            out += lenenc_bytes(self.default)
        return out

    @classmethod
    def decode(cls, payload: bytes) -> ColumnDefinition:
        r = Reader(payload)
        r.lenenc_bytes("catalog")
        schema, table, org_table, name, org_name = (r.lenenc_bytes().decode("utf-8", "replace") for _ in range(5))
        r.lenenc_int("fixed-length fields length")
        charset, length, type_, flags, decimals = r.u16(), r.u32(), r.u8(), r.u16(), r.u8()
        r.fixed(2, "filler")
        default = r.lenenc_bytes("default") if r.remaining else None
        return cls(name, type_, charset, length, flags, decimals, schema, table, org_table, org_name, default)


def _lenenc_text(s: str) -> bytes:
    b = s.encode("utf-8")
    return bytes((len(b),)) + b if len(b) < 251 else lenenc_int(len(b)) + b


def text_row(values: Sequence[bytes | None]) -> bytes:
    """A row of the text protocol: each value length-encoded, NULL as 0xFB."""
    out = []
    for v in values:
        if v is None:
            out.append(b"\xfb")
        else:
            n = len(v)
            out.append(bytes((n,)) if n < 251 else lenenc_int(n))
            out.append(v)
    return b"".join(out)


def read_text_row(payload: bytes, count: int) -> list[bytes | None]:
    r = Reader(payload)
    out: list[bytes | None] = []
    for _ in range(count):
        n = r.lenenc_int("a value")
        out.append(None if n is None else r.fixed(n, "a value"))
    return out


@dataclass(frozen=True, slots=True)
class StmtPrepareOk:
    statement_id: int
    num_columns: int
    num_params: int
    warnings: int = 0

    def encode(self) -> bytes:
        return (b"\x00" + _U32.pack(self.statement_id) + _U16.pack(min(self.num_columns, 0xFFFF))
                + _U16.pack(min(self.num_params, 0xFFFF)) + b"\x00" + _U16.pack(min(self.warnings, 0xFFFF)))

    @classmethod
    def decode(cls, payload: bytes) -> StmtPrepareOk:
        r = Reader(payload)
        if r.u8() != 0:
            raise PacketError("not a COM_STMT_PREPARE OK packet")
        stmt, cols, params = r.u32(), r.u16(), r.u16()
        r.u8()
        return cls(stmt, cols, params, r.u16() if r.remaining >= 2 else 0)
