"""The single-shard fast path: a statement that one shard answers as written is forwarded to it, and the shard's
messages go back to the client byte for byte.

Which statements: a read (``SELECT``/``WITH``/``VALUES``/``TABLE``) whose plan is a single ``Route`` the planner
marks ``passthrough`` (the client's own text is valid on the shard), resolved to exactly one shard (a point read
by a unique vindex, an unsharded keyspace, a reference table), outside any transaction, with no router-enforced
statement timeout, on the primary, and with the session's reported settings unchanged. Everything else takes the
engine (``running.EngineRun``). The plan comes from the same plan cache, so routing is the engine's own.

What it saves: the engine decodes every row into Python values (asyncpg) and the frontend encodes them again;
here neither happens, and the client's bind values go to the shard as the client sent them (text or binary, with
their types), so the shard reads them exactly as PostgreSQL would.

Extended query: at Execute (row limit 0), or at Describe of a portal whose Execute is already waiting in the input,
the shard gets Bind (the client's values, formats and result formats as received) + [Describe] + Execute + Sync in
one write, to a statement prepared on that shard connection the first time it ran that text (Parse goes first
then). The client's own prepared statements stay in the router, so any shard connection can serve them
(transaction pooling); DDL through the router retires the statements prepared on shard connections, and a
statement that fails there is prepared again next time. Cancel: a CancelRequest for the session becomes one for
the shard connection, and the shard's 57014 error is relayed.
"""
from __future__ import annotations

import asyncio
import itertools
import re
from typing import Any

from router.frontend.postgres import messages as M
from router.frontend.postgres.rawconn import RawConnection, RawPool
from router.planner.plan import Opcode, Route
from router.planner.resolve import NeedsLookup, resolve_route
from sharding.db import TLSMode
from sharding.errors import BackendUnavailableError, ShardgateError

__all__ = ["Passthrough", "RelayedError", "Unavailable"]

FLUSH_AT = 256 * 1024
_OPS = frozenset({Opcode.EqualUnique, Opcode.Equal, Opcode.IN, Opcode.Unsharded, Opcode.Reference, Opcode.DBA})
_READS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
_DROP = frozenset({ord("1"), ord("2"), ord("S"), ord("v")})  # ours already went out / session-level noise
_Z, _E = ord("Z"), ord("E")
# A read that would leave state on a shared shard connection (a setting, a session lock, a new table) or that
# depends on such state: the engine runs it (its pool resets connections it marks dirty).
_SESSION_STATE = re.compile(r"\b(?:set_config|pg_advisory_lock|pg_try_advisory_lock|pg_advisory_unlock|currval|"
                            r"lastval|dblink\w*|lo_\w+|into)\b", re.IGNORECASE)
_FIRST_USER_OID = 16384
_EXECUTE_SYNC = M.fe_execute("", 0) + M.fe_sync()
_DESCRIBE_EXECUTE_SYNC = M.fe_describe("P", "") + _EXECUTE_SYNC


class Unavailable(Exception):
    """The fast path cannot reach the shard right now; nothing was sent, so the engine runs the statement."""


class RelayedError(Exception):
    """The shard's ErrorResponse was relayed to the client as it was; the statement failed."""


class Passthrough:
    def __init__(self, gateway: Any, pool: RawPool) -> None:
        self.gateway = gateway
        self.pool = pool
        self._rr = itertools.count()
        self.forwarded = 0
        self.generation = 0

    def target(self, handler: Any, sql: str, params: list[Any] | None) -> Any:
        """The shard backend (a ``ShardConfig``) to forward ``sql`` to, or None when the engine must run it."""
        session = handler.session
        state = session.state
        if (session.in_transaction or handler.failed or handler._timezone is not None
                or state.query_timeout is not None or state.tablet_type != "primary"):
            return None
        if _SESSION_STATE.search(sql):
            return None
        gateway = self.gateway
        snapshot = gateway.snapshot
        try:
            bound = gateway.planner.plan(sql, session.view(), snapshot, params)
        except ShardgateError:
            return None  # the engine reports it
        root = bound.plan.root
        if type(root) is not Route or not root.passthrough or root.truncate_columns or root.helper_prefix:
            return None
        routing = root.routing
        if routing.opcode not in _OPS or gateway.backend_dialect(routing.keyspace.name) != "postgres":
            return None
        try:
            resolved = resolve_route(routing, bound.binds, snapshot)
        except ShardgateError:
            return None
        if isinstance(resolved, NeedsLookup) or not resolved.shards:
            return None
        shards = resolved.shards
        if len(shards) == 1:
            shard = shards[0]
        elif resolved.any_one:
            shard = shards[next(self._rr) % len(shards)]
        else:
            return None
        spec = shard.backends.get("primary")
        if spec is None or isinstance(spec, (list, tuple)) or getattr(spec, "tls_mode", TLSMode.DISABLE) \
                is not TLSMode.DISABLE or not hasattr(spec, "dsn"):
            return None
        return spec

    @staticmethod
    def is_read(info: Any) -> bool:
        return info.kind == "rows" and info.word in _READS

    async def simple(self, handler: Any, spec: Any, sql: str) -> None:
        await self._exchange(handler, spec, lambda conn: M.fe_query(sql))

    @staticmethod
    def builtin_types(param_types: tuple[int, ...]) -> bool:
        """Declared parameter types the shard surely knows by the same OID (user types differ per server)."""
        return all(t < _FIRST_USER_OID for t in param_types)

    async def extended(self, handler: Any, spec: Any, portal: Any, *, describe: bool) -> None:
        """Bind the client's values to a statement prepared on the shard connection (prepared there once per
        text, the first time that connection runs it), then Execute and Sync."""
        prepared, bind = portal.statement, portal.bind
        tail = _DESCRIBE_EXECUTE_SYNC if describe else _EXECUTE_SYNC
        sql, types = prepared.sql, prepared.param_types
        values = bind.tail  # formats, values and result formats exactly as the client sent them

        def data(conn: RawConnection) -> bytes:
            name, first = conn.statement(sql, types, self.generation)
            body_len = 4 + 1 + len(name) + 1 + len(values)
            return first + b"B" + body_len.to_bytes(4, "big") + b"\0" + name + b"\0" + values + tail

        def failed(conn: RawConnection) -> None:
            conn.forget(sql, types)  # prepared or not, make it again next time

        await self._exchange(handler, spec, data, failed)

    def schema_changed(self) -> None:
        """DDL went through the router: statements prepared on shard connections are made again."""
        self.generation += 1

    async def _exchange(self, handler: Any, spec: Any, data: Any, on_error: Any = None) -> None:
        try:
            conn = await self.pool.acquire(spec)
        except BackendUnavailableError as exc:
            raise Unavailable(str(exc)) from None
        reusable = False
        failed = False
        try:
            conn.send(data(conn))
            reusable, failed = await self._relay(handler, conn)
            if failed and on_error is not None:
                on_error(conn)
        finally:
            self.pool.release(spec, conn, reusable=reusable)
        self.forwarded += 1
        if failed:
            raise RelayedError()

    async def _relay(self, handler: Any, conn: RawConnection) -> tuple[bool, bool]:
        """Copy the shard's answer to the client up to its ReadyForQuery. Returns (connection reusable, failed)."""
        out = handler.proto.out
        wire = handler.wire
        failed = False
        cancelled = False
        while True:
            try:
                batch = await conn.read_batch()
            except asyncio.CancelledError:
                if not handler.cancel_pending or cancelled:
                    conn.broken = True
                    raise
                cancelled = True  # the client's CancelRequest: pass it on, and relay the shard's 57014
                await asyncio.shield(conn.cancel())
                continue
            for kind, raw in batch:
                if kind == _Z:
                    return raw[5] == 0x49 and not conn.broken, failed  # 'I': no transaction left open
                if kind in _DROP:
                    continue
                if kind == _E:
                    failed = True
                if not wire.closed:
                    out += raw
            if len(out) >= FLUSH_AT and not wire.closed:
                await wire.drain()
