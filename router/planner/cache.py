"""The plan cache: an LRU bounded by entry count and by (estimated) memory.

Keys hold the snapshot version, so a topology change retires old plans without any explicit clearing: they
simply stop being asked for and age out.
"""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

# A plan tree is many small frozen objects; count a fixed overhead per entry on top of the key text.
_ENTRY_OVERHEAD = 2048


class PlanCache(Generic[V]):
    def __init__(self, max_entries: int = 10_000, max_bytes: int = 64 << 20) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("the plan cache needs room for at least one entry")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # frontends may run planners from worker threads
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        try:
            self._entries.move_to_end(key)
        except KeyError:  # evicted by another thread in between: still a valid plan to return
            pass
        return entry[0]

    def put(self, key: Hashable, value: V, text_size: int = 0) -> None:
        size = _ENTRY_OVERHEAD + text_size + sys.getsizeof(key)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or (self._bytes > self.max_bytes and len(self._entries) > 1):
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted
                self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
