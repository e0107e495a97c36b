"""Vitess-style sequences with a cache: ids come from memory, the sequence table is touched once per block.

A sequence table lives in an unsharded keyspace and holds one row, ``id = 0``, with ``next_id`` (the first id
nobody has reserved) and ``cache`` (how many ids a router reserves at a time). A router that needs ids takes
``max(cache, n)`` of them in one atomic ``UPDATE`` on its own autocommit connection (never the client's
transaction: a rollback must not give ids back) and hands them out from memory until the block runs out. Two
routers never reserve the same block, so they never hand out the same id; ids left in a router's block when it
stops are skipped, as in Vitess (sequences promise uniqueness and growth, not density).

``reserve(n)`` returns the first of ``n`` consecutive ids. When the block in memory holds fewer than ``n``, the rest
of it is dropped and a new block is reserved: a multi-row INSERT gets one consecutive run, which is what
``LAST_INSERT_ID()`` and the per-row ids computed from it assume.

The ``cache`` column is read with each reservation (a separate statement, so the ``UPDATE`` itself adds a number
the router chose: the block it reserves is exactly the one it computed, whatever the column says meanwhile).
"""
from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router.backend.result import ExecResult
from router.engine.context import first_value
from sharding.errors import InvalidValueError, RoutingError

if TYPE_CHECKING:
    from router.backend.pools import PoolSet
    from sharding.snapshot import ClusterSnapshot

__all__ = ["SequenceCache", "block_sql", "cache_for"]

MAX_CACHE = 1_000_000  # a larger cache column is read as this: one block must not swallow the id space


def _quote(table: str, dialect: str) -> str:
    if dialect == "postgres":
        return '"' + table.replace('"', '""') + '"'
    return "`" + table.replace("`", "``") + "`"


def block_sql(dialect: str, table: str, count: int) -> tuple[str, ...]:
    """Statements that reserve ``count`` ids atomically (autocommit) and read back the new ``next_id``; the first
    reserved id is that value minus ``count``.

    - PostgreSQL: one ``UPDATE … RETURNING``;
    - MySQL/MariaDB: ``UPDATE … SET next_id = LAST_INSERT_ID(next_id + n)``, whose OK packet carries the new
      value, and ``SELECT LAST_INSERT_ID()`` on the same connection when a driver does not report it.
    """
    if count <= 0:
        raise ValueError("count must be positive")
    quoted = _quote(table, dialect)
    if dialect == "postgres":
        return (f"UPDATE {quoted} SET next_id = next_id + {count} WHERE id = 0 RETURNING next_id",)
    return (f"UPDATE {quoted} SET next_id = LAST_INSERT_ID(next_id + {count}) WHERE id = 0",
            "SELECT LAST_INSERT_ID()")


def _no_row(keyspace: str, table: str) -> str:
    return (f"sequence table {keyspace}.{table} has no row with id = 0 "
            "(create it with: INSERT INTO t (id, next_id, cache) VALUES (0, 1, 1000))")


@dataclass(slots=True)
class _Block:
    next: int = 0
    end: int = 0  # exclusive
    lock: asyncio.Lock | None = None


class SequenceCache:
    """The id blocks one router holds, per sequence table (see the module docstring)."""

    def __init__(self) -> None:
        self._blocks: dict[tuple[str, str, str], _Block] = {}
        self.reservations = 0  # blocks reserved from sequence tables (a test and metrics figure)

    async def reserve(self, pools: PoolSet, snapshot: ClusterSnapshot, keyspace: str, table: str, count: int,
                      dialect: str) -> int:
        if count <= 0:
            raise InvalidValueError(f"a sequence hands out a positive number of ids, not {count}")
        shards = snapshot.shards(keyspace)
        if len(shards) != 1:
            raise RoutingError(f"sequence table {keyspace}.{table} must live in an unsharded keyspace")
        key = (keyspace, shards[0].name, table.lower())
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = _Block(lock=asyncio.Lock())
        if block.end - block.next >= count:  # the common case: no await, so no lock needed
            first = block.next
            block.next += count
            return first
        assert block.lock is not None
        async with block.lock:
            if block.end - block.next < count:  # still short once it is our turn (another waiter may have refilled)
                size = max(count, await self._cache_size(pools, keyspace, shards[0].name, table, dialect))
                top = await self._take(pools, keyspace, shards[0].name, table, size, dialect)
                if top - size == block.end and block.end:  # no other router took ids since: the block grows
                    block.end = top  # (Vitess keeps ids contiguous the same way)
                else:
                    block.next, block.end = top - size, top
                self.reservations += 1
            first = block.next
            block.next += count
            return first

    def forget(self, keyspace: str | None = None) -> None:
        """Drop cached blocks (all, or one keyspace's): after the sequence table moved or was reset by hand."""
        for key in [k for k in self._blocks if keyspace is None or k[0] == keyspace]:
            del self._blocks[key]

    @staticmethod
    async def _cache_size(pools: PoolSet, keyspace: str, shard: str, table: str, dialect: str) -> int:
        async with pools.acquire(keyspace, shard, "primary") as conn:
            value = first_value(await conn.execute(f"SELECT cache FROM {_quote(table, dialect)} WHERE id = 0"))
        if value is None:
            raise InvalidValueError(_no_row(keyspace, table))
        try:
            return min(max(int(value), 1), MAX_CACHE)
        except (TypeError, ValueError):
            raise InvalidValueError(f"sequence table {keyspace}.{table}: cache is not a number ({value!r})") from None

    @staticmethod
    async def _take(pools: PoolSet, keyspace: str, shard: str, table: str, count: int, dialect: str) -> int:
        statements = block_sql(dialect, table, count)
        async with pools.acquire(keyspace, shard, "primary") as conn:
            result: Any = await conn.execute(statements[0])
            if dialect == "mysql":
                if not isinstance(result, ExecResult) or result.rows_affected != 1:
                    raise InvalidValueError(_no_row(keyspace, table))
                top = result.last_insert_id or first_value(await conn.execute(statements[1]))
            else:
                top = first_value(result)
        if top is None:
            raise InvalidValueError(_no_row(keyspace, table))
        return int(top)


_CACHES: weakref.WeakKeyDictionary[Any, SequenceCache] = weakref.WeakKeyDictionary()


def cache_for(pools: PoolSet) -> SequenceCache:
    """The sequence cache of a router: one per ``PoolSet`` (a gateway's backends), shared by all its sessions (a
    session's own view of the pools, ``SessionBackend``, is looked through: else every session reserved a block)."""
    from router.engine.session_state import SessionBackend

    while isinstance(pools, SessionBackend):
        pools = pools.pools
    cache = _CACHES.get(pools)
    if cache is None:
        cache = _CACHES[pools] = SequenceCache()
    return cache
