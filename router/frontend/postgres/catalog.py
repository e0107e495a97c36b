"""Introspection the frontend answers: system-catalog queries on one shard, and ``SHOW SHARDGATE SHARDS``.

psql's ``\\d``, ``\\dt`` and ``\\l`` and drivers' type lookups read ``pg_catalog`` with constructs the planner
does not parse (``OPERATOR(pg_catalog.~)``, ``COLLATE pg_catalog.default``, regex operators). When the planner
refuses such a statement and every relation it reads is a system catalog (``statements.is_system_catalog_query``),
it goes unchanged to the first shard of the session's keyspace: every shard holds the same schema, and always
asking the same one keeps the OIDs a client reads in one query valid in its next.

Engine request: a DBA route that takes any text (no planning) would make this a plan like any other.
"""
from __future__ import annotations

import re
from typing import Any

from router.frontend.postgres import oids as O
from router.frontend.postgres.portal import Field, fields_of
from router.frontend.postgres.running import RowsRun
from router.shard_listing import SHARD_COLUMNS, shard_rows
from sharding.errors import InvalidValueError, UnknownKeyspaceError

__all__ = ["SHARDS_FIELDS", "on_all_shards", "on_first_shard", "shards_rows"]

SHARDS_FIELDS = tuple(Field(n, O.TEXT) for n in SHARD_COLUMNS)


def _keyspace(gateway: Any, session: Any) -> str:
    keyspace = session.state.keyspace
    snapshot = gateway.snapshot
    if keyspace is None:
        postgres = [k for k in sorted(snapshot.keyspaces) if gateway.backend_dialect(k) == "postgres"]
        if not postgres:
            raise UnknownKeyspaceError("no PostgreSQL keyspace to read the catalog of")
        keyspace = postgres[0]
    return str(keyspace)


async def on_first_shard(gateway: Any, session: Any, sql: str, params: list[Any] | None) -> RowsRun:
    """Run ``sql`` as written on the first shard of the session's keyspace (its target shard, if it has one)."""
    from router.backend.result import ResultSet

    keyspace = _keyspace(gateway, session)
    shards = gateway.snapshot.shards(keyspace)
    target = session.state.target
    shard = next((s for s in shards if s.name == target), shards[0])
    if params:
        sql = inline_params(sql, params)
    async with gateway.pools.acquire(keyspace, shard.name) as conn:
        result = await conn.execute(sql)
    if isinstance(result, ResultSet):
        return RowsRun(fields_of(result.columns), list(result.rows), "SELECT")
    status = getattr(result, "status", "") or "SELECT 0"
    return RowsRun((), [], status, counted=False)


async def on_all_shards(gateway: Any, session: Any, sql: str) -> None:
    """Run a maintenance statement (VACUUM, ANALYZE) as written on every shard of the session's keyspace, all at
    once; the first failure is raised after all have finished."""
    import asyncio

    keyspace = _keyspace(gateway, session)

    async def one(shard: str) -> None:
        async with gateway.pools.acquire(keyspace, shard) as conn:
            await conn.execute(sql)

    results = await asyncio.gather(*(one(s.name) for s in gateway.snapshot.shards(keyspace)),
                                   return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r


def inline_params(sql: str, params: list[Any]) -> str:
    """``sql`` with each ``$n`` replaced by the literal of ``params[n-1]`` (strings, quoted identifiers, comments
    and dollar-quoted bodies left alone). The values then need no driver-side typing on the shard connection."""
    from router.planner.sqltext import encode_postgres

    out: list[str] = []
    i, n, last = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c == "'" or c == '"':
            escapes = c == "'" and i > 0 and sql[i - 1] in "eE"
            j = i + 1
            while j < n:
                if escapes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if sql[j + 1:j + 2] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "$":
            m = _DOLLAR.match(sql, i)
            if m is not None and m.group(1) is not None:  # $n
                if i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_"):
                    i = m.end()
                    continue
                k = int(m.group(1))
                if not 1 <= k <= len(params):
                    raise InvalidValueError(f"there is no parameter ${k}")
                out.append(sql[last:i])
                out.append(encode_postgres(params[k - 1]))
                last = i = m.end()
            elif m is not None:  # $tag$ … $tag$
                end = sql.find(m.group(0), m.end())
                i = n if end < 0 else end + len(m.group(0))
            else:
                i += 1
        else:
            i += 1
    out.append(sql[last:])
    return "".join(out)


_DOLLAR = re.compile(r"\$(?:(\d+)|[A-Za-z_][A-Za-z0-9_]*\$|\$)")


def shards_rows(gateway: Any) -> RowsRun:
    """``SHOW SHARDGATE SHARDS`` (``router.shard_listing``)."""
    return RowsRun(SHARDS_FIELDS, shard_rows(gateway.snapshot, gateway.pools), "SELECT")
