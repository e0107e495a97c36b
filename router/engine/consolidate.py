"""Query consolidation (Vitess's consolidator): identical reads in flight share one backend execution.

A read is shared when it is the same final SQL with the same bind values, sent to the same shard in the same role,
under the same session settings, outside a transaction. The first request (the leader) runs it; requests that
arrive while it runs (followers) wait for its answer instead of sending their own. Then:

- The leader materialises what it reads (rows for the engine, raw wire messages for the PostgreSQL passthrough)
  up to ``max_rows`` / ``max_bytes``. Past that the execution is not shared: followers run their own statement,
  and the key is remembered as large for ``large_ttl`` seconds so the next ones do not wait for nothing.
- An error the statement itself raised reaches every follower. When the leader goes away without an answer (its
  client cancelled or timed out, it stopped reading early), followers run their own statement: nothing that was
  about the leader's own session reaches them.
- Write-aware: every flight has a sequence number; a session records the sequence at which it last wrote each
  table (``tick()``), and a read of that table joins only flights that started after the write
  (``floor``). A flight whose deadline comes before the follower's is not joined either.
- ``max_waiters`` caps the followers of one flight (the rest run their own); per-table and per-user switches
  (``tables``/``users``: a name or glob, True or False) decide what may be consolidated at all.

Statements with side effects or session-bound results (``FOR UPDATE``, ``nextval``, advisory locks,
``GET_LOCK``…) are never consolidated.
"""
from __future__ import annotations

import asyncio
import fnmatch
import itertools
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sharding.errors import QueryCanceledError, QueryTimeoutError

__all__ = ["ConsolidationConfig", "Consolidator", "Flight", "NOT_SHARED", "Scope", "shareable_sql"]

# Reads whose result depends on, or changes, per-connection or per-call state: each caller must run its own.
_UNSHAREABLE = re.compile(
    r"\bfor\s+(?:update|share|no\s+key\s+update|key\s+share)\b|\block\s+in\s+share\s+mode\b|"
    r"\b(?:nextval|setval|currval|lastval|last_insert_id|get_lock|release_lock|release_all_locks|is_used_lock|"
    r"is_free_lock|pg_advisory\w*|pg_try_advisory\w*|set_config|txid_current\w*|pg_current_xact_id\w*|"
    r"dblink\w*|lo_\w+|connection_id|pg_backend_pid|found_rows|row_count)\b|\binto\b|@",
    re.IGNORECASE)


def shareable_sql(sql: str) -> bool:
    """Whether a read's text may be answered by another caller's execution."""
    return _UNSHAREABLE.search(sql) is None


class _NotShared:
    def __repr__(self) -> str:
        return "NOT_SHARED"


NOT_SHARED: Any = _NotShared()  # what followers get when they must run the statement themselves


@dataclass(frozen=True, slots=True)
class ConsolidationConfig:
    enabled: bool = True
    max_waiters: int = 1000  # followers of one flight; more run their own statement
    max_rows: int = 10_000  # a result larger than this is not shared (it would be held in memory)
    max_bytes: int = 8 * 1024 * 1024  # the same for relayed wire bytes (PostgreSQL passthrough)
    large_ttl: float = 10.0  # seconds a key found too large is run unshared
    tables: Mapping[str, bool] = field(default_factory=dict)  # "keyspace.table" or glob -> on/off
    users: Mapping[str, bool] = field(default_factory=dict)  # user name or glob -> on/off


@dataclass(slots=True)
class Counters:
    hits: int = 0  # followers answered by another's execution
    leaders: int = 0  # executions that followers could join
    unshared: int = 0  # followers sent back to run their own (too large, leader gone)
    capped: int = 0  # requests that found a flight full (max_waiters)
    too_large: int = 0  # flights that outgrew max_rows / max_bytes
    errors_shared: int = 0  # followers that got the execution's error


class Flight:
    """One execution that followers may join. The leader feeds it and ends it with exactly one of ``finish``,
    ``fail`` or ``abandon`` (``close`` in a ``finally`` abandons one that was not ended).

    The future followers wait on is made when the first one joins: most reads are never joined, and a future
    per statement is measurable on a point select."""

    __slots__ = ("_bytes", "_ended", "_owner", "_rows", "deadline", "future", "key", "seq", "waiters")

    def __init__(self, owner: Consolidator, key: Any, seq: int, deadline: float | None) -> None:
        self._owner = owner
        self.key = key
        self.seq = seq
        self.deadline = deadline
        self.waiters = 0
        self.future: asyncio.Future[Any] | None = None
        self._ended = False
        self._rows = 0
        self._bytes = 0

    @property
    def open(self) -> bool:
        return not self._ended

    def join(self) -> None:
        """One more follower (``Consolidator.lead_or_follow``): it will wait on ``future``."""
        self.waiters += 1
        if self.future is None:
            self.future = asyncio.get_running_loop().create_future()

    def grow(self, rows: int = 0, nbytes: int = 0) -> bool:
        """Count what the leader materialised; False (and the flight is no longer shared) past the caps."""
        if self._ended:
            return False
        self._rows += rows
        self._bytes += nbytes
        cfg = self._owner.config
        if self._rows > cfg.max_rows or self._bytes > cfg.max_bytes:
            self._owner.counters.too_large += 1
            self._owner.mark_large(self.key)
            self.abandon()
            return False
        return True

    def _end(self, result: Any = None, exc: BaseException | None = None) -> None:
        if not self._ended:
            self._ended = True
            future = self.future
            if future is not None and not future.done():
                if exc is not None:
                    future.set_exception(exc)
                    future.exception()  # retrieved: no "never retrieved" warning when every follower left
                else:
                    future.set_result(result)
        self._owner._end(self)

    def finish(self, result: Any) -> None:
        self._end(result)

    def fail(self, exc: BaseException) -> None:
        """The statement failed: followers get the same error, unless it was about the leader's own session (its
        deadline, its cancel), in which case they run their own."""
        if isinstance(exc, (QueryTimeoutError, QueryCanceledError, asyncio.CancelledError)) \
                or not isinstance(exc, Exception):
            self.abandon()
            return
        self._end(exc=exc)

    def abandon(self) -> None:
        self._end(NOT_SHARED)

    def close(self) -> None:
        if not self._ended:
            self.abandon()


@dataclass(frozen=True, slots=True)
class Scope:
    """What one statement may share: its read tables' write floor (see the module docstring)."""

    floor: int
    settings: Any = None  # the session settings a shard connection would carry for it (part of the key)


class Consolidator:
    """The flights in progress, by key (see the module docstring)."""

    def __init__(self, config: ConsolidationConfig | None = None,
                 source: Callable[[], ConsolidationConfig | None] | None = None) -> None:
        self._config = config or ConsolidationConfig()
        self._source = source  # the config in force (the gateway's, which RELOAD replaces); None: fixed
        self._seen: Any = None
        self.counters = Counters()
        self._flights: dict[Any, Flight] = {}
        self._large: dict[Any, float] = {}
        self._texts: dict[str, bool] = {}  # fingerprint -> shareable_sql of its text
        self._fast: dict[Any, int] = {}  # fast-path executions running, by (server, text)
        self._seq = itertools.count(1)
        self._metric: Any = _metric_counter()

    # --- switches ------------------------------------------------------------------------------------------------
    @property
    def config(self) -> ConsolidationConfig:
        if self._source is not None:
            current = self._source()
            if current is not self._seen:
                self._seen = current
                self._config = current or ConsolidationConfig()
        return self._config

    def reconfigure(self, config: ConsolidationConfig) -> None:
        self._source = None
        self._config = config

    def allowed(self, user: str, tables: Iterable[str]) -> bool:
        cfg = self.config
        if not cfg.enabled or not _switch(cfg.users, user, True):
            return False
        return all(_switch(cfg.tables, t, True) for t in tables)

    def tick(self) -> int:
        """A sequence number later than every flight started so far (a session's write mark)."""
        return next(self._seq)

    def scope(self, user: str, tables: Iterable[str], marks: Mapping[str, int]) -> Scope | None:
        """The sharing scope of a read statement by ``user`` over ``tables`` (None: not consolidated)."""
        tables = tuple(tables)
        if not self.allowed(user, tables):
            return None
        return Scope(max((marks.get(t, 0) for t in tables), default=0))

    def shareable(self, fingerprint: str, sql: str) -> bool:
        """``shareable_sql`` of a statement, remembered by its fingerprint (the regex costs ~7 µs a statement)."""
        ok = self._texts.get(fingerprint)
        if ok is None:
            if len(self._texts) >= 4096:
                self._texts.clear()
            ok = self._texts[fingerprint] = shareable_sql(sql)
        return ok

    # A fast path that relays bytes without materialising them (the MySQL frontend's passthrough) does not lead
    # flights; it registers what it runs, and an identical read arriving meanwhile takes the engine path instead,
    # where it leads a flight that the next ones join.
    def fast_enter(self, key: Any) -> None:
        self._fast[key] = self._fast.get(key, 0) + 1

    def fast_leave(self, key: Any) -> None:
        n = self._fast.get(key, 0) - 1
        if n > 0:
            self._fast[key] = n
        else:
            self._fast.pop(key, None)

    def fast_busy(self, key: Any) -> bool:
        return key in self._fast

    def in_flight(self) -> int:
        return len(self._flights)

    # --- flights -------------------------------------------------------------------------------------------------
    def lead_or_follow(self, key: Any, scope: Scope, deadline: float | None) -> tuple[Flight | None, Flight | None]:
        """``(lead, None)``: run it and feed ``lead``; ``(None, follow)``: ``await wait(follow, …)``;
        ``(None, None)``: run it unshared."""
        if self._is_large(key):
            return None, None
        flight = self._flights.get(key)
        if flight is not None and flight.open and flight.seq > scope.floor \
                and (flight.deadline is None or (deadline is not None and flight.deadline >= deadline)):
            if flight.waiters >= self.config.max_waiters:
                self.counters.capped += 1
                return None, None
            flight.join()
            return None, flight
        if flight is not None and flight.open:
            return None, None  # one is running that this caller may not join: run unshared, leave it alone
        flight = Flight(self, key, next(self._seq), deadline)
        self._flights[key] = flight
        self.counters.leaders += 1
        return flight, None

    async def wait(self, flight: Flight, timeout: float | None) -> Any:
        """The leader's result, or ``NOT_SHARED``; raises the statement's error. ``timeout``: the follower's.
        ``flight`` came from ``lead_or_follow`` as one to follow."""
        future = flight.future
        assert future is not None
        try:
            if timeout is None:
                result = await asyncio.shield(future)
            else:
                async with asyncio.timeout(timeout):
                    result = await asyncio.shield(future)
        except Exception:
            if future.done() and not future.cancelled() and future.exception() is not None:
                self.counters.errors_shared += 1
            raise
        finally:
            flight.waiters -= 1
        if result is NOT_SHARED:
            self.counters.unshared += 1
        else:
            self.counters.hits += 1
            if self._metric is not None:
                self._metric.inc()
        return result

    def _end(self, flight: Flight) -> None:
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]

    def mark_large(self, key: Any) -> None:
        now = time.monotonic()
        if len(self._large) >= 4096:
            self._large = {k: t for k, t in self._large.items() if t > now}
            if len(self._large) >= 4096:
                self._large.clear()
        self._large[key] = now + self.config.large_ttl

    def _is_large(self, key: Any) -> bool:
        until = self._large.get(key)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._large[key]
        return False

    def stats(self) -> dict[str, int]:
        c = self.counters
        return {"hits": c.hits, "leaders": c.leaders, "unshared": c.unshared, "capped": c.capped,
                "too_large": c.too_large, "errors_shared": c.errors_shared, "in_flight": len(self._flights)}


def _switch(rules: Mapping[str, bool], name: str, default: bool) -> bool:
    if not rules:
        return default
    hit = rules.get(name)
    if hit is not None:
        return bool(hit)
    for pattern, on in rules.items():
        if fnmatch.fnmatchcase(name, pattern):
            return bool(on)
    return default


def _metric_counter() -> Any:
    """``router.metrics``'s ``consolidation_hits`` counter when that module provides one (None otherwise)."""
    try:
        from router import metrics  # type: ignore[attr-defined]
    except ImportError:
        return None
    counter = getattr(metrics, "consolidation_hits", None)
    return counter if counter is not None and hasattr(counter, "inc") else None


def hashable_key(*parts: Any) -> Any:
    """``parts`` as a dict key, or None when a value cannot be one (then the read is not consolidated). Values
    carry their type: ``1`` and ``True`` are equal in Python but not to a database."""
    key = tuple(tuple((type(v).__name__, v) for v in p) if isinstance(p, list) else p for p in parts)
    try:
        hash(key)
    except TypeError:
        return None
    return key


# --- what a session does around each statement (router.engine.session) ------------------------------------------
def _settings_key(session: Any) -> Any:
    """The session settings that could change a shard's answer once applied to its connection (the settings the
    session's connections replay, its sql_mode)."""
    backend = getattr(session, "backend", None)
    replayed = getattr(backend, "settings", None)
    return (session.state.sql_mode, tuple(sorted(replayed.items())) if replayed else ())


def read_scope(session: Any, bound: Any) -> Scope | None:
    """The sharing scope of a statement (a ``BoundPlan``) about to run outside a transaction (None: not
    consolidated). A session pinned to its own connections (temporary tables, session variables the router cannot
    replay) reads state that no other session has: never consolidated."""
    cons = getattr(session.host, "consolidator", None)
    plan = bound.plan
    if cons is None or plan.kind != "select" or not cons.shareable(bound.fingerprint, bound.sql):
        return None
    backend = getattr(session, "backend", None)
    if backend is not None and (getattr(backend, "pins", None) or getattr(backend, "session_sets", None)):
        return None
    tables = plan.tables
    if not cons.allowed(session.state.user, tables):
        return None
    marks = session.write_marks
    floor = max((marks.get(t, 0) for t in tables), default=0) if marks else 0
    return Scope(floor, _settings_key(session))


def after_statement(session: Any, plan: Any) -> None:
    """Record the tables a statement may have written (any kind but a plain read); inside a transaction they are
    recorded again when it ends, since others see the writes only then."""
    cons = getattr(session.host, "consolidator", None)
    if cons is None:
        return
    if plan.kind != "select" and plan.tables:
        seq = cons.tick()
        for table in plan.tables:
            session.write_marks[table] = seq
        if session.tx is not None:
            session.tx_written.update(plan.tables)
    if session.tx is None and session.tx_written:
        seq = cons.tick()
        for table in session.tx_written:
            session.write_marks[table] = seq
        session.tx_written.clear()
