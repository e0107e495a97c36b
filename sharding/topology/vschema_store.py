"""The VSchema in the topology store, and the stream of cluster snapshots routers build from it.

The whole VSchema (Vitess ``SrvVSchema`` JSON: keyspaces and routing rules) lives in ONE key, ``VSCHEMA_KEY``, so
a change is atomic: a router never sees a new table of one keyspace without the routing rule that points at it.
Writers use compare-and-swap (VSchema DDL reads, edits, and writes with the version it read), and nothing
invalid is ever stored: ``save_vschema`` checks with ``parse_vschema`` first.

A snapshot's version is the store version of the VSchema it was built from: revisions only grow, and every
router watching one store gives the same VSchema the same snapshot version, which makes plans and logs
comparable across routers.

Shards come from the cluster config (``shards_from_config``); each ``Shard.backends["primary"]`` is its
``ShardConfig``, whose ``dsn()`` reads the password at connect time.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sharding.errors import ConfigError, TopologyError, VersionConflictError
from sharding.snapshot import ClusterSnapshot, Shard
from sharding.topology.store import EventKind, TopologyStore
from sharding.vschema import VSchema, parse_vschema

if TYPE_CHECKING:
    from sharding.config import ClusterConfig

__all__ = ["VSCHEMA_KEY", "SnapshotSource", "load_vschema", "save_vschema", "seed_vschema", "shards_from_config"]

VSCHEMA_KEY = "cluster/vschema"
log = logging.getLogger(__name__)


def _encode(vschema: VSchema | Mapping[str, Any]) -> tuple[VSchema, bytes]:
    doc = vschema.to_json() if isinstance(vschema, VSchema) else dict(vschema)
    parsed = parse_vschema(doc, source=VSCHEMA_KEY)  # VSchemaError: nothing invalid reaches the store
    return parsed, json.dumps(doc, sort_keys=True, indent=1).encode("utf-8")


def _decode(value: bytes, version: int) -> VSchema:
    source = f"topology {VSCHEMA_KEY}@{version}"
    try:
        doc = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: not JSON: {exc}") from None
    return parse_vschema(doc, source=source)


async def load_vschema(store: TopologyStore) -> tuple[VSchema, int] | None:
    """The stored VSchema and its version, or None when none is stored."""
    found = await store.get(VSCHEMA_KEY)
    return None if found is None else (_decode(found.value, found.version), found.version)


async def save_vschema(store: TopologyStore, vschema: VSchema | Mapping[str, Any], *,
                       expected_version: int | None) -> int:
    """Check and store a VSchema; returns the new version. ``expected_version`` is the version the change was
    based on (0: only if none is stored; None: overwrite whatever is there). ``VersionConflictError`` when
    another writer got there first: re-read, re-apply, retry."""
    _, data = _encode(vschema)
    return await store.put(VSCHEMA_KEY, data, expected_version=expected_version)


async def seed_vschema(store: TopologyStore, vschema: VSchema | Mapping[str, Any]) -> tuple[VSchema, int]:
    """Store ``vschema`` unless one is stored already (routers starting together: one wins, all agree); returns
    the VSchema in force and its version. A stored VSchema wins over the config's: it carries applied DDL."""
    parsed, data = _encode(vschema)
    try:
        return parsed, await store.put(VSCHEMA_KEY, data, expected_version=0)
    except VersionConflictError:
        loaded = await load_vschema(store)
        if loaded is None:  # deleted in between: try once more
            return parsed, await store.put(VSCHEMA_KEY, data, expected_version=0)
        return loaded


def shards_from_config(config: ClusterConfig) -> dict[str, list[Shard]]:
    """Each keyspace's shards for ``ClusterSnapshot.build``, with ``backends={"primary": ShardConfig}`` and, for a
    shard with read replicas, ``"replica": (ShardConfig, …)``."""
    return {name: [Shard(s.name, s.key_range, MappingProxyType(
                {"primary": s, "replica": s.replicas} if s.replicas else {"primary": s})) for s in ks.shards]
            for name, ks in config.keyspaces.items()}


SnapshotCallback = Callable[[ClusterSnapshot], Awaitable[None] | None]


class SnapshotSource:
    """Keeps ``current`` up to date with the VSchema in the store, calling ``on_snapshot`` with each new one.

    ``start()`` seeds the store with ``seed`` when it holds no VSchema yet, builds the first snapshot and begins
    watching. A stored VSchema that is invalid, or that names a keyspace without shards, is reported through
    ``on_error`` (default: logged) and the current snapshot stays: a bad write must not take routing down.
    """

    def __init__(self, store: TopologyStore, shards: Mapping[str, Iterable[Shard]], *,
                 on_snapshot: SnapshotCallback | None = None, seed: VSchema | Mapping[str, Any] | None = None,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self._store = store
        self._shards = {name: list(entries) for name, entries in shards.items()}
        self._on_snapshot = on_snapshot
        self._seed = seed
        self._on_error = on_error or (lambda exc: log.error("topology: ignoring VSchema change: %s", exc))
        self._current: ClusterSnapshot | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> ClusterSnapshot:
        if self._current is None:
            raise TopologyError("SnapshotSource.start() has not run")
        return self._current

    async def start(self) -> ClusterSnapshot:
        loaded = await load_vschema(self._store)
        if loaded is None:
            if self._seed is None:
                raise TopologyError(f"no VSchema in the topology store ({VSCHEMA_KEY}) and none to seed it with")
            loaded = await seed_vschema(self._store, self._seed)
        vschema, version = loaded
        self._current = ClusterSnapshot.build(version, vschema, self._shards)
        self._task = asyncio.create_task(self._watch(), name="topology-snapshot-source")
        return self._current

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _watch(self) -> None:
        while True:
            try:
                await self._follow()
                return  # the store was closed
            except TopologyError as exc:  # the store could not be read: report, wait, watch again
                self._on_error(exc)
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        # include_existing: the first event is the value at the watch's baseline, so nothing written between
        # start()'s read and the watch's first look is missed; versions already seen are skipped.
        watch = self._store.watch(VSCHEMA_KEY, include_existing=True)
        try:
            async for event in watch:
                if event.key == VSCHEMA_KEY and event.version > self.current.version:
                    await self._apply(event.kind, event.value, event.version)
        finally:
            aclose = getattr(watch, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _apply(self, kind: EventKind, value: bytes | None, version: int) -> None:
        if kind is EventKind.DELETE or value is None:
            self._on_error(TopologyError(f"{VSCHEMA_KEY} was deleted; keeping snapshot v{self.current.version}"))
            return
        try:
            snapshot = ClusterSnapshot.build(version, _decode(value, version), self._shards)
        except ConfigError as exc:
            self._on_error(exc)
            return
        self._current = snapshot
        if self._on_snapshot is not None:
            try:
                result = self._on_snapshot(snapshot)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # a failing subscriber must not stop the stream
                self._on_error(exc)
