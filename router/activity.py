"""What each session is doing: the statement running now (``SHOW SHARDGATE QUERIES``), counters per fingerprint
(``SHOW SHARDGATE STATS``), the statement metrics (``router.metrics``) and the query log line.

``Session.stream`` calls ``begin`` before planning and ``finish`` when the statement ends (its rows read, an
error, or the client gone). A statement is known by its fingerprint, the normalized text with every literal
replaced by a placeholder, so neither the log nor the console ever shows a value a client sent.

Query log (logger ``shardgate.query``): every statement at DEBUG; failed statements at INFO (the error's class
and id, never its message: a backend's message may quote the row); slow ones (``SLOW_SECONDS``) at WARNING.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import cython_ext
from router import metrics
from sharding.errors import ShardgateError

__all__ = ["STATS", "Activity", "StatementStats", "begin", "error_code", "finish", "fingerprint_id", "identify"]

log = logging.getLogger("shardgate.query")
SLOW_SECONDS = 1.0
_MAX_FINGERPRINT_LOG = 2048  # longer normalized texts are cut in log lines
_MAX_STATS_KEY = 1024  # and in SHOW SHARDGATE STATS (which keeps up to 5,000 of them)
_FP = cython_ext.fingerprint
_FLAGS = {"mysql": _FP.MYSQL, "postgres": _FP.POSTGRES}


class Activity:
    """One statement in flight. ``targets``: the shards it reached so far (``BackendTarget``s)."""

    __slots__ = ("fingerprint", "kind", "rows", "started", "targets")

    def __init__(self) -> None:
        self.fingerprint = ""
        self.kind = "other"
        self.started = time.monotonic()
        self.targets: set[Any] = set()
        self.rows = 0

    def shard_names(self) -> list[str]:
        return sorted(f"{t.keyspace}/{t.shard}" for t in self.targets)


def fingerprint_of(sql: str, dialect: str) -> str:
    """The normalized text of ``sql`` (for a statement that failed before the planner gave one)."""
    try:
        return _FP.fingerprint(sql, _FLAGS.get(dialect, 0))[0]
    except Exception:
        return "<unparsable>"


def fingerprint_id(fingerprint: str) -> str:
    """A short stable id of a fingerprint (16 hex digits), to join log lines and stats."""
    return hashlib.blake2b(fingerprint.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def error_code(exc: BaseException) -> str:
    return exc.id if isinstance(exc, ShardgateError) else "SG0000"


@dataclass(slots=True)
class _FingerprintStats:
    kind: str
    calls: int = 0
    errors: int = 0
    rows: int = 0
    total_seconds: float = 0.0
    max_seconds: float = 0.0


@dataclass
class StatementStats:
    """Counters per fingerprint since start, at most ``capacity`` fingerprints (then the rest go to ``<other>``)."""

    capacity: int = 5000
    by_fingerprint: dict[str, _FingerprintStats] = field(default_factory=dict)

    def add(self, fingerprint: str, kind: str, seconds: float, rows: int, failed: bool) -> None:
        if len(fingerprint) > _MAX_STATS_KEY:  # memory: a huge text is kept as its head and its id
            fingerprint = f"{fingerprint[:_MAX_STATS_KEY]} … #{fingerprint_id(fingerprint)}"
        entry = self.by_fingerprint.get(fingerprint)
        if entry is None:
            if len(self.by_fingerprint) >= self.capacity:
                fingerprint = "<other>"
                entry = self.by_fingerprint.get(fingerprint)
            if entry is None:
                entry = self.by_fingerprint[fingerprint] = _FingerprintStats(kind)
        entry.calls += 1
        entry.rows += rows
        entry.total_seconds += seconds
        if seconds > entry.max_seconds:
            entry.max_seconds = seconds
        if failed:
            entry.errors += 1

    def rows(self) -> list[tuple[str, str, str, int, int, int, float, float, float]]:
        """(fingerprint id, kind, fingerprint, calls, errors, rows, total ms, mean ms, max ms), busiest first."""
        out = []
        for fp, e in self.by_fingerprint.items():
            mean = e.total_seconds / e.calls if e.calls else 0.0
            out.append((fingerprint_id(fp), e.kind, fp, e.calls, e.errors, e.rows, round(e.total_seconds * 1000, 3),
                        round(mean * 1000, 3), round(e.max_seconds * 1000, 3)))
        out.sort(key=lambda r: (-r[6], r[2]))
        return out

    def clear(self) -> None:
        self.by_fingerprint.clear()


STATS = StatementStats()  # one per process: the console shows this worker's statements


def identify(session: Any, protocol: str, peer: Any, conn_id: int | None) -> None:
    """Frontends name a session's protocol, client address (``peername``: a (host, port, …) tuple or a Unix
    socket path) and connection id, which the console and the query log show."""
    session.protocol = protocol
    session.conn_id = conn_id
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        session.client = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    else:
        session.client = str(peer or "local")


def begin(session: Any) -> Activity:
    act = Activity()
    session.current = act
    return act


def finish(session: Any, act: Activity, sql: str, exc: BaseException | None) -> None:
    """Record the statement ``act`` of ``session``: ``act.fingerprint`` and ``kind`` are set once it is planned;
    when planning failed the fingerprint is made from ``sql`` here."""
    if session.current is act:
        session.current = None
    seconds = time.monotonic() - act.started
    if exc is None:
        outcome = "ok"
    elif isinstance(exc, (asyncio.CancelledError, GeneratorExit)) or type(exc).__name__ == "ClientGone":
        outcome = "cancelled"
    else:
        outcome = "error"
    protocol = session.protocol
    kind = act.kind
    fingerprint = act.fingerprint
    if not fingerprint:
        fingerprint = act.fingerprint = fingerprint_of(sql, session.dialect)
    targets = act.targets
    keyspace = ""
    if targets:
        for t in targets:
            metrics.record_shard(t.keyspace, t.shard, t.role, outcome)
            keyspace = t.keyspace
        if len(targets) > 1 and len({t.keyspace for t in targets}) > 1:
            keyspace = "multi"
    else:
        keyspace = session.state.keyspace or ""
        snapshot = getattr(session.host, "_snapshot", None)
        if keyspace and snapshot is not None and keyspace not in snapshot.keyspaces:
            keyspace = "unknown"  # a USE of a keyspace that does not exist must not mint a label
    metrics.record_statement(protocol, kind, keyspace, outcome, seconds, act.rows)
    code = None
    if outcome == "error":
        assert exc is not None
        code = error_code(exc)
        metrics.record_error(protocol, code)
    STATS.add(fingerprint, kind, seconds, act.rows, outcome == "error")
    if outcome == "error":
        level = logging.INFO
    elif seconds >= SLOW_SECONDS:
        level = logging.WARNING
    else:
        level = logging.DEBUG
    if log.isEnabledFor(level):
        _log_statement(level, session, act, keyspace, outcome, seconds, code, exc)


def _log_statement(level: int, session: Any, act: Activity, keyspace: str, outcome: str, seconds: float,
                   code: str | None, exc: BaseException | None) -> None:
    fingerprint = act.fingerprint
    fields: dict[str, Any] = {
        "event": "query", "conn_id": session.conn_id, "session_id": session.id, "user": session.state.user,
        "protocol": session.protocol, "keyspace": keyspace, "kind": act.kind,
        "fingerprint": fingerprint[:_MAX_FINGERPRINT_LOG], "fingerprint_id": fingerprint_id(fingerprint),
        "shards": act.shard_names(), "duration_ms": round(seconds * 1000, 3), "rows": act.rows,
        "outcome": outcome,
    }
    if code is not None and exc is not None:
        fields["error_code"] = code
        fields["error"] = type(exc).__name__
    log.log(level, "query %s %s in %.3f ms (%s)", act.kind, outcome, seconds * 1000, fields["fingerprint_id"],
            extra=fields)
