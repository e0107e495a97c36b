"""Maintaining owned lookup vindex tables when their owner table is written (Vitess ``lookupInternal`` Create,
Delete, Update). A lookup table is a VSchema table of its own: each row is written on the shard its own primary
vindex selects (an unsharded keyspace: its one shard). The statements run through the context, so inside the
owner statement's transaction.

Consistent lookups (``consistent_lookup``, ``consistent_lookup_unique``; Vitess ``consistent_lookup.go``) use the
transaction's commit order instead (``router.engine.transaction``): rows are created on ``pre`` connections
(committed before the owner rows) and deleted on ``post`` ones (committed after), so the lookup table is always a
superset of its owner's values. A create meeting an existing row locks it, and checks the owner row it points to:
still there, the value is a duplicate (the duplicate-key error); gone, the row is an orphan and is taken over.
Reads through a lookup verify the owner shard anyway, so orphans are harmless."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from router.backend.result import ExecResult, rows_from_status
from router.engine.context import as_rows
from router.engine.runtime import Runtime
from router.planner.dml_plan import LookupWrite
from router.planner.sqltext import ENCODERS
from sharding.errors import BackendError, RoutingError, UnknownTableError, UnsupportedError
from sharding.snapshot import Shard
from sharding.vindexes.base import FunctionalVindex
from sharding.vindexes.consistent_lookup import ConsistentLookupVindex

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


async def _exec(rt: Runtime, keyspace: str, shard: str, sql: str, order: str = "normal") -> Any:
    target = rt.target(keyspace, shard, write=True)
    if order == "normal" or getattr(rt.ctx, "tx", None) is None:  # no transaction: one connection as any
        return await rt.wait(rt.ctx.execute(target, sql, timeout=rt.remaining()))
    return await rt.wait(rt.ctx.execute(target, sql, timeout=rt.remaining(), order=order))  # type: ignore[call-arg]


def _consistent(lw: LookupWrite) -> bool:
    return isinstance(lw.column_vindex.vindex, ConsistentLookupVindex)


async def _run_grouped(rt: Runtime, keyspace: str, per_shard: dict[str, list[str]],
                       order: str = "normal") -> list[Any]:
    async def one(shard: str, sqls: list[str]) -> list[Any]:
        out = []
        for sql in sqls:
            out.append(await _exec(rt, keyspace, shard, sql, order))
        return out

    results = await asyncio.gather(*(one(s, q) for s, q in per_shard.items()))
    return [r for group in results for r in group]


async def create_lookup_rows(rt: Runtime, lw: LookupWrite, owner_keyspace: str,
                             rows: Sequence[tuple[Sequence[Any], bytes]], owner_table: str = "") -> set[int]:
    """Insert ``(from values, keyspace id)`` rows into ``lw``'s table; returns the indexes of rows that could not
    be stored because their value belongs to another keyspace id (only with ``lw.ignore``; otherwise the
    duplicate-key error of the backend fails the statement). ``owner_table``: the owner's table (consistent
    lookups check whether an existing row's owner is still there)."""
    keyspace, table = lookup_keyspace(rt, lw, owner_keyspace)
    if _consistent(lw):
        return await _create_consistent(rt, lw, owner_keyspace, owner_table, keyspace, table, rows)
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
    consistent = _consistent(lw)
    marks = _marks(rt)
    per_order: dict[str, dict[str, list[str]]] = {}
    for values, ksid in rows:
        values = [vindex.from_value(v) for v in values]  # type: ignore[attr-defined]
        if lw.ignore_nulls and all(v is None for v in values):
            continue
        to = vindex.to_value(ksid)  # type: ignore[attr-defined]
        conds = [f"{_quote(c, dialect)} = {enc(v)}" if v is not None else f"{_quote(c, dialect)} IS NULL"
                 for c, v in zip(lw.from_columns, values, strict=True)]
        conds.append(f"{_quote(lw.to_column, dialect)} = {enc(to)}")
        sql = f"DELETE FROM {_quote(lw.table, dialect)} WHERE {' AND '.join(conds)}"
        order = "normal"
        if consistent:
            # Removed after the owner rows commit (an owner row never outlives its lookup row) — unless this
            # transaction created the row on its pre connection: it holds the row's lock, and the row exists
            # only for an owner row of this transaction, so removing it there is safe.
            key = _mark_key(keyspace, lw, values, to)
            mark = marks.get(key)
            if mark == "locked":
                raise UnsupportedError(
                    f"consistent lookup vindex {lw.name}: value {_shown(values)} was locked by a failed write earlier "
                    "in this transaction; its row cannot be removed before COMMIT or ROLLBACK")
            order = "pre" if mark == "created" else "post"
            marks[key] = "deleted" if order == "post" else "gone"
        for shard in _shard_for(rt, keyspace, table, values):
            per_order.setdefault(order, {}).setdefault(shard.name, []).append(sql)
    for order, per_shard in per_order.items():
        await _run_grouped(rt, keyspace, per_shard, order)


def _marks(rt: Runtime) -> dict[tuple[Any, ...], str]:
    """The consistent lookup rows this transaction touched on its pre/post connections (no transaction: none)."""
    tx = getattr(rt.ctx, "tx", None)
    return tx.ordered_rows if tx is not None else {}


def _mark_key(keyspace: str, lw: LookupWrite, values: Sequence[Any], to: Any) -> tuple[Any, ...]:
    """A lookup row's identity as its table's primary key sees it: the from values (unique) plus ``to``."""
    unique = bool(getattr(lw.column_vindex.vindex, "UNIQUE", False))
    return (keyspace, lw.table, *values) if unique else (keyspace, lw.table, *values, _hashable(to))


def _hashable(v: Any) -> Any:
    return bytes(v) if isinstance(v, (bytearray, memoryview)) else v


def _shown(values: Sequence[Any]) -> str:
    return "-".join("NULL" if v is None else str(v) for v in values)


def _affected(result: Any) -> int:
    if isinstance(result, ExecResult):
        return result.rows_affected
    return rows_from_status(getattr(result, "status", "") or "")


def _where(cols: Sequence[str], values: Sequence[Any], dialect: str) -> str:
    enc = ENCODERS[dialect]
    return " AND ".join(f"{_quote(c, dialect)} = {enc(v)}" if v is not None else f"{_quote(c, dialect)} IS NULL"
                        for c, v in zip(cols, values, strict=True))


async def _create_consistent(rt: Runtime, lw: LookupWrite, owner_keyspace: str, owner_table: str, keyspace: str,
                             table: Any, rows: Sequence[tuple[Sequence[Any], bytes]]) -> set[int]:
    """Vitess ``clCommon.Create`` + ``handleDup``, row by row on the ``pre`` connections. Insert ignoring a
    duplicate (PostgreSQL: a failed INSERT would abort the whole pre transaction); nothing inserted means the value
    exists: lock its row, and decide by its owner row (see the module docstring). With ``lw.ignore`` a live
    duplicate drops the owner row (its index is returned) instead of failing the statement."""
    if not owner_table:
        raise RoutingError(f"consistent lookup vindex {lw.name}: the owner table is unknown")
    dialect = rt.ctx.backend_dialect(keyspace)
    owner_dialect = rt.ctx.backend_dialect(owner_keyspace)
    enc = ENCODERS[dialect]
    vindex = lw.column_vindex.vindex
    unique = bool(getattr(vindex, "UNIQUE", False))
    lk, to_col = _quote(lw.table, dialect), _quote(lw.to_column, dialect)
    cols = ", ".join(_quote(c, dialect) for c in (*lw.from_columns, lw.to_column))
    head, tail = ("INSERT IGNORE INTO ", "") if dialect == "mysql" else ("INSERT INTO ", " ON CONFLICT DO NOTHING")
    owner_kss = rt.snapshot.keyspaces[owner_keyspace]
    rejected: set[int] = set()
    marks = _marks(rt)
    for i, (raw, ksid) in enumerate(rows):
        values = [vindex.from_value(v) for v in raw]  # type: ignore[attr-defined]
        if lw.ignore_nulls and all(v is None for v in values):
            continue
        to = vindex.to_value(ksid)  # type: ignore[attr-defined]
        key = _mark_key(keyspace, lw, values, to)
        mark = marks.get(key)
        if mark == "deleted":  # the post connection holds its lock until after COMMIT: waiting would deadlock
            raise UnsupportedError(
                f"consistent lookup vindex {lw.name}: value {_shown(values)} was removed earlier in this "
                "transaction; it cannot be given to a row again before COMMIT")
        if mark == "created":  # given to a row of this transaction (maybe of this very statement) already
            if lw.ignore:
                rejected.add(i)
                continue
            raise _duplicate(lw, values, dialect)
        row_sql = f"{lk} ({cols}) VALUES ({', '.join(enc(v) for v in (*values, to))})"
        insert = f"{head}{row_sql}{tail}"
        where = _where(lw.from_columns, values, dialect)
        lock = f"SELECT {to_col} FROM {lk} WHERE {where}" + ("" if unique else f" AND {to_col} = {enc(to)}")
        lock += " FOR UPDATE"
        marks[key] = "created"
        for shard in _shard_for(rt, keyspace, table, values):
            if _affected(await _exec(rt, keyspace, shard.name, insert, "pre")) > 0:
                continue
            found = as_rows(await _exec(rt, keyspace, shard.name, lock, "pre"))
            if not found:  # deleted since: insert again (a new duplicate now is a real one)
                await _exec(rt, keyspace, shard.name, f"INSERT INTO {row_sql}", "pre")
                continue
            if len(found) > 1:
                raise RoutingError(f"consistent lookup vindex {lw.name}: {len(found)} rows for one value in {lw.table}")
            existing = vindex.ksid_from_to(found[0][0])  # type: ignore[attr-defined]
            if existing is not None and await _owner_exists(rt, lw, owner_keyspace, owner_table, owner_dialect,
                                                            owner_kss.shard_for_ksid(existing).name, raw):
                marks[key] = "locked"  # the pre connection holds the live row's lock until the end
                if lw.ignore:
                    rejected.add(i)
                    break
                raise _duplicate(lw, values, dialect)
            if existing is not None and bytes(existing) == bytes(ksid):
                continue
            # An orphan (its owner row is gone): it now points at the new row.
            await _exec(rt, keyspace, shard.name, f"UPDATE {lk} SET {to_col} = {enc(to)} WHERE {where}", "pre")
    return rejected


async def _owner_exists(rt: Runtime, lw: LookupWrite, owner_keyspace: str, owner_table: str, dialect: str,
                        shard: str, values: Sequence[Any]) -> bool:
    """Lock the owner row the existing lookup row points at (normal transaction, as Vitess ``lockOwnerQuery``)."""
    sql = (f"SELECT 1 FROM {_quote(owner_table, dialect)} WHERE {_where(lw.column_vindex.columns, values, dialect)}"
           " FOR UPDATE")
    return bool(as_rows(await _exec(rt, owner_keyspace, shard, sql)))


def _duplicate(lw: LookupWrite, values: Sequence[Any], dialect: str) -> BackendError:
    shown = _shown(values)
    if dialect == "postgres":
        message = f'duplicate key value violates unique constraint "{lw.table}_pkey" (lookup vindex {lw.name}: ' \
                  f"({', '.join(lw.from_columns)})=({shown}) already exists)"
    else:
        message = f"Duplicate entry '{shown}' for key '{lw.table}.PRIMARY' (lookup vindex {lw.name})"
    return BackendError(message, mysql_errno=1062, mysql_sqlstate="23000", pg_sqlstate="23505")
