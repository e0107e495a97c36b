"""A k-way heap merge of per-shard streams that are each already ordered (Vitess ``MergeSort``).

Only the head of each shard's current batch is compared; each shard holds at most its read-ahead, so memory
does not grow with the table, and a ``Limit`` above stops the merge (and the shards) as soon as it has enough.
"""
from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Sequence
from typing import Any

from router.backend.result import Row
from router.engine.readers import Reader, close_all

__all__ = ["MergeSort"]


class MergeSort:
    """Merge ``readers`` (opened) by ``key``; ``next(n)`` returns up to ``n`` rows, None at the end."""

    def __init__(self, readers: Sequence[Reader], key: Callable[[Row], Any]) -> None:
        self.readers = list(readers)
        self.key = key
        self._bufs: list[list[Row]] = [[] for _ in self.readers]
        self._pos: list[int] = [0] * len(self.readers)
        self._heap: list[tuple[Any, int]] | None = None

    async def _start(self) -> None:
        firsts = await asyncio.gather(*(r.next() for r in self.readers))
        heap: list[tuple[Any, int]] = []
        key = self.key
        for i, batch in enumerate(firsts):
            if batch:
                self._bufs[i] = batch
                heap.append((key(batch[0]), i))
        heapq.heapify(heap)
        self._heap = heap

    async def next(self, n: int) -> list[Row] | None:
        if self._heap is None:
            await self._start()
        heap = self._heap
        assert heap is not None
        if not heap:
            return None
        if len(heap) == 1:  # one shard left: its rows are in order already, hand over whole batches
            i = heap[0][1]
            buf, pos = self._bufs[i], self._pos[i]
            if pos < len(buf):
                self._bufs[i], self._pos[i] = [], 0
                return buf[pos:] if pos else buf
            batch = await self.readers[i].next()
            if batch is None:
                heap.clear()
                return None
            return batch
        out: list[Row] = []
        key, bufs, pos_of = self.key, self._bufs, self._pos
        replace, pop = heapq.heapreplace, heapq.heappop
        while heap and len(out) < n:
            i = heap[0][1]
            buf = bufs[i]
            pos = pos_of[i]
            out.append(buf[pos])
            pos += 1
            if pos == len(buf):
                batch = await self.readers[i].next()
                if batch is None:
                    bufs[i], pos_of[i] = [], 0
                    pop(heap)
                    if len(heap) == 1:
                        break
                    continue
                bufs[i] = buf = batch
                pos = 0
            pos_of[i] = pos
            replace(heap, (key(buf[pos]), i))
        return out

    async def close(self) -> None:
        self._heap = []
        await close_all(self.readers)
