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
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from router.backend.connection import BackendTarget
from router.backend.result import Column, ResultSet, Row
from router.engine.runtime import Runtime
from sharding.errors import BackendError, InvalidValueError

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
                 param_sql: tuple[str, list[Any]] | None = None) -> None:
        self.rt, self.target, self.sql = rt, target, sql
        self.param_sql = param_sql
        self._rows: list[Row] | None = None
        self.result: Any = None

    async def open(self) -> None:
        rt = self.rt
        result = None
        if self.param_sql is not None:
            try:
                result = await rt.wait(rt.ctx.execute(self.target, self.param_sql[0], timeout=rt.remaining(),
                                                      params=self.param_sql[1]))
            except InvalidValueError:
                result = None
            except BackendError as exc:
                if not _prepared_form_refused(exc):
                    raise
                result = None
        if result is None:
            result = await rt.wait(rt.ctx.execute(self.target, self.sql, timeout=rt.remaining()))
        self.result = result
        if isinstance(result, ResultSet):
            self.columns = result.columns
            self._rows = result.rows
        else:
            self._rows = []

    async def next(self) -> list[Row] | None:
        rows, self._rows = self._rows, None
        return rows or None

    async def close(self) -> None:
        self._rows = None


class DirectReader(Reader):
    """A stream read in the consumer's task."""

    def __init__(self, rt: Runtime, target: BackendTarget, sql: str) -> None:
        self.rt, self.target, self.sql = rt, target, sql
        self._stack: contextlib.AsyncExitStack | None = None
        self._iter: Any = None

    async def open(self) -> None:
        rt = self.rt
        stack = contextlib.AsyncExitStack()
        try:
            stream = await rt.wait(stack.enter_async_context(
                rt.ctx.stream(self.target, self.sql, timeout=rt.remaining())))
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self.columns = tuple(stream.columns)
        self._iter = stream.__aiter__()

    async def next(self) -> list[Row] | None:
        if self._iter is None:
            return None
        try:
            batch: list[Row] = await self.rt.wait(self._iter.__anext__())
        except StopAsyncIteration:
            await self.close()
            return None
        except BaseException:
            await self.close()
            raise
        return batch

    async def close(self) -> None:
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
