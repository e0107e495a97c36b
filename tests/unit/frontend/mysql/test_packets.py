"""Packets of the MySQL protocol: length-encoded values, framing (16 MB splitting), every packet both ways, and
malformed input (only ``PacketError`` ever comes out of a decoder)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.frontend.mysql.constants import MAX_PACKET_CHUNK, Capability, FieldType, WireError
from router.frontend.mysql.packets import (
    AuthMoreData,
    AuthSwitchRequest,
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
    lenenc_bytes,
    lenenc_int,
    read_text_row,
    text_row,
)
from tests.support.mysql_wire import CLIENT_CAPS


@pytest.mark.parametrize(("n", "size"), [(0, 1), (250, 1), (251, 3), (0xFFFF, 3), (0x10000, 4), (0xFFFFFF, 4),
                                         (0x1000000, 9), (2**64 - 1, 9)])
def test_lenenc_int_boundaries(n: int, size: int) -> None:
    data = lenenc_int(n)
    assert len(data) == size
    assert Reader(data).lenenc_int() == n


def test_lenenc_null_and_0xff() -> None:
    assert Reader(b"\xfb").lenenc_int() is None
    with pytest.raises(PacketError):
        Reader(b"\xff").lenenc_int()
    with pytest.raises(PacketError):
        Reader(b"\xfb").lenenc_bytes()


@pytest.mark.parametrize("n", [0, 1, 250, 251, 300, 70000])
def test_lenenc_bytes_roundtrip(n: int) -> None:
    value = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
    r = Reader(lenenc_bytes(value) + b"tail")
    assert r.lenenc_bytes() == value
    assert r.rest() == b"tail"


def test_reader_short_reads() -> None:
    cases = [(b"\x01", Reader.u16), (b"\x01\x02", Reader.u24), (b"abc", Reader.u32), (b"1234567", Reader.u64)]
    for data, read in cases:
        with pytest.raises(PacketError):
            read(Reader(data))
    with pytest.raises(PacketError):
        Reader(b"\x05ab").lenenc_bytes()
    with pytest.raises(PacketError):
        Reader(b"no terminator").nul_bytes()
    assert Reader(b"no terminator").nul_bytes(eof_ok=True) == b"no terminator"


# --- framing ------------------------------------------------------------------------------------------------------
def _decode_all(data: bytes, limit: int = 1 << 30) -> list[tuple[int, int, bytes]]:
    dec = PacketDecoder(limit)
    dec.feed(data)
    out = []
    while (p := dec.next_packet()) is not None:
        out.append(p)
    return out


def test_small_packet_framing() -> None:
    data, nxt = frame(b"hello", 3)
    assert data == b"\x05\x00\x00\x03hello"
    assert nxt == 4
    assert _decode_all(data) == [(3, 3, b"hello")]


def test_sequence_wraps() -> None:
    data, nxt = frame(b"x", 255)
    assert nxt == 0
    assert data[3] == 255


@pytest.mark.parametrize("size", [MAX_PACKET_CHUNK - 1, MAX_PACKET_CHUNK, MAX_PACKET_CHUNK + 1,
                                  2 * MAX_PACKET_CHUNK, 2 * MAX_PACKET_CHUNK + 5])
def test_16mb_split_and_join(size: int) -> None:
    payload = bytes([7]) * size
    data, nxt = frame(payload, 0)
    parts = size // MAX_PACKET_CHUNK + 1
    assert nxt == parts % 256
    assert len(data) == size + 4 * parts  # an exact multiple ends with an empty packet
    headers = []
    pos = 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 3], "little")
        headers.append((n, data[pos + 3]))
        pos += 4 + n
    assert [seq for _, seq in headers] == list(range(parts))
    assert all(n == MAX_PACKET_CHUNK for n, _ in headers[:-1]) and headers[-1][0] < MAX_PACKET_CHUNK
    ((first, last, joined),) = _decode_all(data)
    assert (first, last) == (0, parts - 1)
    assert joined == payload


def test_split_packet_fed_byte_ranges() -> None:
    payload = bytes(range(256)) * (MAX_PACKET_CHUNK // 256 + 10)
    data, _ = frame(payload, 0)
    data += frame(b"next", 0)[0]
    dec = PacketDecoder(1 << 30)
    got = []
    for i in range(0, len(data), 1_000_003):
        dec.feed(data[i:i + 1_000_003])
        while (p := dec.next_packet()) is not None:
            got.append(p[2])
    assert got == [payload, b"next"]


def test_split_packet_out_of_order_part() -> None:
    data = bytearray(frame(bytes(MAX_PACKET_CHUNK + 3), 0)[0])
    data[4 + MAX_PACKET_CHUNK + 3] = 9  # the second part claims sequence id 9
    with pytest.raises(PacketError) as info:
        _decode_all(bytes(data))
    assert info.value.errno == WireError.NET_PACKETS_OUT_OF_ORDER


def test_oversized_packet_refused_from_its_header() -> None:
    dec = PacketDecoder(1000)
    dec.feed(b"\xe9\x03\x00\x00")  # 1001 bytes announced, none sent
    with pytest.raises(PacketError) as info:
        dec.next_packet()
    assert info.value.errno == WireError.NET_PACKET_TOO_LARGE
    dec = PacketDecoder(MAX_PACKET_CHUNK + 10)
    dec.feed(frame(bytes(MAX_PACKET_CHUNK + 11), 0)[0][:MAX_PACKET_CHUNK + 8])
    with pytest.raises(PacketError):  # the second part's header already passes the limit
        while dec.next_packet() is not None:
            pass


def test_decoder_buffers_partial_input() -> None:
    data = frame(b"abcdef", 0)[0] + frame(b"gh", 1)[0]
    dec = PacketDecoder()
    dec.feed(data[:3])
    assert dec.next_packet() is None
    dec.feed(data[3:8])
    assert dec.next_packet() is None
    dec.feed(data[8:])
    assert dec.next_packet() == (0, 0, b"abcdef")
    assert dec.next_packet() == (1, 1, b"gh")
    assert dec.next_packet() is None
    assert dec.buffered == 0


def test_frame_many_matches_frame() -> None:
    payloads = [b"a", b"", b"x" * 300]
    many, seq = frame_many(payloads, 5)
    one = b"".join(frame(p, 5 + i)[0] for i, p in enumerate(payloads))
    assert many == one and seq == 8


# --- packets -------------------------------------------------------------------------------------------------------
def test_handshake_v10_roundtrip() -> None:
    nonce = bytes(range(1, 21))
    hs = HandshakeV10(42, "8.0.31-shardgate", nonce, CLIENT_CAPS | Capability.SSL, 45, 2, "caching_sha2_password")
    data = hs.encode()
    assert data[0] == 10 and b"8.0.31-shardgate\0" in data
    assert HandshakeV10.decode(data) == hs


@pytest.mark.parametrize("caps_off", [0, Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA, Capability.CONNECT_ATTRS,
                                      Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA | Capability.SECURE_CONNECTION])
def test_handshake_response_roundtrip(caps_off: int) -> None:
    caps = (CLIENT_CAPS | Capability.CONNECT_WITH_DB) & ~caps_off
    resp = HandshakeResponse41(caps, 1 << 24, 45, b"app", b"\x01" * 20, b"customer:-80", "mysql_native_password",
                               {"_client_name": "x"} if caps & Capability.CONNECT_ATTRS else {})
    back = HandshakeResponse41.decode(resp.encode())
    assert back == resp


def test_handshake_response_without_optional_trailing_nul() -> None:
    caps = CLIENT_CAPS & ~Capability.CONNECT_ATTRS | Capability.CONNECT_WITH_DB
    data = HandshakeResponse41(caps, 0, 33, b"u", b"", b"db", "mysql_native_password").encode()
    back = HandshakeResponse41.decode(data[:-1])  # some clients omit the last NUL
    assert isinstance(back, HandshakeResponse41) and back.auth_plugin == "mysql_native_password"


def test_ssl_request() -> None:
    req = SSLRequest(CLIENT_CAPS | Capability.SSL, 1 << 24, 45)
    assert len(req.encode()) == 32
    assert HandshakeResponse41.decode(req.encode()) == req


def test_handshake_response_needs_protocol_41() -> None:
    with pytest.raises(PacketError) as info:
        HandshakeResponse41.decode(b"\x00" * 32 + b"u\0")
    assert info.value.errno == WireError.HANDSHAKE


def test_auth_packets() -> None:
    req = AuthSwitchRequest("caching_sha2_password", b"n" * 20)
    assert req.encode() == b"\xfecaching_sha2_password\0" + b"n" * 20 + b"\0"
    assert AuthSwitchRequest.decode(req.encode()) == req
    assert AuthMoreData(b"\x04").encode() == b"\x01\x04"


def test_ok_eof_err() -> None:
    ok = OkPacket(3, 300, 0x0003, 2, b"Rows matched: 3")
    assert OkPacket.decode(ok.encode()) == ok
    assert ok.encode()[0] == 0
    assert OkPacket(eof=True).encode()[0] == 0xFE
    eof = EofPacket(1, 0x0022)
    assert eof.encode() == b"\xfe\x01\x00\x22\x00"
    assert EofPacket.decode(eof.encode()) == eof
    err = ErrPacket(1146, "42S02", "Table 'x' doesn't exist")
    assert err.encode()[:9] == b"\xff\x7a\x04#42S02"
    assert ErrPacket.decode(err.encode()) == err


def test_column_definition_roundtrip() -> None:
    col = ColumnDefinition("balance", FieldType.NEWDECIMAL, 63, 14, 0x1001, 2, "customer", "customer", "customer",
                           "balance")
    data = col.encode()
    assert data.startswith(b"\x03def")
    assert ColumnDefinition.decode(data) == col
    with_default = ColumnDefinition("a", FieldType.LONG, default=b"")
    assert ColumnDefinition.decode(with_default.encode()).default == b""


def test_text_rows() -> None:
    values = [b"1", None, b"", b"x" * 300]
    payload = text_row(values)
    assert payload[:3] == b"\x011\xfb"
    assert read_text_row(payload, 4) == values


def test_prepare_ok() -> None:
    ok = StmtPrepareOk(7, 2, 3, 1)
    assert len(ok.encode()) == 12
    assert StmtPrepareOk.decode(ok.encode()) == ok


DECODERS = [HandshakeV10.decode, HandshakeResponse41.decode, AuthSwitchRequest.decode, OkPacket.decode,
            EofPacket.decode, ErrPacket.decode, ColumnDefinition.decode, StmtPrepareOk.decode,
            lambda b: read_text_row(b, 3)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, len(DECODERS) - 1))
def test_malformed_input_raises_only_packet_error(data: bytes, which: int) -> None:
    try:
        DECODERS[which](data)
    except PacketError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_never_raises_anything_else(data: bytes) -> None:
    dec = PacketDecoder(100)
    dec.feed(data)
    try:
        while dec.next_packet() is not None:
            pass
    except PacketError:
        pass
