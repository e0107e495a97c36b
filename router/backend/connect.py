"""Open one backend connection of the right engine: the pool's default opener."""
from __future__ import annotations

from router.backend.adapter import AdapterBase
from router.backend.connection import BackendTarget
from sharding.db import DSN

__all__ = ["open_connection"]


async def open_connection(dsn: DSN, target: BackendTarget, *, timeout: float = 10.0) -> AdapterBase:
    """A connected adapter for ``dsn`` (asyncpg for postgres, aiomysql for mysql), labelled with ``target``.

    Raises ``BackendUnavailableError`` (refused, unreachable, bad login, timeout) and ``ConfigError`` (bad TLS CA).
    """
    if dsn.engine == "postgres":
        from router.backend.postgres import open_postgres

        return await open_postgres(dsn, target, timeout=timeout)
    from router.backend.mysql import open_mysql

    return await open_mysql(dsn, target, timeout=timeout)
