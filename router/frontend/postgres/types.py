"""PostgreSQL types on the wire: OIDs, what a result ``Column`` is called in a RowDescription, and the codec for
each (OID, format) pair.

The value codecs live one family per module, as asyncpg keeps them: ``textfmt`` (the text format: what a
PostgreSQL server prints with DateStyle ISO, IntervalStyle postgres, bytea_output hex, extra_float_digits 1) and
``binfmt`` (the binary send/recv formats). This module picks one per column once per row description, so the
per-row loop only calls functions.

Parameters: a client may name each parameter's type in Parse, leave it 0 ("infer"), or learn it from Describe.
Values of unnamed types stay text (``str``): the router writes them as untyped SQL literals, which the shard
coerces exactly as it would have coerced the parameter. Values of named types become the Python values the
planner and the vindexes read (``int``, ``Decimal``, ``bytes``…), so routing sees numbers as numbers.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from router.backend.result import Column, TypeCode
from router.frontend.postgres import binfmt, textfmt
from router.frontend.postgres.oids import (
    ARRAY_OF,
    BOOL,
    BPCHAR,
    BYTEA,
    DATE,
    ELEMENT_OF,
    FLOAT4,
    FLOAT8,
    INT2,
    INT4,
    INT8,
    INTERVAL,
    JSON,
    NUMERIC,
    TEXT,
    TIME,
    TIMESTAMP,
    TIMESTAMPTZ,
    TIMETZ,
    TYPLEN,
    UUID,
    oid_name,
)

__all__ = [
    "ARRAY_OF",
    "Decoder",
    "Encoder",
    "TYPLEN",
    "binary_decoder",
    "binary_encoder",
    "column_oid",
    "oid_name",
    "text_decoder",
    "text_encoder",
]

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes], Any]

# The PostgreSQL type a column of another engine (MySQL shards, router-made columns) is shown as.
_BY_CODE: dict[TypeCode, int] = {
    TypeCode.NULL: TEXT, TypeCode.BOOL: BOOL, TypeCode.TINYINT: INT2, TypeCode.SMALLINT: INT2,
    TypeCode.MEDIUMINT: INT4, TypeCode.INT: INT4, TypeCode.BIGINT: INT8, TypeCode.DECIMAL: NUMERIC,
    TypeCode.FLOAT: FLOAT4, TypeCode.DOUBLE: FLOAT8, TypeCode.CHAR: BPCHAR, TypeCode.VARCHAR: TEXT,
    TypeCode.TEXT: TEXT, TypeCode.BINARY: BYTEA, TypeCode.VARBINARY: BYTEA, TypeCode.BLOB: BYTEA,
    TypeCode.DATE: DATE, TypeCode.TIME: TIME, TypeCode.TIMETZ: TIMETZ, TypeCode.DATETIME: TIMESTAMP,
    TypeCode.TIMESTAMP: TIMESTAMP, TypeCode.TIMESTAMPTZ: TIMESTAMPTZ, TypeCode.INTERVAL: INTERVAL,
    TypeCode.YEAR: INT2, TypeCode.JSON: JSON, TypeCode.UUID: UUID, TypeCode.BIT: TEXT, TypeCode.ENUM: TEXT,
    TypeCode.SET: TEXT, TypeCode.GEOMETRY: BYTEA, TypeCode.ARRAY: TEXT, TypeCode.OTHER: TEXT,
}


def column_oid(column: Column) -> int:
    """The type OID a RowDescription names for ``column``: a PostgreSQL shard's own OID when it said one,
    otherwise the nearest PostgreSQL type of its ``TypeCode``. An unsigned MySQL BIGINT does not fit int8."""
    if column.engine == "postgres" and column.backend_type > 0:
        return column.backend_type
    if column.unsigned:
        if column.type is TypeCode.BIGINT:
            return NUMERIC
        if column.type is TypeCode.INT:
            return INT8
        if column.type in (TypeCode.SMALLINT, TypeCode.MEDIUMINT, TypeCode.TINYINT):
            return INT4
    return _BY_CODE.get(column.type, TEXT)


# --- codec lookup -------------------------------------------------------------------------------------------------
def text_encoder(oid: int, timezone: Any = None) -> Encoder:
    """The text-format encoder of ``oid`` (any type has one: unknown types print ``str(value)``)."""
    elem = ELEMENT_OF.get(oid)
    if elem is not None:
        inner = text_encoder(elem, timezone)
        return lambda v: textfmt.encode_array(v, inner, elem)
    if oid == TIMESTAMPTZ:
        return textfmt.timestamptz_encoder(timezone)
    return textfmt.ENCODERS.get(oid, textfmt.encode_other)


def binary_encoder(oid: int) -> Encoder | None:
    """The binary-format encoder of ``oid``, or None when the router has none (the client then gets an error
    naming the type if it asks for binary)."""
    elem = ELEMENT_OF.get(oid)
    if elem is not None:
        inner = binary_encoder(elem)
        if inner is None:
            return None
        return lambda v: binfmt.encode_array(v, inner, elem)
    return binfmt.ENCODERS.get(oid)


def text_decoder(oid: int) -> Decoder:
    """Text-format parameter bytes -> the value bound into the statement (see the module docstring)."""
    return textfmt.DECODERS.get(oid, textfmt.decode_str)


def binary_decoder(oid: int) -> Decoder | None:
    """Binary parameter bytes -> the bound value. Arrays become their text form (``{1,2,NULL}``): the router
    writes values as SQL literals, and an untyped array literal is what the shard reads back exactly."""
    elem = ELEMENT_OF.get(oid)
    if elem is not None:
        inner = binary_decoder(elem)
        if inner is None:
            return None
        out = text_encoder(oid)
        return lambda data: out(binfmt.decode_array(data, inner)).decode()
    return binfmt.DECODERS.get(oid)
