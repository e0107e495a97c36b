"""sqlglot, used only on a plan-cache miss: one dialect object per wire protocol, made once.

Whatever sqlglot cannot parse is a syntax error with its position in the client's own text; whatever it turns
into ``exp.Command`` (its "I did not understand this" node) is an unsupported-statement error naming the
construct, never a guess.
"""
from __future__ import annotations

import functools
import logging
import re

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


# MySQL runs the text of an executable comment (``/*! … */``, ``/*!50700 … */``, MariaDB ``/*M!100100 … */``); the
# planner must see it too, or it would route (and check ACLs on) a statement other than the one the server runs.
_EXECUTABLE_COMMENT = re.compile(r"/\*M?!(?:\d{5,6})?(.*?)\*/", re.S)


def parse_statement(normalized: str, dialect_name: str, original: str | None = None) -> exp.Expression:
    """One statement (the fingerprint's normalized text, with ``:vN`` placeholders) as a sqlglot tree."""
    if dialect_name == "mysql" and "/*" in normalized:
        normalized = _EXECUTABLE_COMMENT.sub(lambda m: f" {m.group(1)} ", normalized)
    try:
        trees = sqlglot.parse(normalized, read=dialect(dialect_name), error_level=ErrorLevel.IMMEDIATE)
    except (ParseError, TokenError) as exc:
        raise _syntax_error(exc, original if original is not None else normalized, dialect_name) from None
    except Exception as exc:  # sqlglot bugs on odd input (IndexError in its parser): still the client's syntax
        raise SyntaxError_(f"syntax error: the statement could not be parsed ({type(exc).__name__})") from None
    trees = [t for t in trees if t is not None]
    if not trees:
        raise SyntaxError_("empty statement", position=1)
    if len(trees) > 1:
        raise UnsupportedError("several statements in one: send them one by one or as a multi-statement query")
    tree = trees[0]
    if isinstance(tree, exp.Command) and str(tree.this).upper() == "REPLACE":
        from router.planner.dml import parse_replace  # sqlglot reads MySQL REPLACE as a Command

        tree = parse_replace(normalized, dialect_name) or tree
    for node in tree.find_all(exp.In):
        # ``col IN ::list`` (Vitess list parameter) parses as ``field``; as a one-item list it renders with the
        # parentheses the shard needs and routes like any folded IN list.
        field = node.args.get("field")
        if isinstance(field, exp.Placeholder):
            node.set("field", None)
            node.set("expressions", [field])
    if isinstance(tree, exp.Command):
        words = " ".join(tree.sql(dialect=dialect(dialect_name)).split()[:2]).upper()
        raise UnsupportedError(f"unsupported statement: {words}")
    return _spell_out_negations(tree)


def _spell_out_negations(tree: exp.Expr | None) -> exp.Expression:
    """``x IS NOT NULL`` / ``x NOT LIKE y`` as ``NOT (…)`` around the positive node, however sqlglot read them.

    sqlglot's PostgreSQL reader gives ``Is(negate=True)`` for ``x IS NOT NULL`` where its MySQL reader gives
    ``Not(Is(...))``; the planner looks for ``exp.Not`` (routing, null rejection, the evaluator), so a flag left on
    the node would read as ``x IS NULL``: a route to the NULL keyspace id, a HAVING that keeps the wrong groups."""
    assert tree is not None
    for node in list(tree.find_all(exp.Is, exp.Like, exp.ILike)):
        if node.args.get("negate"):
            positive = node.copy()
            positive.set("negate", None)
            replacement = exp.Not(this=positive)
            if node is tree:
                return replacement
            node.replace(replacement)
    assert isinstance(tree, exp.Expression)
    return tree
