"""Which tables a statement names, where they live, and which table each column belongs to.

A table reference resolves against the VSchema the way vtgate does: routing rules, then an explicit keyspace
qualifier (which may carry a target: `` `ks:-80`.t ``, `` `ks[-]`.t ``, ``ks@replica``), then the session's
keyspace, then Vitess's global routing (a table name unique across keyspaces). System schemas
(information_schema, pg_catalog, …) and ``dual`` are told apart here so routing can treat them as DBA and
Reference routes.

Columns: a resolved table is the VSchema's table as ``sharding.schema.effective_table`` completes it from the
schema the shards report (``snapshot.schema``): VSchema columns listed authoritatively come first, else the tracked
columns (authoritative when every shard agrees), else whatever the VSchema declares. Everything downstream (column
ownership here, ``*`` expansion, INSERT without a column list, types and collations in the horizon) reads
``TableRef.table.columns`` and ``column_list_authoritative``, so they all see the same effective columns.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp

from router.planner.context import PlanContext
from sharding.errors import UnknownKeyspaceError, UnknownTableError
from sharding.schema import SchemaSet, effective_table
from sharding.vschema_model import Keyspace, Table

SYSTEM_SCHEMAS = frozenset({"information_schema", "performance_schema", "mysql", "sys", "pg_catalog"})
# pg_catalog relations that PostgreSQL clients query unqualified (psql's \d, drivers' type lookups).
PG_CATALOG_TABLES_PREFIX = "pg_"

_TARGET = re.compile(r"^(?P<ks>[^:\[\]@]+)(?::(?P<shard>[^@]+)|\[(?P<range>[^\]]*)\])?(?:@(?P<tt>\w+))?$")


@dataclass(frozen=True, slots=True)
class Qualifier:
    keyspace: str | None
    target: str | None = None  # a shard name or key range
    tablet_type: str | None = None


def parse_qualifier(text: str | None) -> Qualifier:
    """``ks``, ``ks:-80``, ``ks[-80]``, ``ks@replica``, ``ks:-80@primary`` -> its parts."""
    if not text:
        return Qualifier(None)
    m = _TARGET.match(text)
    if m is None:
        return Qualifier(text)
    target = m.group("shard") if m.group("shard") is not None else m.group("range")
    return Qualifier(m.group("ks"), target, m.group("tt"))


def ident(node: exp.Expression | str | None, dialect: str) -> str:
    """An identifier as the server sees it: PostgreSQL folds unquoted names to lower case, MySQL keeps them."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    if isinstance(node, exp.Identifier):
        name = node.this
        return name if node.quoted or dialect != "postgres" else name.lower()
    return node.name


@dataclass(eq=False)
class TableRef:
    """One table of a FROM clause, resolved."""

    node: exp.Table
    name: str  # the table's name in the query
    alias: str  # how columns refer to it
    kind: str  # "vschema" | "system" | "dual"
    table: Table | None = None
    keyspace: Keyspace | None = None
    target: str | None = None
    tablet_type: str = "primary"
    qualified: bool = False  # the query named a keyspace (to be removed from the shard's text)

    @property
    def keyspace_name(self) -> str:
        return self.keyspace.name if self.keyspace is not None else ""

    @property
    def qualified_name(self) -> str:
        if self.table is not None:
            return f"{self.table.keyspace}.{self.table.name}"
        return f"{ident(self.node.args.get('db'), 'mysql') or ''}.{self.name}".lstrip(".")


def _default_keyspace(ctx: PlanContext) -> Keyspace:
    """The keyspace for table-less and dual queries: the session's, else the first unsharded one by name, else
    the first by name (Vitess resolves an unqualified ``dual`` to the first keyspace by name; an unsharded one
    answers it on its single shard, so it is preferred)."""
    vs = ctx.vschema
    if ctx.session.keyspace and ctx.session.keyspace in vs.keyspaces:
        return vs.keyspaces[ctx.session.keyspace]
    if not vs.keyspaces:
        raise UnknownKeyspaceError("no keyspace is defined")
    names = sorted(vs.keyspaces)
    unsharded = [n for n in names if not vs.keyspaces[n].sharded]
    return vs.keyspaces[(unsharded or names)[0]]


def resolve_table(node: exp.Table, ctx: PlanContext) -> TableRef:
    dialect = ctx.session.dialect
    name = ident(node.this, dialect) if isinstance(node.this, exp.Identifier) else node.name
    db = node.args.get("db")
    qualifier_text = ident(db, dialect) if db is not None else None
    alias = node.alias or name
    if dialect == "postgres" and node.args.get("alias") is not None:
        alias = ident(node.args["alias"].this, dialect)
    if qualifier_text and qualifier_text.lower() in SYSTEM_SCHEMAS:
        return TableRef(node, name, alias, "system", keyspace=_default_keyspace(ctx), qualified=True)
    if not qualifier_text and name.lower() == "dual":
        return TableRef(node, name, alias, "dual", keyspace=_default_keyspace(ctx))
    if not qualifier_text and dialect == "postgres" and name.startswith(PG_CATALOG_TABLES_PREFIX) \
            and name not in _all_table_names(ctx):
        return TableRef(node, name, alias, "system", keyspace=_default_keyspace(ctx))
    q = parse_qualifier(qualifier_text)
    keyspace = q.keyspace
    target = q.target
    tablet_type = q.tablet_type or ctx.session.tablet_type
    if keyspace is None:
        keyspace = ctx.session.keyspace
        if target is None:
            target = ctx.session.target
    vs = ctx.vschema
    if keyspace is not None and keyspace not in vs.keyspaces and q.keyspace is not None:
        # ``db.table`` where db is not a keyspace: a routing rule may still name it.
        try:
            table = vs.find_table(name, keyspace=keyspace, tablet_type=tablet_type)
        except UnknownKeyspaceError:
            raise UnknownKeyspaceError(f"keyspace {keyspace} not found in vschema") from None
    else:
        try:
            table = vs.find_table(name, keyspace=keyspace, tablet_type=tablet_type)
        except UnknownTableError:
            found = _tracked_unsharded_table(ctx, name) if keyspace is None else None
            if found is None:
                where = f" in keyspace {keyspace}" if keyspace else ""
                raise UnknownTableError(f"table {name} not found{where}") from None
            table = found
    ks = vs.keyspaces[table.keyspace]
    table = effective_table(tracked_schema(ctx), table)
    return TableRef(node, name, alias, "vschema", table=table, keyspace=ks, target=target,
                    tablet_type=tablet_type, qualified=db is not None)


def tracked_schema(ctx: PlanContext) -> SchemaSet | None:
    """The schema the shards report, as of the plan's snapshot (None: not tracked)."""
    return getattr(ctx.snapshot, "schema", None)


def _tracked_unsharded_table(ctx: PlanContext, name: str) -> Table | None:
    """Global routing extended by the tracked schema (as Vitess does with its schema tracker): an unqualified name
    the VSchema does not list, which the shards of exactly one unsharded keyspace hold."""
    schema = tracked_schema(ctx)
    if not schema:
        return None
    homes = [ks for ks_name, ks in sorted(ctx.vschema.keyspaces.items())
             if not ks.sharded and schema.table(ks_name, name) is not None]
    if len(homes) != 1:
        return None
    tracked = schema.table(homes[0].name, name)
    assert tracked is not None
    return Table(name=tracked.name, keyspace=homes[0].name)


def _all_table_names(ctx: PlanContext) -> set[str]:
    return {t for ks in ctx.vschema.keyspaces.values() for t in ks.tables}


def scope_tables(select: exp.Select) -> list[exp.Table]:
    """The tables of this SELECT's own FROM and JOIN clauses (not of its subqueries)."""
    out: list[exp.Table] = []
    from_ = select.args.get("from_")
    if from_ is not None:
        _collect_from_item(from_.this, out)
    for join in select.args.get("joins") or ():
        _collect_from_item(join.this, out)
    return out


def _collect_from_item(item: exp.Expression, out: list[exp.Table]) -> None:
    if isinstance(item, exp.Table):
        out.append(item)


def column_name(col: exp.Column, dialect: str) -> str:
    return ident(col.this, dialect) if isinstance(col.this, exp.Identifier) else col.name


def column_owner(col: exp.Column, scope: list[TableRef], dialect: str) -> TableRef | None:
    """The table a column belongs to, or None when that cannot be known (then it drives no routing).

    An unqualified column of a join belongs to the one table that has it when every other table's column list is
    known in full: from the VSchema, or from the tracked schema (``resolve_table`` made each ``TableRef.table``
    the effective table)."""
    qualifier = col.args.get("table")
    if qualifier is not None:
        q = ident(qualifier, dialect)
        matches = [t for t in scope if t.alias == q or (t.alias.lower() == q.lower() and dialect == "mysql")]
        return matches[0] if len(matches) == 1 else None
    if len(scope) == 1:
        return scope[0]
    name = column_name(col, dialect).lower()
    owners = [t for t in scope if t.table is not None and any(c.name.lower() == name for c in t.table.columns)]
    # A column listed by one table is that table's only when every other table lists its columns
    # authoritatively; otherwise it might be theirs too.
    if len(owners) == 1 and all(t is owners[0] or (t.table is not None and t.table.column_list_authoritative)
                                for t in scope):
        return owners[0]
    return None
