"""Text and binary formats of the common types, against what PostgreSQL 15 prints and sends."""
import datetime as dt
import math
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.backend.result import Column, TypeCode
from router.frontend.postgres import binfmt, textfmt
from router.frontend.postgres import oids as O
from router.frontend.postgres import types as T
from sharding.errors import InvalidValueError

UTC = dt.UTC


@pytest.mark.parametrize(("oid", "value", "text"), [
    (O.BOOL, True, "t"), (O.BOOL, False, "f"),
    (O.INT2, -5, "-5"), (O.INT4, 2**31 - 1, "2147483647"), (O.INT8, -(2**63), "-9223372036854775808"),
    (O.INT8, Decimal("7"), "7"),
    (O.FLOAT8, 1.5, "1.5"), (O.FLOAT8, 100.0, "100"), (O.FLOAT8, 1e15, "1e+15"), (O.FLOAT8, 1e-5, "1e-05"),
    (O.FLOAT8, 123456789012345.0, "123456789012345"), (O.FLOAT8, 0.1 + 0.2, "0.30000000000000004"),
    (O.FLOAT8, math.inf, "Infinity"), (O.FLOAT8, -math.inf, "-Infinity"), (O.FLOAT8, math.nan, "NaN"),
    (O.FLOAT8, -0.0, "-0"), (O.FLOAT4, 1.100000023841858, "1.1"), (O.FLOAT4, 1e6, "1e+06"),
    (O.FLOAT4, 123456.0, "123456"),
    (O.NUMERIC, Decimal("12.50"), "12.50"), (O.NUMERIC, Decimal("1E+3"), "1000"), (O.NUMERIC, Decimal("NaN"), "NaN"),
    (O.NUMERIC, 5, "5"), (O.NUMERIC, 0.25, "0.25"),
    (O.TEXT, "héllo", "héllo"), (O.VARCHAR, "a", "a"), (O.BPCHAR, "ab  ", "ab  "), (O.NAME, "n", "n"),
    (O.BYTEA, b"\x00\xffA", "\\x00ff41"),
    (O.DATE, dt.date(2024, 2, 29), "2024-02-29"), (O.DATE, dt.date.max, "infinity"),
    (O.TIMESTAMP, dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05"),
    (O.TIMESTAMP, dt.datetime(2024, 1, 2, 3, 4, 5, 500000), "2024-01-02 03:04:05.5"),
    (O.TIMESTAMPTZ, dt.datetime(2024, 1, 2, 3, 4, 5, 120, tzinfo=UTC), "2024-01-02 03:04:05.00012+00"),
    (O.TIME, dt.time(23, 59, 1), "23:59:01"),
    (O.TIMETZ, dt.time(1, 2, 3, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))), "01:02:03+05:30"),
    (O.INTERVAL, dt.timedelta(days=1, hours=2), "1 day 02:00:00"),
    (O.INTERVAL, dt.timedelta(days=-1, hours=2), "-22:00:00"),  # asyncpg folds both forms into one timedelta
    (O.INTERVAL, dt.timedelta(days=-2, hours=-3), "-2 days -03:00:00"),
    (O.INTERVAL, dt.timedelta(seconds=1.5), "00:00:01.5"), (O.INTERVAL, dt.timedelta(days=3), "3 days"),
    (O.INTERVAL, dt.timedelta(hours=-1), "-01:00:00"),
    (O.UUID, uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
    (O.JSONB, '{"a": 1}', '{"a": 1}'), (O.JSON, {"a": [1]}, '{"a": [1]}'),
    (1007, [1, None, 3], "{1,NULL,3}"), (1009, ["a b", "", 'q"', "NULL", "x"], '{"a b","","q\\"","NULL",x}'),
    (1007, [[1, 2], [3, 4]], "{{1,2},{3,4}}"),
])
def test_text_output(oid: int, value: object, text: str) -> None:
    assert T.text_encoder(oid)(value) == text.encode()


def test_timestamptz_in_the_session_time_zone() -> None:
    v = dt.datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    assert T.text_encoder(O.TIMESTAMPTZ, "Europe/Paris")(v) == b"2024-07-01 14:00:00+02"
    assert T.text_encoder(O.TIMESTAMPTZ, "Asia/Kolkata")(v) == b"2024-07-01 17:30:00+05:30"
    with pytest.raises(InvalidValueError):
        textfmt.zone("Mars/Olympus")


@pytest.mark.parametrize(("oid", "value", "wire"), [
    (O.BOOL, True, "01"), (O.INT2, -2, "fffe"), (O.INT4, 1, "00000001"), (O.INT8, 1, "0000000000000001"),
    (O.FLOAT8, 1.5, "3ff8000000000000"), (O.FLOAT4, 1.5, "3fc00000"),
    (O.NUMERIC, Decimal("12.50"), "0002000000000002000c1388"), (O.NUMERIC, Decimal("-0.5"), "0001ffff400000011388"),
    (O.NUMERIC, Decimal("0"), "0000000000000000"), (O.NUMERIC, Decimal("10000"), "00010001000000000001"),
    (O.NUMERIC, Decimal("NaN"), "00000000c0000000"),
    (O.DATE, dt.date(2000, 1, 2), "00000001"), (O.DATE, dt.date(1999, 12, 31), "ffffffff"),
    (O.TIMESTAMP, dt.datetime(2000, 1, 1, 0, 0, 1), "00000000000f4240"),
    (O.TIMESTAMPTZ, dt.datetime(2000, 1, 1, 1, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))), "00000000000f4240"),
    (O.TIME, dt.time(0, 0, 1), "00000000000f4240"),
    (O.INTERVAL, dt.timedelta(days=2, seconds=1), "00000000000f42400000000200000000"),
    (O.UUID, uuid.UUID(int=1), "00000000000000000000000000000001"),
    (O.JSONB, "{}", "017b7d"), (O.TEXT, "é", "c3a9"), (O.BYTEA, b"\x01", "01"),
    (1007, [1, None], "00000001000000010000001700000002000000010000000400000001ffffffff"),
    (O.INET, "10.0.0.1/8", "0208000401000000"[:6] + "040a000001"),
])
def test_binary_output(oid: int, value: object, wire: str) -> None:
    enc = T.binary_encoder(oid)
    assert enc is not None
    assert enc(value).hex() == wire


@pytest.mark.parametrize(("oid", "value"), [
    (O.BOOL, False), (O.INT2, 32767), (O.INT4, -1), (O.INT8, 2**62), (O.FLOAT8, -2.5), (O.FLOAT4, 0.5),
    (O.NUMERIC, Decimal("123456789.000000001")), (O.NUMERIC, Decimal("-1E-20")), (O.NUMERIC, Decimal("100.00")),
    (O.TEXT, "x"), (O.BYTEA, b"\0"),
    (O.DATE, dt.date(1, 1, 2)), (O.DATE, dt.date(9999, 12, 30)),  # date.min/max stand for ±infinity, as in asyncpg
    (O.TIMESTAMP, dt.datetime(2024, 5, 6, 7, 8, 9, 10)), (O.TIMESTAMPTZ, dt.datetime(2024, 5, 6, tzinfo=UTC)),
    (O.TIME, dt.time(12, 0)), (O.UUID, uuid.uuid4()), (O.JSON, "[1]"), (O.JSONB, '{"k": "v"}'),
    (O.INTERVAL, dt.timedelta(days=-3, microseconds=5)),
    (O.TIMETZ, dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(hours=-3)))),
])
def test_binary_round_trip(oid: int, value: object) -> None:
    enc, dec = T.binary_encoder(oid), T.binary_decoder(oid)
    assert enc is not None and dec is not None
    assert dec(enc(value)) == value


def test_binary_array_parameters_become_their_text_form() -> None:
    for oid, value, text in ((1009, ["a", None, "c d"], '{a,NULL,"c d"}'), (1007, [[1, 2], [3, 4]], "{{1,2},{3,4}}")):
        enc, dec = T.binary_encoder(oid), T.binary_decoder(oid)
        assert enc is not None and dec is not None
        assert dec(enc(value)) == text


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_numeric_binary_round_trip_keeps_value_and_scale(value: Decimal) -> None:
    back = binfmt.decode_numeric(binfmt.encode_numeric(value))
    assert back == value
    if value.as_tuple().exponent < 0:  # type: ignore[operator]
        assert back.as_tuple().exponent == value.as_tuple().exponent


@given(st.floats(allow_nan=False))
def test_float8_text_reads_back_exactly(value: float) -> None:
    text = textfmt.format_float8(value)
    assert float(text.replace("Infinity", "inf")) == value


@pytest.mark.parametrize(("oid", "text", "value"), [
    (O.INT4, " 42 ", 42), (O.INT8, "-9223372036854775808", -(2**63)), (O.BOOL, "yes", True), (O.BOOL, "f", False),
    (O.NUMERIC, "1.50", Decimal("1.50")), (O.FLOAT8, "Infinity", math.inf), (O.FLOAT8, "1e3", 1000.0),
    (O.BYTEA, "\\x00ff", b"\x00\xff"), (O.BYTEA, "a\\\\b\\001", b"a\\b\x01"),
    (O.DATE, "2024-01-02", dt.date(2024, 1, 2)), (O.DATE, "infinity", "infinity"),
    (O.TIMESTAMP, "2024-01-02 03:04:05.5", dt.datetime(2024, 1, 2, 3, 4, 5, 500000)),
    (O.TIMESTAMPTZ, "2024-01-02 03:04:05+02", dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)),
    (O.TIMESTAMPTZ, "2024-01-02 03:04:05", "2024-01-02 03:04:05"),  # the shard's TimeZone decides
    (O.UUID, "12345678-1234-5678-1234-567812345678", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    (0, "anything", "anything"), (O.TEXT, "t", "t"), (O.JSONB, "{}", "{}"),
])
def test_text_parameters(oid: int, text: str, value: object) -> None:
    assert T.text_decoder(oid)(text.encode()) == value


@pytest.mark.parametrize(("oid", "text"), [
    (O.INT2, "40000"), (O.INT4, "1_000"), (O.INT4, "x"), (O.INT8, "1.5"), (O.BOOL, "maybe"), (O.NUMERIC, "1e"),
    (O.FLOAT8, "one"), (O.UUID, "nope"), (O.BYTEA, "\\xzz"), (O.TEXT, "\udcff"),
])
def test_bad_text_parameters(oid: int, text: str) -> None:
    with pytest.raises(InvalidValueError):
        T.text_decoder(oid)(text.encode("utf-8", "surrogateescape"))


@pytest.mark.parametrize(("oid", "data"), [
    (O.INT4, b"\0\0\0"), (O.INT8, b"\0" * 9), (O.BOOL, b""), (O.UUID, b"\0" * 15), (O.DATE, b"\0"),
    (O.NUMERIC, b"\0\x01\0\0\0\0\0\0"), (O.NUMERIC, b"\0\x01\0\0\0\0\0\0\x27\x10"), (O.JSONB, b"\x02{}"),
    (1007, b"\0\0\0\x01\0\0\0\0\0\0\0\x17\0\0\0\x05\0\0\0\x01\0\0\0\x04"), (O.TIME, b"\xff" * 8),
    (O.INET, b"\x02\x40\0\x04\x01\x02\x03\x04"),
])
def test_bad_binary_parameters(oid: int, data: bytes) -> None:
    dec = T.binary_decoder(oid)
    assert dec is not None
    with pytest.raises(InvalidValueError):
        dec(data)


def test_column_oids() -> None:
    pg = Column("a", TypeCode.INT, "postgres", 23, "int4")
    assert T.column_oid(pg) == 23
    assert T.column_oid(Column("b", TypeCode.JSON, "postgres", 3802, "jsonb")) == O.JSONB
    assert T.column_oid(Column("c", TypeCode.VARCHAR, "router", 0, "varchar")) == O.TEXT
    assert T.column_oid(Column("d", TypeCode.BIGINT, "mysql", 8, "bigint", unsigned=True)) == O.NUMERIC
    assert T.column_oid(Column("e", TypeCode.TINYINT, "mysql", 1, "tinyint")) == O.INT2
    assert T.oid_name(1007) == "integer[]"
