"""SQL templates: per-shard SQL with value slots, rendered with the values of one execution.

A template is built once per plan from sqlglot's generated text; rendering is a join of strings, so a cache hit
never calls sqlglot. Values are written as literals of the backend's dialect (``encode_literal``).
"""
from __future__ import annotations

import datetime as _dt
import decimal
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from router.planner.values import ValueExpr, evaluate
from sharding.errors import InvalidValueError


@dataclass(frozen=True, slots=True)
class SqlTemplate:
    """Alternating text and value slots: ``parts[0]``, ``slots[0]``, ``parts[1]``, … ``parts[-1]``."""

    parts: tuple[str, ...]
    slots: tuple[ValueExpr, ...] = ()

    @staticmethod
    def text(sql: str) -> SqlTemplate:
        return SqlTemplate((sql,))

    @property
    def is_static(self) -> bool:
        return not self.slots

    def describe(self) -> str:
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out.append(slot.describe())
            out.append(part)
        return "".join(out)

    def render(self, binds: Sequence[Any], dialect: str, env: dict[str, Any] | None = None,
               overrides: dict[int, Any] | None = None) -> str:
        """The SQL for one execution. ``overrides`` replaces the value of slot i (per-shard IN lists)."""
        if not self.slots:
            return self.parts[0]
        enc = ENCODERS[dialect]
        out = [self.parts[0]]
        for i, (slot, part) in enumerate(zip(self.slots, self.parts[1:], strict=True)):
            value = overrides[i] if overrides is not None and i in overrides else evaluate(slot, binds, env)
            out.append(enc(value))
            out.append(part)
        return "".join(out)


_PLACEHOLDER = {
    "mysql": re.compile(r":v(\d+)\b"),
    "postgres": re.compile(r"%\(v(\d+)\)s"),
}


def template_from_generated(sql: str, dialect: str, expected: int | None = None,
                            slot_for: Callable[[int], ValueExpr] | None = None) -> SqlTemplate | None:
    """Split sqlglot output at its placeholders (``:v3`` in MySQL, ``%(v3)s`` in PostgreSQL).

    Returns None when the count of placeholders found differs from ``expected`` (a literal kept verbatim that
    happens to contain placeholder-like text); the caller then renders through sqlglot per execution instead.
    """
    from router.planner.values import Arg

    rx = _PLACEHOLDER[dialect]
    parts: list[str] = []
    slots: list[ValueExpr] = []
    pos = 0
    for m in rx.finditer(sql):
        parts.append(sql[pos:m.start()])
        n = int(m.group(1))
        slots.append(slot_for(n - 1) if slot_for else Arg(n - 1))
        pos = m.end()
    parts.append(sql[pos:])
    if expected is not None and len(slots) != expected:
        return None
    return SqlTemplate(tuple(parts), tuple(slots))


# --- literals -----------------------------------------------------------------------------------------------
_MYSQL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\0": "\\0", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z"})


def _scalar_common(value: Any) -> str | None:
    if value is None:
        return "NULL"
    if value is True:
        return "TRUE"
    if value is False:
        return "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise InvalidValueError(f"cannot write {value} as an SQL literal")
        # Never an exponent (``1E+3`` is a float in MySQL) and always a point: ``29399`` would be an integer, and
        # a DECIMAL value (a SUM pulled out of a subquery) must stay DECIMAL in the expression it goes into.
        text = format(value, "f")
        return text if "." in text else text + "."
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None  # dialect specific
        return repr(value)
    return None


def encode_mysql(value: Any) -> str:
    """A MySQL/MariaDB literal for ``value`` (strings with backslash escapes, bytes as X'..')."""
    common = _scalar_common(value)
    if common is not None:
        return common
    if isinstance(value, str):
        return "'" + value.translate(_MYSQL_ESCAPES) + "'"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "X'" + bytes(value).hex() + "'"
    if isinstance(value, tuple):  # a folded IN list: the text around the slot already has the parentheses
        return ", ".join("(" + encode_mysql(v) + ")" if isinstance(v, tuple) else encode_mysql(v) for v in value)
    if isinstance(value, _dt.datetime):
        return "'" + value.isoformat(sep=" ") + "'"
    if isinstance(value, (_dt.date, _dt.time)):
        return "'" + value.isoformat() + "'"
    if isinstance(value, _dt.timedelta):
        return "'" + _mysql_interval(value) + "'"
    if isinstance(value, uuid.UUID):
        return "'" + str(value) + "'"
    raise InvalidValueError(f"cannot write a {type(value).__name__} value to MySQL")


def _mysql_interval(td: _dt.timedelta) -> str:
    sign = "-" if td < _dt.timedelta(0) else ""
    td = abs(td)
    hours, rem = divmod(td.days * 86400 + td.seconds, 3600)
    minutes, seconds = divmod(rem, 60)
    frac = f".{td.microseconds:06d}" if td.microseconds else ""
    return f"{sign}{hours}:{minutes:02d}:{seconds:02d}{frac}"


def encode_postgres(value: Any) -> str:
    """A PostgreSQL literal for ``value`` (standard_conforming_strings on: only quotes are doubled)."""
    common = _scalar_common(value)
    if common is not None:
        return common
    if isinstance(value, float):
        return "'NaN'::float8" if value != value else ("'Infinity'::float8" if value > 0 else "'-Infinity'::float8")
    if isinstance(value, str):
        if "\0" in value:
            raise InvalidValueError("PostgreSQL text cannot hold a NUL character")
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "'\\x" + bytes(value).hex() + "'::bytea"
    if isinstance(value, tuple):  # a folded IN list: the text around the slot already has the parentheses
        return ", ".join("(" + encode_postgres(v) + ")" if isinstance(v, tuple) else encode_postgres(v) for v in value)
    if isinstance(value, _dt.datetime):
        kind = "timestamptz" if value.tzinfo is not None else "timestamp"
        return f"'{value.isoformat(sep=' ')}'::{kind}"
    if isinstance(value, _dt.date):
        return f"'{value.isoformat()}'::date"
    if isinstance(value, _dt.time):
        return f"'{value.isoformat()}'::time"
    if isinstance(value, _dt.timedelta):
        return f"'{value.total_seconds()} seconds'::interval"
    if isinstance(value, uuid.UUID):
        return f"'{value}'::uuid"
    raise InvalidValueError(f"cannot write a {type(value).__name__} value to PostgreSQL")


ENCODERS: dict[str, Callable[[Any], str]] = {"mysql": encode_mysql, "postgres": encode_postgres}
