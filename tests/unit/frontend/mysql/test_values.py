"""Values on the wire: column definitions from ``Column``, text rows, the binary protocol both ways (every common
type, the NULL bitmap), and the system variables the router answers itself."""
from __future__ import annotations

import datetime
import struct
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.backend.mysql_columns import mysql_column
from router.backend.result import Column, TypeCode
from router.frontend.mysql import sysvars
from router.frontend.mysql.binary import (
    binary_encoders,
    binary_rows,
    decode_params,
    encode_param,
    param_type_of,
    read_binary_row,
)
from router.frontend.mysql.columns import (
    ClientCharset,
    column_definition,
    text_encoders,
    text_rows,
    wire_type,
)
from router.frontend.mysql.constants import FieldFlag, FieldType
from router.frontend.mysql.packets import PacketError, read_text_row

UTF8 = ClientCharset()


def col(name: str, code: TypeCode, **kw: Any) -> Column:
    return Column(name=name, type=code, engine=kw.pop("engine", "router"), backend_type=0,
                  backend_type_name=code.value, **kw)


def test_mysql_columns_keep_what_the_shard_said() -> None:
    c = mysql_column(name="balance", type_id=246, flags=1, collation_id=63, length=14, decimals=2, table="customer")
    d = column_definition(c, UTF8, "customer")
    assert (d.type, d.flags, d.length, d.decimals, d.charset) == (246, 1, 14, 2, 63)
    assert (d.table, d.org_table, d.schema, d.org_name) == ("customer", "customer", "customer", "balance")
    text = mysql_column(name="s", type_id=253, flags=0, collation_id=46, length=80, decimals=0)
    assert column_definition(text, UTF8).charset == 46  # its own collation (utf8mb4_bin)
    latin1 = ClientCharset.from_name("latin1")
    assert latin1 is not None and column_definition(text, latin1).charset == latin1.collation_id
    blob = mysql_column(name="b", type_id=252, flags=144, collation_id=63, length=65535, decimals=0)
    assert column_definition(blob, UTF8).charset == 63


@pytest.mark.parametrize(("code", "wire", "flags"), [
    (TypeCode.BIGINT, FieldType.LONGLONG, FieldFlag.BINARY | FieldFlag.NUM),
    (TypeCode.INT, FieldType.LONG, FieldFlag.BINARY | FieldFlag.NUM),
    (TypeCode.DECIMAL, FieldType.NEWDECIMAL, FieldFlag.BINARY | FieldFlag.NUM),
    (TypeCode.DOUBLE, FieldType.DOUBLE, FieldFlag.BINARY | FieldFlag.NUM),
    (TypeCode.VARCHAR, FieldType.VAR_STRING, 0),
    (TypeCode.TEXT, FieldType.BLOB, FieldFlag.BLOB),
    (TypeCode.BLOB, FieldType.BLOB, FieldFlag.BLOB | FieldFlag.BINARY),
    (TypeCode.DATETIME, FieldType.DATETIME, 0),
    (TypeCode.TIMESTAMPTZ, FieldType.DATETIME, 0),
    (TypeCode.DATE, FieldType.DATE, 0),
    (TypeCode.TIME, FieldType.TIME, 0),
    (TypeCode.JSON, FieldType.JSON, 0),
    (TypeCode.UUID, FieldType.STRING, 0),
    (TypeCode.BOOL, FieldType.TINY, FieldFlag.BINARY | FieldFlag.NUM),
])
def test_router_and_postgres_columns(code: TypeCode, wire: int, flags: int) -> None:
    for engine in ("router", "postgres"):
        d = column_definition(col("c", code, engine=engine, nullable=False), UTF8)
        assert d.type == wire
        assert d.flags == flags | FieldFlag.NOT_NULL
        text = code in (TypeCode.VARCHAR, TypeCode.TEXT, TypeCode.UUID)
        assert d.charset == (45 if text else 63)


def test_decimal_length_and_scale() -> None:
    d = column_definition(col("d", TypeCode.DECIMAL, precision=12, scale=2), UTF8)
    assert (d.length, d.decimals) == (14, 2)


ROW = (1, -5, Decimal("12.50"), 1.25, "h'é✓", b"\x00\xff", datetime.date(2024, 2, 29),
       datetime.datetime(2024, 1, 2, 3, 4, 5, 600), datetime.timedelta(hours=-30, seconds=5), None, True,
       datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC), "0000-00-00 00:00:00")
COLS = (col("a", TypeCode.BIGINT), col("b", TypeCode.INT), col("c", TypeCode.DECIMAL, scale=2),
        col("d", TypeCode.DOUBLE), col("e", TypeCode.VARCHAR), col("f", TypeCode.BLOB), col("g", TypeCode.DATE),
        col("h", TypeCode.DATETIME, scale=6), col("i", TypeCode.TIME), col("j", TypeCode.VARCHAR),
        col("k", TypeCode.BOOL), col("l", TypeCode.TIMESTAMPTZ), col("m", TypeCode.DATETIME, scale=0))


def test_text_row_values() -> None:
    (payload,) = text_rows([ROW], text_encoders(COLS, UTF8))
    assert read_text_row(payload, len(ROW)) == [
        b"1", b"-5", b"12.50", b"1.25", "h'é✓".encode(), b"\x00\xff", b"2024-02-29", b"2024-01-02 03:04:05.000600",
        b"-29:59:55", None, b"1", b"2024-01-02 00:00:00", b"0000-00-00 00:00:00"]


def test_text_rows_in_latin1() -> None:
    latin1 = ClientCharset.from_name("latin1")
    assert latin1 is not None
    (payload,) = text_rows([("é",)], text_encoders([col("e", TypeCode.VARCHAR)], latin1))
    assert payload == b"\x01\xe9"


def test_binary_rows_roundtrip() -> None:
    (payload,) = binary_rows([ROW], binary_encoders(COLS, UTF8))
    assert payload[0] == 0
    types = [(wire_type(c), False) for c in COLS]
    back = read_binary_row(payload, types, UTF8)
    assert back[:4] == [1, -5, Decimal("12.50"), 1.25]
    assert back[4:8] == ["h'é✓", b"\x00\xff", datetime.date(2024, 2, 29), datetime.datetime(2024, 1, 2, 3, 4, 5, 600)]
    assert back[8] == datetime.timedelta(hours=-30, seconds=5)
    assert back[9] is None and back[10] == 1
    assert back[11] == datetime.datetime(2024, 1, 2)
    assert back[12] == "0000-00-00 00:00:00"  # a zero datetime: length 0 on the wire


def test_binary_null_bitmap_offset() -> None:
    cols = [col(str(i), TypeCode.BIGINT) for i in range(9)]
    row = (None, 1, None, 2, 3, 4, 5, None, None)
    (payload,) = binary_rows([row], binary_encoders(cols, UTF8))
    # bit i + 2 is column i: columns 0 and 2 are bits 2 and 4, columns 7 and 8 are bits 9 and 10
    assert payload[1:3] == bytes((0b00010100, 0b00000110))
    assert read_binary_row(payload, [(FieldType.LONGLONG, False)] * 9, UTF8) == list(row)


def test_binary_mistyped_values_are_converted() -> None:
    cols = [col("n", TypeCode.BIGINT), col("s", TypeCode.VARCHAR), col("u", TypeCode.BIGINT, unsigned=True)]
    (payload,) = binary_rows([(Decimal("7"), 42, 2**64 - 1)], binary_encoders(cols, UTF8))
    assert read_binary_row(payload, [(FieldType.LONGLONG, False), (FieldType.VAR_STRING, False),
                                     (FieldType.LONGLONG, True)], UTF8) == [7, "42", 2**64 - 1]


PARAMS = [1, -2, 2**63 + 5, 1.5, Decimal("3.25"), "✓ok", b"\x00\x01", datetime.date(1999, 12, 31),
          datetime.datetime(2020, 5, 6, 7, 8, 9, 123456), datetime.timedelta(hours=-5, minutes=3), None, True]


def _execute_tail(params: list[Any], bind: bool = True) -> bytes:
    bitmap = bytearray((len(params) + 7) // 8)
    for i, v in enumerate(params):
        if v is None:
            bitmap[i // 8] |= 1 << (i % 8)
    out = bytes(bitmap) + bytes((1 if bind else 0,))
    types = [param_type_of(v) for v in params]
    if bind:
        out += b"".join(bytes((t, 0x80 if u else 0)) for t, u in types)
    return out + b"".join(encode_param(v, t, u) for v, (t, u) in zip(params, types, strict=True) if v is not None)


def test_decode_every_parameter_type() -> None:
    values, types = decode_params(_execute_tail(PARAMS), 0, len(PARAMS), None, {}, UTF8)
    expected = list(PARAMS)
    expected[-1] = 1  # a bool travels as TINY
    assert values == expected
    again, _ = decode_params(_execute_tail(PARAMS, bind=False), 0, len(PARAMS), types, {}, UTF8)
    assert again == expected


def test_decode_params_errors_are_packet_errors() -> None:
    with pytest.raises(PacketError):
        decode_params(b"\x00\x00", 0, 1, None, {}, UTF8)  # no types bound, none before
    with pytest.raises(PacketError):
        decode_params(b"\x00\x01\x08\x00\x01", 0, 1, None, {}, UTF8)  # a LONGLONG cut short
    with pytest.raises(PacketError):
        decode_params(b"\x00\x01\x0c\x00\x05\x00", 0, 1, None, {}, UTF8)  # a date of 5 bytes


def test_decode_params_binary_text_falls_back_to_bytes() -> None:
    tail = b"\x00\x01" + bytes((FieldType.VAR_STRING, 0)) + b"\x02\xff\xfe"
    assert decode_params(tail, 0, 1, None, {}, UTF8)[0] == [b"\xff\xfe"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 5))
def test_garbage_parameters(data: bytes, count: int) -> None:
    try:
        decode_params(data, 0, count, None, {}, UTF8)
    except PacketError:
        pass


def test_int_params_keep_their_width() -> None:
    for t, size in [(FieldType.TINY, 1), (FieldType.SHORT, 2), (FieldType.LONG, 4), (FieldType.LONGLONG, 8)]:
        tail = b"\x00\x01" + bytes((t, 0)) + struct.pack("<q", -3)[:size]
        assert decode_params(tail, 0, 1, None, {}, UTF8)[0] == [-3]
        tail = b"\x00\x01" + bytes((t, 0x80)) + b"\xff" * size
        assert decode_params(tail, 0, 1, None, {}, UTF8)[0] == [2 ** (8 * size) - 1]


# --- system variables ------------------------------------------------------------------------------------------
FACTS = sysvars.Facts(12, "app", "10.0.0.1", database="customer", max_allowed_packet=1 << 20, autocommit=False,
                      isolation="READ COMMITTED", last_insert_id=77)


@pytest.mark.parametrize(("sql", "names", "row"), [
    ("select @@version_comment limit 1", ["@@version_comment"],
     ("shardgate: a sharding router speaking the MySQL protocol",)),
    ("SELECT @@session.auto_increment_increment AS auto_increment_increment, @@character_set_client, "
     "@@max_allowed_packet AS `map`", ["auto_increment_increment", "@@character_set_client", "map"],
     (1, "utf8mb4", 1 << 20)),
    ("SELECT DATABASE()", ["DATABASE()"], ("customer",)),
    ("select connection_id(), last_insert_id(), @@autocommit, @@tx_isolation",
     ["connection_id()", "last_insert_id()", "@@autocommit", "@@tx_isolation"], (12, 77, 0, "READ-COMMITTED")),
    ("/* mysql-connector-j */ SELECT @@version, 'x' AS lit, 1", ["@@version", "lit", "1"],
     ("8.0.31-shardgate", "x", 1)),
    ("SELECT USER(), CURRENT_USER", ["USER()", "CURRENT_USER"], ("app@10.0.0.1", "app@%")),
])
def test_answered_selects(sql: str, names: list[str], row: tuple[Any, ...]) -> None:
    answer = sysvars.answer_select(sql, FACTS)
    assert answer is not None
    columns, rows = answer
    assert [c.name for c in columns] == names
    assert rows == [row]


@pytest.mark.parametrize("sql", ["SELECT @@nosuch_variable", "SELECT 1 FROM t", "SELECT @@version FROM dual",
                                 "SELECT NOW()", "SELECT @@version, name FROM customer", "SELECT 1.5"])
def test_not_answered_selects(sql: str) -> None:
    assert sysvars.answer_select(sql, FACTS) is None


def test_show_variables_rows_fixed() -> None:
    rows = [("max_allowed_packet", "67108864"), ("version", "10.11.19-MariaDB"), ("innodb_page_size", "16384")]
    assert sysvars.fix_show_variables(rows, FACTS) == [("max_allowed_packet", str(1 << 20)),
                                                       ("version", "8.0.31-shardgate"),
                                                       ("innodb_page_size", "16384")]
