"""One statement in execution, as the handler sees it: result fields (or none), row batches, a command tag.

``EngineRun`` wraps the engine's ``Session.stream`` context, kept open across protocol messages so that Execute
with a row limit can resume a portal; ``RowsRun`` holds rows the frontend made itself (SHOW of a reported
parameter, ``SHOW SHARDGATE SHARDS``, catalog answers); ``DoneRun`` is a statement without rows.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from router.frontend.postgres.portal import Field, fields_of
from router.frontend.postgres.statements import Info, command_tag

__all__ = ["DoneRun", "EngineRun", "RowsRun", "Running"]


class Running:
    fields: tuple[Field, ...] | None = None  # None: the statement returns no rows (NoData)
    notices: Sequence[str] = ()

    async def next_batch(self) -> list[Any] | None:
        return None

    async def close(self, exc: BaseException | None = None) -> None:
        return None

    def tag(self, rows: int) -> str:
        raise NotImplementedError


class DoneRun(Running):
    def __init__(self, tag: str, notices: Sequence[str] = ()) -> None:
        self._tag = tag
        self.notices = notices

    def tag(self, rows: int) -> str:
        return self._tag


class RowsRun(Running):
    def __init__(self, fields: tuple[Field, ...], rows: list[Any], tag: str = "SELECT", counted: bool = True,
                 notices: Sequence[str] = ()) -> None:
        self.fields = fields
        self._rows: list[Any] | None = rows
        self._tag = tag
        self._counted = counted
        self.notices = notices

    async def next_batch(self) -> list[Any] | None:
        rows, self._rows = self._rows, None
        return rows or None

    def tag(self, rows: int) -> str:
        return f"{self._tag} {rows}" if self._counted else self._tag


class EngineRun(Running):
    """An engine execution held open: ``open()`` enters ``session.stream``; ``close()`` leaves it, handing it the
    exception that stopped the rows (so an implicit transaction rolls back instead of committing)."""

    def __init__(self, session: Any, sql: str, params: Any, info: Info) -> None:
        self._cm = session.stream(sql, params)
        self.info = info
        self.ex: Any = None
        self._open = False

    async def open(self) -> EngineRun:
        self.ex = await self._cm.__aenter__()
        self._open = True
        columns = self.ex.columns
        self.fields = fields_of(columns) if columns else None
        return self

    async def next_batch(self) -> list[Any] | None:
        try:
            return await self.ex.__anext__()  # type: ignore[no-any-return]
        except StopAsyncIteration:
            return None

    async def close(self, exc: BaseException | None = None) -> None:
        if not self._open:
            return
        self._open = False
        if exc is None:
            await self._cm.__aexit__(None, None, None)
            return
        try:
            await self._cm.__aexit__(type(exc), exc, exc.__traceback__)
        except BaseException as raised:  # the same exception coming back out is expected
            if raised is not exc and not isinstance(raised, type(exc)):
                raise

    @property
    def notices(self) -> Sequence[str]:  # type: ignore[override]
        ex = self.ex
        return list(ex.warnings) if ex is not None else ()

    def tag(self, rows: int) -> str:
        info = self.info
        if info.tag == "SELECT" or not info.counted:
            if info.kind == "show":
                return "SHOW"
            return command_tag(info, rows)
        affected = self.ex.rows_affected if self.ex is not None else 0
        return command_tag(info, affected or rows)

