"""Plans as people read them: Vitess's JSON field names, with this execution's values filled in.

``shardgate plan`` and ``VEXPLAIN PLAN`` print this. Cached plans hold placeholders (``:v1``); here each
``Values`` entry (computed ones too: ``id = 5 + 5`` shows 10, ``(a, b) IN ::vals`` the list's values of the vindex
column), each ``Query`` and the ``Expressions`` of a SELECT of constants show the statement's own literals, and
with a shard map each route names the shards it would run on (``Shards``), or that a lookup table must be read
first.
"""
from __future__ import annotations

from typing import Any

from router.planner import BoundPlan
from router.planner.plan import Primitive, Projection, SingleRow
from router.planner.resolve import NeedsLookup, resolve_route
from router.planner.sqltext import ENCODERS, SqlTemplate
from router.planner.values import evaluate
from sharding.errors import ShardgateError
from sharding.snapshot import ClusterSnapshot


def _display(value: Any, dialect: str) -> str:
    if isinstance(value, tuple):
        return "(" + ENCODERS[dialect](value) + ")"
    return ENCODERS[dialect](value)


def _fill(prim: Primitive, out: dict[str, Any], bound: BoundPlan, snapshot: ClusterSnapshot | None,
          dialect: str) -> None:
    binds = bound.binds
    routing = getattr(prim, "routing", None)
    if routing is not None and routing.values and "Values" in out:
        try:
            out["Values"] = [_display(evaluate(v, binds), dialect) for v in routing.values]
        except ShardgateError:
            pass  # run-time values (join variables) stay as placeholders
    if isinstance(prim, Projection) and isinstance(prim.input, SingleRow) and "Expressions" in out:
        try:  # a SELECT of constants: its values, as Vitess prints them (``42 as 42``)
            out["Expressions"] = [f"{_display(e.evaluate((), binds), dialect)} as {name}"
                                  for e, name in zip(prim.expressions, prim.columns, strict=True)]
        except ShardgateError:
            pass
    query = getattr(prim, "query", None)
    if isinstance(query, SqlTemplate) and "Query" in out and query.slots:
        try:
            out["Query"] = query.render(binds, dialect)
        except ShardgateError:
            pass
    if routing is not None and snapshot is not None:
        try:
            resolved = resolve_route(routing, binds, snapshot)
        except ShardgateError as exc:
            out["Shards"] = f"unresolved: {exc.message}"
        else:
            if isinstance(resolved, NeedsLookup):
                out["Shards"] = f"after lookup in {resolved.vindex.name}"
            else:
                out["Shards"] = [s.name for s in resolved.shards][:1] if resolved.any_one else \
                    [s.name for s in resolved.shards]
    for kid, kid_out in zip(prim.inputs(), out.get("Inputs", ()), strict=False):
        _fill(kid, kid_out, bound, snapshot, dialect)


def explain(bound: BoundPlan, snapshot: ClusterSnapshot | None = None, dialect: str = "mysql") -> dict[str, Any]:
    """The bound plan as Vitess-style JSON; with ``snapshot``, routes carry their target ``Shards``."""
    out = bound.plan.describe()
    out["Original"] = bound.sql
    _fill(bound.plan.root, out["Instructions"], bound, snapshot, dialect)
    return out
