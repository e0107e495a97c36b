"""``Concatenate``: UNION ALL of its inputs' streams, in input order (Vitess ``Concatenate``). All inputs are
opened at once (their shard queries start together); each is read to its end before the next one."""
from __future__ import annotations

import asyncio

from router.backend.result import Row
from router.engine.runtime import Source
from sharding.errors import InvalidValueError

__all__ = ["ConcatSource"]


class ConcatSource(Source):
    def __init__(self, sources: list[Source]) -> None:
        self.sources = sources
        widths = {len(s.columns) for s in sources if s.columns}
        if len(widths) > 1:
            raise InvalidValueError("the SELECTs of a UNION have different numbers of columns")
        self.columns = next((s.columns for s in sources if s.columns), ())

    async def next(self) -> list[Row] | None:
        while self.sources:
            batch = await self.sources[0].next()
            if batch is not None:
                return batch
            await self.sources.pop(0).close()
        return None

    async def close(self) -> None:
        sources, self.sources = self.sources, []
        await asyncio.gather(*(s.close() for s in sources), return_exceptions=True)
