"""The planner's backbone: cache keys and eviction, binding, literal encoding, route resolution, guards, and the
``shardgate plan`` command."""
from __future__ import annotations

import datetime as dt
import io
import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from cython_ext.fpvalues import Param
from router.planner import Planner, SessionView
from router.planner.bind import bind_values, count_params
from router.planner.cache import PlanCache
from router.planner.explain import explain
from router.planner.plan import Opcode
from router.planner.resolve import NeedsLookup, ResolvedRoute, resolve_route
from router.planner.sqltext import encode_mysql, encode_postgres
from sharding.errors import InvalidValueError, SyntaxError_, UnknownTableError, UnsupportedError
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema

VSCHEMA = {
    "keyspaces": {
        "commerce": {"tables": {"product": {}, "seq": {"type": "sequence"}}},
        "customer": {
            "sharded": True,
            "vindexes": {
                "hash": {"type": "hash"},
                "email_lookup": {"type": "lookup_unique", "params": {"table": "commerce.email_lookup",
                                                                      "from": "email", "to": "keyspace_id"},
                                 "owner": "customer"},
            },
            "tables": {
                "customer": {"column_vindexes": [{"column": "id", "name": "hash"},
                                                 {"column": "email", "name": "email_lookup"}]},
                "ref": {"type": "reference"},
            },
        },
    }
}


@pytest.fixture(scope="module")
def snapshot() -> ClusterSnapshot:
    return ClusterSnapshot.build(7, parse_vschema(VSCHEMA), {"customer": ["-80", "80-"], "commerce": ["0"]})


SESSION = SessionView(dialect="mysql", keyspace="customer")


def test_a_cache_hit_reuses_the_plan_and_binds_new_values(snapshot: ClusterSnapshot) -> None:
    planner = Planner()
    first = planner.plan("SELECT * FROM customer WHERE id = 1", SESSION, snapshot)
    second = planner.plan("select * from customer where id = 4", SESSION.__class__(**{**_fields(SESSION)}),
                          snapshot)
    third = planner.plan("SELECT * FROM customer WHERE id = 4", SESSION, snapshot)
    assert first.plan is third.plan  # same fingerprint: no sqlglot the second time
    assert second.plan is not first.plan  # case differs: another key (harmless, never wrong)
    assert (first.binds, third.binds) == ([1], [4])
    assert planner.cache.hits == 1
    r1 = resolve_route(first.plan.root.routing, first.binds, snapshot)  # type: ignore[attr-defined]
    r4 = resolve_route(third.plan.root.routing, third.binds, snapshot)  # type: ignore[attr-defined]
    assert isinstance(r1, ResolvedRoute) and isinstance(r4, ResolvedRoute)
    assert [s.name for s in r1.shards] == ["-80"] and [s.name for s in r4.shards] == ["80-"]


def _fields(session: SessionView) -> dict[str, object]:
    return {f: getattr(session, f) for f in session.__slots__}  # type: ignore[attr-defined]


def test_a_new_snapshot_version_retires_old_plans(snapshot: ClusterSnapshot) -> None:
    planner = Planner()
    a = planner.plan("SELECT * FROM customer WHERE id = 1", SESSION, snapshot)
    b = planner.plan("SELECT * FROM customer WHERE id = 1", SESSION, snapshot.replace(version=8))
    assert a.plan is not b.plan
    assert planner.cache.misses == 2


def test_the_session_keyspace_is_part_of_the_key(snapshot: ClusterSnapshot) -> None:
    planner = Planner()
    a = planner.plan("SELECT * FROM product", SessionView(keyspace="commerce"), snapshot)
    with pytest.raises(UnknownTableError):
        planner.plan("SELECT * FROM product", SessionView(keyspace="customer"), snapshot)
    assert a.plan.root.routing.opcode is Opcode.Unsharded  # type: ignore[attr-defined]


def test_guarded_none_is_rechecked_for_new_values(snapshot: ClusterSnapshot) -> None:
    planner = Planner()
    empty = planner.plan("SELECT * FROM customer WHERE id = 1 AND id = 2", SESSION, snapshot)
    assert empty.plan.root.routing.opcode is Opcode.None_  # type: ignore[attr-defined]
    same = planner.plan("SELECT * FROM customer WHERE id = 1 AND id = 1", SESSION, snapshot)
    assert same.plan.root.routing.opcode is not Opcode.None_  # type: ignore[attr-defined]
    strings = planner.plan("SELECT * FROM customer WHERE id = 'a' AND id = 'A'", SESSION, snapshot)
    assert strings.plan.root.routing.opcode is not Opcode.None_  # collations may equate them  # type: ignore[attr-defined]


def test_in_route_gives_each_shard_only_its_values(snapshot: ClusterSnapshot) -> None:
    bound = Planner().plan("SELECT * FROM customer WHERE id IN (1, 4, 2, 6)", SESSION, snapshot)
    route = bound.plan.root
    resolved = resolve_route(route.routing, bound.binds, snapshot)  # type: ignore[attr-defined]
    assert isinstance(resolved, ResolvedRoute)
    assert [s.name for s in resolved.shards] == ["-80", "80-"]
    assert resolved.values == ((1, 2), (4, 6))
    assert route.in_slot >= 0  # type: ignore[attr-defined]
    sql = route.query.render(bound.binds, "mysql", overrides={route.in_slot: resolved.values[1]})  # type: ignore[attr-defined]
    assert sql.endswith("IN (4, 6)")


def test_lookup_vindex_routes_need_the_lookup_first(snapshot: ClusterSnapshot) -> None:
    bound = Planner().plan("SELECT * FROM customer WHERE email = 'a@b.c'", SESSION, snapshot)
    resolved = resolve_route(bound.plan.root.routing, bound.binds, snapshot)  # type: ignore[attr-defined]
    assert isinstance(resolved, NeedsLookup) and resolved.values == ("a@b.c",)


def test_prepared_parameters_bind_like_literals(snapshot: ClusterSnapshot) -> None:
    planner = Planner()
    literal = planner.plan("SELECT * FROM customer WHERE id = 4", SESSION, snapshot)
    prepared = planner.plan("SELECT * FROM customer WHERE id = ?", SESSION, snapshot, params=[4])
    assert prepared.binds == [4]
    assert literal.fingerprint == prepared.fingerprint  # one plan serves both
    with pytest.raises(InvalidValueError):
        planner.plan("SELECT * FROM customer WHERE id = ?", SESSION, snapshot)


def test_bind_values_and_param_count() -> None:
    values = [1, Param(0), (Param(1), 5), (Param("ids", is_list=True),)]
    assert bind_values(values, {0: "a", 1: "b", "ids": [7, 8]}) == [1, "a", ("b", 5), (7, 8)]
    assert count_params(values) == 2
    with pytest.raises(InvalidValueError, match=r"\$2"):
        bind_values([Param(1)], ["only one"])
    with pytest.raises(InvalidValueError, match="list"):
        bind_values([Param("ids", is_list=True)], {"ids": "abc"})


def test_cache_is_bounded_by_count_and_bytes() -> None:
    cache: PlanCache[int] = PlanCache(max_entries=3, max_bytes=1 << 30)
    for i in range(5):
        cache.put(("k", i), i)
    assert len(cache) == 3 and cache.get(("k", 0)) is None and cache.get(("k", 4)) == 4
    small: PlanCache[int] = PlanCache(max_entries=100, max_bytes=10_000)
    for i in range(50):
        small.put(("k", i), i, text_size=1000)
    assert small.size_bytes <= 10_000 and len(small) < 50 and small.evictions > 0


@pytest.mark.parametrize(
    ("value", "mysql", "postgres"),
    [
        (None, "NULL", "NULL"),
        (True, "TRUE", "TRUE"),
        (-5, "-5", "-5"),
        (Decimal("12.50"), "12.50", "12.50"),
        ("it's", "'it\\'s'", "'it''s'"),
        ("back\\slash", "'back\\\\slash'", "'back\\slash'"),
        (b"\x00\xff", "X'00ff'", "'\\x00ff'::bytea"),
        ((1, "a"), "1, 'a'", "1, 'a'"),
        (dt.date(2024, 2, 29), "'2024-02-29'", "'2024-02-29'::date"),
        (float("nan"), None, "'NaN'::float8"),
    ],
)
def test_literals_are_encoded_per_dialect(value: object, mysql: str | None, postgres: str) -> None:
    if mysql is None:
        with pytest.raises(InvalidValueError):
            encode_mysql(value)
    else:
        assert encode_mysql(value) == mysql
    assert encode_postgres(value) == postgres


def test_postgres_text_cannot_hold_nul() -> None:
    with pytest.raises(InvalidValueError):
        encode_postgres("a\0b")


def test_syntax_errors_point_into_the_clients_text(snapshot: ClusterSnapshot) -> None:
    with pytest.raises(SyntaxError_) as info:
        Planner().plan("SELECT * FROM customer WHERE id = 'unterminated", SESSION, snapshot)
    assert info.value.position == 35
    with pytest.raises(SyntaxError_) as info:
        Planner().plan("SELECT * FROM customer WHERE", SESSION, snapshot)
    assert info.value.position is not None


def test_statements_sqlglot_does_not_understand_are_refused_by_name(snapshot: ClusterSnapshot) -> None:
    with pytest.raises(UnsupportedError, match="LOCK"):
        Planner().plan("LOCK TABLES customer READ", SESSION, snapshot)


def test_explain_fills_in_values_and_shards(snapshot: ClusterSnapshot) -> None:
    bound = Planner().plan("SELECT * FROM customer WHERE id = 4", SESSION, snapshot)
    out = explain(bound, snapshot)
    top = out["Instructions"]
    assert (top["OperatorType"], top["Variant"], top["Vindex"], top["Values"]) == ("Route", "EqualUnique", "hash",
                                                                                  ["4"])
    assert top["Shards"] == ["80-"] and top["Query"].endswith("= 4")
    assert out["TablesUsed"] == ["customer.customer"]


def test_plan_command_reads_statements_from_stdin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from shardgate.cli import main

    path = tmp_path / "vschema.json"
    path.write_text(json.dumps(VSCHEMA))
    monkeypatch.setattr(sys, "stdin", io.StringIO("SELECT * FROM customer WHERE id = 1\nSELEC garbage\n\n"
                                                  "SELECT * FROM nosuch\n"))
    code = main(["plan", "--vschema", str(path), "--keyspace", "customer", "--shards=customer=-80,80-", "-"])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and err == ""
    assert lines[0]["Instructions"]["Shards"] == ["-80"]
    assert "error" in lines[1] and "SG2001" in lines[1]["error"]
    assert "error" in lines[2] and "nosuch" in lines[2]["error"]


MULTICOL = {
    "keyspaces": {"ks": {"sharded": True,
                         "vindexes": {"mc": {"type": "multicol", "params": {"column_count": "2"}}},
                         "tables": {"t": {"column_vindexes": [{"columns": ["a", "b"], "name": "mc"}]}}}}
}


@pytest.mark.parametrize("where", ["a = 1 AND b = 2", "a IN (1, 3) AND b = 2", "a = 1 AND b IN (2, 4)",
                                   "(a, b) IN ((1, 2), (3, 4))", "a = 1", "a IN (1, 3)"])
def test_multicolumn_routes_reach_every_row_they_match(where: str) -> None:
    from sharding.vindexes import registry

    snap = ClusterSnapshot.build(1, parse_vschema(MULTICOL), {"ks": ["-40", "40-80", "80-c0", "c0-"]})
    bound = Planner().plan(f"SELECT * FROM t WHERE {where}", SessionView(keyspace="ks"), snap)
    resolved = resolve_route(bound.plan.root.routing, bound.binds, snap)  # type: ignore[attr-defined]
    assert isinstance(resolved, ResolvedRoute)
    vindex = registry.create("multicol", "mc", {"column_count": "2"})[0]
    # Every (a, b) pair the WHERE can match must live on a shard the route reaches.
    candidates = [(a, b) for a in (1, 3) for b in (2, 4)]
    names = {s.name for s in resolved.shards}
    for a, b in candidates:
        matches = eval(where.replace("=", "==").replace("AND", "and").replace(" IN ", " in "),
                       {"a": a, "b": b})
        if matches:
            (dest,) = vindex.map_rows([(a, b)])  # type: ignore[attr-defined]
            assert snap.shard_for_ksid("ks", dest.ksid).name in names, (where, a, b)


@pytest.mark.parametrize(("sql", "params", "expected"), [
    ("SELECT * FROM customer WHERE id IN ::ids", {"ids": [1, 4]}, "IN (1, 4)"),
    ("SELECT * FROM customer WHERE (id, email) IN ::rows", {"rows": [(1, "a"), (4, "b")]},
     "IN ((1, 'a'), (4, 'b'))"),
])
def test_list_parameters_render_with_parentheses(snapshot: ClusterSnapshot, sql: str, params: dict[str, object],
                                                  expected: str) -> None:
    bound = Planner().plan(sql, SESSION, snapshot, params=params)
    route = bound.plan.root
    assert route.query.render(bound.binds, "mysql").endswith(expected)  # type: ignore[attr-defined]


def test_executable_comments_are_planned_as_mysql_runs_them(snapshot: ClusterSnapshot) -> None:
    bound = Planner().plan("SELECT * FROM customer WHERE id = 1 /*!50000 UNION SELECT * FROM ref */",
                           SESSION, snapshot)
    assert "customer.ref" in bound.plan.tables  # the hidden table is seen (for routing and ACLs)


def test_cte_names_shadow_tables_only_in_their_own_query(snapshot: ClusterSnapshot) -> None:
    sql = "SELECT id FROM ref WHERE id IN (WITH ref AS (SELECT 1 AS id) SELECT id FROM ref)"
    bound = Planner().plan(sql, SESSION, snapshot)
    assert "customer.ref" in bound.plan.tables
    with pytest.raises(UnsupportedError, match="writes"):
        Planner().plan("WITH x AS (DELETE FROM customer RETURNING id) SELECT * FROM x",
                       SessionView(dialect="postgres", keyspace="customer"), snapshot)
