"""Joins whose tables do not all land on the same shards (``router.planner.block`` / ``joins`` / ``merging``).

- Golden plans: ``cases/join_joins.json``, ``join_outer.json``, ``join_derived.json`` (``golden.py``).
- Meaning: each query runs through its plan and the real engine on a SQLite cluster (``sqlite_cluster.py``) and
  must return what it returns on one database holding every row, for hypothesis-generated contents (NULLs,
  duplicates, dangling keys).
- Properties the engine relies on, and Vitess agreement of the join families.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from router.planner import Planner, SessionView
from router.planner.plan import Join, Opcode, Route
from router.planner.sqltext import SqlTemplate
from router.planner.values import JoinVar
from tests.unit.planner import golden
from tests.unit.planner.sqlite_cluster import Cluster, check, datasets, snapshot, without_nulls

FILES = ["join_joins.json", "join_outer.json", "join_derived.json"]
PLANNER = Planner()

# (query, leading ORDER BY columns)
QUERIES: list[tuple[str, int]] = [
    ("select c.name, o.sku from customer c join orders o on o.customer_id = c.id", 0),
    ("select c.name, o.sku from customer c, orders o where o.customer_id = c.id and o.qty > 1", 0),
    ("select c.id, i.note from customer c join item i on i.id = c.id", 0),
    ("select o.id, i.note from orders o join item i on i.order_id = o.id", 0),
    ("select o.id, i.note from orders o left join item i on i.order_id = o.id", 0),
    ("select o.id, i.note from orders o left join item i on i.order_id = o.id and i.sku = 'a'", 0),
    ("select o.id, i.note from orders o left join item i on i.order_id = o.id and o.qty > 1", 0),
    ("select o.id, i.note from orders o left join item i on i.order_id = o.id where i.id is null", 0),
    ("select o.id, i.note from orders o left join item i on i.order_id = o.id where i.note = 'x'", 0),
    ("select o.id, i.id from orders o left join item i on i.order_id = o.id where i.sku = 'a' or i.sku is null", 0),
    ("select o.id, p.price from orders o join product p on p.sku = o.sku", 0),
    ("select o.id, p.price from orders o left join product p on p.sku = o.sku", 0),
    ("select p.sku, o.id from product p left join orders o on p.sku = o.sku", 0),
    ("select p.sku, o.id from orders o right join product p on p.sku = o.sku", 0),
    ("select p.sku, i.id from item i right join product p on p.sku = i.sku where p.price > 5", 0),
    ("select c.name, r.label from customer c join region r on r.code = c.region", 0),
    ("select c.name, r.label from customer c left join region r on r.code = c.region", 0),
    ("select r.code, c.id from region r left join customer c on c.region = r.code", 0),
    ("select r.code, c.id from region r left join customer c on c.region = r.code and c.id = 3", 0),
    ("select c.id, r.label from customer c left join region r on r.code = c.region and r.label is not null", 0),
    ("select o.id, o.qty * i.id as x from orders o join item i on i.order_id = o.id", 0),
    ("select c.id, o.id, i.id from customer c join orders o on o.customer_id = c.id join item i on i.order_id = o.id",
     0),
    ("select c.id, p.sku from customer c join orders o on o.customer_id = c.id join product p on p.sku = o.sku", 0),
    ("select c.id from customer c join region r on r.code = c.region join orders o on o.customer_id = c.id", 0),
    ("select o.id, i.id from orders o left join item i on i.order_id = o.id join product p on p.sku = o.sku "
     "where i.id is null", 0),
    ("select o.id, i.id, c.id from orders o left join item i on i.order_id = o.id "
     "left join customer c on c.name = i.sku", 0),
    ("select o.id, c.name, p.price from orders o left join customer c on c.id = o.customer_id "
     "left join product p on p.sku = o.sku", 0),
    ("select o.id, i.id, p.price from orders o join item i on i.order_id = o.id left join product p on p.sku = i.sku",
     0),
    ("select c.id, i.id from customer c join item i on i.id > c.id", 0),
    ("select c.id, i.id from customer c join item i on c.name = i.sku or i.note = 'x'", 0),
    ("select 1 from customer c join item i on i.sku = c.name", 0),
    ("select c.name, coalesce(i.note, 'none') from customer c left join item i on i.order_id = c.id", 0),
    ("select c.id, i.sku from customer c left join item i on c.name = i.sku where coalesce(i.note, 'z') = 'z'", 0),
    ("select c.id, i.sku from customer c left join item i on c.name = i.sku where c.region = 'eu'", 0),
    ("select a.id, b.id from customer a join customer b on a.name = b.name where a.id < b.id", 0),
    ("select * from customer c join item i on i.id = c.id", 0),
    ("select c.*, o.sku from customer c join item o on o.order_id = c.id", 0),
    ("select x.id from (select id, name from customer where name = 'ann') x join orders o on o.customer_id = x.id", 0),
    ("select x.n, o.id from (select name n, id from customer) x join item o on o.id = x.id", 0),
    ("select c.id from customer c join (select customer_id from orders where qty = 2) o on o.customer_id = c.id", 0),
    ("select x.id, o.sku from (select id from customer) x left join orders o on o.customer_id = x.id", 0),
    ("select x.id from (select id from customer) x where x.id in (2, 3, 4)", 0),
    ("select p.sku, x.id from product p join (select id, sku from item where note is not null) x on x.sku = p.sku", 0),
    ("select o.sku, t.total from orders o join (select sku, sum(price) total from product group by sku) t "
     "on t.sku = o.sku", 0),
    ("select c.id, t.cnt from customer c join (select order_id, count(*) cnt from item group by order_id) t "
     "on t.order_id = c.id", 0),
    ("select x.id, y.id from (select id from customer order by id limit 3) x "
     "join (select id, order_id from item order by id limit 4) y on y.order_id = x.id", 0),
    ("select x.id, i.note from (select id from customer order by id limit 3) x join item i on i.order_id = x.id", 0),
    ("select i.id, x.id from item i left join (select id from customer order by id limit 3) x on x.id = i.order_id",
     0),
    ("with t as (select id, name from customer) select t.name, o.sku from t join orders o on o.customer_id = t.id", 0),
    ("with t as (select sku from item) select t.sku from t join product p on p.sku = t.sku", 0),
    # horizons over joins
    ("select c.id, o.id from customer c join item o on o.order_id = c.id order by c.id, o.id", 2),
    ("select c.id, c.name from customer c join item o on o.order_id = c.id order by c.id", 1),
    ("select c.id, count(*) from customer c join item o on o.order_id = c.id group by c.id", 0),
    ("select count(*) from customer c join item o on o.sku = c.name", 0),
    ("select o.sku, sum(o.qty) from orders o join product p on p.sku = o.sku group by o.sku", 0),
    ("select distinct o.sku from orders o join product p on p.sku = o.sku", 0),
    ("select c.id, o.id from customer c join item o on o.order_id = c.id order by c.id desc, o.id limit 3", 2),
    ("select c.id, count(i.id) from customer c left join item i on i.order_id = c.id group by c.id", 0),
    ("select c.id, count(*) from customer c join item i on i.order_id = c.id group by c.id having count(*) > 1", 0),
    ("select c.name, max(i.id) from customer c join item i on i.order_id = c.id group by c.name order by c.name", 1),
    ("select i.sku, count(distinct c.id) from customer c join item i on i.order_id = c.id group by i.sku", 0),
    ("select distinct c.name, i.sku from customer c join item i on i.sku = c.name", 0),
    ("select c.id + i.id as s from customer c join item i on i.order_id = c.id order by s limit 5", 1),
    ("select c.id, i.id from customer c join item i on i.order_id = c.id order by c.id, i.id limit 2 offset 1", 2),
    ("select c.id as x, count(*) from customer c join item i on i.order_id = c.id group by x", 0),
    ("select i.id, c.name from customer c join item i on i.order_id = c.id order by 1", 1),
    ("select c.name n, i.id from customer c join item i on i.order_id = c.id order by n, i.id", 2),
    ("select c.id, i.id from customer c left join item i on i.order_id = c.id order by c.id, i.id", 2),
    ("select count(*), max(c.id) from customer c join item i on i.order_id = c.id where i.sku = 'a'", 0),
    ("select c.region, count(distinct i.sku) from customer c left join item i on i.order_id = c.id group by c.region",
     0),
    ("select distinct i.sku from customer c join item i on i.order_id = c.id where c.name is not null", 0),
    # derived tables grouped by a unique vindex: complete on their shards, merged
    ("select c.id, t.n from customer c join (select customer_id, count(*) n from orders group by customer_id) t "
     "on t.customer_id = c.id", 0),
    ("select t.customer_id, t.n from (select customer_id, count(*) n from orders group by customer_id) t", 0),
    ("select u.found from (select id as found, name from customer union all select id, sku from item) u", 0),
    ("select u.name from (select id as found, name from customer union all select id, sku from item) u", 0),
]


@pytest.mark.parametrize("name", FILES)
def test_golden_plans(name: str) -> None:
    wrong = golden.check_file(golden.HERE / "cases" / name)
    assert not wrong, f"{len(wrong)} plan(s) differ; actual plans written to {golden.ACTUAL / name}: {wrong}"


def test_golden_files_are_well_formed() -> None:
    for path in sorted(Path(golden.HERE / "cases").glob("join_*.json")):
        import json

        for case in json.loads(path.read_text(encoding="utf-8")):
            assert {"comment", "query", "plan"} <= set(case), (path.name, case)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_joins_mean_what_the_query_means(data: dict) -> None:
    cluster = Cluster(data)
    for sql, keys in QUERIES:
        check(cluster, sql, PLANNER, keys)
    # The same plans written for PostgreSQL shards. SQLite sorts NULLs first where PostgreSQL sorts them last, and
    # merges rely on the shards' order: rows without NULLs, unordered results.
    cluster = Cluster(without_nulls(data), dialect="postgres")
    for sql, keys in QUERIES:
        if not keys and " order by " not in sql:
            check(cluster, sql, PLANNER, keys)


# --- properties -----------------------------------------------------------------------------------------------
def _plan(sql: str) -> Route | Join:
    return Planner().plan(sql, SessionView(dialect="mysql"), snapshot()).plan.root  # type: ignore[return-value]


def _routes(prim: object) -> list[Route]:
    out = []
    stack = [prim]
    while stack:
        node = stack.pop()
        if isinstance(node, Route):
            out.append(node)
        stack.extend(reversed(node.inputs()))  # type: ignore[attr-defined]
    return out


def test_a_left_join_on_clause_never_narrows_the_preserved_side() -> None:
    root = _plan("select o.id, i.id from orders o left join item i on i.order_id = o.id and o.customer_id = 3")
    assert isinstance(root, Join) and root.variant == "LeftJoin"
    assert root.left.routing.opcode is Opcode.Scatter  # type: ignore[attr-defined]
    merged = _plan("select c.id, o.id from customer c left join orders o on o.customer_id = c.id and c.id = 3")
    assert isinstance(merged, Route) and merged.routing.opcode is Opcode.Scatter


def test_split_queries_are_never_sent_as_the_clients_text() -> None:
    for sql in ("select o.id, i.note from orders o join item i on i.order_id = o.id",
                "select c.id from customer c where c.name in (select sku from item)"):
        for route in _routes(_plan(sql)):
            assert not route.passthrough


def test_join_variables_bind_the_right_sides_text_and_routing() -> None:
    root = _plan("select p.sku, c.name from product p join customer c on c.id = p.price")
    assert isinstance(root, Join) and root.vars == (("p_price", 1),)
    right = root.right
    assert isinstance(right, Route) and right.routing.opcode is Opcode.EqualUnique
    assert right.routing.values == (JoinVar("p_price"),)
    assert JoinVar("p_price") in right.query.slots
    assert right.query.render([], "mysql", {"p_price": 7}).endswith("WHERE c.id = 7")


def test_the_cheaper_order_is_chosen_only_when_strictly_cheaper() -> None:
    swapped = _plan("select c.name from item i join customer c on c.id = i.order_id")
    assert isinstance(swapped, Join) and swapped.right.routing.opcode is Opcode.EqualUnique  # type: ignore[attr-defined]
    kept = _plan("select c.name, i.sku from customer c join item i on i.sku = c.name")
    assert isinstance(kept, Join)
    assert "customer" in kept.left.query.describe()  # type: ignore[attr-defined]


def test_joins_hold_rows_in_router_memory() -> None:
    nested = _plan("select o.id, i.note from orders o join item i on i.order_id = o.id")
    assert isinstance(nested, Join) and nested.holds_rows()  # the right rows of a batch of left rows
    hashed = _plan("select x.id, y.id from (select id from customer order by id limit 3) x "
                   "join (select id, order_id from item order by id limit 4) y on y.order_id = x.id")
    assert isinstance(hashed, Join) and hashed.variant == "HashJoin" and hashed.holds_rows()
    assert hashed.left_keys == (0,) and hashed.right_keys == (1,)


def test_join_plans_are_cached_and_reused_with_new_values() -> None:
    import asyncio

    planner = Planner()
    cluster = Cluster({"customer": [(1, "ann", "eu"), (2, "bob", "us")], "orders": [(1, 1, "a", 1), (2, 2, "b", 3)]})
    first = asyncio.run(cluster.routed("select c.name, o.sku from customer c join orders o on o.customer_id = c.id "
                                       "where o.qty > 0", planner))
    again = asyncio.run(cluster.routed("select c.name, o.sku from customer c join orders o on o.customer_id = c.id "
                                       "where o.qty > 2", planner))
    assert sorted(first) == [("ann", "a"), ("bob", "b")] and again == [("bob", "b")]
    assert len(planner.cache) == 1  # type: ignore[arg-type]


def test_equal_literals_merge_under_a_guard() -> None:
    planner = Planner()
    session, snap = SessionView(dialect="mysql"), golden.snapshot()
    same = planner.plan("select id from user where id = 5 and col in (select col from user where id = 5)", session,
                        snap)
    assert isinstance(same.plan.root, Route) and same.plan.guards
    other = planner.plan("select id from user where id = 5 and col in (select col from user where id = 6)", session,
                         snap)
    assert not isinstance(other.plan.root, Route)  # the guard fails: planned afresh, not merged


def test_a_router_side_filter_uses_the_declared_collation() -> None:
    root = _plan("select c.id from customer c left join item i on c.name = i.sku where coalesce(i.note, 'z') = 'z'")
    assert type(root).__name__ == "Filter"


def test_template_slots_of_join_variables_describe_like_vitess() -> None:
    tpl = SqlTemplate(("SELECT 1 FROM user WHERE user.id = ", ""), (JoinVar("t1_id"),))
    assert tpl.describe() == "SELECT 1 FROM user WHERE user.id = :t1_id"


# --- Vitess agreement -----------------------------------------------------------------------------------------
FAMILIES = ("Join:", "SemiJoin", "UncorrelatedSubquery:", "Concatenate")


def test_vitess_join_subquery_and_union_families_agree() -> None:
    from tests.unit.planner.test_vitess_cases import run_case

    cases = [c for c in golden.load_vectors("vitess_routing_cases")["cases"]
             if c["kind"] == "select" and any(c.get("opcode", "").startswith(f) for f in FAMILIES)]
    snap = golden.snapshot()
    disagree = [c["id"] for c in cases if not run_case(c, snap).agrees]
    assert len(cases) == 30 and not disagree, disagree
