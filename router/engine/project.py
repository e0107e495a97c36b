"""``Filter`` and ``Projection``: expressions the router evaluates over each row (HAVING over merged aggregates,
``count(*) + 1``, AVG's final division). The expressions were compiled at plan time (``router.planner.evalexpr``);
here they only run.

A projected column that is not a plain input column has no backend type; its type is taken from the first
non-NULL value it produces (the first batch is computed while opening, so the columns are known before any row
is handed out), else from the input column it reads, else VARCHAR.

Over a ``SingleRow`` (a SELECT of constants, ``router.planner.dual``) the one row's values are never NULL and its
columns say so (a decimal with its digits and scale); the columns MySQL names by their text take that text from the
statement being run (``SingleRow.named_by_text``).
"""
from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from router.backend.result import Column, Row
from router.engine.runtime import Runtime, Source, synthetic_column, truncate, truncate_rows
from router.planner.plan import Filter, Projection, SingleRow

__all__ = ["FilterSource", "ProjectionSource"]


def _truth(v: Any, dialect: str) -> bool:
    if v is None or v is False:
        return False
    if v is True:
        return True
    from router.planner.evalexpr import truth

    return bool(truth(v, dialect))


def _binds(rt: Runtime) -> Any:
    """The bind values, with the run-time values when there are any (``RunVar`` reads them)."""
    if not rt.env:
        return rt.binds
    from router.planner.evalexpr import WithEnv

    return WithEnv(rt.binds, rt.env)


class FilterSource(Source):
    def __init__(self, prim: Filter, rt: Runtime, src: Source) -> None:
        self.prim, self.rt, self.src = prim, rt, src
        self._width = len(src.columns)
        self.columns = truncate(src.columns, prim.truncate_columns)

    async def next(self) -> list[Row] | None:
        pred, binds, dialect = self.prim.predicate, _binds(self.rt), self.rt.client_dialect
        keep = self.prim.truncate_columns
        while (batch := await self.src.next()) is not None:
            out = [row for row in batch if _truth(pred.evaluate(row, binds), dialect)]
            if out:
                return truncate_rows(out, keep, self._width)
        return None

    async def close(self) -> None:
        await self.src.close()


class ProjectionSource(Source):
    def __init__(self, prim: Projection, rt: Runtime, src: Source) -> None:
        self.prim, self.rt, self.src = prim, rt, src
        self._first: list[Row] | None = None
        self._decimals: dict[int, int | None] = {}  # output column -> DECIMAL result scale (None: keep the value's)

    def _project(self, batch: list[Row]) -> list[Row]:
        exprs, binds = self.prim.expressions, _binds(self.rt)
        rows = [tuple(e.evaluate(row, binds) for e in exprs) for row in batch]
        if self._decimals:
            rows = [_as_decimals(row, self._decimals) for row in rows]
        return rows

    async def open(self) -> ProjectionSource:
        from router.planner.evalexpr import Col

        for i, expr in enumerate(self.prim.expressions):
            decimal = _decimal_choice(expr, self.src.columns, self.rt.binds)
            if decimal is not None:
                self._decimals[i] = decimal[1]
        first = await self.src.next()
        self._first = self._project(first) if first is not None else None
        cols: list[Column] = []
        for i, (expr, name) in enumerate(zip(self.prim.expressions, self.prim.columns, strict=True)):
            if isinstance(expr, Col) and expr.offset < len(self.src.columns):
                cols.append(dataclasses.replace(self.src.columns[expr.offset], name=name))
                continue
            sample = next((r[i] for r in self._first or () if r[i] is not None), None)
            if sample is None:
                source_col = next((self.src.columns[o] for o in _offsets(expr) if o < len(self.src.columns)), None)
                cols.append(dataclasses.replace(source_col, name=name) if source_col is not None
                            else synthetic_column(name))
            else:
                cols.append(synthetic_column(name, sample))
        if isinstance(self.prim.input, SingleRow):
            cols = self._constant_columns(cols)
        self.columns = tuple(cols)
        return self

    def _constant_columns(self, cols: list[Column]) -> list[Column]:
        from router.planner.dual import item_texts

        named = self.prim.input.named_by_text  # type: ignore[attr-defined]
        texts = item_texts(self.rt.sql) if named and self.rt.sql else None
        if texts is not None and len(texts) != len(cols):
            texts = None
        row = self._first[0] if self._first else ()
        out = []
        for i, col in enumerate(cols):
            value = row[i] if i < len(row) else None
            extra: dict[str, Any] = {"nullable": value is None}
            if isinstance(value, Decimal):
                digits = len(value.as_tuple().digits)
                extra["scale"] = max(-int(value.as_tuple().exponent), 0)
                extra["precision"] = max(digits, extra["scale"])
            if texts is not None and i in named:
                extra["name"] = texts[i]
            out.append(dataclasses.replace(col, **extra))
        return out

    async def next(self) -> list[Row] | None:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        batch = await self.src.next()
        return None if batch is None else self._project(batch)

    async def close(self) -> None:
        self._first = None
        await self.src.close()


def _offsets(expr: Any) -> list[int]:
    """Input columns an expression reads (first found first)."""
    from router.planner.evalexpr import Col

    out: list[int] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Col):
            out.append(node.offset)
            continue
        for name in getattr(node, "__slots__", ()):
            v = getattr(node, name, None)
            if isinstance(v, tuple):
                stack.extend(x for x in v if hasattr(x, "evaluate"))
            elif hasattr(v, "evaluate"):
                stack.append(v)
    return out


def _as_decimals(row: Row, decimals: dict[int, int | None]) -> Row:
    out = list(row)
    for i, scale in decimals.items():
        v = out[i]
        if v is None or isinstance(v, bool) or not isinstance(v, (int, Decimal)):
            continue
        d = Decimal(v)
        out[i] = d.quantize(Decimal(1).scaleb(-scale)) if scale is not None else d
    return tuple(out)


def _decimal_choice(expr: Any, columns: tuple[Column, ...], binds: Any) -> tuple[bool, int | None] | None:
    """For ``CASE``/``COALESCE``/``GREATEST``/``LEAST`` whose branches are integer and DECIMAL columns or literals,
    with at least one DECIMAL: the result is a DECIMAL whatever branch gives the value, in MySQL with the largest
    scale of the branches (``COALESCE(cost, balance)`` of DECIMAL(9,3) and DECIMAL(12,2) gives 7127.030, not
    7127.03), in PostgreSQL as numeric with the value's own scale (an integer branch's 5 is numeric 5).
    ``(True, scale)`` (scale None: PostgreSQL), or None when the expression is not such a choice."""
    from router.backend.result import TypeCode
    from router.planner.evalexpr import Bind, Case, Col, Func, Lit

    if isinstance(expr, Func) and expr.name in ("coalesce", "greatest", "least"):
        branches = list(expr.args)
    elif isinstance(expr, Case):
        branches = [result for _cond, result in expr.whens] + ([expr.default] if expr.default is not None else [])
    else:
        return None
    scale, decimal, engines = 0, False, set()
    for b in branches:
        if isinstance(b, Col):
            if b.offset >= len(columns):
                return None
            col = columns[b.offset]
            engines.add(col.engine)
            if col.type is TypeCode.DECIMAL:
                decimal = True
                if col.scale is not None:
                    scale = max(scale, col.scale)
                elif col.engine == "mysql":  # MySQL's result scale is the branches' largest: it must be known
                    return None  # (PostgreSQL's unconstrained numeric, a SUM's, keeps each value's own scale)
            elif not col.type.is_integer:
                return None
            continue
        if isinstance(b, (Lit, Bind)):
            try:
                v = b.evaluate((), binds)
            except Exception:
                return None
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, Decimal)):
                return None
            if isinstance(v, Decimal):
                decimal = True
                scale = max(scale, -int(v.as_tuple().exponent))
            continue
        return None
    if not decimal or len(engines) != 1:
        return None
    return (True, scale if engines == {"mysql"} else None)
