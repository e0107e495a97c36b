"""Joins the shards cannot do: ``Join`` (nested loop, inner or left), ``HashJoin`` and ``SemiJoin``.

Nested loop (Vitess ``Join``): the left side streams; for each left row the join variables (``vars``: name ->
left column) bind the right side's query (``JoinVar`` slots). Rather than one right query per left row, left rows
are taken a batch at a time (``Limits.join_batch_rows``): rows with the same join values share one right query,
and up to ``Limits.join_concurrency`` right queries run at once. The right rows of a batch are held until the
batch is emitted and count against the row cap. Output columns: ``cols``, negative = left (``-1`` is left
column 0), positive = right (``1`` is right column 0). ``LeftJoin`` emits a left row with NULLs when the right
side has no row for it.

``HashJoin`` / ``HashLeftJoin``: the right side runs once into a hash table on ``right_keys`` (held: counts
against the row cap); the left side streams and probes it with ``left_keys``. NULL keys never match.

``SemiJoin`` / ``AntiJoin`` (EXISTS / NOT EXISTS): a left row is kept when the right side, bound with its values,
returns a row (returns none).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from router.backend.result import Column, Row
from router.engine.runtime import Runtime, Source
from router.planner.plan import Join, Primitive, SemiJoin
from sharding.errors import UnsupportedError

__all__ = ["HashJoinSource", "NestedLoopJoinSource", "SemiJoinSource"]

Opener = Callable[[Primitive, Runtime], Awaitable[Source]]


def _hashable(v: Any) -> Any:
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    return v


def _out_columns(cols: tuple[int, ...], left: tuple[Column, ...], right: tuple[Column, ...]) -> tuple[Column, ...]:
    out = []
    for c in cols:
        if c < 0:
            out.append(left[-c - 1])
        else:
            out.append(right[c - 1])
    return tuple(out)


def _combine(cols: tuple[int, ...], lrow: Row, rrow: Row | None) -> Row:
    if rrow is None:
        return tuple(lrow[-c - 1] if c < 0 else None for c in cols)
    return tuple(lrow[-c - 1] if c < 0 else rrow[c - 1] for c in cols)


class _RightRunner:
    """Runs the right side for a set of join-variable bindings, a bounded number at a time."""

    def __init__(self, prim: Join | SemiJoin, rt: Runtime, open_source: Opener) -> None:
        self.prim, self.rt, self.open_source = prim, rt, open_source
        self.columns: tuple[Column, ...] | None = None
        self._sem = asyncio.Semaphore(max(1, rt.limits.join_concurrency))

    def env_for(self, values: tuple[Any, ...]) -> dict[str, Any]:
        env = dict(self.rt.env)
        for (name, _off), v in zip(self.prim.vars, values, strict=True):
            env[name] = v
        return env

    async def run(self, values: tuple[Any, ...], first_only: bool = False) -> list[Row]:
        async with self._sem:
            src = await self.open_source(self.prim.right, self.rt.child(self.env_for(values), buffered=True))
            try:
                if self.columns is None:
                    self.columns = src.columns
                rows: list[Row] = []
                while (batch := await src.next()) is not None:
                    if first_only:
                        return batch[:1]
                    self.rt.budget.charge(len(batch), "join rows in router memory")
                    rows.extend(batch)
                return rows
            finally:
                await src.close()

    async def fields(self) -> tuple[Column, ...]:
        """The right side's columns, found with NULL join values when no left row ran it."""
        if self.columns is None:
            await self.run(tuple(None for _ in self.prim.vars), first_only=True)
        return self.columns or ()

    async def run_all(self, bindings: list[tuple[Any, ...]], first_only: bool = False) -> list[list[Row]]:
        if len(bindings) == 1:
            return [await self.run(bindings[0], first_only)]
        tasks = [asyncio.ensure_future(self.run(b, first_only)) for b in bindings]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


class NestedLoopJoinSource(Source):
    def __init__(self, prim: Join, rt: Runtime, left: Source, open_source: Opener) -> None:
        self.prim, self.rt, self.left = prim, rt, left
        self.right = _RightRunner(prim, rt, open_source)
        self.outer = prim.variant == "LeftJoin"
        self._pending: list[Row] = []
        self._done = False
        self._held = 0

    async def open(self) -> NestedLoopJoinSource:
        # The output columns need the right side's: run it for the first left batch now.
        first = await self.left.next()
        if first is None:
            self._done = True
            right_cols = await self.right.fields()
        else:
            self._pending = await self._join(first)
            right_cols = self.right.columns or await self.right.fields()
        self.columns = _out_columns(self.prim.cols, self.left.columns, right_cols)
        return self

    async def _join(self, left_rows: list[Row]) -> list[Row]:
        prim = self.prim
        offs = [off for _name, off in prim.vars]
        out: list[Row] = []
        cols = prim.cols
        # Left rows are taken in slices so that the right rows held at once stay bounded.
        step = max(1, self.rt.limits.join_batch_rows)
        for start in range(0, len(left_rows), step):
            chunk = left_rows[start:start + step]
            index: dict[tuple[Any, ...], int] = {}
            bindings: list[tuple[Any, ...]] = []
            keys: list[int] = []
            for row in chunk:
                k = tuple(_hashable(row[o]) for o in offs)
                if k not in index:
                    index[k] = len(bindings)
                    bindings.append(tuple(row[o] for o in offs))
                keys.append(index[k])
            results = await self.right.run_all(bindings)
            held = sum(len(r) for r in results)
            try:
                for row, slot in zip(chunk, keys, strict=True):
                    matched = results[slot]
                    if matched:
                        out.extend(_combine(cols, row, r) for r in matched)
                    elif self.outer:
                        out.append(_combine(cols, row, None))
            finally:
                self.rt.budget.release(held)
        return out

    async def next(self) -> list[Row] | None:
        while True:
            if self._pending:
                out, self._pending = self._pending, []
                return out
            if self._done:
                return None
            batch = await self.left.next()
            if batch is None:
                self._done = True
                return None
            self._pending = await self._join(batch)

    async def close(self) -> None:
        self._done = True
        self._pending = []
        await self.left.close()


class SemiJoinSource(Source):
    """``SemiJoin`` keeps a left row when the right side (bound with its values) returns a row; ``AntiJoin`` when
    it returns none. ``cols`` projects the left row (-1 is left column 0); empty keeps it whole."""

    def __init__(self, prim: SemiJoin, rt: Runtime, left: Source, open_source: Opener) -> None:
        self.prim, self.rt, self.left = prim, rt, left
        self.right = _RightRunner(prim, rt, open_source)
        self.keep_matched = prim.variant != "AntiJoin"
        self.cols = tuple(-c - 1 for c in prim.cols) if prim.cols else None
        self.columns = tuple(left.columns[c] for c in self.cols) if self.cols is not None else left.columns

    async def next(self) -> list[Row] | None:
        offs = [off for _name, off in self.prim.vars]
        while (batch := await self.left.next()) is not None:
            index: dict[tuple[Any, ...], int] = {}
            bindings: list[tuple[Any, ...]] = []
            keys: list[int] = []
            for row in batch:
                k = tuple(_hashable(row[o]) for o in offs)
                if k not in index:
                    index[k] = len(bindings)
                    bindings.append(tuple(row[o] for o in offs))
                keys.append(index[k])
            results = await self.right.run_all(bindings, first_only=True)
            out = [row for row, k in zip(batch, keys, strict=True) if bool(results[k]) == self.keep_matched]
            if self.cols is not None:
                cols = self.cols
                out = [tuple(row[c] for c in cols) for row in out]
            if out:
                return out
        return None

    async def close(self) -> None:
        await self.left.close()


def _join_key(values: tuple[Any, ...], dialect: str) -> tuple[Any, ...] | None:
    """A hash-join key, or None when a value is NULL (NULL never matches)."""
    out = []
    for v in values:
        if v is None:
            return None
        if isinstance(v, (bytearray, memoryview)):
            v = bytes(v)
        elif isinstance(v, str) and dialect != "postgres":
            raise UnsupportedError("a hash join on text from MySQL/MariaDB shards would need the column's collation; "
                                   "it is not supported at the router")
        out.append(v)
    return tuple(out)


class HashJoinSource(Source):
    """``HashJoin`` / ``HashLeftJoin``: the right side runs once and is held in a hash table (row cap); the left
    side streams and probes it, so the output keeps the left side's order; unmatched left rows of a left join get
    NULLs for the right columns."""

    def __init__(self, prim: Join, rt: Runtime, left: Source, right: Source, dialect: str) -> None:
        self.prim, self.rt, self.left, self.right = prim, rt, left, right
        self.columns = _out_columns(prim.cols, left.columns, right.columns)
        self.outer = prim.variant == "HashLeftJoin"
        self.dialect = dialect
        self._table: dict[tuple[Any, ...], list[Row]] | None = None
        self._held = 0

    async def _build(self) -> dict[tuple[Any, ...], list[Row]]:
        table: dict[tuple[Any, ...], list[Row]] = {}
        keys = self.prim.right_keys
        try:
            while (batch := await self.right.next()) is not None:
                self.rt.budget.charge(len(batch), "hash join rows in router memory")
                self._held += len(batch)
                for row in batch:
                    k = _join_key(tuple(row[c] for c in keys), self.dialect)
                    if k is not None:
                        table.setdefault(k, []).append(row)
        finally:
            await self.right.close()
        return table

    async def next(self) -> list[Row] | None:
        if self._table is None:
            self._table = await self._build()
        table, keys, cols = self._table, self.prim.left_keys, self.prim.cols
        while (batch := await self.left.next()) is not None:
            out: list[Row] = []
            for lrow in batch:
                k = _join_key(tuple(lrow[c] for c in keys), self.dialect)
                matched = table.get(k, ()) if k is not None else ()
                if matched:
                    out.extend(_combine(cols, lrow, rrow) for rrow in matched)
                elif self.outer:
                    out.append(_combine(cols, lrow, None))
            if out:
                return out
        return None

    async def close(self) -> None:
        self.rt.budget.release(self._held)
        self._held = 0
        self._table = {}
        await asyncio.gather(self.left.close(), self.right.close(), return_exceptions=True)
