"""The single-shard fast path of the MySQL frontend: a read that one shard answers as written is forwarded to it, and
the shard's packets go back to the client without decoding a row.

Which statements: a SELECT (COM_QUERY text, or COM_STMT_EXECUTE of a client's prepared statement) whose plan, from
the same planner and plan cache the session uses, is a single ``Route`` marked ``passthrough`` (the client's own
text is valid on the shard), resolved to exactly one shard (a point read by a unique vindex, an unsharded keyspace,
a reference table), outside any transaction with autocommit on, with no router-enforced statement timeout, on the
primary, with the session's SQL reading unchanged (no ANSI_QUOTES / NO_BACKSLASH_ESCAPES), for a client reading
UTF-8 (utf8mb4, or utf8mb3, which the engine path also answers with the shards' UTF-8 bytes).
The ACL/rules hook (``Session.authorize``) and the statement metrics (``router.activity``) apply as on the engine
path. Everything else takes the engine.

What it saves: aiomysql decoding every row into Python values and the frontend encoding them again. Rows and the
column count go to the client as the shard wrote them (re-framed with the client's sequence ids); what must differ
is rebuilt: column definitions name the keyspace, not the shard's database (cached per shape); the final EOF/OK
carries the router's status flags (autocommit / in-transaction as the router's session sees them) and the shard's
warning count, whose messages are read from the shard for ``SHOW WARNINGS``; EOF packets are added or dropped when
the client's CLIENT_DEPRECATE_EOF differs from the shard connection's. Shard errors become the same ERR the engine
path sends (the shard's errno and SQLSTATE). Connection ids of shard connections never reach the client.

Prepared statements: the router keeps the client's statements (``prepared``); the fast path prepares the text on
the shard connection it uses the first time that connection runs it, and sends COM_STMT_EXECUTE with that
connection's statement id and the client's decoded parameters in the binary protocol. DDL through the router makes
every connection prepare again (``schema_changed``).

``KILL QUERY`` of the session, and a client that goes away, interrupt a forwarded statement with ``KILL QUERY`` of
the shard connection's thread id sent over another connection; that shard connection is then closed.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import re
import struct
from typing import Any

from router import activity
from router.backend.connection import BackendTarget
from router.backend.errmap import map_mysql_error
from router.engine.consolidate import read_scope
from router.frontend.mysql.binary import encode_param, param_type_of
from router.frontend.mysql.rawconn import MAX_CHUNK, RawConnection, RawPool, error_of, open_raw, read_lenenc
from router.planner.plan import Opcode, Route
from router.planner.resolve import single_shard
from sharding.db import TLSMode
from sharding.errors import BackendUnavailableError, PermissionDeniedError, ShardgateError

__all__ = ["Passthrough", "Target", "Unavailable"]

log = logging.getLogger("shardgate.frontend.mysql")

FLUSH_BYTES = 256 << 10
MAX_SHAPES = 1024  # rewritten column definitions kept
MAX_TEXTS = 4096  # statement texts whose eligibility is remembered
_OPS = frozenset({Opcode.EqualUnique, Opcode.Equal, Opcode.IN, Opcode.Unsharded, Opcode.Reference})
# A read that would leave state on a shared shard connection, or reads session state the router keeps itself (or
# that would reveal the shard connection): the engine runs it.
_SESSION_STATE = re.compile(
    r"@|\b(?:into|sql_calc_found_rows|current_user|current_role|next\s+(?:value|\d+))\b|"
    r"\b(?:get_lock|release_lock|release_all_locks|is_used_lock|is_free_lock|last_insert_id|found_rows|row_count|"
    r"connection_id|database|schema|user|session_user|system_user|nextval|lastval|setval|master_pos_wait|"
    r"master_gtid_wait|load_file|benchmark)\s*\(", re.IGNORECASE)
_HEAD = struct.Struct("<I")
_U16 = struct.Struct("<H")
_EXEC_TAIL = b"\x00\x01\x00\x00\x00"  # flags: no cursor; iteration count 1
_COM_QUERY, _COM_STMT_EXECUTE = b"\x03", b"\x17"
_I64 = struct.Struct("<q")
_BIG = 1 << 63
_LONGLONG = bytes((8, 0))  # MYSQL_TYPE_LONGLONG, signed


class Unavailable(Exception):
    """The fast path cannot run the statement now; nothing reached the client, so the engine runs it."""


class Target:
    """Where a statement goes: the shard backend, its keyspace and shard names, and the plan."""

    __slots__ = ("bound", "keyspace", "shard", "spec")

    def __init__(self, spec: Any, keyspace: str, shard: str, bound: Any) -> None:
        self.spec = spec
        self.keyspace = keyspace
        self.shard = shard
        self.bound = bound


class Passthrough:
    def __init__(self, gateway: Any, pool: RawPool) -> None:
        self.gateway = gateway
        self.pool = pool
        self._rr = itertools.count()
        self.generation = 0
        self.forwarded = 0
        self._shapes: dict[tuple[bytes, bytes, str], bytes] = {}
        self._texts: dict[str, bool] = {}
        self._specs: dict[int, tuple[Any, Any]] = {}
        self._targets: dict[tuple[str, str], BackendTarget] = {}

    # --- which statements ------------------------------------------------------------------------------------------
    def target(self, runner: Any, sql: str, params: Any) -> Target | None:
        """Where to forward ``sql``, or None when the engine must run it."""
        session = runner.session
        state = session.state
        if (session.in_transaction or not state.autocommit or state.query_timeout is not None
                or state.tablet_type != "primary" or runner.proto.charset.codec != "utf-8"
                or getattr(session, "read_role", None) is not None):  # the user's reads go to replicas
            return None
        if getattr(getattr(self.gateway, "buffer", None), "active", False):
            return None  # shards are paused: the engine path waits for them (router.engine.buffering)
        readable = self._texts.get(sql)
        if readable is None:
            readable = self._readable(sql)
        if not readable:
            return None
        backend = getattr(session, "backend", None)
        if backend is not None and not backend.at_defaults:
            return None  # replayed settings or pinned connections: the engine's pools carry them, these do not
        view = session.view()
        if view.fingerprint_flags:
            return None
        gateway = self.gateway
        snapshot = gateway.snapshot
        try:
            bound = gateway.planner.plan(sql, view, snapshot, params)
        except ShardgateError:
            return None  # the engine reports it
        # ACLs and query rules before anything is forwarded (router.access): a refused statement, or one that rules
        # give settings to (row limit, timeout, replica, log), takes the engine, which refuses / applies and logs.
        try:
            if session.authorize(bound, params, log_it=False).matched:
                return None
        except PermissionDeniedError:
            return None
        plan = bound.plan
        root = plan.root
        if (type(root) is not Route or plan.kind != "select" or not root.passthrough or root.truncate_columns
                or root.helper_prefix or plan.warnings):
            return None
        routing = root.routing
        keyspace = routing.keyspace.name
        if routing.opcode not in _OPS or gateway.backend_dialect(keyspace) != "mysql":
            return None
        shard = single_shard(routing, bound.binds, snapshot, self._rr)
        if shard is None:
            return None
        found = self._specs.get(id(shard))
        if found is None or found[0] is not shard:
            found = self._specs[id(shard)] = (shard, _plain_primary(shard))  # (the shard keeps its id unique)
            if len(self._specs) > MAX_TEXTS:
                self._specs.clear()
        spec = found[1]
        if spec is None:
            return None
        cons = getattr(gateway, "consolidator", None)
        if cons is not None and cons.fast_busy(_fast_key(spec, sql, params)) and read_scope(session, bound):
            return None  # the same read is running here: the engine path shares one execution for the next ones
        return Target(spec, keyspace, shard.name, bound)

    def _readable(self, sql: str) -> bool:
        """Whether ``sql`` is a SELECT that neither leaves nor reads session state (remembered per text: the
        same texts come again and again, and the pattern costs microseconds)."""
        head = sql.lstrip()[:6].lower()
        readable = head in ("select", "(selec") and _SESSION_STATE.search(sql) is None
        if len(self._texts) >= MAX_TEXTS:
            self._texts.clear()
        self._texts[sql] = readable
        return readable

    def schema_changed(self) -> None:
        """DDL went through the router: statements prepared on shard connections are prepared again."""
        self.generation += 1

    # --- running ---------------------------------------------------------------------------------------------------
    async def query(self, runner: Any, target: Target, sql: str, *, more: bool) -> None:
        """COM_QUERY: the client's text, answered in the text protocol."""
        await self._run(runner, target, sql, None, more)

    async def execute(self, runner: Any, target: Target, sql: str, params: list[Any] | None, *, more: bool) -> None:
        """COM_STMT_EXECUTE: ``sql`` prepared on the shard connection, executed with ``params`` (binary protocol)."""
        await self._run(runner, target, sql, params or [], more)

    async def _run(self, runner: Any, target: Target, sql: str, params: list[Any] | None, more: bool) -> None:
        session = runner.session
        act = activity.begin(session)
        act.fingerprint, act.kind = target.bound.fingerprint, target.bound.plan.kind
        key = (target.keyspace, target.shard)
        backend_target = self._targets.get(key)
        if backend_target is None:
            backend_target = self._targets[key] = BackendTarget(target.keyspace, target.shard, "primary")
        act.targets.add(backend_target)
        cons = getattr(self.gateway, "consolidator", None)
        fast_key = _fast_key(target.spec, sql, params)
        if cons is not None:
            cons.fast_enter(fast_key)  # router.engine.consolidate: identical reads meanwhile take the engine path
        try:
            act.rows = await self._exchange(runner, target, sql, params, more)
        except Unavailable:
            if session.current is act:
                session.current = None  # the engine runs (and records) it as a statement of its own
            raise
        except BaseException as exc:
            self.forwarded += 1
            activity.finish(session, act, sql, exc)
            raise
        finally:
            if cons is not None:
                cons.fast_leave(fast_key)
        self.forwarded += 1
        activity.finish(session, act, sql, None)

    async def _exchange(self, runner: Any, target: Target, sql: str, params: list[Any] | None, more: bool) -> int:
        spec = target.spec
        try:
            conn = await self.pool.acquire(spec)
        except BackendUnavailableError as exc:
            raise Unavailable(str(exc)) from None
        reusable = False
        try:
            try:
                if params is None:
                    conn.send_command(_COM_QUERY + sql.encode("utf-8"))
                else:
                    stmt = await conn.prepare(sql, self.generation)
                    if stmt.num_params != len(params):
                        reusable = True
                        raise Unavailable("the shard counts other parameters")
                    conn.send_command(_execute_payload(stmt.statement_id, params))
            except BackendUnavailableError as exc:
                # A pooled connection the shard closed, or a text the shard would not prepare (the engine says
                # why): nothing reached the client yet.
                reusable = not conn.broken and not conn.closed
                raise Unavailable(str(exc)) from None
            rows, failed = await self._relay(runner, conn, target, more)
            reusable = not conn.broken
            if failed is not None:
                if params is not None:
                    conn.forget(sql)  # prepare it again next time (the schema may have changed under it)
                raise failed
            return rows
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and not conn.closed:
                conn.broken = True
                await _kill_shard_query(spec, conn)
            elif isinstance(exc, BackendUnavailableError):
                reusable = False
            raise
        finally:
            self.pool.release(spec, conn, reusable=reusable)

    async def _relay(self, runner: Any, conn: RawConnection, target: Target, more: bool
                     ) -> tuple[int, BaseException | None]:
        """Copy the shard's answer to the client. Returns (rows, the shard's error or None)."""
        proto = runner.proto
        shard_eof = not conn.deprecate_eof
        schema = target.keyspace
        database = target.spec.database.encode("utf-8")
        rows: list[bytes] = []
        count = 0
        sent = False  # something reached the client's buffer: the engine can no longer take over
        columns = -1  # -1: the first packet is next
        defs: list[bytes] = []
        pending: list[bytes] = []  # parts of a packet of 16 MB or more
        pending_bytes = 0
        eof_next = False
        try:
            batch = await conn.read_payloads()
            first = batch[0]
            if len(first) == 1 and 0 < first[0] < 251 and not shard_eof and len(batch) > first[0] + 1 \
                    and batch[-1][0] == 0xFE and sum(map(len, batch)) < MAX_CHUNK:
                # The usual answer, whole in one read: count, definitions, rows, OK (no part can be 16 MB).
                n = first[0] + 1
                definition = self._definition
                defs = [definition(p, database, schema) for p in batch[1:n]]
                rows = batch[n:-1]
                end = batch[-1]
                _, pos = read_lenenc(end, 1)
                _, pos = read_lenenc(end, pos)
                warnings = _U16.unpack_from(end, pos + 2)[0]
                if proto.deprecate_eof:
                    defs.extend(rows)
                    defs.insert(0, first)
                    proto.send_rows(defs)
                else:
                    proto.send_columns(defs)
                    proto.send_rows(rows)
                if warnings or runner.warnings:
                    await self._warnings(runner, conn, warnings)
                proto.send_end(warnings, more=more)
                return len(rows), None
            while True:
                for payload in batch:
                    if len(payload) == MAX_CHUNK or pending:
                        pending.append(payload)
                        if len(payload) == MAX_CHUNK:
                            continue
                        payload, pending = b"".join(pending), []
                    if columns > len(defs):
                        defs.append(self._definition(payload, database, schema))
                        if len(defs) == columns:
                            proto.send_columns(defs)
                            sent = True
                            eof_next = shard_eof
                        continue
                    head = payload[0]
                    if eof_next:  # the shard's EOF after the column definitions (send_columns wrote the client's)
                        eof_next = False
                        if head == 0xFE and len(payload) < 9:
                            continue
                    if columns < 0:
                        if head == 0x00:
                            affected, pos = read_lenenc(payload, 1)
                            last_id, pos = read_lenenc(payload, pos)
                            warnings = _U16.unpack_from(payload, pos + 2)[0]
                            await self._warnings(runner, conn, warnings)
                            proto.send_ok(affected, last_id, warnings, more=more)
                            return 0, None
                        if head == 0xFF:
                            return 0, _shard_error(payload, target)
                        if head == 0xFB:  # LOCAL INFILE request: never for a SELECT
                            conn.broken = True
                            raise BackendUnavailableError("the shard asked for a local file")
                        columns, _ = read_lenenc(payload, 0)
                        continue
                    if head == 0xFE and len(payload) < MAX_CHUNK:  # the end of the rows
                        if rows:
                            proto.send_rows(rows)
                        if shard_eof:
                            warnings = _U16.unpack_from(payload, 1)[0]
                        else:
                            _, pos = read_lenenc(payload, 1)
                            _, pos = read_lenenc(payload, pos)
                            warnings = _U16.unpack_from(payload, pos + 2)[0]
                        await self._warnings(runner, conn, warnings)
                        proto.send_end(warnings, more=more)
                        return count, None
                    if head == 0xFF:
                        if rows:
                            proto.send_rows(rows)
                        return count, _shard_error(payload, target)
                    rows.append(payload)
                    count += 1
                    pending_bytes += len(payload)
                if pending_bytes >= FLUSH_BYTES:
                    proto.send_rows(rows)
                    rows, pending_bytes = [], 0
                    await runner.host.flush()
                batch = await conn.read_payloads()
        except BackendUnavailableError:
            if not sent:
                raise Unavailable("the shard connection closed") from None
            if rows:
                proto.send_rows(rows)
            raise

    def _definition(self, payload: bytes, database: bytes, schema: str) -> bytes:
        """A column definition naming the keyspace where the shard names its database (as the engine path)."""
        key = (payload, database, schema)
        found = self._shapes.get(key)
        if found is not None:
            return found
        n, pos = read_lenenc(payload, 0)  # catalog
        start = pos + n
        size, body = read_lenenc(payload, start)
        if bytes(payload[body:body + size]) == database:
            name = schema.encode("utf-8")
            found = payload[:start] + bytes((len(name),)) + name + payload[body + size:] if len(name) < 251 \
                else payload
        else:
            found = payload
        if len(self._shapes) >= MAX_SHAPES:
            self._shapes.clear()
        self._shapes[key] = found
        return found

    @staticmethod
    async def _warnings(runner: Any, conn: RawConnection, count: int) -> None:
        """The shard's warnings become the session's (``SHOW WARNINGS``); none: the list is emptied."""
        if not count:
            runner.warnings = []
            return
        try:
            rows = await conn.simple_query("SHOW WARNINGS")
            runner.warnings = [(r[2] or b"").decode("utf-8", "replace") for r in rows if len(r) >= 3]
        except BackendUnavailableError:
            runner.warnings = [f"{count} warning(s) on the shard"]


def _fast_key(spec: Any, sql: str, params: Any) -> tuple[Any, ...]:
    """What makes two forwarded reads identical for consolidation: the server, the text and, for a prepared
    statement, its parameter values (one text with ``?`` serves every point read of a table)."""
    return (spec.host, spec.port, sql, tuple(params) if params else ())


def _plain_primary(shard: Any) -> Any:
    """The shard's primary backend when the fast path can reach it (one server, no TLS), else None."""
    spec = shard.backends.get("primary")
    if spec is None or isinstance(spec, (list, tuple)) or getattr(spec, "tls_mode", TLSMode.DISABLE) \
            is not TLSMode.DISABLE or not hasattr(spec, "dsn"):
        return None
    return spec


def _execute_payload(statement_id: int, params: list[Any]) -> bytes:
    parts = [_COM_STMT_EXECUTE, _HEAD.pack(statement_id), _EXEC_TAIL]
    if params:
        bitmap = bytearray((len(params) + 7) >> 3)
        types = bytearray()
        values = []
        for i, v in enumerate(params):
            if type(v) is int and -_BIG <= v < _BIG:  # what nearly every client sends: a signed LONGLONG
                types += _LONGLONG
                values.append(_I64.pack(v))
                continue
            t, unsigned = param_type_of(v)
            types += bytes((int(t), 0x80 if unsigned else 0))
            if v is None:
                bitmap[i >> 3] |= 1 << (i & 7)
            else:
                values.append(encode_param(v, t, unsigned))
        parts += [bytes(bitmap), b"\x01", bytes(types), *values]
    return b"".join(parts)


def _shard_error(payload: bytes, target: Target) -> BaseException:
    """The shard's ERR as the engine path reports it (its errno and SQLSTATE kept)."""
    import pymysql

    errno, state, message = error_of(payload)
    exc = pymysql.err.OperationalError(errno, message)
    exc.sqlstate = state  # type: ignore[attr-defined]
    label = f"{target.keyspace}/{target.shard}"
    return map_mysql_error(exc, label, shard=label).error


async def _kill_shard_query(spec: Any, conn: RawConnection) -> None:
    """KILL QUERY for what ``conn`` runs, over a connection of its own (the interrupted task waits for it)."""
    async def kill() -> None:
        dsn = spec.dsn()
        side = await open_raw(dsn.host, dsn.port, dsn.user, dsn.password, dsn.database, timeout=3.0)
        try:
            await side.simple_query(f"KILL QUERY {conn.thread_id}")
        finally:
            side.close()

    task = asyncio.ensure_future(asyncio.wait_for(kill(), 5.0))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        pass  # cancelled again while waiting: the kill goes on in the background
    except (BackendUnavailableError, TimeoutError, OSError) as exc:
        log.info("KILL QUERY on shard %s:%s failed: %s", spec.host, spec.port, exc)
