"""The tracked schema: the columns, types and primary keys the shards themselves report, per keyspace and table.

The router's schema tracker (``router.engine.schema_tracker``) reads every shard's catalog at start, after each DDL
it runs and on demand, and ``combine`` folds one keyspace's shards into a ``KeyspaceSchema``: a table whose shards
all agree is known exactly (``authoritative``); a table they disagree on (a DDL fan-out that failed on some shards)
is reported as a ``Disagreement`` and kept only as a hint (the columns every shard has, ``authoritative=False``).
The ``SchemaSet`` of all keyspaces travels in the ``ClusterSnapshot`` (``snapshot.schema``); it is frozen and
replaced, never mutated, like the snapshot.

The planner reads it through ``effective_table``: the VSchema's columns when it lists them authoritatively, else
the tracked columns (agreed ones count as authoritative), else what the VSchema declares. So ``SELECT *`` across
shards, ``INSERT`` without a column list and unqualified columns in joins work for tables the VSchema does not
describe, and ORDER BY / GROUP BY across shards know each column's type and collation.

Types: ``TypeCode`` has the values of ``router.backend.result.TypeCode`` (what result columns carry; ``sharding``
cannot import ``router``, a test keeps the two equal), plus the server's own declaration (``ColumnType.raw``:
``bigint(20) unsigned``, ``character varying(64)``). ``ColumnType.planner_name`` is the name a VSchema column
would carry (Vitess ``query.Type`` names where one exists: ``INT64``, ``VARCHAR``; else ``TIMESTAMPTZ``, ``UUID``…).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sharding.vschema_model import Column, Table

__all__ = [
    "EMPTY_SCHEMA",
    "ColumnSchema",
    "ColumnType",
    "Disagreement",
    "KeyspaceSchema",
    "SchemaSet",
    "TableSchema",
    "TypeCode",
    "combine",
    "effective_table",
]


class TypeCode(StrEnum):
    """A column's normalized type (the values of ``router.backend.result.TypeCode``)."""

    NULL = "null"
    BOOL = "bool"
    TINYINT = "tinyint"
    SMALLINT = "smallint"
    MEDIUMINT = "mediumint"
    INT = "int"
    BIGINT = "bigint"
    DECIMAL = "decimal"
    FLOAT = "float"
    DOUBLE = "double"
    CHAR = "char"
    VARCHAR = "varchar"
    TEXT = "text"
    BINARY = "binary"
    VARBINARY = "varbinary"
    BLOB = "blob"
    DATE = "date"
    TIME = "time"
    TIMETZ = "timetz"
    DATETIME = "datetime"
    TIMESTAMP = "timestamp"
    TIMESTAMPTZ = "timestamptz"
    INTERVAL = "interval"
    YEAR = "year"
    JSON = "json"
    UUID = "uuid"
    BIT = "bit"
    ENUM = "enum"
    SET = "set"
    GEOMETRY = "geometry"
    ARRAY = "array"
    OTHER = "other"


# Vitess query.Type names (what a VSchema column's "type" holds) for the codes that have one.
_INT_NAMES = {TypeCode.TINYINT: "INT8", TypeCode.SMALLINT: "INT16", TypeCode.MEDIUMINT: "INT24",
              TypeCode.INT: "INT32", TypeCode.BIGINT: "INT64"}
_VITESS_NAMES = {TypeCode.FLOAT: "FLOAT32", TypeCode.DOUBLE: "FLOAT64"}


@dataclass(frozen=True, slots=True)
class ColumnType:
    """A column's type: the normalized ``code`` and the server's declaration ``raw`` (lower case).

    ``backend_type`` is the PostgreSQL type OID (0 on MySQL/MariaDB); it is left out of comparisons because a
    user-defined type (an enum) has a different OID in every database."""

    code: TypeCode
    raw: str = ""
    unsigned: bool = False
    length: int | None = None  # characters (text) or bytes (binary)
    precision: int | None = None
    scale: int | None = None
    values: tuple[str, ...] = ()  # ENUM / SET labels, in order
    backend_type: int = field(default=0, compare=False)

    @property
    def planner_name(self) -> str:
        """The type as a VSchema column names it (``INT64``, ``UINT32``, ``VARCHAR``, ``TIMESTAMPTZ``); for a type
        without a normalized code, the server's own name (``CITEXT``, ``INET``); ``""`` when unknown."""
        code = self.code
        if code in _INT_NAMES:
            name = _INT_NAMES[code]
            return "U" + name if self.unsigned else name
        if code in _VITESS_NAMES:
            return _VITESS_NAMES[code]
        if code is TypeCode.OTHER:
            base = self.raw.split("(", 1)[0].strip()
            return base.upper().replace(" ", "_")
        if code is TypeCode.NULL:
            return ""
        return code.value.upper()


UNKNOWN_TYPE = ColumnType(TypeCode.OTHER)


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """One column as the shard's catalog describes it. ``default`` is the server's text of the default expression
    (None: no default); ``collation`` None means none (not text) or, on PostgreSQL, the database's default collation
    when that is not a code-point one."""

    name: str
    type: ColumnType
    collation: str | None = None
    nullable: bool = True
    default: str | None = None
    invisible: bool = False  # MariaDB/MySQL INVISIBLE: not in SELECT *, not in an INSERT without column list
    generated: bool = False  # a generated (computed) column
    auto_increment: bool = False  # AUTO_INCREMENT, or a PostgreSQL identity/serial column

    def to_vschema_column(self) -> Column:
        """The column as the planner reads VSchema columns."""
        t = self.type
        size = t.length if t.length is not None else (t.precision or 0)
        return Column(name=self.name, type=t.planner_name, invisible=self.invisible, default=self.default or "",
                      collation_name=self.collation or "", size=size or 0, scale=t.scale or 0,
                      nullable=self.nullable, values=t.values)


@dataclass(frozen=True, slots=True)
class TableSchema:
    """A table (or view) of a keyspace. ``authoritative`` False: its shards disagree and ``columns`` are only those
    every shard has (a hint: they exist; others may too)."""

    name: str
    columns: tuple[ColumnSchema, ...]
    primary_key: tuple[str, ...] = ()
    kind: str = "table"  # "table" | "view"
    authoritative: bool = True

    def column(self, name: str) -> ColumnSchema | None:
        """A column by name (exact, else the one that matches ignoring case)."""
        for c in self.columns:
            if c.name == name:
                return c
        folded = [c for c in self.columns if c.name.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Shards of one keyspace that hold different versions of a table. ``variants`` groups the shards by what
    they hold (``None``: the table is missing there); ``differences`` says how, one line each."""

    keyspace: str
    table: str
    variants: tuple[tuple[tuple[str, ...], TableSchema | None], ...]
    differences: tuple[str, ...]

    @property
    def shards(self) -> tuple[str, ...]:
        return tuple(s for shards, _ in self.variants for s in shards)

    def describe(self) -> str:
        return f"{self.keyspace}.{self.table}: " + "; ".join(self.differences)


@dataclass(frozen=True, slots=True)
class KeyspaceSchema:
    """One keyspace's tables as its shards report them. ``errors``: shards that could not be read (shard name →
    why); their last schema read, when there is one, still takes part."""

    keyspace: str
    tables: Mapping[str, TableSchema] = field(default_factory=dict)
    disagreements: tuple[Disagreement, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))
        object.__setattr__(self, "errors", MappingProxyType(dict(self.errors)))

    def table(self, name: str) -> TableSchema | None:
        """A table by name: exact, else the one table whose name matches ignoring case."""
        found = self.tables.get(name)
        if found is not None:
            return found
        folded = [t for n, t in self.tables.items() if n.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None


@dataclass(frozen=True, slots=True)
class SchemaSet:
    """The tracked schema of every keyspace (``snapshot.schema``). Replaced, never mutated."""

    keyspaces: Mapping[str, KeyspaceSchema] = field(default_factory=dict)
    # Effective VSchema tables already built for this set (``effective_table``): (keyspace, name) -> (table, result).
    _effective: dict[tuple[str, str], tuple[Table, Table]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyspaces", MappingProxyType(dict(self.keyspaces)))

    def __bool__(self) -> bool:
        return bool(self.keyspaces)

    def keyspace(self, name: str) -> KeyspaceSchema | None:
        return self.keyspaces.get(name)

    def table(self, keyspace: str, name: str) -> TableSchema | None:
        ks = self.keyspaces.get(keyspace)
        return ks.table(name) if ks is not None else None

    @property
    def disagreements(self) -> tuple[Disagreement, ...]:
        """Every table whose shards disagree, keyspace by keyspace."""
        return tuple(d for _, ks in sorted(self.keyspaces.items()) for d in ks.disagreements)

    @property
    def errors(self) -> dict[str, str]:
        """``keyspace/shard`` → why its schema could not be read."""
        return {f"{name}/{shard}": why for name, ks in sorted(self.keyspaces.items())
                for shard, why in sorted(ks.errors.items())}

    def with_keyspace(self, schema: KeyspaceSchema) -> SchemaSet:
        """A new set with one keyspace's schema replaced."""
        return SchemaSet({**self.keyspaces, schema.keyspace: schema})

    def report(self) -> list[tuple[str, str, str, str]]:
        """Rows ``(keyspace, table, status, detail)`` for an admin view: each tracked table (``ok``, or
        ``disagree`` with how), then each shard that could not be read (``error``)."""
        rows: list[tuple[str, str, str, str]] = []
        for name, ks in sorted(self.keyspaces.items()):
            differing = {d.table: d for d in ks.disagreements}
            for tname, t in sorted(ks.tables.items()):
                d = differing.get(tname)
                if d is not None:
                    rows.append((name, tname, "disagree", "; ".join(d.differences)))
                else:
                    rows.append((name, tname, "ok", ", ".join(f"{c.name} {c.type.raw or c.type.code}"
                                                             for c in t.columns)))
            for shard, why in sorted(ks.errors.items()):
                rows.append((name, "", "error", f"shard {shard}: {why}"))
        return rows


EMPTY_SCHEMA = SchemaSet()


# --- comparing shards --------------------------------------------------------------------------------------------
def _names(shards: Iterable[str]) -> str:
    return ", ".join(shards)


def _column_differences(column: str, by_shard: Mapping[str, ColumnSchema]) -> list[str]:
    out: list[str] = []
    for what, get in (("type", lambda c: c.type.raw or c.type.code.value), ("collation", lambda c: c.collation),
                      ("nullable", lambda c: c.nullable), ("default", lambda c: c.default),
                      ("invisible", lambda c: c.invisible), ("generated", lambda c: c.generated)):
        seen: dict[Any, list[str]] = {}
        for shard, col in by_shard.items():
            seen.setdefault(get(col), []).append(shard)
        if len(seen) > 1:
            out.append(f"column {column} {what}: " + ", ".join(f"{v!r} on {_names(s)}" for v, s in seen.items()))
    if not out:  # equal in everything shown: the rest of the type (labels, precision) differs
        out.append(f"column {column} differs in type details: "
                   + ", ".join(f"{c.type!r} on {s}" for s, c in by_shard.items()))
    return out


def _differences(present: Mapping[str, TableSchema], missing: list[str]) -> list[str]:
    out: list[str] = []
    if missing:
        out.append(f"missing on {_names(missing)} (present on {_names(present)})")
    if not present:
        return out
    kinds: dict[str, list[str]] = {}
    for shard, t in present.items():
        kinds.setdefault(t.kind, []).append(shard)
    if len(kinds) > 1:
        out.append("kind: " + ", ".join(f"{k} on {_names(s)}" for k, s in kinds.items()))
    names = sorted({c.name for t in present.values() for c in t.columns}, key=str.lower)
    for name in names:
        by_shard = {s: t.column(name) for s, t in present.items()}
        lacking = [s for s, c in by_shard.items() if c is None]
        if lacking:
            having = [s for s, c in by_shard.items() if c is not None]
            out.append(f"column {name} missing on {_names(lacking)} (present on {_names(having)})")
            continue
        cols = {s: c for s, c in by_shard.items() if c is not None}
        if len(set(cols.values())) > 1:
            out.extend(_column_differences(name, cols))
    orders: dict[tuple[str, ...], list[str]] = {}
    for shard, t in present.items():
        orders.setdefault(tuple(c.name for c in t.columns), []).append(shard)
    if len(orders) > 1 and not any("missing on" in d for d in out if d.startswith("column ")):
        out.append("column order: " + ", ".join(f"({', '.join(o)}) on {_names(s)}" for o, s in orders.items()))
    keys: dict[tuple[str, ...], list[str]] = {}
    for shard, t in present.items():
        keys.setdefault(t.primary_key, []).append(shard)
    if len(keys) > 1:
        out.append("primary key: " + ", ".join(f"({', '.join(k)}) on {_names(s)}" for k, s in keys.items()))
    return out or ["definitions differ"]


def _common(name: str, present: Mapping[str, TableSchema]) -> TableSchema:
    """What every shard that has the table agrees on: the columns all of them have (in the first shard's order),
    each with its type when all agree on it, else an unknown type; the primary key when all agree."""
    tables = list(present.values())
    first = tables[0]
    columns: list[ColumnSchema] = []
    for col in first.columns:
        others = [t.column(col.name) for t in tables[1:]]
        if any(o is None for o in others):
            continue
        if all(o == col for o in others):
            columns.append(col)
        else:
            columns.append(ColumnSchema(col.name, UNKNOWN_TYPE))
    keys = {t.primary_key for t in tables}
    kinds = {t.kind for t in tables}
    return TableSchema(name, tuple(columns), keys.pop() if len(keys) == 1 else (),
                       kinds.pop() if len(kinds) == 1 else "table", authoritative=False)


def combine(keyspace: str, shards: Mapping[str, Mapping[str, TableSchema] | None],
            errors: Mapping[str, str] | None = None) -> KeyspaceSchema:
    """One keyspace's schema from each shard's tables (``None``: a shard that could not be read and has no earlier
    schema; it takes no part in the comparison). Tables all shards agree on are authoritative; the others are
    ``Disagreement``s, kept as the columns the shards that have them share (``authoritative=False``)."""
    read = {s: t for s, t in shards.items() if t is not None}
    order = list(read)
    tables: dict[str, TableSchema] = {}
    disagreements: list[Disagreement] = []
    names = sorted({n for ts in read.values() for n in ts})
    for name in names:
        present = {s: read[s][name] for s in order if name in read[s]}
        missing = [s for s in order if name not in read[s]]
        variants: dict[TableSchema | None, list[str]] = {}
        for s in order:
            variants.setdefault(read[s].get(name), []).append(s)
        if len(variants) == 1 and not missing:
            tables[name] = next(iter(present.values()))
            continue
        diff = _differences(present, missing)
        disagreements.append(Disagreement(keyspace, name, tuple((tuple(v), t) for t, v in variants.items()),
                                          tuple(diff)))
        tables[name] = _common(name, present)
    return KeyspaceSchema(keyspace, tables, tuple(disagreements), dict(errors or {}))


# --- what the planner reads ---------------------------------------------------------------------------------------
def _merge(tracked: Column, declared: Column | None) -> Column:
    """A tracked column, with what the VSchema declares for it taking precedence (an explicit declaration, such as
    a collation, is the operator's decision)."""
    if declared is None:
        return tracked
    return Column(name=tracked.name, type=declared.type or tracked.type,
                  invisible=declared.invisible or tracked.invisible, default=declared.default or tracked.default,
                  collation_name=declared.collation_name or tracked.collation_name,
                  size=declared.size or tracked.size, scale=declared.scale or tracked.scale,
                  nullable=declared.nullable if declared.nullable is not None else tracked.nullable,
                  values=declared.values or tracked.values)


def _build_effective(schema: SchemaSet, table: Table) -> Table:
    tracked = schema.table(table.keyspace, table.name)
    assert tracked is not None
    declared = {c.name.lower(): c for c in table.columns}
    columns = [_merge(c.to_vschema_column(), declared.pop(c.name.lower(), None)) for c in tracked.columns]
    if tracked.authoritative:
        return dataclasses.replace(table, columns=tuple(columns), column_list_authoritative=True)
    # The shards disagree: the columns they share exist; the VSchema's own declarations stay too. Not a full list.
    extra = [c for c in table.columns if c.name.lower() in declared]
    return dataclasses.replace(table, columns=tuple(columns + extra), column_list_authoritative=False)


def effective_table(schema: SchemaSet | None, table: Table) -> Table:
    """The table as the planner should see it: the VSchema's columns when it lists them authoritatively; else the
    tracked columns (authoritative when every shard agrees, VSchema declarations of a column winning over the
    catalog's); else the table unchanged (its columns unknown, or only what the VSchema declares)."""
    if schema is None or not schema.keyspaces or (table.column_list_authoritative and table.columns):
        return table
    key = (table.keyspace, table.name)
    memo = schema._effective.get(key)
    if memo is not None and (memo[0] is table or memo[0] == table):
        return memo[1]
    if schema.table(table.keyspace, table.name) is None:
        return table
    result = _build_effective(schema, table)
    schema._effective[key] = (table, result)  # bounded by the tracked tables
    return result
