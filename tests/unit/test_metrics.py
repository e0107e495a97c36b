"""``router.metrics``, ``router.logs`` (the JSON formatter), ``router.activity`` and ``router.admin_console``
without servers: counters move once per statement, cached label children, the pool and connection collectors,
log lines that carry fingerprints and redact secrets, and the console's rows."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from router import activity, admin_console, metrics
from router.backend.connection import BackendTarget
from router.backend.pool_config import PoolStats
from router.http_endpoints import HttpEndpoints, Readiness
from router.logs import REDACTED, JsonFormatter, configure
from sharding.errors import BackendError, SyntaxError_, UnsupportedError


def sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


# --- metrics ------------------------------------------------------------------------------------------------------
def test_record_statement_counts_latency_and_rows() -> None:
    labels = {"protocol": "unit", "kind": "select", "keyspace": "ks_unit", "outcome": "ok"}
    metrics.record_statement("unit", "select", "ks_unit", "ok", 0.002, 5)
    metrics.record_statement("unit", "select", "ks_unit", "ok", 0.2, 0)
    metrics.record_statement("unit", "select", "ks_unit", "error", 0.005, 0)  # on a bound: counted "le" it
    assert sample("shardgate_queries_total", **labels) == 2
    assert sample("shardgate_queries_total", **{**labels, "outcome": "error"}) == 1
    assert sample("shardgate_rows_returned_total", protocol="unit", kind="select") == 5
    hist = {"protocol": "unit", "kind": "select"}
    assert sample("shardgate_query_duration_seconds_bucket", **hist, le="0.001") == 0
    assert sample("shardgate_query_duration_seconds_bucket", **hist, le="0.0025") == 1
    assert sample("shardgate_query_duration_seconds_bucket", **hist, le="0.005") == 2
    assert sample("shardgate_query_duration_seconds_bucket", **hist, le="0.25") == 3
    assert sample("shardgate_query_duration_seconds_bucket", **hist, le="+Inf") == 3
    assert sample("shardgate_query_duration_seconds_count", **hist) == 3
    assert sample("shardgate_query_duration_seconds_sum", **hist) == pytest.approx(0.207)
    metrics.record_shard("ks_unit", "-80", "primary", "ok")
    metrics.record_shard("ks_unit", "-80", "primary", "ok")
    assert sample("shardgate_shard_queries_total", keyspace="ks_unit", shard="-80", role="primary", outcome="ok") == 2


def test_counters_others_increment() -> None:
    before = sample("shardgate_pins_total", reason="temporary_table")
    metrics.pin("temporary_table")
    metrics.PINS.labels("temporary_table").inc()
    assert sample("shardgate_pins_total", reason="temporary_table") == before + 2
    hits = sample("shardgate_consolidation_hits_total")
    metrics.CONSOLIDATION_HITS.inc()
    assert sample("shardgate_consolidation_hits_total") == hits + 1
    metrics.consolidation_hits.inc()  # the alias router.engine.consolidate uses
    assert sample("shardgate_consolidation_hits_total") == hits + 2
    waiting = sample("shardgate_buffered_requests")
    resumed = sample("shardgate_buffered_requests_handled_total", outcome="resumed")
    metrics.buffer_wait_started()
    assert sample("shardgate_buffered_requests") == waiting + 1
    metrics.buffer_wait_ended("resumed")
    assert sample("shardgate_buffered_requests") == waiting
    assert sample("shardgate_buffered_requests_handled_total", outcome="resumed") == resumed + 1
    metrics.record_error("postgres", "SG2001")
    assert sample("shardgate_errors_total", protocol="postgres", code="SG2001") >= 1


def _stats(target: str, **kw: Any) -> PoolStats:
    base = dict(size=3, idle=1, in_use=2, opening=0, waiters=4, max_size=10, generation=0, acquired=7, timeouts=1,
                errors=0, created=3, discarded=0, down=False)
    base.update(kw)
    return PoolStats(target=target, **base)  # type: ignore[arg-type]


class _Pools:
    def __init__(self, stats: list[PoolStats]) -> None:
        self._stats = stats

    def stats(self) -> list[PoolStats]:
        return self._stats


class _Gateway:  # weakly referenced by router.metrics, as the real Gateway is
    def __init__(self, pools: _Pools) -> None:
        self.pools = pools


def test_pool_and_connection_gauges_are_read_at_scrape_time() -> None:
    gw = _Gateway(_Pools([_stats("unitks/-80/primary"), _stats("unitks/80-/replica", down=True)]))
    metrics.track_gateway(gw)
    open_now = [2]
    metrics.track_frontend("unitproto", lambda: open_now[0], lambda: 9)
    try:
        assert sample("shardgate_pool_in_use", keyspace="unitks", shard="-80", role="primary") == 2
        assert sample("shardgate_pool_waiters", keyspace="unitks", shard="-80", role="primary") == 4
        assert sample("shardgate_pool_down", keyspace="unitks", shard="80-", role="replica") == 1
        assert sample("shardgate_pool_timeouts_total", keyspace="unitks", shard="-80", role="primary") == 1
        assert sample("shardgate_client_connections", protocol="unitproto") == 2
        open_now[0] = 5
        assert sample("shardgate_client_connections", protocol="unitproto") == 5
        assert sample("shardgate_client_connections_accepted_total", protocol="unitproto") == 9
        text = metrics.exposition().decode()
        assert 'shardgate_pool_size{keyspace="unitks",role="primary",shard="-80"} 3.0' in text
    finally:
        metrics.untrack_frontend("unitproto")
        metrics._gateways.discard(gw)


# --- activity: one statement, start to finish ------------------------------------------------------------------------
@dataclass
class _State:
    user: str = "alice"
    keyspace: str | None = "ks_act"


@dataclass
class _Session:
    state: _State = field(default_factory=_State)
    protocol: str = "postgres"
    dialect: str = "postgres"
    conn_id: int | None = 42
    id: int = 1
    client: str = "127.0.0.1:5555"
    created: float = 0.0
    current: Any = None
    in_transaction: bool = False
    host: Any = None


def test_finish_records_metrics_stats_and_a_log_line_without_literals(caplog: pytest.LogCaptureFixture) -> None:
    activity.STATS.clear()  # the process-wide table may be full (capacity) after the suites that ran before
    s = _Session()
    act = activity.begin(s)
    assert s.current is act
    sql = "SELECT * FROM t WHERE secret_col = 'hunter2' AND id = 77"
    act.kind = "select"
    act.targets.add(BackendTarget("ks_act", "-80"))
    act.rows = 3
    before = sample("shardgate_shard_queries_total", keyspace="ks_act", shard="-80", role="primary", outcome="error")
    with caplog.at_level(logging.DEBUG, logger="shardgate.query"):
        activity.finish(s, act, sql, BackendError("duplicate key (id)=(hunter2)"))
    assert s.current is None
    assert sample("shardgate_shard_queries_total", keyspace="ks_act", shard="-80", role="primary",
                  outcome="error") == before + 1
    assert sample("shardgate_errors_total", protocol="postgres", code="SG4002") >= 1
    (record,) = [r for r in caplog.records if r.name == "shardgate.query"]
    assert record.levelno == logging.INFO and record.outcome == "error" and record.error_code == "SG4002"
    assert "hunter2" not in record.fingerprint and "77" not in record.fingerprint
    assert "secret_col" in record.fingerprint
    line = JsonFormatter().format(record)
    assert "hunter2" not in line and json.loads(line)["shards"] == ["ks_act/-80"]
    entry = activity.STATS.by_fingerprint[act.fingerprint]
    assert entry.calls >= 1 and entry.errors >= 1 and entry.rows >= 3


def test_outcomes_ok_cancelled_and_unparsable_text() -> None:
    s = _Session()
    labels = {"protocol": "postgres", "kind": "other", "keyspace": "ks_act"}
    ok = sample("shardgate_queries_total", **labels, outcome="ok")
    cancelled = sample("shardgate_queries_total", **labels, outcome="cancelled")
    activity.finish(s, activity.begin(s), "SELECT 1", None)
    activity.finish(s, activity.begin(s), "SELECT 1", asyncio.CancelledError())
    assert sample("shardgate_queries_total", **labels, outcome="ok") == ok + 1
    assert sample("shardgate_queries_total", **labels, outcome="cancelled") == cancelled + 1
    act = activity.begin(s)
    activity.finish(s, act, "SELECT 'unterminated", SyntaxError_("bad"))
    assert act.fingerprint == "<unparsable>"


def test_statement_stats_cap_and_order() -> None:
    stats = activity.StatementStats(capacity=2)
    stats.add("a", "select", 0.001, 1, False)
    stats.add("b", "select", 0.010, 1, True)
    stats.add("c", "insert", 0.005, 0, False)  # over capacity: counted under <other>
    rows = stats.rows()
    assert [r[2] for r in rows] == ["b", "<other>", "a"]
    assert rows[0][3:6] == (1, 1, 1) and re.fullmatch(r"[0-9a-f]{16}", rows[0][0])
    big = activity.StatementStats()
    huge = "INSERT INTO t VALUES " + ", ".join(["(:v1)"] * 5000)
    big.add(huge, "insert", 0.1, 0, False)
    (key,) = big.by_fingerprint
    assert len(key) < 1100 and key.endswith(activity.fingerprint_id(huge))


def test_identify_formats_addresses() -> None:
    s = _Session()
    activity.identify(s, "mysql", ("10.0.0.1", 3306), 7)
    assert (s.protocol, s.client, s.conn_id) == ("mysql", "10.0.0.1:3306", 7)
    activity.identify(s, "postgres", ("::1", 5432, 0, 0), 8)
    assert s.client == "[::1]:5432"
    activity.identify(s, "postgres", "/tmp/.s.PGSQL.5432", None)
    assert s.client == "/tmp/.s.PGSQL.5432"


# --- the JSON formatter -----------------------------------------------------------------------------------------------
def test_json_formatter_fields_redaction_and_exceptions() -> None:
    logger = logging.getLogger("shardgate.unit_json")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("login failed for %s", "bob", extra={"event": "login_failed", "password": "pw-123",
                                                            "detail": {"auth_token": "tok-9", "n": 1}})
        value = "secret" + "-value"
        try:
            raise ValueError(f"row (id)=({value}) exists")
        except ValueError:
            logger.exception("internal error", extra={"conn_id": 3})
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "login failed for bob" and first["level"] == "warning"
    assert first["logger"] == "shardgate.unit_json" and first["event"] == "login_failed"
    assert first["password"] == REDACTED and first["detail"] == {"auth_token": REDACTED, "n": 1}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert "pw-123" not in out.getvalue() and "tok-9" not in out.getvalue()
    assert second["exc_type"] == "ValueError" and "raise ValueError" in second["stack"]
    assert "secret-value" not in out.getvalue()


def test_configure_switches_format() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    try:
        configure("info", "text", out)
        logging.getLogger("shardgate.unit_text").info("hello")
        assert re.search(r"INFO shardgate.unit_text: hello", out.getvalue())
        configure("debug", "json", out)
        logging.getLogger("shardgate.unit_text").debug("again")
        assert json.loads(out.getvalue().splitlines()[-1])["message"] == "again"
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])


# --- the admin console ------------------------------------------------------------------------------------------------
def _show(kind: str, like: str | None = None, where: str | None = None) -> Any:
    return SimpleNamespace(kind=kind, like=like, where=where)


def _answer(session: Any, show: Any) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    columns, rows = admin_console.answer(session, show)
    assert all(len(r) == len(columns) for r in rows)
    return tuple(c.name for c in columns), rows


def test_admin_console_rows() -> None:
    host = SimpleNamespace(pools=_Pools([_stats("customer/-80/primary"), _stats("commerce/0/primary")]),
                           _sessions=[])
    a, b = _Session(host=host, id=1), _Session(host=host, id=2, protocol="mysql", state=_State("bob", None))
    host._sessions = [a, b]
    running = activity.begin(b)
    running.fingerprint, running.kind = "select * from t where id = :v1", "select"
    running.targets.add(BackendTarget("customer", "80-"))
    names, rows = _answer(a, _show("shardgate_pools"))
    assert names[:3] == ("keyspace", "shard", "role") and [r[:3] for r in rows] == [
        ("commerce", "0", "primary"), ("customer", "-80", "primary")]
    names, rows = _answer(a, _show("shardgate_pools", like="cust%"))
    assert len(rows) == 1
    names, rows = _answer(a, _show("shardgate_clients"))
    by_user = {r[0]: dict(zip(names, r, strict=True)) for r in rows}
    assert by_user["bob"]["state"] == "active" and by_user["bob"]["statement"].startswith("select * from t")
    assert by_user["alice"]["state"] == "idle" and by_user["alice"]["client"] == "127.0.0.1:5555"
    names, rows = _answer(a, _show("shardgate_queries"))
    assert len(rows) == 1 and dict(zip(names, rows[0], strict=True))["shards"] == "customer/80-"
    names, rows = _answer(a, _show("shardgate_stats"))
    assert names[:4] == ("statement", "fingerprint_id", "kind", "calls")
    with pytest.raises(UnsupportedError):
        admin_console.answer(a, _show("shardgate_stats", where="calls > 1"))
    types = {c.name: c.type.name for c in admin_console.columns("shardgate_pools")}
    assert (types["keyspace"], types["size"], types["down"]) == ("VARCHAR", "BIGINT", "BOOL")
    assert admin_console.ADMIN_SHOWS == {"shardgate_pools", "shardgate_clients", "shardgate_queries",
                                         "shardgate_stats"}


# --- /ready and /live without a network ---------------------------------------------------------------------------
async def test_readiness_and_http_answers() -> None:
    pools = _Pools([_stats("customer/-80/primary"), _stats("customer/80-/primary", down=True),
                    _stats("commerce/0/primary", down=True)])
    gw = SimpleNamespace(_started=True, pools=pools,
                         snapshot=SimpleNamespace(keyspaces={"customer": None, "commerce": None}))
    accepting = [True]
    ready = Readiness(gw, {"postgres": lambda: accepting[0]})
    assert await ready.problems() == ["keyspace commerce: every backend is down"]
    pools._stats[2] = _stats("commerce/0/primary")
    ready._cached = None
    assert await ready.problems() == []
    accepting[0] = False
    ready._cached = None
    assert await ready.problems() == ["postgres listener not accepting"]
    ready.draining = True
    assert await ready.problems() == ["draining"]
    http = HttpEndpoints(Readiness(gw, {}))
    http.heartbeat.start(asyncio.get_running_loop())
    try:
        status, _, body = await http._answer(b"GET /live HTTP/1.1\r\n\r\n")
        assert status == 200 and json.loads(body)["live"] is True
        status, _, body = await http._answer(b"GET /ready HTTP/1.1\r\n\r\n")
        assert status == 200 and json.loads(body) == {"ready": True, "problems": []}
        status, ctype, body = await http._answer(b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == 200 and ctype.startswith("text/plain") and b"shardgate_queries_total" in body
        assert (await http._answer(b"POST /metrics HTTP/1.1\r\n\r\n"))[0] == 405
        assert (await http._answer(b"GET /other HTTP/1.1\r\n\r\n"))[0] == 404
        http.heartbeat.last_beat -= 60  # a loop that stalled for a minute
        assert (await http._answer(b"GET /live HTTP/1.1\r\n\r\n"))[0] == 503
    finally:
        http.heartbeat.stop()
