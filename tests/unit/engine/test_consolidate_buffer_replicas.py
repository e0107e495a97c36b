"""Pure parts of consolidation (flights, floors, caps, switches), the buffer (pause, bounds, plan targets), replica
selection in ``PoolSet`` (bans, fallback) and the config sections and shard ``replicas:`` that configure them."""
from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any

import pytest

from router.backend.connection import BackendTarget
from router.backend.pools import PoolSet
from router.config_sections import parse_config as router_parse_config
from router.engine.buffering import Buffer, BufferConfig
from router.engine.consolidate import NOT_SHARED, ConsolidationConfig, Consolidator, Scope, shareable_sql
from sharding.config import parse_config
from sharding.errors import BackendError, BufferTimeoutError, ConfigError, QueryTimeoutError
from tests.unit.sharding.test_config import base_doc


# --- consolidation --------------------------------------------------------------------------------------------
async def test_followers_get_the_leaders_result_once_per_flight() -> None:
    cons = Consolidator()
    scope = Scope(0)
    lead, follow = cons.lead_or_follow("k", scope, None)
    assert lead is not None and follow is None
    followers = [cons.lead_or_follow("k", scope, None)[1] for _ in range(3)]
    assert all(f is lead for f in followers)
    waits = [asyncio.ensure_future(cons.wait(f, None)) for f in followers]  # type: ignore[arg-type]
    await asyncio.sleep(0)
    lead.finish("rows")
    assert await asyncio.gather(*waits) == ["rows"] * 3
    assert cons.stats()["hits"] == 3 and cons.in_flight() == 0
    assert cons.lead_or_follow("k", scope, None)[0] is not None  # ended: the next one leads again


async def test_write_floor_deadline_and_cap() -> None:
    cons = Consolidator(ConsolidationConfig(max_waiters=1))
    lead, _ = cons.lead_or_follow("k", Scope(0), None)
    assert lead is not None
    mark = cons.tick()  # a session wrote the table after the flight started
    assert cons.lead_or_follow("k", Scope(mark), None) == (None, None)  # runs its own, leaves the flight alone
    lead2, _ = cons.lead_or_follow("d", Scope(0), time.monotonic() + 1)
    assert cons.lead_or_follow("d", Scope(0), None) == (None, None)  # no deadline of its own: the flight's is sooner
    assert cons.lead_or_follow("d", Scope(0), time.monotonic() + 0.5)[1] is lead2
    assert cons.lead_or_follow("k", Scope(0), None)[1] is lead
    assert cons.lead_or_follow("k", Scope(0), None) == (None, None) and cons.stats()["capped"] == 1


async def test_errors_shared_but_leader_own_failures_are_not() -> None:
    cons = Consolidator()
    lead, _ = cons.lead_or_follow("k", Scope(0), None)
    _, f = cons.lead_or_follow("k", Scope(0), None)
    wait = asyncio.ensure_future(cons.wait(f, None))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    lead.fail(BackendError("division by zero"))  # type: ignore[union-attr]
    with pytest.raises(BackendError, match="division by zero"):
        await wait
    lead, _ = cons.lead_or_follow("k", Scope(0), None)
    _, f = cons.lead_or_follow("k", Scope(0), None)
    wait = asyncio.ensure_future(cons.wait(f, None))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    lead.fail(QueryTimeoutError("the leader's own timeout"))  # type: ignore[union-attr]
    assert await wait is NOT_SHARED


async def test_too_large_is_not_shared_and_remembered() -> None:
    cons = Consolidator(ConsolidationConfig(max_rows=10))
    lead, _ = cons.lead_or_follow("k", Scope(0), None)
    _, f = cons.lead_or_follow("k", Scope(0), None)
    assert lead is not None and lead.grow(10) and not lead.grow(1)
    assert await cons.wait(f, None) is NOT_SHARED  # type: ignore[arg-type]
    assert cons.lead_or_follow("k", Scope(0), None) == (None, None)  # known large for large_ttl


def test_switches_and_unshareable_text() -> None:
    cons = Consolidator(ConsolidationConfig(tables={"main.audit_*": False, "main.audit_ok": True},
                                            users={"batch": False}))
    assert cons.allowed("app", ["main.t"]) and cons.allowed("app", ["main.audit_ok"])
    assert not cons.allowed("app", ["main.t", "main.audit_log"]) and not cons.allowed("batch", ["main.t"])
    assert cons.scope("app", ["main.t", "main.u"], {"main.u": 7}) == Scope(7)
    for sql in ("SELECT * FROM t FOR UPDATE", "SELECT nextval('s')", "SELECT GET_LOCK('x', 1)",
                "SELECT @a := 1", "SELECT * FROM t LOCK IN SHARE MODE", "SELECT pg_advisory_lock(1)"):
        assert not shareable_sql(sql), sql
    assert shareable_sql("SELECT count(*) FROM big WHERE a > 3")


# --- buffering ------------------------------------------------------------------------------------------------
class _Session:
    def __init__(self, host: Any) -> None:
        self.host = host

    def limits(self) -> Any:
        return type("L", (), {"query_timeout": None})()

    def _role(self) -> str:
        return "primary"

    def view(self) -> Any:
        return None


async def test_buffer_bounds() -> None:
    buf = Buffer(BufferConfig(max_wait=0.1, max_requests=1))
    handle = buf.pause("ks", ["-80"], reason="switch")
    assert buf.active and buf.blocking([("ks", "80-")]) is None
    hit = buf.blocking([("ks", "80-"), ("ks", "-80")])
    assert hit is not None and hit[1] is handle
    first = asyncio.ensure_future(buf.wait_for(hit[0], handle, time.monotonic() + 5))
    await asyncio.sleep(0)
    with pytest.raises(BufferTimeoutError, match="buffer is full"):
        await buf.wait_for(hit[0], handle, time.monotonic() + 5)
    handle.resume()
    await first
    assert not buf.active and buf.waiting() == 0
    handle = buf.pause("ks", None, reason="switch")
    with pytest.raises(BufferTimeoutError, match="beyond the buffering bound"):
        await buf.wait_for(("ks", "x"), handle, time.monotonic() + 0.05)
    handle.resume()


async def test_pause_expires() -> None:
    buf = Buffer(BufferConfig(max_pause=0.05))
    handle = buf.pause("ks")
    await asyncio.wait_for(handle.resumed.wait(), 1)
    assert not buf.active and buf.stats.expired_pauses == 1


# --- replica selection ----------------------------------------------------------------------------------------
class _FakePool:
    def __init__(self, name: str) -> None:
        self.name = name
        self.down = False

    def __repr__(self) -> str:
        return self.name


def _poolset(replicas: int) -> tuple[PoolSet, Any, Any]:
    from router.backend.pools import _RolePools

    pools = PoolSet()
    primary = _RolePools(("p",), (_FakePool("p"),))  # type: ignore[arg-type]
    reps = _RolePools(tuple(f"r{i}" for i in range(replicas)),
                      tuple(_FakePool(f"r{i}") for i in range(replicas)))  # type: ignore[arg-type]
    pools._roles = {BackendTarget("ks", "0", "primary"): primary, BackendTarget("ks", "0", "replica"): reps}
    return pools, primary, reps


def test_replica_bans_and_fallback() -> None:
    pools, _primary, reps = _poolset(2)
    target = BackendTarget("ks", "0", "replica")
    assert {repr(pools.pool(target)) for _ in range(4)} == {"r0", "r1"}
    reps.ban(reps.pools[0], 10, "lagging")
    assert {repr(pools.pool(target)) for _ in range(4)} == {"r1"}
    reps.ban(reps.pools[1], 10, "down")
    assert repr(pools.pool(target)) == "p"  # every replica banned: the primary
    pools.replica_fallback = False
    with pytest.raises(Exception, match="every replica is down or banned"):
        pools.pool(target)
    reps.unban(reps.pools[1])
    assert repr(pools.pool(target)) == "r1"
    pools.replica_fallback = True
    assert repr(pools.pool(BackendTarget("ks", "0", "primary"))) == "p"
    from router.backend.pools import _RolePools

    pools._roles = {**pools._roles, BackendTarget("ks", "1", "primary"): _RolePools(("q",), (_FakePool("q"),))}  # type: ignore[arg-type]
    assert repr(pools.pool(BackendTarget("ks", "1", "replica"))) == "q"  # no replica configured: the primary


# --- config ---------------------------------------------------------------------------------------------------
def test_shard_replicas_in_config(tmp_path: Path) -> None:
    doc = base_doc()
    doc["keyspaces"]["main"]["shards"]["0"]["replicas"] = [{"host": "127.0.0.2"}, {"host": "127.0.0.3", "port": 7000,
                                                                                 "password_env": "SG_R"}]
    config = parse_config(doc, source="cluster.yaml", base_dir=tmp_path)
    shard = config.keyspaces["main"].shards[0]
    r1, r2 = shard.replicas
    assert (r1.host, r1.port, r1.database, r1.password) == ("127.0.0.2", shard.port, shard.database, shard.password)
    assert (r2.port, str(r2.password)) == (7000, "$SG_R")
    bad = copy.deepcopy(base_doc())
    bad["keyspaces"]["main"]["shards"]["0"]["replicas"] = [{"port": 1}, {"host": "127.0.0.1", "port": 5435},
                                                           {"host": "h", "password": "x"}]
    with pytest.raises(ConfigError) as info:
        parse_config(bad, source="cluster.yaml", base_dir=tmp_path)
    text = "\n".join(info.value.problems)
    assert "replicas[0]: missing required key 'host'" in text
    assert "replicas[1]: 127.0.0.1:5435 is the shard's primary" in text
    assert "clear-text passwords are not allowed" in text and "'x'" not in text


def test_ops_sections(tmp_path: Path) -> None:
    doc = base_doc()
    doc["consolidation"] = {"max_waiters": 5, "tables": {"main.*": False}, "users": {"app": False}}
    doc["buffering"] = {"max_wait": 2, "max_requests": 10}
    doc["replica_health"] = {"max_lag": 5, "fallback": "error", "users": {"reader": "replica"}}
    config = router_parse_config(doc, source="cluster.yaml", base_dir=tmp_path)
    assert config.sections["consolidation"] == ConsolidationConfig(max_waiters=5, tables={"main.*": False},
                                                                   users={"app": False})
    assert config.sections["buffering"] == BufferConfig(max_wait=2.0, max_requests=10)
    assert config.sections["replica_health"].users == {"reader": "replica"}
    doc["consolidation"] = {"max_waiter": 5, "users": {"nobody": True}}
    doc["replica_health"] = {"fallback": "maybe", "users": {"reader": "leader"}}
    with pytest.raises(ConfigError) as info:
        router_parse_config(doc, source="cluster.yaml", base_dir=tmp_path)
    text = "\n".join(info.value.problems)
    assert "consolidation.max_waiter" in text and "consolidation.users.nobody: no such user" in text
    assert "replica_health.fallback: expected primary or error" in text
    assert "replica_health.users.reader: expected primary, replica or rdonly" in text
