"""ALTER VSCHEMA on a VSchema JSON document: every rule (Vitess ``ApplyVSchemaDDL`` and ours), one test each."""
from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from router.planner.special import VSchemaStatement, parse_special
from router.planner.vschema_ddl import CreateSequenceTable, VSchemaChange, apply_vschema_ddl
from sharding.errors import AmbiguousError, UnknownKeyspaceError, UnknownTableError, VSchemaError
from sharding.vschema import parse_vschema


def base() -> dict[str, Any]:
    return {
        "keyspaces": {
            "product": {"tables": {"product": {}, "customer_seq": {"type": "sequence"}}},
            "customer": {
                "sharded": True,
                "vindexes": {"hash": {"type": "hash"}},
                "tables": {"customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"}]}},
            },
            "fresh": {},
        }
    }


def fails(error: type[Exception], text: str) -> Any:
    """``pytest.raises`` whose message must contain ``text`` literally."""
    return pytest.raises(error, match=re.escape(text))


def stmt(sql: str) -> VSchemaStatement:
    parsed = parse_special(sql, "mysql")
    assert isinstance(parsed, VSchemaStatement), sql
    return parsed


def apply(sql: str, doc: dict[str, Any] | None = None, default: str | None = None) -> VSchemaChange:
    return apply_vschema_ddl(base() if doc is None else doc, stmt(sql), default)


def ks(change: VSchemaChange, name: str) -> dict[str, Any]:
    return change.doc["keyspaces"][name]


# --- ADD VINDEX (ON table) -------------------------------------------------------------------------------------
def test_add_vindex_adds_a_missing_table_and_its_first_vindex_is_primary() -> None:
    change = apply("ALTER VSCHEMA ON customer.corder ADD VINDEX hash(customer_id)")
    corder = ks(change, "customer")["tables"]["corder"]
    assert corder == {"column_vindexes": [{"column": "customer_id", "name": "hash"}]}
    table = change.vschema.keyspaces["customer"].tables["corder"]
    assert table.primary_vindex is not None and table.primary_vindex.name == "hash"
    assert change.notes == ("table corder added to keyspace customer",)
    assert change.effects == ()


def test_later_vindexes_follow_the_primary() -> None:
    change = apply("ALTER VSCHEMA ON customer.customer ADD VINDEX xx(email) USING xxhash")
    cvs = ks(change, "customer")["tables"]["customer"]["column_vindexes"]
    assert [cv["name"] for cv in cvs] == ["hash", "xx"]
    assert ks(change, "customer")["vindexes"]["xx"] == {"type": "xxhash"}
    assert change.vschema.keyspaces["customer"].tables["customer"].primary_vindex.name == "hash"  # type: ignore[union-attr]


def test_multi_column_vindex_is_written_with_columns() -> None:
    change = apply("ALTER VSCHEMA ON customer.mc ADD VINDEX mcv(a, b) USING multicol WITH column_count=2")
    assert ks(change, "customer")["tables"]["mc"]["column_vindexes"] == [{"columns": ["a", "b"], "name": "mcv"}]
    assert ks(change, "customer")["vindexes"]["mcv"] == {"type": "multicol", "params": {"column_count": "2"}}


def test_existing_vindex_is_reused_when_type_and_params_match() -> None:
    doc = base()
    doc["keyspaces"]["customer"]["vindexes"]["lk"] = {
        "type": "lookup_hash", "params": {"table": "product.lk", "from": "email", "to": "keyspace_id"},
    }  # fmt: skip
    change = apply(
        "ALTER VSCHEMA ON customer.customer ADD VINDEX lk(email) USING lookup_hash "
        "WITH table=`product.lk`, from=email, to=keyspace_id",
        doc,
    )
    assert ks(change, "customer")["vindexes"] == {
        "hash": {"type": "hash"},
        "lk": {"params": {"from": "email", "table": "product.lk", "to": "keyspace_id"}, "type": "lookup_hash"},
    }


def test_existing_vindex_of_another_type_is_an_error() -> None:
    with fails(VSchemaError, "vindex hash in keyspace customer is defined with type hash not xxhash"):
        apply("ALTER VSCHEMA ON customer.corder ADD VINDEX hash(customer_id) USING xxhash")


def test_existing_vindex_with_other_params_is_an_error() -> None:
    with fails(VSchemaError, "vindex hash in keyspace customer is defined with different parameters"):
        apply("ALTER VSCHEMA ON customer.corder ADD VINDEX hash(customer_id) USING hash WITH x=1")


def test_existing_vindex_with_another_owner_is_an_error() -> None:
    with fails(VSchemaError, "vindex hash in keyspace customer is defined with owner (none) not corder"):
        apply("ALTER VSCHEMA ON customer.corder ADD VINDEX hash(customer_id) USING hash WITH owner=corder")


def test_add_vindex_without_using_needs_an_existing_vindex() -> None:
    with fails(VSchemaError, "vindex nope does not exist in keyspace customer"):
        apply("ALTER VSCHEMA ON customer.corder ADD VINDEX nope(customer_id)")


def test_a_vindex_is_added_to_a_table_once() -> None:
    with fails(VSchemaError, "vindex hash already defined on table customer.customer"):
        apply("ALTER VSCHEMA ON customer.customer ADD VINDEX hash(customer_id)")


def test_first_vindex_of_a_keyspace_makes_it_sharded() -> None:
    change = apply("ALTER VSCHEMA ON fresh.t ADD VINDEX h(id) USING hash")
    assert ks(change, "fresh") == {
        "sharded": True,
        "tables": {"t": {"column_vindexes": [{"column": "id", "name": "h"}]}},
        "vindexes": {"h": {"type": "hash"}},
    }
    assert change.vschema.keyspaces["fresh"].sharded
    assert "keyspace fresh is now sharded: vindex h is its first vindex" in change.notes


def test_owner_param_becomes_the_vindex_owner() -> None:
    change = apply(
        "ALTER VSCHEMA ON customer.customer ADD VINDEX em(email) USING consistent_lookup_unique "
        "WITH owner=customer, table=`product.em`, from=email, to=keyspace_id"
    )
    vindex = ks(change, "customer")["vindexes"]["em"]
    assert vindex["owner"] == "customer" and "owner" not in vindex["params"]
    assert change.vschema.keyspaces["customer"].tables["customer"].column_vindexes[1].owned


def test_an_invalid_result_is_rejected_with_its_problems() -> None:
    # a non-unique vindex cannot be primary; parse_vschema says so, with the path
    with pytest.raises(VSchemaError) as info:
        apply("ALTER VSCHEMA ON customer.t ADD VINDEX lk(a) USING lookup WITH table=`product.lk`, from=a, to=k")
    assert any("tables.t.column_vindexes[0].name" in p and "not unique" in p for p in info.value.problems)
    assert "alter vschema on customer.t add vindex lk(a) using lookup" in str(info.value)


def test_hash_takes_one_column() -> None:
    with pytest.raises(VSchemaError) as info:
        apply("ALTER VSCHEMA ON customer.t ADD VINDEX hash(a, b)")
    assert any("takes one column, got 2" in p for p in info.value.problems)


# --- DROP VINDEX (ON table) ------------------------------------------------------------------------------------
def test_drop_vindex_removes_it_from_the_table_and_unused_from_the_keyspace() -> None:
    doc = apply("ALTER VSCHEMA ON customer.customer ADD VINDEX xx(email) USING xxhash").doc
    change = apply("ALTER VSCHEMA ON customer.customer DROP VINDEX xx", doc)
    assert ks(change, "customer")["tables"]["customer"]["column_vindexes"] == [
        {"column": "customer_id", "name": "hash"}
    ]
    assert "xx" not in ks(change, "customer")["vindexes"]
    assert change.notes == ("vindex xx removed from keyspace customer: no table uses it",)


def test_drop_vindex_keeps_a_vindex_other_tables_use() -> None:
    doc = apply("ALTER VSCHEMA ON customer.corder ADD VINDEX hash(customer_id)").doc
    doc = apply("ALTER VSCHEMA ON customer.corder ADD VINDEX xx(id) USING xxhash", doc).doc
    doc = apply("ALTER VSCHEMA ON customer.customer ADD VINDEX xx(email)", doc).doc
    change = apply("ALTER VSCHEMA ON customer.customer DROP VINDEX xx", doc)
    assert "xx" in ks(change, "customer")["vindexes"]
    assert change.notes == ()


def test_dropping_the_last_vindex_removes_the_table() -> None:
    doc = apply("ALTER VSCHEMA ON customer.corder ADD VINDEX hash(customer_id)").doc
    change = apply("ALTER VSCHEMA ON customer.corder DROP VINDEX hash", doc)
    assert "corder" not in ks(change, "customer")["tables"]
    assert "hash" in ks(change, "customer")["vindexes"]  # customer still uses it
    assert change.notes == ("table corder removed from keyspace customer: it has no vindex left",)


def test_drop_vindex_not_on_the_table_is_an_error() -> None:
    with fails(VSchemaError, "vindex xx not defined in table customer.customer"):
        apply("ALTER VSCHEMA ON customer.customer DROP VINDEX xx")


def test_drop_vindex_of_a_missing_table_is_an_error() -> None:
    with fails(UnknownTableError, "vschema does not contain table nope in keyspace customer"):
        apply("ALTER VSCHEMA ON customer.nope DROP VINDEX hash")


# --- CREATE / DROP VINDEX (keyspace) --------------------------------------------------------------------------
def test_create_vindex() -> None:
    change = apply("ALTER VSCHEMA CREATE VINDEX customer.xx USING xxhash")
    assert ks(change, "customer")["vindexes"]["xx"] == {"type": "xxhash"}
    assert "xx" in change.vschema.keyspaces["customer"].vindexes


def test_create_vindex_that_exists_is_an_error() -> None:
    with fails(VSchemaError, "vindex hash already exists in keyspace customer"):
        apply("ALTER VSCHEMA CREATE VINDEX customer.hash USING hash")


def test_create_vindex_with_a_bad_type_is_rejected() -> None:
    with pytest.raises(VSchemaError) as info:
        apply("ALTER VSCHEMA CREATE VINDEX customer.v USING no_such_type")
    assert any("unknown vindex type 'no_such_type'" in p for p in info.value.problems)


def test_drop_unused_vindex() -> None:
    doc = apply("ALTER VSCHEMA CREATE VINDEX customer.xx USING xxhash").doc
    change = apply("ALTER VSCHEMA DROP VINDEX customer.xx", doc)
    assert "xx" not in ks(change, "customer")["vindexes"]


def test_drop_vindex_in_use_is_an_error_naming_the_table() -> None:
    with fails(VSchemaError, "cannot drop vindex hash: still used by table customer in keyspace customer"):
        apply("ALTER VSCHEMA DROP VINDEX customer.hash")


def test_drop_missing_vindex_is_an_error() -> None:
    with fails(VSchemaError, "vindex nope does not exist in keyspace customer"):
        apply("ALTER VSCHEMA DROP VINDEX customer.nope")


# --- ADD / DROP TABLE -------------------------------------------------------------------------------------------
def test_add_table_to_unsharded_keyspace() -> None:
    change = apply("ALTER VSCHEMA ADD TABLE product.orders")
    assert ks(change, "product")["tables"]["orders"] == {}


def test_add_existing_table_is_an_error() -> None:
    with fails(VSchemaError, "vschema already contains table product in keyspace product"):
        apply("ALTER VSCHEMA ADD TABLE product.product")


def test_add_table_to_sharded_keyspace_is_an_error() -> None:
    with fails(VSchemaError, "add vschema table: unsupported on sharded keyspace customer"):
        apply("ALTER VSCHEMA ADD TABLE customer.t")


def test_drop_table() -> None:
    change = apply("ALTER VSCHEMA DROP TABLE customer.customer")
    assert ks(change, "customer")["tables"] == {}


def test_drop_missing_table_is_an_error() -> None:
    with fails(UnknownTableError, "vschema does not contain table nope in keyspace product"):
        apply("ALTER VSCHEMA DROP TABLE product.nope")


# --- sequences ----------------------------------------------------------------------------------------------------
def test_add_sequence_creates_its_backing_table() -> None:
    change = apply("ALTER VSCHEMA ADD SEQUENCE product.order_seq")
    assert ks(change, "product")["tables"]["order_seq"] == {"type": "sequence"}
    assert change.vschema.keyspaces["product"].tables["order_seq"].is_sequence
    assert change.effects == (CreateSequenceTable("product", "order_seq"),)


def test_add_sequence_needs_an_unsharded_keyspace() -> None:
    with fails(VSchemaError, "add sequence table: unsupported on sharded keyspace customer"):
        apply("ALTER VSCHEMA ADD SEQUENCE customer.seq")


def test_add_existing_sequence_is_an_error() -> None:
    with fails(VSchemaError, "vschema already contains table customer_seq in keyspace product"):
        apply("ALTER VSCHEMA ADD SEQUENCE product.customer_seq")


def test_drop_sequence() -> None:
    change = apply("ALTER VSCHEMA DROP SEQUENCE product.customer_seq")
    assert "customer_seq" not in ks(change, "product")["tables"]
    assert change.effects == ()  # the backing table and its ids stay


def test_drop_sequence_of_a_plain_table_is_an_error() -> None:
    with fails(VSchemaError, "table product.product is not a sequence"):
        apply("ALTER VSCHEMA DROP SEQUENCE product.product")


def test_drop_missing_sequence_is_an_error() -> None:
    with fails(UnknownTableError, "vschema does not contain table nope in keyspace product"):
        apply("ALTER VSCHEMA DROP SEQUENCE product.nope")


# --- AUTO_INCREMENT -----------------------------------------------------------------------------------------------
def test_add_auto_increment() -> None:
    change = apply("ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT customer_id USING product.customer_seq")
    assert ks(change, "customer")["tables"]["customer"]["auto_increment"] == {
        "column": "customer_id",
        "sequence": "product.customer_seq",
    }
    auto = change.vschema.keyspaces["customer"].tables["customer"].auto_increment
    assert auto is not None and auto.sequence_keyspace == "product"


def test_add_auto_increment_with_an_unqualified_sequence() -> None:
    change = apply("ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT customer_id USING customer_seq")
    assert ks(change, "customer")["tables"]["customer"]["auto_increment"]["sequence"] == "customer_seq"


def test_auto_increment_sequence_must_exist() -> None:
    with fails(UnknownTableError, "sequence nope_seq not found in keyspace product"):
        apply("ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT customer_id USING product.nope_seq")
    with fails(UnknownTableError, "sequence nope_seq not found in any keyspace"):
        apply("ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT customer_id USING nope_seq")
    with fails(UnknownKeyspaceError, "keyspace nowhere of sequence nowhere.seq not found"):
        apply("ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT customer_id USING nowhere.seq")


def test_auto_increment_sequence_must_be_a_sequence() -> None:
    with fails(VSchemaError, "table product.product is not a sequence"):
        apply("ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT customer_id USING product.product")


def test_auto_increment_unqualified_sequence_in_two_keyspaces_is_ambiguous() -> None:
    doc = base()
    doc["keyspaces"]["fresh"] = {"tables": {"customer_seq": {"type": "sequence"}}}
    with fails(AmbiguousError, "sequence customer_seq is in keyspaces fresh, product"):
        apply("ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT customer_id USING customer_seq", doc)


def test_auto_increment_twice_is_an_error() -> None:
    doc = apply("ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT customer_id USING product.customer_seq").doc
    with fails(VSchemaError, "table customer.customer already has an auto_increment column customer_id"):
        apply("ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT id2 USING product.customer_seq", doc)


def test_auto_increment_on_a_missing_table_is_an_error() -> None:
    with fails(UnknownTableError, "vschema does not contain table nope in keyspace customer"):
        apply("ALTER VSCHEMA ON customer.nope ADD AUTO_INCREMENT id USING product.customer_seq")


def test_drop_auto_increment() -> None:
    doc = apply("ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT customer_id USING product.customer_seq").doc
    change = apply("ALTER VSCHEMA ON customer.customer DROP AUTO_INCREMENT", doc)
    assert "auto_increment" not in ks(change, "customer")["tables"]["customer"]
    assert change.vschema.keyspaces["customer"].tables["customer"].auto_increment is None


def test_drop_auto_increment_of_a_missing_table_is_an_error() -> None:
    with fails(UnknownTableError, "vschema does not contain table nope in keyspace customer"):
        apply("ALTER VSCHEMA ON customer.nope DROP AUTO_INCREMENT")


# --- keyspaces, inputs and output -----------------------------------------------------------------------------
def test_unqualified_names_use_the_default_keyspace() -> None:
    change = apply("ALTER VSCHEMA ADD TABLE orders", default="product")
    assert change.keyspace == "product" and "orders" in ks(change, "product")["tables"]
    # a qualified name wins over the default
    assert apply("ALTER VSCHEMA ADD TABLE product.o2", default="customer").keyspace == "product"


def test_no_keyspace_at_all_is_an_error() -> None:
    with fails(UnknownKeyspaceError, "no keyspace selected: qualify orders as keyspace.orders"):
        apply("ALTER VSCHEMA ADD TABLE orders")


def test_unknown_keyspace_is_an_error() -> None:
    with fails(UnknownKeyspaceError, "keyspace nowhere not found in vschema"):
        apply("ALTER VSCHEMA ADD TABLE nowhere.t")
    with fails(UnknownKeyspaceError, "keyspace nowhere not found in vschema"):
        apply("ALTER VSCHEMA ON t ADD VINDEX hash(id)", default="nowhere")


def test_input_document_is_not_modified() -> None:
    doc = base()
    before = copy.deepcopy(doc)
    apply("ALTER VSCHEMA ON customer.corder ADD VINDEX xx(id) USING xxhash", doc)
    assert doc == before


def test_output_is_deterministic() -> None:
    a = base()
    b = {"keyspaces": dict(reversed(list(base()["keyspaces"].items())))}
    sql = "ALTER VSCHEMA ON customer.corder ADD VINDEX xx(id) USING xxhash"
    assert json.dumps(apply(sql, a).doc) == json.dumps(apply(sql, b).doc)
    keys = list(apply(sql, a).doc["keyspaces"])
    assert keys == sorted(keys)


def test_camel_case_fields_are_read() -> None:
    doc = base()
    cust = doc["keyspaces"]["customer"]["tables"]["customer"]
    cust["columnVindexes"] = cust.pop("column_vindexes")
    change = apply("ALTER VSCHEMA ON customer.customer ADD VINDEX xx(email) USING xxhash", doc)
    assert [cv["name"] for cv in ks(change, "customer")["tables"]["customer"]["columnVindexes"]] == ["hash", "xx"]


def test_a_document_from_to_json_round_trips() -> None:
    doc = parse_vschema(base()).to_json()
    change = apply("ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT customer_id USING product.customer_seq", doc)
    assert parse_vschema(change.doc) == change.vschema
    assert change.vschema.to_json() == parse_vschema(change.doc).to_json()
