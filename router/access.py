"""Enforcing table ACLs (``router.acl``) and query rules (``router.rules``) on statements of client sessions.

``AccessPolicy`` bundles one config's users, ACLs and rules; the gateway holds one (``gateway.access``) and RELOAD
swaps it for a new one in one assignment, so a statement is judged entirely by the old or entirely by the new.

Where it runs (``router.engine.session.Session.authorize`` is the one hook): every statement a session plans, after
planning and before anything executes: the simple and extended PostgreSQL protocols, MySQL text and prepared
statements, VEXPLAIN's inner statement, and the PostgreSQL single-shard fast path (``passthrough``, which plans
the statement itself and asks the session before forwarding). Statements a frontend sends without a plan
(PostgreSQL catalog queries the planner cannot read, VACUUM / ANALYZE, Describe of a statement) go through
``check_unplanned`` / ``Session.check_text``. Sessions of the embedded Python API carry no user: the embedding
program is trusted, so ACLs do not apply to them (rules do).

Rule settings (``Decision``): ``row_limit`` makes a statement that returns more rows fail with
``ResourceLimitError`` ("Row count exceeded N"), as Vitess's vttablet does with its max result size, instead of
silently truncating (a client could not tell a partial answer from a whole one); ``timeout_ms`` bounds the
statement (the smaller of it and the session's own timeout); ``route: replica`` sends reads outside a transaction to
replicas when every shard involved has one (writes and transactions stay on the primary); ``log`` writes one
structured line (``shardgate.rules``) with the user, client, kind, tables, fingerprint and matched rules, never a
literal value (statements of our own, whose text may hold values, log only their kind).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cython_ext
from cython_ext.fpvalues import FingerprintError
from router.acl import Acl, RowFilter
from router.planner import BoundPlan
from router.planner.plan import Opcode, Plan, Route, SingleRow
from router.rules import ALLOW, Decision, RuleRequest, Rules, evaluate
from sharding.config import ClusterConfig, UserConfig
from sharding.errors import PermissionDeniedError, ResourceLimitError

__all__ = ["AccessPolicy", "GuardedRows", "guard_rows", "log_decision"]

log = logging.getLogger("shardgate.rules")
_fp = cython_ext.fingerprint


@dataclass(frozen=True)
class AccessPolicy:
    """The users, table ACLs and query rules of one config. Immutable: RELOAD builds a new one."""

    acl: Acl | None = None
    rules: Rules = field(default_factory=Rules)
    users: Mapping[str, UserConfig] = field(default_factory=dict)
    # (id(plan), user) -> the plan, for plans the ACL let the user run. Plans are cached and shared, and the ACL's
    # verdict on a plan depends on nothing else (but DBA routes, judged on their values, which are not kept).
    _passed: dict[tuple[int, str], Plan] = field(default_factory=dict, init=False, repr=False, compare=False)

    @staticmethod
    def of(config: ClusterConfig) -> AccessPolicy:
        acl, rules = config.sections.get("acl"), config.sections.get("rules")  # router.config_sections
        return AccessPolicy(acl if isinstance(acl, Acl) else None, rules if isinstance(rules, Rules) else Rules(),
                            {u.name: u for u in config.users})

    def _who(self, user: str) -> UserConfig | str:
        return self.users.get(user) or user

    def row_filter(self, bound: BoundPlan, user: str) -> RowFilter | None:
        """The filter of a table listing (``SHOW TABLES``) for ``user``, or None."""
        if self.acl is None or not user:
            return None
        return self.acl.row_filter(self._who(user), bound)

    # --- planned statements -------------------------------------------------------------------------------------
    def authorize(self, bound: BoundPlan, *, user: str, client_addr: str | None, keyspace: str | None,
                  params: Any = None, backend_dialect: Any = None, log_it: bool = True) -> Decision:
        """Raise ``PermissionDeniedError`` when the ACLs or a rule refuse the statement; else the rules'
        settings. ``user`` "" (the embedded API) skips the ACLs."""
        if self.acl is not None and user:
            plan = bound.plan
            key = (id(plan), user)
            if self._passed.get(key) is not plan:
                try:
                    self.acl.check(self._who(user), bound, backend_dialect=backend_dialect)
                except PermissionDeniedError:
                    if log_it:
                        log_decision("acl_denied", plan, user=user, client_addr=client_addr,
                                     fingerprint=bound.fingerprint, rules=())
                    raise
                root = plan.root
                # Statements of our own are planned afresh each time (no fingerprint): not worth keeping.
                if bound.fingerprint and not (isinstance(root, Route) and root.routing.opcode is Opcode.DBA):
                    if len(self._passed) >= 16384:
                        self._passed.clear()
                    self._passed[key] = plan
        if not self.rules.rules:
            return ALLOW
        request = RuleRequest.of(bound, user=user, client_addr=client_addr, keyspace=keyspace, params=params)
        decision = evaluate(self.rules, request)
        if decision.log and log_it:
            log_decision("query_rule" if decision.allow else "query_rule_denied", bound.plan, user=user,
                         client_addr=client_addr, fingerprint=bound.fingerprint, rules=decision.matched)
        return decision.enforce()

    # --- statements a frontend sends without a plan ---------------------------------------------------------------
    def check_unplanned(self, sql: str, *, user: str, client_addr: str | None, keyspace: str, kind: str,
                        dialect: str = "postgres") -> None:
        """As ``authorize`` for a statement that runs as written on ``keyspace``'s shards without a plan (a
        catalog query, VACUUM): the ACLs allow it to restricted users only as a pinned catalog read
        (``Acl.check_unplanned``); the rules see it as a statement of ``kind`` without tables."""
        if self.acl is not None and user:
            self.acl.check_unplanned(self._who(user), sql, keyspace=keyspace, dialect=dialect)
        if not self.rules.rules:
            return
        try:
            fingerprint, values = _fp.fingerprint(sql, _fp.POSTGRES if dialect == "postgres" else _fp.MYSQL)
        except FingerprintError:
            fingerprint, values = "", []
        plan = Plan(SingleRow(), kind)
        bound = BoundPlan(plan, list(values), sql, fingerprint)
        request = RuleRequest.of(bound, user=user, client_addr=client_addr, keyspace=keyspace)
        decision = evaluate(self.rules, request)
        if decision.log:
            log_decision("query_rule" if decision.allow else "query_rule_denied", plan, user=user,
                         client_addr=client_addr, fingerprint=fingerprint, rules=decision.matched)
        decision.enforce()


def log_decision(event: str, plan: Plan, *, user: str, client_addr: str | None, fingerprint: str,
                 rules: tuple[str, ...]) -> None:
    """One structured line: the fingerprint (literals replaced), never the statement's text or values."""
    shown = fingerprint or f"<{plan.kind} statement>"
    fields = {"event": event, "user": user, "client_addr": client_addr or "", "kind": plan.kind,
              "tables": list(plan.tables), "fingerprint": shown, "rules": list(rules)}
    log.info("%s user=%s client=%s kind=%s tables=%s rules=%s fingerprint=%s", event, user, client_addr or "-",
             plan.kind, ",".join(plan.tables) or "-", ",".join(rules) or "-", shown, extra=fields)


def guard_rows(ex: Any, decision: Decision, row_filter: RowFilter | None) -> Any:
    """``ex`` wrapped to apply a rule's ``row_limit`` and the ACL's ``SHOW TABLES`` filter, or ``ex`` itself."""
    if decision.row_limit is None and row_filter is None:
        return ex
    return GuardedRows(ex, decision.row_limit, decision.matched, row_filter)


class GuardedRows:
    """An execution whose rows pass the ACL's listing filter (``Acl.row_filter``: ``SHOW TABLES`` shows only
    tables the user may read) and that fails with ``ResourceLimitError`` once it has returned more than ``limit``
    rows (a query rule's ``row_limit``). Everything else is the wrapped execution's."""

    def __init__(self, inner: Any, limit: int | None, rules: tuple[str, ...], row_filter: RowFilter | None) -> None:
        self._inner = inner
        self._limit = limit
        self._rules = rules
        self._filter = row_filter
        self._seen = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __aiter__(self) -> GuardedRows:
        return self

    async def __anext__(self) -> list[Any]:
        while True:
            batch = await self._inner.__anext__()
            if self._filter is not None:
                batch = [row for row in batch if self._filter.keep(row)]
                if not batch:
                    continue
            break
        if self._limit is not None:
            self._seen += len(batch)
            if self._seen > self._limit:
                raise ResourceLimitError(f"Row count exceeded {self._limit} (row_limit of query rule "
                                         f"{', '.join(self._rules) or '?'})")
        return batch

    async def fetchall(self) -> list[Any]:
        rows: list[Any] = []
        try:
            async for batch in self:
                rows.extend(batch)
        finally:
            await self._inner.close()
        return rows
