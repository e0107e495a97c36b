"""A PostgreSQL streaming replica of a ``shardgate.localdb`` primary, for replica-routing tests.

``PostgresReplica(primary)`` initialises its data directory with ``pg_basebackup -R -X stream`` from the primary
(over the primary's trusted Unix socket, as the ``postgres`` OS user) instead of ``initdb``: it starts as a hot
standby streaming from the primary, with the primary's roles and passwords (no ALTER ROLE on a standby).
"""
from __future__ import annotations

from typing import Any

from shardgate.localdb.host import find_postgres_bindir
from shardgate.localdb.postgres import PostgresInstance

__all__ = ["PostgresReplica"]


class PostgresReplica(PostgresInstance):
    def __init__(self, primary: PostgresInstance, **kwargs: Any) -> None:
        super().__init__(f"{primary.name}-replica", user=primary.user, database=primary.database,
                         password=primary.password,
                         settings={"hot_standby": "on", "wal_receiver_status_interval": "1s",
                                   "hot_standby_feedback": "on"}, **kwargs)
        self.primary = primary
        self._password_set = True  # the primary's, copied by the base backup

    def _init_from_template(self) -> None:
        self._bindir = self._bindir or find_postgres_bindir()
        self._run_tool([str(self._bindir / "pg_basebackup"), "-D", str(self.data_dir), "-h",
                        str(self.primary.base_dir), "-p", str(self.primary.port), "-U", self.primary.user, "-R",
                        "-X", "stream", "-c", "fast", "--no-sync"])

    def _after_start(self) -> None:
        pass  # read-only: databases come from the primary
