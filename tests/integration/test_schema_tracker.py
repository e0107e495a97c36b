"""The schema tracker against real shards: two PostgreSQL 15 databases and two MariaDB databases as the shards of
one keyspace, read through a gateway.

- Types, collations, nullability, defaults, primary keys and views as each engine's catalog reports them.
- DDL through the gateway refreshes the schema before it returns: a table created through the router takes rows
  from an INSERT without a column list and answers ``SELECT *`` across shards; a column added shows up.
- A DDL fan-out that fails on one shard is reported (error naming the shard, logged disagreement,
  ``SchemaSet.disagreements``) and the table stops counting as known in full.
- ``reload_schema()`` picks up changes made behind the router's back; PostgreSQL DDL in a transaction at COMMIT.
"""
from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from router import gateway
from sharding import db
from sharding.errors import BackendError, UnsupportedError
from sharding.schema import TableSchema, TypeCode
from tests.integration.engine_support import make_config
from tests.support.backends import connected

pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]

VSCHEMA: dict[str, Any] = {"keyspaces": {"ks": {
    "sharded": True,
    "vindexes": {"hash": {"type": "hash"}},
    "tables": {
        "customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"}]},
        "item": {"column_vindexes": [{"column": "order_id", "name": "hash"}]},
        "gadget": {"column_vindexes": [{"column": "id", "name": "hash"}]},
        "later": {"column_vindexes": [{"column": "id", "name": "hash"}]},
    },
}}}

SHARD_DDL = {
    "postgres": [
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
        "CREATE DOMAIN email AS varchar(80)",
        "CREATE TABLE customer (customer_id bigint PRIMARY KEY, name varchar(32) NOT NULL, code text COLLATE \"POSIX\","
        " balance numeric(12,2) DEFAULT 0, seen timestamptz(3), mood mood, doc jsonb,"
        " active boolean NOT NULL DEFAULT true, token uuid, mail email,"
        " twice bigint GENERATED ALWAYS AS (customer_id * 2) STORED)",
        "CREATE TABLE item (order_id bigint, line int, sku text, PRIMARY KEY (order_id, line))",
        "CREATE VIEW rich AS SELECT customer_id, balance FROM customer WHERE balance > 100",
    ],
    "mysql": [
        "CREATE TABLE customer (customer_id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(32) COLLATE utf8mb4_bin NOT NULL,"
        " code TEXT COLLATE utf8mb4_general_ci, balance DECIMAL(12,2) DEFAULT 0, seen DATETIME(3),"
        " mood ENUM('sad','ok','happy'), doc JSON, active TINYINT(1) NOT NULL DEFAULT 1, secret INT INVISIBLE,"
        " twice BIGINT AS (customer_id * 2) STORED)",
        "CREATE TABLE item (order_id BIGINT, line INT, sku TEXT, PRIMARY KEY (order_id, line))",
        "CREATE VIEW rich AS SELECT customer_id, balance FROM customer WHERE balance > 100",
    ],
}


@pytest.fixture(params=["postgres", "mysql"])
async def shards(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, dict[str, db.DSN]]]:
    engine = request.param
    dsns = request.getfixturevalue("pg_databases" if engine == "postgres" else "mysql_databases")
    by_shard = {"-80": dsns[0], "80-": dsns[1]}
    for dsn in by_shard.values():
        async with connected(dsn) as conn:
            for sql in SHARD_DDL[engine]:
                await db.execute(conn, sql)
    yield engine, by_shard


@pytest.fixture
async def gw(shards: tuple[str, dict[str, db.DSN]]) -> AsyncIterator[gateway.Gateway]:
    engine, by_shard = shards
    async with gateway.connect(make_config(engine, {"ks": by_shard}, VSCHEMA)) as g:
        yield g


def table(g: gateway.Gateway, name: str) -> TableSchema:
    found = g.snapshot.schema.table("ks", name)
    assert found is not None, f"{name} is not tracked"
    return found


async def test_types_are_read_from_the_catalogs(shards: tuple[str, dict[str, db.DSN]], gw: gateway.Gateway) -> None:
    engine, _ = shards
    schema = gw.snapshot.schema
    assert schema.disagreements == () and schema.errors == {}
    customer = table(gw, "customer")
    assert customer.authoritative and customer.primary_key == ("customer_id",) and customer.kind == "table"
    assert table(gw, "item").primary_key == ("order_id", "line")
    assert table(gw, "rich").kind == "view" and table(gw, "rich").column_names == ("customer_id", "balance")
    c = {col.name: col for col in customer.columns}
    codes = {name: col.type.code for name, col in c.items()}
    assert codes["customer_id"] is TypeCode.BIGINT and codes["name"] is TypeCode.VARCHAR
    assert codes["balance"] is TypeCode.DECIMAL and codes["mood"] is TypeCode.ENUM
    assert (c["balance"].type.precision, c["balance"].type.scale) == (12, 2)
    assert c["name"].type.length == 32 and not c["name"].nullable and c["code"].nullable
    assert c["twice"].generated and not c["name"].generated
    assert c["mood"].type.values == ("sad", "ok", "happy")
    if engine == "postgres":
        assert c["customer_id"].type.raw == "bigint" and c["name"].type.raw == "character varying(32)"
        assert codes["seen"] is TypeCode.TIMESTAMPTZ and c["seen"].type.scale == 3
        assert codes["doc"] is TypeCode.JSON and codes["active"] is TypeCode.BOOL and codes["token"] is TypeCode.UUID
        assert codes["mail"] is TypeCode.VARCHAR and c["mail"].type.raw == "email"  # a domain: its base type
        assert c["name"].collation == "C"  # the test databases' default collation is C
        assert c["code"].collation == "POSIX" and c["balance"].collation is None
        assert c["active"].default == "true"
    else:
        assert c["customer_id"].type.unsigned and c["customer_id"].type.planner_name == "UINT64"
        assert codes["seen"] is TypeCode.DATETIME and c["seen"].type.scale == 3
        assert codes["active"] is TypeCode.TINYINT and c["active"].default == "1"
        assert c["name"].collation == "utf8mb4_bin" and c["code"].collation == "utf8mb4_general_ci"
        assert c["secret"].invisible and not c["name"].invisible
        assert c["doc"].type.code in (TypeCode.TEXT, TypeCode.JSON)  # MariaDB: JSON is LONGTEXT with a check


async def test_ddl_through_the_gateway_refreshes_the_schema(gw: gateway.Gateway) -> None:
    assert gw.snapshot.schema.table("ks", "gadget") is None
    version = gw.snapshot.version
    await gw.execute("CREATE TABLE gadget (id BIGINT PRIMARY KEY, name VARCHAR(20), qty INT)", keyspace="ks")
    assert table(gw, "gadget").column_names == ("id", "name", "qty") and gw.snapshot.version == version + 1
    # The next statement is planned with the new columns: no column list needed, * expands across shards.
    await gw.execute("INSERT INTO gadget VALUES (1, 'bolt', 5), (2, 'nut', 7), (3, 'axle', 1), (4, 'cog', 2)",
                     keyspace="ks")
    rows = await gw.execute("SELECT * FROM gadget ORDER BY name", keyspace="ks")
    assert rows.column_names == ["id", "name", "qty"]
    assert [tuple(r) for r in rows] == [(3, "axle", 1), (1, "bolt", 5), (4, "cog", 2), (2, "nut", 7)]
    await gw.execute("ALTER TABLE gadget ADD COLUMN note VARCHAR(10)", keyspace="ks")
    assert table(gw, "gadget").column_names == ("id", "name", "qty", "note")
    await gw.execute("INSERT INTO gadget VALUES (5, 'gear', 3, 'new')", keyspace="ks")
    rows = await gw.execute("SELECT * FROM gadget ORDER BY qty DESC LIMIT 2", keyspace="ks")
    assert [tuple(r) for r in rows] == [(2, "nut", 7, None), (1, "bolt", 5, None)]
    # An unqualified column of a join across shards belongs to the one table that has it.
    await gw.execute("INSERT INTO item VALUES (1, 1, 'bolt'), (2, 1, 'nut'), (3, 1, 'x')", keyspace="ks")
    rows = await gw.execute("SELECT name, line FROM gadget g JOIN item i ON i.sku = g.name ORDER BY name",
                            keyspace="ks")
    assert [tuple(r) for r in rows] == [("bolt", 1), ("nut", 1)]


async def test_a_half_failed_fan_out_is_reported(shards: tuple[str, dict[str, db.DSN]], gw: gateway.Gateway,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    _, by_shard = shards
    await gw.execute("CREATE TABLE gadget (id BIGINT PRIMARY KEY, name VARCHAR(20))", keyspace="ks")
    async with connected(by_shard["80-"]) as conn:  # the column exists on one shard already, with another type
        await db.execute(conn, "ALTER TABLE gadget ADD COLUMN extra VARCHAR(10)")
    with caplog.at_level(logging.WARNING, logger="shardgate.schema"), \
            pytest.raises(BackendError, match=r"failed on ks/80- \(succeeded on ks/-80\)"):
        await gw.execute("ALTER TABLE gadget ADD COLUMN extra INT", keyspace="ks")
    (d,) = gw.snapshot.schema.disagreements
    assert (d.keyspace, d.table, d.shards) == ("ks", "gadget", ("-80", "80-"))
    # MariaDB: 'int(11)' / 'varchar(10)'; PostgreSQL: 'integer' / 'character varying(10)' (and a collation).
    assert re.fullmatch(r"column extra type: 'int\S*' on -80, '(varchar|character varying)\(10\)' on 80-",
                        d.differences[0]), d.differences
    assert any(r.__dict__.get("event") == "schema_disagreement" and r.__dict__.get("table") == "gadget"
               for r in caplog.records)
    assert not table(gw, "gadget").authoritative
    with pytest.raises(UnsupportedError, match="needs a column list"):
        await gw.execute("INSERT INTO gadget VALUES (1, 'bolt', 3)", keyspace="ks")
    # Repaired by hand, then re-read on demand: known in full again.
    async with connected(by_shard["80-"]) as conn:
        await db.execute(conn, "ALTER TABLE gadget DROP COLUMN extra")
        await db.execute(conn, "ALTER TABLE gadget ADD COLUMN extra INT")
    schema = await gw.reload_schema("ks")
    assert schema.disagreements == () and table(gw, "gadget").authoritative
    await gw.execute("INSERT INTO gadget VALUES (1, 'bolt', 3)", keyspace="ks")


@pytest.mark.parametrize("shards", ["postgres"], indirect=True)  # MySQL DDL commits at once
async def test_postgres_ddl_in_a_transaction_is_tracked_at_commit(gw: gateway.Gateway) -> None:
    async with gw.session("postgres", "ks") as s:
        await s.execute("BEGIN")
        await s.execute("CREATE TABLE later (id bigint PRIMARY KEY, v text)")
        assert gw.snapshot.schema.table("ks", "later") is None
        await s.execute("COMMIT")
    assert table(gw, "later").column_names == ("id", "v")
