"""Session settings on pooled connections (transaction pooling): each checkout gets exactly the settings asked
for, in one statement that changes only the difference; what a connection has in effect is tracked per
connection; failures and rolled-back changes make the state unknown, so the next checkout sets it again."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from router.backend.pool import Pool
from router.backend.pool_config import PoolConfig
from router.backend.result import ExecResult, ResultSet
from router.backend.settings import UNKNOWN, settings_sql
from sharding.errors import BackendError, InvalidValueError
from tests.unit.backend.fakes import DSN_A, TARGET, FakeConn, FakeOpener

pytestmark = pytest.mark.timeout(10)

QUIET = dict(maintenance_interval=3600.0, health_check_idle=3600.0)


class LoggingConn(FakeConn):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sent: list[str] = []

    async def _run(self, sql: str, params: Sequence[Any] | None) -> ResultSet | ExecResult:
        self.sent.append(sql)
        if "bad" in sql:
            raise ValueError("invalid value for parameter")
        return await super()._run(sql, params)


class LoggingOpener(FakeOpener):
    async def __call__(self, dsn: Any, target: Any, *, timeout: float = 10.0) -> FakeConn:
        self.attempts += 1
        conn = LoggingConn(target, dsn)
        self.opened.append(conn)
        return conn


def test_statements_per_engine() -> None:
    assert settings_sql("mysql", {"time_zone": "'+01:00'", "sql_mode": None}) == \
        "SET SESSION time_zone = '+01:00', SESSION sql_mode = DEFAULT"
    assert settings_sql("postgres", {"work_mem": "'4MB'", "search_path": None}) == \
        "SET work_mem = '4MB'; RESET search_path"
    with pytest.raises(InvalidValueError):
        settings_sql("postgres", {"work_mem; DROP TABLE t": "1"})


async def test_checkout_applies_only_the_difference_and_returns_keep_it() -> None:
    opener = LoggingOpener()
    pool = Pool(TARGET, DSN_A, PoolConfig(max_size=1, **QUIET), opener=opener)  # type: ignore[arg-type]
    try:
        a = {"timezone": "'Asia/Tokyo'", "work_mem": "'5MB'"}
        b = {"timezone": "'Asia/Tokyo'"}
        async with pool.acquire(settings=a) as conn:
            await conn.execute("SELECT 1")
        raw: LoggingConn = opener.opened[0]  # type: ignore[assignment]
        assert raw.sent == ["SET timezone = 'Asia/Tokyo'; SET work_mem = '5MB'", "SELECT 1"]
        assert raw.applied == a and raw.resets == 0  # kept on return: no reset round trip
        async with pool.acquire(settings=a):
            pass
        assert len(raw.sent) == 2  # the same settings: nothing sent
        async with pool.acquire(settings=b):
            pass
        assert raw.sent[-1] == "RESET work_mem"
        async with pool.acquire():  # a borrower with no settings gets the defaults back
            pass
        assert raw.sent[-1] == "RESET timezone" and raw.applied == {}
        assert pool.stats().settings_synced == 3
    finally:
        await pool.close(0)


async def test_a_failed_change_leaves_the_state_unknown_and_the_next_checkout_repairs_it() -> None:
    opener = LoggingOpener()
    pool = Pool(TARGET, DSN_A, PoolConfig(max_size=1, **QUIET), opener=opener)  # type: ignore[arg-type]
    try:
        with pytest.raises(BackendError):
            async with pool.acquire(settings={"work_mem": "'bad'"}):
                pass
        raw: LoggingConn = opener.opened[0]  # type: ignore[assignment]
        assert raw.applied == {"work_mem": UNKNOWN}
        assert pool.stats().in_use == 0  # the connection went back
        async with pool.acquire():
            pass
        assert raw.sent[-1] == "RESET work_mem" and raw.applied == {}
    finally:
        await pool.close(0)


async def test_a_full_reset_forgets_the_settings() -> None:
    opener = LoggingOpener()
    pool = Pool(TARGET, DSN_A, PoolConfig(max_size=1, **QUIET), opener=opener)  # type: ignore[arg-type]
    try:
        async with pool.acquire(settings={"work_mem": "'5MB'"}) as conn:
            conn.mark_dirty()  # e.g. a temporary table: the pool resets the session on return
        raw: LoggingConn = opener.opened[0]  # type: ignore[assignment]
        assert raw.resets == 1 and raw.applied == {}
        async with pool.acquire(settings={"work_mem": "'5MB'"}):
            pass
        assert raw.sent[-1] == "SET work_mem = '5MB'"
    finally:
        await pool.close(0)


async def test_postgres_settings_changed_in_a_transaction_that_rolls_back_are_unknown() -> None:
    conn = LoggingConn(TARGET, DSN_A)
    await conn.execute("BEGIN")
    await conn.sync_settings({"work_mem": "'5MB'"})
    assert conn._settings_in_tx
    await conn.execute("ROLLBACK")
    conn._settings_rolled_back()  # what PostgresConnection.rollback() calls
    assert conn.applied == {"work_mem": UNKNOWN}
    await conn.sync_settings({"work_mem": "'5MB'"})
    assert conn.sent[-1] == "SET work_mem = '5MB'"


async def test_an_idle_connection_with_matching_settings_is_preferred() -> None:
    opener = LoggingOpener()
    pool = Pool(TARGET, DSN_A, PoolConfig(max_size=2, **QUIET), opener=opener)  # type: ignore[arg-type]
    try:
        first = await pool.acquire(settings={"timezone": "'UTC'"})
        second = await pool.acquire()
        await first.release()
        await second.release()  # the most recently returned one has no settings
        again = await pool.acquire(settings={"timezone": "'UTC'"})
        assert again.conn_id == first_id(opener, 0)
        await again.release()
        assert pool.stats().settings_synced == 1
    finally:
        await pool.close(0)


def first_id(opener: FakeOpener, i: int) -> int:
    return opener.opened[i].conn_id
