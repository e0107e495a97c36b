"""Keyspace id -> shard index in plain Python: the readable spec that ``cython_ext/shardmap.pyx`` must match.

A keyspace's shards cover the keyspace-id space with contiguous ranges (Vitess ``-80``, ``80-``); only their start
keys are needed: the shard holding a keyspace id is the last one whose start is <= it, comparing bytes as Go's
``bytes.Compare`` does (Python's ``bytes`` ordering is the same).
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import pairwise

__all__ = ["ShardMap"]


def _check_starts(starts: Sequence[bytes]) -> tuple[bytes, ...]:
    """The starts as a tuple, once they are known to cover the whole space in order."""
    keys = tuple(starts)
    for key in keys:
        if not isinstance(key, bytes):
            raise TypeError(f"shard start keys must be bytes, got {type(key).__name__}")
    if not keys or keys[0] != b"":
        raise ValueError("the first shard must start at b'' (the keyspace's lowest key)")
    for prev, key in pairwise(keys):
        if not prev < key:
            raise ValueError(f"shard start keys must be strictly increasing: {prev.hex()!r} then {key.hex()!r}")
    return keys


class ShardMap:
    """The sorted start keys of one keyspace's shards; ``find`` maps a keyspace id to its shard's index."""

    __slots__ = ("_starts",)

    def __init__(self, starts: Sequence[bytes]) -> None:
        self._starts = _check_starts(starts)

    def __len__(self) -> int:
        return len(self._starts)

    def find(self, ksid: bytes) -> int:
        """Index of the shard whose range holds ``ksid``."""
        if not isinstance(ksid, bytes):
            raise TypeError(f"a keyspace id must be bytes, got {type(ksid).__name__}")
        return bisect_right(self._starts, ksid) - 1

    def find_many(self, ksids: Iterable[bytes]) -> list[int]:
        """``find`` of each keyspace id, in order."""
        return [self.find(k) for k in ksids]
