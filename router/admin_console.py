"""The admin console: ``SHOW SHARDGATE POOLS | CLIENTS | QUERIES | STATS``, answered by the router over either
protocol to users with the admin role (``Session._admin_show`` checks the role, then calls ``answer``).

- POOLS: one row per backend pool (keyspace, shard, role) with its gauges and counters (``PoolStats``).
- CLIENTS: one row per session of this process: ids, user, protocol, client address, keyspace, whether a
  transaction is open, the fingerprint of the statement running now, age.
- QUERIES: the statements running now: session, fingerprint, the shards reached so far, elapsed time.
- STATS: per fingerprint since start: calls, errors, rows, total / mean / max latency.

Statements are shown by fingerprint (literals replaced by placeholders), never as sent. ``LIKE 'pattern'``
filters on the first column (keyspace, user, user, fingerprint). Each worker of ``shardgate serve --workers N``
answers for itself. ``answer`` returns the columns and row tuples; nothing here does I/O. The columns are fixed
per statement (``columns``), so the PostgreSQL frontend can describe a prepared SHOW without running it.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from router.activity import STATS
from sharding.errors import UnsupportedError

if TYPE_CHECKING:
    from router.backend.result import Column

__all__ = ["ADMIN_SHOWS", "ANSWERS", "answer", "columns"]

Rows = list[tuple[Any, ...]]
Answer = Callable[[Any], Rows]
_T, _I, _F, _B = "", 0, 0.0, False  # sample values: text, bigint, double, bool columns
_COLUMNS: dict[str, tuple[tuple[str, Any], ...]] = {
    "shardgate_pools": (("keyspace", _T), ("shard", _T), ("role", _T), ("size", _I), ("idle", _I), ("in_use", _I),
                        ("opening", _I), ("waiters", _I), ("max_size", _I), ("acquired", _I), ("timeouts", _I),
                        ("connect_errors", _I), ("created", _I), ("discarded", _I), ("down", _B),
                        ("last_error", _T)),
    "shardgate_clients": (("user", _T), ("session_id", _I), ("conn_id", _I), ("protocol", _T), ("client", _T),
                          ("keyspace", _T), ("in_transaction", _B), ("state", _T), ("statement", _T), ("age_s", _F)),
    "shardgate_queries": (("user", _T), ("session_id", _I), ("conn_id", _I), ("protocol", _T), ("kind", _T),
                          ("statement", _T), ("shards", _T), ("elapsed_ms", _F)),
    "shardgate_stats": (("statement", _T), ("fingerprint_id", _T), ("kind", _T), ("calls", _I), ("errors", _I),
                        ("rows", _I), ("total_ms", _F), ("mean_ms", _F), ("max_ms", _F)),
}
_COLUMN_CACHE: dict[str, tuple[Column, ...]] = {}


def columns(kind: str) -> tuple[Column, ...]:
    """The result columns of the admin SHOW ``kind`` (``shardgate_pools`` …)."""
    cols = _COLUMN_CACHE.get(kind)
    if cols is None:
        from router.engine.runtime import synthetic_column  # router.engine imports this module

        cols = _COLUMN_CACHE[kind] = tuple(synthetic_column(n, sample) for n, sample in _COLUMNS[kind])
    return cols


def _sessions(session: Any) -> list[Any]:
    sessions = getattr(session.host, "_sessions", None)
    found = list(sessions) if sessions is not None else []
    if session not in found:
        found.append(session)
    return sorted(found, key=lambda s: s.id)


def _pools(session: Any) -> Rows:
    rows = []
    for st in session.host.pools.stats():
        keyspace, _, rest = st.target.partition("/")
        shard, _, role = rest.rpartition("/")
        rows.append((keyspace, shard, role, st.size, st.idle, st.in_use, st.opening, st.waiters, st.max_size,
                     st.acquired, st.timeouts, st.errors, st.created, st.discarded, st.down, st.last_error or ""))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return rows


def _clients(session: Any) -> Rows:
    now = time.time()
    rows = []
    for s in _sessions(session):
        current = s.current
        rows.append((s.state.user, s.id, s.conn_id, s.protocol, s.client, s.state.keyspace or "",
                     s.in_transaction, "active" if current is not None else "idle",
                     current.fingerprint if current is not None else "", round(now - s.created, 3)))
    return rows


def _queries(session: Any) -> Rows:
    now = time.monotonic()
    rows = []
    for s in _sessions(session):
        act = s.current
        if act is None:
            continue
        rows.append((s.state.user, s.id, s.conn_id, s.protocol, act.kind, act.fingerprint,
                     ",".join(act.shard_names()), round((now - act.started) * 1000, 3)))
    return rows


def _stats(session: Any) -> Rows:
    return [(fp, fid, kind, calls, errors, nrows, total, mean, peak)
            for fid, kind, fp, calls, errors, nrows, total, mean, peak in STATS.rows()]


ANSWERS: dict[str, Answer] = {
    "shardgate_pools": _pools,
    "shardgate_clients": _clients,
    "shardgate_queries": _queries,
    "shardgate_stats": _stats,
}
ADMIN_SHOWS = frozenset(ANSWERS)


def answer(session: Any, stmt: Any) -> tuple[tuple[Column, ...], Rows]:
    """The columns and rows of the admin SHOW ``stmt`` (a ``router.planner.special.Show``) for ``session``."""
    if stmt.where:
        raise UnsupportedError(f"SHOW {_title(stmt.kind)} ... WHERE is not supported (use LIKE 'pattern')")
    rows = ANSWERS[stmt.kind](session)
    if stmt.like is not None:
        rx = _like(stmt.like)
        rows = [r for r in rows if rx.fullmatch(str(r[0])) is not None]
    return columns(stmt.kind), rows


def _title(kind: str) -> str:
    return kind.upper().replace("_", " ", 1)


def _like(pattern: str) -> re.Pattern[str]:
    out = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)
