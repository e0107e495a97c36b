"""Reading shard results: one reader per (shard, statement), with bounded read-ahead.

- ``BufferedReader``: one ``ctx.execute``, the whole result in hand (point reads, partial aggregates, anything the
  plan says is small). One round trip; the rows are held by the caller's ``Source`` only until handed out.
- ``DirectReader``: a single-shard stream read in the consumer's own task: no task, no queue, natural
  backpressure (nothing is read until the consumer asks).
- ``PumpReader``: a stream read by its own task into a bounded queue (``Limits.prefetch_batches``), so several
  shards read concurrently while the consumer merges; a slow consumer fills the queues and the pumps stop reading,
  which stops the shards (TCP backpressure). ``close()`` cancels the task: leaving the stream early stops the
  statement on the server.
- ``FanIn``: the unordered union of several pumps through one bounded queue: batches are handed out as they
  arrive, from whichever shard is ready first.

All of them raise the shard's own error (a ``ShardgateError`` naming the shard) from ``open``/``next``.

``BufferedReader`` and ``DirectReader`` take ``share`` (a ``Consolidator`` and the statement's ``Scope``): an
identical read already in flight answers them (``router.engine.consolidate``); a leader's streamed rows are kept
for its followers up to the consolidation row cap. A read sent to a replica that finds the replica gone (nothing
was returned yet) is sent again to the primary, while ``router.backend.health`` bans the replica: the replica's
failure is the router's problem, not the client's.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from router.backend.connection import BackendTarget
from router.backend.result import Column, ResultSet, Row
from router.engine.consolidate import NOT_SHARED, Consolidator, Flight, Scope, hashable_key
from router.engine.runtime import Runtime
from sharding.errors import BackendError, BackendUnavailableError, InvalidValueError

__all__ = ["BufferedReader", "DirectReader", "FanIn", "PumpReader", "Reader", "close_all", "open_all"]

_END = object()
_CLOSE_GRACE = 5.0  # seconds a cancelled pump may take to stop its statement before we stop waiting


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Reader:
    """One shard's rows for one statement."""

    target: BackendTarget
    sql: str
    columns: tuple[Column, ...] = ()

    async def open(self) -> None:
        raise NotImplementedError

    async def next(self) -> list[Row] | None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


def _prepared_form_refused(exc: BackendError) -> bool:
    """The parameterized form could not run, so nothing ran: the server could not analyse it (class 42), or the
    driver could not encode a value for the type the server inferred (asyncpg's client-side ``DataError``, 22000
    "invalid input for query argument $n": ``WHERE $1 = $2`` infers text for an integer literal)."""
    state = str(exc.pg_sqlstate or "")
    return state.startswith("42") or (state == "22000" and "invalid input for query argument" in str(exc))


class BufferedReader(Reader):
    """``ctx.execute``: the whole answer in one round trip. With ``param_sql`` (PostgreSQL: the template with
    ``$n`` placeholders and its values) the shard's connection reuses a prepared statement; when that form cannot
    run, nothing was executed and the literal ``sql`` runs instead: a value the driver cannot bind to the type the
    server inferred (``$1 = $2`` is text = text), or a statement the server cannot analyse with parameters in place
    of literals (SQLSTATE class 42, e.g. 42P18 ``concat(kind, $1)``: a parameter has no type where an untyped
    literal would be text). Callers inside a transaction pass no ``param_sql``: there the failed attempt would
    abort the transaction."""

    def __init__(self, rt: Runtime, target: BackendTarget, sql: str,
                 param_sql: tuple[str, list[Any]] | None = None,
                 share: tuple[Consolidator, Scope] | None = None) -> None:
        self.rt, self.target, self.sql = rt, target, sql
        self.param_sql = param_sql
        self.share = share
        self._rows: list[Row] | None = None
        self.result: Any = None

    async def open(self) -> None:
        lead = None
        if self.share is not None:
            cons, scope = self.share
            p = self.param_sql
            key = _share_key("x", self.target, self.sql, p[0] if p else None, list(p[1]) if p else [], scope)
            if key is not None:
                lead, follow = cons.lead_or_follow(key, scope, self.rt.deadline)
                if follow is not None:
                    shared = await _follow(self.rt, cons, follow)
                    if shared is not NOT_SHARED:
                        self._take(shared, copy=True)
                        return
        if lead is None:
            self._take(await _replica_retry(self.rt, self.target, self._execute))
            return
        try:
            result = await _replica_retry(self.rt, self.target, self._execute)
        except BaseException as exc:
            lead.fail(exc)
            raise
        if isinstance(result, ResultSet) and lead.grow(len(result.rows)):
            lead.finish(result)
        else:
            lead.abandon()
        self._take(result)

    def _take(self, result: Any, copy: bool = False) -> None:
        self.result = result
        if isinstance(result, ResultSet):
            self.columns = result.columns
            self._rows = list(result.rows) if copy else result.rows
        else:
            self._rows = []

    async def _execute(self, target: BackendTarget | None = None) -> Any:
        rt = self.rt
        target = target or self.target
        result = None
        if self.param_sql is not None:
            try:
                result = await rt.wait(rt.ctx.execute(target, self.param_sql[0], timeout=rt.remaining(),
                                                      params=self.param_sql[1]))
            except InvalidValueError:
                result = None
            except BackendError as exc:
                if not _prepared_form_refused(exc):
                    raise
                result = None
        if result is None:
            result = await rt.wait(rt.ctx.execute(target, self.sql, timeout=rt.remaining()))
        return result

    async def next(self) -> list[Row] | None:
        rows, self._rows = self._rows, None
        return rows or None

    async def close(self) -> None:
        self._rows = None


class DirectReader(Reader):
    """A stream read in the consumer's task."""

    def __init__(self, rt: Runtime, target: BackendTarget, sql: str,
                 share: tuple[Consolidator, Scope] | None = None) -> None:
        self.rt, self.target, self.sql = rt, target, sql
        self.share = share
        self._stack: contextlib.AsyncExitStack | None = None
        self._iter: Any = None
        self._shared: list[Row] | None = None  # a follower's rows, from the leader's execution
        self._lead: Flight | None = None  # leading: the rows read so far are kept for the followers
        self._kept: list[Row] = []

    async def open(self) -> None:
        if self.share is not None:
            cons, scope = self.share
            key = _share_key("s", self.target, self.sql, None, [], scope)
            if key is not None:
                lead, follow = cons.lead_or_follow(key, scope, self.rt.deadline)
                if follow is not None:
                    shared = await _follow(self.rt, cons, follow)
                    if shared is not NOT_SHARED:
                        self.columns = shared.columns
                        self._shared = list(shared.rows)
                        return
                self._lead = lead
        try:
            await _replica_retry(self.rt, self.target, self._open)
        except BaseException as exc:
            self._end_lead(exc)
            raise

    async def _open(self, target: BackendTarget | None = None) -> None:
        rt = self.rt
        stack = contextlib.AsyncExitStack()
        try:
            stream = await rt.wait(stack.enter_async_context(
                rt.ctx.stream(target or self.target, self.sql, timeout=rt.remaining())))
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self.columns = tuple(stream.columns)
        self._iter = stream.__aiter__()

    async def next(self) -> list[Row] | None:
        if self._shared is not None:
            rows, self._shared = self._shared, []
            return rows or None
        if self._iter is None:
            return None
        try:
            batch: list[Row] = await self.rt.wait(self._iter.__anext__())
        except StopAsyncIteration:
            lead = self._lead
            if lead is not None:
                self._lead = None
                lead.finish(ResultSet(self.columns, self._kept))
                self._kept = []
            await self.close()
            return None
        except BaseException as exc:
            self._end_lead(exc)
            await self.close()
            raise
        lead = self._lead
        if lead is not None:
            if lead.grow(len(batch)):
                self._kept.extend(batch)
            else:
                self._lead, self._kept = None, []
        return batch

    def _end_lead(self, exc: BaseException | None = None) -> None:
        lead, self._lead = self._lead, None
        self._kept = []
        if lead is not None:
            if exc is None:
                lead.abandon()
            else:
                lead.fail(exc)

    async def close(self) -> None:
        self._shared = None
        self._end_lead()  # stopped reading before the end: followers run their own
        self._iter = None
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()


class PumpReader(Reader):
    """A stream read ahead by its own task into a bounded queue."""

    def __init__(self, rt: Runtime, target: BackendTarget, sql: str, queue: asyncio.Queue[Any] | None = None,
                 tag: int = 0) -> None:
        self.rt, self.target, self.sql = rt, target, sql
        self.queue: asyncio.Queue[Any] = queue if queue is not None else asyncio.Queue(
            max(1, rt.limits.prefetch_batches))
        self.tag = tag  # FanIn: which reader a queued item came from
        self._shared = queue is not None
        self._opened: asyncio.Future[tuple[Column, ...]] = asyncio.get_running_loop().create_future()
        self._opened.add_done_callback(_consume_exception)
        self._task: asyncio.Task[None] | None = None
        self._done = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name=f"shardgate-pump {self.target.shard_name}")

    async def open(self) -> None:
        self.start()
        self.columns = tuple(await self.rt.wait(asyncio.shield(self._opened)))

    async def _put(self, item: Any) -> None:
        await self.queue.put((self.tag, item) if self._shared else item)

    async def _pump(self) -> None:
        rt = self.rt
        try:
            async with rt.ctx.stream(self.target, self.sql, timeout=rt.remaining()) as stream:
                if not self._opened.done():
                    self._opened.set_result(tuple(stream.columns))
                async for batch in stream:
                    if batch:
                        await self._put(batch)
            await self._put(_END)
        except asyncio.CancelledError:
            if not self._opened.done():
                self._opened.cancel()
            raise
        except BaseException as exc:
            if not self._opened.done():
                self._opened.set_exception(exc)
            await self._put(_Failure(exc))

    async def next(self) -> list[Row] | None:
        if self._done:
            return None
        item = await self.rt.wait(self.queue.get())
        if item is _END:
            self._done = True
            return None
        if isinstance(item, _Failure):
            self._done = True
            raise item.exc
        return item  # type: ignore[no-any-return]

    async def close(self) -> None:
        self._done = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), _CLOSE_GRACE)


class FanIn:
    """Batches from several pumps, in arrival order, through one bounded queue."""

    def __init__(self, rt: Runtime, readers: Sequence[PumpReader], queue: asyncio.Queue[Any]) -> None:
        self.rt = rt
        self.readers = list(readers)
        self.queue = queue
        self._live = len(self.readers)

    async def next(self) -> list[Row] | None:
        while self._live:
            _tag, item = await self.rt.wait(self.queue.get())
            if item is _END:
                self._live -= 1
                continue
            if isinstance(item, _Failure):
                self._live = 0
                raise item.exc
            return item  # type: ignore[no-any-return]
        return None

    async def close(self) -> None:
        self._live = 0
        await close_all(self.readers)


def _share_key(kind: str, target: BackendTarget, sql: str, param_sql: str | None, params: list[Any],
               scope: Scope) -> Any:
    return hashable_key(kind, target.keyspace, target.shard, target.role, sql, param_sql, params, scope.settings)


async def _follow(rt: Runtime, cons: Consolidator, flight: Flight) -> Any:
    """Wait for a flight's answer within this statement's own deadline."""
    try:
        return await cons.wait(flight, rt.remaining())
    except TimeoutError:
        raise rt.timeout_error() from None


async def _replica_retry(rt: Runtime, target: BackendTarget, call: Any) -> Any:
    """``call()``; for a replica read whose replica turned out to be gone (nothing was read yet), once more on the
    primary, and the health checker is asked to look now: it bans that replica, so the next reads go elsewhere."""
    if target.role == "primary":
        return await call()
    try:
        return await call()
    except BackendUnavailableError:
        health = getattr(getattr(rt.session, "host", None), "replica_health", None)
        if health is not None:
            health.check_soon()
        return await call(BackendTarget(target.keyspace, target.shard, "primary"))


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # marks it retrieved: a failure is re-raised to whoever awaits open()


async def open_all(readers: Sequence[Reader]) -> None:
    """Open every reader concurrently; on the first failure close them all and raise it."""
    if len(readers) == 1:
        try:
            await readers[0].open()
        except BaseException:
            await readers[0].close()
            raise
        return
    for r in readers:
        if isinstance(r, PumpReader):
            r.start()
    tasks = [asyncio.ensure_future(r.open()) for r in readers]
    try:
        _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None), None)
        if failed is not None:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise failed.exception()  # type: ignore[misc]
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_all(readers)
        raise


async def close_all(readers: Sequence[Reader]) -> None:
    if len(readers) == 1:
        await readers[0].close()
        return
    await asyncio.gather(*(r.close() for r in readers), return_exceptions=True)
