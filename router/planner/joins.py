"""Joins the shards cannot do together: a block's groups joined by the router.

Each group runs as one query (a ``Route``) or is a router-side input (a derived table that needs merging at the
router: ``prim``). The join tree is left-deep, Vitess's ApplyJoin: ``Join(Join(G0, G1), G2)…``, where the right
side of each join runs for the left rows with their values bound as join variables (``:u_col``). Groups stay in
the order written, except that (all joins inner) router-side inputs go first, as they cannot take join variables,
and two query groups are swapped when that makes the pair cheaper (Vitess: ``user JOIN t1 ON user.id = t1.id``
reads ``t1`` first when that pins ``user`` to one shard per row). Two router-side inputs are joined in memory
(``HashJoin`` on their equality predicates, as Vitess does when both sides have a LIMIT).

Placement (Vitess pushes each expression to the rightmost side it needs):

- a WHERE / inner ON predicate goes to the group of its rightmost relation, with the columns of earlier groups
  replaced by join variables; a group that cannot take it (the null-supplying side of a LEFT JOIN, a router-side
  input) passes it on to the next inner query group, and when there is none the router evaluates it (``Filter``);
- a LEFT JOIN's ON clause goes to its group only: it decides which right rows match, never which left rows exist;
- a select expression goes to the group of its rightmost relation (a constant to the first query group) when
  that group computes it exactly: any expression in an inner group, a column or arithmetic over columns (NULL
  when they are) on the null-supplying side of a LEFT JOIN, a column of a router-side input. Otherwise, and when
  the SELECT has GROUP BY, aggregates, HAVING, DISTINCT, LIMIT or an ORDER BY that the first group cannot give,
  the join outputs the expressions such a computation needs and ``horizon.plan_horizon_over`` computes the rest
  in router memory. An ORDER BY of the first group's expressions only is merged there: the nested loop keeps
  the order of its left side.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlglot import exp

from router.planner import runvars
from router.planner.evalexpr import Col, compile_expr
from router.planner.join_horizon import HORIZON_CLAUSES, clause_expressions, horizon_needs, horizon_over
from router.planner.merging import cost
from router.planner.plan import Filter, Join, Primitive, Projection, SemiJoin
from router.planner.rewrite import unparen
from router.planner.scope import ALIAS, REF_KEY, Rel
from router.planner.select import REWRITTEN, _route_primitive, has_aggregation
from router.planner.semantics import ident
from router.planner.values import JoinVar
from sharding.errors import UnsupportedError

if TYPE_CHECKING:
    from router.planner.block import Block, Group

_STRICT = (exp.Column, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg, exp.Paren, exp.Placeholder,
           exp.IntDiv, exp.Literal, exp.WeightString, exp.Identifier)
_QUERY = ("inner",)
_INPUT = ("prim", "prim_left")


def _is_agg(node: object) -> bool:
    return isinstance(node, (exp.AggFunc, exp.Window))


def _has_agg(node: exp.Expression) -> bool:
    """An aggregate or window function of this block (not of a subquery inside it)."""
    return any(_is_agg(n) for n in node.walk(prune=lambda n: isinstance(n, (exp.Select, exp.SetOperation))))


def _bare(e: exp.Expression) -> exp.Expression:
    return e.unalias() if isinstance(e, exp.Alias) else e  # type: ignore[return-value]


class JoinPlanner:
    def __init__(self, block: Block) -> None:
        self.b = block
        self.qp = block.qp
        self.ctx = block.ctx
        self.select = block.select
        self.groups: list[Group] = list(block.groups)
        self._index()
        if all(g.kind in ("inner", "prim") for g in self.groups):
            written = self.groups
            self.groups = [g for g in written if g.kind == "prim"] + [g for g in written if g.kind != "prim"]
            self._index()
            if not self._merges_in_place():
                self.groups = written
                self._index()
        self.at: dict[int, list[exp.Expression]] = {}
        self.keys: dict[int, list[tuple[exp.Column, exp.Column]]] = {}
        self.late: list[exp.Expression] = []
        self.left_order: list[exp.Expression] | None = None  # ORDER BY merged into the first group
        self._scope_refs: list[Any] | None = None
        self._hidden: dict[int, dict[str, str]] = {}  # id(derived rel) -> hidden weight column -> its column

    def _index(self) -> None:
        self.gindex: dict[int, int] = {id(r): i for i, g in enumerate(self.groups) for r in g.rels}

    # --- keys and placement ----------------------------------------------------------------------------------
    def key(self, e: exp.Expression) -> Any:
        """Identity of an output expression: a column by its relation, anything else by its text."""
        e = unparen(_bare(e))
        if isinstance(e, exp.Column) and not isinstance(e.this, exp.Star):
            owner = self.b.binder.owner(e)
            if isinstance(owner, Rel):
                return ("col", id(owner), self.b.colname(e))
        return ("expr", e.sql(dialect="mysql", comments=False))

    def _rels(self, node: exp.Expression) -> set[Rel]:
        rs = self.b.rels_of(node)
        if rs.unknown:
            raise UnsupportedError(f"cannot tell which table a column of {node.sql()[:60]} belongs to; qualify the "
                                   "columns of a join across shards")
        if rs.outer:
            raise UnsupportedError(f"{node.sql()[:60]} refers to an enclosing query and needs a join across shards; "
                                   "not supported")
        return rs.rels

    def _first_query(self) -> int | None:
        return next((i for i, g in enumerate(self.groups) if g.kind in _QUERY and g.route is not None), None)

    def place(self, node: exp.Expression) -> int | None:
        """The group that computes ``node``: its rightmost relation's (a constant's: the first query group)."""
        rels = self._rels(node)
        if not rels:
            return self._first_query()
        return max(self.gindex[id(r)] for r in rels)

    def placeable(self, e: exp.Expression) -> bool:
        inner = _bare(e)
        if _has_agg(inner):
            return False
        g = self.place(inner)
        if g is None:
            return False
        group = self.groups[g]
        if group.kind in _INPUT:
            return isinstance(inner, exp.Column) and self.b.binder.owner(inner) in group.rels
        if group.kind == "left":
            return all(isinstance(n, _STRICT) for n in inner.walk()) and not self._untyped_operand(inner, g)
        return not self._untyped_operand(inner, g)

    def _untyped_operand(self, node: exp.Expression, g: int) -> bool:
        """Whether a join variable would lose its column's type where the type decides the result. A join
        variable is written as a literal, a NULL as a bare ``NULL``; the router computes such an expression over
        the typed columns instead:

        - PostgreSQL: alone under a unary operator or a numeric function (``-e.cost``, ``abs(e.cost)``): ``-NULL``
          does not resolve ('operator is not unique: - unknown');
        - MySQL: an argument of COALESCE/IFNULL, whose DECIMAL result takes the largest scale of its arguments'
          types (``COALESCE(e.cost, c.balance)`` of DECIMAL(9,3) and DECIMAL(12,2) is 7127.030; with ``NULL``
          written for e.cost the shard answers 7127.03)."""
        group = self.groups[g]
        if group.route is None:
            return False
        backend = self.ctx.backend_dialect(group.route.keyspace.name)
        if backend == "postgres":
            ops: list[exp.Expression] = list(node.find_all(exp.Neg, exp.BitwiseNot, exp.Abs, exp.Round, exp.Floor,
                                                           exp.Ceil, exp.Sign))
            operands = [_bare(op.this) for op in ops]
        else:
            operands = [_bare(a) for c in node.find_all(exp.Coalesce) for a in (c.this, *c.expressions)]
        return any(isinstance(o, exp.Column) and self.b.binder.owner(o) not in group.rels for o in operands)

    def _place_filters(self) -> None:
        b = self.b
        self.at = {i: [] for i in range(len(self.groups))}
        self.keys = {i: [] for i in range(len(self.groups))}
        self.late = []
        filters = b.where()
        for rel in b.order:
            if b.join_of(rel) in ("inner", "natural") and rel is not b.order[0]:
                filters.extend(b.on_of(rel))
        for f in filters:
            g = self.place(f)
            if g is None:
                self.late.append(f)
                continue
            if self.groups[g].kind == "prim":
                key = self._hash_key(f, g)
                if key is not None:
                    self.keys[g].append(key)
                    continue
            while g < len(self.groups) and not (self.groups[g].kind in _QUERY and self.groups[g].route is not None):
                g += 1
            if g == len(self.groups):
                self.late.append(f)
            else:
                self.at[g].append(f)
        for g, group in enumerate(self.groups):
            if group.kind in ("left", "prim_left"):
                rel = group.rels[0]
                for p in b.on_of(rel):
                    if group.kind == "prim_left":
                        key = self._hash_key(p, g)
                        if key is None:
                            raise UnsupportedError(f"LEFT JOIN with derived table {rel.alias} across shards: only "
                                                   "equalities of columns are supported in its ON clause")
                        self.keys[g].append(key)
                    else:
                        self.at[g].append(p)

    def _hash_key(self, pred: exp.Expression, g: int) -> tuple[exp.Column, exp.Column] | None:
        """``left_col = right_col`` with the right column from router-side group ``g`` and the left one earlier."""
        pred = unparen(pred)
        if not isinstance(pred, exp.EQ):
            return None
        a, b = unparen(pred.this), unparen(pred.expression)
        if not (isinstance(a, exp.Column) and isinstance(b, exp.Column)):
            return None
        ga, gb = self.place(a), self.place(b)
        if ga == g and gb is not None and gb < g:
            return b, a
        if gb == g and ga is not None and ga < g:
            return a, b
        return None

    # --- join order ------------------------------------------------------------------------------------------
    def _maybe_swap(self) -> None:
        """Two inner query groups: read first the one that makes the other cheaper (Vitess compares the cost
        of both orders and keeps the written one on a tie)."""
        gs = self.groups
        if len(gs) != 2 or not all(g.kind == "inner" and g.route is not None for g in gs) or self.b.semis:
            return
        written = self._pair_cost()
        self.groups = [gs[1], gs[0]]
        self._index()
        self._place_filters()
        if self._merges_in_place() and self._pair_cost() < written:
            return
        self.groups = gs
        self._index()
        self._place_filters()

    def _merges_in_place(self) -> bool:
        """Every merged subquery still lands in the query of the group it was merged with."""
        return all(self.groups[self.place(m.use.item) or 0] is m.group_obj for m in self.b.merged)

    def _pair_cost(self) -> int:
        right = self._right_route(1)
        return _vitess_cost(self.groups[0].route) + _vitess_cost(right)

    # --- outputs ---------------------------------------------------------------------------------------------
    def _select_list(self) -> list[exp.Expression]:
        out: list[exp.Expression] = []
        for e in self.select.expressions:
            if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
                rels = self.b.rels if isinstance(e, exp.Star) else [
                    r for r in self.b.rels if self.b.binder.alias_matches(r.alias, e.table)]
                for rel in rels:
                    if rel.columns is None or not rel.authoritative:
                        raise UnsupportedError(f"SELECT * across shards needs the full column list of {rel.alias} "
                                               "(an authoritative column list in the VSchema); name the columns")
                    for c in rel.columns:
                        out.append(self.b.synth_column(rel, c))
                continue
            out.append(e)
        return out

    def _horizon_parts(self, select_list: list[exp.Expression]) -> str:
        parts = [what for key, what in HORIZON_CLAUSES if self.select.args.get(key) is not None]
        if has_aggregation(self.select):
            parts.append("aggregate functions")
        if parts == ["ORDER BY"] and self._order_at_left(select_list):
            parts = []
        if not parts and not all(self.placeable(e) for e in select_list):
            parts.append("expressions over the null-supplying side of an outer join")
        return ", ".join(parts)

    def _order_at_left(self, select_list: list[exp.Expression]) -> bool:
        """An ORDER BY whose keys the first group computes, over nested loops only: merged into that group."""
        if not self.groups or self.groups[0].kind not in _QUERY or self.groups[0].route is None:
            return False
        if any(g.kind in _INPUT for g in self.groups):
            return False
        keys: list[exp.Expression] = []
        for ordered in self.select.args["order"].expressions:
            node = ordered.this
            if isinstance(node, exp.Literal) and not node.is_string:
                n = int(node.this)
                if not 1 <= n <= len(self.select.expressions):
                    return False
                node = _bare(self.select.expressions[n - 1])
            elif isinstance(node, exp.Column) and self.b.binder.owner(node) is ALIAS:
                node = _bare(next((e for e in self.select.expressions if e.alias_or_name.lower() == node.name.lower()),
                                  node))
            if isinstance(node, (exp.Literal, exp.Null)):
                continue
            if runvars.has_markers(node, self.ctx) or _has_agg(node):
                return False
            rels = self.b.rels_of(node)
            if rels.unknown or rels.outer or not rels.rels or self.place(node) != 0:
                return False
            key = ordered.copy()
            key.set("this", node.copy())
            keys.append(key)
        if not all(self.placeable(e) for e in select_list):
            return False
        self.left_order = keys
        return True

    def _leaves(self, node: exp.Expression, out: list[exp.Expression]) -> None:
        node = _bare(node)
        if isinstance(node, exp.Distinct):  # COUNT(DISTINCT x): the rows carry x, not "DISTINCT x"
            for child in node.expressions:
                self._leaves(child, out)
            return
        if isinstance(node, exp.Column):
            if self.b.binder.owner(node) is not ALIAS:
                out.append(node)
            return
        if isinstance(node, (exp.Literal, exp.Null, exp.Boolean, exp.Star, exp.Placeholder)) and not \
                runvars.has_markers(node, self.ctx):
            return
        if not _has_agg(node):
            cols = [n for n in node.walk() if isinstance(n, exp.Column) and self.b.binder.owner(n) is not ALIAS]
            if runvars.has_markers(node, self.ctx) or (cols and self.placeable(node)):
                out.append(node)
                return
            if not cols:
                return
        for child in node.iter_expressions():
            self._leaves(child, out)

    def _dedupe(self, items: list[exp.Expression]) -> list[exp.Expression]:
        seen: set[Any] = set()
        out = []
        for e in items:
            k = self.key(e)
            if k not in seen:
                seen.add(k)
                out.append(e)
        return out

    # --- building --------------------------------------------------------------------------------------------
    def build(self) -> Primitive:
        if self._first_query() is None and any(g.kind not in _INPUT for g in self.groups):
            raise UnsupportedError("this join across shards has no side that can run as one query first")
        self._place_filters()
        self._maybe_swap()
        if not self._merges_in_place():
            raise UnsupportedError("a subquery merged with one side of a join across shards would run on the other")
        select_list = self._select_list()
        horizon = self._horizon_parts(select_list)
        needs_weights: list[exp.Expression] = []
        if horizon:
            outputs: list[exp.Expression] = []
            for e in select_list:
                self._leaves(e, outputs)
            for node in clause_expressions(self.select):
                self._leaves(node, outputs)
            needs = horizon_needs(self.select, self.ctx, self._scope())
            outputs.extend(c for c in needs.columns if isinstance(self.b.binder.owner(c), Rel))
            if self._backend() == "mysql":
                for k in needs.weight_keys:
                    ws = exp.WeightString(this=_bare(k).copy())
                    if not self.placeable(ws) and not self._derived_weight(k):
                        raise UnsupportedError(f"comparing {k.sql()[:60]} across shards needs its weight string, "
                                               "which its side of the join cannot give")
                    needs_weights.append(ws)
            outputs = self._dedupe(outputs + needs_weights)
        else:
            outputs = list(select_list)
        late_cols: list[exp.Expression] = []
        for f in self.late:
            late_cols.extend(self._filter_columns(f))
        out_keys = {self.key(o) for o in outputs}
        required = outputs + [c for c in self._dedupe(late_cols) if self.key(c) not in out_keys]
        prim, out = self._build(len(self.groups) - 1, required)
        for spec in self.b.semis:
            need = self._dedupe(out + [col for _, col in spec.vars])
            if len(need) != len(out):
                prim, out = self._build(len(self.groups) - 1, need)
            offs = {self.key(e): i for i, e in enumerate(out)}
            cols = tuple(-(offs[self.key(e)]) - 1 for e in required)
            prim = SemiJoin(prim, spec.right, tuple((name, offs[self.key(col)]) for name, col in spec.vars),
                            cols=cols, variant="AntiJoin" if spec.anti else "SemiJoin")
            out = list(required)
        if self.late:
            prim = self._late_filter(prim, out, len(outputs))
            out = out[:len(outputs)]
            required = outputs
        if horizon:
            return horizon_over(self.select, prim, out, self.ctx, scope=self._scope(), backend=self._backend())
        if [self.key(e) for e in out] != [self.key(e) for e in required]:
            offs = {self.key(e): i for i, e in enumerate(out)}
            names = tuple(_name(e, self.ctx.session.dialect) for e in required)
            prim = Projection(tuple(Col(offs[self.key(e)]) for e in required), names, prim)
        return prim

    def _scope(self) -> list[Any]:
        """The tables the horizon reads types from: the block's tables and its derived tables (their columns'
        types and collations taken from their bodies, ``router.planner.derived``)."""
        if self._scope_refs is None:
            from router.planner.derived import derived_ref

            refs = [r.ref for r in self.b.rels if r.ref is not None]
            derived = (derived_ref(self.b.binder, r) for r in self.b.rels if r.kind == "derived")
            self._scope_refs = refs + [d for d in derived if d is not None]
        return self._scope_refs

    def _backend(self) -> str:
        dialects = {self.ctx.backend_dialect(g.route.keyspace.name) for g in self.groups if g.route is not None}
        if not dialects:  # only router-side inputs (derived tables): the databases their rows come from
            dialects = {self.ctx.backend_dialect(r.keyspace.name) for r in self.b.qp.refs
                        if r.kind == "vschema" and r.keyspace is not None}
        return "mysql" if "mysql" in dialects or not dialects else dialects.pop()

    def _filter_columns(self, f: exp.Expression) -> list[exp.Expression]:
        if runvars.has_markers(f, self.ctx) or any(isinstance(n, (exp.Select, exp.Subquery)) for n in f.walk()):
            raise UnsupportedError(f"the condition {f.sql()[:60]} must be checked by the router after a join across "
                                   "shards and holds a subquery: not supported")
        return [c for c in f.find_all(exp.Column)]

    def _late_filter(self, prim: Primitive, out: list[exp.Expression], keep: int) -> Primitive:
        offs = {self.key(e): i for i, e in enumerate(out)}

        def resolve(node: exp.Expression) -> Col | None:
            if isinstance(node, exp.Column):
                i = offs.get(self.key(node))
                if i is None:
                    raise UnsupportedError(f"column {node.sql()} is not available to the router")
                return Col(i)
            return None

        def collation_of(node: exp.Expression) -> str | None:
            """A column's declared collation; for an expression over columns, theirs when they agree (a
            column's collation wins over a literal's in MySQL's coercibility rules)."""
            found = {self._declared_collation(c) for c in node.find_all(exp.Column)}
            return found.pop() if len(found) == 1 else None

        pred = self.late[0] if len(self.late) == 1 else exp.and_(*[p.copy() for p in self.late])
        return Filter(compile_expr(pred, self.ctx.session.dialect, resolve,  # type: ignore[arg-type]
                                   collation_of=collation_of), prim,
                      truncate_columns=keep)

    def _declared_collation(self, col: exp.Column) -> str | None:
        """The collation the VSchema declares for a column (through a derived table, its source column's)."""
        owner = self.b.binder.owner(col)
        if not isinstance(owner, Rel):
            return None
        src = self.b.column_source(owner, self.b.colname(col))
        if src is None or src[0].table is None:
            return None
        decl = next((c for c in src[0].table.columns if c.name.lower() == src[1]), None)
        return decl.collation_name or None if decl is not None else None

    def _build(self, j: int, required: list[exp.Expression]) -> tuple[Primitive, list[exp.Expression]]:
        """The primitive joining groups 0..j, whose outputs are ``required`` (each placed at a group <= j)."""
        group = self.groups[j]
        placed = [(e, self.place(_bare(e))) for e in required]
        here = self._dedupe([e for e, g in placed if g == j])
        below = [e for e, g in placed if g is not None and g < j]
        if j == 0:
            if group.kind in _INPUT:
                return self._input(group)
            return self._route(0, here), here
        if group.kind in _INPUT:
            keys = self.keys[j]
            lprim, lout = self._build(j - 1, self._dedupe(below + [lk for lk, _ in keys]))
            rprim, rout = self._input(group)
            loff = {self.key(e): i for i, e in enumerate(lout)}
            roff = {self.key(e): i for i, e in enumerate(rout)}
            cols = tuple(-(loff[self.key(e)]) - 1 if g is not None and g < j else roff[self.key(e)] + 1
                         for e, g in placed)
            outer = group.kind == "prim_left"
            if keys:
                lk = tuple(loff[self.key(a)] for a, _ in keys)
                rk = tuple(roff[self.key(c)] for _, c in keys)
                predicate = " and ".join(f"{a.sql()} = {c.sql()}" for a, c in keys)
                collations = tuple(self._declared_collation(c) or self._declared_collation(a) for a, c in keys)
                return Join("HashLeftJoin" if outer else "HashJoin", lprim, rprim, cols, (), lk, rk,
                            predicate=predicate, key_collations=collations), list(required)
            return Join("LeftJoin" if outer else "Join", lprim, rprim, cols), list(required)
        # A query group on the right: the columns of earlier groups it needs become join variables.
        vars_ = self._vars(j, here + self.at[j])
        lprim, lout = self._build(j - 1, self._dedupe(below + list(vars_.values())))
        rprim = self._route(j, here)
        loff = {self.key(e): i for i, e in enumerate(lout)}
        roff = {self.key(e): i for i, e in enumerate(here)}
        cols = tuple(-(loff[self.key(e)]) - 1 if g is not None and g < j else roff[self.key(e)] + 1
                     for e, g in placed)
        jvars = tuple((name, loff[self.key(col)]) for name, col in vars_.items())
        variant = "LeftJoin" if group.kind == "left" else "Join"
        return Join(variant, lprim, rprim, cols, jvars), list(required)

    def _var_name(self, col: exp.Column) -> str | None:
        owner = self.b.binder.owner(col)
        if not isinstance(owner, Rel) or owner.scope is not self.b.scope:
            return None
        name = self.b.colname(col)
        return self.qp.names.join_var((id(owner), name), f"{owner.alias}_{name}")

    def _vars(self, j: int, nodes: list[exp.Expression]) -> dict[str, exp.Column]:
        out: dict[str, exp.Column] = {}
        for node in nodes:
            for col in node.find_all(exp.Column):
                owner = self.b.binder.owner(col)
                if isinstance(owner, Rel) and owner.scope is self.b.scope and self.gindex[id(owner)] < j:
                    name = self._var_name(col)
                    assert name is not None
                    out.setdefault(name, col)
        return out

    def _bind(self, node: exp.Expression, j: int) -> exp.Expression:
        """A copy of ``node`` whose columns of groups before ``j`` are join-variable placeholders."""
        out = node.copy()
        for col in list(out.find_all(exp.Column)):
            owner = self.b.binder.owner(col)
            if isinstance(owner, Rel) and owner.scope is self.b.scope and self.gindex[id(owner)] < j:
                name = self._var_name(col)
                assert name is not None
                ph = runvars.placeholder(self.ctx, JoinVar(name))
                if col is out:
                    return ph
                col.replace(ph)
        return out

    def _input(self, group: Group) -> tuple[Primitive, list[exp.Expression]]:
        """A router-side input (a derived table planned apart): its primitive and its columns (a hidden weight
        string column as ``weight_string(alias.column)``)."""
        rel = group.rels[0]
        planned = rel.planned
        assert planned is not None
        alias = rel.node.args.get("alias") if isinstance(rel.node, exp.Subquery) else None
        listed = [ident(c, self.ctx.session.dialect).lower() for c in alias.columns] \
            if alias is not None and alias.columns else []  # ``u(a, n)`` names the body's columns by position
        names = [listed[i] if i < len(listed) else n for i, n in enumerate(planned.columns)]
        if any(n is None for n in names):
            raise UnsupportedError(f"derived table {rel.alias} needs named columns to be joined across shards")
        hidden = self._hidden.get(id(rel), {})
        cols: list[exp.Expression] = []
        for n in names:
            assert n is not None
            if n in hidden:
                cols.append(exp.WeightString(this=self.b.synth_column(rel, hidden[n])))
            else:
                cols.append(self.b.synth_column(rel, n))
        return self.qp.primitive(planned), cols

    def _derived_weight(self, key: exp.Expression) -> bool:
        """MySQL text of a derived table that runs apart, compared by the router: its body also selects the
        value's weight string (a hidden column), planned again. Only for a column that is a plain, non-aggregate
        expression of a SELECT body without ``*``."""
        col = unparen(_bare(key))
        if not isinstance(col, exp.Column):
            return False
        rel = self.b.binder.owner(col)
        if not isinstance(rel, Rel) or rel.kind != "derived" or self.groups[self.gindex[id(rel)]].kind not in _INPUT:
            return False
        body = self.b.item(rel)
        body = body.this if isinstance(body, exp.Subquery) else body
        branches = _branches(body)
        if rel.planned is None or not branches or any(
                isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
                for b in branches for e in b.expressions):
            return False
        name = self.b.colname(col)
        i = self.b._derived_position(rel, name)
        if i is None or any(i >= len(b.expressions) for b in branches):
            return False
        sources = [_bare(b.expressions[i]) for b in branches]
        if any(_has_agg(s) or runvars.has_markers(s, self.ctx) for s in sources):
            return False
        hidden = self._hidden.setdefault(id(rel), {})
        if name in hidden.values():
            return True
        from router.planner.block import HIDDEN_PREFIX

        alias = f"{HIDDEN_PREFIX}{len(hidden)}"
        for b, source in zip(branches, sources, strict=True):  # a UNION: each branch (equal texts weigh equal)
            b.append("expressions", exp.alias_(exp.WeightString(this=source.copy()), alias))
        hidden[alias] = name
        rel.planned = self.qp.plan_query(body)
        return True

    def _right_route(self, j: int) -> Any:
        """The route of group ``j`` with its predicates (join variables may pin it: ``user.id = :t1_id``)."""
        group = self.groups[j]
        preds = [self._bind(p, j) for p in self.at[j]]
        per_rel: dict[int, list[exp.Expression]] = {}
        for rel in group.rels:
            extra = self.b.preds_for(rel) if self.b.join_of(rel) == "left" and group.kind != "left" else []
            per_rel[id(rel)] = preds + extra
        route = self.b.group_route(group, per_rel)
        if route is None or cost(route) > cost(group.route):  # type: ignore[arg-type]
            route = group.route
        return route

    def _route(self, j: int, here: list[exp.Expression]) -> Primitive:
        """The query of group ``j``: its expressions and predicates, earlier columns as join variables."""
        group = self.groups[j]
        ctx = self.ctx
        exprs = []
        for e in here:
            bound = self._bind(e, j)
            if not isinstance(e, exp.Alias) and runvars.has_markers(bound, ctx) and not isinstance(bound, exp.Column):
                bound = exp.alias_(bound, runvars.display_name(_bare(e), ctx.session.dialect),  # type: ignore[assignment]
                                   quoted=True)
            exprs.append(bound)
        preds = [self._bind(p, j) for p in self.at[j]]
        query = self._query(group, exprs or [exp.Literal.number(1)], preds)
        route = self._right_route(j) if j > 0 else group.route
        assert route is not None
        refs = [self.b.binder.ref_of(t) for t in query.find_all(exp.Table) if REF_KEY in t.meta]
        if j == 0 and self.left_order:
            query.set("order", exp.Order(expressions=[self._bind(k, 0) for k in self.left_order]))
            from router.planner.merging import single_shard

            if not single_shard(route):
                from router.planner.horizon import plan_horizon

                return plan_horizon(query, route, refs, ctx)
        return _route_primitive(query, route, refs, ctx)

    def _query(self, group: Group, exprs: list[exp.Expression], preds: list[exp.Expression]) -> exp.Select:
        b = self.b
        rels = sorted(group.rels, key=lambda r: b.order.index(r))
        has_outer = group.kind != "left" and any(b.join_of(r) == "left" for r in rels[1:])
        select = exp.Select(expressions=exprs)
        select.set("from_", exp.From(this=b.item(rels[0]).copy()))
        joins = []
        for rel in rels[1:]:
            node = b.item(rel).copy()
            if group.kind != "left" and b.join_of(rel) == "left":
                on = b.on_of(rel)
                cond = exp.and_(*[p.copy() for p in on]) if on else exp.true()
                joins.append(exp.Join(this=node, side="LEFT", on=cond))
            elif has_outer:
                joins.append(exp.Join(this=node, kind="CROSS"))
            else:
                joins.append(exp.Join(this=node))
        if joins:
            select.set("joins", joins)
        if preds:
            select.set("where", exp.Where(this=exp.and_(*preds) if len(preds) > 1 else preds[0]))
        if self.select.args.get("locks"):
            select.set("locks", [lock.copy() for lock in self.select.args["locks"]])
        if self.select.comments:
            select.comments = list(self.select.comments)
        select.meta[REWRITTEN] = True
        return select


def _branches(body: exp.Expression) -> list[exp.Select]:
    """The SELECTs of a derived table's body (one, or every branch of a UNION); empty for anything else."""
    if isinstance(body, exp.Select):
        return [body]
    if isinstance(body, exp.Union) and not body.args.get("order") and not body.args.get("limit"):
        left, right = _branches(body.this), _branches(body.expression)
        return left + right if left and right else []
    return []


def _name(e: exp.Expression, dialect: str) -> str:
    return e.alias_or_name or e.sql(dialect=dialect)


def _vitess_cost(route: Any) -> int:
    """Vitess's ``Route.Cost``: what one execution of a route costs, by opcode."""
    from router.planner.plan import Opcode

    op = route.opcode
    if op in (Opcode.DBA, Opcode.Next, Opcode.None_, Opcode.Reference, Opcode.Unsharded):
        return 0
    if op in (Opcode.EqualUnique, Opcode.ByDestination):
        return 1
    if op in (Opcode.Equal, Opcode.SubShard, Opcode.Between):
        return 5
    if op in (Opcode.IN, Opcode.MultiEqual):
        return 10
    return 20
