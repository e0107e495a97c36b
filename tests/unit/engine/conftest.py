"""Engine unit-test fixtures: the demo VSchema (``customer`` sharded -80/80- by hash, ``commerce`` unsharded) as a
snapshot, a planner, and helpers that run a plan against a ``FakeContext``."""
from __future__ import annotations

from typing import Any

import pytest

from router.engine.context import Limits
from router.engine.run import Execution, run
from router.planner import BoundPlan, Planner, SessionView
from router.planner.plan import Plan, Primitive
from sharding.snapshot import ClusterSnapshot
from sharding.vindexes import registry
from sharding.vschema import parse_vschema
from tests.unit.engine.fake_context import FakeContext

VSCHEMA = {
    "keyspaces": {
        "commerce": {"sharded": False, "tables": {"customer_seq": {"type": "sequence"}, "product": {}}},
        "customer": {
            "sharded": True,
            "vindexes": {"hash": {"type": "hash"}},
            "tables": {
                "customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"}]},
                "corder": {"column_vindexes": [{"column": "customer_id", "name": "hash"}]},
            },
        },
    }
}


@pytest.fixture(scope="session")
def snapshot() -> ClusterSnapshot:
    return ClusterSnapshot.build(1, parse_vschema(VSCHEMA), {"customer": ["-80", "80-"], "commerce": ["0"]})


@pytest.fixture(scope="session")
def planner() -> Planner:
    return Planner()


def shard_of(snapshot: ClusterSnapshot, customer_id: int) -> str:
    vindex = registry.create("hash", "hash", {})[0]
    (dest,) = vindex.map([customer_id])  # type: ignore[attr-defined]
    return snapshot.shard_for_ksid("customer", dest.ksid).name


def bound(root: Primitive, binds: list[Any] | None = None, sql: str = "") -> BoundPlan:
    return BoundPlan(Plan(root, "select"), binds or [], sql, "")


async def fetch(b: BoundPlan, ctx: FakeContext, snapshot: ClusterSnapshot, dialect: str = "mysql",
                limits: Limits | None = None) -> tuple[Execution, list[tuple[Any, ...]]]:
    ex = run(b, ctx, snapshot, dialect=dialect, limits=limits)
    rows = await ex.fetchall()
    return ex, rows


def planned(planner: Planner, snapshot: ClusterSnapshot, sql: str, dialect: str = "mysql",
            keyspace: str = "customer", params: Any = None) -> BoundPlan:
    return planner.plan(sql, SessionView(dialect=dialect, keyspace=keyspace), snapshot, params)
