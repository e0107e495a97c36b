"""The demo's backends: one local server per shard (3 PostgreSQL, 3 MariaDB), with schema and sample rows."""
from __future__ import annotations

import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shardgate.demo import data


class DemoCluster:
    """Servers for ``data.SHARDS``; ``start()`` starts them in parallel, ``load()`` fills them."""

    def __init__(self, root_dir: str | None = None) -> None:
        from shardgate.localdb import LocalCluster

        counts = {engine: sum(1 for s in data.SHARDS if s.engine == engine) for engine in ("postgres", "mysql")}
        # One random password for every shard login; the router reads it from the environment (never the config).
        self.password = secrets.token_urlsafe(18)
        self.cluster = LocalCluster(postgres=counts["postgres"], mysql=counts["mysql"], root_dir=root_dir,
                                    password=self.password)
        pools = {"postgres": iter(self.cluster.postgres), "mysql": iter(self.cluster.mysql)}
        self.servers: dict[str, Any] = {s.label: next(pools[s.engine]) for s in data.SHARDS}
        self.dsns: dict[str, Any] = {}

    def start(self) -> None:
        self.cluster.start()
        os.environ[data.PASSWORD_ENV] = self.password
        for s in data.SHARDS:
            self.dsns[s.label] = self.servers[s.label].create_database(s.database)

    def load(self, snap: Any) -> None:
        """Schema, sequence rows, reference and lookup rows, and each customer's rows on its shard."""
        from shardgate.localdb import run_sql

        def fill(shard: data.DemoShard) -> None:
            run_sql(self.dsns[shard.label], *data.schema_statements(shard.engine, shard.sharded),
                    *data.sample_rows(snap, shard))

        with ThreadPoolExecutor(max_workers=len(data.SHARDS), thread_name_prefix="demo-load") as pool:
            list(pool.map(fill, data.SHARDS))

    def config_doc(self) -> dict[str, Any]:
        users = {"postgres": self.cluster.postgres[0].user, "mysql": self.cluster.mysql[0].user}
        return data.config_doc(self.servers, backend_user=users)

    def abort(self) -> None:
        self.cluster.abort()

    def stop(self) -> None:
        self.cluster.destroy()
        os.environ.pop(data.PASSWORD_ENV, None)
