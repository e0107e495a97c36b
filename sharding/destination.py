"""Where a vindex sends a value: Vitess's ``key.Destination`` family (``go/vt/key/destination.go``).

A vindex ``map`` returns destinations, not shards: it knows keyspace ids, not the topology. ``resolve`` turns a
destination into shard names against one keyspace's shard list, later and per snapshot, so a plan never holds
shard names that a topology change could make stale.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sharding.errors import KeyRangeError
from sharding.keyrange import FULL, KeyRange, next_prefix

__all__ = [
    "ALL_SHARDS",
    "NO_SHARD",
    "AllShards",
    "Destination",
    "KeyRangeDest",
    "KeyspaceId",
    "KeyspaceIds",
    "NoShard",
    "ShardRef",
    "key_range_from_prefix",
    "resolve",
]


@dataclass(frozen=True, slots=True)
class KeyspaceId:
    """One keyspace id (Vitess ``DestinationKeyspaceID``): exactly one shard."""

    ksid: bytes

    def __str__(self) -> str:
        return f"DestinationKeyspaceID({self.ksid.hex()})"


@dataclass(frozen=True, slots=True)
class KeyspaceIds:
    """Several keyspace ids, from a non-unique vindex (Vitess ``DestinationKeyspaceIDs``)."""

    ksids: tuple[bytes, ...]

    def __str__(self) -> str:
        return f"DestinationKeyspaceIDs({','.join(k.hex() for k in self.ksids)})"


@dataclass(frozen=True, slots=True)
class KeyRangeDest:
    """Every shard that overlaps a key range (Vitess ``DestinationKeyRange``), e.g. a multi-column prefix."""

    key_range: KeyRange

    def __str__(self) -> str:
        return f"DestinationKeyRange({self.key_range})"


@dataclass(frozen=True, slots=True)
class AllShards:
    """Every shard of the keyspace (Vitess ``DestinationAllShards``)."""

    def __str__(self) -> str:
        return "DestinationAllShards()"


@dataclass(frozen=True, slots=True)
class NoShard:
    """No shard at all (Vitess ``DestinationNone``): the value cannot exist anywhere, e.g. ``id = 'abc'`` on hash."""

    def __str__(self) -> str:
        return "DestinationNone()"


ALL_SHARDS = AllShards()
NO_SHARD = NoShard()

Destination = KeyspaceId | KeyspaceIds | KeyRangeDest | AllShards | NoShard


def key_range_from_prefix(prefix: bytes) -> Destination:
    """The keyspace ids that start with ``prefix``: ``[prefix, prefix + 1)``; all shards for an empty prefix.

    Vitess ``NewKeyRangeFromPrefix``: multi-column vindexes given only leading columns, and ``cfc`` LIKE prefixes.
    """
    if not prefix:
        return ALL_SHARDS
    return KeyRangeDest(KeyRange(prefix, next_prefix(prefix)))


class ShardRef(Protocol):
    """What ``resolve`` needs of a shard: its name and key range (``snapshot.Shard`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def key_range(self) -> KeyRange: ...


def _shard_index(shards: Sequence[ShardRef], starts: Sequence[bytes], ksid: bytes) -> int:
    i = bisect_right(starts, ksid) - 1
    if i < 0 or not shards[i].key_range.contains(ksid):
        names = ", ".join(s.name for s in shards)
        raise KeyRangeError(f"keyspace id {ksid.hex()} is in no shard ({names or 'no shards'})")
    return i


def resolve(dest: Destination, shards: Sequence[ShardRef]) -> list[str]:
    """Names of the shards ``dest`` reaches, in shard order, each once.

    ``shards`` is one keyspace's shard list sorted by key range. A keyspace id outside every shard is a
    ``KeyRangeError`` (Vitess: "didn't match any shards"), never a silent drop.
    """
    match dest:
        case NoShard():
            return []
        case AllShards():
            return [s.name for s in shards]
        case KeyRangeDest(key_range=kr):
            if kr == FULL:
                return [s.name for s in shards]
            return [s.name for s in shards if s.key_range.overlaps(kr)]
        case KeyspaceId(ksid=ksid):
            starts = [s.key_range.start for s in shards]
            return [shards[_shard_index(shards, starts, ksid)].name]
        case KeyspaceIds(ksids=ksids):
            starts = [s.key_range.start for s in shards]
            hit = sorted({_shard_index(shards, starts, k) for k in ksids})
            return [shards[i].name for i in hit]
    raise TypeError(f"not a destination: {dest!r}")
