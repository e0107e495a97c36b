"""``UncorrelatedSubquery``: run the subquery first, bind its result, then run the outer query (Vitess
``UncorrelatedSubquery`` with its pull-out opcodes).

- ``PulloutValue``: at most one row; its first column becomes ``env[subquery_var]`` (NULL for no row); more than
  one row is an error (MySQL 1242).
- ``PulloutIn`` / ``PulloutNotIn``: the first column of every row becomes a tuple in ``env[subquery_var]`` (held
  in memory: counts against the row cap); ``env[has_values_var]`` says whether there was any.
- ``PulloutExists``: only ``env[has_values_var]`` (the subquery stops at its first row).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from router.engine.runtime import Runtime, Source
from router.planner.plan import Primitive, UncorrelatedSubquery
from sharding.errors import InvalidValueError, UnsupportedError

__all__ = ["open_uncorrelated", "too_many_rows"]

Opener = Callable[[Primitive, Runtime], Awaitable[Source]]


def too_many_rows() -> InvalidValueError:
    """MySQL ER_SUBQUERY_NO_1_ROW (1242) / PostgreSQL cardinality_violation (21000). The catalog has no class of
    its own for it yet, so the instance carries the codes (as ``BackendError`` does)."""
    err = InvalidValueError("subquery returns more than 1 row")
    err.mysql_errno, err.mysql_sqlstate, err.pg_sqlstate = 1242, "21000", "21000"  # type: ignore[misc]
    return err


async def open_uncorrelated(prim: UncorrelatedSubquery, rt: Runtime, open_source: Opener) -> Source:
    env = dict(rt.env)
    sub = await open_source(prim.subquery, rt)
    held = 0
    try:
        variant = prim.variant
        if variant == "PulloutExists":
            batch = await sub.next()
            env[prim.has_values_var or prim.subquery_var] = bool(batch)
        elif variant == "PulloutValue":
            rows: list[Any] = []
            while (batch := await sub.next()) is not None:
                rows.extend(batch)
                if len(rows) > 1:
                    raise too_many_rows()
            env[prim.subquery_var] = rows[0][0] if rows else None
            if prim.has_values_var:
                env[prim.has_values_var] = bool(rows)
        elif variant in ("PulloutIn", "PulloutNotIn"):
            values: list[Any] = []
            while (batch := await sub.next()) is not None:
                rt.budget.charge(len(batch), "subquery values in router memory")
                held += len(batch)
                values.extend(row[0] for row in batch)
            # An empty list is written ``IN (NULL)`` (valid SQL, matches nothing); the query tests has_values too.
            env[prim.subquery_var] = tuple(values) if values else (None,)
            if prim.has_values_var:
                env[prim.has_values_var] = bool(values)  # TRUE/FALSE: PostgreSQL's AND/NOT take no integer
        else:
            raise UnsupportedError(f"UncorrelatedSubquery variant {variant} is not executable")
    finally:
        await sub.close()
    try:
        outer = await open_source(prim.outer, rt.child(env))
    finally:
        rt.budget.release(held)  # the values now live in the outer query's text
    return outer
