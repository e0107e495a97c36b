"""The engine's only I/O: ``ExecutionContext`` (Vitess's VCursor, kept to a handful of calls).

A plan is data; the engine walks it and asks the context to talk to shards. Five calls cover every primitive:

- ``stream(target, sql)``: an async context manager giving a ``RowStream``-like object (``columns``, async
  iteration over non-empty row batches). Leaving it early stops the statement on the shard.
- ``execute(target, sql, params=None)``: one statement, its whole ``ResultSet`` or ``ExecResult`` (point reads,
  DML, DDL, lookup-table reads: anything small or without rows).
- ``reserve_ids(keyspace, table, count)``: the first of ``count`` consecutive ids from a sequence table, reserved
  outside the client's transaction (Vitess reserves sequence blocks on its own connection).
- ``backend_dialect(keyspace)``: ``postgres`` or ``mysql``, how SQL for that keyspace's shards is written.
- ``limits``: the per-statement bounds (rows held in router memory, timeout, batch size).

Transaction participation is the context's business, not the engine's: a context bound to a session in a
transaction sends each statement over that session's connection to the shard (joining the shard to the
transaction, or refusing a second shard in ``single`` mode); otherwise it borrows a pooled connection for the
one statement. The engine never sees connections, so it runs the same way against the recording fake of the unit
tests (``tests/unit/engine/fake_context.py``) and against real shards (``router.engine.pools_context``).

``timeout`` on each call is what remains of the statement's deadline; the backend cancels the statement on the
server when it expires (``QueryTimeoutError``).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from router.backend.connection import BackendTarget
from router.backend.result import Column, ExecResult, ResultSet, Row

__all__ = ["DEFAULT_MAX_ROWS", "ExecutionContext", "Limits", "ShardStream", "BackendTarget"]

DEFAULT_MAX_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of one statement's execution.

    ``max_rows``: rows the router may hold in memory at once for one statement (Sort, hash aggregation and
    DISTINCT, join batches, pulled-out subquery values); streamed rows do not count. Exceeding it is
    ``ResourceLimitError``, never a truncated answer. ``None``: no cap (``SET workload = 'olap'``).
    ``query_timeout``: seconds for the whole statement (None: none). ``batch_rows``: rows per batch read from a
    shard; ``prefetch_batches``: batches read ahead per shard before a slow consumer pauses the shard.
    """

    max_rows: int | None = DEFAULT_MAX_ROWS
    query_timeout: float | None = None
    batch_rows: int = 1000
    prefetch_batches: int = 2
    join_batch_rows: int = 500  # left rows whose values one batched right-side query carries
    join_concurrency: int = 8  # right-side queries of one join in flight at once

    def with_changes(self, **changes: Any) -> Limits:
        return replace(self, **changes)


@runtime_checkable
class ShardStream(Protocol):
    """What ``ExecutionContext.stream`` yields: the shape of ``router.backend.connection.RowStream``."""

    columns: tuple[Column, ...]

    def __aiter__(self) -> AsyncIterator[list[Row]]: ...


@runtime_checkable
class ExecutionContext(Protocol):
    limits: Limits

    def backend_dialect(self, keyspace: str) -> str:
        """``postgres`` or ``mysql``: the dialect SQL for this keyspace's shards is rendered in."""

    def stream(self, target: BackendTarget, sql: str, *, timeout: float | None = None
               ) -> AbstractAsyncContextManager[ShardStream]:
        """Send ``sql`` to one shard and read its rows in batches as the caller asks for them."""

    async def execute(self, target: BackendTarget, sql: str, *, timeout: float | None = None,
                      params: Sequence[Any] | None = None) -> ResultSet | ExecResult:
        """Run ``sql`` on one shard and return its whole result. ``params`` (PostgreSQL ``$n`` placeholders) let
        the shard's connection reuse its prepared statement for a repeated text: one round trip instead of two."""

    async def reserve_ids(self, keyspace: str, table: str, count: int) -> int:
        """Reserve ``count`` ids of sequence table ``keyspace.table``; the first of them."""


def first_value(result: ResultSet | ExecResult) -> Any:
    """The first column of the first row (None when there is none)."""
    if isinstance(result, ResultSet) and result.rows:
        return result.rows[0][0]
    return None


def as_rows(result: ResultSet | ExecResult) -> Sequence[Row]:
    return result.rows if isinstance(result, ResultSet) else ()
