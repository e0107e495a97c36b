"""``Aggregate``: merge the partial aggregates the shards computed, or aggregate raw rows (Vitess
``ScalarAggregate``, ``OrderedAggregate``, ``HashAggregate``). ``router.planner.plan.AggregateOp`` states each op;
in short:

- counts (``sum_count``, ``sum_count_star``, ``sum_count_distinct``) add up, 0 for no rows; over raw rows
  ``count`` counts non-NULL values and ``count_star`` rows;
- ``sum`` adds exactly (int, or Decimal with a 1000-digit context: never through float), float when a partial is;
- ``min`` / ``max`` compare as an ``OrderByParam`` does (weight string for text, code point under ``C``);
- ``count_distinct`` / ``sum_distinct`` over the distinct non-NULL values (equal by weight string when there is
  one); the values seen are held in memory and count against the row cap;
- ``any_value`` keeps the first non-NULL value; ``group_concat`` joins with the separator (MySQL: cut at
  ``group_concat_max_len`` bytes); ``bit_and``/``bit_or``/``bit_xor``, ``bool_and``/``bool_or``.

Every op except the counts ignores NULLs and gives NULL when it saw none. Output rows keep the input's layout
(the group's first row, aggregate columns replaced), then ``truncate_columns``. ``Scalar``: exactly one row, even
for no input (counts 0, everything else NULL). ``Ordered``: groups stream out as the (sorted) keys change.
``Hash``: groups held in memory (row cap), emitted at the end in first-seen order.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from router.backend.result import Column, Row, TypeCode
from router.engine.compare import equality_value, key_component
from router.engine.runtime import ListSource, Runtime, Source, truncate, truncate_rows
from router.planner.plan import Aggregate, AggregateOp, Route, VindexLookup
from router.planner.values import evaluate

__all__ = ["open_aggregate"]

_EXACT = Context(prec=1000, traps=[InvalidOperation])
Op = AggregateOp
_COUNTS = frozenset({Op.COUNT, Op.COUNT_STAR, Op.SUM_COUNT_DISTINCT, Op.COUNT_DISTINCT, Op.RAW_COUNT,
                     Op.RAW_COUNT_STAR})
_ADD_COUNTS = frozenset({Op.COUNT, Op.COUNT_STAR, Op.SUM_COUNT_DISTINCT})
_DISTINCT = frozenset({Op.COUNT_DISTINCT, Op.SUM_DISTINCT})


def add(a: Any, b: Any) -> Any:
    """``a + b`` for partial sums: exact for int/Decimal, float when either is a float; NULL-ignoring."""
    if a is None:
        return b
    if b is None:
        return a
    ca, cb = a.__class__, b.__class__
    if ca is int and cb is int:
        return a + b
    if ca is float or cb is float:
        return float(a) + float(b)
    if isinstance(a, str) or isinstance(b, str):  # a DECIMAL some drivers hand over as text
        a, b = Decimal(str(a)), Decimal(str(b))
    return _EXACT.add(Decimal(a) if not isinstance(a, Decimal) else a, Decimal(b) if not isinstance(b, Decimal) else b)


def raw_sum_result(total: Any, column: Column | None, raw: bool = True) -> Any:
    """An integer sum typed as the backend types ``SUM`` of that column: MySQL/MariaDB give DECIMAL for every
    integer type (a shard's partial SUM is never an integer there, so an integer column was summed raw),
    PostgreSQL ``numeric`` for ``bigint`` and ``bigint`` for ``smallint``/``integer``. On PostgreSQL a ``bigint``
    input is either raw values (``raw``) or partial sums of ``integer`` (already the right type)."""
    if type(total) is not int or column is None or not column.type.is_integer:
        return total
    if column.engine == "mysql" or (raw and column.type is TypeCode.BIGINT):
        return Decimal(total)
    return total


class _Merger:
    """Per-group accumulators for the ``aggregates`` of one primitive."""

    def __init__(self, prim: Aggregate, rt: Runtime, dialect: str, columns: tuple[Column, ...] = ()) -> None:
        self.rt = rt
        self.columns = columns
        # Over a shard route the input holds partial aggregates; over anything else (a join, a derived table, a
        # union) raw rows, whose SUM the router types itself.
        self.raw_input = not isinstance(prim.input, (Route, VindexLookup))
        self.budget = rt.budget
        self.dialect = dialect
        self.params = [(a.op, a.col, a.weight_col) for a in prim.aggregates]
        self.keys: list[Callable[[Row], Any] | None] = [
            key_component(a.col, False, True, a.weight_col, a.collation) if a.op in (Op.MIN, Op.MAX) else None
            for a in prim.aggregates]
        self.separators = [self._separator(a.separator) for a in prim.aggregates]
        self.max_len = self._group_concat_max_len()
        self.distinct_held = 0

    def _separator(self, expr: Any) -> str | None:
        if expr is None:
            return None
        value = evaluate(expr, self.rt.binds, self.rt.env)
        return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)

    def _group_concat_max_len(self) -> int | None:
        if self.dialect != "mysql":
            return None
        session = self.rt.session
        variables = getattr(getattr(session, "state", None), "variables", {}) or {}
        try:
            return int(variables.get("group_concat_max_len", 1024))
        except (TypeError, ValueError):
            return 1024

    def start(self, row: Row) -> list[Any]:
        states: list[Any] = []
        for i, (op, col, wcol) in enumerate(self.params):
            if op in _DISTINCT:
                state: Any = {}
            elif op in _COUNTS:
                state = 0
            elif op is Op.GROUP_CONCAT:
                state = []
            else:
                state = None
            states.append(self._step(i, op, col, wcol, state, row))
        return states

    def step(self, states: list[Any], row: Row) -> None:
        for i, (op, col, wcol) in enumerate(self.params):
            states[i] = self._step(i, op, col, wcol, states[i], row)

    def _step(self, i: int, op: AggregateOp, col: int, wcol: int, state: Any, row: Row) -> Any:
        v = row[col]
        if op in _ADD_COUNTS:
            return state + v if v else state
        if op is Op.RAW_COUNT_STAR:
            return state + 1
        if v is None:
            return state
        if op is Op.RAW_COUNT:
            return state + 1
        if op is Op.SUM:
            return add(state, v)
        if op is Op.MIN or op is Op.MAX:  # (key, value, its weight string): the weight goes along with the value
            key = self.keys[i](row)  # type: ignore[misc]
            if state is None or (key < state[0] if op is Op.MIN else state[0] < key):
                return (key, v, row[wcol] if wcol >= 0 else None)
            return state
        if op in _DISTINCT:
            k = equality_value(row, col, wcol)
            if k not in state:
                self.budget.charge(1, "COUNT/SUM(DISTINCT) values in router memory")
                self.distinct_held += 1
                state[k] = v
            return state
        if op is Op.ANY_VALUE:
            return v if state is None else state
        if op is Op.GROUP_CONCAT:
            state.append(v)
            return state
        if op is Op.BIT_AND:
            return v if state is None else state & v
        if op is Op.BIT_OR:
            return v if state is None else state | v
        if op is Op.BIT_XOR:
            return v if state is None else state ^ v
        if op is Op.BOOL_AND:
            return bool(v) if state is None else (state and bool(v))
        if op is Op.BOOL_OR:
            return bool(v) if state is None else (state or bool(v))
        raise AssertionError(f"unknown aggregate op {op}")

    def finish(self, first: Row, states: list[Any]) -> Row:
        out = list(first)
        for i, ((op, col, wcol), state) in enumerate(zip(self.params, states, strict=True)):
            out[col] = self._final(i, op, state)
            if wcol >= 0 and (op is Op.MIN or op is Op.MAX):
                # The weight column orders the result later (a memory sort on MAX(name)): it must be the weight of
                # the value kept, not of the group's first row.
                out[wcol] = None if state is None else state[2]
        return tuple(out)

    def _final(self, i: int, op: AggregateOp, state: Any) -> Any:
        if op is Op.MIN or op is Op.MAX:
            return None if state is None else state[1]
        if op is Op.COUNT_DISTINCT:
            return len(state)
        if op is Op.SUM_DISTINCT:  # over raw values: typed as the backend's SUM would be
            total = None
            for v in state.values():
                total = add(total, v)
            return raw_sum_result(total, self._column(i))
        if op is Op.SUM:
            return raw_sum_result(state, self._column(i), self.raw_input)
        if op is Op.GROUP_CONCAT:
            if not state:
                return None
            sep = self.separators[i]
            sep = "," if sep is None else sep
            if all(isinstance(p, (bytes, bytearray)) for p in state):
                joined_b = sep.encode().join(bytes(p) for p in state)
                return joined_b[:self.max_len] if self.max_len is not None else joined_b
            joined = sep.join(p.decode() if isinstance(p, (bytes, bytearray)) else str(p) for p in state)
            if self.max_len is not None and len(joined.encode()) > self.max_len:
                joined = joined.encode()[:self.max_len].decode("utf-8", "ignore")
            return joined
        return state

    def _column(self, i: int) -> Column | None:
        col = self.params[i][1]
        return self.columns[col] if col < len(self.columns) else None

    def empty(self, width: int) -> Row:
        out: list[Any] = [None] * width
        for op, col, _wcol in self.params:
            if op in _COUNTS:
                out[col] = 0
        return tuple(out)

    def release(self) -> None:
        if self.distinct_held:
            self.budget.release(self.distinct_held)
            self.distinct_held = 0


def _group_key(prim: Aggregate) -> Callable[[Row], tuple[Any, ...]]:
    cols = tuple((g.col, g.weight_col) for g in prim.group_by)
    if len(cols) == 1:
        c, w = cols[0]
        return lambda row: (equality_value(row, c, w),)
    return lambda row: tuple(equality_value(row, c, w) for c, w in cols)


class _OrderedAggregate(Source):
    """The input is sorted on the group keys: one group is accumulated at a time and emitted when it ends."""

    def __init__(self, prim: Aggregate, rt: Runtime, src: Source, merger: _Merger) -> None:
        self.prim, self.rt, self.src, self.merger = prim, rt, src, merger
        self.key = _group_key(prim)
        self._width = len(src.columns)
        self.columns = truncate(src.columns, prim.truncate_columns)
        self._first: Row | None = None
        self._states: list[Any] = []
        self._cur_key: Any = None
        self._done = False

    async def next(self) -> list[Row] | None:
        if self._done:
            return None
        merger, key = self.merger, self.key
        out: list[Row] = []
        while not out:
            batch = await self.src.next()
            if batch is None:
                self._done = True
                if self._first is not None:
                    out.append(merger.finish(self._first, self._states))
                    self._first = None
                    merger.release()
                break
            for row in batch:
                k = key(row)
                if self._first is not None and k == self._cur_key:
                    merger.step(self._states, row)
                    continue
                if self._first is not None:
                    out.append(merger.finish(self._first, self._states))
                    merger.release()
                self._first, self._cur_key = row, k
                self._states = merger.start(row)
        if not out:
            return None
        return truncate_rows(out, self.prim.truncate_columns, self._width)

    async def close(self) -> None:
        self.merger.release()
        await self.src.close()


async def open_aggregate(prim: Aggregate, rt: Runtime, src: Source, dialect: str) -> Source:
    merger = _Merger(prim, rt, dialect, tuple(src.columns))
    if prim.variant == "Ordered" and prim.group_by:
        return _OrderedAggregate(prim, rt, src, merger)
    key = _group_key(prim)
    width = len(src.columns)
    groups: dict[Any, tuple[Row, list[Any]]] = {}
    held = 0
    scalar = not prim.group_by
    try:
        while (batch := await src.next()) is not None:
            for row in batch:
                k = () if scalar else key(row)
                group = groups.get(k)
                if group is None:
                    if not scalar:
                        rt.budget.charge(1, "GROUP BY groups in router memory")
                        held += 1
                    groups[k] = (row, merger.start(row))
                else:
                    merger.step(group[1], row)
        if scalar:
            rows = [merger.finish(*groups[()])] if groups else [merger.empty(width)]
        else:
            rows = [merger.finish(first, states) for first, states in groups.values()]
    except BaseException:
        rt.budget.release(held)
        raise
    finally:
        merger.release()
        await src.close()
    rows = truncate_rows(rows, prim.truncate_columns, width)
    return ListSource(truncate(src.columns, prim.truncate_columns), rows, rt.limits.batch_rows,
                      on_close=lambda: rt.budget.release(held))
