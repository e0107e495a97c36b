"""Reconnect backoff for one backend: after a failed connect, new connects wait, doubling up to a ceiling.

While a backend is down the pool does not let every query try to connect (a stampede of SYN floods and TLS
handshakes against a server that is restarting); queries fail at once with a clean error until the delay has
passed, then exactly one attempt probes the server (``begin_probe``). Success resets everything. Jitter spreads
the probes of many routers. Pure: time comes in as an argument, so tests need no sleeping.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    initial: float = 0.05  # seconds after the first failure
    ceiling: float = 2.0  # never wait longer than this between probes
    jitter: float = 0.2  # +- fraction of each delay
    failures: int = 0
    retry_at: float = 0.0  # monotonic time when the next attempt may start
    probing: bool = False  # an attempt is in flight while down
    last_error: str | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    @property
    def down(self) -> bool:
        return self.failures > 0

    def wait_time(self, now: float) -> float:
        """How long a new connect must wait (0: go ahead). While down, also waits for an attempt in flight."""
        if not self.failures:
            return 0.0
        if self.probing:
            return max(self.retry_at - now, 0.0) or self.initial
        return max(self.retry_at - now, 0.0)

    def begin_probe(self) -> None:
        if self.failures:
            self.probing = True

    def failure(self, now: float, error: str) -> float:
        """Record a failed connect; returns the delay until the next attempt."""
        self.failures += 1
        self.probing = False
        self.last_error = error
        base = min(self.ceiling, self.initial * (2 ** min(self.failures - 1, 30)))
        delay = base * (1.0 + self.jitter * (2.0 * self._rng.random() - 1.0))
        delay = min(max(delay, 0.0), self.ceiling)
        self.retry_at = now + delay
        return delay

    def success(self) -> bool:
        """Record a successful connect; True when this ends an outage."""
        recovered = self.failures > 0
        self.failures = 0
        self.probing = False
        self.retry_at = 0.0
        self.last_error = None
        return recovered
