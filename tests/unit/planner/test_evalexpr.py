"""Router-side expressions (``router.planner.evalexpr``): SQL semantics per dialect, exactness, and plan-time errors.

Expected values come from the databases' documented behaviour (MySQL 8 / MariaDB and PostgreSQL 15): MySQL's
DECIMAL division scale (dividend's scale + ``div_precision_increment`` 4), PostgreSQL's ``select_div_scale``
(``numeric.c``), three-valued logic, and each database's NULL rules for CONCAT/GREATEST.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st
from sqlglot import exp

from router.planner import evalexpr as ev
from sharding.errors import InvalidValueError, UnsupportedError


def compile_(sql: str, dialect: str = "mysql", columns: list[str] | None = None) -> ev.Expr:
    """Compile ``sql``; column names in ``columns`` read the row at their index."""
    names = columns or []

    def resolve(node: exp.Expression) -> ev.Expr | None:
        if isinstance(node, exp.Column) and node.name in names:
            return ev.Col(names.index(node.name))
        return None

    select = sqlglot.parse_one(f"SELECT {sql}", read=dialect)
    assert isinstance(select, exp.Select)
    return ev.compile_expr(select.expressions[0], dialect, resolve)


def run(sql: str, dialect: str = "mysql", row: tuple[Any, ...] = (), binds: tuple[Any, ...] = (),
        columns: list[str] | None = None) -> Any:
    return compile_(sql, dialect, columns).evaluate(row, binds)


# --- three-valued logic ---------------------------------------------------------------------------------------------
TRI = [True, False, None]


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


@pytest.mark.parametrize("dialect", ["mysql", "postgres"])
@pytest.mark.parametrize("a", TRI)
@pytest.mark.parametrize("b", TRI)
def test_and_or_not_follow_three_valued_logic(dialect: str, a: bool | None, b: bool | None) -> None:
    cols = ["a", "b"]
    assert run("a and b", dialect, (a, b), columns=cols) == _and(a, b)
    assert run("a or b", dialect, (a, b), columns=cols) == _or(a, b)
    expected_not = None if a is None else not a
    assert run("not a", dialect, (a, b), columns=cols) == expected_not
    # De Morgan holds in three-valued logic too
    assert run("not (a and b)", dialect, (a, b), columns=cols) == run("(not a) or (not b)", dialect, (a, b),
                                                                       columns=cols)


def test_xor_and_mysql_truth_of_numbers_and_strings() -> None:
    assert run("1 xor 0") is True and run("1 xor 1") is False and run("null xor 1") is None
    assert run("a and 1", row=("2abc",), columns=["a"]) is True  # MySQL reads the numeric prefix
    assert run("a and 1", row=("abc",), columns=["a"]) is False
    assert run("a or 0", row=(Decimal("0.0"),), columns=["a"]) is False
    with pytest.raises(InvalidValueError):
        run("a and true", "postgres", row=("maybe",), columns=["a"])


def test_is_null_and_is_true_are_never_null() -> None:
    assert run("a is null", row=(None,), columns=["a"]) is True
    assert run("a is not null", row=(None,), columns=["a"]) is False
    assert run("a is true", row=(None,), columns=["a"]) is False
    assert run("a is not false", row=(None,), columns=["a"]) is True


# --- comparisons ------------------------------------------------------------------------------------------------
def test_numbers_compare_exactly_across_types() -> None:
    assert run("a = b", row=(1, Decimal("1.00")), columns=["a", "b"]) is True
    assert run("a < b", row=(2**63, Decimal("9223372036854775808.5")), columns=["a", "b"]) is True
    # exact against approximate compares as DOUBLE, as both databases do: 0.1 = 0.1e0
    assert run("a = b", row=(Decimal("0.1"), 0.1), columns=["a", "b"]) is True
    assert run("a = null", row=(1,), columns=["a"]) is None


def test_mysql_compares_strings_with_numbers_as_doubles() -> None:
    assert run("a = 10", row=("10",), columns=["a"]) is True
    assert run("a = 0", row=("abc",), columns=["a"]) is True
    assert run("a > 9", row=("10x",), columns=["a"]) is True


def test_postgres_reads_a_string_literal_as_the_other_side_s_type() -> None:
    assert run("a > '9'", "postgres", row=(10,), columns=["a"]) is True
    with pytest.raises(InvalidValueError, match="invalid input syntax"):
        run("a > 'x'", "postgres", row=(10,), columns=["a"])


def test_text_comparison_needs_a_known_collation() -> None:
    with pytest.raises(UnsupportedError, match="collation"):
        run("a = 'x'", row=("X",), columns=["a"])  # MySQL's default collation ignores case: unknown here
    assert run("a collate utf8mb4_bin = 'x '", row=("x",), columns=["a"]) is True  # PAD SPACE
    assert run("a collate utf8mb4_0900_bin = 'x '", row=("x",), columns=["a"]) is False  # NO PAD
    assert run("a collate utf8mb4_0900_bin < 'b'", row=("B",), columns=["a"]) is True
    assert run("a = 'x'", "postgres", row=("x",), columns=["a"]) is True  # deterministic: byte equality
    assert run("a <> 'x'", "postgres", row=("X",), columns=["a"]) is True
    with pytest.raises(UnsupportedError, match="collation"):
        run("a < 'x'", "postgres", row=("X",), columns=["a"])
    assert run("a collate \"C\" < 'a'", "postgres", row=("B",), columns=["a"]) is True
    with pytest.raises(UnsupportedError, match="en_US"):
        run("a collate \"en_US\" < 'a'", "postgres", row=("B",), columns=["a"])


def test_null_safe_equality() -> None:
    assert run("a <=> b", row=(None, None), columns=["a", "b"]) is True
    assert run("a <=> b", row=(1, None), columns=["a", "b"]) is False
    assert run("a is distinct from b", "postgres", row=(1, None), columns=["a", "b"]) is True
    assert run("a is not distinct from b", "postgres", row=(None, None), columns=["a", "b"]) is True


def test_dates_compare_with_string_literals() -> None:
    when = dt.datetime(2024, 5, 1, 12, 0)
    assert run("a > '2024-05-01'", row=(when,), columns=["a"]) is True
    assert run("a = '2024-05-01 12:00:00'", "postgres", row=(when,), columns=["a"]) is True
    assert run("a < b", row=(dt.date(2024, 5, 1), when), columns=["a", "b"]) is True


def test_in_between_and_nulls() -> None:
    assert run("2 in (1, null)") is None
    assert run("2 in (2, null)") is True
    assert run("2 not in (1, null)") is None
    assert run("2 not in (1, 3)") is True
    assert run("null in (1)") is None
    assert run("a in (:v1)", row=(3,), binds=((1, 2, 3),), columns=["a"]) is True  # a folded list
    assert run("a between 1 and null", row=(5,), columns=["a"]) is None
    assert run("a between 1 and null", row=(0,), columns=["a"]) is False
    assert run("a not between 1 and 3", row=(5,), columns=["a"]) is True


def test_like() -> None:
    assert run("a like 'a%'", "postgres", row=("abc",), columns=["a"]) is True
    assert run("a like 'A%'", "postgres", row=("abc",), columns=["a"]) is False  # case-sensitive
    assert run("a like 'a_c'", "postgres", row=("a\nc",), columns=["a"]) is True
    assert run("a like 'a!%' escape '!'", "postgres", row=("a%",), columns=["a"]) is True
    assert run("a like 'a\\\\%'", "postgres", row=("ab",), columns=["a"]) is False
    assert run("a not like '%b%'", "postgres", row=("abc",), columns=["a"]) is False
    assert run("a like null", "postgres", row=("abc",), columns=["a"]) is None
    with pytest.raises(UnsupportedError, match="collation"):
        run("a like 'a%'", row=("ABC",), columns=["a"])
    assert run("a collate utf8mb4_bin like 'a%'", row=("abc",), columns=["a"]) is True


# --- arithmetic ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sql", "dialect", "expected"), [
    ("1 / 3", "mysql", Decimal("0.3333")),
    ("2 / 3", "mysql", Decimal("0.6667")),
    ("10.50 / 3", "mysql", Decimal("3.500000")),
    ("1 / 0", "mysql", None),
    ("7 div 2", "mysql", 3),
    ("-7 div 2", "mysql", -3),
    ("-7 % 3", "mysql", -1),
    ("7 % 0", "mysql", None),
    ("'3' + 1", "mysql", 4.0),
    ("9223372036854775807 + 0", "mysql", 9223372036854775807),
    ("7 / 2", "postgres", 3),
    ("-7 / 2", "postgres", -3),
    ("7.0 / 2", "postgres", Decimal("3.5000000000000000")),
    ("1.0 / 3", "postgres", Decimal("0.33333333333333333333")),
    ("2 / 3.0", "postgres", Decimal("0.66666666666666666667")),
    ("10 / 4.0", "postgres", Decimal("2.5000000000000000")),
    ("100.0 / 3", "postgres", Decimal("33.3333333333333333")),
    ("-7 % 3", "postgres", -1),
    ("1.5 * 2", "postgres", Decimal("3.0")),
    ("0.1 + 0.2", "mysql", Decimal("0.3")),
    ("1 + null", "mysql", None),
    ("1.5e0 + 1", "mysql", 2.5),
])
def test_arithmetic(sql: str, dialect: str, expected: Any) -> None:
    got = run(sql, dialect)
    assert got == expected and type(got) is type(expected), (sql, got)
    if isinstance(expected, Decimal):
        assert str(got) == str(expected)


def test_postgres_division_by_zero_raises() -> None:
    with pytest.raises(InvalidValueError, match="division by zero"):
        run("a / 0", "postgres", row=(1,), columns=["a"])


def test_bigint_overflow_raises() -> None:
    with pytest.raises(InvalidValueError, match="BIGINT"):
        run("a + 1", row=(2**63 - 1,), columns=["a"])
    with pytest.raises(InvalidValueError, match="bigint"):
        run("a * 2", "postgres", row=(2**62,), columns=["a"])


@given(st.integers(-10**20, 10**20), st.integers(-10**6, 10**6).filter(bool))
def test_mysql_division_is_exact_then_rounded_half_up(a: int, b: int) -> None:
    got = ev.arith("/", a, b, "mysql")
    scaled = Fraction(a, b) * 10**4
    q, r = divmod(abs(scaled.numerator), scaled.denominator)
    if 2 * r >= scaled.denominator:
        q += 1
    assert got == Decimal(q if scaled >= 0 else -q).scaleb(-4)


@given(st.decimals(min_value=-10**9, max_value=10**9, places=3, allow_nan=False),
       st.integers(1, 10**6))
def test_avg_divide_matches_each_database(total: Decimal, count: int) -> None:
    mysql = ev.avg_divide(total, count, "mysql")
    assert abs(Fraction(mysql) - Fraction(total) / count) <= Fraction(1, 2 * 10**7)
    assert -mysql.as_tuple().exponent == 3 + 4  # the sum's scale + 4
    pg = ev.avg_divide(total, count, "postgres")
    assert abs(Fraction(pg) - Fraction(total) / count) <= Fraction(1, 2) * Fraction(10) ** pg.as_tuple().exponent
    assert -pg.as_tuple().exponent >= 3  # never less than the dividend's display scale


def test_avg_divide_examples() -> None:
    assert str(ev.avg_divide(3, 2, "postgres")) == "1.5000000000000000"
    assert str(ev.avg_divide(1, 1, "postgres")) == "1.00000000000000000000"
    assert str(ev.avg_divide(Decimal(10), 4, "postgres")) == "2.5000000000000000"
    assert str(ev.avg_divide(3, 2, "mysql")) == "1.5000"
    assert str(ev.avg_divide(Decimal("-10.50"), 4, "mysql")) == "-2.625000"
    assert ev.avg_divide(3.0, 2, "mysql") == 1.5
    assert ev.avg_divide(None, 0, "mysql") is None and ev.avg_divide(5, 0, "postgres") is None


# --- functions and CASE ---------------------------------------------------------------------------------------------
def test_case_if_coalesce_nullif() -> None:
    assert run("case when a > 1 then 'big' when a > 0 then 'small' end", row=(1,), columns=["a"]) == "small"
    assert run("case when a > 1 then 'big' end", row=(0,), columns=["a"]) is None
    assert run("case a when 1 then 'one' else 'other' end", row=(1,), columns=["a"]) == "one"
    assert run("case a when null then 'null' else 'other' end", row=(None,), columns=["a"]) == "other"
    assert run("if(a, 'y', 'n')", row=(None,), columns=["a"]) == "n"
    assert run("coalesce(a, b, 3)", row=(None, None), columns=["a", "b"]) == 3
    assert run("ifnull(a, 2)", row=(None,), columns=["a"]) == 2
    assert run("nullif(a, 1)", row=(1,), columns=["a"]) is None
    assert run("nullif(a, 1)", row=(2,), columns=["a"]) == 2


def test_string_functions_per_dialect() -> None:
    assert run("concat(a, 'x')", row=(None,), columns=["a"]) is None
    assert run("concat(a, 'x')", "postgres", row=(None,), columns=["a"]) == "x"
    assert run("a || 'x'", "postgres", row=(None,), columns=["a"]) is None
    assert run("concat_ws('-', a, 'b', null)", row=("a",), columns=["a"]) == "a-b"
    assert run("length('é')") == 2 and run("char_length('é')") == 1 and run("length('é')", "postgres") == 1
    assert run("substring('hello', 2, 3)") == "ell"
    assert run("substring('hello', -3)") == "llo"
    assert run("substring('hello' from 0 for 3)", "postgres") == "he"
    assert run("lower('ÀB')") == "àb" and run("upper('ab')") == "AB"
    assert run("trim('  x  ')") == "x" and run("ltrim('  x')") == "x" and run("rtrim('x  ')") == "x"
    assert run("left('hello', 2)") == "he" and run("right('hello', 2)") == "lo"
    assert run("replace('aXbX', 'X', '-')") == "a-b-"
    assert run("greatest(1, null, 3)") is None and run("greatest(1, null, 3)", "postgres") == 3
    assert run("least(2, 1, 3)") == 1


def test_numeric_functions() -> None:
    assert run("round(2.5)") == 3 and run("round(-2.5)") == -3  # exact values: half away from zero
    assert run("round(1.2345, 2)") == Decimal("1.23") and run("round(1.235, 2)") == Decimal("1.24")
    assert run("abs(-3)") == 3
    assert run("floor(-1.5)") == -2 and run("ceil(1.2)") == 2
    assert run("mod(7, 3)") == 1


def test_cast() -> None:
    assert run("cast(2.5 as signed)") == 3
    assert run("cast(-2.5 as signed)") == -3
    assert run("cast('12abc' as signed)") == 12
    assert run("cast(-1 as unsigned)") == 2**64 - 1
    assert run("cast(1.25 as decimal(5, 1))") == Decimal("1.3")
    assert run("cast(7 as decimal)") == Decimal(7)
    assert run("cast(12 as char)") == "12"
    assert run("cast('2024-05-01 10:00:00' as date)") == dt.date(2024, 5, 1)
    assert run("cast('2024-05-01' as datetime)") == dt.datetime(2024, 5, 1)
    assert run("cast('12' as int)", "postgres") == 12
    with pytest.raises(InvalidValueError):
        run("cast('12abc' as int)", "postgres")
    assert run("cast(2.5 as int)", "postgres") == 3  # numeric rounds half away from zero
    assert run("cast(2.5e0 as int)", "postgres") == 2  # double precision: rint(), half to even
    with pytest.raises(InvalidValueError, match="out of range"):
        run("cast(123.4 as decimal(3, 1))")
    assert run("cast('t' as boolean)", "postgres") is True


# --- plan time ------------------------------------------------------------------------------------------------------
def test_constants_are_folded_and_binds_are_not() -> None:
    folded = compile_("1 + 2 * 3")
    assert isinstance(folded, ev.Lit) and folded.value == 7
    node = compile_(":v1 + 1")
    assert isinstance(node, ev.Arith) and node.describe() == ":v1 + 1"
    assert node.evaluate((), (41,)) == 42


def test_describe() -> None:
    assert compile_("a + 1 > :v2 and b is not null", columns=["a", "b"]).describe() == \
        "(([0] + 1) > :v2) and ([1] is not null)"
    assert compile_("case when a then 'x' end", columns=["a"]).describe() == "case when [0] then 'x' end"
    assert compile_("cast(a as decimal(10, 2))", columns=["a"]).describe() == "cast([0] as decimal(10, 2))"
    assert compile_("a not in (1, 2)", columns=["a"]).describe() == "[0] not in (1, 2)"


@pytest.mark.parametrize("sql", [
    "rand()", "x + 1", "count(*)", "(select 1)", "a in (select 1)", "now()", "a ilike 'x'",
    "cast(a as json)", "sum(a) over ()",
])
def test_unsupported_is_a_plan_time_error(sql: str) -> None:
    with pytest.raises(UnsupportedError):
        compile_(sql, "postgres" if "ilike" in sql else "mysql", columns=["a"])


def test_missing_bind_is_an_error() -> None:
    with pytest.raises(InvalidValueError, match=":v3"):
        run(":v3 + 1", binds=(1,))


# --- the engine's comparison ------------------------------------------------------------------------------------
def test_compare_for_order() -> None:
    assert ev.compare_for_order(1, Decimal("1.5")) == -1
    assert ev.compare_for_order(b"a", b"b") == -1
    assert ev.compare_for_order("B", "a", "C") == -1  # code point order
    assert ev.compare_for_order("a ", "a", "utf8mb4_bin") == 0  # PAD SPACE
    with pytest.raises(UnsupportedError):
        ev.compare_for_order("a", "b")  # text without a known collation
    with pytest.raises(UnsupportedError):
        ev.compare_for_order("a", 1, "C")


@given(st.lists(st.one_of(st.integers(-1000, 1000), st.decimals(-1000, 1000, places=2, allow_nan=False)),
                min_size=2, max_size=8))
def test_compare_values_agrees_with_exact_order(values: list[Any]) -> None:
    for a in values:
        for b in values:
            c = ev.compare_values(a, b, "mysql")
            assert c == (Fraction(a) > Fraction(b)) - (Fraction(a) < Fraction(b))


def test_pg_div_scale_examples() -> None:
    assert ev.pg_div_scale(Decimal(1), Decimal(3)) == 20
    assert ev.pg_div_scale(Decimal(3), Decimal(2)) == 16
    assert ev.pg_div_scale(Decimal("100.0"), Decimal(3)) == 16
    assert ev.pg_div_scale(Decimal("0.5"), Decimal(7)) == 20
