"""SELECTs of constants that the router answers itself: Vitess's ``Projection`` over ``SingleRow``.

Vitess evaluates a SELECT that reads only ``dual`` (no FROM, or an unqualified ``FROM dual``; no WHERE, GROUP BY,
HAVING, ORDER BY or LIMIT) at vtgate when its evaluation engine can translate every select expression
(``planbuilder.handleDualSelects``); otherwise it sends it to a shard (a Reference route). We do the same where the
router's evaluation is exactly MySQL's, and send everything else to a shard as before:

- MySQL sessions only: PostgreSQL types its constants differently (``42`` is an integer, ``SELECT 42`` names its
  column ``?column?``), and a shard is always right; not in a session aimed at a shard (``USE `ks:-80```), whose
  statements all go there;
- each select expression (aliased or not) is built from numeric literals, parentheses, unary minus and ``+ - *``
  only, evaluated by ``router.planner.evalexpr`` (exact integer and DECIMAL arithmetic, as MySQL's). Strings
  (``'a' 'b'`` is one string in MySQL), NULL, booleans, floats, functions, variables, subqueries and division
  (its scale follows the session's ``div_precision_increment``) go to a shard;
- the values must stay within what MySQL computes without an error or a rounding: integers within signed BIGINT,
  decimals within DECIMAL(65, 30), no negative zero. Plans are cached per fingerprint, so a ``ConstantsHold``
  guard checks every execution's values the same way; when it fails, the statement is planned afresh for them and
  goes to a shard, which answers with MySQL's own result or error (``BIGINT value is out of range``).

Column names are MySQL's: the alias, else the expression's text as the client wrote it (``SELECT 42+2`` names its
column ``42+2``, ``SELECT 042`` names it ``042``). Statements that share a plan may write their literals and
spaces differently, so the engine names those columns from the text of the statement it runs (``item_texts``,
cached per text); the names in the plan, from the statement it was planned from, are the fallback.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlglot import exp

from router.planner import evalexpr as ev
from router.planner.context import PlanContext
from router.planner.plan import Projection, SingleRow
from router.planner.semantics import ident
from sharding.errors import InvalidValueError, UnsupportedError

__all__ = ["ConstantsHold", "item_texts", "plan_constant_select"]

_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1
_DECIMAL_DIGITS, _DECIMAL_SCALE = 65, 30
_OPERATORS = (exp.Add, exp.Sub, exp.Mul)
_ONLY_ARGS = frozenset({"expressions", "from_"})


def _exact(v: Any) -> bool:
    """A value MySQL holds exactly as this: a BIGINT, or a DECIMAL(65, 30) that is not a negative zero."""
    if type(v) is int:
        return _BIGINT_MIN <= v <= _BIGINT_MAX
    if type(v) is Decimal:
        if not v.is_finite() or (v == 0 and v.is_signed()):
            return False
        _, digits, exponent = v.as_tuple()
        assert isinstance(exponent, int)
        scale = max(-exponent, 0)
        return scale <= _DECIMAL_SCALE and len(digits) + max(exponent, 0) <= _DECIMAL_DIGITS
    return False


@dataclass(frozen=True, slots=True)
class ConstantsHold:
    """Guard of a constant SELECT answered by the router: the statement values at ``indices`` are exact numbers of
    the same types as when it was planned (``kinds``), and every expression evaluates to an exact number."""

    indices: tuple[int, ...]
    kinds: tuple[type, ...]
    expressions: tuple[Any, ...]  # router.planner.evalexpr nodes

    def holds(self, binds: Sequence[Any]) -> bool:
        for i, kind in zip(self.indices, self.kinds, strict=True):
            if i >= len(binds) or type(binds[i]) is not kind or not _exact(binds[i]):
                return False
        return _evaluates(self.expressions, binds)


def _evaluates(expressions: Sequence[Any], binds: Sequence[Any]) -> bool:
    """Whether every expression, and every step of it (MySQL would stop at an intermediate overflow), evaluates to an
    exact number."""

    def exact(e: Any) -> bool:
        steps = [getattr(e, name) for name in ("left", "right", "operand") if hasattr(e, name)]
        return all(exact(s) for s in steps) and _exact(e.evaluate((), binds))

    try:
        return all(exact(e) for e in expressions)
    except (InvalidValueError, UnsupportedError, ArithmeticError):
        return False


def _is_dual(from_: exp.Expression | None) -> bool:
    if from_ is None:
        return True
    table = from_.this  # unqualified, unaliased ``dual``, nothing else
    return (isinstance(table, exp.Table) and isinstance(table.this, exp.Identifier) and table.name.lower() == "dual"
            and not any(v for k, v in table.args.items() if k != "this"))


def _constant_tree(node: exp.Expression, ctx: PlanContext, used: dict[int, type]) -> bool:
    """Whether ``node`` is arithmetic over numeric literals that the router evaluates as MySQL does."""
    if isinstance(node, exp.Paren):
        return _constant_tree(node.this, ctx, used)
    if isinstance(node, _OPERATORS):
        return _constant_tree(node.this, ctx, used) and _constant_tree(node.expression, ctx, used)
    if isinstance(node, exp.Neg):
        return _constant_tree(node.this, ctx, used)
    if isinstance(node, exp.Placeholder):
        name = node.name
        if not (name.startswith("v") and name[1:].isdigit()):
            return False
        index = int(name[1:]) - 1
        if index >= len(ctx.values) or not ctx.value_known(index):
            return False  # a bind parameter: its type is not known here
        value = ctx.values[index]
        if not _exact(value):
            return False
        used[index] = type(value)
        return True
    if isinstance(node, exp.Literal) and not node.is_string:
        from router.planner.routing import _number

        return _exact(_number(node.this))
    return False


def plan_constant_select(tree: exp.Expression, ctx: PlanContext) -> Projection | None:
    """The router-side plan of a SELECT of constants (see the module docstring), or None when a shard must answer."""
    if ctx.session.dialect != "mysql" or ctx.session.target is not None or not isinstance(tree, exp.Select):
        return None  # a session aimed at a shard (USE `ks:-80`) sends everything there, as Vitess does
    if any(v for k, v in tree.args.items() if k not in _ONLY_ARGS) or not _is_dual(tree.args.get("from_")):
        return None
    used: dict[int, type] = {}
    names: list[str] = []
    unaliased: list[int] = []
    expressions = []
    for i, item in enumerate(tree.expressions):
        node = item
        if isinstance(item, exp.Alias):
            alias = item.args.get("alias")
            if not isinstance(alias, exp.Identifier):
                return None
            names.append(ident(alias, "mysql"))
            node = item.this
        else:
            names.append("")
            unaliased.append(i)
        if not _constant_tree(node, ctx, used):
            return None
        try:
            expressions.append(ev.compile_expr(node, "mysql"))
        except UnsupportedError:
            return None
    if not expressions or not _evaluates(expressions, ctx.values):
        return None
    texts = item_texts(ctx.original_sql)
    if texts is None or len(texts) != len(names):
        return None  # the client's text does not read as this select list: leave it to a shard
    for i in unaliased:
        names[i] = texts[i]
    indices = tuple(sorted(used))
    guard = ConstantsHold(indices, tuple(used[i] for i in indices), tuple(expressions))
    ctx.guards.append(guard)  # type: ignore[arg-type]
    return Projection(tuple(expressions), tuple(names), SingleRow(tuple(unaliased)))


# --- column names from the statement's text --------------------------------------------------------------------
@functools.cache
def _tokenizer() -> Any:
    from router.planner.parse import dialect

    return dialect("mysql").tokenizer_class()


@functools.lru_cache(maxsize=1024)
def item_texts(sql: str) -> tuple[str, ...] | None:
    """The text of each select expression of ``SELECT … [FROM …]`` (optionally in parentheses) as written in
    ``sql``, alias included, or None when the text does not read so. Cached per text: a statement the router
    answers itself is usually sent again and again (``SELECT 1``)."""
    from sqlglot.tokens import TokenType

    try:
        tokens = _tokenizer().tokenize(sql)
    except Exception:  # any text sqlglot cannot tokenize simply has no names here
        return None
    i = 0
    while i < len(tokens) and tokens[i].token_type is TokenType.L_PAREN:
        i += 1
    if i >= len(tokens) or tokens[i].token_type is not TokenType.SELECT:
        return None
    items: list[list[Any]] = [[]]
    depth = 0
    for tok in tokens[i + 1:]:
        kind = tok.token_type
        if depth == 0 and kind in (TokenType.FROM, TokenType.R_PAREN, TokenType.SEMICOLON):
            break
        if kind is TokenType.L_PAREN:
            depth += 1
        elif kind is TokenType.R_PAREN:
            depth -= 1
        elif kind is TokenType.COMMA and depth == 0:
            items.append([])
            continue
        items[-1].append(tok)
    if any(not item for item in items):
        return None
    return tuple(sql[item[0].start:item[-1].end + 1] for item in items)
