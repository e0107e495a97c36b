"""Protocol-neutral results: what a shard answered, in one shape for PostgreSQL and MySQL/MariaDB backends.

The engine merges, sorts and forwards these without knowing which engine produced them, and a frontend turns them
into its own wire format (a MySQL column definition, a PostgreSQL RowDescription). So a ``Column`` carries both a
normalized ``TypeCode`` (what the value *is*) and the backend's own type id (what the server *said*), and values
keep the exact Python types the driver produced: ``Decimal`` for DECIMAL/NUMERIC (never ``float``), ``bytes`` for
binary strings, ``datetime``/``date``/``time``/``timedelta`` for temporal values. Nothing here converts values;
converting would cost per row and lose precision.

Per engine (the frontends need to know):

- MySQL ``TIME`` arrives as ``timedelta`` (it is a signed duration up to 838 hours); PostgreSQL ``time`` as
  ``datetime.time``. MySQL ``TIMESTAMP``/``DATETIME`` are naive datetimes; PostgreSQL ``timestamptz`` is aware.
- MySQL ``BIT`` arrives as ``bytes``; PostgreSQL ``bit``/``varbit`` as ``asyncpg.BitString``.
- JSON arrives as ``str`` from both (MariaDB reports JSON columns as LONGTEXT, so their type is ``TEXT``).
- PostgreSQL ``uuid`` is a ``uuid.UUID`` (subclass); MariaDB's ``UUID`` arrives as ``str`` typed ``CHAR``.
- A MySQL zero date (``0000-00-00``) cannot be a ``date`` and arrives as the ``str`` the server sent.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Column", "ExecResult", "Notice", "ResultSet", "Row", "TypeCode"]

Row = tuple[Any, ...]


class TypeCode(StrEnum):
    """The normalized type of a result column; sizes kept apart so each frontend can pick its exact wire type."""

    NULL = "null"  # MySQL's type of a bare NULL literal
    BOOL = "bool"
    TINYINT = "tinyint"  # 1 byte (MySQL TINYINT)
    SMALLINT = "smallint"  # 2 bytes
    MEDIUMINT = "mediumint"  # 3 bytes (MySQL only)
    INT = "int"  # 4 bytes
    BIGINT = "bigint"  # 8 bytes
    DECIMAL = "decimal"  # exact: values are Decimal
    FLOAT = "float"  # 4-byte IEEE
    DOUBLE = "double"  # 8-byte IEEE
    CHAR = "char"  # fixed-length text
    VARCHAR = "varchar"
    TEXT = "text"
    BINARY = "binary"  # fixed-length bytes
    VARBINARY = "varbinary"
    BLOB = "blob"  # bytes (PostgreSQL bytea, MySQL BLOB types)
    DATE = "date"
    TIME = "time"
    TIMETZ = "timetz"
    DATETIME = "datetime"  # no time zone: MySQL DATETIME, PostgreSQL timestamp
    TIMESTAMP = "timestamp"  # MySQL TIMESTAMP (stored in UTC, shown in the session time zone)
    TIMESTAMPTZ = "timestamptz"  # PostgreSQL timestamptz (values are aware datetimes)
    INTERVAL = "interval"
    YEAR = "year"
    JSON = "json"
    UUID = "uuid"
    BIT = "bit"
    ENUM = "enum"
    SET = "set"
    GEOMETRY = "geometry"
    ARRAY = "array"
    OTHER = "other"  # anything else (inet, money, composite, user-defined): see Column.backend_type_name

    @property
    def is_integer(self) -> bool:
        return self in _INTEGERS

    @property
    def is_text(self) -> bool:
        return self in _TEXTS

    @property
    def is_binary(self) -> bool:
        return self in _BINARIES


_INTEGERS = frozenset({TypeCode.TINYINT, TypeCode.SMALLINT, TypeCode.MEDIUMINT, TypeCode.INT, TypeCode.BIGINT})
_TEXTS = frozenset({TypeCode.CHAR, TypeCode.VARCHAR, TypeCode.TEXT, TypeCode.ENUM, TypeCode.SET})
_BINARIES = frozenset({TypeCode.BINARY, TypeCode.VARBINARY, TypeCode.BLOB})


@dataclass(frozen=True, slots=True)
class Column:
    """One result column.

    ``backend_type`` is the server's own id: a PostgreSQL type OID, or a MySQL ``MYSQL_TYPE_*`` byte; ``engine``
    says which. ``None`` in ``nullable``/``length``/``precision``/``scale`` means the backend did not say
    (PostgreSQL's RowDescription has no nullability; asyncpg does not expose its type modifier).
    """

    name: str
    type: TypeCode
    engine: str  # "postgres" | "mysql"
    backend_type: int
    backend_type_name: str
    nullable: bool | None = None
    unsigned: bool = False
    length: int | None = None  # MySQL: the column length the server reported (bytes for strings)
    precision: int | None = None  # DECIMAL total digits
    scale: int | None = None  # DECIMAL digits after the point; temporal fractional-second digits
    charset: str | None = None  # text columns: "utf8mb4", "UTF8"; binary columns: "binary"
    collation: str | None = None
    table: str | None = None  # the table the column comes from, when the backend says
    flags: int = 0  # the backend's own column flags (MySQL); 0 for PostgreSQL


@dataclass(frozen=True, slots=True)
class Notice:
    """A non-error message from the server (PostgreSQL NOTICE/WARNING). Its text may hold data: never log it."""

    severity: str
    sqlstate: str
    message: str


@dataclass(slots=True)
class ResultSet:
    """A statement's rows (SELECT, SHOW, ``INSERT … RETURNING``) with their columns.

    ``status`` is PostgreSQL's command tag (``SELECT 3``) or ``""`` for MySQL; ``warnings`` counts server warnings.
    """

    columns: tuple[Column, ...]
    rows: list[Row]
    status: str = ""
    warnings: int = 0
    notices: tuple[Notice, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True, slots=True)
class ExecResult:
    """A statement without rows (DML without RETURNING, DDL, transaction control, SET).

    ``last_insert_id`` is MySQL's auto-increment id (None on PostgreSQL, which has RETURNING instead). ``status``
    is PostgreSQL's command tag (``INSERT 0 3``) or MySQL's OK-packet info (``Rows matched: 1  Changed: 1 …``).
    """

    rows_affected: int = 0
    last_insert_id: int | None = None
    warnings: int = 0
    status: str = ""
    notices: tuple[Notice, ...] = field(default=())


def rows_from_status(status: str) -> int:
    """The row count of a PostgreSQL command tag: ``INSERT 0 5`` → 5, ``UPDATE 2`` → 2, ``CREATE TABLE`` → 0."""
    _, _, last = status.rpartition(" ")
    return int(last) if last.isdigit() else 0


def column_index(columns: Sequence[Column], name: str) -> int:
    """The position of the first column called ``name`` (ValueError when absent)."""
    for i, column in enumerate(columns):
        if column.name == name:
            return i
    raise ValueError(f"no column {name!r}")
