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

from router import activity
from router.backend.connection import BackendTarget
from router.engine.consolidate import NOT_SHARED, Flight, read_scope
from router.frontend.postgres import messages as M
from router.frontend.postgres.rawconn import RawConnection, RawPool
from router.planner.plan import Opcode, Route
from router.planner.resolve import single_shard
from sharding.db import TLSMode
from sharding.errors import BackendError, BackendUnavailableError, PermissionDeniedError, ShardgateError

__all__ = ["Passthrough", "RelayedError", "Unavailable"]

FLUSH_AT = 256 * 1024
_OPS = frozenset({Opcode.EqualUnique, Opcode.Equal, Opcode.IN, Opcode.Unsharded, Opcode.Reference, Opcode.DBA})
_READS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
_DROP = frozenset({ord("1"), ord("2"), ord("S"), ord("v")})  # ours already went out / session-level noise
_Z, _E, _D = ord("Z"), ord("E"), ord("D")
_RELAYED = BackendError("the shard's error was relayed")  # a failed forwarded statement, for metrics
# A read that would leave state on a shared shard connection (a setting, a session lock, a new table) or that
# depends on such state: the engine runs it (its pool resets connections it marks dirty).
_SESSION_STATE = re.compile(r"\b(?:set_config|pg_advisory_lock|pg_try_advisory_lock|pg_advisory_unlock|currval|"
                            r"lastval|dblink\w*|lo_\w+|into)\b", re.IGNORECASE)
_FIRST_USER_OID = 16384
_EXECUTE_SYNC = M.fe_execute("", 0) + M.fe_sync()
_DESCRIBE_EXECUTE_SYNC = M.fe_describe("P", "") + _EXECUTE_SYNC


_CANCELS: set[asyncio.Task[None]] = set()  # cancel requests in flight for statements whose client left


async def _cancel_until_gone(conn: RawConnection) -> None:
    """Cancel the statement of a shard connection that is being closed (closing alone does not stop it). Sent a
    few times: a request that reaches the shard before the statement starts is lost; one for a session that has
    ended is ignored."""
    for delay in (0.0, 0.3, 1.0, 3.0):
        await asyncio.sleep(delay)
        await conn.cancel()


class Unavailable(Exception):
    """The fast path cannot reach the shard right now; nothing was sent, so the engine runs the statement."""


class _Keep:
    """What a consolidation leader relayed, for its followers."""

    __slots__ = ("lead", "parts", "rows")

    def __init__(self, lead: Flight) -> None:
        self.lead = lead
        self.parts: list[bytes] = []
        self.rows = 0


class RelayedError(Exception):
    """The shard's ErrorResponse was relayed to the client as it was; the statement failed."""


class Passthrough:
    def __init__(self, gateway: Any, pool: RawPool) -> None:
        self.gateway = gateway
        self.pool = pool
        self._rr = itertools.count()
        self.forwarded = 0
        self.generation = 0
        self._stateful: dict[str, bool] = {}  # fingerprint -> it reads or leaves session state (_SESSION_STATE)

    def target(self, handler: Any, sql: str, params: list[Any] | None) -> Any:
        """The shard backend (a ``ShardConfig``) to forward ``sql`` to, or None when the engine must run it."""
        session = handler.session
        state = session.state
        if (session.in_transaction or handler.failed or handler._timezone is not None
                or state.query_timeout is not None or state.tablet_type != "primary"
                or getattr(session, "read_role", None) is not None):
            return None
        if getattr(getattr(self.gateway, "buffer", None), "active", False):
            return None  # shards are paused: the engine path waits for them (router.engine.buffering)
        backend = getattr(session, "backend", None)
        if backend is not None and not backend.at_defaults:
            return None  # replayed settings or pinned connections: the engine's pools carry them, these do not
        gateway = self.gateway
        snapshot = gateway.snapshot
        try:
            bound = gateway.planner.plan(sql, session.view(), snapshot, params)
        except ShardgateError:
            return None  # the engine reports it
        # The fingerprint keeps every function name, so the answer holds for all its statements (a regex search
        # per statement costs more than the dict lookup).
        stateful = self._stateful.get(bound.fingerprint)
        if stateful is None:
            if len(self._stateful) >= 4096:
                self._stateful.clear()
            stateful = self._stateful[bound.fingerprint] = _SESSION_STATE.search(bound.fingerprint) is not None
        if stateful:
            return None
        # ACLs and query rules before anything is forwarded (raises when refused); a statement that rules give
        # settings to (row limit, timeout, replica, log) takes the engine, which applies them.
        try:
            if session.authorize(bound, params, log_it=False).matched:
                return None
        except PermissionDeniedError:
            return None  # the engine refuses it again, and logs the denial
        root = bound.plan.root
        if type(root) is not Route or not root.passthrough or root.truncate_columns or root.helper_prefix:
            return None
        routing = root.routing
        if routing.opcode not in _OPS or gateway.backend_dialect(routing.keyspace.name) != "postgres":
            return None
        shard = single_shard(routing, bound.binds, snapshot, self._rr)
        if shard is None:
            return None
        spec = shard.backends.get("primary")
        if spec is None or isinstance(spec, (list, tuple)) or getattr(spec, "tls_mode", TLSMode.DISABLE) \
                is not TLSMode.DISABLE or not hasattr(spec, "dsn"):
            return None
        session.share_scope = read_scope(session, bound)  # identical reads in flight share one (_exchange)
        act = activity.begin(session)  # finished by _exchange (metrics, query log, SHOW SHARDGATE QUERIES)
        act.fingerprint, act.kind = bound.fingerprint, bound.plan.kind
        act.targets.add(BackendTarget(routing.keyspace.name, shard.name))
        return spec

    @staticmethod
    def is_read(info: Any) -> bool:
        return info.kind == "rows" and info.word in _READS

    async def simple(self, handler: Any, spec: Any, sql: str) -> None:
        await self._exchange(handler, spec, lambda conn: M.fe_query(sql), share_key=("Q", sql))

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

        await self._exchange(handler, spec, data, failed, share_key=("X", sql, types, bytes(values), describe))

    def schema_changed(self) -> None:
        """DDL went through the router: statements prepared on shard connections are made again."""
        self.generation += 1

    async def _exchange(self, handler: Any, spec: Any, data: Any, on_error: Any = None,
                        share_key: tuple[Any, ...] | None = None) -> None:
        keep: _Keep | None = None
        scope, handler.session.share_scope = handler.session.share_scope, None
        cons = getattr(self.gateway, "consolidator", None)
        if share_key is not None and scope is not None and cons is not None:
            # Consolidation (router.engine.consolidate): the same request bytes to the same server while one is in
            # flight get that one's relayed answer; the leader keeps what it relays for them.
            key = ("pt", spec.host, spec.port, spec.database, spec.user, share_key, scope.settings)  # all hashable
            lead, follow = cons.lead_or_follow(key, scope, None)
            if follow is not None:
                shared = await cons.wait(follow, None)
                if shared is not NOT_SHARED:
                    self._replay(handler, shared)
                    return
            keep = _Keep(lead) if lead is not None else None
        try:
            conn = await self.pool.acquire(spec)
        except BackendUnavailableError as exc:
            if keep is not None:
                keep.lead.abandon()
            handler.session.current = None  # the engine runs it, as a statement of its own
            raise Unavailable(str(exc)) from None
        reusable = False
        failed = False
        session = handler.session
        act = session.current
        error: BaseException | None = None
        try:
            conn.send(data(conn))
            reusable, failed = await self._relay(handler, conn, keep)
            if failed and on_error is not None:
                on_error(conn)
        except BaseException as exc:
            error = exc
            if keep is not None:
                keep.lead.fail(exc)
            raise
        finally:
            self.pool.release(spec, conn, reusable=reusable)
            if act is not None:
                activity.finish(session, act, "", error if error is not None or not failed else _RELAYED)
        if keep is not None and keep.lead.open:
            keep.lead.finish((b"".join(keep.parts), failed, keep.rows))
        self.forwarded += 1
        if failed:
            raise RelayedError()

    def _replay(self, handler: Any, shared: tuple[bytes, bool, int]) -> None:
        """A follower: the leader's relayed answer, as if this client's statement had run."""
        payload, failed, rows = shared
        session = handler.session
        act = session.current
        if not handler.wire.closed:
            handler.proto.out += payload
        if act is not None:
            act.rows += rows
            activity.finish(session, act, "", _RELAYED if failed else None)
        self.forwarded += 1
        if failed:
            raise RelayedError()

    async def _relay(self, handler: Any, conn: RawConnection, keep: _Keep | None = None) -> tuple[bool, bool]:
        """Copy the shard's answer to the client up to its ReadyForQuery (and into ``keep``, for followers, while
        it stays within the consolidation byte cap). Returns (connection reusable, failed)."""
        out = handler.proto.out
        wire = handler.wire
        failed = False
        cancelled = False
        rows = 0
        while True:
            try:
                batch = await conn.read_batch()
            except asyncio.CancelledError:
                if not handler.cancel_pending or cancelled:
                    conn.broken = True
                    if not cancelled:  # the client left mid-statement: the shard stops it too (not at its end)
                        task = asyncio.get_running_loop().create_task(_cancel_until_gone(conn))
                        _CANCELS.add(task)
                        task.add_done_callback(_CANCELS.discard)
                    raise
                cancelled = True  # the client's CancelRequest: pass it on, and relay the shard's 57014
                await asyncio.shield(conn.cancel())
                continue
            for kind, raw in batch:
                if kind == _D:
                    rows += 1
                elif kind == _Z:
                    act = handler.session.current
                    if act is not None:
                        act.rows += rows
                    if keep is not None:
                        keep.rows = rows
                    return raw[5] == 0x49 and not conn.broken, failed  # 'I': no transaction left open
                if kind in _DROP:
                    continue
                if kind == _E:
                    failed = True
                if keep is not None:
                    if not keep.parts and not keep.lead.waiters:
                        # The answer starts and nobody joined: stop sharing rather than copy every answer for
                        # followers that mostly never come (later ones start a flight of their own).
                        keep.lead.abandon()
                        keep = None
                    elif keep.lead.grow(0, len(raw)):
                        keep.parts.append(bytes(raw))
                    else:
                        keep = None  # too large to share: the followers run their own
                if not wire.closed:
                    out += raw
            if len(out) >= FLUSH_AT and not wire.closed:
                await wire.drain()
