"""Limit, Sort, Aggregate, Distinct, Filter/Projection over shard results: transcripts and merged answers."""
from __future__ import annotations

from decimal import Decimal

import pytest

from router.engine.context import Limits
from router.engine.run import run
from router.planner.plan import (
    Aggregate,
    AggregateOp,
    AggregateParam,
    Concatenate,
    Distinct,
    GroupByParam,
    KeyspaceRef,
    Limit,
    Opcode,
    OrderByParam,
    Route,
    RoutingParams,
    Sort,
)
from router.planner.sqltext import SqlTemplate
from router.planner.values import Const
from sharding.errors import InvalidValueError, ResourceLimitError
from tests.unit.engine.conftest import bound, fetch, planned
from tests.unit.engine.fake_context import FakeContext

CUSTOMER = KeyspaceRef("customer", True)


def scatter(sql: str, **kw) -> Route:
    return Route(RoutingParams(Opcode.Scatter, CUSTOMER), SqlTemplate.text(sql), **kw)


# --- LIMIT ------------------------------------------------------------------------------------------------------
async def test_order_by_limit_merges_and_stops_every_shard(planner, snapshot) -> None:
    limits = Limits(batch_rows=2)
    a = [(i, str(i).encode()) for i in range(0, 100, 2)]
    b_ = [(i, str(i).encode()) for i in range(1, 100, 2)]
    ctx = FakeContext({"customer/-80": a, "customer/80-": b_}, ["customer_id", "w"], limits=limits)
    b = planned(planner, snapshot, "select customer_id from customer order by customer_id limit 3")
    ex, rows = await fetch(b, ctx, snapshot, limits=limits)
    assert rows == [(0,), (1,), (2,)]
    assert ex.column_names == ["customer_id"]
    assert [line.split(" after ")[0] for line in ctx.sorted_log()] == [
        "closed early customer/-80",
        "closed early customer/80-",
        "stream customer/-80: SELECT customer_id, WEIGHT_STRING(customer_id) FROM customer ORDER BY customer_id "
        "LIMIT 3",
        "stream customer/80-: SELECT customer_id, WEIGHT_STRING(customer_id) FROM customer ORDER BY customer_id "
        "LIMIT 3",
    ]
    # What the merge looked at, plus the bounded read-ahead (2 queued + 1 in the pump's hands), of 100 rows.
    assert sum(ctx.rows_read.values()) <= 2 * 2 * (2 + 2)


async def test_limit_with_offset_and_bind_values(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(1,), (3,), (5,)], "customer/80-": [(2,), (4,)]}, dialect="postgres")
    b = planned(planner, snapshot, "select customer_id from customer order by customer_id limit 2 offset 1",
                dialect="postgres")
    _, rows = await fetch(b, ctx, snapshot, dialect="postgres")
    assert rows == [(2,), (3,)]
    assert "LIMIT 3" in ctx.log[0]


async def test_limit_zero_reads_nothing_but_the_columns(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(1,)], "customer/80-": [(2,)]})
    ex, rows = await fetch(bound(Limit(Const(0), None, scatter("SELECT id FROM t"))), ctx, snapshot)
    assert rows == [] and ex.column_names == ["id"]


async def test_limit_of_a_negative_value_is_refused(snapshot) -> None:
    ctx = FakeContext()
    with pytest.raises(InvalidValueError):
        await fetch(bound(Limit(Const(-1), None, scatter("SELECT id FROM t"))), ctx, snapshot)


async def test_upper_limit_var_reaches_the_shards(snapshot) -> None:
    from router.planner.values import Arg, JoinVar

    ctx = FakeContext({"customer/-80": [(1,), (2,)], "customer/80-": [(3,)]})
    route = Route(RoutingParams(Opcode.Scatter, CUSTOMER),
                  SqlTemplate(("SELECT id FROM t ORDER BY id LIMIT ", ""), (JoinVar("__upper_limit"),)),
                  order_by=(OrderByParam(0),))
    plan = Limit(Arg(0), Arg(1), route, upper_limit_var="__upper_limit")
    _, rows = await fetch(bound(plan, [2, 1]), ctx, snapshot)
    assert rows == [(2,), (3,)]
    assert all(line.endswith("LIMIT 3") for line in ctx.log)


# --- memory sort and the row cap -----------------------------------------------------------------------------------
async def test_memory_sort_is_stable_and_truncates(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(2, "b"), (1, "a")], "customer/80-": [(2, "c"), (0, "z")]}, ["k", "v"])
    plan = Sort((OrderByParam(0),), scatter("SELECT k, v FROM t"), truncate_columns=1)
    ex, rows = await fetch(bound(plan), ctx, snapshot)
    assert [r[0] for r in rows] == [0, 1, 2, 2]
    assert ex.column_names == ["k"]


async def test_row_cap_fails_a_memory_sort_instead_of_truncating(snapshot) -> None:
    rows = [(i,) for i in range(30)]
    ctx = FakeContext({"customer/-80": rows, "customer/80-": rows})
    plan = Sort((OrderByParam(0),), scatter("SELECT id FROM t"))
    with pytest.raises(ResourceLimitError, match="row cap"):
        await fetch(bound(plan), ctx, snapshot, limits=Limits(max_rows=50, batch_rows=10))
    assert ctx.open_streams == 0


async def test_olap_lifts_the_row_cap(snapshot) -> None:
    rows = [(i,) for i in range(30)]
    ctx = FakeContext({"customer/-80": rows, "customer/80-": rows})
    plan = Sort((OrderByParam(0),), scatter("SELECT id FROM t"))
    ex, out = await fetch(bound(plan), ctx, snapshot, limits=Limits(max_rows=None, batch_rows=10))
    assert len(out) == 60 and ex.peak_rows_held == 60


async def test_streamed_rows_do_not_count_against_the_cap(snapshot) -> None:
    rows = [(i,) for i in range(500)]
    ctx = FakeContext({"customer/-80": rows, "customer/80-": rows})
    ex, out = await fetch(bound(scatter("SELECT id FROM t")), ctx, snapshot, limits=Limits(max_rows=10))
    assert len(out) == 1000 and ex.peak_rows_held == 0


# --- aggregates ---------------------------------------------------------------------------------------------------
async def test_scalar_count_sum_and_avg_merge_exactly(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(Decimal("10.10"), 3)], "customer/80-": [(Decimal("0.05"), 2)]},
                      ["s", "c"])
    b = planned(planner, snapshot, "select avg(customer_id) from customer")
    ex, rows = await fetch(b, ctx, snapshot)
    assert ctx.sorted_log() == ["execute customer/-80: SELECT SUM(customer_id), COUNT(customer_id) FROM customer",
                                "execute customer/80-: SELECT SUM(customer_id), COUNT(customer_id) FROM customer"]
    assert rows == [(Decimal("2.030000"),)]  # 10.15 / 5, MySQL scale: the sum's + 4
    assert ex.column_names == ["avg(customer_id)"]


async def test_scalar_aggregate_over_no_rows(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(0, None, None)], "customer/80-": [(0, None, None)]}, ["c", "s", "m"])
    aggs = (AggregateParam(AggregateOp.COUNT_STAR, 0, "c"), AggregateParam(AggregateOp.SUM, 1, "s"),
            AggregateParam(AggregateOp.MIN, 2, "m"))
    plan = Aggregate("Scalar", aggs, (), scatter("SELECT COUNT(*), SUM(x), MIN(x)"))
    _, rows = await fetch(bound(plan), ctx, snapshot)
    assert rows == [(0, None, None)]


async def test_min_max_and_sum_keep_decimal(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(Decimal("1.10"), 4, 9)], "customer/80-": [(Decimal("2.25"), 1, 12)]},
                      ["s", "mn", "mx"])
    plan = Aggregate("Scalar", (AggregateParam(AggregateOp.SUM, 0, "s"), AggregateParam(AggregateOp.MIN, 1, "mn"),
                                AggregateParam(AggregateOp.MAX, 2, "mx")), (), scatter("SELECT SUM(a), MIN(b), MAX(c)"))
    _, rows = await fetch(bound(plan), ctx, snapshot)
    assert rows == [(Decimal("3.35"), 1, 12)]
    assert isinstance(rows[0][0], Decimal)


async def test_sum_of_huge_decimals_is_exact(snapshot) -> None:
    big = Decimal("12345678901234567890123456789.123456789")
    ctx = FakeContext({"customer/-80": [(big,)], "customer/80-": [(big,)]}, ["s"])
    plan = Aggregate("Scalar", (AggregateParam(AggregateOp.SUM, 0, "s"),), (), scatter("SELECT SUM(a) FROM t"))
    _, rows = await fetch(bound(plan), ctx, snapshot)
    assert str(rows[0][0]) == "24691357802469135780246913578.246913578"


async def test_ordered_group_by_with_weight_strings_and_having(planner, snapshot) -> None:
    # Shards return (name, count, weight) sorted by weight: 'a' and 'A' are one group under a _ci collation.
    a = [("a", 2, b"A"), ("b", 1, b"B")]
    b_ = [("A", 1, b"A"), ("c", 5, b"C")]
    ctx = FakeContext({"customer/-80": a, "customer/80-": b_}, ["name", "count(*)", "w"])
    b = planned(planner, snapshot, "select name, count(*) from customer group by name having count(*) > 1")
    ex, rows = await fetch(b, ctx, snapshot)
    assert rows == [("a", 3), ("c", 5)]
    assert ex.column_names == ["name", "count(*)"]


async def test_hash_group_by_counts_groups_against_the_cap(snapshot) -> None:
    rows = [(i, 1) for i in range(20)]
    ctx = FakeContext({"customer/-80": rows, "customer/80-": rows}, ["k", "c"])
    plan = Aggregate("Hash", (AggregateParam(AggregateOp.COUNT_STAR, 1, "c"),), (GroupByParam(0),),
                     scatter("SELECT k, COUNT(*) FROM t GROUP BY k"))
    _, out = await fetch(bound(plan), ctx, snapshot)
    assert sorted(out) == [(i, 2) for i in range(20)]
    with pytest.raises(ResourceLimitError):
        await fetch(bound(plan), ctx, snapshot, limits=Limits(max_rows=10))


async def test_count_distinct_over_shard_groups(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [("a", b"A"), ("b", b"B")], "customer/80-": [("A", b"A"), ("c", b"C")]},
                      ["name", "w"])
    b = planned(planner, snapshot, "select count(distinct name) from customer")
    _, rows = await fetch(b, ctx, snapshot)
    assert rows == [(3,)]


async def test_group_concat_separator_and_bit_ops(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [("x", 6, 3)], "customer/80-": [("y", 3, 4)]}, ["g", "a", "o"])
    aggs = (AggregateParam(AggregateOp.GROUP_CONCAT, 0, "g", separator=Const("|")),
            AggregateParam(AggregateOp.BIT_AND, 1, "a"), AggregateParam(AggregateOp.BIT_OR, 2, "o"))
    plan = Aggregate("Scalar", aggs, (), scatter("SELECT GROUP_CONCAT(g SEPARATOR '|'), BIT_AND(a), BIT_OR(o) FROM t"))
    _, rows = await fetch(bound(plan), ctx, snapshot)
    assert rows == [("x|y", 2, 7)]


# --- DISTINCT / UNION ---------------------------------------------------------------------------------------------
async def test_distinct_by_weight_string_keeps_first_occurrence(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [("a", b"A")], "customer/80-": [("A", b"A"), ("b", b"B")]}, ["name", "w"])
    b = planned(planner, snapshot, "select distinct name from customer")
    ex, rows = await fetch(b, ctx, snapshot)
    assert len(rows) == 2 and {r[0].lower() for r in rows} == {"a", "b"}
    assert ex.column_names == ["name"]


async def test_union_all_concatenates_and_union_dedupes(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(1,), (2,)], "customer/80-": [(2,)]})
    both = Concatenate((scatter("SELECT id FROM a"), scatter("SELECT id FROM b")))
    _, rows = await fetch(bound(both), ctx, snapshot)
    assert sorted(rows) == [(1,), (1,), (2,), (2,), (2,), (2,)]
    _, rows = await fetch(bound(Distinct((0,), both)), ctx, snapshot)
    assert sorted(rows) == [(1,), (2,)]


async def test_execution_can_be_closed_early(snapshot) -> None:
    rows = [(i,) for i in range(5000)]
    limits = Limits(batch_rows=100)
    ctx = FakeContext({"customer/-80": rows, "customer/80-": rows}, limits=limits)
    ex = run(bound(scatter("SELECT id FROM t")), ctx, snapshot, limits=limits)
    async with ex:
        batch = await ex.__anext__()
        assert len(batch) == 100
    assert ctx.open_streams == 0
