"""A recording ``ExecutionContext`` for engine unit tests (Vitess's ``loggingVCursor``).

Every call becomes a transcript line::

    execute customer/-80: SELECT * FROM customer WHERE customer_id = 5
    stream customer/80-: SELECT name FROM customer ORDER BY name
    closed early customer/80- after 2 batches
    reserve commerce.customer_seq 3

Answers come from rules (``ctx.on(shard, sql_contains, rows=..., columns=..., error=..., delay=...)``, first match
wins, a callable ``rows(target, sql)`` computes them) or from the per-shard default rows given to the
constructor. Streams hand out ``limits.batch_rows`` rows per batch and count what was read (``ctx.rows_read``),
so tests can check that a satisfied LIMIT stopped reading.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from router.backend.connection import BackendTarget
from router.backend.result import Column, ExecResult, ResultSet, Row, TypeCode
from router.engine.context import Limits


def col(name: str, type_: TypeCode = TypeCode.BIGINT) -> Column:
    return Column(name=name, type=type_, engine="mysql", backend_type=8, backend_type_name=type_.value)


def cols(*names: str) -> tuple[Column, ...]:
    return tuple(col(n) for n in names)


@dataclass
class Rule:
    shard: str | None  # "customer/-80", or None for any
    contains: str | None
    rows: Any = None  # list of rows | callable(target, sql) -> rows | ResultSet | ExecResult
    columns: tuple[Column, ...] | None = None
    error: BaseException | None = None
    delay: float = 0.0
    result: ExecResult | None = None
    error_after_batches: int | None = None

    def matches(self, target: BackendTarget, sql: str) -> bool:
        return (self.shard is None or self.shard == target.shard_name) and \
            (self.contains is None or self.contains in sql)


class FakeStream:
    def __init__(self, ctx: FakeContext, target: BackendTarget, columns: tuple[Column, ...], rows: Sequence[Row],
                 rule: Rule | None) -> None:
        self.ctx, self.target, self.columns, self._rows = ctx, target, columns, list(rows)
        self.rule = rule
        self.batches = 0
        self.exhausted = False

    def __aiter__(self) -> AsyncIterator[list[Row]]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[list[Row]]:
        n = self.ctx.limits.batch_rows
        for start in range(0, len(self._rows), n):
            if self.rule is not None and self.rule.error_after_batches is not None \
                    and self.batches >= self.rule.error_after_batches:
                assert self.rule.error is not None
                raise self.rule.error
            await asyncio.sleep(0)
            batch = self._rows[start:start + n]
            self.batches += 1
            self.ctx.rows_read[self.target.shard_name] = self.ctx.rows_read.get(self.target.shard_name, 0) + len(batch)
            yield batch
        self.exhausted = True


class FakeContext:
    def __init__(self, shard_rows: dict[str, Sequence[Row]] | None = None, columns: Sequence[str] = ("id",), *,
                 dialect: str = "mysql", dialects: dict[str, str] | None = None, limits: Limits | None = None) -> None:
        self.shard_rows = dict(shard_rows or {})
        self.default_columns = cols(*columns)
        self.dialect = dialect
        self.dialects = dict(dialects or {})
        self.limits = limits or Limits()
        self.rules: list[Rule] = []
        self.log: list[str] = []
        self.rows_read: dict[str, int] = {}
        self.open_streams = 0
        self.next_id = 1000

    # --- setup -------------------------------------------------------------------------------------------------
    def on(self, shard: str | None = None, contains: str | None = None, *, rows: Any = None,
           columns: Sequence[str] | tuple[Column, ...] | None = None, error: BaseException | None = None,
           delay: float = 0.0, result: ExecResult | None = None, error_after_batches: int | None = None) -> FakeContext:
        if columns is not None and columns and isinstance(next(iter(columns)), str):
            columns = cols(*columns)  # type: ignore[arg-type]
        self.rules.append(Rule(shard, contains, rows, columns, error, delay, result,  # type: ignore[arg-type]
                               error_after_batches))
        return self

    # --- ExecutionContext --------------------------------------------------------------------------------------
    def backend_dialect(self, keyspace: str) -> str:
        return self.dialects.get(keyspace, self.dialect)

    def _answer(self, target: BackendTarget, sql: str) -> tuple[Rule | None, tuple[Column, ...], Any]:
        for rule in self.rules:
            if rule.matches(target, sql):
                rows = rule.rows
                if callable(rows):
                    rows = rows(target, sql)
                return rule, rule.columns or self.default_columns, rows if rows is not None else []
        return None, self.default_columns, self.shard_rows.get(target.shard_name, [])

    @contextlib.asynccontextmanager
    async def stream(self, target: BackendTarget, sql: str, *, timeout: float | None = None
                     ) -> AsyncIterator[FakeStream]:
        self.log.append(f"stream {target.shard_name}: {sql}")
        rule, columns, rows = self._answer(target, sql)
        if rule is not None and rule.delay:
            await asyncio.sleep(rule.delay)
        if rule is not None and rule.error is not None and rule.error_after_batches is None:
            raise rule.error
        if isinstance(rows, ResultSet):
            columns, rows = rows.columns, rows.rows
        stream = FakeStream(self, target, columns, rows, rule)
        self.open_streams += 1
        try:
            yield stream
        finally:
            self.open_streams -= 1
            if not stream.exhausted:
                self.log.append(f"closed early {target.shard_name} after {stream.batches} batches")

    async def execute(self, target: BackendTarget, sql: str, *, timeout: float | None = None,
                      params: Sequence[Any] | None = None) -> ResultSet | ExecResult:
        self.log.append(f"execute {target.shard_name}: {sql}" + (f" {list(params)!r}" if params is not None else ""))
        rule, columns, rows = self._answer(target, sql)
        if rule is not None and rule.delay:
            await asyncio.sleep(rule.delay)
        if rule is not None and rule.error is not None:
            raise rule.error
        if rule is not None and rule.result is not None:
            return rule.result
        if isinstance(rows, (ResultSet, ExecResult)):
            return rows
        self.rows_read[target.shard_name] = self.rows_read.get(target.shard_name, 0) + len(rows)
        return ResultSet(columns=columns, rows=list(rows))

    async def reserve_ids(self, keyspace: str, table: str, count: int) -> int:
        self.log.append(f"reserve {keyspace}.{table} {count}")
        first = self.next_id
        self.next_id += count
        return first

    # --- assertions helpers ------------------------------------------------------------------------------------
    def lines(self, prefix: str = "") -> list[str]:
        return [line for line in self.log if line.startswith(prefix)]

    def sorted_log(self) -> list[str]:
        """The transcript with concurrent calls in a stable order."""
        return sorted(self.log)


Responder = Callable[[BackendTarget, str], Sequence[Row]]
