"""The PostgreSQL wire-protocol frontend: clients speak PostgreSQL to shardgate (psql, pgbench, asyncpg, psycopg,
SQLAlchemy, JDBC), and the gateway routes their statements to the shards.

Layout, by direction of traffic (PgDog's habit):

- ``messages``: framing and every message, encoded and decoded in one place, strictly;
- ``oids``, ``types``, ``textfmt``, ``binfmt``: type OIDs, result columns as RowDescription fields, the text and
  binary formats of values;
- ``auth``: rules per user and network (pg_hba style) and the SCRAM-SHA-256 / md5 / password / trust exchanges;
- ``protocol``: the sans-I/O state machine (bytes in, events out; startup, TLS request, auth, skip-to-Sync);
- ``statements``: what a statement is from its first words (command tags, the statements answered here);
- ``handler`` (with ``portal``, ``running``, ``describe``, ``catalog``, ``copy``): simple and extended query
  against an engine session — prepared statements and portals live here, COPY, the failed-transaction state;
- ``passthrough`` and ``rawconn``: single-shard reads forwarded byte for byte over raw shard connections;
- ``server``: asyncio glue, back-pressure, cancel keys across workers, draining (``start_postgres_listener``).
"""
from typing import Any

__all__ = ["FrontendOptions", "PgFrontend", "start_postgres_listener"]


def __getattr__(name: str) -> Any:
    # Lazy: the message, protocol and type modules are used (and unit-tested) without the gateway and the engine.
    if name in __all__:
        from router.frontend.postgres import server

        return getattr(server, name)
    raise AttributeError(name)
