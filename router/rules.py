"""Query rules: an ordered list of conditions and actions, judged for every statement after it is planned. Pure:
no I/O, no clock. ``Rules`` is immutable; a reload parses the new list and swaps it in.

``evaluate(rules, request) -> Decision``. Rules are read in order. A rule matches when every condition it has
holds (a list condition holds when one of its items does). A matching rule

- with ``action: deny`` stops the evaluation: the statement is refused (``Decision.enforce()`` raises
  ``PermissionDeniedError`` with the rule's message: MySQL 1142 / PostgreSQL 42501, as the ACLs);
- with ``action: allow`` stops the evaluation: later rules do not apply;
- without an action applies its settings and the evaluation goes on.

Settings gather over the matching rules up to the one that stops: ``row_limit`` and ``timeout_ms`` take the
smallest value, ``route: replica`` and ``log: true`` hold when any rule says so (the engine still sends writes and
transactions to the primary). A rule that denies or allows may carry settings too (a denial can be logged).

**Conditions** (under ``match:``):

- ``users``: user names (``*``: anyone);
- ``clients``: client addresses as CIDR (``10.0.0.0/8``, ``::1/128``); an IPv4 client connected over IPv6 (``::ffff:
  10.1.2.3``) counts as its IPv4 address; a client without an address (a Unix socket) matches none;
- ``keyspaces``: the keyspaces of the statement's tables, or the session's keyspace when it has none;
- ``tables``: globs (``*``, ``?``; case-insensitive) on the statement's tables: a pattern with a dot is matched
  against ``keyspace.table``, one without against the table's name;
- ``kinds``: select, insert, update, delete, ddl, set, begin, commit, rollback, savepoint, use, show, vschema, other;
- ``fingerprints``: the statement's fingerprint, exactly (as logged: ``select * from t where id = :v1``);
- ``sql``: a regular expression searched in the statement's text (Python ``re``);
- ``binds``: conditions on the statement's values, all of which must hold: ``bind.N`` is its N-th value from 0
  (the fingerprint's ``:v{N+1}``), ``bind.NAME`` a named bind parameter (``:NAME``); ``SUBJECT OP VALUE`` with OP
  one of ``= != < <= > >= in (…) not in (…) ~ 'regex'`` or ``is null`` / ``is not null``; ``len(SUBJECT) OP n``
  counts the items of a list value; a bare ``SUBJECT`` holds when the value is given and not NULL. Numbers compare
  as numbers (a string is read as MySQL does: its numeric prefix, else 0); a list value (``IN (…)``) holds when
  one of its items does.

**Sets of tables and keyspaces** are judged to be safe for both kinds of rule: a restricting rule (deny, or
settings) matches when ANY of the statement's tables (keyspaces) matches; an ``allow`` rule only when ALL do, so
naming one harmless table never lets a statement past the rules. When the text can read tables its plan cannot
list (``router.acl.opaque_reason``: a MySQL executable comment, a PostgreSQL function reading a table named in
text), table and keyspace conditions count as matched for restricting rules and as unmatched for allow rules.

Config (``rules:`` in the cluster YAML; ``parse_rules``/``check_rules``)::

    rules:
      - name: no-salary-for-reports
        match:
          users: [reporting]
          clients: ["10.0.0.0/8"]
          tables: ["customer.salary*"]
          kinds: [select]
        action: deny
        message: "reports may not read salaries"
        log: true
      - name: big-in-lists
        match: {binds: ["len(bind.0) > 1000"]}
        action: deny
        message: "IN lists are limited to 1000 values"
      - name: reporting-on-replicas
        match: {users: [reporting]}
        row_limit: 100000
        timeout_ms: 30000
        route: replica
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.acl import TablePattern, opaque_reason
from router.planner import BoundPlan
from router.planner.plan import Plan
from router.rule_binds import BindCondition, parse_condition
from sharding.errors import ConfigError, PermissionDeniedError
from sharding.yamldoc import DocChecker, describe, join_path, suggest

__all__ = [
    "ALLOW",
    "KINDS",
    "BindCondition",
    "Decision",
    "Rule",
    "RuleRequest",
    "Rules",
    "check_rules",
    "evaluate",
    "parse_condition",
    "parse_rules",
]

KINDS = ("select", "insert", "update", "delete", "ddl", "set", "begin", "commit", "rollback", "savepoint", "use",
         "show", "vschema", "other")
_ACTIONS = ("deny", "allow")
_MAX_LIMIT = 2**63 - 1


# --- requests and decisions ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RuleRequest:
    """One planned statement as the rules see it."""

    user: str
    plan: Plan
    binds: Sequence[Any] = ()
    sql: str = ""
    fingerprint: str = ""
    client_addr: str | None = None  # the client's IP address as text; None for a Unix socket
    keyspace: str | None = None  # the session's keyspace
    params: Mapping[str, Any] | None = None  # named bind parameters, when the client sent them by name

    @property
    def opaque(self) -> bool:
        """Whether the text may read tables its plan does not list (``router.acl.opaque_reason``)."""
        return opaque_reason(self.fingerprint or self.sql) is not None

    @staticmethod
    def of(bound: BoundPlan, *, user: str, client_addr: str | None = None, keyspace: str | None = None,
           params: Any = None) -> RuleRequest:
        named = params if params is not None and isinstance(params, Mapping) else None
        return RuleRequest(user, bound.plan, bound.binds, bound.sql, bound.fingerprint, client_addr, keyspace, named)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules decided. ``matched``: the names of the rules that matched, in order (for logs)."""

    allow: bool = True
    message: str | None = None
    row_limit: int | None = None
    timeout_ms: int | None = None
    route_to_replica: bool = False
    log: bool = False
    matched: tuple[str, ...] = ()

    def enforce(self) -> Decision:
        """``self`` when allowed; else raises ``PermissionDeniedError`` with the rule's message."""
        if not self.allow:
            raise PermissionDeniedError(self.message or "denied by a query rule")
        return self


ALLOW = Decision()


# --- rules ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rule:
    """One rule. A condition left as None is not checked."""

    name: str
    users: frozenset[str] | None = None
    clients: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None
    keyspaces: frozenset[str] | None = None
    tables: tuple[TablePattern, ...] | None = None
    kinds: frozenset[str] | None = None
    fingerprints: frozenset[str] | None = None
    sql: re.Pattern[str] | None = None
    binds: tuple[BindCondition, ...] = ()
    action: str | None = None  # "deny" | "allow" | None (settings only)
    message: str | None = None
    row_limit: int | None = None
    timeout_ms: int | None = None
    route_to_replica: bool = False
    log: bool = False

    def matches(self, request: RuleRequest) -> bool:
        if self.users is not None and request.user not in self.users and "*" not in self.users:
            return False
        if self.kinds is not None and request.plan.kind not in self.kinds:
            return False
        if self.fingerprints is not None and request.fingerprint not in self.fingerprints:
            return False
        if self.clients is not None and not _client_in(request.client_addr, self.clients):
            return False
        every = self.action == "allow"  # an allow must cover every table; a restriction any table
        opaque = (self.keyspaces is not None or self.tables is not None) and request.opaque
        if self.keyspaces is not None:
            keyspaces = {t.partition(".")[0] for t in request.plan.tables} or (
                {request.keyspace} if request.keyspace else set())
            if opaque:
                if every:
                    return False
            elif not keyspaces or not _judge((k in self.keyspaces for k in keyspaces), every):
                return False
        if self.tables is not None:
            if opaque:
                if every:
                    return False
            elif not request.plan.tables or not _judge(
                    (self._table_matches(t) for t in request.plan.tables), every):
                return False
        if self.sql is not None and self.sql.search(request.sql) is None:
            return False
        return all(c.holds(request) for c in self.binds)

    def _table_matches(self, qualified: str) -> bool:
        name = qualified.partition(".")[2]
        return any(p.matches(qualified if "." in p.text else name) for p in self.tables or ())

    def describe(self) -> str:
        """The rule's conditions as one line, for ``SHOW SHARDGATE RULES``."""
        parts = []
        for key in ("users", "keyspaces", "kinds", "fingerprints"):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{key}={','.join(sorted(value))}")
        if self.clients is not None:
            parts.append("clients=" + ",".join(str(n) for n in self.clients))
        if self.tables is not None:
            parts.append("tables=" + ",".join(p.text for p in self.tables))
        if self.sql is not None:
            parts.append(f"sql~{self.sql.pattern}")
        parts.extend(f"[{c.text.strip()}]" for c in self.binds)
        return " ".join(parts) or "(every statement)"

    def describe_action(self) -> str:
        parts = [self.action] if self.action else []
        if self.row_limit is not None:
            parts.append(f"row_limit={self.row_limit}")
        if self.timeout_ms is not None:
            parts.append(f"timeout_ms={self.timeout_ms}")
        if self.route_to_replica:
            parts.append("route=replica")
        if self.log:
            parts.append("log")
        return " ".join(parts)


def _judge(results: Iterable[bool], every: bool) -> bool:
    return all(results) if every else any(results)


_IPS: dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None] = {}


def _client_ip(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address (an IPv4 client seen over IPv6 as its IPv4 address), or None; cached by text."""
    try:
        return _IPS[addr]
    except KeyError:
        pass
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:  # not an IP address (the zone of fe80::1%eth0 is dropped above)
        ip = None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if len(_IPS) >= 4096:
        _IPS.clear()
    _IPS[addr] = ip
    return ip


def _client_in(addr: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    ip = _client_ip(addr) if addr else None
    return ip is not None and any(ip in net for net in networks)


@dataclass(frozen=True, slots=True)
class Rules:
    """The ordered rules. Immutable: RELOAD parses a new list and swaps it in."""

    rules: tuple[Rule, ...] = ()
    warnings: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.rules)

    def describe(self) -> list[tuple[int, str, str, str]]:
        """Rows for ``SHOW SHARDGATE RULES``: (position, name, conditions, action)."""
        return [(i, r.name, r.describe(), r.describe_action()) for i, r in enumerate(self.rules)]


def evaluate(rules: Rules | Sequence[Rule], request: RuleRequest) -> Decision:
    """Judge ``request`` by ``rules`` in order (see the module docstring)."""
    items = rules.rules if isinstance(rules, Rules) else rules
    if not items:
        return ALLOW
    row_limit: int | None = None
    timeout_ms: int | None = None
    replica = log = False
    matched: list[str] = []
    for rule in items:
        if not rule.matches(request):
            continue
        matched.append(rule.name)
        if rule.row_limit is not None:
            row_limit = rule.row_limit if row_limit is None else min(row_limit, rule.row_limit)
        if rule.timeout_ms is not None:
            timeout_ms = rule.timeout_ms if timeout_ms is None else min(timeout_ms, rule.timeout_ms)
        replica = replica or rule.route_to_replica
        log = log or rule.log
        if rule.action is not None:
            if rule.action == "deny":
                message = rule.message or f"denied by query rule {rule.name}"
                return Decision(False, message, row_limit, timeout_ms, replica, log, tuple(matched))
            break
    if not matched:
        return ALLOW
    return Decision(True, None, row_limit, timeout_ms, replica, log, tuple(matched))


# --- config ---------------------------------------------------------------------------------------------------
_RULE_KEYS = ["name", "match", "action", "message", "row_limit", "timeout_ms", "route", "log"]
_MATCH_KEYS = ["users", "clients", "keyspaces", "tables", "kinds", "fingerprints", "sql", "binds"]


def parse_rules(doc: Any, source: str = "cluster.yaml", *, path: str = "rules", users: Iterable[str] | None = None,
                keyspaces: Iterable[str] | None = None) -> Rules:
    """The ``rules:`` section ``doc`` (a list) as ``Rules``, or ``ConfigError`` whose ``problems`` list every
    problem, one per line, ``FILE: rules[2].match.binds[0]: problem``. Unknown users and keyspaces (when the
    lists are given) are warnings: the rule would never match."""
    c = DocChecker(source, Path("."))
    rules = check_rules(c, doc, path=path, users=users, keyspaces=keyspaces)
    if c.problems or rules is None:
        raise ConfigError("\n".join(c.problems), problems=c.problems)
    return rules


def check_rules(c: DocChecker, doc: Any, *, path: str = "rules", users: Iterable[str] | None = None,
                keyspaces: Iterable[str] | None = None) -> Rules | None:
    """As ``parse_rules``, adding problems and warnings to ``c`` (the config's own checker); None on a problem."""
    if doc is None:
        doc = []
    if not isinstance(doc, list):
        c.problem(path, f"expected a list of rules, got {describe(doc)}")
        return None
    before, warned = len(c.problems), len(c.warnings)
    known_users = frozenset(users) if users is not None else None
    known_keyspaces = frozenset(keyspaces) if keyspaces is not None else None
    out: list[Rule] = []
    names: dict[str, int] = {}
    for i, item in enumerate(doc):
        rpath = join_path(path, i)
        rule = _rule(c, item, rpath, i, known_users, known_keyspaces)
        if rule is None:
            continue
        if rule.name in names:
            c.problem(join_path(rpath, "name"), f"duplicate rule name {rule.name!r} (also {path}[{names[rule.name]}])")
            continue
        names[rule.name] = i
        out.append(rule)
    if len(c.problems) > before:
        return None
    return Rules(tuple(out), tuple(c.warnings[warned:]))


def _strings(c: DocChecker, value: Any, path: str, what: str) -> list[str] | None:
    if not isinstance(value, list) or not value:
        c.problem(path, f"expected a non-empty list of {what}, got {describe(value)}")
        return None
    out = []
    for j, item in enumerate(value):
        if not isinstance(item, str) or not item:
            c.problem(join_path(path, j), f"expected a non-empty string, got {describe(item)}")
        else:
            out.append(item)
    return out if len(out) == len(value) else None


def _rule(c: DocChecker, item: Any, path: str, index: int, users: frozenset[str] | None,
          keyspaces: frozenset[str] | None) -> Rule | None:
    before = len(c.problems)
    body = c.mapping(item, path, _RULE_KEYS)
    if body is None:
        return None
    name = body.get("name", f"rules[{index}]")
    if not isinstance(name, str) or not name:
        c.problem(join_path(path, "name"), f"expected a non-empty string, got {describe(name)}")
    action = body.get("action")
    if action is not None and action not in _ACTIONS:
        c.problem(join_path(path, "action"), f"unknown action {action!r}{suggest(str(action), _ACTIONS)} "
                                             "(leave it out for a rule that only applies settings)")
    message = body.get("message")
    if message is not None:
        if not isinstance(message, str) or not message:
            c.problem(join_path(path, "message"), f"expected a non-empty string, got {describe(message)}")
        elif action != "deny":
            c.problem(join_path(path, "message"), "a message goes with action: deny")
    row_limit = c.integer(body["row_limit"], join_path(path, "row_limit"), 1, _MAX_LIMIT) \
        if "row_limit" in body else None
    timeout_ms = c.integer(body["timeout_ms"], join_path(path, "timeout_ms"), 1, 86_400_000) \
        if "timeout_ms" in body else None
    route = body.get("route")
    if route is not None and route != "replica":
        c.problem(join_path(path, "route"), f"expected replica, got {route!r} (writes and transactions always go "
                                            "to the primary)")
    log = c.boolean(body["log"], join_path(path, "log")) if "log" in body else False
    if action is None and not any(k in body for k in ("row_limit", "timeout_ms", "route", "log")):
        c.problem(path, "the rule does nothing: give an action (deny | allow) or a setting (row_limit, timeout_ms, "
                        "route, log)")
    conditions = _match(c, body.get("match", {}), join_path(path, "match"), users, keyspaces)
    if len(c.problems) > before or conditions is None:
        return None
    return Rule(str(name), **conditions, action=action, message=message, row_limit=row_limit,
                timeout_ms=timeout_ms, route_to_replica=route == "replica", log=bool(log))


def _match(c: DocChecker, value: Any, path: str, users: frozenset[str] | None, keyspaces: frozenset[str] | None
           ) -> dict[str, Any] | None:
    body = c.mapping(value, path, _MATCH_KEYS)
    if body is None:
        return None
    out: dict[str, Any] = {}
    if "users" in body and (names := _strings(c, body["users"], join_path(path, "users"), "user names")):
        if users is not None:
            for j, n in enumerate(names):
                if n != "*" and n not in users:
                    c.warn(join_path(path, "users", j), f"unknown user {n!r}: the rule never matches them")
        out["users"] = frozenset(names)
    if "keyspaces" in body and (ks := _strings(c, body["keyspaces"], join_path(path, "keyspaces"), "keyspaces")):
        if keyspaces is not None:
            for j, k in enumerate(ks):
                if k not in keyspaces:
                    c.warn(join_path(path, "keyspaces", j), f"no keyspace {k!r} in the VSchema")
        out["keyspaces"] = frozenset(ks)
    if "clients" in body and (nets := _strings(c, body["clients"], join_path(path, "clients"), "CIDR blocks")):
        networks = []
        for j, text in enumerate(nets):
            try:
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as exc:
                c.problem(join_path(path, "clients", j), f"{text!r} is not a CIDR block: {exc}")
        out["clients"] = tuple(networks)
    if "tables" in body and (globs := _strings(c, body["tables"], join_path(path, "tables"), "table globs")):
        for j, text in enumerate(globs):
            if "[" in text or "]" in text:
                c.problem(join_path(path, "tables", j), f"{text!r}: character classes are not supported "
                                                        "(use * and ?)")
        out["tables"] = tuple(TablePattern.glob(g) for g in globs)
    if "kinds" in body and (kinds := _strings(c, body["kinds"], join_path(path, "kinds"), "statement kinds")):
        for j, k in enumerate(kinds):
            if k not in KINDS:
                c.problem(join_path(path, "kinds", j), f"unknown statement kind {k!r}{suggest(k, KINDS)}")
        out["kinds"] = frozenset(kinds)
    if "fingerprints" in body and (fps := _strings(c, body["fingerprints"], join_path(path, "fingerprints"),
                                                    "fingerprints")):
        out["fingerprints"] = frozenset(fps)
    if "sql" in body:
        regex = c.string(body["sql"], join_path(path, "sql"))
        if regex is not None:
            try:
                out["sql"] = re.compile(regex)
            except re.error as exc:
                c.problem(join_path(path, "sql"), f"invalid regular expression: {exc}")
    if "binds" in body and (conds := _strings(c, body["binds"], join_path(path, "binds"), "bind conditions")):
        parsed = []
        for j, text in enumerate(conds):
            try:
                parsed.append(parse_condition(text))
            except ValueError as exc:
                c.problem(join_path(path, "binds", j), f"{text!r}: {exc}")
        out["binds"] = tuple(parsed)
    return out
