"""Result column names as the database would give them (the rules are the planner's: ``router.planner.names``).

The plan of a SELECT the router computes carries one naming rule per output column; the columns its root source
reports (named after helper queries and planner texts) are renamed by them when the statement is opened. MySQL's
names of unaliased expressions are their text in the statement being run; when that text does not read as a
select list of the right length, the names stay as they are.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from router.backend.result import Column

__all__ = ["named_columns"]


def named_columns(columns: tuple[Column, ...], rules: Sequence[tuple[str, object] | None], sql: str | None
                  ) -> tuple[Column, ...]:
    if len(columns) != len(rules):
        return columns
    texts: tuple[str, ...] | None = None
    if sql and any(r is not None and r[0] == "text" for r in rules):
        from router.planner.dual import item_texts

        texts = item_texts(sql)
        if texts is not None and len(texts) != len(rules):
            texts = None
    out = list(columns)
    for i, rule in enumerate(rules):
        if rule is None:
            continue
        kind, value = rule
        if kind == "name":
            name = str(value)
        elif texts is not None:
            name = texts[int(value)]  # type: ignore[call-overload]
        else:
            continue
        if out[i].name != name:
            out[i] = dataclasses.replace(out[i], name=name)
    return tuple(out)
