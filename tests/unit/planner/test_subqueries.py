"""Subqueries that do not run on the same shards as their outer query (``router.planner.subqueries``).

- Golden plans: ``cases/join_subqueries.json``.
- Meaning: merged, pulled-out and semi-joined subqueries run through the real engine on a SQLite cluster and
  must return what the statement returns on one database (``sqlite_cluster.py``), NULLs included (NOT IN).
- The SQL of pulled-out values, and what the engine binds.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from router.planner import Planner, SessionView
from router.planner.plan import Route, SemiJoin, UncorrelatedSubquery
from router.planner.values import JoinVar, ListVar
from sharding.errors import UnsupportedError
from tests.unit.planner import golden
from tests.unit.planner.sqlite_cluster import Cluster, check, datasets, snapshot, without_nulls

PLANNER = Planner()

QUERIES: list[tuple[str, int]] = [
    # pulled out (uncorrelated)
    ("select c.id from customer c where c.id in (select order_id from item where note = 'x')", 0),
    ("select c.id from customer c where c.id in (select customer_id from orders where qty > 1)", 0),
    ("select c.id from customer c where c.id not in (select customer_id from orders where qty > 1)", 0),
    ("select c.id from customer c where c.name in (select sku from item)", 0),
    ("select c.id from customer c where c.region not in (select code from region)", 0),
    ("select c.id from customer c where c.id not in (select order_id from item)", 0),
    ("select c.id, (select max(price) from product) from customer c", 0),
    ("select c.id, (select max(qty) from orders) as m, (select min(price) from product) from customer c", 0),
    ("select id from customer where id = (select max(customer_id) from orders)", 0),
    ("select c.id from customer c where c.id > (select min(order_id) from item)", 0),
    ("select c.id from customer c where exists (select 1 from product)", 0),
    ("select c.id from customer c where not exists (select 1 from product where price > 100)", 0),
    ("select o.sku from orders o where o.sku in (select sku from product where price > 5)", 0),
    ("select c.id from customer c where c.id in (select customer_id from orders) and c.name in (select sku from item)",
     0),
    ("select c.id from customer c join orders o on o.customer_id = c.id where o.sku in "
     "(select sku from item where note = 'x')", 0),
    ("select c.id, i.id from customer c join item i on i.order_id = c.id where i.sku in (select sku from product)", 0),
    ("select c.id, i.id from customer c join item i on i.order_id = c.id and i.sku in (select sku from product)", 0),
    ("select c.id, o.id from customer c left join orders o on o.customer_id = c.id and o.sku in "
     "(select sku from product)", 0),
    ("select i.id from item i where i.order_id in (select o.id from orders o where o.customer_id in "
     "(select id from customer where name = 'bob'))", 0),
    ("select i.id from item i where i.order_id in (select o.id from orders o where o.sku in "
     "(select sku from product where price > 5))", 0),
    ("select x.id from (select id from customer where id in (select customer_id from orders)) x", 0),
    ("select c.id from customer c where c.region = (select code from region where label = 'Europe')", 0),
    ("select c.id from customer c order by (select max(price) from product), c.id", 1),
    # merged
    ("select c.id from customer c where c.id in (select id from customer where name = 'ann')", 0),
    ("select c.id from customer c where c.id in (select customer_id from orders where sku = 'a')", 0),
    ("select o.id from orders o where o.customer_id in (select id from customer where region = 'eu')", 0),
    ("select c.id, c.name from customer c where c.region in (select code from region where label is not null)", 0),
    ("select c.id from customer c where exists (select 1 from region r where r.code = c.region)", 0),
    ("select c.id from customer c where exists (select 1 from orders o where o.customer_id = c.id)", 0),
    ("select c.id from customer c where not exists (select 1 from orders o where o.customer_id = c.id)", 0),
    ("select c.id, (select count(*) from orders o where o.customer_id = c.id) from customer c", 0),
    ("select c.id from customer c where (select count(*) from orders o where o.customer_id = c.id) > 1", 0),
    ("select c.id from customer c where c.id = 3 and exists (select 1 from orders o where o.customer_id = c.id)", 0),
    ("select c.id from customer c where c.id in (select customer_id from orders where customer_id = 3)", 0),
    ("select c.id from customer c where c.id not in (select customer_id from orders where customer_id = 3)", 0),
    ("select c.id from customer c where c.id in (select o.customer_id from orders o where o.qty > 1 and "
     "o.customer_id in (select id from customer where region = 'eu'))", 0),
    ("select x.id, x.cnt from (select c.id, (select count(*) from orders o where o.customer_id = c.id) cnt "
     "from customer c) x where x.cnt > 0", 0),
    ("select c.id, (select label from region r where r.code = c.region) from customer c", 0),
    ("select o.sku from orders o where exists (select 1 from product p where p.sku = o.sku)", 0),
    ("select c.id from customer c where exists (select 1 from orders o where o.customer_id = c.id and o.sku in "
     "(select sku from product))", 0),
    # semi / anti joins (correlated, not mergeable)
    ("select c.id from customer c where exists (select 1 from item i where i.order_id = c.id)", 0),
    ("select c.id from customer c where not exists (select 1 from item i where i.order_id = c.id)", 0),
    ("select c.name from customer c where exists (select 1 from item i where i.order_id = c.id)", 0),
    ("select c.name from customer c where not exists (select 1 from item i where i.order_id = c.id and "
     "i.note = 'x')", 0),
    ("select c.id from customer c where c.id in (select i.order_id from item i where i.sku = c.name)", 0),
    ("select c.name, c.region from customer c where c.id in (select i.order_id from item i where i.sku = c.name)", 0),
    ("select c.id from customer c where c.id not in (select i.order_id from item i where i.note = 'x')", 0),
    ("select c.id from customer c where c.name not in (select i.sku from item i where i.order_id = c.id)", 0),
    ("select c.id from customer c where exists (select 1 from item i where i.order_id = c.id and i.sku = c.name)", 0),
    ("select c.id from customer c where c.name in (select i.sku from item i where i.order_id = c.id) and c.id > 1",
     0),
    ("select c.id from customer c where not exists (select 1 from item i where i.order_id = c.id) and "
     "c.name is not null", 0),
    ("select c.id, o.id from customer c join orders o on o.customer_id = c.id where exists "
     "(select 1 from item i where i.order_id = o.id)", 0),
    ("select c.id, o.id from customer c join orders o on o.customer_id = c.id where not exists "
     "(select 1 from item i where i.order_id = o.id and i.note = 'x')", 0),
    ("select c.id, i.note from customer c join item i on i.order_id = c.id where exists "
     "(select 1 from product p where p.sku = i.sku)", 0),
    ("select c.id from customer c where exists (select 1 from item i where i.order_id = c.id) order by c.id", 1),
    ("select c.id from customer c where c.id in (select customer_id from orders group by customer_id "
     "having count(*) > 1)", 0),
    # subqueries of a join: merged only with the side they are co-located with
    ("select c.id, i.id from customer c join item i on i.sku = c.name where exists "
     "(select 1 from orders o where o.customer_id = c.id and o.sku = i.sku)", 0),
    ("select c.id, i.id from customer c join item i on i.sku = c.name where "
     "(c.id in (select o.customer_id from orders o where o.qty = 2) or i.note = 'x')", 0),
    ("select c.id, i.id, (select count(*) from orders o where o.customer_id = c.id) from customer c "
     "join item i on i.sku = c.name", 0),
    ("select i.id, c.id from item i join customer c on c.id = i.order_id where exists "
     "(select 1 from orders o where o.customer_id = c.id)", 0),
]


def test_golden_plans() -> None:
    wrong = golden.check_file(golden.HERE / "cases" / "join_subqueries.json")
    assert not wrong, f"{len(wrong)} plan(s) differ; actual plans written to {golden.ACTUAL}: {wrong}"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_subqueries_mean_what_the_query_means(data: dict) -> None:
    cluster = Cluster(data)
    for sql, keys in QUERIES:
        check(cluster, sql, PLANNER, keys)
    # The same plans written for PostgreSQL shards. SQLite sorts NULLs first where PostgreSQL sorts them last, and
    # merges rely on the shards' order: rows without NULLs, unordered results.
    cluster = Cluster(without_nulls(data), dialect="postgres")
    for sql, keys in QUERIES:
        if not keys and " order by " not in sql:
            check(cluster, sql, PLANNER, keys)


def _root(sql: str, session: SessionView | None = None) -> object:
    return Planner().plan(sql, session or SessionView(dialect="mysql"), snapshot()).plan.root


# --- pulled-out values ----------------------------------------------------------------------------------------
def test_pulled_out_in_binds_a_flag_and_a_list_into_the_outer_text_and_routing() -> None:
    root = _root("select c.id from customer c where c.id in (select order_id from item where note = 'x')")
    assert isinstance(root, UncorrelatedSubquery) and root.variant == "PulloutIn"
    assert (root.has_values_var, root.subquery_var) == ("__sq_has_values", "__sq1")
    assert root.holds_rows()
    outer = root.outer
    assert isinstance(outer, Route) and outer.routing.values == (ListVar("__sq1"),)
    assert outer.in_slot >= 0  # each shard gets only its own values
    env = {"__sq_has_values": True, "__sq1": (3, 4)}
    assert outer.query.render([1], "mysql", env).endswith("WHERE (TRUE AND c.id IN (3, 4))")
    # The engine binds an empty result as (NULL,): valid SQL that matches nothing, behind a FALSE flag.
    empty = {"__sq_has_values": False, "__sq1": (None,)}
    assert outer.query.render([1], "postgres", empty).endswith("WHERE (FALSE AND c.id IN (NULL))")


def test_pulled_out_not_in_is_true_for_an_empty_subquery() -> None:
    root = _root("select c.id from customer c where c.name not in (select sku from item)")
    assert isinstance(root, UncorrelatedSubquery) and root.variant == "PulloutNotIn"
    text = root.outer.query.render([], "mysql", {"__sq_has_values": False, "__sq1": (None,)})  # type: ignore[attr-defined]
    assert text.endswith("WHERE (NOT FALSE OR NOT (c.name IN (NULL)))")


def test_pulled_out_value_and_exists() -> None:
    value = _root("select c.id, (select max(price) from product) from customer c")
    assert isinstance(value, UncorrelatedSubquery) and value.variant == "PulloutValue"
    assert value.describe()["PulloutVars"] == ["__sq1"] and not value.holds_rows()
    assert JoinVar("__sq1") in value.outer.query.slots  # type: ignore[attr-defined]
    exists = _root("select c.id from customer c where not exists (select 1 from product where price > 100)")
    assert isinstance(exists, UncorrelatedSubquery) and exists.variant == "PulloutExists"
    assert exists.describe()["PulloutVars"] == ["__sq_has_values"]


def test_nested_pullouts_run_innermost_first() -> None:
    root = _root("select i.id from item i where i.order_id in (select o.id from orders o where o.sku in "
                 "(select sku from product where price > 5))")
    assert isinstance(root, UncorrelatedSubquery) and isinstance(root.outer, UncorrelatedSubquery)
    assert "product" in root.subquery.query.describe()  # type: ignore[attr-defined]
    assert root.subquery_var in root.outer.subquery.query.describe()  # type: ignore[attr-defined]


# --- semi joins -----------------------------------------------------------------------------------------------
def test_correlated_in_becomes_a_semi_join_that_projects_the_left_columns() -> None:
    root = _root("select c.name from customer c where c.id in (select i.order_id from item i where i.sku = c.name)")
    assert isinstance(root, SemiJoin) and root.variant == "SemiJoin"
    assert root.cols == (-1,)
    assert dict(root.vars) == {"c_name": 0, "c_id": 1}
    right = root.right
    assert isinstance(right, Route)
    assert right.query.describe().endswith("WHERE i.sku = :c_name AND i.order_id = :c_id LIMIT 1")


def test_correlated_not_in_anti_join_matches_unless_not_in_is_true() -> None:
    root = _root("select c.id from customer c where c.name not in (select i.sku from item i where i.order_id = c.id)")
    assert isinstance(root, SemiJoin) and root.variant == "AntiJoin"
    text = root.right.query.describe()  # type: ignore[attr-defined]
    assert "(i.sku = :c_name OR i.sku IS NULL OR :c_name IS NULL)" in text


@pytest.mark.parametrize("sql, words", [
    ("select c.id, (select max(i.id) from item i where i.order_id = c.id) from customer c", "correlated subquery"),
    ("select c.id from customer c where c.id > any (select order_id from item)", "ANY"),
    ("select c.id from customer c where (c.id, c.name) in (select order_id, sku from item)", "exactly one column"),
    ("select c.id from customer c where c.id = 1 or exists (select 1 from item i where i.order_id = c.id)",
     "correlated subquery"),
    # co-located with customer, but the condition also needs item: it would run with item's rows
    ("select c.id, i.id from customer c join item i on i.sku = c.name where "
     "(exists (select 1 from orders o where o.customer_id = c.id) or i.note = 'x')", "correlated subquery"),
])
def test_unsupported_subqueries_are_named(sql: str, words: str) -> None:
    with pytest.raises(UnsupportedError) as err:
        _root(sql)
    assert words in str(err.value)
