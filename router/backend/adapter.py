"""What both engine adapters share: the busy guard, error mapping, timeouts by server-side cancel, the reset and
close rules, and the streaming frame. The engine modules fill in the driver calls.

A connection is used by one task at a time; a second call while a statement or stream runs is a bug and raises
``InternalError`` rather than interleaving two statements on one session (asyncpg's ``_stmt_exclusive_section``
habit). Once ``broken`` every call raises ``BackendUnavailableError``: the pool closes such connections.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

from router.backend.connection import BackendTarget
from router.backend.errmap import Mapped, unavailable
from router.backend.log import log_event
from router.backend.result import Column, ExecResult, ResultSet, Row
from router.backend.settings import UNKNOWN, settings_sql
from router.backend.sqlkind import changes_session
from sharding.db import DSN
from sharding.errors import InternalError, QueryCanceledError, QueryTimeoutError, ShardgateError

__all__ = ["AdapterBase", "StreamBase"]


class AdapterBase:
    """Shared state and rules; subclasses implement the ``_…`` driver hooks."""

    engine: ClassVar[str]
    cancel_grace: ClassVar[float] = 2.0  # after a cancel, how long a statement may take to stop before we give up

    def __init__(self, target: BackendTarget, dsn: DSN, server_version: str) -> None:
        self.target = target
        self.dsn = dsn
        self._server_version = server_version
        self.label = f"{target} ({dsn.engine} {dsn.address})"
        self.created_at = self.last_used = time.monotonic()
        self._queries = 0
        self._busy = False
        self._broken = False
        self._closed = False
        self._dirty = False
        self._cancel_requested = False
        self._timing_out = False
        self._stream: StreamBase | None = None
        # Session settings replayed for the session that borrows this connection (transaction pooling): name ->
        # the value text now in effect. ``UNKNOWN`` when a failed or rolled-back change left it uncertain.
        self.applied: dict[str, str] = {}
        self._settings_in_tx = False  # PostgreSQL: a SET inside a transaction is undone by its rollback

    # --- driver hooks --------------------------------------------------------------------------------------
    async def _run(self, sql: str, params: Sequence[Any] | None) -> ResultSet | ExecResult:
        raise NotImplementedError

    def _map(self, exc: BaseException) -> Mapped:
        raise NotImplementedError

    async def _send_cancel(self) -> None:
        raise NotImplementedError

    async def _reset_session(self) -> bool:
        raise NotImplementedError

    async def _ping(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError

    async def _settle(self) -> None:
        """Before closing: let the driver finish what it still sends on the session's behalf (a cancel)."""

    def _alive(self) -> bool:
        raise NotImplementedError

    @property
    def conn_id(self) -> int:
        raise NotImplementedError

    # --- the engine-specific half of BackendConnection -----------------------------------------------------
    def stream(self, sql: str, params: Sequence[Any] | None = None, *, batch_rows: int = 1000,
               timeout: float | None = None) -> StreamBase:
        raise NotImplementedError

    async def begin(self, xid: str | None = None) -> None:
        raise NotImplementedError

    async def commit(self) -> None:
        raise NotImplementedError

    async def rollback(self) -> None:
        raise NotImplementedError

    async def prepare_transaction(self, xid: str) -> None:
        raise NotImplementedError

    async def commit_prepared(self, xid: str) -> None:
        raise NotImplementedError

    async def rollback_prepared(self, xid: str) -> None:
        raise NotImplementedError

    async def recover_prepared(self) -> list[str]:
        raise NotImplementedError

    # --- state ---------------------------------------------------------------------------------------------
    @property
    def server_version(self) -> str:
        return self._server_version

    @property
    def broken(self) -> bool:
        return self._broken or self._closed

    @property
    def needs_reset(self) -> bool:
        return self._dirty or self._stream is not None

    @property
    def queries(self) -> int:
        return self._queries

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def running(self) -> bool:
        """A statement or a stream's batch is in flight (as opposed to a stream left open between batches)."""
        stream = self._stream
        return self._busy and (stream is None or stream.in_flight)

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    def mark_dirty(self) -> None:
        self._dirty = True

    def settings_differ(self, desired: Mapping[str, str]) -> bool:
        return self.applied != desired

    async def sync_settings(self, desired: Mapping[str, str], timeout: float = 5.0) -> bool:
        """Make the session settings in effect exactly ``desired`` (name -> value text), in one round trip and
        only when they differ (PgDog's parameter sync). Names no longer wanted go back to their defaults.
        Returns whether a statement was sent. On failure every name involved becomes ``UNKNOWN`` (the next sync
        sets or resets it again) and the error propagates (an invalid value is the client's error)."""
        applied = self.applied
        if applied == desired:
            return False
        changes: dict[str, str | None] = {k: v for k, v in desired.items() if applied.get(k) != v}
        for name in applied:
            if name not in desired:
                changes[name] = None
        sql = settings_sql(self.engine, changes)
        self._enter()
        try:
            if timeout:
                await self._bounded(self._run(sql, None), timeout)
            else:
                await self._run(sql, None)
        except asyncio.CancelledError:
            self._interrupted()
            self._forget(changes)
            raise
        except Exception as exc:
            self._forget(changes)
            raise self._fail(exc) from exc
        finally:
            self._leave()
        if self.engine == "postgres" and self.in_transaction:
            self._settings_in_tx = True
        self.applied = dict(desired)
        return True

    def _forget(self, names: Mapping[str, Any]) -> None:
        for name in names:
            self.applied[name] = UNKNOWN

    def _settings_rolled_back(self) -> None:
        """A transaction that changed settings ended without committing them (PostgreSQL): they are uncertain."""
        if self._settings_in_tx:
            self._settings_in_tx = False
            self._forget(dict(self.applied))

    def is_alive(self) -> bool:
        return not self.broken and self._alive()

    # --- the guarded call frame ------------------------------------------------------------------------------
    def _enter(self) -> None:
        if self._closed:
            raise unavailable(self.label, "connection is closed")
        if self._broken:
            raise unavailable(self.label, "connection is broken")
        if self._busy:
            raise InternalError(f"{self.label}: connection is busy (another statement or stream is running)")
        self._busy = True
        self._cancel_requested = self._timing_out = False
        self._queries += 1

    def _leave(self) -> None:
        self._busy = False
        self.last_used = time.monotonic()

    def _fail(self, exc: BaseException) -> ShardgateError:
        """The shardgate error for a driver exception; marks the connection broken when its state is lost."""
        if isinstance(exc, ShardgateError):
            return exc
        mapped = self._map(exc)
        if mapped.broken:
            self._broken = True
            log_event(logging.WARNING, "backend_connection_lost", self.target, backend=self.dsn.address,
                      conn_id=self._safe_conn_id(), error=type(exc).__name__)
        error = mapped.error
        if self._timing_out and isinstance(error, QueryCanceledError):
            error = QueryTimeoutError(f"{self.label}: statement timed out and was canceled")
        return error

    def _interrupted(self) -> None:
        """The caller's task was cancelled mid-statement: the driver may hold a half-read reply."""
        self._dirty = True

    async def execute(self, sql: str, params: Sequence[Any] | None = None, *,
                      timeout: float | None = None) -> ResultSet | ExecResult:
        self._enter()
        try:
            if changes_session(sql):
                self._dirty = True
            if timeout is None:
                return await self._run(sql, params)
            return await self._bounded(self._run(sql, params), timeout)
        except asyncio.CancelledError:
            self._interrupted()
            raise
        except Exception as exc:
            raise self._fail(exc) from exc
        finally:
            self._leave()

    async def _bounded(self, work: Awaitable[Any], timeout: float) -> Any:
        """Run ``work`` for at most ``timeout`` s; then cancel it *on the server* and wait a little for it to stop,
        so the session stays usable (cancelling the task alone would leave the server running the statement)."""
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait((task,), timeout=timeout)
            if not done:
                self._timing_out = True
                await self._cancel_now()
                done, _ = await asyncio.wait((task,), timeout=self.cancel_grace)
            if not done:
                self._broken = True
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                raise QueryTimeoutError(f"{self.label}: statement timed out after {timeout:g} s and did not stop")
        except asyncio.CancelledError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise
        return task.result()

    # --- cancel, ping, reset, close -----------------------------------------------------------------------------
    async def cancel(self) -> bool:
        if not self._busy or self.broken:
            return False
        return await self._cancel_now()

    async def _cancel_now(self) -> bool:
        self._cancel_requested = True
        self._dirty = True  # the statement stopped mid-reply (or just finished): reset before the next borrower
        try:
            async with asyncio.timeout(self.cancel_grace + 3.0):
                await self._send_cancel()
        except Exception as exc:
            log_event(logging.WARNING, "backend_cancel_failed", self.target, backend=self.dsn.address,
                      conn_id=self._safe_conn_id(), error=type(exc).__name__)
            return False
        log_event(logging.INFO, "backend_cancel_sent", self.target, backend=self.dsn.address,
                  conn_id=self._safe_conn_id())
        return True

    async def ping(self, timeout: float = 2.0) -> bool:
        if self.broken or self._busy:
            return False
        self._busy = True
        try:
            async with asyncio.timeout(timeout):
                await self._ping()
            return True
        except asyncio.CancelledError:
            self._broken = True
            raise
        except Exception:
            self._broken = True
            return False
        finally:
            self._leave()

    async def reset(self, timeout: float = 5.0) -> bool:
        """Roll back and clear session state; False means the pool must discard the connection."""
        if self.broken:
            return False
        was_dirty = self._dirty
        try:
            async with asyncio.timeout(timeout):
                if self._stream is not None:
                    await self._stream.aclose()
                if self.broken or self._busy:
                    return False
                self._busy = True
                try:
                    ok = await self._reset_session()
                finally:
                    self._leave()
        except asyncio.CancelledError:
            self._broken = True
            raise
        except Exception as exc:
            self._broken = True
            log_event(logging.INFO, "backend_reset_failed", self.target, backend=self.dsn.address,
                      conn_id=self._safe_conn_id(), error=type(exc).__name__)
            return False
        if ok:
            if was_dirty or self._dirty:
                self._settings_in_tx = False
                self.applied = {}  # the full reset put every setting back to its default
            else:
                self._settings_rolled_back()  # only a rollback ran
            self._dirty = False
        return ok

    async def close(self) -> None:
        """Polite goodbye (Terminate / COM_QUIT), bounded; aborts the socket when that fails. Never raises."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self._settle()
        if self._broken:
            self._abort()
            return
        try:
            async with asyncio.timeout(2.0):
                await self._close()
        except BaseException:
            self._abort()

    def terminate(self) -> None:
        self._closed = True
        self._abort()

    def _safe_conn_id(self) -> int | None:
        try:
            return self.conn_id
        except Exception:
            return None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "broken" if self._broken else "busy" if self._busy else "idle"
        return f"<{type(self).__name__} {self.label} {state}>"


class StreamBase:
    """The frame of a streamed result; engines implement ``_open``, ``_fetch`` and ``_stop``.

    ``_open`` sends the statement and sets ``columns``; ``_fetch(n)`` returns up to n rows (fewer only at the end);
    ``_stop(early)`` leaves the session clean: after the last row, or, when ``early``, with rows still pending.
    ``timeout`` bounds the whole stream (what remains of the statement's deadline), not each batch.
    """

    def __init__(self, conn: AdapterBase, sql: str, params: Sequence[Any] | None, batch_rows: int,
                 timeout: float | None) -> None:
        if batch_rows <= 0:
            raise ValueError("batch_rows must be positive")
        self._conn = conn
        self._sql = sql
        self._params = params
        self.batch_rows = batch_rows
        self._timeout = timeout
        self._deadline: float | None = None  # the timeout covers the whole stream, from start() on
        self.in_flight = False  # a round trip of this stream is running (the connection must not be reset now)
        self.columns: tuple[Column, ...] = ()
        self.rows_read = 0
        self._state = "new"  # new -> open -> done | closed

    async def _open(self) -> None:
        raise NotImplementedError

    async def _fetch(self, n: int) -> list[Row]:
        raise NotImplementedError

    async def _stop(self, early: bool) -> None:
        raise NotImplementedError

    async def start(self) -> StreamBase:
        if self._state != "new":
            return self
        conn = self._conn
        conn._enter()
        conn._stream = self
        self._state = "open"
        if self._timeout is not None:
            self._deadline = time.monotonic() + self._timeout
        try:
            if changes_session(self._sql):
                conn._dirty = True
            await self._call(self._open)
        except BaseException:
            await self._end(early=False, failed=True)
            raise
        return self

    async def __aenter__(self) -> StreamBase:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> StreamBase:
        return self

    async def __anext__(self) -> list[Row]:
        if self._state == "new":
            await self.start()
        if self._state != "open":
            raise StopAsyncIteration
        try:
            rows = await self._call(lambda: self._fetch(self.batch_rows))
        except BaseException:
            await self._end(early=False, failed=True)
            raise
        self.rows_read += len(rows)
        if len(rows) < self.batch_rows:
            await self._end(early=False, failed=False)
        if not rows:
            raise StopAsyncIteration
        return rows

    async def aclose(self) -> None:
        """Stop reading. Rows still pending are discarded on the server's side; idempotent."""
        if self._state == "open":
            await self._end(early=True, failed=False)
        self._state = "closed" if self._state != "done" else "done"

    async def _call(self, work: Callable[[], Awaitable[Any]]) -> Any:
        conn = self._conn
        self.in_flight = True
        try:
            if self._deadline is None:
                return await work()
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise QueryTimeoutError(f"{conn.label}: statement timed out after {self._timeout:g} s")
            return await conn._bounded(work(), remaining)
        except asyncio.CancelledError:
            conn._interrupted()
            raise
        except Exception as exc:
            raise conn._fail(exc) from exc
        finally:
            self.in_flight = False

    async def _end(self, *, early: bool, failed: bool) -> None:
        conn = self._conn
        self._state = "done" if not early else "closed"
        try:
            if not conn.broken:
                await self._stop(early or failed)
        except asyncio.CancelledError:
            conn._broken = True
            raise
        except Exception as exc:
            conn._fail(exc)
            conn._broken = True  # a stream we could not stop leaves the session in an unknown state
        finally:
            conn._stream = None
            conn._leave()
