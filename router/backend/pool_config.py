"""Pool settings and the numbers a pool reports to metrics."""
from __future__ import annotations

from dataclasses import dataclass

from sharding.errors import ConfigError

__all__ = ["PoolConfig", "PoolStats"]


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Limits of one pool (one backend server in one role). Times in seconds; 0 disables a limit."""

    min_size: int = 0  # kept open (and reopened in the background) even when idle
    max_size: int = 10  # open connections at most, idle + in use + opening
    acquire_timeout: float = 5.0  # wait this long for a free connection, then TooManyConnectionsError
    max_waiters: int = 1000  # acquirers queued beyond this fail at once with ResourceLimitError
    connect_timeout: float = 5.0
    max_lifetime: float = 1800.0  # recycle connections this old (+-lifetime_jitter so they do not all go at once)
    lifetime_jitter: float = 0.1
    idle_timeout: float = 300.0  # close connections idle this long (above min_size)
    max_queries: int = 50_000  # recycle after this many statements (asyncpg's max_queries)
    health_check_idle: float = 10.0  # ping a connection at checkout when it sat idle this long
    ping_timeout: float = 2.0
    reset_timeout: float = 5.0  # rolling back / resetting a returned connection; over it, the connection goes
    backoff_initial: float = 0.05  # reconnect delays after the backend refused: doubling from here ...
    backoff_max: float = 2.0  # ... up to here
    maintenance_interval: float = 1.0  # the background sweep: idle/lifetime expiry, min_size refill
    close_timeout: float = 10.0  # how long close() waits for connections in use to come back

    def __post_init__(self) -> None:
        problems = []
        if self.max_size < 1:
            problems.append("max_size must be at least 1")
        if not 0 <= self.min_size <= self.max_size:
            problems.append("min_size must be between 0 and max_size")
        for name in ("acquire_timeout", "connect_timeout", "ping_timeout", "reset_timeout", "backoff_initial",
                     "maintenance_interval"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        for name in ("max_lifetime", "idle_timeout", "health_check_idle", "close_timeout", "max_queries",
                     "max_waiters"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        if self.backoff_max < self.backoff_initial:
            problems.append("backoff_max must be at least backoff_initial")
        if not 0 <= self.lifetime_jitter < 1:
            problems.append("lifetime_jitter must be in [0, 1)")
        if problems:
            raise ConfigError("invalid pool config: " + "; ".join(problems), problems=problems)


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A pool's gauges (size, idle, in_use, opening, waiters) and counters (since the pool started)."""

    target: str
    size: int
    idle: int
    in_use: int
    opening: int
    waiters: int
    max_size: int
    generation: int
    acquired: int  # checkouts served
    timeouts: int  # acquires that gave up waiting for a free connection
    errors: int  # failed connects
    created: int
    discarded: int  # closed by the pool for any reason (expired, broken, reset failed, shrunk)
    down: bool  # the last connect failed and the pool is backing off
    last_error: str | None = None
    settings_synced: int = 0  # checkouts that changed the connection's session settings for its borrower
