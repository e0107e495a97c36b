"""sqlglot, used only on a plan-cache miss: one dialect object per wire protocol, made once.

Whatever sqlglot cannot parse is a syntax error with its position in the client's own text; whatever it turns
into ``exp.Command`` (its "I did not understand this" node) is an unsupported-statement error naming the
construct, never a guess.
"""
from __future__ import annotations

import functools
import logging

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, TokenError

from sharding.errors import SyntaxError_, UnsupportedError

DIALECTS = ("mysql", "postgres")

# sqlglot warns before falling back to exp.Command; we turn that fallback into an error ourselves.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


@functools.cache
def dialect(name: str) -> Dialect:
    if name not in DIALECTS:
        raise ValueError(f"unknown dialect {name!r}")
    return Dialect.get_or_raise(name)


def _position(sql: str, line: int | None, col: int | None) -> int | None:
    """1-based character offset of (line, col) in ``sql``; sqlglot counts both from 1."""
    if not line or col is None:
        return None
    lines = sql.split("\n")
    if line > len(lines):
        return len(sql)
    return sum(len(x) + 1 for x in lines[: line - 1]) + max(col, 1)


def _syntax_error(exc: ParseError | TokenError, original: str, dialect_name: str) -> SyntaxError_:
    """A syntax error positioned in the client's text: the normalized text it came from differs, so the original
    is parsed again to find where it breaks."""
    try:
        sqlglot.parse(original, read=dialect(dialect_name), error_level=ErrorLevel.IMMEDIATE)
    except ParseError as again:
        first = again.errors[0] if again.errors else {}
        pos = _position(original, first.get("line"), first.get("col"))
        desc = first.get("description") or str(again)
        near = first.get("highlight") or ""
        msg = f"syntax error at position {pos}" + (f" near '{near}'" if near else "") + f": {desc}"
        return SyntaxError_(msg, position=pos)
    except TokenError as again:
        return SyntaxError_(f"syntax error: {again}")
    return SyntaxError_(f"syntax error: {exc}")


def parse_statement(normalized: str, dialect_name: str, original: str | None = None) -> exp.Expression:
    """One statement (the fingerprint's normalized text, with ``:vN`` placeholders) as a sqlglot tree."""
    try:
        trees = sqlglot.parse(normalized, read=dialect(dialect_name), error_level=ErrorLevel.IMMEDIATE)
    except (ParseError, TokenError) as exc:
        raise _syntax_error(exc, original if original is not None else normalized, dialect_name) from None
    trees = [t for t in trees if t is not None]
    if not trees:
        raise SyntaxError_("empty statement", position=1)
    if len(trees) > 1:
        raise UnsupportedError("several statements in one: send them one by one or as a multi-statement query")
    tree = trees[0]
    if isinstance(tree, exp.Command) and str(tree.this).upper() == "REPLACE":
        from router.planner.dml import parse_replace  # sqlglot reads MySQL REPLACE as a Command

        tree = parse_replace(normalized, dialect_name) or tree
    if isinstance(tree, exp.Command):
        words = " ".join(tree.sql(dialect=dialect(dialect_name)).split()[:2]).upper()
        raise UnsupportedError(f"unsupported statement: {words}")
    return tree
