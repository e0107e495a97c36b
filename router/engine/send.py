"""``Send``: a statement sent unchanged to a set of shards (DDL fan-out). All shards run it concurrently; when some
fail, the error names the shards that failed and the ones where it succeeded (DDL is not transactional on MySQL,
so the client must know what to repair).

After DDL, whether it succeeded everywhere or not, the session's host (the gateway) is told, so it re-reads the
keyspace's schema before the statement returns: the client's next statement is planned with the new columns, and
a fan-out that failed half-way shows up as a schema disagreement."""
from __future__ import annotations

import asyncio

from router.engine.runtime import ListSource, Runtime, Source
from router.planner.plan import Send
from sharding.errors import ShardgateError
from sharding.snapshot import Shard

__all__ = ["run_send"]


def _shards(prim: Send, rt: Runtime) -> list[Shard]:
    from router.planner.resolve import _target_shards

    keyspace = prim.keyspace.name
    if prim.target is None or (prim.all_shards and prim.target in ("", "-")):
        return list(rt.snapshot.shards(keyspace))
    return _target_shards(rt.snapshot, keyspace, prim.target)


async def run_send(prim: Send, rt: Runtime) -> Source:
    keyspace = prim.keyspace.name
    shards = _shards(prim, rt)
    dialect = rt.ctx.backend_dialect(keyspace)
    sql = prim.query.render(rt.binds, dialect, rt.env)

    async def one(shard: Shard) -> object:
        return await rt.wait(rt.ctx.execute(rt.target(keyspace, shard.name, write=True), sql,
                                            timeout=rt.remaining()))

    results = await asyncio.gather(*(one(s) for s in shards), return_exceptions=True)
    failed = [(s, r) for s, r in zip(shards, results, strict=True) if isinstance(r, BaseException)]
    if len(failed) < len(shards):  # something ran: the keyspace's tables may have changed
        await _schema_changed(rt, keyspace, sql)
    rt.totals.has_rows = False
    if failed:
        ok = [f"{keyspace}/{s.name}" for s, r in zip(shards, results, strict=True) if not isinstance(r, BaseException)]
        exc = failed[0][1]
        if not isinstance(exc, ShardgateError) or len(shards) == 1:
            raise exc
        names = ", ".join(f"{keyspace}/{s.name}" for s, _ in failed)
        exc.message = f"failed on {names}" + (f" (succeeded on {', '.join(ok)})" if ok else "") + f": {exc.message}"
        exc.args = (exc.message,)
        raise exc
    return ListSource((), [])


async def _schema_changed(rt: Runtime, keyspace: str, sql: str) -> None:
    session = rt.session
    notify = getattr(getattr(session, "host", None), "schema_changed", None)
    if notify is not None:
        await notify(keyspace, session, sql)
