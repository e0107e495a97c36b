"""INSERT planning (also INSERT IGNORE, ON DUPLICATE KEY UPDATE, ON CONFLICT, REPLACE, INSERT … SELECT,
``DEFAULT VALUES``) → an ``Insert`` primitive (``router.planner.dml_plan``), as vtgate's ``insert.go`` plans it.

- Unsharded keyspace: the statement as written (passthrough), unless a sequence fills an auto-increment column.
- Sharded table: every row is routed by its primary vindex and rows for one shard are batched into one statement.
  Absent vindex columns are added (NULL, or the sequence's value); an absent primary-vindex column that no
  sequence fills is an error naming it (Vitess sends NULL and fails at run time; we fail before sending).
- Reference table: written at its ``source`` when it has one, else to every shard of its keyspace.
- INSERT … SELECT: the SELECT (planned by ``plan_select``) is the input, its rows are routed like VALUES rows.
- Upserts (ON DUPLICATE KEY UPDATE, ON CONFLICT … DO UPDATE) may set a vindex column only to the value being
  inserted (``VALUES(col)``, ``new.col``, ``excluded.col``) or to itself, so an existing row never moves to another
  shard; an owned lookup vindex column not even that (its lookup row would go stale).
"""
from __future__ import annotations

from sqlglot import exp

from router.planner.context import PlanContext
from router.planner.dml import (
    _resolve,
    _whole_unsharded,
    check_colocated,
    check_portable,
    generate,
    lookup_writes,
    resolve_write_target,
    split_template,
    strip_qualifiers,
)
from router.planner.dml_plan import Generate, Insert, InsertVindexValues, row_var, seq_var
from router.planner.parse import dialect as sqlglot_dialect
from router.planner.plan import KeyspaceRef, Opcode, Plan, RoutingParams, Send
from router.planner.routing import to_value
from router.planner.semantics import TableRef, column_name, ident
from router.planner.sqltext import SqlTemplate
from router.planner.values import Const, JoinVar, ValueExpr
from sharding.errors import MissingVindexColumnError, RoutingError, UnsupportedError
from sharding.vindexes.base import Lookup
from sharding.vschema_model import AutoIncrement, Table, split_qualified

__all__ = ["plan_insert"]

_ROWS = "__rows__"  # the marker where the rows go between prefix and suffix
_MARKER_TEXT = {"mysql": f":{_ROWS}", "postgres": f"%({_ROWS})s"}
_UNSUPPORTED_ARGS = {"overwrite": "OVERWRITE", "partition": "PARTITION", "by_name": "BY NAME",
                     "is_function": "INSERT INTO FUNCTION", "where": "WHERE", "using": "USING",
                     "settings": "SETTINGS", "source": "SOURCE", "exists": "IF NOT EXISTS", "stored": "STORED"}


def plan_insert(tree: exp.Insert, ctx: PlanContext) -> Plan:
    for arg, what in _UNSUPPORTED_ARGS.items():
        if tree.args.get(arg):
            raise UnsupportedError(f"INSERT … {what} is not supported")
    if tree.args.get("with_") is not None:
        plan = _whole_unsharded(tree, ctx, "insert")
        if plan is None:
            raise UnsupportedError("a WITH clause on an INSERT whose tables are not all in one unsharded keyspace "
                                   "is not supported")
        return plan
    return _Planner(tree, ctx).plan()


class _Planner:
    """One INSERT being planned."""

    def __init__(self, tree: exp.Insert, ctx: PlanContext) -> None:
        self.tree = tree
        self.ctx = ctx
        dialect = ctx.session.dialect
        schema = tree.this
        if isinstance(schema, exp.Schema):
            node = schema.this
            self.columns: list[str] | None = [_column(c, dialect) for c in schema.expressions]
        else:
            node = schema
            self.columns = None
        if not isinstance(node, exp.Table):
            raise UnsupportedError("INSERT into something that is not a table")
        self.node = node
        self.ref = resolve_write_target(node, ctx, alias_renamed=False)
        assert self.ref.keyspace is not None and self.ref.table is not None
        self.keyspace = self.ref.keyspace
        self.table: Table = self.ref.table
        self.backend = ctx.backend_dialect(self.keyspace.name)
        check_portable(tree, ctx, self.backend)
        self.conflict = tree.args.get("conflict")
        self.replace = tree.args.get("alternative") == "REPLACE"
        self.ignore = bool(tree.args.get("ignore")) or self.conflict is not None
        self.returning = tree.args.get("returning") is not None
        source = tree.expression
        self.select = source if isinstance(source, (exp.Select, exp.Union, exp.Intersect, exp.Except)) else None
        if source is not None and self.select is None and not isinstance(source, exp.Values):
            raise UnsupportedError(f"INSERT from {source.key.upper()} is not supported")
        from router.planner.select import all_tables

        inside = {id(t) for t in all_tables(self.select)} if self.select is not None else set()
        self.reads = [_resolve(t, ctx) for t in all_tables(tree) if t is not node and id(t) not in inside]

    # --- dispatch ---------------------------------------------------------------------------------------------
    def plan(self) -> Plan:
        ks, table = self.keyspace, self.table
        if self.ref.target is not None:
            return self._bypass()
        dummy = RoutingParams(Opcode.Scatter, KeyspaceRef(ks.name, ks.sharded))
        check_colocated(self.reads, self.ref, dummy, self.ctx, self.tree, [self.ref])
        sharded = ks.sharded and not table.is_reference
        if sharded:
            self._check_upsert()
            if self.replace and table.owned:
                raise UnsupportedError(f"REPLACE into {table.qualified_name} is not supported: it would delete rows "
                                       f"without removing their owned lookup vindex rows")
            if table.pinned is None and table.primary_vindex is None:
                raise RoutingError(f"table {table.qualified_name} has no primary vindex: cannot place its rows")
        if self.select is not None:
            return self._insert_select(sharded)
        if not ks.sharded and table.auto_increment is None:
            return self._whole(variant="Unsharded")
        if table.is_reference and table.auto_increment is None:
            return self._whole(variant="Sharded", all_shards=True)
        return self._insert_values(sharded)

    def _finish(self, root: Insert | Send, extra_tables: list[TableRef] = ()) -> Plan:  # type: ignore[assignment]
        refs = [self.ref, *self.reads, *extra_tables]
        tables = tuple(sorted({r.qualified_name for r in refs if r.kind == "vschema"}))
        return Plan(root, "insert", tables=tables, guards=tuple(self.ctx.guards), warnings=tuple(self.ctx.warnings),
                    passthrough=bool(getattr(root, "passthrough", False)))

    def _keyspace_ref(self) -> KeyspaceRef:
        return KeyspaceRef(self.keyspace.name, self.keyspace.sharded)

    def _bypass(self) -> Plan:
        """An INSERT into an explicit shard target (``ks:-80``, ``ks[-]``): sent there as written, no vindexes,
        sequences or lookups (Vitess's bypass)."""
        from router.planner.dml import template

        strip_qualifiers([self.ref], rename_alias=False)
        query = template(self.tree, self.backend)
        target = self.ref.target or ""
        return self._finish(Send(self._keyspace_ref(), query, target=target, all_shards=target in ("", "-")))

    def _whole(self, variant: str, all_shards: bool = False) -> Plan:
        """The statement as written: one unsharded shard, or every shard of a reference table's keyspace."""
        from router.planner.dml import template

        rewritten = strip_qualifiers([self.ref, *self.reads], rename_alias=False)
        values = self.tree.expression
        if self.backend == "postgres" and isinstance(values, exp.Values) and len(values.expressions) == 1 \
                and not values.expressions[0].expressions and not self.tree.this.expressions:
            self.tree.set("expression", None)  # MySQL's ``VALUES ()`` is PostgreSQL's ``DEFAULT VALUES``
            self.tree.set("default", True)
            rewritten = True
        query = template(self.tree, self.backend)
        passthrough = not rewritten and self.backend == self.ctx.session.dialect and not all_shards
        root = Insert(variant, self._keyspace_ref(), self.table.name, query,
                      ignore=self.ignore and self.keyspace.sharded, all_shards=all_shards, returning=self.returning,
                      passthrough=passthrough)
        return self._finish(root)

    # --- checks -----------------------------------------------------------------------------------------------
    def _check_upsert(self) -> None:
        """An upsert must not move an existing row: vindex columns may only take the inserted value (not for owned
        lookup vindexes, whose lookup row would go stale) or keep their own."""
        conflict = self.conflict
        if conflict is None:
            return
        action = conflict.args.get("action")
        if action is not None and "NOTHING" in action.name.upper():
            return
        dialect = self.ctx.session.dialect
        by_column = {c.lower(): cv for cv in self.table.column_vindexes for c in cv.columns}
        for eq in conflict.expressions or ():
            if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Column):
                continue
            col = column_name(eq.this, dialect).lower()
            cv = by_column.get(col)
            if cv is None:
                continue
            value = eq.expression
            if _is_own_column(value, col, dialect):
                continue
            owned_lookup = cv.owned and isinstance(cv.vindex, Lookup)
            if not owned_lookup and self._is_inserted_value(value, col, dialect):
                continue
            what = "ON DUPLICATE KEY UPDATE" if conflict.args.get("duplicate") else "ON CONFLICT … DO UPDATE"
            if owned_lookup:
                raise UnsupportedError(f"{what} cannot change column {col} of {self.table.qualified_name}: it feeds "
                                       f"the owned lookup vindex {cv.name}")
            raise UnsupportedError(f"{what} cannot change column {col} of {self.table.qualified_name} (vindex "
                                   f"{cv.name}) except to the inserted value: the row could move to another shard")

    def _is_inserted_value(self, value: exp.Expression, col: str, dialect: str) -> bool:
        """``VALUES(col)``, ``excluded.col``, or ``alias.col`` of a VALUES row alias."""
        if isinstance(value, exp.Anonymous) and value.name.upper() == "VALUES" and len(value.expressions) == 1:
            arg = value.expressions[0]
            name = ident(arg, dialect) if isinstance(arg, exp.Identifier) else \
                column_name(arg, dialect) if isinstance(arg, exp.Column) else ""
            return name.lower() == col
        if not isinstance(value, exp.Column) or not value.table:
            return False
        qualifier = ident(value.args["table"], dialect).lower()
        name = column_name(value, dialect).lower()
        if qualifier == "excluded" and self.backend == "postgres":
            return name == col
        values = self.tree.expression
        alias = values.args.get("alias") if isinstance(values, exp.Values) else None
        if alias is None or ident(alias.this, dialect).lower() != qualifier:
            return False
        aliases = [ident(c, dialect).lower() for c in alias.args.get("columns") or ()]
        if not aliases:
            return name == col
        columns = [c.lower() for c in (self.columns or self._implicit_columns())]
        return name in aliases and aliases.index(name) < len(columns) and columns[aliases.index(name)] == col

    def _implicit_columns(self) -> list[str]:
        if self.table.column_list_authoritative and self.table.columns:
            return [c.name for c in self.table.columns if not c.invisible]
        return []

    # --- VALUES -----------------------------------------------------------------------------------------------
    def _rows(self) -> list[list[exp.Expression]]:
        source = self.tree.expression
        if source is None:  # DEFAULT VALUES
            return [[]]
        assert isinstance(source, exp.Values)
        return [list(t.expressions) if isinstance(t, exp.Tuple) else [t] for t in source.expressions]

    def _insert_values(self, sharded: bool) -> Plan:
        table = self.table
        rows = self._rows()
        columns = self.columns
        if columns is None:
            if all(not r for r in rows):
                columns = []
            elif self._implicit_columns():
                columns = self._implicit_columns()
            else:
                raise UnsupportedError(f"INSERT into {table.qualified_name} needs a column list: the VSchema does "
                                       f"not list the table's columns authoritatively")
        for r, row in enumerate(rows):
            if len(row) != len(columns):
                raise UnsupportedError(f"column count does not match value count at row {r + 1}")
        cols = _Columns(columns, rows)
        generate_ = self._generate(cols) if table.auto_increment is not None else None
        vindex_values: list[InsertVindexValues] = []
        if sharded and table.pinned is None:
            vindex_values = self._vindex_values(cols)
        variant = "Sharded" if self.keyspace.sharded else "Unsharded"
        return self._build(variant, cols, generate_, tuple(vindex_values))

    def _generate(self, cols: _Columns) -> Generate:
        """Rows take their auto-increment value from ``:__seq{r}`` (given or generated)."""
        ai = self.table.auto_increment
        assert ai is not None
        i = cols.index_or_add(ai.column)
        values: list[ValueExpr] = []
        for r, row in enumerate(cols.cells):
            values.append(self._cell_value(row[i], ai.column, r, "auto_increment column"))
            row[i] = exp.Placeholder(this=seq_var(r))
        keyspace, table = self._sequence(ai)
        return Generate(KeyspaceRef(keyspace, False), table, ai.column, tuple(values))

    def _sequence(self, ai: AutoIncrement) -> tuple[str, str]:
        keyspace, table = split_qualified(ai.sequence)
        keyspace = ai.sequence_keyspace or keyspace
        if not keyspace:
            try:
                keyspace = self.ctx.vschema.find_table(table).keyspace
            except Exception:
                raise RoutingError(f"sequence {ai.sequence} of {self.table.qualified_name} not found") from None
        return keyspace, table

    def _cell_value(self, node: exp.Expression, column: str, row: int, what: str) -> ValueExpr:
        if _is_default(node):
            return Const(None)
        value = to_value(node, self.ctx)
        if value is None:
            raise UnsupportedError(f"the value of {what} {column} in row {row + 1} must be a literal or a bind "
                                   f"parameter, not {node.sql()}")
        return value

    def _vindex_values(self, cols: _Columns) -> list[InsertVindexValues]:
        table = self.table
        ai = table.auto_increment.column.lower() if table.auto_increment is not None else None
        seen: dict[str, tuple[ValueExpr, ...]] = {}
        out = []
        for k, cv in enumerate(table.column_vindexes):
            per_column = []
            for c in cv.columns:
                lc = c.lower()
                if lc not in seen:
                    if cols.index(lc) is None and k == 0 and lc != ai:
                        raise MissingVindexColumnError(
                            f"INSERT into {table.qualified_name} must give column {c}: it places the row on a shard "
                            f"(primary vindex {cv.name}) and no sequence fills it")
                    i = cols.index_or_add(c)
                    values: list[ValueExpr] = []
                    for r, row in enumerate(cols.cells):
                        if lc == ai:
                            values.append(JoinVar(seq_var(r)))
                        else:
                            values.append(self._cell_value(row[i], c, r, f"vindex column ({cv.name})"))
                        row[i] = exp.Placeholder(this=row_var(c, r))
                    seen[lc] = tuple(values)
                if k == 0 and not self.ignore:
                    for r, v in enumerate(seen[lc]):
                        if isinstance(v, Const) and v.value is None:
                            raise MissingVindexColumnError(
                                f"row {r + 1} of this INSERT into {table.qualified_name} has no value for column {c} "
                                f"(primary vindex {cv.name}): the row cannot be placed on a shard")
                per_column.append(seen[lc])
            out.append(InsertVindexValues(cv, tuple(per_column)))
        return out

    # --- INSERT … SELECT --------------------------------------------------------------------------------------
    def _insert_select(self, sharded: bool) -> Plan:
        from router.planner.select import plan_select

        table = self.table
        ks = self.keyspace
        assert self.select is not None
        input_plan, input_refs = plan_select(self.select, self.ctx)
        same_unsharded = not ks.sharded and all(r.kind != "vschema" or r.keyspace_name == ks.name
                                                for r in input_refs) and table.auto_increment is None
        if same_unsharded and getattr(input_plan, "routing", None) is not None and \
                input_plan.routing.opcode is Opcode.Unsharded:  # type: ignore[attr-defined]
            # Everything in one unsharded keyspace: the statement as written (re-plan on a fresh tree).
            return self._whole_after_select(input_refs)
        columns = self.columns if self.columns is not None else self._implicit_columns()
        if not columns:
            raise UnsupportedError(f"INSERT into {table.qualified_name} … SELECT needs a column list")
        cols = _Columns(columns, [])
        generate_ = None
        if table.auto_increment is not None:
            ai = table.auto_increment
            keyspace, seq = self._sequence(ai)
            generate_ = Generate(KeyspaceRef(keyspace, False), seq, ai.column, offset=cols.index_or_add(ai.column))
        vindex_values: list[InsertVindexValues] = []
        offsets: list[tuple[int, ...]] = []
        if sharded and table.pinned is None:
            ai_col = table.auto_increment.column.lower() if table.auto_increment is not None else None
            for k, cv in enumerate(table.column_vindexes):
                if k == 0 and any(cols.index(c.lower()) is None and c.lower() != ai_col for c in cv.columns):
                    missing = next(c for c in cv.columns if cols.index(c.lower()) is None)
                    raise MissingVindexColumnError(
                        f"INSERT into {table.qualified_name} … SELECT must give column {missing}: it places the row "
                        f"on a shard (primary vindex {cv.name}) and no sequence fills it")
                offsets.append(tuple(cols.index_or_add(c) for c in cv.columns))
                vindex_values.append(InsertVindexValues(cv, ()))
        select_text = self.select.sql(dialect=sqlglot_dialect(self.backend))
        prefix, suffix = self._prefix_suffix(cols.names)
        head = prefix[:prefix.rfind("VALUES")] if "VALUES" in prefix else prefix
        query = _concat([SqlTemplate((head + select_text,)), suffix])
        root = Insert("Select", self._keyspace_ref(), table.name, query, prefix=prefix,
                      suffix=suffix, columns=tuple(cols.names), vindex_values=tuple(vindex_values),
                      vindex_offsets=tuple(offsets), lookups=lookup_writes(table, self.ignore) if sharded else (),
                      generate=generate_, ignore=self.ignore, all_shards=ks.sharded and table.is_reference,
                      pinned=table.pinned, input=input_plan, returning=self.returning)
        return self._finish(root, input_refs)

    def _whole_after_select(self, input_refs: list[TableRef]) -> Plan:
        from router.planner.dml import template

        rewritten = strip_qualifiers([self.ref, *self.reads], rename_alias=False)
        rewritten = rewritten or any(r.qualified or (r.table is not None and r.table.name != r.name)
                                     for r in input_refs)
        query = template(self.tree, self.backend)
        passthrough = not rewritten and self.backend == self.ctx.session.dialect
        root = Insert("Unsharded", self._keyspace_ref(), self.table.name, query, returning=self.returning,
                      passthrough=passthrough)
        return self._finish(root, input_refs)

    # --- building ---------------------------------------------------------------------------------------------
    def _prefix_suffix(self, columns: list[str]) -> tuple[str, SqlTemplate]:
        """The statement's text before and after its rows, in the backend dialect."""
        tree = self.tree
        strip_qualifiers([self.ref, *self.reads], rename_alias=False)
        tree.set("this", exp.Schema(this=self.node, expressions=[exp.to_identifier(c) for c in columns]))
        tree.set("default", None)
        old = tree.expression
        values = exp.Values(expressions=[exp.Placeholder(this=_ROWS)])
        if isinstance(old, exp.Values) and old.args.get("alias") is not None:
            values.set("alias", old.args["alias"])
        tree.set("expression", values)
        sql = generate(tree, self.backend)
        marker = _MARKER_TEXT[self.backend]
        if sql.count(marker) != 1:
            raise UnsupportedError("a literal in this statement looks like a placeholder; send it as a bind parameter")
        prefix, _, rest = sql.partition(marker)
        placeholders = sum(1 for _ in tree.find_all(exp.Placeholder)) - 1
        split_template(prefix, self.backend, 0)
        return prefix, split_template(rest, self.backend, placeholders)

    def _build(self, variant: str, cols: _Columns, generate_: Generate | None,
               vindex_values: tuple[InsertVindexValues, ...]) -> Plan:
        table = self.table
        prefix, suffix = self._prefix_suffix(cols.names)
        glot = sqlglot_dialect(self.backend)
        rows = []
        for row in cols.cells:
            node = exp.Tuple(expressions=row)
            rows.append(split_template(node.sql(dialect=glot), self.backend,
                                       sum(1 for _ in node.find_all(exp.Placeholder))))
        query = _concat([SqlTemplate((prefix,)), *_join(rows), suffix])
        sharded = self.keyspace.sharded
        root = Insert(variant, self._keyspace_ref(), table.name, query, prefix=prefix, rows=tuple(rows),
                      suffix=suffix, columns=tuple(cols.names), vindex_values=vindex_values,
                      lookups=lookup_writes(table, self.ignore) if sharded and not table.is_reference else (),
                      generate=generate_, ignore=self.ignore,
                      all_shards=sharded and table.is_reference, pinned=table.pinned if sharded else None,
                      returning=self.returning)
        return self._finish(root)


class _Columns:
    """The INSERT's column list and its rows' cells, growing as absent columns are added (with NULL cells)."""

    def __init__(self, names: list[str], rows: list[list[exp.Expression]]) -> None:
        self.names = list(names)
        self.cells = [list(r) for r in rows]
        self._index = {n.lower(): i for i, n in enumerate(self.names)}

    def index(self, lower: str) -> int | None:
        return self._index.get(lower)

    def index_or_add(self, name: str) -> int:
        i = self._index.get(name.lower())
        if i is None:
            i = len(self.names)
            self.names.append(name)
            self._index[name.lower()] = i
            for row in self.cells:
                row.append(exp.Null())
        return i


def _column(node: exp.Expression, dialect: str) -> str:
    if isinstance(node, exp.Identifier):
        return ident(node, dialect)
    if isinstance(node, exp.Column):
        return column_name(node, dialect)
    raise UnsupportedError(f"INSERT column {node.sql()} is not a column name")


def _is_default(node: exp.Expression) -> bool:
    return (isinstance(node, exp.Var) and node.name.upper() == "DEFAULT") or \
        (isinstance(node, exp.Column) and not node.table and node.name.upper() == "DEFAULT"
         and not (isinstance(node.this, exp.Identifier) and node.this.quoted))


def _is_own_column(value: exp.Expression, col: str, dialect: str) -> bool:
    return isinstance(value, exp.Column) and not value.table and column_name(value, dialect).lower() == col


def _join(rows: list[SqlTemplate]) -> list[SqlTemplate]:
    out: list[SqlTemplate] = []
    for i, row in enumerate(rows):
        if i:
            out.append(SqlTemplate((", ",)))
        out.append(row)
    return out


def _concat(templates: list[SqlTemplate]) -> SqlTemplate:
    parts: list[str] = [""]
    slots: list[ValueExpr] = []
    for t in templates:
        parts[-1] += t.parts[0]
        for slot, part in zip(t.slots, t.parts[1:], strict=True):
            slots.append(slot)
            parts.append(part)
    return SqlTemplate(tuple(parts), tuple(slots))

