"""PostgreSQL result columns: type OIDs → ``TypeCode``.

Built-in OIDs are fixed by PostgreSQL (``src/include/catalog/pg_type.dat``), so a table is exact and cheap.
Domains never show up here (RowDescription reports their base type); user-defined types (enums, composites) and
anything unlisted become ``OTHER`` with their name, arrays ``ARRAY``.
"""
from __future__ import annotations

from typing import Any

from router.backend.result import Column, TypeCode

__all__ = ["PG_TYPES", "pg_column", "pg_columns"]

# OID -> normalized type (pg_type.dat).
PG_TYPES: dict[int, TypeCode] = {
    16: TypeCode.BOOL,
    17: TypeCode.BLOB,  # bytea
    18: TypeCode.CHAR,  # "char" (one byte; asyncpg gives bytes)
    19: TypeCode.VARCHAR,  # name
    20: TypeCode.BIGINT,
    21: TypeCode.SMALLINT,
    23: TypeCode.INT,
    25: TypeCode.TEXT,
    26: TypeCode.BIGINT,  # oid: unsigned 32-bit, wider than int4
    114: TypeCode.JSON,
    700: TypeCode.FLOAT,
    701: TypeCode.DOUBLE,
    1042: TypeCode.CHAR,  # bpchar
    1043: TypeCode.VARCHAR,
    1082: TypeCode.DATE,
    1083: TypeCode.TIME,
    1114: TypeCode.DATETIME,  # timestamp without time zone
    1184: TypeCode.TIMESTAMPTZ,
    1186: TypeCode.INTERVAL,
    1266: TypeCode.TIMETZ,
    1560: TypeCode.BIT,
    1562: TypeCode.BIT,  # varbit
    1700: TypeCode.DECIMAL,
    2950: TypeCode.UUID,
    3802: TypeCode.JSON,  # jsonb
}

_TEXT_TYPES = frozenset({TypeCode.CHAR, TypeCode.VARCHAR, TypeCode.TEXT, TypeCode.JSON})


def pg_column(name: str, oid: int, type_name: str, kind: str) -> Column:
    """A column from what asyncpg knows of it: name, type OID, type name and codec kind."""
    code = PG_TYPES.get(oid)
    if code is None:
        code = TypeCode.ARRAY if kind == "array" else TypeCode.OTHER
    text = code in _TEXT_TYPES and oid != 18
    return Column(name=name, type=code, engine="postgres", backend_type=oid, backend_type_name=type_name,
                  charset="UTF8" if text else ("binary" if code is TypeCode.BLOB else None))


def pg_columns(attributes: Any) -> tuple[Column, ...]:
    """Columns from asyncpg ``Attribute`` tuples (``name``, ``type.oid``, ``type.name``, ``type.kind``)."""
    return tuple(pg_column(a.name, a.type.oid, a.type.name, a.type.kind) for a in attributes)
