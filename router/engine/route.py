"""Executing a ``Route``: resolve its shards, send each its SQL, and stream the answers back.

- Shards: ``resolve_route`` (pure); a lookup vindex first reads its table (``router.engine.lookup``).
  ``any_one`` (reference tables, shard-less SELECTs) picks one shard, round robin, preferring a shard the
  session's transaction already holds.
- SQL: the template rendered in the keyspace's backend dialect; an ``IN`` route gives each shard only its own
  values (``overrides={in_slot: values}``); a ``passthrough`` route on one shard whose backend speaks the client's
  dialect sends the client's own text (no rendering at all) when the client sent no bind parameters.
- Reading: vindex-keyed routes (point reads) and routes the caller marks small use one ``execute`` per shard; the
  rest stream: one shard is read in the consumer's task, several are read concurrently with bounded read-ahead.
  With ``order_by`` several shards are merged by a k-way heap (``merge_sort``), otherwise batches are handed out
  as they arrive. ``truncate_columns`` drops the helper columns (weight strings, ORDER BY extras) at the end.
- Consolidation: single-shard reads (whole answers, and a single shard's stream) outside a transaction join an
  identical read in flight (``router.engine.consolidate``; the session decides the scope).
- No shard at all (a provably empty route, values that map nowhere): the columns still matter (a client needs
  them), so the field query, or the query itself, runs on the keyspace's first shard and its rows are dropped.
"""
from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from typing import Any

from router.backend.result import Row
from router.engine.compare import sort_key
from router.engine.lookup import resolve_lookup
from router.engine.merge_sort import MergeSort
from router.engine.readers import BufferedReader, DirectReader, FanIn, PumpReader, Reader, close_all, open_all
from router.engine.runtime import Runtime, Source, truncate, truncate_rows
from router.planner.plan import Opcode, Route, RoutingParams
from router.planner.resolve import NeedsLookup, ResolvedRoute, resolve_route
from router.planner.values import evaluate
from sharding.snapshot import Shard

__all__ = ["RouteSource", "open_route", "resolve_shards", "shard_queries"]

# Routes that name their rows by a vindex value: small answers, one round trip each.
_POINT = frozenset({Opcode.EqualUnique, Opcode.Equal, Opcode.IN, Opcode.MultiEqual, Opcode.Next, Opcode.DBA,
                    Opcode.None_})
_round_robin = itertools.count()


async def resolve_shards(routing: RoutingParams, rt: Runtime, *, write: bool = False) -> ResolvedRoute:
    """The shards (and per-shard IN values) of ``routing`` for this execution. Writes never pick "any one"."""
    resolved = resolve_route(routing, rt.binds, rt.snapshot, rt.env)
    if isinstance(resolved, NeedsLookup):
        keep = routing.opcode is Opcode.IN
        resolved = await resolve_lookup(rt, routing.keyspace.name, resolved.vindex, resolved.values, keep)
    if not write and (resolved.any_one or routing.opcode is Opcode.DBA):
        # Any shard will do: one the session's transaction (or a pin) already holds, since another would widen
        # the transaction for nothing (and refuse savepoints, which need one shard); in a transaction holding
        # none yet, the first shard, as catalog (DBA) reads go; otherwise round robin.
        ks = routing.keyspace.name
        held = rt.ctx.joined_shards(ks) if hasattr(rt.ctx, "joined_shards") else ()
        if held:
            mine = [s for s in rt.snapshot.shards(ks) if s.name in held]
            if mine:
                return ResolvedRoute((mine[0],))
        if resolved.any_one and len(resolved.shards) > 1:
            if getattr(rt.ctx, "tx", None) is not None:
                return ResolvedRoute((resolved.shards[0],))
            return ResolvedRoute((resolved.shards[next(_round_robin) % len(resolved.shards)],))
    return resolved


def shard_queries(query: Any, in_slot: int, passthrough: bool, keyspace: str, resolved: ResolvedRoute,
                  rt: Runtime) -> list[tuple[Shard, str]]:
    """Each shard with the SQL it receives."""
    dialect = rt.ctx.backend_dialect(keyspace)
    shards = resolved.shards
    if (passthrough and len(shards) == 1 and dialect == rt.client_dialect and not rt.has_params and rt.sql
            and not rt.env):
        return [(shards[0], rt.sql)]
    if resolved.values is not None and in_slot >= 0:
        return [(s, query.render(rt.binds, dialect, rt.env, {in_slot: vals}))
                for s, vals in zip(shards, resolved.values, strict=True)]
    if query.is_static:
        sql = query.parts[0]
        return [(s, sql) for s in shards]
    sql = query.render(rt.binds, dialect, rt.env)
    return [(s, sql) for s in shards]


def param_form(query: Any, rt: Runtime, overrides: dict[int, Any] | None = None) -> tuple[str, list[Any]] | None:
    """The template with PostgreSQL ``$n`` placeholders and their values, when every slot holds one scalar (an IN
    list stays literal). The text is the same for every execution of a plan, so the shard's connection keeps it
    prepared: one round trip per execution instead of parse + execute.

    Equal values (same type, same text) share one placeholder: ``SELECT a % 4 … GROUP BY a % 4`` must stay one
    expression for PostgreSQL, and ``a % $1 … GROUP BY a % $2`` is not (``must appear in the GROUP BY clause``).

    A placeholder is typed as the literal it replaces would be (``param_cast``): an untyped ``$1`` takes the type
    of its context, so ``$1 * smallint_col`` made 157.832 a smallint (asyncpg truncated it to 157) and ``300 *
    smallint_col`` a smallint product that overflows where the literal's int4 does not."""
    slots = query.slots
    if not slots:
        return None
    out = [query.parts[0]]
    values: list[Any] = []
    numbers: dict[tuple[type, str], int] = {}
    for i, (slot, part) in enumerate(zip(slots, query.parts[1:], strict=True)):
        v = overrides[i] if overrides is not None and i in overrides else evaluate(slot, rt.binds, rt.env)
        if isinstance(v, (tuple, list)):
            return None
        key = (type(v), repr(v))
        n = numbers.get(key)
        if n is None:
            values.append(v)
            n = numbers[key] = len(values)
        cast = param_cast(v)
        out.append(f"CAST(${n} AS {cast})" if cast else f"${n}")
        out.append(part)
    return "".join(out), values


_INT4 = range(-(2**31), 2**31)
_INT8 = range(-(2**63), 2**63)


def param_cast(v: Any) -> str | None:
    """The PostgreSQL type of the literal ``encode_postgres`` writes for ``v``, which its ``$n`` is cast to: an
    integer constant is integer (bigint, numeric when larger), one with a point numeric, TRUE boolean, a date
    ``'…'::date``… None for a string (a quoted literal is ``unknown`` too) and for NULL: their ``$n`` stays
    untyped, as the literal would be."""
    import datetime as dt
    import uuid

    if v is None or isinstance(v, str):
        return None
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer" if v in _INT4 else "bigint" if v in _INT8 else "numeric"
    if isinstance(v, Decimal):
        return "numeric"
    if isinstance(v, float):
        return "double precision"
    if isinstance(v, dt.datetime):
        return "timestamptz" if v.tzinfo is not None else "timestamp"
    if isinstance(v, dt.date):
        return "date"
    if isinstance(v, dt.time):
        return "time"
    if isinstance(v, dt.timedelta):
        return "interval"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "bytea"
    if isinstance(v, uuid.UUID):
        return "uuid"
    return None


class RouteSource(Source):
    def __init__(self, prim: Route, rt: Runtime, small: bool = False) -> None:
        self.prim = prim
        self.rt = rt
        self.small = small or rt.buffered or prim.routing.opcode in _POINT
        self._readers: list[Reader] = []
        self._merge: MergeSort | None = None
        self._fanin: FanIn | None = None
        self._width = 0
        self._keep = prim.truncate_columns
        self._drop = prim.helper_prefix
        self._rows_only_fields = False
        self.resolved: ResolvedRoute | None = None  # shards decided by someone else (VindexLookup)

    async def open(self) -> RouteSource:
        prim, rt = self.prim, self.rt
        keyspace = prim.routing.keyspace.name
        resolved = self.resolved if self.resolved is not None else await resolve_shards(prim.routing, rt)
        if not resolved.shards and prim.no_routes_special_handling and rt.snapshot.shards(keyspace):
            # A scalar aggregate over no shard is still one row (COUNT 0, SUM NULL): any shard computes it, its
            # WHERE selecting nothing (Vitess NoRoutesSpecialHandling).
            resolved = ResolvedRoute((rt.snapshot.shards(keyspace)[0],))
        if not resolved.shards:
            await self._open_fields_only(keyspace)
            return self
        plan = shard_queries(prim.query, prim.in_slot, prim.passthrough, keyspace, resolved, rt)
        targets = [(rt.target(keyspace, s.name), sql) for s, sql in plan]
        if self.small:
            # Not inside a transaction: a prepared form the server rejects would abort it (see BufferedReader).
            prepared = param_form(prim.query, rt) if rt.ctx.backend_dialect(keyspace) == "postgres" \
                and resolved.values is None and getattr(rt.ctx, "tx", None) is None else None
            share = _share(rt)
            readers: list[Reader] = [BufferedReader(rt, t, sql, prepared, share) for t, sql in targets]
        elif len(targets) == 1:
            readers = [DirectReader(rt, *targets[0], share=_share(rt))]
        elif prim.order_by:
            readers = [PumpReader(rt, t, sql) for t, sql in targets]
        else:
            queue: asyncio.Queue[Any] = asyncio.Queue(max(1, rt.limits.prefetch_batches) * len(targets))
            readers = [PumpReader(rt, t, sql, queue, i) for i, (t, sql) in enumerate(targets)]
            self._fanin = FanIn(rt, readers, queue)  # type: ignore[arg-type]
        self._readers = readers
        await open_all(readers)
        columns = next((r.columns for r in readers if r.columns), ())
        self._width = len(columns)
        self.columns = truncate(columns, self._keep)[self._drop:]
        if prim.order_by and len(readers) > 1:
            self._merge = MergeSort(readers, sort_key(prim.order_by))
        return self

    async def _open_fields_only(self, keyspace: str) -> None:
        prim, rt = self.prim, self.rt
        first = rt.snapshot.shards(keyspace)[0]
        template = prim.field_query if prim.field_query is not None else prim.query
        dialect = rt.ctx.backend_dialect(keyspace)
        # An IN list whose values all map nowhere still needs valid SQL: ``IN (NULL)`` matches nothing.
        overrides = {prim.in_slot: (None,)} if prim.field_query is None and prim.in_slot >= 0 else None
        try:
            sql = template.render(rt.binds, dialect, rt.env, overrides)
        except Exception:
            self.columns = ()
            return
        reader = BufferedReader(rt, rt.target(keyspace, first.name), sql)
        await reader.open()
        self._width = len(reader.columns)
        self.columns = truncate(reader.columns, self._keep)[self._drop:]
        self._rows_only_fields = True

    async def next(self) -> list[Row] | None:
        if self._rows_only_fields:
            return None
        batch = await self._next_raw()
        if batch is None:
            return None
        if self._drop:
            keep = self._keep if 0 < self._keep < self._width else self._width
            drop = self._drop
            return [r[drop:keep] for r in batch]
        return truncate_rows(batch, self._keep, self._width)

    async def _next_raw(self) -> list[Row] | None:
        if self._merge is not None:
            return await self._merge.next(self.rt.limits.batch_rows)
        if self._fanin is not None:
            return await self._fanin.next()
        readers = self._readers
        while readers:
            batch = await readers[0].next()
            if batch is not None:
                return batch
            await readers[0].close()
            readers.pop(0)
        return None

    async def close(self) -> None:
        readers, self._readers = self._readers, []
        if self._merge is not None:
            await self._merge.close()
        elif self._fanin is not None:
            await self._fanin.close()
        elif readers:
            await close_all(readers)


def _share(rt: Runtime) -> Any:
    """(consolidator, scope) when this statement's shard reads may be consolidated: the session set a scope for it
    (a read the switches allow) and no transaction is involved (``router.engine.consolidate``)."""
    session = rt.session
    scope = getattr(session, "share_scope", None)
    if scope is None or getattr(rt.ctx, "tx", None) is not None:
        return None
    cons = getattr(session.host, "consolidator", None)
    return None if cons is None else (cons, scope)


async def open_route(prim: Route, rt: Runtime, small: bool = False) -> Source:
    return await RouteSource(prim, rt, small).open()
