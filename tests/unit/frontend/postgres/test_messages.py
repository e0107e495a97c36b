"""Message framing and every message's encoding and decoding, with the strict checks of the server's pq_getmsg*."""
import struct

import pytest

from router.frontend.postgres import messages as M


def frames(data: bytes, max_message: int = M.DEFAULT_MAX_MESSAGE) -> list[tuple[int, bytes]]:
    f = M.Framer(max_message)
    f.feed(data)
    out = []
    while (msg := f.next_message()) is not None:
        out.append(msg)
    return out


def decode(data: bytes) -> object:
    ((kind, body),) = frames(data)
    return M.decode_frontend(kind, body)


# --- framing ---------------------------------------------------------------------------------------------------
def test_framer_splits_concatenated_messages_and_waits_for_partial_ones() -> None:
    data = M.fe_query("select 1") + M.fe_sync() + M.fe_query("x")
    f = M.Framer()
    for i in range(len(data) - 3):  # byte by byte: never a message before its last byte
        f.feed(data[i:i + 1])
    got = []
    while (m := f.next_message()) is not None:
        got.append(m)
    assert [chr(k) for k, _ in got] == ["Q", "S"]
    f.feed(data[-3:])
    assert f.next_message() == (ord("Q"), b"x\0")
    assert f.buffered == 0


def test_framer_compacts_its_buffer() -> None:
    f = M.Framer()
    msg = M.fe_query("x" * 1000)
    for _ in range(200):
        f.feed(msg)
        assert f.next_message() is not None
    assert len(f.buf) < 70_000


@pytest.mark.parametrize("length", [0, 3, -1, -2147483648])
def test_framer_rejects_impossible_lengths_as_fatal(length: int) -> None:
    f = M.Framer()
    f.feed(b"Q" + struct.pack("!i", length) + b"xx")
    with pytest.raises(M.ProtocolViolation) as info:
        f.next_message()
    assert info.value.fatal


def test_framer_enforces_the_maximum_message_size_before_buffering_it() -> None:
    f = M.Framer(max_message=1024)
    f.feed(b"Q" + struct.pack("!i", 1025))  # only the header: refused without waiting for the body
    with pytest.raises(M.ProtocolViolation) as info:
        f.next_message()
    assert info.value.fatal and info.value.sqlstate == "54000"
    assert frames(M.fe_query("x" * 1000), max_message=1024)


def test_startup_packets() -> None:
    f = M.Framer()
    f.feed(M.fe_ssl_request() + M.fe_startup({"user": "u", "database": "d"}))
    assert isinstance(M.decode_startup(f.next_startup() or b""), M.SSLRequest)
    msg = M.decode_startup(f.next_startup() or b"")
    assert isinstance(msg, M.Startup) and msg.params == {"user": "u", "database": "d"}
    assert (msg.major, msg.minor) == (3, 0)
    assert isinstance(M.decode_startup(M.fe_gssenc_request()[4:]), M.GSSENCRequest)
    assert M.decode_startup(M.fe_cancel(7, 0xDEADBEEF)[4:]) == M.CancelRequest(7, 0xDEADBEEF)


def test_startup_records_protocol_extensions_and_minor_versions() -> None:
    body = M.fe_startup({"user": "u", "_pq_.compression": "on"}, version=(3 << 16) | 2)[4:]
    msg = M.decode_startup(body)
    assert isinstance(msg, M.Startup) and msg.minor == 2 and msg.unknown_options == ("_pq_.compression",)
    assert "_pq_.compression" not in msg.params


@pytest.mark.parametrize("body", [
    struct.pack("!i", 2 << 16) + b"user\0u\0\0",  # protocol 2
    struct.pack("!i", 196608) + b"user\0u\0",  # no terminating NUL
    struct.pack("!i", 196608) + b"user\0u\0user\0v\0\0",  # duplicate
    struct.pack("!i", 196608) + b"user\0u\0\0extra",  # trailing bytes
    struct.pack("!i", 80877103) + b"x",  # SSLRequest with a body
    struct.pack("!i", 80877102) + b"\0\0\0\1",  # short CancelRequest
    b"\0\0",
])
def test_bad_startup_packets(body: bytes) -> None:
    with pytest.raises(M.ProtocolViolation):
        M.decode_startup(body)


@pytest.mark.parametrize("size", [4, 7, 10_001, -5])
def test_startup_packet_lengths(size: int) -> None:
    f = M.Framer()
    f.feed(struct.pack("!i", size) + b"\0" * 16)
    with pytest.raises(M.ProtocolViolation):
        f.next_startup()


# --- every frontend message ----------------------------------------------------------------------------------------
def test_every_frontend_message_round_trips() -> None:
    assert decode(M.fe_query("select 1")) == M.Query("select 1")
    assert decode(M.fe_parse("s1", "select $1", [23, 0])) == M.Parse("s1", "select $1", (23, 0))
    assert decode(M.fe_bind("p", "s", [b"1", None, b""], [0, 1, 0], [1])) == \
        M.Bind("p", "s", (0, 1, 0), (b"1", None, b""), (1,))
    assert decode(M.fe_describe("S", "s")) == M.Describe("S", "s")
    assert decode(M.fe_describe("P", "")) == M.Describe("P", "")
    assert decode(M.fe_execute("p", 10)) == M.Execute("p", 10)
    assert decode(M.fe_execute("p", -1)) == M.Execute("p", 0)
    assert decode(M.fe_close("S", "s")) == M.Close("S", "s")
    assert decode(M.fe_sync()) is M.SYNC
    assert decode(M.fe_flush()) is M.FLUSH
    assert decode(M.fe_terminate()) is M.TERMINATE
    assert decode(M.fe_copy_data(b"1\t2\n")) == M.CopyData(b"1\t2\n")
    assert decode(M.fe_copy_done()) is M.COPY_DONE
    assert decode(M.fe_copy_fail("no")) == M.CopyFail("no")
    assert decode(M.fe_password(b"md5abc\0")) == M.PasswordData(b"md5abc\0")
    assert decode(b"F" + struct.pack("!iI", 8, 1234)) == M.FunctionCall(1234)


@pytest.mark.parametrize("data", [
    b"Q\0\0\0\x08abcd",  # no NUL
    b"Q\0\0\0\x07a\0b",  # bytes after the string
    b"S\0\0\0\x05x",  # Sync with a body
    b"H\0\0\0\x05x",
    b"D\0\0\0\x07Xs\0",  # Describe kind
    b"C\0\0\0\x05S",  # Close without name
    b"E\0\0\0\x06p\0",  # Execute without row count
    b"P\0\0\0\x0as\0q\0\xff\xff",  # negative parameter type count
    b"P\0\0\0\x0as\0q\0\0\x01",  # one type announced, none sent
    b"Q\0\0\0\x07\xff\xfe\0",  # not UTF-8
])
def test_malformed_bodies_are_protocol_violations(data: bytes) -> None:
    with pytest.raises(M.ProtocolViolation) as info:
        decode(data)
    assert not info.value.fatal


def test_bind_checks() -> None:
    with pytest.raises(M.ProtocolViolation, match="format"):
        decode(M.fe_bind("", "", [b"1"], [2]))
    with pytest.raises(M.ProtocolViolation, match="2 parameter formats but 1"):
        decode(M.fe_bind("", "", [b"1"], [0, 0]))
    bad_len = M.fe_bind("", "", [b"12"])[:-5] + b"\x7f\x00\x00\x00" + b"12\0\0"
    with pytest.raises(M.ProtocolViolation):
        decode(bad_len[:1] + struct.pack("!i", len(bad_len) - 1) + bad_len[5:])


def test_framer_checks_the_type_byte_before_waiting_for_the_length() -> None:
    f = M.Framer()
    f.feed(b"\0")  # a startup packet where a message belongs: refused on its first byte
    with pytest.raises(M.ProtocolViolation, match="invalid frontend message type 0") as info:
        f.next_message()
    assert info.value.fatal
    f = M.Framer()
    f.feed(b"S" + struct.pack("!i", 20_000))  # a Sync announcing a large body
    with pytest.raises(M.ProtocolViolation, match="Sync message length"):
        f.next_message()


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(M.ProtocolViolation, match="invalid frontend message type"):
        M.decode_frontend(ord("z"), b"")


# --- backend messages ---------------------------------------------------------------------------------------------
def test_backend_messages_encode_as_the_server_does() -> None:
    assert M.ready_for_query("I") == b"Z\0\0\0\x05I"
    assert M.command_complete("SELECT 1") == b"C\0\0\0\x0dSELECT 1\0"
    assert M.parameter_status("a", "b") == b"S\0\0\0\x08a\0b\0"
    assert M.backend_key_data(1, 0xFFFFFFFF) == b"K\0\0\0\x0c\0\0\0\x01\xff\xff\xff\xff"
    assert M.data_row([b"1", None, b""]) == b"D\0\0\0\x13\0\x03\0\0\0\x011\xff\xff\xff\xff\0\0\0\0"
    rd = M.row_description([("a", 23, 4, -1, 0)])
    assert rd == b"T" + struct.pack("!ih", 4 + 2 + 2 + 18, 1) + b"a\0" + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0)
    assert M.parameter_description([23, 25]) == b"t\0\0\0\x0e\0\x02\0\0\0\x17\0\0\0\x19"
    assert M.auth_sasl(["SCRAM-SHA-256"]) == b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0"
    assert M.auth_md5(b"abcd") == b"R\0\0\0\x0c\0\0\0\x05abcd"
    assert M.copy_in_response(True, 2) == b"G\0\0\0\x0b\0\0\x02\0\0\0\0"
    assert M.negotiate_protocol_version(0, ["_pq_.x"]) == b"v\0\0\0\x13\0\0\0\0\0\0\0\x01_pq_.x\0"


def test_error_and_notice_fields() -> None:
    (kind, body), = M.read_backend(M.error_response("42601", "syntax error", position=8, detail="d", hint="h"))
    assert kind == "E"
    fields = M.error_fields(body)
    assert fields == {"S": "ERROR", "V": "ERROR", "C": "42601", "M": "syntax error", "D": "d", "H": "h", "P": "8"}
    (kind, body), = M.read_backend(M.notice_response("careful"))
    assert kind == "N" and M.error_fields(body)["S"] == "WARNING"
    # a NUL inside a message cannot cut the field short
    (_, body), = M.read_backend(M.error_response("XX000", "a\0b"))
    assert M.error_fields(body)["M"] == "ab"
