"""The schema tracker (``router.engine.schema_tracker``) and the gateway's use of it, without servers.

- Catalog rows -> tables: ``mysql_tables`` / ``pg_tables`` on rows shaped like the servers' answers (the real
  servers are in ``tests/integration/test_schema_tracker.py``).
- The tracker over fake pools: coalesced refreshes, unreadable shards, disagreements logged once.
- The gateway over fake shards that understand a little DDL: the schema joins the first snapshot at its version,
  DDL through a session refreshes it before the statement returns (moving the version on only when something
  changed), a half-failed fan-out is reported, DDL inside a PostgreSQL transaction is seen at COMMIT, and with a
  topology store the snapshot version runs ahead of the store's while ALTER VSCHEMA still compares-and-swaps
  against the store's.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from router.backend.result import ExecResult, ResultSet
from router.engine.schema_tracker import (
    MYSQL_COLUMNS_SQL,
    MYSQL_KEYS_SQL,
    PG_COLUMNS_SQL,
    PG_DATABASE_SQL,
    PG_KEYS_SQL,
    SchemaTracker,
    mysql_tables,
    pg_default_collation,
    pg_tables,
)
from router.gateway import Gateway
from sharding.config import parse_config
from sharding.errors import BackendError, BackendUnavailableError
from sharding.schema import TypeCode
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema

pytestmark = pytest.mark.timeout(30)


# --- catalog rows -> tables -----------------------------------------------------------------------------------------
def my_row(table: str, name: str, data_type: str, column_type: str, *, collation: str | None = None,
           nullable: str = "YES", default: str | None = None, char_len: int | None = None,
           prec: int | None = None, scale: int | None = None, dt_prec: int | None = None, extra: str = "",
           table_type: str = "BASE TABLE") -> tuple[Any, ...]:
    return (table, name, data_type, column_type, collation, nullable, default, char_len, prec, scale, dt_prec, extra,
            table_type)


def test_mysql_catalog_rows() -> None:
    rows = [
        my_row("t", "id", "bigint", "bigint(20) unsigned", nullable="NO", prec=20, scale=0, extra="auto_increment"),
        my_row("t", "name", "varchar", "varchar(64)", collation="utf8mb4_general_ci", char_len=64, default="'x'"),
        my_row("t", "mood", "enum", "enum('a','it''s')", collation="utf8mb4_bin", char_len=4),
        my_row("t", "price", "decimal", "decimal(12,2)", prec=12, scale=2),
        my_row("t", "at", "datetime", "datetime(3)", dt_prec=3, default="current_timestamp(3)"),
        my_row("t", "secret", "int", "int(11)", prec=10, scale=0, extra="INVISIBLE"),
        my_row("t", "total", "decimal", "decimal(13,2)", prec=13, scale=2, extra="VIRTUAL GENERATED"),
        my_row("t", "geo", "point", "point"),
        my_row("t", "addr", "inet6", "inet6"),
        my_row("v", "id", "bigint", "bigint(20) unsigned", table_type="VIEW"),
    ]
    tables = mysql_tables(rows, [("t", "id"), ("t", "name")])
    assert set(tables) == {"t", "v"}
    t = tables["t"]
    assert t.primary_key == ("id", "name") and t.kind == "table" and tables["v"].kind == "view"
    by = {c.name: c for c in t.columns}
    assert [c.name for c in t.columns] == ["id", "name", "mood", "price", "at", "secret", "total", "geo", "addr"]
    assert by["id"].type.code is TypeCode.BIGINT and by["id"].type.unsigned and by["id"].type.planner_name == "UINT64"
    assert not by["id"].nullable and by["id"].auto_increment
    assert (by["name"].type.length, by["name"].collation, by["name"].default) == (64, "utf8mb4_general_ci", "'x'")
    assert by["mood"].type.values == ("a", "it's") and by["mood"].type.code is TypeCode.ENUM
    assert (by["price"].type.precision, by["price"].type.scale) == (12, 2)
    assert by["at"].type.scale == 3 and not by["at"].generated
    assert by["secret"].invisible and by["total"].generated
    assert by["geo"].type.code is TypeCode.GEOMETRY
    assert by["addr"].type.code is TypeCode.OTHER and by["addr"].type.planner_name == "INET6"


def pg_row(table: str, name: str, formatted: str, typname: str, *, oid: int = 0, typtype: str = "b",
           category: str = "N", typmod: int = -1, notnull: bool = False, default: str | None = None,
           coll: int = 0, collname: str | None = None, generated: str = "", identity: str = "",
           relkind: str = "r", labels: list[str] | None = None) -> tuple[Any, ...]:
    return (table, name, 1, formatted, oid, typname, typtype, category, typmod, notnull, default, coll, collname,
            generated, identity, relkind, labels)


def test_postgres_catalog_rows() -> None:
    rows = [
        pg_row("t", "id", "bigint", "int8", oid=20, notnull=True, default="nextval('t_id_seq'::regclass)"),
        pg_row("t", "name", "character varying(64)", "varchar", oid=1043, category="S", typmod=68, coll=100,
               collname="default"),
        pg_row("t", "code", "text", "text", oid=25, category="S", coll=950, collname="C"),
        pg_row("t", "amount", "numeric(12,2)", "numeric", oid=1700, typmod=(12 << 16 | 2) + 4),
        pg_row("t", "at", "timestamp(3) with time zone", "timestamptz", oid=1184, typmod=3),
        pg_row("t", "mood", "mood", "mood", oid=16390, typtype="e", category="E", labels=["sad", "ok"]),
        pg_row("t", "email", "email", "text", oid=25, category="S", coll=100, collname="default"),  # a domain
        pg_row("t", "tags", "text[]", "_text", oid=1009, category="A", coll=100, collname="default"),
        pg_row("t", "n", "integer", "int4", oid=23, identity="a"),
        pg_row("t", "twice", "integer", "int4", oid=23, generated="s"),
        pg_row("t", "ci", "citext", "citext", oid=16500, category="S", coll=100, collname="default"),
        pg_row("v", "id", "bigint", "int8", oid=20, relkind="v"),
    ]
    tables = pg_tables(rows, [("t", "id")], default_collation="C")
    t = tables["t"]
    by = {c.name: c for c in t.columns}
    assert t.primary_key == ("id",) and tables["v"].kind == "view"
    assert by["id"].auto_increment and not by["id"].nullable and by["id"].type.backend_type == 20
    assert (by["name"].type.code, by["name"].type.length, by["name"].collation) == (TypeCode.VARCHAR, 64, "C")
    assert by["name"].type.raw == "character varying(64)"
    assert by["code"].collation == "C"
    assert (by["amount"].type.precision, by["amount"].type.scale) == (12, 2)
    assert by["at"].type.code is TypeCode.TIMESTAMPTZ and by["at"].type.scale == 3
    assert by["mood"].type.code is TypeCode.ENUM and by["mood"].type.values == ("sad", "ok")
    assert by["email"].type.code is TypeCode.TEXT and by["email"].type.raw == "email"
    assert by["tags"].type.code is TypeCode.ARRAY
    assert by["n"].auto_increment and by["twice"].generated and not by["n"].generated
    assert by["ci"].type.code is TypeCode.OTHER and by["ci"].type.planner_name == "CITEXT"
    assert by["id"].collation is None  # not collatable
    # A database whose default collation the router cannot reproduce leaves default-collation columns unknown.
    assert pg_tables(rows, [], default_collation=None)["t"].columns[1].collation is None


@pytest.mark.parametrize(("row", "collation"), [
    ('{"datcollate": "C", "datlocprovider": "c"}', "C"),
    ('{"datcollate": "POSIX"}', "C"),
    ('{"datcollate": "en_US.UTF-8", "datlocprovider": "c"}', None),
    ('{"datcollate": "C", "datlocprovider": "i"}', None),
    (None, None),
])
def test_postgres_default_collation(row: str | None, collation: str | None) -> None:
    assert pg_default_collation(row) == collation


# --- fake shards ------------------------------------------------------------------------------------------------------
_CREATE = re.compile(r"^\s*CREATE TABLE (\w+) \((.*)\)\s*$", re.I | re.S)
_ADD = re.compile(r"^\s*ALTER TABLE (\w+) ADD(?: COLUMN)? (\w+) (\w+)\s*$", re.I)
_DROP = re.compile(r"^\s*DROP TABLE (\w+)\s*$", re.I)


class FakeShard:
    """A shard's catalog (table -> [(column, type)]) that a little DDL changes; ``fail`` makes the next DDL fail."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.tables: dict[str, list[tuple[str, str]]] = {}
        self.fail = False
        self.down = False
        self.catalog_reads = 0
        self.log: list[str] = []

    def ddl(self, sql: str) -> None:
        if self.fail:
            self.fail = False
            raise BackendError("duplicate column name")
        if m := _CREATE.match(sql):
            cols = [c.strip().split()[:2] for c in m.group(2).split(",")]
            self.tables[m.group(1)] = [(c[0], c[1].lower()) for c in cols]
        elif m := _ADD.match(sql):
            self.tables[m.group(1)].append((m.group(2), m.group(3).lower()))
        elif m := _DROP.match(sql):
            del self.tables[m.group(1)]

    def answer(self, sql: str) -> ResultSet | ExecResult:
        self.log.append(sql)
        if sql == MYSQL_COLUMNS_SQL:
            self.catalog_reads += 1
            return ResultSet((), [my_row(t, c, ty, ty) for t, cols in sorted(self.tables.items()) for c, ty in cols])
        if sql == MYSQL_KEYS_SQL:
            return ResultSet((), [(t, cols[0][0]) for t, cols in sorted(self.tables.items())])
        if sql == PG_DATABASE_SQL:
            return ResultSet((), [('{"datcollate": "C", "datlocprovider": "c"}',)])
        if sql == PG_COLUMNS_SQL:
            self.catalog_reads += 1
            pg = {"bigint": ("int8", 20), "int": ("int4", 23), "text": ("text", 25)}
            return ResultSet((), [pg_row(t, c, ty, pg[ty][0], oid=pg[ty][1]) for t, cols in sorted(self.tables.items())
                                  for c, ty in cols])
        if sql == PG_KEYS_SQL:
            return ResultSet((), [(t, cols[0][0]) for t, cols in sorted(self.tables.items())])
        self.ddl(sql)
        return ExecResult()


class FakeConn:
    def __init__(self, shard: FakeShard) -> None:
        self.shard = shard

    async def execute(self, sql: str, params: Any = None, *, timeout: float | None = None) -> Any:
        await asyncio.sleep(0)
        return self.shard.answer(sql)

    async def begin(self, xid: str | None = None) -> None:
        self.shard.log.append("BEGIN")

    async def commit(self) -> None:
        self.shard.log.append("COMMIT")

    async def rollback(self) -> None:
        self.shard.log.append("ROLLBACK")

    async def release(self) -> None:
        pass


class FakeAcquire:
    """What ``PoolSet.acquire`` returns: ``async with`` it, or await it (and release the connection)."""

    def __init__(self, shard: FakeShard) -> None:
        self.shard = shard

    def _conn(self) -> FakeConn:
        if self.shard.down:
            raise BackendUnavailableError("the shard is down")
        return FakeConn(self.shard)

    def __await__(self) -> Any:
        async def get() -> FakeConn:
            return self._conn()

        return get().__await__()

    async def __aenter__(self) -> FakeConn:
        return self._conn()

    async def __aexit__(self, *exc: object) -> None:
        pass


class FakePools:
    def __init__(self, shards: dict[tuple[str, str], FakeShard]) -> None:
        self.shards = shards
        self.version: int | None = None

    async def apply(self, snapshot: ClusterSnapshot) -> None:
        self.version = snapshot.version

    def acquire(self, target: Any, shard: str | None = None, role: str = "primary", *,
                timeout: float | None = None) -> Any:
        key = (target.keyspace, target.shard) if shard is None else (target, shard)
        return FakeAcquire(self.shards[key])

    async def close(self, timeout: float | None = None) -> None:
        pass


# --- the tracker ------------------------------------------------------------------------------------------------------
def snapshot() -> ClusterSnapshot:
    vschema = parse_vschema({"keyspaces": {"ks": {"sharded": True, "vindexes": {"hash": {"type": "hash"}}}}})
    return ClusterSnapshot.build(1, vschema, {"ks": ["-80", "80-"]})


def fake_shards(engine: str = "mysql") -> dict[tuple[str, str], FakeShard]:
    shards = {("ks", "-80"): FakeShard(engine), ("ks", "80-"): FakeShard(engine)}
    for s in shards.values():
        s.tables["t"] = [("id", "bigint"), ("name", "text")]
    return shards


async def test_concurrent_refreshes_are_coalesced() -> None:
    shards = fake_shards()
    tracker = SchemaTracker(FakePools(shards), lambda ks: "mysql")  # type: ignore[arg-type]
    snap = snapshot()
    results = await asyncio.gather(*(tracker.load_keyspace(snap, "ks") for _ in range(6)))
    # The first read runs alone; the five asked meanwhile share one more read.
    assert tracker.reads == 4 and all(r == results[0] for r in results)
    assert results[0].tables["t"].column_names == ("id", "name")


async def test_an_unreadable_shard_keeps_its_last_schema(caplog: pytest.LogCaptureFixture) -> None:
    shards = fake_shards()
    tracker = SchemaTracker(FakePools(shards), lambda ks: "mysql")  # type: ignore[arg-type]
    snap = snapshot()
    first = await tracker.load_keyspace(snap, "ks")
    shards[("ks", "80-")].down = True
    with caplog.at_level(logging.WARNING, logger="shardgate.schema"):
        again = await tracker.load_keyspace(snap, "ks")
    assert again.tables == first.tables and again.disagreements == ()
    assert list(again.errors) == ["80-"] and "BackendUnavailableError" in again.errors["80-"]
    assert any(r.__dict__.get("event") == "schema_read_failed" for r in caplog.records)


async def test_disagreements_are_logged_once_until_repaired(caplog: pytest.LogCaptureFixture) -> None:
    shards = fake_shards()
    tracker = SchemaTracker(FakePools(shards), lambda ks: "mysql")  # type: ignore[arg-type]
    snap = snapshot()
    shards[("ks", "-80")].tables["t"].append(("score", "int"))

    def logged() -> int:
        return sum(1 for r in caplog.records if r.__dict__.get("event") == "schema_disagreement")

    with caplog.at_level(logging.WARNING, logger="shardgate.schema"):
        for _ in range(3):
            ks = await tracker.load_keyspace(snap, "ks")
        assert logged() == 1 and ks.disagreements[0].differences == (
            "column score missing on 80- (present on -80)",)
        shards[("ks", "80-")].tables["t"].append(("score", "int"))
        assert (await tracker.load_keyspace(snap, "ks")).disagreements == ()
        shards[("ks", "80-")].tables["t"].pop()
        await tracker.load_keyspace(snap, "ks")
        assert logged() == 2


# --- the gateway ------------------------------------------------------------------------------------------------------
VSCHEMA: dict[str, Any] = {"keyspaces": {
    "ks": {"sharded": True, "vindexes": {"hash": {"type": "hash"}},
           "tables": {"t": {"column_vindexes": [{"column": "id", "name": "hash"}]}}},
}}


def gateway(tmp_path: Path, engine: str = "mysql", **options: Any) -> tuple[Gateway, dict[tuple[str, str], FakeShard]]:
    def backend(port: int) -> dict[str, Any]:
        return {"engine": engine, "host": "127.0.0.1", "port": port, "database": "db", "user": "app"}

    doc: dict[str, Any] = {"keyspaces": {"ks": {"shards": {"-80": backend(1), "80-": backend(2)}}},
                           "vschema": copy.deepcopy(VSCHEMA)}
    if options.get("topology"):
        doc["topology"] = {"store": "file", "path": str(tmp_path / "topo"), "poll_interval": 0.05}
    gw = Gateway(parse_config(doc, source="cluster.yaml", base_dir=tmp_path), **options)
    shards = fake_shards(engine)
    gw.pools = FakePools(shards)  # type: ignore[assignment]
    gw.schema_tracker.pools = gw.pools
    return gw, shards


async def test_the_schema_joins_the_first_snapshot_and_ddl_refreshes_it(tmp_path: Path) -> None:
    gw, shards = gateway(tmp_path)
    async with gw:
        v = gw.snapshot.version
        assert v == 1 and gw.snapshot.schema.table("ks", "t").column_names == ("id", "name")  # type: ignore[union-attr]
        # The planner now knows t's columns: INSERT without a column list routes.
        plan = gw.planner.plan("insert into t values (1, 'a')", gw.session("mysql", "ks").view(), gw.snapshot)
        assert plan.plan.root.describe()["Query"] == "INSERT INTO t (id, name) VALUES (:_id_0, :v2)"
        await gw.execute("ALTER TABLE t ADD COLUMN score int", keyspace="ks")
        assert gw.snapshot.version == v + 1
        assert gw.snapshot.schema.table("ks", "t").column_names == ("id", "name", "score")  # type: ignore[union-attr]
        reads = shards[("ks", "-80")].catalog_reads
        await gw.execute("CREATE INDEX i ON t (name)", keyspace="ks")  # re-read, nothing changed: same version
        assert shards[("ks", "-80")].catalog_reads == reads + 1 and gw.snapshot.version == v + 1
        await gw.execute("TRUNCATE TABLE t", keyspace="ks")  # changes no table: not even re-read
        assert shards[("ks", "-80")].catalog_reads == reads + 1
        shards[("ks", "80-")].tables["t"].append(("extra", "int"))  # changed behind the router's back
        schema = await gw.reload_schema()
        assert [d.table for d in schema.disagreements] == ["t"] and gw.snapshot.version == v + 2


async def test_a_half_failed_fan_out_is_reported(tmp_path: Path) -> None:
    gw, shards = gateway(tmp_path)
    async with gw:
        shards[("ks", "80-")].fail = True
        with pytest.raises(BackendError, match="failed on ks/80-"):
            await gw.execute("ALTER TABLE t ADD COLUMN score int", keyspace="ks")
        (d,) = gw.snapshot.schema.disagreements
        assert d.describe() == "ks.t: column score missing on 80- (present on -80)"
        assert not gw.snapshot.schema.table("ks", "t").authoritative  # type: ignore[union-attr]
        # Repaired on the shard that failed: the disagreement goes away with the next DDL's refresh.
        shards[("ks", "80-")].tables["t"].append(("score", "int"))
        await gw.execute("CREATE TABLE u (id bigint, v text)", keyspace="ks")
        assert gw.snapshot.schema.disagreements == ()
        assert gw.snapshot.schema.table("ks", "u").column_names == ("id", "v")  # type: ignore[union-attr]


async def test_postgres_ddl_in_a_transaction_is_seen_at_commit(tmp_path: Path) -> None:
    gw, _ = gateway(tmp_path, engine="postgres")
    async with gw:
        async with gw.session("postgres", "ks") as s:
            await s.execute("BEGIN")
            await s.execute("CREATE TABLE u (id bigint, v text)")
            assert gw.snapshot.schema.table("ks", "u") is None  # not committed: others cannot see it yet
            await s.execute("COMMIT")
            assert gw.snapshot.schema.table("ks", "u").column_names == ("id", "v")  # type: ignore[union-attr]


async def test_tracking_can_be_switched_off(tmp_path: Path) -> None:
    gw, shards = gateway(tmp_path, track_schema=False)
    async with gw:
        await gw.execute("CREATE TABLE u (id bigint, v text)", keyspace="ks")
        assert not gw.snapshot.schema and shards[("ks", "-80")].catalog_reads == 0


async def test_with_a_topology_store_versions_run_ahead_and_vschema_ddl_still_swaps(tmp_path: Path) -> None:
    gw, _ = gateway(tmp_path, topology=True)
    async with gw:
        store_version = gw.snapshot.version
        await gw.execute("ALTER TABLE t ADD COLUMN score int", keyspace="ks")
        assert gw.snapshot.version == store_version + 1  # ahead of the store's VSchema version
        # ALTER VSCHEMA compares-and-swaps against the store's version, not the snapshot's.
        await gw.execute("ALTER VSCHEMA ON ks.t ADD VINDEX by_score(score) USING hash", keyspace="ks")
        snap = gw.snapshot
        assert snap.version > store_version + 1
        assert [cv.columns for cv in snap.vschema.keyspaces["ks"].tables["t"].column_vindexes] == [("id",), ("score",)]
        assert snap.schema.table("ks", "t").column_names == ("id", "name", "score")  # type: ignore[union-attr]
        # The store's own change notification (same VSchema version) is not installed twice.
        before = gw.snapshot
        await asyncio.sleep(0.3)
        assert gw.snapshot is before
