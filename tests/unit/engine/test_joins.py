"""Joins, semi-joins, pulled-out subqueries and lookup-vindex routes: the right side's queries in the transcript."""
from __future__ import annotations

import pytest

from router.engine.context import Limits
from router.planner.plan import Join, KeyspaceRef, Opcode, Route, RoutingParams
from router.planner.sqltext import SqlTemplate
from sharding.errors import InvalidValueError, ResourceLimitError
from tests.unit.engine.conftest import bound, fetch, planned
from tests.unit.engine.fake_context import FakeContext

CUSTOMER = KeyspaceRef("customer", True)


def skus(_target, sql: str) -> list[tuple]:
    """The unsharded product table: a row when the bound name is one of its skus."""
    name = sql.split("WHERE ")[1].split(" = ")[0].strip("'")
    return [(f"sku-{name}",)] if name in ("ann", "bob") else []


async def test_nested_loop_join_binds_each_distinct_left_value_once(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [("ann",), ("bob",)], "customer/80-": [("ann",), ("cid",)]}, ["name"])
    ctx.on("commerce/0", rows=skus, columns=["sku"])
    b = planned(planner, snapshot, "select c.name, p.sku from customer c join commerce.product p on c.name = p.sku")
    ex, rows = await fetch(b, ctx, snapshot)
    assert sorted(rows) == [("ann", "sku-ann"), ("ann", "sku-ann"), ("bob", "sku-bob")]
    assert ex.column_names == ["name", "sku"]
    right = [line for line in ctx.log if "commerce/0" in line]
    # Left rows of one batch that share a value share one right query; 'ann' is in both shards' batches.
    assert len(right) <= 4
    assert "execute commerce/0: SELECT p.sku FROM product AS p WHERE 'cid' = p.sku" in right


async def test_left_join_keeps_unmatched_left_rows(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [("ann",), ("zed",)], "customer/80-": []}, ["name"])
    ctx.on("commerce/0", rows=lambda t, sql: [(1,)] if "'ann'" in sql else [], columns=["1"])
    b = planned(planner, snapshot, "select c.name, p.sku from customer c left join commerce.product p "
                                   "on c.name = p.sku")
    _, rows = await fetch(b, ctx, snapshot)
    assert len(rows) == 2 and ("zed", None) in [(r[0], r[-1]) for r in rows]


async def test_join_with_an_empty_left_side_still_knows_its_columns(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [], "customer/80-": []}, ["name"])
    ctx.on("commerce/0", columns=["sku"])
    b = planned(planner, snapshot, "select c.name, p.sku from customer c join commerce.product p on c.name = p.sku")
    ex, rows = await fetch(b, ctx, snapshot)
    assert rows == [] and ex.column_names == ["name", "sku"]


async def test_join_rows_held_count_against_the_cap(snapshot) -> None:
    left = Route(RoutingParams(Opcode.Scatter, CUSTOMER), SqlTemplate.text("SELECT id FROM a"))
    right = Route(RoutingParams(Opcode.Unsharded, KeyspaceRef("commerce", False)), SqlTemplate.text("SELECT x FROM b"))
    ctx = FakeContext({"customer/-80": [(1,)], "customer/80-": [(2,)], "commerce/0": [(i,) for i in range(50)]})
    plan = Join("Join", left, right, (-1, 1))
    _, rows = await fetch(bound(plan), ctx, snapshot)
    assert len(rows) == 100
    with pytest.raises(ResourceLimitError):
        await fetch(bound(plan), ctx, snapshot, limits=Limits(max_rows=20))


async def test_exists_becomes_a_semi_join(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [("ann",), ("zed",)], "customer/80-": [("bob",)]}, ["name"])
    ctx.on("commerce/0", rows=lambda t, sql: [(1,)] if "'zed'" not in sql else [], columns=["1"])
    b = planned(planner, snapshot, "select name from customer where exists "
                                   "(select 1 from commerce.product p where p.sku = customer.name)")
    _, rows = await fetch(b, ctx, snapshot)
    assert sorted(rows) == [("ann",), ("bob",)]
    assert all(line.endswith("LIMIT 1") for line in ctx.log if "commerce/0" in line)


async def test_pulled_out_in_list_routes_the_outer_query(planner, snapshot) -> None:
    ctx = FakeContext({"commerce/0": [(1,), (4,)], "customer/-80": [("ann",)], "customer/80-": [("dan",)]})
    b = planned(planner, snapshot, "select name from customer where customer_id in "
                                   "(select customer_id from commerce.product)")
    _, rows = await fetch(b, ctx, snapshot)
    assert sorted(rows) == [("ann",), ("dan",)]
    assert ctx.log[0] == "stream commerce/0: SELECT customer_id FROM product"
    assert sorted(ctx.log[1:]) == [
        "execute customer/-80: SELECT name FROM customer WHERE (TRUE AND customer_id IN (1))",
        "execute customer/80-: SELECT name FROM customer WHERE (TRUE AND customer_id IN (4))",
    ]


async def test_pulled_out_empty_list_sends_nothing_but_keeps_columns(planner, snapshot) -> None:
    ctx = FakeContext({"commerce/0": [], "customer/-80": [("x",)]}, ["name"])
    b = planned(planner, snapshot, "select name from customer where customer_id in "
                                   "(select customer_id from commerce.product)")
    ex, rows = await fetch(b, ctx, snapshot)
    assert rows == [] and ex.column_names == ["name"]
    assert ctx.log[1].endswith("WHERE (FALSE AND customer_id IN (NULL))")


async def test_pulled_out_value_with_two_rows_fails_like_mysql(snapshot) -> None:
    from router.planner.plan import UncorrelatedSubquery
    from router.planner.values import JoinVar

    sub = Route(RoutingParams(Opcode.Unsharded, KeyspaceRef("commerce", False)), SqlTemplate.text("SELECT 1"))
    outer = Route(RoutingParams(Opcode.Scatter, CUSTOMER),
                  SqlTemplate(("SELECT id FROM t WHERE id = ", ""), (JoinVar("__sq1"),)))
    ctx = FakeContext({"commerce/0": [(1,), (2,)]})
    with pytest.raises(InvalidValueError) as info:
        await fetch(bound(UncorrelatedSubquery("PulloutValue", "__sq1", "", sub, outer)), ctx, snapshot)
    assert info.value.mysql_errno == 1242
