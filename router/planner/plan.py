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
    """One ORDER BY key of a streaming merge (``Route``) or a memory sort (``Sort``).

    The engine compares two rows key by key, first difference wins, ``desc`` reversing it:

    - NULL: equal to NULL; against a value, NULL comes first when ``nulls_first`` (None means MySQL's rule, NULL is
      the smallest value: first ascending, last descending; PostgreSQL's defaults arrive here resolved to a bool).
    - ``weight_col >= 0`` (MySQL/MariaDB shards): when the key's value is text or binary (by the result column's
      type), compare the two rows' ``weight_col`` values instead, as bytes (``weight_string()`` orders exactly as
      the column's collation; NULL weights follow the NULL rule). Numbers and date/time values compare natively even
      then (a weight string of a number is not ordered numerically).
    - ``collation`` (``"C"``): text compares by code point (Python ``str`` order), bytes by bytes.
    - otherwise values compare natively: numbers exactly (int/Decimal; against a float, as floats), date/time values,
      booleans, UUIDs, bytes. Text reaching a key with neither a weight column nor a collation, or an ENUM/SET/JSON
      value, is an ``UnsupportedError`` naming the column: the planner could not prove how the shard ordered it
      (``router.planner.evalexpr.compare_for_order`` implements this).
    """

    col: int
    desc: bool = False
    weight_col: int = -1  # offset of a weight_string() column to compare for text, or -1
    collation: str | None = None  # "C": the shards sorted by code point (the planner made that explicit)
    nulls_first: bool | None = None  # None: NULL is the smallest value (MySQL)

    @property
    def nulls_come_first(self) -> bool:
        return (not self.desc) if self.nulls_first is None else self.nulls_first

    def describe(self) -> str:
        col = f"({self.col}|{self.weight_col})" if self.weight_col >= 0 else str(self.col)
        out = f"{col} {'DESC' if self.desc else 'ASC'}" + (f" COLLATE {self.collation}" if self.collation else "")
        if self.nulls_first is not None and self.nulls_first == self.desc:
            out += " NULLS FIRST" if self.nulls_first else " NULLS LAST"
        return out


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

    def holds_rows(self) -> bool:
        """Whether executing this node holds rows in router memory in numbers that grow with the data, not bounded
        by a configured batch size (the engine charges them to the statement's row cap)."""
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
    """Send a query to the shards its routing selects; merge-sort their streams when ``order_by`` is set.

    With ``order_by``, every shard's rows arrive sorted on those keys (the query says so) and the engine does a k-way
    merge with ``OrderByParam``'s comparison; without it, shard streams are concatenated in any order. Then helper
    columns are dropped: ``truncate_columns = n > 0`` keeps the first n columns of each row; ``helper_prefix = k``
    drops the first k (helpers placed before a ``*`` whose width the planner does not know). A ``:__upper_limit``
    slot in ``query`` (a ``JoinVar``) is provided by the ``Limit`` above (``Limit.upper_limit_var``).
    """

    routing: RoutingParams
    query: SqlTemplate
    table: str = ""
    order_by: tuple[OrderByParam, ...] = ()
    truncate_columns: int = 0  # drop trailing helper columns (weight strings, ORDER BY extras) before returning
    field_query: SqlTemplate | None = None
    in_slot: int = -1  # IN routes: the query slot holding the folded list; each shard gets only its own values
    passthrough: bool = False  # the client's own text may be sent unchanged (same dialect, no rewrite needed)
    helper_prefix: int = 0  # drop this many leading helper columns after the merge
    # No shard selected (a provably empty WHERE, a lookup that found nothing): still run on any one shard, whose
    # WHERE then selects nothing, because the statement answers a row anyway (an aggregate without GROUP BY:
    # ``COUNT(*)`` is 0). Vitess ``NoRoutesSpecialHandling``.
    no_routes_special_handling: bool = False
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
        if self.helper_prefix:
            out["HelperPrefix"] = self.helper_prefix
        if self.table:
            out["Table"] = self.table
        if self.no_routes_special_handling:
            out["NoRoutesSpecialHandling"] = True


@dataclass(frozen=True, slots=True)
class Limit(Primitive):
    """Skip ``offset`` rows of the input, then return at most ``count`` (None: no bound) and stop pulling.

    Both are evaluated with the execution's binds; a value that is not a non-negative integer is an
    ``InvalidValueError``. When ``upper_limit_var`` is set, the engine runs the input with that run-time value set
    to ``count + offset`` (the shards' LIMIT when count or offset is a bind parameter).
    """

    count: ValueExpr | None
    offset: ValueExpr | None
    input: Primitive
    upper_limit_var: str = ""
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
    """Sort in router memory (bounded by the row cap); Vitess ``MemorySort``. A stable sort with ``OrderByParam``'s
    comparison (rows whose keys compare equal keep their input order), then ``truncate_columns`` as ``Route``."""

    order_by: tuple[OrderByParam, ...]
    input: Primitive
    truncate_columns: int = 0
    operator_type = "Sort"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,)

    def holds_rows(self) -> bool:
        return True

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Variant"] = "Memory"
        out["OrderBy"] = ", ".join(o.describe() for o in self.order_by)
        if self.truncate_columns:
            out["ResultColumns"] = self.truncate_columns


class AggregateOp(StrEnum):
    """How an ``Aggregate`` combines one column over the rows of a group (Vitess ``engine/aggregations.go``).

    Merging partial results from shards: ``sum_count``/``sum_count_star``/``sum_count_distinct`` add counts (0
    for no rows); ``sum`` adds exactly (int/Decimal with unbounded precision, float when a partial is a float);
    ``min``/``max`` keep the smallest/largest (compared as an ``OrderByParam`` with the param's ``weight_col`` and
    ``collation``, carrying the weight along); ``bit_and``/``bit_or``/``bit_xor`` and ``bool_and``/``bool_or``
    apply the operator; ``group_concat`` joins the partials with ``separator`` (``','`` when None) and, for
    MySQL, cuts the result at the session's ``group_concat_max_len`` bytes (default 1024).
    Over raw rows (``plan_horizon_over``): ``count`` counts non-NULL values, ``count_star`` counts rows.
    Both: ``count_distinct``/``sum_distinct`` count/add the distinct non-NULL values of the column (equality as for
    GROUP BY: the weight column when set), ``any_value`` keeps the group's first non-NULL value (with its weight).
    Every op except the counts ignores NULL inputs and gives NULL when there is none.
    """

    SUM = "sum"
    COUNT = "sum_count"  # a count of counts
    COUNT_STAR = "sum_count_star"
    SUM_COUNT_DISTINCT = "sum_count_distinct"  # per-shard COUNT(DISTINCT) of shard-local values, added up
    COUNT_DISTINCT = "count_distinct"
    SUM_DISTINCT = "sum_distinct"
    MIN = "min"
    MAX = "max"
    ANY_VALUE = "any_value"  # a column carried through (a constant, or MySQL's non-grouped column)
    GROUP_CONCAT = "group_concat"
    BIT_AND = "bit_and"
    BIT_OR = "bit_or"
    BIT_XOR = "bit_xor"
    BOOL_AND = "bool_and"
    BOOL_OR = "bool_or"
    RAW_COUNT = "count"  # over raw rows: non-NULL values
    RAW_COUNT_STAR = "count_star"  # over raw rows: rows


@dataclass(frozen=True, slots=True)
class AggregateParam:
    """One aggregated column: ``op`` over input column ``col``, written to the same output column."""

    op: AggregateOp
    col: int
    alias: str
    weight_col: int = -1
    collation: str | None = None  # min/max over text: "C" (code point order)
    separator: ValueExpr | None = None  # group_concat

    def describe(self) -> str:
        col = f"{self.col}|{self.weight_col}" if self.weight_col >= 0 else str(self.col)
        return f"{self.op.value}({col}) AS {self.alias}"


@dataclass(frozen=True, slots=True)
class GroupByParam:
    col: int
    weight_col: int = -1
    collation: str | None = None

    def describe(self) -> str:
        return f"({self.col}|{self.weight_col})" if self.weight_col >= 0 else str(self.col)


@dataclass(frozen=True, slots=True)
class Aggregate(Primitive):
    """Aggregate the input's rows per group. Output rows have the input's width: each starts as the group's first
    row, each ``aggregates`` column is replaced by its op's result over the group (``AggregateOp``), group-by and
    unlisted columns keep the first row's values; then ``truncate_columns`` as ``Route``.

    ``Scalar``: no GROUP BY; exactly one output row, even for no input (counts 0, other aggregates and every other
    column NULL). ``Ordered``: the input arrives sorted on the group keys (in some order of the keys), so a group
    ends when a key changes (rows are emitted as groups close). ``Hash``: groups in any order (held in memory,
    bounded by the row cap). Keys are equal when their ``weight_col`` values are (when set) or their values are
    (numbers by value, text exactly).
    """

    variant: str  # "Scalar" | "Ordered" | "Hash"
    aggregates: tuple[AggregateParam, ...]
    group_by: tuple[GroupByParam, ...]
    input: Primitive
    truncate_columns: int = 0
    operator_type = "Aggregate"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,)

    def holds_rows(self) -> bool:
        return self.variant == "Hash" or any(
            a.op in (AggregateOp.COUNT_DISTINCT, AggregateOp.SUM_DISTINCT) for a in self.aggregates)

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
    """Drop rows equal to an earlier row on ``columns`` (streaming, first occurrence kept, so input order is kept;
    the set of seen keys is bounded by the row cap). A column compares by its ``weight_cols`` entry when that is
    >= 0 (MySQL text: weight strings as bytes), else by value (NULL equals NULL); then ``truncate_columns``."""

    columns: tuple[int, ...]
    input: Primitive
    truncate_columns: int = 0
    weight_cols: tuple[int, ...] = ()  # parallel to ``columns``; -1: compare the value
    operator_type = "Distinct"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,)

    def weight_of(self, i: int) -> int:
        return self.weight_cols[i] if i < len(self.weight_cols) else -1

    def holds_rows(self) -> bool:
        return True

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Collations"] = [f"({c}:{self.weight_of(i)})" if self.weight_of(i) >= 0 else str(c)
                             for i, c in enumerate(self.columns)]
        if self.truncate_columns:
            out["ResultColumns"] = self.truncate_columns


@dataclass(frozen=True, slots=True)
class Projection(Primitive):
    """Compute output columns from input columns: each output row is ``[e.evaluate(row, binds) for e in
    expressions]`` (``router.planner.evalexpr`` nodes compiled at plan time); ``columns`` are their names."""

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
    """Keep the rows for which ``predicate.evaluate(row, binds)`` is true (NULL and false drop the row: HAVING), then
    ``truncate_columns`` as ``Route``."""

    predicate: Any  # router.planner.evalexpr node
    input: Primitive
    truncate_columns: int = 0
    operator_type = "Filter"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Predicate"] = _expr_text(self.predicate)
        if self.truncate_columns:
            out["ResultColumns"] = self.truncate_columns


@dataclass(frozen=True, slots=True)
class Join(Primitive):
    """Join of two inputs the shards cannot do together (Vitess ``Join`` / ``HashJoin``).

    ``cols``: output columns, negative = left column (-1 is left offset 0), positive = right (1 is offset 0).

    - ``Join`` / ``LeftJoin`` (nested loop, Vitess ApplyJoin): for each left row, ``vars`` (name -> left column)
      bind the right side's ``JoinVar`` slots (its query text and its routing values) and the right side runs;
      each right row joins the left row; ``LeftJoin`` emits the left row with NULLs for the right columns when
      the right side returns nothing. Left rows may be batched (rows with equal values share one right run), but
      the output keeps the left side's order. Without ``vars`` the right side does not depend on the left row.
    - ``HashJoin`` / ``HashLeftJoin``: no variables; the right side runs once; rows match when every
      ``left_keys[i]`` column equals ``right_keys[i]`` under SQL comparison: NULL never matches, text compares
      under ``key_collations[i]`` (the VSchema's declared collation of the key columns; None: not declared, so
      text keys can only be matched exactly under a binary/C collation). Holds one side in router memory.
      ``predicate`` describes the condition.
    """

    variant: str  # "Join" | "LeftJoin" | "HashJoin" | "HashLeftJoin"
    left: Primitive
    right: Primitive
    cols: tuple[int, ...]
    vars: tuple[tuple[str, int], ...] = ()  # bind var name -> left column offset
    left_keys: tuple[int, ...] = ()  # HashJoin only
    right_keys: tuple[int, ...] = ()
    predicate: str = ""  # HashJoin: the join condition, for plan descriptions
    key_collations: tuple[str | None, ...] = ()  # HashJoin: per key, the declared collation of its columns
    operator_type = "Join"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.left, self.right)

    def holds_rows(self) -> bool:
        # Hash: one whole side. Nested loop: the right rows of a batch of left rows (as many as they match).
        return True

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Variant"] = self.variant
        if self.variant.startswith("Hash"):  # Vitess prints a hash join's columns as raw offsets
            out["JoinColumnIndexes"] = ",".join(str(c) for c in self.cols)
            out["Predicate"] = self.predicate
        else:
            out["JoinColumnIndexes"] = ",".join(f"L:{-c - 1}" if c < 0 else f"R:{c - 1}" for c in self.cols)
        if self.vars:
            out["JoinVars"] = {name: off for name, off in self.vars}


@dataclass(frozen=True, slots=True)
class SemiJoin(Primitive):
    """Keep a left row when the right side, run with ``vars`` bound from it, returns a row (``SemiJoin``:
    correlated EXISTS / IN); ``AntiJoin`` keeps it when the right side returns nothing (NOT EXISTS / NOT IN).
    The right side needs one row at most. ``cols``: the output, left offsets as in ``Join`` (-1 is left column
    0); empty means every left column."""

    left: Primitive
    right: Primitive
    vars: tuple[tuple[str, int], ...] = ()
    cols: tuple[int, ...] = ()
    variant: str = "SemiJoin"  # "SemiJoin" | "AntiJoin"
    operator_type = "SemiJoin"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.left, self.right)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        if self.variant != "SemiJoin":
            out["Variant"] = self.variant
        if self.cols:
            out["ProjectedIndexes"] = ",".join(str(c) for c in self.cols)
        if self.vars:
            out["JoinVars"] = {name: off for name, off in self.vars}


@dataclass(frozen=True, slots=True)
class UncorrelatedSubquery(Primitive):
    """Run ``subquery`` first (once), bind its result as run-time values, then run ``outer`` with them (Vitess
    pull-out). The values are visible to every primitive under ``outer``.

    - ``PulloutValue``: ``subquery_var`` = the first column of its only row (NULL without a row; more than one
      row is an error, MySQL 1242 / SQLSTATE 21000).
    - ``PulloutIn`` / ``PulloutNotIn``: ``subquery_var`` = the tuple of the first column of every row (held in
      router memory), ``(NULL,)`` when there is none; ``has_values_var`` = whether there was a row, as a boolean
      (it is written ``TRUE``/``FALSE``: the outer text is ``(:has AND x IN ::list)`` or
      ``(NOT :has OR NOT (x IN ::list))``, valid in both dialects only with a boolean).
    - ``PulloutExists``: ``has_values_var`` = whether the subquery returns a row (it may stop at the first).
    """

    variant: str  # "PulloutValue" | "PulloutIn" | "PulloutNotIn" | "PulloutExists"
    subquery_var: str
    has_values_var: str
    subquery: Primitive
    outer: Primitive
    operator_type = "UncorrelatedSubquery"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.subquery, self.outer)

    def holds_rows(self) -> bool:
        return self.variant in ("PulloutIn", "PulloutNotIn")

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Variant"] = self.variant
        out["PulloutVars"] = [v for v in (self.has_values_var, self.subquery_var) if v]


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


@dataclass(frozen=True, slots=True)
class SingleRow(Primitive):
    """One row without columns (Vitess ``SingleRow``): the input of a ``Projection`` that computes a SELECT of
    constants at the router (``router.planner.dual``).

    ``named_by_text``: the offsets of the projection's columns that MySQL names by their text in the statement
    (unaliased expressions: ``SELECT 42+2`` names its column ``42+2``). Statements that share the plan may write
    their literals differently (``042``, spaces), so the engine names these columns from the text of the statement
    it runs, and keeps the projection's names when that text does not read as a select list."""

    named_by_text: tuple[int, ...] = ()
    operator_type = "SingleRow"


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
