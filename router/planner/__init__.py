"""The planner: SQL text + a session view + one cluster snapshot -> a bound plan. Pure: no I/O.

The hot path never calls sqlglot: ``cython_ext.fingerprint`` turns the text into a cache key and its literal
values; a cached plan binds those values (and the client's bind parameters) and is done. Only a miss parses,
analyses and builds a plan, which holds placeholders instead of literals so it serves every statement of the same
shape. Statements of our own (``ALTER VSCHEMA``, ``SHOW SHARDGATE``, ``USE``, transaction control, ``SET``…) are
recognised before any of that by ``router.planner.special``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import cython_ext
from cython_ext.fpvalues import FingerprintError
from router.planner.bind import bind_values
from router.planner.cache import PlanCache
from router.planner.context import PlanContext, SessionView
from router.planner.plan import Plan
from router.planner.special import parse_special
from sharding.errors import SyntaxError_, UnsupportedError
from sharding.snapshot import ClusterSnapshot

__all__ = ["BoundPlan", "Planner", "SessionView", "build_plan"]

_fp = cython_ext.fingerprint
_DIALECT_FLAG = {"mysql": _fp.MYSQL, "postgres": _fp.POSTGRES}
_UNCACHED_KINDS = frozenset({"ddl"})


class BoundPlan(NamedTuple):
    """A plan with the values of one execution. ``sql`` is the client's own text (for passthrough routes).

    A NamedTuple: one is made per query, and a frozen dataclass costs ~1 µs more to build."""

    plan: Plan
    binds: list[Any]
    sql: str
    fingerprint: str


def _fingerprint(sql: str, session: SessionView) -> tuple[str, list[Any]]:
    try:
        return _fp.fingerprint(sql, _DIALECT_FLAG[session.dialect] | session.fingerprint_flags)
    except FingerprintError as exc:
        raise SyntaxError_(f"syntax error at position {exc.position + 1}: {exc.message}",
                           position=exc.position + 1) from None


def build_plan(sql: str, normalized: str, values: Sequence[Any], session: SessionView,
               snapshot: ClusterSnapshot) -> Plan:
    """Plan one statement from its fingerprint (the cache-miss path)."""
    from sqlglot import exp

    from router.planner.ddl import DDL_NODES, plan_ddl
    from router.planner.parse import parse_statement
    from router.planner.select import plan_select

    ctx = PlanContext(session, snapshot, values, sql, normalized)
    tree = _unparenthesized(parse_statement(normalized, session.dialect, original=sql))
    if isinstance(tree, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
        from router.planner.dual import plan_constant_select

        constant = plan_constant_select(tree, ctx)
        if constant is not None:  # SELECT 42: answered by the router (Vitess Projection over SingleRow)
            return Plan(constant, "select", guards=tuple(ctx.guards), warnings=tuple(ctx.warnings))
        from router.planner.names import result_names
        from router.planner.plan import Route, VindexLookup

        names = result_names(tree, session.dialect)  # before planning, which rewrites the tree
        root, refs = plan_select(tree, ctx)
        tables = tuple(sorted({r.qualified_name for r in refs if r.kind == "vschema"}))
        if names is not None and not isinstance(root, (Route, VindexLookup)):  # a shard names a route's columns
            return Plan(root, "select", tables=tables, guards=tuple(ctx.guards), warnings=tuple(ctx.warnings),
                        extras={"names": names})
        kind = "select"
    elif isinstance(tree, (exp.Insert, exp.Update, exp.Delete)):
        from router.planner.dml import plan_dml

        return plan_dml(tree, ctx)
    elif isinstance(tree, DDL_NODES):
        return plan_ddl(tree, ctx)
    elif isinstance(tree, (exp.Query, exp.DDL, exp.DML, exp.Set, exp.Use, exp.Show, exp.Transaction,
                           exp.Commit, exp.Rollback, exp.Describe, exp.Grant)):
        raise UnsupportedError(f"unsupported statement: {tree.key.upper()}")
    else:  # a bare expression (``SELEC x`` reads as an alias): not a statement at all
        first = sql.split(None, 1)[0] if sql.split() else sql
        raise SyntaxError_(f"syntax error at position 1 near '{first[:40]}'", position=1)
    return Plan(root, kind, tables=tables, guards=tuple(ctx.guards), warnings=tuple(ctx.warnings),
                passthrough=getattr(root, "passthrough", False))


def _unparenthesized(tree: Any) -> Any:
    """A statement that is a query in parentheses, ``((SELECT 1))``, is that query; parentheses that carry an
    ORDER BY or LIMIT of their own (``(SELECT …) ORDER BY x``) are not taken off."""
    from sqlglot import exp

    while isinstance(tree, exp.Subquery) and isinstance(tree.this, exp.Query) \
            and not any(v for k, v in tree.args.items() if k != "this"):
        tree = tree.this.pop()
    return tree


class Planner:
    """Plans statements for sessions, caching plans by fingerprint."""

    def __init__(self, cache: PlanCache[Plan] | None = None) -> None:
        self.cache: PlanCache[Plan] = cache if cache is not None else PlanCache()

    def plan(self, sql: str, session: SessionView, snapshot: ClusterSnapshot,
             params: Sequence[Any] | Mapping[str, Any] | None = None) -> BoundPlan:
        special = parse_special(sql, session.dialect)
        if special is not None:
            from router.planner.session_plan import plan_special

            def plan_inner(inner_sql: str) -> Plan:  # VEXPLAIN's statement, same session and snapshot
                return self.plan(inner_sql, session, snapshot, params).plan

            # Placeholders in our own statements (``SELECT NEXT ? VALUES``) are positional client parameters.
            binds = list(params) if isinstance(params, Sequence) and not isinstance(params, str) else []
            return BoundPlan(plan_special(special, session.keyspace, snapshot, plan_inner=plan_inner), binds, sql, "")
        normalized, values = _fingerprint(sql, session)
        key = (session.cache_key(), snapshot.version, normalized)
        plan = self.cache.get(key)
        binds = bind_values(values, params) if values else []
        if plan is not None and plan.guards and not all(g.holds(binds) for g in plan.guards):
            # A literal-derived shortcut (e.g. a provably empty WHERE) does not hold for these values.
            return BoundPlan(build_plan(sql, normalized, binds, session, snapshot), binds, sql, normalized)
        if plan is None:
            plan = build_plan(sql, normalized, values, session, snapshot)
            if plan.kind not in _UNCACHED_KINDS:
                self.cache.put(key, plan, len(normalized))
        return BoundPlan(plan, binds, sql, normalized)
