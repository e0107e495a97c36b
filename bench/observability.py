"""What observability costs per statement, in µs (run by hand, not a test).

``activity.begin`` + ``activity.finish`` is what every statement pays for metrics (queries, latency histogram,
per-shard counter, rows), the per-fingerprint stats and the query-log level check; set against a plan-cache hit
of a point select (the planner's whole hot-path cost) measured in the same run.

    .venv/bin/python bench/observability.py
"""
from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable

from router import activity
from router.backend.connection import BackendTarget
from router.planner import Planner, SessionView
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema

VSCHEMA = {"keyspaces": {"sbtest": {"sharded": True, "vindexes": {"hash": {"type": "hash"}},
                                    "tables": {"sbtest1": {"column_vindexes": [{"column": "id", "name": "hash"}]}}}}}


class _State:
    user = "bench"
    keyspace = "sbtest"


class _Session:
    def __init__(self) -> None:
        self.state = _State()
        self.protocol = "mysql"
        self.dialect = "mysql"
        self.conn_id = 1
        self.id = 1
        self.current = None
        self.host = None


def _median_us(fn: Callable[[int], object], n: int = 20000, repeats: int = 7) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def main() -> None:
    logging.getLogger("shardgate.query").setLevel(logging.INFO)  # serve's default: DEBUG query lines are off
    snapshot = ClusterSnapshot.build(1, parse_vschema(VSCHEMA), {"sbtest": ["-80", "80-"]})
    planner = Planner()
    view = SessionView(dialect="mysql", keyspace="sbtest")
    session = _Session()
    target = BackendTarget("sbtest", "-80")
    bound = planner.plan("SELECT c FROM sbtest1 WHERE id = 1", view, snapshot)

    def plan(i: int) -> object:
        return planner.plan(f"SELECT c FROM sbtest1 WHERE id = {i}", view, snapshot)

    def observe(i: int) -> None:
        act = activity.begin(session)
        act.fingerprint, act.kind = bound.fingerprint, bound.plan.kind
        act.targets.add(target)
        act.rows = 1
        activity.finish(session, act, "", None)

    planned = _median_us(plan)
    observed = _median_us(observe)
    print(f"plan-cache hit, point select: {planned:6.2f} µs")
    print(f"activity begin+finish:        {observed:6.2f} µs  ({observed / planned:.2f}x a plan-cache hit)")


if __name__ == "__main__":
    main()
