"""The router's Prometheus metrics: one registry, every metric object, and cheap helpers for the hot path.

Other modules import the objects here and increment them; nothing else creates metrics.

The per-statement numbers are not prometheus-client objects: each of those takes a lock per increment (~1 µs
here, more for a histogram), and a statement would pay several. They are plain counters in a cell per label set
(``_StatementCell``, found with one dict lookup; the event loop is the only writer) that a collector turns into
metric families at scrape time. Low-rate events (pins, consolidation hits, buffering) use ordinary
prometheus-client counters, with label children cached by the caller or here.

    from router import metrics
    metrics.PINS.labels("temporary_table").inc()      # or metrics.pin("temporary_table")
    metrics.CONSOLIDATION_HITS.inc()

Statement metrics (``record_statement``, called once per statement by ``router.activity``):

- ``shardgate_queries_total{protocol,kind,keyspace,outcome}`` and ``shardgate_query_duration_seconds{protocol,kind}``
- ``shardgate_shard_queries_total{keyspace,shard,role,outcome}``: statements per shard they reached
- ``shardgate_rows_returned_total{protocol,kind}``, ``shardgate_errors_total{protocol,code}`` (``code``: the stable
  ``SGnnnn`` id of the error class; never a message, which may quote values)

Pool gauges are read from the gateways' ``PoolSet.stats()`` at scrape time (``track_gateway``), and client
connections per protocol from the frontends' own counters (``track_frontend``), so neither pays per checkout or
per connection. With ``shardgate serve --workers N`` every worker has its own registry and serves it on its
own port (``listeners.metrics`` port + worker index): scrape every worker (each reports ``worker`` in
``shardgate_worker_info``); prometheus-client's multiprocess mode is not used because it cannot aggregate the
collector-based pool gauges.
"""
from __future__ import annotations

import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = [
    "BUFFERED",
    "BUFFERED_TOTAL",
    "CONSOLIDATION_HITS",
    "LOOP_LAG",
    "PINS",
    "REGISTRY",
    "buffer_wait_ended",
    "buffer_wait_started",
    "consolidation_hits",
    "exposition",
    "pin",
    "record_error",
    "record_statement",
    "track_frontend",
    "track_gateway",
    "untrack_frontend",
]

REGISTRY = CollectorRegistry(auto_describe=True)
# Statement latency: 100 µs (a cached point read) up to 30 s (a big scatter).
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0, 30.0)

PINS = Counter("shardgate_pins", "Sessions pinned to a backend connection, by reason", ("reason",), registry=REGISTRY)
CONSOLIDATION_HITS = Counter("shardgate_consolidation_hits", "Reads that joined an identical read in flight",
                             registry=REGISTRY)
BUFFERED = Gauge("shardgate_buffered_requests", "Requests waiting in the buffer now", registry=REGISTRY)
BUFFERED_TOTAL = Counter("shardgate_buffered_requests_handled",
                         "Requests that waited in the buffer, by how the wait ended (resumed, timeout, overflow)",
                         ("outcome",), registry=REGISTRY)
LOOP_LAG = Gauge("shardgate_event_loop_lag_seconds", "How late the event loop ran its last heartbeat",
                 registry=REGISTRY)
WORKER = Gauge("shardgate_worker_info", "This process's worker index and count (always 1)", ("worker", "workers"),
               registry=REGISTRY)

consolidation_hits = CONSOLIDATION_HITS  # the name router.engine.consolidate looks up


def buffer_wait_started() -> None:
    """A request began waiting in the buffer (``router.engine.buffering``)."""
    BUFFERED.inc()


def buffer_wait_ended(outcome: str) -> None:
    """A buffered request stopped waiting: ``resumed``, ``timeout`` or ``overflow``."""
    BUFFERED.dec()
    BUFFERED_TOTAL.labels(outcome).inc()


# --- statements: plain counters, exported by the scrape collector ----------------------------------------------
class _StatementCell:
    """The numbers of one (protocol, kind, keyspace, outcome): count, rows, latency sum and bucket counts (not
    cumulative: ``buckets[i]`` counts latencies in (bound[i-1], bound[i]], the last one above every bound)."""

    __slots__ = ("buckets", "count", "rows", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.rows = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(_LATENCY_BUCKETS) + 1)


_statements: dict[tuple[str, str, str, str], _StatementCell] = {}
_shards: dict[tuple[str, str, str, str], list[int]] = {}  # (keyspace, shard, role, outcome) -> [count]
_errors: dict[tuple[str, str], list[int]] = {}  # (protocol, code) -> [count]
_MAX_LABEL_SETS = 4096  # label sets are bounded by config; this only guards against a bug flooding the scrape


def record_statement(protocol: str, kind: str, keyspace: str, outcome: str, seconds: float, rows: int) -> None:
    """One statement finished (``outcome``: ok | error | cancelled)."""
    key = (protocol, kind, keyspace, outcome)
    cell = _statements.get(key)
    if cell is None:
        if len(_statements) >= _MAX_LABEL_SETS:
            key = (protocol, kind, "other", outcome)
        cell = _statements.setdefault(key, _StatementCell())
    cell.count += 1
    cell.rows += rows
    cell.seconds += seconds
    cell.buckets[bisect_left(_LATENCY_BUCKETS, seconds)] += 1  # bisect_left: a latency equal to a bound is "le" it


def record_shard(keyspace: str, shard: str, role: str, outcome: str) -> None:
    """A statement reached ``keyspace/shard`` (``role``) and ended with ``outcome``."""
    key = (keyspace, shard, role, outcome)
    cell = _shards.get(key)
    if cell is None:
        cell = _shards[key] = [0]
    cell[0] += 1


def record_error(protocol: str, code: str) -> None:
    """A statement failed with the error id ``code`` (``SGnnnn``)."""
    key = (protocol, code)
    cell = _errors.get(key)
    if cell is None:
        cell = _errors[key] = [0]
    cell[0] += 1


def _statement_families() -> Iterator[Any]:
    queries = CounterMetricFamily("shardgate_queries", "Statements finished, by protocol, statement kind, keyspace "
                                  "and outcome", labels=("protocol", "kind", "keyspace", "outcome"))
    rows = CounterMetricFamily("shardgate_rows_returned", "Rows returned to clients", labels=("protocol", "kind"))
    latency = HistogramMetricFamily("shardgate_query_duration_seconds",
                                    "Statement latency in the router (plan to last row)", labels=("protocol", "kind"))
    per_kind: dict[tuple[str, str], list[Any]] = {}  # (protocol, kind) -> [rows, seconds, buckets]
    for key, cell in sorted(_statements.items()):
        queries.add_metric(key, float(cell.count))
        agg = per_kind.setdefault(key[:2], [0, 0.0, [0] * len(cell.buckets)])
        agg[0] += cell.rows
        agg[1] += cell.seconds
        agg[2] = [a + b for a, b in zip(agg[2], cell.buckets, strict=True)]
    for (protocol, kind), (nrows, seconds, buckets) in per_kind.items():
        rows.add_metric((protocol, kind), float(nrows))
        cumulative, running = [], 0
        for bound, n in zip((*map(floatToGoString, _LATENCY_BUCKETS), "+Inf"), buckets, strict=True):
            running += n
            cumulative.append((bound, float(running)))
        latency.add_metric((protocol, kind), cumulative, seconds)
    shards = CounterMetricFamily("shardgate_shard_queries", "Statements that reached a shard, by keyspace, shard, "
                                 "role and outcome", labels=("keyspace", "shard", "role", "outcome"))
    for key, cell in sorted(_shards.items()):
        shards.add_metric(key, float(cell[0]))
    errors = CounterMetricFamily("shardgate_errors", "Statements that failed, by the stable error id (SGnnnn)",
                                 labels=("protocol", "code"))
    for key, cell in sorted(_errors.items()):
        errors.add_metric(key, float(cell[0]))
    yield from (queries, latency, rows, shards, errors)


def pin(reason: str) -> None:
    """A session was pinned to its backend connection (``temporary_table``, ``user_lock``, ``listen``, …)."""
    PINS.labels(reason).inc()


# --- pools and client connections, read at scrape time ----------------------------------------------------------
_gateways: weakref.WeakSet[Any] = weakref.WeakSet()
# protocol -> (connections open now, connections accepted since start), read from the frontend's own counters
_frontends: dict[str, tuple[Callable[[], int], Callable[[], int]]] = {}


def track_frontend(protocol: str, open_now: Callable[[], int], accepted: Callable[[], int]) -> None:
    """Report a frontend's client connections (``shardgate_client_connections{protocol}``) in every scrape."""
    _frontends[protocol] = (open_now, accepted)


def untrack_frontend(protocol: str) -> None:
    _frontends.pop(protocol, None)


def track_gateway(gateway: Any) -> None:
    """Report ``gateway.pools.stats()`` in every scrape while ``gateway`` lives."""
    _gateways.add(gateway)


def _split_target(target: str) -> tuple[str, str, str]:
    keyspace, _, rest = target.partition("/")
    shard, _, role = rest.rpartition("/")
    return keyspace, shard or rest, role or "primary"


class _ScrapeCollector(Collector):
    _GAUGES = (("size", "Backend connections open (idle + in use + opening)"),
               ("idle", "Backend connections idle"), ("in_use", "Backend connections lent out"),
               ("opening", "Backend connections being opened"), ("waiters", "Acquires waiting for a connection"),
               ("max_size", "Most backend connections the pool opens"), ("down", "1 while the backend is unreachable"))
    _COUNTERS = (("acquired", "Checkouts served"), ("timeouts", "Acquires that gave up waiting"),
                 ("errors", "Failed connects"), ("created", "Connections opened"),
                 ("discarded", "Connections closed by the pool"))

    def collect(self) -> Iterator[Any]:
        yield from _statement_families()
        labels = ("keyspace", "shard", "role")
        gauges = {n: GaugeMetricFamily(f"shardgate_pool_{n}", h, labels=labels) for n, h in self._GAUGES}
        counters = {n: CounterMetricFamily(f"shardgate_pool_{n}", h, labels=labels) for n, h in self._COUNTERS}
        for stats in _all_pool_stats():
            values = _split_target(stats.target)
            for name in gauges:
                gauges[name].add_metric(values, float(getattr(stats, name)))
            for name in counters:
                counters[name].add_metric(values, float(getattr(stats, name)))
        yield from gauges.values()
        yield from counters.values()
        open_now = GaugeMetricFamily("shardgate_client_connections", "Client connections open now",
                                     labels=("protocol",))
        accepted = CounterMetricFamily("shardgate_client_connections_accepted", "Client connections accepted",
                                       labels=("protocol",))
        for protocol, (open_fn, accepted_fn) in sorted(_frontends.items()):
            open_now.add_metric((protocol,), float(open_fn()))
            accepted.add_metric((protocol,), float(accepted_fn()))
        yield open_now
        yield accepted

    def describe(self) -> Iterable[Any]:
        return []


def _all_pool_stats() -> list[Any]:
    out = []
    for gateway in list(_gateways):
        pools = getattr(gateway, "pools", None)
        if pools is not None:
            out.extend(pools.stats())
    return out


REGISTRY.register(_ScrapeCollector())


def exposition() -> bytes:
    """The text exposition format of everything in ``REGISTRY``."""
    return generate_latest(REGISTRY)


def set_worker(worker: int, workers: int) -> None:
    WORKER.labels(str(worker), str(workers)).set(1)


class LoopHeartbeat:
    """Measures event-loop lag: a callback scheduled every ``interval`` notes how late it ran (``/live``)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.lag = 0.0
        self.last_beat = time.monotonic()
        self._handle: Any = None
        self._loop: Any = None

    def start(self, loop: Any) -> None:
        self._loop = loop
        self.last_beat = time.monotonic()
        self._handle = loop.call_later(self.interval, self._beat, self.last_beat + self.interval)

    def _beat(self, due: float) -> None:
        now = time.monotonic()
        self.lag = max(0.0, now - due)
        self.last_beat = now
        LOOP_LAG.set(self.lag)
        self._handle = self._loop.call_later(self.interval, self._beat, now + self.interval)

    def stalled_for(self) -> float:
        """Seconds since the heartbeat should have run last (0 when it is on time)."""
        return max(0.0, time.monotonic() - self.last_beat - self.interval)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
