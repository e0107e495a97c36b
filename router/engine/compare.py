"""Ordering rows the way the shards ordered them, so that merging their streams keeps the order
(``OrderByParam``'s comparison, as ``router.planner.plan`` states it).

- NULL equals NULL; against a value it comes first when ``nulls_first`` (None: MySQL's rule, NULL is the smallest
  value). The planner resolves PostgreSQL's defaults (NULL largest) into an explicit bool.
- Text and binary values compare by their weight-string column when the key has one (MySQL ``WEIGHT_STRING()``,
  compared as bytes: exactly the column collation's order); numbers and dates compare natively even then.
- Text without a weight column compares by code point only under a code-point collation (``C``, ``binary``,
  ``*_bin`` ignoring trailing spaces); otherwise it is an ``UnsupportedError``: a merge in the wrong order would
  silently return wrong rows.
- Numbers compare by value whatever their Python type (int, Decimal, float); Decimal never goes through float.

``sort_key(order_by)`` returns a function row -> key tuple usable by ``heapq`` and ``list.sort``; ``DESC`` keys
are wrapped in ``Desc``, which reverses the comparison.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from router.backend.result import Row
from sharding.errors import UnsupportedError

__all__ = ["Desc", "group_key", "key_component", "sort_key"]


class Desc:
    """Reverses the order of the value it wraps (DESC keys inside an ascending key tuple)."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: Desc) -> bool:
        return bool(other.v < self.v)

    def __gt__(self, other: Desc) -> bool:
        return bool(other.v > self.v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Desc) and bool(self.v == other.v)

    def __hash__(self) -> int:
        return hash(self.v)

    def __repr__(self) -> str:
        return f"Desc({self.v!r})"


def _text_mode(collation: str | None) -> int:
    """0: text may not be compared here; 1: code-point order; 2: code-point order ignoring trailing spaces."""
    from router.planner.evalexpr import CODEPOINT_COLLATIONS, PAD_SPACE_BIN_COLLATIONS, normalize_collation

    n = normalize_collation(collation)
    if n in CODEPOINT_COLLATIONS:
        return 1
    if n in PAD_SPACE_BIN_COLLATIONS:
        return 2
    return 0


def _unsupported_text(col: int, collation: str | None) -> UnsupportedError:
    what = f"collation {collation}" if collation else "the backend's collation"
    return UnsupportedError(f"ordering text (column {col}) under {what} at the router needs a weight-string column or "
                            "a binary/C collation (add COLLATE, or declare the column's collation_name in the VSchema)")


def key_component(col: int, desc: bool, nulls_first: bool, weight_col: int = -1,
                  collation: str | None = None) -> Callable[[Row], Any]:
    """Row -> a comparable value for one key, already reversed when ``desc`` (see the module docstring)."""
    # NULL's rank among values (1) before the DESC reversal, so that after it NULL lands where it must.
    null_pre = (0 if nulls_first else 2) if not desc else (2 if nulls_first else 0)
    text = _text_mode(collation)

    def component(row: Row) -> tuple[int, Any]:
        v = row[col]
        if v is None:
            return (null_pre, 0)
        cls = v.__class__
        if cls is str or cls is bytes or cls is bytearray or cls is memoryview:
            if weight_col >= 0:
                w = row[weight_col]
                if w is None:
                    return (null_pre, 0)
                return (1, bytes(w) if not isinstance(w, bytes) else w)
            if cls is str:
                if text == 1:
                    return (1, v)
                if text == 2:
                    return (1, v.rstrip(" "))
                raise _unsupported_text(col, collation)
            return (1, bytes(v))
        return (1, v)

    if desc:
        return lambda row: Desc(component(row))
    return component


def sort_key(order_by: Sequence[Any], dialect: str = "mysql") -> Callable[[Row], tuple[Any, ...]]:
    """A key function for ``order_by`` (``OrderByParam``s). ``nulls_first`` None is MySQL's rule (NULL is the
    smallest value); the planner resolves PostgreSQL's defaults into it, so ``dialect`` is not consulted."""
    parts = [key_component(o.col, bool(o.desc), _nulls_first(o), o.weight_col, o.collation) for o in order_by]
    if len(parts) == 1:
        only = parts[0]
        return lambda row: (only(row),)
    spec = tuple(parts)
    return lambda row: tuple(c(row) for c in spec)


def _nulls_first(o: Any) -> bool:
    nf = getattr(o, "nulls_first", None)
    return (not o.desc) if nf is None else bool(nf)


def equality_value(row: Row, col: int, weight_col: int = -1) -> Any:
    """The value a row is grouped (or de-duplicated) by on one column: its weight string when the column has one
    and the value is text or binary (MySQL ``WEIGHT_STRING()`` of a number is not meaningful, NULL on MariaDB),
    else the value itself (bytes-like as bytes)."""
    v = row[col]
    if v is None:
        return None
    cls = v.__class__
    if cls is str or cls is bytes or cls is bytearray or cls is memoryview:
        if weight_col >= 0:
            w = row[weight_col]
            return w if w is None or isinstance(w, bytes) else bytes(w)
        return v if cls is str or cls is bytes else bytes(v)
    return v


def group_key(cols: Sequence[int]) -> Callable[[Row], tuple[Any, ...]]:
    """The grouping key of a row: the values (or weight strings) at ``cols``, NULLs equal to each other."""
    cols = tuple(cols)
    if len(cols) == 1:
        c = cols[0]
        return lambda row: (row[c],)
    return lambda row: tuple(row[c] for c in cols)
