"""The real ``ExecutionContext``: shard I/O over ``router.backend.pools.PoolSet``.

Outside a transaction each statement borrows a pooled connection for exactly its own duration (a stream keeps it
until the stream ends or is abandoned). Inside one, ``tx.participant(target)`` gives the session's connection to
that shard (joining the shard to the transaction on first use, or refusing it in ``single`` mode), and reads are
executed whole rather than streamed: one transaction connection per shard may be needed by two primitives at once
(a join's two sides), and a half-read stream would block the other.

Sequence ids (``reserve_ids``) come from the router's cached blocks (``router.engine.sequences``), reserved on
their own pooled connection outside the client's transaction, as Vitess does, so a rollback never hands an id out
twice.
"""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from router.backend.connection import BackendTarget
from router.backend.pools import PoolSet
from router.backend.result import Column, ExecResult, ResultSet, Row
from router.engine.context import Limits
from router.engine.sequences import cache_for
from sharding.snapshot import ClusterSnapshot

if TYPE_CHECKING:
    from router.engine.session import Transaction

__all__ = ["BufferedStream", "PoolContext", "backend_dialect_of"]


def backend_dialect_of(snapshot: ClusterSnapshot, keyspace: str, default: str = "mysql") -> str:
    ks = snapshot.keyspaces.get(keyspace)
    if ks is not None and ks.shards:
        primary = ks.shards[0].backends.get("primary")
        if isinstance(primary, (list, tuple)):
            primary = primary[0] if primary else None
        engine = getattr(primary, "engine", None)
        if engine in ("mysql", "postgres"):
            return str(engine)
    return default


class BufferedStream:
    """A whole result presented as a stream (reads inside a transaction)."""

    def __init__(self, columns: tuple[Column, ...], rows: list[Row], batch_rows: int) -> None:
        self.columns = columns
        self._rows = rows
        self._batch = batch_rows

    async def __aiter__(self) -> AsyncIterator[list[Row]]:
        rows, self._rows = self._rows, []
        for i in range(0, len(rows), self._batch):
            yield rows[i:i + self._batch]


class PoolContext:
    """``ExecutionContext`` over pools, optionally bound to a session's transaction."""

    def __init__(self, pools: PoolSet, snapshot: ClusterSnapshot, limits: Limits, *,
                 tx: Transaction | None = None, dialect_cache: dict[str, str] | None = None) -> None:
        self.pools = pools
        self.snapshot = snapshot
        self.limits = limits
        self.tx = tx
        self._dialects = dialect_cache if dialect_cache is not None else {}
        self.touched: set[BackendTarget] | None = None  # when set: every target a statement reaches is added

    def backend_dialect(self, keyspace: str) -> str:
        d = self._dialects.get(keyspace)
        if d is None:
            d = self._dialects[keyspace] = backend_dialect_of(self.snapshot, keyspace)
        return d

    def joined_shards(self, keyspace: str) -> frozenset[str]:
        """The shards of ``keyspace`` the session's transaction already holds, or outside one, those it is pinned
        to (``router.engine.session_state``: a lock taken by a shard-less SELECT is released on the same shard)."""
        tx = self.tx
        if tx is None:
            pinned = getattr(self.pools, "pinned_shards", None)
            return pinned(keyspace) if pinned is not None else frozenset()
        return frozenset(t.shard for t in tx.participants if t.keyspace == keyspace)

    @contextlib.asynccontextmanager
    async def stream(self, target: BackendTarget, sql: str, *, timeout: float | None = None
                     ) -> AsyncIterator[Any]:
        if self.touched is not None:
            self.touched.add(target)
        tx = self.tx
        if tx is not None:
            result = await tx.execute(target, sql, timeout=timeout)
            if isinstance(result, ResultSet):
                yield BufferedStream(result.columns, result.rows, self.limits.batch_rows)
            else:
                yield BufferedStream((), [], self.limits.batch_rows)
            return
        async with self.pools.acquire(target.keyspace, target.shard, target.role) as conn:
            async with conn.stream(sql, batch_rows=self.limits.batch_rows, timeout=timeout) as rows:
                yield rows

    async def execute(self, target: BackendTarget, sql: str, *, timeout: float | None = None,
                      params: Sequence[Any] | None = None, order: str = "normal") -> ResultSet | ExecResult:
        """``order`` (``pre`` | ``normal`` | ``post``): which of the transaction's connections to that shard runs
        the statement (``router.engine.transaction``, commit order); outside a transaction it does not matter."""
        if self.touched is not None:
            self.touched.add(target)
        tx = self.tx
        if tx is not None:
            return await tx.execute(target, sql, timeout=timeout, params=params, order=order)
        async with self.pools.acquire(target.keyspace, target.shard, target.role) as conn:
            return await conn.execute(sql, params, timeout=timeout)

    async def reserve_ids(self, keyspace: str, table: str, count: int) -> int:
        return await cache_for(self.pools).reserve(self.pools, self.snapshot, keyspace, table, count,
                                                   self.backend_dialect(keyspace))
