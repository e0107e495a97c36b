"""Statements the MySQL frontend answers itself rather than the gateway session: system variables and session
functions (``sysvars``), ``KILL [QUERY | CONNECTION] id``, ``SHOW PROCESSLIST``, ``SHOW WARNINGS`` / ``SHOW COUNT(*)
WARNINGS``, the admin check of VSchema DDL, and ``DESCRIBE t`` (handed to the session as ``SHOW COLUMNS``).

``LocalStatements`` is a mixin of ``commands.CommandRunner``: ``_local(sql)`` returns an awaitable of (columns,
rows) when the statement is one of these, else None. Every test here starts with a cheap look at the first word.
"""
from __future__ import annotations

import re
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from router.backend.result import Column, TypeCode
from router.frontend.mysql import sysvars
from router.frontend.mysql.constants import WIRE_SQLSTATE, WireError
from sharding.errors import PermissionDeniedError, SyntaxError_

__all__ = ["LocalStatements", "WireFailure", "describe_as_show_columns", "kill_local", "wire_state"]

_KILL = re.compile(r"\s*kill\s+(?:(query|connection)\s+)?(\d+)\s*;?\s*", re.IGNORECASE)
_PROCESSLIST = re.compile(r"\s*show\s+(full\s+)?processlist\s*;?\s*", re.IGNORECASE)
_NAME = r"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)"
_DESCRIBE = re.compile(rf"\s*(?:describe|desc|explain)\s+({_NAME}(?:\.{_NAME})?)"
                       r"(?:\s+(`(?:[^`]|``)+`|[A-Za-z0-9_$%]+|'[^']*'))?\s*;?\s*", re.IGNORECASE)
SHOW_WARNINGS = re.compile(r"\s*show\s+(?:(count\s*\(\s*\*\s*\)\s+)?(warnings|errors))(?:\s+limit\s+(\d+))?"
                           r"\s*;?\s*", re.IGNORECASE)
_ALTER_VSCHEMA = re.compile(r"\s*(?:/\*.*?\*/\s*)*alter\s+vschema\b", re.IGNORECASE | re.DOTALL)
_NOT_TABLES = frozenset({"select", "insert", "update", "delete", "replace", "with", "format"})

Answer = tuple[tuple[Column, ...], list[tuple[Any, ...]]]


class WireFailure(Exception):
    """A wire-level failure (unknown thread id…) carried through ``run_statement`` to its ERR."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


def wire_state(errno: int) -> str:
    return WIRE_SQLSTATE.get(errno, "HY000")


def _like_literal(word: str) -> str:
    if word[0] == "'":
        return word
    if word[0] == "`":
        word = word[1:-1].replace("``", "`")
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def describe_as_show_columns(sql: str) -> str | None:
    """``DESCRIBE t [col]`` / ``DESC`` / ``EXPLAIN t`` as ``SHOW COLUMNS FROM t [LIKE 'col']``, else None."""
    if sql[:4].lstrip()[:1] not in ("d", "D", "e", "E"):
        return None
    m = _DESCRIBE.fullmatch(sql)
    if m is None or m.group(1).lower() in _NOT_TABLES:
        return None
    return f"SHOW COLUMNS FROM {m.group(1)}" + (f" LIKE {_like_literal(m.group(2))}" if m.group(2) else "")


def kill_local(target: Any, kind: str, user: str, admin: bool) -> str:
    """KILL on a connection of this process (``MysqlConnection`` or None): "ok", "unknown" or "denied"."""
    if target is None:
        return "unknown"
    if target.user != user and not admin:
        return "denied"
    if kind == "query":
        target.kill_query()
    else:
        target.kill_connection()
    return "ok"


async def _ready(value: Any) -> Any:
    return value


class LocalStatements:
    """Mixin of ``CommandRunner`` (which provides these attributes)."""

    proto: Any
    host: Any
    user: str
    user_is_admin: bool
    warnings: list[str]
    current_sql: str | None
    command_name: str
    command_started: float

    if TYPE_CHECKING:  # provided by CommandRunner
        def _sync_facts(self) -> sysvars.Facts: ...

        def database(self) -> str | None: ...

    def _local(self, sql: str) -> Awaitable[Answer] | None:
        head = sql[:12].lstrip()[:6].lower()
        if head.startswith("select") or head.startswith("/*"):
            if "@@" in sql or "(" in sql:
                answer = sysvars.answer_select(sql, self._sync_facts())
                if answer is not None:
                    return _ready(answer)
            if head.startswith("/*") and _ALTER_VSCHEMA.match(sql) and not self.user_is_admin:
                raise self._denied("ALTER VSCHEMA")
            return None
        if head.startswith("kill"):
            m = _KILL.fullmatch(sql)
            if m is None:
                raise SyntaxError_("KILL [CONNECTION | QUERY] <connection id>")
            return self._kill_statement((m.group(1) or "connection").lower(), int(m.group(2)))
        if head.startswith("show") and (m := SHOW_WARNINGS.fullmatch(sql)) is not None:
            return _ready(self._show_warnings(bool(m.group(1)), m.group(2).lower() == "errors", m.group(3)))
        if head.startswith("show") and _PROCESSLIST.fullmatch(sql):
            return _ready(self._processlist(bool(_PROCESSLIST.fullmatch(sql).group(1))))  # type: ignore[union-attr]
        if head.startswith("alter") and _ALTER_VSCHEMA.match(sql) and not self.user_is_admin:
            raise self._denied("ALTER VSCHEMA")
        return None

    def _show_warnings(self, count: bool, errors: bool, limit: str | None
                       ) -> Answer:
        notes = [] if errors else [("Warning", 1105, w) for w in self.warnings]
        if count:
            name = f"@@session.{'error' if errors else 'warning'}_count"
            return (Column(name=name, type=TypeCode.BIGINT, engine="router", backend_type=0,
                           backend_type_name="bigint"),), [(len(notes),)]
        if limit is not None:
            notes = notes[:int(limit)]
        names = ("Level", "Code", "Message")
        types = (TypeCode.VARCHAR, TypeCode.INT, TypeCode.VARCHAR)
        return tuple(Column(name=n, type=t, engine="router", backend_type=0, backend_type_name=t.value)
                     for n, t in zip(names, types, strict=True)), notes

    def _denied(self, what: str) -> PermissionDeniedError:
        return PermissionDeniedError(f"{what} command denied to user '{self.user}'@'{self.host.peer_host}': "
                                     "VSchema DDL needs the admin role")

    async def _kill_statement(self, kind: str, target_id: int) -> Answer:
        await self.kill(kind, target_id, reply=False)
        return (), []

    async def kill(self, kind: str, target_id: int, *, reply: bool = True) -> None:
        """KILL [QUERY | CONNECTION] id, for a connection of this worker or (forwarded) of another one."""
        outcome = kill_local(self.host.find(target_id), kind, self.user, self.user_is_admin)
        if outcome == "unknown":
            outcome = await self.host.forward_kill(kind, target_id, self.user, self.user_is_admin) or "unknown"
        failure = None
        if outcome == "unknown":
            failure = WireFailure(WireError.NO_SUCH_THREAD, f"Unknown thread id: {target_id}")
        elif outcome == "denied":
            failure = WireFailure(WireError.KILL_DENIED, f"You are not owner of thread {target_id}")
        if failure is not None:
            if not reply:
                raise failure
            self.proto.send_error(failure.errno, wire_state(failure.errno), failure.message)
        elif reply:
            self.proto.send_ok()

    def _processlist(self, full: bool) -> Answer:
        rows = []
        now = time.monotonic()
        for conn in self.host.others():
            runner = getattr(conn, "runner", None)
            if runner is None or (conn.user != self.user and not self.user_is_admin):
                continue
            info = runner.current_sql
            if info is not None and not full:
                info = info[:100]
            rows.append((conn.connection_id, conn.user, conn.peer_host, runner.database(), runner.command_name,
                         int(now - runner.command_started), "", info))
        names = ("Id", "User", "Host", "db", "Command", "Time", "State", "Info")
        types = (TypeCode.BIGINT, TypeCode.VARCHAR, TypeCode.VARCHAR, TypeCode.VARCHAR, TypeCode.VARCHAR,
                 TypeCode.INT, TypeCode.VARCHAR, TypeCode.TEXT)
        columns = tuple(Column(name=n, type=t, engine="router", backend_type=0, backend_type_name=t.value)
                        for n, t in zip(names, types, strict=True))
        return columns, rows
