"""Writes: rows batched per shard, sequences, affected rows, DMLWithInput, DDL fan-out, SELECT NEXT."""
from __future__ import annotations

import copy

import pytest

from router.backend.result import ExecResult
from router.planner import Planner, SessionView
from sharding.errors import BackendError
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema
from tests.unit.engine.conftest import VSCHEMA, fetch, planned, shard_of
from tests.unit.engine.fake_context import FakeContext


@pytest.fixture(scope="module")
def seq_snapshot() -> ClusterSnapshot:
    vs = copy.deepcopy(VSCHEMA)
    vs["keyspaces"]["customer"]["tables"]["customer"]["auto_increment"] = {
        "column": "customer_id", "sequence": "commerce.customer_seq"}
    return ClusterSnapshot.build(1, parse_vschema(vs), {"customer": ["-80", "80-"], "commerce": ["0"]})


def ok(n: int, insert_id: int = 0) -> ExecResult:
    return ExecResult(rows_affected=n, last_insert_id=insert_id)


async def test_insert_batches_rows_per_shard_in_statement_order(planner, snapshot) -> None:
    ctx = FakeContext()
    ctx.on(result=ok(2))
    b = planned(planner, snapshot, "insert into customer (customer_id, name) values (1, 'a'), (4, 'b'), (2, 'c')")
    ex, rows = await fetch(b, ctx, snapshot)
    assert rows == [] and not ex.has_rows
    assert ctx.sorted_log() == [
        "execute customer/-80: INSERT INTO customer (customer_id, name) VALUES (1, 'a'), (2, 'c')",
        "execute customer/80-: INSERT INTO customer (customer_id, name) VALUES (4, 'b')",
    ]
    assert ex.rows_affected == 4  # 2 per shard, as the fake answers


async def test_insert_draws_missing_ids_from_the_sequence(seq_snapshot) -> None:
    ctx = FakeContext()
    ctx.next_id = 3  # ids 3, 4: customer 3 -> -80, 4 -> 80-
    ctx.on(result=ok(1))
    b = Planner().plan("insert into customer (name) values ('a'), ('b')", SessionView("mysql", "customer"),
                       seq_snapshot)
    ex, _ = await fetch(b, ctx, seq_snapshot)
    assert ctx.log[0] == "reserve commerce.customer_seq 2"
    assert sorted(ctx.log[1:]) == [
        f"execute customer/{shard_of(seq_snapshot, 3)}: INSERT INTO customer (name, customer_id) VALUES ('a', 3)",
        f"execute customer/{shard_of(seq_snapshot, 4)}: INSERT INTO customer (name, customer_id) VALUES ('b', 4)",
    ]
    assert ex.last_insert_id == 3 and ex.rows_affected == 2


async def test_unsharded_insert_passes_the_text_through_and_reports_the_insert_id(planner, snapshot) -> None:
    ctx = FakeContext()
    ctx.on("commerce/0", result=ok(1, insert_id=77))
    b = planned(planner, snapshot, "insert into product (sku) values ('x')", keyspace="commerce")
    ex, _ = await fetch(b, ctx, snapshot)
    assert ctx.log == ["execute commerce/0: insert into product (sku) values ('x')"]
    assert (ex.rows_affected, ex.last_insert_id) == (1, 77)


async def test_scatter_update_sums_affected_rows(planner, snapshot) -> None:
    ctx = FakeContext()
    ctx.on("customer/-80", result=ok(3))
    ctx.on("customer/80-", result=ok(2))
    b = planned(planner, snapshot, "update customer set name = 'x' where name = 'y'")
    ex, _ = await fetch(b, ctx, snapshot)
    assert ex.rows_affected == 5
    assert sorted(ctx.log) == [f"execute customer/{s}: UPDATE customer SET name = 'x' WHERE name = 'y'"
                               for s in ("-80", "80-")]


async def test_update_with_limit_selects_keys_then_updates_each_shard_its_own(seq_snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(1,)], "customer/80-": [(4,)]})
    ctx.on(contains="UPDATE", result=ok(1))
    b = Planner().plan("update customer set name = 'x' where name = 'y' limit 2", SessionView("mysql", "customer"),
                       seq_snapshot)
    ex, _ = await fetch(b, ctx, seq_snapshot)
    assert ex.rows_affected == 2
    updates = sorted(line for line in ctx.log if "UPDATE" in line)
    assert updates == [
        "execute customer/-80: UPDATE customer SET name = 'x' WHERE customer.customer_id IN (1)",
        "execute customer/80-: UPDATE customer SET name = 'x' WHERE customer.customer_id IN (4)",
    ]


async def test_ddl_fans_out_and_names_the_failed_shards(planner, snapshot) -> None:
    ctx = FakeContext()
    ctx.on("customer/80-", error=BackendError("exists", mysql_errno=1050, shard="customer/80-"))
    b = planned(planner, snapshot, "create table t (id int)")
    with pytest.raises(BackendError, match=r"failed on customer/80- \(succeeded on customer/-80\): exists"):
        await fetch(b, ctx, snapshot)


async def test_select_next_reserves_ids(planner, snapshot) -> None:
    ctx = FakeContext()
    b = planned(planner, snapshot, "select next 3 values from commerce.customer_seq")
    ex, rows = await fetch(b, ctx, snapshot)
    assert rows == [(1000,)] and ex.column_names == ["nextval"]
    assert ctx.log == ["reserve commerce.customer_seq 3"]
