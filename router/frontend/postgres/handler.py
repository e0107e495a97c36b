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
from collections.abc import Sequence
from typing import Any, Protocol

import cython_ext
from router.frontend.postgres import messages as M
from router.frontend.postgres import oids as O
from router.frontend.postgres.describe import Describer
from router.frontend.postgres.extended import ExtendedQuery
from router.frontend.postgres.passthrough import Passthrough, RelayedError, Unavailable
from router.frontend.postgres.portal import Field, Portal, Prepared, RowEncoder
from router.frontend.postgres.protocol import PgProtocol
from router.frontend.postgres.running import DoneRun, EngineRun, RowsRun, Running
from router.frontend.postgres.settings import (
    CANONICAL_PARAMS,
    DURATION_SETTINGS,
    LOCAL_EXTRA,
    REPORTED_DEFAULTS,
    SessionSettings,
    duration_in_ms,
)
from router.frontend.postgres.statements import Info, classify, in_failed_transaction, is_system_catalog_query, split
from sharding.errors import (
    BackendError,
    PermissionDeniedError,
    QueryCanceledError,
    ShardgateError,
    SyntaxError_,
    UnsupportedError,
)

__all__ = ["ClientGone", "Handler", "Metrics", "REPORTED_DEFAULTS", "Wire"]

log = logging.getLogger("shardgate.frontend.postgres")
_USER_TABLES: dict[int, tuple[Any, frozenset[str]]] = {}
_MAINTENANCE = frozenset({"VACUUM", "ANALYZE", "ANALYSE", "CHECKPOINT"})
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


class ClientGone(Exception):
    """The client disconnected while rows were streaming to it."""


class Handler(SessionSettings, ExtendedQuery):
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
        self.local = dict(LOCAL_EXTRA)
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
            raise in_failed_transaction()
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
            from router.frontend.postgres.catalog import _keyspace, inline_params, on_first_shard

            # Runs as written, without a plan: judged on its text (router.access.check_unplanned).
            self.session.check_unplanned(inline_params(sql, params) if params else sql,
                                         _keyspace(self.gateway, self.session))
            return await on_first_shard(self.gateway, self.session, sql, params)
        run = EngineRun(self.session, sql, params, info)
        try:
            return await run.open()
        except (SyntaxError_, UnsupportedError):
            if info.word in _MAINTENANCE and not self.session.in_transaction:
                from router.frontend.postgres.catalog import _keyspace, on_all_shards

                self.session.check_unplanned(sql, _keyspace(self.gateway, self.session), "ddl")

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
