"""Routes through a lookup vindex, planned as Vitess plans them: ``VindexLookup``.

A SELECT routed by a lookup vindex (``name = 'x'`` with a ``lookup`` vindex on ``name``) first reads the lookup
table, then sends the statement to the shards of the keyspace ids it found. Vitess makes that two primitives under
a ``VindexLookup`` (Equal, EqualUnique, IN or MultiEqual, with the lookup vindex and its values):

- the lookup: ``select <from>, <to> from <lookup table> where <from> in ::<from>``, itself planned as a route
  (IN on the lookup table's own vindex, each shard given only its values);
- the send: the statement's route with opcode ByDestination (its shards come from the lookup at run time).

Only lookups that store keyspace ids as they are can be read this way (Vitess ``LookupPlanable``: ``lookup``,
``lookup_unique`` and test types built on them); lookups that hash or transform values, consistent lookups, and a
lookup table missing from the VSchema keep the plain route, which the engine resolves through the vindex.
DML never uses this: Vitess plans UPDATE/DELETE by a lookup vindex as a plain route.
"""
from __future__ import annotations

import dataclasses

from sqlglot import exp

from router.planner.context import PlanContext
from router.planner.parse import dialect as sqlglot_dialect
from router.planner.plan import KeyspaceRef, Opcode, Primitive, Route, RoutingParams, VindexLookup
from router.planner.routing import TableRoute, route_table
from router.planner.semantics import TableRef
from router.planner.sqltext import template_from_generated
from router.planner.values import Arg, ListVar
from sharding.errors import ShardgateError
from sharding.vindexes.base import Lookup
from sharding.vindexes.consistent_lookup import ConsistentLookupVindex
from sharding.vindexes.lookup import LookupVindex
from sharding.vschema_model import split_qualified

__all__ = ["is_planable_lookup", "wrap_lookup"]

_LOOKUP_OPCODES = frozenset({Opcode.Equal, Opcode.EqualUnique, Opcode.IN, Opcode.MultiEqual})


def is_planable_lookup(vindex: object) -> bool:
    """A lookup whose table maps ``from`` values to keyspace ids unchanged, so its read can be planned."""
    if not isinstance(vindex, Lookup) or not isinstance(vindex, LookupVindex):
        return False
    if isinstance(vindex, ConsistentLookupVindex):
        return False
    cls = type(vindex)
    return cls.from_value is LookupVindex.from_value and cls.to_value is LookupVindex.to_value \
        and cls.ksid_from_to is LookupVindex.ksid_from_to


def wrap_lookup(route: Primitive, table_route: TableRoute, ctx: PlanContext) -> Primitive:
    """``route`` as a VindexLookup when ``table_route`` selected a planable lookup vindex; else ``route``."""
    opt = table_route.option
    if not isinstance(route, Route) or opt is None or table_route.opcode not in _LOOKUP_OPCODES:
        return route
    vindex = opt.column_vindex.vindex
    if not is_planable_lookup(vindex):
        return route
    lookup = _lookup_route(vindex, table_route, ctx)  # type: ignore[arg-type]
    if lookup is None:
        return route
    send_routing = RoutingParams(Opcode.ByDestination, route.routing.keyspace,
                                 reason=f"keyspace ids read from lookup vindex {opt.vindex_name}")
    send = dataclasses.replace(route, routing=send_routing, in_slot=-1)
    return VindexLookup(route.routing, lookup, send)


def _lookup_route(vindex: LookupVindex, table_route: TableRoute, ctx: PlanContext) -> Route | None:
    params = vindex.lookup
    if not params.table or not params.from_columns or not params.to:
        return None
    ks_name, table_name = split_qualified(params.table) if "." in params.table else ("", params.table)
    try:
        table = ctx.vschema.find_table(table_name, keyspace=ks_name or table_route.keyspace.name)
    except ShardgateError:
        return None
    keyspace = ctx.vschema.keyspaces[table.keyspace]
    from_col, to_col = params.from_columns[0], params.to
    node = exp.Table(this=exp.to_identifier(table.name))
    ref = TableRef(node, table.name, table.name, "vschema", table=table, keyspace=keyspace)
    tree = exp.select(exp.column(from_col), exp.column(to_col)).from_(node)
    predicate = exp.In(this=exp.column(from_col), expressions=[exp.Placeholder(this="v1")])
    tree.where(predicate, copy=False)
    listed = ListVar(from_col)
    # Routed as ``<from> IN ::<from>`` (one list, IN even for one value); written with parentheses.
    as_list = exp.In(this=exp.column(from_col), field=exp.Placeholder(this="v1"))
    routed = route_table(ref, [as_list], [ref], ctx)
    option = routed.option
    if option is not None:
        option.values = tuple(listed if v == Arg(0) else v for v in option.values)
    backend = ctx.backend_dialect(keyspace.name)
    try:
        sql = tree.sql(dialect=sqlglot_dialect(backend))
    except Exception:  # sqlglot raises plain exceptions for what a dialect cannot write
        return None
    template = template_from_generated(sql, backend, expected=1, slot_for=lambda _i: listed)
    if template is None:
        return None
    params_out = dataclasses.replace(routed.params(), keyspace=KeyspaceRef(keyspace.name, keyspace.sharded),
                                     reason=f"lookup table of vindex {vindex.name}")
    in_slot = 0 if routed.opcode is Opcode.IN else -1
    return Route(params_out, template, table=table.name, in_slot=in_slot)
