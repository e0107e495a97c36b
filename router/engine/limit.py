"""``Limit``: hand out ``count`` rows after skipping ``offset``, then stop pulling and close the input, which
cancels shard queries still running (Vitess ``Limit``)."""
from __future__ import annotations

from typing import Any

from router.backend.result import Row
from router.engine.runtime import Runtime, Source
from router.planner.plan import Limit
from router.planner.values import evaluate
from sharding.errors import InvalidValueError

__all__ = ["LimitSource", "limit_value"]


def limit_value(expr: Any, rt: Runtime, what: str) -> int | None:
    if expr is None:
        return None
    value = evaluate(expr, rt.binds, rt.env)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


class LimitSource(Source):
    def __init__(self, prim: Limit, rt: Runtime) -> None:
        self.prim, self.rt = prim, rt
        self._input: Source | None = None
        self._left: int | None = None
        self._skip = 0

    def bounds(self) -> tuple[int | None, int]:
        """(count, offset) of this execution; also set ``upper_limit_var`` for the input (the shards' LIMIT)."""
        self._left = limit_value(self.prim.count, self.rt, "LIMIT")
        self._skip = limit_value(self.prim.offset, self.rt, "OFFSET") or 0
        return self._left, self._skip

    def input_runtime(self) -> Runtime:
        var = self.prim.upper_limit_var
        if not var:
            return self.rt
        count, skip = self.bounds()
        upper = None if count is None else count + skip
        return self.rt.child({**self.rt.env, var: upper})

    async def open(self, input_source: Source) -> LimitSource:
        self._input = input_source
        self.columns = input_source.columns
        self.bounds()
        if self._left == 0:
            await self.close()
        return self

    async def next(self) -> list[Row] | None:
        src = self._input
        while src is not None:
            batch = await src.next()
            if batch is None:
                await self.close()
                return None
            if self._skip:
                if len(batch) <= self._skip:
                    self._skip -= len(batch)
                    continue
                batch = batch[self._skip:]
                self._skip = 0
            if self._left is not None:
                if len(batch) >= self._left:
                    batch = batch[:self._left]
                    self._left = 0
                    await self.close()  # satisfied: stop the shards now, not when the client is done
                    return batch or None
                self._left -= len(batch)
            return batch
        return None

    async def close(self) -> None:
        src, self._input = self._input, None
        if src is not None:
            await src.close()
