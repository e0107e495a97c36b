"""The pools of the current cluster snapshot, one per backend of each (keyspace, shard, role).

``Shard.backends`` maps a role to its backend: a ``ShardConfig`` (or a ``DSN``), or a sequence of them for a role
served by several servers (replicas), whose pools are taken in turn, skipping pools that are down.

``apply(snapshot)`` swaps to a new snapshot's backends: a pool whose (target, backend config) is unchanged is kept
with its warm connections; a new backend gets a new pool; a pool no longer in the topology stops lending at once
(acquirers get ``BackendUnavailableError``, retryable: the query should replan on the new snapshot) and is drained
in the background (loans finish, then everything closes). The mapping is replaced in one assignment, so a lookup
never sees half a swap.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.backend.connect import open_connection
from router.backend.connection import BackendTarget
from router.backend.errmap import unavailable
from router.backend.lease import Acquire
from router.backend.log import log_event
from router.backend.pool import Opener, Pool
from router.backend.pool_config import PoolConfig, PoolStats
from sharding.config_model import ShardConfig
from sharding.db import DSN
from sharding.errors import ConfigError
from sharding.snapshot import ClusterSnapshot

__all__ = ["PoolSet", "SwapReport"]

ConfigFor = Callable[[BackendTarget], PoolConfig]


@dataclass(frozen=True, slots=True)
class SwapReport:
    """What ``apply`` did, by target (``keyspace/shard/role``)."""

    version: int
    kept: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]


class _RolePools:
    """The pools serving one target: usually one; several for a role with several servers. A pool may be banned
    for a while (``router.backend.health``: a replica that lags or is down); ``pick`` skips banned and down pools."""

    __slots__ = ("_turn", "backends", "banned", "pools")

    def __init__(self, backends: tuple[Any, ...], pools: tuple[Pool, ...]) -> None:
        self.backends = backends
        self.pools = pools
        self.banned: dict[int, tuple[float, str]] = {}  # index -> (monotonic time the ban ends, why)
        self._turn = itertools.count()

    def ban(self, pool: Pool, seconds: float, reason: str) -> None:
        self.banned[self.pools.index(pool)] = (time.monotonic() + seconds, reason)

    def unban(self, pool: Pool) -> None:
        self.banned.pop(self.pools.index(pool), None)

    def is_banned(self, index: int) -> bool:
        ban = self.banned.get(index)
        if ban is None:
            return False
        if ban[0] > time.monotonic():
            return True
        del self.banned[index]
        return False

    def pick(self) -> Pool:
        if len(self.pools) == 1 and not self.banned:
            return self.pools[0]
        pool = self.pick_healthy()
        if pool is not None:
            return pool
        return self.pools[next(self._turn) % len(self.pools)]  # all down: that pool's fast failure names it

    def pick_healthy(self, skip_down: bool = True) -> Pool | None:
        """The next pool that is neither banned nor (with ``skip_down``) down, round robin; or None."""
        start = next(self._turn)
        n = len(self.pools)
        for i in range(n):
            k = (start + i) % n
            pool = self.pools[k]
            if not (skip_down and pool.down) and not (self.banned and self.is_banned(k)):
                return pool
        return None


class PoolSet:
    """Pools for the current ``ClusterSnapshot`` (see the module docstring)."""

    def __init__(self, config: PoolConfig | ConfigFor | None = None, *, opener: Opener = open_connection) -> None:
        if callable(config):
            self._config_for: ConfigFor = config
        else:
            fixed = config or PoolConfig()
            self._config_for = lambda _target: fixed
        self._opener = opener
        self._roles: Mapping[BackendTarget, _RolePools] = {}
        self._draining: set[asyncio.Task[None]] = set()
        self.replica_fallback = True  # replica reads go to the primary when no replica can take them
        self.version: int | None = None
        self._closed = False

    # --- lookups (hot path: one dict lookup) --------------------------------------------------------------------
    def pool(self, target: BackendTarget | str, shard: str | None = None, role: str = "primary") -> Pool:
        """The pool for a ``BackendTarget`` (or keyspace, shard, role), round robin over several servers.

        ``BackendUnavailableError`` when the topology has no such backend."""
        if not isinstance(target, BackendTarget):
            if shard is None:
                raise TypeError("pool(keyspace, shard, role) needs a shard")
            target = BackendTarget(target, shard, role)
        entry = self._roles.get(target)
        if target.role != "replica":
            if entry is None:
                raise unavailable(str(target), f"no {target.role} backend in topology version {self.version}")
            return entry.pick()
        # Replica reads: a replica neither banned by the health checker nor in connect backoff; else (none
        # configured, all banned or down) the primary when the replica policy allows it.
        pool = entry.pick_healthy() if entry is not None else None
        if pool is not None:
            return pool
        primary = self._roles.get(BackendTarget(target.keyspace, target.shard, "primary"))
        if self.replica_fallback and primary is not None:
            return primary.pick()
        if entry is None:
            raise unavailable(str(target), f"no {target.role} backend in topology version {self.version}")
        raise unavailable(str(target), "every replica is down or banned (lagging); the replica policy does not "
                                       "allow reading from the primary")

    def acquire(self, target: BackendTarget | str, shard: str | None = None, role: str = "primary", *,
                timeout: float | None = None, settings: Mapping[str, str] | None = None) -> Acquire:
        """``async with pools.acquire(target) as conn:`` or ``pools.acquire("customer", "-80")``; ``settings``:
        the session settings the connection must have in effect (``Pool.acquire``)."""
        return self.pool(target, shard, role).acquire(timeout, settings)

    def pools(self) -> list[Pool]:
        return [pool for entry in self._roles.values() for pool in entry.pools]

    def targets(self) -> list[BackendTarget]:
        return list(self._roles)

    def role_pools(self, target: BackendTarget) -> _RolePools | None:
        """The pools of one target and their bans (``router.backend.health``)."""
        return self._roles.get(target)

    def stats(self) -> list[PoolStats]:
        return [pool.stats() for pool in self.pools()]

    # --- snapshot swaps -----------------------------------------------------------------------------------------
    async def apply(self, snapshot: ClusterSnapshot) -> SwapReport:
        """Switch to ``snapshot``'s backends: keep unchanged pools, open new ones, drain removed ones."""
        if self._closed:
            raise unavailable("pool set", "closed")
        old = self._roles
        new: dict[BackendTarget, _RolePools] = {}
        kept, added = [], []
        for keyspace, shards in snapshot.keyspaces.items():
            for shard in shards.shards:
                for role, spec in shard.backends.items():
                    backends = _as_backends(spec)
                    if not backends:
                        continue
                    target = BackendTarget(keyspace, shard.name, role)
                    previous = old.get(target)
                    if previous is not None and previous.backends == backends:
                        new[target] = previous
                        kept.append(str(target))
                        continue
                    config = self._config_for(target)
                    pools = tuple(Pool(target, backend, config, opener=self._opener) for backend in backends)
                    new[target] = _RolePools(backends, pools)
                    added.append(str(target))
        self._roles = new
        self.version = snapshot.version
        kept_ids = {id(entry) for entry in new.values()}
        removed = [(target, entry) for target, entry in old.items() if id(entry) not in kept_ids]
        for _target, entry in removed:
            for pool in entry.pools:
                self._drain(pool)
        # New pools open min_size connections before the first query needs them, all pools at once; a backend
        # that is down costs one connect attempt here (its backoff then stops the rest), never the swap.
        warm = [pool.start() for target in new if str(target) in added for pool in new[target].pools
                if pool.config.min_size]
        if warm:
            await asyncio.gather(*warm, return_exceptions=True)
        report = SwapReport(snapshot.version, tuple(kept), tuple(added), tuple(str(t) for t, _ in removed))
        log_event(logging.INFO, "backend_pools_swapped", None, version=snapshot.version,
                  kept=len(kept), added=len(added), removed=len(removed))
        return report

    def _drain(self, pool: Pool) -> None:
        pool.stop_lending()
        task = asyncio.get_running_loop().create_task(pool.close(), name=f"drain {pool.target}")
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def drained(self) -> None:
        """Wait until pools removed by earlier swaps have closed."""
        while self._draining:
            await asyncio.gather(*list(self._draining), return_exceptions=True)

    async def close(self, timeout: float | None = None) -> None:
        """Close every pool (waiting up to ``timeout`` for loans) and finish draining."""
        self._closed = True
        roles, self._roles = self._roles, {}
        await asyncio.gather(*(pool.close(timeout) for entry in roles.values() for pool in entry.pools),
                             return_exceptions=True)
        await self.drained()


def _as_backends(spec: Any) -> tuple[ShardConfig | DSN, ...]:
    if spec is None:
        return ()
    if isinstance(spec, ShardConfig | DSN):
        return (spec,)
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        return tuple(_check(item) for item in spec)
    return (_check(spec),)


def _check(item: Any) -> ShardConfig | DSN:
    if not isinstance(item, ShardConfig | DSN):
        raise ConfigError(f"a shard backend must be a ShardConfig or a DSN, not {type(item).__name__}")
    return item
