"""How many client sessions may be open at once: in all, and per user (the config's ``limits`` section and each
user's ``max_connections``). Both frontends ask the same ``ClientLimiter`` (the gateway's), so the limits hold
across protocols. A session over a limit is refused at login with ``TooManyConnectionsError`` (MySQL 1040,
PostgreSQL SQLSTATE 53300) whose message names the limit.

    admission = gateway.clients.admit(user)   # raises when full
    ...                                        # the session's life
    admission.release()                        # idempotent

The limits are read from the config in force at each login (``source``), so ``RELOAD`` changes them for the next
logins; sessions already admitted stay.
"""
from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from sharding.errors import TooManyConnectionsError

__all__ = ["Admission", "ClientLimiter"]


class Admission:
    """One admitted session; ``release()`` when it ends."""

    __slots__ = ("_limiter", "user")

    def __init__(self, limiter: ClientLimiter | None, user: str) -> None:
        self._limiter = limiter
        self.user = user

    def release(self) -> None:
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._leave(self.user)


class ClientLimiter:
    """Counts open client sessions; ``source()`` gives the ``ClusterConfig`` in force (or None: no limits)."""

    def __init__(self, source: Callable[[], Any] | None = None) -> None:
        self._source = source or (lambda: None)
        self.total = 0
        self.by_user: collections.Counter[str] = collections.Counter()
        self.refused = 0

    def limits_for(self, user: str) -> tuple[int, int]:
        """(all users, this user); 0 means no limit."""
        config = self._source()
        limits = getattr(config, "limits", None)
        total = int(getattr(limits, "max_client_connections", 0) or 0)
        per_user = int(getattr(limits, "max_user_connections", 0) or 0)
        entry = config.user(user) if config is not None and user else None
        own = getattr(entry, "max_connections", None)
        if own is not None:
            per_user = int(own)
        return total, per_user

    def admit(self, user: str) -> Admission:
        total, per_user = self.limits_for(user)
        if total and self.total >= total:
            self.refused += 1
            raise TooManyConnectionsError(f"too many connections: the router's limit of {total} client sessions "
                                          f"(limits.max_client_connections) is reached")
        if per_user and self.by_user[user] >= per_user:
            self.refused += 1
            raise TooManyConnectionsError(f"too many connections for user '{user}': its limit of {per_user} "
                                          f"client sessions is reached")
        self.total += 1
        self.by_user[user] += 1
        return Admission(self, user)

    def _leave(self, user: str) -> None:
        self.total -= 1
        self.by_user[user] -= 1
        if self.by_user[user] <= 0:
            del self.by_user[user]

    @staticmethod
    def of(gateway: Any) -> ClientLimiter:
        """The gateway's limiter (made on first use when the gateway has none)."""
        limiter = getattr(gateway, "clients", None)
        if not isinstance(limiter, ClientLimiter):
            limiter = ClientLimiter(lambda: getattr(gateway, "config", None))
            gateway.clients = limiter
        return limiter
