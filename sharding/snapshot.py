"""One immutable view of the cluster: the VSchema and every keyspace's shards, under one version number.

The router plans and executes each query against one ``ClusterSnapshot``; a topology change builds a new snapshot
and swaps it in whole, so no query ever sees half of a change (DESIGN: "one immutable cluster snapshot per query").
``version`` goes into plan-cache keys, which retires old plans without explicit clearing; it moves on with every
change the planner can see, the tracked schema (``schema``, ``sharding.schema``) included.

Per keyspace, the shards are kept sorted by key range with a ``cython_ext.shardmap.ShardMap`` over their start
keys, so a keyspace id finds its shard with one bisect.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import cython_ext
from sharding.destination import AllShards, Destination, KeyRangeDest, KeyspaceId, KeyspaceIds, NoShard
from sharding.errors import ConfigError, KeyRangeError, UnknownKeyspaceError
from sharding.keyrange import FULL, KeyRange, check_coverage
from sharding.schema import EMPTY_SCHEMA, SchemaSet
from sharding.vschema_model import VSchema

__all__ = ["ClusterSnapshot", "KeyspaceShards", "Shard"]

_NO_BACKENDS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Shard:
    """A shard of a keyspace: its name (``-80``, or ``0`` for an unsharded keyspace) and key range.

    ``backends`` is left to the configuration layer (addresses per role, e.g. ``{"primary": ..., "replica":
    [...]}``); the model never reads it.
    """

    name: str
    key_range: KeyRange
    backends: Mapping[str, Any] = field(default_factory=lambda: _NO_BACKENDS, compare=False)

    @classmethod
    def from_name(cls, name: str, backends: Mapping[str, Any] | None = None) -> Shard:
        """A shard whose key range is its name: ``40-80``, ``-80``; a name without a dash (``0``, the usual name
        of an unsharded keyspace's shard) covers the whole keyspace, as Vitess's ``ValidateShardName`` has it."""
        key_range = KeyRange.parse(name) if "-" in name else FULL
        return cls(name, key_range, MappingProxyType(dict(backends or {})))


@dataclass(frozen=True, slots=True)
class KeyspaceShards:
    """One keyspace's shards in key order, and the map that finds a keyspace id's shard."""

    keyspace: str
    shards: tuple[Shard, ...]
    _map: Any = field(init=False, repr=False, compare=False)
    _by_name: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.shards, key=lambda s: (s.key_range.start, not s.key_range.end, s.key_range.end)))
        problems = check_coverage([str(s.key_range) for s in ordered])
        if problems:
            names = ", ".join(s.name for s in ordered) or "none"
            raise KeyRangeError(f"shards of keyspace {self.keyspace!r} ({names}): {'; '.join(problems)}")
        object.__setattr__(self, "shards", ordered)
        object.__setattr__(self, "_map", cython_ext.shardmap.ShardMap([s.key_range.start for s in ordered]))
        object.__setattr__(self, "_by_name", MappingProxyType({s.name: i for i, s in enumerate(ordered)}))

    def shard(self, name: str) -> Shard:
        """A shard by name."""
        try:
            return self.shards[self._by_name[name]]
        except KeyError:
            raise KeyRangeError(f"keyspace {self.keyspace!r} has no shard {name!r}") from None

    def shard_for_ksid(self, ksid: bytes) -> Shard:
        """The shard holding a keyspace id (the shards cover the keyspace, so there is always one)."""
        return self.shards[self._map.find(bytes(ksid))]

    def resolve(self, destination: Destination) -> list[Shard]:
        """The shards a destination reaches, in key order, each once (as ``destination.resolve``)."""
        match destination:
            case KeyspaceId(ksid=ksid):
                return [self.shard_for_ksid(ksid)]
            case KeyspaceIds(ksids=ksids):
                hit = sorted({self._map.find(bytes(k)) for k in ksids})
                return [self.shards[i] for i in hit]
            case NoShard():
                return []
            case AllShards():
                return list(self.shards)
            case KeyRangeDest(key_range=kr):
                if kr == FULL:
                    return list(self.shards)
                return [s for s in self.shards if s.key_range.overlaps(kr)]
        raise TypeError(f"not a destination: {destination!r}")


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """The VSchema, the shards of every keyspace and the schema the shards report (``schema``: tables, columns
    and types per keyspace, kept by the router's schema tracker; empty when not tracked) at one ``version``.
    Replaced, never mutated."""

    version: int
    vschema: VSchema
    keyspaces: Mapping[str, KeyspaceShards]
    schema: SchemaSet = EMPTY_SCHEMA

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyspaces", MappingProxyType(dict(self.keyspaces)))

    @classmethod
    def build(
        cls, version: int, vschema: VSchema, shards: Mapping[str, Iterable[str | Shard]],
        schema: SchemaSet = EMPTY_SCHEMA,
    ) -> ClusterSnapshot:
        """A snapshot from shard names (or ``Shard`` objects) per keyspace.

        Every VSchema keyspace needs shards; a sharded keyspace's shards must cover the keyspace exactly and an
        unsharded keyspace has one shard. All problems are reported together in a ``ConfigError``.
        """
        problems: list[str] = []
        built: dict[str, KeyspaceShards] = {}
        for name in vschema.keyspaces:
            if name not in shards:
                problems.append(f"keyspace {name!r}: no shards")
        for name, entries in shards.items():
            try:
                shard_list = [e if isinstance(e, Shard) else Shard.from_name(e) for e in entries]
                ks = vschema.keyspaces.get(name)
                if ks is not None and not ks.sharded and len(shard_list) != 1:
                    problems.append(f"keyspace {name!r}: an unsharded keyspace has one shard, got {len(shard_list)}")
                    continue
                built[name] = KeyspaceShards(name, tuple(shard_list))
            except KeyRangeError as exc:
                problems.append(f"keyspace {name!r}: {exc.message}")
        if problems:
            raise ConfigError(f"invalid cluster snapshot v{version}: " + "; ".join(problems), problems=problems)
        return cls(version, vschema, built, schema)

    def replace(self, **changes: Any) -> ClusterSnapshot:
        """A new snapshot with some fields changed (``version`` should move on)."""
        return dataclasses.replace(self, **changes)

    def _keyspace(self, keyspace: str) -> KeyspaceShards:
        try:
            return self.keyspaces[keyspace]
        except KeyError:
            raise UnknownKeyspaceError(f"keyspace {keyspace} has no shards in snapshot v{self.version}") from None

    def shards(self, keyspace: str) -> Sequence[Shard]:
        """A keyspace's shards in key order."""
        return self._keyspace(keyspace).shards

    def shard_for_ksid(self, keyspace: str, ksid: bytes) -> Shard:
        return self._keyspace(keyspace).shard_for_ksid(ksid)

    def resolve(self, keyspace: str, destination: Destination) -> list[Shard]:
        return self._keyspace(keyspace).resolve(destination)
