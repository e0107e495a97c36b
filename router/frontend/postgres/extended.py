"""The extended query protocol: Parse, Bind, Describe, Execute (with a row limit: PortalSuspended), Close, Sync,
Flush. Prepared statements and portals live here, in the router, so they survive transaction pooling; an Execute
resumes a portal's open engine execution, and a portal suspended part-way is read out before anything else uses
the session (``_park_others``). Single-shard reads may skip the engine (``passthrough``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cython_ext
from router.admin_console import ADMIN_SHOWS
from router.admin_console import columns as admin_columns
from router.frontend.postgres import messages as M
from router.frontend.postgres import oids as O
from router.frontend.postgres import types as T
from router.frontend.postgres.passthrough import Unavailable
from router.frontend.postgres.portal import (
    Field,
    Portal,
    Prepared,
    RowEncoder,
    fields_of,
    result_formats,
    row_description,
)
from router.frontend.postgres.running import DoneRun, EngineRun, RowsRun, Running
from router.frontend.postgres.settings import CANONICAL_PARAMS, _no_statement
from router.frontend.postgres.statements import Info, in_failed_transaction, split
from sharding.errors import ShardgateError, SyntaxError_, UnsupportedError

__all__ = ["ExtendedQuery", "MAX_SUSPENDED_ROWS"]

_fp = cython_ext.fingerprint
MAX_SUSPENDED_ROWS = 100_000  # rows of a suspended portal kept when another statement needs the session


class ExtendedQuery:
    """The handler's extended-query messages (a mixin of ``handler.Handler``)."""

    proto: Any
    wire: Any
    session: Any
    describer: Any
    metrics: Any
    passthrough: Any
    statements: dict[str, Prepared]
    portals: dict[str, Portal]
    failed: bool
    busy: bool

    if TYPE_CHECKING:  # provided by handler.Handler
        def _report(self, exc: BaseException, offset: int = 0) -> None: ...

        def _caught(self, exc: BaseException) -> BaseException: ...

        def _settle_cancel(self) -> None: ...

        def _ready(self) -> None: ...

        def _encoder(self, fields: Any, formats: Any) -> RowEncoder: ...

        async def _stream(self, run: Running, encoder: RowEncoder | None, limit: int, portal: Portal | None = None
                          ) -> int: ...

        async def _open(self, sql: str, info: Info, params: list[Any] | None) -> Running: ...

        def _after(self, info: Info, sql: str) -> None: ...

        def _notices(self, run: Running, info: Info) -> None: ...

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
        await self._extended(ExtendedQuery._parse, msg)

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
            raise in_failed_transaction()
        self.statements[msg.name] = prepared
        self.proto.send(M.PARSE_COMPLETE)

    async def _on_bind(self, msg: M.Bind) -> None:
        await self._extended(ExtendedQuery._bind, msg)

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
        await self._extended(ExtendedQuery._describe, msg)

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
        if info.word == "RELOAD" or (info.kind == "show_shardgate" and info.name != "shards"):
            # The router's admin console: no shard knows these statements. RELOAD is described without running
            # it; an admin SHOW is read-only, so it runs to show its columns (and refuses non-admins).
            prepared.described_params = (O.TEXT,) * nparams
            if info.word == "RELOAD":
                prepared.described_fields = (Field("item", O.TEXT), Field("change", O.TEXT))
            else:
                await self._park_others()
                async with self.session.stream(prepared.sql) as ex:
                    prepared.described_fields = fields_of(ex.columns)
            return prepared.described_fields
        await self._park_others()  # (the describer may run the statement on the session)
        # The describer reads its columns on a shard: the ACLs judge it first (planned with NULL values).
        self.session.check_text(prepared.sql, [None] * nparams if nparams else None)
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
        await self._extended(ExtendedQuery._execute, msg)

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
        await self._extended(ExtendedQuery._close, msg)

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


def _already(name: str) -> M.PgError:
    return M.PgError(f'prepared statement "{name}" already exists', sqlstate="42P05")


def _no_portal(name: str) -> M.PgError:
    return M.PgError(f'portal "{name}" does not exist', sqlstate="34000")


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
    if info.kind == "show_shardgate" and f"shardgate_{info.name}" in ADMIN_SHOWS:  # the admin console
        return fields_of(admin_columns(f"shardgate_{info.name}"))
    if info.word == "VEXPLAIN":
        if info.second in ("QUERIES", "ALL"):  # the statements sent, one row each (router.engine.session)
            return (Field("#", O.INT8), Field("keyspace", O.TEXT), Field("shard", O.TEXT), Field("query", O.TEXT))
        return (Field("JSON", O.TEXT),)
    if info.kind in ("begin", "commit", "rollback", "rollback_to", "savepoint", "release", "set", "reset",
                     "discard", "deallocate", "vschema", "use", "ddl"):
        return ()
    return None
