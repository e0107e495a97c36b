"""Comparing a router result with the reference database's: identical rows (values and their Python types), in
the same order when the query orders them, as multisets otherwise."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

Row = tuple[Any, ...]
Key = tuple[Any, ...]


def normalize(value: Any, text_key: Callable[[str], Any] | None = None) -> Key:
    """A comparable, hashable form that keeps the type: ``1`` (int) differs from ``Decimal('1')``; a Decimal keeps
    its scale (``1.50`` differs from ``1.5``: a client prints them differently)."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, str):
        return ("text", text_key(value)) if text_key is not None else ("text", value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(value))
    if isinstance(value, dt.datetime):
        return ("datetime", value.isoformat())
    if isinstance(value, dt.date):
        return ("date", value.isoformat())
    return (type(value).__name__, repr(value))


def normalize_rows(rows: Sequence[Row], text_key: Callable[[str], Any] | None = None) -> list[Key]:
    return [tuple(normalize(v, text_key) for v in row) for row in rows]


def diff(got: Sequence[Row], want: Sequence[Row], *, ordered: bool,
         text_key: Callable[[str], Any] | None = None) -> str | None:
    """None when equal, else a short description of the first differences."""
    g, w = normalize_rows(got, text_key), normalize_rows(want, text_key)
    if ordered:
        if g == w:
            return None
        if len(g) != len(w):
            return f"row count {len(got)} != {len(want)} (ordered){_first_mismatch(g, w, got, want)}"
        return f"ordered rows differ{_first_mismatch(g, w, got, want)}"
    if sorted(g, key=repr) == sorted(w, key=repr):
        return None
    from collections import Counter

    cg, cw = Counter(g), Counter(w)
    extra = cg - cw
    missing = cw - cg
    out = [f"row count {len(got)} vs reference {len(want)} (unordered)"]
    if extra:
        out.append(f"only from the router ({sum(extra.values())}): " + ", ".join(_show(k) for k in list(extra)[:5]))
    if missing:
        out.append(f"only in the reference ({sum(missing.values())}): "
                   + ", ".join(_show(k) for k in list(missing)[:5]))
    return "; ".join(out)


def _first_mismatch(g: list[Key], w: list[Key], got: Sequence[Row], want: Sequence[Row]) -> str:
    for i, (a, b) in enumerate(zip(g, w, strict=False)):
        if a != b:
            return f"; first difference at row {i}: router {got[i]!r} vs reference {want[i]!r}"
    return ""


def _show(key: Key) -> str:
    return "(" + ", ".join(repr(v[1]) if len(v) > 1 else "NULL" for v in key) + ")"


def show_rows(rows: Sequence[Row], limit: int = 12) -> str:
    body = "\n".join(f"      {r!r}" for r in rows[:limit])
    more = f"\n      … {len(rows) - limit} more" if len(rows) > limit else ""
    return (body + more) if rows else "      (no rows)"
