"""What a multi-shard route needs on top: the SELECT's "horizon" (ORDER BY, LIMIT, aggregates, GROUP BY,
HAVING, DISTINCT), merged at the router.
"""
from __future__ import annotations

from sqlglot import exp

from router.planner.context import PlanContext
from router.planner.plan import Primitive
from router.planner.routing import TableRoute
from router.planner.semantics import TableRef
from sharding.errors import UnsupportedError


def plan_horizon(select: exp.Select, route: TableRoute, refs: list[TableRef], ctx: PlanContext) -> Primitive:
    from router.planner.select import _route_primitive

    for key, what in (("group", "GROUP BY"), ("having", "HAVING"), ("order", "ORDER BY"), ("limit", "LIMIT"),
                      ("offset", "OFFSET"), ("distinct", "DISTINCT")):
        if select.args.get(key) is not None:
            raise UnsupportedError(f"{what} across shards is not supported yet")
    if any(select.find_all(exp.AggFunc)):
        raise UnsupportedError("aggregate functions across shards are not supported yet")
    return _route_primitive(select, route, refs, ctx)
