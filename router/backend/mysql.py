"""The MySQL/MariaDB adapter over aiomysql (PyMySQL's protocol code).

We call the connection's ``query()`` and read its ``MySQLResult`` directly rather than through a ``Cursor``: a
cursor answers every warning with an extra ``SHOW WARNINGS`` round trip and Python ``warnings.warn`` calls. The
result object gives column definitions (type, flags, collation, length, decimals), rows converted by PyMySQL,
affected rows, the insert id, the warning count and the OK-packet info text. Errors carry the server's SQLSTATE
(PyMySQL ≥ 1.1 keeps it on the exception).

Streaming reads an unbuffered result row by row from the socket, so TCP flow control is the backpressure. The MySQL
protocol cannot stop a result midway: an early stop drains a short rest, or sends ``KILL QUERY`` from a side
connection (the server then ends the result with error 1317) and drains what was already in flight.

Two-phase commit is XA: a transaction that may be prepared must begin with its xid (``XA START``). MariaDB keeps
a prepared XA branch attached to the session that prepared it until that session ends; such a connection is never
reset (that would roll the branch back) but closed, which hands the branch to ``XA RECOVER`` / ``XA COMMIT``.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import aiomysql
import pymysql

from router.backend.adapter import AdapterBase, StreamBase
from router.backend.connection import BackendTarget, check_xid
from router.backend.errmap import Mapped, map_mysql_error
from router.backend.mysql_columns import mysql_columns
from router.backend.result import ExecResult, ResultSet, Row
from sharding import db
from sharding.db import DSN
from sharding.errors import BackendError, TransactionError

__all__ = ["MySQLConnection", "open_mysql"]

_IN_TRANS = 1  # SERVER_STATUS_IN_TRANS
_COM_RESET_CONNECTION = 0x1F
_ER_QUERY_INTERRUPTED = 1317


async def open_mysql(dsn: DSN, target: BackendTarget, *, timeout: float = 10.0) -> MySQLConnection:
    """Connect (through ``sharding.db``: TLS, utf8mb4, autocommit) and wrap. BackendUnavailableError on failure."""
    conn = await db.connect(dsn, timeout=timeout)
    return MySQLConnection(conn, target, dsn, await db.server_version(conn))


class MySQLConnection(AdapterBase):
    engine = "mysql"

    def __init__(self, conn: aiomysql.Connection, target: BackendTarget, dsn: DSN, server_version: str) -> None:
        super().__init__(target, dsn, server_version)
        self.raw = conn
        self._xa: tuple[str, str] | None = None  # (xid, "active" | "prepared") of the XA branch on this session
        self._kill_on_close = False  # a statement was interrupted: KILL the session on the server when closing

    # --- driver hooks --------------------------------------------------------------------------------------
    @property
    def conn_id(self) -> int:
        return int(self.raw.thread_id())

    @property
    def in_transaction(self) -> bool:
        if self.broken:
            return False
        return self._xa is not None or bool((self.raw.server_status or 0) & _IN_TRANS)

    @property
    def holds_prepared_xa(self) -> bool:
        """A prepared XA branch is attached: the pool must close (not reset) this connection."""
        return self._xa is not None and self._xa[1] == "prepared"

    def _alive(self) -> bool:
        writer, reader = self.raw._writer, self.raw._reader
        if writer is None or reader is None or writer.transport.is_closing():
            return False
        return reader.exception() is None and not getattr(reader, "_eof", False)

    def _map(self, exc: BaseException) -> Mapped:
        return map_mysql_error(exc, self.label, shard=self.target.shard_name, canceled=self._cancel_requested)

    def _interrupted(self) -> None:
        # aiomysql closes the socket when a read is cancelled (it cannot resynchronise mid-packet). The server goes
        # on with the statement until it next writes to the socket: the connection is killed when it is closed.
        self._broken = True
        self._kill_on_close = True

    async def _settle(self) -> None:
        if self._kill_on_close:
            self._kill_on_close = False
            await _kill(self.dsn, self._safe_conn_id())

    def terminate(self) -> None:
        if self._kill_on_close and not self._closed:
            self._kill_on_close = False
            with contextlib.suppress(RuntimeError):  # no running loop: nothing left to stop it with
                task = asyncio.get_running_loop().create_task(_kill(self.dsn, self._safe_conn_id()))
                _BACKGROUND.add(task)
                task.add_done_callback(_BACKGROUND.discard)
        super().terminate()

    def render(self, sql: str, params: Sequence[Any] | None) -> str:
        """``%s`` placeholders filled with server-side-safe literals (PyMySQL's escaping, as a Cursor does)."""
        if params is None:
            return sql
        return sql % tuple(self.raw.literal(p) for p in params)

    async def _run(self, sql: str, params: Sequence[Any] | None) -> ResultSet | ExecResult:
        raw = self.raw
        await raw.query(self.render(sql, params))
        first = raw._result
        while raw._result is not None and raw._result.has_next:  # CALL: later results are status only
            await raw.next_result()
        if not first.field_count:
            return ExecResult(rows_affected=int(first.affected_rows or 0), last_insert_id=int(first.insert_id or 0),
                              warnings=int(first.warning_count or 0), status=ok_info(first.message))
        return ResultSet(columns=mysql_columns(first.fields), rows=list(first.rows or ()),
                         warnings=int(first.warning_count or 0))

    async def _send_cancel(self) -> None:
        side = await db.connect(self.dsn, timeout=3.0)
        try:
            await db.execute(side, f"KILL QUERY {self.conn_id}")
        finally:
            await db.close(side)

    async def _ping(self) -> None:
        await self.raw.ping(reconnect=False)

    async def _query(self, sql: str) -> None:
        await self.raw.query(sql)

    async def _reset_session(self) -> bool:
        raw = self.raw
        if self._xa is not None:
            xid, state = self._xa
            if state == "prepared":
                return False  # closing detaches the branch for recovery; resetting would roll it back
            await self._query(f"XA END '{xid}'")
            await self._query(f"XA ROLLBACK '{xid}'")
            self._xa = None
        if (raw.server_status or 0) & _IN_TRANS:
            await self._query("ROLLBACK")
        if self._dirty:
            # COM_RESET_CONNECTION: session variables, temp tables, user variables, locks, prepared statements.
            await raw._execute_command(_COM_RESET_CONNECTION, b"")
            await raw._read_ok_packet()
            await self._query("SET NAMES utf8mb4, autocommit = 1")  # variables went back to the global values
            if self.dsn.database:
                await raw.select_db(self.dsn.database)
        return not (raw.server_status or 0) & _IN_TRANS

    async def _close(self) -> None:
        await self.raw.ensure_closed()

    def _abort(self) -> None:
        self.raw.close()

    # --- streaming -------------------------------------------------------------------------------------------
    def stream(self, sql: str, params: Sequence[Any] | None = None, *, batch_rows: int = 1000,
               timeout: float | None = None) -> MySQLStream:
        return MySQLStream(self, sql, params, batch_rows, timeout)

    # --- transactions --------------------------------------------------------------------------------------
    async def begin(self, xid: str | None = None) -> None:
        if xid is None:
            await self.execute("BEGIN")
            return
        await self.execute(f"XA START '{check_xid(xid)}'")
        self._xa = (xid, "active")

    async def commit(self) -> None:
        if self._xa is None:
            await self.execute("COMMIT")
            return
        xid, state = self._xa
        try:
            if state == "active":
                await self.execute(f"XA END '{xid}'")
                await self.execute(f"XA COMMIT '{xid}' ONE PHASE")
            else:
                await self.execute(f"XA COMMIT '{xid}'")
        finally:
            self._forget_xa_if_gone()

    async def rollback(self) -> None:
        if self._xa is None:
            await self.execute("ROLLBACK")
            return
        xid, state = self._xa
        try:
            if state == "active":
                try:
                    await self.execute(f"XA END '{xid}'")
                except BackendError:
                    pass  # already ended, or rolled back by the server (deadlock): XA ROLLBACK still finishes it
            await self.execute(f"XA ROLLBACK '{xid}'")
        finally:
            self._forget_xa_if_gone()

    async def prepare_transaction(self, xid: str) -> None:
        check_xid(xid)
        if self._xa != (xid, "active"):
            raise TransactionError(f"{self.label}: XA transaction {xid!r} is not open here: on MySQL a transaction "
                                   "to be prepared must begin with begin(xid=...)")
        try:
            await self.execute(f"XA END '{xid}'")
            await self.execute(f"XA PREPARE '{xid}'")
            self._xa = (xid, "prepared")
        finally:
            self._forget_xa_if_gone()

    async def commit_prepared(self, xid: str) -> None:
        await self.execute(f"XA COMMIT '{check_xid(xid)}'")
        if self._xa is not None and self._xa[0] == xid:
            self._xa = None

    async def rollback_prepared(self, xid: str) -> None:
        await self.execute(f"XA ROLLBACK '{check_xid(xid)}'")
        if self._xa is not None and self._xa[0] == xid:
            self._xa = None

    async def recover_prepared(self) -> list[str]:
        result = await self.execute("XA RECOVER")
        assert isinstance(result, ResultSet)
        xids = []
        for _format_id, gtrid_length, _bqual_length, data in result.rows:
            raw = data if isinstance(data, bytes) else str(data).encode()
            xids.append(raw[:int(gtrid_length)].decode("utf-8", "replace"))
        return xids

    def _forget_xa_if_gone(self) -> None:
        """After an XA statement: when the server no longer has a transaction on this session, neither do we."""
        if self.broken or not (self.raw.server_status or 0) & _IN_TRANS:
            self._xa = None


_BACKGROUND: set[asyncio.Task[None]] = set()


async def _kill(dsn: DSN, thread_id: int | None) -> None:
    """``KILL`` a server session from a side connection (bounded, never raises): its statement stops even if it
    had not started when its client went away."""
    if not thread_id:
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5.0):
            side = await db.connect(dsn, timeout=3.0)
            try:
                await db.execute(side, f"KILL {int(thread_id)}")
            except pymysql.err.MySQLError:
                pass  # already gone
            finally:
                await db.close(side)


def ok_info(message: bytes | str | None) -> str:
    """The info text of an OK packet (``Rows matched: 1  Changed: 1  Warnings: 0``).

    Servers send it as a length-encoded string (``net_store_data``); PyMySQL hands over the raw rest of the packet.
    """
    if not message:
        return ""
    if isinstance(message, str):
        return message
    n, start = message[0], 1
    if n == 0xFC and len(message) >= 3:
        n, start = int.from_bytes(message[1:3], "little"), 3
    elif n == 0xFD and len(message) >= 4:
        n, start = int.from_bytes(message[1:4], "little"), 4
    elif n >= 0xFB:
        return ""
    return message[start:start + n].decode("utf-8", "replace")


class MySQLStream(StreamBase):
    """An unbuffered result read ``batch_rows`` rows at a time."""

    _conn: MySQLConnection
    drain_rows = 2000  # an early stop reads at most this many pending rows before killing the query

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._result: Any = None

    async def _open(self) -> None:
        raw = self._conn.raw
        await raw.query(self._conn.render(self._sql, self._params), unbuffered=True)
        self._result = raw._result
        if self._result.unbuffered_active:
            self.columns = mysql_columns(self._result.fields)

    async def _fetch(self, n: int) -> list[Row]:
        result = self._result
        read = result._read_rowdata_packet_unbuffered
        rows: list[Row] = []
        append = rows.append
        for _ in range(n):
            row = await read()
            if row is None:
                break
            append(row)
        return rows

    async def _stop(self, early: bool) -> None:
        result, self._result = self._result, None
        if result is None or not result.unbuffered_active:
            return
        read = result._read_rowdata_packet_unbuffered
        for _ in range(self.drain_rows):
            if await read() is None:
                return
        conn = self._conn
        await conn._cancel_now()
        try:
            await result._finish_unbuffered_query()
        except pymysql.err.OperationalError as exc:
            if not exc.args or exc.args[0] != _ER_QUERY_INTERRUPTED:
                raise
