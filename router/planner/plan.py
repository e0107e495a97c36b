"""Plans: immutable trees of primitives that hold only data (Vitess ``engine`` primitives, minus the I/O).

The engine executes them; ``describe()`` prints them with Vitess's field names (``OperatorType``, ``Variant``,
``Keyspace``, ``Vindex``, ``Values``, ``Query``, ``Table``, ``OrderBy``, ``Inputs``) so that ``shardgate plan``
output can be compared with Vitess case by case.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from router.planner.sqltext import SqlTemplate
from router.planner.values import ValueExpr


class Opcode(StrEnum):
    """How a route finds its shards (Vitess ``engine/routing.go``)."""

    Unsharded = "Unsharded"  # the keyspace has one shard
    EqualUnique = "EqualUnique"  # a unique vindex and a single value: one shard
    Equal = "Equal"  # a non-unique vindex and a single value: the shards it maps to
    IN = "IN"  # a vindex and a list of values: each shard gets only its own values
    MultiEqual = "MultiEqual"  # a vindex and a list of values, the query sent unchanged to the shards they map to
    Between = "Between"  # a range-mapping vindex (numeric, binary) and a range
    SubShard = "SubShard"  # a multi-column vindex and a prefix of its columns: a key range
    Scatter = "Scatter"  # every shard
    Next = "Next"  # a sequence: reserve ids
    DBA = "DBA"  # information_schema / pg_catalog / SHOW, answered by one shard
    Reference = "Reference"  # a reference table: any one shard
    None_ = "None"  # provably empty: no shard at all
    ByDestination = "ByDestination"  # explicit targets (``USE `ks:-80```, `` `ks[-]`.t ``)

    @property
    def single_shard(self) -> bool:
        return self in (Opcode.Unsharded, Opcode.EqualUnique, Opcode.Next, Opcode.DBA, Opcode.Reference)


@dataclass(frozen=True, slots=True)
class KeyspaceRef:
    name: str
    sharded: bool

    def describe(self) -> dict[str, Any]:
        return {"Name": self.name, "Sharded": self.sharded}


@dataclass(frozen=True, slots=True)
class RoutingParams:
    """Where a route goes: an opcode plus, for vindex opcodes, the vindex and its value expressions."""

    opcode: Opcode
    keyspace: KeyspaceRef
    vindex: str | None = None  # the vindex's name in the VSchema
    values: tuple[ValueExpr, ...] = ()
    target: str | None = None  # ByDestination: a shard name or key range in Vitess notation
    reason: str = ""  # why this route was chosen (PgDog's ShardSource): feeds plan output and logs

    def describe(self, out: dict[str, Any]) -> None:
        out["Variant"] = self.opcode.value
        out["Keyspace"] = self.keyspace.describe()
        if self.vindex is not None:
            out["Vindex"] = self.vindex
        if self.values:
            out["Values"] = [v.describe() for v in self.values]
        if self.target is not None:
            out["TargetDestination"] = self.target


@dataclass(frozen=True, slots=True)
class OrderByParam:
    """One ORDER BY key of a streaming merge: column offset, direction, and the offset of its weight string."""

    col: int
    desc: bool = False
    weight_col: int = -1  # offset of a weight_string()/collation-key column to compare instead, or -1
    collation: str | None = None

    def describe(self) -> str:
        col = f"({self.col}|{self.weight_col})" if self.weight_col >= 0 else str(self.col)
        return f"{col} {'DESC' if self.desc else 'ASC'}" + (f" COLLATE {self.collation}" if self.collation else "")


def _expr_text(expr: Any) -> str:
    describe = getattr(expr, "describe", None)
    return describe() if callable(describe) else repr(expr)


class Primitive:
    """Base of every plan node. Subclasses are frozen dataclasses."""

    operator_type: str = ""

    def inputs(self) -> tuple[Primitive, ...]:
        return ()

    def needs_transaction(self) -> bool:
        return False

    def _describe_fields(self, out: dict[str, Any]) -> None:
        """Subclasses add their own fields."""

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"OperatorType": self.operator_type}
        self._describe_fields(out)
        kids = self.inputs()
        if kids:
            out["Inputs"] = [kid.describe() for kid in kids]
        return out


@dataclass(frozen=True, slots=True)
class Route(Primitive):
    """Send a query to the shards its routing selects; merge-sort their streams when ``order_by`` is set."""

    routing: RoutingParams
    query: SqlTemplate
    table: str = ""
    order_by: tuple[OrderByParam, ...] = ()
    truncate_columns: int = 0  # drop trailing helper columns (weight strings, ORDER BY extras) before returning
    field_query: SqlTemplate | None = None
    in_slot: int = -1  # IN routes: the query slot holding the folded list; each shard gets only its own values
    passthrough: bool = False  # the client's own text may be sent unchanged (same dialect, no rewrite needed)
    operator_type = "Route"

    def _describe_fields(self, out: dict[str, Any]) -> None:
        self.routing.describe(out)
        out["Query"] = self.query.describe()
        if self.field_query is not None:
            out["FieldQuery"] = self.field_query.describe()
        if self.order_by:
            out["OrderBy"] = ", ".join(o.describe() for o in self.order_by)
        if self.truncate_columns:
            out["ResultColumns"] = self.truncate_columns
        if self.table:
            out["Table"] = self.table


@dataclass(frozen=True, slots=True)
class Limit(Primitive):
    count: ValueExpr | None
    offset: ValueExpr | None
    input: Primitive
    operator_type = "Limit"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        if self.count is not None:
            out["Count"] = self.count.describe()
        if self.offset is not None:
            out["Offset"] = self.offset.describe()


@dataclass(frozen=True, slots=True)
class Sort(Primitive):
    """Sort in router memory (bounded by the row cap); Vitess ``MemorySort``."""

    order_by: tuple[OrderByParam, ...]
    input: Primitive
    truncate_columns: int = 0
    operator_type = "Sort"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Variant"] = "Memory"
        out["OrderBy"] = ", ".join(o.describe() for o in self.order_by)
        if self.truncate_columns:
            out["ResultColumns"] = self.truncate_columns


class AggregateOp(StrEnum):
    """How partial results from shards combine at the router."""

    SUM = "sum"
    COUNT = "sum_count"  # a count of counts
    COUNT_STAR = "sum_count_star"
    COUNT_DISTINCT = "count_distinct"
    SUM_DISTINCT = "sum_distinct"
    MIN = "min"
    MAX = "max"
    ANY_VALUE = "any_value"  # a grouping column carried through
    GROUP_CONCAT = "group_concat"


@dataclass(frozen=True, slots=True)
class AggregateParam:
    op: AggregateOp
    col: int
    alias: str
    weight_col: int = -1

    def describe(self) -> str:
        return f"{self.op.value}({self.col}) AS {self.alias}"


@dataclass(frozen=True, slots=True)
class GroupByParam:
    col: int
    weight_col: int = -1
    collation: str | None = None

    def describe(self) -> str:
        return f"({self.col}|{self.weight_col})" if self.weight_col >= 0 else str(self.col)


@dataclass(frozen=True, slots=True)
class Aggregate(Primitive):
    """Merge partial aggregates. ``Scalar`` has no GROUP BY; ``Ordered`` groups a stream sorted on the keys."""

    variant: str  # "Scalar" | "Ordered" | "Hash"
    aggregates: tuple[AggregateParam, ...]
    group_by: tuple[GroupByParam, ...]
    input: Primitive
    truncate_columns: int = 0
    operator_type = "Aggregate"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Variant"] = self.variant
        if self.aggregates:
            out["Aggregates"] = ", ".join(a.describe() for a in self.aggregates)
        if self.group_by:
            out["GroupBy"] = ", ".join(g.describe() for g in self.group_by)
        if self.truncate_columns:
            out["ResultColumns"] = self.truncate_columns


@dataclass(frozen=True, slots=True)
class Distinct(Primitive):
    columns: tuple[int, ...]
    input: Primitive
    truncate_columns: int = 0
    operator_type = "Distinct"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Collations"] = [str(c) for c in self.columns]
        if self.truncate_columns:
            out["ResultColumns"] = self.truncate_columns


@dataclass(frozen=True, slots=True)
class Projection(Primitive):
    """Compute output columns from input columns (expressions compiled at plan time)."""

    expressions: tuple[Any, ...]  # router.planner.evalexpr nodes
    columns: tuple[str, ...]
    input: Primitive
    operator_type = "Projection"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Expressions"] = [f"{_expr_text(e)} as {c}" for e, c in zip(self.expressions, self.columns, strict=True)]


@dataclass(frozen=True, slots=True)
class Filter(Primitive):
    predicate: Any  # router.planner.evalexpr node
    input: Primitive
    truncate_columns: int = 0
    operator_type = "Filter"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Predicate"] = _expr_text(self.predicate)


@dataclass(frozen=True, slots=True)
class Join(Primitive):
    """Nested-loop join: for each batch of left rows, bind ``vars`` into the right query.

    ``cols``: output columns, negative = left column (-1 is left offset 0), positive = right (1 is offset 0).
    """

    variant: str  # "Join" | "LeftJoin" | "HashJoin"
    left: Primitive
    right: Primitive
    cols: tuple[int, ...]
    vars: tuple[tuple[str, int], ...] = ()  # bind var name -> left column offset
    left_keys: tuple[int, ...] = ()  # HashJoin only
    right_keys: tuple[int, ...] = ()
    operator_type = "Join"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.left, self.right)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Variant"] = self.variant
        out["JoinColumnIndexes"] = ",".join(f"L:{-c - 1}" if c < 0 else f"R:{c - 1}" for c in self.cols)
        if self.vars:
            out["JoinVars"] = {name: off for name, off in self.vars}


@dataclass(frozen=True, slots=True)
class SemiJoin(Primitive):
    left: Primitive
    right: Primitive
    vars: tuple[tuple[str, int], ...] = ()
    operator_type = "SemiJoin"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class UncorrelatedSubquery(Primitive):
    """Run ``subquery`` first; its result becomes a value (``PulloutValue``) or a list (``PulloutIn``)."""

    variant: str  # "PulloutValue" | "PulloutIn" | "PulloutNotIn" | "PulloutExists"
    subquery_var: str
    has_values_var: str
    subquery: Primitive
    outer: Primitive
    operator_type = "UncorrelatedSubquery"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.subquery, self.outer)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Variant"] = self.variant
        out["PulloutVars"] = [self.has_values_var, self.subquery_var]


@dataclass(frozen=True, slots=True)
class VindexLookup(Primitive):
    """Read a lookup vindex's table first, then route by the keyspace ids it returns."""

    routing: RoutingParams  # opcode of the route that follows (Equal, IN, …) with the lookup vindex
    lookup: Primitive  # the query against the lookup table
    send: Primitive  # the route, whose shards come from the lookup
    operator_type = "VindexLookup"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.lookup, self.send)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        self.routing.describe(out)


@dataclass(frozen=True, slots=True)
class Concatenate(Primitive):
    """UNION ALL of the inputs' streams (UNION adds a Distinct on top)."""

    sources: tuple[Primitive, ...]
    operator_type = "Concatenate"

    def inputs(self) -> tuple[Primitive, ...]:
        return self.sources


@dataclass(frozen=True, slots=True)
class Send(Primitive):
    """Send a statement unchanged to a set of shards (DDL fan-out); failures name the shards."""

    keyspace: KeyspaceRef
    query: SqlTemplate
    target: str | None = None  # None: every shard of the keyspace
    all_shards: bool = True
    operator_type = "Send"

    def needs_transaction(self) -> bool:
        return False

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Keyspace"] = self.keyspace.describe()
        out["TargetDestination"] = self.target or "AllShards()"
        out["Query"] = self.query.describe()


@dataclass(frozen=True, slots=True)
class RowsResult(Primitive):
    """Rows the router answers itself (SHOW SHARDGATE, @@variables, VEXPLAIN)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    operator_type = "Rows"

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Columns"] = list(self.columns)
        out["RowCount"] = len(self.rows)


@dataclass(frozen=True)
class Plan:
    """A planned statement: its root primitive plus what ACLs, rules, logs and the cache need to know."""

    root: Primitive
    kind: str  # select, insert, update, delete, ddl, set, begin, commit, rollback, use, show, vschema, other
    tables: tuple[str, ...] = ()  # "keyspace.table" of every table the statement touches
    guards: tuple[Any, ...] = ()  # literal-derived decisions re-checked at bind time (see router.planner.guards)
    passthrough: bool = False  # the shard may receive the client's original text
    warnings: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """Vitess's plan JSON: ``{"QueryType": …, "Original": …, "Instructions": …, "TablesUsed": …}``."""
        return {
            "QueryType": self.kind.upper(),
            "Instructions": self.root.describe(),
            "TablesUsed": list(self.tables),
        }
