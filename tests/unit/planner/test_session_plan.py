"""plan_special: plan kinds and tables (what ACLs judge), VSchema checks, and plan descriptions."""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from router.planner.plan import KeyspaceRef, Plan, RowsResult
from router.planner.session_plan import (
    ResetVariables,
    SequenceNext,
    SetVariables,
    Show,
    Transaction,
    TransactionCharacteristics,
    UseTarget,
    VExplain,
    VSchemaDDL,
    plan_special,
)
from router.planner.special import Statement, parse_special
from router.planner.values import Arg, Const
from sharding.errors import (
    AmbiguousError,
    InternalError,
    KeyRangeError,
    UnknownKeyspaceError,
    UnknownTableError,
    UnsupportedError,
)
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema
from sharding.vschema_model import VSchema
from tests.support.shared import load_vectors
from tests.support.vindexes import lookup_cost_registered

ROUTING = load_vectors("vitess_routing_cases")


@pytest.fixture(scope="module")
def vitess_vschema() -> Iterator[VSchema]:
    """Vitess's planner-test VSchema: sharded ``user``, unsharded ``main`` with sequence ``seq``."""
    with lookup_cost_registered():
        yield parse_vschema(copy.deepcopy(ROUTING["vschema"]))


VS = parse_vschema(
    {
        "keyspaces": {
            "main": {"tables": {"seq": {"type": "sequence"}, "plain": {}}},
            "user": {
                "sharded": True,
                "vindexes": {"hash": {"type": "hash"}},
                "tables": {
                    "users": {"column_vindexes": [{"column": "id", "name": "hash"}]},
                    "plain": {"column_vindexes": [{"column": "id", "name": "hash"}]},
                },
            },
        },
        "keyspace_routing_rules": {"rules": [{"from_keyspace": "old", "to_keyspace": "user"}]},
    }
)


def plan(sql: str, keyspace: str | None = None, dialect: str = "mysql", vschema: Any = VS, **kw: Any) -> Plan:
    stmt = parse_special(sql, dialect)
    assert stmt is not None, sql
    return plan_special(stmt, keyspace, vschema, **kw)


# --- transactions and settings ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "kind", "root"),
    [
        ("BEGIN", "begin", Transaction("begin")),
        ("START TRANSACTION READ ONLY", "begin", Transaction("begin", read_only=True)),
        ("COMMIT", "commit", Transaction("commit")),
        ("COMMIT AND CHAIN RELEASE", "commit", Transaction("commit", chain=True, release=True)),
        ("ROLLBACK", "rollback", Transaction("rollback")),
        ("SAVEPOINT a", "savepoint", Transaction("savepoint", "a")),
        ("RELEASE SAVEPOINT a", "savepoint", Transaction("release", "a")),
        ("ROLLBACK TO a", "savepoint", Transaction("rollback_to", "a")),
        ("SET SESSION TRANSACTION READ ONLY", "set", TransactionCharacteristics("session", read_only=True)),
    ],
)
def test_transaction_control(sql: str, kind: str, root: Any) -> None:
    p = plan(sql)
    assert (p.kind, p.root, p.tables) == (kind, root, ())


def test_postgres_begin_carries_its_characteristics() -> None:
    p = plan("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", dialect="postgres")
    assert p.root == Transaction("begin", None, True, "SERIALIZABLE", True)
    assert p.root.describe() == {
        "OperatorType": "Transaction", "Variant": "begin", "ReadOnly": True, "Isolation": "SERIALIZABLE",
        "Deferrable": True,
    }  # fmt: skip


def test_set_and_reset() -> None:
    p = plan("SET @@session.workload = 'olap', @u = CONCAT('a', 'b'), NAMES utf8mb4")
    assert p.kind == "set" and isinstance(p.root, SetVariables) and len(p.root.items) == 3
    assert p.root.describe() == {
        "OperatorType": "Set",
        "Ops": ["session workload = 'olap'", "@u = CONCAT('a', 'b')", "names utf8mb4"],
    }
    reset = plan("RESET ALL", dialect="postgres")
    assert (reset.kind, reset.root) == ("set", ResetVariables(None))


# --- USE --------------------------------------------------------------------------------------------------------
def test_use_known_keyspace() -> None:
    p = plan("USE `user:-80@replica`")
    assert (p.kind, p.root) == ("use", UseTarget("user", "-80", "shard", "replica"))
    assert p.root.describe() == {"OperatorType": "UpdateTarget", "target": "user:-80@replica"}


def test_use_unknown_keyspace() -> None:
    with pytest.raises(UnknownKeyspaceError, match=re.escape("unknown database 'nowhere'")):
        plan("USE nowhere")


def test_use_a_routed_keyspace_and_a_tablet_type_alone() -> None:
    assert plan("USE old").root == UseTarget("old")
    assert plan("USE @rdonly").root == UseTarget("", tablet_type="rdonly")


def test_use_checks_the_shard_against_a_snapshot() -> None:
    snapshot = ClusterSnapshot.build(1, VS, {"main": ["0"], "user": ["-80", "80-"]})
    assert plan("USE `user:80-`", vschema=snapshot).root == UseTarget("user", "80-", "shard")
    with pytest.raises(KeyRangeError, match=re.escape("keyspace 'user' has no shard '-40'")):
        plan("USE `user:-40`", vschema=snapshot)


# --- SHOW -------------------------------------------------------------------------------------------------------
def test_show_columns_names_the_table() -> None:
    p = plan("SHOW COLUMNS FROM user.users")
    assert (p.kind, p.tables) == ("show", ("user.users",))
    assert isinstance(p.root, Show) and p.root.kind == "columns" and p.root.keyspace == "user"


def test_show_table_resolves_through_the_session_keyspace_then_global_routing() -> None:
    assert plan("SHOW CREATE TABLE users", keyspace="main").tables == ("main.users",)
    assert plan("SHOW INDEX FROM users FROM user").tables == ("user.users",)
    assert plan("SHOW CREATE TABLE users").tables == ("user.users",)  # unique across keyspaces
    with pytest.raises(AmbiguousError, match=re.escape("plain")):
        plan("SHOW CREATE TABLE plain")
    with pytest.raises(UnknownTableError, match=re.escape("nope")):
        plan("SHOW CREATE TABLE nope")


def test_show_of_an_unknown_keyspace() -> None:
    with pytest.raises(UnknownKeyspaceError, match=re.escape("nowhere")):
        plan("SHOW TABLES FROM nowhere")
    with pytest.raises(UnknownKeyspaceError, match=re.escape("nowhere")):
        plan("SHOW COLUMNS FROM nowhere.t")


def test_show_of_a_system_schema() -> None:
    p = plan("SHOW COLUMNS FROM information_schema.tables")
    assert p.tables == ("information_schema.tables",)


def test_show_without_a_table() -> None:
    p = plan("SHOW SHARDGATE SHARDS", keyspace="user")
    assert (p.kind, p.tables) == ("show", ())
    assert p.root.describe() == {"OperatorType": "Show", "Variant": "shardgate_shards", "Keyspace": "user"}
    assert plan("SHOW search_path", dialect="postgres").root.kind == "variable"  # type: ignore[attr-defined]


# --- SELECT NEXT ------------------------------------------------------------------------------------------------
def test_next_matches_vitess(vitess_vschema: VSchema) -> None:
    (case,) = [c for c in ROUTING["cases"] if c["opcode"] == "Next"]
    p = plan(case["query"], vschema=vitess_vschema)
    assert p.kind == case["kind"]
    assert list(p.tables) == case["tables_used"]
    described = p.root.describe()
    assert described["OperatorType"] == "Route" and described["Variant"] == case["opcode"]
    assert described["Keyspace"] == {"Name": case["keyspace"], "Sharded": case["sharded"]}
    assert described["Query"] == case["shard_query"]
    assert p.describe()["QueryType"] == "SELECT"


def test_next_with_a_placeholder_count() -> None:
    p = plan("SELECT NEXT :v2 VALUES FROM main.seq")
    assert p.root == SequenceNext(KeyspaceRef("main", False), "seq", Arg(1))
    assert plan("SELECT NEXT VALUE FROM seq", keyspace="main").root.count == Const(1)  # type: ignore[attr-defined]


def test_next_of_an_unknown_table_names_table_and_keyspace() -> None:
    with pytest.raises(UnknownTableError, match=re.escape("sequence table nope not found in keyspace user")):
        plan("SELECT NEXT VALUE FROM nope", keyspace="user")
    with pytest.raises(UnknownTableError, match=re.escape("sequence table nope not found in any keyspace")):
        plan("SELECT NEXT VALUE FROM nope")
    with pytest.raises(UnknownKeyspaceError):
        plan("SELECT NEXT VALUE FROM nowhere.seq")


def test_next_of_a_table_that_is_not_a_sequence() -> None:
    with pytest.raises(UnsupportedError, match=re.escape("NEXT used on a non-sequence table user.users")):
        plan("SELECT NEXT VALUE FROM user.users")
    with pytest.raises(UnsupportedError, match=re.escape("main.unlisted")):  # an unsharded keyspace's unlisted table
        plan("SELECT NEXT VALUE FROM main.unlisted")


# --- VEXPLAIN ---------------------------------------------------------------------------------------------------
def _inner(kind: str) -> Any:
    def plan_inner(sql: str) -> Plan:
        return Plan(RowsResult(("sql",), ((sql,),)), kind, tables=("user.users",), warnings=("w",))

    return plan_inner


def test_vexplain_plan_is_judged_as_other_with_the_inner_tables() -> None:
    p = plan("VEXPLAIN PLAN delete from users", plan_inner=_inner("delete"))
    assert (p.kind, p.tables, p.warnings) == ("other", ("user.users",), ("w",))
    assert isinstance(p.root, VExplain) and p.root.sql == "delete from users"
    assert p.root.describe()["Inputs"][0]["OperatorType"] == "Rows"
    assert p.extras == {"vexplain": "plan", "inner_kind": "delete"}


def test_vexplain_queries_is_judged_as_the_statement_it_runs() -> None:
    p = plan("VEXPLAIN QUERIES delete from users", plan_inner=_inner("delete"))
    assert (p.kind, p.tables) == ("delete", ("user.users",))


def test_vexplain_needs_the_inner_planner() -> None:
    with pytest.raises(InternalError):
        plan("VEXPLAIN select 1")


# --- ALTER VSCHEMA ----------------------------------------------------------------------------------------------
def test_vschema_ddl_plan() -> None:
    p = plan("ALTER VSCHEMA ON users ADD VINDEX hash(id)", keyspace="user")
    assert (p.kind, p.tables) == ("vschema", ("user.users",))
    assert isinstance(p.root, VSchemaDDL) and p.root.keyspace == KeyspaceRef("user", True)
    assert p.root.describe() == {
        "OperatorType": "AlterVSchema",
        "Keyspace": {"Name": "user", "Sharded": True},
        "query": "alter vschema on users add vindex hash(id)",
    }


def test_vschema_ddl_create_vindex_names_the_vindex_as_vitess_does() -> None:
    p = plan("ALTER VSCHEMA CREATE VINDEX hash_vdx USING hash", keyspace="main")
    assert p.tables == ("main.hash_vdx",)


def test_vschema_ddl_keyspace_must_be_known() -> None:
    with pytest.raises(UnknownKeyspaceError, match=re.escape("no keyspace selected")):
        plan("ALTER VSCHEMA ADD TABLE t")
    with pytest.raises(UnknownKeyspaceError, match=re.escape("keyspace nowhere not found")):
        plan("ALTER VSCHEMA ADD TABLE nowhere.t")


# --- all plans ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sql",
    [
        "BEGIN", "SET autocommit = 1", "SET NAMES utf8 COLLATE utf8_bin", "SET CHARACTER SET DEFAULT", "USE main",
        "SHOW TABLES", "SELECT NEXT 3 VALUES FROM main.seq", "ALTER VSCHEMA ADD SEQUENCE main.s2",
        "SET GLOBAL TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SET @x = :v1",
    ],
)  # fmt: skip
def test_descriptions_are_json(sql: str) -> None:
    json.dumps(plan(sql).describe())


def test_not_a_special_statement() -> None:
    bogus: Any = object()
    stmt: Statement = bogus
    with pytest.raises(InternalError):
        plan_special(stmt, None, VS)
