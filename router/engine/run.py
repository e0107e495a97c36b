"""Running a bound plan: ``run(bound_plan, ctx, snapshot)`` -> an ``Execution``.

    async with run(bound, ctx, snapshot, dialect="postgres") as ex:
        ex.columns                      # known once entered
        async for batch in ex:          # lists of row tuples, streamed
            ...
        ex.rows_affected, ex.last_insert_id, ex.warnings

``Execution.fetchall()`` reads everything. Leaving the block early (or ``close()``) stops every shard query still
running. ``open_source(primitive, rt)`` is the one dispatch from primitive type to its executor module (one module
per primitive: ``route``, ``merge_sort``, ``limit``, ``sort``, ``aggregate``, ``distinct``, ``project``, ``join``,
``subquery``, ``concatenate``, ``send``, ``dml``, ``insert``, ``special``; ``SingleRow``, one empty row, is
here); a primitive without an executor is an ``UnsupportedError`` naming it, never a silent skip.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from router.backend.result import Column, Row
from router.engine.context import ExecutionContext, Limits
from router.engine.runtime import ListSource, Runtime, Source, Totals, synthetic_column
from router.planner import BoundPlan
from router.planner import plan as P
from sharding.errors import UnsupportedError
from sharding.snapshot import ClusterSnapshot

__all__ = ["Execution", "open_source", "run"]

Opener = Callable[[P.Primitive, Runtime], Awaitable[Source]]


def _dialect_of_input(prim: P.Primitive, rt: Runtime) -> str:
    """The backend dialect the rows under ``prim`` were ordered by (NULL order of merges and sorts)."""
    stack = [prim]
    while stack:
        node = stack.pop()
        routing = getattr(node, "routing", None)
        if routing is not None:
            return rt.ctx.backend_dialect(routing.keyspace.name)
        stack.extend(node.inputs())
    return rt.client_dialect


async def _route(prim: P.Route, rt: Runtime) -> Source:
    from router.engine.route import open_route

    return await open_route(prim, rt)


async def _limit(prim: P.Limit, rt: Runtime) -> Source:
    from router.engine.limit import LimitSource

    limit = LimitSource(prim, rt)
    return await limit.open(await open_source(prim.input, limit.input_runtime()))


async def _sort(prim: P.Sort, rt: Runtime) -> Source:
    from router.engine.sort import open_sort

    return await open_sort(prim, rt, await open_source(prim.input, rt))


async def _aggregate(prim: P.Aggregate, rt: Runtime) -> Source:
    from router.engine.aggregate import open_aggregate

    small = prim.variant == "Scalar" and isinstance(prim.input, P.Route)
    src = await (_open_small(prim.input, rt) if small else open_source(prim.input, rt))
    return await open_aggregate(prim, rt, src, _dialect_of_input(prim.input, rt))


async def _open_small(prim: P.Primitive, rt: Runtime) -> Source:
    """A route whose answer is small by construction (one partial-aggregate row per shard): one round trip."""
    from router.engine.route import open_route

    assert isinstance(prim, P.Route)
    return await open_route(prim, rt, small=True)


async def _distinct(prim: P.Distinct, rt: Runtime) -> Source:
    from router.engine.distinct import DistinctSource

    return DistinctSource(prim, rt, await open_source(prim.input, rt))


async def _projection(prim: P.Projection, rt: Runtime) -> Source:
    from router.engine.project import ProjectionSource

    return await ProjectionSource(prim, rt, await open_source(prim.input, rt)).open()


async def _filter(prim: P.Filter, rt: Runtime) -> Source:
    from router.engine.project import FilterSource

    return FilterSource(prim, rt, await open_source(prim.input, rt))


async def _join(prim: P.Join, rt: Runtime) -> Source:
    from router.engine.join import HashJoinSource, NestedLoopJoinSource

    if prim.variant in ("HashJoin", "HashLeftJoin"):
        left = await open_source(prim.left, rt)
        try:
            right = await open_source(prim.right, rt)
        except BaseException:
            await left.close()
            raise
        return HashJoinSource(prim, rt, left, right, _dialect_of_input(prim.right, rt))
    if prim.variant not in ("Join", "LeftJoin"):
        raise UnsupportedError(f"join variant {prim.variant} is not executable")
    left = await open_source(prim.left, rt)
    try:
        return await NestedLoopJoinSource(prim, rt, left, open_source).open()
    except BaseException:
        await left.close()
        raise


async def _semijoin(prim: P.SemiJoin, rt: Runtime) -> Source:
    from router.engine.join import SemiJoinSource

    return SemiJoinSource(prim, rt, await open_source(prim.left, rt), open_source)


async def _uncorrelated(prim: P.UncorrelatedSubquery, rt: Runtime) -> Source:
    from router.engine.subquery import open_uncorrelated

    return await open_uncorrelated(prim, rt, open_source)


async def _vindex_lookup(prim: P.VindexLookup, rt: Runtime) -> Source:
    from router.engine.vindex_lookup import open_vindex_lookup

    return await open_vindex_lookup(prim, rt, open_source)


async def _concatenate(prim: P.Concatenate, rt: Runtime) -> Source:
    from router.engine.concatenate import ConcatSource

    tasks = [asyncio.ensure_future(open_source(s, rt)) for s in prim.sources]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    opened = [r for r in results if isinstance(r, Source)]
    if failed:
        await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)
        raise failed[0]
    return ConcatSource(opened)


async def _send(prim: P.Send, rt: Runtime) -> Source:
    from router.engine.send import run_send

    return await run_send(prim, rt)


async def _single_row(prim: P.SingleRow, rt: Runtime) -> Source:
    return ListSource((), [()], rt.limits.batch_rows)


async def _rows(prim: P.RowsResult, rt: Runtime) -> Source:
    first = prim.rows[0] if prim.rows else ()
    cols = tuple(synthetic_column(name, first[i] if i < len(first) else None) for i, name in enumerate(prim.columns))
    return ListSource(cols, [tuple(r) for r in prim.rows], rt.limits.batch_rows)


_OPENERS: dict[type, Callable[[Any, Runtime], Awaitable[Source]]] = {
    P.Route: _route,
    P.Limit: _limit,
    P.Sort: _sort,
    P.Aggregate: _aggregate,
    P.Distinct: _distinct,
    P.Projection: _projection,
    P.Filter: _filter,
    P.Join: _join,
    P.SemiJoin: _semijoin,
    P.UncorrelatedSubquery: _uncorrelated,
    P.VindexLookup: _vindex_lookup,
    P.Concatenate: _concatenate,
    P.Send: _send,
    P.RowsResult: _rows,
    P.SingleRow: _single_row,
}


def _late_openers() -> None:
    """Executors of primitives defined outside ``plan.py`` (DML, session statements), registered on first use so
    that importing the engine does not import every planner module."""
    from router.engine import dml, special
    from router.planner import dml_plan, session_plan

    _OPENERS.setdefault(dml_plan.Insert, dml.open_insert)
    _OPENERS.setdefault(dml_plan.Update, dml.open_update)
    _OPENERS.setdefault(dml_plan.Delete, dml.open_delete)
    _OPENERS.setdefault(dml_plan.DMLWithInput, dml.open_dml_with_input)
    _OPENERS.setdefault(session_plan.SequenceNext, special.open_sequence_next)
    _OPENERS.setdefault(session_plan.VExplain, special.open_vexplain)
    _OPENERS.setdefault(session_plan.Show, special.open_show)


_late_done = False


async def open_source(prim: P.Primitive, rt: Runtime) -> Source:
    """Open ``prim`` (and everything under it) for this execution."""
    global _late_done
    opener = _OPENERS.get(type(prim))
    if opener is None and not _late_done:
        _late_done = True
        _late_openers()
        opener = _OPENERS.get(type(prim))
    if opener is None:
        raise UnsupportedError(f"the engine cannot execute a {prim.operator_type or type(prim).__name__} "
                               f"({type(prim).__name__}) primitive yet")
    if rt.trace is not None:
        rt.trace.append(prim.operator_type or type(prim).__name__)
    return await opener(prim, rt)


class Execution:
    """One statement being executed: columns, row batches, and the totals of a write."""

    def __init__(self, bound: BoundPlan, ctx: ExecutionContext, snapshot: ClusterSnapshot, *, dialect: str,
                 params: Sequence[Any] | Mapping[str, Any] | None = None, limits: Limits | None = None,
                 session: Any = None, tablet_role: str = "primary", env: dict[str, Any] | None = None) -> None:
        self.bound = bound
        self.rt = Runtime(ctx, snapshot, bound.binds, sql=bound.sql, client_dialect=dialect,
                          has_params=bool(params), limits=limits, session=session, tablet_role=tablet_role, env=env)
        self._source: Source | None = None
        self._columns: tuple[Column, ...] = ()
        self._opened = False
        self._closed = False
        self.rows_read = 0  # rows handed to the consumer so far (metrics)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> Execution:
        if self._opened:
            return self
        self._opened = True
        rt = self.rt
        try:
            if rt.deadline is not None:
                self._source = await rt.wait(open_source(self.bound.plan.root, rt))
            else:
                self._source = await open_source(self.bound.plan.root, rt)
        except BaseException:
            self._closed = True
            raise
        self._columns = self._source.columns
        names = self.bound.plan.extras.get("names")
        if names is not None:  # a SELECT the router computes: columns named as the database names them
            from router.engine.naming import named_columns

            self._columns = named_columns(self._columns, names, self.bound.sql)
        return self

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        src, self._source = self._source, None
        if src is not None:
            await asyncio.shield(src.close())

    async def __aenter__(self) -> Execution:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- results -----------------------------------------------------------------------------------------------
    @property
    def columns(self) -> tuple[Column, ...]:
        return self._columns

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def totals(self) -> Totals:
        return self.rt.totals

    @property
    def has_rows(self) -> bool:
        return self.rt.totals.has_rows

    @property
    def rows_affected(self) -> int:
        return self.rt.totals.rows_affected

    @property
    def last_insert_id(self) -> int | None:
        return self.rt.totals.last_insert_id

    @property
    def warnings(self) -> list[str]:
        return self.rt.totals.warnings

    @property
    def peak_rows_held(self) -> int:
        return self.rt.budget.peak

    def __aiter__(self) -> Execution:
        return self

    async def __anext__(self) -> list[Row]:
        if not self._opened:
            await self.open()
        src = self._source
        if src is None:
            raise StopAsyncIteration
        try:
            batch = await (self.rt.wait(src.next()) if self.rt.deadline is not None else src.next())
        except BaseException:
            await self.close()
            raise
        if batch is None:
            await self.close()
            raise StopAsyncIteration
        self.rows_read += len(batch)
        return batch

    async def fetchall(self) -> list[Row]:
        rows: list[Row] = []
        try:
            async for batch in self:
                rows.extend(batch)
        finally:
            await self.close()
        return rows


def run(bound: BoundPlan, ctx: ExecutionContext, snapshot: ClusterSnapshot, *, dialect: str = "mysql",
        params: Sequence[Any] | Mapping[str, Any] | None = None, limits: Limits | None = None,
        session: Any = None, tablet_role: str = "primary") -> Execution:
    """Start executing ``bound`` (see the module docstring). Nothing runs until the Execution is entered,
    awaited with ``open()``, or iterated."""
    return Execution(bound, ctx, snapshot, dialect=dialect, params=params, limits=limits, session=session,
                     tablet_role=tablet_role)


def describe_plan(bound: BoundPlan) -> str:
    return json.dumps(bound.plan.describe(), indent=2, default=str)
