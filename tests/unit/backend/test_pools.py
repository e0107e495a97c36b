"""PoolSet: pools follow the snapshot; unchanged backends keep their pools, removed ones drain and close."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from router.backend.pool_config import PoolConfig
from router.backend.pools import PoolSet
from sharding.errors import BackendUnavailableError, ConfigError
from sharding.snapshot import ClusterSnapshot, Shard
from sharding.vschema import parse_vschema
from tests.unit.backend.fakes import DSN_A, DSN_B, FakeOpener

pytestmark = pytest.mark.timeout(10)

VSCHEMA = parse_vschema({"keyspaces": {"customer": {"sharded": True}, "main": {"sharded": False}}})
CONFIG = PoolConfig(maintenance_interval=3600.0, close_timeout=1.0)


def snapshot(version: int, low: object, high: object, main: object = DSN_A) -> ClusterSnapshot:
    return ClusterSnapshot.build(version, VSCHEMA, {
        "customer": [Shard.from_name("-80", {"primary": low}), Shard.from_name("80-", {"primary": high})],
        "main": [Shard.from_name("0", {"primary": main, "replica": [DSN_A, DSN_B]})],
    })


async def test_pools_follow_the_snapshot() -> None:
    opener = FakeOpener()
    pools = PoolSet(CONFIG, opener=opener)
    report = await pools.apply(snapshot(1, DSN_A, DSN_B))
    assert report.version == 1 and report.kept == () and len(report.added) == 4
    assert sorted(map(str, pools.targets())) == ["customer/-80/primary", "customer/80-/primary",
                                                 "main/0/primary", "main/0/replica"]
    low = pools.pool("customer", "-80")
    async with pools.acquire("customer", "-80") as conn:
        assert conn.target.shard == "-80" and (await conn.execute("SELECT 1")).status == "SELECT 1"
    high = pools.pool("customer", "80-")
    lease = await high.acquire()  # still on loan during the swap

    moved = dataclasses.replace(DSN_B, port=6000)
    report = await pools.apply(snapshot(2, DSN_A, moved))
    assert report.kept == ("customer/-80/primary", "main/0/primary", "main/0/replica")
    assert report.added == ("customer/80-/primary",) and report.removed == ("customer/80-/primary",)
    assert pools.pool("customer", "-80") is low  # warm connections kept
    assert pools.pool("customer", "80-") is not high and pools.version == 2
    assert high.closing
    with pytest.raises(BackendUnavailableError, match="pool is closed"):
        await high.acquire()
    await lease.execute("SELECT 2")  # a query that started on the old snapshot finishes
    await lease.release()
    await asyncio.wait_for(pools.drained(), 2)
    assert high.stats().size == 0
    await pools.close()
    assert low.closing and pools.stats() == []


async def test_replicas_round_robin_and_missing_roles() -> None:
    pools = PoolSet(CONFIG, opener=FakeOpener())
    await pools.apply(snapshot(1, DSN_A, DSN_B))
    picked = {id(pools.pool("main", "0", "replica")) for _ in range(4)}
    assert len(picked) == 2
    with pytest.raises(BackendUnavailableError, match="no rdonly backend"):
        pools.pool("main", "0", "rdonly")
    with pytest.raises(BackendUnavailableError):
        pools.pool("nope", "0")
    await pools.close()


async def test_down_replicas_are_skipped() -> None:
    opener = FakeOpener()
    pools = PoolSet(CONFIG, opener=opener)
    await pools.apply(snapshot(1, DSN_A, DSN_B))
    first = pools.pool("main", "0", "replica")
    opener.fail = True
    with pytest.raises(BackendUnavailableError):
        await first.acquire()
    opener.fail = False
    assert all(pools.pool("main", "0", "replica") is not first for _ in range(4))
    await pools.close()


async def test_per_target_config_and_min_size_warmup() -> None:
    opener = FakeOpener()
    warm = PoolConfig(min_size=2, maintenance_interval=3600.0)
    pools = PoolSet(lambda target: warm if target.role == "primary" else CONFIG, opener=opener)
    await pools.apply(snapshot(1, DSN_A, DSN_B))
    assert pools.pool("customer", "-80").stats().idle == 2
    assert pools.pool("main", "0", "replica").stats().idle == 0
    await pools.close()


async def test_bad_backend_entries_are_config_errors() -> None:
    pools = PoolSet(CONFIG, opener=FakeOpener())
    with pytest.raises(ConfigError):
        await pools.apply(snapshot(1, "postgresql://x", DSN_B))
    await pools.close()


async def test_lookup_by_target() -> None:
    from router.backend.connection import BackendTarget

    pools = PoolSet(CONFIG, opener=FakeOpener())
    await pools.apply(snapshot(1, DSN_A, DSN_B))
    target = BackendTarget("customer", "80-")
    assert pools.pool(target) is pools.pool("customer", "80-", "primary")
    async with pools.acquire(target) as conn:
        assert conn.target == target
    with pytest.raises(TypeError):
        pools.pool("customer")
    await pools.close()
