"""Maintaining owned lookup vindex tables when their owner table is written (Vitess ``lookupInternal`` Create,
Delete, Update). A lookup table is a VSchema table of its own: each row is written on the shard its own primary
vindex selects (an unsharded keyspace: its one shard). The statements run through the context, so inside the
owner statement's transaction."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from router.engine.context import as_rows
from router.engine.runtime import Runtime
from router.planner.dml_plan import LookupWrite
from router.planner.sqltext import ENCODERS
from sharding.errors import RoutingError, UnknownTableError
from sharding.snapshot import Shard
from sharding.vindexes.base import FunctionalVindex

__all__ = ["create_lookup_rows", "delete_lookup_rows", "lookup_keyspace"]


def _quote(name: str, dialect: str) -> str:
    return '"' + name.replace('"', '""') + '"' if dialect == "postgres" else "`" + name.replace("`", "``") + "`"


def lookup_keyspace(rt: Runtime, lw: LookupWrite, owner_keyspace: str) -> tuple[str, Any]:
    vschema = rt.snapshot.vschema
    try:
        table = vschema.find_table(lw.table, lw.keyspace or None)
    except UnknownTableError:
        if lw.keyspace:
            raise RoutingError(f"lookup table {lw.keyspace}.{lw.table} of vindex {lw.name} is not in the VSchema") \
                from None
        return owner_keyspace, None
    return table.keyspace, table


def _shard_for(rt: Runtime, keyspace: str, table: Any, from_values: Sequence[Any]) -> list[Shard]:
    shards = list(rt.snapshot.shards(keyspace))
    ks = rt.snapshot.vschema.keyspaces.get(keyspace)
    if ks is None or not ks.sharded or len(shards) == 1:
        return shards[:1]
    primary = table.primary_vindex if table is not None else None
    if primary is not None and isinstance(primary.vindex, FunctionalVindex) and len(primary.columns) == 1:
        (dest,) = primary.vindex.map([from_values[0]])
        return rt.snapshot.resolve(keyspace, dest)
    raise RoutingError(f"cannot place a row of lookup table {keyspace}.{getattr(table, 'name', '?')}: it has no "
                       "functional primary vindex on its first from column")


async def _run_grouped(rt: Runtime, keyspace: str, per_shard: dict[str, list[str]]) -> list[Any]:
    async def one(shard: str, sqls: list[str]) -> list[Any]:
        out = []
        for sql in sqls:
            out.append(await rt.wait(rt.ctx.execute(rt.target(keyspace, shard, write=True), sql,
                                                    timeout=rt.remaining())))
        return out

    results = await asyncio.gather(*(one(s, q) for s, q in per_shard.items()))
    return [r for group in results for r in group]


async def create_lookup_rows(rt: Runtime, lw: LookupWrite, owner_keyspace: str,
                             rows: Sequence[tuple[Sequence[Any], bytes]]) -> set[int]:
    """Insert ``(from values, keyspace id)`` rows into ``lw``'s table; returns the indexes of rows that could not
    be stored because their value belongs to another keyspace id (only with ``lw.ignore``; otherwise the
    duplicate-key error of the backend fails the statement)."""
    keyspace, table = lookup_keyspace(rt, lw, owner_keyspace)
    dialect = rt.ctx.backend_dialect(keyspace)
    enc = ENCODERS[dialect]
    vindex = lw.column_vindex.vindex
    cols = ", ".join(_quote(c, dialect) for c in (*lw.from_columns, lw.to_column))
    per_shard: dict[str, list[str]] = {}
    stored: list[tuple[int, list[Any], Any]] = []
    for i, (values, ksid) in enumerate(rows):
        values = [vindex.from_value(v) for v in values]  # type: ignore[attr-defined]
        if lw.ignore_nulls and all(v is None for v in values):
            continue
        to = vindex.to_value(ksid)  # type: ignore[attr-defined]
        row_sql = "(" + ", ".join(enc(v) for v in (*values, to)) + ")"
        if lw.ignore:
            head = ("INSERT IGNORE INTO " if dialect == "mysql" else "INSERT INTO ")
            tail = "" if dialect == "mysql" else " ON CONFLICT DO NOTHING"
        else:
            head, tail = "INSERT INTO ", ""
        sql = f"{head}{_quote(lw.table, dialect)} ({cols}) VALUES {row_sql}{tail}"
        for shard in _shard_for(rt, keyspace, table, values):
            per_shard.setdefault(shard.name, []).append(sql)
        stored.append((i, values, to))
    await _run_grouped(rt, keyspace, per_shard)
    if not lw.ignore or not stored:
        return set()
    # Verify: a value already taken by another keyspace id keeps its row; the owner row is dropped.
    rejected: set[int] = set()
    frm = _quote(lw.from_columns[0], dialect)
    for i, values, to in stored:
        where = " AND ".join(f"{_quote(c, dialect)} = {enc(v)}" if v is not None else f"{_quote(c, dialect)} IS NULL"
                             for c, v in zip(lw.from_columns, values, strict=True))
        sql = f"SELECT {frm}, {_quote(lw.to_column, dialect)} FROM {_quote(lw.table, dialect)} WHERE {where}"
        shard = _shard_for(rt, keyspace, table, values)[0]
        found = as_rows(await rt.wait(rt.ctx.execute(rt.target(keyspace, shard.name, write=True), sql,
                                                     timeout=rt.remaining())))
        if found and not any(_same(r[1], to) for r in found):
            rejected.add(i)
    return rejected


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (bytearray, memoryview)):
        a = bytes(a)
    if isinstance(b, (bytearray, memoryview)):
        b = bytes(b)
    return bool(a == b)


async def delete_lookup_rows(rt: Runtime, lw: LookupWrite, owner_keyspace: str,
                             rows: Sequence[tuple[Sequence[Any], bytes]]) -> None:
    """Remove the lookup rows of ``(from values, keyspace id)``."""
    keyspace, table = lookup_keyspace(rt, lw, owner_keyspace)
    dialect = rt.ctx.backend_dialect(keyspace)
    enc = ENCODERS[dialect]
    vindex = lw.column_vindex.vindex
    per_shard: dict[str, list[str]] = {}
    for values, ksid in rows:
        values = [vindex.from_value(v) for v in values]  # type: ignore[attr-defined]
        if lw.ignore_nulls and all(v is None for v in values):
            continue
        to = vindex.to_value(ksid)  # type: ignore[attr-defined]
        conds = [f"{_quote(c, dialect)} = {enc(v)}" if v is not None else f"{_quote(c, dialect)} IS NULL"
                 for c, v in zip(lw.from_columns, values, strict=True)]
        conds.append(f"{_quote(lw.to_column, dialect)} = {enc(to)}")
        sql = f"DELETE FROM {_quote(lw.table, dialect)} WHERE {' AND '.join(conds)}"
        for shard in _shard_for(rt, keyspace, table, values):
            per_shard.setdefault(shard.name, []).append(sql)
    await _run_grouped(rt, keyspace, per_shard)
