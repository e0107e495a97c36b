"""Value expressions: what a plan holds where a query had a value, evaluated when the plan is bound.

A cached plan never holds the literals of the statement it was built from. The fingerprint replaced each literal
(and each bind parameter) with a numbered placeholder ``:vN``; the plan refers to it as ``Arg(N-1)``, and binding
reads the N-th value of the statement at hand. Vitess calls these evalengine expressions; ours are deliberately
few, because anything the planner cannot evaluate simply does not drive routing (the route falls back to a wider
one, never to a wrong one):

- ``Const``, ``Arg``, ``TupleExpr``: a value, a statement value, a list of values;
- ``JoinVar``, ``ListVar``: run-time values (a join's left row, a pulled-out subquery's result);
- ``TupleColumn``: position ``index`` of every tuple of a list (``(a, b) IN ::vals`` routes ``a`` by ``vals:0``,
  Vitess ``TupleBindVariable``);
- ``Arith``: ``+ - *`` over exact numbers (``id = 5 + 5`` routes by 10, ``LIMIT 1 + 1``), computed when the plan is
  bound with the database's own arithmetic (``router.planner.evalexpr.arith``). Routing plans one only from
  operands that are exact numbers (int, Decimal) and records an ``ExactNumbers`` guard, so that a cached plan is
  reused only for statements whose operands are exact numbers too (``'5' + 5`` is a DOUBLE in MySQL).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

from sharding.errors import InvalidValueError


@dataclass(frozen=True, slots=True)
class Const:
    """A value fixed at plan time (a literal kept in the fingerprint, e.g. NULL, or a folded constant)."""

    value: Any

    def describe(self) -> str:
        return _sql_repr(self.value)


@dataclass(frozen=True, slots=True)
class Arg:
    """The statement's ``index``-th extracted value (placeholder ``:v{index+1}``)."""

    index: int

    def describe(self) -> str:
        return f":v{self.index + 1}"


@dataclass(frozen=True, slots=True)
class TupleExpr:
    """A list of values, e.g. the right side of ``IN (...)`` when it was not folded into one argument."""

    items: tuple[ValueExpr, ...]

    def describe(self) -> str:
        return "(" + ", ".join(item.describe() for item in self.items) + ")"


@dataclass(frozen=True, slots=True)
class JoinVar:
    """A value taken from the current left-side row of a nested-loop join (Vitess ``:u_col`` bind vars)."""

    name: str

    def describe(self) -> str:
        return f":{self.name}"


@dataclass(frozen=True, slots=True)
class ListVar:
    """A list computed at run time (pulled-out subquery values, DML input), Vitess ``::name``."""

    name: str

    def describe(self) -> str:
        return f"::{self.name}"


@dataclass(frozen=True, slots=True)
class TupleColumn:
    """Position ``index`` (0-based) of every tuple of the list ``items`` evaluates to, as a list: the values one
    column of ``(a, b) IN ::vals`` takes (Vitess ``TupleBindVariable``, printed ``vals:0``)."""

    items: ValueExpr
    index: int

    def describe(self) -> str:
        return f"{self.items.describe().lstrip(':')}:{self.index}"


ARITH_OPS = ("+", "-", "*")


@dataclass(frozen=True, slots=True)
class Arith:
    """``left op right`` for ``op`` in ``+ - *``, with the dialect's arithmetic: exact for int and Decimal,
    NULL for a NULL operand, an error outside BIGINT (as the database raises). Operands must be numbers."""

    op: str
    left: ValueExpr
    right: ValueExpr
    dialect: str = "mysql"

    def describe(self) -> str:
        return f"{_operand(self.left)} {self.op} {_operand(self.right)}"


@dataclass(frozen=True, slots=True)
class CastValue:
    """``CAST(value AS type)`` of a statement value to an integer or a text type, as ORMs write placeholders
    (``%(id)s::BIGINT``). Only exact conversions: an integer from an integer, an integral number or a string of
    digits; text from text or an integer. Anything else is an error, never a guess at the database's rounding."""

    value: ValueExpr
    to: str  # "int" | "uint" | "text"
    type_sql: str = ""

    def describe(self) -> str:
        return f"CAST({self.value.describe()} AS {self.type_sql or self.to})"


_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")


def cast_value(value: Any, to: str) -> Any:
    if value is None:
        return None
    if to in ("int", "uint"):
        number = _exact_int(value)
        if to == "uint" and number < 0:  # MySQL wraps a negative around 2**64: not a value a vindex should see
            raise InvalidValueError(f"cannot cast {value!r} to an unsigned integer here")
        return number
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidValueError(f"cannot cast {value!r} to text here")


def _exact_int(value: Any) -> int:
    if not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
            return int(value)
    raise InvalidValueError(f"cannot cast {value!r} to an integer exactly")


def _operand(expr: ValueExpr) -> str:
    text = expr.describe()
    return f"({text})" if type(expr) is Arith else text


ValueExpr: TypeAlias = Const | Arg | TupleExpr | JoinVar | ListVar | TupleColumn | Arith | CastValue


def is_exact_number(v: Any) -> bool:
    """An int (not a boolean) or a finite Decimal: a number whose arithmetic is exact in every dialect."""
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, Decimal) and v.is_finite())


@dataclass(frozen=True, slots=True)
class ExactNumbers:
    """Guard: the statement values at ``indices`` are exact numbers or NULL. A plan that routes by an ``Arith``
    over them computed the value the database computes; for other values (``'5' + 5`` is a DOUBLE in MySQL) the
    statement is planned afresh."""

    indices: tuple[int, ...]

    def holds(self, binds: Sequence[Any]) -> bool:
        for i in self.indices:
            if i >= len(binds):
                return False
            v = binds[i]
            if v is not None and not is_exact_number(v):
                return False
        return True


def evaluate(expr: ValueExpr, binds: Sequence[Any], env: dict[str, Any] | None = None) -> Any:
    """The value of ``expr`` for one execution. Folded IN lists bind as tuples."""
    if type(expr) is Arg:
        try:
            return binds[expr.index]
        except IndexError:
            raise InvalidValueError(f"missing value for placeholder :v{expr.index + 1}") from None
    if type(expr) is Const:
        return expr.value
    if type(expr) is TupleExpr:
        out: list[Any] = []
        for item in expr.items:
            value = evaluate(item, binds, env)
            # An item that is itself a folded list (``IN (:v1)``) contributes its elements.
            if type(item) is Arg and isinstance(value, tuple):
                out.extend(value)
            else:
                out.append(value)
        return tuple(out)
    if type(expr) in (JoinVar, ListVar):
        if env is None or expr.name not in env:  # type: ignore[union-attr]
            raise InvalidValueError(f"run-time value {expr.describe()} is not available")
        return env[expr.name]  # type: ignore[union-attr]
    if type(expr) is TupleColumn:
        return _tuple_column(expr, evaluate(expr.items, binds, env))
    if type(expr) is Arith:
        return _arith(expr, evaluate(expr.left, binds, env), evaluate(expr.right, binds, env))
    if type(expr) is CastValue:
        return cast_value(evaluate(expr.value, binds, env), expr.to)
    raise TypeError(f"not a value expression: {expr!r}")


def _tuple_column(expr: TupleColumn, items: Any) -> tuple[Any, ...]:
    if not isinstance(items, (tuple, list)):
        items = (items,)
    out = []
    for item in items:
        if isinstance(item, (str, bytes, bytearray)) or not isinstance(item, Sequence) or len(item) <= expr.index:
            raise InvalidValueError(f"{expr.items.describe()} must be a list of tuples of at least "
                                    f"{expr.index + 1} values, not {item!r}")
        out.append(item[expr.index])
    return tuple(out)


def _arith(expr: Arith, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if not (is_exact_number(a) and is_exact_number(b)):
        raise InvalidValueError(f"{expr.describe()} needs numbers, not {a!r} and {b!r}")
    from router.planner.evalexpr import arith

    return arith(expr.op, a, b, expr.dialect)


def _sql_repr(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bytes):
        return "x'" + value.hex() + "'"
    if isinstance(value, tuple):
        return "(" + ", ".join(_sql_repr(v) for v in value) + ")"
    return str(value)
