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

Other session variables are remembered (``variables``) and reported with a warning: they are not applied to the
shards' connections, which the router shares between sessions.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import cython_ext
from router.backend.result import Column, Row
from router.engine.context import Limits
from router.engine.pools_context import PoolContext
from router.engine.run import Execution, run
from router.engine.runtime import synthetic_column
from router.engine.transaction import Characteristics, Transaction, TxMode
from router.planner import BoundPlan, Planner, SessionView
from router.planner import session_plan as sp
from router.planner.special import Assignment, SetCharset, SetNames, Word
from router.planner.values import Arg, evaluate
from sharding.errors import InvalidValueError, PermissionDeniedError, TransactionError, UnsupportedError
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
_HARMLESS = frozenset({"names", "character_set_client", "character_set_connection", "character_set_results",
                       "client_encoding", "application_name", "extra_float_digits", "datestyle", "net_write_timeout",
                       "net_read_timeout", "wait_timeout", "interactive_timeout", "session_track_schema",
                       "session_track_state_change", "session_track_system_variables", "tx_isolation",
                       "transaction_isolation", "transaction_read_only"})


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
        snapshot = self.host.snapshot
        bound = self.host.planner.plan(sql, self.view(), snapshot, params)
        root = bound.plan.root
        handler = _SESSION_STATEMENTS.get(type(root))
        if handler is not None:
            done = await handler(self, root, bound, params)
            self.last_warnings = list(done.warnings) + list(bound.plan.warnings)
            done.warnings = self.last_warnings
            yield done
            return
        async with self._routed(bound, snapshot, params) as ex:
            yield ex

    @contextlib.asynccontextmanager
    async def _routed(self, bound: BoundPlan, snapshot: ClusterSnapshot,
                      params: Sequence[Any] | Mapping[str, Any] | None) -> AsyncIterator[Execution]:
        self._check_tx()
        implicit: Transaction | None = None
        if self.tx is None:
            if not self.state.autocommit:
                self.tx = self._new_tx()
            elif bound.plan.root.needs_transaction():
                implicit = self._new_tx(implicit=True)
        tx = self.tx or implicit
        ctx = PoolContext(self.host.pools, snapshot, self.limits(), tx=tx,
                          dialect_cache=getattr(self.host, "dialect_cache", None))
        passthrough_ok = self.view().fingerprint_flags == 0
        sql_bound = bound if passthrough_ok else bound._replace(sql="")
        ex = run(sql_bound, ctx, snapshot, dialect=self.state.dialect, params=params, limits=ctx.limits,
                 session=self, tablet_role="primary" if tx is not None else self._role())
        ok = False
        try:
            await ex.open()
            yield ex
            ok = True
        except TransactionError:
            await self._abort_tx(implicit)
            raise
        finally:
            await ex.close()
            if implicit is not None:
                if ok:
                    warnings = await implicit.commit()
                    ex.warnings.extend(warnings)
                else:
                    await implicit.rollback()
            self.last_warnings = list(ex.warnings) + list(bound.plan.warnings)

    def _role(self) -> str:
        t = (self.state.tablet_type or "primary").lower()
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
        return Transaction(self.host.pools, self.host.backend_dialect, s.tx_mode, characteristics=chars,
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
        if tx is not None:
            await tx.rollback()

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
        for item in prim.items:
            if isinstance(item, (SetNames, SetCharset)):
                charset = (item.charset or "utf8mb4").lower()
                if charset not in ("utf8mb4", "utf8", "utf8mb3", "default"):
                    warnings.append(f"character set {charset} is not applied: the router speaks utf8mb4 to shards")
                continue
            warnings.extend(self._assign(item, bound, params))
        self._view = None
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
            return []
        s.variables[name] = value
        if name.lower() in _HARMLESS:
            return []
        return [f"SET {name} is kept by the router but not applied to the shards' connections"]

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
        else:
            s.variables.pop(prim.name, None)
            if prim.name in ("statement_timeout", "query_timeout"):
                s.query_timeout = None
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
        if prim.mode == "plan":
            from router.planner.explain import explain

            text = json.dumps(explain(inner, snapshot, self.backend_dialect_for(inner)), indent=2, default=str)
            return _Done((synthetic_column("JSON"),), [(text,)])
        recorded: list[tuple[str, str, str]] = []
        ctx = _Recording(PoolContext(self.host.pools, snapshot, self.limits(), tx=self.tx), recorded)
        ex = run(inner, ctx, snapshot, dialect=self.state.dialect, params=params, session=self)
        await ex.fetchall()
        rows = [(i, ks, shard, sql) for i, (ks, shard, sql) in enumerate(recorded)]
        names = ("#", "keyspace", "shard", "query")
        return _Done(tuple(synthetic_column(n, rows[0][k] if rows else None) for k, n in enumerate(names)), rows)

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
