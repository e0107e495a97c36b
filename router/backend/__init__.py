"""Backend connections and pools: the engine's only way to talk to shards.

    pools = PoolSet(PoolConfig(max_size=20))
    await pools.apply(snapshot)                       # and again on every topology change
    async with pools.acquire("customer", "-80") as conn:
        result = await conn.execute("SELECT ...")     # ResultSet | ExecResult
        async with conn.stream("SELECT ...", batch_rows=1000) as rows:
            async for batch in rows: ...
"""
from router.backend.connection import BackendConnection, BackendTarget, RowStream
from router.backend.pool import Pool
from router.backend.pool_config import PoolConfig, PoolStats
from router.backend.pools import PoolSet
from router.backend.result import Column, ExecResult, Notice, ResultSet, TypeCode

__all__ = ["BackendConnection", "BackendTarget", "Column", "ExecResult", "Notice", "Pool", "PoolConfig", "PoolSet",
           "PoolStats", "ResultSet", "RowStream", "TypeCode"]
