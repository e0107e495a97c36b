"""MySQL/MariaDB result columns: column-definition packets → ``Column``.

The text protocol describes each column with a type byte, flags, a collation id, a length and a ``decimals`` count
(https://mariadb.com/kb/en/result-set-packets/#column-definition-packet). ENUM and SET columns arrive typed
``STRING`` with a flag; text and binary strings share type bytes and differ by collation 63 (``binary``).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from router.backend.result import Column, TypeCode

__all__ = ["BINARY_COLLATION", "FLAG", "MYSQL_TYPE_NAMES", "mysql_column", "mysql_columns"]

BINARY_COLLATION = 63


class FLAG:
    """Column flags (``include/mysql_com.h``)."""

    NOT_NULL = 1
    PRI_KEY = 2
    UNIQUE_KEY = 4
    BLOB = 16
    UNSIGNED = 32
    ZEROFILL = 64
    BINARY = 128
    ENUM = 256
    AUTO_INCREMENT = 512
    TIMESTAMP = 1024
    SET = 2048


# MYSQL_TYPE_* byte -> (name, normalized type for text columns, normalized type for binary-collation columns)
_TYPES: dict[int, tuple[str, TypeCode, TypeCode]] = {
    0: ("DECIMAL", TypeCode.DECIMAL, TypeCode.DECIMAL),
    1: ("TINY", TypeCode.TINYINT, TypeCode.TINYINT),
    2: ("SHORT", TypeCode.SMALLINT, TypeCode.SMALLINT),
    3: ("LONG", TypeCode.INT, TypeCode.INT),
    4: ("FLOAT", TypeCode.FLOAT, TypeCode.FLOAT),
    5: ("DOUBLE", TypeCode.DOUBLE, TypeCode.DOUBLE),
    6: ("NULL", TypeCode.NULL, TypeCode.NULL),
    7: ("TIMESTAMP", TypeCode.TIMESTAMP, TypeCode.TIMESTAMP),
    8: ("LONGLONG", TypeCode.BIGINT, TypeCode.BIGINT),
    9: ("INT24", TypeCode.MEDIUMINT, TypeCode.MEDIUMINT),
    10: ("DATE", TypeCode.DATE, TypeCode.DATE),
    11: ("TIME", TypeCode.TIME, TypeCode.TIME),
    12: ("DATETIME", TypeCode.DATETIME, TypeCode.DATETIME),
    13: ("YEAR", TypeCode.YEAR, TypeCode.YEAR),
    14: ("NEWDATE", TypeCode.DATE, TypeCode.DATE),
    15: ("VARCHAR", TypeCode.VARCHAR, TypeCode.VARBINARY),
    16: ("BIT", TypeCode.BIT, TypeCode.BIT),
    245: ("JSON", TypeCode.JSON, TypeCode.JSON),
    246: ("NEWDECIMAL", TypeCode.DECIMAL, TypeCode.DECIMAL),
    247: ("ENUM", TypeCode.ENUM, TypeCode.ENUM),
    248: ("SET", TypeCode.SET, TypeCode.SET),
    249: ("TINY_BLOB", TypeCode.TEXT, TypeCode.BLOB),
    250: ("MEDIUM_BLOB", TypeCode.TEXT, TypeCode.BLOB),
    251: ("LONG_BLOB", TypeCode.TEXT, TypeCode.BLOB),
    252: ("BLOB", TypeCode.TEXT, TypeCode.BLOB),
    253: ("VAR_STRING", TypeCode.VARCHAR, TypeCode.VARBINARY),
    254: ("STRING", TypeCode.CHAR, TypeCode.BINARY),
    255: ("GEOMETRY", TypeCode.GEOMETRY, TypeCode.GEOMETRY),
}
MYSQL_TYPE_NAMES = {type_id: entry[0] for type_id, entry in _TYPES.items()}
_STRING_TYPES = frozenset({15, 249, 250, 251, 252, 253, 254})
_TEMPORAL_TYPES = frozenset({7, 11, 12})


@lru_cache(maxsize=512)
def _collation(collation_id: int) -> tuple[str | None, str | None]:
    """(charset, collation) names for a collation id; (None, None) when PyMySQL's table does not know it."""
    from pymysql import charset as pymysql_charset  # its table of MySQL/MariaDB collation ids

    try:
        entry = pymysql_charset.charset_by_id(collation_id)
    except KeyError:
        return None, None
    return entry.name, entry.collation


def mysql_column(*, name: str, type_id: int, flags: int, collation_id: int, length: int, decimals: int,
                 table: str | None = None) -> Column:
    """A column from the fields of a column-definition packet."""
    binary = collation_id == BINARY_COLLATION
    type_name, text_code, binary_code = _TYPES.get(type_id, (f"TYPE_{type_id}", TypeCode.OTHER, TypeCode.OTHER))
    code = binary_code if binary else text_code
    if type_id == 254 and flags & FLAG.ENUM:
        code = TypeCode.ENUM
    elif type_id == 254 and flags & FLAG.SET:
        code = TypeCode.SET
    unsigned = bool(flags & FLAG.UNSIGNED)
    precision = scale = None
    if code is TypeCode.DECIMAL:
        # The length counts digits plus the point and the sign (MySQL's my_decimal_length_to_precision).
        scale = decimals
        precision = length - (1 if decimals > 0 else 0) - (0 if unsigned else 1)
    elif type_id in _TEMPORAL_TYPES:
        scale = decimals  # fractional-second digits
    if type_id in _STRING_TYPES or code in (TypeCode.ENUM, TypeCode.SET, TypeCode.JSON):
        charset, collation = ("binary", "binary") if binary else _collation(collation_id)
    else:
        charset = collation = None
    return Column(name=name, type=code, engine="mysql", backend_type=type_id, backend_type_name=type_name,
                  nullable=not flags & FLAG.NOT_NULL, unsigned=unsigned, length=length, precision=precision,
                  scale=scale, charset=charset, collation=collation, table=table or None, flags=flags)


def mysql_columns(fields: Any) -> tuple[Column, ...]:
    """Columns from PyMySQL ``FieldDescriptorPacket`` objects (``MySQLResult.fields``)."""
    return tuple(mysql_column(name=f.name, type_id=f.type_code, flags=f.flags, collation_id=f.charsetnr,
                              length=f.length, decimals=f.scale, table=f.org_table or f.table_name)
                 for f in fields)
