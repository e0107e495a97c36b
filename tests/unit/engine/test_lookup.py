"""Lookup vindexes: reading the lookup table to route, and maintaining it when the owner table is written."""
from __future__ import annotations

import pytest

from router.backend.result import ExecResult
from router.planner import Planner, SessionView
from sharding.snapshot import ClusterSnapshot
from sharding.vindexes import registry
from sharding.vschema import parse_vschema
from tests.unit.engine.conftest import fetch
from tests.unit.engine.fake_context import FakeContext

VS = {"keyspaces": {
    "commerce": {"sharded": False, "tables": {"email_lookup": {}, "name_lookup": {}}},
    "customer": {
        "sharded": True,
        "vindexes": {
            "hash": {"type": "hash"},
            "email_lk": {"type": "lookup_unique", "owner": "customer",
                         "params": {"table": "commerce.email_lookup", "from": "email", "to": "keyspace_id"}},
            "name_lk": {"type": "consistent_lookup", "owner": "customer",
                        "params": {"table": "commerce.name_lookup", "from": "name", "to": "keyspace_id"}},
        },
        "tables": {"customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"},
                                                    {"column": "email", "name": "email_lk"},
                                                    {"column": "name", "name": "name_lk"}]}},
    },
}}


@pytest.fixture(scope="module")
def lk_snapshot() -> ClusterSnapshot:
    return ClusterSnapshot.build(1, parse_vschema(VS), {"customer": ["-80", "80-"], "commerce": ["0"]})


def ksid(customer_id: int) -> bytes:
    (dest,) = registry.create("hash", "hash", {})[0].map([customer_id])  # type: ignore[attr-defined]
    return dest.ksid


def plan(sql: str, snapshot: ClusterSnapshot):  # type: ignore[no-untyped-def]
    return Planner().plan(sql, SessionView("mysql", "customer"), snapshot)


async def test_route_through_a_lookup_reads_the_lookup_table_first(lk_snapshot) -> None:
    ctx = FakeContext({"customer/80-": [(4,)]}, ["customer_id"])
    ctx.on("commerce/0", "email_lookup", rows=[("a@x", ksid(4))], columns=["email", "keyspace_id"])
    _, rows = await fetch(plan("select customer_id from customer where email = 'a@x'", lk_snapshot), ctx,
                          lk_snapshot)
    assert rows == [(4,)]
    assert ctx.log == [
        "stream commerce/0: SELECT email, keyspace_id FROM email_lookup WHERE email IN ('a@x')",
        "execute customer/80-: select customer_id from customer where email = 'a@x'",
    ]


async def test_a_value_missing_from_the_lookup_routes_nowhere(lk_snapshot) -> None:
    ctx = FakeContext({"customer/-80": [(1,)]}, ["customer_id"])
    ctx.on("commerce/0", "name_lookup", rows=[("ann", ksid(1))], columns=["name", "keyspace_id"])
    _, rows = await fetch(plan("select customer_id from customer where name in ('ann', 'nobody')", lk_snapshot),
                          ctx, lk_snapshot)
    assert rows == [(1,)]
    assert ctx.log[1:] == ["execute customer/-80: SELECT customer_id FROM customer WHERE name IN ('ann')"]


async def test_insert_creates_lookup_rows_before_the_owner_row(lk_snapshot) -> None:
    ctx = FakeContext()
    ctx.on(result=ExecResult(1))
    await fetch(plan("insert into customer (customer_id, email, name) values (1, 'a@x', 'ann')", lk_snapshot), ctx,
                lk_snapshot)
    k = ksid(1).hex()
    assert ctx.log == [
        f"execute commerce/0: INSERT INTO `email_lookup` (`email`, `keyspace_id`) VALUES ('a@x', X'{k}')",
        # consistent lookup: on the "pre" connection, a duplicate is resolved (not failed) by the router
        f"execute commerce/0: INSERT IGNORE INTO `name_lookup` (`name`, `keyspace_id`) VALUES ('ann', X'{k}')",
        "execute customer/-80: INSERT INTO customer (customer_id, email, name) VALUES (1, 'a@x', 'ann')",
    ]


async def test_delete_removes_lookup_rows_first(lk_snapshot) -> None:
    ctx = FakeContext()
    ctx.on("customer/-80", "FOR UPDATE", rows=[(1, "a@x", "ann")], columns=["customer_id", "email", "name"])
    ctx.on(result=ExecResult(1))
    ex, _ = await fetch(plan("delete from customer where customer_id = 1", lk_snapshot), ctx, lk_snapshot)
    k = ksid(1).hex()
    assert ctx.log[1:] == [
        f"execute commerce/0: DELETE FROM `email_lookup` WHERE `email` = 'a@x' AND `keyspace_id` = X'{k}'",
        f"execute commerce/0: DELETE FROM `name_lookup` WHERE `name` = 'ann' AND `keyspace_id` = X'{k}'",
        "execute customer/-80: delete from customer where customer_id = 1",  # the client's own text
    ]
    assert ex.rows_affected == 1
