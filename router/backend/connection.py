"""The seam between the engine and the shards: one ``BackendConnection`` is one session on one backend server.

The engine sees only this protocol; ``router.backend.postgres`` (asyncpg) and ``router.backend.mysql`` (aiomysql)
implement it, and the pool hands them out. SQL arrives as text with literals already rendered by the planner;
``params`` is optional (placeholders ``$1`` on PostgreSQL, ``%s`` on MySQL) and lets a repeated statement text
reuse the driver's prepared statement (PostgreSQL: one round trip instead of two).

Every failure is a ``ShardgateError``: server errors are ``BackendError`` with the server's codes and the shard
name; a lost connection is ``BackendUnavailableError`` (the connection is then ``broken`` and the pool discards
it); ``cancel()`` makes the running statement fail with ``QueryCanceledError``; a ``timeout`` expiring cancels the
statement on the server and raises ``QueryTimeoutError``.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from router.backend.result import Column, ExecResult, ResultSet, Row
from sharding.errors import InvalidValueError

__all__ = ["BackendConnection", "BackendTarget", "RowStream", "check_xid"]


@dataclass(frozen=True, slots=True)
class BackendTarget:
    """Which backend a connection or pool serves: keyspace, shard and role (``primary``, ``replica``)."""

    keyspace: str
    shard: str
    role: str = "primary"

    @property
    def shard_name(self) -> str:
        """``customer/-80``: what ``BackendError.shard`` carries."""
        return f"{self.keyspace}/{self.shard}"

    def __str__(self) -> str:
        return f"{self.keyspace}/{self.shard}/{self.role}"


@runtime_checkable
class RowStream(Protocol):
    """A result read in batches as the consumer asks for them (a server-side cursor / unbuffered result).

    ``async with conn.stream(sql, batch_rows=1000) as rows:`` sends the statement and reads the columns;
    ``async for batch in rows:`` yields non-empty ``list[Row]`` batches. Leaving the block early stops the
    statement on the server (PostgreSQL closes the portal; MySQL drains a short rest or kills the query) so the
    connection is clean again; if that fails the connection is marked broken and the pool discards it.
    """

    columns: tuple[Column, ...]
    rows_read: int

    async def __aenter__(self) -> RowStream: ...

    async def __aexit__(self, *exc: object) -> None: ...

    def __aiter__(self) -> AsyncIterator[list[Row]]: ...

    async def __anext__(self) -> list[Row]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BackendConnection(Protocol):
    """One session on one backend. Not safe for two tasks at once (a second concurrent call raises)."""

    engine: str  # "postgres" | "mysql"
    target: BackendTarget

    @property
    def server_version(self) -> str: ...

    @property
    def in_transaction(self) -> bool:
        """A transaction (or MySQL XA branch) is open on the server."""

    @property
    def broken(self) -> bool:
        """The protocol state is lost (connection dropped, interrupted mid-read): close, never reuse."""

    @property
    def needs_reset(self) -> bool:
        """Session state may differ from a fresh connection (SET, temp tables, a cancelled or abandoned read)."""

    @property
    def queries(self) -> int:
        """Statements run on this connection (the pool recycles after ``max_queries``)."""

    @property
    def conn_id(self) -> int:
        """The server's id of this session: PostgreSQL backend pid, MySQL thread id (logs, KILL)."""

    async def execute(self, sql: str, params: Sequence[Any] | None = None, *,
                      timeout: float | None = None) -> ResultSet | ExecResult: ...

    def stream(self, sql: str, params: Sequence[Any] | None = None, *, batch_rows: int = 1000,
               timeout: float | None = None) -> RowStream: ...

    async def begin(self, xid: str | None = None) -> None:
        """Open a transaction. ``xid`` names a transaction that may be prepared later (two-phase commit):
        MySQL must know it at the start (``XA START``); PostgreSQL only checks it."""

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    async def prepare_transaction(self, xid: str) -> None:
        """Phase one: PostgreSQL ``PREPARE TRANSACTION``; MySQL ``XA END`` + ``XA PREPARE`` (begun with the xid)."""

    async def commit_prepared(self, xid: str) -> None: ...

    async def rollback_prepared(self, xid: str) -> None: ...

    async def recover_prepared(self) -> list[str]:
        """Xids prepared and not yet finished (PostgreSQL: in this database; MySQL: on the server)."""

    async def cancel(self) -> bool:
        """Ask the server to stop the running statement; False when nothing was running. Never raises."""

    async def ping(self, timeout: float = 2.0) -> bool:
        """One round trip; False (and ``broken``) when the server does not answer."""

    def is_alive(self) -> bool:
        """Cheap local check, no I/O: False once the socket is known closed."""

    def mark_dirty(self) -> None:
        """Tell the connection its session state changed in a way it cannot see (e.g. ``set_config()``)."""

    async def reset(self) -> bool:
        """Make the session like a fresh one (roll back, drop session state). False: discard the connection."""

    async def close(self) -> None: ...

    def terminate(self) -> None: ...


_XID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


def check_xid(xid: str) -> str:
    """A transaction id safe to quote in both dialects: 1-64 of ``A-Z a-z 0-9 _ . : -``."""
    if not isinstance(xid, str) or not _XID.fullmatch(xid):
        raise InvalidValueError(f"invalid transaction id {xid!r}: use 1-64 characters from A-Z a-z 0-9 _ . : -")
    return xid
