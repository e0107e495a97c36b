"""Pool rules over a scripted backend (no server): bounds, waiting, recycling, discarding, backoff, closing.

The same rules run against real servers in tests/integration/test_backend_pool.py; here the races are forced.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from router.backend.pool import Pool
from router.backend.pool_config import PoolConfig
from sharding.errors import (
    BackendUnavailableError,
    ConfigError,
    InternalError,
    ResourceLimitError,
    TooManyConnectionsError,
)
from tests.unit.backend.fakes import DSN_A, TARGET, FakeConn, FakeOpener

pytestmark = pytest.mark.timeout(10)

QUIET = dict(maintenance_interval=3600.0, health_check_idle=3600.0, backoff_initial=0.05, backoff_max=0.2)


@pytest.fixture
def opener() -> FakeOpener:
    return FakeOpener()


@pytest.fixture
async def make_pool(opener: FakeOpener) -> AsyncIterator[object]:
    pools: list[Pool] = []

    def make(**config: object) -> Pool:
        pool = Pool(TARGET, DSN_A, PoolConfig(**{**QUIET, **config}), opener=opener)  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close(0)


def conn_of(lease: object) -> FakeConn:
    return lease._conn  # type: ignore[attr-defined, no-any-return]


async def test_config_is_checked() -> None:
    with pytest.raises(ConfigError) as info:
        PoolConfig(max_size=0, min_size=-1, acquire_timeout=0)
    assert len(info.value.problems) == 3


async def test_never_more_than_max_size_and_waiters_are_served_in_order(make_pool, opener: FakeOpener) -> None:
    pool = make_pool(max_size=2)
    peak, order = 0, []

    async def worker(i: int) -> None:
        nonlocal peak
        async with pool.acquire() as conn:
            order.append(i)
            peak = max(peak, pool.stats().in_use)
            await conn.execute("SLEEP 0.01")

    tasks = []
    for i in range(8):
        tasks.append(asyncio.ensure_future(worker(i)))
        await asyncio.sleep(0)  # queue them in a known order
    await asyncio.gather(*tasks)
    stats = pool.stats()
    assert peak == 2 and opener.attempts == 2 and stats.size == 2 and stats.idle == 2
    assert order == list(range(8))
    assert stats.acquired == 8 and stats.in_use == 0 and stats.waiters == 0


async def test_acquire_timeout_names_the_shard(make_pool) -> None:
    pool = make_pool(max_size=1)
    async with pool.acquire():
        with pytest.raises(TooManyConnectionsError) as info:
            await pool.acquire(timeout=0.05)
    assert "customer/-80/primary" in info.value.message and "0.05" in info.value.message
    assert info.value.retryable
    stats = pool.stats()
    assert stats.timeouts == 1 and stats.waiters == 0 and stats.in_use == 0


async def test_too_many_waiters_fail_at_once(make_pool) -> None:
    pool = make_pool(max_size=1, max_waiters=2)
    lease = await pool.acquire()
    waiters = [asyncio.ensure_future(pool.acquire(timeout=1)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(ResourceLimitError):
        await pool.acquire(timeout=1)
    await lease.release()
    for waiter in waiters:
        await (await waiter).release()


async def test_a_cancelled_waiter_does_not_lose_the_connection(make_pool) -> None:
    pool = make_pool(max_size=1)
    lease = await pool.acquire()
    waiter = asyncio.ensure_future(pool.acquire(timeout=5))
    await asyncio.sleep(0.01)
    await lease.release()  # hands the connection to the waiter's future ...
    waiter.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    stats = pool.stats()
    assert stats.size == 1 and stats.idle == 1 and stats.in_use == 0
    async with pool.acquire(timeout=0.1) as again:
        assert conn_of(again) is not None


async def test_use_after_release_is_refused(make_pool) -> None:
    pool = make_pool()
    lease = await pool.acquire()
    await lease.release()
    await lease.release()  # idempotent
    with pytest.raises(InternalError):
        await lease.execute("SELECT 1")
    assert lease.released and not lease.is_alive() and await lease.cancel() is False


async def test_generation_expires_idle_now_and_loans_on_return(make_pool) -> None:
    pool = make_pool(max_size=3)
    idle = await pool.acquire()
    loaned = await pool.acquire()
    idle_conn, loaned_conn = conn_of(idle), conn_of(loaned)
    await idle.release()
    pool.expire_connections()
    await asyncio.sleep(0)
    assert idle_conn.closed_politely and pool.generation == 1
    assert not loaned_conn.closed_politely
    await loaned.release()
    await asyncio.sleep(0)
    assert loaned_conn.closed_politely and pool.stats().size == 0
    async with pool.acquire() as fresh:
        assert conn_of(fresh) not in (idle_conn, loaned_conn)


async def test_max_lifetime_and_max_queries_recycle(make_pool) -> None:
    pool = make_pool(max_lifetime=0.05, lifetime_jitter=0.0)
    async with pool.acquire() as lease:
        first = conn_of(lease)
    await asyncio.sleep(0.06)
    async with pool.acquire() as lease:
        assert conn_of(lease) is not first

    pool = make_pool(max_queries=3)
    async with pool.acquire() as lease:
        first = conn_of(lease)
        for _ in range(3):
            await lease.execute("SELECT 1")
    async with pool.acquire() as lease:
        assert conn_of(lease) is not first


async def test_idle_timeout_keeps_min_size_most_recent_first(make_pool) -> None:
    pool = make_pool(max_size=3, min_size=1, idle_timeout=0.05)
    leases = [await pool.acquire() for _ in range(3)]
    conns = [conn_of(lease) for lease in leases]
    for lease in leases:
        await lease.release()
    await asyncio.sleep(0.06)
    await pool.sweep()
    stats = pool.stats()
    assert stats.size == 1 and stats.idle == 1
    async with pool.acquire() as lease:
        assert conn_of(lease) is conns[-1]


async def test_broken_connections_are_discarded(make_pool) -> None:
    pool = make_pool()
    async with pool.acquire() as lease:
        first = conn_of(lease)
        with pytest.raises(BackendUnavailableError):
            await lease.execute("BREAK")
        assert lease.broken
    await asyncio.sleep(0)
    assert first.aborted and pool.stats().discarded == 1 and pool.stats().size == 0
    async with pool.acquire() as lease:
        assert conn_of(lease) is not first


async def test_a_server_error_keeps_the_connection(make_pool) -> None:
    pool = make_pool()
    async with pool.acquire() as lease:
        first = conn_of(lease)
        with pytest.raises(Exception, match="scripted server error"):
            await lease.execute("FAIL")
    async with pool.acquire() as lease:
        assert conn_of(lease) is first


async def test_left_in_a_transaction_is_reset_or_discarded(make_pool) -> None:
    pool = make_pool()
    async with pool.acquire() as lease:
        first = conn_of(lease)
        await lease.begin()
    assert first.resets == 1 and not first.tx
    async with pool.acquire() as lease:
        assert conn_of(lease) is first  # reset worked: reused
        await lease.begin()
        first.reset_ok = False
    async with pool.acquire() as lease:
        assert conn_of(lease) is not first  # reset failed: discarded
    assert pool.stats().discarded == 1


async def test_session_changes_trigger_a_reset_plain_queries_do_not(make_pool) -> None:
    pool = make_pool()
    async with pool.acquire() as lease:
        await lease.execute("SELECT 1")
        conn = conn_of(lease)
    assert conn.resets == 0
    async with pool.acquire() as lease:
        await lease.execute("SET search_path = x")
        assert lease.needs_reset
    assert conn.resets == 1
    async with pool.acquire() as lease:
        lease.mark_dirty()
    assert conn.resets == 2


async def test_dead_idle_connections_are_replaced_without_an_error(make_pool) -> None:
    pool = make_pool(max_size=2)
    async with pool.acquire() as lease:
        first = conn_of(lease)
    first.alive = False  # the server closed it while idle
    async with pool.acquire() as lease:
        assert conn_of(lease) is not first
        assert (await lease.execute("SELECT 1")).status == "SELECT 1"


async def test_idle_connections_are_pinged_after_a_sibling_broke(make_pool) -> None:
    pool = make_pool(max_size=2)
    a, b = await pool.acquire(), await pool.acquire()
    conn_a, conn_b = conn_of(a), conn_of(b)
    await a.release()  # idle, looks alive locally
    with pytest.raises(BackendUnavailableError):
        await b.execute("BREAK")
    await b.release()  # a broken sibling: idle ones get a ping at checkout
    orig_ping = conn_a._ping

    async def failing_ping() -> None:
        raise ConnectionResetError("dead")

    conn_a._ping = failing_ping  # type: ignore[method-assign]
    async with pool.acquire() as lease:
        assert conn_of(lease) not in (conn_a, conn_b)
    conn_a._ping = orig_ping  # type: ignore[method-assign]


async def test_backend_down_fails_fast_without_a_stampede(make_pool, opener: FakeOpener) -> None:
    # A backoff long enough that a loaded machine still sends the 50 acquires inside it.
    pool = make_pool(max_size=10, backoff_initial=0.5, backoff_max=0.5)
    opener.fail = True
    with pytest.raises(BackendUnavailableError) as info:
        await pool.acquire()
    assert "refused" in info.value.message and "fake-secret" not in info.value.message
    assert opener.attempts == 1 and pool.down
    results = await asyncio.gather(*(pool.acquire() for _ in range(50)), return_exceptions=True)
    assert all(isinstance(r, BackendUnavailableError) for r in results)
    assert opener.attempts == 1  # everyone failed fast during the backoff
    assert "next connect attempt" in str(results[0])

    opener.fail = False
    opener.delay = 0.05
    await asyncio.sleep(0.8)  # past the (jittered) backoff
    probe = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    with pytest.raises(BackendUnavailableError):
        await pool.acquire()  # one probe in flight: the rest still fail fast
    lease = await probe
    assert opener.attempts == 2 and not pool.down
    await lease.release()
    assert pool.stats().errors == 1


async def test_waiters_fail_fast_when_the_backend_goes_down(make_pool, opener: FakeOpener) -> None:
    pool = make_pool(max_size=1, acquire_timeout=5)
    lease = await pool.acquire()
    waiter = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    opener.fail = True
    with pytest.raises(BackendUnavailableError):
        await lease.execute("BREAK")
    await lease.release()  # slot freed: the waiter tries to connect, which fails
    with pytest.raises(BackendUnavailableError):
        await asyncio.wait_for(waiter, 1)


async def test_min_size_is_refilled_by_the_sweep(make_pool, opener: FakeOpener) -> None:
    pool = make_pool(min_size=2, max_size=4)
    await pool.start()
    assert pool.stats().idle == 2
    for conn in opener.opened:
        conn.alive = False
    opener.fail = True
    await pool.sweep()
    assert pool.stats().size == 0 and pool.down
    opener.fail = False
    await asyncio.sleep(0.3)
    await pool.sweep()
    assert pool.stats().idle == 2 and not pool.down


async def test_close_fails_waiters_and_closes_everything(make_pool) -> None:
    pool = make_pool(max_size=1)
    lease = await pool.acquire()
    conn = conn_of(lease)
    waiter = asyncio.ensure_future(pool.acquire(timeout=5))
    await asyncio.sleep(0.01)
    closing = asyncio.ensure_future(pool.close(timeout=2))
    await asyncio.sleep(0.01)
    with pytest.raises(BackendUnavailableError, match="pool is closed"):
        await waiter
    await lease.release()
    await closing
    assert conn.closed_politely and pool.stats().size == 0
    with pytest.raises(BackendUnavailableError):
        await pool.acquire()


async def test_a_second_concurrent_call_on_one_connection_is_refused(make_pool) -> None:
    pool = make_pool()
    async with pool.acquire() as lease:
        running = asyncio.ensure_future(lease.execute("SLEEP 0.05"))
        await asyncio.sleep(0)
        with pytest.raises(InternalError, match="busy"):
            await lease.execute("SELECT 1")
        await running


async def test_close_terminates_loans_that_do_not_come_back(make_pool) -> None:
    pool = make_pool()
    lease = await pool.acquire()
    await pool.close(timeout=0.05)
    assert conn_of(lease).aborted
    with pytest.raises(BackendUnavailableError):
        await lease.execute("SELECT 1")
    await lease.release()
    assert pool.stats().size == 0


async def test_log_lines_have_fixed_fields_and_no_secrets(make_pool, opener: FakeOpener,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    pool = make_pool()
    opener.fail = True
    with caplog.at_level("DEBUG", logger="shardgate.backend"), pytest.raises(BackendUnavailableError):
        await pool.acquire()
    record = next(r for r in caplog.records if getattr(r, "event", None) == "backend_connect_failed")
    assert (record.keyspace, record.shard, record.role) == ("customer", "-80", "primary")  # type: ignore[attr-defined]
    assert record.backend == "postgres 10.0.0.1:5432" and record.error == "BackendUnavailableError"  # type: ignore[attr-defined]
    assert all("fake-secret" not in r.getMessage() for r in caplog.records)


async def test_a_stream_mid_batch_is_never_reset_under_its_reader(make_pool) -> None:
    from router.backend.adapter import StreamBase

    class SlowStream(StreamBase):
        async def _open(self) -> None:
            self.columns = ()

        async def _fetch(self, n: int) -> list[tuple[object, ...]]:
            await asyncio.sleep(0.05)
            return [(1,)] * n

        async def _stop(self, early: bool) -> None:
            pass

    pool = make_pool()
    lease = await pool.acquire()
    conn = conn_of(lease)
    stream = SlowStream(conn, "SELECT", None, 10, None)
    await stream.start()
    reading = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.01)
    assert conn.running  # a batch is in flight
    await lease.release()  # misuse: released mid-batch
    assert conn.resets == 0 and pool.stats().discarded == 1  # discarded, not reset under the reader
    await reading
