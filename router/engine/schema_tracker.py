"""The schema tracker: reads the columns, types, collations and primary keys of every table from each shard's
catalog, compares the shards of a keyspace, and hands the result (a ``sharding.schema.SchemaSet``) to the gateway,
which publishes it in a new snapshot for the planner.

When it reads: at gateway start, after every DDL the engine runs (``router.engine.send`` tells the gateway), and
on demand (``Gateway.reload_schema()``). Each read covers every table and view of the shard's database (MariaDB:
``information_schema`` of ``DATABASE()``; PostgreSQL: ``pg_catalog`` for ``current_schema()``), with two queries
per shard, all shards of a keyspace at once.

Shards that disagree on a table (a DDL fan-out that failed on some of them) are reported: logged once per new
disagreement (event ``schema_disagreement``) and kept in ``SchemaSet.disagreements``; the planner then treats the
table's columns as a hint, not a full list. A shard that cannot be read keeps its last schema, if it had one, and
is listed in ``KeyspaceSchema.errors``.

Reads of one keyspace are serialized and coalesced: a refresh asked for while another runs waits for it and then
reads once more on behalf of every caller that asked meanwhile, so a burst of DDL costs two reads, not one each,
and no refresh ever publishes a schema older than one already published.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from router.backend.pools import PoolSet
from router.backend.result import ResultSet
from sharding.schema import (
    EMPTY_SCHEMA,
    ColumnSchema,
    ColumnType,
    Disagreement,
    KeyspaceSchema,
    SchemaSet,
    TableSchema,
    TypeCode,
    combine,
)
from sharding.snapshot import ClusterSnapshot

__all__ = ["MYSQL_COLUMNS_SQL", "MYSQL_KEYS_SQL", "PG_COLUMNS_SQL", "PG_KEYS_SQL", "SchemaTracker", "mysql_tables",
           "pg_tables"]

log = logging.getLogger("shardgate.schema")

# --- MySQL / MariaDB ------------------------------------------------------------------------------------------------
MYSQL_COLUMNS_SQL = (
    "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.COLLATION_NAME, c.IS_NULLABLE, "
    "c.COLUMN_DEFAULT, c.CHARACTER_MAXIMUM_LENGTH, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.DATETIME_PRECISION, "
    "c.EXTRA, t.TABLE_TYPE "
    "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
    "ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
    "WHERE c.TABLE_SCHEMA = DATABASE() ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION")
MYSQL_KEYS_SQL = (
    "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX")

_MYSQL_TYPES: dict[str, TypeCode] = {
    "tinyint": TypeCode.TINYINT, "smallint": TypeCode.SMALLINT, "mediumint": TypeCode.MEDIUMINT,
    "int": TypeCode.INT, "integer": TypeCode.INT, "bigint": TypeCode.BIGINT, "decimal": TypeCode.DECIMAL,
    "numeric": TypeCode.DECIMAL, "float": TypeCode.FLOAT, "double": TypeCode.DOUBLE, "real": TypeCode.DOUBLE,
    "char": TypeCode.CHAR, "varchar": TypeCode.VARCHAR, "tinytext": TypeCode.TEXT, "text": TypeCode.TEXT,
    "mediumtext": TypeCode.TEXT, "longtext": TypeCode.TEXT, "binary": TypeCode.BINARY,
    "varbinary": TypeCode.VARBINARY, "tinyblob": TypeCode.BLOB, "blob": TypeCode.BLOB,
    "mediumblob": TypeCode.BLOB, "longblob": TypeCode.BLOB, "date": TypeCode.DATE, "time": TypeCode.TIME,
    "datetime": TypeCode.DATETIME, "timestamp": TypeCode.TIMESTAMP, "year": TypeCode.YEAR, "json": TypeCode.JSON,
    "bit": TypeCode.BIT, "enum": TypeCode.ENUM, "set": TypeCode.SET, "uuid": TypeCode.UUID,
    "geometry": TypeCode.GEOMETRY, "point": TypeCode.GEOMETRY, "linestring": TypeCode.GEOMETRY,
    "polygon": TypeCode.GEOMETRY, "multipoint": TypeCode.GEOMETRY, "multilinestring": TypeCode.GEOMETRY,
    "multipolygon": TypeCode.GEOMETRY, "geometrycollection": TypeCode.GEOMETRY,
    "geomcollection": TypeCode.GEOMETRY,
}
_LABEL = re.compile(r"'((?:[^']|'')*)'")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _labels(column_type: str) -> tuple[str, ...]:
    """``enum('a','b''c')`` -> ``('a', "b'c")``."""
    inner = column_type[column_type.find("(") + 1:column_type.rfind(")")]
    return tuple(m.group(1).replace("''", "'") for m in _LABEL.finditer(inner))


def mysql_tables(columns: Sequence[Sequence[Any]], keys: Sequence[Sequence[Any]]) -> dict[str, TableSchema]:
    """Tables from the rows of ``MYSQL_COLUMNS_SQL`` and ``MYSQL_KEYS_SQL``."""
    by_table: dict[str, list[ColumnSchema]] = {}
    kinds: dict[str, str] = {}
    for row in columns:
        (table, name, data_type, column_type, collation, nullable, default, char_len, num_prec, num_scale,
         dt_prec, extra, table_type) = row
        table, name = _text(table) or "", _text(name) or ""
        data_type = (_text(data_type) or "").lower()
        raw = (_text(column_type) or data_type).lower()
        extra_text = (_text(extra) or "").lower()
        code = _MYSQL_TYPES.get(data_type, TypeCode.OTHER)
        length = _int(char_len) if code in (TypeCode.CHAR, TypeCode.VARCHAR, TypeCode.TEXT, TypeCode.BINARY,
                                           TypeCode.VARBINARY, TypeCode.BLOB) else None
        precision = _int(num_prec) if code in (TypeCode.DECIMAL, TypeCode.FLOAT, TypeCode.DOUBLE) else None
        scale = _int(num_scale) if code is TypeCode.DECIMAL else (
            _int(dt_prec) if code in (TypeCode.TIME, TypeCode.DATETIME, TypeCode.TIMESTAMP) else None)
        ctype = ColumnType(code, raw, unsigned="unsigned" in raw, length=length, precision=precision, scale=scale,
                           values=_labels(raw) if code in (TypeCode.ENUM, TypeCode.SET) else ())
        by_table.setdefault(table, []).append(ColumnSchema(
            name, ctype, collation=_text(collation), nullable=(_text(nullable) or "").upper() == "YES",
            default=_text(default), invisible="invisible" in extra_text, generated="generated" in extra_text
            and "default_generated" not in extra_text, auto_increment="auto_increment" in extra_text))
        kinds[table] = "view" if "VIEW" in (_text(table_type) or "").upper() else "table"
    pk: dict[str, list[str]] = {}
    for table, name in keys:
        pk.setdefault(_text(table) or "", []).append(_text(name) or "")
    return {t: TableSchema(t, tuple(cols), tuple(pk.get(t, ())), kinds[t]) for t, cols in by_table.items()}


# --- PostgreSQL ------------------------------------------------------------------------------------------------------
PG_COLUMNS_SQL = (
    "SELECT c.relname::text, a.attname::text, a.attnum::int, format_type(a.atttypid, a.atttypmod), "
    "COALESCE(bt.oid, t.oid)::bigint, COALESCE(bt.typname, t.typname)::text, "
    "COALESCE(bt.typtype, t.typtype)::text, COALESCE(bt.typcategory, t.typcategory)::text, "
    "CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END::int, a.attnotnull, "
    "pg_get_expr(d.adbin, d.adrelid), a.attcollation::bigint, co.collname::text, a.attgenerated::text, "
    "a.attidentity::text, c.relkind::text, "
    "(SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e "
    " WHERE e.enumtypid = COALESCE(bt.oid, t.oid)) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype "
    "LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
    "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
    "ORDER BY c.relname, a.attnum")
PG_KEYS_SQL = (
    "SELECT c.relname::text, a.attname::text FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
    "WHERE i.indisprimary AND n.nspname = current_schema() ORDER BY c.relname, k.ord")
PG_DATABASE_SQL = "SELECT to_jsonb(d)::text FROM pg_database d WHERE d.datname = current_database()"

_DEFAULT_COLLATION_OID = 100
_PG_TYPES: dict[str, TypeCode] = {
    "bool": TypeCode.BOOL, "int2": TypeCode.SMALLINT, "int4": TypeCode.INT, "int8": TypeCode.BIGINT,
    "oid": TypeCode.BIGINT, "numeric": TypeCode.DECIMAL, "float4": TypeCode.FLOAT, "float8": TypeCode.DOUBLE,
    "bpchar": TypeCode.CHAR, "char": TypeCode.CHAR, "varchar": TypeCode.VARCHAR, "text": TypeCode.TEXT,
    "name": TypeCode.VARCHAR, "bytea": TypeCode.BLOB, "date": TypeCode.DATE, "time": TypeCode.TIME,
    "timetz": TypeCode.TIMETZ, "timestamp": TypeCode.DATETIME, "timestamptz": TypeCode.TIMESTAMPTZ,
    "interval": TypeCode.INTERVAL, "json": TypeCode.JSON, "jsonb": TypeCode.JSON, "uuid": TypeCode.UUID,
    "bit": TypeCode.BIT, "varbit": TypeCode.BIT,
}


def pg_default_collation(database_row: str | None) -> str | None:
    """The collation a column with the database's default collation has, when it is a code-point one (``C``);
    None otherwise (the database's default, which the router cannot reproduce)."""
    if not database_row:
        return None
    info = json.loads(database_row)
    provider = info.get("datlocprovider", "c")
    if provider not in ("c", None):
        return None
    return "C" if str(info.get("datcollate") or "") in ("C", "POSIX") else None


def pg_tables(columns: Sequence[Sequence[Any]], keys: Sequence[Sequence[Any]],
              default_collation: str | None = None) -> dict[str, TableSchema]:
    """Tables from the rows of ``PG_COLUMNS_SQL`` and ``PG_KEYS_SQL``; ``default_collation`` is what
    ``pg_default_collation`` made of the database's."""
    by_table: dict[str, list[ColumnSchema]] = {}
    kinds: dict[str, str] = {}
    for row in columns:
        (table, name, _attnum, formatted, type_oid, typname, typtype, typcategory, typmod, notnull, default,
         coll_oid, collname, generated, identity, relkind, labels) = row
        typname = str(typname)
        if typtype == "e":
            code = TypeCode.ENUM
        elif typcategory == "A":
            code = TypeCode.ARRAY
        else:
            code = _PG_TYPES.get(typname, TypeCode.OTHER)
        typmod = int(typmod) if typmod is not None else -1
        length = precision = scale = None
        if code in (TypeCode.CHAR, TypeCode.VARCHAR) and typmod > 4:
            length = typmod - 4
        elif code is TypeCode.DECIMAL and typmod > 4:
            precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        elif code in (TypeCode.TIME, TypeCode.TIMETZ, TypeCode.DATETIME, TypeCode.TIMESTAMPTZ) and typmod >= 0:
            scale = typmod
        elif code is TypeCode.BIT and typmod > 0:
            length = typmod
        if not coll_oid:
            collation = None
        elif int(coll_oid) == _DEFAULT_COLLATION_OID:
            collation = default_collation
        else:
            collation = str(collname) if collname is not None else None
        ctype = ColumnType(code, str(formatted).lower(), length=length, precision=precision, scale=scale,
                           values=tuple(labels or ()), backend_type=int(type_oid))
        default_text = _text(default)
        by_table.setdefault(str(table), []).append(ColumnSchema(
            str(name), ctype, collation=collation, nullable=not notnull, default=default_text,
            generated=bool(generated), auto_increment=bool(identity) or (
                default_text is not None and default_text.startswith("nextval("))))
        kinds[str(table)] = "view" if relkind in ("v", "m") else "table"
    pk: dict[str, list[str]] = {}
    for table, name in keys:
        pk.setdefault(str(table), []).append(str(name))
    return {t: TableSchema(t, tuple(cols), tuple(pk.get(t, ())), kinds[t]) for t, cols in by_table.items()}


# --- the tracker -----------------------------------------------------------------------------------------------------
def _rows(result: Any) -> list[Any]:
    return list(result.rows) if isinstance(result, ResultSet) else []


class SchemaTracker:
    """Reads shards' catalogs through ``pools`` and keeps what it read (see the module docstring).

    ``dialect_of(keyspace)`` says whether a keyspace's shards are ``mysql`` or ``postgres``."""

    def __init__(self, pools: PoolSet, dialect_of: Callable[[str], str], *, timeout: float = 10.0) -> None:
        self.pools = pools
        self.dialect_of = dialect_of
        self.timeout = timeout
        self.reads = 0  # shard reads done (for tests and metrics)
        self._last: dict[tuple[str, str], dict[str, TableSchema]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._asked: dict[str, int] = {}
        self._served: dict[str, int] = {}
        self._results: dict[str, KeyspaceSchema] = {}
        self._reported: set[tuple[str, str, tuple[str, ...]]] = set()

    async def read_shard(self, keyspace: str, shard: str) -> dict[str, TableSchema]:
        """Every table of one shard, as its catalog describes it."""
        dialect = self.dialect_of(keyspace)
        deadline = time.monotonic() + self.timeout

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        async with self.pools.acquire(keyspace, shard, "primary", timeout=left()) as conn:
            if dialect == "postgres":
                database = _rows(await conn.execute(PG_DATABASE_SQL, timeout=left()))
                columns = _rows(await conn.execute(PG_COLUMNS_SQL, timeout=left()))
                keys = _rows(await conn.execute(PG_KEYS_SQL, timeout=left()))
                tables = pg_tables(columns, keys, pg_default_collation(database[0][0] if database else None))
            else:
                columns = _rows(await conn.execute(MYSQL_COLUMNS_SQL, timeout=left()))
                keys = _rows(await conn.execute(MYSQL_KEYS_SQL, timeout=left()))
                tables = mysql_tables(columns, keys)
        self.reads += 1
        return tables

    async def load_keyspace(self, snapshot: ClusterSnapshot, keyspace: str) -> KeyspaceSchema:
        """Read every shard of ``keyspace`` (coalesced with concurrent requests) and compare them."""
        asked = self._asked[keyspace] = self._asked.get(keyspace, 0) + 1
        lock = self._locks.setdefault(keyspace, asyncio.Lock())
        async with lock:
            if self._served.get(keyspace, 0) >= asked and keyspace in self._results:
                return self._results[keyspace]  # a read that began after this request already covered it
            started = self._asked[keyspace]
            result = await self._read_keyspace(snapshot, keyspace)
            self._served[keyspace] = started
            self._results[keyspace] = result
            return result

    async def _read_keyspace(self, snapshot: ClusterSnapshot, keyspace: str) -> KeyspaceSchema:
        shards = [s.name for s in snapshot.shards(keyspace)]
        results = await asyncio.gather(*(self.read_shard(keyspace, s) for s in shards), return_exceptions=True)
        per_shard: dict[str, Mapping[str, TableSchema] | None] = {}
        errors: dict[str, str] = {}
        for shard, result in zip(shards, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                errors[shard] = f"{type(result).__name__}: {getattr(result, 'message', None) or result}"
                per_shard[shard] = self._last.get((keyspace, shard))
                log.warning("schema_read_failed keyspace=%s shard=%s error=%s", keyspace, shard,
                            type(result).__name__, extra={"event": "schema_read_failed", "keyspace": keyspace,
                                                          "shard": shard, "error": type(result).__name__})
            else:
                self._last[(keyspace, shard)] = result
                per_shard[shard] = result
        schema = combine(keyspace, per_shard, errors)
        self._report(keyspace, schema.disagreements)
        return schema

    def _report(self, keyspace: str, disagreements: Sequence[Disagreement]) -> None:
        """Log each disagreement once, until it is repaired (a relapse is logged again)."""
        current = {(d.keyspace, d.table, d.differences) for d in disagreements}
        self._reported = {k for k in self._reported if k[0] != keyspace or k in current}
        for d in disagreements:
            key = (d.keyspace, d.table, d.differences)
            if key in self._reported:
                continue
            self._reported.add(key)
            log.warning("schema_disagreement %s", d.describe(),
                        extra={"event": "schema_disagreement", "keyspace": d.keyspace, "table": d.table,
                               "shards": ",".join(d.shards)})

    def latest(self, keyspace: str) -> KeyspaceSchema | None:
        """The newest completed read of a keyspace (reads are serialized, so the last one stored is the newest):
        what to publish, even when a caller's own read finished earlier but resumed later."""
        return self._results.get(keyspace)

    async def load(self, snapshot: ClusterSnapshot, keyspaces: Sequence[str] | None = None,
                   base: SchemaSet = EMPTY_SCHEMA) -> SchemaSet:
        """``base`` with the named keyspaces (default: every keyspace with shards) read afresh."""
        names = list(keyspaces) if keyspaces is not None else sorted(snapshot.keyspaces)
        names = [n for n in names if n in snapshot.keyspaces]
        read = await asyncio.gather(*(self.load_keyspace(snapshot, n) for n in names))
        schema = base
        for ks in read:
            schema = schema.with_keyspace(ks)
        return schema
