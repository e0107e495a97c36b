"""Prepared statements: COM_STMT_PREPARE / EXECUTE / FETCH / RESET (CLOSE and SEND_LONG_DATA are the protocol's).

A statement is its text and parameter count here, and each execution runs the text with the decoded parameters
through the gateway session (so statements survive whatever backend connection the pools hand out); a single-shard
read may instead take the fast path (``passthrough``), which prepares the text on the shard connection it uses.
At prepare time a SELECT is run once with NULL parameters to describe its result columns, as clients such as
sysbench (libmariadb) need them then. Cursors (``CURSOR_TYPE_READ_ONLY``) hold the rows
of their execution and hand them out with COM_STMT_FETCH.

``PreparedStatements`` is a mixin of ``commands.CommandRunner``.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cython_ext
from cython_ext.fpvalues import FingerprintError
from router.backend.result import Column
from router.frontend.mysql import protocol as P
from router.frontend.mysql.binary import binary_rows
from router.frontend.mysql.columns import column_definitions
from router.frontend.mysql.constants import CursorType, ServerStatus, WireError
from sharding.errors import SyntaxError_

__all__ = ["Prepared", "PreparedStatements", "count_params"]

log = logging.getLogger("shardgate.frontend.mysql")
_fp = cython_ext.fingerprint
_SELECT_NEXT = re.compile(r"\s*select\s+next\b", re.IGNORECASE)
_CURSOR_FLAGS = int(CursorType.READ_ONLY | CursorType.FOR_UPDATE | CursorType.SCROLLABLE)


@dataclass(slots=True)
class Prepared:
    sql: str
    num_params: int
    maybe_local: bool = True  # could be answered here (sysvars, KILL, SHOW WARNINGS…): checked per execution
    cursor: list[tuple[Any, ...]] | None = None
    cursor_columns: tuple[Column, ...] = ()
    cursor_encoders: list[Callable[[Any], bytes]] = field(default_factory=list)


def count_params(values: Sequence[Any]) -> int:
    n = 0
    for v in values:
        if isinstance(v, tuple):
            n = max(n, count_params(v))
        elif isinstance(v, _fp.Param) and isinstance(v.key, int):
            n = max(n, v.key + 1)
    return n


class PreparedStatements:
    """Mixin of ``CommandRunner`` (which provides these attributes and methods)."""

    proto: Any
    session: Any
    statements: dict[int, Prepared]
    _next_stmt: int

    facts: Any

    if TYPE_CHECKING:  # provided by CommandRunner and LocalStatements
        def _decode(self, raw: bytes) -> str: ...

        def _split(self, sql: str) -> list[str]: ...

        def send_exception(self, exc: BaseException) -> None: ...

        def _local(self, sql: str) -> Any: ...

        async def run_statement(self, sql: str, params: Sequence[Any] | None, *, more: bool, binary: bool,
                                prepared: Prepared | None = None, cursor: bool = False) -> bool: ...

    async def stmt_prepare(self, raw: bytes) -> None:
        try:
            sql = self._decode(raw)
            flags = _fp.MYSQL | self.session.view().fingerprint_flags
            if ";" in sql and len(self._split(sql)) > 1:
                raise SyntaxError_("a prepared statement holds one statement")
            try:
                _, values = _fp.fingerprint(sql, flags)
            except FingerprintError as exc:
                raise SyntaxError_(f"syntax error at position {exc.position + 1}: {exc.message}",
                                   position=exc.position + 1) from None
            if not sql.strip():
                self.proto.send_error(1065, "42000", "Query was empty")
                return
        except Exception as exc:
            self.send_exception(exc)
            return
        stmt_id = self._next_stmt
        self._next_stmt = (self._next_stmt % 0xFFFFFFFF) + 1
        num_params = count_params(values)
        columns = await self._describe(sql, num_params)
        head = sql.lstrip()[:6].lower()
        maybe_local = head not in ("select", "insert", "update", "delete", "replac") or "@@" in sql or "(" in sql
        self.statements[stmt_id] = Prepared(sql, num_params, maybe_local)
        defs = column_definitions(columns, self.proto.charset, self.facts.database or "")
        self.proto.send_prepare_ok(stmt_id, num_params, defs)

    async def _describe(self, sql: str, num_params: int) -> tuple[Column, ...]:
        """The result columns of a prepared SELECT: it runs once with NULL parameters (which match no rows in the
        usual ``col = ?`` / ``BETWEEN ? AND ?`` shapes) and keeps only the column definitions. Other statements,
        and a SELECT that fails so twice (a shard connection can break under it), describe no columns: MySQL's own
        answer for SHOW and CALL, after which clients take the columns sent with each execution."""
        head = sql.lstrip()[:7].lower()
        if not head.startswith("select") or _SELECT_NEXT.match(sql):
            return ()
        for attempt in (1, 2):
            try:
                local = self._local(sql)
                if local is not None:
                    columns, _ = await local
                    return tuple(columns)
                async with self.session.stream(sql, [None] * num_params if num_params else None) as ex:
                    found = tuple(ex.columns)
                    async for _ in ex:
                        break
                return found
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The class and id only: a message may quote the statement's literals.
                log.info("describing a prepared statement failed (attempt %d): %s %s", attempt, type(exc).__name__,
                         getattr(exc, "id", ""))
        return ()

    async def stmt_execute(self, ev: P.StmtExecute) -> None:
        st = self.statements.get(ev.statement_id)
        if st is None:
            self.proto.send_error(WireError.UNKNOWN_STMT_HANDLER, "HY000", f"Unknown prepared statement handler "
                                  f"({ev.statement_id}) given to mysqld_stmt_execute")
            return
        st.cursor = None
        cursor = bool(ev.flags & _CURSOR_FLAGS)
        await self.run_statement(st.sql, ev.params if st.num_params else None, more=False, binary=True,
                                 prepared=st, cursor=cursor)

    def stmt_fetch(self, stmt_id: int, count: int) -> None:
        st = self.statements.get(stmt_id)
        if st is None:
            self.proto.send_error(WireError.UNKNOWN_STMT_HANDLER, "HY000",
                                  f"Unknown prepared statement handler ({stmt_id}) given to mysqld_stmt_fetch")
            return
        if st.cursor is None:
            self.proto.send_error(1421, "HY000", f"The statement ({stmt_id}) has no open cursor.")
            return
        count = max(1, count)
        rows, st.cursor = st.cursor[:count], st.cursor[count:]
        self.proto.send_rows(binary_rows(rows, st.cursor_encoders))
        extra = int(ServerStatus.CURSOR_EXISTS)
        if not st.cursor:
            extra |= ServerStatus.LAST_ROW_SENT
            st.cursor = None
        self.proto.send_end(extra_status=extra)

    def stmt_reset(self, stmt_id: int) -> None:
        st = self.statements.get(stmt_id)
        if st is None:
            self.proto.send_error(WireError.UNKNOWN_STMT_HANDLER, "HY000",
                                  f"Unknown prepared statement handler ({stmt_id}) given to mysqld_stmt_reset")
            return
        st.cursor = None
        self.proto.send_ok()
