"""DML planning: golden plans (``cases/dml_*.json``) against the Vitess planner-test VSchema, plus what the engine
relies on (row templates, batching data, guards, scatter configuration, REPLACE, dialects).

Golden cases are ``{comment, query, plan}`` with optional ``dialect`` (client), ``backend`` (the shards' engine),
``keyspace``/``target`` (the session's) and ``allow_scatter_dml``. ``plan`` is the plan's Vitess-style JSON, or
``"ErrorClass: message"``. On a mismatch the actual plans of the file are written to ``actual/`` (git-ignored)
for review, as Vitess's planner tests do.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.planner import Planner, _fingerprint, build_plan
from router.planner.context import PlanContext, SessionView
from router.planner.dml import SameValue, parse_replace, plan_dml
from router.planner.dml_plan import (
    Delete,
    DMLWithInput,
    Insert,
    LookupWrite,
    Update,
    row_var,
    seq_var,
)
from router.planner.plan import Limit, Opcode, Plan, Route
from router.planner.values import evaluate
from sharding.errors import MissingVindexColumnError, RoutingError, ShardgateError, UnsupportedError
from sharding.snapshot import ClusterSnapshot, Shard
from sharding.vschema import parse_vschema
from sharding.vschema_model import VSchema
from tests.support.shared import load_vectors
from tests.support.vindexes import lookup_cost_registered

HERE = Path(__file__).parent
CASES = sorted((HERE / "cases").glob("dml_*.json"))
ACTUAL = HERE / "actual"


# --- the snapshot of the Vitess planner tests -------------------------------------------------------------------
def _vschema() -> VSchema:
    with lookup_cost_registered():
        return parse_vschema(load_vectors("vitess_routing_cases")["vschema"])


class Snapshots:
    """The Vitess planner-test VSchema, shards ``-80``/``80-`` per sharded keyspace (``0`` otherwise); one snapshot
    per backend engine (None: no backend configured, so the shards speak the client's dialect)."""

    def __init__(self) -> None:
        self.vschema = _vschema()
        self._by_backend: dict[str | None, ClusterSnapshot] = {}

    def get(self, backend: str | None = None) -> ClusterSnapshot:
        if backend not in self._by_backend:
            backends = {"primary": SimpleNamespace(engine=backend)} if backend else {}
            shards = {name: [Shard.from_name(s, backends) for s in (["-80", "80-"] if ks.sharded else ["0"])]
                      for name, ks in self.vschema.keyspaces.items()}
            self._by_backend[backend] = ClusterSnapshot.build(1, self.vschema, shards)
        return self._by_backend[backend]


def session_of(case: dict[str, Any]) -> SessionView:
    return SessionView(dialect=case.get("dialect", "mysql"), keyspace=case.get("keyspace"),
                       target=case.get("target"), allow_scatter_dml=case.get("allow_scatter_dml", True))


def plan_query(query: str, session: SessionView, snapshot: ClusterSnapshot) -> Plan:
    """Plan one statement as ``Planner`` does on a cache miss (REPLACE through ``parse_replace``)."""
    normalized, values = _fingerprint(query, session)
    tree = parse_replace(normalized, session.dialect)
    if tree is not None:
        return plan_dml(tree, PlanContext(session, snapshot, values, query, normalized))
    return build_plan(query, normalized, values, session, snapshot)


def plan_case(case: dict[str, Any], snapshots: Snapshots) -> Any:
    try:
        return plan_query(case["query"], session_of(case), snapshots.get(case.get("backend"))).describe()
    except ShardgateError as exc:
        return f"{type(exc).__name__}: {exc.message}"


@pytest.fixture(scope="module")
def snapshots() -> Snapshots:
    return Snapshots()


@pytest.fixture(scope="module")
def snapshot(snapshots: Snapshots) -> ClusterSnapshot:
    return snapshots.get()


MYSQL = SessionView(dialect="mysql")
POSTGRES = SessionView(dialect="postgres")


# --- golden plans -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_golden_plans(path: Path, snapshots: Snapshots) -> None:
    cases = json.loads(path.read_text(encoding="utf-8"))
    actual = []
    wrong = []
    for case in cases:
        got = plan_case(case, snapshots)
        actual.append({**case, "plan": got})
        if got != case["plan"]:
            wrong.append(case["comment"])
    if wrong:
        ACTUAL.mkdir(exist_ok=True)
        (ACTUAL / path.name).write_text(json.dumps(actual, indent=2) + "\n", encoding="utf-8")
    assert not wrong, f"{len(wrong)} plan(s) differ; actual plans written to {ACTUAL / path.name}: {wrong}"


def test_golden_files_exist_and_are_well_formed() -> None:
    names = {p.name for p in CASES}
    assert {"dml_insert.json", "dml_update.json", "dml_delete.json", "dml_postgres.json",
            "dml_unsupported.json"} <= names
    for path in CASES:
        for case in json.loads(path.read_text(encoding="utf-8")):
            assert set(case) >= {"comment", "query", "plan"}, (path.name, case)


# --- INSERT: what the engine executes -------------------------------------------------------------------------
def _engine_env(ins: Insert, binds: list[Any], ids: list[int]) -> dict[str, Any]:
    """What the engine computes before rendering rows: sequence values, then each vindex column's value."""
    env: dict[str, Any] = {}
    if ins.generate is not None:
        fresh = iter(ids)
        for r, expr in enumerate(ins.generate.values):
            value = evaluate(expr, binds, env)
            env[seq_var(r)] = next(fresh) if value is None else value
    for vv in ins.vindex_values:
        for column, per_row in zip(vv.column_vindex.columns, vv.values, strict=True):
            for r, expr in enumerate(per_row):
                env[row_var(column, r)] = evaluate(expr, binds, env)
    return env


def test_insert_rows_carry_generated_ids_and_vindex_values(snapshot: ClusterSnapshot) -> None:
    bound = Planner().plan("insert into user(id, name, val) values (null, 'ann', 1), (7, 'bob', 2)", MYSQL,
                           snapshot)
    ins = bound.plan.root
    assert isinstance(ins, Insert) and ins.variant == "Sharded" and len(ins.rows) == 2
    assert ins.generate is not None and (ins.generate.keyspace.name, ins.generate.table) == ("main", "seq")
    env = _engine_env(ins, bound.binds, ids=[1000])
    assert env[seq_var(0)] == 1000 and env[seq_var(1)] == 7
    primary = ins.vindex_values[0]
    assert primary.column_vindex.name == "user_index"
    assert [evaluate(v, bound.binds, env) for v in primary.values[0]] == [1000, 7]
    rows = [row.render(bound.binds, "mysql", env) for row in ins.rows]
    assert rows == ["(1000, 'ann', 1, NULL)", "(7, 'bob', 2, NULL)"]
    # Batching: a shard's statement is the prefix, its rows in statement order, the suffix.
    stmt = ins.prefix + ", ".join(rows) + ins.suffix.render(bound.binds, "mysql", env)
    assert stmt == "INSERT INTO user (id, name, val, Costly) VALUES (1000, 'ann', 1, NULL), (7, 'bob', 2, NULL)"
    assert [lw.name for lw in ins.lookups] == ["name_user_map", "costly_map"]
    assert ins.needs_transaction()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-2**40, 2**40), st.integers(0, 10**6) | st.none()), min_size=1,
                max_size=12))
def test_multi_row_insert_routes_every_row_by_its_own_value(rows: list[tuple[int, int | None]]) -> None:
    snapshot = _SNAPSHOTS.get()
    text = ", ".join(f"({u}, {'null' if c is None else c})" for u, c in rows)
    bound = Planner().plan(f"insert into music_extra(user_id, col) values {text}", MYSQL, snapshot)
    ins = bound.plan.root
    assert isinstance(ins, Insert) and len(ins.rows) == len(rows)
    env = _engine_env(ins, bound.binds, ids=[])
    assert [evaluate(v, bound.binds, env) for v in ins.vindex_values[0].values[0]] == [u for u, _ in rows]
    for r, (u, c) in enumerate(rows):
        assert ins.rows[r].render(bound.binds, "mysql", env) == f"({u}, {'NULL' if c is None else c}, NULL)"
    # music_extra's music_id (music_user_map) was not given: added as NULL for every row.
    assert ins.columns == ("user_id", "col", "music_id")


_SNAPSHOTS = Snapshots()


def test_insert_select_pads_rows_for_added_columns(snapshot: ClusterSnapshot) -> None:
    plan = plan_query("insert into user_extra(user_id, col) select id, col from user where id > 10", MYSQL,
                      snapshot)
    ins = plan.root
    assert isinstance(ins, Insert) and ins.variant == "Select" and isinstance(ins.input, Route)
    assert ins.columns == ("user_id", "col", "extra_id")
    assert ins.generate is not None and ins.generate.offset == 2
    assert ins.vindex_offsets == ((0,),)
    assert ins.prefix == "INSERT INTO user_extra (user_id, col, extra_id) VALUES "
    assert plan.tables == ("user.user", "user.user_extra")


def test_insert_into_unsharded_is_sent_as_written(snapshot: ClusterSnapshot) -> None:
    bound = Planner().plan("insert into unsharded(a, b) values (1, 'x')", MYSQL, snapshot)
    assert isinstance(bound.plan.root, Insert) and bound.plan.root.variant == "Unsharded"
    assert bound.plan.passthrough and not bound.plan.root.rows
    assert not bound.plan.root.needs_transaction()


def test_reference_insert_goes_to_every_shard(snapshot: ClusterSnapshot) -> None:
    ins = plan_query("insert into ref(col) values (1)", MYSQL, snapshot).root
    assert isinstance(ins, Insert) and ins.all_shards and not ins.vindex_values
    src = plan_query("insert into user.ref_with_source(x) values (4)", MYSQL, snapshot)
    assert isinstance(src.root, Insert) and src.root.variant == "Unsharded" and src.tables == ("main.source_of_ref",)


def test_missing_primary_vindex_column_names_it(snapshot: ClusterSnapshot) -> None:
    with pytest.raises(MissingVindexColumnError, match="column user_id"):
        plan_query("insert into user_extra(col) values (1)", MYSQL, snapshot)
    with pytest.raises(MissingVindexColumnError, match=r"row 2 .* column user_id"):
        plan_query("insert into user_extra(user_id) values (1), (null)", MYSQL, snapshot)
    # A sequence fills user.id, so leaving it out is fine.
    assert isinstance(plan_query("insert into user(val) values (1)", MYSQL, snapshot).root, Insert)


# --- REPLACE ------------------------------------------------------------------------------------------------
def test_replace_is_parsed_and_planned(snapshot: ClusterSnapshot) -> None:
    assert parse_replace("select 1", "mysql") is None
    assert parse_replace("replace into t values (:v1)", "postgres") is None
    tree = parse_replace("/* c */ replace into t(a) values (:v1)", "mysql")
    assert tree is not None and tree.args.get("alternative") == "REPLACE"
    ins = plan_query("replace into music_extra(user_id, music_id) values (1, 2)", MYSQL, snapshot).root
    assert isinstance(ins, Insert) and ins.prefix.startswith("REPLACE INTO music_extra")
    with pytest.raises(UnsupportedError, match="owned lookup"):
        plan_query("replace into user(id) values (1)", MYSQL, snapshot)
    pg = _SNAPSHOTS.get("postgres")
    with pytest.raises(UnsupportedError, match="REPLACE cannot be sent to a postgres shard"):
        plan_query("replace into unsharded(a) values (1)", MYSQL, pg)


# --- UPDATE / DELETE ------------------------------------------------------------------------------------------
def test_in_route_gives_each_shard_its_own_values(snapshot: ClusterSnapshot) -> None:
    bound = Planner().plan("delete from user_extra where user_id in (1, 2, 3)", MYSQL, snapshot)
    dml = bound.plan.root
    assert isinstance(dml, Delete) and dml.routing.opcode is Opcode.IN and dml.in_slot >= 0
    assert dml.query.render(bound.binds, "mysql", overrides={dml.in_slot: (1, 3)}) == \
        "DELETE FROM user_extra WHERE user_id IN (1, 3)"


def test_owned_vindex_query_feeds_lookup_maintenance(snapshot: ClusterSnapshot) -> None:
    upd = plan_query("update user set name = 'x', costly = 'y' where id = 3", MYSQL, snapshot).root
    assert isinstance(upd, Update) and upd.owned_vindex_query is not None
    assert upd.ksid_vindex is not None and upd.ksid_length == 1
    assert upd.owned_vindex_query.describe() == \
        "SELECT Id, Name, Costly, name = :v1, costly = :v2 FROM user WHERE id = :v3 FOR UPDATE"
    by_name = {c.column_vindex.name: c for c in upd.changes}
    assert by_name["name_user_map"].old_offsets == (1,) and by_name["name_user_map"].changed_offset == 3
    assert by_name["costly_map"].old_offsets == (2,) and by_name["costly_map"].changed_offset == 4
    assert all(c.lookup is not None for c in upd.changes)
    dele = plan_query("delete from user where id = 3", MYSQL, snapshot).root
    assert isinstance(dele, Delete) and [lw.name for lw in dele.lookups] == ["name_user_map", "costly_map"]


def test_primary_vindex_may_only_keep_its_value(snapshot: ClusterSnapshot) -> None:
    planner = Planner()
    ok = planner.plan("update user set id = 5, val = 1 where id = 5", MYSQL, snapshot)
    assert any(isinstance(g, SameValue) for g in ok.plan.guards)
    with pytest.raises(RoutingError, match="primary vindex"):  # same fingerprint, the guard fails: planned afresh
        planner.plan("update user set id = 6, val = 1 where id = 5", MYSQL, snapshot)
    assert isinstance(plan_query("update user set id = id where val = 1", MYSQL, snapshot).root, Update)
    pg = _SNAPSHOTS.get("postgres")
    same_param = Planner().plan("update user_extra set user_id = $1 where user_id = $1", POSTGRES, pg, [4])
    assert isinstance(same_param.plan.root, Update) and same_param.plan.root.routing.opcode is Opcode.EqualUnique


def test_scatter_writes_can_be_forbidden(snapshot: ClusterSnapshot) -> None:
    strict = SessionView(dialect="mysql", allow_scatter_dml=False)
    for sql in ("update user_extra set val = 1", "delete from user_extra where col > 3",
                "delete from user_extra limit 5"):
        with pytest.raises(RoutingError, match="allow_scatter_dml"):
            plan_query(sql, strict, snapshot)
    assert plan_query("update user_extra set val = 1 where user_id = 4", strict, snapshot).kind == "update"
    targeted = plan_query("update `user[-]`.user_extra set val = 1", strict, snapshot).root
    assert isinstance(targeted, Update) and targeted.routing.opcode is Opcode.ByDestination


def test_limit_across_shards_reads_keys_first(snapshot: ClusterSnapshot) -> None:
    plan = plan_query("update user set val = 1 where val > 3 limit 2", MYSQL, snapshot)
    root = plan.root
    assert isinstance(root, DMLWithInput) and root.offsets == ((0,),)
    assert isinstance(root.input, Limit) and isinstance(root.input.input, Route)
    write = root.dmls[0]
    assert isinstance(write, Update) and write.routing.vindex == "user_index"
    assert write.query.render([1], "mysql", env={"dml_vals": (4, 9)}) == \
        "UPDATE user SET val = 1 WHERE user.Id IN (4, 9)"
    assert root.needs_transaction()
    # One shard: LIMIT passes through.
    one = plan_query("delete from user_extra where user_id = 1 limit 2", MYSQL, snapshot).root
    assert isinstance(one, Delete) and one.query.describe().endswith("LIMIT 2")
    with pytest.raises(UnsupportedError, match="identifies a row"):
        plan_query("delete from music_extra where col = 1 limit 1", MYSQL, snapshot)


def test_session_target_writes_bypass_vindexes(snapshot: ClusterSnapshot) -> None:
    session = SessionView(dialect="mysql", keyspace="user", target="-80")
    ins = plan_query("insert into user_extra(col) values (1)", session, snapshot)
    assert ins.kind == "insert" and ins.root.describe()["TargetDestination"] == "-80"
    upd = plan_query("update user_extra set col = 1", session, snapshot).root
    assert isinstance(upd, Update) and upd.routing.opcode is Opcode.ByDestination and upd.routing.target == "-80"


def test_unknown_tables_name_the_table_and_keyspace(snapshot: ClusterSnapshot) -> None:
    with pytest.raises(ShardgateError, match="table nosuch not found in keyspace user"):
        plan_query("update user.nosuch set a = 1", MYSQL, snapshot)
    with pytest.raises(ShardgateError, match="table nosuch not found in any keyspace"):
        plan_query("delete from nosuch", MYSQL, snapshot)
    in_ks = SessionView(dialect="mysql", keyspace="user")
    with pytest.raises(ShardgateError, match="table nosuch not found in keyspace user"):
        plan_query("insert into nosuch(a) values (1)", in_ks, snapshot)


# --- dialects -------------------------------------------------------------------------------------------------
def test_postgres_backend_gets_postgres_sql() -> None:
    pg = _SNAPSHOTS.get("postgres")
    bound = Planner().plan("insert into user_extra(user_id, col) values (1, 'it''s')", MYSQL, pg)
    ins = bound.plan.root
    assert isinstance(ins, Insert)
    env = _engine_env(ins, bound.binds, ids=[41])
    assert ins.rows[0].render(bound.binds, "postgres", env) == "(1, 'it''s', 41)"
    for sql in ("insert ignore into user_extra(user_id) values (1)",
                "insert into user_extra(user_id) values (1) on duplicate key update col = 2",
                "delete from user_extra where user_id = 1 limit 1"):
        with pytest.raises(UnsupportedError, match="postgres shard"):
            plan_query(sql, MYSQL, pg)
    my = _SNAPSHOTS.get("mysql")
    with pytest.raises(UnsupportedError, match="ON CONFLICT cannot be sent to a mysql shard"):
        plan_query("insert into user_extra(user_id) values (1) on conflict do nothing", POSTGRES, my)


# --- primitives ---------------------------------------------------------------------------------------------
def test_lookup_write_reads_the_vindex_params(snapshots: Snapshots) -> None:
    t1 = snapshots.vschema.keyspaces["zlookup_unique"].tables["t1"]
    writes = {cv.name: LookupWrite.of(cv) for cv in t1.owned}
    assert writes["lookup_t1"].keyspace == "targetkeyspace" and writes["lookup_t1"].table == "lookup_t1_backing"
    assert writes["lookup_t1"].write_only and writes["lookup_t1"].from_columns == ("c2",)
    assert writes["lookup_t1_2"].to_column == "keyspace_id"


def test_plans_are_cacheable_data(snapshot: ClusterSnapshot) -> None:
    planner = Planner()
    a = planner.plan("insert into user_extra(user_id, col) values (1, 2), (3, 4)", MYSQL, snapshot)
    b = planner.plan("insert into user_extra(user_id, col) values (5, 6), (7, 8)", MYSQL, snapshot)
    assert a.plan is b.plan and b.binds == [5, 6, 7, 8]
    hash(a.plan.root)  # frozen data all the way down


def test_transactions_are_needed_only_where_several_writes_happen(snapshot: ClusterSnapshot) -> None:
    def root(sql: str) -> Any:
        return plan_query(sql, MYSQL, snapshot).root

    assert not root("insert into user_extra(user_id) values (1)").needs_transaction()  # one row, no lookups
    assert root("insert into user_extra(user_id) values (1), (2)").needs_transaction()  # rows may span shards
    assert root("insert into music(user_id, id) values (1, 2)").needs_transaction()  # a lookup row too
    assert not root("update user_extra set col = 1 where user_id = 1").needs_transaction()
    assert root("update user_extra set col = 1").needs_transaction()  # scatter
    assert root("delete from user where id = 1").needs_transaction()  # lookup rows deleted first
    assert not root("delete from user where 1 = 0").needs_transaction()


@pytest.mark.parametrize("sql", [
    "update user as u, user_extra as ue set u.name = 'foo' where u.id = ue.id",
    "delete u from user u join music m on u.col = m.col",
    "delete from user order by name, col limit 5",
])
def test_writes_whose_rows_the_select_planner_finds(sql: str, snapshot: ClusterSnapshot) -> None:
    """The input is whatever ``plan_select`` makes of the key query (a join, a merge-sorted limit); the write is
    by key, routed IN on the key's vindex."""
    try:
        root = plan_query(sql, MYSQL, snapshot).root
    except UnsupportedError as exc:  # the SELECT planner cannot read these rows yet
        pytest.skip(f"input not plannable yet: {exc.message}")
    assert isinstance(root, DMLWithInput) and root.offsets == ((0,),) and not isinstance(root.input, Insert)
    write = root.dmls[0]
    assert isinstance(write, (Update, Delete))
    assert write.routing.opcode is Opcode.IN and write.routing.vindex == "user_index" and write.in_slot >= 0
    assert write.query.describe().endswith("IN (::dml_vals)")
