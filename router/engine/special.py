"""Executing the statements of ``router.planner.session_plan`` that produce rows: ``SELECT NEXT … VALUES``
(``SequenceNext``), ``VEXPLAIN PLAN`` and ``SHOW``. Transaction control, SET and USE change the session and are
carried out by ``router.engine.session``; VEXPLAIN QUERIES/ALL run the inner statement and are too.

SHOW: the router answers what it knows (keyspaces, shards, VSchema tables and vindexes); statements about a
keyspace's tables go to its first shard, written for that shard's engine (a PostgreSQL shard has no ``SHOW
TABLES``: information_schema answers instead). Anything else is ``UnsupportedError`` naming the SHOW.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from router.engine.runtime import ListSource, Runtime, Source, synthetic_column
from router.planner.session_plan import SequenceNext, Show, VExplain
from router.planner.sqltext import ENCODERS
from router.planner.values import evaluate
from router.shard_listing import SHARD_COLUMNS, shard_rows
from sharding.errors import InvalidValueError, UnknownKeyspaceError, UnsupportedError

__all__ = ["open_sequence_next", "open_show", "open_vexplain", "rows_source"]


def rows_source(rt: Runtime, names: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> Source:
    first = rows[0] if rows else ()
    columns = tuple(synthetic_column(n, first[i] if i < len(first) else None) for i, n in enumerate(names))
    return ListSource(columns, rows, rt.limits.batch_rows)


async def open_sequence_next(prim: SequenceNext, rt: Runtime) -> Source:
    count = evaluate(prim.count, rt.binds, rt.env)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidValueError(f"NEXT needs a positive number of values, got {count!r}")
    first = await rt.ctx.reserve_ids(prim.keyspace.name, prim.table, count)
    return rows_source(rt, ("nextval",), [(first,)])


async def open_vexplain(prim: VExplain, rt: Runtime) -> Source:
    if prim.mode != "plan":
        raise UnsupportedError(f"VEXPLAIN {prim.mode.upper()} runs through a session (router.engine.session)")
    return rows_source(rt, ("JSON",), [(json.dumps(prim.input.describe(), indent=2, default=str),)])


def _quote(name: str, dialect: str) -> str:
    return '"' + name.replace('"', '""') + '"' if dialect == "postgres" else "`" + name.replace("`", "``") + "`"


async def _on_first_shard(rt: Runtime, keyspace: str, sql: str, names: tuple[str, ...] | None = None) -> Source:
    from router.backend.result import ResultSet

    shard = rt.snapshot.shards(keyspace)[0]
    result = await rt.wait(rt.ctx.execute(rt.target(keyspace, shard.name), sql, timeout=rt.remaining()))
    if not isinstance(result, ResultSet):
        return ListSource((), [])
    columns = result.columns
    if names is not None and len(names) == len(columns):
        import dataclasses

        columns = tuple(dataclasses.replace(c, name=n) for c, n in zip(columns, names, strict=True))
    return ListSource(columns, result.rows, rt.limits.batch_rows)


async def open_show(prim: Show, rt: Runtime) -> Source:
    stmt = prim.statement
    kind = stmt.kind
    snapshot = rt.snapshot
    vschema = snapshot.vschema
    if kind in ("databases", "keyspaces", "shardgate_keyspaces"):
        names = sorted(vschema.keyspaces)
        if stmt.like:
            names = [n for n in names if _like(n, stmt.like)]
        return rows_source(rt, ("Database",), [(n,) for n in names])
    if kind == "shardgate_shards":
        rows = shard_rows(snapshot, getattr(rt.ctx, "pools", None))
        if stmt.like:  # as Vitess's SHOW VITESS_SHARDS LIKE: on "keyspace/shard"
            rows = [r for r in rows if _like(f"{r[0]}/{r[1]}", stmt.like)]
        return rows_source(rt, SHARD_COLUMNS, rows)
    if kind == "shardgate_vschema":
        return rows_source(rt, ("VSchema",), [(json.dumps(vschema.to_json(), indent=2, sort_keys=True),)])
    keyspace = prim.keyspace
    if kind == "shardgate_vschema_tables":
        ks = _keyspace(rt, keyspace)
        return rows_source(rt, ("Tables",), [(t,) for t in sorted(ks.tables)])
    if kind == "shardgate_vschema_vindexes":
        ks = _keyspace(rt, keyspace)
        vindexes = [(name, v.type, json.dumps(dict(v.params), sort_keys=True), getattr(v, "owner", "") or "")
                    for name, v in sorted(ks.vindexes.items())]
        return rows_source(rt, ("Name", "Type", "Params", "Owner"), vindexes)
    if kind in ("tables", "columns", "create_table", "index"):
        ks = _keyspace(rt, keyspace)
        dialect = rt.ctx.backend_dialect(ks.name)
        table = prim.table.split(".", 1)[1] if prim.table else None
        if dialect == "mysql":
            full = "FULL " if stmt.full else ""
            like = f" LIKE {ENCODERS['mysql'](stmt.like)}" if stmt.like else ""
            if kind == "tables":
                return await _on_first_shard(rt, ks.name, f"SHOW {full}TABLES{like}",
                                             (f"Tables_in_{ks.name}",) + (("Table_type",) if stmt.full else ()))
            assert table is not None
            sql = {"columns": f"SHOW {full}COLUMNS FROM {_quote(table, dialect)}{like}",
                   "create_table": f"SHOW CREATE TABLE {_quote(table, dialect)}",
                   "index": f"SHOW INDEX FROM {_quote(table, dialect)}"}[kind]
            return await _on_first_shard(rt, ks.name, sql)
        enc = ENCODERS["postgres"]
        if kind == "tables":
            like = f" AND table_name LIKE {enc(stmt.like)}" if stmt.like else ""
            return await _on_first_shard(
                rt, ks.name, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                f"{like} ORDER BY table_name", (f"Tables_in_{ks.name}",))
        if kind == "columns":
            assert table is not None
            return await _on_first_shard(
                rt, ks.name, "SELECT column_name, data_type, is_nullable, column_default FROM "
                f"information_schema.columns WHERE table_schema = current_schema() AND table_name = {enc(table)} "
                "ORDER BY ordinal_position", ("Field", "Type", "Null", "Default"))
        raise UnsupportedError(f"SHOW {kind.upper().replace('_', ' ')} is not supported for PostgreSQL shards")
    if kind in ("variable", "all_variables"):
        ks_name = keyspace or next(iter(sorted(snapshot.keyspaces)), None)
        if ks_name is None:
            raise UnknownKeyspaceError("no keyspace to ask")
        if rt.ctx.backend_dialect(ks_name) != "postgres":
            raise UnsupportedError("SHOW <setting> needs a PostgreSQL shard")
        name = "ALL" if kind == "all_variables" else _quote(stmt.name or "", "postgres")
        return await _on_first_shard(rt, ks_name, f"SHOW {name}")
    if kind in ("variables", "status", "engines", "collation", "charset"):
        ks_name = keyspace or next(iter(sorted(snapshot.keyspaces)), None)
        if ks_name is None or rt.ctx.backend_dialect(ks_name) != "mysql":
            raise UnsupportedError(f"SHOW {kind.upper()} needs a MySQL/MariaDB shard")
        scope = f"{stmt.scope.upper()} " if stmt.scope and kind in ("variables", "status") else ""
        like = f" LIKE {ENCODERS['mysql'](stmt.like)}" if stmt.like else ""
        word = {"charset": "CHARACTER SET"}.get(kind, kind.upper())
        return await _on_first_shard(rt, ks_name, f"SHOW {scope}{word}{like}")
    if kind in ("warnings", "errors"):
        session = rt.session
        warnings = list(getattr(session, "last_warnings", ()) or ()) if kind == "warnings" else []
        notes = [("Warning", 1105, w) for w in warnings]
        return rows_source(rt, ("Level", "Code", "Message"), notes)
    raise UnsupportedError(f"SHOW {kind.upper().replace('_', ' ')} is not supported yet")


def _keyspace(rt: Runtime, name: str | None) -> Any:
    if not name:
        raise UnknownKeyspaceError("no keyspace selected (USE one, or name it)")
    ks = rt.snapshot.vschema.keyspaces.get(name)
    if ks is None:
        raise UnknownKeyspaceError(f"unknown keyspace {name}")
    return ks


def _like(value: str, pattern: str) -> bool:
    import re

    rx = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(rx, value, re.IGNORECASE | re.DOTALL) is not None
