"""The PostgreSQL adapter over asyncpg.

Round trips per statement, the reason for the paths below:

- no rows possible (DML without RETURNING, DDL, transaction control): simple query protocol, one round trip;
- rows, with ``params``: asyncpg's statement cache, one round trip once the text has been seen;
- rows, literal SQL: an unnamed statement (prepare + execute, two round trips), kept out of the cache, since a text
  with rendered literals rarely repeats and cached entries would only be evicted (one more round trip each).

asyncpg has no public call that returns rows *and* their column types *and* the command tag; we use the same
internals its own ``Connection._execute`` uses (``_get_statement``, ``_protocol.bind_execute``, the
``_stmt_exclusive_section`` guard). ``tests/unit/backend/test_asyncpg_compat.py`` fails when an upgrade moves them.
Cancel sends PostgreSQL's CancelRequest through asyncpg's own helper (TLS included).
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg

from router.backend.adapter import AdapterBase, StreamBase
from router.backend.connection import BackendTarget, check_xid
from router.backend.errmap import Mapped, map_pg_error
from router.backend.pg_columns import pg_columns
from router.backend.result import ExecResult, Notice, ResultSet, Row, rows_from_status
from router.backend.sqlkind import pg_no_rows
from sharding import db
from sharding.db import DSN
from sharding.errors import TransactionError

__all__ = ["PostgresConnection", "open_postgres"]


async def open_postgres(dsn: DSN, target: BackendTarget, *, timeout: float = 10.0) -> PostgresConnection:
    """Connect (through ``sharding.db``: TLS, application_name) and wrap. BackendUnavailableError on failure."""
    conn = await db.connect(dsn, timeout=timeout)
    return PostgresConnection(conn, target, dsn, await db.server_version(conn))


class PostgresConnection(AdapterBase):
    engine = "postgres"

    def __init__(self, conn: asyncpg.Connection, target: BackendTarget, dsn: DSN, server_version: str) -> None:
        super().__init__(target, dsn, server_version)
        self.raw = conn
        self._notices: list[Notice] = []
        self._was_interrupted = False  # a statement's task was cancelled mid-reply (see _until_idle)
        conn.add_log_listener(self._on_notice)

    # --- driver hooks --------------------------------------------------------------------------------------
    @property
    def conn_id(self) -> int:
        return int(self.raw.get_server_pid())

    @property
    def in_transaction(self) -> bool:
        return not self.broken and self.raw.is_in_transaction()

    def _alive(self) -> bool:
        return not self.raw.is_closed()

    def _map(self, exc: BaseException) -> Mapped:
        return map_pg_error(exc, self.label, shard=self.target.shard_name, canceled=self._cancel_requested)

    def _on_notice(self, _conn: Any, message: Any) -> None:
        self._notices.append(Notice(severity=str(getattr(message, "severity", "NOTICE")),
                                    sqlstate=str(getattr(message, "sqlstate", "00000")),
                                    message=str(getattr(message, "message", message))))

    def _take_notices(self) -> tuple[Notice, ...]:
        if not self._notices:
            return ()
        notices, self._notices = tuple(self._notices), []
        return notices

    async def _run(self, sql: str, params: Sequence[Any] | None) -> ResultSet | ExecResult:
        self._notices.clear()
        if params is None and pg_no_rows(sql):
            status = await self.raw.execute(sql)
            return self._exec_result(status)
        records, status, attributes = await _fetch(self.raw, sql, tuple(params or ()), use_cache=params is not None)
        if not attributes:
            return self._exec_result(status)
        notices = self._take_notices()
        return ResultSet(columns=pg_columns(attributes), rows=[tuple(r) for r in records], status=status,
                         warnings=sum(n.severity == "WARNING" for n in notices), notices=notices)

    def _exec_result(self, status: str) -> ExecResult:
        notices = self._take_notices()
        return ExecResult(rows_affected=rows_from_status(status), last_insert_id=None,
                          warnings=sum(n.severity == "WARNING" for n in notices), status=status, notices=notices)

    async def _send_cancel(self) -> None:
        await _cancel_request(self._cancel_args())

    def _cancel_args(self) -> dict[str, Any]:
        raw = self.raw
        protocol = raw._protocol
        return dict(loop=raw._loop, addr=raw._addr, params=raw._params, backend_pid=protocol.backend_pid,
                    backend_secret=protocol.backend_secret)

    def _interrupted(self) -> None:
        super()._interrupted()
        self._was_interrupted = True

    async def _until_idle(self) -> None:
        """After an interrupted statement: asyncpg sent a cancel, but one that reached the server before the
        statement started is lost and the statement runs to its end. Cancel again until the session answers."""
        for _ in range(40):
            try:
                await self.raw.execute("SELECT 1")
                self._was_interrupted = False
                return
            except asyncpg.InterfaceError:  # "another operation is in progress": the statement still runs
                with contextlib.suppress(Exception):
                    await self._send_cancel()
                await asyncio.sleep(0.1)
        raise TimeoutError("the interrupted statement did not stop")

    def terminate(self) -> None:
        if self._was_interrupted and not self._closed:
            # Closing the socket does not stop a statement the server is running: ask it to stop, once more.
            with contextlib.suppress(Exception):
                task = asyncio.get_running_loop().create_task(_cancel_until_gone(self._cancel_args()))
                _BACKGROUND.add(task)
                task.add_done_callback(_BACKGROUND.discard)
        super().terminate()

    async def _ping(self) -> None:
        await self.raw.execute("SELECT 1")

    async def _settle(self) -> None:
        # A statement whose task was cancelled (its client left) is stopped on the server by a cancel request
        # asyncpg sends from a task of its own; closing the connection first would drop that request and leave
        # the statement running to its end.
        pending = [t for t in getattr(self.raw, "_cancellations", ()) if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.cancel_grace + 3.0)
        if self._was_interrupted and self._closed and not self.raw.is_closed():
            with contextlib.suppress(Exception):  # about to be closed: one more cancel, in case the first was early
                await asyncio.wait_for(self._send_cancel(), 3.0)

    async def _reset_session(self) -> bool:
        raw = self.raw
        await self._settle()
        if self._was_interrupted:
            await self._until_idle()
        if raw.is_in_transaction():
            await raw.execute("ROLLBACK")
        if self._dirty:
            # asyncpg's reset query (advisory locks, cursors, LISTEN, settings) plus temp objects. Not DISCARD ALL:
            # it would also drop the prepared statements asyncpg's cache still points at.
            await raw.execute((raw.get_reset_query() or "") + "\nDISCARD TEMP;\nDISCARD SEQUENCES;")
        return not raw.is_in_transaction()

    async def _close(self) -> None:
        await self.raw.close(timeout=2.0)

    def _abort(self) -> None:
        self.raw.terminate()

    # --- streaming -------------------------------------------------------------------------------------------
    def stream(self, sql: str, params: Sequence[Any] | None = None, *, batch_rows: int = 1000,
               timeout: float | None = None) -> PostgresStream:
        return PostgresStream(self, sql, params, batch_rows, timeout)

    # --- transactions --------------------------------------------------------------------------------------
    async def begin(self, xid: str | None = None) -> None:
        if xid is not None:
            check_xid(xid)
        await self.execute("BEGIN")

    async def commit(self) -> None:
        try:
            result = await self.execute("COMMIT")
        except BaseException:
            self._settings_rolled_back()
            raise
        if getattr(result, "status", "") == "ROLLBACK":  # COMMIT of a failed transaction rolls it back
            self._settings_rolled_back()
        self._settings_in_tx = False

    async def rollback(self) -> None:
        try:
            await self.execute("ROLLBACK")
        finally:
            self._settings_rolled_back()

    async def prepare_transaction(self, xid: str) -> None:
        check_xid(xid)
        if not self.in_transaction:
            raise TransactionError(f"{self.label}: PREPARE TRANSACTION {xid!r} without an open transaction")
        await self.execute(f"PREPARE TRANSACTION '{xid}'")

    async def commit_prepared(self, xid: str) -> None:
        await self.execute(f"COMMIT PREPARED '{check_xid(xid)}'")

    async def rollback_prepared(self, xid: str) -> None:
        await self.execute(f"ROLLBACK PREPARED '{check_xid(xid)}'")

    async def recover_prepared(self) -> list[str]:
        result = await self.execute("SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
                                    "ORDER BY prepared, gid")
        assert isinstance(result, ResultSet)
        return [str(row[0]) for row in result.rows]


_BACKGROUND: set[asyncio.Task[None]] = set()


async def _cancel_request(args: dict[str, Any]) -> None:
    from asyncpg import connect_utils

    await connect_utils._cancel(**args)


CANCEL_RETRIES = (0.0, 0.3, 1.0, 3.0)  # a cancel that reaches the server before the statement starts is lost


async def _cancel_until_gone(args: dict[str, Any]) -> None:
    """Cancel requests for a session whose socket is already closed (nothing tells us when its statement ends):
    a few, spread out. A request for a session that has ended is ignored by the server (the key is per session)."""
    for delay in CANCEL_RETRIES:
        await asyncio.sleep(delay)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(_cancel_request(args), 3.0)


async def _fetch(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...], *, use_cache: bool
                 ) -> tuple[list[Any], str, tuple[Any, ...]]:
    """Rows, command tag and column attributes of one statement (asyncpg ``Connection.__execute``, unrolled)."""
    conn._check_open()
    with conn._stmt_exclusive_section:
        for attempt in (1, 2):
            stmt = await conn._get_statement(sql, None, use_cache=use_cache)
            try:
                records, status, _ = await conn._protocol.bind_execute(
                    state=stmt, args=args, portal_name="", limit=0, return_extra=True, timeout=None)
            except asyncpg.exceptions.OutdatedSchemaCacheError:
                await conn.reload_schema_state()
                raise
            except asyncpg.exceptions.InvalidCachedStatementError:
                # The cached plan's result type changed (ALTER TABLE): asyncpg retries once outside a transaction.
                conn._drop_global_statement_cache()
                if attempt == 2 or conn.is_in_transaction():
                    raise
                continue
            return records, status.decode(), stmt._get_attributes()
    raise AssertionError("unreachable")


class PostgresStream(StreamBase):
    """A portal read ``batch_rows`` at a time (asyncpg cursor). Portals live in a transaction: outside one, the
    stream opens its own and ends it when the stream stops (COMMIT, so ``INSERT … RETURNING`` keeps its rows)."""

    _conn: PostgresConnection

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._own_tx = False
        self._cursor: Any = None

    async def _open(self) -> None:
        raw = self._conn.raw
        if not raw.is_in_transaction():
            await raw.execute("BEGIN")
            self._own_tx = True
        stmt = await raw.prepare(self._sql)
        self.columns = pg_columns(stmt.get_attributes())
        self._cursor = await stmt.cursor(*(self._params or ()))

    async def _fetch(self, n: int) -> list[Row]:
        return [tuple(r) for r in await self._cursor.fetch(n)]

    async def _stop(self, early: bool) -> None:
        raw = self._conn.raw
        if self._own_tx:
            self._own_tx = False
            # A failed statement left the transaction aborted: COMMIT would answer ROLLBACK anyway.
            await raw.execute("COMMIT")
        elif self._cursor is not None and raw.is_in_transaction():
            try:
                await self._cursor._close_portal(None)  # the caller's transaction goes on without our portal
            except asyncpg.PostgresError:
                pass  # the transaction is aborted: its end drops the portal
        self._cursor = None
