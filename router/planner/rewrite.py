"""Predicate rewriting for routing: constant folding with guards, and Vitess's boolean simplification.

Routing reads a WHERE clause as a list of ANDed predicates; a vindex predicate hidden inside an OR or behind a
NOT opens no route. Before routing, each predicate is rewritten on a copy (the original tree still builds the
per-shard SQL):

1. **Constant folding.** A comparison without columns whose values are known at plan time (``1 = 0``,
   ``:v2 < :v3``) becomes TRUE or FALSE; ``x OR FALSE`` is ``x``. The values came from the statement's literals,
   so the plan records a ``PredicateFolds`` guard: a cached plan is reused only for values that fold the same way.
   Only numbers are folded: string comparisons depend on collations and MySQL's string-to-number coercion.
2. **Row equality.** ``(a, b) = (x, y)`` is ``a = x AND b = y``.
3. **Boolean simplification** (Vitess ``sqlparser.RewritePredicate``): NOT pushed down (De Morgan), OR
   distributed over AND (towards CNF), absorption, duplicates removed, ``a = x OR a = y`` → ``a IN (x, y)``. One
   rewrite per pass, at most ``MAX_REWRITES`` passes; past that the predicate is left as it was (the CNF of a
   long OR of ANDs grows exponentially).

Every rule is an identity of SQL's three-valued logic, so the rewritten predicate selects the same rows.
``extract_in_from_or`` is Vitess's last resort for an OR of ANDed equalities: ``(a = 1 AND b = 2) OR (a = 3 AND
b = 4)`` → ``(a, b) IN ((1, 2), (3, 4))``.
"""
from __future__ import annotations

import decimal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from router.planner.context import PlanContext

MAX_REWRITES = 15  # Vitess RewritePredicate's bail-out

_CONNECTIVES = (exp.And, exp.Or, exp.Not, exp.Xor, exp.Paren)


def unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


# --- constant folding ---------------------------------------------------------------------------------------
# A folded expression is kept as a small tuple tree so the guard can evaluate it again with other values:
# ("arg", i) | ("const", v) | ("neg", x) | ("bin", op, a, b) | ("in", x, (items…)) | ("not", x)
Fold = tuple[Any, ...]

_UNKNOWN = object()
_COMPARISONS: dict[type[exp.Expression], str] = {
    exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">=",
}
_ARITHMETIC: dict[type[exp.Expression], str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*"}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def compile_fold(node: exp.Expression) -> Fold | None:
    """The fold tree of a column-free value/comparison expression, or None when it holds anything else."""
    node = unparen(node)
    if isinstance(node, exp.Placeholder):
        name = node.name
        return ("arg", int(name[1:]) - 1) if name.startswith("v") and name[1:].isdigit() else None
    if isinstance(node, exp.Null):
        return ("const", None)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return ("const", node.this)
        try:
            return ("const", int(node.this))
        except ValueError:
            try:
                return ("const", decimal.Decimal(node.this))
            except decimal.InvalidOperation:
                return None
    if isinstance(node, exp.Neg):
        inner = compile_fold(node.this)
        return ("neg", inner) if inner is not None else None
    op = _COMPARISONS.get(type(node)) or _ARITHMETIC.get(type(node))
    if op is not None:
        a, b = compile_fold(node.this), compile_fold(node.expression)
        return ("bin", op, a, b) if a is not None and b is not None else None
    if isinstance(node, exp.In):
        if node.args.get("query") is not None or node.args.get("field") is not None:
            return None
        left = compile_fold(node.this)
        items = [compile_fold(i) for i in node.expressions]
        if left is None or not items or any(i is None for i in items):
            return None
        return ("in", left, tuple(items))
    if isinstance(node, exp.Not):
        inner = compile_fold(node.this)
        return ("not", inner) if inner is not None else None
    return None


def eval_fold(tree: Fold, value_of: Callable[[int], Any]) -> Any:
    """The value of a fold tree (numbers only; None is SQL NULL); ``_UNKNOWN`` when it cannot be decided here.
    ``value_of(i)`` gives the i-th statement value or ``_UNKNOWN``."""
    kind = tree[0]
    if kind == "arg":
        return value_of(tree[1])
    if kind == "const":
        return tree[1]
    if kind == "neg":
        v = eval_fold(tree[1], value_of)
        return -v if _is_number(v) else (None if v is None else _UNKNOWN)
    if kind == "not":
        v = eval_fold(tree[1], value_of)
        return (not v) if isinstance(v, bool) else (None if v is None else _UNKNOWN)
    if kind == "bin":
        a, b = eval_fold(tree[2], value_of), eval_fold(tree[3], value_of)
        if a is _UNKNOWN or b is _UNKNOWN:
            return _UNKNOWN
        if a is None or b is None:
            return None
        if not (_is_number(a) and _is_number(b)):
            return _UNKNOWN
        try:
            return _BINARY[tree[1]](a, b)
        except (TypeError, ArithmeticError):
            return _UNKNOWN
    if kind == "in":
        left = eval_fold(tree[1], value_of)
        if left is _UNKNOWN:
            return _UNKNOWN
        items: list[Any] = []
        for item in tree[2]:
            v = eval_fold(item, value_of)
            items.extend(v if isinstance(v, tuple) else (v,))  # a folded IN list binds as a tuple
        if any(i is _UNKNOWN for i in items) or not all(i is None or _is_number(i) for i in items):
            return _UNKNOWN
        if left is None:
            return None
        if not _is_number(left):
            return _UNKNOWN
        if any(i is not None and i == left for i in items):
            return True
        return None if any(i is None for i in items) else False
    return _UNKNOWN


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
}


def _uses_args(tree: Fold) -> bool:
    if tree[0] == "arg":
        return True
    return any(isinstance(part, tuple) and part and (_uses_args(part) if isinstance(part[0], str)
                                                      else any(_uses_args(p) for p in part))
               for part in tree[1:])


@dataclass(frozen=True, slots=True)
class PredicateFolds:
    """Guard: the column-free predicate ``tree`` still evaluates to ``expected`` (TRUE or FALSE) with the values
    of the statement at hand. The plan dropped it (TRUE) or routed nowhere because of it (FALSE)."""

    tree: Fold
    expected: bool

    def holds(self, binds: Any) -> bool:
        def value_of(i: int) -> Any:
            return binds[i] if i < len(binds) else _UNKNOWN

        return eval_fold(self.tree, value_of) is self.expected


def plan_time_value_of(ctx: PlanContext) -> Callable[[int], Any]:
    def value_of(i: int) -> Any:
        return ctx.values[i] if ctx.value_known(i) else _UNKNOWN

    return value_of


def fold_constant(node: exp.Expression, ctx: PlanContext) -> bool | None:
    """TRUE/FALSE for a column-free predicate decided by plan-time values (recording a guard when a statement
    value decided it), else None."""
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    tree = compile_fold(node)
    if tree is None or tree[0] in ("arg", "const"):
        return None
    value = eval_fold(tree, plan_time_value_of(ctx))
    if not isinstance(value, bool):
        return None
    guard = PredicateFolds(tree, value)
    if _uses_args(tree) and guard not in ctx.guards:
        ctx.guards.append(guard)  # type: ignore[arg-type]
    return value


def _fold_tree(node: exp.Expression, ctx: PlanContext) -> exp.Expression:
    """Fold the constant leaves of a boolean tree (in place: ``node`` is a copy) and simplify TRUE/FALSE."""
    node = unparen(node)
    if isinstance(node, (exp.And, exp.Or)):
        left, right = _fold_tree(node.this, ctx), _fold_tree(node.expression, ctx)
        lv, rv = _truth(left), _truth(right)
        if isinstance(node, exp.And):
            if lv is False or rv is False:
                return exp.false()
            if lv is True:
                return right
            if rv is True:
                return left
            return exp.And(this=left, expression=right)
        if lv is True or rv is True:
            return exp.true()
        if lv is False:
            return right
        if rv is False:
            return left
        return exp.Or(this=left, expression=right)
    if isinstance(node, exp.Not) and isinstance(unparen(node.this), _CONNECTIVES):
        inner = _fold_tree(node.this, ctx)
        v = _truth(inner)
        return exp.Boolean(this=not v) if v is not None else exp.Not(this=inner)
    if isinstance(node, exp.EQ):
        row = _row_equality(node)
        if row is not None:
            return _fold_tree(row, ctx)
    if not any(isinstance(n, (exp.Column, exp.Subquery, exp.Select, exp.Exists)) for n in node.walk()):
        v = fold_constant(node, ctx)
        if v is not None:
            return exp.Boolean(this=v)
    return node


def _truth(node: exp.Expression) -> bool | None:
    return bool(node.this) if isinstance(node, exp.Boolean) else None


def _row_equality(node: exp.EQ) -> exp.Expression | None:
    """``(a, b) = (x, y)`` → ``a = x AND b = y`` (tuples of the same width)."""
    left, right = unparen(node.this), unparen(node.expression)
    if not (isinstance(left, exp.Tuple) and isinstance(right, exp.Tuple)):
        return None
    if len(left.expressions) != len(right.expressions) or not left.expressions:
        return None
    pairs = [exp.EQ(this=a, expression=b) for a, b in zip(left.expressions, right.expressions, strict=True)]
    out: exp.Expression = pairs[0]
    for p in pairs[1:]:
        out = exp.And(this=out, expression=p)
    return out


# --- Vitess RewritePredicate --------------------------------------------------------------------------------
def _strip(node: exp.Expression) -> exp.Expression:
    """Remove parentheses around boolean connectives, everywhere in the boolean structure."""
    node = unparen(node)
    if isinstance(node, (exp.And, exp.Or, exp.Xor)):
        node.set("this", _strip(node.this))
        node.set("expression", _strip(node.expression))
    elif isinstance(node, exp.Not):
        node.set("this", _strip(node.this))
    return node


def _simplify_not(node: exp.Not) -> exp.Expression | None:
    child = node.this
    if isinstance(child, exp.Not):
        return child.this
    if isinstance(child, exp.Or):
        return exp.And(this=exp.Not(this=child.this), expression=exp.Not(this=child.expression))
    if isinstance(child, exp.And):
        return exp.Or(this=exp.Not(this=child.this), expression=exp.Not(this=child.expression))
    return None


def _leaves(node: exp.Expression, kind: type[exp.Expression]) -> list[exp.Expression]:
    out: list[exp.Expression] = []
    todo = [node]
    while todo:  # breadth first, as Vitess's distinctOr/distinctAnd
        cur = todo.pop(0)
        for side in (cur.this, cur.expression):
            if isinstance(side, kind):
                todo.append(side)
            else:
                out.append(side)
    return out


def _join(kind: type[exp.Expression], items: list[exp.Expression]) -> exp.Expression:
    out = items[0]
    for item in items[1:]:
        out = kind(this=out, expression=item)
    return out


def _distinct(node: exp.Expression, kind: type[exp.Expression]) -> exp.Expression | None:
    leaves = _leaves(node, kind)
    kept: list[exp.Expression] = []
    for leaf in leaves:
        if not any(leaf == k for k in kept):
            kept.append(leaf)
    if len(kept) == len(leaves):
        return None
    return _join(kind, kept)


def _simplify_or(node: exp.Or) -> exp.Expression | None:
    res = _distinct(node, exp.Or)
    if res is not None:
        return res
    left, right = node.this, node.expression
    land = left if isinstance(left, exp.And) else None
    rand = right if isinstance(right, exp.And) else None
    if land is not None and rand is not None:
        # (a AND b) OR (a AND c) => a AND (b OR c)
        ll, lr, rl, rr = land.this, land.expression, rand.this, rand.expression
        for a, b, c, shared in ((ll, lr, rr, rl), (ll, lr, rl, rr), (lr, ll, rr, rl), (lr, ll, rl, rr)):
            if a == shared:
                return exp.And(this=a, expression=exp.Or(this=b, expression=c))
    if land is not None:
        if right == land.this or right == land.expression:
            return right  # (a AND b) OR a => a
        return exp.And(this=exp.Or(this=land.this, expression=right),
                       expression=exp.Or(this=land.expression, expression=right))
    if rand is not None:
        if left == rand.this or left == rand.expression:
            return left
        return exp.And(this=exp.Or(this=left, expression=rand.this),
                       expression=exp.Or(this=left, expression=rand.expression))
    return _or_to_in(left, right)


def _in_items(node: exp.Expression) -> list[exp.Expression] | None:
    """The values a column is compared with by ``=`` or ``IN (list)``."""
    if isinstance(node, exp.EQ):
        return [node.expression]
    if isinstance(node, exp.In) and node.args.get("query") is None and node.args.get("field") is None \
            and node.expressions:
        return list(node.expressions)
    return None


def _or_to_in(left: exp.Expression, right: exp.Expression) -> exp.Expression | None:
    """``a = x OR a = y`` → ``a IN (x, y)`` (the column on the left of both, as Vitess requires)."""
    if not isinstance(left, (exp.EQ, exp.In)) or not isinstance(right, (exp.EQ, exp.In)):
        return None
    col = left.this
    if not isinstance(col, exp.Column) or col != right.this:
        return None
    a, b = _in_items(left), _in_items(right)
    if a is None or b is None:
        return None
    items: list[exp.Expression] = []
    for item in a + b:
        if not any(item == seen for seen in items):
            items.append(item)
    return exp.In(this=col, expressions=items)


def _simplify_and(node: exp.And) -> exp.Expression | None:
    res = _distinct(node, exp.And)
    if res is not None:
        return res
    left, right = node.this, node.expression
    if isinstance(left, exp.Or) and (left.this == right or left.expression == right):
        return right  # (a OR b) AND a => a
    if isinstance(right, exp.Or) and (right.this == left or right.expression == left):
        return left
    return None


def _simplify(node: exp.Expression) -> exp.Expression | None:
    if isinstance(node, exp.Not):
        return _simplify_not(node)
    if isinstance(node, exp.Or):
        return _simplify_or(node)
    if isinstance(node, exp.Xor):
        # a XOR b => (a OR b) AND NOT (a AND b)
        a, b = node.this, node.expression
        return exp.And(this=exp.Or(this=a, expression=b),
                       expression=exp.Not(this=exp.And(this=a.copy(), expression=b.copy())))
    if isinstance(node, exp.And):
        return _simplify_and(node)
    return None


def _rewrite_once(node: exp.Expression) -> tuple[exp.Expression, bool]:
    """The first simplification in post-order (children first, left to right), as one Vitess pass."""
    if isinstance(node, (exp.And, exp.Or, exp.Xor)):
        for key in ("this", "expression"):
            child, changed = _rewrite_once(node.args[key])
            if changed:
                node.set(key, child)
                return node, True
    elif isinstance(node, exp.Not):
        child, changed = _rewrite_once(node.this)
        if changed:
            node.set("this", child)
            return node, True
    out = _simplify(node)
    if out is None:
        return node, False
    return _strip(out.copy()), True  # a deep copy: the rules reuse a subtree on both sides


def rewrite_predicate(node: exp.Expression) -> exp.Expression:
    """Vitess ``RewritePredicate`` on a copy of ``node``; ``node`` itself when nothing changes or the rewrite
    does not settle within ``MAX_REWRITES`` passes."""
    current = _strip(node.copy())
    for _ in range(MAX_REWRITES):
        current, changed = _rewrite_once(current)
        if not changed:
            return current
    return node


def prepare_predicates(predicates: list[exp.Expression], ctx: PlanContext) -> list[exp.Expression]:
    """The ANDed predicates routing should look at: each folded, simplified and split again. A predicate that
    needed no rewrite is returned as the original node (so an IN list can still be found in the tree)."""
    out: list[exp.Expression] = []
    for pred in predicates:
        for conj in _split_and(pred):
            copy = _strip(conj.copy())
            folded = _fold_tree(copy, ctx)
            rewritten = rewrite_predicate(folded)
            parts = _split_and(rewritten)
            if len(parts) == 1 and parts[0] == conj:
                out.append(conj)
            else:
                out.extend(parts)
    return out


def _split_and(node: exp.Expression) -> list[exp.Expression]:
    node = unparen(node)
    if isinstance(node, exp.Where):
        return _split_and(node.this)
    if isinstance(node, exp.And):
        return _split_and(node.this) + _split_and(node.expression)
    return [node]


def _or_slice(node: exp.Expression) -> list[exp.Expression]:
    node = unparen(node)
    if isinstance(node, exp.Or):
        return _or_slice(node.this) + _or_slice(node.expression)
    return [node]


def extract_in_from_or(node: exp.Expression) -> exp.Expression | None:
    """Vitess ``ExtractINFromOR``: an OR whose branches are ANDs of ``column = value`` over the same columns, in
    the same order, as one tuple IN."""
    node = unparen(node)
    if not isinstance(node, exp.Or):
        return None
    names: list[exp.Column] | None = None
    rows: list[list[exp.Expression]] = []
    for branch in _or_slice(node):
        cols: list[exp.Column] = []
        vals: list[exp.Expression] = []
        for cmp in _split_and(branch):
            if not isinstance(cmp, exp.EQ):
                return None
            left, right = unparen(cmp.this), unparen(cmp.expression)
            if isinstance(left, exp.Column) and isinstance(right, exp.Column):
                return None
            if isinstance(left, exp.Column):
                cols.append(left)
                vals.append(right)
            elif isinstance(right, exp.Column):
                cols.append(right)
                vals.append(left)
            else:
                return None
        if names is None:
            names = cols
        elif len(names) != len(cols) or any(a != b for a, b in zip(names, cols, strict=True)):
            return None
        rows.append(vals)
    if not names:
        return None
    return exp.In(this=exp.Tuple(expressions=[c.copy() for c in names]),
                  expressions=[exp.Tuple(expressions=[v.copy() for v in row]) for row in rows])
