"""The tracked-schema model (``sharding.schema``): types, comparing shards, the effective table the planner reads,
and the snapshot field that carries it."""
from __future__ import annotations

import dataclasses

import pytest

from router.backend.result import TypeCode as ResultTypeCode
from sharding.schema import (
    EMPTY_SCHEMA,
    ColumnSchema,
    ColumnType,
    KeyspaceSchema,
    SchemaSet,
    TableSchema,
    TypeCode,
    combine,
    effective_table,
)
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema
from sharding.vschema_model import Column, Table

BIGINT = ColumnType(TypeCode.BIGINT, "bigint")
INT = ColumnType(TypeCode.INT, "int")
VARCHAR = ColumnType(TypeCode.VARCHAR, "varchar(64)", length=64)


def col(name: str, ctype: ColumnType = BIGINT, **kw: object) -> ColumnSchema:
    return ColumnSchema(name, ctype, **kw)  # type: ignore[arg-type]


def customer(*extra: ColumnSchema, pk: tuple[str, ...] = ("id",)) -> TableSchema:
    return TableSchema("customer", (col("id", nullable=False), col("name", VARCHAR, collation="utf8mb4_bin"),
                                    *extra), pk)


# --- types ----------------------------------------------------------------------------------------------------------
def test_type_codes_match_the_result_type_codes() -> None:
    # sharding cannot import router: the two enums are kept equal by this test.
    assert [(c.name, c.value) for c in TypeCode] == [(c.name, c.value) for c in ResultTypeCode]


@pytest.mark.parametrize(("ctype", "name"), [
    (ColumnType(TypeCode.BIGINT, "bigint(20)"), "INT64"),
    (ColumnType(TypeCode.BIGINT, "bigint(20) unsigned", unsigned=True), "UINT64"),
    (ColumnType(TypeCode.INT, "int"), "INT32"),
    (ColumnType(TypeCode.TINYINT, "tinyint(1)"), "INT8"),
    (ColumnType(TypeCode.DOUBLE, "double precision"), "FLOAT64"),
    (ColumnType(TypeCode.VARCHAR, "character varying(10)"), "VARCHAR"),
    (ColumnType(TypeCode.TIMESTAMPTZ, "timestamp with time zone"), "TIMESTAMPTZ"),
    (ColumnType(TypeCode.OTHER, "citext"), "CITEXT"),
    (ColumnType(TypeCode.OTHER, ""), ""),
    (ColumnType(TypeCode.ENUM, "enum('a','b')", values=("a", "b")), "ENUM"),
])
def test_planner_names(ctype: ColumnType, name: str) -> None:
    assert ctype.planner_name == name


def test_backend_type_oid_does_not_take_part_in_comparisons() -> None:
    # A user-defined type (an enum) has another OID in every database.
    assert ColumnType(TypeCode.ENUM, "mood", backend_type=16384) == ColumnType(TypeCode.ENUM, "mood", backend_type=9)


def test_to_vschema_column() -> None:
    c = col("price", ColumnType(TypeCode.DECIMAL, "decimal(12,2)", precision=12, scale=2), nullable=False,
            default="0.00")
    assert c.to_vschema_column() == Column("price", type="DECIMAL", default="0.00", size=12, scale=2, nullable=False)
    e = col("mood", ColumnType(TypeCode.ENUM, "enum('a','b')", values=("a", "b")), collation="utf8mb4_general_ci",
            invisible=True)
    assert e.to_vschema_column() == Column("mood", type="ENUM", invisible=True, collation_name="utf8mb4_general_ci",
                                           nullable=True, values=("a", "b"))


# --- comparing shards -----------------------------------------------------------------------------------------------
def test_shards_that_agree_give_authoritative_tables() -> None:
    ks = combine("ks", {"-80": {"customer": customer()}, "80-": {"customer": customer()}})
    assert ks.disagreements == () and ks.errors == {}
    assert ks.tables["customer"] == customer() and ks.tables["customer"].authoritative


def test_a_table_missing_on_a_shard_is_a_disagreement() -> None:
    ks = combine("ks", {"-80": {"customer": customer()}, "80-": {}})
    (d,) = ks.disagreements
    assert (d.keyspace, d.table) == ("ks", "customer")
    assert d.variants == ((("-80",), customer()), (("80-",), None))
    assert d.differences == ("missing on 80- (present on -80)",)
    assert d.shards == ("-80", "80-")
    assert d.describe() == "ks.customer: missing on 80- (present on -80)"
    hint = ks.tables["customer"]
    assert not hint.authoritative and hint.column_names == ("id", "name")


def test_a_column_added_on_some_shards_only() -> None:
    wider = customer(col("score", INT))
    ks = combine("ks", {"-80": {"customer": wider}, "40-80": {"customer": customer()},
                        "80-": {"customer": wider}})
    (d,) = ks.disagreements
    assert d.differences == ("column score missing on 40-80 (present on -80, 80-)",)
    assert d.variants == ((("-80", "80-"), wider), (("40-80",), customer()))
    hint = ks.tables["customer"]
    assert hint.column_names == ("id", "name") and not hint.authoritative and hint.primary_key == ("id",)


def test_a_column_whose_type_differs_keeps_its_name_but_not_its_type() -> None:
    other = TableSchema("customer", (col("id", nullable=False), col("name", ColumnType(
        TypeCode.VARCHAR, "varchar(128)", length=128), collation="utf8mb4_bin")), ("id",))
    ks = combine("ks", {"-80": {"customer": customer()}, "80-": {"customer": other}})
    (d,) = ks.disagreements
    assert d.differences == ("column name type: 'varchar(64)' on -80, 'varchar(128)' on 80-",)
    hint = ks.tables["customer"]
    assert hint.column_names == ("id", "name")
    assert hint.columns[0] == col("id", nullable=False)
    assert hint.columns[1].type.code is TypeCode.OTHER and hint.columns[1].type.planner_name == ""


def test_order_primary_key_and_kind_differences_are_named() -> None:
    reordered = TableSchema("customer", tuple(reversed(customer().columns)), ("id",))
    ks = combine("ks", {"-80": {"customer": customer()}, "80-": {"customer": reordered}})
    assert ks.disagreements[0].differences == ("column order: (id, name) on -80, (name, id) on 80-",)
    ks = combine("ks", {"-80": {"customer": customer()}, "80-": {"customer": customer(pk=("id", "name"))}})
    assert ks.disagreements[0].differences == ("primary key: (id) on -80, (id, name) on 80-",)
    assert ks.tables["customer"].primary_key == ()
    view = dataclasses.replace(customer(), kind="view", primary_key=("id",))
    ks = combine("ks", {"-80": {"customer": customer()}, "80-": {"customer": view}})
    assert ks.disagreements[0].differences == ("kind: table on -80, view on 80-",)


def test_nullability_default_and_collation_differences() -> None:
    a = TableSchema("t", (col("x", VARCHAR, collation="utf8mb4_bin", default="'a'"),))
    b = TableSchema("t", (col("x", VARCHAR, collation="utf8mb4_general_ci", nullable=False, default="'a'"),))
    (d,) = combine("ks", {"-80": {"t": a}, "80-": {"t": b}}).disagreements
    assert d.differences == ("column x collation: 'utf8mb4_bin' on -80, 'utf8mb4_general_ci' on 80-",
                             "column x nullable: True on -80, False on 80-")


def test_unreadable_shards_take_no_part_and_are_listed() -> None:
    ks = combine("ks", {"-80": {"customer": customer()}, "80-": None}, {"80-": "BackendUnavailableError: down"})
    assert ks.disagreements == () and ks.tables["customer"].authoritative
    assert dict(ks.errors) == {"80-": "BackendUnavailableError: down"}


# --- the set ---------------------------------------------------------------------------------------------------------
def test_schema_set_lookups_report_and_equality() -> None:
    good = combine("main", {"0": {"Seq": TableSchema("Seq", (col("id"),), ("id",))}})
    bad = combine("ks", {"-80": {"customer": customer()}, "80-": {}}, {"40-": "timeout"})
    schema = SchemaSet({"main": good}).with_keyspace(bad)
    assert schema.table("main", "Seq") is good.tables["Seq"]
    assert schema.table("main", "seq") is good.tables["Seq"]  # case differs: the one match
    assert schema.table("main", "nope") is None and schema.table("nope", "Seq") is None
    assert [d.table for d in schema.disagreements] == ["customer"]
    assert schema.errors == {"ks/40-": "timeout"}
    assert schema.report() == [
        ("ks", "customer", "disagree", "missing on 80- (present on -80)"),
        ("ks", "", "error", "shard 40-: timeout"),
        ("main", "Seq", "ok", "id bigint"),
    ]
    assert schema == SchemaSet({"ks": bad, "main": good}) and schema != SchemaSet({"main": good})
    assert not EMPTY_SCHEMA and schema
    assert KeyspaceSchema("x") == KeyspaceSchema("x", {})


def test_the_snapshot_carries_the_schema_and_defaults_to_empty() -> None:
    vschema = parse_vschema({"keyspaces": {"main": {}}})
    snap = ClusterSnapshot.build(3, vschema, {"main": ["0"]})
    assert snap.schema is EMPTY_SCHEMA
    schema = SchemaSet({"main": combine("main", {"0": {"t": TableSchema("t", (col("id"),))}})})
    newer = snap.replace(version=4, schema=schema)
    assert newer.schema is schema and newer.version == 4 and snap.schema is EMPTY_SCHEMA
    assert ClusterSnapshot.build(1, vschema, {"main": ["0"]}, schema).schema is schema


# --- what the planner reads ------------------------------------------------------------------------------------------
def _set(table: TableSchema, keyspace: str = "ks") -> SchemaSet:
    return SchemaSet({keyspace: combine(keyspace, {"-80": {table.name: table}, "80-": {table.name: table}})})


def test_effective_table_uses_tracked_columns_when_the_vschema_lists_none() -> None:
    table = Table("customer", "ks")
    eff = effective_table(_set(customer()), table)
    assert eff.column_list_authoritative
    assert [(c.name, c.type, c.collation_name) for c in eff.columns] == [
        ("id", "INT64", ""), ("name", "VARCHAR", "utf8mb4_bin")]
    assert dataclasses.replace(eff, columns=(), column_list_authoritative=False) == table


def test_the_vschema_decides_when_it_lists_columns_authoritatively() -> None:
    table = Table("customer", "ks", columns=(Column("id", "INT64"),), column_list_authoritative=True)
    assert effective_table(_set(customer()), table) is table


def test_vschema_declarations_win_over_the_catalog() -> None:
    table = Table("customer", "ks", columns=(Column("NAME", collation_name="C"), Column("gone", "INT64")))
    eff = effective_table(_set(customer()), table)
    assert eff.column_list_authoritative
    # The shards' list wins (``gone`` is not there); the VSchema's collation for ``name`` wins over the catalog's.
    assert [(c.name, c.type, c.collation_name) for c in eff.columns] == [
        ("id", "INT64", ""), ("name", "VARCHAR", "C")]


def test_disagreeing_shards_give_a_hint_not_a_list() -> None:
    schema = SchemaSet({"ks": combine("ks", {"-80": {"customer": customer(col("score"))},
                                             "80-": {"customer": customer()}})})
    table = Table("customer", "ks", columns=(Column("score", "INT64"),))
    eff = effective_table(schema, table)
    assert not eff.column_list_authoritative
    assert [c.name for c in eff.columns] == ["id", "name", "score"]


def test_untracked_tables_and_empty_schemas_are_left_alone() -> None:
    table = Table("other", "ks")
    assert effective_table(_set(customer()), table) is table
    assert effective_table(EMPTY_SCHEMA, table) is table
    assert effective_table(None, table) is table


def test_effective_tables_are_built_once_per_schema_set() -> None:
    schema = _set(customer())
    table = Table("customer", "ks")
    first = effective_table(schema, table)
    assert effective_table(schema, table) is first
    assert effective_table(schema, Table("customer", "ks")) is first  # an equal table (unsharded lookups make new ones)
    changed = Table("customer", "ks", type="reference")
    assert effective_table(schema, changed).type == "reference"
