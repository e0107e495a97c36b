"""Value expressions: what a plan holds where a query had a value, evaluated when the plan is bound.

A cached plan never holds the literals of the statement it was built from. The fingerprint replaced each literal
(and each bind parameter) with a numbered placeholder ``:vN``; the plan refers to it as ``Arg(N-1)``, and binding
reads the N-th value of the statement at hand. Vitess calls these evalengine expressions; ours are deliberately
few, because anything the planner cannot evaluate simply does not drive routing (the route falls back to a wider
one, never to a wrong one).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


ValueExpr: TypeAlias = Const | Arg | TupleExpr | JoinVar | ListVar


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
    raise TypeError(f"not a value expression: {expr!r}")


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
