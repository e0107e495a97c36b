"""``LocalCluster``: several servers started in parallel and stopped together."""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shardgate.localdb.host import DEFAULT_STARTUP_TIMEOUT
from shardgate.localdb.mariadb import MariaDBInstance
from shardgate.localdb.orphans import reap_orphans
from shardgate.localdb.postgres import PostgresInstance
from shardgate.localdb.server import LocalServer
from sharding.errors import BackendUnavailableError


# --- several servers ------------------------------------------------------------------------------------------
class LocalCluster:
    """N PostgreSQL and M MariaDB instances, started in parallel and stopped together.

    ``with LocalCluster(postgres=2, mysql=2) as cluster: cluster.postgres[0].dsn``
    """

    def __init__(self, postgres: int = 2, mysql: int = 2, *, root_dir: str | os.PathLike[str] | None = None,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT, password: str | None = None) -> None:
        common: dict[str, Any] = {"root_dir": root_dir, "startup_timeout": startup_timeout, "password": password}
        self.root_dir = root_dir
        self.postgres: list[PostgresInstance] = [PostgresInstance(**common) for _ in range(postgres)]
        self.mysql: list[MariaDBInstance] = [MariaDBInstance(**common) for _ in range(mysql)]

    @property
    def servers(self) -> list[LocalServer]:
        return [*self.postgres, *self.mysql]

    def start(self) -> LocalCluster:
        """Start every instance concurrently; on any failure stop them all and raise one error naming each."""
        servers = self.servers
        if not servers:
            return self
        reap_orphans(self.root_dir)
        with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="shardgate-localdb") as pool:
            futures = [(server, pool.submit(server.start)) for server in servers]
            errors = [(server, future.exception()) for server, future in futures]
        failed = [(server, exc) for server, exc in errors if exc is not None]
        if failed:
            self.destroy()
            by_message: dict[str, list[str]] = {}
            for server, exc in failed:  # a missing binary fails every instance the same way: say it once
                by_message.setdefault(str(exc).removeprefix(f"{server.name}: "), []).append(server.name)
            raise BackendUnavailableError("; ".join(f"{', '.join(names)}: {message}"
                                                    for message, names in by_message.items())) from failed[0][1]
        return self

    def abort(self) -> None:
        """Make a ``start()`` in progress in another thread (or interrupted by a signal) give up quickly."""
        for server in self.servers:
            server.abort()

    def stop(self) -> None:
        self._each(lambda server: server.stop())

    def destroy(self) -> None:
        self._each(lambda server: server.destroy())

    def _each(self, action: Callable[[LocalServer], None]) -> None:
        servers = self.servers
        if servers:
            with ThreadPoolExecutor(max_workers=len(servers)) as pool:
                list(pool.map(action, servers))

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
