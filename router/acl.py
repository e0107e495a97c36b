"""Per-user table ACLs: read, write and admin rights per user and per group, on tables given by name or glob,
per keyspace. Pure decisions over the planner's table list (``Plan.tables``): no I/O, no clock.

``Acl.check(user, bound)`` raises ``PermissionDeniedError`` (MySQL 1142 / PostgreSQL 42501) naming the first
table the user may not use as the statement needs; ``Acl.row_filter(user, bound)`` gives the filter the engine
applies to ``SHOW TABLES``-like results. Both take the ``BoundPlan`` of ``Planner.plan``.

**What a statement needs** (Vitess ``tabletserver/planbuilder`` permissions, on ``Plan.tables``):

- ``select``, ``show`` of a table, ``other`` (VEXPLAIN PLAN): read on every table.
- ``insert``, ``update``, ``delete``: write on every table. Vitess asks write on the written tables and read on
  those only read (subqueries, ``INSERT … SELECT`` sources); the plan's table list does not tell them apart, so
  write is asked of all (stricter, never looser). Write does not imply read, as in Vitess.
- ``ddl``, ``vschema``: admin on every table (for VSchema DDL, the name of its target, as Vitess counts it). A user
  with the role ``admin`` passes every admin check.
- ``SELECT NEXT … FROM seq``: write on the sequence (it consumes ids).
- transaction control, SET, USE: nothing.
- any other kind: admin (fail closed for kinds added later).

**Matching.** A keyspace's ACL is an ordered list of entries; the first entry with a pattern matching the table
decides (so an exception goes before a catch-all ``*``); a table no entry matches is denied. A keyspace without
an ACL follows ``default`` (``allow`` unless configured: backward compatible). Names compare case-insensitively
(``str.lower``): MySQL with ``lower_case_table_names`` and PostgreSQL's folding make the case of a name no
security boundary. A glob's ``*`` matches any run of characters (dots too), ``?`` one character; nothing else is
special (``fnmatch.fnmatchcase`` on lower-cased text, without character classes). A Vitess ``table_groups`` name
is exact, or a prefix when it ends in ``%``; its entries may not overlap (Vitess ``ValidateProto``), so their
order does not matter. Principals are user names, group names (``acl.groups``) or ``*`` (everyone).

**Statements the table list cannot describe** are refused to users the ACL restricts (``opaque_reason``): MySQL
executable comments ``/*! … */`` (the server runs their text, the planner sees a comment); PostgreSQL functions
that read a table or run SQL given as text (``query_to_xml('select …')``, ``table_to_xml``, ``dblink``,
``ts_stat``, ``to_regclass``, ``::regclass`` …); a WITH query's name used outside its scope where it names a
real table, and data-modifying WITH queries (the planner leaves those tables out of its list); ``SET @x =
(SELECT …)``. A user-defined function can still read any table: the ACL does not look inside functions.

**information_schema / pg_catalog** (DBA routes: their relations are not in ``Plan.tables``) and ``SHOW TABLES``:
see ``router.acl_system``. For a user the ACL restricts, a system relation that describes tables may be read only
when the statement pins it to tables the user may read (``WHERE table_name = 'orders'``); ``SHOW TABLES`` rows are
filtered (``row_filter``).

Config: ``router.acl_config`` (``parse_acl``, ``check_acl``) reads the ``acl:`` section.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from router.planner import BoundPlan
from router.planner.plan import Opcode, Primitive, Route
from router.planner.session_plan import SequenceNext, SetVariables, Show, VExplain
from router.planner.special import RawExpr
from sharding.errors import PermissionDeniedError

__all__ = [
    "EVERYONE",
    "OPAQUE_FUNCTIONS",
    "RIGHTS",
    "Acl",
    "AclEntry",
    "KeyspaceAcl",
    "Principal",
    "RowFilter",
    "TablePattern",
    "cte_in_scope",
    "opaque_reason",
]

RIGHTS = ("read", "write", "admin")
EVERYONE = "*"

# Statement kind -> the right it needs on each of its tables (kinds without tables need nothing).
_RIGHT_BY_KIND = {
    "select": "read", "show": "read", "other": "read",
    "insert": "write", "update": "write", "delete": "write",
    "ddl": "admin", "vschema": "admin",
}  # fmt: skip
_NO_TABLE_KINDS = frozenset({"begin", "commit", "rollback", "savepoint", "set", "use"})
_VERB = {"select": "SELECT", "show": "SHOW", "other": "VEXPLAIN", "insert": "INSERT", "update": "UPDATE",
         "delete": "DELETE", "ddl": "DDL", "vschema": "ALTER VSCHEMA"}

# SHOW kinds that list a keyspace's tables (filtered by ``row_filter``, first column) and kinds that expose
# what a restricted user may not see at all (the whole VSchema, lookup tables in vindex params, other sessions'
# statements in the process list).
_LISTING_SHOWS = frozenset({"tables", "shardgate_vschema_tables"})
_WHOLE_SCHEMA_SHOWS = frozenset({"shardgate_vschema", "shardgate_vschema_vindexes", "processlist"})


# --- names and patterns -------------------------------------------------------------------------------------
def glob_regex(pattern: str) -> str:
    """The regular expression of a glob: ``*`` any run, ``?`` one character, everything else literal."""
    return "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern.lower())


@dataclass(frozen=True, slots=True)
class TablePattern:
    """A table name pattern, matched case-insensitively against the whole name."""

    text: str  # as configured, for messages
    regex: re.Pattern[str]

    @staticmethod
    def glob(text: str) -> TablePattern:
        return TablePattern(text, re.compile(glob_regex(text), re.DOTALL))

    @staticmethod
    def vitess(text: str) -> TablePattern:
        """A Vitess ``table_names_or_prefixes`` item: exact, or a prefix when it ends in ``%``."""
        if text.endswith("%"):
            return TablePattern(text, re.compile(re.escape(text[:-1].lower()) + ".*", re.DOTALL))
        return TablePattern(text, re.compile(re.escape(text.lower()), re.DOTALL))

    @property
    def matches_all(self) -> bool:
        return self.regex.pattern == ".*"

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(name.lower()) is not None


# --- the model ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AclEntry:
    """One entry of a keyspace's ACL: the tables it covers and who holds each right on them."""

    name: str  # the group name, or the entry's config path
    patterns: tuple[TablePattern, ...]
    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()
    admin: frozenset[str] = frozenset()

    def covers(self, lowered: str) -> bool:
        """Whether a pattern matches ``lowered`` (a table name already lower-cased)."""
        return any(p.regex.fullmatch(lowered) is not None for p in self.patterns)

    def covers_all(self) -> bool:
        return any(p.matches_all for p in self.patterns)

    def grants(self, right: str, names: frozenset[str]) -> bool:
        holders: frozenset[str] = getattr(self, right)
        return EVERYONE in holders or not holders.isdisjoint(names)


@dataclass(frozen=True, slots=True)
class KeyspaceAcl:
    keyspace: str
    entries: tuple[AclEntry, ...]

    def entry_for(self, table: str) -> AclEntry | None:
        """The first entry covering ``table`` (None: no entry does, so nobody holds a right on it)."""
        lowered = table.lower()
        for entry in self.entries:
            if entry.covers(lowered):
                return entry
        return None

    def grants_everything(self, right: str, names: frozenset[str]) -> bool:
        """Whether ``right`` is granted on every possible table name (conservative: False when unsure)."""
        for entry in self.entries:
            if not entry.grants(right, names):
                return False
            if entry.covers_all():
                return True
        return False  # names no entry covers are denied


class UserLike(Protocol):
    """``sharding.config_model.UserConfig`` or anything with a name and roles."""

    @property
    def name(self) -> str: ...

    @property
    def roles(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Principal:
    """A user as the ACL sees them: the names that may appear in an entry (the user's and their groups')."""

    user: str
    names: frozenset[str]
    is_admin: bool


@dataclass(frozen=True, slots=True)
class RowFilter:
    """Keeps the rows of a table listing whose ``column`` names a table the user may read in ``keyspace``."""

    keyspace: str
    column: int
    allowed: Callable[[str], bool]

    def keep(self, row: tuple[Any, ...] | list[Any]) -> bool:
        value = row[self.column] if self.column < len(row) else None
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("utf-8", "replace")
        return isinstance(value, str) and self.allowed(value)


@dataclass(frozen=True)
class Acl:
    """Table ACLs of every keyspace. Immutable: a reload builds a new one and swaps it in."""

    keyspaces: Mapping[str, KeyspaceAcl] = field(default_factory=dict)
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)  # group -> member users
    default: str = "allow"  # keyspaces without an ACL
    warnings: tuple[str, ...] = ()
    _member_of: dict[str, frozenset[str]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _memo: dict[tuple[Any, ...], bool] = field(default_factory=dict, init=False, repr=False, compare=False)
    _principals: dict[tuple[str, bool], Principal] = field(default_factory=dict, init=False, repr=False,
                                                           compare=False)

    def __post_init__(self) -> None:
        member_of: dict[str, set[str]] = {}
        for group, members in self.groups.items():
            for user in members:
                member_of.setdefault(user, set()).add(group)
        self._member_of.update({u: frozenset(g) for u, g in member_of.items()})

    # --- who ------------------------------------------------------------------------------------------------
    def principal(self, user: UserLike | Principal | str) -> Principal:
        if isinstance(user, Principal):
            return user
        name, is_admin = (user, False) if isinstance(user, str) else (user.name, "admin" in user.roles)
        p = self._principals.get((name, is_admin))
        if p is None:
            p = Principal(name, frozenset({name}) | self._member_of.get(name, frozenset()), is_admin)
            if len(self._principals) > 4096:
                self._principals.clear()
            self._principals[name, is_admin] = p
        return p

    # --- decisions on one table -----------------------------------------------------------------------------
    def allowed(self, user: UserLike | Principal | str, keyspace: str, table: str, right: str) -> bool:
        """Whether ``user`` holds ``right`` (read | write | admin) on ``keyspace.table``."""
        p = self.principal(user)
        key = (p.names, p.is_admin, keyspace, table, right)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if right == "admin" and p.is_admin:
            result = True
        else:
            ks = self.keyspaces.get(keyspace)
            if ks is None:
                result = self.default == "allow"
            else:
                entry = ks.entry_for(table)
                result = entry is not None and entry.grants(right, p.names)
        self._remember(key, result)
        return result

    def may_read_everything(self, user: UserLike | Principal | str, keyspace: str | None = None) -> bool:
        """Whether ``user`` may read every table of ``keyspace`` (of every keyspace when None)."""
        return self._everything(self.principal(user), keyspace, ("read",))

    def unrestricted(self, user: UserLike | Principal | str) -> bool:
        """Whether ``user`` may read and write every table of every keyspace (then nothing can be hidden)."""
        return self._everything(self.principal(user), None, ("read", "write"))

    def _everything(self, p: Principal, keyspace: str | None, rights: tuple[str, ...]) -> bool:
        key = (p.names, keyspace, rights)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if keyspace is None:
            result = self.default == "allow" and all(
                ks.grants_everything(r, p.names) for ks in self.keyspaces.values() for r in rights)
        else:
            ks = self.keyspaces.get(keyspace)
            result = (self.default == "allow") if ks is None else all(ks.grants_everything(r, p.names)
                                                                    for r in rights)
        self._remember(key, result)
        return result

    def _remember(self, key: tuple[Any, ...], result: bool) -> None:
        if len(self._memo) >= 16384:  # bounded: users x tables x rights seen lately
            self._memo.clear()
        self._memo[key] = result

    # --- decisions on one statement -------------------------------------------------------------------------
    def check(self, user: UserLike | Principal | str, bound: BoundPlan, *,
              backend_dialect: Callable[[str], str] | None = None) -> None:
        """Raise ``PermissionDeniedError`` unless ``user`` may run the planned statement.

        ``backend_dialect(keyspace)`` names the SQL dialect of a keyspace's servers (``mysql`` | ``postgres``);
        it is only needed to read information_schema / pg_catalog statements (without it both are tried and the
        stricter reading wins)."""
        p = self.principal(user)
        plan = bound.plan
        kind = plan.kind
        root = _statement_root(plan.root)
        if kind in _NO_TABLE_KINDS:
            # SET @x = (SELECT …) would read tables if it ever reached a shard (the session refuses it today).
            if (isinstance(root, SetVariables) and any(isinstance(getattr(item, "value", None), RawExpr)
                                                       for item in root.items) and not self.unrestricted(p)):
                raise PermissionDeniedError(f"SET command denied to user '{p.user}': an expression (which may "
                                            "read tables) cannot be checked; set a plain value")
            return
        dba = isinstance(root, Route) and root.routing.opcode is Opcode.DBA
        restricted = not self.unrestricted(p)
        if restricted:
            # On system tables, functions and regclass are judged on the parsed statement (acl_system).
            reason = opaque_reason(bound.fingerprint or bound.sql, functions=not dba)
            if reason is not None:
                raise PermissionDeniedError(f"{_VERB.get(kind, kind.upper())} command denied to user "
                                            f"'{p.user}': {reason}")
        right = "write" if isinstance(root, SequenceNext) else _RIGHT_BY_KIND.get(kind, "admin")
        verb = "SELECT NEXT" if isinstance(root, SequenceNext) else _VERB.get(kind, kind.upper())
        for qualified in plan.tables:
            keyspace, _, table = qualified.partition(".")
            if not self.allowed(p, keyspace, table, right):
                raise PermissionDeniedError(f"{verb} command denied to user '{p.user}' for table '{qualified}'")
        if dba and restricted:
            from router.acl_system import check_system_read

            assert isinstance(root, Route)
            check_system_read(self, p, root, bound.binds, backend_dialect,
                              relations=not self.may_read_everything(p))
        elif (isinstance(root, Show) and root.kind in _WHOLE_SCHEMA_SHOWS and root.table is None
              and not p.is_admin):
            scope = root.keyspace if root.kind == "shardgate_vschema_vindexes" else None
            if not self.may_read_everything(p, scope):
                what = "SHOW " + root.kind.replace("shardgate_", "").replace("_", " ").upper()
                raise PermissionDeniedError(f"{what} command denied to user '{p.user}': it shows tables or "
                                            "statements of tables the user may not read")

    def check_unplanned(self, user: UserLike | Principal | str, sql: str, *, keyspace: str,
                        dialect: str = "postgres") -> None:
        """Raise ``PermissionDeniedError`` unless ``user`` may run ``sql``, which a frontend sends to
        ``keyspace``'s shards without a plan (PostgreSQL catalog queries the planner cannot parse, VACUUM /
        ANALYZE). A user the ACL does not restrict may; anyone else only a query on system tables that
        ``router.acl_system`` can read and finds pinned to tables they may read (fail closed: a text sqlglot
        cannot parse, or a statement that is not a query, is refused)."""
        p = self.principal(user)
        if self.unrestricted(p):
            return
        from router.acl_system import check_system_text

        reason = opaque_reason(sql, functions=False)
        if reason is not None:
            raise PermissionDeniedError(f"command denied to user '{p.user}': {reason}")
        check_system_text(self, p, sql, keyspace, dialect)

    def row_filter(self, user: UserLike | Principal | str, bound: BoundPlan) -> RowFilter | None:
        """For ``SHOW TABLES`` and ``SHOW VSCHEMA TABLES``: the filter to apply to the rows (first column: a table
        name), or None when the user may read every table of that keyspace."""
        root = _statement_root(bound.plan.root)
        if not isinstance(root, Show) or root.kind not in _LISTING_SHOWS:
            return None
        p = self.principal(user)
        keyspace = root.keyspace or ""
        if self.may_read_everything(p, keyspace):
            return None
        return RowFilter(keyspace, 0, lambda name: self.allowed(p, keyspace, name, "read"))


def _statement_root(root: Primitive) -> Primitive:
    """The primitive that runs: VEXPLAIN's input (PLAN only describes it, but its tables are judged anyway)."""
    while isinstance(root, VExplain):
        root = root.input
    return root


# --- statements whose tables the plan cannot list -----------------------------------------------------------
# PostgreSQL functions that read a table, or run a query, given as text; or reveal whether a relation exists.
OPAQUE_FUNCTIONS = frozenset({
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema",
    "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema",
    "cursor_to_xml", "cursor_to_xmlschema",
    "schema_to_xml", "schema_to_xmlschema", "schema_to_xml_and_xmlschema",
    "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
    "dblink", "dblink_exec", "dblink_open", "dblink_fetch", "dblink_send_query", "dblink_get_result",
    "ts_stat", "to_regclass", "regclass",
    "pg_relation_size", "pg_total_relation_size", "pg_table_size", "pg_indexes_size", "pg_relation_filenode",
    "pg_relation_filepath", "pg_get_serial_sequence", "pg_get_viewdef",
    "has_table_privilege", "has_column_privilege", "has_any_column_privilege", "has_sequence_privilege",
    "nextval", "currval", "setval",
})  # fmt: skip
_CALL = re.compile(r'([A-Za-z_][\w$]*)"?\s*\(')  # a name followed by "(" (quoted or not)
_EXECUTABLE_COMMENT = re.compile(r"/\*M?!", re.IGNORECASE)
_REGCLASS = re.compile(r"(?<![\w$])regclass(?![\w$])", re.IGNORECASE)
_WITH = re.compile(r"(?<![\w$])with(?![\w$])", re.IGNORECASE)
_OPAQUE_CACHE: dict[tuple[str, bool], str | None] = {}


def opaque_reason(sql: str, *, functions: bool = True) -> str | None:
    """Why the tables a statement reads may not all be in its plan, or None. Scans the text (string literals
    included: a false alarm costs a refusal, never an escape); ``functions=False`` looks for executable comments
    only. Cached by text: pass the fingerprint (the normalized text), which repeats."""
    key = (sql, functions)
    try:
        return _OPAQUE_CACHE[key]
    except KeyError:
        pass
    reason = _opaque_reason(sql, functions)
    if len(_OPAQUE_CACHE) >= 4096:
        _OPAQUE_CACHE.clear()
    _OPAQUE_CACHE[key] = reason
    return reason


def _opaque_reason(sql: str, functions: bool) -> str | None:
    if "/*" in sql and _EXECUTABLE_COMMENT.search(sql):
        return "executable comments (/*! … */) may read tables the router cannot check"
    if _WITH.search(sql) and (reason := _with_problem(sql)) is not None:
        return reason
    if not functions:
        return None
    for m in _CALL.finditer(sql):
        name = m.group(1).lower()
        if name in OPAQUE_FUNCTIONS:
            return f"{name}() reads relations named in text, which the router cannot check"
    if "regclass" in sql.lower() and _REGCLASS.search(sql):
        return "regclass looks relations up by name, which the router cannot check"
    return None


def _with_problem(sql: str) -> str | None:
    """Why the WITH queries of a statement may hide tables from its plan, in either dialect's reading, or None
    (also when the text does not parse: the planner did parse it, in one of them). The planner takes an
    unqualified name of a WITH query for that query everywhere (leaving a same-named table outside its scope out
    of the table list), and does not list what a data-modifying WITH query (PostgreSQL) writes."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    for dialect in ("mysql", "postgres"):
        try:
            trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
        except SqlglotError:
            continue
        for tree in trees:
            ctes = list(tree.find_all(exp.CTE))
            for cte in ctes:
                if not isinstance(cte.this, exp.Query):
                    return (f"the WITH query {cte.alias_or_name} is a {cte.this.key.upper()}, whose tables the "
                            "router cannot check")
            names = {cte.alias_or_name.lower() for cte in ctes}
            for table in tree.find_all(exp.Table):
                name = table.name.lower()
                if name in names and not table.db and not cte_in_scope(table, name):
                    return (f"{table.name} names both a WITH query and, outside its scope, a table; the router "
                            "cannot tell which is read (rename the WITH query)")
    return None


def cte_in_scope(table: Any, name: str) -> bool:
    """Whether the unqualified table reference ``table`` (a sqlglot ``exp.Table``) named ``name`` (lower case)
    refers to a WITH query: one of a WITH enclosing it (its own query's, an outer query's or, inside a WITH
    query's body, a sibling's)."""
    from sqlglot import exp

    node = table.parent
    while node is not None:
        withs = [node] if isinstance(node, exp.With) else [node.args["with_"]] if node.args.get("with_") else []
        for with_ in withs:
            if any(cte.alias_or_name.lower() == name for cte in with_.expressions):
                return True
        node = node.parent
    return False
