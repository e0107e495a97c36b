"""One session's transaction across shards, in one of three modes (Vitess ``transaction_mode``):

- ``single``: the transaction may touch one shard; a statement reaching a second shard fails with
  ``TransactionError`` and the whole transaction is rolled back (the session says so).
- ``multi`` (default): shards join as statements reach them; COMMIT commits them one by one. When the first commit
  fails nothing is committed: the others roll back and COMMIT fails. When a later one fails, the earlier ones are
  committed for good: COMMIT succeeds with a warning naming what committed and what did not (a partial commit).
- ``twopc``: with two or more shards, COMMIT is two-phase (``router.engine.twopc``); with one, a plain commit.

Shards join lazily: BEGIN itself sends nothing; the first statement on a shard borrows a pooled connection for the
transaction's lifetime and begins there (with the transaction's isolation / read-only characteristics, and, in
``twopc`` mode, with an XA branch id so that MySQL can prepare it later). Statements on one participant are
serialized by a lock (a join's two sides may reach the same shard at once).

Savepoints are for single-shard transactions: a savepoint taken before any shard joined is replayed on the first
one; a second shard joining a transaction that has savepoints is refused (``TransactionError``).

A transaction timeout is enforced by a killer: when it fires, running statements are cancelled on their shards,
the transaction is rolled back and its connections go back; the next statement (or the COMMIT) of the session
learns why with ``TransactionError``.

Commit order (Vitess ``CommitOrder``): besides its normal participants, a transaction may hold ``pre`` and
``post`` ones, each a connection of its own (one per shard and order), used by consistent lookup vindexes
(``router.engine.lookup_write``): lookup rows created go to ``pre`` connections, committed before the normal ones;
lookup rows deleted go to ``post`` connections, committed after them. A failure before the owner rows commit can
then only leave extra (orphan) lookup rows, never an owner row without its lookup row. ``pre``/``post``
connections do not count as shards of the transaction (``single`` mode, savepoint checks); a savepoint is applied to
them too, so that rolling back to it undoes their writes as well. In ``twopc`` mode they are branches like the
others (all prepared before any commits).
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from router.backend.connection import BackendTarget
from router.backend.result import ExecResult, ResultSet
from sharding.errors import QueryCanceledError, ShardgateError, TransactionError

__all__ = ["ORDERS", "Characteristics", "Transaction", "TxMode"]

ORDERS = ("pre", "normal", "post")

log = logging.getLogger("shardgate.engine.transaction")


class TxMode(StrEnum):
    SINGLE = "single"
    MULTI = "multi"
    TWOPC = "twopc"


@dataclass(frozen=True, slots=True)
class Characteristics:
    isolation: str | None = None  # "REPEATABLE READ", "READ COMMITTED", "SERIALIZABLE", "READ UNCOMMITTED"
    read_only: bool | None = None
    deferrable: bool | None = None  # PostgreSQL

    def clauses(self, dialect: str) -> list[str]:
        out = []
        if self.isolation:
            out.append(f"ISOLATION LEVEL {self.isolation.upper()}")
        if self.read_only is not None:
            out.append("READ ONLY" if self.read_only else "READ WRITE")
        if self.deferrable is not None and dialect == "postgres":
            out.append("DEFERRABLE" if self.deferrable else "NOT DEFERRABLE")
        return out


@dataclass(eq=False)
class _Participant:
    target: BackendTarget
    conn: Any  # router.backend.lease.PooledConnection
    dialect: str
    branch: str | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    running: bool = False


def _quote_savepoint(name: str, dialect: str) -> str:
    return '"' + name.replace('"', '""') + '"' if dialect == "postgres" else "`" + name.replace("`", "``") + "`"


class Transaction:
    """See the module docstring. ``pools`` lends connections; ``dialect_of(keyspace)`` names the backend engine;
    ``coordinator`` runs two-phase commits (required in ``twopc`` mode)."""

    def __init__(self, pools: Any, dialect_of: Any, mode: TxMode = TxMode.MULTI, *,
                 characteristics: Characteristics = Characteristics(), coordinator: Any = None,
                 timeout: float | None = None, implicit: bool = False) -> None:
        if mode is TxMode.TWOPC and coordinator is None:
            raise TransactionError("transaction_mode twopc needs a decision log directory (twopc_dir) configured")
        self.pools = pools
        self.dialect_of = dialect_of
        self.mode = mode
        self.characteristics = characteristics
        self.coordinator = coordinator
        self.implicit = implicit  # opened by the router for one statement (autocommit DML on several shards)
        self.xid = coordinator.new_xid() if mode is TxMode.TWOPC else None
        self.participants: dict[BackendTarget, _Participant] = {}
        self.ordered: dict[tuple[str, BackendTarget], _Participant] = {}  # the "pre" and "post" participants
        # Rows written on pre/post connections, for their writer (``router.engine.lookup_write``): one row must not
        # be locked from two connections of one transaction, which would wait for each other until COMMIT.
        self.ordered_rows: dict[tuple[Any, ...], str] = {}
        self._joining: dict[BackendTarget, asyncio.Future[_Participant]] = {}
        self._joining_ordered: dict[tuple[str, BackendTarget], asyncio.Future[_Participant]] = {}
        self.savepoints: list[str] = []
        self._branches = itertools.count()
        self.killed: str | None = None
        self.finished = False
        self._killer: asyncio.TimerHandle | None = None
        self._kill_task: asyncio.Task[None] | None = None
        self.timeout = timeout
        if timeout:
            self._killer = asyncio.get_running_loop().call_later(timeout, self._on_timeout)

    # --- participants ------------------------------------------------------------------------------------------
    @property
    def shards(self) -> list[str]:
        return [t.shard_name for t in self.participants]

    def _check_open(self) -> None:
        if self.killed is not None:
            raise TransactionError(self.killed)
        if self.finished:
            raise TransactionError("the transaction is over")

    def _all(self) -> list[_Participant]:
        """Every participant in commit order: pre, normal, post."""
        pre = [p for (o, _t), p in self.ordered.items() if o == "pre"]
        post = [p for (o, _t), p in self.ordered.items() if o == "post"]
        return [*pre, *self.participants.values(), *post]

    async def participant(self, target: BackendTarget, order: str = "normal") -> _Participant:
        self._check_open()
        key = target if target.role == "primary" else BackendTarget(target.keyspace, target.shard, "primary")
        if order != "normal":
            return await self._ordered_participant(key, order)
        p = self.participants.get(key)
        if p is not None:
            return p
        pending = self._joining.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        others = [t for t in (*self.participants, *self._joining) if t != key]
        if others and self.mode is TxMode.SINGLE:
            raise TransactionError(
                f"transaction_mode single: this transaction is on {others[0].shard_name} and cannot also reach "
                f"{key.shard_name}; it was rolled back (use transaction_mode multi or twopc)")
        if others and self.savepoints:
            raise TransactionError(f"savepoints are supported only in single-shard transactions; "
                                   f"{key.shard_name} would be a second shard")
        fut: asyncio.Future[_Participant] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._joining[key] = fut
        try:
            p = await self._join(key)
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, Exception) else TransactionError("join cancelled"))
            raise
        finally:
            self._joining.pop(key, None)
        self.participants[key] = p
        fut.set_result(p)
        return p

    async def _ordered_participant(self, key: BackendTarget, order: str) -> _Participant:
        if order not in ORDERS:
            raise TransactionError(f"unknown commit order {order!r}")
        slot = (order, key)
        p = self.ordered.get(slot)
        if p is not None:
            return p
        pending = self._joining_ordered.get(slot)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[_Participant] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._joining_ordered[slot] = fut
        try:
            p = await self._join(key)
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, Exception) else TransactionError("join cancelled"))
            raise
        finally:
            self._joining_ordered.pop(slot, None)
        if self.finished or self.killed is not None:  # the transaction ended while this one joined
            with contextlib.suppress(BaseException):
                await self._rollback_quietly([p])
                await p.conn.release()
            self._check_open()
        self.ordered[slot] = p
        fut.set_result(p)
        return p

    async def _join(self, key: BackendTarget) -> _Participant:
        conn = await self.pools.acquire(key.keyspace, key.shard, "primary")
        dialect = self.dialect_of(key.keyspace)
        branch = f"{self.xid}.{next(self._branches)}" if self.xid else None
        try:
            clauses = self.characteristics.clauses(dialect)
            if clauses and dialect == "mysql":  # MySQL: characteristics apply to the NEXT transaction
                await conn.execute("SET TRANSACTION " + ", ".join(clauses))
            await conn.begin(branch)
            if clauses and dialect == "postgres":  # PostgreSQL: the first statement of the transaction
                await conn.execute("SET TRANSACTION " + " ".join(clauses))
            for name in self.savepoints:
                await conn.execute(f"SAVEPOINT {_quote_savepoint(name, dialect)}")
        except BaseException:
            with contextlib.suppress(BaseException):
                await conn.release()
            raise
        return _Participant(key, conn, dialect, branch)

    async def execute(self, target: BackendTarget, sql: str, *, timeout: float | None = None,
                      params: Sequence[Any] | None = None, order: str = "normal") -> ResultSet | ExecResult:
        p = await self.participant(target, order)
        async with p.lock:
            self._check_open()
            p.running = True
            try:
                return await p.conn.execute(sql, params, timeout=timeout)
            except QueryCanceledError:
                if self.killed is not None:
                    raise TransactionError(self.killed) from None
                raise
            finally:
                p.running = False

    # --- savepoints ----------------------------------------------------------------------------------------------
    async def savepoint(self, op: str, name: str) -> None:
        """``savepoint`` | ``release`` | ``rollback_to`` on the transaction's one shard (or remembered for it)."""
        self._check_open()
        parts = list(self.participants.values())
        if len(parts) > 1:
            raise TransactionError(f"savepoints are supported only in single-shard transactions; this one is on "
                                   f"{', '.join(self.shards)}")
        if op == "savepoint":
            if name in self.savepoints:
                self.savepoints.remove(name)
            self.savepoints.append(name)
        elif name not in self.savepoints:
            code = "SAVEPOINT does not exist" if op == "release" else "no such savepoint"
            raise TransactionError(f"{code}: {name}")
        else:
            index = self.savepoints.index(name)
            del self.savepoints[index + (1 if op == "rollback_to" else 0):]
        verb = {"savepoint": "SAVEPOINT", "release": "RELEASE SAVEPOINT", "rollback_to": "ROLLBACK TO SAVEPOINT"}[op]
        for p in [*parts, *self.ordered.values()]:
            async with p.lock:
                await p.conn.execute(f"{verb} {_quote_savepoint(name, p.dialect)}")

    # --- the end -------------------------------------------------------------------------------------------------
    async def commit(self) -> list[str]:
        """Commit (see the module docstring); returns warnings. Connections go back to their pools."""
        self._check_open()
        self._stop_killer()
        self.finished = True
        parts = self._all()
        try:
            if not parts:
                return []
            if len(parts) == 1:
                await parts[0].conn.commit()
                return []
            if self.mode is TxMode.TWOPC:  # every branch is prepared before any commits: the order holds
                return list(await self.coordinator.commit(
                    self.xid, [(p.target, p.branch, p.conn) for p in parts]))
            return await self._commit_in_order()
        except BaseException:
            await self._rollback_quietly(parts)
            raise
        finally:
            await self._release(parts)

    async def _commit_in_order(self) -> list[str]:
        """pre, then normal, then post. A pre failure fails the COMMIT (nothing of the client's rows committed;
        pre ones already committed are orphan lookup rows); a post failure only leaves orphan lookup rows (a
        warning), as does a partial normal commit (its post ones roll back: which owner rows committed is known
        per shard only)."""
        pre = [p for (o, _t), p in self.ordered.items() if o == "pre"]
        post = [p for (o, _t), p in self.ordered.items() if o == "post"]
        normal = list(self.participants.values())
        for i, p in enumerate(pre):
            try:
                await p.conn.commit()
            except ShardgateError as exc:
                await self._rollback_quietly([*pre[i + 1:], *normal, *post])
                exc.message = f"commit failed on {p.target.shard_name} (lookup rows; nothing was committed): " \
                              f"{exc.message}"
                exc.args = (exc.message,)
                raise
        warnings = await self._commit_one_by_one(normal)
        if warnings:
            await self._rollback_quietly(post)
            return warnings
        for i, p in enumerate(post):
            try:
                await p.conn.commit()
            except ShardgateError as exc:
                await self._rollback_quietly(post[i + 1:])
                return [f"the transaction committed, but removing old lookup rows failed on {p.target.shard_name} "
                        f"({exc.message}); they remain as orphan lookup rows"]
        return warnings

    async def _commit_one_by_one(self, parts: Sequence[_Participant]) -> list[str]:
        committed: list[str] = []
        for i, p in enumerate(parts):
            try:
                await p.conn.commit()
            except ShardgateError as exc:
                rest = parts[i + 1:]
                await self._rollback_quietly(rest)
                if not committed:
                    exc.message = f"commit failed on {p.target.shard_name} (nothing was committed): {exc.message}"
                    exc.args = (exc.message,)
                    raise
                rolled = [r.target.shard_name for r in rest]
                return [f"partial commit: committed on {', '.join(committed)}; failed on {p.target.shard_name} "
                        f"({exc.message})" + (f"; rolled back on {', '.join(rolled)}" if rolled else "")]
            committed.append(p.target.shard_name)
        return []

    async def rollback(self) -> None:
        self._stop_killer()
        if self.finished:
            return
        self.finished = True
        parts = self._all()
        try:
            await self._rollback_quietly(parts)
        finally:
            await self._release(parts)

    async def _rollback_quietly(self, parts: Sequence[_Participant]) -> None:
        async def one(p: _Participant) -> None:
            try:
                if p.conn.in_transaction:
                    await p.conn.rollback()
            except Exception as exc:  # the pool resets or discards the connection anyway
                log.info("rollback on %s failed: %s", p.target, type(exc).__name__)
                with contextlib.suppress(Exception):
                    p.conn.discard()

        await asyncio.gather(*(one(p) for p in parts), return_exceptions=True)

    async def _release(self, parts: Sequence[_Participant]) -> None:
        await asyncio.gather(*(p.conn.release() for p in parts), return_exceptions=True)
        self.participants.clear()
        self.ordered.clear()

    # --- the killer ----------------------------------------------------------------------------------------------
    def _stop_killer(self) -> None:
        if self._killer is not None:
            self._killer.cancel()
            self._killer = None

    def _on_timeout(self) -> None:
        self._killer = None
        if self.finished:
            return
        self.killed = f"transaction exceeded its {self.timeout:g} s timeout and was rolled back"
        self._kill_task = asyncio.get_running_loop().create_task(self._kill(), name="shardgate-tx-killer")

    async def _kill(self) -> None:
        parts = self._all()
        await asyncio.gather(*(p.conn.cancel() for p in parts if p.running), return_exceptions=True)
        self.finished = True

        async def one(p: _Participant) -> None:
            async with p.lock:  # wait for the cancelled statement to return
                await self._rollback_quietly([p])

        try:
            await asyncio.wait_for(asyncio.gather(*(one(p) for p in parts), return_exceptions=True), 10)
        except TimeoutError:
            for p in parts:
                with contextlib.suppress(Exception):
                    p.conn.discard()
        await self._release(parts)
