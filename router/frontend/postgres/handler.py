"""One client connection's command loop: protocol events in, engine statements out, replies back.

The handler owns what PostgreSQL keeps per backend process and the router keeps per client: the engine
``Session`` (keyspace, transaction, settings), the prepared statements and portals of the extended protocol,
the reported parameters (``ParameterStatus``), and the failed-transaction state (PostgreSQL refuses every
statement but ROLLBACK after an error inside a transaction block; ReadyForQuery says ``E``).

It does no socket I/O: it reads events and writes replies through a ``Wire`` (``server.py`` on asyncio; a list
of captured bytes in the unit tests).
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import Any, Protocol

import cython_ext
from cython_ext.fpvalues import FingerprintError
from router.frontend.postgres import messages as M
from router.frontend.postgres import oids as O
from router.frontend.postgres import textfmt
from router.frontend.postgres import types as T
from router.frontend.postgres.describe import Describer
from router.frontend.postgres.passthrough import Passthrough, RelayedError, Unavailable
from router.frontend.postgres.portal import Field, Portal, Prepared, RowEncoder, result_formats, row_description
from router.frontend.postgres.protocol import PgProtocol
from router.frontend.postgres.running import DoneRun, EngineRun, RowsRun, Running
from router.frontend.postgres.statements import Info, classify, is_system_catalog_query
from sharding.errors import (
    BackendError,
    InvalidValueError,
    PermissionDeniedError,
    QueryCanceledError,
    ShardgateError,
    SyntaxError_,
    TransactionError,
    UnsupportedError,
)

__all__ = ["CANONICAL_PARAMS", "DURATION_SETTINGS", "Handler", "Metrics", "REPORTED_DEFAULTS", "Wire",
           "duration_in_ms", "split"]

log = logging.getLogger("shardgate.frontend.postgres")
_fp = cython_ext.fingerprint

FLUSH_AT = 256 * 1024  # bytes of pending output that make a streaming statement write and wait for the socket
MAX_SUSPENDED_ROWS = 100_000  # rows of a suspended portal kept when another statement needs the session


class Wire(Protocol):
    """What the handler needs from the transport."""

    async def next_event(self) -> Any:
        """The protocol's next event, waiting for bytes; None when the connection is over."""

    def flush(self) -> None:
        """Write pending output now."""

    async def drain(self) -> None:
        """Write pending output and wait until the socket takes more."""

    @property
    def closed(self) -> bool:
        """The client is gone: stop producing rows."""


class Metrics:
    """Counters of the frontend; ``internal_errors`` must stay 0 (a bug, not bad input, raised it)."""

    def __init__(self) -> None:
        self.connections = 0
        self.statements = 0
        self.errors = 0
        self.internal_errors = 0
        self.cancels = 0
        self.messages = 0  # frontend messages decoded, over closed connections
        self.dispatched = 0  # of those, handed to the command handler


# The parameters a PostgreSQL server reports (GUC_REPORT) and that clients read; server_version is filled in
# from the shards at startup.
REPORTED_DEFAULTS: dict[str, str] = {
    "server_version": "15.0",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "application_name": "",
    "is_superuser": "off",
    "session_authorization": "",
    "default_transaction_read_only": "off",
    "in_hot_standby": "off",
}
_LOCAL_EXTRA = {"extra_float_digits": "1", "bytea_output": "hex"}
CANONICAL_PARAMS = {k.lower(): k for k in (*REPORTED_DEFAULTS, *_LOCAL_EXTRA)}
CANONICAL_PARAMS["time zone"] = "TimeZone"
_USER_TABLES: dict[int, tuple[Any, frozenset[str]]] = {}
_MAINTENANCE = frozenset({"VACUUM", "ANALYZE", "ANALYSE", "CHECKPOINT"})
_UTF8_NAMES = frozenset({"utf8", "utf-8", "unicode"})
_SET_VALUE = re.compile(r"(?:=|\bTO\b)\s*(.*?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_TIMEZONE_VALUE = re.compile(r"\bZONE\s+(.*?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)


class ClientGone(Exception):
    """The client disconnected while rows were streaming to it."""


def _in_failed_transaction() -> M.PgError:
    return M.PgError("current transaction is aborted, commands ignored until end of transaction block",
                     sqlstate="25P02")


DURATION_SETTINGS = frozenset({"statement_timeout", "transaction_timeout", "query_timeout"})
_UNITS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"\s*'?\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)\s*'?\s*;?\s*$", re.IGNORECASE)


def duration_in_ms(sql: str, info: Info) -> str:
    """``SET statement_timeout = '5s'`` → ``… = 5000``: the router keeps timeouts in milliseconds, PostgreSQL
    accepts units."""
    m = _SET_VALUE.search(sql)
    if m is None:
        return sql
    unit = _DURATION.fullmatch(m.group(1))
    if unit is None:
        return sql
    ms = float(unit.group(1)) * _UNITS[unit.group(2).lower()]
    return f"SET {info.name} = {int(ms) if ms == int(ms) else ms}"


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].replace(text[0] * 2, text[0])
    return text


class Handler:
    """See the module docstring. ``run()`` is the connection's whole life after login."""

    def __init__(self, proto: PgProtocol, wire: Wire, gateway: Any, session: Any, *, describer: Describer,
                 metrics: Metrics, reported: dict[str, str], is_admin: bool = False,
                 passthrough: Passthrough | None = None) -> None:
        self.proto = proto
        self.wire = wire
        self.gateway = gateway
        self.session = session
        self.describer = describer
        self.metrics = metrics
        self.params = dict(reported)
        self.defaults = dict(reported)
        self.local = dict(_LOCAL_EXTRA)
        self.is_admin = is_admin
        self.passthrough = passthrough
        self.statements: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.failed = False
        self.busy = False
        self.cancel_pending = False
        self.task: asyncio.Task[Any] | None = None
        self._timezone: Any = None
        self._encoders: dict[tuple[Any, ...], RowEncoder] = {}

    # --- the loop ---------------------------------------------------------------------------------------------
    async def run(self) -> None:
        self.task = asyncio.current_task()
        wire = self.wire
        dispatch = self._DISPATCH
        try:
            while True:
                event = await wire.next_event()
                if event is None or event is M.TERMINATE:
                    return
                await dispatch[type(event)](self, event)
        finally:
            await self.close()

    async def dispatch(self, event: Any) -> None:
        """Handle one protocol event (``run()`` does this in a loop; ``task`` must be set for ``cancel()``)."""
        await self._DISPATCH[type(event)](self, event)

    async def close(self) -> None:
        for portal in list(self.portals.values()):
            await self._close_portal(portal)
        self.portals.clear()

    def cancel(self) -> bool:
        """A CancelRequest for this session: stop the statement it is running (nothing when idle)."""
        if not self.busy or self.task is None or self.cancel_pending:
            return False
        self.cancel_pending = True
        self.metrics.cancels += 1
        self.task.cancel()
        return True

    def _status(self) -> str:
        if self.failed:
            return "E"
        return "T" if self.session.in_transaction else "I"

    def _ready(self) -> None:
        self.proto.tx_status = self._status()
        self.proto.ready()

    # --- errors -----------------------------------------------------------------------------------------------
    def _report(self, exc: BaseException, offset: int = 0) -> None:
        """Send ``exc`` as an ErrorResponse and note what it does to the transaction."""
        if isinstance(exc, ClientGone):
            return  # nobody to tell; the connection ends at the next read
        self.metrics.errors += 1
        if isinstance(exc, RelayedError):
            return  # the shard's own ErrorResponse already went out
        if isinstance(exc, ShardgateError):
            message = exc.message if isinstance(exc, BackendError) else exc.client_message()
            position = exc.position + offset if exc.position else None
            self.proto.error(exc.pg_sqlstate, message, detail=exc.detail, position=position)
        elif isinstance(exc, M.PgError):
            self.proto.error(exc.sqlstate, exc.message)
        else:
            self.metrics.internal_errors += 1
            log.error("internal error in the PostgreSQL frontend", exc_info=exc)
            self.proto.error("XX000", f"internal error: {type(exc).__name__}")
        if self.session.in_transaction:
            self.failed = True

    def _caught(self, exc: BaseException) -> BaseException:
        """A statement's exception, with a cancel of ours turned into PostgreSQL's 57014; other cancellations
        (the connection closing) go on up."""
        if isinstance(exc, asyncio.CancelledError):
            if not self.cancel_pending:
                raise exc
            self.cancel_pending = False
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return QueryCanceledError("canceling statement due to user request")
        return exc

    def _settle_cancel(self) -> None:
        """A cancel that arrived but was absorbed below (the engine turned it into its own error): take the
        request back from the task, or a later ``asyncio.timeout`` in this task would misread it."""
        if self.cancel_pending:
            self.cancel_pending = False
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                task.uncancel()

    # --- simple query -------------------------------------------------------------------------------------------
    async def _on_query(self, msg: M.Query) -> None:
        sql = msg.sql
        self.busy = True
        try:
            try:
                stripped = sql.rstrip()
                if stripped.endswith(";") and sql.count(";") == 1:  # the common case: one statement and its ';'
                    parts = [stripped[:-1]] if classify(stripped[:-1]).kind != "empty" else []
                elif ";" in sql:
                    parts = split(sql)
                else:
                    parts = [sql] if sql.strip() else []
                    if parts and classify(sql).kind == "empty":
                        parts = []
            except SyntaxError_ as exc:
                self._report(exc)
                parts = None
            if parts == []:
                self.proto.send(M.EMPTY_QUERY)
            pos = 0
            for part in parts or ():
                offset = sql.find(part, pos)
                pos = offset + len(part) if offset >= 0 else pos
                try:
                    await self._simple_statement(part)
                except BaseException as exc:
                    self._report(self._caught(exc), max(offset, 0))
                    break
        finally:
            self.busy = False
            self._settle_cancel()
        self._ready()

    async def _simple_statement(self, sql: str) -> None:
        self.metrics.statements += 1
        info = classify(sql)
        if info.kind == "empty":
            self.proto.send(M.EMPTY_QUERY)
            return
        if info.kind == "copy":
            from router.frontend.postgres.copy import run_copy

            tag = await run_copy(self, sql, info)
            self.proto.send(M.command_complete(tag))
            return
        pt = self.passthrough
        if pt is not None and pt.is_read(info) and (spec := pt.target(self, sql, None)) is not None:
            try:
                await pt.simple(self, spec, sql)
                return
            except Unavailable:
                pass  # nothing was sent: the engine runs it
        run = await self._open(sql, info, None)
        try:
            fields = run.fields
            encoder = None
            if fields is not None:
                encoder = self._encoder(fields, (0,) * len(fields))
                self.proto.send(encoder.description)
            sent = await self._stream(run, encoder, 0)
        except BaseException as exc:
            await run.close(exc)
            raise
        await run.close()
        self._after(info, sql)
        self._notices(run, info)
        self.proto.send(M.command_complete(run.tag(sent)))

    async def _stream(self, run: Running, encoder: RowEncoder | None, limit: int,
                      portal: Portal | None = None) -> int:
        """Send rows of ``run`` (at most ``limit``; 0: all). Returns how many were sent."""
        out = self.proto.out
        sent = 0
        pending: list[Any] = portal.pending if portal is not None else []
        while True:
            batch: list[Any] | None
            if pending:
                batch, pending = pending, []
                if portal is not None:
                    portal.pending = []
            else:
                batch = await run.next_batch()
                if batch is None:
                    if portal is not None:
                        portal.done = True
                    return sent
            if encoder is None:
                continue
            if limit and sent + len(batch) > limit:
                keep = limit - sent
                assert portal is not None
                portal.pending = batch[keep:]
                batch = batch[:keep]
            encoder.encode(batch, out)
            sent += len(batch)
            if len(out) >= FLUSH_AT:
                await self.wire.drain()
                if self.wire.closed:
                    raise ClientGone("the client closed the connection")
            if limit and sent >= limit:
                return sent

    def _notices(self, run: Running, info: Info) -> None:
        severity = "NOTICE" if info.kind in ("vschema", "ddl") else "WARNING"
        for note in run.notices:
            self.proto.send(M.notice_response(note, severity=severity))

    def _encoder(self, fields: Sequence[Field], formats: Sequence[int]) -> RowEncoder:
        key = (tuple(fields), tuple(formats), self._timezone)
        enc = self._encoders.get(key)
        if enc is None:
            if len(self._encoders) > 256:
                self._encoders.clear()
            enc = self._encoders[key] = RowEncoder(fields, formats, self._timezone)
        return enc

    # --- one statement: local or through the engine ------------------------------------------------------------
    async def _open(self, sql: str, info: Info, params: list[Any] | None) -> Running:
        kind = info.kind
        if self.failed and kind not in ("rollback", "rollback_to", "commit"):
            raise _in_failed_transaction()
        if kind == "show" and info.name in CANONICAL_PARAMS:
            name = CANONICAL_PARAMS[info.name]
            value = self.params.get(name, self.local.get(name, ""))
            return RowsRun((Field(name, O.TEXT),), [(value,)], "SHOW", counted=False)
        if kind == "show_shardgate" and info.name == "shards":
            from router.frontend.postgres.catalog import shards_rows

            return shards_rows(self.gateway)
        if kind == "set" and info.name and info.name.lower() in CANONICAL_PARAMS:
            return self._set_local(sql, info)
        if kind == "set" and info.name in DURATION_SETTINGS:
            sql = duration_in_ms(sql, info)
        if kind == "reset" and info.name and info.name.lower() in CANONICAL_PARAMS:
            self._reset_local(info.name.lower())
            return DoneRun("RESET")
        if kind == "discard":
            return await self._discard(info)
        if kind == "deallocate":
            return self._deallocate(info)
        if kind == "vschema" and not self.is_admin:
            raise PermissionDeniedError("permission denied: VSchema DDL needs the admin role")
        await self._park_others()
        if self.failed:
            return await self._end_failed(sql, info, params)
        if kind == "rows" and ("pg_" in sql or "information_schema" in sql) and \
                is_system_catalog_query(sql, self._user_tables()):
            from router.frontend.postgres.catalog import on_first_shard

            return await on_first_shard(self.gateway, self.session, sql, params)
        run = EngineRun(self.session, sql, params, info)
        try:
            return await run.open()
        except (SyntaxError_, UnsupportedError):
            if info.word in _MAINTENANCE and not self.session.in_transaction:
                from router.frontend.postgres.catalog import on_all_shards

                await on_all_shards(self.gateway, self.session, sql)
                return DoneRun(info.tag)
            raise

    def _user_tables(self) -> frozenset[str]:
        """Names of the sharded keyspaces' tables (a catalog query naming one is not a catalog query)."""
        snapshot = self.gateway.snapshot
        cached = _USER_TABLES.get(id(snapshot))
        if cached is None or cached[0] is not snapshot:
            names = frozenset(t.lower() for ks in snapshot.vschema.keyspaces.values() if ks.sharded
                              for t in ks.tables)
            _USER_TABLES.clear()
            cached = _USER_TABLES[id(snapshot)] = (snapshot, names)
        return cached[1]

    async def _end_failed(self, sql: str, info: Info, params: list[Any] | None) -> Running:
        """ROLLBACK (or COMMIT, which becomes ROLLBACK) ends a failed transaction; ROLLBACK TO a savepoint
        recovers it."""
        if info.kind == "rollback_to":
            run = await EngineRun(self.session, sql, params, info).open()
            self.failed = False
            return run
        if self.session.in_transaction:
            await self.session.execute("ROLLBACK")
        self.failed = False
        return DoneRun("ROLLBACK")

    def _after(self, info: Info, sql: str) -> None:
        """Bookkeeping after a statement succeeded."""
        if info.kind == "ddl" or info.kind == "vschema":
            self.describer.clear()
            if self.passthrough is not None:
                self.passthrough.schema_changed()
        if info.kind in ("rollback", "commit") and not self.session.in_transaction:
            self.failed = False

    # --- reported parameters -------------------------------------------------------------------------------------
    def _set_local(self, sql: str, info: Info) -> Running:
        name = CANONICAL_PARAMS[info.name.lower()]
        m = (_TIMEZONE_VALUE if info.second == "TIME" else _SET_VALUE).search(sql)
        if m is None:
            raise SyntaxError_(f"syntax error in SET {name}", position=1)
        raw = m.group(1)
        value = _unquote(raw)
        if raw.upper() in ("DEFAULT", "LOCAL"):
            value = self.defaults.get(name, self.local.get(name, ""))
        self._apply_param(name, value)
        return DoneRun("SET")

    def _apply_param(self, name: str, value: str, *, report: bool = True) -> None:
        if name == "client_encoding":
            low = _unquote(value).lower().replace("_", "")
            if low in _UTF8_NAMES:
                value = "UTF8"
            elif low == "sqlascii":
                value = "SQL_ASCII"
            else:
                raise UnsupportedError(f"client_encoding {value!r} is not supported: shardgate speaks UTF8")
        elif name == "TimeZone":
            tz = textfmt.zone(value)
            self._timezone = None if value.upper() in ("UTC", "GMT", "Z") else tz
        elif name == "DateStyle":
            if not value.upper().startswith("ISO"):
                raise UnsupportedError(f"DateStyle {value!r} is not supported: only ISO")
            value = "ISO, MDY" if "," not in value else value
        elif name == "IntervalStyle":
            if value.lower() != "postgres":
                raise UnsupportedError(f"IntervalStyle {value!r} is not supported: only postgres")
        elif name == "standard_conforming_strings":
            if value.lower() not in ("on", "true", "1", "yes"):
                raise UnsupportedError("standard_conforming_strings must stay on")
            value = "on"
        elif name == "extra_float_digits":
            try:
                n = int(value)
            except ValueError:
                raise InvalidValueError(f'invalid value for parameter "extra_float_digits": "{value}"') from None
            if not -15 <= n <= 3:
                raise InvalidValueError(f"{n} is outside the valid range for parameter \"extra_float_digits\"")
        elif name == "bytea_output":
            if value.lower() != "hex":
                raise UnsupportedError("bytea_output must stay hex")
        elif name in REPORTED_DEFAULTS and name != "application_name":
            raise UnsupportedError(f'parameter "{name}" cannot be changed')
        if name in self.params:
            if self.params[name] != value:
                self.params[name] = value
                if report:
                    self.proto.send(M.parameter_status(name, value))
        else:
            self.local[name] = value

    def _reset_local(self, name: str) -> None:
        canonical = CANONICAL_PARAMS[name]
        self._apply_param(canonical, self.defaults.get(canonical, _LOCAL_EXTRA.get(canonical, "")))

    async def _discard(self, info: Info) -> Running:
        if info.second == "ALL":
            await self._park_others()
            if self.session.in_transaction:
                raise TransactionError("DISCARD ALL cannot run inside a transaction block")
            for portal in list(self.portals.values()):
                await self._close_portal(portal)
            self.portals.clear()
            self.statements.clear()
            for name in list(self.params):
                if name in ("application_name", "TimeZone", "client_encoding", "DateStyle"):
                    self._apply_param(name, self.defaults[name])
            await self.session.execute("RESET ALL")
        return DoneRun(info.tag)

    def _deallocate(self, info: Info) -> Running:
        if info.tag == "DEALLOCATE ALL":
            self.statements.clear()
        elif self.statements.pop(info.name, None) is None:
            raise _no_statement(info.name)
        return DoneRun(info.tag)

    # --- extended query -------------------------------------------------------------------------------------------
    async def _extended(self, work: Any, msg: Any) -> None:
        try:
            await work(self, msg)
        except BaseException as exc:
            self._report(self._caught(exc))
            self.proto.fail_extended()
        finally:
            self.busy = False
            self._settle_cancel()

    async def _on_parse(self, msg: M.Parse) -> None:
        await self._extended(Handler._parse, msg)

    async def _parse(self, msg: M.Parse) -> None:
        if msg.name and msg.name in self.statements:
            raise _already(msg.name)
        sql = msg.sql
        if ";" in sql:
            parts = split(sql)
            if len(parts) > 1:
                raise SyntaxError_("cannot insert multiple commands into a prepared statement")
            sql = parts[0] if parts else ""
        prepared = Prepared.make(msg.name, sql, msg.param_types)
        if self.failed and prepared.info.kind not in ("rollback", "rollback_to", "commit"):
            raise _in_failed_transaction()
        self.statements[msg.name] = prepared
        self.proto.send(M.PARSE_COMPLETE)

    async def _on_bind(self, msg: M.Bind) -> None:
        await self._extended(Handler._bind, msg)

    async def _bind(self, msg: M.Bind) -> None:
        prepared = self.statements.get(msg.statement)
        if prepared is None:
            raise _no_statement(msg.statement)
        if msg.portal and msg.portal in self.portals:
            raise M.PgError(f'portal "{msg.portal}" already exists', sqlstate="42P03")
        n = len(msg.params)
        formats = msg.param_formats
        if prepared.nparams is None:
            prepared.nparams = _count_params(prepared)
        if n != prepared.nparams:
            name = f'"{prepared.name}"' if prepared.name else '""'
            raise M.ProtocolViolation(f"bind message supplies {n} parameters, but prepared statement {name} "
                                      f"requires {prepared.nparams}")
        if prepared.described_params is None and any(prepared.param_type(i) == 0 for i in range(n)):
            # Values of types left to the server: learn the types as PostgreSQL would infer them, so that
            # numbers bind as numbers. Binary values cannot do without; text ones stay text if the shard
            # cannot say.
            try:
                await self._describe_statement(prepared)
            except ShardgateError:
                if any(f == 1 for f in formats):
                    raise
        params: list[Any] = []
        for i, raw in enumerate(msg.params):
            if raw is None:
                params.append(None)
                continue
            fmt = formats[0] if len(formats) == 1 else (formats[i] if formats else 0)
            oid = prepared.param_type(i)
            if fmt == 1:
                decoder = T.binary_decoder(oid)
                if decoder is None:
                    raise UnsupportedError(f"binary input of type {T.oid_name(oid)} is not supported")
                params.append(decoder(raw))
            else:
                params.append(T.text_decoder(oid)(raw))
        old = self.portals.get(msg.portal)
        if old is not None:
            await self._close_portal(old)
        self.portals[msg.portal] = Portal(msg.portal, prepared, params, msg.result_formats, bind=msg)
        self.proto.send(M.BIND_COMPLETE)

    async def _on_describe(self, msg: M.Describe) -> None:
        await self._extended(Handler._describe, msg)

    async def _describe(self, msg: M.Describe) -> None:
        if msg.kind == "S":
            prepared = self.statements.get(msg.name)
            if prepared is None:
                raise _no_statement(msg.name)
            self.busy = True
            fields = await self._describe_statement(prepared)
            assert prepared.described_params is not None
            params = tuple(prepared.param_types[i] if i < len(prepared.param_types) and prepared.param_types[i]
                           else t for i, t in enumerate(prepared.described_params))
            self.proto.send(M.parameter_description(params))
            if fields:
                self.proto.send(row_description(fields, (0,) * len(fields)))
            else:
                self.proto.send(M.NO_DATA)
            return
        portal = self.portals.get(msg.name)
        if portal is None:
            raise _no_portal(msg.name)
        self.busy = True
        pt = self.passthrough
        if (pt is not None and portal.run is None and not portal.done and pt.is_read(portal.statement.info)
                and pt.builtin_types(portal.statement.param_types) and self.proto.next_is_execute(portal.name)
                and (spec := pt.target(self, portal.statement.sql, portal.params)) is not None):
            portal.relayed = portal.done = True  # Describe and the Execute after it, in one exchange
            try:
                await pt.extended(self, spec, portal, describe=True)
                return
            except Unavailable:
                portal.relayed = portal.done = False
        await self._start_portal(portal)
        if portal.fields:
            portal.encoder = self._encoder(portal.fields, result_formats(portal.result_codes, len(portal.fields)))
            self.proto.send(portal.encoder.description)
        else:
            self.proto.send(M.NO_DATA)

    async def _describe_statement(self, prepared: Prepared) -> tuple[Field, ...]:
        if prepared.described_fields is not None:
            return prepared.described_fields
        info = prepared.info
        nparams = prepared.nparams if prepared.nparams is not None else _count_params(prepared)
        prepared.nparams = nparams
        local = _local_fields(info)
        if local is not None or info.kind in ("empty", "copy"):
            prepared.described_params = (O.TEXT,) * nparams
            prepared.described_fields = local or ()
            return prepared.described_fields
        await self._park_others()  # (the describer may run the statement on the session)
        params, fields = await self.describer.describe(self.session, prepared.sql, nparams,
                                                       info.kind in ("rows", "show"))
        if len(params) != nparams:  # the shard counts what the text really uses; trust it
            prepared.nparams = len(params)
        prepared.described_params = params
        prepared.described_fields = fields
        return fields

    async def _start_portal(self, portal: Portal) -> None:
        if portal.run is not None or portal.done:
            return
        await self._park_others(portal)
        prepared = portal.statement
        info = prepared.info
        if info.kind == "empty":
            portal.run = DoneRun("")
            portal.fields = None
            return
        if info.kind == "copy":
            portal.fields = None
            return
        run = await self._open(prepared.sql, info, portal.params)
        portal.run = run
        fields = run.fields
        if fields is not None and prepared.described_fields:
            described = prepared.described_fields
            if len(described) == len(fields):
                fields = described  # the client decodes by what Describe told it
        portal.fields = fields

    async def _park_others(self, current: Portal | None = None) -> None:
        """A portal suspended part-way holds an engine execution, and in a transaction the shard connection under
        it: read its rest into memory (bounded) before anything else uses the session, or that statement would
        wait for the connection forever."""
        if not self.portals:
            return
        for portal in self.portals.values():
            run = portal.run
            if portal is current or run is None or portal.done or not isinstance(run, EngineRun):
                continue
            rows = list(portal.pending)
            while True:
                batch = await run.next_batch()
                if batch is None:
                    break
                rows.extend(batch)
                if len(rows) > MAX_SUSPENDED_ROWS:
                    raise UnsupportedError("too many rows left in a suspended portal to open another one")
            portal.pending = rows
            await run.close()
            tag = run.tag(portal.sent + len(rows))
            portal.run = RowsRun(portal.fields or (), [], tag.rsplit(" ", 1)[0] if " " in tag else tag)
            portal.tag = tag

    async def _on_execute(self, msg: M.Execute) -> None:
        await self._extended(Handler._execute, msg)

    async def _execute(self, msg: M.Execute) -> None:
        portal = self.portals.get(msg.portal)
        if portal is None:
            raise _no_portal(msg.portal)
        self.busy = True
        self.metrics.statements += 1
        if portal.relayed:
            return  # answered with the Describe before it
        prepared = portal.statement
        info = prepared.info
        pt = self.passthrough
        if (pt is not None and portal.run is None and not portal.done and msg.max_rows == 0 and pt.is_read(info)
                and pt.builtin_types(prepared.param_types)
                and (spec := pt.target(self, prepared.sql, portal.params)) is not None):
            portal.relayed = portal.done = True
            try:
                await pt.extended(self, spec, portal, describe=False)
                return
            except Unavailable:
                portal.relayed = portal.done = False
        if info.kind == "copy" and portal.run is None:
            from router.frontend.postgres.copy import run_copy

            self.proto.send(M.command_complete(await run_copy(self, prepared.sql, info)))
            portal.done = True
            return
        if portal.done and portal.run is None:
            self.proto.send(M.command_complete(portal.tag or info.tag))
            return
        await self._start_portal(portal)
        run = portal.run
        if info.kind == "empty":
            self.proto.send(M.EMPTY_QUERY)
            return
        encoder = None
        if portal.fields is not None:
            if portal.encoder is None:
                portal.encoder = self._encoder(portal.fields, result_formats(portal.result_codes,
                                                                             len(portal.fields)))
            encoder = portal.encoder
        try:
            sent = await self._stream(run, encoder, msg.max_rows, portal)
        except BaseException as exc:
            portal.run = None
            portal.done = True
            await run.close(exc)
            raise
        portal.sent += sent
        if msg.max_rows and not portal.done:
            if not portal.pending:
                batch = await run.next_batch()  # is there more? PostgreSQL knows; we look ahead one batch
                if batch is None:
                    portal.done = True
                else:
                    portal.pending = batch
            if not portal.done:
                self.proto.send(M.PORTAL_SUSPENDED)
                return
        portal.run = None
        await run.close()
        self._after(info, prepared.sql)
        self._notices(run, info)
        portal.tag = portal.tag if isinstance(run, RowsRun) and portal.tag else run.tag(portal.sent)
        self.proto.send(M.command_complete(portal.tag))

    async def _close_portal(self, portal: Portal) -> None:
        run, portal.run = portal.run, None
        if run is not None:
            try:
                await run.close()
            except ShardgateError:
                pass

    async def _on_close(self, msg: M.Close) -> None:
        await self._extended(Handler._close, msg)

    async def _close(self, msg: M.Close) -> None:
        if msg.kind == "S":
            self.statements.pop(msg.name, None)
        else:
            portal = self.portals.pop(msg.name, None)
            if portal is not None:
                await self._close_portal(portal)
        self.proto.send(M.CLOSE_COMPLETE)

    async def _on_sync(self, msg: M.Sync) -> None:
        if not self.session.in_transaction and self.portals:
            for portal in list(self.portals.values()):
                await self._close_portal(portal)
            self.portals.clear()
        self._ready()  # written when the next read would wait: pipelined Syncs share one write

    async def _on_flush(self, msg: M.Flush) -> None:
        self.wire.flush()

    async def _on_function_call(self, msg: M.FunctionCall) -> None:
        self.proto.error("0A000", "the function call protocol is not supported")
        self._ready()

    async def _on_stray_copy(self, msg: Any) -> None:
        return None  # COPY messages outside COPY: ignored (the protocol module already drops most)

    _DISPATCH: dict[type, Any] = {}


Handler._DISPATCH = {
    M.Query: Handler._on_query, M.Parse: Handler._on_parse, M.Bind: Handler._on_bind,
    M.Describe: Handler._on_describe, M.Execute: Handler._on_execute, M.Close: Handler._on_close,
    M.Sync: Handler._on_sync, M.Flush: Handler._on_flush, M.FunctionCall: Handler._on_function_call,
    M.CopyData: Handler._on_stray_copy, M.CopyDone: Handler._on_stray_copy, M.CopyFail: Handler._on_stray_copy,
}


def _no_statement(name: str) -> M.PgError:
    return M.PgError(f'prepared statement "{name}" does not exist', sqlstate="26000")


def _already(name: str) -> M.PgError:
    return M.PgError(f'prepared statement "{name}" already exists', sqlstate="42P05")


def _no_portal(name: str) -> M.PgError:
    return M.PgError(f'portal "{name}" does not exist', sqlstate="34000")


def split(sql: str) -> list[str]:
    """The statements of a multi-statement text; an unterminated string or comment is a syntax error (42601)."""
    try:
        return _fp.split_statements(sql, _fp.POSTGRES)  # type: ignore[no-any-return]
    except FingerprintError as exc:
        raise SyntaxError_(f"syntax error at position {exc.position + 1}: {exc.message}",
                           position=exc.position + 1) from None


def _count_params(prepared: Prepared) -> int:
    """``$n`` placeholders of the text: the highest n (the fingerprint reads them; strings and comments do not
    count), or the count of types the client declared, whichever is larger."""
    declared = len(prepared.param_types)
    try:
        _, values = _fp.fingerprint(prepared.sql, _fp.POSTGRES)
    except Exception:
        return declared
    from router.planner.bind import count_params

    return max(count_params(values), declared)


def _local_fields(info: Info) -> tuple[Field, ...] | None:
    """The result fields of statements the frontend or the router answers without a shard."""
    if info.kind == "show" and info.name in CANONICAL_PARAMS:
        return (Field(CANONICAL_PARAMS[info.name], O.TEXT),)
    if info.kind == "show_shardgate" and info.name == "shards":
        from router.frontend.postgres.catalog import SHARDS_FIELDS

        return SHARDS_FIELDS
    if info.word == "VEXPLAIN":
        return (Field("JSON", O.TEXT),)
    if info.kind in ("begin", "commit", "rollback", "rollback_to", "savepoint", "release", "set", "reset",
                     "discard", "deallocate", "vschema", "use", "ddl"):
        return ()
    return None
