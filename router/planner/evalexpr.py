"""Router-side expressions: sqlglot expressions compiled once, at plan time, into small frozen trees that evaluate
over one row (column offsets) and the bind values of one execution (Vitess ``evalengine.Translate``).

The router evaluates what no shard can: HAVING over merged aggregates, projections over them (``count(*) + 1``,
AVG's final division) and the value comparisons the engine's merges need. Every node has ``evaluate(row, binds)``
and ``describe()``; a construct this module cannot evaluate exactly is an ``UnsupportedError`` when the plan is
built, never a guess when it runs.

Semantics follow the SQL dialect the expression was written in (``mysql`` or ``postgres``):

- NULL: three-valued AND/OR/NOT/XOR; arithmetic, comparisons and most functions return NULL for a NULL operand.
- Numbers: ``int`` and ``Decimal`` are exact (Decimal work uses a 1000-digit context; division is done on exact
  integer ratios), ``float`` is approximate; an operation mixing exact and approximate values is approximate, as
  in both databases. MySQL: a string operand of arithmetic is read as a DOUBLE (its numeric prefix, else 0);
  integer results outside BIGINT raise. PostgreSQL: a string (an untyped literal) is read as the other operand's
  type, strictly; bigint overflow raises.
- Division: MySQL ``/`` on exact values is DECIMAL with the dividend's scale + 4 (``div_precision_increment``),
  rounded half up; ``DIV`` truncates; a zero divisor gives NULL. PostgreSQL integer ``/`` truncates toward zero,
  numeric ``/`` has ``select_div_scale``'s scale (at least 16 significant digits), rounded half away from zero; a
  zero divisor raises. ``avg_divide`` is AVG's final step (SUM / COUNT) with each database's result type.
- Text is compared by the router only where that is exact: under a code-point collation (``binary``,
  ``utf8mb4_0900_bin``, PostgreSQL ``C``/``POSIX``/``ucs_basic``/``pg_c_utf8``), under a MySQL ``*_bin`` PAD SPACE
  collation (trailing spaces ignored), and for PostgreSQL equality under the database's (deterministic) collation,
  which is byte equality. Any other text comparison raises ``UnsupportedError`` when it happens (the collation of a
  value is only known when it arrives), naming the fix: a ``COLLATE`` clause or the column's ``collation_name``.
- Booleans: predicates return ``True``/``False``/``None``; in MySQL a boolean is the integer 1/0 (``bool`` is an
  ``int``), and any number or string is a truth value.
"""
from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Protocol

from sqlglot import exp

from router.planner.values import _sql_repr
from sharding.errors import InvalidValueError, UnsupportedError

__all__ = [
    "Expr",
    "arith",
    "avg_divide",
    "compare_for_order",
    "compare_values",
    "compile_expr",
    "normalize_collation",
    "truth",
]

DIALECTS = ("mysql", "postgres")
_DEC = Context(prec=1000, rounding=ROUND_HALF_UP, traps=[InvalidOperation])
_BIGINT_MIN, _BIGINT_MAX, _UBIGINT_MAX = -(2**63), 2**63 - 1, 2**64 - 1

# Collations whose order is the code points' (or bytes') order, so Python's ``<`` on str/bytes is exact.
CODEPOINT_COLLATIONS = frozenset({"binary", "utf8mb4_0900_bin", "c", "posix", "ucs_basic", "pg_c_utf8"})
# MySQL ``_bin`` collations with PAD SPACE: code-point order once trailing spaces are ignored.
PAD_SPACE_BIN_COLLATIONS = frozenset({"utf8mb4_bin", "utf8mb3_bin", "utf8_bin", "latin1_bin", "ascii_bin"})


def normalize_collation(name: str | None) -> str | None:
    """A collation name as this module knows it: lower case, quotes removed; ``POSIX``/``ucs_basic``/``pg_c_utf8``
    become ``c`` (the same order). ``None`` stays None (the database's default collation, unknown here)."""
    if name is None:
        return None
    n = name.strip().strip('"`').lower()
    return "c" if n in ("posix", "ucs_basic", "pg_c_utf8") else n


def codepoint_collation(name: str | None) -> bool:
    """Whether text under this collation compares exactly as Python compares ``str`` (after PAD SPACE trimming)."""
    n = normalize_collation(name)
    return n in CODEPOINT_COLLATIONS or n in PAD_SPACE_BIN_COLLATIONS


class Expr(Protocol):
    """A compiled expression: pure, immutable, safe to share between executions."""

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any: ...

    def describe(self) -> str: ...


# --- value semantics ---------------------------------------------------------------------------------------------
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


_MYSQL_NUM_PREFIX = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _mysql_number(v: Any) -> Any:
    """A MySQL value in numeric context: numbers as they are, booleans as 1/0, strings as a DOUBLE of their
    numeric prefix (0 when there is none)."""
    if isinstance(v, bool):
        return int(v)
    if _is_number(v):
        return v
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode("utf-8", "replace")
    if isinstance(v, str):
        m = _MYSQL_NUM_PREFIX.match(v)
        return float(m.group(0)) if m else 0.0
    raise UnsupportedError(f"a {type(v).__name__} value in numeric context is not supported at the router")


def _pg_number(text: str, like: Any) -> Any:
    """A PostgreSQL untyped string literal read as the type of ``like`` (strictly, as the server would)."""
    s = text.strip()
    try:
        if isinstance(like, float):
            return float(s)
        if isinstance(like, int) and not isinstance(like, bool):
            return int(s)
        return Decimal(s)
    except (ValueError, InvalidOperation):
        kind = "bigint" if isinstance(like, int) else "double precision" if isinstance(like, float) else "numeric"
        raise InvalidValueError(f'invalid input syntax for type {kind}: "{text}"') from None


def _exact(v: Any) -> Decimal | int:
    return v if isinstance(v, (int, Decimal)) else Decimal(v)


def _scale(v: Any) -> int:
    """Digits after the decimal point that a value carries (its display scale)."""
    if isinstance(v, Decimal):
        exponent = v.as_tuple().exponent
        return -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return 0


def _divide_exact(a: Decimal | int, b: Decimal | int, scale: int) -> Decimal:
    """``a / b`` rounded half away from zero to ``scale`` decimals, computed on exact integer ratios."""
    na, da = a.as_integer_ratio()
    nb, db = b.as_integer_ratio()
    num, den = na * db * 10**scale, da * nb
    if den < 0:
        num, den = -num, -den
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return Decimal(q if num >= 0 else -q).scaleb(-scale)


def _pg_weight_digit(v: Decimal | int) -> tuple[int, int]:
    """PostgreSQL numeric's (weight, first digit) in base 10000, for ``select_div_scale``."""
    d = Decimal(v)
    if d == 0:
        return 0, 0
    weight = d.adjusted() // 4
    return weight, int(abs(d).scaleb(-4 * weight))


def pg_div_scale(a: Decimal | int, b: Decimal | int) -> int:
    """PostgreSQL ``select_div_scale`` (numeric.c): at least 16 significant digits, never less than either display
    scale, at most 1000."""
    w1, d1 = _pg_weight_digit(a)
    w2, d2 = _pg_weight_digit(b)
    qweight = w1 - w2 - (1 if d1 <= d2 else 0)
    return min(max(16 - qweight * 4, _scale(a), _scale(b), 0), 1000)


def _check_bigint(v: int, dialect: str, unsigned_ok: bool = False) -> int:
    top = _UBIGINT_MAX if unsigned_ok else _BIGINT_MAX
    if v < _BIGINT_MIN or v > top:
        raise InvalidValueError("BIGINT value is out of range" if dialect == "mysql" else "bigint out of range")
    return v


def arith(op: str, a: Any, b: Any, dialect: str) -> Any:
    """``a op b`` for ``op`` in ``+ - * / div %`` with the dialect's types; NULL in, NULL out."""
    if a is None or b is None:
        return None
    if dialect == "mysql":
        a, b = _mysql_number(a), _mysql_number(b)
    else:
        if isinstance(a, str) and _is_number(b):
            a = _pg_number(a, b)
        elif isinstance(b, str) and _is_number(a):
            b = _pg_number(b, a)
        if not (_is_number(a) and _is_number(b)):
            raise UnsupportedError(f"{type(a).__name__} {op} {type(b).__name__} is not supported at the router")
    approximate = isinstance(a, float) or isinstance(b, float)
    if approximate:
        x, y = float(a), float(b)
        if op in ("/", "div", "%") and y == 0:
            if dialect == "mysql":
                return None
            raise InvalidValueError("division by zero")
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if op == "/":
            return x / y
        if op == "div":
            return _check_bigint(int(x / y), dialect)
        return _fmod(x, y)
    both_int = isinstance(a, int) and isinstance(b, int)
    if op in ("/", "div", "%") and b == 0:
        if dialect == "mysql":
            return None
        raise InvalidValueError("division by zero")
    if op in ("+", "-", "*"):
        if both_int:
            r = a + b if op == "+" else a - b if op == "-" else a * b
            return _check_bigint(r, dialect, unsigned_ok=dialect == "mysql" and (a > _BIGINT_MAX or b > _BIGINT_MAX))
        da, db = _exact(a), _exact(b)
        return _DEC.add(da, db) if op == "+" else _DEC.subtract(da, db) if op == "-" else _DEC.multiply(da, db)
    if op == "div" or (op == "/" and dialect == "postgres" and both_int):
        na, da_ = _exact(a).as_integer_ratio()
        nb, db_ = _exact(b).as_integer_ratio()
        num, den = na * db_, da_ * nb
        q = abs(num) // abs(den)
        return _check_bigint(q if (num >= 0) == (den >= 0) else -q, dialect)
    if op == "%":
        if both_int:
            r = abs(a) % abs(b)
            return r if a >= 0 else -r
        return _DEC.remainder(_exact(a), _exact(b))  # Decimal remainder takes the dividend's sign, as SQL does
    # exact "/"
    if dialect == "mysql":
        return _divide_exact(_exact(a), _exact(b), min(_scale(a) + 4, 30))
    return _divide_exact(_exact(a), _exact(b), pg_div_scale(a, b))


def _fmod(x: float, y: float) -> float:
    import math

    return math.fmod(x, y)


def avg_divide(total: Any, count: Any, dialect: str) -> Any:
    """AVG's last step: SUM / COUNT as the database returns AVG. NULL when there is no non-NULL value.

    MySQL: a DOUBLE sum gives a DOUBLE; an exact sum gives DECIMAL with the sum's scale + 4, rounded half up.
    PostgreSQL: a float sum gives float8; an integer or numeric sum gives numeric (``numeric_div`` of the sum by the
    count: ``select_div_scale``, rounded half away from zero), never integer division.
    """
    if total is None or count is None or count == 0:
        return None
    if isinstance(total, str):
        total = _mysql_number(total) if dialect == "mysql" else _pg_number(total, Decimal(0))
    if isinstance(total, float):
        return total / count
    total = _exact(total)
    if dialect == "mysql":
        return _divide_exact(total, count, min(_scale(total) + 4, 30))
    return _divide_exact(total, count, pg_div_scale(total, count))


def truth(v: Any, dialect: str) -> bool | None:
    """The truth value of ``v`` in a WHERE/HAVING/AND/OR context."""
    if v is None or isinstance(v, bool):
        return v
    if _is_number(v):
        return v != 0
    if dialect == "mysql":
        if isinstance(v, (str, bytes, bytearray)):
            return _mysql_number(v) != 0
        return True  # a date/time value is true
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("t", "true", "y", "yes", "on", "1"):
            return True
        if s in ("f", "false", "n", "no", "off", "0"):
            return False
        raise InvalidValueError(f'invalid input syntax for type boolean: "{v}"')
    raise UnsupportedError(f"a {type(v).__name__} value is not a boolean")


def _text_compare(a: str, b: str, dialect: str, collation: str | None, equality: bool) -> int:
    n = normalize_collation(collation)
    if n in CODEPOINT_COLLATIONS:
        return (a > b) - (a < b)
    if n in PAD_SPACE_BIN_COLLATIONS:
        a, b = a.rstrip(" "), b.rstrip(" ")
        return (a > b) - (a < b)
    if n is None and dialect == "postgres" and equality:
        return 0 if a == b else 1  # deterministic collations: equal exactly when the bytes are equal
    if n is None:
        raise UnsupportedError(
            f"comparing text at the router needs its collation, which is not known here ({dialect}); add an explicit"
            " COLLATE (a binary or C collation) or declare the column's collation_name in the VSchema")
    raise UnsupportedError(f"collation {collation} is not supported at the router (only binary/C collations)")


def _temporal(text: str, like: Any) -> Any:
    """A date/time string read as the kind of ``like`` (a DATE stays a date when the text has no time of day;
    otherwise a datetime, which compares with a date as its midnight)."""
    s = text.strip()
    try:
        if isinstance(like, _dt.date):
            value = _dt.datetime.fromisoformat(s)
            if not isinstance(like, _dt.datetime) and value.time() == _dt.time(0) and value.tzinfo is None:
                return value.date()
            return value
        if isinstance(like, _dt.time):
            return _dt.time.fromisoformat(s)
    except ValueError:
        raise InvalidValueError(f"invalid date/time value: {text!r}") from None
    raise InvalidValueError(f"cannot compare {text!r} with a {type(like).__name__}")


def compare_values(a: Any, b: Any, dialect: str, collation: str | None = None, *, equality: bool = False) -> int | None:
    """-1/0/1 for ``a`` against ``b`` as the dialect compares them, None when either is NULL. With ``equality``
    only zero/non-zero matters (which allows PostgreSQL text under its default collation)."""
    if a is None or b is None:
        return None
    if isinstance(a, (bytearray, memoryview)):
        a = bytes(a)
    if isinstance(b, (bytearray, memoryview)):
        b = bytes(b)
    if dialect == "mysql":
        if isinstance(a, bool):
            a = int(a)
        if isinstance(b, bool):
            b = int(b)
    na, nb = _is_number(a), _is_number(b)
    if na and nb:
        if isinstance(a, float) != isinstance(b, float):  # exact against approximate: as DOUBLE in both databases
            a, b = float(a), float(b)
        return (a > b) - (a < b)
    if isinstance(a, str) and isinstance(b, str):
        return _text_compare(a, b, dialect, collation, equality)
    if isinstance(a, bytes) or isinstance(b, bytes):
        if isinstance(a, (bytes, str)) and isinstance(b, (bytes, str)) and dialect == "mysql":
            ab = a if isinstance(a, bytes) else a.encode()
            bb = b if isinstance(b, bytes) else b.encode()
            return (ab > bb) - (ab < bb)
        if isinstance(a, bytes) and isinstance(b, bytes):
            return (a > b) - (a < b)
    if na or nb:
        if dialect == "mysql":
            if isinstance(a, (str, bytes)) or isinstance(b, (str, bytes)):
                x, y = float(_mysql_number(a)), float(_mysql_number(b))
                return (x > y) - (x < y)
        else:
            if isinstance(a, str):
                a = _pg_number(a, b)
            elif isinstance(b, str):
                b = _pg_number(b, a)
            if _is_number(a) and _is_number(b):
                return compare_values(a, b, dialect, collation, equality=equality)
    temporal = (_dt.date, _dt.time, _dt.timedelta)
    if isinstance(a, temporal) or isinstance(b, temporal):
        if isinstance(a, str):
            a = _temporal(a, b)
        elif isinstance(b, str):
            b = _temporal(b, a)
        if isinstance(a, _dt.datetime) != isinstance(b, _dt.datetime) and isinstance(a, _dt.date) \
                and isinstance(b, _dt.date):
            a = a if isinstance(a, _dt.datetime) else _dt.datetime(a.year, a.month, a.day)
            b = b if isinstance(b, _dt.datetime) else _dt.datetime(b.year, b.month, b.day)
        try:
            return (a > b) - (a < b)
        except TypeError:
            pass
    if isinstance(a, bool) and isinstance(b, bool):
        return (a > b) - (a < b)
    if type(a) is type(b):
        try:
            return (a > b) - (a < b)
        except TypeError:
            pass
    raise UnsupportedError(f"cannot compare a {type(a).__name__} with a {type(b).__name__} at the router")


def compare_for_order(a: Any, b: Any, collation: str | None = None) -> int:
    """-1/0/1 for two non-NULL values of one sort key, as a merge or memory sort compares them (``OrderByParam``):
    numbers, date/time values, booleans, UUIDs and bytes natively; text only under a code-point collation (the
    engine passes the weight strings instead, as bytes, when the key has a weight column)."""
    if isinstance(a, str) or isinstance(b, str):
        if not (isinstance(a, str) and isinstance(b, str)):
            raise UnsupportedError("a sort key mixes text and non-text values")
        return _text_compare(a, b, "postgres", collation, equality=False)
    if _is_number(a) and _is_number(b) and isinstance(a, float) != isinstance(b, float):
        a, b = float(a), float(b)
    try:
        return (a > b) - (a < b)
    except TypeError:
        raise UnsupportedError(f"cannot order a {type(a).__name__} against a {type(b).__name__}") from None


# --- nodes -------------------------------------------------------------------------------------------------------
def _paren(e: Expr) -> str:
    text = e.describe()
    return f"({text})" if isinstance(e, (Compare, Logic, Arith, Between, InList, Like, IsNull, IsBool)) else text


@dataclass(frozen=True, slots=True)
class Col:
    """The value of the input row's column ``offset``."""

    offset: int

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        return row[self.offset]

    def describe(self) -> str:
        return f"[{self.offset}]"


@dataclass(frozen=True, slots=True)
class Lit:
    """A value fixed at plan time (NULL, TRUE, a literal kept in the fingerprint, a folded constant)."""

    value: Any

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        return self.value

    def describe(self) -> str:
        return _sql_repr(self.value)


@dataclass(frozen=True, slots=True)
class Bind:
    """The statement's ``index``-th value (placeholder ``:v{index+1}``); a folded IN list binds as a tuple."""

    index: int

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        try:
            return binds[self.index]
        except IndexError:
            raise InvalidValueError(f"missing value for placeholder :v{self.index + 1}") from None

    def describe(self) -> str:
        return f":v{self.index + 1}"


class WithEnv(list):  # type: ignore[type-arg]
    """The bind values of one execution with its run-time values (``env``: pulled-out subquery results, join
    variables), for expressions that read both (``RunVar``)."""

    __slots__ = ("env",)

    def __init__(self, binds: Sequence[Any], env: dict[str, Any]) -> None:
        super().__init__(binds)
        self.env = env


@dataclass(frozen=True, slots=True)
class RunVar:
    """A run-time value by name (a pulled-out scalar subquery's result, its has-values flag), read from the
    environment the engine passes along with the bind values (``WithEnv``)."""

    name: str

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        env = getattr(binds, "env", None)
        if env is None or self.name not in env:
            raise InvalidValueError(f"missing run-time value :{self.name}")
        return env[self.name]

    def describe(self) -> str:
        return f":{self.name}"


_CMP_TEST: dict[str, Callable[[int], bool]] = {
    "=": lambda c: c == 0, "!=": lambda c: c != 0, "<": lambda c: c < 0, "<=": lambda c: c <= 0,
    ">": lambda c: c > 0, ">=": lambda c: c >= 0,
}


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right`` for ``= != < <= > >=``; ``<=>`` (MySQL) and ``is not distinct from`` / ``is distinct
    from`` (PostgreSQL) are the NULL-safe forms. ``collation`` applies to text operands."""

    op: str
    left: Expr
    right: Expr
    dialect: str
    collation: str | None = None

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        a, b = self.left.evaluate(row, binds), self.right.evaluate(row, binds)
        if self.op in ("<=>", "is not distinct from", "is distinct from"):
            if a is None or b is None:
                same = a is None and b is None
            else:
                same = compare_values(a, b, self.dialect, self.collation, equality=True) == 0
            return same if self.op != "is distinct from" else not same
        c = compare_values(a, b, self.dialect, self.collation, equality=self.op in ("=", "!="))
        return None if c is None else _CMP_TEST[self.op](c)

    def describe(self) -> str:
        coll = f" collate {self.collation}" if self.collation else ""
        return f"{_paren(self.left)} {self.op} {_paren(self.right)}{coll}"


@dataclass(frozen=True, slots=True)
class Logic:
    """``and`` / ``or`` / ``xor`` over two or more operands with SQL's three-valued logic."""

    op: str
    items: tuple[Expr, ...]
    dialect: str

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        if self.op == "xor":
            out: bool | None = False
            for item in self.items:
                t = truth(item.evaluate(row, binds), self.dialect)
                if t is None:
                    return None
                out = out != t
            return out
        unknown = False
        decisive = self.op == "or"  # the value that settles the result
        for item in self.items:
            t = truth(item.evaluate(row, binds), self.dialect)
            if t is None:
                unknown = True
            elif t is decisive:
                return decisive
        return None if unknown else not decisive

    def describe(self) -> str:
        return f" {self.op} ".join(_paren(i) for i in self.items)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    dialect: str

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        t = truth(self.operand.evaluate(row, binds), self.dialect)
        return None if t is None else not t

    def describe(self) -> str:
        return f"not {_paren(self.operand)}"


@dataclass(frozen=True, slots=True)
class IsNull:
    operand: Expr
    negate: bool = False

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        return (self.operand.evaluate(row, binds) is None) != self.negate

    def describe(self) -> str:
        return f"{_paren(self.operand)} is {'not ' if self.negate else ''}null"


@dataclass(frozen=True, slots=True)
class IsBool:
    """``x IS [NOT] TRUE/FALSE``: never NULL."""

    operand: Expr
    value: bool
    negate: bool
    dialect: str

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        t = truth(self.operand.evaluate(row, binds), self.dialect)
        return (t is self.value) != self.negate

    def describe(self) -> str:
        return f"{_paren(self.operand)} is {'not ' if self.negate else ''}{'true' if self.value else 'false'}"


@dataclass(frozen=True, slots=True)
class InList:
    """``x [NOT] IN (items)``: TRUE on a match, else NULL when x or an item is NULL, else FALSE. An item bound to a
    tuple (a folded list) contributes its elements."""

    operand: Expr
    items: tuple[Expr, ...]
    dialect: str
    negate: bool = False
    collation: str | None = None

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        x = self.operand.evaluate(row, binds)
        if x is None:
            return None
        unknown = False
        for item in self.items:
            v = item.evaluate(row, binds)
            for value in (v if isinstance(v, tuple) else (v,)):
                c = compare_values(x, value, self.dialect, self.collation, equality=True)
                if c is None:
                    unknown = True
                elif c == 0:
                    return not self.negate
        return None if unknown else self.negate

    def describe(self) -> str:
        items = ", ".join(i.describe() for i in self.items)
        return f"{_paren(self.operand)} {'not ' if self.negate else ''}in ({items})"


@dataclass(frozen=True, slots=True)
class Between:
    operand: Expr
    low: Expr
    high: Expr
    dialect: str
    negate: bool = False
    collation: str | None = None

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        x = self.operand.evaluate(row, binds)
        lo = compare_values(x, self.low.evaluate(row, binds), self.dialect, self.collation)
        hi = compare_values(x, self.high.evaluate(row, binds), self.dialect, self.collation)
        ge = None if lo is None else lo >= 0
        le = None if hi is None else hi <= 0
        if ge is False or le is False:
            result: bool | None = False
        elif ge is None or le is None:
            result = None
        else:
            result = True
        return None if result is None else result != self.negate

    def describe(self) -> str:
        return (f"{_paren(self.operand)} {'not ' if self.negate else ''}between {_paren(self.low)} and "
                f"{_paren(self.high)}")


def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape and ch == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


@dataclass(frozen=True, slots=True)
class Like:
    """``x [NOT] LIKE pattern [ESCAPE e]`` (escape defaults to backslash). PostgreSQL LIKE is case-sensitive under
    every deterministic collation, so it is exact; MySQL LIKE follows the collation, so text needs a binary one."""

    operand: Expr
    pattern: Expr
    dialect: str
    negate: bool = False
    escape: Expr | None = None
    collation: str | None = None

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        x, p = self.operand.evaluate(row, binds), self.pattern.evaluate(row, binds)
        esc = self.escape.evaluate(row, binds) if self.escape is not None else "\\"
        if x is None or p is None:
            return None
        if self.dialect == "mysql" and not codepoint_collation(self.collation) \
                and not (isinstance(x, bytes) or isinstance(p, bytes)):
            _text_compare("", "", "mysql", self.collation, equality=True)  # raises: collation unknown/unsupported
        x, p = _as_text(x), _as_text(p)
        esc = _as_text(esc) if esc else None
        return (_like_regex(p, esc).fullmatch(x) is not None) != self.negate

    def describe(self) -> str:
        esc = f" escape {self.escape.describe()}" if self.escape is not None else ""
        return f"{_paren(self.operand)} {'not ' if self.negate else ''}like {_paren(self.pattern)}{esc}"


def _as_text(v: Any) -> str:
    """A value as text, where both databases write it the same way (floats excluded: their formats differ)."""
    if isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "surrogateescape")
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, Decimal)):
        return str(v)
    if isinstance(v, _dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, (_dt.date, _dt.time)):
        return v.isoformat()
    raise UnsupportedError(f"converting a {type(v).__name__} to text is not supported at the router")


_ARITH_TEXT = {"+": "+", "-": "-", "*": "*", "/": "/", "div": "div", "%": "%"}


@dataclass(frozen=True, slots=True)
class Arith:
    """``left op right`` for ``+ - * / div %`` (see ``arith``)."""

    op: str
    left: Expr
    right: Expr
    dialect: str

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        return arith(self.op, self.left.evaluate(row, binds), self.right.evaluate(row, binds), self.dialect)

    def describe(self) -> str:
        return f"{_paren(self.left)} {_ARITH_TEXT[self.op]} {_paren(self.right)}"


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    dialect: str

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        v = self.operand.evaluate(row, binds)
        return None if v is None else arith("-", 0, v, self.dialect)

    def describe(self) -> str:
        return f"-{_paren(self.operand)}"


@dataclass(frozen=True, slots=True)
class AvgDivide:
    """AVG's final value from its merged SUM and COUNT (see ``avg_divide``)."""

    total: Expr
    count: Expr
    dialect: str

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        return avg_divide(self.total.evaluate(row, binds), self.count.evaluate(row, binds), self.dialect)

    def describe(self) -> str:
        return f"avg({self.total.describe()} / {self.count.describe()})"


@dataclass(frozen=True, slots=True)
class Case:
    """``CASE [operand] WHEN … THEN … [ELSE …] END``; with an operand each WHEN is compared for equality."""

    operand: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    default: Expr | None
    dialect: str
    collation: str | None = None

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        subject = self.operand.evaluate(row, binds) if self.operand is not None else None
        for cond, result in self.whens:
            v = cond.evaluate(row, binds)
            if self.operand is not None:
                hit = compare_values(subject, v, self.dialect, self.collation, equality=True) == 0
            else:
                hit = truth(v, self.dialect) is True
            if hit:
                return result.evaluate(row, binds)
        return self.default.evaluate(row, binds) if self.default is not None else None

    def describe(self) -> str:
        parts = ["case"]
        if self.operand is not None:
            parts.append(self.operand.describe())
        for cond, result in self.whens:
            parts.append(f"when {cond.describe()} then {result.describe()}")
        if self.default is not None:
            parts.append(f"else {self.default.describe()}")
        parts.append("end")
        return " ".join(parts)


def _f_coalesce(args: list[Any], dialect: str) -> Any:
    return next((a for a in args if a is not None), None)


def _f_nullif(args: list[Any], dialect: str) -> Any:
    a, b = args
    if a is None or b is None:
        return a
    return None if compare_values(a, b, dialect, None, equality=True) == 0 else a


def _null_in(args: list[Any]) -> bool:
    return any(a is None for a in args)


def _f_concat(args: list[Any], dialect: str) -> Any:
    if dialect == "mysql":
        if _null_in(args):
            return None
        if any(isinstance(a, bytes) for a in args):
            return b"".join(a if isinstance(a, bytes) else _as_text(a).encode() for a in args)
    return "".join(_as_text(a) for a in args if a is not None)  # PostgreSQL concat() skips NULLs


def _f_pipe(args: list[Any], dialect: str) -> Any:
    return None if _null_in(args) else "".join(_as_text(a) for a in args)


def _f_concat_ws(args: list[Any], dialect: str) -> Any:
    sep, rest = args[0], args[1:]
    if sep is None:
        return None
    return _as_text(sep).join(_as_text(a) for a in rest if a is not None)


def _strict(fn: Callable[..., Any]) -> Callable[[list[Any], str], Any]:
    """A function that is NULL when any argument is NULL."""

    def call(args: list[Any], dialect: str) -> Any:
        return None if _null_in(args) else fn(*args, dialect=dialect)

    return call


def _lower(s: Any, dialect: str) -> Any:
    return s if isinstance(s, bytes) else _as_text(s).lower()


def _upper(s: Any, dialect: str) -> Any:
    return s if isinstance(s, bytes) else _as_text(s).upper()


def _length_bytes(s: Any, dialect: str) -> int:
    return len(s) if isinstance(s, bytes) else len(_as_text(s).encode("utf-8"))


def _length_chars(s: Any, dialect: str) -> int:
    return len(s) if isinstance(s, bytes) else len(_as_text(s))


def _substring(s: Any, start: Any, length: Any = None, *, dialect: str) -> Any:
    text = s if isinstance(s, bytes) else _as_text(s)
    pos = int(_mysql_number(start)) if dialect == "mysql" else int(start)
    if dialect == "mysql":  # 1-based; negative counts from the end; 0 gives ''
        if pos == 0 or abs(pos) > len(text):
            return text[:0]
        begin = pos - 1 if pos > 0 else len(text) + pos
        if length is None:
            return text[begin:]
        n = int(_mysql_number(length))
        return text[begin:begin + n] if n > 0 else text[:0]
    # PostgreSQL: characters from position ``pos`` (which may be < 1) for ``length`` characters
    if length is None:
        return text[max(pos - 1, 0):]
    n = int(length)
    if n < 0:
        raise InvalidValueError("negative substring length not allowed")
    end = pos - 1 + n
    return text[max(pos - 1, 0):max(end, 0)]


def _left(s: Any, n: Any, dialect: str) -> Any:
    k = int(_mysql_number(n)) if dialect == "mysql" else int(n)
    text = s if isinstance(s, bytes) else _as_text(s)
    if k < 0:
        return text[:0] if dialect == "mysql" else text[:k]
    return text[:k]


def _right(s: Any, n: Any, dialect: str) -> Any:
    k = int(_mysql_number(n)) if dialect == "mysql" else int(n)
    text = s if isinstance(s, bytes) else _as_text(s)
    if k <= 0:
        return text[:0] if dialect == "mysql" or k == 0 else text[-k:]
    return text[-k:]


def _replace(s: Any, old: Any, new: Any, dialect: str) -> Any:
    text, o, n = _as_text(s), _as_text(old), _as_text(new)
    return text if o == "" else text.replace(o, n)


def _abs(v: Any, dialect: str) -> Any:
    v = _mysql_number(v) if dialect == "mysql" else v
    return abs(v)


def _trim(side: str) -> Callable[[list[Any], str], Any]:
    def call(args: list[Any], dialect: str) -> Any:
        if _null_in(args):
            return None
        s = _as_text(args[0])
        chars = _as_text(args[1]) if len(args) > 1 else " "
        if dialect == "mysql" and len(args) > 1:  # MySQL removes a whole prefix/suffix string, repeatedly
            if side in ("both", "leading") and chars:
                while s.startswith(chars):
                    s = s[len(chars):]
            if side in ("both", "trailing") and chars:
                while s.endswith(chars):
                    s = s[:-len(chars)]
            return s
        if side == "both":
            return s.strip(chars)
        return s.lstrip(chars) if side == "leading" else s.rstrip(chars)

    return call


def _extreme(pick_greatest: bool) -> Callable[[list[Any], str], Any]:
    def call(args: list[Any], dialect: str) -> Any:
        if dialect == "mysql" and _null_in(args):
            return None
        values = [a for a in args if a is not None]  # PostgreSQL ignores NULLs
        if not values:
            return None
        best = values[0]
        for v in values[1:]:
            c = compare_values(v, best, dialect)
            if c is not None and ((c > 0) if pick_greatest else (c < 0)):
                best = v
        return best

    return call


def _round_half_away(v: Decimal | int, digits: int) -> Decimal | int:
    if isinstance(v, int) and digits >= 0:
        return v
    q = Decimal(1).scaleb(-digits)
    r = Decimal(v).quantize(q, rounding=ROUND_HALF_UP, context=_DEC) if digits >= 0 else \
        (Decimal(v).scaleb(digits).quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_DEC)).scaleb(-digits)
    return int(r) if isinstance(v, int) else r


def _round(v: Any, digits: Any = 0, *, dialect: str) -> Any:
    v = _mysql_number(v) if dialect == "mysql" else v
    d = int(digits)
    if isinstance(v, float):
        return round(v, d)  # round half to even, as the C library's rint() both databases use for doubles
    return _round_half_away(v, d)


def _floor_ceil(up: bool) -> Callable[..., Any]:
    def call(v: Any, *, dialect: str) -> Any:
        import math

        v = _mysql_number(v) if dialect == "mysql" else v
        if isinstance(v, float):
            return float(math.ceil(v) if up else math.floor(v)) if dialect == "postgres" else \
                (math.ceil(v) if up else math.floor(v))
        r = Decimal(v).to_integral_value(rounding="ROUND_CEILING" if up else "ROUND_FLOOR")
        return int(r) if isinstance(v, int) or dialect == "mysql" else r

    return call


def _mod(a: Any, b: Any, dialect: str) -> Any:
    return arith("%", a, b, dialect)


_FUNCTIONS: dict[str, Callable[[list[Any], str], Any]] = {
    "coalesce": _f_coalesce,
    "nullif": _f_nullif,
    "concat": _f_concat,
    "||": _f_pipe,
    "concat_ws": _f_concat_ws,
    "lower": _strict(_lower),
    "upper": _strict(_upper),
    "length": _strict(_length_bytes),
    "char_length": _strict(_length_chars),
    "substring": _strict(_substring),
    "left": _strict(_left),
    "right": _strict(_right),
    "replace": _strict(_replace),
    "trim": _trim("both"),
    "ltrim": _trim("leading"),
    "rtrim": _trim("trailing"),
    "abs": _strict(_abs),
    "round": _strict(_round),
    "floor": _strict(_floor_ceil(False)),
    "ceil": _strict(_floor_ceil(True)),
    "mod": _strict(_mod),
    "greatest": _extreme(True),
    "least": _extreme(False),
}


@dataclass(frozen=True, slots=True)
class Func:
    """A scalar function by name (``_FUNCTIONS``) over evaluated arguments."""

    name: str
    args: tuple[Expr, ...]
    dialect: str

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        return _FUNCTIONS[self.name]([a.evaluate(row, binds) for a in self.args], self.dialect)

    def describe(self) -> str:
        if self.name == "||":
            return " || ".join(_paren(a) for a in self.args)
        return f"{self.name}({', '.join(a.describe() for a in self.args)})"


# --- CAST ---------------------------------------------------------------------------------------------------------
_INT_TYPES = {"TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "UTINYINT", "USMALLINT", "UMEDIUMINT", "UINT",
              "UBIGINT"}
_TEXT_TYPES = {"CHAR", "VARCHAR", "TEXT", "NCHAR", "NVARCHAR", "BPCHAR", "NAME"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE"}
_DECIMAL_TYPES = {"DECIMAL", "BIGDECIMAL"}


@dataclass(frozen=True, slots=True)
class Cast:
    """``CAST(x AS type)`` for integer, decimal(p, s), float, text, date, datetime/timestamp and boolean types.

    Integers from exact values round half away from zero (both databases), from text they take MySQL's leading
    integer or PostgreSQL's strict syntax; DECIMAL(p, s) rounds half up to ``s`` (MySQL's bare DECIMAL is
    DECIMAL(10, 0)); out-of-range values raise."""

    operand: Expr
    type_name: str  # sqlglot DataType name: INT, BIGINT, UBIGINT, DECIMAL, DOUBLE, TEXT, DATE, DATETIME, …
    dialect: str
    precision: int | None = None
    scale: int | None = None

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        v = self.operand.evaluate(row, binds)
        if v is None:
            return None
        t = self.type_name
        if t in _INT_TYPES:
            return self._to_int(v, unsigned=t.startswith("U"))
        if t in _DECIMAL_TYPES:
            return self._to_decimal(v)
        if t in _FLOAT_TYPES:
            return float(_mysql_number(v)) if self.dialect == "mysql" else float(v)
        if t in _TEXT_TYPES:
            if isinstance(v, float):
                raise UnsupportedError("CAST of a floating-point value to text is not supported at the router")
            return _as_text(v)
        if t == "DATE":
            if isinstance(v, _dt.datetime):
                return v.date()
            if isinstance(v, _dt.date):
                return v
            parsed = _temporal(_as_text(v), _dt.date(2000, 1, 1))
            return parsed.date() if isinstance(parsed, _dt.datetime) else parsed
        if t in ("DATETIME", "TIMESTAMP"):
            if isinstance(v, _dt.datetime):
                return v
            if isinstance(v, _dt.date):
                return _dt.datetime(v.year, v.month, v.day)
            return _temporal(_as_text(v), _dt.datetime(2000, 1, 1))
        if t == "BOOLEAN":
            return truth(v, self.dialect)
        raise UnsupportedError(f"CAST to {t} is not supported at the router")

    def _to_int(self, v: Any, unsigned: bool) -> int:
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, str):
            if self.dialect == "mysql":
                m = re.match(r"\s*[+-]?\d+", v)
                v = int(m.group(0)) if m else 0
            else:
                v = _pg_number(v, 0)
        if isinstance(v, float):
            if self.dialect == "mysql":
                raise UnsupportedError("CAST of a DOUBLE to an integer is not supported at the router")
            v = round(v)  # PostgreSQL rint(): half to even
        if isinstance(v, Decimal):
            v = int(v.to_integral_value(rounding=ROUND_HALF_UP))
        if not isinstance(v, int):
            raise UnsupportedError(f"CAST of a {type(v).__name__} to an integer is not supported at the router")
        if unsigned and v < 0 and self.dialect == "mysql":
            return v % 2**64  # MySQL reinterprets the bits
        return _check_bigint(v, self.dialect, unsigned_ok=unsigned)

    def _to_decimal(self, v: Any) -> Decimal:
        if isinstance(v, str):
            v = Decimal(str(_mysql_number(v))) if self.dialect == "mysql" else _pg_number(v, Decimal(0))
        if isinstance(v, bool):
            v = int(v)
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
        precision, scale = self.precision, self.scale
        if precision is None and self.dialect == "mysql":
            precision, scale = 10, 0
        if scale is None and precision is not None:
            scale = 0
        if scale is not None:
            d = d.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP, context=_DEC)
        if precision is not None and scale is not None and d.adjusted() >= precision - scale:
            raise InvalidValueError(f"value out of range for DECIMAL({precision}, {scale})")
        return d

    def describe(self) -> str:
        args = f"({self.precision}, {self.scale})" if self.precision is not None and self.scale is not None else \
            f"({self.precision})" if self.precision is not None else ""
        return f"cast({self.operand.describe()} as {self.type_name.lower()}{args})"


@dataclass(frozen=True, slots=True)
class Collated:
    """``x COLLATE name``: the value of ``x``; comparisons over it use ``collation``."""

    operand: Expr
    collation: str

    def evaluate(self, row: Sequence[Any], binds: Sequence[Any]) -> Any:
        return self.operand.evaluate(row, binds)

    def describe(self) -> str:
        return f"{_paren(self.operand)} collate {self.collation}"


# --- compiling ----------------------------------------------------------------------------------------------------
Resolver = Callable[[exp.Expression], "Expr | None"]

_COMPARE: dict[type[exp.Expression], str] = {
    exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">=",
}
_ARITH: dict[type[exp.Expression], str] = {
    exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.IntDiv: "div", exp.Mod: "%",
}
_SIMPLE_FUNCS: dict[type[exp.Expression], str] = {
    exp.Lower: "lower", exp.Upper: "upper", exp.Abs: "abs", exp.Replace: "replace", exp.Left: "left",
    exp.Right: "right",
}


class _Compiler:
    def __init__(self, dialect: str, resolve: Resolver | None, collation_of: Callable[[exp.Expression], str | None]
                 | None) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}")
        self.dialect = dialect
        self.resolve = resolve
        self.collation_of = collation_of

    def collation(self, *nodes: exp.Expression | None) -> str | None:
        """The collation a comparison of these operands uses: an explicit COLLATE, else a declared one."""
        for node in nodes:
            inner = node
            while isinstance(inner, exp.Paren):
                inner = inner.this
            if isinstance(inner, exp.Collate):
                return _collation_name(inner)
        if self.collation_of is not None:
            for node in nodes:
                if node is not None:
                    found = self.collation_of(node)
                    if found:
                        return found
        return None

    def compile(self, node: exp.Expression) -> Expr:
        if self.resolve is not None:
            hit = self.resolve(node)
            if hit is not None:
                return hit
        d = self.dialect
        c = self.compile
        if isinstance(node, exp.Paren):
            return c(node.this)
        if isinstance(node, exp.Placeholder):
            name = node.name
            if name.startswith("v") and name[1:].isdigit():
                return Bind(int(name[1:]) - 1)
            raise UnsupportedError(f"placeholder :{name} is not supported at the router")
        if isinstance(node, exp.Null):
            return Lit(None)
        if isinstance(node, exp.Boolean):
            return Lit(bool(node.this))
        if isinstance(node, exp.Literal):
            if node.is_string:
                return Lit(node.this)
            from router.planner.routing import _number

            return Lit(_number(node.this))
        if type(node) in _COMPARE:
            return self._fold(Compare(_COMPARE[type(node)], c(node.this), c(node.expression), d,
                                      self.collation(node.this, node.expression)))
        if isinstance(node, exp.NullSafeEQ):
            op = "<=>" if d == "mysql" else "is not distinct from"
            return self._fold(Compare(op, c(node.this), c(node.expression), d,
                                      self.collation(node.this, node.expression)))
        if isinstance(node, exp.NullSafeNEQ):
            return self._fold(Compare("is distinct from", c(node.this), c(node.expression), d,
                                      self.collation(node.this, node.expression)))
        if isinstance(node, (exp.And, exp.Or, exp.Xor)):
            op = "and" if isinstance(node, exp.And) else "or" if isinstance(node, exp.Or) else "xor"
            items = self._flatten(node, type(node))
            return self._fold(Logic(op, tuple(c(i) for i in items), d))
        if isinstance(node, exp.Not):
            inner = node.this
            while isinstance(inner, exp.Paren):
                inner = inner.this
            if isinstance(inner, (exp.In, exp.Between, exp.Like)):
                return self._negatable(inner, True)
            if isinstance(inner, exp.Is):
                return self._is(inner, negate=True)
            return self._fold(Not(c(node.this), d))
        if isinstance(node, exp.Is):
            return self._is(node, negate=False)
        if isinstance(node, (exp.In, exp.Between, exp.Like)):
            return self._negatable(node, False)
        if isinstance(node, exp.Escape) and isinstance(node.this, exp.Like):
            return self._like(node.this, negate=bool(node.this.args.get("negate")), escape=node.expression)
        if type(node) in _ARITH:
            return self._fold(Arith(_ARITH[type(node)], c(node.this), c(node.expression), d))
        if isinstance(node, exp.Neg):
            return self._fold(Neg(c(node.this), d))
        if isinstance(node, exp.Case):
            operand = node.this
            whens = tuple((c(w.this), c(w.args["true"])) for w in node.args.get("ifs") or ())
            default = node.args.get("default")
            return Case(c(operand) if operand is not None else None, whens,
                        c(default) if default is not None else None, d,
                        self.collation(operand) if operand is not None else None)
        if isinstance(node, exp.If):
            false = node.args.get("false")
            return Case(None, ((c(node.this), c(node.args["true"])),), c(false) if false is not None else None, d)
        if isinstance(node, exp.Coalesce):
            return self._func("coalesce", [node.this, *node.expressions])
        if isinstance(node, exp.Nullif):
            return self._func("nullif", [node.this, node.expression])
        if isinstance(node, exp.ConcatWs):  # a subclass of Concat
            return self._func("concat_ws", list(node.expressions))
        if isinstance(node, exp.Concat):
            return self._func("concat", list(node.expressions))
        if isinstance(node, exp.DPipe):
            return self._func("||", [node.this, node.expression])
        if type(node) in _SIMPLE_FUNCS:
            args = [node.this] + [node.args[k] for k in ("expression", "replacement") if node.args.get(k) is not None]
            return self._func(_SIMPLE_FUNCS[type(node)], args)
        if isinstance(node, exp.Length):
            binary = node.args.get("binary") and d == "mysql"
            return self._func("length" if binary else "char_length", [node.this])
        if isinstance(node, exp.Substring):
            args = [node.this, node.args.get("start") or exp.Literal.number(1)]
            if node.args.get("length") is not None:
                args.append(node.args["length"])
            return self._func("substring", args)
        if isinstance(node, exp.Trim):
            if node.args.get("collation") is not None:
                raise UnsupportedError("TRIM … COLLATE is not supported at the router")
            position = (node.args.get("position") or "BOTH").upper()
            name = {"BOTH": "trim", "LEADING": "ltrim", "TRAILING": "rtrim"}[position]
            args = [node.this] + ([node.expression] if node.expression is not None else [])
            return self._func(name, args)
        if isinstance(node, exp.Round):
            decimals = node.args.get("decimals")
            return self._func("round", [node.this] + ([decimals] if decimals is not None else []))
        if isinstance(node, (exp.Floor, exp.Ceil)):
            if node.args.get("decimals") is not None or node.args.get("to") is not None:
                raise UnsupportedError(f"{node.key.upper()} with a precision is not supported at the router")
            return self._func("floor" if isinstance(node, exp.Floor) else "ceil", [node.this])
        if isinstance(node, (exp.Greatest, exp.Least)):
            return self._func("greatest" if isinstance(node, exp.Greatest) else "least",
                              [node.this, *node.expressions])
        if isinstance(node, exp.Collate):
            return Collated(c(node.this), _collation_name(node))
        if isinstance(node, exp.Cast) and not isinstance(node, exp.TryCast):
            return self._cast(node)
        if isinstance(node, exp.Column):
            raise UnsupportedError(f"column {node.sql()} is not available to the router here")
        if isinstance(node, exp.AggFunc):
            raise UnsupportedError(f"aggregate {node.sql()} is not available to the router here")
        what = node.sql_name() if isinstance(node, exp.Func) else node.key.upper()
        raise UnsupportedError(f"{what} is not supported in expressions evaluated by the router")

    @staticmethod
    def _flatten(node: exp.Expression, kind: type[exp.Expression]) -> list[exp.Expression]:
        out: list[exp.Expression] = []
        stack = [node]
        while stack:
            n = stack.pop()
            while isinstance(n, exp.Paren) and isinstance(n.this, kind):
                n = n.this
            if isinstance(n, kind):
                stack.append(n.expression)
                stack.append(n.this)
            else:
                out.append(n)
        return out

    def _is(self, node: exp.Is, negate: bool) -> Expr:
        negate = negate != bool(node.args.get("negate"))  # ``x IS NOT NULL`` may arrive as Is(negate=True)
        target = node.expression
        if isinstance(target, exp.Null):
            return self._fold(IsNull(self.compile(node.this), negate))
        if isinstance(target, exp.Boolean):
            return self._fold(IsBool(self.compile(node.this), bool(target.this), negate, self.dialect))
        raise UnsupportedError(f"IS {target.sql()} is not supported at the router")

    def _negatable(self, node: exp.Expression, negate: bool) -> Expr:
        c = self.compile
        if isinstance(node, exp.In):
            if node.args.get("query") is not None or node.args.get("unnest") is not None:
                raise UnsupportedError("IN (subquery) is not supported at the router")
            items = tuple(c(i) for i in node.expressions)
            return self._fold(InList(c(node.this), items, self.dialect, negate, self.collation(node.this)))
        if isinstance(node, exp.Between):
            return self._fold(Between(c(node.this), c(node.args["low"]), c(node.args["high"]), self.dialect, negate,
                                      self.collation(node.this)))
        assert isinstance(node, exp.Like)
        return self._like(node, negate=negate != bool(node.args.get("negate")), escape=None)

    def _like(self, node: exp.Like, negate: bool, escape: exp.Expression | None) -> Expr:
        return self._fold(Like(self.compile(node.this), self.compile(node.expression), self.dialect, negate,
                               self.compile(escape) if escape is not None else None,
                               self.collation(node.this, node.expression)))

    def _func(self, name: str, args: list[exp.Expression]) -> Expr:
        return self._fold(Func(name, tuple(self.compile(a) for a in args), self.dialect))

    def _cast(self, node: exp.Cast) -> Expr:
        to = node.args["to"]
        if not isinstance(to, exp.DataType) or node.args.get("format") is not None:
            raise UnsupportedError(f"CAST({node.sql()}) is not supported at the router")
        type_name = to.this.name if hasattr(to.this, "name") else str(to.this)
        params = [p.this for p in to.expressions if isinstance(p, exp.DataTypeParam)]
        nums: list[int] = []
        for p in params:
            if not (isinstance(p, exp.Literal) and p.is_int):
                raise UnsupportedError(f"CAST to {to.sql()} is not supported at the router")
            nums.append(int(p.this))
        supported = _INT_TYPES | _TEXT_TYPES | _FLOAT_TYPES | _DECIMAL_TYPES | {"DATE", "DATETIME", "TIMESTAMP",
                                                                               "BOOLEAN"}
        if type_name not in supported:
            raise UnsupportedError(f"CAST to {to.sql()} is not supported at the router")
        precision = nums[0] if nums and type_name in _DECIMAL_TYPES else None
        scale = nums[1] if len(nums) > 1 and type_name in _DECIMAL_TYPES else None
        return self._fold(Cast(self.compile(node.this), type_name, self.dialect, precision, scale))

    @staticmethod
    def _fold(node: Expr) -> Expr:
        """Evaluate a node whose operands are all plan-time constants (``Lit``) now."""
        children = _children(node)
        if children and all(isinstance(ch, Lit) for ch in children):
            try:
                return Lit(node.evaluate((), ()))
            except (UnsupportedError, InvalidValueError):
                return node  # keep it: the error belongs to execution, if it runs
        return node


def _children(node: Expr) -> list[Expr]:
    out: list[Expr] = []
    for name in getattr(node, "__slots__", ()):
        v = getattr(node, name)
        if isinstance(v, tuple):
            for item in v:
                if isinstance(item, tuple):
                    out.extend(item)
                elif hasattr(item, "evaluate"):
                    out.append(item)
        elif hasattr(v, "evaluate"):
            out.append(v)
    return out


def _collation_name(node: exp.Collate) -> str:
    target = node.expression
    if isinstance(target, (exp.Identifier, exp.Var, exp.Literal)):
        return str(target.this)
    if isinstance(target, exp.Column):
        return target.name
    return target.sql()


def compile_expr(node: exp.Expression, dialect: str, resolve: Resolver | None = None, *,
                 collation_of: Callable[[exp.Expression], str | None] | None = None) -> Expr:
    """Compile ``node`` (written in ``dialect``) into an evaluable tree.

    ``resolve(sub)`` is asked first for every sub-expression, outermost first; what it returns (usually
    ``Col(offset)``) stands for that sub-expression, so columns and aggregates become reads of the input row.
    ``collation_of(sub)`` may name the declared collation of an operand. Placeholders ``:vN`` read the bind
    values; operations on constants only are folded. Anything unsupported raises ``UnsupportedError`` now.
    """
    return _Compiler(dialect, resolve, collation_of).compile(node)
