"""The planner reads the tracked schema (``snapshot.schema``, ``sharding.schema``) where the VSchema lists no columns.

The cluster of ``sqlite_cluster`` three ways: ``declared`` (the VSchema lists every column authoritatively, with
types), ``bare`` (the same VSchema without any column) and ``tracked`` (bare, plus the columns the shards would
report). Tracked plans must equal declared plans; bare ones fail or plan blind. Then the same plans run on the
SQLite shards and must return what the single database returns.
"""
from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from router.planner import Planner, SessionView
from router.planner.plan import Join
from sharding.errors import UnknownTableError, UnsupportedError
from sharding.schema import ColumnSchema, ColumnType, SchemaSet, TableSchema, TypeCode, combine
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema
from tests.unit.planner.sqlite_cluster import (
    _TEXT_COLUMNS,
    COLUMNS,
    KEYSPACE,
    SHARDS,
    VSCHEMA,
    Cluster,
    normalize,
    snapshot,
    sort_key,
)

KS = SessionView(dialect="mysql", keyspace="ks")
TEXT = ColumnType(TypeCode.VARCHAR, "varchar(20)", length=20)
BIGINT = ColumnType(TypeCode.BIGINT, "bigint")


def bare_vschema() -> dict[str, Any]:
    doc = copy.deepcopy(VSCHEMA)
    for ks in doc["keyspaces"].values():
        for table in ks["tables"].values():
            table.pop("columns", None)
            table.pop("column_list_authoritative", None)
    return doc


def shard_tables(collation: str | None = "utf8mb4_bin", extra: dict[str, TableSchema] | None = None,
                 keyspace: str | None = None) -> dict[str, dict[str, TableSchema]]:
    """keyspace -> table -> what each shard's catalog reports."""
    out: dict[str, dict[str, TableSchema]] = {}
    for table, cols in COLUMNS.items():
        columns = tuple(ColumnSchema(c, TEXT if c in _TEXT_COLUMNS else BIGINT,
                                     collation=collation if c in _TEXT_COLUMNS else None) for c in cols)
        out.setdefault(KEYSPACE[table], {})[table] = TableSchema(table, columns, (cols[0],))
    if extra:
        out.setdefault(keyspace or "ks", {}).update(extra)
    return out


def tracked_schema(**kw: Any) -> SchemaSet:
    return SchemaSet({ks: combine(ks, {shard: tables for shard in SHARDS[ks]}) for ks, tables in
                      shard_tables(**kw).items()})


def bare() -> ClusterSnapshot:
    return ClusterSnapshot.build(1, parse_vschema(bare_vschema()), SHARDS)


def tracked(**kw: Any) -> ClusterSnapshot:
    return bare().replace(version=2, schema=tracked_schema(**kw))


def describe(sql: str, snap: ClusterSnapshot, session: SessionView = KS) -> dict[str, Any]:
    return Planner().plan(sql, session, snap).plan.root.describe()  # type: ignore[no-any-return]


# Queries whose plan depends on knowing the columns (or their types).
QUERIES = [
    "select * from customer order by name",
    "select * from item order by note, sku limit 3",
    "select c.*, i.sku from customer c join item i on i.order_id = c.id",
    "select name, note from customer c join item i on i.order_id = c.id",
    "select name from customer c join item i on i.order_id = c.id order by note",
    "select id, name from customer order by id",
    "select region, count(*) from customer group by region",
    "select distinct sku from orders",
    "select x.name, note from (select * from customer) x join item i on i.order_id = x.id",
    "insert into customer values (1, 'ann', 'eu')",
    "insert into orders values (1, 2, 'a', 3), (2, 3, 'b', 4)",
    "select * from customer c join region r on r.code = c.region order by label",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_tracked_columns_plan_as_declared_columns(sql: str) -> None:
    assert describe(sql, tracked()) == describe(sql, snapshot())


def test_select_star_across_shards_expands() -> None:
    plan = describe("select * from customer order by name", tracked())
    assert plan["Query"] == ("SELECT `customer`.`id`, `customer`.`name`, `customer`.`region`, WEIGHT_STRING(name) "
                             "FROM customer ORDER BY name")
    assert plan["ResultColumns"] == 3
    # Without columns the shards must put the sort keys first (a helper prefix the router cuts off).
    assert describe("select * from customer order by name", bare())["HelperPrefix"] == 2


def test_insert_without_column_list_routes() -> None:
    sql = "insert into customer values (7, 'ann', 'eu')"
    plan = describe(sql, tracked())
    assert (plan["OperatorType"], plan["Variant"]) == ("Insert", "Sharded")
    assert plan["Query"] == "INSERT INTO customer (id, name, region) VALUES (:_id_0, :v2, :v3)"
    assert plan["VindexValues"] == {"hash": ":v1"}
    with pytest.raises(UnsupportedError, match="needs a column list"):
        describe(sql, bare())


def test_unqualified_join_column_resolves() -> None:
    sql = "select name, note from customer c join item i on i.order_id = c.id"
    with pytest.raises(UnsupportedError, match="cannot tell which table"):
        describe(sql, bare())
    root = Planner().plan(sql, KS, tracked()).plan.root
    assert isinstance(root, Join)
    left, right = (p.describe() for p in root.inputs())
    assert left["Query"] == "SELECT note, i.order_id FROM item AS i"
    assert right["Query"] == "SELECT name FROM customer AS c WHERE :i_order_id = c.id"


def test_column_types_decide_weight_strings() -> None:
    # A number sorts natively at the router; a column of unknown type needs the shards' weight string (MySQL).
    assert describe("select id, name from customer order by id", tracked())["Query"] == \
        "SELECT id, name FROM customer ORDER BY id"
    assert describe("select id, name from customer order by id", bare())["Query"] == \
        "SELECT id, name, WEIGHT_STRING(id) FROM customer ORDER BY id"


def test_postgres_text_order_follows_the_tracked_collation() -> None:
    pg = SessionView(dialect="postgres", keyspace="ks")
    sql = "select id, name from customer order by name"
    plan = describe(sql, tracked(collation="C"), pg)
    assert plan["OrderBy"].startswith("1 ASC")
    # The database's default collation, not a code-point one: the router cannot merge the shards' order.
    with pytest.raises(UnsupportedError, match="needs a known collation"):
        describe(sql, tracked(collation=None), pg)


def test_a_table_the_shards_disagree_on_is_not_authoritative() -> None:
    wide = TableSchema("customer", (*shard_tables()["ks"]["customer"].columns, ColumnSchema("score", BIGINT)),
                       ("id",))
    per_shard = {"-80": {**shard_tables()["ks"], "customer": wide}, "80-": shard_tables()["ks"]}
    schema = tracked_schema().with_keyspace(combine("ks", per_shard))
    assert [d.table for d in schema.disagreements] == ["customer"]
    snap = bare().replace(version=2, schema=schema)
    with pytest.raises(UnsupportedError, match="needs a column list"):
        describe("insert into customer values (1, 'ann', 'eu')", snap)
    assert describe("select * from customer order by name", snap)["HelperPrefix"] == 2
    # The columns every shard has still tell a join which table a column belongs to (item lists all of its own).
    root = Planner().plan("select name, note from customer c join item i on i.order_id = c.id", KS, snap).plan.root
    assert isinstance(root, Join)


def test_cached_plans_retire_when_the_schema_changes() -> None:
    planner = Planner()
    sql = "select * from customer order by name"
    old = bare()
    assert planner.plan(sql, KS, old).plan.root.describe()["HelperPrefix"] == 2
    newer = old.replace(version=old.version + 1, schema=tracked_schema())
    assert "HelperPrefix" not in planner.plan(sql, KS, newer).plan.root.describe()


def test_a_table_only_the_tracked_schema_knows_resolves_without_a_keyspace() -> None:
    audit = TableSchema("audit", (ColumnSchema("id", BIGINT), ColumnSchema("what", TEXT)), ("id",))
    nobody = SessionView(dialect="mysql")
    with pytest.raises(UnknownTableError):
        describe("select * from audit", bare(), nobody)
    plan = describe("select * from audit", tracked(extra={"audit": audit}, keyspace="main"), nobody)
    assert (plan["Variant"], plan["Keyspace"]["Name"]) == ("Unsharded", "main")
    # In a sharded keyspace the VSchema must still list the table (it says how rows are placed).
    with pytest.raises(UnknownTableError):
        describe("select * from audit", tracked(extra={"audit": audit}, keyspace="ks"), nobody)


ROWS: dict[str, list[tuple[Any, ...]]] = {
    "customer": [(1, "ann", "eu"), (2, "bob", "us"), (3, "cid", None), (4, "ann", "ap"), (5, None, "eu")],
    "orders": [(1, 1, "a", 2), (2, 2, "b", 1), (3, 3, "a", None), (4, 5, "c", 3)],
    "item": [(1, 1, "a", "x"), (2, 2, "b", None), (3, 4, "a", "y"), (4, None, "d", "x"), (5, 3, "c", "y")],
    "region": [("eu", "Europe"), ("us", "States"), ("ap", None)],
    "product": [("a", 10), ("b", 20)],
    "promo": [],
}
MEANING = [
    ("select * from customer order by name, id", 2),
    ("select * from item order by note, id limit 3", 2),
    ("select name, note from customer c join item i on i.order_id = c.id", 0),
    ("select c.*, label from customer c join region r on r.code = c.region", 0),
    ("select region, count(*) from customer group by region", 0),
    ("select x.* from (select * from orders) x where x.qty > 1", 0),
]


@pytest.mark.parametrize(("sql", "keys"), MEANING)
def test_tracked_plans_return_what_the_query_means(sql: str, keys: int) -> None:
    cluster = Cluster(ROWS, snap=tracked())
    got = normalize(asyncio.run(cluster.routed(sql)))
    want = normalize(cluster.direct(sql))
    if keys:
        assert [r[:keys] for r in got] == [r[:keys] for r in want]
    assert sorted(got, key=sort_key) == sorted(want, key=sort_key), json.dumps([got, want], default=str)
