"""``Sort``: order rows in router memory (Vitess ``MemorySort``). Every row is held until the input ends, so the
rows count against the statement's row cap; past it the statement fails (``ResourceLimitError``)."""
from __future__ import annotations

from router.backend.result import Row
from router.engine.compare import sort_key
from router.engine.runtime import ListSource, Runtime, Source, truncate, truncate_rows
from router.planner.plan import Sort

__all__ = ["open_sort"]


async def open_sort(prim: Sort, rt: Runtime, src: Source) -> Source:
    rows: list[Row] = []
    held = 0
    try:
        while (batch := await src.next()) is not None:
            rt.budget.charge(len(batch), "ORDER BY in router memory")
            held += len(batch)
            rows.extend(batch)
    except BaseException:
        rt.budget.release(held)
        raise
    finally:
        await src.close()
    rows.sort(key=sort_key(prim.order_by))  # stable: equal keys keep their input order
    width = len(src.columns)
    keep = prim.truncate_columns
    rows = truncate_rows(rows, keep, width)
    return ListSource(truncate(src.columns, keep), rows, rt.limits.batch_rows, on_close=lambda: rt.budget.release(held))
