"""The buffering hook (Vitess vtgate buffering): while a shard's primary is being switched (resharding's
SwitchTraffic, a planned primary change), statements for it wait instead of failing, then run against the new
routing.

    handle = gateway.buffer.pause("customer", ["-80"], reason="switch writes to -40,40-80")
    ...                      # switch the topology; install the new snapshot
    handle.resume()          # waiting statements are re-planned against the snapshot now in force

- What waits: a statement about to run outside a transaction whose primary-bound routes resolve to a paused shard
  (reads sent to replicas do not wait). It waits before anything was sent, so re-planning is safe for writes too.
  Statements inside a transaction are not buffered (as in Vitess): their connections belong to the old primary.
- Bounds, per shard buffer: ``max_wait`` seconds per statement (never beyond the statement's own timeout) and
  ``max_requests`` statements waiting at once; a statement beyond either gets ``BufferTimeoutError`` (SQLSTATE
  40001, retryable) naming the shard and the reason. A pause that outlives ``max_pause`` resumes by itself with a
  warning, so a workflow that died cannot hold traffic forever.
- ``resume()`` drains: every waiting statement wakes at once (in arrival order), re-plans against the snapshot in
  force and, if its new shards are paused too, waits again within its remaining bound.
- ``await handle.quiesce(timeout)``: after pausing, a traffic switch waits for the statements already running on
  the old primaries (their pooled connections on loan) to finish before it moves the routing; False when some
  are still running at ``timeout`` (a long transaction: the workflow decides, as Vitess's SwitchTraffic does).

The intended SwitchTraffic sequence: ``pause`` the source shards, ``quiesce``, wait for the target to catch up
with the source, install the snapshot with the new routing, ``resume``.

Which shards a plan reaches is found without I/O: each route's shards from its vindex values
(``router.planner.resolve``); a route needing a lookup, or one whose values come at run time, counts as every
shard of its keyspace.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sharding.errors import BufferTimeoutError, ShardgateError

__all__ = ["Buffer", "BufferConfig", "PauseHandle"]

log = logging.getLogger("shardgate.buffer")


@dataclass(frozen=True, slots=True)
class BufferConfig:
    max_wait: float = 10.0  # seconds one statement may wait (Vitess buffer_window)
    max_requests: int = 1000  # statements waiting per shard (Vitess buffer_size)
    max_pause: float = 30.0  # seconds a pause may last before it resumes by itself (buffer_max_failover_duration)


@dataclass(slots=True)
class BufferStats:
    buffered: int = 0  # statements that waited
    timeouts: int = 0  # statements that waited past max_wait
    rejected: int = 0  # statements refused because the shard's buffer was full
    replanned: int = 0  # statements re-planned after a resume
    expired_pauses: int = 0  # pauses ended by max_pause


class PauseHandle:
    """One pause of some shards of a keyspace; ``resume()`` (or leaving ``async with``/``with``) ends it."""

    def __init__(self, buffer: Buffer, keyspace: str, shards: frozenset[str] | None, reason: str,
                 max_pause: float) -> None:
        self.buffer = buffer
        self.keyspace = keyspace
        self.shards = shards  # None: every shard of the keyspace
        self.reason = reason
        self.started = time.monotonic()
        self.resumed = asyncio.Event()
        self._timer = asyncio.get_running_loop().call_later(max_pause, self._expire)

    def covers(self, keyspace: str, shard: str) -> bool:
        return keyspace == self.keyspace and (self.shards is None or shard in self.shards)

    @property
    def active(self) -> bool:
        return not self.resumed.is_set()

    def resume(self) -> None:
        if self.resumed.is_set():
            return
        self._timer.cancel()
        self.resumed.set()
        self.buffer._ended(self)

    def _expire(self) -> None:
        if self.active:
            self.buffer.stats.expired_pauses += 1
            log.warning("buffer pause of %s/%s (%s) exceeded %.1f s: resumed", self.keyspace,
                        ",".join(sorted(self.shards)) if self.shards else "*", self.reason,
                        time.monotonic() - self.started,
                        extra={"event": "buffer_pause_expired", "keyspace": self.keyspace})
            self.resume()

    async def quiesce(self, timeout: float = 10.0, interval: float = 0.01) -> bool:
        """Wait until no connection of the paused shards' primaries is on loan (the statements that were running
        when the pause began have finished). True when quiet; False at ``timeout``."""
        pools = self.buffer.pools
        if pools is None:
            return True
        deadline = time.monotonic() + timeout
        while True:
            busy = [st for st in pools.stats() if st.in_use and _is_paused_primary(st.target, self)]
            if not busy:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)

    def __enter__(self) -> PauseHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.resume()

    async def __aenter__(self) -> PauseHandle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.resume()

    def __repr__(self) -> str:
        state = "active" if self.active else "resumed"
        shards = ",".join(sorted(self.shards)) if self.shards else "*"
        return f"<PauseHandle {self.keyspace}/{shards} {state} reason={self.reason!r}>"


class Buffer:
    """The pauses in force and the statements waiting on them (see the module docstring)."""

    def __init__(self, config: BufferConfig | None = None,
                 source: Callable[[], BufferConfig | None] | None = None, pools: Any = None) -> None:
        self.pools = pools  # the gateway's PoolSet: what quiesce() watches
        self._config = config or BufferConfig()
        self._source = source  # the config in force (the gateway's, which RELOAD replaces); None: fixed
        self.stats = BufferStats()
        self._pauses: list[PauseHandle] = []
        self._waiting: dict[tuple[str, str], int] = {}

    @property
    def active(self) -> bool:
        """Whether any pause is in force (the hot path checks only this)."""
        return bool(self._pauses)

    @property
    def config(self) -> BufferConfig:
        if self._source is not None:
            return self._source() or self._config
        return self._config

    def reconfigure(self, config: BufferConfig) -> None:
        self._source = None
        self._config = config

    def pause(self, keyspace: str, shards: Iterable[str] | None = None, reason: str = "",
              *, max_pause: float | None = None) -> PauseHandle:
        """Hold statements for ``shards`` of ``keyspace`` (None: all of them) until ``resume()``."""
        handle = PauseHandle(self, keyspace, frozenset(shards) if shards is not None else None, reason,
                             self.config.max_pause if max_pause is None else max_pause)
        self._pauses.append(handle)
        log.info("buffer paused %s/%s: %s", keyspace, ",".join(sorted(handle.shards)) if handle.shards else "*",
                 reason, extra={"event": "buffer_paused", "keyspace": keyspace})
        return handle

    def _ended(self, handle: PauseHandle) -> None:
        if handle in self._pauses:
            self._pauses.remove(handle)

    def pauses(self) -> list[PauseHandle]:
        return list(self._pauses)

    def waiting(self) -> int:
        return sum(self._waiting.values())

    def blocking(self, targets: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], PauseHandle] | None:
        """The first (keyspace, shard) of ``targets`` that a pause holds, with that pause."""
        for keyspace, shard in targets:
            for handle in self._pauses:
                if handle.covers(keyspace, shard):
                    return (keyspace, shard), handle
        return None

    async def wait_for(self, target: tuple[str, str], handle: PauseHandle, deadline: float) -> None:
        """Wait until ``handle`` resumes; ``BufferTimeoutError`` past ``deadline`` or when the buffer is full."""
        keyspace, shard = target
        metrics = _metrics()
        if self._waiting.get(target, 0) >= self.config.max_requests:
            self.stats.rejected += 1
            if metrics is not None:
                metrics.BUFFERED_TOTAL.labels("overflow").inc()
            raise BufferTimeoutError(
                f"shard {keyspace}/{shard} is paused ({handle.reason or 'no reason given'}) and its buffer is full "
                f"({self.config.max_requests} statements waiting); retry later")
        self._waiting[target] = self._waiting.get(target, 0) + 1
        self.stats.buffered += 1
        if metrics is not None:
            metrics.buffer_wait_started()
        outcome = "timeout"
        try:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            async with asyncio.timeout(left):
                await handle.resumed.wait()
            outcome = "resumed"
        except TimeoutError:
            self.stats.timeouts += 1
            waited = time.monotonic() - handle.started
            raise BufferTimeoutError(
                f"shard {keyspace}/{shard} stayed paused ({handle.reason or 'no reason given'}) beyond the "
                f"buffering bound ({self.config.max_wait:g} s; paused {waited:.1f} s ago); retry") from None
        finally:
            if metrics is not None:
                metrics.buffer_wait_ended(outcome)
            n = self._waiting[target] - 1
            if n:
                self._waiting[target] = n
            else:
                del self._waiting[target]

    async def hold(self, session: Any, sql: str, params: Any, bound: Any, snapshot: Any) -> tuple[Any, Any]:
        """Before a statement runs: while a shard it reaches is paused, wait, then re-plan against the snapshot in
        force. Returns the (bound plan, snapshot) to run."""
        timeout = session.limits().query_timeout
        bound_wait = self.config.max_wait if timeout is None else min(timeout, self.config.max_wait)
        deadline = time.monotonic() + bound_wait
        role = session._role()
        while self._pauses:
            hit = self.blocking(plan_targets(bound.plan.root, bound.binds, snapshot, role))
            if hit is None:
                break
            await self.wait_for(hit[0], hit[1], deadline)
            snapshot = session.host.snapshot
            bound = session.host.planner.plan(sql, session.view(), snapshot, params)
            self.stats.replanned += 1
        return bound, snapshot


def _is_paused_primary(target: str, handle: PauseHandle) -> bool:
    keyspace, _, rest = target.partition("/")
    shard, _, role = rest.partition("/")
    return role == "primary" and handle.covers(keyspace, shard)


def _metrics() -> Any:
    """``router.metrics`` (the buffered-requests gauge and counter), or None without it."""
    try:
        from router import metrics
    except ImportError:
        return None
    return metrics if hasattr(metrics, "buffer_wait_started") else None


def plan_targets(root: Any, binds: Sequence[Any], snapshot: Any, role: str) -> list[tuple[str, str]]:
    """(keyspace, shard) pairs that a plan's primary-bound routes may reach (see the module docstring)."""
    from router.planner import plan as P
    from router.planner.resolve import NeedsLookup, _target_shards, resolve_route

    out: list[tuple[str, str]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        routing = getattr(node, "routing", None)
        keyspace_obj = routing.keyspace if routing is not None else getattr(node, "keyspace", None)
        if keyspace_obj is not None:
            keyspace = keyspace_obj.name
            reads_only = isinstance(node, P.Route)
            if not (reads_only and role != "primary"):
                shards: Any = None
                try:
                    if routing is not None:
                        resolved = resolve_route(routing, binds, snapshot, {})
                        if not isinstance(resolved, NeedsLookup):
                            shards = resolved.shards
                    elif isinstance(node, P.Send) and node.target not in (None, "", "-"):
                        shards = _target_shards(snapshot, keyspace, node.target)
                except ShardgateError:
                    shards = None
                except (KeyError, IndexError, TypeError, ValueError):
                    shards = None  # values known only at run time (join variables): every shard
                if shards is None:
                    shards = snapshot.shards(keyspace)
                out.extend((keyspace, s.name) for s in shards)
        stack.extend(node.inputs())
    return out
