"""Planner speed: a plan-cache hit against a miss, in µs per statement (run by hand, not a test).

A hit is the whole per-query planning cost on the hot path: special-statement check, fingerprint, cache lookup,
binding, and for routes the vindex hash and shard resolution. A miss adds sqlglot parsing and plan building.

    .venv/bin/python bench/planner.py
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import cython_ext
from router.planner import Planner, SessionView
from router.planner.resolve import resolve_route
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema

VSCHEMA = {
    "keyspaces": {
        "main": {"tables": {"seq": {"type": "sequence"}}},
        "sbtest": {
            "sharded": True,
            "vindexes": {"hash": {"type": "hash"}},
            "tables": {"sbtest1": {"column_vindexes": [{"column": "id", "name": "hash"}]}},
        },
    }
}
CASES = {
    "point select": "SELECT c FROM sbtest1 WHERE id={}",
    "IN-list route": "SELECT c FROM sbtest1 WHERE id IN ({}, 7, 99, 1000, 5000)",
    "scatter ORDER BY LIMIT": "SELECT id, c FROM sbtest1 WHERE k > {} ORDER BY id LIMIT 10",
    "multi-row INSERT": "INSERT INTO sbtest1 (id, k, c, pad) VALUES ({}, 1, 'a', 'b'), (2, 2, 'c', 'd'), "
                        "(3, 3, 'e', 'f')",
}


def _median_us(fn: Callable[[int], object], n: int, repeats: int = 7) -> float:
    samples = []
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(i + r * n)
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def main() -> None:
    snapshot = ClusterSnapshot.build(1, parse_vschema(VSCHEMA), {"sbtest": ["-40", "40-80", "80-c0", "c0-"],
                                                                  "main": ["0"]})
    session = SessionView(dialect="mysql", keyspace="sbtest")
    print(f"implementation: {cython_ext.IMPLEMENTATION}")
    print(f"{'statement':<24}{'hit µs':>10}{'miss µs':>12}{'miss/hit':>10}")
    for name, template in CASES.items():
        planner = Planner()
        try:
            planner.plan(template.format(1), session, snapshot)
        except Exception as exc:  # a shape the planner does not support yet is reported, not hidden
            print(f"{name:<24}{'n/a':>10}  ({type(exc).__name__}: {exc})")
            continue

        def hit(i: int, planner: Planner = planner, template: str = template) -> object:
            bound = planner.plan(template.format(i), session, snapshot)
            routing = getattr(bound.plan.root, "routing", None)
            return resolve_route(routing, bound.binds, snapshot) if routing is not None else bound

        def miss(i: int, template: str = template) -> object:
            return Planner().plan(template.format(i), session, snapshot)

        h = _median_us(hit, 20000)
        m = _median_us(miss, 300)
        print(f"{name:<24}{h:>10.2f}{m:>12.1f}{m / h:>9.0f}x")


if __name__ == "__main__":
    main()
