"""One SELECT block: route its relations, merge them into groups, settle its subqueries, then plan it as one
route or hand the groups to ``router.planner.joins``.

Relations are routed with the predicates that are theirs alone: WHERE and inner-join ON conjuncts for the
relations that every row must have, only its own ON conjuncts for the null-supplying side of a LEFT JOIN (a LEFT
JOIN's ON never narrows the preserved side). A LEFT JOIN whose null-supplying side a WHERE conjunct rejects NULLs
of (``b.x = 5``, ``b.x IS NOT NULL``) is an inner join and planned as one (Vitess does the same). ``RIGHT JOIN`` of
two relations is the mirrored LEFT JOIN.

A derived table's column renames columns of its body: by name, or by position through a column alias list
(``(select id as b, name from t) u(a, n)``: ``u.n`` is ``t.name``), so that its predicates can route by the base
table's vindexes.

Groups are formed left to right (``merging``): an inner relation merges into the latest group it can (never past
an outer-joined or router-side group), an outer-joined one into the group holding every relation its ON clause
names, when the merge rules allow; otherwise it starts a group. Subqueries are settled against these groups
(``subqueries``), which may add predicates (pulled-out values) or narrow a group; the groups are then routed
again with everything they know, keeping their members.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlglot import exp

from router.planner.merging import NARROWING, cost, merge_full, merge_inner, merge_outer, with_tables
from router.planner.plan import Opcode
from router.planner.rewrite import unparen
from router.planner.routing import TableRoute, route_table, route_tableless, split_and
from router.planner.scope import ALIAS, COL_KEY, Rel, own_nodes
from router.planner.select import Planned, QueryPlanner, has_aggregation, is_complete
from router.planner.semantics import TableRef, ident
from router.planner.subqueries import MergedUse, SemiSpec, apply_merge, decide, find_uses
from sharding.errors import UnsupportedError

HIDDEN_PREFIX = "__sg_ws"  # hidden weight-string columns the join planner adds to a derived table's body
_STRICT = (exp.Column, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg, exp.Paren, exp.Literal,
           exp.Placeholder, exp.IntDiv, exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.Identifier)
_NULL_REJECTING = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.Between, exp.In)


@dataclass
class RelSet:
    rels: set[Rel] = field(default_factory=set)
    unknown: bool = False  # a column of this block that cannot be placed
    outer: bool = False  # a column of an enclosing block


@dataclass(eq=False)
class Group:
    """Relations that run as one query on the shards of ``route`` (None: a router-side input, ``kind`` prim)."""

    rels: list[Rel]
    kind: str  # inner | left (a LEFT JOIN's null-supplying side) | prim | prim_left (router-side inputs)
    route: TableRoute | None


def plan_block(qp: QueryPlanner, select: exp.Select) -> Planned:
    return Block(qp, select).plan()


class Block:
    """The planning of one SELECT block (see the module docstring)."""

    def __init__(self, qp: QueryPlanner, select: exp.Select) -> None:
        self.qp = qp
        self.select = select
        self.binder = qp.binder
        self.scope = qp.binder.scope_of(select)
        self.ctx = qp.ctx
        self.rels: list[Rel] = list(self.scope.rels)
        self.joins: dict[int, str] = {}  # id(rel) -> inner | left | full | natural (after normalization)
        self.order: list[Rel] = list(self.rels)  # planning order (RIGHT JOIN swaps)
        self.groups: list[Group] = []
        self.merged: list[MergedUse] = []
        self.semis: list[SemiSpec] = []

    # --- the current tree ------------------------------------------------------------------------------------
    def item(self, rel: Rel) -> exp.Expression:
        """The relation's FROM item in this block's (possibly rewritten) tree."""
        if rel.index == 0:
            return self.select.args["from_"].this
        return self.select.args["joins"][rel.index - 1].this

    def join_node(self, rel: Rel) -> exp.Join | None:
        return None if rel.index == 0 else self.select.args["joins"][rel.index - 1]

    def on(self, rel: Rel) -> list[exp.Expression]:
        join = self.join_node(rel)
        preds = [] if join is None else split_and(join.args.get("on"))
        return [p for p in preds if not _is_true(p)] + self._using(rel)

    def where(self) -> list[exp.Expression]:
        return [p for p in split_and(self.select.args.get("where")) if not _is_true(p)]

    def colname(self, col: exp.Column) -> str:
        return (ident(col.this, self.ctx.session.dialect) if isinstance(col.this, exp.Identifier)
                else col.name).lower()

    def _using(self, rel: Rel) -> list[exp.Expression]:
        out: list[exp.Expression] = []
        for name in rel.using:
            before = [r for r in self.rels if r.index < rel.index and r.has(name)]
            if len(before) != 1:
                raise UnsupportedError(f"JOIN … USING ({name}) across shards needs exactly one earlier table known "
                                       "to have the column; write the ON condition")
            out.append(exp.EQ(this=self.synth_column(before[0], name), expression=self.synth_column(rel, name)))
        return out

    def synth_column(self, rel: Rel, name: str) -> exp.Column:
        col = exp.column(name, table=rel.alias)
        key = len(self.binder.resolution) + 1_000_000
        while key in self.binder.resolution:
            key += 1
        col.meta[COL_KEY] = key
        self.binder.resolution[key] = rel
        self.binder.col_scope[key] = self.scope
        return col

    # --- columns ---------------------------------------------------------------------------------------------
    def rels_of(self, node: exp.Expression | None) -> RelSet:
        out = RelSet()
        if node is None:
            return out
        for col in node.find_all(exp.Column):
            if isinstance(col.this, exp.Star):
                continue
            owner = self.binder.owner(col)
            if owner is ALIAS:
                continue
            if isinstance(owner, Rel):
                if owner.scope is self.scope:
                    out.rels.add(owner)
                elif owner.scope.encloses(self.scope):
                    out.outer = True
            elif self.binder.col_scope.get(col.meta.get(COL_KEY, -1)) is self.scope:
                out.unknown = True
        return out

    def column_source(self, rel: Rel, name: str) -> tuple[TableRef, str] | None:
        if rel.kind == "table" and rel.ref is not None and rel.ref.table is not None:
            return rel.ref, name
        if rel.kind == "derived" and rel.planned is not None and rel.planned.route is not None:
            planned = rel.planned
            i = self._derived_position(rel, name)
            if i is not None and i < len(planned.col_sources):
                return planned.col_sources[i]
        return None

    def _derived_position(self, rel: Rel, name: str) -> int | None:
        """The output position of a derived table's column ``name``: by its column alias list (``u(a, n)`` renames
        the body's columns by position) when it has one, else by the body's own column names. Positions are known
        only up to the first output of unknown width (a ``*`` of a table without an authoritative column list)."""
        assert rel.planned is not None
        outputs = [o for o in rel.planned.columns if not (o or "").startswith(HIDDEN_PREFIX)]
        alias = rel.node.args.get("alias") if isinstance(rel.node, exp.Subquery) else None
        if alias is None or not alias.columns:
            return outputs.index(name) if name in outputs else None
        listed = [ident(c, self.ctx.session.dialect).lower() for c in alias.columns]
        if listed.count(name) != 1:
            return None
        i = listed.index(name)
        if None in outputs[:i + 1] or (None not in outputs and len(outputs) != len(listed)):
            return None
        return i

    def vindexes(self, rel: Rel, name: str) -> set[str]:
        src = self.column_source(rel, name)
        return unique_vindexes(*src) if src is not None else set()

    def _column_pair(self, pred: exp.Expression) -> tuple[tuple[Rel, str], tuple[Rel, str]] | None:
        pred = unparen(pred)
        if not isinstance(pred, exp.EQ):
            return None
        a, b = unparen(pred.this), unparen(pred.expression)
        if not (isinstance(a, exp.Column) and isinstance(b, exp.Column)):
            return None
        oa, ob = self.binder.owner(a), self.binder.owner(b)
        if not (isinstance(oa, Rel) and isinstance(ob, Rel)):
            return None
        return (oa, self.colname(a)), (ob, self.colname(b))

    def linked(self, left: Iterable[Rel], right: Rel, preds: list[exp.Expression]) -> bool:
        """A predicate pairs a column of ``left`` and one of ``right`` that carry the same unique vindex."""
        left = set(left)
        for p in preds:
            pair = self._column_pair(p)
            if pair is None:
                continue
            (ra, ca), (rb, cb) = pair
            if (ra in left and rb is right) or (rb in left and ra is right):
                if self.vindexes(ra, ca) & self.vindexes(rb, cb):
                    return True
        return False

    def correlated_on_vindex(self, query: exp.Expression, outer: set[Rel]) -> bool:
        """The subquery's WHERE pairs one of its columns with one of ``outer``'s on the same unique vindex."""
        if not isinstance(query, exp.Select):
            return False
        inner_scope = self.binder.scope_of(query)
        for p in split_and(query.args.get("where")):
            pair = self._column_pair(p)
            if pair is None:
                continue
            for (ri, ci), (ro, co) in (pair, pair[::-1]):
                if ri.scope is inner_scope and ro in outer:
                    sub = Block(self.qp, query)
                    if ri.kind == "table" or ri.planned is not None:
                        if sub.vindexes(ri, ci) & self.vindexes(ro, co):
                            return True
        return False

    def in_pairing(self, lhs: exp.Expression | None, planned: Planned, members: set[Rel]) -> bool:
        """``outer.c IN (SELECT inner.c …)`` with both columns on the same unique vindex (``outer`` one of
        ``members``)."""
        lhs = unparen(lhs) if lhs is not None else None
        if not isinstance(lhs, exp.Column) or not planned.col_sources:
            return False
        owner = self.binder.owner(lhs)
        if not isinstance(owner, Rel) or owner not in members:
            return False
        src = planned.col_sources[0]
        return src is not None and bool(self.vindexes(owner, self.colname(lhs)) & unique_vindexes(*src))

    def group_index(self, rels: Iterable[Rel]) -> int:
        idx = [i for i, g in enumerate(self.groups) for r in rels if r in g.rels]
        return max(idx) if idx else 0

    # --- planning --------------------------------------------------------------------------------------------
    def plan(self) -> Planned:
        for rel in self.rels:
            if rel.kind == "derived":
                body = self.item(rel)
                assert isinstance(body, exp.Subquery)
                rel.planned = self.qp.plan_query(body.this)
        self._normalize_joins()
        rel_of_join = {id(self.join_node(r)): r for r in self.rels if r.index > 0}
        uses = find_uses(self.select, self.scope, rel_of_join)
        self.groups = self._group()
        for use in uses:
            decide(self, use)
        self._reroute()
        if len(self.groups) == 1 and not self.semis and self.groups[0].kind == "inner":
            group = self.groups[0]
            assert group.route is not None
            return Planned(self.select, self.block_refs(), *self.outputs(), route=group.route,
                           complete=self._complete())
        from router.planner.joins import JoinPlanner

        prim = JoinPlanner(self).build()
        names, _ = self.outputs()
        return Planned(self.select, self.block_refs(), names, [None] * len(names), prim=prim)

    def _complete(self) -> bool:
        """The block's rows are the shards' rows put together: nothing to merge, or every group of a GROUP BY
        lives on one shard (it groups by a unique vindex column of a sharded table every row has)."""
        if is_complete(self.select):
            return True
        select = self.select
        if any(select.args.get(k) is not None for k in ("limit", "offset", "distinct")):
            return False
        if select.args.get("group") is None or any(isinstance(n, exp.Window) for n in own_nodes(select)):
            return False
        return any(self._vindex_grouping(k) for k in select.args["group"].expressions)

    def _vindex_grouping(self, key: exp.Expression) -> bool:
        key = unparen(key)
        if not isinstance(key, exp.Column):
            return False
        owner = self.binder.owner(key)
        if not isinstance(owner, Rel) or owner.scope is not self.scope or self.join_of(owner) != "inner":
            return False
        src = self.column_source(owner, self.colname(key))
        if src is None or src[0].table is None or src[0].table.is_reference or not (
                src[0].keyspace is not None and src[0].keyspace.sharded):
            return False
        return bool(unique_vindexes(*src))

    def block_refs(self) -> list[TableRef]:
        from router.planner.scope import REF_KEY

        return [self.binder.ref_of(t) for t in self.select.find_all(exp.Table) if REF_KEY in t.meta]

    def outputs(self) -> tuple[list[str | None], list[tuple[TableRef, str] | None]]:
        names: list[str | None] = []
        sources: list[tuple[TableRef, str] | None] = []
        for e in self.select.expressions:
            if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
                rels = self.rels if isinstance(e, exp.Star) else [
                    r for r in self.rels if self.binder.alias_matches(r.alias, e.table)]
                for rel in rels:
                    if rel.columns is None or not rel.authoritative:
                        names.append(None)
                        sources.append(None)
                        continue
                    for c in rel.columns:
                        names.append(c)
                        sources.append(self.column_source(rel, c))
                continue
            names.append(e.alias_or_name.lower() if e.alias_or_name else None)
            inner = e.unalias() if isinstance(e, exp.Alias) else e
            src = None
            if isinstance(inner, (exp.Min, exp.Max)) and isinstance(inner.this, exp.Column) \
                    and self.select.args.get("group") is not None:
                inner = inner.this  # MIN/MAX of a group is one of its rows' values
            if isinstance(inner, exp.Column):
                owner = self.binder.owner(inner)
                if isinstance(owner, Rel) and owner.scope is self.scope:
                    src = self.column_source(owner, self.colname(inner))
            sources.append(src)
        return names, sources

    def _normalize_joins(self) -> None:
        for rel in self.rels:
            self.joins[id(rel)] = rel.join
        if any(r.join == "right" for r in self.rels):
            if len(self.rels) != 2:
                raise UnsupportedError("RIGHT JOIN across shards is supported between two tables only")
            a, b = self.rels
            self.order = [b, a]
            self.joins[id(b)] = "inner"
            self.joins[id(a)] = "left"
        if any(r.join == "full" for r in self.rels) and len(self.rels) != 2:
            raise UnsupportedError("FULL JOIN across shards is supported between two tables only")
        where = self.where()
        for rel in self.rels:
            if self.joins[id(rel)] == "left" and any(self._null_rejecting(p, rel) for p in where):
                self.joins[id(rel)] = "inner"

    def join_of(self, rel: Rel) -> str:
        return self.joins[id(rel)]

    def on_of(self, rel: Rel) -> list[exp.Expression]:
        """The join condition of ``rel`` as planned (for the mirrored RIGHT JOIN: the other relation's)."""
        if self.order[0] is not self.rels[0] and rel is self.rels[0]:
            return self.on(self.rels[1])
        if self.order[0] is not self.rels[0] and rel is self.rels[1]:
            return []
        return self.on(rel)

    def _null_rejecting(self, pred: exp.Expression, rel: Rel) -> bool:
        pred = unparen(pred)
        if isinstance(pred, exp.Not) and isinstance(unparen(pred.this), exp.Is):
            inner = unparen(pred.this)
            return isinstance(inner.expression, exp.Null) and self._strict_on(inner.this, rel)
        if not isinstance(pred, _NULL_REJECTING):
            return False
        if isinstance(pred, exp.In) and pred.args.get("query") is not None:
            return self._strict_on(pred.this, rel)
        operands = [pred.this] + ([pred.expression] if pred.args.get("expression") is not None else [])
        return any(self._strict_on(o, rel) for o in operands)

    def _strict_on(self, node: exp.Expression, rel: Rel) -> bool:
        """``node`` is NULL whenever ``rel``'s columns are (a column of it under arithmetic only)."""
        if not all(isinstance(n, _STRICT) for n in node.walk()):
            return False
        return rel in self.rels_of(node).rels

    # --- routing ---------------------------------------------------------------------------------------------
    def _own(self, pred: exp.Expression, rel: Rel) -> bool:
        if any(isinstance(n, (exp.Select, exp.Subquery, exp.Exists)) for n in pred.walk()):
            return False
        rs = self.rels_of(pred)
        return not rs.unknown and not rs.outer and rs.rels <= {rel}

    def preds_for(self, rel: Rel) -> list[exp.Expression]:
        """The predicates that may narrow ``rel``'s route."""
        kind = self.join_of(rel)
        if kind == "left":
            return self.on_of(rel)
        if kind == "full":
            return []
        preds = self.where() + self._having_filters()
        for r in self.order:
            if self.join_of(r) in ("inner", "natural"):
                preds.extend(self.on_of(r))
        return preds

    def _having_filters(self) -> list[exp.Expression]:
        """Without grouping, HAVING filters rows as WHERE does: its conjuncts over table columns may route."""
        if self.select.args.get("group") is not None or has_aggregation(self.select):
            return []
        out = []
        having = self.select.args.get("having")
        for p in split_and(having.this if having is not None else None):
            cols = list(p.find_all(exp.Column))
            if cols and all(isinstance(self.binder.owner(c), Rel) for c in cols):
                out.append(p)
        return out

    def route_rel(self, rel: Rel, preds: list[exp.Expression] | None = None) -> TableRoute | None:
        preds = self.preds_for(rel) if preds is None else preds
        own = [p for p in preds if self._own(p, rel)]
        if rel.kind == "table":
            assert rel.ref is not None
            return route_table(rel.ref, own, [rel.ref], self.ctx)
        if rel.kind == "anywhere":
            return route_tableless(self.ctx, own)
        planned = rel.planned
        assert planned is not None
        if not planned.mergeable:
            return None
        assert planned.route is not None
        base = with_tables(planned.route, list(planned.refs))
        if planned.route.opcode not in (Opcode.Scatter, Opcode.IN, Opcode.Equal, Opcode.MultiEqual) \
                or not planned.complete:
            return base
        best = base
        for p in own:
            translated = self._translate(p, rel)
            if translated is None:
                continue
            src_ref, node = translated
            r = route_table(src_ref, [node], [src_ref], self.ctx)
            if r.opcode in NARROWING and cost(r) < cost(best):
                best = TableRoute(r.opcode, r.keyspace, base.tables, r.option, r.target,
                                  f"{r.reason} (through derived table {rel.alias})", r.in_predicate)
        return best

    def _translate(self, pred: exp.Expression, rel: Rel) -> tuple[TableRef, exp.Expression] | None:
        """``pred`` over a derived table's columns, rewritten over the one base table they come from."""
        node = pred.copy()
        src_ref: TableRef | None = None
        for col in list(node.find_all(exp.Column)):
            src = self.column_source(rel, self.colname(col))
            if src is None or (src_ref is not None and src[0] is not src_ref):
                return None
            src_ref = src[0]
            col.replace(exp.column(src[1], table=src[0].alias))
        if src_ref is None:
            return None
        return src_ref, node

    def _group(self) -> list[Group]:
        groups: list[Group] = []
        if not self.rels:
            return [Group([], "inner", route_tableless(self.ctx, self.where()))]
        for rel in self.order:
            route = self.route_rel(rel)
            kind = self.join_of(rel)
            if route is None:
                if kind not in ("inner", "left"):
                    raise UnsupportedError(f"{kind.upper()} JOIN with derived table {rel.alias} across shards is "
                                           "not supported")
                groups.append(Group([rel], "prim" if kind == "inner" else "prim_left", None))
                continue
            if not groups:
                groups.append(Group([rel], "inner", route))
                continue
            if kind == "left":
                on = self.on_of(rel)
                on_rels: set[Rel] = set()
                for p in on:
                    on_rels |= self.rels_of(p).rels
                on_rels.discard(rel)
                holders = [g for g in groups if on_rels & set(g.rels)]
                target = holders[0] if len(holders) == 1 and on_rels <= set(holders[0].rels) else (
                    groups[-1] if not on_rels else None)
                merged = None
                if target is not None and target.kind == "inner" and target.route is not None:
                    merged = merge_outer(target.route, route, self.linked(target.rels, rel, on), ctx=self.ctx)
                if merged is not None and target is not None:
                    target.rels.append(rel)
                    target.route = merged
                else:
                    groups.append(Group([rel], "left", route))
            elif kind == "full":
                first = groups[0]
                merged = None
                if first.route is not None and first.kind == "inner":
                    linked = self.linked(first.rels, rel, self.on_of(rel))
                    merged = merge_full(first.route, route, linked, ctx=self.ctx)
                if merged is None:
                    raise UnsupportedError("FULL JOIN across shards is not supported: both tables must be read "
                                           "together (same unsharded keyspace, reference tables, or joined on "
                                           "the same unique vindex)")
                first.rels.append(rel)
                first.route = merged
            else:
                preds = self.preds_for(rel)
                merged_into = None
                for g in reversed(groups):
                    if g.kind != "inner" or g.route is None:
                        break
                    m = merge_inner(g.route, route, self.linked(g.rels, rel, preds), ctx=self.ctx)
                    if m is not None:
                        g.rels.append(rel)
                        g.route = m
                        merged_into = g
                        break
                if merged_into is None:
                    groups.append(Group([rel], "inner", route))
        if any(self.join_of(r) == "natural" for r in self.rels) and len(groups) > 1:
            raise UnsupportedError("NATURAL JOIN across shards is not supported; write the ON condition")
        return groups

    def _reroute(self) -> None:
        """Route every group again with the predicates the subqueries added (pulled-out values), keeping its
        members; merged subqueries are applied again."""
        for g, group in enumerate(self.groups):
            if group.route is None:
                continue
            route = self.group_route(group)
            if route is not None:
                for m in self.merged:
                    if m.group == g:
                        route = apply_merge(route, m, self.ctx)
                        if route is None:
                            break
            if route is not None:
                group.route = route

    def group_route(self, group: Group, preds: dict[int, list[exp.Expression]] | None = None) -> TableRoute | None:
        """The route of a group's members merged again (``preds``: per relation, predicates to route it with)."""
        if not group.rels:
            return route_tableless(self.ctx, self.where())
        route: TableRoute | None = None
        members: list[Rel] = []
        for rel in group.rels:
            r = self.route_rel(rel, None if preds is None else preds.get(id(rel), []))
            if r is None:
                return None
            if route is None:
                route = r
            else:
                kind = self.join_of(rel) if group.kind == "inner" else "inner"
                if kind == "left":
                    route = merge_outer(route, r, self.linked(members, rel, self.on_of(rel)), ctx=self.ctx)
                elif kind == "full":
                    route = merge_full(route, r, self.linked(members, rel, self.on_of(rel)), ctx=self.ctx)
                else:
                    linked = self.linked(members, rel, self.preds_for(rel))
                    route = merge_inner(route, r, linked, ctx=self.ctx)
                if route is None:
                    return None
            members.append(rel)
        return route


def unique_vindexes(ref: TableRef, col: str) -> set[str]:
    """Names of the unique single-column vindexes on ``ref``'s column ``col``."""
    table = ref.table
    if table is None:
        return set()
    col = col.lower()
    return {cv.name for cv in table.column_vindexes
            if len(cv.columns) == 1 and cv.columns[0].lower() == col and cv.vindex.is_unique}


def _is_true(pred: exp.Expression) -> bool:
    pred = unparen(pred)
    return isinstance(pred, exp.Boolean) and bool(pred.this)
