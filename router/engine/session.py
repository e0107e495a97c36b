"""A client session as the engine needs it, protocol-neutral: current keyspace/target, settings, the transaction,
and the statements that act on the session rather than on shards (BEGIN/COMMIT/ROLLBACK/SAVEPOINT, SET, USE,
ALTER VSCHEMA, VEXPLAIN QUERIES).

    session = gateway.session(dialect="mysql", keyspace="customer")
    await session.execute("BEGIN")
    await session.execute("UPDATE customer SET name = 'x' WHERE customer_id = 1")
    await session.execute("COMMIT")
    async with session.stream("SELECT …") as ex:
        async for batch in ex: …

Settings the router keeps (``SET name = value``):

- ``autocommit`` (MySQL): 0 opens a transaction at the first statement that reaches a shard, kept until COMMIT or
  ROLLBACK. PostgreSQL clients begin explicitly; both protocols commit each statement by itself otherwise.
- ``transaction_mode``: ``single`` | ``multi`` (default) | ``twopc`` (see ``router.engine.transaction``).
- ``workload``: ``oltp`` (default: the row cap applies) | ``olap`` (no cap on rows held in router memory).
- ``query_timeout`` (ms, 0 = none) and ``transaction_timeout`` (ms, 0 = none).
- ``sql_mode`` (MySQL): kept; ``ANSI_QUOTES`` and ``NO_BACKSLASH_ESCAPES`` change how statements are read, and
  ``NO_AUTO_VALUE_ON_ZERO`` whether an auto-increment 0 draws from the sequence.

A write that must run on several shards, or maintains lookup vindexes, runs in a transaction: the session's own,
or one opened for that statement alone (committed or rolled back with it) in autocommit mode.

Other session variables are remembered (``variables``) and carried to the shards, whose connections the router
shares between sessions (``router.engine.session_state``): settings it knows (``time_zone``, ``search_path``,
``work_mem``…) are replayed on each connection lent to the session; others are run on the connections the session
then keeps (pinned), as are temporary tables, user-level locks and the like.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import cython_ext
from router import activity
from router.access import guard_rows
from router.activity import Activity
from router.admin_console import ADMIN_SHOWS
from router.admin_console import answer as admin_answer
from router.admin_reload import RELOAD_SHOWS, reload_statement, replicas_serve
from router.backend.result import Column, Row
from router.engine.consolidate import after_statement, read_scope
from router.engine.context import Limits
from router.engine.pools_context import PoolContext
from router.engine.run import Execution, run
from router.engine.runtime import synthetic_column
from router.engine.session_state import SessionBackend, render_value, variable_kind
from router.engine.transaction import Characteristics, Transaction, TxMode
from router.planner import BoundPlan, Planner, SessionView
from router.planner import session_plan as sp
from router.planner.special import Assignment, SetCharset, SetNames, Word
from router.planner.values import Arg, evaluate
from router.rules import ALLOW, Decision
from sharding.errors import (
    InvalidValueError,
    PermissionDeniedError,
    ShardgateError,
    TransactionError,
    UnsupportedError,
)
from sharding.snapshot import ClusterSnapshot

if TYPE_CHECKING:
    from router.backend.pools import PoolSet

__all__ = ["Result", "Session", "SessionHost", "SessionState"]


class SessionHost(Protocol):
    """What a session needs from whoever owns the pools, the planner and the snapshot (``router.gateway``)."""

    planner: Planner
    pools: PoolSet
    limits: Limits
    coordinator: Any  # router.engine.twopc.TwoPhaseCoordinator | None

    @property
    def snapshot(self) -> ClusterSnapshot: ...

    def backend_dialect(self, keyspace: str) -> str: ...

    async def apply_vschema_ddl(self, statement: Any, keyspace: str) -> list[str]: ...


class Result(list[Row]):
    """A statement's rows (a list of tuples) with its columns and the totals of a write."""

    def __init__(self, rows: Sequence[Row] = (), columns: tuple[Column, ...] = (), *, rows_affected: int = 0,
                 last_insert_id: int | None = None, warnings: Sequence[str] = (), has_rows: bool = True) -> None:
        super().__init__(rows)
        self.columns = columns
        self.rows_affected = rows_affected
        self.last_insert_id = last_insert_id
        self.warnings = list(warnings)
        self.has_rows = has_rows

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def rows(self) -> list[Row]:
        return list(self)


@dataclass
class SessionState:
    dialect: str = "mysql"
    keyspace: str | None = None
    target: str | None = None
    tablet_type: str = "primary"
    autocommit: bool = True
    tx_mode: TxMode = TxMode.MULTI
    workload: str = "oltp"
    query_timeout: float | None = None  # seconds
    tx_timeout: float | None = None  # seconds
    sql_mode: str = ""
    next_characteristics: Characteristics | None = None  # MySQL SET TRANSACTION: the next transaction only
    # SET SESSION CHARACTERISTICS / SET SESSION TRANSACTION: every transaction of the session
    characteristics: Characteristics = field(default_factory=Characteristics)
    variables: dict[str, Any] = field(default_factory=dict)
    user_variables: dict[str, Any] = field(default_factory=dict)
    user: str = ""
    client_addr: str | None = None  # the client's IP address, for query rules (None: Unix socket, embedded API)


class _Done:
    """An Execution-shaped answer of a session statement (no shard work left)."""

    def __init__(self, columns: tuple[Column, ...] = (), rows: Sequence[Row] = (), *, warnings: Sequence[str] = (),
                 has_rows: bool = False, rows_affected: int = 0) -> None:
        self.columns = columns
        self._rows = list(rows)
        self.warnings = list(warnings)
        self.has_rows = has_rows or bool(columns)
        self.rows_affected = rows_affected
        self.last_insert_id: int | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __aiter__(self) -> _Done:
        return self

    async def __anext__(self) -> list[Row]:
        if not self._rows:
            raise StopAsyncIteration
        rows, self._rows = self._rows, []
        return rows

    async def fetchall(self) -> list[Row]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []


_BOOL_WORDS = {"1": True, "on": True, "true": True, "yes": True, "0": False, "off": False, "false": False, "no": False}


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    key = str(value).strip().lower()
    if key not in _BOOL_WORDS:
        raise InvalidValueError(f"variable '{name}' can't be set to the value of '{value}'")
    return _BOOL_WORDS[key]


def _millis(name: str, value: Any) -> float | None:
    try:
        ms = float(value)
    except (TypeError, ValueError):
        raise InvalidValueError(f"variable '{name}' needs a number of milliseconds, got {value!r}") from None
    if ms < 0:
        raise InvalidValueError(f"variable '{name}' cannot be negative")
    return None if ms == 0 else ms / 1000.0


_session_ids = itertools.count(1)


class Session:
    """One client session (see the module docstring)."""

    def __init__(self, host: SessionHost, dialect: str = "mysql", keyspace: str | None = None, *,
                 user: str = "", tx_mode: TxMode | str | None = None) -> None:
        if dialect not in ("mysql", "postgres"):
            raise InvalidValueError(f"unknown dialect {dialect!r}: use 'mysql' or 'postgres'")
        self.host = host
        self.state = SessionState(dialect=dialect, keyspace=keyspace, user=user)
        if tx_mode is not None:
            self.state.tx_mode = TxMode(tx_mode)
        self.tx: Transaction | None = None
        self.last_warnings: list[str] = []
        self._view: SessionView | None = None
        self.closed = False
        # Transaction pooling: replayed settings and pinned connections (router.engine.session_state).
        self.backend = SessionBackend(host.pools, dialect, host.backend_dialect)
        self._backend_changes: list[tuple[str, str, str | None]] = []
        # What the admin console and the query log show (router.activity); frontends set protocol/client/conn_id.
        self.id = next(_session_ids)
        self.conn_id: int | None = None
        self.protocol = "api"
        self.client = ""
        self.created = time.time()
        self.current: Activity | None = None
        # Consolidation (router.engine.consolidate): when this session last wrote each table, the scope of the
        # running read, the tables written in the open transaction.
        self.write_marks: dict[str, int] = {}
        self.share_scope: Any = None
        self.tx_written: set[str] = set()
        self.read_role: str | None = None  # set by the gateway from the user's default tablet type

    # --- views of the state --------------------------------------------------------------------------------------
    @property
    def dialect(self) -> str:
        return self.state.dialect

    @property
    def sql_mode(self) -> str:
        return self.state.sql_mode

    @property
    def in_transaction(self) -> bool:
        return self.tx is not None

    def view(self) -> SessionView:
        if self._view is None:
            s = self.state
            self._view = SessionView(dialect=s.dialect, keyspace=s.keyspace, target=s.target,
                                     tablet_type=s.tablet_type, fingerprint_flags=self._flags(), user=s.user)
        return self._view

    def _flags(self) -> int:
        if self.state.dialect != "mysql" or not self.state.sql_mode:
            return 0
        fp = cython_ext.fingerprint
        mode = self.state.sql_mode.upper()
        flags = 0
        if "ANSI_QUOTES" in mode or "ANSI" in mode.split(","):
            flags |= fp.ANSI_QUOTES
        if "NO_BACKSLASH_ESCAPES" in mode:
            flags |= fp.NO_BACKSLASH_ESCAPES
        return flags

    def limits(self) -> Limits:
        base = self.host.limits
        s = self.state
        changes: dict[str, Any] = {}
        if s.workload == "olap":
            changes["max_rows"] = None
        if s.query_timeout is not None:
            changes["query_timeout"] = s.query_timeout
        return base.with_changes(**changes) if changes else base

    # --- statements ----------------------------------------------------------------------------------------------
    async def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Result:
        """Run one statement to its end: its rows (a ``Result``), or the totals of a write."""
        async with self.stream(sql, params) as ex:
            rows = await ex.fetchall()
            return Result(rows, ex.columns, rows_affected=ex.rows_affected, last_insert_id=ex.last_insert_id,
                          warnings=list(ex.warnings), has_rows=ex.has_rows)

    @contextlib.asynccontextmanager
    async def stream(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
                     ) -> AsyncIterator[Execution | _Done]:
        """Start one statement; the block reads its batches (``async for batch in ex``)."""
        if self.closed:
            raise TransactionError("the session is closed")
        self.last_warnings = []
        act = activity.begin(self)
        failure: BaseException | None = None
        try:
            snapshot = self.host.snapshot
            bound = self.host.planner.plan(sql, self.view(), snapshot, params)
            act.kind = bound.plan.kind
            act.fingerprint = bound.fingerprint or activity.fingerprint_of(sql, self.state.dialect)  # ours: none
            decision = self.authorize(bound, params)  # ACLs and query rules (router.access), before any I/O
            root = bound.plan.root
            handler = _SESSION_STATEMENTS.get(type(root))
            if handler is None and type(root) is sp.Show and root.statement.kind in RELOAD_SHOWS:
                handler = Session._reload_show
            if handler is None and type(root) is sp.Show and root.statement.kind in ADMIN_SHOWS:
                handler = Session._admin_show
            if handler is not None:
                done = await handler(self, root, bound, params)
                after_statement(self, bound.plan)
                self.last_warnings = list(done.warnings) + list(bound.plan.warnings)
                done.warnings = self.last_warnings
                act.rows = len(done._rows)
                yield done
                return
            buffer = getattr(self.host, "buffer", None)
            if buffer is not None and buffer.active and self.tx is None:
                bound, snapshot = await buffer.hold(self, sql, params, bound, snapshot)  # paused shards: wait, re-plan
                decision = self.authorize(bound, params, log_it=False)  # the new plan is judged again
            async with self._routed(bound, snapshot, params, decision) as ex:
                try:
                    yield ex
                finally:
                    act.rows = ex.rows_read
        except BaseException as exc:
            failure = exc
            raise
        finally:
            activity.finish(self, act, sql, failure)

    @contextlib.asynccontextmanager
    async def _routed(self, bound: BoundPlan, snapshot: ClusterSnapshot,
                      params: Sequence[Any] | Mapping[str, Any] | None, decision: Decision = ALLOW
                      ) -> AsyncIterator[Execution]:
        self._check_tx()
        implicit: Transaction | None = None
        if self.tx is None:
            if not self.state.autocommit:
                self.tx = self._new_tx()
            elif bound.plan.root.needs_transaction():
                implicit = self._new_tx(implicit=True)
        tx = self.tx or implicit
        limits = self.limits()
        if decision.timeout_ms is not None:  # a query rule's timeout: the smaller one wins
            rule_timeout = decision.timeout_ms / 1000.0
            if limits.query_timeout is None or rule_timeout < limits.query_timeout:
                limits = limits.with_changes(query_timeout=rule_timeout)
        ctx = PoolContext(self.backend, snapshot, limits, tx=tx,
                          dialect_cache=getattr(self.host, "dialect_cache", None))
        if self.current is not None:
            ctx.touched = self.current.targets  # the shards this statement reaches (metrics, SHOW SHARDGATE QUERIES)
        self.share_scope = read_scope(self, bound) if tx is None else None
        passthrough_ok = self.view().fingerprint_flags == 0
        sql_bound = bound if passthrough_ok else bound._replace(sql="")
        role = "primary" if tx is not None or bound.plan.kind != "select" else self._role()  # writes read there too
        if decision.route_to_replica and tx is None and replicas_serve(bound.plan, snapshot):
            role = "replica"
        ex = run(sql_bound, ctx, snapshot, dialect=self.state.dialect, params=params, limits=ctx.limits,
                 session=self, tablet_role=role)
        policy = getattr(self.host, "access", None)
        row_filter = policy.row_filter(bound, self.state.user) if policy is not None else None
        ex = guard_rows(ex, decision, row_filter)  # rule row_limit, SHOW TABLES filtered by the ACLs
        ok = False
        try:
            await ex.open()
            yield ex
            ok = True
        except TransactionError:
            await self._abort_tx(implicit)
            raise
        finally:
            self.share_scope = None
            await ex.close()
            if implicit is not None:
                if ok:
                    warnings = await implicit.commit()
                    ex.warnings.extend(warnings)
                else:
                    await implicit.rollback()
            after_statement(self, bound.plan)  # after the commit: reads joined from here on see the write
            self.last_warnings = list(ex.warnings) + list(bound.plan.warnings)

    def authorize(self, bound: BoundPlan, params: Any = None, *, log_it: bool = True) -> Decision:
        """The ACLs and query rules of the host's ``access`` policy on a planned statement: raises
        ``PermissionDeniedError`` when refused, else returns the rules' settings (``router.access``). Every path
        that runs a statement for a client calls this after planning and before any I/O."""
        policy = getattr(self.host, "access", None)
        if policy is None:
            return ALLOW
        s = self.state
        return policy.authorize(bound, user=s.user, client_addr=s.client_addr, keyspace=s.keyspace, params=params,
                                backend_dialect=self.host.backend_dialect, log_it=log_it)

    def check_unplanned(self, sql: str, keyspace: str, kind: str = "select") -> None:
        """``authorize`` for a statement a frontend sends to ``keyspace``'s shards as written, without a plan."""
        policy = getattr(self.host, "access", None)
        if policy is not None:
            s = self.state
            policy.check_unplanned(sql, user=s.user, client_addr=s.client_addr, keyspace=keyspace, kind=kind,
                                   dialect=self.host.backend_dialect(keyspace))

    def check_text(self, sql: str, params: Any = None) -> None:
        """Whether the session may have ``sql`` described (its columns read on a shard, not run): planned and
        authorized without logging; a text the planner cannot read is allowed only as an unplanned statement
        (``check_unplanned``), and otherwise refused with the planner's own error."""
        try:
            bound = self.host.planner.plan(sql, self.view(), self.host.snapshot, params)
        except ShardgateError as planning:
            policy = getattr(self.host, "access", None)
            if policy is None or policy.acl is None or not self.state.user:
                return
            try:
                keyspace = self.state.keyspace or next(iter(sorted(self.host.snapshot.keyspaces)), "")
                self.check_unplanned(sql, keyspace)
            except PermissionDeniedError:
                raise planning from None
            return
        self.authorize(bound, params, log_it=False)

    def _role(self) -> str:
        t = (self.state.tablet_type or "primary").lower()
        if t == "primary" and self.read_role is not None:
            return self.read_role  # the user's default for reads (replica_health.users); writes stay on the primary
        return "replica" if t in ("replica", "rdonly") else "primary"

    def _check_tx(self) -> None:
        tx = self.tx
        if tx is not None and tx.killed is not None:
            self.tx = None
            raise TransactionError(tx.killed)

    def _new_tx(self, implicit: bool = False) -> Transaction:
        s = self.state
        chars = s.next_characteristics or s.characteristics
        s.next_characteristics = None
        return Transaction(self.backend, self.host.backend_dialect, s.tx_mode, characteristics=chars,
                           coordinator=self.host.coordinator, timeout=s.tx_timeout, implicit=implicit)

    async def _abort_tx(self, implicit: Transaction | None) -> None:
        """A transaction-mode violation rolls the whole transaction back (single mode, savepoints)."""
        if implicit is not None:
            await implicit.rollback()
        tx, self.tx = self.tx, None
        if tx is not None:
            await tx.rollback()

    # --- transactions through the API ----------------------------------------------------------------------------
    async def begin(self) -> None:
        await self.execute("BEGIN")

    async def commit(self) -> list[str]:
        return (await self.execute("COMMIT")).warnings

    async def rollback(self) -> None:
        await self.execute("ROLLBACK")

    async def close(self) -> None:
        """Roll back an open transaction and give its connections back."""
        if self.closed:
            return
        self.closed = True
        tx, self.tx = self.tx, None
        try:
            if tx is not None:
                await tx.rollback()
        finally:
            await self.backend.close()  # pinned connections go back (reset by their pools)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- session statements --------------------------------------------------------------------------------------
    async def _transaction(self, prim: sp.Transaction, bound: BoundPlan, params: Any) -> _Done:
        op = prim.op
        warnings: list[str] = []
        if op == "begin":
            if self.tx is not None:
                if self.state.dialect == "mysql":  # MySQL: BEGIN commits the open transaction first
                    tx, self.tx = self.tx, None
                    warnings.extend(await tx.commit())
                else:
                    warnings.append("there is already a transaction in progress")
                    return _Done(warnings=warnings)
            s = self.state
            explicit = Characteristics(prim.isolation, prim.read_only, prim.deferrable)
            if explicit != Characteristics():
                base = s.next_characteristics or s.characteristics
                s.next_characteristics = Characteristics(explicit.isolation or base.isolation,
                                                         explicit.read_only if explicit.read_only is not None
                                                         else base.read_only,
                                                         explicit.deferrable if explicit.deferrable is not None
                                                         else base.deferrable)
            self.tx = self._new_tx()
            return _Done(warnings=warnings)
        if op in ("commit", "rollback"):
            ending, self.tx = self.tx, None
            if ending is None:
                if self.state.dialect == "postgres":
                    warnings.append("there is no transaction in progress")
                return _Done(warnings=warnings)
            if ending.killed is not None:
                await ending.rollback()
                raise TransactionError(ending.killed)
            if op == "commit":
                warnings.extend(await ending.commit())
            else:
                await ending.rollback()
            if prim.chain:
                self.tx = self._new_tx()
            return _Done(warnings=warnings)
        # savepoint | release | rollback_to
        name = prim.savepoint or ""
        if self.tx is None:
            if op == "savepoint" and self.state.dialect == "mysql":
                return _Done()  # autocommit: a savepoint of a one-statement transaction, gone at once
            raise TransactionError(f"{op.upper().replace('_', ' TO ')} {name}: no transaction is open")
        self._check_tx()
        await self.tx.savepoint(op, name)
        return _Done()

    async def _set(self, prim: sp.SetVariables, bound: BoundPlan, params: Any) -> _Done:
        warnings: list[str] = []
        self._backend_changes = []
        sql_mode = self.state.sql_mode
        for item in prim.items:
            if isinstance(item, (SetNames, SetCharset)):
                charset = (item.charset or "utf8mb4").lower()
                if charset not in ("utf8mb4", "utf8", "utf8mb3", "default"):
                    warnings.append(f"character set {charset} is not applied: the router speaks utf8mb4 to shards")
                continue
            warnings.extend(self._assign(item, bound, params))
        self._view = None
        try:
            await self._apply_backend_changes()
        except ShardgateError:
            self.state.sql_mode = sql_mode  # a shard refused it: the session keeps its mode
            raise
        return _Done(warnings=warnings)

    def _value(self, item: Assignment, bound: BoundPlan, params: Any) -> Any:
        value = item.value
        if isinstance(value, Arg):
            if bound.binds:
                return evaluate(value, bound.binds)
            if isinstance(params, Sequence) and not isinstance(params, str) and value.index < len(params):
                return params[value.index]
            raise InvalidValueError(f"no value for the parameter of SET {item.name}")
        if isinstance(value, tuple):
            return ", ".join(str(v) for v in value)
        if type(value).__name__ == "RawExpr":
            raise UnsupportedError(f"SET {item.name} = {value.text}: only plain values can be set at the router")
        return str(value) if isinstance(value, Word) else value

    def _assign(self, item: Assignment, bound: BoundPlan, params: Any) -> list[str]:
        name, scope = item.name, item.scope
        if scope == "user":
            self.state.user_variables[name] = self._value(item, bound, params)
            return []
        if scope in ("global", "persist", "persist_only"):
            raise UnsupportedError(f"SET {scope.upper()} {name}: the router does not change server-wide settings")
        value = self._value(item, bound, params)
        s = self.state
        default = isinstance(item.value, Word) and str(item.value).upper() == "DEFAULT"
        if name == "autocommit":
            on = True if default else _as_bool(name, value)
            s.autocommit = on
            return []
        if name in ("transaction_mode", "shardgate_transaction_mode"):
            mode = "multi" if default else str(value).strip().lower()
            if mode not in ("single", "multi", "twopc"):
                raise InvalidValueError(f"transaction_mode must be single, multi or twopc, got {value!r}")
            if mode == "twopc" and self.host.coordinator is None:
                raise TransactionError("transaction_mode twopc needs a decision log directory (twopc_dir) configured")
            if self.tx is not None and self.tx.participants:
                raise TransactionError("transaction_mode cannot change inside a transaction")
            s.tx_mode = TxMode(mode)
            if self.tx is not None:
                self.tx.mode = s.tx_mode
            return []
        if name == "workload":
            w = "oltp" if default else str(value).strip().lower()
            if w not in ("oltp", "olap", "dba"):
                raise InvalidValueError(f"workload must be oltp, olap or dba, got {value!r}")
            s.workload = "olap" if w == "olap" else w
            return []
        if name in ("query_timeout", "max_execution_time", "statement_timeout"):
            s.query_timeout = None if default else _millis(name, value)
            return []
        if name == "transaction_timeout":
            s.tx_timeout = None if default else _millis(name, value)
            return []
        if name == "sql_mode":
            s.sql_mode = "" if default else str(value)
            if s.dialect == "mysql":  # also the shards' (without the flags that change how SQL is read)
                self._backend_changes.append(("replay", name, None if default else render_value(
                    name, item.value, value, "mysql")))
            return []
        s.variables[name] = value
        kind = variable_kind(name, s.dialect)
        if kind != "harmless":  # replayed on every connection lent to the session, or run there and pinned
            text = None if default else render_value(name, item.value, value, s.dialect, self.host.snapshot.keyspaces)
            self._backend_changes.append((kind, name, text))
        return []

    def backend_param(self, name: str, value: str | None) -> None:
        """A setting a frontend keeps itself (PostgreSQL ``TimeZone``, ``DateStyle``, ``application_name``) that the
        shards must see as well: replayed on the connections lent to the session from now on (None: the default)."""
        text = None if value is None else render_value(name, value, value, self.state.dialect)
        self.backend.set_replayed(name.lower(), text)

    async def _apply_backend_changes(self) -> None:
        """Carry this SET's variables to the shards' connections (``router.engine.session_state``): replayed ones
        are tried at once on a connection (an invalid value fails the SET, and the session keeps what it had);
        unknown ones are run there and pin it."""
        changes, self._backend_changes = self._backend_changes, []
        if not changes:
            return
        backend = self.backend
        held = [p.conn for p in self.tx.participants.values()] if self.tx is not None else []
        keyspace, shard = self._home_shard()
        before = backend.settings
        replayed = False
        try:
            for kind, name, text in changes:
                if kind == "replay":
                    replayed = backend.set_replayed(name, text) or replayed
                else:
                    await backend.set_unknown(name, text, keyspace, shard, held)
            if replayed and not await backend.sync_held(held):
                await backend.check(keyspace, shard)
        except ShardgateError:
            backend.settings = before
            for _kind, name, _text in changes:
                self.state.variables.pop(name, None)
            raise

    def _home_shard(self) -> tuple[str | None, str | None]:
        """The shard a SET is tried on: the session's target shard, or its keyspace's first."""
        s = self.state
        if not s.keyspace:
            return None, None
        if s.target:
            return s.keyspace, s.target
        try:
            shards = self.host.snapshot.shards(s.keyspace)
        except ShardgateError:
            return None, None
        return (s.keyspace, shards[0].name) if shards else (None, None)

    async def _set_tx(self, prim: sp.TransactionCharacteristics, bound: BoundPlan, params: Any) -> _Done:
        chars = Characteristics(prim.isolation, prim.read_only, prim.deferrable)
        s = self.state
        if prim.scope == "next":
            s.next_characteristics = chars
        elif prim.scope == "session":
            s.characteristics = chars
        elif prim.scope == "transaction":
            if self.tx is None:
                raise TransactionError("SET TRANSACTION can only be used in transaction blocks")
            if self.tx.participants:
                raise UnsupportedError("SET TRANSACTION after the transaction reached a shard is not supported")
            self.tx.characteristics = chars
        else:
            raise UnsupportedError(f"SET {prim.scope.upper()} TRANSACTION is not supported at the router")
        return _Done()

    async def _reset(self, prim: sp.ResetVariables, bound: BoundPlan, params: Any) -> _Done:
        s = self.state
        if prim.name is None:
            s.variables.clear()
            s.query_timeout = None
            s.workload = "oltp"
            await self.backend.reset_all()
        else:
            s.variables.pop(prim.name, None)
            if prim.name in ("statement_timeout", "query_timeout"):
                s.query_timeout = None
            kind = variable_kind(prim.name, s.dialect)
            if kind == "replay" or (kind == "unknown" and prim.name.lower() in self.backend.session_sets):
                self._backend_changes.append((kind, prim.name, None))
                await self._apply_backend_changes()
        return _Done()

    async def _use(self, prim: sp.UseTarget, bound: BoundPlan, params: Any) -> _Done:
        s = self.state
        if prim.keyspace:
            s.keyspace = prim.keyspace
            s.target = prim.target
        elif prim.target is not None:
            s.target = prim.target
        if prim.tablet_type is not None:
            s.tablet_type = prim.tablet_type
        self._view = None
        return _Done()

    async def _vschema_ddl(self, prim: sp.VSchemaDDL, bound: BoundPlan, params: Any) -> _Done:
        self._require_admin("ALTER VSCHEMA")
        notes = await self.host.apply_vschema_ddl(prim.statement, prim.keyspace.name)
        return _Done(warnings=notes)

    async def _vexplain(self, prim: sp.VExplain, bound: BoundPlan, params: Any) -> _Done:
        snapshot = self.host.snapshot
        inner = self.host.planner.plan(prim.sql, self.view(), snapshot, params)
        self.authorize(inner, params)  # what VEXPLAIN QUERIES runs is judged as itself
        if prim.mode == "plan":
            from router.planner.explain import explain

            text = json.dumps(explain(inner, snapshot, self.backend_dialect_for(inner)), indent=2, default=str)
            return _Done((synthetic_column("JSON"),), [(text,)])
        recorded: list[tuple[str, str, str]] = []
        ctx = _Recording(PoolContext(self.backend, snapshot, self.limits(), tx=self.tx), recorded)
        ex = run(inner, ctx, snapshot, dialect=self.state.dialect, params=params, session=self)
        await ex.fetchall()
        rows = [(i, ks, shard, sql) for i, (ks, shard, sql) in enumerate(recorded)]
        names = ("#", "keyspace", "shard", "query")  # fixed types: a client may describe it before it runs
        return _Done(tuple(synthetic_column(n, sample) for n, sample in zip(names, (0, "", "", ""), strict=True)),
                     rows)

    async def _admin_show(self, prim: sp.Show, bound: BoundPlan, params: Any) -> _Done:
        stmt = prim.statement
        self._require_admin("SHOW " + stmt.kind.upper().replace("_", " ", 1))
        columns, rows = admin_answer(self, stmt)
        return _Done(columns, rows)

    async def _reload_show(self, prim: sp.Show, bound: BoundPlan, params: Any) -> _Done:
        """``SHOW SHARDGATE RULES`` and ``RELOAD`` (admin only; ``router.admin_reload``)."""
        kind = prim.statement.kind
        self._require_admin("RELOAD" if kind == "shardgate_reload" else "SHOW SHARDGATE RULES")
        names, rows, notes = await reload_statement(self, kind)
        return _Done(tuple(synthetic_column(n, rows[0][i] if rows else None) for i, n in enumerate(names)), rows,
                     warnings=notes)

    def _require_admin(self, what: str) -> None:
        """VSchema DDL and the admin console need the admin role. Sessions of the embedded Python API carry no
        user (the embedding program is trusted); every frontend session names its authenticated user."""
        user = self.state.user
        if not user:
            return
        config = getattr(self.host, "config", None)
        entry = config.user(user) if config is not None else None
        if entry is None or "admin" not in entry.roles:
            raise PermissionDeniedError(f"{what} denied to user '{user}': it needs the admin role")

    def backend_dialect_for(self, bound: BoundPlan) -> str:
        return self.state.dialect


class _Recording:
    """Wraps a context and notes every statement sent (VEXPLAIN QUERIES)."""

    def __init__(self, inner: PoolContext, out: list[tuple[str, str, str]]) -> None:
        self.inner, self.out = inner, out
        self.limits = inner.limits

    def backend_dialect(self, keyspace: str) -> str:
        return self.inner.backend_dialect(keyspace)

    def joined_shards(self, keyspace: str) -> frozenset[str]:
        return self.inner.joined_shards(keyspace)

    def stream(self, target: Any, sql: str, *, timeout: float | None = None) -> Any:
        self.out.append((target.keyspace, target.shard, sql))
        return self.inner.stream(target, sql, timeout=timeout)

    async def execute(self, target: Any, sql: str, *, timeout: float | None = None, params: Any = None) -> Any:
        self.out.append((target.keyspace, target.shard, sql if not params else f"{sql} {list(params)!r}"))
        return await self.inner.execute(target, sql, timeout=timeout, params=params)

    async def reserve_ids(self, keyspace: str, table: str, count: int) -> int:
        return await self.inner.reserve_ids(keyspace, table, count)


_SESSION_STATEMENTS: dict[type, Any] = {
    sp.Transaction: Session._transaction,
    sp.SetVariables: Session._set,
    sp.TransactionCharacteristics: Session._set_tx,
    sp.ResetVariables: Session._reset,
    sp.UseTarget: Session._use,
    sp.VSchemaDDL: Session._vschema_ddl,
    sp.VExplain: Session._vexplain,
}
