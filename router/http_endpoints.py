"""The router's HTTP port (``listeners.metrics``): ``/metrics``, ``/ready`` and ``/live``, for Prometheus and
orchestrators. A tiny HTTP/1.1 server on the worker's own event loop (one request per connection, GET or HEAD).

- ``/metrics``: ``router.metrics.REGISTRY`` in the Prometheus text format.
- ``/live``: 200 while the event loop is responsive: the heartbeat (``metrics.LoopHeartbeat``) ran within
  ``LIVE_STALL_SECONDS`` of when it was due. Being answered at all already means the loop runs; a loop that
  answers but keeps stalling for seconds is reported as not live.
- ``/ready``: 200 once the gateway has started, every listener accepts connections and is not draining, and each
  keyspace has at least one healthy pool: one whose backend is not marked down. A keyspace whose pools have never
  connected is probed (one connection, ``PROBE_TIMEOUT``), and the answer kept for ``READY_CACHE_SECONDS``, so a
  probe storm cannot reach the shards. The body is JSON: ``{"ready": bool, "problems": [...]}``.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from router import metrics

__all__ = ["HttpEndpoints", "Readiness", "start_endpoints"]

log = logging.getLogger("shardgate.http")
LIVE_STALL_SECONDS = 5.0
PROBE_TIMEOUT = 2.0
READY_CACHE_SECONDS = 1.0
_MAX_REQUEST = 8192


class Readiness:
    """What ``/ready`` checks: the gateway, the listeners (callables answering "accepting?"), and the pools."""

    def __init__(self, gateway: Any, listeners: dict[str, Callable[[], bool]] | None = None) -> None:
        self.gateway = gateway
        self.listeners = dict(listeners or {})
        self.draining = False
        self._cached: tuple[float, list[str]] | None = None
        self._lock = asyncio.Lock()

    async def problems(self) -> list[str]:
        """Why the router is not ready (empty when it is)."""
        if self.draining:
            return ["draining"]
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < READY_CACHE_SECONDS:
            return cached[1]
        async with self._lock:
            out = await self._check()
            self._cached = (time.monotonic(), out)
            return out

    async def _check(self) -> list[str]:
        out: list[str] = []
        gw = self.gateway
        if not getattr(gw, "_started", False):
            return ["gateway not started"]
        for name, accepting in sorted(self.listeners.items()):
            if not accepting():
                out.append(f"{name} listener not accepting")
        by_keyspace: dict[str, list[Any]] = {}
        for stats in gw.pools.stats():
            keyspace = stats.target.partition("/")[0]
            by_keyspace.setdefault(keyspace, []).append(stats)
        for keyspace in sorted(gw.snapshot.keyspaces):
            pools = by_keyspace.get(keyspace, [])
            if not pools:
                out.append(f"keyspace {keyspace}: no backend pool")
                continue
            up = [s for s in pools if not s.down]
            if not up:
                out.append(f"keyspace {keyspace}: every backend is down")
                continue
            if any(s.created > 0 for s in up):
                continue
            if not await self._probe(up[0].target):
                out.append(f"keyspace {keyspace}: no backend answers")
        return out

    async def _probe(self, target: str) -> bool:
        keyspace, _, rest = target.partition("/")
        shard, _, role = rest.rpartition("/")
        try:
            async with self.gateway.pools.acquire(keyspace, shard, role or "primary", timeout=PROBE_TIMEOUT):
                return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed probe is the answer, not an error of the endpoint
            log.info("ready_probe_failed target=%s error=%s", target, type(exc).__name__,
                     extra={"event": "ready_probe_failed", "target": target, "error": type(exc).__name__})
            return False


class HttpEndpoints:
    """``await HttpEndpoints(readiness).start(host, port)``; ``port`` holds the bound port; ``close()``."""

    def __init__(self, readiness: Readiness, heartbeat: metrics.LoopHeartbeat | None = None) -> None:
        self.readiness = readiness
        self.heartbeat = heartbeat or metrics.LoopHeartbeat()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> HttpEndpoints:
        self.heartbeat.start(asyncio.get_running_loop())
        self.server = await asyncio.start_server(self._serve, host, port, reuse_port=reuse_port or None)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        self.heartbeat.stop()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status, ctype, body = await self._answer(head[:_MAX_REQUEST])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        method = head.split(b" ", 1)[0]
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode("ascii"))
        if method != b"HEAD":
            writer.write(body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _answer(self, head: bytes) -> tuple[int, str, bytes]:
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3:
            return 405, "text/plain", b"bad request line\n"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return 405, "text/plain", b"GET or HEAD\n"
        if target == b"/metrics":
            return 200, CONTENT_TYPE_LATEST, metrics.exposition()
        if target == b"/live":
            stalled = self.heartbeat.stalled_for()
            if stalled > LIVE_STALL_SECONDS or self.heartbeat.lag > LIVE_STALL_SECONDS:
                return 503, "application/json", json.dumps({"live": False, "stalled_s": round(stalled, 3),
                                                            "lag_s": round(self.heartbeat.lag, 3)}).encode()
            return 200, "application/json", json.dumps({"live": True, "lag_s": round(self.heartbeat.lag, 4)}).encode()
        if target == b"/ready":
            problems = await self.readiness.problems()
            doc = json.dumps({"ready": not problems, "problems": problems}).encode()
            return (503 if problems else 200), "application/json", doc
        return 404, "text/plain", b"try /metrics, /ready or /live\n"


async def start_endpoints(gateway: Any, pg: Any, mysql: Any, host: str, port: int, worker: int = 0,
                          workers: int = 1) -> HttpEndpoints:
    """Serve ``/metrics``, ``/ready`` and ``/live`` for one worker's gateway and frontends (``router.serve``)."""
    metrics.track_gateway(gateway)
    metrics.set_worker(worker, workers)
    listeners: dict[str, Callable[[], bool]] = {}
    if pg is not None:
        metrics.track_frontend("postgres", lambda: len(pg.connections), lambda: pg.metrics.connections)
        listeners["postgres"] = lambda: pg.server is not None and pg.server.is_serving() and not pg.draining
    if mysql is not None:
        metrics.track_frontend("mysql", lambda: mysql.stats.connections_open, lambda: mysql.stats.connections_total)
        listeners["mysql"] = lambda: mysql.is_serving() and mysql.frontend.accepting
    return await HttpEndpoints(Readiness(gateway, listeners)).start(host, port)
