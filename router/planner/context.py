"""What planning reads: the session's view, the snapshot, and the statement's extracted values.

``SessionView`` is the planner's only window on a session (read-only, hashable: it is part of the cache key).
``PlanContext`` lives for one plan build; it records the literal-derived decisions (guards) the plan depends on.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sharding.snapshot import ClusterSnapshot
from sharding.vschema_model import VSchema


@dataclass(frozen=True, slots=True)
class SessionView:
    """Planner inputs from the session. ``dialect`` is the client's: ``mysql`` or ``postgres``."""

    dialect: str = "mysql"
    keyspace: str | None = None  # current keyspace (USE / the database of the connection)
    target: str | None = None  # shard or key range from ``USE `ks:-80```
    tablet_type: str = "primary"
    fingerprint_flags: int = 0  # ANSI_QUOTES, NO_BACKSLASH_ESCAPES, NO_STANDARD_CONFORMING_STRINGS
    user: str = ""
    allow_scatter_dml: bool = True  # config can forbid UPDATE/DELETE without a vindex predicate

    def cache_key(self) -> tuple[Any, ...]:
        return (self.dialect, self.keyspace, self.target, self.tablet_type, self.fingerprint_flags,
                self.allow_scatter_dml)


@dataclass(frozen=True, slots=True)
class NumbersDiffer:
    """A plan-time decision drawn from literals: ``left`` and ``right`` are numbers and differ (so
    ``id = 1 AND id = 2`` matches nothing). A cached plan is reused only when its guards hold for the new values;
    otherwise the statement is planned afresh (Vitess plans literals as bind variables and cannot take such
    shortcuts; we take them and check)."""

    left: Any  # ValueExpr
    right: Any  # ValueExpr

    def holds(self, binds: Sequence[Any]) -> bool:
        from router.planner.values import evaluate

        a, b = evaluate(self.left, binds), evaluate(self.right, binds)
        numeric = (int, float, Decimal)
        return (isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool)
                and not isinstance(b, bool) and a != b)


Guard = NumbersDiffer


@dataclass
class PlanContext:
    session: SessionView
    snapshot: ClusterSnapshot
    values: Sequence[Any]  # the fingerprint's values of the statement being planned
    original_sql: str
    normalized_sql: str
    guards: list[Guard] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def vschema(self) -> VSchema:
        return self.snapshot.vschema

    def backend_dialect(self, keyspace: str) -> str:
        """The SQL dialect of a keyspace's servers; the client's dialect when no backend is configured (offline
        planning with ``shardgate plan``)."""
        ks = self.snapshot.keyspaces.get(keyspace)
        if ks is not None and ks.shards:
            primary = ks.shards[0].backends.get("primary")
            engine = getattr(primary, "engine", None)
            if engine in ("mysql", "postgres"):
                return str(engine)
        return self.session.dialect

    def value_known(self, index: int) -> bool:
        """Whether the plan-time value of ``:v{index+1}`` is a real value (not a bind parameter marker)."""
        from cython_ext.fpvalues import Param

        v = self.values[index] if index < len(self.values) else None
        return not isinstance(v, Param) and not (isinstance(v, tuple) and any(isinstance(x, Param) for x in v))
