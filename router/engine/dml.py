"""Executing writes: ``Insert``, ``Update``, ``Delete``, ``DMLWithInput`` (Vitess ``insert.go``, ``update.go``,
``delete.go``, ``dml_with_input.go``). The primitives' docstrings (``router.planner.dml_plan``) are the
specification; this module follows them step by step.

Results go to ``rt.totals``: affected rows summed over shards, the insert id (the first generated id when a
sequence filled the auto-increment column, else the id reported by the shard that received the first row),
warnings. ``RETURNING`` rows are concatenated in shard order.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from router.backend.result import ExecResult, ResultSet, Row
from router.engine.lookup_write import create_lookup_rows, delete_lookup_rows
from router.engine.runtime import ListSource, Runtime, Source
from router.planner.dml_plan import DML_VALS, DMLWithInput, Insert, InsertVindexValues, row_var, seq_var
from router.planner.dml_plan import Delete as DeletePrim
from router.planner.dml_plan import Update as UpdatePrim
from router.planner.plan import Opcode, Primitive
from router.planner.sqltext import ENCODERS
from router.planner.values import evaluate
from sharding.destination import KeyspaceId
from sharding.errors import InvalidValueError, RoutingError
from sharding.snapshot import Shard
from sharding.vindexes.base import Lookup, MultiColumn, Reversible

__all__ = ["open_delete", "open_dml_with_input", "open_insert", "open_update"]

Opener = Callable[[Primitive, Runtime], Awaitable[Source]]


# --- shared -------------------------------------------------------------------------------------------------
async def _execute_on(rt: Runtime, keyspace: str, work: Sequence[tuple[Shard, str]]) -> list[ResultSet | ExecResult]:
    async def one(shard: Shard, sql: str) -> ResultSet | ExecResult:
        return await rt.wait(rt.ctx.execute(rt.target(keyspace, shard.name, write=True), sql,
                                            timeout=rt.remaining()))

    if len(work) == 1:
        return [await one(*work[0])]
    tasks = [asyncio.ensure_future(one(s, q)) for s, q in work]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _account(rt: Runtime, results: Sequence[ResultSet | ExecResult], returning: bool, *,
             copies: bool = False) -> Source:
    """Fold the shards' answers into the totals; the RETURNING rows (if any) become the statement's rows.

    ``copies``: every shard holds the same rows (a reference table written on every shard), so one shard's answer
    is the statement's: the client wrote its rows once, however many copies the router keeps."""
    if copies and results:
        results = results[:1]
    totals = rt.totals
    rows: list[Row] = []
    columns: tuple[Any, ...] = ()
    for r in results:
        if isinstance(r, ExecResult):
            totals.rows_affected += r.rows_affected
            totals.server_warnings += r.warnings
        else:
            totals.rows_affected += len(r.rows) if returning else _status_rows(r.status)
            totals.server_warnings += r.warnings
            if not columns:
                columns = r.columns
            rows.extend(r.rows)
    totals.has_rows = returning
    return ListSource(columns, rows, rt.limits.batch_rows) if returning else ListSource((), [])


def _status_rows(status: str) -> int:
    from router.backend.result import rows_from_status

    return rows_from_status(status)


def _insert_id(results: Sequence[ResultSet | ExecResult]) -> int | None:
    for r in results:
        if isinstance(r, ExecResult) and r.last_insert_id:
            return r.last_insert_id
    return None


def _vindex_ksid(vindex: Any, values: Sequence[Any]) -> bytes | None:
    """The keyspace id one row's vindex values map to, or None when they map to none (or several)."""
    if isinstance(vindex, MultiColumn):
        dest = vindex.map_rows([list(values)])[0]
    else:
        dest = vindex.map([values[0]])[0]  # type: ignore[attr-defined]
    return dest.ksid if type(dest) is KeyspaceId else None


def _auto_on_zero(rt: Runtime) -> bool:
    """MySQL generates an id for 0 unless sql_mode has NO_AUTO_VALUE_ON_ZERO."""
    if rt.client_dialect != "mysql":
        return False
    mode = ""
    session = rt.session
    if session is not None:
        mode = str(getattr(session, "sql_mode", "") or "")
    return "NO_AUTO_VALUE_ON_ZERO" not in mode.upper()


async def _generate(rt: Runtime, prim: Insert, env: dict[str, Any], row_values: list[Any] | None) -> None:
    """Fill ``env[seq_var(r)]`` from the client's values or the sequence (one reservation for all rows)."""
    gen = prim.generate
    if gen is None:
        return
    if row_values is None:
        row_values = [evaluate(v, rt.binds, env) for v in gen.values]
    zero_too = _auto_on_zero(rt)
    need = [r for r, v in enumerate(row_values) if v is None or (zero_too and v == 0 and not isinstance(v, bool))]
    first = None
    if need:
        first = await rt.ctx.reserve_ids(gen.keyspace.name, gen.table, len(need))
        for n, r in enumerate(need):
            row_values[r] = first + n
    for r, v in enumerate(row_values):
        env[seq_var(r)] = v
    if first is not None:
        rt.totals.last_insert_id = first


# --- INSERT -------------------------------------------------------------------------------------------------
async def open_insert(prim: Insert, rt: Runtime) -> Source:
    keyspace = prim.keyspace.name
    dialect = rt.ctx.backend_dialect(keyspace)
    env = dict(rt.env)
    if prim.variant == "Select":
        return await _insert_select(prim, rt, env, dialect)
    if prim.variant == "Unsharded":
        shard = rt.snapshot.shards(keyspace)[0]
        if prim.generate is None:
            from router.engine.route import shard_queries
            from router.planner.resolve import ResolvedRoute

            ((_, sql),) = shard_queries(prim.query, -1, prim.passthrough, keyspace, ResolvedRoute((shard,)), rt)
        else:
            await _generate(rt, prim, env, None)
            sql = _rows_sql(prim, rt, env, dialect, range(len(prim.rows)))
        results = await _execute_on(rt, keyspace, [(shard, sql)])
        return _finish_insert(rt, prim, results)
    if prim.variant != "Sharded":
        raise RoutingError(f"Insert variant {prim.variant} is not executable")
    await _generate(rt, prim, env, None)
    n_rows = len(prim.rows)
    if prim.all_shards:
        sql = _rows_sql(prim, rt, env, dialect, range(n_rows)) if prim.rows else \
            prim.query.render(rt.binds, dialect, env)
        results = await _execute_on(rt, keyspace, [(s, sql) for s in rt.snapshot.shards(keyspace)])
        return _finish_insert(rt, prim, results)
    ksids, kept = await _place_rows(prim, rt, env, keyspace, n_rows, _values_from_env(prim, rt, env, n_rows))
    return await _send_rows(prim, rt, env, dialect, keyspace, ksids, kept, lambda rows: _rows_sql(
        prim, rt, env, dialect, rows))


def _values_from_env(prim: Insert, rt: Runtime, env: dict[str, Any], n_rows: int) -> list[list[list[Any]]]:
    """``values[i][c][r]``: vindex ``i``'s column ``c`` in row ``r``, evaluated (after ``Generate``) and stored in
    ``env[row_var(column, r)]``."""
    out: list[list[list[Any]]] = []
    for iv in prim.vindex_values:
        per_col: list[list[Any]] = []
        for c, column in enumerate(iv.column_vindex.columns):
            col_values = []
            for r in range(n_rows):
                v = evaluate(iv.values[c][r], rt.binds, env)
                env[row_var(column, r)] = v
                col_values.append(v)
            per_col.append(col_values)
        out.append(per_col)
    return out


async def _place_rows(prim: Insert, rt: Runtime, env: dict[str, Any] | None, keyspace: str, n_rows: int,
                      values: list[list[list[Any]]]) -> tuple[list[bytes | None], list[int]]:
    """Keyspace ids of every row (primary vindex), owned lookups created, other vindexes filled or verified.
    Returns the ksids and the rows kept (all, unless ``ignore`` dropped some)."""
    if prim.pinned is not None:
        return [prim.pinned] * n_rows, list(range(n_rows))
    if not prim.vindex_values:
        raise RoutingError(f"INSERT into {prim.table}: no primary vindex to place its rows")
    dropped: set[int] = set()
    primary: InsertVindexValues = prim.vindex_values[0]
    pcols = values[0]
    ksids: list[bytes | None] = []
    for r in range(n_rows):
        row_vals = [pcols[c][r] for c in range(len(pcols))]
        ksid = None
        if not any(v is None for v in row_vals):
            try:
                ksid = await _map_one(rt, primary.column_vindex.vindex, row_vals, keyspace)
            except InvalidValueError:
                if not prim.ignore:
                    raise
        if ksid is None:
            if prim.ignore:
                dropped.add(r)
            else:
                shown = row_vals[0] if len(row_vals) == 1 else tuple(row_vals)
                raise RoutingError(f"could not map {shown!r} to a keyspace id (column "
                                   f"{', '.join(primary.column_vindex.columns)}, vindex {primary.column_vindex.name})")
        ksids.append(ksid)
    lookups = {lw.name: lw for lw in prim.lookups}
    for i, iv in enumerate(prim.vindex_values[1:], start=1):
        cv = iv.column_vindex
        cols = values[i]
        live = [r for r in range(n_rows) if r not in dropped]
        lw = lookups.get(cv.name)
        if lw is not None:
            rows = [([cols[c][r] for c in range(len(cols))], ksids[r]) for r in live]
            rejected = await create_lookup_rows(rt, lw, keyspace, rows, prim.table)  # type: ignore[arg-type]
            dropped.update(live[k] for k in rejected)
            continue
        for r in live:
            row_vals = [cols[c][r] for c in range(len(cols))]
            ksid = ksids[r]
            assert ksid is not None
            if len(row_vals) == 1 and row_vals[0] is None and isinstance(cv.vindex, Reversible):
                value = cv.vindex.reverse(ksid)
                cols[0][r] = value
                if env is not None:
                    env[row_var(cv.columns[0], r)] = value
                continue
            if not await _verify(rt, cv.vindex, row_vals, ksid, keyspace):
                if prim.ignore:
                    dropped.add(r)
                    continue
                raise RoutingError(f"values {tuple(row_vals)!r} for column(s) {', '.join(cv.columns)} do not map to "
                                   f"the row's keyspace id (vindex {cv.name})")
    return ksids, [r for r in range(n_rows) if r not in dropped]


async def _map_one(rt: Runtime, vindex: Any, values: list[Any], keyspace: str) -> bytes | None:
    if isinstance(vindex, Lookup):
        from router.engine.lookup import lookup_destinations

        (dest,) = await lookup_destinations(rt, vindex, [values[0]], keyspace)
        return dest.ksid if type(dest) is KeyspaceId else None
    return _vindex_ksid(vindex, values)


async def _verify(rt: Runtime, vindex: Any, values: list[Any], ksid: bytes, keyspace: str) -> bool:
    if isinstance(vindex, Lookup):
        from router.engine.lookup import lookup_destinations

        (dest,) = await lookup_destinations(rt, vindex, [values[0]], keyspace)
        if type(dest) is KeyspaceId:
            return bytes(dest.ksid) == bytes(ksid)
        return ksid in [bytes(k) for k in getattr(dest, "ksids", ())]
    if isinstance(vindex, MultiColumn):
        return bool(vindex.verify_rows([values], [ksid])[0])
    return bool(vindex.verify([values[0]], [ksid])[0])  # type: ignore[attr-defined]


def _rows_sql(prim: Insert, rt: Runtime, env: dict[str, Any], dialect: str, rows: Sequence[int] | range) -> str:
    rendered = [prim.rows[r].render(rt.binds, dialect, env) for r in rows]
    return prim.prefix + ", ".join(rendered) + prim.suffix.render(rt.binds, dialect, env)


async def _send_rows(prim: Insert, rt: Runtime, env: dict[str, Any], dialect: str, keyspace: str,
                     ksids: Sequence[bytes | None], kept: Sequence[int],
                     render: Callable[[list[int]], str]) -> Source:
    """Each shard receives one statement with its rows, in statement order."""
    if not kept:
        rt.totals.has_rows = prim.returning
        return ListSource((), [])
    kss = rt.snapshot.keyspaces[keyspace]
    per_shard: dict[str, tuple[Shard, list[int]]] = {}
    for r in kept:
        ksid = ksids[r]
        assert ksid is not None
        shard = kss.shard_for_ksid(ksid)
        per_shard.setdefault(shard.name, (shard, []))[1].append(r)
    order = {s.name: i for i, s in enumerate(kss.shards)}
    names = sorted(per_shard, key=order.__getitem__)
    first_shard = kss.shard_for_ksid(ksids[kept[0]]).name  # type: ignore[arg-type]
    work = [(per_shard[n][0], render(per_shard[n][1])) for n in names]
    results = await _execute_on(rt, keyspace, work)
    source = _finish_insert(rt, prim, results, first_shard=names.index(first_shard))
    return source


def _finish_insert(rt: Runtime, prim: Insert, results: Sequence[ResultSet | ExecResult],
                   first_shard: int = 0) -> Source:
    generated = rt.totals.last_insert_id
    source = _account(rt, results, prim.returning, copies=prim.all_shards)
    if generated is None:
        reported = results[first_shard] if results else None
        insert_id = reported.last_insert_id if isinstance(reported, ExecResult) else None
        rt.totals.last_insert_id = insert_id if insert_id else _insert_id(results)
    return source


async def _insert_select(prim: Insert, rt: Runtime, env: dict[str, Any], dialect: str) -> Source:
    from router.engine.run import open_source

    assert prim.input is not None
    src = await open_source(prim.input, rt)
    rows: list[list[Any]] = []
    try:
        while (batch := await src.next()) is not None:
            rt.budget.charge(len(batch), "INSERT … SELECT rows in router memory")
            rows.extend(list(r) for r in batch)
    finally:
        await src.close()
    try:
        width = len(prim.columns)
        for row in rows:
            if len(row) < width:
                row.extend([None] * (width - len(row)))
        gen = prim.generate
        if gen is not None and gen.offset >= 0:
            vals = [row[gen.offset] for row in rows]
            await _generate(rt, prim, env, vals)
            for r, row in enumerate(rows):
                row[gen.offset] = env[seq_var(r)]
        enc = ENCODERS[dialect]
        keyspace = prim.keyspace.name

        def render(which: Sequence[int] | range) -> str:
            body = ", ".join("(" + ", ".join(enc(v) for v in rows[r]) + ")" for r in which)
            return prim.prefix + body + prim.suffix.render(rt.binds, dialect, env)

        if not rows:
            rt.totals.has_rows = prim.returning
            return ListSource((), [])
        ks = rt.snapshot.vschema.keyspaces.get(keyspace)
        if ks is None or not ks.sharded:
            shard = rt.snapshot.shards(keyspace)[0]
            return _finish_insert(rt, prim, await _execute_on(rt, keyspace, [(shard, render(range(len(rows))))]))
        if prim.all_shards:
            sql = render(range(len(rows)))
            return _finish_insert(rt, prim, await _execute_on(rt, keyspace,
                                                              [(s, sql) for s in rt.snapshot.shards(keyspace)]))
        values = [[[row[o] for row in rows] for o in offs] for offs in prim.vindex_offsets]
        ksids, kept = await _place_rows(prim, rt, None, keyspace, len(rows), values)
        for i, offs in enumerate(prim.vindex_offsets):  # reversible vindexes may have filled NULL columns
            for c, o in enumerate(offs):
                for r in range(len(rows)):
                    rows[r][o] = values[i][c][r]
        return await _send_rows(prim, rt, env, dialect, keyspace, ksids, kept, render)
    finally:
        rt.budget.release(len(rows))


# --- UPDATE / DELETE ----------------------------------------------------------------------------------------
async def _dml_shards(prim: UpdatePrim | DeletePrim, rt: Runtime) -> tuple[str, list[tuple[Shard, str]], list[Shard]]:
    from router.engine.route import resolve_shards, shard_queries

    keyspace = prim.routing.keyspace.name
    resolved = await resolve_shards(prim.routing, rt, write=True)
    work = shard_queries(prim.query, prim.in_slot, prim.passthrough, keyspace, resolved, rt)
    return keyspace, work, list(resolved.shards)


async def _owned_rows(prim: UpdatePrim | DeletePrim, rt: Runtime, keyspace: str, shards: list[Shard]) -> list[Row]:
    assert prim.owned_vindex_query is not None
    dialect = rt.ctx.backend_dialect(keyspace)
    sql = prim.owned_vindex_query.render(rt.binds, dialect, rt.env)
    results = await _execute_on(rt, keyspace, [(s, sql) for s in shards])
    rows = [row for r in results if isinstance(r, ResultSet) for row in r.rows]
    rt.budget.charge(len(rows), "rows whose lookup vindexes a write maintains")
    return rows


def _row_ksid(prim: UpdatePrim | DeletePrim, row: Row) -> bytes:
    cv = prim.ksid_vindex
    assert cv is not None
    values = list(row[:prim.ksid_length])
    ksid = _vindex_ksid(cv.vindex, values)
    if ksid is None:
        raise RoutingError(f"could not map {tuple(values)!r} to a keyspace id (vindex {cv.name})")
    return ksid


async def open_delete(prim: DeletePrim, rt: Runtime) -> Source:
    keyspace, work, shards = await _dml_shards(prim, rt)
    if not work:
        rt.totals.has_rows = prim.returning
        return ListSource((), [])
    held = 0
    try:
        if prim.owned_vindex_query is not None and prim.lookups:
            rows = await _owned_rows(prim, rt, keyspace, shards)
            held = len(rows)
            offset = prim.ksid_length
            ksids = [_row_ksid(prim, row) for row in rows]
            for lw in prim.lookups:
                width = len(lw.from_columns)
                pairs = [(list(row[offset:offset + width]), k) for row, k in zip(rows, ksids, strict=True)]
                await delete_lookup_rows(rt, lw, keyspace, pairs)
                offset += width
        return _account(rt, await _execute_on(rt, keyspace, work), prim.returning,
                        copies=prim.routing.opcode is Opcode.Reference)
    finally:
        rt.budget.release(held)


async def open_update(prim: UpdatePrim, rt: Runtime) -> Source:
    keyspace, work, shards = await _dml_shards(prim, rt)
    if not work:
        rt.totals.has_rows = prim.returning
        return ListSource((), [])
    held = 0
    try:
        if prim.owned_vindex_query is not None and prim.changes:
            rows = await _owned_rows(prim, rt, keyspace, shards)
            held = len(rows)
            for change in prim.changes:
                await _apply_change(prim, rt, keyspace, change, rows)
        return _account(rt, await _execute_on(rt, keyspace, work), prim.returning,
                        copies=prim.routing.opcode is Opcode.Reference)
    finally:
        rt.budget.release(held)


async def _apply_change(prim: UpdatePrim, rt: Runtime, keyspace: str, change: Any, rows: list[Row]) -> None:
    from router.planner.evalexpr import truth

    old_new: list[tuple[list[Any], list[Any], bytes]] = []
    for row in rows:
        same = row[change.changed_offset]
        if same is not None and truth(same, rt.ctx.backend_dialect(keyspace)):
            continue
        ksid = _row_ksid(prim, row)
        old = [row[o] for o in change.old_offsets]
        new = [evaluate(v, rt.binds, rt.env) if v is not None else row[o]
               for v, o in zip(change.new_values, change.old_offsets, strict=True)]
        old_new.append((old, new, ksid))
    if not old_new:
        return
    if change.lookup is not None:
        await delete_lookup_rows(rt, change.lookup, keyspace, [(old, k) for old, _new, k in old_new])
        rejected = await create_lookup_rows(rt, change.lookup, keyspace, [(new, k) for _old, new, k in old_new],
                                            prim.table)
        if rejected:
            raise RoutingError(f"UPDATE would give lookup vindex {change.lookup.name} a value already taken")
        return
    cv = change.column_vindex
    for _old, new, ksid in old_new:
        if not await _verify(rt, cv.vindex, new, ksid, keyspace):
            raise RoutingError(f"values {tuple(new)!r} for column(s) {', '.join(cv.columns)} do not map to the row's "
                               f"keyspace id (vindex {cv.name})")


# --- DMLWithInput -------------------------------------------------------------------------------------------
async def open_dml_with_input(prim: DMLWithInput, rt: Runtime) -> Source:
    from router.engine.run import open_source

    rows = await (await open_source(prim.input, rt)).drain()
    rt.budget.charge(len(rows), "rows a write must first select")
    try:
        rt.totals.has_rows = False
        if not rows:
            return ListSource((), [])
        for dml, offsets in zip(prim.dmls, prim.offsets, strict=True):
            seen: dict[Any, None] = {}
            for row in rows:
                key = row[offsets[0]] if len(offsets) == 1 else tuple(row[o] for o in offsets)
                seen.setdefault(key, None)
            child = rt.child({**rt.env, DML_VALS: tuple(seen)})
            src = await open_source(dml, child)
            await src.close()
        rt.totals.has_rows = False
        return ListSource((), [])
    finally:
        rt.budget.release(len(rows))
