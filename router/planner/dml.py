"""DML planning: INSERT, UPDATE and DELETE → ``Insert`` / ``Update`` / ``Delete`` / ``DMLWithInput`` primitives.

``plan_dml(tree, ctx)`` is the entry point (``build_plan`` dispatches here). INSERT lives in
``router.planner.insert``; this module plans UPDATE and DELETE and holds what both need (write targets,
templates with run-time values, dialect checks, co-location of subqueries).

UPDATE / DELETE, as vtgate plans them:

1. The written table is resolved; a reference table with a ``source`` is written at its source, one without goes
   to every shard of its keyspace (``Reference``).
2. The WHERE routes it (``route_table``): by vindex when it can, else ``Scatter``. Scatter writes are allowed (and
   show as ``Scatter``) unless the session forbids them (``allow_scatter_dml``).
3. Multi-table statements (MySQL ``UPDATE a JOIN b``, ``DELETE a FROM a JOIN b``; PostgreSQL ``UPDATE … FROM``,
   ``DELETE … USING``) run as one statement when the tables join on the same shards (the SELECT planner decides,
   as for a join); otherwise, and for LIMIT over several shards, a ``DMLWithInput`` reads the keys first.
4. Owned lookup vindexes: an owned-vindex query (``SELECT … FOR UPDATE``) learns the old values first.
5. A primary-vindex column may be SET only to the value the row already has; other vindex columns only when they
   are lookup vindexes. Anything that cannot be routed safely is an error, never a silent scatter.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlglot import exp

from router.planner.context import PlanContext
from router.planner.dml_plan import DML_VALS, Delete, DMLWithInput, LookupWrite, Update, VindexChange
from router.planner.parse import dialect as sqlglot_dialect
from router.planner.plan import KeyspaceRef, Limit, Opcode, Plan, Primitive, Route, RoutingParams, VindexLookup
from router.planner.routing import TableRoute, route_table, split_and, to_value
from router.planner.semantics import TableRef, column_name, column_owner, ident, resolve_table
from router.planner.sqltext import SqlTemplate
from router.planner.values import Arg, Const, JoinVar, ListVar, ValueExpr, evaluate
from sharding.errors import (
    RoutingError,
    UnknownTableError,
    UnsupportedError,
)
from sharding.vindexes.base import Lookup
from sharding.vschema_model import ColumnVindex, Table, split_qualified

__all__ = ["SameValue", "plan_dml", "parse_replace"]

# Opcodes whose DML reaches at most one shard: LIMIT and ORDER BY pass through unchanged.
_ONE_SHARD = frozenset({Opcode.Unsharded, Opcode.EqualUnique, Opcode.None_})


def plan_dml(tree: exp.Expression, ctx: PlanContext) -> Plan:
    """The plan of an INSERT, UPDATE or DELETE (``kind`` insert/update/delete)."""
    if isinstance(tree, exp.Insert):
        from router.planner.insert import plan_insert

        return plan_insert(tree, ctx)
    if isinstance(tree, exp.Update):
        return _plan_update_delete(tree, ctx, "update")
    if isinstance(tree, exp.Delete):
        return _plan_update_delete(tree, ctx, "delete")
    raise UnsupportedError(f"unsupported statement: {tree.key.upper()}")


# --- REPLACE --------------------------------------------------------------------------------------------------
_REPLACE = re.compile(r"^(\s*(?:/\*.*?\*/\s*)*)replace\b", re.IGNORECASE | re.DOTALL)


def parse_replace(normalized: str, dialect_name: str) -> exp.Insert | None:
    """MySQL ``REPLACE INTO …`` as an ``exp.Insert`` marked ``alternative="REPLACE"`` (sqlglot reads REPLACE as an
    ``exp.Command``); None when the text is not a REPLACE. ``parse_statement`` calls this before it rejects a
    Command."""
    m = _REPLACE.match(normalized)
    if m is None or dialect_name != "mysql":
        return None
    import sqlglot
    from sqlglot.errors import ErrorLevel

    tree = sqlglot.parse_one(m.group(1) + "insert" + normalized[m.end():], read=sqlglot_dialect(dialect_name),
                             error_level=ErrorLevel.IMMEDIATE)
    if not isinstance(tree, exp.Insert):
        return None
    tree.set("alternative", "REPLACE")
    return tree


# --- templates with run-time values ---------------------------------------------------------------------------
_NAMED = {
    "mysql": re.compile(r"(?<![:\w]):([A-Za-z_]\w*)"),
    "postgres": re.compile(r"%\((\w+)\)s"),
}
_ARG_NAME = re.compile(r"v(\d+)$")
_INSERT_OR_REPLACE = re.compile(r"\bINSERT OR REPLACE INTO\b")


def slot_for(name: str) -> ValueExpr:
    """A template slot from a placeholder name: ``v3`` → ``Arg(2)``, ``dml_vals`` → ``ListVar``, other names →
    ``JoinVar`` (a named run-time value)."""
    m = _ARG_NAME.match(name)
    if m is not None:
        return Arg(int(m.group(1)) - 1)
    if name == DML_VALS:
        return ListVar(name)
    return JoinVar(name)


def generate(tree: exp.Expression, backend: str) -> str:
    """The tree's SQL in the backend's dialect (REPLACE written back as MySQL's ``REPLACE INTO``)."""
    try:
        sql = tree.sql(dialect=sqlglot_dialect(backend))
    except Exception as exc:  # sqlglot raises plain exceptions for constructs a dialect cannot express
        raise UnsupportedError(f"cannot write this statement for a {backend} shard: {exc}") from None
    if isinstance(tree, exp.Insert) and tree.args.get("alternative") == "REPLACE":
        sql = _INSERT_OR_REPLACE.sub("REPLACE INTO", sql, count=1)
    return sql


def template(tree: exp.Expression, backend: str) -> SqlTemplate:
    """The tree's SQL in the backend's dialect, split at its placeholders (``:v3``, ``:_Id_0``, ``:dml_vals``)."""
    return split_template(generate(tree, backend), backend, sum(1 for _ in tree.find_all(exp.Placeholder)))


def split_template(sql: str, backend: str, expected: int) -> SqlTemplate:
    parts: list[str] = []
    slots: list[ValueExpr] = []
    pos = 0
    for m in _NAMED[backend].finditer(sql):
        parts.append(sql[pos:m.start()])
        slots.append(slot_for(m.group(1)))
        pos = m.end()
    parts.append(sql[pos:])
    if len(slots) != expected:
        raise UnsupportedError("a literal in this statement looks like a placeholder; send it as a bind parameter")
    return SqlTemplate(tuple(parts), tuple(slots))


def fix_default_keyword(tree: exp.Expression) -> bool:
    """sqlglot reads ``SET a = DEFAULT`` as a column named ``default`` (and would quote it): make it the keyword."""
    changed = False
    for col in list(tree.find_all(exp.Column)):
        if not col.table and isinstance(col.this, exp.Identifier) and not col.this.quoted \
                and col.name.upper() == "DEFAULT" and isinstance(col.parent, exp.EQ) and col.arg_key == "expression":
            col.replace(exp.Var(this="DEFAULT"))
            changed = True
    return changed


# --- dialect portability --------------------------------------------------------------------------------------
def check_portable(tree: exp.Expression, ctx: PlanContext, backend: str) -> None:
    """Refuse what the backend's dialect cannot run (sqlglot would write it wrongly or not at all)."""
    client = ctx.session.dialect
    problems: list[str] = []
    if isinstance(tree, exp.Insert):
        conflict = tree.args.get("conflict")
        if tree.args.get("alternative") == "REPLACE" and backend != "mysql":
            problems.append("REPLACE")
        if tree.args.get("ignore") and backend != "mysql":
            problems.append("INSERT IGNORE")
        if conflict is not None and conflict.args.get("duplicate") and backend != "mysql":
            problems.append("ON DUPLICATE KEY UPDATE")
        if conflict is not None and not conflict.args.get("duplicate") and backend != "postgres":
            problems.append("ON CONFLICT")
        values = tree.expression
        if isinstance(values, exp.Values) and values.args.get("alias") is not None and backend != "mysql":
            problems.append("a VALUES row alias")
    else:
        if (tree.args.get("limit") is not None or tree.args.get("order") is not None) and backend != "mysql":
            problems.append(f"{tree.key.upper()} with ORDER BY/LIMIT")
        this = tree.this
        if isinstance(this, exp.Table) and this.args.get("joins") and backend != "mysql":
            problems.append(f"a multi-table {tree.key.upper()} in MySQL syntax")
        if (tree.args.get("from_") is not None or tree.args.get("using")) and backend != "postgres":
            problems.append(f"{tree.key.upper()} … {'FROM' if isinstance(tree, exp.Update) else 'USING'}")
        if isinstance(tree, exp.Update) and tree.args.get("returning") is not None and backend != "postgres":
            problems.append("UPDATE … RETURNING")
    if problems:
        raise UnsupportedError(f"{', '.join(problems)} cannot be sent to a {backend} shard "
                               f"(client dialect {client})")


# --- plan-time value equality ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SameValue:
    """Guard: ``left`` and ``right`` are equal values of the same type (a SET that provably keeps a vindex column's
    value relied on it; other values plan afresh, and then the change is refused)."""

    left: ValueExpr
    right: ValueExpr

    def holds(self, binds: Any) -> bool:
        a, b = evaluate(self.left, binds), evaluate(self.right, binds)
        return type(a) is type(b) and a == b and a is not None


def same_value(a: ValueExpr, b: ValueExpr, ctx: PlanContext) -> bool:
    """Whether two value expressions provably hold the same non-NULL value (adding a guard when that rests on this
    statement's literals)."""
    if a == b:
        return not (isinstance(a, Const) and a.value is None)
    if isinstance(a, Arg) and isinstance(b, Arg) and a.index < len(ctx.values) and b.index < len(ctx.values):
        from cython_ext.fpvalues import Param

        pa, pb = ctx.values[a.index], ctx.values[b.index]
        if isinstance(pa, Param) and isinstance(pb, Param):  # ``$1`` twice: the same bind parameter
            return pa.key == pb.key and pa.is_list == pb.is_list
    known_a, va = _known(a, ctx)
    known_b, vb = _known(b, ctx)
    if not (known_a and known_b) or va is None or type(va) is not type(vb) or va != vb:
        return False
    if isinstance(va, float) or (isinstance(va, Decimal) and not va.is_finite()):
        return False
    if not (isinstance(a, Const) and isinstance(b, Const)):
        ctx.guards.append(SameValue(a, b))  # type: ignore[arg-type]
    return True


def _known(v: ValueExpr, ctx: PlanContext) -> tuple[bool, Any]:
    if isinstance(v, Const):
        return True, v.value
    if isinstance(v, Arg) and ctx.value_known(v.index):
        value = ctx.values[v.index]
        return not isinstance(value, tuple), value
    return False, None


# --- write targets --------------------------------------------------------------------------------------------
def resolve_write_target(node: exp.Table, ctx: PlanContext, alias_renamed: bool) -> TableRef:
    """The table a write lands on. A reference table with a ``source`` is written at its source (Vitess): the node
    is renamed (aliased to the name the statement used when ``alias_renamed``, so qualified columns still
    resolve)."""
    ref = _resolve(node, ctx)
    if ref.kind != "vschema":
        raise UnsupportedError(f"cannot write to {ref.kind} table {ref.name}")
    if ref.tablet_type not in ("primary", "master"):
        raise RoutingError(f"writes go to primary tablets: cannot write {ref.qualified_name} through a "
                           f"{ref.tablet_type} target")
    table = ref.table
    assert table is not None
    if table.is_reference and table.source and ref.target is None:
        src_ks, src_table = split_qualified(table.source)
        used_name = ref.alias
        node.set("this", exp.to_identifier(src_table))
        node.set("db", exp.to_identifier(src_ks) if src_ks else None)
        if alias_renamed and not node.alias and src_table != used_name:
            node.set("alias", exp.TableAlias(this=exp.to_identifier(used_name)))
        source = resolve_table(node, ctx)
        source.qualified = source.qualified or ref.qualified
        return source
    return ref


def strip_qualifiers(refs: list[TableRef], rename_alias: bool = True) -> bool:
    """Remove keyspace qualifiers and apply routing-rule renames (``route1`` → ``user AS route1``). Returns whether
    the tree changed. INSERT targets take no alias (``rename_alias=False``)."""
    changed = False
    roots = {id(r.node.root()): r.node.root() for r in refs}
    for root in roots.values():
        for col in root.find_all(exp.Column):
            if col.args.get("db") is not None:  # ``ks.t.col``: shards know no keyspace
                col.set("db", None)
                col.set("catalog", None)
                changed = True
    for ref in refs:
        if ref.kind != "vschema":
            continue
        node = ref.node
        if node.args.get("db") is not None:
            node.set("db", None)
            changed = True
        if ref.table is not None and ref.table.name != ident(node.this, "mysql"):
            if rename_alias and not node.alias:
                node.set("alias", exp.TableAlias(this=exp.to_identifier(ref.name)))
            node.set("this", exp.to_identifier(ref.table.name))
            changed = True
    return changed


def lookup_writes(table: Table, ignore: bool = False) -> tuple[LookupWrite, ...]:
    return tuple(LookupWrite.of(cv, ignore) for cv in table.owned if isinstance(cv.vindex, Lookup))


def scatter_check(opcode: Opcode, keyspace: str, ctx: PlanContext, what: str) -> None:
    if opcode is Opcode.Scatter and not ctx.session.allow_scatter_dml:
        raise RoutingError(f"{what} would write to every shard of keyspace {keyspace} (no vindex value in its "
                           f"WHERE) and scatter writes are disabled by configuration (allow_scatter_dml)")


# --- co-location of the tables a write reads ------------------------------------------------------------------
def check_colocated(reads: list[TableRef], target: TableRef, routing: RoutingParams, ctx: PlanContext,
                    tree: exp.Expression, scope: list[TableRef]) -> None:
    """Tables a write reads in subqueries run on the write's shards: each must have there the rows the subquery
    needs. True for tables of the same unsharded keyspace, reference tables of the target's keyspace, and tables
    of the same sharded keyspace joined to the target on the same unique vindex or pinned to the same value."""
    tks = target.keyspace
    assert tks is not None
    for ref in reads:
        if ref.kind == "dual" or (ref.kind == "system" and not tks.sharded):
            continue
        if ref.kind == "system":
            raise UnsupportedError("a write to a sharded keyspace cannot read system tables")
        ks = ref.keyspace
        table = ref.table
        assert ks is not None and table is not None
        if ks.name == tks.name and not ks.sharded:
            continue
        if ks.name == tks.name and table.is_reference:
            continue
        if ks.name == tks.name and ks.sharded and ref.target is None and \
                (_correlated(ref, target, tree, scope, ctx) or _same_point(ref, routing, tree, ctx)):
            continue
        raise UnsupportedError(f"this {tree.key.upper()} on {target.qualified_name} reads {ref.qualified_name} in a "
                               f"subquery, whose rows may be on other shards (cross-shard subqueries in writes are "
                               f"not supported)")


def _unique_single_vindexes(ref: TableRef, col: str) -> set[str]:
    if ref.table is None:
        return set()
    return {cv.name for cv in ref.table.column_vindexes
            if len(cv.columns) == 1 and cv.columns[0].lower() == col.lower() and cv.vindex.is_unique}


def _correlated(ref: TableRef, target: TableRef, tree: exp.Expression, scope: list[TableRef],
                ctx: PlanContext) -> bool:
    """``sub.c1 = target.c2`` (ANDed in the subquery's WHERE) with both columns on the same unique vindex: the
    subquery's rows are on the target row's shard."""
    select = ref.node.find_ancestor(exp.Select)
    if select is None:
        return False
    inner = [ref] + [r for r in scope if r.alias != ref.alias]
    dialect = ctx.session.dialect
    for pred in split_and(select.args.get("where")):
        if not isinstance(pred, exp.EQ) or not (isinstance(pred.this, exp.Column)
                                               and isinstance(pred.expression, exp.Column)):
            continue
        a, b = pred.this, pred.expression
        oa, ob = column_owner(a, inner, dialect), column_owner(b, inner, dialect)
        if oa is target and ob is ref:
            a, b, oa, ob = b, a, ob, oa
        if oa is ref and ob is target and \
                _unique_single_vindexes(ref, column_name(a, dialect)) & \
                _unique_single_vindexes(target, column_name(b, dialect)):
            return True
    return False


def _same_point(ref: TableRef, routing: RoutingParams, tree: exp.Expression, ctx: PlanContext) -> bool:
    """The subquery's table is pinned (EqualUnique) to the same vindex value as the write."""
    if routing.opcode is not Opcode.EqualUnique or routing.vindex is None:
        return False
    select = ref.node.find_ancestor(exp.Select)
    if select is None:
        return False
    route = route_table(ref, split_and(select.args.get("where")), [ref], ctx)
    if route.opcode is not Opcode.EqualUnique or route.option is None or route.option.vindex_name != routing.vindex:
        return False
    values = route.option.values
    return len(values) == len(routing.values) and all(same_value(a, b, ctx)
                                                      for a, b in zip(values, routing.values, strict=True))


# --- UPDATE / DELETE ------------------------------------------------------------------------------------------
@dataclass
class _Statement:
    """An UPDATE or DELETE taken apart."""

    tree: exp.Update | exp.Delete
    kind: str  # update | delete
    target: TableRef
    scope: list[TableRef]  # tables of FROM/JOIN/USING (columns resolve against these), target included
    reads: list[TableRef]  # tables of subqueries
    assignments: list[tuple[str, exp.Column, exp.Expression]]  # UPDATE: (lower-case column, column node, value)
    modified: bool = False  # the tree no longer says what the client's text says


def _scope_nodes(tree: exp.Update | exp.Delete) -> list[exp.Expression]:
    this = tree.this
    nodes: list[exp.Expression] = [this] + [j.this for j in (this.args.get("joins") or [])]
    from_ = tree.args.get("from_")
    extra = ([from_.this] if from_ is not None else []) + list(tree.args.get("using") or [])
    for item in extra:
        nodes.append(item)
        nodes.extend(j.this for j in (item.args.get("joins") or []))
    for j in tree.args.get("joins") or []:
        nodes.append(j.this)
    for node in nodes:
        if not isinstance(node, exp.Table):
            raise UnsupportedError(f"a derived table in a multi-table {tree.key.upper()} is not supported")
    return nodes


def _resolve(node: exp.Table, ctx: PlanContext) -> TableRef:
    try:
        return resolve_table(node, ctx)
    except UnknownTableError as exc:
        if "keyspace" in exc.message:
            raise
        name = ident(node.this, ctx.session.dialect) if isinstance(node.this, exp.Identifier) else node.name
        raise UnknownTableError(f"table {name} not found in any keyspace of the VSchema (no keyspace selected: "
                                f"qualify it as keyspace.{name} or USE a keyspace)") from None


def _analyse(tree: exp.Update | exp.Delete, ctx: PlanContext, kind: str) -> _Statement:
    dialect = ctx.session.dialect
    nodes = _scope_nodes(tree)
    refs = [_resolve(n, ctx) for n in nodes]  # type: ignore[arg-type]
    modified = False
    index = 0  # the written table: the first one unless the statement names another
    if isinstance(tree, exp.Delete) and tree.args.get("tables"):
        targets = set()
        for t in tree.args["tables"]:
            name = ident(t.this, dialect) if isinstance(t.this, exp.Identifier) else t.name
            match = [i for i, r in enumerate(refs) if r.alias == name or
                     (dialect == "mysql" and r.alias.lower() == name.lower())]
            if len(match) != 1:
                raise UnsupportedError(f"DELETE target {name} is not one of the statement's tables")
            targets.add(match[0])
        if len(targets) > 1:
            raise UnsupportedError("a DELETE from more than one table is not supported")
        index = targets.pop()
        if len(nodes) == 1:
            tree.set("tables", None)  # ``DELETE t FROM t`` is ``DELETE FROM t``
            modified = True
    assignments: list[tuple[str, exp.Column, exp.Expression]] = []
    if isinstance(tree, exp.Update):
        modified = fix_default_keyword(tree) or modified
        owners = set()
        for eq in tree.expressions:
            if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Column):
                raise UnsupportedError("UPDATE … SET must assign columns")
            if len(refs) > 1 and tree.args.get("from_") is None:
                owner = column_owner(eq.this, refs, dialect)
                if owner is None:
                    raise UnsupportedError(f"cannot tell which table the SET column {eq.this.sql()} belongs to; "
                                           f"qualify it with its table")
                owners.add(refs.index(owner))
            assignments.append((column_name(eq.this, dialect).lower(), eq.this, eq.expression))
        if len(owners) > 1:
            raise UnsupportedError("an UPDATE of more than one table is not supported")
        if owners:
            index = owners.pop()
    refs[index] = resolve_write_target(nodes[index], ctx, alias_renamed=True)  # type: ignore[arg-type]
    target = refs[index]
    scope_ids = {id(n) for n in nodes}
    from router.planner.select import all_tables

    deleted = [id(t) for t in (tree.args.get("tables") or [])] if isinstance(tree, exp.Delete) else []
    reads = [_resolve(t, ctx) for t in all_tables(tree) if id(t) not in scope_ids and id(t) not in deleted]
    return _Statement(tree, kind, target, refs, reads, assignments, modified)


def _plan_update_delete(tree: exp.Update | exp.Delete, ctx: PlanContext, kind: str) -> Plan:
    if tree.args.get("with_") is not None:
        return _whole_unsharded(tree, ctx, kind) or _unsupported(
            "a WITH clause on a write whose tables are not all in one unsharded keyspace")
    st = _analyse(tree, ctx, kind)
    target = st.target
    tks = target.keyspace
    table = target.table
    assert tks is not None and table is not None
    backend = ctx.backend_dialect(tks.name)
    check_portable(tree, ctx, backend)
    all_refs = st.scope + st.reads
    tables = tuple(sorted({r.qualified_name for r in all_refs if r.kind == "vschema"}))

    if len(st.scope) == 1:
        route = _single_table_route(target, tree, ctx)
        routing = route.params()
        in_arg = _in_arg(route)
    else:
        merged = _merged_route(st, ctx)
        if merged is None:
            root = _dml_with_input(st, ctx, backend, input_tree=_equivalent_select(st, key=True, ctx=ctx))
            return _finish(root, st, tables, ctx)
        routing, in_arg = merged
    check_colocated(st.reads, target, routing, ctx, tree, st.scope)
    if tree.args.get("limit") is not None and routing.opcode not in _ONE_SHARD and \
            routing.opcode is not Opcode.ByDestination:
        if routing.opcode is Opcode.Reference:
            raise UnsupportedError(f"{kind.upper()} … LIMIT on reference table {table.qualified_name}: each shard's "
                                   f"copy could lose different rows")
        root = _dml_with_input(st, ctx, backend, limit_route=(routing, in_arg))
        return _finish(root, st, tables, ctx)
    root = _build_dml(st, routing, in_arg, ctx, backend)
    return _finish(root, st, tables, ctx)


def _unsupported(what: str) -> Plan:
    raise UnsupportedError(f"{what} is not supported")


def _finish(root: Primitive, st: _Statement, tables: tuple[str, ...], ctx: PlanContext) -> Plan:
    return Plan(root, st.kind, tables=tables, guards=tuple(ctx.guards), warnings=tuple(ctx.warnings),
                passthrough=bool(getattr(root, "passthrough", False)))


def _whole_unsharded(tree: exp.Expression, ctx: PlanContext, kind: str) -> Plan | None:
    """A statement whose tables all live in one unsharded keyspace runs there as written."""
    from router.planner.select import all_tables

    refs = [resolve_table(t, ctx) for t in all_tables(tree)]
    keyspaces = {r.keyspace_name for r in refs if r.kind == "vschema"}
    if len(keyspaces) != 1 or any(r.kind == "system" or r.target is not None for r in refs):
        return None
    ks = next(r.keyspace for r in refs if r.kind == "vschema")
    assert ks is not None
    if ks.sharded or any(r.table is not None and r.table.auto_increment is not None for r in refs
                         if kind == "insert"):
        return None
    backend = ctx.backend_dialect(ks.name)
    check_portable(tree, ctx, backend)
    rewritten = strip_qualifiers(refs)
    query = template(tree, backend)
    routing = RoutingParams(Opcode.Unsharded, KeyspaceRef(ks.name, False), reason="unsharded keyspace")
    passthrough = not rewritten and backend == ctx.session.dialect
    tables = tuple(sorted({r.qualified_name for r in refs if r.kind == "vschema"}))
    target_node = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    name = next((r.table.name for r in refs if r.node is target_node and r.table is not None), "")
    if kind == "insert":
        from router.planner.dml_plan import Insert

        root: Primitive = Insert("Unsharded", KeyspaceRef(ks.name, False), name, query, passthrough=passthrough,
                                 returning=tree.args.get("returning") is not None)
    else:
        cls = Update if kind == "update" else Delete
        root = cls(routing, query, name, returning=tree.args.get("returning") is not None, passthrough=passthrough)
    return Plan(root, kind, tables=tables, guards=tuple(ctx.guards), warnings=tuple(ctx.warnings),
                passthrough=passthrough)


def _single_table_route(target: TableRef, tree: exp.Expression, ctx: PlanContext) -> TableRoute:
    table = target.table
    ks = target.keyspace
    assert table is not None and ks is not None
    route = route_table(target, split_and(tree.args.get("where")), [target], ctx)
    if route.opcode is Opcode.Reference:
        route.reason = "reference table: writes go to every shard"
    return route


def _in_arg(route: TableRoute) -> Arg | None:
    """The folded IN list each shard receives only its own values of."""
    pred = route.in_predicate
    if pred is None or route.opcode is not Opcode.IN:
        return None
    items = pred.expressions
    value = to_value(items[0]) if len(items) == 1 else None
    return value if isinstance(value, Arg) else None


def _in_slot(query: SqlTemplate, in_arg: ValueExpr | None) -> int:
    if in_arg is None:
        return -1
    matches = [i for i, s in enumerate(query.slots) if s == in_arg]
    return matches[0] if len(matches) == 1 else -1


# --- multi-table ----------------------------------------------------------------------------------------------
def _equivalent_select(st: _Statement, key: bool, ctx: PlanContext) -> exp.Select:
    """``SELECT … FROM <the statement's tables> WHERE <its WHERE>`` (a copy): selects the target's row key when
    ``key``, else ``1``."""
    tree = st.tree
    this = tree.this.copy()
    joins = list(this.args.get("joins") or [])
    this.set("joins", None)
    from_ = tree.args.get("from_")
    extra = ([from_.this] if from_ is not None else []) + list(tree.args.get("using") or [])
    for item in extra:
        item = item.copy()
        item_joins = list(item.args.get("joins") or [])
        item.set("joins", None)
        joins.append(exp.Join(this=item))
        joins.extend(item_joins)
    if key:
        col, _ = row_key(st.target)
        qualifier = st.target.node.alias or ident(st.target.node.this, "mysql")
        expressions: list[exp.Expression] = [exp.column(col, table=qualifier)]
    else:
        expressions = [exp.Literal.number(1)]
    select = exp.Select(expressions=expressions, from_=exp.From(this=this))
    if joins:
        select.set("joins", joins)
    where = tree.args.get("where")
    if where is not None:
        select.set("where", where.copy())
    for arg in ("order", "limit"):
        if tree.args.get(arg) is not None:
            select.set(arg, tree.args[arg].copy())
    return select


def _merged_route(st: _Statement, ctx: PlanContext) -> tuple[RoutingParams, Arg | None] | None:
    """The one route of a multi-table write whose tables all sit on the same shards, or None."""
    keyspaces = {r.keyspace_name for r in st.scope}
    if len(keyspaces) != 1:
        return None
    from router.planner.select import plan_select

    select = _equivalent_select(st, key=False, ctx=ctx)
    select.set("order", None)
    select.set("limit", None)
    guards = len(ctx.guards)
    try:
        root, _ = plan_select(select, ctx)
    except UnsupportedError:
        del ctx.guards[guards:]
        return None
    if isinstance(root, VindexLookup) and isinstance(root.send, Route):
        return root.routing, None  # one route through a lookup vindex: a DML resolves it itself (Vitess)
    if not isinstance(root, Route):
        del ctx.guards[guards:]
        return None
    in_arg = root.query.slots[root.in_slot] if root.in_slot >= 0 else None
    return root.routing, in_arg if isinstance(in_arg, Arg) else None


def row_key(target: TableRef) -> tuple[str, ColumnVindex | None]:
    """The column a DMLWithInput identifies the target's rows by, and the vindex that routes it.

    Vitess uses the table's primary key (schema tracking); the VSchema has none, so a column that provably
    identifies a row is needed: the primary vindex column when it is also the auto-increment column (sequence
    values are unique), else a column with an owned unique lookup vindex (its lookup table keeps it unique), else
    the auto-increment column (routed by scatter)."""
    table = target.table
    assert table is not None
    ai = table.auto_increment.column.lower() if table.auto_increment is not None else None
    pv = table.primary_vindex
    if pv is not None and len(pv.columns) == 1 and pv.columns[0].lower() == ai:
        return pv.columns[0], pv
    for cv in table.column_vindexes:
        if cv.owned and cv.vindex.is_unique and len(cv.columns) == 1 and isinstance(cv.vindex, Lookup) \
                and not cv.vindex.lookup.write_only:
            return cv.columns[0], cv
    if table.auto_increment is not None:
        return table.auto_increment.column, None
    raise UnsupportedError(f"this write to {table.qualified_name} must first read the keys of the rows it "
                           f"changes, and the VSchema names no column that identifies a row of it (an "
                           f"auto_increment column or an owned unique lookup vindex)")


def _dml_with_input(st: _Statement, ctx: PlanContext, backend: str, input_tree: exp.Select | None = None,
                    limit_route: tuple[RoutingParams, Arg | None] | None = None) -> Primitive:
    """Read the target's row keys first (the input), then write by ``key IN (::dml_vals)``."""
    tree = st.tree
    target = st.target
    table = target.table
    assert table is not None
    key_col, key_vindex = row_key(target)
    if isinstance(tree, exp.Update):
        for _, _, value in st.assignments:
            if value.find(exp.Select) is not None:
                raise UnsupportedError("an UPDATE whose rows are read first (LIMIT or a join across shards) "
                                       "cannot SET from a subquery")
            for col in value.find_all(exp.Column):
                owner = column_owner(col, st.scope, ctx.session.dialect)
                if owner is not target:
                    raise UnsupportedError(f"this UPDATE sets {table.name} from another table's column "
                                           f"({col.sql()}), across shards: not supported")
    # The input: the keys of the rows to write.
    if limit_route is not None:
        input_plan = _limit_input(st, ctx, backend, *limit_route)
    else:
        from router.planner.select import plan_select

        assert input_tree is not None
        input_plan, _ = plan_select(input_tree, ctx)
    if not ctx.session.allow_scatter_dml and _has_scatter(input_plan):
        raise RoutingError(f"this {st.kind.upper()} must first read its rows on every shard of keyspace "
                           f"{target.keyspace_name}, and scatter writes are disabled by configuration "
                           f"(allow_scatter_dml)")
    # The write: the target alone, by key.
    dml = tree.copy()
    target_node = _find_same(dml, target.node)
    for arg in ("where", "order", "limit", "joins", "from_", "using", "tables", "with_"):
        if arg in dml.args:
            dml.set(arg, None)
    this = target_node.copy()
    this.set("joins", None)
    dml.set("this", this)
    qualifier = this.alias or ident(this.this, "mysql")
    key = exp.column(key_col, table=qualifier)
    dml.set("where", exp.Where(this=exp.In(this=key, expressions=[exp.Placeholder(this=DML_VALS)])))
    if key_vindex is not None:
        opcode = Opcode.IN
        routing = RoutingParams(opcode, KeyspaceRef(target.keyspace_name, True), key_vindex.name,
                                (ListVar(DML_VALS),), reason=f"IN on vindex {key_vindex.name} (keys read first)")
    else:
        routing = RoutingParams(Opcode.Scatter, KeyspaceRef(target.keyspace_name, True),
                                reason="keys read first; no vindex on the key column")
    new_target = TableRef(this, target.name, target.alias, "vschema", table=target.table, keyspace=target.keyspace,
                          qualified=target.qualified)
    sub = _Statement(dml, st.kind, new_target, [new_target], [], _reassign(dml, st, ctx))
    write = _build_dml(sub, routing, ListVar(DML_VALS) if key_vindex is not None else None, ctx, backend)
    return DMLWithInput(input_plan, (write,), ((0,),))


def _has_scatter(prim: Primitive) -> bool:
    routing = getattr(prim, "routing", None)
    if routing is not None and routing.opcode is Opcode.Scatter:
        return True
    return any(_has_scatter(kid) for kid in prim.inputs())


def _find_same(tree: exp.Expression, node: exp.Table) -> exp.Table:
    """The copy of ``node`` inside ``tree`` (a copy of the tree that held it)."""
    for t in tree.find_all(exp.Table):
        if t.name == node.name and t.alias == node.alias and t.args.get("db") == node.args.get("db"):
            return t
    raise AssertionError("target table not found in its statement's copy")


def _reassign(dml: exp.Expression, st: _Statement, ctx: PlanContext) -> list[tuple[str, exp.Column, exp.Expression]]:
    if not isinstance(dml, exp.Update):
        return []
    return [(column_name(eq.this, ctx.session.dialect).lower(), eq.this, eq.expression) for eq in dml.expressions]


def _limit_input(st: _Statement, ctx: PlanContext, backend: str, routing: RoutingParams,
                 in_arg: Arg | None) -> Primitive:
    """``SELECT key FROM t WHERE … LIMIT n`` on the write's shards, under a router-side Limit (Vitess's input of an
    UPDATE/DELETE … LIMIT). With ORDER BY the SELECT planner merges the shards' ordered streams."""
    select = _equivalent_select(st, key=True, ctx=ctx)
    if select.args.get("order") is not None:
        from router.planner.select import plan_select

        return plan_select(select, ctx)[0]
    limit = select.args["limit"]
    count = to_value(limit.expression)
    if count is None:
        raise UnsupportedError("the LIMIT of this write must be a number")
    from router.planner.select import all_tables

    refs = [resolve_table(t, ctx) for t in all_tables(select)]
    strip_qualifiers(refs)
    query = template(select, backend)
    route = Route(routing, query, table=st.target.table.name if st.target.table else "",
                  in_slot=_in_slot(query, in_arg))
    return Limit(count, None, route)


# --- building Update / Delete ---------------------------------------------------------------------------------
def _build_dml(st: _Statement, routing: RoutingParams, in_arg: ValueExpr | None, ctx: PlanContext,
               backend: str) -> Update | Delete:
    tree = st.tree
    target = st.target
    table = target.table
    assert table is not None
    scatter_check(routing.opcode, target.keyspace_name, ctx, st.kind.upper())
    sharded = target.keyspace is not None and target.keyspace.sharded and not table.is_reference
    changes_spec: list[tuple[ColumnVindex, list[tuple[str, exp.Column, exp.Expression]]]] = []
    if st.kind == "update" and sharded:
        changes_spec = _vindex_changes(st, ctx)
    rewritten = strip_qualifiers(st.scope + st.reads)
    # Owned vindex query (before the write's text is fixed: it reads the same tables).
    owned_query = None
    ksid = None
    lookups: tuple[LookupWrite, ...] = ()
    changes: tuple[VindexChange, ...] = ()
    if sharded and routing.opcode is not Opcode.None_ and table.primary_vindex is not None:
        if st.kind == "delete" and table.owned:
            lookups = lookup_writes(table)
            owned_query, _ = _owned_query(st, table, [], backend)
            ksid = table.primary_vindex
        elif changes_spec:
            owned_query, changes = _owned_query(st, table, changes_spec, backend)
            ksid = table.primary_vindex
    if isinstance(tree, exp.Delete) and backend == "mysql":
        rewritten = _dealias_delete(st, ctx) or rewritten
    query = template(tree, backend)
    in_slot = _in_slot(query, in_arg)
    passthrough = (not rewritten and not st.modified and backend == ctx.session.dialect and in_slot < 0
                   and not any(isinstance(s, (JoinVar, ListVar)) for s in query.slots))
    returning = tree.args.get("returning") is not None
    name = table.name
    if st.kind == "update":
        return Update(routing, query, name, in_slot, owned_query, ksid, returning, passthrough, changes)
    return Delete(routing, query, name, in_slot, owned_query, ksid, returning, passthrough, lookups)


def _dealias_delete(st: _Statement, ctx: PlanContext) -> bool:
    """MariaDB's single-table DELETE takes no table alias: drop it and qualify columns with the table name."""
    tree = st.tree
    node = st.target.node
    if len(st.scope) != 1 or not node.alias or tree.args.get("tables"):
        return False
    alias = node.alias
    name = ident(node.this, "mysql")
    for col in tree.find_all(exp.Column):
        q = col.args.get("table")
        if q is not None and ident(q, "mysql").lower() == alias.lower():
            col.set("table", exp.to_identifier(name))
    node.set("alias", None)
    return True


def _pinned_values(st: _Statement, ctx: PlanContext) -> dict[str, list[ValueExpr]]:
    """Target columns the WHERE pins to a value (``col = v`` ANDed at the top)."""
    dialect = ctx.session.dialect
    out: dict[str, list[ValueExpr]] = {}
    for pred in split_and(st.tree.args.get("where")):
        if not isinstance(pred, exp.EQ):
            continue
        for col, other in ((pred.this, pred.expression), (pred.expression, pred.this)):
            if isinstance(col, exp.Column) and column_owner(col, st.scope, dialect) is st.target:
                value = to_value(other, ctx)
                if value is None or (isinstance(value, Const) and value.value is None):
                    continue
                out.setdefault(column_name(col, dialect).lower(), []).append(value)
    return out


def _vindex_changes(st: _Statement, ctx: PlanContext) -> list[tuple[ColumnVindex, list[tuple[str, exp.Column,
                                                                                             exp.Expression]]]]:
    """The vindexes the SET changes (checked: a primary or functional vindex column may only keep its value)."""
    table = st.target.table
    assert table is not None
    dialect = ctx.session.dialect
    assigned = {col: (col, node, value) for col, node, value in st.assignments}
    pinned = _pinned_values(st, ctx)
    out = []
    for i, cv in enumerate(table.column_vindexes):
        sets = [assigned[c.lower()] for c in cv.columns if c.lower() in assigned]
        if not sets:
            continue
        if all(_keeps_value(col, value, pinned, st, ctx, dialect) for col, _, value in sets):
            continue
        col = next(c for c, _, v in sets if not _keeps_value(c, v, pinned, st, ctx, dialect))
        if i == 0:
            raise RoutingError(f"UPDATE cannot change column {col} of {table.qualified_name}: it is the primary "
                               f"vindex ({cv.name}) column, so the row would move to another shard")
        if not isinstance(cv.vindex, Lookup):
            raise UnsupportedError(f"UPDATE cannot change column {col} of {table.qualified_name}: only lookup "
                                   f"vindex columns may change, and {cv.name} is a {cv.type} vindex")
        for c, _, value in sets:
            if to_value(value, ctx) is None:
                raise UnsupportedError(f"UPDATE can set column {c} of {table.qualified_name} (lookup vindex "
                                       f"{cv.name}) only to a value, not to {value.sql()}")
        out.append((cv, sets))
    return out


def _keeps_value(col: str, value: exp.Expression, pinned: dict[str, list[ValueExpr]], st: _Statement,
                 ctx: PlanContext, dialect: str) -> bool:
    """``SET col = col``, or ``SET col = v`` where the WHERE pins ``col = v``: the column keeps its value."""
    if isinstance(value, exp.Column):
        return column_name(value, dialect).lower() == col and column_owner(value, st.scope, dialect) is st.target
    new = to_value(value, ctx)
    return new is not None and any(same_value(new, old, ctx) for old in pinned.get(col, ()))


def _owned_query(st: _Statement, table: Table,
                 changes_spec: list[tuple[ColumnVindex, list[tuple[str, exp.Column, exp.Expression]]]],
                 backend: str) -> tuple[SqlTemplate, tuple[VindexChange, ...]]:
    """Vitess's owned-vindex query: keyspace-id columns, each owned vindex's columns, columns a change of a vindex
    the table does not own needs, then one ``old = new`` check per change; same FROM/WHERE/ORDER BY/LIMIT,
    ``FOR UPDATE``."""
    tree = st.tree
    pv = table.primary_vindex
    assert pv is not None
    multi = len(st.scope) > 1
    qualifier = st.target.node.alias or ident(st.target.node.this, "mysql")

    def col(name: str) -> exp.Column:
        return exp.column(exp.to_identifier(name), table=exp.to_identifier(qualifier) if multi else None)

    names: list[str] = list(pv.columns)
    for cv in table.owned:
        names.extend(cv.columns)
    position: dict[str, int] = {}
    for i, n in enumerate(names):
        position.setdefault(n.lower(), i)
    for cv, sets in changes_spec:
        set_cols = {c for c, _, _ in sets}
        for c in cv.columns:
            if c.lower() not in position and c.lower() not in set_cols:
                position[c.lower()] = len(names)
                names.append(c)
    expressions: list[exp.Expression] = [col(n) for n in names]
    changes = []
    owned_names = {cv.name for cv in table.owned}
    for cv, sets in changes_spec:
        checks = [exp.EQ(this=node.copy(), expression=value.copy()) for _, node, value in sets]
        check: exp.Expression = checks[0]
        for more in checks[1:]:
            check = exp.And(this=check, expression=more)
        offset = len(expressions)
        expressions.append(check)
        by_col = {c: value for c, _, value in sets}
        new_values = tuple(to_value(by_col[c.lower()]) if c.lower() in by_col else None for c in cv.columns)
        old_offsets = tuple(position.get(c.lower(), -1) for c in cv.columns)
        lookup = LookupWrite.of(cv) if cv.name in owned_names and isinstance(cv.vindex, Lookup) else None
        changes.append(VindexChange(cv, new_values, old_offsets, offset, lookup))
    this = tree.this.copy()
    joins = list(this.args.get("joins") or [])
    this.set("joins", None)
    select = exp.Select(expressions=expressions, from_=exp.From(this=this))
    from_ = tree.args.get("from_")
    for item in ([from_.this] if from_ is not None else []) + list(tree.args.get("using") or []):
        item = item.copy()
        item_joins = list(item.args.get("joins") or [])
        item.set("joins", None)
        joins.append(exp.Join(this=item))
        joins.extend(item_joins)
    if joins:
        select.set("joins", joins)
    for arg in ("where", "order", "limit"):
        if tree.args.get(arg) is not None:
            select.set(arg, tree.args[arg].copy())
    select.set("locks", [exp.Lock(update=True)])
    return template(select, backend), tuple(changes)
