"""Casts of statement values (``$1::bigint``, ``CAST(%s AS SIGNED)``, how ORMs type placeholders) still pick a
shard, with exact conversions only: the router never guesses at a database's rounding."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from router.planner import Planner, SessionView
from router.planner.values import CastValue, Const, cast_value, evaluate
from sharding.errors import InvalidValueError
from sharding.snapshot import ClusterSnapshot
from tests.unit.planner.conftest import snapshot_for

VSCHEMA = {"keyspaces": {"shop": {"sharded": True, "vindexes": {"hash": {"type": "hash"}},
                                  "tables": {"person": {"column_vindexes": [{"column": "pid", "name": "hash"}]}}}}}


@pytest.fixture(scope="module")
def snapshot() -> ClusterSnapshot:
    return snapshot_for(VSCHEMA)


def _variant(sql: str, snapshot: ClusterSnapshot, dialect: str, params: list[Any] | None = None) -> Any:
    bound = Planner().plan(sql, SessionView(dialect=dialect, keyspace="shop"), snapshot, params)
    return bound.plan.root.describe()["Variant"]


@pytest.mark.parametrize(("sql", "dialect", "params"), [
    ("select * from person where pid = $1::bigint", "postgres", [7]),
    ("select * from person where pid = CAST($1 AS int)", "postgres", ["7"]),
    ("select * from person where pid = '7'::bigint", "postgres", None),
    ("select * from person where pid = CAST(? AS SIGNED)", "mysql", [7]),
    ("select * from person where pid = CAST(7 AS UNSIGNED)", "mysql", None),
])
def test_a_cast_value_routes_to_one_shard(sql: str, dialect: str, params: Any, snapshot: ClusterSnapshot) -> None:
    assert _variant(sql, snapshot, dialect, params) == "EqualUnique"


def test_casts_the_router_cannot_do_exactly_are_left_to_the_database(snapshot: ClusterSnapshot) -> None:
    assert _variant("select * from person where pid = $1::varchar(3)", snapshot, "postgres", ["7"]) == "Scatter"
    assert _variant("select * from person where pid = $1::numeric", snapshot, "postgres", [7]) == "Scatter"


def test_an_inexact_cast_of_a_value_is_an_error_not_a_guess(snapshot: ClusterSnapshot) -> None:
    # The literal becomes a statement value (the plan is shared by every literal), so it is judged at bind time.
    bound = Planner().plan("select * from person where pid = 7.5::bigint", SessionView(dialect="postgres"), snapshot)
    with pytest.raises(InvalidValueError):
        [evaluate(v, bound.binds) for v in bound.plan.root.routing.values]


def test_insert_with_cast_placeholders_routes_each_row(snapshot: ClusterSnapshot) -> None:
    bound = Planner().plan("INSERT INTO person (pid, name) VALUES ($1::BIGINT, $2::VARCHAR), ($3::BIGINT, $4)",
                           SessionView(dialect="postgres", keyspace="shop"), snapshot, [1, "a", 2, "b"])
    assert bound.plan.root.describe()["Variant"] == "Sharded"


@pytest.mark.parametrize(("value", "to", "want"), [
    (5, "int", 5), ("  -12 ", "int", -12), (Decimal("3.000"), "int", 3), (4.0, "int", 4), (None, "int", None),
    ("x", "text", "x"), (9, "text", "9"), (5, "uint", 5),
])
def test_exact_casts(value: Any, to: str, want: Any) -> None:
    assert cast_value(value, to) == want
    assert evaluate(CastValue(Const(value), to), []) == want


@pytest.mark.parametrize(("value", "to"), [
    (Decimal("1.5"), "int"), (2.5, "int"), ("1.0", "int"), ("5abc", "int"), (True, "int"), (-1, "uint"),
    (Decimal("1"), "text"), (b"x", "text"), (float("nan"), "int"),
])
def test_inexact_casts_are_errors(value: Any, to: str) -> None:
    with pytest.raises(InvalidValueError):
        cast_value(value, to)
