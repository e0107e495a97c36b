"""Table ACLs (router.acl, router.acl_system): config, matching, and the issue's matrix of users x tables x
operations driven through the real planner, so the table list judged is the one the router uses.

The matrix's oracle is written out by hand (``READ``/``WRITE``/``ADMIN``: who may do what on each concrete table,
and the tables each statement really touches, ``Case.touches``), independent of router.acl. A case passes when the
ACL's decision equals the oracle's for every user: no escape (allowed where the oracle denies) and no surprise
denial. Each case also checks that the planner's table list covers what the statement really touches.
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.acl import Acl, AclEntry, KeyspaceAcl, TablePattern, opaque_reason
from router.acl_config import check_acl, parse_acl
from router.planner import BoundPlan, Planner, SessionView
from router.planner.plan import Plan
from sharding.config_model import UserConfig
from sharding.errors import ConfigError, PermissionDeniedError, ShardgateError, UnsupportedError
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema
from sharding.yamldoc import DocChecker

# --- the cluster ------------------------------------------------------------------------------------------------
VSCHEMA = parse_vschema({
    "keyspaces": {
        "customer": {
            "sharded": True,
            "vindexes": {"hash": {"type": "hash"}},
            "tables": {
                "customer": {"column_vindexes": [{"column": "id", "name": "hash"}]},
                "orders": {"column_vindexes": [{"column": "customer_id", "name": "hash"}]},
                "order_lines": {"column_vindexes": [{"column": "customer_id", "name": "hash"}]},
                "salary": {"column_vindexes": [{"column": "id", "name": "hash"}]},
                "audit_log": {"column_vindexes": [{"column": "id", "name": "hash"}]},
            },
        },
        "main": {"tables": {"product": {}, "seq": {"type": "sequence"}, "Secret": {}}},
        "open": {"tables": {"notes": {}}},
    },
    "keyspace_routing_rules": {"rules": [{"from_keyspace": "old", "to_keyspace": "customer"}]},
})
SNAPSHOT = ClusterSnapshot.build(1, VSCHEMA, {"customer": ["-80", "80-"], "main": ["0"], "open": ["0"]})
PLANNER = Planner()

ACL_DOC: dict[str, Any] = {
    "groups": {"analysts": ["alice"], "ops": ["olivia"]},
    "keyspaces": {
        "customer": [
            {"name": "hr-only", "tables": ["salary"], "read": ["hr"], "write": ["hr"]},
            {"name": "orders", "tables": ["orders", "order_*"], "read": ["app", "analysts"], "write": ["app"],
             "admin": ["ops"]},
            {"name": "rest", "tables": ["*"], "read": ["app", "analysts", "hr"], "write": ["app"]},
        ],
        # Vitess tableacl JSON, inline.
        "main": {"table_groups": [
            {"name": "catalog", "table_names_or_prefixes": ["product", "product_%", "seq"],
             "readers": ["app", "analysts"], "writers": ["app"]},
            {"name": "secret", "table_names_or_prefixes": ["secret"], "readers": ["hr"]},
        ]},
    },
}
USERS = ["app", "alice", "hr", "olivia", "root", "nobody"]
ACL = parse_acl(ACL_DOC, users=USERS, keyspaces=["customer", "main", "open"])
ROOT = UserConfig("root", frozenset({"admin"}), {}, {})

# --- the oracle -------------------------------------------------------------------------------------------------
_REST_READ = {"app", "alice", "hr"}
READ: dict[str, set[str]] = {
    "customer.salary": {"hr"}, "customer.orders": {"app", "alice"}, "customer.order_lines": {"app", "alice"},
    "customer.customer": _REST_READ, "customer.audit_log": _REST_READ, "customer.new_table": _REST_READ,
    "main.product": {"app", "alice"}, "main.seq": {"app", "alice"}, "main.secret": {"hr"},
}
WRITE: dict[str, set[str]] = {
    "customer.salary": {"hr"}, "customer.orders": {"app"}, "customer.order_lines": {"app"},
    "customer.customer": {"app"}, "customer.audit_log": {"app"}, "customer.new_table": {"app"},
    "main.product": {"app"}, "main.seq": {"app"}, "main.secret": set(),
}
ADMIN: dict[str, set[str]] = {"customer.orders": {"olivia"}, "customer.order_lines": {"olivia"}}
ALL = "<every table>"  # the statement would show every table (an unpinned catalog read)
OPAQUE = "<hidden>"  # the text reads tables the plan cannot list


def oracle(user: str, right: str, table: str) -> bool:
    if table.startswith("open."):
        return True
    if right == "admin" and user == "root":
        return True
    holders = {"read": READ, "write": WRITE, "admin": ADMIN}[right].get(table)
    assert holders is not None or right == "admin", f"the oracle does not know {table}"
    return user in (holders or set())


@dataclass(frozen=True)
class Case:
    sql: str
    right: str  # what the statement needs on each table it touches
    touches: frozenset[str]
    dialect: str = "mysql"
    params: Any = None
    note: str = ""
    kind: str | None = None  # the plan's kind, when it is worth checking

    def expected(self, user: str) -> bool:
        if OPAQUE in self.touches or ALL in self.touches:
            return False  # no matrix user may read and write everything
        return all(oracle(user, self.right, t) for t in self.touches)


def case(sql: str, right: str, *touches: str, dialect: str = "mysql", params: Any = None, kind: str | None = None,
         note: str = "") -> Case:
    return Case(sql, right, frozenset(touches), dialect, params, note, kind)


PG = "postgres"
MATRIX = [
    # plain reads, with quoting, case, comments and qualifiers
    case("select * from salary", "read", "customer.salary", kind="select"),
    case("select * from salary", "read", "customer.salary", dialect=PG),
    case("SELECT * FROM SALARY", "read", "customer.salary", dialect=PG, note="unquoted names fold"),
    case('select * from "salary"', "read", "customer.salary", dialect=PG),
    case("select * from `salary`", "read", "customer.salary"),
    case("select * from customer.salary", "read", "customer.salary"),
    case("select * from `customer`.`salary`", "read", "customer.salary"),
    case('select * from "customer"."salary"', "read", "customer.salary", dialect=PG),
    case("/* hi */ select /* x */ * from -- c\n salary", "read", "customer.salary"),
    case("select * from salary # trailing", "read", "customer.salary"),
    case("select id from orders where customer_id = 1 -- x\n union select id from salary", "read", "customer.orders",
         "customer.salary", note="a line comment ends at the line"),
    case("select id from orders /* a */ union /* b */ select id from salary", "read", "customer.orders",
         "customer.salary"),
    case("select id from orders where customer_id = 'a\\' union select id from salary -- '", "read",
         "customer.orders", note="MySQL backslash escape: all one string"),
    case("select id from orders where customer_id = 'a\\' union select id from salary -- '", "read",
         "customer.orders", "customer.salary", dialect=PG, note="standard strings: the quote ends at the \\"),
    case("select id from orders /* /* */ where 'x' = ' */ union select id from salary -- '", "read",
         "customer.orders", "customer.salary", dialect=PG, note="PostgreSQL block comments nest"),
    case("select id from orders where customer_id = $$a' $$ union select id from salary", "read", "customer.orders",
         "customer.salary", dialect=PG),
    case("select * from orders where customer_id = 1", "read", "customer.orders"),
    case("select * from order_lines", "read", "customer.order_lines"),
    case("select * from customer", "read", "customer.customer"),
    case("select * from old.salary", "read", "customer.salary", note="keyspace routing rule"),
    case("select * from `customer:-80`.salary", "read", "customer.salary", note="shard target"),
    case("select * from main.Secret", "read", "main.secret"),
    case("select * from main.SECRET", "read", "main.secret", note="names compare case-insensitively"),
    case('select * from main."Secret"', "read", "main.secret", dialect=PG),
    case("select * from main.product", "read", "main.product"),
    case("select * from open.notes", "read", "open.notes"),
    # joins, subqueries, derived tables, CTEs, unions
    case("select o.id from orders o join salary s on s.id = o.customer_id where o.customer_id = 1", "read",
         "customer.orders", "customer.salary"),
    case("select id from orders where customer_id in (select id from salary)", "read", "customer.orders",
         "customer.salary"),
    case("select * from (select id from salary) as d", "read", "customer.salary"),
    case("with s as (select id from salary) select * from s", "read", "customer.salary"),
    case("select id from orders union all select id from salary", "read", "customer.orders", "customer.salary"),
    case("select exists(select 1 from salary where id = 1)", "read", "customer.salary"),
    case("select (select max(id) from salary) from orders where customer_id = 1", "read", "customer.orders",
         "customer.salary"),
    case("select p.id from main.product p join main.Secret s on s.id = p.id", "read", "main.product",
         "main.secret"),
    # writes: write on every table (a table only read by a write needs write too)
    case("insert into orders (customer_id, amount) values (1, 2)", "write", "customer.orders", kind="insert"),
    case("update salary set amount = 1 where id = 1", "write", "customer.salary", kind="update"),
    case("delete from customer where id = 1", "write", "customer.customer", kind="delete"),
    case('UPDATE "salary" SET amount = 1 WHERE id = 1', "write", "customer.salary", dialect=PG),
    case("insert into main.product (id) values (1)", "write", "main.product"),
    case("update main.product set name = 'x' where id in (select id from main.Secret)", "write", "main.product",
         "main.secret"),
    case("select next 2 values from main.seq", "write", "main.seq", note="consuming ids writes the sequence"),
    # DDL and VSchema DDL: admin
    case("alter table orders add column x int", "admin", "customer.orders", kind="ddl"),
    case("drop table salary", "admin", "customer.salary"),
    case("create table customer.new_table (id int)", "admin", "customer.new_table"),
    case("truncate table main.product", "admin", "main.product"),
    case("alter vschema on orders add vindex hash(customer_id)", "admin", "customer.orders", kind="vschema"),
    case("alter vschema on order_lines add vindex hash(customer_id)", "admin", "customer.order_lines"),
    # SHOW of a table, VEXPLAIN
    case("show create table salary", "read", "customer.salary", kind="show"),
    case("show columns from orders", "read", "customer.orders"),
    case("vexplain plan select * from salary", "read", "customer.salary", kind="other"),
    case("vexplain queries select * from salary", "read", "customer.salary", kind="select"),
    # statements hiding tables from the planner
    case("select * from orders where customer_id = 1 /*!50000 union select * from salary */", "read", OPAQUE,
         note="MySQL runs executable comments"),
    case("select * from orders where customer_id = 1 /*M! union select * from salary */", "read", OPAQUE),
    case("select query_to_xml('select * from salary', true, true, '')", "read", OPAQUE, dialect=PG),
    case("select table_to_xml('salary', true, false, '')", "read", OPAQUE, dialect=PG),
    case('select pg_catalog."query_to_xml"(\'select 1\', true, true, \'\')', "read", OPAQUE, dialect=PG),
    case("select 'salary'::regclass", "read", OPAQUE, dialect=PG, note="an existence oracle"),
    case("select id from salary where id in (with salary as (select 1 as id) select id from salary)", "read",
         OPAQUE, note="the planner takes the outer salary for the WITH query"),
    case("select id from salary where id = 1 and exists (with salary as (select 1 as a) select a from salary)",
         "read", OPAQUE, dialect=PG),
    case("with o as (select id from salary) select o.id from o", "read", "customer.salary"),
    case("with x as (insert into salary (id) values (1) returning id) select * from orders where customer_id = 1",
         "read", OPAQUE, dialect=PG, note="a data-modifying WITH query"),
    case("with x as (update salary set id = 1 returning id) select 1", "read", OPAQUE, dialect=PG),
    case("set @x = (select max(id) from salary)", "read", OPAQUE, note="the session refuses it today; if "
         "it ever reaches a shard, it reads salary"),
    # information_schema / pg_catalog
    case("select table_name from information_schema.tables where table_schema = database() and "
         "table_name = 'salary'", "read", "customer.salary"),
    case("select column_name from information_schema.columns where table_name = 'orders'", "read",
         "customer.orders"),
    case("select column_name from INFORMATION_SCHEMA.COLUMNS where TABLE_NAME = 'ORDERS'", "read",
         "customer.orders"),
    case("select table_name from information_schema.tables where table_name in ('orders', 'salary')", "read",
         "customer.orders", "customer.salary"),
    case("select table_name from information_schema.tables", "read", ALL),
    case("select count(*) from information_schema.tables where table_name like 'sal%'", "read", ALL),
    case("select table_name from information_schema.tables where table_name = 'orders' or 1 = 1", "read", ALL),
    case("select reverse(table_name) as x from information_schema.tables", "read", ALL),
    case("select table_name, (select count(*) from information_schema.tables where table_name = 'salary') as n "
         "from information_schema.tables where table_name = 'orders'", "read", "customer.orders", "customer.salary"),
    case("select table_name from information_schema.tables where table_name = 'orders' union "
         "select table_name from information_schema.tables", "read", ALL),
    case("select table_name from information_schema.tables where table_name = 'orders '", "read", ALL,
         note="PAD SPACE: 'orders ' finds orders, but no such trick may pass"),
    case("select t.table_name from information_schema.schemata s right join information_schema.tables t "
         "on t.table_name = 'orders'", "read", ALL, dialect=PG, note="a RIGHT JOIN's ON keeps every row"),
    case("select t.table_name from information_schema.schemata s join information_schema.tables t "
         "on t.table_name = 'orders'", "read", "customer.orders", dialect=PG),
    case("select * from mysql.user", "read", ALL),
    case("select schema_name from information_schema.schemata", "read"),
    case("select relname from pg_class where relname = 'salary'", "read", "customer.salary", dialect=PG),
    case("select relname from pg_catalog.pg_class where relname = $1", "read", "customer.salary", dialect=PG,
         params=["salary"]),
    case("select relname from pg_class where relname = $1", "read", "customer.orders", dialect=PG,
         params=["orders"]),
    case("select relname from pg_class", "read", ALL, dialect=PG),
    case("select attname from pg_attribute where attrelid = 'orders'::regclass", "read", "customer.orders",
         dialect=PG),
    case("select attname from pg_attribute where attrelid = 'salary'::regclass::oid", "read", "customer.salary",
         dialect=PG),
    case("select c.relname, a.attname from pg_class c join pg_attribute a on a.attrelid = c.oid "
         "where c.relname = 'orders'", "read", "customer.orders", dialect=PG),
    case("select attname from pg_attribute", "read", ALL, dialect=PG),
    case("select typname from pg_type where typname = 'orders'", "read", "customer.orders", dialect=PG),
    case("select nspname from pg_namespace", "read", dialect=PG),
    case("with pg_class as (select 'x' as relname) select relname from pg_class", "read", dialect=PG,
         note="a CTE shadows the catalog"),
    case("select relname from pg_class, (with pg_class as (select 1 as a) select a from pg_class) x", "read", ALL,
         dialect=PG, note="a CTE of another scope does not"),
    case("select (select count(*) from information_schema.referential_constraints where table_name = 'orders') "
         "as n from information_schema.tables where table_name = 'orders'", "read", ALL, dialect=PG,
         note="nested: table_name may be the outer query's column"),
    case("select (select count(*) from information_schema.key_column_usage k where k.table_name = 'orders') "
         "as n from information_schema.tables where table_name = 'orders'", "read", "customer.orders", dialect=PG),
    case("select datname from pg_stat_activity", "read", ALL, dialect=PG, note="other sessions' statements"),
]


def plan_sql(sql: str, dialect: str = "mysql", params: Any = None, keyspace: str = "customer") -> BoundPlan:
    return PLANNER.plan(sql, SessionView(dialect=dialect, keyspace=keyspace), SNAPSHOT, params)


def decision(acl: Acl, user: Any, bound: BoundPlan) -> bool:
    try:
        acl.check(user, bound)
    except PermissionDeniedError:
        return False
    return True


def _user(name: str) -> Any:
    return ROOT if name == "root" else name


@pytest.mark.parametrize("c", MATRIX, ids=[f"{c.dialect}:{c.sql[:70]}" for c in MATRIX])
def test_matrix(c: Case) -> None:
    try:
        bound = plan_sql(c.sql, c.dialect, c.params)
    except UnsupportedError:
        # The planner refuses the statement outright (e.g. a data-modifying WITH, or an executable comment that
        # makes a cross-shard UNION of SELECT *): nobody runs it, so nobody escapes.
        assert not all(c.expected(u) for u in USERS), c.sql
        return
    if c.kind is not None:
        assert bound.plan.kind == c.kind
    listed = {t.lower() for t in bound.plan.tables}
    hidden = c.touches - {OPAQUE, ALL} - listed
    # The planner's list covers every table touched, except in catalog reads (judged by acl_system).
    dba = not bound.plan.tables and c.touches and OPAQUE not in c.touches
    assert not hidden or dba, f"the plan does not list {sorted(hidden)}"
    outcome = {u: decision(ACL, _user(u), bound) for u in USERS}
    expected = {u: c.expected(u) for u in USERS}
    escapes = sorted(u for u in USERS if outcome[u] and not expected[u])
    assert not escapes, f"escape for {escapes}: {c.sql}"
    assert outcome == expected


def test_matrix_covers_every_user_both_ways() -> None:
    """The matrix is not trivially all-deny: every user is allowed something and denied something."""
    allowed = {u: 0 for u in USERS}
    denied = {u: 0 for u in USERS}
    for c in MATRIX:
        for u in USERS:
            (allowed if c.expected(u) else denied)[u] += 1
    assert all(allowed.values()) and all(denied.values()), (allowed, denied)


def test_denial_codes_and_message() -> None:
    with pytest.raises(PermissionDeniedError) as info:
        ACL.check("alice", plan_sql("select o.id from orders o join salary s on s.id = o.customer_id "
                                    "where o.customer_id = 1"))
    err = info.value
    assert (err.mysql_errno, err.mysql_sqlstate, err.pg_sqlstate) == (1142, "42000", "42501")
    assert err.message == "SELECT command denied to user 'alice' for table 'customer.salary'"
    with pytest.raises(PermissionDeniedError) as info:
        ACL.check("alice", plan_sql("delete from orders where customer_id = 1"))
    assert info.value.message == "DELETE command denied to user 'alice' for table 'customer.orders'"
    with pytest.raises(PermissionDeniedError) as info:
        ACL.check("alice", plan_sql("select next 1 values from main.seq"))
    assert info.value.message == "SELECT NEXT command denied to user 'alice' for table 'main.seq'"


@pytest.mark.parametrize("sql", ["select * from orders; select * from salary", "select 1; drop table salary"])
def test_multi_statements_are_never_planned_as_one(sql: str) -> None:
    with pytest.raises(UnsupportedError, match="several statements"):
        plan_sql(sql)


def test_multi_statement_pieces_are_judged_one_by_one() -> None:
    """A frontend that splits a multi-statement query plans and checks each piece; the forbidden one fails."""
    pieces = ["select * from orders where customer_id = 1", "select * from salary"]
    results = [decision(ACL, "alice", plan_sql(p)) for p in pieces]
    assert results == [True, False]


def test_statements_without_tables_need_nothing() -> None:
    for sql in ("begin", "commit", "rollback", "set autocommit = 1", "use main", "select 1", "select @@version"):
        ACL.check("nobody", plan_sql(sql))


def test_unknown_tables_are_errors_not_escapes() -> None:
    """A name the VSchema does not know is refused by the planner before any ACL (sharded keyspaces)."""
    with pytest.raises(ShardgateError):
        plan_sql("select * from SALARY")  # MySQL: names are case-sensitive in the VSchema


# --- SHOW TABLES, SHOW VSCHEMA ------------------------------------------------------------------------------
def test_show_tables_rows_are_filtered() -> None:
    bound = plan_sql("show tables")
    ACL.check("alice", bound)
    f = ACL.row_filter("alice", bound)
    assert f is not None and f.keyspace == "customer"
    rows = [("customer",), ("orders",), ("ORDER_LINES",), ("salary",), ("Salary",), (None,), (b"orders",)]
    assert [r[0] for r in rows if f.keep(r)] == ["customer", "orders", "ORDER_LINES", b"orders"]
    hr = ACL.row_filter("hr", bound)
    assert hr is not None and [r[0] for r in rows[:5] if hr.keep(r)] == ["customer", "salary", "Salary"]
    assert ACL.row_filter("alice", plan_sql("show tables", keyspace="open")) is None
    assert ACL.row_filter("alice", plan_sql("select * from orders")) is None
    vs = ACL.row_filter("alice", plan_sql("show vschema tables"))
    assert vs is not None and not vs.keep(("salary",))


def test_everyone_sees_everything_without_restrictions() -> None:
    acl = parse_acl({"keyspaces": {"customer": [{"tables": ["*"], "read": ["*"], "write": ["*"]}]}})
    assert acl.row_filter("anyone", plan_sql("show tables")) is None
    acl.check("anyone", plan_sql("select table_name from information_schema.tables"))
    acl.check("anyone", plan_sql("select * from orders where customer_id = 1 /*!50000 union select 1 */"))


@pytest.mark.parametrize("sql", ["show vschema vindexes", "show shardgate vschema", "show processlist"])
def test_whole_schema_shows_need_every_table(sql: str) -> None:
    bound = plan_sql(sql)
    with pytest.raises(PermissionDeniedError):
        ACL.check("alice", bound)
    ACL.check(ROOT, bound)


def test_vindexes_of_an_open_keyspace_are_visible() -> None:
    ACL.check("alice", plan_sql("show vschema vindexes", keyspace="open"))


def test_show_vindexes_on_a_table_needs_read_on_it() -> None:
    ACL.check("alice", plan_sql("show vschema vindexes on orders"))
    with pytest.raises(PermissionDeniedError, match=r"customer\.salary"):
        ACL.check("alice", plan_sql("show vschema vindexes on salary"))


# --- semantics --------------------------------------------------------------------------------------------------
def bound_of(kind: str, *tables: str) -> BoundPlan:
    from router.planner.plan import RowsResult

    return BoundPlan(Plan(RowsResult((), ()), kind, tables=tables), [], "", "")


def test_first_matching_entry_decides() -> None:
    acl = Acl({"ks": KeyspaceAcl("ks", (
        AclEntry("deny-secret", (TablePattern.glob("secret*"),)),
        AclEntry("all", (TablePattern.glob("*"),), read=frozenset({"u"})),
    ))})
    assert acl.allowed("u", "ks", "public", "read")
    assert not acl.allowed("u", "ks", "secret_2", "read")
    assert not acl.allowed("u", "ks", "public", "write")


def test_rights_do_not_imply_each_other() -> None:
    acl = parse_acl({"keyspaces": {"ks": {"table_groups": [
        {"table_names_or_prefixes": ["t"], "writers": ["w"], "admins": ["a"]}]}}})
    assert acl.allowed("w", "ks", "t", "write") and not acl.allowed("w", "ks", "t", "read")
    assert acl.allowed("a", "ks", "t", "admin") and not acl.allowed("a", "ks", "t", "write")


def test_admin_role_passes_admin_checks_only() -> None:
    acl = parse_acl({"keyspaces": {"ks": [{"tables": ["t"]}]}})
    root = UserConfig("root", frozenset({"admin"}), {}, {})
    acl.check(root, bound_of("ddl", "ks.t"))
    acl.check(root, bound_of("vschema", "ks.anything"))
    with pytest.raises(PermissionDeniedError):
        acl.check(root, bound_of("select", "ks.t"))


def test_default_policies() -> None:
    allow = parse_acl({"keyspaces": {"ks": [{"tables": ["t"], "read": ["u"]}]}})
    assert allow.allowed("u", "other", "x", "write")  # no ACL for the keyspace: allowed (backward compatible)
    assert not allow.allowed("u", "ks", "x", "read")  # an ACL'd keyspace: a table no entry covers is denied
    deny = parse_acl({"default": "deny", "keyspaces": {"ks": [{"tables": ["t"], "read": ["u"]}]}})
    assert not deny.allowed("u", "other", "x", "read")
    assert deny.allowed("u", "ks", "t", "read")
    assert parse_acl({}).unrestricted("anyone")
    assert not parse_acl({"default": "deny"}).unrestricted("anyone")


def test_groups_and_everyone() -> None:
    acl = parse_acl({"groups": {"g": ["a", "b"]},
                     "keyspaces": {"ks": [{"tables": ["t"], "read": ["g"]}, {"tables": ["pub*"], "read": ["*"]}]}})
    assert acl.allowed("a", "ks", "t", "read") and acl.allowed("b", "ks", "T", "read")
    assert not acl.allowed("c", "ks", "t", "read")
    assert acl.allowed("c", "ks", "public", "read")


def test_unknown_kinds_need_admin() -> None:
    acl = parse_acl({"keyspaces": {"ks": [{"tables": ["*"], "read": ["u"], "write": ["u"]}]}})
    with pytest.raises(PermissionDeniedError):
        acl.check("u", bound_of("futurekind", "ks.t"))


def test_opaque_reason() -> None:
    assert opaque_reason("select 1 /*! union select 2 */") is not None
    assert opaque_reason("select 1 /*m!100000 x */") is not None
    assert opaque_reason("select 1 /* ! not executable */") is None
    assert opaque_reason('select "TABLE_TO_XML" (:v1)') is not None
    assert opaque_reason("select my_query_to_xml(1)") is None
    assert opaque_reason("select x::REGCLASS") is not None
    assert opaque_reason("select regclass_col from t") is None
    assert opaque_reason("select to_regclass(:v1)", functions=False) is None
    assert opaque_reason("select * from t where a in (with t as (select 1) select * from t)") is not None
    assert opaque_reason("with t as (select 1) select * from t where a in (select * from t)") is None
    assert opaque_reason("with a as (select 1), b as (select * from a) select * from b") is None
    assert opaque_reason("select 'with' from t") is None


# --- config -----------------------------------------------------------------------------------------------------
def problems(doc: Any, **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_acl(doc, "c.yaml", **kw)
    return info.value.problems


def test_config_problems_one_per_line() -> None:
    doc = {
        "default": "maybe",
        "groups": {"*": ["a"], "app": ["x"], "g": "a"},
        "keyspaces": {
            "customer": [
                {"tables": []},
                {"tables": ["a[bc]", "customer.orders"], "read": "app", "writ": ["a"]},
                {"name": "", "tables": ["x"], "admin": [1]},
                "nope",
            ],
            "ghost": [{"tables": ["*"]}],
            "main": {"table_groups": [
                {"table_names_or_prefixes": ["a%b", "aaa", "aaab%", "aaabb", "AAA"]},
                {"tableNamesOrPrefixes": ["aa%"], "readers": [""], "extra": 1},
            ]},
        },
    }
    assert problems(doc, users=["app", "a"], keyspaces=["customer", "main"]) == [
        "c.yaml: acl.default: expected allow or deny, got 'maybe'",
        "c.yaml: acl.groups['*']: '*' means every user; it cannot be a group name",
        "c.yaml: acl.groups.app: 'app' is also a user name: entries naming it would be ambiguous",
        "c.yaml: acl.groups.g: expected a list of user names, got a string",
        "c.yaml: acl.keyspaces.customer[0].tables: an empty list covers no table; list names or globs "
        '("*" for every table)',
        "c.yaml: acl.keyspaces.customer[1].writ: unknown key; did you mean 'write'?",
        "c.yaml: acl.keyspaces.customer[1].tables[0]: 'a[bc]': character classes are not supported (use * and ?)",
        "c.yaml: acl.keyspaces.customer[1].tables[1]: 'customer.orders': name tables without their keyspace "
        "('orders'); the entry is already under customer",
        "c.yaml: acl.keyspaces.customer[1].read: expected a list of user or group names, got a string",
        "c.yaml: acl.keyspaces.customer[2].name: expected a non-empty string, got an empty string",
        "c.yaml: acl.keyspaces.customer[2].admin[0]: expected a non-empty string, got an integer",
        "c.yaml: acl.keyspaces.customer[3]: expected a mapping, got a string",
        "c.yaml: acl.keyspaces.ghost: no keyspace 'ghost' in the VSchema (an ACL for it would never apply)",
        "c.yaml: acl.keyspaces.main.table_groups[0].table_names_or_prefixes[0]: 'a%b': '%' marks a prefix and "
        "may only end the name",
        "c.yaml: acl.keyspaces.main.table_groups[0].table_names_or_prefixes[3]: conflicting entries: 'aaabb' "
        "overlaps with 'aaab%' (names compare case-insensitively)",
        "c.yaml: acl.keyspaces.main.table_groups[0].table_names_or_prefixes[4]: conflicting entries: 'AAA' "
        "overlaps with 'aaa' (names compare case-insensitively)",
        "c.yaml: acl.keyspaces.main.table_groups[1].extra: unknown key; expected one of: name, "
        "table_names_or_prefixes, tableNamesOrPrefixes, readers, writers, admins",
        "c.yaml: acl.keyspaces.main.table_groups[1].readers[0]: expected a non-empty string, got an empty string",
        "c.yaml: acl.keyspaces.main.table_groups[1].tableNamesOrPrefixes[0]: conflicting entries: 'aa%' overlaps "
        "with 'aaa' (names compare case-insensitively)",
    ]


@pytest.mark.parametrize(("names", "valid"), [
    ([], True), (["b"], True), (["b", "a"], True), (["b%c"], False), (["aaa", "aaab%", "aaabb"], False),
    (["aaa", "aaab", "aaab%"], False), (["a", "aa%", "aaab%"], False), (["a", "aa%", "aaab"], False),
    (["a", "aa", "aaa%%"], False), (["a", "aa", "aa", "aaaaa"], False), (["a", "aa", "aaa"], True),
])
def test_vitess_validate_cases(names: list[str], valid: bool) -> None:
    """Vitess's ``TestTableACLValidateConfig`` table, one group per name."""
    doc = {"keyspaces": {"ks": {"table_groups": [{"table_names_or_prefixes": [n]} for n in names]}}}
    if valid:
        parse_acl(doc)
    else:
        assert problems(doc)


def test_vitess_authorize_case() -> None:
    """Vitess's ``TestTableACLAuthorize``: a prefix group grants its readers."""
    acl = parse_acl({"keyspaces": {"ks": {"table_groups": [
        {"name": "group01", "table_names_or_prefixes": ["test_music"], "readers": ["u1", "u2"],
         "writers": ["u1", "u3"], "admins": ["u1"]},
        {"name": "group02", "table_names_or_prefixes": ["test_music_02", "test_video"], "readers": ["u1", "u2"],
         "writers": ["u3"], "admins": ["u4"]},
        {"name": "group03", "table_names_or_prefixes": ["test_other%"], "readers": ["u2"],
         "writers": ["u2", "u3"], "admins": ["u3"]},
        {"name": "group04", "table_names_or_prefixes": ["test_data%"], "readers": ["u1", "u2"],
         "writers": ["u1", "u3"], "admins": ["u1"]},
    ]}}})
    assert acl.allowed("u1", "ks", "test_data_any", "read") and acl.allowed("u2", "ks", "test_data_any", "read")
    assert not acl.allowed("u3", "ks", "test_data_any", "read")
    assert acl.allowed("u4", "ks", "test_video", "admin") and not acl.allowed("u1", "ks", "test_video", "admin")
    assert not acl.allowed("u1", "ks", "unknown_table", "read")


def test_vitess_file_and_warnings(tmp_path: Path) -> None:
    file = tmp_path / "tableacl.json"
    file.write_text(json.dumps({"table_groups": [{"name": "g", "table_names_or_prefixes": ["t"],
                                                  "readers": ["ghost"]}]}))
    acl = parse_acl({"keyspaces": {"ks": {"file": "tableacl.json"}}}, "c.yaml", users=["u"], base_dir=tmp_path,
                    read_text=Path.read_text)
    assert acl.allowed("ghost", "ks", "t", "read")
    assert acl.warnings == ("c.yaml: acl.keyspaces.ks: g: read: unknown user or group 'ghost'",)
    file.write_text('{"table_groups": [{"table_names_or_prefixes": ["a%b"]}]}')
    assert problems({"keyspaces": {"ks": {"file": str(file)}}}, read_text=Path.read_text) == [
        f"{file}: table_groups[0].table_names_or_prefixes[0]: 'a%b': '%' marks a prefix and may only end the name"]
    file.write_text("table_groups: [\n")
    assert problems({"keyspaces": {"ks": {"file": str(file)}}}, read_text=Path.read_text)[0].startswith(
        f"{file}:")
    assert problems({"keyspaces": {"ks": {"file": "missing.json"}}}, base_dir=tmp_path, read_text=Path.read_text) == [
        f"c.yaml: acl.keyspaces.ks.file: cannot read {tmp_path / 'missing.json'}: No such file or directory"]
    assert problems({"keyspaces": {"ks": {"file": "x.json"}}}) == [
        "c.yaml: acl.keyspaces.ks.file: tableacl files are read by the config loader; this check was given no "
        "reader"]


def test_check_acl_adds_to_the_configs_checker() -> None:
    c = DocChecker("cluster.yaml", Path("."))
    assert check_acl(c, {"keyspaces": {"ks": 3}}) is None
    assert c.problems == ["cluster.yaml: acl.keyspaces.ks: expected a list of entries, a Vitess tableacl document "
                          "(table_groups) or file:, got an integer"]
    assert check_acl(c, "x") is None and c.problems[-1] == "cluster.yaml: acl: expected a mapping, got a string"


def test_acl_is_immutable_and_reloadable() -> None:
    first = parse_acl(ACL_DOC)
    second = parse_acl({**ACL_DOC, "default": "deny"})
    assert first.default == "allow" and second.default == "deny"
    with pytest.raises(AttributeError):
        first.default = "deny"  # type: ignore[misc]


# --- glob semantics (hypothesis) --------------------------------------------------------------------------------
_ALPHABET = st.sampled_from([*"abAB._-$%* ?é", "İ", "ß"])


@settings(derandomize=True, max_examples=400, deadline=None)
@given(pattern=st.text(_ALPHABET, max_size=8), name=st.text(_ALPHABET, max_size=10))
def test_glob_matches_like_fnmatchcase_on_lowercased_text(pattern: str, name: str) -> None:
    """Our globs are ``fnmatch.fnmatchcase(name.lower(), pattern.lower())`` (no character classes)."""
    assert TablePattern.glob(pattern).matches(name) == fnmatch.fnmatchcase(name.lower(), pattern.lower())


@settings(derandomize=True, max_examples=300, deadline=None)
@given(entry=st.text(st.sampled_from(list("abAB_.*?")), min_size=1, max_size=6),
       name=st.text(st.sampled_from(list("abAB_.*?")), max_size=8), prefix=st.booleans())
def test_vitess_names_are_exact_or_prefixes(entry: str, name: str, prefix: bool) -> None:
    """A Vitess name has no wildcard but a final %: ``*`` and ``?`` are literal there."""
    pattern = TablePattern.vitess(entry + ("%" if prefix else ""))
    expected = name.lower().startswith(entry.lower()) if prefix else name.lower() == entry.lower()
    assert pattern.matches(name) == expected


def test_backend_dialect_hint_reads_one_dialect() -> None:
    """With the keyspace's dialect known, only that reading counts (PostgreSQL regclass does not parse as MySQL)."""
    asked: list[str] = []

    def dialect_of(keyspace: str) -> str:
        asked.append(keyspace)
        return "postgres"

    bound = plan_sql("select attname from pg_attribute where attrelid = 'orders'::regclass", PG)
    ACL.check("alice", bound, backend_dialect=dialect_of)
    assert asked == ["customer"]
    with pytest.raises(PermissionDeniedError, match="could not be checked"):
        ACL.check("alice", bound, backend_dialect=lambda ks: "mysql")


def test_unplanned_frontend_statements() -> None:
    """What a frontend sends without a plan: free for unrestricted users, else a checkable pinned catalog query."""
    free = parse_acl({"keyspaces": {"customer": [{"tables": ["*"], "read": ["*"], "write": ["*"]}]}})
    free.check_unplanned("anyone", "VACUUM salary", keyspace="customer")
    ACL.check_unplanned("alice", "select relname from pg_class where relname = 'orders'", keyspace="customer")
    for sql in ("VACUUM salary", "ANALYZE orders", "select relname from pg_class where relname = 'salary'",
                "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(orders)$' "
                "COLLATE pg_catalog.default", "select relname from pg_class /*! x */ where relname = 'orders'"):
        with pytest.raises(PermissionDeniedError):
            ACL.check_unplanned("alice", sql, keyspace="customer")
