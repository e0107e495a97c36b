"""Query rules (router.rules): config, conditions, actions and their order, through the real planner."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.planner import BoundPlan
from router.rules import (
    ALLOW,
    Decision,
    Rule,
    RuleRequest,
    Rules,
    check_rules,
    evaluate,
    parse_condition,
    parse_rules,
)
from sharding.errors import ConfigError, PermissionDeniedError
from sharding.yamldoc import DocChecker
from tests.unit.test_acl import plan_sql

PG = "postgres"


def request(sql: str, *, user: str = "app", dialect: str = "mysql", params: Any = None, client: str | None = None,
            keyspace: str = "customer") -> RuleRequest:
    bound = plan_sql(sql, dialect, params, keyspace)
    return RuleRequest.of(bound, user=user, client_addr=client, keyspace=keyspace, params=params)


def rules(*items: dict[str, Any]) -> Rules:
    return parse_rules(list(items))


def decide(rs: Rules, sql: str, **kw: Any) -> Decision:
    return evaluate(rs, request(sql, **kw))


# --- actions and order ------------------------------------------------------------------------------------------
def test_no_rules_allow_everything() -> None:
    assert decide(Rules(), "select * from salary") is ALLOW
    assert decide(rules({"match": {"users": ["x"]}, "action": "deny"}), "select * from salary") is ALLOW


def test_deny_carries_its_message_and_the_acl_error_codes() -> None:
    rs = rules({"name": "no-salary", "match": {"tables": ["salary"]}, "action": "deny",
                "message": "salaries are off limits", "log": True})
    d = decide(rs, "select * from salary")
    assert (d.allow, d.message, d.log, d.matched) == (False, "salaries are off limits", True, ("no-salary",))
    with pytest.raises(PermissionDeniedError) as info:
        d.enforce()
    err = info.value
    assert (str(err), err.mysql_errno, err.pg_sqlstate) == ("salaries are off limits", 1142, "42501")
    assert decide(rs, "select * from orders").enforce() is ALLOW
    assert decide(rules({"match": {"kinds": ["delete"]}, "action": "deny"}),
                  "delete from orders where customer_id = 1").message == "denied by query rule rules[0]"


def test_rules_apply_in_order_and_allow_stops() -> None:
    rs = rules(
        {"name": "reports-ok", "match": {"users": ["report"], "tables": ["orders"]}, "action": "allow",
         "row_limit": 500},
        {"name": "limit-all", "match": {}, "row_limit": 1000, "timeout_ms": 2000},
        {"name": "replicas", "match": {"kinds": ["select"]}, "route": "replica", "timeout_ms": 5000},
        {"name": "no-scans", "match": {"fingerprints": ["select * from orders"]}, "action": "deny",
         "message": "name a customer"},
        {"name": "never", "match": {}, "log": True},
    )
    d = decide(rs, "select * from orders", user="report")
    assert (d.allow, d.row_limit, d.timeout_ms, d.route_to_replica, d.matched) == (True, 500, None, False,
                                                                                    ("reports-ok",))
    d = decide(rs, "select * from orders")
    assert (d.allow, d.message, d.row_limit, d.timeout_ms, d.route_to_replica, d.log, d.matched) == (
        False, "name a customer", 1000, 2000, True, False, ("limit-all", "replicas", "no-scans"))
    d = decide(rs, "select * from orders where customer_id = 1")
    assert (d.allow, d.row_limit, d.timeout_ms, d.route_to_replica, d.log) == (True, 1000, 2000, True, True)
    d = decide(rs, "delete from orders where customer_id = 1")
    assert (d.timeout_ms, d.route_to_replica, d.matched) == (2000, False, ("limit-all", "never"))


def test_settings_take_the_smallest_limit() -> None:
    rs = rules({"match": {}, "row_limit": 50}, {"match": {}, "row_limit": 10, "timeout_ms": 9},
               {"match": {}, "row_limit": 30, "timeout_ms": 3})
    d = decide(rs, "select 1")
    assert (d.row_limit, d.timeout_ms) == (10, 3)


# --- conditions -------------------------------------------------------------------------------------------------
def test_users_and_everyone() -> None:
    rs = rules({"match": {"users": ["bob"]}, "action": "deny"})
    assert not decide(rs, "select 1", user="bob").allow and decide(rs, "select 1", user="Bob").allow
    assert not decide(rules({"match": {"users": ["*"]}, "action": "deny"}), "select 1", user="x").allow


@pytest.mark.parametrize(("client", "denied"), [
    ("10.1.2.3", True), ("::ffff:10.1.2.3", True), ("11.0.0.1", False), ("fd00::5", True), ("fd01::5", False),
    (None, False), ("", False), ("not-an-ip", False), ("fe80::1%eth0", True),
])
def test_client_cidr(client: str | None, denied: bool) -> None:
    rs = rules({"match": {"clients": ["10.0.0.0/8", "fd00::/16", "fe80::/10"]}, "action": "deny"})
    assert decide(rs, "select 1", client=client).allow is not denied


def test_keyspaces_of_tables_or_of_the_session() -> None:
    rs = rules({"match": {"keyspaces": ["main"]}, "action": "deny"})
    assert not decide(rs, "select * from main.product").allow
    assert decide(rs, "select * from orders").allow
    assert not decide(rs, "select 1", keyspace="main").allow  # no table: the session's keyspace
    assert decide(rs, "select 1", keyspace="customer").allow


def test_tables_with_and_without_keyspace_and_tricks() -> None:
    rs = rules({"match": {"tables": ["salary"]}, "action": "deny"},
               {"match": {"tables": ["main.sec*"]}, "action": "deny"})
    for sql, dialect in [("select * from salary", "mysql"), ("SELECT * FROM SALARY", PG),
                         ('select * from "customer"."salary"', PG), ("select * from `customer`.`salary`", "mysql"),
                         ("/* x */ select * from -- y\n salary", "mysql"), ("select * from old.salary", "mysql"),
                         ("select id from orders where customer_id in (select id from salary)", "mysql"),
                         ("select * from main.SECRET", "mysql"), ('select * from main."Secret"', PG),
                         ("update salary set x = 1 where id = 1", "mysql")]:
        assert not decide(rs, sql, dialect=dialect).allow, sql
    for sql in ("select * from orders", "select * from main.product", "select 'salary'"):
        assert decide(rs, sql).allow, sql


def test_allow_needs_every_table_deny_any() -> None:
    """An allow naming one harmless table never lets a statement with another table past later rules."""
    rs = rules({"match": {"tables": ["orders"]}, "action": "allow"},
               {"match": {"tables": ["*"]}, "action": "deny", "message": "no"})
    assert decide(rs, "select * from orders").allow
    join = "select o.id from orders o join salary s on s.id = o.customer_id where o.customer_id = 1"
    assert not decide(rs, join).allow
    ks = rules({"match": {"keyspaces": ["customer"]}, "action": "allow"}, {"match": {}, "action": "deny"})
    assert decide(ks, "select * from orders").allow
    assert not decide(ks, "select p.id from main.product p", keyspace="main").allow


def test_statements_hiding_tables() -> None:
    """Text the plan cannot list tables for: table conditions match for restrictions, never for allows."""
    # The planner reads executable comments as MySQL does, so the salary table is seen and listed here.
    sql = "select id from orders where customer_id = 1 /*!50000 union select id from salary where customer_id = 1 */"
    deny = rules({"match": {"tables": ["salary"]}, "action": "deny"})
    assert not decide(deny, sql).allow
    allow = rules({"match": {"tables": ["orders"]}, "action": "allow"}, {"match": {}, "action": "deny"})
    assert not decide(allow, sql).allow
    ks_deny = rules({"match": {"keyspaces": ["main"]}, "action": "deny"})
    assert not decide(ks_deny, sql).allow
    pg = rules({"match": {"tables": ["salary"]}, "action": "deny"})
    assert not decide(pg, "select query_to_xml('select * from salary', true, true, '')", dialect=PG).allow


def test_kinds_fingerprints_and_sql_regex() -> None:
    rs = rules({"match": {"kinds": ["ddl", "vschema"]}, "action": "deny", "message": "no ddl"})
    assert not decide(rs, "drop table salary").allow
    assert not decide(rs, "alter vschema on orders add vindex hash(customer_id)").allow
    assert decide(rs, "select * from salary").allow
    fp = rules({"match": {"fingerprints": ["select * from orders where customer_id = :v1"]}, "action": "deny"})
    assert not decide(fp, "select * from orders where customer_id = 42").allow
    assert not decide(fp, "select  *  from orders where customer_id = 'x' -- c").allow
    assert decide(fp, "SELECT * from orders where customer_id = 42").allow  # exact: case counts
    rx = rules({"match": {"sql": r"(?i)\bsleep\s*\("}, "action": "deny"})
    assert not decide(rx, "select sleep(10)").allow
    assert decide(rx, "select asleep(1)").allow


def test_bind_conditions_through_the_planner() -> None:
    rs = rules({"match": {"tables": ["orders"], "binds": ["bind.0 > 1000"]}, "action": "deny"})
    assert not decide(rs, "select * from orders where customer_id = 5000").allow
    assert decide(rs, "select * from orders where customer_id = 5").allow
    assert not decide(rs, "select * from orders where customer_id = '5000abc'").allow  # MySQL's conversion
    assert not decide(rs, "select * from orders where customer_id = ?", params=[2000]).allow
    assert decide(rs, "select * from orders where customer_id in (1, 2, 3)").allow
    assert not decide(rs, "select * from orders where customer_id in (1, 2, 3000)").allow  # one item is enough
    big = rules({"match": {"binds": ["len(bind.0) > 3"]}, "action": "deny"})
    assert not decide(big, "select * from orders where customer_id in (1, 2, 3, 4)").allow
    assert decide(big, "select * from orders where customer_id in (1, 2, 3)").allow
    named = rules({"match": {"binds": ["bind.lim >= 100"]}, "action": "deny"})
    assert not decide(named, "select * from orders where customer_id = :lim", params={"lim": 100}).allow
    assert decide(named, "select * from orders where customer_id = :lim", params={"lim": 99}).allow
    present = rules({"match": {"binds": ["bind.lim"]}, "row_limit": 7})
    assert decide(present, "select * from orders where customer_id = :lim", params={"lim": 1}).row_limit == 7
    assert decide(present, "select * from orders where customer_id = :lim", params={"lim": None}).row_limit is None
    assert decide(present, "select * from orders where customer_id = 1").row_limit is None


def cond(text: str, binds: Any = (), params: dict[str, Any] | None = None) -> bool:
    from router.planner.plan import Plan, RowsResult

    req = RuleRequest("u", Plan(RowsResult((), ()), "select"), binds, params=params)
    return parse_condition(text).holds(req)


@pytest.mark.parametrize(("text", "binds", "expected"), [
    ("bind.0 = 5", [5], True), ("bind.0 == 5", [Decimal("5.0")], True), ("bind.0 != 5", [5], False),
    ("bind.0 <> 5", [6], True), ("bind.0 < 5", [4.5], True), ("bind.0 <= 5", ["5"], True),
    ("bind.0 > 5", [True], False), ("bind.0 >= -1.5e0", [-1], True), ("bind.0 > 5", [None], False),
    ("bind.0 > 5", [b"10"], True), ("bind.0 > 5", ["abc"], False), ("bind.0 < 5", ["abc"], True),
    ("bind.1 > 5", [10], False), ("bind.0 = 'abc'", ["abc"], True), ("bind.0 = \"a'b\"", ["a'b"], True),
    ("bind.0 = 'a\\'b'", ["a'b"], True), ("bind.0 > 'b'", ["c"], True), ("bind.0 = '5'", [5], True),
    ("bind.0 in (1, 'x', 2.5)", ["x"], True), ("bind.0 in (1, 2)", [(3, 2)], True),
    ("bind.0 not in (1, 2)", [3], True), ("bind.0 NOT IN (1,2)", [2], False),
    ("bind.0 ~ '^adm'", ["admin"], True), ("bind.0 ~ '^adm'", [b"xadmin"], False),
    ("bind.0 is null", [None], True), ("bind.0 IS NOT NULL", [None], False), ("bind.0 is null", [], False),
    ("bind.0", [0], True), ("bind.0", [None], False), ("len(bind.0) >= 2", [(1, 2)], True),
    ("len(bind.0) = 1", [7], True), ("len(bind.0) = 0", [None], True), ("  bind.0   >   5  ", [6], True),
])
def test_bind_condition_semantics(text: str, binds: list[Any], expected: bool) -> None:
    assert cond(text, binds) is expected


@pytest.mark.parametrize("text", [
    "bind > 5", "b.0 > 5", "bind.0 >", "bind.0 > 5 6", "bind.0 in 1, 2", "bind.0 in ()", "bind.0 ~ 'a('",
    "len(bind.0)", "len(bind.0) > 'x'", "bind.0 is null x", "bind.0 = unquoted", "bind.0 in (1 2)",
])
def test_bad_bind_conditions(text: str) -> None:
    with pytest.raises(ValueError):
        parse_condition(text)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(limit=st.integers(-10**6, 10**6), value=st.one_of(st.integers(-10**6, 10**6),
                                                         st.decimals(-10**6, 10**6, places=3)))
def test_numeric_conditions_agree_with_python(limit: int, value: Any) -> None:
    for op, fn in (("<", value.__lt__), (">=", value.__ge__), ("=", value.__eq__)):
        assert cond(f"bind.0 {op} {limit}", [value]) is bool(fn(limit))
        assert cond(f"bind.0 {op} {limit}", [str(value)]) is bool(fn(limit))  # numeric strings compare as numbers


# --- config -----------------------------------------------------------------------------------------------------
EXAMPLE = [
    {"name": "no-salary-for-reports",
     "match": {"users": ["reporting"], "clients": ["10.0.0.0/8"], "tables": ["customer.salary*"], "kinds": ["select"]},
     "action": "deny", "message": "reports may not read salaries", "log": True},
    {"name": "big-in-lists", "match": {"binds": ["len(bind.0) > 1000"]}, "action": "deny",
     "message": "IN lists are limited to 1000 values"},
    {"name": "reporting-on-replicas", "match": {"users": ["reporting"]}, "row_limit": 100000, "timeout_ms": 30000,
     "route": "replica"},
]


def test_the_documented_example() -> None:
    rs = parse_rules(EXAMPLE, users=["reporting"], keyspaces=["customer"])
    assert len(rs) == 3 and rs.warnings == ()
    d = decide(rs, "select * from salary", user="reporting", client="10.9.9.9")
    assert (d.allow, d.message, d.log) == (False, "reports may not read salaries", True)
    d = decide(rs, "select * from orders", user="reporting", client="10.9.9.9")
    assert (d.allow, d.row_limit, d.timeout_ms, d.route_to_replica) == (True, 100000, 30000, True)
    assert rs.describe() == [
        (0, "no-salary-for-reports", "users=reporting kinds=select clients=10.0.0.0/8 tables=customer.salary*",
         "deny log"),
        (1, "big-in-lists", "[len(bind.0) > 1000]", "deny"),
        (2, "reporting-on-replicas", "users=reporting", "row_limit=100000 timeout_ms=30000 route=replica"),
    ]


def test_config_problems_one_per_line() -> None:
    doc = [
        {"match": {"users": []}, "action": "block"},
        {"name": "x", "match": {"clients": ["10.0.0.1/8", "nope"], "kinds": ["selec"], "sql": "(",
                                "binds": ["bind.0 >"], "tables": ["a[b]"], "colour": 1},
         "action": "allow", "message": "m"},
        {"name": "x", "match": {}, "action": "deny"},
        {"match": {}},
        {"match": {}, "row_limit": 0, "timeout_ms": "5", "route": "primary", "log": "yes"},
        "not a rule",
    ]
    with pytest.raises(ConfigError) as info:
        parse_rules(doc, "c.yaml")
    assert info.value.problems == [
        "c.yaml: rules[0].action: unknown action 'block'; expected one of: deny, allow (leave it out for a rule "
        "that only applies settings)",
        "c.yaml: rules[0].match.users: expected a non-empty list of user names, got an empty list",
        "c.yaml: rules[1].message: a message goes with action: deny",
        "c.yaml: rules[1].match.colour: unknown key; expected one of: users, clients, keyspaces, tables, kinds, "
        "fingerprints, sql, binds",
        "c.yaml: rules[1].match.clients[0]: '10.0.0.1/8' is not a CIDR block: 10.0.0.1/8 has host bits set",
        "c.yaml: rules[1].match.clients[1]: 'nope' is not a CIDR block: 'nope' does not appear to be an IPv4 or "
        "IPv6 network",
        "c.yaml: rules[1].match.tables[0]: 'a[b]': character classes are not supported (use * and ?)",
        "c.yaml: rules[1].match.kinds[0]: unknown statement kind 'selec'; did you mean 'select'?",
        "c.yaml: rules[1].match.sql: invalid regular expression: missing ), unterminated subpattern at position 0",
        "c.yaml: rules[1].match.binds[0]: 'bind.0 >': > needs one value: a number or a quoted string",
        "c.yaml: rules[3]: the rule does nothing: give an action (deny | allow) or a setting (row_limit, "
        "timeout_ms, route, log)",
        "c.yaml: rules[4].row_limit: 0 is out of range 1..9223372036854775807",
        "c.yaml: rules[4].timeout_ms: expected an integer, got a string",
        "c.yaml: rules[4].route: expected replica, got 'primary' (writes and transactions always go to the primary)",
        "c.yaml: rules[4].log: expected true or false, got a string",
        "c.yaml: rules[5]: expected a mapping, got a string",
    ]


def test_duplicate_names_and_warnings() -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules([{"name": "a", "match": {}, "log": True}, {"name": "a", "match": {}, "log": True}], "c.yaml")
    assert info.value.problems == ["c.yaml: rules[1].name: duplicate rule name 'a' (also rules[0])"]
    rs = parse_rules([{"match": {"users": ["ghost", "*"], "keyspaces": ["nowhere"]}, "log": True}], "c.yaml",
                     users=["app"], keyspaces=["customer"])
    assert rs.warnings == ("c.yaml: rules[0].match.users[0]: unknown user 'ghost': the rule never matches them",
                           "c.yaml: rules[0].match.keyspaces[0]: no keyspace 'nowhere' in the VSchema")


def test_check_rules_adds_to_the_configs_checker() -> None:
    c = DocChecker("cluster.yaml", Path("."))
    assert check_rules(c, {"a": 1}) is None
    assert c.problems == ["cluster.yaml: rules: expected a list of rules, got a mapping"]
    assert check_rules(c, None) == Rules()


def test_reload_swaps_an_immutable_list() -> None:
    first = parse_rules([{"match": {"tables": ["salary"]}, "action": "deny"}])
    second = parse_rules([])
    assert not evaluate(first, request("select * from salary")).allow
    assert evaluate(second, request("select * from salary")).allow
    assert isinstance(first.rules[0], Rule)
    with pytest.raises(AttributeError):
        first.rules = ()  # type: ignore[misc]


def test_request_from_a_bound_plan() -> None:
    bound: BoundPlan = plan_sql("select * from orders where customer_id = ?", params=[3])
    req = RuleRequest.of(bound, user="u", client_addr="127.0.0.1", keyspace="customer", params=[3])
    assert (req.binds, req.params, req.fingerprint) == ([3], None, "select * from orders where customer_id = :v1")
