"""Scopes of a SELECT statement: which relations each query block reads, and which relation each column means.

Vitess's ``semantics`` binder, small: every query block (a SELECT, or a branch of a UNION) gets a ``Scope`` with
its FROM relations (``Rel``: a base table or a derived table) and a link to the enclosing block; every column of
the statement is resolved once, before any rewriting, to the relation it belongs to (possibly one of an enclosing
block: a correlated subquery) or to nothing when that cannot be known. Nodes are tagged in their ``meta`` so that
copies made while planning keep their identity (``sg_col``, ``sg_scope``, ``sg_ref``).

Resolution follows SQL: a qualified column names a relation by alias, innermost block first; an unqualified
column belongs to the one relation that has it. Column lists come from the VSchema (authoritative or not) and from
derived tables' select lists; a column no relation is known to lack but none is known to have stays unknown when
several relations could own it (it then drives no routing, and a plan that would need to split it across shards
is refused rather than guessed).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from router.planner.semantics import TableRef, ident
from sharding.errors import UnsupportedError

if TYPE_CHECKING:
    from router.planner.select import Planned

QUERY_NODES = (exp.Select, exp.SetOperation)

COL_KEY = "sg_col"
SCOPE_KEY = "sg_scope"
REF_KEY = "sg_ref"


class _Alias:
    """A column that names a select-list alias (ORDER BY / GROUP BY / HAVING)."""

    def __repr__(self) -> str:
        return "ALIAS"


ALIAS = _Alias()


@dataclass(eq=False)
class Rel:
    """One FROM item of a query block."""

    scope: Scope
    alias: str
    node: exp.Expression  # exp.Table, or exp.Subquery (derived table), or another table-valued item
    index: int
    kind: str  # "table" | "derived" | "anywhere" (dual-like items with no table: VALUES, table functions)
    ref: TableRef | None = None
    body: exp.Expression | None = None  # derived: the query
    columns: list[str] | None = None  # known column names (lower case), None when unknown
    authoritative: bool = False  # ``columns`` is the full list
    join: str = "inner"  # how it joins what precedes it: inner | left | right | full | natural
    join_node: exp.Join | None = None
    on: list[exp.Expression] = field(default_factory=list)  # ON conjuncts
    using: list[str] = field(default_factory=list)
    planned: Planned | None = None  # derived: its plan (set by the planner)

    def has(self, name: str) -> bool | None:
        """Whether this relation has column ``name``: True, False, or None (cannot tell)."""
        if self.columns is not None and name in self.columns:
            return True
        if self.authoritative:
            return False
        return None

    def __repr__(self) -> str:
        return f"Rel({self.alias})"


@dataclass(eq=False)
class Scope:
    """One query block."""

    node: exp.Expression  # the exp.Select
    parent: Scope | None
    rels: list[Rel] = field(default_factory=list)
    aliases: dict[str, exp.Expression] = field(default_factory=dict)  # select-list alias (lower) -> expression
    subqueries: list[exp.Expression] = field(default_factory=list)  # expression subqueries (their query nodes)

    def chain(self) -> Iterator[Scope]:
        s: Scope | None = self
        while s is not None:
            yield s
            s = s.parent

    def encloses(self, other: Scope) -> bool:
        """Whether ``other`` is this scope or nested inside it."""
        return any(s is self for s in other.chain())


def own_nodes(query: exp.Expression) -> Iterator[exp.Expression]:
    """The nodes of a SELECT that belong to its own block: not inside nested queries (derived tables, subqueries)."""
    for node in query.walk(prune=lambda n: n is not query and isinstance(n, QUERY_NODES)):
        if node is not query and isinstance(node, QUERY_NODES):
            continue
        yield node  # type: ignore[misc]


def nested_queries(query: exp.Expression) -> Iterator[exp.Expression]:
    """Query nodes directly nested in this block (subqueries and derived tables)."""
    for node in query.walk(prune=lambda n: n is not query and isinstance(n, QUERY_NODES)):
        if node is not query and isinstance(node, QUERY_NODES):
            yield node  # type: ignore[misc]


def output_names(query: exp.Expression) -> list[str | None]:
    """The column names a query returns (lower case), None for an unknown one (``*``)."""
    while isinstance(query, exp.SetOperation):
        query = query.this
    if isinstance(query, exp.Subquery):
        return output_names(query.this)
    if not isinstance(query, exp.Select):
        return [None]
    out: list[str | None] = []
    for e in query.expressions:
        if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
            out.append(None)
        else:
            out.append(e.alias_or_name.lower() if e.alias_or_name else None)
    return out


class Binder:
    """Builds the scopes of a statement and resolves every column once."""

    def __init__(self, refs: list[TableRef], dialect: str) -> None:
        self.refs = refs
        self.dialect = dialect
        self.scopes: list[Scope] = []
        self.resolution: dict[int, Any] = {}  # sg_col -> Rel | ALIAS | None
        self.col_scope: dict[int, Scope] = {}  # sg_col -> the block the column is written in
        self._next_col = 0

    # --- lookups ---------------------------------------------------------------------------------------------
    def ref_of(self, table: exp.Table) -> TableRef:
        return self.refs[table.meta[REF_KEY]]

    def scope_of(self, select: exp.Expression) -> Scope:
        return self.scopes[select.meta[SCOPE_KEY]]

    def owner(self, col: exp.Column) -> Any:
        """The ``Rel`` a column belongs to, ``ALIAS``, or None (unknown)."""
        key = col.meta.get(COL_KEY)
        return None if key is None else self.resolution.get(key)

    # --- binding ---------------------------------------------------------------------------------------------
    def bind(self, query: exp.Expression, parent: Scope | None = None) -> None:
        if isinstance(query, exp.Subquery):
            self.bind(query.this, parent)
        elif isinstance(query, exp.SetOperation):
            self.bind(query.this, parent)
            self.bind(query.expression, parent)
            # ORDER BY of a union names its output columns: nothing to resolve against tables.
        elif isinstance(query, exp.Select):
            self._bind_select(query, parent)
        else:
            raise UnsupportedError(f"unsupported query: {query.key.upper()}")

    def _bind_select(self, select: exp.Select, parent: Scope | None) -> None:
        scope = Scope(select, parent)
        select.meta[SCOPE_KEY] = len(self.scopes)
        self.scopes.append(scope)
        from_ = select.args.get("from_")
        items: list[tuple[exp.Expression, exp.Join | None]] = []
        if from_ is not None:
            items.append((from_.this, None))
        for join in select.args.get("joins") or ():
            items.append((join.this, join))
        for i, (item, join) in enumerate(items):
            scope.rels.append(self._rel(scope, item, join, i))
        for e in select.expressions:
            if isinstance(e, exp.Alias):
                scope.aliases.setdefault(e.alias.lower(), e.this)
        # Derived tables first (no LATERAL: they see the enclosing blocks, not their siblings).
        derived_bodies = {id(r.body) for r in scope.rels if r.body is not None}
        for rel in scope.rels:
            if rel.body is not None:
                self.bind(rel.body, parent)
                if rel.columns is None:
                    rel.columns, rel.authoritative = self._derived_columns(rel.body)
        for node in own_nodes(select):
            if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
                node.meta[COL_KEY] = self._next_col
                self.resolution[self._next_col] = self._resolve(node, scope)
                self.col_scope[self._next_col] = scope
                self._next_col += 1
        for q in nested_queries(select):
            if id(q) in derived_bodies:
                continue
            scope.subqueries.append(q)
            self.bind(q, scope)

    def _rel(self, scope: Scope, item: exp.Expression, join: exp.Join | None, index: int) -> Rel:
        kind = "inner"
        on: list[exp.Expression] = []
        using: list[str] = []
        if join is not None:
            side = (join.args.get("side") or "").upper()
            jkind = (join.args.get("kind") or "").upper()
            method = (join.args.get("method") or "").upper()
            if method == "NATURAL":
                kind = "natural"
            elif side in ("LEFT", "RIGHT", "FULL"):
                kind = side.lower()
            elif jkind not in ("", "INNER", "CROSS", "STRAIGHT_JOIN", "OUTER"):
                kind = jkind.lower()
            from router.planner.routing import split_and

            on = split_and(join.args.get("on"))
            using = [ident(u, self.dialect).lower() if isinstance(u, exp.Identifier) else str(u.name).lower()
                     for u in join.args.get("using") or ()]
        if isinstance(item, exp.Table) and REF_KEY in item.meta:
            ref = self.ref_of(item)
            cols: list[str] | None = None
            auth = False
            if ref.table is not None:
                known = [c.name.lower() for c in ref.table.columns if not c.invisible]
                # A vindex column is known to exist even when the column list is not given (Vitess does the same).
                for cv in ref.table.column_vindexes:
                    known.extend(c.lower() for c in cv.columns if c.lower() not in known)
                cols = known or None
                auth = ref.table.column_list_authoritative
            kind_ = "table"
            if ref.kind == "dual":
                cols, auth = [], True
            return Rel(scope, ref.alias, item, index, kind_, ref=ref, columns=cols, authoritative=auth, join=kind,
                       join_node=join, on=on, using=using)
        if isinstance(item, exp.Subquery) and isinstance(item.this, QUERY_NODES):
            alias = item.alias
            if not alias:
                raise UnsupportedError("a derived table needs an alias")
            if self.dialect == "postgres":
                alias = ident(item.args["alias"].this, self.dialect)
            cols_ = None
            alias_node = item.args.get("alias")
            if alias_node is not None and alias_node.columns:
                cols_ = [ident(c, self.dialect).lower() for c in alias_node.columns]
            return Rel(scope, alias, item, index, "derived", body=item.this, columns=cols_,
                       authoritative=cols_ is not None, join=kind, join_node=join, on=on, using=using)
        if isinstance(item, exp.Subquery):
            raise UnsupportedError("parenthesized joins are not supported across shards")
        if any(item.find_all(exp.Table)):
            raise UnsupportedError(f"unsupported table expression: {item.sql()[:60]}")
        alias = item.alias_or_name or f"__item{index}"
        return Rel(scope, alias, item, index, "anywhere", join=kind, join_node=join, on=on, using=using)

    def _derived_columns(self, body: exp.Expression) -> tuple[list[str] | None, bool]:
        names = output_names(body)
        first = body
        while isinstance(first, exp.SetOperation):
            first = first.this
        if None in names and isinstance(first, exp.Select):
            expanded = self.star_columns(first)
            if expanded is not None:
                return expanded, True
            return [n for n in names if n is not None], False
        return [n for n in names if n is not None], True

    def star_columns(self, select: exp.Select) -> list[str] | None:
        """The select list with ``*``/``t.*`` expanded from known column lists, or None."""
        scope = self.scope_of(select)
        out: list[str] = []
        for e in select.expressions:
            if isinstance(e, exp.Star):
                for rel in scope.rels:
                    if rel.columns is None or not rel.authoritative:
                        return None
                    out.extend(rel.columns)
            elif isinstance(e, exp.Column) and isinstance(e.this, exp.Star):
                rels = [r for r in scope.rels if self.alias_matches(r.alias, e.table)]
                if len(rels) != 1 or rels[0].columns is None or not rels[0].authoritative:
                    return None
                out.extend(rels[0].columns)
            else:
                out.append(e.alias_or_name.lower())
        return out

    def alias_matches(self, alias: str, qualifier: str) -> bool:
        if self.dialect == "mysql":
            return alias.lower() == qualifier.lower()
        return alias == qualifier

    def _resolve(self, col: exp.Column, scope: Scope) -> Any:
        qualifier_node = col.args.get("table")
        name = (ident(col.this, self.dialect) if isinstance(col.this, exp.Identifier) else col.name).lower()
        if qualifier_node is not None:
            q = ident(qualifier_node, self.dialect)
            for s in scope.chain():
                matches = [r for r in s.rels if self.alias_matches(r.alias, q)]
                if len(matches) == 1:
                    return matches[0]
                if matches:
                    return None
            return None
        if _in_alias_clause(col) and name in scope.aliases:
            return ALIAS
        for s in scope.chain():
            has = [r for r in s.rels if r.has(name) is True]
            maybe = [r for r in s.rels if r.has(name) is None]
            # A valid statement names a column of one relation only: when one relation is known to have it, the
            # column is that relation's (an ambiguous statement would be refused by the database anyway).
            if len(has) == 1:
                return has[0]
            candidates = has + maybe
            if len(candidates) == 1:
                return candidates[0]
            if candidates:
                return None
            if s is scope and name in scope.aliases:
                return ALIAS  # MySQL lets WHERE-less clauses name aliases; nothing else has it
        return None


def _in_alias_clause(col: exp.Column) -> bool:
    """Whether a column sits in ORDER BY, GROUP BY or HAVING of its block, where select aliases are visible."""
    node: exp.Expression | None = col
    while node is not None:
        parent = node.parent
        if isinstance(parent, (exp.Select,)):
            return node.arg_key in ("order", "group", "having")
        if isinstance(node, (exp.Order, exp.Group, exp.Having)):
            return True
        node = parent  # type: ignore[assignment]
    return False
