"""Running one connection's commands against a gateway session, and writing the answers through the protocol.

The gateway session (``router.engine.session.Session``) plans and executes statements; this module turns MySQL
commands into its calls and its results into packets: result sets stream batch by batch (the caller's ``flush``
applies back-pressure), writes answer with OK (affected rows, last insert id, warnings, status flags), failures
with ERR carrying the error's own ``mysql_errno``/``mysql_sqlstate`` (``sharding.errors``). Anything else that
escapes is a bug: ERR 1105 and the ``internal_errors`` counter.

Statements answered without the session (system variables, ``KILL``, ``SHOW PROCESSLIST``, ``SHOW WARNINGS``, the
admin check of VSchema DDL) are in ``local``; prepared statements in ``prepared``; both are mixins of
``CommandRunner``. A single-shard read outside a transaction may skip the engine: ``passthrough`` forwards it to
the shard and relays the shard's packets.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import cython_ext
from cython_ext.fpvalues import FingerprintError
from router.activity import identify
from router.backend.result import Column
from router.frontend.mysql import protocol as P
from router.frontend.mysql import sysvars
from router.frontend.mysql.binary import binary_encoders, binary_rows
from router.frontend.mysql.columns import ClientCharset, column_definition, column_definitions, text_encoders, text_rows
from router.frontend.mysql.constants import Command, CursorType, ServerStatus, WireError
from router.frontend.mysql.local import (
    SHOW_WARNINGS,
    LocalStatements,
    WireFailure,
    describe_as_show_columns,
    wire_state,
)
from router.frontend.mysql.passthrough import Passthrough, Unavailable
from router.frontend.mysql.prepared import Prepared, PreparedStatements
from sharding.errors import (
    InvalidValueError,
    ShardgateError,
    SyntaxError_,
    UnknownKeyspaceError,
)

__all__ = ["CommandRunner", "EngineSession", "Gateway", "Host"]

log = logging.getLogger("shardgate.frontend.mysql")
_fp = cython_ext.fingerprint

_AUTOCOMMIT = int(ServerStatus.AUTOCOMMIT)
_IN_TRANS = int(ServerStatus.IN_TRANS)
_NO_BACKSLASH_ESCAPES = int(ServerStatus.NO_BACKSLASH_ESCAPES)
_CURSOR_FLAGS = int(CursorType.READ_ONLY | CursorType.FOR_UPDATE | CursorType.SCROLLABLE)
MAX_FORMATS = 256  # cached column definitions + encoders per connection (result shapes repeat)
FLUSH_BYTES = 256 << 10  # write out a result set's rows when this much is waiting
MAX_CURSOR_ROWS = 1_000_000  # rows a cursor may hold (the engine's row cap normally stops it sooner)


class EngineSession(Protocol):
    """What this frontend uses of ``router.engine.session.Session``."""

    state: Any
    last_warnings: list[str]

    @property
    def in_transaction(self) -> bool: ...

    def view(self) -> Any: ...

    def stream(self, sql: str, params: Sequence[Any] | None = None) -> contextlib.AbstractAsyncContextManager[Any]: ...

    async def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any: ...

    async def close(self) -> None: ...


class Gateway(Protocol):
    def session(self, dialect: str = "mysql", keyspace: str | None = None, *, user: str = "") -> Any: ...


class Host(Protocol):
    """What a runner needs from its connection and listener (``router.frontend.mysql.server``)."""

    connection_id: int
    peer_host: str
    started: float

    def flush(self) -> Awaitable[None]: ...

    def others(self) -> Sequence[Any]: ...  # every connection of the listener (KILL, SHOW PROCESSLIST)

    def find(self, connection_id: int) -> Any: ...

    def count_internal_error(self, exc: BaseException | None = None) -> None: ...

    async def forward_kill(self, kind: str, connection_id: int, user: str, admin: bool) -> str | None:
        """KILL for a connection of another worker process: "ok" | "unknown" | "denied", None if not forwarded."""
        ...


_SHOW_VARIABLES = re.compile(r"\s*show\s+(?:global\s+|session\s+|local\s+)?variables\b", re.IGNORECASE)
_DDL = re.compile(r"\s*(?:/\*.*?\*/\s*)*(?:create|alter|drop|rename|truncate)\b", re.IGNORECASE | re.DOTALL)
_SET_NAMES = re.compile(r"\s*set\s+(?:names|character\s+set|charset)\s+['\"`]?([A-Za-z0-9_]+)", re.IGNORECASE)


def error_fields(exc: BaseException) -> tuple[int, str, str]:
    if isinstance(exc, WireFailure):
        return exc.errno, wire_state(exc.errno), exc.message
    if isinstance(exc, ShardgateError):
        return exc.mysql_errno, exc.mysql_sqlstate, exc.client_message()
    return 1105, "HY000", f"internal error ({type(exc).__name__}); see the router log"


class CommandRunner(LocalStatements, PreparedStatements):
    """One connection's commands (see the module docstring)."""

    def __init__(self, proto: P.ServerProtocol, gateway: Gateway, host: Host, *, user: str, user_is_admin: bool,
                 server_version: str, max_allowed_packet: int, tls: bool, passthrough: Passthrough | None = None
                 ) -> None:
        self.proto = proto
        self.passthrough = passthrough  # the single-shard fast path (``passthrough``), None: the engine runs all
        self.gateway = gateway
        self.host = host
        self.user = user
        self.user_is_admin = user_is_admin
        self.session: EngineSession = gateway.session("mysql", None, user=user)
        self.session.state.client_addr = host.peer_host or None  # query rules match on it
        identify(self.session, "mysql", getattr(host, "peer", None), host.connection_id)
        self.statements: dict[int, Prepared] = {}
        self._next_stmt = 1
        self.facts = sysvars.Facts(host.connection_id, user, host.peer_host, server_version=server_version,
                                   max_allowed_packet=max_allowed_packet, tls=tls)
        self.command_name = "Sleep"
        self.command_started = time.monotonic()
        self.current_sql: str | None = None
        self.kill_requested = False
        self.warnings: list[str] = []  # the last statement's, for SHOW WARNINGS (which keeps them)
        self._formats: dict[Any, tuple[list[bytes], list[Callable[[Any], bytes]], Callable[..., list[bytes]]]] = {}

    # --- session state → status flags and facts -----------------------------------------------------------------
    def database(self) -> str | None:
        s = self.session.state
        if not s.keyspace:
            return None
        name = s.keyspace + (f":{s.target}" if s.target else "")
        tablet = (s.tablet_type or "primary").lower()
        return name + (f"@{tablet}" if tablet != "primary" else "")

    def _sync_status(self) -> None:
        s = self.session.state
        status = _AUTOCOMMIT if s.autocommit else 0
        if self.session.in_transaction:
            status |= _IN_TRANS
        if s.sql_mode and "NO_BACKSLASH_ESCAPES" in s.sql_mode.upper():
            status |= _NO_BACKSLASH_ESCAPES
        self.proto.status = status

    def _sync_facts(self) -> sysvars.Facts:
        f, s = self.facts, self.session.state
        f.database = self.database()
        f.autocommit = s.autocommit
        f.in_transaction = self.session.in_transaction
        chars = getattr(s, "next_characteristics", None) or getattr(s, "characteristics", None)
        f.isolation = getattr(chars, "isolation", None)
        f.read_only = bool(getattr(chars, "read_only", False))
        f.sql_mode = s.sql_mode
        f.variables = s.variables
        cs = self.proto.charset
        f.charset = cs.name
        f.collation = _collation_name(cs)
        f.warning_count = len(self.warnings)
        return f

    # --- connection phase ---------------------------------------------------------------------------------------
    async def use_database(self, name: str) -> None:
        """The database of the handshake or COM_INIT_DB: a keyspace (``ks``, ``ks:-80``, ``ks@replica``)."""
        await self.session.execute("USE `" + name.replace("`", "``") + "`")
        self._sync_status()

    # --- dispatch ------------------------------------------------------------------------------------------------
    async def handle(self, ev: Any) -> bool:
        """Answer one command event; False when the connection should close."""
        self.command_started = time.monotonic()
        try:
            if isinstance(ev, P.Query):
                self.command_name = "Query"
                await self.query(ev.sql)
            elif isinstance(ev, P.StmtExecute):
                self.command_name = "Execute"
                await self.stmt_execute(ev)
            elif isinstance(ev, P.StmtPrepare):
                self.command_name = "Prepare"
                await self.stmt_prepare(ev.sql)
            elif isinstance(ev, P.StmtClose):
                self.statements.pop(ev.statement_id, None)
            elif isinstance(ev, P.SimpleCommand):
                return await self.simple(ev.command)
            elif isinstance(ev, P.InitDB):
                self.command_name = "Init DB"
                await self.init_db(ev.schema)
            elif isinstance(ev, P.StmtReset):
                self.stmt_reset(ev.statement_id)
            elif isinstance(ev, P.StmtFetch):
                self.stmt_fetch(ev.statement_id, ev.rows)
            elif isinstance(ev, P.FieldList):
                self.command_name = "Field List"
                await self.field_list(ev.table, ev.wildcard)
            elif isinstance(ev, P.SetOption):
                self.set_option(ev.option)
            elif isinstance(ev, P.ProcessKill):
                await self.kill("connection", ev.connection_id)
            elif isinstance(ev, P.CommandError):
                self.proto.send_error(ev.errno, wire_state(ev.errno), ev.message)
            return True
        except Exception as exc:  # a bug: this command fails, the connection lives
            self.send_exception(exc)
            return True
        finally:
            self.command_name = "Sleep"
            self.current_sql = None
            self.command_started = time.monotonic()

    def send_exception(self, exc: BaseException) -> None:
        if not isinstance(exc, (ShardgateError, WireFailure)):
            self.host.count_internal_error(exc)
            log.error("internal error on connection %s", self.host.connection_id, exc_info=exc)
        self.proto.send_error(*error_fields(exc))

    # --- simple commands ---------------------------------------------------------------------------------------------
    async def simple(self, command: int) -> bool:
        proto = self.proto
        if command == Command.QUIT:
            return False
        if command == Command.PING:
            proto.send_ok()
        elif command == Command.STATISTICS:
            uptime = int(time.monotonic() - self.host.started)
            proto.send_raw(f"Uptime: {uptime}  Threads: {len(self.host.others())}  Questions: 0  Slow queries: 0  "
                           "Opens: 0  Flush tables: 0  Open tables: 0  Queries per second avg: 0.000".encode())
        elif command == Command.RESET_CONNECTION:
            await self.reset_connection()
            proto.send_ok()
        else:  # COM_DEBUG
            proto.send_end()
        return True

    async def reset_connection(self) -> None:
        """COM_RESET_CONNECTION: a new session (its transaction rolled back, its settings gone), same database."""
        database = self.database()
        old = self.session
        self.session = self.gateway.session("mysql", None, user=self.user)
        self.session.state.client_addr = old.state.client_addr
        identify(self.session, "mysql", getattr(self.host, "peer", None), self.host.connection_id)
        await old.close()
        if database:
            await self.use_database(database)
        self.statements.clear()
        self.proto.forget_statements()
        self.facts.last_insert_id = 0
        self._sync_status()

    async def init_db(self, raw: bytes) -> None:
        try:
            name = self._decode(raw)
            await self.use_database(name)
        except UnknownKeyspaceError as exc:
            name = raw.decode("utf-8", "replace")
            self.proto.send_error(exc.mysql_errno, exc.mysql_sqlstate, f"Unknown database '{name}'")
            return
        except Exception as exc:
            self.send_exception(exc)
            return
        self.proto.send_ok()

    def set_option(self, option: int) -> None:
        if option not in (0, 1):
            self.proto.send_error(WireError.UNKNOWN_COM, "08S01", "Unknown command")
            return
        self.proto.multi_statements = option == 0
        self.proto.send_end()

    async def field_list(self, table_raw: bytes, wildcard_raw: bytes) -> None:
        try:
            table = self._decode(table_raw)
            if not table:
                raise SyntaxError_("COM_FIELD_LIST needs a table name")
            async with self.session.stream("SELECT * FROM `" + table.replace("`", "``") + "` LIMIT 0") as ex:
                columns = ex.columns
                async for _ in ex:
                    pass
        except Exception as exc:
            self.send_exception(exc)
            return
        wildcard = self._decode(wildcard_raw).rstrip("\0") if wildcard_raw else ""
        if wildcard and wildcard != "%":
            import fnmatch

            pattern = wildcard.replace("%", "*").replace("_", "?")
            columns = tuple(c for c in columns if fnmatch.fnmatch(c.name.lower(), pattern.lower()))
        defs = [column_definition(c, self.proto.charset, self.database() or "") for c in columns]
        self.proto.send_rows([_with_default(d) for d in defs])
        self.proto.send_end()

    # --- COM_QUERY ---------------------------------------------------------------------------------------------------
    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode(self.proto.charset.codec)
        except UnicodeDecodeError as exc:
            raise InvalidValueError(f"Invalid {self.proto.charset.name} character string at byte {exc.start}") \
                from None

    async def query(self, raw: bytes) -> None:
        try:
            sql = self._decode(raw)
            statements = [sql] if ";" not in sql else self._split(sql)
        except Exception as exc:
            self.send_exception(exc)
            return
        if not statements or not statements[0].strip():
            self.proto.send_error(1065, "42000", "Query was empty")
            return
        if len(statements) > 1 and not self.proto.multi_statements:
            self.send_exception(SyntaxError_("You have an error in your SQL syntax: several statements in one "
                                             "query, and the client did not enable multi-statements"))
            return
        last = len(statements) - 1
        for i, stmt in enumerate(statements):
            if not await self.run_statement(stmt, None, more=i < last, binary=False):
                break

    def _split(self, sql: str) -> list[str]:
        flags = _fp.MYSQL | self.session.view().fingerprint_flags
        try:
            return list(_fp.split_statements(sql, flags))
        except FingerprintError as exc:
            raise SyntaxError_(f"syntax error at position {exc.position + 1}: {exc.message}",
                               position=exc.position + 1) from None

    async def run_statement(self, sql: str, params: Sequence[Any] | None, *, more: bool, binary: bool,
                            prepared: Prepared | None = None, cursor: bool = False) -> bool:
        """Run one statement and send its answer; False after an error (which ends a multi-statement)."""
        self.current_sql = sql
        proto = self.proto
        try:
            local = self._local(sql) if prepared is None or prepared.maybe_local else None
            if local is not None:
                columns, rows = await local
                if not SHOW_WARNINGS.fullmatch(sql):
                    self.warnings = []
                self._sync_status()
                if columns:
                    await self._send_result(columns, _aiter_once(rows), binary, more, prepared, cursor)
                else:
                    proto.send_ok(more=more)
                return True
            described = describe_as_show_columns(sql)  # DESCRIBE t [col]: the session answers SHOW COLUMNS
            if described is not None:
                sql = described
            pt = self.passthrough
            if pt is not None and not cursor and (target := pt.target(self, sql, params)) is not None:
                try:
                    if binary:
                        await pt.execute(self, target, sql, list(params or ()), more=more)
                    else:
                        await pt.query(self, target, sql, more=more)
                    return True
                except Unavailable:
                    pass  # nothing reached the client: the engine runs it
            show_vars = sql[:1] in "sS \t\n" and _SHOW_VARIABLES.match(sql) is not None
            sent_columns = False
            async with self.session.stream(sql, params) as ex:
                columns = ex.columns
                if columns:
                    batches: AsyncIterator[list[Any]] = ex.__aiter__()
                    if show_vars:
                        batches = _fixed_variables(batches, self._sync_facts())
                    sent_columns = True
                    await self._send_result(columns, batches, binary, more, prepared, cursor, end=False)
                else:
                    async for _ in ex:
                        pass
                affected = ex.rows_affected
                last_id = ex.last_insert_id
        except asyncio.CancelledError:
            if not self.kill_requested:
                raise
            self._uncancel()
            message = "Query execution was interrupted"
            if self.session.in_transaction:
                # The shard connection of the interrupted statement cannot carry the transaction on.
                with contextlib.suppress(Exception):
                    await self.session.execute("ROLLBACK")
                message += "; the transaction was rolled back"
            self._sync_status()
            proto.send_error(WireError.QUERY_INTERRUPTED, "70100", message)
            return False
        except Exception as exc:
            self._sync_status()
            self.warnings = [str(getattr(exc, "message", exc))]
            self.send_exception(exc)
            return False
        self._sync_status()
        last_warnings = self.session.last_warnings
        self.warnings = list(last_warnings) if last_warnings else []
        warnings = len(self.warnings)
        if sent_columns:
            if cursor and prepared is not None and prepared.cursor is not None:
                return True
            proto.send_end(warnings, more=more)
            return True
        if last_id:
            self.facts.last_insert_id = last_id
        proto.send_ok(affected or 0, last_id or 0, warnings, more=more)
        if sql[:3].lower() == "set":
            self._after_set(sql)
        elif self.passthrough is not None and _DDL.match(sql):
            self.passthrough.schema_changed()  # statements prepared on shard connections are made again
        return True

    def _uncancel(self) -> None:
        self.kill_requested = False
        task = asyncio.current_task()
        if task is not None:
            while task.cancelling():
                task.uncancel()

    async def _send_result(self, columns: Sequence[Column], batches: AsyncIterator[list[Any]], binary: bool,
                           more: bool, prepared: Prepared | None, cursor: bool, end: bool = True) -> None:
        proto = self.proto
        defs, encoders, encode = self._format(tuple(columns), binary)
        if cursor and prepared is not None:
            rows: list[tuple[Any, ...]] = []
            async for batch in batches:
                rows.extend(batch)
                if len(rows) > MAX_CURSOR_ROWS:
                    raise InvalidValueError(f"a cursor holds at most {MAX_CURSOR_ROWS} rows")
            prepared.cursor = rows
            prepared.cursor_columns = tuple(columns)
            prepared.cursor_encoders = encoders
            proto.send_columns(defs, cursor=True)
            return
        proto.send_columns(defs)
        pending = 0
        async for batch in batches:
            payloads = encode(batch, encoders)
            proto.send_rows(payloads)
            pending += sum(map(len, payloads))
            if pending >= FLUSH_BYTES:
                pending = 0
                await self.host.flush()
        if end:
            proto.send_end(len(self.session.last_warnings), more=more)

    def _format(self, columns: tuple[Column, ...], binary: bool
                ) -> tuple[list[bytes], list[Callable[[Any], bytes]], Callable[..., list[bytes]]]:
        """Column definitions and value encoders of a result shape, made once per connection and shape."""
        charset = self.proto.charset
        schema = self.session.state.keyspace or ""
        key = (columns, binary, charset, schema)
        found = self._formats.get(key)
        if found is None:
            if len(self._formats) >= MAX_FORMATS:
                self._formats.clear()
            defs = column_definitions(columns, charset, schema)
            if binary:
                found = (defs, binary_encoders(columns, charset), binary_rows)
            else:
                found = (defs, text_encoders(columns, charset), text_rows)
            self._formats[key] = found
        return found

    def _after_set(self, sql: str) -> None:
        m = _SET_NAMES.match(sql)
        if m is not None:
            cs = ClientCharset.from_name(m.group(1))
            if cs is not None:
                self.proto.charset = cs

    async def close(self) -> None:
        await self.session.close()


async def _aiter_once(rows: list[Any]) -> AsyncIterator[list[Any]]:
    if rows:
        yield rows


async def _fixed_variables(batches: AsyncIterator[list[Any]], facts: sysvars.Facts) -> AsyncIterator[list[Any]]:
    async for batch in batches:
        yield sysvars.fix_show_variables(batch, facts)


def _with_default(definition: Any) -> bytes:
    from dataclasses import replace

    return bytes(replace(definition, default=b"").encode())


def _collation_name(cs: ClientCharset) -> str:
    from pymysql import charset as pymysql_charset

    try:
        return str(pymysql_charset.charset_by_id(cs.collation_id).collation)
    except KeyError:
        return "utf8mb4_general_ci"
