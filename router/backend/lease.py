"""The checked-out connection: it returns itself to its pool, and refuses to work after that.

``async with pool.acquire() as conn:`` gives a ``PooledConnection``. It forwards every ``BackendConnection`` call
to the adapter until released; afterwards any call raises ``InternalError`` (asyncpg's ``_pool_release_ctr``
habit), so a stray reference cannot run a statement on a session that now belongs to another query.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from router.backend.adapter import AdapterBase
from router.backend.connection import BackendTarget, RowStream
from router.backend.result import ExecResult, ResultSet
from sharding.errors import InternalError

if TYPE_CHECKING:
    from router.backend.pool import Pool, _Holder

__all__ = ["Acquire", "PooledConnection"]


class PooledConnection:
    """A ``BackendConnection`` on loan from a pool (see the module docstring)."""

    __slots__ = ("_conn", "_holder", "_pool")

    def __init__(self, pool: Pool, holder: _Holder) -> None:
        self._pool = pool
        self._holder: _Holder | None = holder
        self._conn: AdapterBase | None = holder.conn

    def _c(self) -> AdapterBase:
        conn = self._conn
        if conn is None:
            raise InternalError("backend connection used after it went back to its pool")
        return conn

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def release(self) -> None:
        """Give the connection back (reset or discarded as needed). Idempotent."""
        holder, self._holder, self._conn = self._holder, None, None
        if holder is not None:
            await self._pool._release(holder)

    def discard(self) -> None:
        """Do not reuse this connection: it is closed when released."""
        self._c().terminate()

    @property
    def released(self) -> bool:
        return self._conn is None

    @property
    def raw(self) -> Any:
        """The driver connection (tests and the bench; the engine has no business here). Whatever the caller does
        with it is unknown to the pool, so the connection is reset before its next borrower (a use interrupted
        half-way, a prepared statement or a setting left behind)."""
        conn = self._c()
        conn.mark_dirty()
        return getattr(conn, "raw", None)

    # --- BackendConnection ---------------------------------------------------------------------------------------
    @property
    def engine(self) -> str:
        return self._c().engine

    @property
    def target(self) -> BackendTarget:
        return self._c().target

    @property
    def server_version(self) -> str:
        return self._c().server_version

    @property
    def in_transaction(self) -> bool:
        return self._c().in_transaction

    @property
    def broken(self) -> bool:
        return self._c().broken

    @property
    def needs_reset(self) -> bool:
        return self._c().needs_reset

    @property
    def queries(self) -> int:
        return self._c().queries

    @property
    def conn_id(self) -> int:
        return self._c().conn_id

    async def execute(self, sql: str, params: Sequence[Any] | None = None, *,
                      timeout: float | None = None) -> ResultSet | ExecResult:
        return await self._c().execute(sql, params, timeout=timeout)

    def stream(self, sql: str, params: Sequence[Any] | None = None, *, batch_rows: int = 1000,
               timeout: float | None = None) -> RowStream:
        return self._c().stream(sql, params, batch_rows=batch_rows, timeout=timeout)

    async def begin(self, xid: str | None = None) -> None:
        await self._c().begin(xid)

    async def commit(self) -> None:
        await self._c().commit()

    async def rollback(self) -> None:
        await self._c().rollback()

    async def prepare_transaction(self, xid: str) -> None:
        await self._c().prepare_transaction(xid)

    async def commit_prepared(self, xid: str) -> None:
        await self._c().commit_prepared(xid)

    async def rollback_prepared(self, xid: str) -> None:
        await self._c().rollback_prepared(xid)

    async def recover_prepared(self) -> list[str]:
        return await self._c().recover_prepared()

    async def cancel(self) -> bool:
        conn = self._conn
        return False if conn is None else await conn.cancel()

    async def ping(self, timeout: float = 2.0) -> bool:
        return await self._c().ping(timeout)

    def is_alive(self) -> bool:
        conn = self._conn
        return conn is not None and conn.is_alive()

    def mark_dirty(self) -> None:
        self._c().mark_dirty()

    @property
    def applied(self) -> dict[str, str]:
        """The session settings in effect on this connection (see ``AdapterBase.sync_settings``)."""
        return self._c().applied

    async def sync_settings(self, desired: Mapping[str, str], timeout: float = 5.0) -> bool:
        return await self._c().sync_settings(desired, timeout)

    async def reset(self) -> bool:
        return await self._c().reset()

    def __repr__(self) -> str:
        return f"<PooledConnection {self._conn!r}>" if self._conn is not None else "<PooledConnection released>"


class Acquire:
    """``pool.acquire()``: use as ``async with`` (released on exit) or ``await`` it (call ``release()``)."""

    __slots__ = ("_get", "_lease")

    def __init__(self, get: Callable[[], Awaitable[PooledConnection]]) -> None:
        self._get = get
        self._lease: PooledConnection | None = None

    def __await__(self) -> Generator[Any, None, PooledConnection]:
        return self._get().__await__()

    async def __aenter__(self) -> PooledConnection:
        self._lease = await self._get()
        return self._lease

    async def __aexit__(self, *exc: object) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.release()
