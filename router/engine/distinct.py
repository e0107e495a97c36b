"""``Distinct``: drop rows equal to an earlier one on ``columns`` (Vitess ``Distinct``), keeping the first, so
the input order stays. A column with a weight column compares by it (MySQL text under its collation), others by
value (NULL equals NULL). The keys already seen are held in router memory and count against the row cap; the
rows themselves stream."""
from __future__ import annotations

from typing import Any

from router.backend.result import Row
from router.engine.compare import equality_value
from router.engine.runtime import Runtime, Source, truncate, truncate_rows
from router.planner.plan import Distinct

__all__ = ["DistinctSource"]


class DistinctSource(Source):
    def __init__(self, prim: Distinct, rt: Runtime, src: Source) -> None:
        self.prim, self.rt, self.src = prim, rt, src
        self._seen: set[tuple[Any, ...]] = set()
        self._width = len(src.columns)
        cols = prim.columns or tuple(range(len(src.columns)))
        # A column compares by its weight string when it has one and holds text (MySQL), else by value.
        self._cols = tuple((c, prim.weight_of(i)) for i, c in enumerate(cols))
        self.columns = truncate(src.columns, prim.truncate_columns)

    async def next(self) -> list[Row] | None:
        seen, cols, budget = self._seen, self._cols, self.rt.budget
        while (batch := await self.src.next()) is not None:
            out = []
            for row in batch:
                key = tuple(equality_value(row, c, w) for c, w in cols)
                if key in seen:
                    continue
                budget.charge(1, "DISTINCT in router memory")
                seen.add(key)
                out.append(row)
            if out:
                return truncate_rows(out, self.prim.truncate_columns, self._width)
        return None

    async def close(self) -> None:
        self.rt.budget.release(len(self._seen))
        self._seen = set()
        await self.src.close()
