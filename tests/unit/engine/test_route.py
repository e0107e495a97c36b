"""Route execution: point, IN, scatter, passthrough, merge sort, field-only routes, errors and timeouts."""
from __future__ import annotations

import asyncio

import pytest

from router.engine.context import Limits
from router.engine.run import run
from router.planner.plan import KeyspaceRef, Opcode, OrderByParam, Route, RoutingParams
from router.planner.sqltext import SqlTemplate
from sharding.errors import BackendError, BackendUnavailableError, QueryTimeoutError, UnsupportedError
from tests.unit.engine.conftest import bound, fetch, planned
from tests.unit.engine.fake_context import FakeContext

CUSTOMER = KeyspaceRef("customer", True)


def scatter(sql: str, order_by: tuple[OrderByParam, ...] = (), truncate: int = 0) -> Route:
    return Route(RoutingParams(Opcode.Scatter, CUSTOMER), SqlTemplate.text(sql), order_by=order_by,
                 truncate_columns=truncate)


async def test_point_select_executes_on_one_shard_with_the_clients_text(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(5, "eve")]}, ["customer_id", "name"])
    b = planned(planner, snapshot, "select customer_id, name from customer where customer_id = 5")
    ex, rows = await fetch(b, ctx, snapshot)
    assert ctx.log == ["execute customer/-80: select customer_id, name from customer where customer_id = 5"]
    assert rows == [(5, "eve")]
    assert ex.column_names == ["customer_id", "name"]


async def test_point_select_renders_in_the_backend_dialect_when_dialects_differ(planner, snapshot) -> None:
    ctx = FakeContext({"customer/80-": [(4,)]}, ["customer_id"], dialect="postgres")
    b = planned(planner, snapshot, "select customer_id from customer where customer_id = 4", dialect="mysql")
    _, rows = await fetch(b, ctx, snapshot, dialect="mysql")
    # PostgreSQL shards get the plan's text with $n placeholders: the connection keeps it prepared.
    assert ctx.log == ["execute customer/80-: SELECT customer_id FROM customer WHERE customer_id = "
                       "CAST($1 AS integer) [4]"]
    assert rows == [(4,)]


async def test_a_value_the_driver_cannot_bind_falls_back_to_literal_sql(planner, snapshot) -> None:
    from sharding.errors import InvalidValueError

    ctx = FakeContext({"customer/80-": [(4,)]}, ["customer_id"], dialect="postgres")
    ctx.on(contains="$1", error=InvalidValueError("invalid input for query argument $1"))
    b = planned(planner, snapshot, "select customer_id from customer where customer_id = 4", dialect="postgres")
    _, rows = await fetch(b, ctx, snapshot, dialect="postgres")
    assert ctx.log == ["execute customer/80-: SELECT customer_id FROM customer WHERE customer_id = "
                       "CAST($1 AS integer) [4]",
                       "execute customer/80-: select customer_id from customer where customer_id = 4"]
    assert rows == [(4,)]


async def test_bind_parameters_are_rendered_never_passed_through(planner, snapshot) -> None:
    ctx = FakeContext()
    b = planned(planner, snapshot, "select customer_id from customer where customer_id = ?", params=[4])
    ex = run(b, ctx, snapshot, dialect="mysql", params=[4])
    await ex.fetchall()
    assert ctx.log == ["execute customer/80-: SELECT customer_id FROM customer WHERE customer_id = 4"]


async def test_in_route_sends_each_shard_only_its_own_values(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(1,), (2,)], "customer/80-": [(4,)]})
    b = planned(planner, snapshot, "select customer_id from customer where customer_id in (1, 4, 2)")
    _, rows = await fetch(b, ctx, snapshot)
    assert ctx.sorted_log() == [
        "execute customer/-80: SELECT customer_id FROM customer WHERE customer_id IN (1, 2)",
        "execute customer/80-: SELECT customer_id FROM customer WHERE customer_id IN (4)",
    ]
    assert sorted(rows) == [(1,), (2,), (4,)]


async def test_in_route_skips_shards_without_values(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(1,)]})
    b = planned(planner, snapshot, "select customer_id from customer where customer_id in (1, 3)")
    await fetch(b, ctx, snapshot)
    assert ctx.log == ["execute customer/-80: SELECT customer_id FROM customer WHERE customer_id IN (1, 3)"]


async def test_scatter_streams_every_shard_concurrently(planner, snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(1,), (2,)], "customer/80-": [(4,)]})
    b = planned(planner, snapshot, "select customer_id from customer")
    _, rows = await fetch(b, ctx, snapshot)
    assert ctx.sorted_log() == ["stream customer/-80: SELECT customer_id FROM customer",
                                "stream customer/80-: SELECT customer_id FROM customer"]
    assert sorted(rows) == [(1,), (2,), (4,)]


async def test_unsharded_route_streams_from_its_one_shard(planner, snapshot) -> None:
    ctx = FakeContext({"commerce/0": [("sku1",)]}, ["sku"])
    b = planned(planner, snapshot, "select sku from product", keyspace="commerce")
    _, rows = await fetch(b, ctx, snapshot)
    assert ctx.log == ["stream commerce/0: select sku from product"]
    assert rows == [("sku1",)]


@pytest.mark.parametrize(("nulls_first", "a", "expected"), [
    (None, [(None,), (1,), (4,)], [(None,), (None,), (1,), (2,), (3,), (4,)]),  # MySQL: NULL is the smallest
    (False, [(1,), (4,), (None,)], [(1,), (2,), (3,), (4,), (None,), (None,)]),  # PostgreSQL ASC: NULLS LAST
])
async def test_merge_sort_orders_nulls_as_the_shards_did(snapshot, nulls_first, a, expected) -> None:
    b_ = [(None,), (2,), (3,)] if nulls_first is None else [(2,), (3,), (None,)]
    ctx = FakeContext({"customer/-80": a, "customer/80-": b_})
    order = (OrderByParam(0, nulls_first=nulls_first),)
    _, rows = await fetch(bound(scatter("SELECT id FROM t ORDER BY id", order)), ctx, snapshot)
    assert rows == expected


async def test_merge_sort_desc_with_nulls_first(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(None,), (5,), (1,)], "customer/80-": [(None,), (3,)]})
    order = (OrderByParam(0, desc=True, nulls_first=True),)  # PostgreSQL DESC default
    _, rows = await fetch(bound(scatter("SELECT id FROM t ORDER BY id DESC", order)), ctx, snapshot)
    assert rows == [(None,), (None,), (5,), (3,), (1,)]


async def test_merge_sort_numbers_ignore_the_weight_column(snapshot) -> None:
    # A weight string of a number does not order numerically: numbers compare natively even with weight_col.
    ctx = FakeContext({"customer/-80": [(2, b"2"), (10, b"10")], "customer/80-": [(9, b"9")]}, ["n", "w"])
    order = (OrderByParam(0, weight_col=1),)
    _, rows = await fetch(bound(scatter("SELECT n, weight_string(n) FROM t ORDER BY n", order, truncate=1)),
                          ctx, snapshot)
    assert rows == [(2,), (9,), (10,)]


async def test_helper_prefix_columns_are_dropped(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(b"a", "a", 1)], "customer/80-": [(b"b", "b", 2)]}, ["w", "name", "id"])
    route = Route(RoutingParams(Opcode.Scatter, CUSTOMER), SqlTemplate.text("SELECT weight_string(name), t.* FROM t"),
                  order_by=(OrderByParam(1, weight_col=0),), helper_prefix=1)
    ex, rows = await fetch(bound(route), ctx, snapshot)
    assert rows == [("a", 1), ("b", 2)]
    assert ex.column_names == ["name", "id"]


async def test_merge_sort_desc_with_weight_strings_and_truncation(snapshot) -> None:
    # name, weight_string(name): the weights decide (case-insensitive collation), the helper column is dropped.
    a = [("b", b"B"), ("A", b"A")]
    b_ = [("C", b"C"), ("a", b"A")]
    ctx = FakeContext({"customer/-80": a, "customer/80-": b_}, ["name", "w"])
    route = scatter("SELECT name, weight_string(name) FROM t ORDER BY name DESC",
                    (OrderByParam(0, desc=True, weight_col=1),), truncate=1)
    ex, rows = await fetch(bound(route), ctx, snapshot)
    assert [r[0] for r in rows] == ["C", "b", "A", "a"]
    assert all(len(r) == 1 for r in rows)
    assert ex.column_names == ["name"]


async def test_merge_sort_of_text_without_weight_or_binary_collation_is_refused(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [("a",)], "customer/80-": [("B",)]}, ["name"])
    with pytest.raises(UnsupportedError, match="weight-string"):
        await fetch(bound(scatter("SELECT name FROM t ORDER BY name", (OrderByParam(0),))), ctx, snapshot)


async def test_merge_sort_of_text_under_a_binary_collation(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [("B",), ("a",)], "customer/80-": [("C",)]}, ["name"])
    route = scatter("SELECT name FROM t ORDER BY name COLLATE utf8mb4_bin", (OrderByParam(0, collation="utf8mb4_bin"),))
    _, rows = await fetch(bound(route), ctx, snapshot)
    assert rows == [("B",), ("C",), ("a",)]


async def test_merge_of_many_batches_keeps_global_order(snapshot) -> None:
    evens = [(i,) for i in range(0, 2000, 2)]
    odds = [(i,) for i in range(1, 2000, 2)]
    ctx = FakeContext({"customer/-80": evens, "customer/80-": odds}, limits=Limits(batch_rows=64))
    _, rows = await fetch(bound(scatter("SELECT id FROM t ORDER BY id", (OrderByParam(0),))), ctx, snapshot,
                          limits=ctx.limits)
    assert rows == [(i,) for i in range(2000)]


async def test_provably_empty_route_still_reports_columns(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(1, "x")]}, ["id", "name"])
    route = Route(RoutingParams(Opcode.None_, CUSTOMER), SqlTemplate.text("SELECT id, name FROM t WHERE 1 != 1"))
    ex, rows = await fetch(bound(route), ctx, snapshot)
    assert rows == []
    assert ex.column_names == ["id", "name"]
    assert ctx.log == ["execute customer/-80: SELECT id, name FROM t WHERE 1 != 1"]


async def test_reference_route_reads_one_shard(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [("x",)], "customer/80-": [("x",)]}, ["sku"])
    route = Route(RoutingParams(Opcode.Reference, CUSTOMER), SqlTemplate.text("SELECT sku FROM product"))
    _, rows = await fetch(bound(route), ctx, snapshot)
    assert rows == [("x",)]
    assert len(ctx.log) == 1


async def test_a_failing_shard_fails_the_scatter_and_stops_the_others(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(i,) for i in range(5000)]}, limits=Limits(batch_rows=10))
    ctx.on("customer/80-", error=BackendError("table gone", mysql_errno=1146, shard="customer/80-"))
    with pytest.raises(BackendError, match="table gone") as info:
        await fetch(bound(scatter("SELECT id FROM t")), ctx, snapshot, limits=ctx.limits)
    assert info.value.mysql_errno == 1146
    await asyncio.sleep(0)
    assert ctx.open_streams == 0


async def test_a_shard_failing_mid_stream_fails_the_query(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(1,)]}, limits=Limits(batch_rows=1))
    ctx.on("customer/80-", rows=[(2,), (3,), (4,)], error=BackendUnavailableError("lost"), error_after_batches=1)
    with pytest.raises(BackendUnavailableError):
        await fetch(bound(scatter("SELECT id FROM t")), ctx, snapshot, limits=ctx.limits)
    assert ctx.open_streams == 0


async def test_query_timeout_cancels_the_shards(snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(1,)]})
    ctx.on("customer/80-", rows=[(2,)], delay=5)
    limits = Limits(query_timeout=0.05)
    with pytest.raises(QueryTimeoutError):
        await fetch(bound(scatter("SELECT id FROM t")), ctx, snapshot, limits=limits)
    await asyncio.sleep(0)
    assert ctx.open_streams == 0


async def test_slow_consumer_pauses_shard_reads(snapshot) -> None:
    rows = [(i,) for i in range(10_000)]
    limits = Limits(batch_rows=100, prefetch_batches=2)
    ctx = FakeContext({"customer/-80": rows, "customer/80-": rows}, limits=limits)
    ex = run(bound(scatter("SELECT id FROM t")), ctx, snapshot, limits=limits)
    async with ex:
        await ex.__anext__()
        for _ in range(20):
            await asyncio.sleep(0)
        # Each shard may be ahead by its read-ahead (queue) plus the batch in the pump's hands.
        assert sum(ctx.rows_read.values()) <= 100 * (2 * 2 + 2 + 1)
    assert ctx.open_streams == 0
    assert len(ctx.lines("closed early")) == 2
