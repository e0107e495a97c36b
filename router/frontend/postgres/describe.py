"""Describe of a prepared statement: its parameter types and its result columns, before it runs.

A PostgreSQL client that prepares a statement (asyncpg, JDBC, ``psycopg`` with ``prepare=True``) asks for both
and then encodes its arguments and decodes the rows by those types, so they must be the types the shards use.
The router has no type checker of its own; it asks a shard, as PostgreSQL would answer: the statement is
prepared (not run) on the first shard of the session's keyspace, which holds the same schema as every other.
Answers are cached per (keyspace, target, text) and forgotten when DDL goes through the router.

Statements a shard cannot prepare as written (a keyspace-qualified table of another keyspace, a cross-keyspace
join) fall back to running the statement through the engine with NULL parameters, for SELECTs only, and reading
its columns; their parameters are reported as ``text``.

Engine request: this reaches into ``PooledConnection.raw`` (the asyncpg connection). An engine-level
``Session.describe(sql) -> (param_oids, columns)`` would let the MySQL-backed keyspaces answer too.
"""
from __future__ import annotations

import collections
from typing import Any

from router.frontend.postgres import oids as O
from router.frontend.postgres.portal import Field, fields_of
from sharding.errors import BackendError, BackendUnavailableError, ShardgateError, UnsupportedError

__all__ = ["Describer", "Description"]

Description = tuple[tuple[int, ...], tuple[Field, ...]]
MAX_CACHED_TEXT = 16 * 1024


class Describer:
    def __init__(self, gateway: Any, max_entries: int = 4096) -> None:
        self.gateway = gateway
        self.max_entries = max_entries
        self._cache: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()

    def clear(self) -> None:
        self._cache.clear()

    async def describe(self, session: Any, sql: str, nparams: int, rows_kind: bool) -> Description:
        state = session.state
        key = (state.keyspace, state.target, sql)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            if isinstance(hit, ShardgateError):
                raise hit
            return hit
        try:
            try:
                desc = await self._on_shard(state.keyspace, state.target, sql)
            except (BackendError, UnsupportedError) as exc:
                if not rows_kind:
                    raise
                desc = await self._by_running(session, sql, nparams, exc)
        except (BackendError, UnsupportedError) as exc:
            self._remember(key, exc)  # a statement that cannot be described is not asked about again
            raise
        self._remember(key, desc)
        return desc

    def _remember(self, key: tuple[Any, ...], value: Any) -> None:
        if len(key[2]) > MAX_CACHED_TEXT:
            return  # memory: huge texts are described each time instead
        self._cache[key] = value
        if len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    def _shard_for(self, keyspace: str | None, target: str | None) -> tuple[str, str]:
        snapshot = self.gateway.snapshot
        if keyspace is None:
            names = sorted(snapshot.keyspaces)
            if not names:
                raise UnsupportedError("no keyspace to describe the statement on")
            keyspace = names[0]
        shards = snapshot.shards(keyspace)
        if target:
            for s in shards:
                if s.name == target:
                    return keyspace, s.name
        return keyspace, shards[0].name

    async def _on_shard(self, keyspace: str | None, target: str | None, sql: str) -> Description:
        ks, shard = self._shard_for(keyspace, target)
        if self.gateway.backend_dialect(ks) != "postgres":
            raise UnsupportedError("describing statements needs a PostgreSQL shard")
        import asyncpg

        async with self.gateway.pools.acquire(ks, shard) as lease:
            raw = lease.raw
            if raw is None:
                raise UnsupportedError("the shard connection cannot describe statements")
            try:
                stmt = await raw.prepare(sql)
            except asyncpg.PostgresError as exc:
                err = BackendError(str(exc), pg_sqlstate=getattr(exc, "sqlstate", None) or "XX000",
                                   shard=f"{ks}/{shard}")
                position = getattr(exc, "position", None)
                err.position = int(position) if position and str(position).isdigit() else None
                err.detail = getattr(exc, "detail", None)
                raise err from None
            except (OSError, asyncpg.InterfaceError) as exc:
                lease.discard()
                raise BackendUnavailableError(f"{ks}/{shard}: {exc}") from None
            params = tuple(int(t.oid) for t in stmt.get_parameters())
            fields = tuple(Field(a.name, int(a.type.oid)) for a in stmt.get_attributes())
            return params, fields

    async def _by_running(self, session: Any, sql: str, nparams: int, cause: ShardgateError) -> Description:
        try:
            async with session.stream(sql, [None] * nparams) as ex:
                columns = ex.columns
        except ShardgateError:
            raise cause from None
        return (O.TEXT,) * nparams, fields_of(columns)
