"""What one statement's execution carries around: the ``Runtime`` (context, snapshot, values, budget, deadline,
DML totals) and the ``Source`` every executing primitive is.

A ``Source`` is an opened primitive: ``columns`` are known once it is open; ``next()`` returns the next non-empty
batch of rows or ``None`` at the end; ``close()`` stops whatever still runs below it (shard queries are cancelled
on the server) and is idempotent. Sources pull: nothing is read from a shard before someone asks, beyond the
bounded read-ahead of ``Limits.prefetch_batches``.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from router.backend.connection import BackendTarget
from router.backend.result import Column, Row, TypeCode
from router.engine.context import ExecutionContext, Limits
from sharding.errors import QueryTimeoutError, ResourceLimitError
from sharding.snapshot import ClusterSnapshot

__all__ = ["ListSource", "RowBudget", "Runtime", "Source", "Totals", "synthetic_column"]


class RowBudget:
    """Rows held in router memory by one statement (Sort, hash aggregation, DISTINCT, join batches, pulled-out
    subquery values). Charging past ``limit`` raises ``ResourceLimitError``: never a truncated answer."""

    __slots__ = ("held", "limit", "peak")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0

    def charge(self, rows: int, what: str) -> None:
        held = self.held + rows
        if self.limit is not None and held > self.limit:
            raise ResourceLimitError(
                f"{what} would hold more than {self.limit} rows in router memory (the row cap); "
                "narrow the query, or lift the cap for this session with SET workload = 'olap'")
        self.held = held
        if held > self.peak:
            self.peak = held

    def release(self, rows: int) -> None:
        self.held = max(0, self.held - rows)


@dataclass(slots=True)
class Totals:
    """What a write statement reports: affected rows summed over shards, the insert id, warnings."""

    rows_affected: int = 0
    last_insert_id: int | None = None
    warnings: list[str] = field(default_factory=list)
    server_warnings: int = 0
    has_rows: bool = True  # False: an ExecResult-shaped answer (DML without RETURNING, DDL, SET, …)
    status: str = ""


class Runtime:
    """The state of one statement's execution. ``child(env)`` shares everything except run-time values (join
    variables of one left row, pulled-out subquery values)."""

    __slots__ = ("binds", "budget", "buffered", "client_dialect", "ctx", "deadline", "env", "has_params", "limits",
                 "session", "snapshot", "sql", "tablet_role", "totals", "trace")

    def __init__(self, ctx: ExecutionContext, snapshot: ClusterSnapshot, binds: Sequence[Any], *,
                 sql: str = "", client_dialect: str = "mysql", has_params: bool = False,
                 env: dict[str, Any] | None = None, limits: Limits | None = None, session: Any = None,
                 tablet_role: str = "primary") -> None:
        self.ctx = ctx
        self.snapshot = snapshot
        self.binds = binds
        self.sql = sql
        self.client_dialect = client_dialect
        self.has_params = has_params
        self.env: dict[str, Any] = env if env is not None else {}
        self.limits = limits if limits is not None else ctx.limits
        self.budget = RowBudget(self.limits.max_rows)
        timeout = self.limits.query_timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.totals = Totals()
        self.session = session  # a router.engine.session.Session when one runs the statement (sql_mode, …)
        self.tablet_role = tablet_role
        self.trace: list[str] | None = None
        self.buffered = False  # routes below read whole answers (one round trip): join right sides, EXISTS probes

    def child(self, env: dict[str, Any], *, buffered: bool | None = None) -> Runtime:
        rt = object.__new__(Runtime)
        for name in Runtime.__slots__:
            setattr(rt, name, getattr(self, name))
        rt.env = env
        if buffered is not None:
            rt.buffered = buffered
        return rt

    def target(self, keyspace: str, shard: str, *, write: bool = False) -> BackendTarget:
        return BackendTarget(keyspace, shard, "primary" if write else self.tablet_role)

    def remaining(self) -> float | None:
        """Seconds left before the statement's deadline (None: no deadline). Raises once it has passed."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise QueryTimeoutError(f"statement exceeded its {self.limits.query_timeout:g} s timeout")
        return left

    def timeout_error(self) -> QueryTimeoutError:
        return QueryTimeoutError(f"statement exceeded its {self.limits.query_timeout:g} s timeout")

    async def wait(self, awaitable: Any) -> Any:
        """Await ``awaitable`` within the statement's deadline."""
        left = self.remaining()
        if left is None:
            return await awaitable
        try:
            async with asyncio.timeout(left):
                return await awaitable
        except TimeoutError:
            raise self.timeout_error() from None


class Source:
    """An opened primitive. Subclasses set ``columns`` in ``open`` and implement ``next``/``close``."""

    columns: tuple[Column, ...] = ()

    async def next(self) -> list[Row] | None:
        raise NotImplementedError

    async def close(self) -> None:
        return None

    async def drain(self) -> list[Row]:
        """Every remaining row (callers charge the budget as they see fit); closes the source."""
        out: list[Row] = []
        try:
            while (batch := await self.next()) is not None:
                out.extend(batch)
        finally:
            await self.close()
        return out


class ListSource(Source):
    """Rows already in memory, handed out in batches."""

    def __init__(self, columns: tuple[Column, ...], rows: Sequence[Row], batch_rows: int = 1000,
                 on_close: Callable[[], None] | None = None) -> None:
        self.columns = columns
        self._rows = rows
        self._pos = 0
        self._batch = max(1, batch_rows)
        self._on_close = on_close

    async def next(self) -> list[Row] | None:
        if self._pos >= len(self._rows):
            return None
        end = self._pos + self._batch
        batch = list(self._rows[self._pos:end])
        self._pos = end
        return batch

    async def close(self) -> None:
        self._rows = ()
        self._pos = 0
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()


def synthetic_column(name: str, sample: Any = None) -> Column:
    """A column for values the router computed itself (RowsResult, VEXPLAIN, SELECT NEXT)."""
    if isinstance(sample, bool):
        code = TypeCode.BOOL
    elif isinstance(sample, int):
        code = TypeCode.BIGINT
    elif isinstance(sample, float):
        code = TypeCode.DOUBLE
    elif sample is not None and type(sample).__name__ == "Decimal":
        code = TypeCode.DECIMAL
    elif isinstance(sample, (bytes, bytearray)):
        code = TypeCode.VARBINARY
    else:
        code = TypeCode.VARCHAR
    return Column(name=name, type=code, engine="router", backend_type=0, backend_type_name=code.value,
                  nullable=True)


def truncate(columns: tuple[Column, ...], keep: int) -> tuple[Column, ...]:
    return columns[:keep] if 0 < keep < len(columns) else columns


def truncate_rows(rows: list[Row], keep: int, width: int) -> list[Row]:
    if 0 < keep < width:
        return [r[:keep] for r in rows]
    return rows
