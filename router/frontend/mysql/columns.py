"""Result columns and values in the text protocol: ``Column`` (``router.backend.result``) → column definition, and
Python values → the bytes of a text row.

A column from a MySQL/MariaDB shard keeps what that shard said (type byte, flags, length, decimals, collation).
Columns the router made itself, and PostgreSQL columns, get the MySQL type a MySQL server would report for that
kind of value (``TypeCode`` → ``FieldType``), with the flags clients use to pick a conversion (BINARY + NUM for
numbers, BLOB for blobs, UNSIGNED, NOT_NULL).

Text goes out in the client's character set (``ClientCharset``: utf8mb4 unless the handshake or ``SET NAMES`` chose
another); binary strings (collation 63) go out as they are.
"""
from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from router.backend.result import Column, TypeCode
from router.frontend.mysql.constants import FieldFlag, FieldType
from router.frontend.mysql.packets import ColumnDefinition, lenenc_int

__all__ = [
    "BINARY_COLLATION",
    "ClientCharset",
    "column_definition",
    "column_definitions",
    "text_encoders",
    "text_rows",
    "wire_type",
]

BINARY_COLLATION = 63
UTF8MB4_GENERAL_CI = 45


@dataclass(frozen=True, slots=True)
class ClientCharset:
    """The character set a client reads and writes: its collation id (column definitions) and Python codec."""

    collation_id: int = UTF8MB4_GENERAL_CI
    name: str = "utf8mb4"
    codec: str = "utf-8"

    @staticmethod
    def from_id(collation_id: int) -> ClientCharset:
        return _charset_from_id(collation_id)

    @staticmethod
    def from_name(name: str) -> ClientCharset | None:
        return _charset_from_name(name.lower().strip("'\"` "))

    def decode(self, data: bytes) -> str:
        """Client text (SQL, parameters) → str; bytes that are not valid in the charset stay recoverable."""
        return data.decode(self.codec, "surrogateescape")


@lru_cache(maxsize=256)
def _charset_from_id(collation_id: int) -> ClientCharset:
    entry = _pymysql_charset(collation_id)
    if entry is None or entry.name == "binary":
        return ClientCharset()
    return ClientCharset(collation_id, entry.name, _codec(entry.name, entry.encoding))


@lru_cache(maxsize=64)
def _charset_from_name(name: str) -> ClientCharset | None:
    if name in ("default", ""):
        return ClientCharset()
    if name == "utf8":
        name = "utf8mb3"
    from pymysql import charset as pymysql_charset

    try:
        entry = pymysql_charset.charset_by_name(name)
    except KeyError:
        entry = None
    if entry is None:
        return None
    return ClientCharset(entry.id, entry.name, _codec(entry.name, entry.encoding))


def _codec(name: str, encoding: str) -> str:
    if name in ("utf8mb4", "utf8mb3", "utf8"):
        return "utf-8"
    try:
        import codecs

        return codecs.lookup(encoding).name
    except LookupError:
        return "utf-8"


def _pymysql_charset(collation_id: int) -> Any:
    from pymysql import charset as pymysql_charset

    try:
        return pymysql_charset.charset_by_id(collation_id)
    except KeyError:
        return None


@lru_cache(maxsize=512)
def _collation_id(collation: str | None, charset: str | None) -> int | None:
    if not collation:
        return None
    from pymysql import charset as pymysql_charset

    for entry in pymysql_charset._charsets._by_id.values():  # a table of ~150 entries, read once per name
        if entry.collation == collation:
            return int(entry.id)
    return None


# --- types -------------------------------------------------------------------------------------------------------
_WIRE: dict[TypeCode, tuple[FieldType, int]] = {  # TypeCode -> (type, display length) for non-MySQL columns
    TypeCode.NULL: (FieldType.NULL, 0),
    TypeCode.BOOL: (FieldType.TINY, 1),
    TypeCode.TINYINT: (FieldType.TINY, 4),
    TypeCode.SMALLINT: (FieldType.SHORT, 6),
    TypeCode.MEDIUMINT: (FieldType.INT24, 9),
    TypeCode.INT: (FieldType.LONG, 11),
    TypeCode.BIGINT: (FieldType.LONGLONG, 20),
    TypeCode.DECIMAL: (FieldType.NEWDECIMAL, 67),
    TypeCode.FLOAT: (FieldType.FLOAT, 12),
    TypeCode.DOUBLE: (FieldType.DOUBLE, 22),
    TypeCode.CHAR: (FieldType.STRING, 1024),
    TypeCode.VARCHAR: (FieldType.VAR_STRING, 1024),
    TypeCode.TEXT: (FieldType.BLOB, 0xFFFFFFFF),
    TypeCode.BINARY: (FieldType.STRING, 255),
    TypeCode.VARBINARY: (FieldType.VAR_STRING, 65535),
    TypeCode.BLOB: (FieldType.BLOB, 0xFFFFFFFF),
    TypeCode.DATE: (FieldType.DATE, 10),
    TypeCode.TIME: (FieldType.TIME, 10),
    TypeCode.TIMETZ: (FieldType.VAR_STRING, 64),
    TypeCode.DATETIME: (FieldType.DATETIME, 19),
    TypeCode.TIMESTAMP: (FieldType.TIMESTAMP, 19),
    TypeCode.TIMESTAMPTZ: (FieldType.DATETIME, 19),
    TypeCode.INTERVAL: (FieldType.VAR_STRING, 64),
    TypeCode.YEAR: (FieldType.YEAR, 4),
    TypeCode.JSON: (FieldType.JSON, 0xFFFFFFFF),
    TypeCode.UUID: (FieldType.STRING, 36),
    TypeCode.BIT: (FieldType.BIT, 64),
    TypeCode.ENUM: (FieldType.STRING, 1024),
    TypeCode.SET: (FieldType.STRING, 1024),
    TypeCode.GEOMETRY: (FieldType.GEOMETRY, 0xFFFFFFFF),
    TypeCode.ARRAY: (FieldType.BLOB, 0xFFFFFFFF),
    TypeCode.OTHER: (FieldType.VAR_STRING, 1024),
}
_NUMERIC = frozenset({FieldType.TINY, FieldType.SHORT, FieldType.INT24, FieldType.LONG, FieldType.LONGLONG,
                      FieldType.DECIMAL, FieldType.NEWDECIMAL, FieldType.FLOAT, FieldType.DOUBLE, FieldType.YEAR})
_TEMPORAL = frozenset({FieldType.DATE, FieldType.NEWDATE, FieldType.TIME, FieldType.DATETIME, FieldType.TIMESTAMP})
_STRINGS = frozenset({FieldType.VARCHAR, FieldType.VAR_STRING, FieldType.STRING, FieldType.TINY_BLOB,
                      FieldType.MEDIUM_BLOB, FieldType.LONG_BLOB, FieldType.BLOB, FieldType.ENUM, FieldType.SET})
_NOT_FIXED_DEC = 31  # MySQL's "decimals" of a FLOAT/DOUBLE without a declared scale, and of computed strings


def wire_type(col: Column) -> int:
    """The MySQL type byte of ``col`` on the wire."""
    if col.engine == "mysql":
        return col.backend_type
    return int(_WIRE.get(col.type, (FieldType.VAR_STRING, 0))[0])


def column_definition(col: Column, charset: ClientCharset, schema: str = "") -> ColumnDefinition:
    """The column definition a MySQL server would send for ``col`` to a client reading ``charset``."""
    code = col.type
    if col.engine == "mysql":
        type_ = col.backend_type
        flags = col.flags
        length = col.length or 0
        decimals = col.scale if col.scale is not None else (
            _NOT_FIXED_DEC if type_ in (FieldType.FLOAT, FieldType.DOUBLE) else 0)
    else:
        wire, length = _WIRE.get(code, (FieldType.VAR_STRING, 1024))
        type_ = int(wire)
        flags = 0
        if col.nullable is False:
            flags |= FieldFlag.NOT_NULL
        if col.unsigned:
            flags |= FieldFlag.UNSIGNED
        if wire in _NUMERIC:
            flags |= FieldFlag.BINARY | FieldFlag.NUM
        elif code in (TypeCode.BINARY, TypeCode.VARBINARY, TypeCode.BLOB, TypeCode.BIT):
            flags |= FieldFlag.BINARY
        if wire == FieldType.BLOB:
            flags |= FieldFlag.BLOB
        if code is TypeCode.ENUM:
            flags |= FieldFlag.ENUM
        elif code is TypeCode.SET:
            flags |= FieldFlag.SET
        if col.length:
            length = col.length
        decimals = 0
        if code is TypeCode.DECIMAL:
            scale = col.scale if col.scale is not None else 0
            precision = col.precision if col.precision is not None else 65
            decimals = scale
            length = precision + (1 if scale else 0) + (0 if col.unsigned else 1)
        elif code in (TypeCode.FLOAT, TypeCode.DOUBLE):
            decimals = col.scale if col.scale is not None else _NOT_FIXED_DEC
        elif wire in _TEMPORAL and col.scale:
            decimals = col.scale
            length += 1 + col.scale
    binary_string = col.charset == "binary" or code in (TypeCode.BINARY, TypeCode.VARBINARY, TypeCode.BLOB,
                                                         TypeCode.BIT, TypeCode.GEOMETRY)
    if type_ in _STRINGS and not binary_string:
        own = _collation_id(col.collation, col.charset) if col.charset == charset.name else None
        collation = own or charset.collation_id
    else:
        collation = BINARY_COLLATION
    table = col.table or ""
    return ColumnDefinition(name=col.name, type=type_, charset=collation, length=length, flags=int(flags),
                            decimals=decimals, schema=schema if table else "", table=table, org_table=table,
                            org_name=col.name if table else "")


def column_definitions(columns: Sequence[Column], charset: ClientCharset, schema: str = "") -> list[bytes]:
    return [column_definition(c, charset, schema).encode() for c in columns]


# --- text values ---------------------------------------------------------------------------------------------------
def _time_text(v: datetime.timedelta, scale: int | None) -> bytes:
    total_us = (v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds
    sign = "-" if total_us < 0 else ""
    total_us = abs(total_us)
    secs, us = divmod(total_us, 1_000_000)
    h, rest = divmod(secs, 3600)
    m, s = divmod(rest, 60)
    text = f"{sign}{h:02d}:{m:02d}:{s:02d}"
    return (text + _fraction(us, scale)).encode("ascii")


def _fraction(us: int, scale: int | None) -> str:
    if scale:
        return "." + f"{us:06d}"[:scale]
    if scale is None and us:
        return f".{us:06d}"
    return ""


def _datetime_text(v: datetime.datetime, scale: int | None) -> bytes:
    if v.tzinfo is not None:
        v = v.astimezone(datetime.UTC).replace(tzinfo=None)
    text = f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}"
    return (text + _fraction(v.microsecond, scale)).encode("ascii")


def _clock_text(v: datetime.time, scale: int | None) -> bytes:
    return (f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}" + _fraction(v.microsecond, scale)).encode("ascii")


def _generic(codec: str, scale: int | None) -> Callable[[Any], bytes]:
    def enc(v: Any) -> bytes:
        t = type(v)
        if t is str:
            return v.encode(codec, "surrogateescape") if codec == "utf-8" else v.encode(codec, "replace")
        if t is int:
            return str(v).encode("ascii")
        if t is bytes:
            return v  # type: ignore[no-any-return]
        if t is bool:
            return b"1" if v else b"0"
        if t is Decimal:
            return format(v, "f").encode("ascii")
        if t is float:
            return repr(v).encode("ascii") if v == v and v not in (float("inf"), float("-inf")) else b"NULL"
        if t is datetime.datetime:
            return _datetime_text(v, scale)
        if t is datetime.date:
            return v.isoformat().encode("ascii")
        if t is datetime.timedelta:
            return _time_text(v, scale)
        if t is datetime.time:
            return _clock_text(v, scale)
        if isinstance(v, (bytearray, memoryview)):
            return bytes(v)
        if isinstance(v, str):
            return str(v).encode(codec, "replace")
        if isinstance(v, bool):
            return b"1" if v else b"0"
        if isinstance(v, int):
            return str(int(v)).encode("ascii")
        if isinstance(v, uuid.UUID):
            return str(v).encode("ascii")
        if isinstance(v, (dict, list)):
            return json.dumps(v, default=str).encode(codec, "replace")
        return str(v).encode(codec, "replace")

    return enc


def text_encoders(columns: Sequence[Column], charset: ClientCharset) -> list[Callable[[Any], bytes]]:
    """One value → bytes function per column (the scale of temporal columns decides their fraction digits)."""
    cache: dict[int | None, Callable[[Any], bytes]] = {}
    out = []
    for col in columns:
        scale = col.scale if col.type in (TypeCode.DATETIME, TypeCode.TIMESTAMP, TypeCode.TIME,
                                          TypeCode.TIMESTAMPTZ) else None
        if col.engine == "mysql" and scale is None and col.type in (TypeCode.DATETIME, TypeCode.TIMESTAMP,
                                                                    TypeCode.TIME):
            scale = 0
        enc = cache.get(scale)
        if enc is None:
            enc = cache[scale] = _generic(charset.codec, scale)
        out.append(enc)
    return out


def text_rows(rows: Sequence[Sequence[Any]], encoders: Sequence[Callable[[Any], bytes]]) -> list[bytes]:
    """Payloads of text-protocol rows."""
    out: list[bytes] = []
    append = out.append
    for row in rows:
        parts = []
        for v, enc in zip(row, encoders, strict=False):
            if v is None:
                parts.append(b"\xfb")
                continue
            b = enc(v)
            n = len(b)
            parts.append(bytes((n,)) + b if n < 251 else lenenc_int(n) + b)
        append(b"".join(parts))
    return out
