"""DDL: CREATE/ALTER/DROP/TRUNCATE TABLE and CREATE/DROP INDEX go to every shard of a sharded keyspace (whether
or not the table is in the VSchema yet) and to the one shard of an unsharded keyspace, as the client wrote them.
"""
from __future__ import annotations

from sqlglot import exp

from router.planner.context import PlanContext
from router.planner.plan import KeyspaceRef, Plan, Send
from router.planner.semantics import ident, parse_qualifier
from router.planner.sqltext import SqlTemplate
from sharding.errors import UnknownKeyspaceError, UnsupportedError

DDL_NODES = (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)


def _keyspace_of(tree: exp.Expression, ctx: PlanContext) -> tuple[str, str | None, list[str]]:
    tables = list(tree.find_all(exp.Table))
    dialect = ctx.session.dialect
    keyspaces: set[str] = set()
    target = None
    names = []
    for t in tables:
        q = parse_qualifier(ident(t.args.get("db"), dialect) if t.args.get("db") is not None else None)
        ks = q.keyspace or ctx.session.keyspace
        if ks is None:
            if len(ctx.vschema.keyspaces) == 1:
                ks = next(iter(ctx.vschema.keyspaces))
            else:
                raise UnknownKeyspaceError("no keyspace selected: qualify the table or USE a keyspace first")
        keyspaces.add(ks)
        target = q.target or target
        names.append(f"{ks}.{ident(t.this, dialect) if isinstance(t.this, exp.Identifier) else t.name}")
    if not keyspaces:
        ks = ctx.session.keyspace
        if ks is None:
            raise UnknownKeyspaceError("no keyspace selected for this DDL statement")
        keyspaces.add(ks)
    if len(keyspaces) > 1:
        raise UnsupportedError("a DDL statement across keyspaces")
    ks = keyspaces.pop()
    if ks not in ctx.vschema.keyspaces:
        raise UnknownKeyspaceError(f"keyspace {ks} not found in vschema")
    return ks, target or ctx.session.target, names


def plan_ddl(tree: exp.Expression, ctx: PlanContext) -> Plan:
    ks_name, target, tables = _keyspace_of(tree, ctx)
    ks = ctx.vschema.keyspaces[ks_name]
    # Shards hold the tables under their own database: drop the keyspace qualifiers.
    rewritten = False
    for t in tree.find_all(exp.Table):
        if t.args.get("db") is not None:
            t.set("db", None)
            rewritten = True
    backend = ctx.backend_dialect(ks_name)
    if not rewritten and backend == ctx.session.dialect:
        query = SqlTemplate.text(ctx.original_sql)
    else:
        query = SqlTemplate.text(tree.sql(dialect=backend))
    send = Send(KeyspaceRef(ks.name, ks.sharded), query, target=target, all_shards=target is None)
    return Plan(send, "ddl", tables=tuple(tables), passthrough=not rewritten)
