"""Planner bugs the correctness oracle (``tests/integration/oracle_wip.py``) found, one test each. Plans are
checked for what the shards receive and how the router compares; the oracle checks the answers on real servers."""
from __future__ import annotations

from typing import Any

import pytest

from router.planner import Planner, SessionView
from router.planner.plan import Filter, OrderByParam, Primitive, Route, Sort
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema

VSCHEMA: dict[str, Any] = {"keyspaces": {
    "main": {"sharded": False, "tables": {"warehouse": {"columns": [{"name": "region", "type": "VARCHAR",
                                                                      "collation_name": "C"}]}}},
    "shop": {"sharded": True, "vindexes": {"hash": {"type": "hash"}, "xxhash": {"type": "xxhash"}},
             "tables": {
                 "customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"}],
                              "columns": [{"name": "customer_id", "type": "INT64"},
                                          {"name": "region", "type": "VARCHAR", "collation_name": "C"},
                                          {"name": "score", "type": "INT32"}]},
                 "event": {"column_vindexes": [{"column": "event_id", "name": "xxhash"}],
                           "columns": [{"name": "event_id", "type": "INT64"}, {"name": "customer_id", "type": "INT64"},
                                       {"name": "kind", "type": "VARCHAR", "collation_name": "C"}]}}},
}}


@pytest.fixture(scope="module")
def snap() -> ClusterSnapshot:
    return ClusterSnapshot.build(1, parse_vschema(VSCHEMA), {"shop": ["-80", "80-"], "main": ["0"]})


def plan(sql: str, snap: ClusterSnapshot, dialect: str = "postgres") -> Primitive:
    return Planner().plan(sql, SessionView(dialect, None), snap).plan.root


def nodes(root: Primitive) -> list[Primitive]:
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(p.inputs())
    return out


# --- x IS NOT NULL read by sqlglot's PostgreSQL parser as Is(negate=True) ----------------------------------------
@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_is_not_null_on_a_vindex_column_is_not_a_route_to_null(snap, dialect) -> None:
    """Was (PostgreSQL): EqualUnique to the keyspace id of NULL, i.e. no row at all."""
    root = plan("SELECT * FROM customer WHERE customer_id IS NOT NULL AND score = 1", snap, dialect)
    assert isinstance(root, Route) and root.routing.opcode.value == "Scatter"
    assert "NOT customer_id IS NULL" in root.query.describe()


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_having_is_not_null_keeps_its_negation(snap, dialect) -> None:
    """Was (PostgreSQL): the router's HAVING filter tested ``max(...) is null``, dropping every group."""
    root = plan("SELECT score, COUNT(*) FROM customer GROUP BY score HAVING COUNT(*) > 1 AND MAX(region) IS NOT NULL",
                snap, dialect)
    filters = [p for p in nodes(root) if isinstance(p, Filter)]
    assert filters and "is not null" in filters[0].predicate.describe()


def test_not_like_is_spelled_out(snap) -> None:
    root = plan("SELECT customer_id FROM customer WHERE region NOT LIKE 'n%' AND score > 1", snap)
    assert isinstance(root, Route) and "NOT region LIKE" in root.query.describe()


# --- joins -------------------------------------------------------------------------------------------------
def test_count_distinct_over_a_join_reads_the_column_not_distinct_text(snap) -> None:
    """Was: ``SELECT e.kind, DISTINCT e.kind …`` sent to the shards (a syntax error on both engines)."""
    root = plan("SELECT e.kind, COUNT(DISTINCT e.kind) FROM customer c JOIN event e ON e.customer_id = "
                "c.customer_id WHERE c.customer_id = 3 GROUP BY e.kind", snap)
    queries = [p.query.describe() for p in nodes(root) if isinstance(p, Route)]
    assert queries and not any("DISTINCT" in q for q in queries), queries


def test_router_side_inputs_compare_as_their_backend_does(snap) -> None:
    """A join of router-side inputs only (derived tables) took the backend for MySQL and asked PostgreSQL rows
    for weight strings ('comparing d.customer_id across shards needs its weight string')."""
    root = plan("SELECT d.customer_id FROM (SELECT customer_id, score FROM customer ORDER BY score DESC, "
                "customer_id LIMIT 10) d WHERE d.score IS NOT NULL ORDER BY d.customer_id", snap)
    sorts = [p for p in nodes(root) if isinstance(p, Sort)]
    assert sorts and sorts[0].order_by == (OrderByParam(0, nulls_first=False),)


# --- unions ------------------------------------------------------------------------------------------------
def test_union_order_by_text_uses_the_declared_code_point_collation(snap) -> None:
    """Was: a memory Sort without a collation, which the engine refuses for text from PostgreSQL."""
    root = plan("SELECT region FROM customer WHERE score > 1 UNION SELECT region FROM warehouse ORDER BY 1", snap)
    sorts = [p for p in nodes(root) if isinstance(p, Sort)]
    assert sorts and sorts[0].order_by[0].collation == "C"


def test_union_order_by_text_of_unknown_collation_stays_unknown(snap) -> None:
    root = plan("SELECT kind FROM event UNION SELECT 'x' ORDER BY 1", snap)
    sorts = [p for p in nodes(root) if isinstance(p, Sort)]
    assert sorts and sorts[0].order_by[0].collation is None


# --- a scalar aggregate over no shard is still one row ------------------------------------------------------------
LOOKUP_VSCHEMA: dict[str, Any] = {"keyspaces": {
    "main": {"sharded": False, "tables": {"email_lkp": {}}},
    "shop": {"sharded": True, "vindexes": {
        "hash": {"type": "hash"},
        "email_vdx": {"type": "lookup_unique", "owner": "customer",
                      "params": {"table": "main.email_lkp", "from": "email", "to": "keyspace_id"}}},
        "tables": {"customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"},
                                                    {"column": "email", "name": "email_vdx"}]}}}}}


@pytest.mark.parametrize("sql, special", [
    ("SELECT COUNT(*), MAX(customer_id) FROM customer WHERE 1 = 0", True),
    ("SELECT COUNT(*) FROM customer WHERE customer_id = 1 AND customer_id = 2", True),
    ("SELECT COUNT(*) FROM customer WHERE email = 'nobody'", True),  # the lookup may find no keyspace id
    ("SELECT customer_id FROM customer WHERE 1 = 0", False),  # no row is the right answer
    ("SELECT COUNT(*) FROM customer WHERE customer_id = 7", False),  # a hash always maps to a shard
    ("SELECT region, COUNT(*) FROM customer WHERE 1 = 0 GROUP BY region", False),
])
def test_no_routes_special_handling(sql, special) -> None:
    """Was: ``SELECT COUNT(*) … WHERE 1 = 0`` answered no row instead of (0) (Vitess NoRoutesSpecialHandling)."""
    snap = ClusterSnapshot.build(1, parse_vschema(LOOKUP_VSCHEMA), {"shop": ["-80", "80-"], "main": ["0"]})
    routes = [p for p in nodes(plan(sql, snap)) if isinstance(p, Route) and p.table == "customer"]
    assert routes and routes[0].no_routes_special_handling is special


# --- join variables that would lose their type ------------------------------------------------------------------
def _route_texts(sql: str, snap: ClusterSnapshot, dialect: str) -> list[str]:
    return [p.query.describe() for p in nodes(plan(sql, snap, dialect)) if isinstance(p, Route)]


def test_postgres_computes_a_negated_join_variable_at_the_router(snap) -> None:
    """``-:e_cost`` is ``-NULL`` for a NULL left value: 'operator is not unique: - unknown' on PostgreSQL."""
    sql = ("SELECT -e.event_id + c.score AS x FROM event e JOIN customer c ON c.customer_id = e.customer_id "
           "WHERE e.kind = 'a'")
    assert not any(":e_event_id" in q for q in _route_texts(sql, snap, "postgres"))
    assert any("-:e_event_id" in q for q in _route_texts(sql, snap, "mysql"))  # MySQL takes -NULL


def test_mysql_computes_coalesce_of_a_join_variable_at_the_router(snap) -> None:
    """``COALESCE(NULL, c.score)`` on the shard loses the left column's DECIMAL scale (MySQL types the result)."""
    sql = ("SELECT COALESCE(e.event_id, c.score) AS x FROM event e JOIN customer c ON c.customer_id = e.customer_id "
           "WHERE e.kind = 'a'")
    assert not any("COALESCE" in q for q in _route_texts(sql, snap, "mysql"))
    assert any("COALESCE(:e_event_id" in q for q in _route_texts(sql, snap, "postgres"))
