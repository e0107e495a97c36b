"""A pool of connections to one backend server in one role (PgDog's ``pool_impl`` + ``guard``, asyncpg's
``PoolConnectionHolder`` rules).

- Bounded: at most ``max_size`` connections (idle + in use + opening); acquirers beyond that queue (FIFO) for
  ``acquire_timeout`` and then get ``TooManyConnectionsError`` naming the shard; past ``max_waiters`` they get
  ``ResourceLimitError`` at once.
- Recycled: a connection is closed instead of reused when its ``generation`` is old (``expire_connections()``),
  when it is older than ``max_lifetime`` (jittered) or idle longer than ``idle_timeout``, after ``max_queries``
  statements, when it broke, when it holds a prepared XA branch, or when ``reset()`` (needed after a transaction
  left open, a ``SET``, a cancel, an abandoned stream) fails. Checkout checks liveness locally and pings a
  connection that sat idle long (``health_check_idle``) or that was idle when a sibling broke.
- Self-healing: a failed connect starts a backoff (``router.backend.backoff``). While it runs, queries that need
  a *new* connection fail at once with ``BackendUnavailableError``; then one attempt probes the server. The
  background sweep also probes (to refill ``min_size``), so the pool recovers without traffic. Only queries that
  needed the backend during the outage fail.

Idle connections are kept LIFO, so a quiet period lets the least recently used ones reach ``idle_timeout``.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

from router.backend.adapter import AdapterBase
from router.backend.backoff import Backoff
from router.backend.connect import open_connection
from router.backend.connection import BackendTarget
from router.backend.errmap import unavailable
from router.backend.lease import Acquire, PooledConnection
from router.backend.log import log_event
from router.backend.pool_config import PoolConfig, PoolStats
from sharding.config_model import ShardConfig
from sharding.db import DSN
from sharding.errors import BackendUnavailableError, ResourceLimitError, TooManyConnectionsError

__all__ = ["Opener", "Pool"]

Opener = Callable[..., Awaitable[AdapterBase]]  # (dsn, target, *, timeout) -> connected adapter
_NO_SETTINGS: Mapping[str, str] = MappingProxyType({})


class _Holder:
    """A pooled connection and the pool's bookkeeping about it."""

    __slots__ = ("conn", "expires_at", "generation", "idle_since")

    def __init__(self, conn: AdapterBase, generation: int, expires_at: float) -> None:
        self.conn = conn
        self.generation = generation
        self.expires_at = expires_at
        self.idle_since = time.monotonic()


class Pool:
    """Connections to one backend (see the module docstring). Create, then ``acquire()``; ``close()`` at the end."""

    def __init__(self, target: BackendTarget, backend: ShardConfig | DSN | Callable[[], DSN],
                 config: PoolConfig | None = None, *, opener: Opener = open_connection) -> None:
        self.target = target
        self.config = config or PoolConfig()
        self.backend = backend
        self._dsn_source: Callable[[], DSN]
        if isinstance(backend, DSN):
            self._dsn_source = lambda: backend
        elif isinstance(backend, ShardConfig):
            self._dsn_source = backend.dsn  # reads the password now, at each connect (rotated secrets work)
        else:
            self._dsn_source = backend
        self._opener = opener
        self._address = self._describe_backend()
        self._label = f"{target} ({self._address})"
        self._idle: collections.deque[_Holder] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[_Holder | None]] = collections.deque()
        self._size = 0  # idle + in use + opening
        self._opening = 0
        self._backoff = Backoff(initial=self.config.backoff_initial, ceiling=self.config.backoff_max)
        self._generation = 0
        self._suspect_before = 0.0  # idle connections idle since before this get pinged at checkout
        self._closing = False
        self._maintenance: asyncio.Task[None] | None = None
        self._closers: set[asyncio.Task[None]] = set()
        self._loaned: set[_Holder] = set()
        self._acquired = self._timeouts = self._errors = self._created = self._discarded = 0
        self._settings_synced = 0

    # --- public ----------------------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._generation

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def down(self) -> bool:
        return self._backoff.down

    def acquire(self, timeout: float | None = None, settings: Mapping[str, str] | None = None) -> Acquire:
        """``async with pool.acquire() as conn:`` (released on exit), or ``conn = await pool.acquire()``.

        The connection comes with exactly ``settings`` in effect (name -> value text; none: the defaults): a
        connection whose settings differ gets one statement that changes only the difference (transaction
        pooling: a session's ``SET``s are replayed on whichever connection serves it)."""
        return Acquire(lambda: self._lease(timeout, settings))

    async def start(self) -> Pool:
        """Open ``min_size`` connections (a backend that is down is not an error here) and start the sweep."""
        self._ensure_maintenance()
        for _ in range(self.config.min_size - self._size):
            if not await self._refill_one():
                break
        return self

    def expire_connections(self) -> None:
        """Retire every connection: idle ones close now, those in use when they come back (a new generation)."""
        self._generation += 1
        while self._idle:
            self._discard(self._idle.pop(), "generation")
        log_event(logging.INFO, "backend_pool_expired", self.target, generation=self._generation)

    def stats(self) -> PoolStats:
        idle = len(self._idle)
        return PoolStats(target=str(self.target), size=self._size, idle=idle,
                         in_use=self._size - idle - self._opening, opening=self._opening,
                         waiters=sum(not f.done() for f in self._waiters), max_size=self.config.max_size,
                         generation=self._generation, acquired=self._acquired, timeouts=self._timeouts,
                         errors=self._errors, created=self._created, discarded=self._discarded,
                         down=self._backoff.down, last_error=self._backoff.last_error,
                         settings_synced=self._settings_synced)

    def stop_lending(self) -> None:
        """Refuse new acquires and fail the queued ones at once; loans keep working until they come back."""
        if self._closing:
            return
        self._closing = True
        log_event(logging.INFO, "backend_pool_closing", self.target, in_use=self._in_use())
        error = unavailable(self._label, "pool is closed")
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(error)
        while self._idle:
            self._discard(self._idle.pop(), "pool_closed")

    async def close(self, timeout: float | None = None) -> None:
        """Stop lending; wait up to ``timeout`` (default ``close_timeout``) for loans to return, then close all."""
        self.stop_lending()
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(BaseException):
                await self._maintenance
            self._maintenance = None
        limit = self.config.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while self._loaned and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for holder in list(self._loaned):  # loans not back in time: their next call fails, release discards
            log_event(logging.WARNING, "backend_connection_terminated", self.target, backend=self._address,
                      conn_id=holder.conn._safe_conn_id(), reason="pool_closed")
            holder.conn.terminate()
        if self._closers:
            await asyncio.gather(*list(self._closers), return_exceptions=True)

    # --- acquiring -------------------------------------------------------------------------------------------
    async def _lease(self, timeout: float | None, settings: Mapping[str, str] | None = None) -> PooledConnection:
        desired = settings if settings is not None else _NO_SETTINGS
        holder = await self._acquire(self.config.acquire_timeout if timeout is None else timeout, desired)
        self._acquired += 1
        self._loaned.add(holder)
        lease = PooledConnection(self, holder)
        if holder.conn.applied != desired:
            try:
                await holder.conn.sync_settings(desired, self.config.reset_timeout)
            except BaseException:
                await asyncio.shield(lease.release())
                raise
            self._settings_synced += 1
        return lease

    def _pop_idle(self, desired: Mapping[str, str]) -> _Holder:
        """The most recently used idle connection, or, among the last few, one whose settings already match
        (saves the round trip that would change them)."""
        idle = self._idle
        if idle[-1].conn.applied != desired:
            for i in range(len(idle) - 2, max(-1, len(idle) - 9), -1):
                if idle[i].conn.applied == desired:
                    holder = idle[i]
                    del idle[i]
                    return holder
        return idle.pop()

    async def _acquire(self, timeout: float, desired: Mapping[str, str] = MappingProxyType({})) -> _Holder:
        self._ensure_maintenance()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._closing:
                raise unavailable(self._label, "pool is closed (the backend left the topology)")
            while self._idle:
                holder = self._pop_idle(desired)
                if await self._checkout_ok(holder):
                    return holder
            if self._size < self.config.max_size:
                return await self._open_new()
            holder_or_slot = await self._wait(loop, deadline, timeout)
            if holder_or_slot is not None:
                return holder_or_slot

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float, timeout: float) -> _Holder | None:
        """Queue for a returned connection (or a freed slot: None). Raises on timeout or a full queue."""
        if self.config.max_waiters and len(self._waiters) >= self.config.max_waiters:
            raise ResourceLimitError(f"{self._label}: {len(self._waiters)} queries already wait for a connection "
                                     f"(max_waiters={self.config.max_waiters})")
        fut: asyncio.Future[_Holder | None] = loop.create_future()
        self._waiters.append(fut)
        try:
            remaining = deadline - loop.time()
            if remaining > 0:
                await asyncio.wait((fut,), timeout=remaining)
        except asyncio.CancelledError:
            self._give_back(fut)
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
        if fut.done():
            return fut.result()  # a holder, None (a slot is free: look again), or the pool-closed error
        fut.cancel()
        self._timeouts += 1
        log_event(logging.WARNING, "backend_acquire_timeout", self.target, size=self._size, in_use=self._in_use(),
                  waiters=len(self._waiters), timeout_s=timeout)
        raise TooManyConnectionsError(f"{self._label}: no backend connection free within {timeout:g} s "
                                      f"({self._in_use()} in use, max_size={self.config.max_size})")

    def _give_back(self, fut: asyncio.Future[_Holder | None]) -> None:
        """A waiter was cancelled: whatever was handed to it goes to the next one."""
        if not fut.done():
            fut.cancel()
        elif not fut.cancelled() and fut.exception() is None:
            holder = fut.result()
            if holder is not None:
                self._put_idle(holder)
            else:
                self._wake_one()

    async def _checkout_ok(self, holder: _Holder) -> bool:
        """Whether an idle connection may be lent; closes it otherwise."""
        conn, now = holder.conn, time.monotonic()
        reason = self._expired(holder, now)
        if reason is None and not conn.is_alive():
            reason = "closed_by_server"
        if reason is None and (now - holder.idle_since >= self.config.health_check_idle
                               or holder.idle_since < self._suspect_before):
            if not await conn.ping(self.config.ping_timeout):
                reason = "ping_failed"
        if reason is not None:
            self._discard(holder, reason)
            return False
        return True

    async def _open_new(self) -> _Holder:
        wait = self._backoff.wait_time(time.monotonic())
        if wait > 0:
            raise unavailable(self._label, f"backend down ({self._backoff.last_error}); next connect attempt in "
                                           f"{wait:.2f} s")
        self._size += 1
        self._opening += 1
        self._backoff.begin_probe()
        try:
            conn = await self._connect()
        except BaseException:
            self._size -= 1
            self._wake_all()  # waiters re-check: they now fail fast instead of waiting out their timeout
            raise
        finally:
            self._opening -= 1
        now = time.monotonic()
        lifetime = self.config.max_lifetime
        if lifetime:
            lifetime *= 1.0 - self.config.lifetime_jitter * random.random()
        return _Holder(conn, self._generation, now + lifetime if lifetime else float("inf"))

    async def _connect(self) -> AdapterBase:
        started = time.monotonic()
        try:
            dsn = self._dsn_source()
            conn = await self._opener(dsn, self.target, timeout=self.config.connect_timeout)
        except asyncio.CancelledError:
            self._backoff.probing = False
            raise
        except Exception as exc:
            self._errors += 1
            reason = exc.message if isinstance(exc, BackendUnavailableError) else f"{type(exc).__name__}: {exc}"
            delay = self._backoff.failure(time.monotonic(), reason)
            log_event(logging.WARNING, "backend_connect_failed", self.target, backend=self._address,
                      error=type(exc).__name__, delay_s=round(delay, 3))
            if isinstance(exc, BackendUnavailableError):
                raise unavailable(self._label, "cannot connect", exc) from exc
            raise
        if self._backoff.success():
            log_event(logging.INFO, "backend_recovered", self.target, backend=self._address)
        self._created += 1
        log_event(logging.DEBUG, "backend_connected", self.target, backend=self._address, conn_id=conn.conn_id,
                  duration_ms=round((time.monotonic() - started) * 1000, 3))
        return conn

    # --- returning -------------------------------------------------------------------------------------------
    async def _release(self, holder: _Holder) -> None:
        self._loaned.discard(holder)
        conn = holder.conn
        reason = self._expired(holder, time.monotonic())
        if reason is None and self._closing:
            reason = "pool_closed"
        if reason is None and (conn.in_transaction or conn.needs_reset):
            try:
                if not await conn.reset(self.config.reset_timeout):
                    reason = "reset_failed"
            except BaseException:
                self._discard(holder, "reset_interrupted")
                raise
        if reason is not None:
            if conn.broken:
                self._suspect_before = time.monotonic()  # siblings idle since before may be dead too
            self._discard(holder, reason)
            return
        holder.idle_since = time.monotonic()
        self._put_idle(holder)

    def _expired(self, holder: _Holder, now: float) -> str | None:
        conn = holder.conn
        if conn.broken:
            return "broken"
        if conn.running:
            return "busy"  # a statement still runs (its task was not awaited): never lend it out again
        if getattr(conn, "holds_prepared_xa", False):
            return "prepared_xa"
        if holder.generation != self._generation:
            return "generation"
        if now >= holder.expires_at:
            return "max_lifetime"
        if self.config.max_queries and conn.queries >= self.config.max_queries:
            return "max_queries"
        return None

    def _put_idle(self, holder: _Holder) -> None:
        """Hand a connection to the first live waiter, or keep it idle."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(holder)
                return
        if self._closing:
            self._discard(holder, "pool_closed")
            return
        self._idle.append(holder)

    def _wake_one(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    def _discard(self, holder: _Holder, reason: str) -> None:
        """Close a connection in the background and free its slot for the next waiter."""
        self._size -= 1
        self._discarded += 1
        conn = holder.conn
        level = logging.INFO if reason in ("broken", "reset_failed", "ping_failed", "closed_by_server") \
            else logging.DEBUG
        log_event(level, "backend_connection_discarded", self.target, backend=self._address,
                  conn_id=conn._safe_conn_id(), reason=reason)
        task = asyncio.get_running_loop().create_task(conn.close())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)
        self._wake_one()

    def _in_use(self) -> int:
        return self._size - len(self._idle) - self._opening

    # --- background sweep ------------------------------------------------------------------------------------
    def _ensure_maintenance(self) -> None:
        if self._maintenance is None and not self._closing:
            self._maintenance = asyncio.get_running_loop().create_task(self._sweep_forever(),
                                                                      name=f"pool-sweep {self.target}")

    async def _sweep_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.config.maintenance_interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not stop the sweeping
                log_event(logging.ERROR, "backend_pool_sweep_failed", self.target, error=type(exc).__name__)

    async def sweep(self) -> None:
        """One maintenance pass: retire expired/idle/dead idle connections, then refill up to ``min_size``."""
        now = time.monotonic()
        keep: list[_Holder] = []
        idle_timeout = self.config.idle_timeout
        for holder in reversed(self._idle.copy()):  # most recently used first: those are the ones kept
            reason = self._expired(holder, now) or (None if holder.conn.is_alive() else "closed_by_server")
            if reason is None and idle_timeout and now - holder.idle_since > idle_timeout \
                    and len(keep) >= self.config.min_size:
                reason = "idle_timeout"
            if reason is not None:
                self._idle.remove(holder)
                self._discard(holder, reason)
            else:
                keep.append(holder)
        while self._size < self.config.min_size and not self._closing:
            if not await self._refill_one():
                break

    async def _refill_one(self) -> bool:
        if self._backoff.wait_time(time.monotonic()) > 0 or self._size >= self.config.max_size:
            return False
        try:
            holder = await self._open_new()
        except Exception:
            return False
        holder.idle_since = time.monotonic()
        self._put_idle(holder)
        return True

    def _describe_backend(self) -> str:
        backend: Any = self.backend
        if isinstance(backend, DSN):
            return f"{backend.engine} {backend.address}"
        if isinstance(backend, ShardConfig):
            return f"{backend.engine} {backend.host}:{backend.port}"
        return "backend"

    def __repr__(self) -> str:
        s = self.stats()
        return f"<Pool {self._label} size={s.size} idle={s.idle} in_use={s.in_use} waiters={s.waiters}>"
