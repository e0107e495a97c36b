"""Replica health: every replica pool is checked now and then; one that is down or lags too far is banned for a
while, and replica reads go to the other replicas, then to the primary (``PoolSet.replica_fallback``).

- PostgreSQL: ``pg_is_in_recovery()``; the lag is ``now() - pg_last_xact_replay_timestamp()``, or 0 when every
  WAL received is replayed (an idle primary writes no transactions, so the replay timestamp alone would age), or,
  when nothing was replayed since the replica started (no timestamp), how long replay has stood still;
  no row in ``pg_stat_wal_receiver`` means the replica is not streaming, so it falls further behind without
  knowing it: banned.
- MariaDB/MySQL: ``SHOW SLAVE STATUS`` (``SHOW REPLICA STATUS`` on MySQL 8.0.22+); ``Seconds_Behind_Master``
  NULL means replication is stopped: banned.
- A check that cannot connect, or takes longer than ``timeout``, bans the replica (down).

A ban lasts ``ban_seconds`` and is renewed by each failing check; a passing check lifts it at once. The checker
runs in the gateway (``ReplicaHealth.start``) every ``check_interval`` seconds over the pools of the snapshot in
force, so replicas added by a reload are checked from the next round.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from router.backend.connect import open_connection
from router.backend.connection import BackendTarget
from router.backend.pools import PoolSet
from router.backend.result import ResultSet
from sharding.errors import ShardgateError

__all__ = ["ReplicaHealth", "ReplicaHealthConfig", "ReplicaStatus"]

log = logging.getLogger("shardgate.health")

_PG_LAG = ("SELECT pg_is_in_recovery(), "
           "CASE WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() "
           "THEN 0 "
           "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END::float8, "
           "(SELECT count(*) FROM pg_stat_wal_receiver), pg_last_wal_replay_lsn()::text")


@dataclass(frozen=True, slots=True)
class ReplicaHealthConfig:
    check_interval: float = 1.0  # seconds between rounds
    max_lag: float = 30.0  # seconds behind the primary before a replica is banned
    ban_seconds: float = 5.0  # how long a ban lasts unless a check lifts or renews it
    timeout: float = 2.0  # seconds one check may take
    fallback: str = "primary"  # primary: reads go to the primary when no replica can take them; error: they fail
    users: Mapping[str, str] = field(default_factory=dict)  # user -> default tablet type for reads ("replica")


@dataclass(slots=True)
class ReplicaStatus:
    target: str
    backend: str
    ok: bool = True
    lag: float | None = None
    reason: str = ""
    checked_at: float = 0.0
    bans: int = 0
    behind_at: str | None = None  # the replay position first seen behind with no replay timestamp, and when
    behind_since: float = 0.0


class ReplicaHealth:
    """Checks the replica pools of a ``PoolSet`` (see the module docstring)."""

    def __init__(self, pools: PoolSet, config: ReplicaHealthConfig | None = None,
                 source: Callable[[], ReplicaHealthConfig | None] | None = None) -> None:
        self.pools = pools
        self._config = config or ReplicaHealthConfig()
        self._source = source  # the config in force (the gateway's, which RELOAD replaces); None: fixed
        self.status: dict[tuple[BackendTarget, int], ReplicaStatus] = {}
        # One connection of its own per replica: checks never wait behind the traffic for a pooled connection (a
        # busy replica is not a down one), and never take a connection from the traffic.
        self._conns: dict[tuple[BackendTarget, Any], Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.rounds = 0
        pools.replica_fallback = self.config.fallback == "primary"

    @property
    def config(self) -> ReplicaHealthConfig:
        config = (self._source() if self._source is not None else None) or self._config
        self.pools.replica_fallback = config.fallback == "primary"
        return config

    def reconfigure(self, config: ReplicaHealthConfig) -> None:
        self._source = None
        self._config = config
        self.pools.replica_fallback = config.fallback == "primary"

    def tablet_type_of(self, user: str) -> str | None:
        """The default tablet type of ``user``'s reads (``users:``), or None."""
        return self.config.users.get(user) if user else None

    def start_if_needed(self) -> None:
        """Start checking once the pools serve a replica (called after each snapshot swap)."""
        targets = getattr(self.pools, "targets", None)
        if self._task is None and targets is not None and any(t.role != "primary" for t in targets()):
            self.start()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="shardgate replica health")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conns, self._conns = self._conns, {}
        for conn in conns.values():
            with contextlib.suppress(Exception):
                await conn.close()

    def check_soon(self) -> None:
        """Run the next round now (a replica read just failed)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.check_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not stop the checks
                log.error("replica health round failed: %s", type(exc).__name__,
                          extra={"event": "replica_health_error", "error": type(exc).__name__})
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.check_interval):
                    await self._wake.wait()

    async def check_all(self) -> None:
        """One round over every replica pool, concurrently."""
        _ = self.config  # a reloaded fallback policy reaches the pools
        checks = []
        for target in self.pools.targets():
            if target.role == "primary":
                continue
            entry = self.pools.role_pools(target)
            if entry is None:
                continue
            checks.extend(self._check(target, entry, i) for i in range(len(entry.pools)))
        if checks:
            await asyncio.gather(*checks)
        live = {(t, b) for t in self.pools.targets() if (e := self.pools.role_pools(t)) is not None
                for b in e.backends}
        for key in [k for k in self._conns if k not in live]:  # replicas a reload removed
            self._conns.pop(key).terminate()
        current = {(t, i) for t in self.pools.targets() if (e := self.pools.role_pools(t)) is not None
                   for i in range(len(e.pools))}
        for key in [k for k in self.status if k not in current]:
            del self.status[key]
        self.rounds += 1

    async def _check(self, target: BackendTarget, entry: Any, index: int) -> None:
        pool = entry.pools[index]
        cfg = self.config
        key = (target, index)
        status = self.status.get(key)
        if status is None:
            status = self.status[key] = ReplicaStatus(str(target), _describe(entry.backends[index]))
        backend = entry.backends[index]
        conn_key = (target, backend)
        try:
            async with asyncio.timeout(cfg.timeout):
                conn = self._conns.get(conn_key)
                if conn is None or conn.broken or not conn.is_alive():
                    self._conns.pop(conn_key, None)
                    dsn = backend.dsn() if hasattr(backend, "dsn") else backend
                    conn = self._conns[conn_key] = await open_connection(dsn, target, timeout=cfg.timeout)
                lag, problem, position = await _probe(conn)
        except (ShardgateError, TimeoutError, OSError) as exc:
            lag, problem, position = None, f"down ({_reason(exc)})", None
            stale = self._conns.pop(conn_key, None)
            if stale is not None:
                stale.terminate()
        status.checked_at = now = time.monotonic()
        if problem is None and lag is None and position is not None:
            # Behind, but nothing replayed since the replica started (no replay timestamp): the lag is how long
            # replay has stood at this position.
            if status.behind_at != position:
                status.behind_at, status.behind_since = position, now
            lag = now - status.behind_since
        elif lag is not None:
            status.behind_at = None
        status.lag = lag
        if problem is None and lag is not None and lag > cfg.max_lag:
            problem = f"lagging {lag:.1f} s (max {cfg.max_lag:g} s)"
        if problem is None:
            if not status.ok:
                log.info("replica %s %s is healthy again", target, status.backend,
                         extra={"event": "replica_unbanned", "target": str(target)})
            status.ok, status.reason = True, ""
            entry.unban(pool)
            if pool.down:
                await _wake(pool, cfg.timeout)
            return
        if status.ok:
            status.bans += 1
            log.warning("replica %s %s banned for %g s: %s", target, status.backend, cfg.ban_seconds, problem,
                        extra={"event": "replica_banned", "target": str(target), "reason": problem})
        status.ok, status.reason = False, problem
        entry.ban(pool, cfg.ban_seconds, problem)

    def snapshot(self) -> list[ReplicaStatus]:
        return list(self.status.values())


async def _probe(conn: Any) -> tuple[float | None, str | None, str | None]:
    """(lag in seconds or None when unknown, problem or None, replay position) of one replica, over the
    checker's own connection."""
    if conn.engine == "postgres":
        result = await conn.execute(_PG_LAG)
        assert isinstance(result, ResultSet)
        in_recovery, lag, receivers, position = result.rows[0]
        if not in_recovery:
            return 0.0, None, None  # a primary listed as a replica: current by definition
        if not receivers:
            return lag, "not streaming from its primary (no WAL receiver)", position
        return lag, None, position
    try:
        result = await conn.execute("SHOW SLAVE STATUS")
    except ShardgateError:
        result = await conn.execute("SHOW REPLICA STATUS")
    if not isinstance(result, ResultSet) or not result.rows:
        return None, "not a replica (SHOW SLAVE STATUS is empty)", None
    row = dict(zip(result.column_names, result.rows[0], strict=False))
    behind = row.get("Seconds_Behind_Master", row.get("Seconds_Behind_Source"))
    if behind is None:
        return None, "replication stopped (Seconds_Behind_Master is NULL)", None
    return float(behind), None, None


async def _wake(pool: Any, timeout: float) -> None:
    """The replica answers again but its pool is still in connect backoff, and reads skip it: borrow a connection,
    which probes the server once the backoff allows (a success ends the outage)."""
    with contextlib.suppress(ShardgateError, TimeoutError, OSError):
        async with asyncio.timeout(timeout), pool.acquire(timeout):
            pass


def _describe(backend: Any) -> str:
    host, port = getattr(backend, "host", "?"), getattr(backend, "port", "?")
    return f"{host}:{port}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "check timed out"
    return str(exc)[:200] if isinstance(exc, ShardgateError) else type(exc).__name__  # names host:port, no secret
