"""Write primitives: ``Insert``, ``Update``, ``Delete``, ``DMLWithInput`` and the lookup-vindex writes they carry
(Vitess ``engine/insert.go``, ``insert_common.go``, ``update.go``, ``delete.go``, ``dml.go``,
``dml_with_input.go``). Data only; ``router.engine`` executes them. Every field below says what the engine does
with it.

Shared conventions
------------------
- Values are ``router.planner.values`` expressions. ``Arg(i)`` is the statement's placeholder ``:v{i+1}``;
  ``JoinVar(name)`` is a *named run-time value* (``:name``) that the engine computes and passes in ``env`` when
  it renders a template (``SqlTemplate.render(binds, dialect, env)``); ``ListVar("dml_vals")`` is the key list of
  a ``DMLWithInput``.
- Names of run-time values in an INSERT: ``__seq{r}`` is row ``r``'s auto-increment value (supplied or
  generated); ``row_var(column, r)`` (``_{column}_{r}``, Vitess's ``:_Id_0``) is row ``r``'s value of a vindex
  column, after generation and reverse mapping.
- Every write goes to the PRIMARY tablet type. Writes on more than one shard, or with lookup maintenance, run in
  the session's transaction (opened for the statement when the session has none); lookup rows are written
  before the owner row on insert and removed before it on delete, as in Vitess.
- ``Reference`` on an Update/Delete means **every shard** of the keyspace (a reference table is copied on each):
  unlike a read, the engine must not pick one shard (``resolve_route``'s ``any_one`` does not apply to writes).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from router.planner.plan import KeyspaceRef, Opcode, Primitive, RoutingParams
from router.planner.sqltext import SqlTemplate
from router.planner.values import ValueExpr
from sharding.vindexes.base import Lookup
from sharding.vschema_model import ColumnVindex

__all__ = [
    "DMLWithInput",
    "Delete",
    "Generate",
    "Insert",
    "InsertVindexValues",
    "LookupWrite",
    "TARGET_TABLET_TYPE",
    "Update",
    "VindexChange",
    "row_var",
    "seq_var",
]

TARGET_TABLET_TYPE = "PRIMARY"
DML_VALS = "dml_vals"  # the ListVar a DMLWithInput fills with the keys its input returned

_NON_WORD = re.compile(r"\W")


def row_var(column: str, row: int) -> str:
    """The run-time value name of ``column`` in row ``row`` of an INSERT (Vitess ``_Id_0``)."""
    return f"_{_NON_WORD.sub('_', column)}_{row}"


def seq_var(row: int) -> str:
    """The run-time value name of row ``row``'s auto-increment value (Vitess ``__seq0``)."""
    return f"__seq{row}"


def _values_text(values: tuple[ValueExpr, ...]) -> str:
    return ", ".join(v.describe() for v in values)


# --- parts ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Generate:
    """Fill an auto-increment column from a sequence (Vitess ``engine.Generate``).

    ``values`` (VALUES inserts): one expression per row, the value the client gave, or ``Const(None)`` when it gave
    none or ``DEFAULT``. The engine evaluates each; a row gets a new id when its value is NULL (and, in a MySQL
    session whose ``sql_mode`` lacks ``NO_AUTO_VALUE_ON_ZERO``, when it is 0). It reserves as many ids as there are
    such rows in one call to the sequence (``keyspace``/``table``: an unsharded keyspace's sequence table, the
    same reservation ``SequenceNext`` makes) and hands them out in row order; every row's value, given or
    generated, becomes ``env[seq_var(r)]``.

    ``offset`` (INSERT … SELECT): the column of each input row that holds the value (rows shorter than the column
    list are padded with NULLs first, which is how an absent auto-increment column is generated).

    LAST_INSERT_ID: when a statement generated ids, the session's last insert id becomes the **first** id
    generated, and that is the insert id returned to the client (MySQL OK packet), whatever the shards report
    (Vitess). Nothing generated: the id reported by the shard that received the statement's first row (0 when
    the shards report none).
    """

    keyspace: KeyspaceRef
    table: str
    column: str
    values: tuple[ValueExpr, ...] = ()
    offset: int = -1

    def describe(self) -> str:
        query = f"select next :n /* INT64 */ values from {self.table}"
        if self.offset >= 0:
            return f"{query}:Offset({self.offset})"
        return f"{query}:Values::({_values_text(self.values)})"


@dataclass(frozen=True, slots=True)
class LookupWrite:
    """An owned lookup vindex's table, maintained when its owner table is written (Vitess ``lookupInternal``).

    ``column_vindex`` is the owner's column vindex (its ``vindex`` is a ``Lookup``: ``from_value``/``to_value``
    transform values and keyspace ids into what the table stores). The lookup table is ``table`` in ``keyspace``
    (``keyspace`` empty: the table was named without one; resolve it like an unqualified table name), with the
    owner's columns stored in ``from_columns`` (same order as ``column_vindex.columns``) and the keyspace id in
    ``to_column``. The lookup table is itself a table of the VSchema: its writes are routed like any other (plan
    them as statements).

    Operations (all in the owner statement's transaction unless ``autocommit``):

    - create(rows of from values, ksid per row): ``insert into table(from…, to) values (…), …``. With
      ``ignore`` (the owner statement is INSERT IGNORE / ON DUPLICATE KEY UPDATE / ON CONFLICT), insert ignoring
      duplicates (MySQL ``insert ignore``, PostgreSQL ``on conflict do nothing``) and then verify; a row whose
      value is already taken by another keyspace id is dropped from the owner insert instead of failing it.
      ``ignore_nulls``: rows whose from values are all NULL are skipped (else they are stored).
    - delete(from values, ksid): ``delete from table where from1 = … and to = ksid``.
    - update(old from values, ksid, new from values): delete then create.
    - ``write_only`` (backfilling): still written, never read for routing.
    """

    column_vindex: ColumnVindex
    keyspace: str
    table: str
    from_columns: tuple[str, ...]
    to_column: str
    ignore: bool = False
    autocommit: bool = False
    multi_shard_autocommit: bool = False
    write_only: bool = False
    ignore_nulls: bool = False

    @staticmethod
    def of(cv: ColumnVindex, ignore: bool = False) -> LookupWrite:
        vindex = cv.vindex
        assert isinstance(vindex, Lookup)
        params = vindex.lookup
        keyspace, _, table = params.table.rpartition(".")
        return LookupWrite(cv, keyspace.strip("`"), table.strip("`"), tuple(params.from_columns), params.to,
                           ignore, params.autocommit, params.multi_shard_autocommit, params.write_only,
                           params.ignore_nulls)

    @property
    def name(self) -> str:
        return self.column_vindex.name

    def describe(self) -> str:
        table = f"{self.keyspace}.{self.table}" if self.keyspace else self.table
        return f"{self.name}:{table}({', '.join(self.from_columns)}; {self.to_column})"


@dataclass(frozen=True, slots=True)
class InsertVindexValues:
    """One column vindex of an INSERT and its values: ``values[c][r]`` is column ``c`` (of
    ``column_vindex.columns``) in row ``r`` (Vitess ``VindexValues[i]``). An expression may be ``JoinVar(seq_var(r))``
    (the column is the auto-increment one: evaluate after ``Generate``) or ``Const(None)`` (column not given).

    The engine evaluates them (after ``Generate``) and stores each in ``env[row_var(column, r)]``, the slot the
    row template holds for that column. Then, per vindex, in ``Insert.vindex_values`` order:

    - the primary vindex (first) maps each row to a keyspace id. A row it cannot map (NULL, a value the vindex
      rejects, a lookup that finds nothing) is an error naming the row's value; with ``Insert.ignore`` the row is
      dropped instead (Vitess).
    - ``owned`` lookup vindexes: create their lookup rows (``Insert.lookups``) for the mapped rows.
    - other vindexes: a NULL value of a ``Reversible`` vindex is filled from the row's keyspace id (and replaces
      ``env[row_var(…)]``); any other value must map to the row's keyspace id (``verify``), else the statement
      fails ("values … for column … do not map to keyspace ids"), or with ``ignore`` the row is dropped.
    """

    column_vindex: ColumnVindex
    values: tuple[tuple[ValueExpr, ...], ...]

    def describe(self) -> str:
        return ", ".join(_values_text(col) for col in self.values)


@dataclass(frozen=True, slots=True)
class VindexChange:
    """A vindex whose column(s) an UPDATE sets (Vitess ``ChangedVindexValues[name]``).

    Per row of the owned vindex query: when the value at ``changed_offset`` (``old = new``, or an AND of those) is
    1 the vindex is unchanged for that row: skip. Otherwise the new values are, per vindex column, ``new_values[c]``
    evaluated, or the old value at ``old_offsets[c]`` when ``new_values[c]`` is None (the column is not set).
    ``old_offsets[c]`` is -1 only for a column that is set on a vindex the table does not own (its old value is
    not needed, so not selected); for an owned lookup every old value is selected (the old lookup row is deleted).
    ``lookup`` set (an owned lookup vindex): update its lookup row (delete the old values' row, create the new).
    ``lookup`` None (a vindex the table does not own): the new values must map to the row's keyspace id
    (``verify``), else the statement fails.
    """

    column_vindex: ColumnVindex
    new_values: tuple[ValueExpr | None, ...]
    old_offsets: tuple[int, ...]
    changed_offset: int
    lookup: LookupWrite | None = None

    def describe(self) -> str:
        return f"{self.column_vindex.name}:{self.changed_offset}"


# --- Insert ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Insert(Primitive):
    """An INSERT (also INSERT IGNORE, ON DUPLICATE KEY UPDATE, ON CONFLICT, REPLACE) — Vitess ``Insert``.

    ``variant``:

    - ``Unsharded``: one shard of ``keyspace``. Without ``generate`` (``rows`` empty) send ``query`` as it is
      (``passthrough``: the client's own text will do). With ``generate``: fill ``env[seq_var(r)]`` first, then
      send ``prefix + ", ".join(rows) + suffix`` rendered with that env.

    Whenever ``rows`` is empty and the variant is not ``Select``, ``query`` is the whole statement to send to the
    selected shards (an unsharded keyspace's one shard, or every shard with ``all_shards``).
    - ``Sharded``: ``generate`` (if any), then ``vindex_values`` (see ``InsertVindexValues``) give every row a
      keyspace id, owned lookups are created, and rows are **batched per shard**: each shard receives one statement,
      ``prefix + ", ".join(its rows, in statement order) + suffix``, all shards in one transaction. With
      ``pinned`` every row goes to the shard of that keyspace id; with ``all_shards`` (a reference table) every
      shard receives every row (Vitess sends reference inserts to all shards) and ``vindex_values`` is empty.
    - ``Select``: run ``input`` first (its rows may come from any keyspace); each input row, padded with NULLs to
      ``len(columns)``, is one row to insert, its values written as literals of the backend dialect. Then as
      ``Sharded`` (sharded keyspace: ``vindex_offsets[i][c]`` is the row offset of column ``c`` of
      ``vindex_values[i].column_vindex``) or ``Unsharded``. ``generate.offset`` is the auto-increment column.

    ``ignore`` (INSERT IGNORE, ON DUPLICATE KEY UPDATE, ON CONFLICT): rows that cannot be routed or whose lookup
    values are taken are dropped rather than failing the statement, and lookups are created with ignore
    (Vitess ``InsertIgnore``). The ON DUPLICATE KEY UPDATE / ON CONFLICT DO UPDATE part (in ``suffix``) was checked:
    it sets no vindex column except to the value being inserted, so a row never moves to another shard.

    Results: affected rows are summed over shards. ``returning`` (``RETURNING …``): each shard returns the rows of
    its own batch; the engine concatenates them in shard order (not the statement's row order).
    """

    variant: str
    keyspace: KeyspaceRef
    table: str
    query: SqlTemplate
    prefix: str = ""
    rows: tuple[SqlTemplate, ...] = ()
    suffix: SqlTemplate = SqlTemplate(("",))  # noqa: RUF009 - immutable
    columns: tuple[str, ...] = ()
    vindex_values: tuple[InsertVindexValues, ...] = ()
    vindex_offsets: tuple[tuple[int, ...], ...] = ()
    lookups: tuple[LookupWrite, ...] = ()
    generate: Generate | None = None
    ignore: bool = False
    all_shards: bool = False
    pinned: bytes | None = None
    input: Primitive | None = None
    returning: bool = False
    passthrough: bool = False
    operator_type = "Insert"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input,) if self.input is not None else ()

    def needs_transaction(self) -> bool:
        """Several shards or lookup rows may be written (sequence ids are reserved outside it, as in Vitess)."""
        if self.variant == "Unsharded":
            return False
        return self.variant == "Select" or self.all_shards or len(self.rows) > 1 or bool(self.lookups)

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["Variant"] = self.variant
        out["Keyspace"] = self.keyspace.describe()
        out["TargetTabletType"] = TARGET_TABLET_TYPE
        if self.generate is not None:
            out["AutoIncrement"] = self.generate.describe()
        if self.ignore:
            out["InsertIgnore"] = True
        out["Query"] = self.query.describe()
        out["TableName"] = self.table
        if self.vindex_values and self.variant != "Select":
            out["VindexValues"] = {v.column_vindex.name: v.describe() for v in self.vindex_values}
        if self.vindex_offsets:
            out["VindexOffsetFromSelect"] = {
                v.column_vindex.name: "[" + " ".join(str(o) for o in offs) + "]"
                for v, offs in zip(self.vindex_values, self.vindex_offsets, strict=True)}
        if self.lookups:
            out["OwnedLookups"] = [lw.describe() for lw in self.lookups]
        if self.all_shards:
            out["TargetDestination"] = "AllShards()"
        if self.pinned is not None:
            out["TargetDestination"] = f"KeyspaceID({self.pinned.hex()})"


# --- Update / Delete ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _DML(Primitive):
    """What Update and Delete share (Vitess ``engine.DML``).

    ``routing`` selects the shards exactly as for a read Route (``resolve_route``; a lookup vindex answers
    ``NeedsLookup``: read its table first), except that ``Reference`` means every shard and ``None`` means no shard
    at all (0 rows affected, nothing sent, no owned-vindex query). ``query`` is sent to each shard; with
    ``in_slot >= 0`` each shard receives only its own values in that slot (``render(..., overrides={in_slot:
    values})``, Vitess ``::__vals``). Affected rows are summed.

    Owned lookups (``owned_vindex_query`` set): first run ``owned_vindex_query`` (a ``SELECT … FOR UPDATE``;
    rendered without overrides) on the same shards, in the same transaction; for each row, the keyspace id is
    ``ksid_vindex`` applied to its first ``len(ksid_vindex.columns)`` columns (``KsidLength``); then the lookup
    work of the primitive (below); then ``query``.

    ``returning``: each shard returns its rows; the engine concatenates them (shard order).
    ``passthrough``: the client's own text may be sent instead of ``query`` (same dialect, nothing rewritten).
    """

    routing: RoutingParams
    query: SqlTemplate
    table: str
    in_slot: int = -1
    owned_vindex_query: SqlTemplate | None = None
    ksid_vindex: ColumnVindex | None = None
    returning: bool = False
    passthrough: bool = False

    @property
    def ksid_length(self) -> int:
        return len(self.ksid_vindex.columns) if self.ksid_vindex is not None else 0

    def needs_transaction(self) -> bool:
        if self.routing.opcode is Opcode.None_:
            return False
        return self.owned_vindex_query is not None or not self.routing.opcode.single_shard

    def _describe_fields(self, out: dict[str, Any]) -> None:
        self.routing.describe(out)
        out["TargetTabletType"] = TARGET_TABLET_TYPE
        if self.owned_vindex_query is not None:
            out["OwnedVindexQuery"] = self.owned_vindex_query.describe()
            assert self.ksid_vindex is not None
            out["KsidVindex"] = self.ksid_vindex.name
            out["KsidLength"] = self.ksid_length
        out["Query"] = self.query.describe()
        out["Table"] = self.table


@dataclass(frozen=True, slots=True)
class Update(_DML):
    """An UPDATE (Vitess ``Update``). ``changes`` (only when SET touches vindex columns; then
    ``owned_vindex_query`` selects the keyspace-id columns, every owned vindex's columns, any other column a change
    needs, then one ``old = new`` check per change): for each row of the owned vindex query, each ``VindexChange``
    is applied (see there), then ``query`` runs. An UPDATE never moves a row to another shard: setting a primary
    vindex column was refused at plan time unless the new value provably equals the row's current one."""

    changes: tuple[VindexChange, ...] = ()
    operator_type = "Update"

    def _describe_fields(self, out: dict[str, Any]) -> None:
        _DML._describe_fields(self, out)
        if self.changes:
            out["ChangedVindexValues"] = sorted(c.describe() for c in self.changes)
            lookups = [c.lookup.describe() for c in self.changes if c.lookup is not None]
            if lookups:
                out["OwnedLookups"] = lookups


@dataclass(frozen=True, slots=True)
class Delete(_DML):
    """A DELETE (Vitess ``Delete``). ``lookups``: the table's owned lookup vindexes, in the order their columns
    follow the keyspace-id columns in ``owned_vindex_query``'s rows; for each row, delete each one's lookup row
    (from values, keyspace id), then run ``query``."""

    lookups: tuple[LookupWrite, ...] = ()
    operator_type = "Delete"

    def _describe_fields(self, out: dict[str, Any]) -> None:
        _DML._describe_fields(self, out)
        if self.lookups:
            out["OwnedLookups"] = [lw.describe() for lw in self.lookups]


# --- DMLWithInput ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DMLWithInput(Primitive):
    """A write that must first learn which rows it touches (Vitess ``DMLWithInput``): UPDATE/DELETE with LIMIT
    over several shards, and multi-table UPDATE/DELETE whose tables do not sit on the same shards.

    Run ``input`` (a read plan, e.g. ``Limit`` over a scatter ``Route``, or a join) to the end; it returns the key
    of each row to write. For each ``dmls[i]`` the distinct values of columns ``offsets[i]`` of those rows
    (one column: a tuple of values) become ``env["dml_vals"]``; then run ``dmls[i]`` (an Update or Delete whose
    query ends ``WHERE key IN (::dml_vals)`` and whose routing, usually ``IN`` on the key's vindex with values
    ``::dml_vals``, sends each shard only its own keys). No rows: nothing is written, 0 rows affected. Affected
    rows are the sum of the DMLs'. All in one transaction.
    """

    input: Primitive
    dmls: tuple[Primitive, ...]
    offsets: tuple[tuple[int, ...], ...]
    operator_type = "DMLWithInput"

    def inputs(self) -> tuple[Primitive, ...]:
        return (self.input, *self.dmls)

    def needs_transaction(self) -> bool:
        return True

    def _describe_fields(self, out: dict[str, Any]) -> None:
        out["TargetTabletType"] = TARGET_TABLET_TYPE
        out["Offset"] = [f"{i}:[{' '.join(str(o) for o in offs)}]" for i, offs in enumerate(self.offsets)]
