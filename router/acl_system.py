"""Table ACLs on information_schema / pg_catalog statements (the planner's DBA routes).

The planner routes a statement on system relations to one shard and does not list those relations in
``Plan.tables``; yet ``information_schema.columns`` or ``pg_class`` describe every table, those the user may not
read included. Filtering their rows after the fact cannot be made safe: a query may alias or transform the name
column (``reverse(table_name) AS x``) or leak through another column (``(SELECT count(*) … WHERE table_name =
'salary')``). So the decision is made on the statement, before it runs, and fails closed:

For a user the ACL restricts (``Acl.may_read_everything`` is false), every system relation the statement reads
must be

- harmless: it describes no table (``information_schema.schemata``, ``collations``, ``pg_namespace``,
  ``pg_settings``, ``pg_enum`` …, and ``dual``); or
- *pinned* to tables the user may read: the relation's name column(s) are compared with names in a top-level
  AND that every row of its own SELECT satisfies (the WHERE, an inner JOIN's ON, or the relation's own LEFT JOIN
  ON; not a RIGHT or FULL JOIN's, which keeps every row): ``table_name = 'orders'`` or ``table_name IN ('a', 'b')``
  (literals or bind values); for PostgreSQL relations keyed by a relation OID, ``attrelid = 'orders'::regclass``,
  or ``attrelid = c.oid`` where ``c`` is a ``pg_class`` pinned by ``relname`` in the same SELECT.

Every pinned name must be a plain identifier (``[A-Za-z0-9_$]+``, so no trailing space, accent or case trick of the
server's collation can widen it) that the user may read in the route's keyspace. Any other system relation
(``mysql.user``, ``performance_schema.*``, ``pg_stat_activity``, ``pg_proc`` …), an unpinned describing relation, a
``regclass`` cast of anything but such a name, or a function that reads relations named in text is refused with
``PermissionDeniedError`` saying what to change. The statement text is read with sqlglot in the keyspace's
backend dialect (both dialects when it is not known: the stricter reading wins); the reading of a plan is cached.

Known limits: a shard's catalog also lists the other databases on its server, so a pinned name that the user may
read in the route's keyspace also shows a same-named table of another keyspace hosted on that server; the names of
other objects (indexes, sequences, array types ``_t``) are judged as table names; a readable table's own
definition may name a table the user may not read (a foreign key, a view).
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router.acl import cte_in_scope
from router.planner.plan import Route
from router.planner.sqltext import SqlTemplate
from router.planner.values import evaluate
from sharding.errors import PermissionDeniedError

if TYPE_CHECKING:
    from sqlglot import exp

    from router.acl import Acl, Principal

__all__ = ["BY_NAME", "BY_OID", "HARMLESS", "check_system_read", "check_system_text"]

_IS, _PG = "information_schema", "pg_catalog"

HARMLESS = frozenset(
    {("", "dual")}
    | {(_IS, n) for n in (
        "schemata", "character_sets", "collations", "collation_character_set_applicability", "engines", "keywords",
        "plugins", "sql_features", "sql_implementation_info", "sql_parts", "sql_sizing",
        "information_schema_catalog_name", "enabled_roles", "applicable_roles", "administrable_role_authorizations",
    )}
    | {(_PG, n) for n in (
        "pg_namespace", "pg_database", "pg_settings", "pg_am", "pg_amop", "pg_amproc", "pg_collation", "pg_extension",
        "pg_available_extensions", "pg_available_extension_versions", "pg_language", "pg_roles", "pg_user",
        "pg_enum", "pg_range", "pg_cast", "pg_operator", "pg_opclass", "pg_opfamily", "pg_aggregate",
        "pg_conversion", "pg_tablespace", "pg_timezone_names", "pg_timezone_abbrevs", "pg_ts_config", "pg_ts_dict",
        "pg_ts_parser", "pg_ts_template", "pg_foreign_data_wrapper",
    )}
)  # fmt: skip

# Relations describing tables by name: the columns that must all be pinned.
BY_NAME: dict[tuple[str, str], tuple[str, ...]] = {
    **{(_IS, n): ("table_name",) for n in (
        "tables", "columns", "statistics", "key_column_usage", "table_constraints", "referential_constraints",
        "views", "partitions", "table_privileges", "column_privileges", "column_statistics",
        "constraint_column_usage", "constraint_table_usage", "view_routine_usage", "column_udt_usage",
        "column_domain_usage", "column_column_usage", "role_table_grants", "role_column_grants",
        "st_geometry_columns", "columns_extensions", "tables_extensions",
    )},
    (_IS, "triggers"): ("event_object_table",),
    (_IS, "triggered_update_columns"): ("event_object_table",),
    (_IS, "view_table_usage"): ("view_name", "table_name"),
    (_IS, "view_column_usage"): ("view_name", "table_name"),
    (_IS, "sequences"): ("sequence_name",),
    (_IS, "attributes"): ("udt_name",),
    (_PG, "pg_class"): ("relname",),
    (_PG, "pg_tables"): ("tablename",),
    (_PG, "pg_indexes"): ("tablename",),
    (_PG, "pg_views"): ("viewname",),
    (_PG, "pg_matviews"): ("matviewname",),
    (_PG, "pg_stats"): ("tablename",),
    (_PG, "pg_stats_ext"): ("tablename",),
    (_PG, "pg_sequences"): ("sequencename",),
    (_PG, "pg_policies"): ("tablename",),
    (_PG, "pg_rules"): ("tablename",),
    (_PG, "pg_type"): ("typname",),
    **{(_PG, n): ("relname",) for n in (
        "pg_stat_user_tables", "pg_stat_all_tables", "pg_stat_sys_tables", "pg_statio_user_tables",
        "pg_statio_all_tables", "pg_stat_xact_user_tables", "pg_stat_user_indexes", "pg_stat_all_indexes",
        "pg_statio_user_indexes", "pg_statio_all_indexes",
    )},
}  # fmt: skip

# PostgreSQL relations keyed by the OID of a pg_class row: the key column.
BY_OID: dict[tuple[str, str], str] = {
    (_PG, "pg_attribute"): "attrelid", (_PG, "pg_index"): "indrelid", (_PG, "pg_constraint"): "conrelid",
    (_PG, "pg_attrdef"): "adrelid", (_PG, "pg_trigger"): "tgrelid", (_PG, "pg_statistic"): "starelid",
    (_PG, "pg_statistic_ext"): "stxrelid", (_PG, "pg_inherits"): "inhrelid", (_PG, "pg_rewrite"): "ev_class",
    (_PG, "pg_policy"): "polrelid", (_PG, "pg_description"): "objoid", (_PG, "pg_partitioned_table"): "partrelid",
    (_PG, "pg_sequence"): "seqrelid",
}  # fmt: skip

_SYSTEM_SCHEMAS = frozenset({_IS, _PG, "mysql", "performance_schema", "sys"})
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_$]+")
_NONCE = secrets.token_hex(6)  # slot markers a statement's own text cannot forge
_MARKER = re.compile(rf"__sg_{_NONCE}_(\d+)__")


@dataclass(frozen=True, slots=True)
class _Reading:
    """What one dialect's reading of a statement needs: names to check (str literals or slot numbers), or why it
    is refused. ``parsed`` is False when the text is not valid in that dialect."""

    parsed: bool
    problem: str | None = None
    names: tuple[str | int, ...] = ()


def check_system_read(acl: Acl, p: Principal, route: Route, binds: Sequence[Any],
                      backend_dialect: Callable[[str], str] | None, *, relations: bool = True) -> None:
    """Raise ``PermissionDeniedError`` unless ``p`` may run the DBA route ``route`` (see the module docstring).
    ``relations=False`` checks only functions and regclass casts (for a user who may read every table)."""
    keyspace = route.routing.keyspace.name
    dialects = (backend_dialect(keyspace),) if backend_dialect is not None else ("mysql", "postgres")
    _check(acl, p, keyspace, route.query, binds, dialects, relations)


def check_system_text(acl: Acl, p: Principal, sql: str, keyspace: str, dialect: str) -> None:
    """As ``check_system_read``, for a statement a frontend sends without a plan (its values written in it)."""
    _check(acl, p, keyspace, SqlTemplate.text(sql), (), (dialect,), not acl.may_read_everything(p))


def _check(acl: Acl, p: Principal, keyspace: str, template: SqlTemplate, binds: Sequence[Any],
           dialects: Sequence[str], relations: bool) -> None:
    readings = [r for r in (_reading(template, d) for d in dialects) if r.parsed]
    denied = f"SELECT command denied to user '{p.user}'"
    if not readings:
        raise PermissionDeniedError(f"{denied}: the statement on system tables could not be checked")
    for reading in readings:
        if reading.problem is not None and (relations or not reading.problem.startswith("read ")):
            raise PermissionDeniedError(f"{denied}: {reading.problem}")
    for reading in readings:
        for ref in reading.names:
            for name in _names_of(ref, template, binds):
                if name is None or not _PLAIN_NAME.fullmatch(name):
                    raise PermissionDeniedError(f"{denied}: system tables may be read here only for tables named "
                                                "plainly (letters, digits, _ and $)")
                if not acl.allowed(p, keyspace, name, "read"):
                    raise PermissionDeniedError(f"{denied} for table '{keyspace}.{name}'")


def _names_of(ref: str | int, template: SqlTemplate, binds: Sequence[Any]) -> list[str | None]:
    if isinstance(ref, str):
        return [ref]
    try:
        value = evaluate(template.slots[ref], binds)
    except Exception:  # a value that cannot be had cannot be checked
        return [None]
    values = value if isinstance(value, tuple | list) else (value,)
    return [v if isinstance(v, str) else None for v in values] or [None]


# --- reading a statement ------------------------------------------------------------------------------------
_CACHE: dict[tuple[int, str], tuple[SqlTemplate, _Reading]] = {}


def _reading(template: SqlTemplate, dialect: str) -> _Reading:
    key = (id(template), dialect)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is template:
        return hit[1]
    reading = _read(template, dialect)
    if len(_CACHE) >= 512:
        _CACHE.clear()
    _CACHE[key] = (template, reading)
    return reading


def _read(template: SqlTemplate, dialect: str) -> _Reading:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    text = template.parts[0] + "".join(f"'__sg_{_NONCE}_{i}__'{part}" for i, part in enumerate(template.parts[1:]))
    try:
        trees = [t for t in sqlglot.parse(text, read=dialect) if t is not None]
    except SqlglotError:
        return _Reading(False)
    if len(trees) != 1:
        return _Reading(False)
    if not isinstance(trees[0], exp.Query):
        return _Reading(True, f"only queries on system tables can be checked, not {trees[0].key.upper()}")
    reader = _Reader(trees[0], dialect)
    try:
        reader.read()
    except _Refused as exc:
        return _Reading(True, str(exc))
    return _Reading(True, None, tuple(reader.names))


class _Refused(Exception):
    pass


def _value(node: exp.Expression) -> str | int | None:
    """A name given as a string literal (str) or a statement value (its slot number); None otherwise."""
    from sqlglot import exp

    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        m = _MARKER.fullmatch(node.this)
        return int(m.group(1)) if m else node.this
    return None


def _is_regclass(cast: exp.Cast) -> bool:
    return cast.to.sql(dialect="postgres").lower() == "regclass"


def _conjuncts(node: exp.Expression | None) -> list[exp.Expression]:
    from sqlglot import exp

    if node is None:
        return []
    if isinstance(node, exp.Where):
        node = node.this
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _own_on(join: exp.Join | None) -> list[exp.Expression]:
    return _conjuncts(join.args.get("on")) if join is not None and (join.side or "").upper() == "LEFT" else []


class _Reader:
    def __init__(self, tree: exp.Expr, dialect: str) -> None:
        self.tree = tree
        self.dialect = dialect
        self.names: list[str | int] = []

    def read(self) -> None:
        from sqlglot import exp

        from router.acl import OPAQUE_FUNCTIONS

        for func in self.tree.find_all(exp.Func):
            name = (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
            if name in OPAQUE_FUNCTIONS and not isinstance(func, exp.Cast):
                raise _Refused(f"{name}() reads relations named in text, which the router cannot check")
        for cast in self.tree.find_all(exp.Cast):
            if _is_regclass(cast):
                value = _value(cast.this)
                if value is None:
                    raise _Refused("regclass may only be given a table name here")
                self.names.append(value)
        seen: set[int] = set()
        for select in self.tree.find_all(exp.Select):
            self._select(select, seen)
        for table in self.tree.find_all(exp.Table):
            if id(table) not in seen and isinstance(table.this, exp.Identifier):
                raise _Refused(f"read {table.sql(dialect=self.dialect)}: not in a FROM clause the router can check")

    def _select(self, select: exp.Select, seen: set[int]) -> None:
        from sqlglot import exp

        from_ = select.args.get("from_")
        sources: list[tuple[exp.Expression, exp.Join | None]] = [(from_.this, None)] if from_ is not None else []
        sources += [(j.this, j) for j in select.args.get("joins") or ()]
        # Conditions every row of the result satisfies: the WHERE, and the ON of inner joins. A LEFT JOIN's ON
        # holds for the rows of its own table that appear; a RIGHT or FULL JOIN's for none of them.
        common = _conjuncts(select.args.get("where"))
        for _, join in sources:
            if join is not None and not join.side and (join.kind or "").upper() in ("", "INNER", "CROSS", "STRAIGHT"):
                common += _conjuncts(join.args.get("on"))
        # An unqualified column names the only source's, unless the SELECT is nested: then it may be an outer
        # query's column (a relation without it), so a nested SELECT must qualify its pins.
        single = len(sources) == 1 and select.find_ancestor(exp.Select) is None
        pinned: dict[str, tuple[str, str]] = {}  # alias -> relation, for relations pinned by name
        by_oid: list[tuple[exp.Table, tuple[str, str], exp.Join | None]] = []
        for source, join in sources:
            if not isinstance(source, exp.Table):
                continue
            seen.add(id(source))
            if not isinstance(source.this, exp.Identifier):
                continue  # a function in FROM: judged with the other functions
            relation = self._relation(source)
            if relation is None or relation in HARMLESS:
                continue
            label = f"{relation[0]}.{relation[1]}" if relation[0] else relation[1]
            conjuncts = common + _own_on(join)
            if relation in BY_NAME:
                for column in BY_NAME[relation]:
                    values = self._pin(conjuncts, source, column, single)
                    if values is None:
                        raise _Refused(f"read {label}: name the tables in its WHERE clause ({column} = 'table' or "
                                       f"{column} IN ('a', 'b')), only tables the user may read")
                    self.names.extend(values)
                pinned[source.alias_or_name.lower()] = relation
            elif relation in BY_OID:
                by_oid.append((source, relation, join))
            else:
                raise _Refused(f"read {label}: not allowed for users with table ACL restrictions")
        for source, relation, join in by_oid:
            conjuncts = common + _own_on(join)
            if not self._oid_pinned(conjuncts, source, BY_OID[relation], single, pinned):
                raise _Refused(f"read {relation[0]}.{relation[1]}: name its relation in the WHERE clause "
                               f"({BY_OID[relation]} = 'table'::regclass, or = c.oid of a pg_class c pinned by "
                               "relname)")

    def _relation(self, table: exp.Table) -> tuple[str, str] | None:
        db = table.db.lower()
        name = table.name.lower()
        if not db:
            if cte_in_scope(table, name):
                return None  # its body is read as its own SELECT
            if name == "dual":
                return ("", "dual")
            if name.startswith("pg_"):
                return (_PG, name)
            raise _Refused(f"read {table.name}: not a system relation")
        if db not in _SYSTEM_SCHEMAS:
            raise _Refused(f"read {table.db}.{table.name}: not a system relation")
        return (db, name)

    @staticmethod
    def _column_of(node: exp.Expression, table: exp.Table, column: str, single: bool) -> bool:
        from sqlglot import exp

        if not isinstance(node, exp.Column) or node.name.lower() != column:
            return False
        qualifier = node.table
        return qualifier.lower() == table.alias_or_name.lower() if qualifier else single

    def _pin(self, conjuncts: list[exp.Expression], table: exp.Table, column: str, single: bool
             ) -> list[str | int] | None:
        from sqlglot import exp

        for c in conjuncts:
            if isinstance(c, exp.EQ):
                for col, other in ((c.this, c.expression), (c.expression, c.this)):
                    if self._column_of(col, table, column, single) and (v := _value(other)) is not None:
                        return [v]
            if isinstance(c, exp.In) and self._column_of(c.this, table, column, single) and not c.args.get("query"):
                items = [_value(e) for e in c.expressions]
                if items and all(v is not None for v in items):
                    return [v for v in items if v is not None]
        return None

    def _oid_pinned(self, conjuncts: list[exp.Expression], table: exp.Table, column: str, single: bool,
                    pinned: dict[str, tuple[str, str]]) -> bool:
        from sqlglot import exp

        for c in conjuncts:
            if not isinstance(c, exp.EQ):
                continue
            for col, other in ((c.this, c.expression), (c.expression, c.this)):
                if not self._column_of(col, table, column, single):
                    continue
                while isinstance(other, exp.Cast) and not _is_regclass(other):
                    other = other.this  # 'x'::regclass::oid
                if isinstance(other, exp.Cast) and _value(other.this) is not None:
                    return True  # the name is checked with every regclass cast
                if (isinstance(other, exp.Column) and other.name.lower() == "oid" and other.table
                        and pinned.get(other.table.lower()) == (_PG, "pg_class")):
                    return True
        return False
