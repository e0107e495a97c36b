"""VSchema loading: Vitess's own test VSchema, every validation rule with its JSON path, routing, round trip."""
from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sharding.errors import AmbiguousError, RoutingError, UnknownKeyspaceError, UnknownTableError, VSchemaError
from sharding.vindexes.base import Lookup
from sharding.vschema import parse_vschema, parse_vschema_file
from tests.support.shared import load_vectors
from tests.support.vindexes import lookup_cost_registered

ROUTING = load_vectors("vitess_routing_cases")


@pytest.fixture
def lookup_cost() -> Iterator[None]:
    with lookup_cost_registered():
        yield


def routing_vschema_doc() -> dict[str, Any]:
    return copy.deepcopy(ROUTING["vschema"])


def problems_of(doc: Any) -> list[str]:
    with pytest.raises(VSchemaError) as err:
        parse_vschema(doc)
    assert str(err.value).splitlines()[1:] == err.value.problems  # one problem per line of the message
    return err.value.problems


def sharded(tables: dict[str, Any], vindexes: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"sharded": True, "vindexes": {"hash": {"type": "hash"}, **(vindexes or {})}, "tables": tables, **extra}


def doc_with(**keyspaces: Any) -> dict[str, Any]:
    return {"keyspaces": keyspaces}


# --- Vitess's planner-test VSchema -------------------------------------------------------------------------------
def test_routing_cases_vschema_validates(lookup_cost: None) -> None:
    vs = parse_vschema(routing_vschema_doc())
    assert set(vs.keyspaces) == {"user", "main", "zlookup_unique", "main_2"}
    user = vs.keyspaces["user"]
    assert user.sharded and not vs.keyspaces["main"].sharded
    costly = user.vindexes["costly_map"]
    assert isinstance(costly, Lookup) and costly.cost == 100 and not costly.is_unique
    assert sorted(vs.warnings) == sorted(
        [
            *(
                f"keyspaces.user.vindexes.{v}.params: missing 'table', 'from', 'to': lookups through this vindex "
                "cannot run until set"
                for v in ("address_user_map", "cola_kid_map", "colc_map", "email_user_map", "vindex2")
            ),
            "keyspaces.user.vindexes.unq_lkp_bf_vdx.params.cost: unknown param 'cost' for vindex type 'lookup_unique'",
            "keyspaces.user.vindexes.unq_lkp_vdx.params.cost: unknown param 'cost' for vindex type 'lookup_unique'",
            "routing_rules.rules[6].to_tables: keyspace noks not found in vschema; the rule fails every query that "
            "uses it",
        ]
    )


def test_the_product_does_not_know_lookup_cost() -> None:
    assert problems_of(routing_vschema_doc()) == [
        "keyspaces.user.vindexes.costly_map.type: unknown vindex type 'lookup_cost'"
    ]


def test_routing_cases_tables_and_vindexes_resolve(lookup_cost: None) -> None:
    vs = parse_vschema(routing_vschema_doc())
    resolved = 0
    for case in ROUTING["cases"]:
        for qualified in case.get("tables_used", []):
            keyspace, _, name = qualified.partition(".")
            assert vs.find_table(name, keyspace).keyspace == keyspace, (case["id"], qualified)
            resolved += 1
        if case.get("vindex") and case.get("keyspace") in vs.keyspaces:
            assert vs.find_vindex(case["vindex"], case["keyspace"]) is not None, case["id"]
    assert resolved > 400


def test_routing_cases_vschema_model(lookup_cost: None) -> None:
    vs = parse_vschema(routing_vschema_doc())
    user = vs.keyspaces["user"].tables["user"]
    assert user.primary_vindex is not None and user.primary_vindex.name == "user_index"
    assert user.primary_vindex.columns == ("Id",) and user.primary_vindex.type == "hash"
    assert [cv.name for cv in user.owned] == ["name_user_map", "costly_map"]
    assert [cv.name for cv in user.ordered] == ["user_index", "name_user_map", "costly_map"]
    assert user.auto_increment is not None and user.auto_increment.sequence_keyspace == "main"
    assert user.columns[-1].collation_name == "big5_bin"
    multicol = vs.keyspaces["user"].tables["multicol_tbl"].primary_vindex
    assert multicol is not None and multicol.columns == ("cola", "colb")
    assert vs.keyspaces["user"].tables["pin_test"].pinned == b"\x80"
    assert vs.keyspaces["user"].tables["ref_with_source"].source == "main.source_of_ref"
    samecol = vs.keyspaces["user"].tables["samecolvin"]
    assert samecol.column_list_authoritative and samecol.columns[1].invisible
    t1 = vs.keyspaces["zlookup_unique"].tables["t1"]  # written with protojson's camelCase "columnVindexes"
    assert [cv.name for cv in t1.column_vindexes] == ["xxhash", "lookup_t1", "lookup_t1_2"]
    assert vs.keyspaces["zlookup_unique"].vindexes["lookup_t1"].lookup.write_only


def test_round_trip(lookup_cost: None) -> None:
    vs = parse_vschema(routing_vschema_doc())
    out = vs.to_json()
    again = parse_vschema(json.loads(json.dumps(out)))
    assert again == vs
    assert again.to_json() == out
    t1 = out["keyspaces"]["zlookup_unique"]["tables"]["t1"]
    assert t1["column_vindexes"][0] == {"column": "c1", "name": "xxhash"}
    assert out["keyspaces"]["user"]["tables"]["multicol_tbl"]["column_vindexes"][0] == {
        "columns": ["cola", "colb"],
        "name": "multicolIdx",
    }
    assert out["keyspaces"]["user"]["vindexes"]["costly_map"] == {
        "type": "lookup_cost",
        "owner": "user",
        "params": {"table": "costly_map", "from": "costly", "to": "keyspace_id", "cost": "100"},
    }


def test_round_trip_of_everything_optional() -> None:
    doc = {
        "keyspaces": {
            "ks": sharded(
                {"t": {"column_vindexes": [{"column": "id", "name": "hash"}],
                       "columns": [{"name": "id", "type": "INT64", "nullable": False, "size": 8, "scale": 2,
                                    "default": "0", "values": ["a"]}]},
                 "seq": {"type": "sequence", "pinned": "00"},
                 "r": {"type": "reference", "source": "other.r"}},
                require_explicit_routing=True, foreign_key_mode="managed",
                multi_tenant_spec={"tenant_id_column_name": "tid", "tenant_id_column_type": "INT64"},
            ),
            "other": {"tables": {"r": {}}},
        },
        "shard_routing_rules": {"rules": [{"from_keyspace": "ks", "to_keyspace": "other", "shard": "-80"}]},
        "keyspace_routing_rules": {"rules": [{"from_keyspace": "old", "to_keyspace": "ks"}]},
        "mirror_rules": {"rules": [{"from_table": "ks.t", "to_table": "other.t", "percent": 10}]},
    }
    vs = parse_vschema(doc)
    assert parse_vschema(vs.to_json()) == vs
    assert vs.keyspaces["ks"].foreign_key_mode == "managed"
    assert vs.keyspaces["ks"].multi_tenant_spec is not None
    assert vs.to_json()["mirror_rules"]["rules"][0]["percent"] == 10.0


def test_model_is_frozen(lookup_cost: None) -> None:
    vs = parse_vschema(routing_vschema_doc())
    with pytest.raises(dataclasses.FrozenInstanceError):
        vs.keyspaces["user"].sharded = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        vs.keyspaces["user"].tables["new"] = vs.keyspaces["user"].tables["user"]  # type: ignore[index]


# --- finding tables ---------------------------------------------------------------------------------------------
def routed_vschema() -> Any:
    return parse_vschema(
        {
            "keyspaces": {
                "user": sharded({"user": {"column_vindexes": [{"column": "id", "name": "hash"}]},
                                 "dup": {"column_vindexes": [{"column": "id", "name": "hash"}]},
                                 "global_ref": {"type": "reference", "source": "main.global_ref"}}),
                "main": {"tables": {"dup": {}, "global_ref": {}, "seq": {"type": "sequence"}}},
                "hidden": {"require_explicit_routing": True, "tables": {"secret": {}, "user": {}}},
            },
            "routing_rules": {
                "rules": [
                    {"from_table": "old_user", "to_tables": ["user.user"]},
                    {"from_table": "main.user", "to_tables": ["user.user"]},
                    {"from_table": "rr@replica", "to_tables": ["main.dup"]},
                    {"from_table": "gone", "to_tables": []},
                    {"from_table": "two", "to_tables": ["main.dup", "user.dup"]},
                    {"from_table": "unqualified", "to_tables": ["dup"]},
                    {"from_table": "twice", "to_tables": ["main.dup"]},
                    {"from_table": "twice", "to_tables": ["user.dup"]},
                ]
            },
            "keyspace_routing_rules": {"rules": [{"from_keyspace": "legacy", "to_keyspace": "main"}]},
        }
    )


def test_find_table_global_routing() -> None:
    vs = routed_vschema()
    assert vs.find_table("user").qualified_name == "user.user"  # hidden.user needs explicit routing
    assert vs.find_table("seq").qualified_name == "main.seq"
    assert vs.find_table("global_ref").qualified_name == "main.global_ref"  # the copy is not a rival
    with pytest.raises(AmbiguousError, match="ambiguous table reference: dup"):
        vs.find_table("dup")
    with pytest.raises(UnknownTableError):
        vs.find_table("secret")
    assert vs.find_table("secret", "hidden").qualified_name == "hidden.secret"


def test_find_table_in_a_keyspace() -> None:
    vs = routed_vschema()
    assert vs.find_table("dup", "user").qualified_name == "user.dup"
    assert vs.find_table("undeclared", "main").qualified_name == "main.undeclared"  # unsharded: any table
    with pytest.raises(UnknownTableError):
        vs.find_table("undeclared", "user")
    with pytest.raises(UnknownKeyspaceError):
        vs.find_table("t", "nope")
    assert vs.find_table("dup", "legacy").qualified_name == "main.dup"  # keyspace routing rule


def test_find_table_routing_rules() -> None:
    vs = routed_vschema()
    assert vs.find_table("old_user").qualified_name == "user.user"
    assert vs.find_table("user", "main").qualified_name == "user.user"
    assert vs.find_table("rr", tablet_type="replica").qualified_name == "main.dup"
    with pytest.raises(UnknownTableError):
        vs.find_table("rr")  # the rule is for replicas only
    with pytest.raises(RoutingError, match="table gone has been disabled"):
        vs.find_table("gone")
    with pytest.raises(RoutingError, match="more than one target"):
        vs.find_table("two")
    with pytest.raises(RoutingError, match="must be qualified"):
        vs.find_table("unqualified")
    with pytest.raises(RoutingError, match="duplicate rule for entry twice"):
        vs.find_table("twice")
    assert len(vs.routing_rule_errors()) == 3
    assert sum("the rule fails every query that uses it" in w for w in vs.warnings) == 3


def test_single_keyspace_vschema_routes_everything_there() -> None:
    vs = parse_vschema(doc_with(only={"tables": {"t": {}}}))
    assert vs.find_table("anything").qualified_name == "only.anything"


# --- validation: every problem with its JSON path, all at once --------------------------------------------------
def test_a_broken_vschema_lists_every_problem() -> None:
    doc = {
        "keyspaces": {
            "user": sharded(
                {
                    "orders": {"column_vindexes": [{"column": "id", "name": "user_idx"}]},
                    "items": {"column_vindexes": [{"column": "id", "name": "lk"}]},
                    "loose": {},
                },
                {"lk": {"type": "lookup", "params": {"table": "t", "from": "a", "to": "k"}, "owner": "ghost"},
                 "bad": {"type": "nope"}},
            ),
            "main": {"tables": {"u": {"column_vindexes": [{"column": "x", "name": "hash"}]}}},
        },
        "extra": 1,
    }
    assert problems_of(doc) == [
        "extra: unknown field (expected one of: keyspaces, routing_rules, shard_routing_rules, "
        "keyspace_routing_rules, mirror_rules)",
        "keyspaces.user.vindexes.bad.type: unknown vindex type 'nope'",
        "keyspaces.user.tables.orders.column_vindexes[0].name: unknown vindex 'user_idx'",
        "keyspaces.user.tables.items.column_vindexes[0].name: primary vindex 'lk' (lookup) is not unique: the first "
        "vindex must place each row once",
        "keyspaces.user.tables.loose: missing primary vindex: a table of a sharded keyspace needs column_vindexes "
        "or pinned",
        "keyspaces.main.tables.u.column_vindexes: tables of unsharded keyspace 'main' cannot have column_vindexes",
        "keyspaces.user.vindexes.lk.owner: owner table 'ghost' not found in keyspace 'user'",
    ]


def test_unknown_param_warning_path() -> None:
    vs = parse_vschema(doc_with(user=sharded({}, {"h": {"type": "hash", "params": {"foo": "1"}}})))
    assert vs.warnings == ("keyspaces.user.vindexes.h.params.foo: unknown param 'foo' for vindex type 'hash'",)


RULES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "primary vindex owned by its table",
        doc_with(user=sharded({"t": {"column_vindexes": [{"column": "a", "name": "lu"}]}},
                              {"lu": {"type": "lookup_unique", "owner": "t"}})),
        ["keyspaces.user.tables.t.column_vindexes[0].name: primary vindex 'lu' (lookup_unique) cannot be owned by "
         "its table"],
    ),
    (
        "bad vindex param",
        doc_with(user=sharded({}, {"r": {"type": "region_experimental", "params": {"region_bytes": "3"}}})),
        ["keyspaces.user.vindexes.r.params.region_bytes: must be 1 or 2, got '3'"],
    ),
    (
        "params must be strings",
        doc_with(user=sharded({}, {"m": {"type": "multicol", "params": {"column_count": 2}}})),
        ["keyspaces.user.vindexes.m.params.column_count: expected a string, got number"],
    ),
    (
        "vindex without type",
        doc_with(user=sharded({}, {"v": {"params": {}}})),
        ["keyspaces.user.vindexes.v.type: missing (required)"],
    ),
    (
        "sequence must exist",
        doc_with(user=sharded({"t": {"column_vindexes": [{"column": "id", "name": "hash"}],
                                     "auto_increment": {"column": "id", "sequence": "nosuch"}}})),
        ["keyspaces.user.tables.t.auto_increment.sequence: sequence table 'nosuch' not found (declare it with type "
         "'sequence')"],
    ),
    (
        "sequence must be a sequence table",
        doc_with(user=sharded({"t": {"column_vindexes": [{"column": "id", "name": "hash"}],
                                     "auto_increment": {"column": "id", "sequence": "main.plain"}}}),
                 main={"tables": {"plain": {}}}),
        ["keyspaces.user.tables.t.auto_increment.sequence: table 'main.plain' is not a sequence table (its type "
         "is '')"],
    ),
    (
        "sequence keyspace must exist",
        doc_with(user=sharded({"t": {"column_vindexes": [{"column": "id", "name": "hash"}],
                                     "auto_increment": {"column": "id", "sequence": "nope.seq"}}})),
        ["keyspaces.user.tables.t.auto_increment.sequence: keyspace 'nope' of sequence 'nope.seq' not found"],
    ),
    (
        "ambiguous unqualified sequence",
        doc_with(user=sharded({"t": {"column_vindexes": [{"column": "id", "name": "hash"}],
                                     "auto_increment": {"column": "id", "sequence": "seq"}}}),
                 a={"tables": {"seq": {"type": "sequence"}}}, b={"tables": {"seq": {"type": "sequence"}}}),
        ["keyspaces.user.tables.t.auto_increment.sequence: sequence 'seq' is in keyspaces a, b: qualify it as "
         "keyspace.table"],
    ),
    (
        "empty column_vindexes",
        doc_with(user=sharded({"t": {"column_vindexes": []}})),
        ["keyspaces.user.tables.t: missing primary vindex: a table of a sharded keyspace needs column_vindexes or "
         "pinned"],
    ),
    (
        "sequence in a sharded keyspace must be pinned",
        doc_with(user=sharded({"seq": {"type": "sequence"}})),
        ["keyspaces.user.tables.seq.type: a sequence table must be in an unsharded keyspace, or pinned"],
    ),
    (
        "unknown table type",
        doc_with(main={"tables": {"t": {"type": "view"}}}),
        ["keyspaces.main.tables.t.type: unknown table type 'view' (expected '', 'reference' or 'sequence')"],
    ),
    (
        "reference source in the same keyspace",
        doc_with(main={"tables": {"a": {}, "r": {"type": "reference", "source": "main.a"}}}),
        ["keyspaces.main.tables.r.source: source 'main.a' may not be in the same keyspace as its reference table"],
    ),
    (
        "reference source keyspace missing",
        doc_with(main={"tables": {"r": {"type": "reference", "source": "nope.a"}}}),
        ["keyspaces.main.tables.r.source: source 'nope.a' references a non-existent keyspace 'nope'"],
    ),
    (
        "reference source table missing",
        doc_with(main={"tables": {"r": {"type": "reference", "source": "other.a"}}}, other={"tables": {}}),
        ["keyspaces.main.tables.r.source: source 'other.a' references a table that is not in the VSchema"],
    ),
    (
        "reference chain",
        doc_with(a={"tables": {"r": {"type": "reference", "source": "b.r"}}},
                 b={"tables": {"r": {"type": "reference", "source": "c.r"}}}, c={"tables": {"r": {}}}),
        ["keyspaces.a.tables.r.source: reference chains are not allowed: r => b.r => c.r"],
    ),
    (
        "source referenced twice",
        doc_with(a={"tables": {"r1": {"type": "reference", "source": "b.r"},
                               "r2": {"type": "reference", "source": "b.r"}}}, b={"tables": {"r": {}}}),
        ["keyspaces.a.tables.r2.source: source 'b.r' is referenced twice in keyspace 'a': r1, r2"],
    ),
    (
        "source of a sequence",
        doc_with(a={"tables": {"r": {"type": "reference", "source": "b.s"}}},
                 b={"tables": {"s": {"type": "sequence"}}}),
        ["keyspaces.a.tables.r.source: source 'b.s' may not be a table of type 'sequence'"],
    ),
    (
        "source on a plain table",
        doc_with(a={"tables": {"t": {"source": "b.t"}}}),
        ["keyspaces.a.tables.t.source: only a reference table can have a source"],
    ),
    (
        "reference with vindexes",
        doc_with(user=sharded({"r": {"type": "reference", "column_vindexes": [{"column": "a", "name": "hash"}]}})),
        ["keyspaces.user.tables.r.column_vindexes: a reference table cannot have column_vindexes"],
    ),
    (
        "multi-column vindex not primary",
        doc_with(user=sharded({"t": {"column_vindexes": [{"column": "a", "name": "hash"},
                                                         {"columns": ["a", "b"], "name": "mc"}]}},
                              {"mc": {"type": "multicol", "params": {"column_count": "2"}}})),
        ["keyspaces.user.tables.t.column_vindexes[1].name: multi-column vindex 'mc' (multicol) must be the primary "
         "vindex"],
    ),
    (
        "multicol column count",
        doc_with(user=sharded({"t": {"column_vindexes": [{"columns": ["a", "b"], "name": "mc"}]}},
                              {"mc": {"type": "multicol", "params": {"column_count": "3"}}})),
        ["keyspaces.user.tables.t.column_vindexes[0].columns: vindex 'mc' (multicol) takes 3 columns, got 2"],
    ),
    (
        "single-column vindex on two columns",
        doc_with(user=sharded({"t": {"column_vindexes": [{"columns": ["a", "b"], "name": "hash"}]}})),
        ["keyspaces.user.tables.t.column_vindexes[0].columns: vindex 'hash' (hash) takes one column, got 2"],
    ),
    (
        "lookup from columns vs table columns",
        doc_with(user=sharded({"t": {"column_vindexes": [{"column": "id", "name": "hash"},
                                                         {"columns": ["a", "b"], "name": "lk"}]}},
                              {"lk": {"type": "lookup", "params": {"table": "l", "from": "a", "to": "k"}}})),
        ["keyspaces.user.tables.t.column_vindexes[1].columns: lookup vindex 'lk' (lookup) has 1 'from' column(s), "
         "got 2"],
    ),
    (
        "column and columns",
        doc_with(user=sharded({"t": {"column_vindexes": [{"column": "a", "columns": ["b"], "name": "hash"}]}})),
        ["keyspaces.user.tables.t.column_vindexes[0]: give column or columns, not both"],
    ),
    (
        "neither column nor columns",
        doc_with(user=sharded({"t": {"column_vindexes": [{"name": "hash"}]}})),
        ["keyspaces.user.tables.t.column_vindexes[0]: missing column (or columns)"],
    ),
    (
        "duplicate column",
        doc_with(main={"tables": {"t": {"columns": [{"name": "a"}, {"name": "A"}]}}}),
        ["keyspaces.main.tables.t.columns[1].name: duplicate column 'A'"],
    ),
    (
        "column type",
        doc_with(main={"tables": {"t": {"columns": [{"name": "a", "type": "varchar"}]}}}),
        ["keyspaces.main.tables.t.columns[0].type: unknown column type 'varchar' (a query.Type name such as VARCHAR)"],
    ),
    (
        "pinned must be hex",
        doc_with(user=sharded({"t": {"pinned": "8"}})),
        ["keyspaces.user.tables.t.pinned: expected a keyspace id in hex (whole bytes, e.g. '80'), got '8'"],
    ),
    (
        "wrong JSON types",
        doc_with(user={"sharded": "yes", "tables": []}),
        ["keyspaces.user.sharded: expected true or false, got string",
         "keyspaces.user.tables: expected an object, got array"],
    ),
    (
        "unknown field",
        doc_with(main={"tables": {"t": {"colum_vindexes": []}}}),
        ["keyspaces.main.tables.t.colum_vindexes: unknown field (expected one of: type, column_vindexes, "
         "auto_increment, columns, pinned, column_list_authoritative, source)"],
    ),
    (
        "foreign key mode",
        doc_with(main={"foreign_key_mode": "strict"}),
        ["keyspaces.main.foreign_key_mode: unknown foreign key mode 'strict' (expected one of: unspecified, "
         "disallow, unmanaged, managed)"],
    ),
    (
        "routing rules format",
        {"keyspaces": {}, "routing_rules": {"rules": [{"from_table": "a", "to_tables": "main.a"}, {"to_tables": []},
                                                      "x"]}},
        ["routing_rules.rules[0].to_tables: expected an array, got string",
         "routing_rules.rules[1].from_table: missing (required)",
         "routing_rules.rules[2]: expected an object, got string"],
    ),
    (
        "shard routing rule shard name",
        {"keyspaces": {"a": {}}, "shard_routing_rules": {"rules": [{"from_keyspace": "a", "to_keyspace": "a",
                                                                    "shard": "80"}]}},
        ["shard_routing_rules.rules[0].shard: invalid shard name '80' (expected a key range such as -80)"],
    ),
    (
        "mirror percent",
        {"keyspaces": {}, "mirror_rules": {"rules": [{"from_table": "a", "to_table": "b", "percent": 0}]}},
        ["mirror_rules.rules[0].percent: expected a percentage in (0, 100], got 0"],
    ),
    (
        "odd keys are quoted in paths",
        doc_with(**{"my.ks": {"tables": {"t x": {"type": 1}}}}),
        ['keyspaces["my.ks"].tables["t x"].type: expected a string, got number'],
    ),
]


@pytest.mark.parametrize(("doc", "expected"), [pytest.param(d, e, id=i) for i, d, e in RULES])
def test_vitess_rules(doc: dict[str, Any], expected: list[str]) -> None:
    assert problems_of(doc) == expected


def test_not_an_object() -> None:
    with pytest.raises(VSchemaError) as err:
        parse_vschema([], source="topo:/vschema")
    assert err.value.problems == ["topo:/vschema: expected a JSON object, got array"]


def test_accepted_variants() -> None:
    vs = parse_vschema(
        {
            "keyspaces": {
                "user": {
                    "sharded": True,
                    "requireExplicitRouting": False,
                    "foreignKeyMode": 2,  # protojson accepts an enum's number
                    "vindexes": {"hash": {"type": "hash", "params": None}},
                    "tables": {
                        "t": {"columnVindexes": [{"column": "id", "name": "hash"}],
                              "autoIncrement": {"column": "id", "sequence": "main.seq"}},
                        "pinned": {"pinned": "80"},
                        "seq2": {"type": "sequence", "pinned": "00"},
                        "ref": {"type": "reference"},
                    },
                },
                "main": {"tables": {"seq": {"type": "sequence"}, "null_table": None}},
            },
            "routingRules": {"rules": [{"fromTable": "x", "toTables": ["main.seq"]}]},
        }
    )
    assert vs.keyspaces["user"].foreign_key_mode == "unmanaged"
    assert vs.keyspaces["user"].tables["t"].auto_increment.sequence_keyspace == "main"  # type: ignore[union-attr]
    assert vs.find_table("x").qualified_name == "main.seq"
    assert "null_table" in vs.keyspaces["main"].tables


def test_warnings_for_suspicious_but_valid_documents() -> None:
    vs = parse_vschema(
        {
            "keyspaces": {
                "user": sharded({"t": {"column_vindexes": [{"column": "id", "name": "hash"}]}},
                                {"lk": {"type": "lookup", "params": {"table": "l", "from": "a", "to": "k"},
                                        "owner": "t"}}),
                "main": {"vindexes": {"h": {"type": "hash"}}, "tables": {"p": {"pinned": "80"}}},
            },
            "routing_rules": {"rules": [{"from_table": "a@nowhere", "to_tables": ["main.p"]}]},
            "keyspace_routing_rules": {"rules": [{"from_keyspace": "x", "to_keyspace": "y"}]},
        }
    )
    assert list(vs.warnings) == [
        "keyspaces.main.vindexes: an unsharded keyspace does not route by vindex; these vindexes are unused",
        "keyspaces.main.tables.p.pinned: pinned has no effect in an unsharded keyspace",
        "keyspaces.user.vindexes.lk.owner: owner table 't' does not use vindex 'lk', so nothing fills its lookup "
        "table",
        "routing_rules.rules[0].from_table: 'a@nowhere' never matches: expected [keyspace.]table[@tablet_type]",
        "keyspace_routing_rules.rules[0].to_keyspace: keyspace 'y' is not in the VSchema",
    ]


# --- files --------------------------------------------------------------------------------------------------------
def test_parse_vschema_file(tmp_path: Path) -> None:
    path = tmp_path / "vschema.json"
    path.write_text(json.dumps(doc_with(main={"tables": {"t": {}}})))
    assert parse_vschema_file(path).find_table("t").keyspace == "main"
    path.write_text('{"keyspaces": {\n  "main": nope}}')
    with pytest.raises(VSchemaError) as err:
        parse_vschema_file(path)
    assert err.value.problems == [f"{path}: invalid JSON at line 2 column 11: Expecting value"]
    path.write_text(json.dumps(doc_with(main={"tables": {"t": {"type": "x"}}})))
    with pytest.raises(VSchemaError, match=rf"invalid VSchema \({path}\): 1 problem"):
        parse_vschema_file(path)
    with pytest.raises(VSchemaError, match="cannot read"):
        parse_vschema_file(tmp_path / "missing.json")


def test_numeric_static_map_reads_its_json_path(tmp_path: Path) -> None:
    table = tmp_path / "map.json"
    table.write_text('{"1": 7}')
    vs = parse_vschema(doc_with(user=sharded(
        {"t": {"column_vindexes": [{"column": "id", "name": "nsm"}]}},
        {"nsm": {"type": "numeric_static_map", "params": {"json_path": str(table)}}},
    )))
    assert vs.keyspaces["user"].vindexes["nsm"].hash(1) == bytes.fromhex("0000000000000007")  # type: ignore[attr-defined]
