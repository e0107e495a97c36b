"""Transaction pooling's session side, over fake pools: which variables are replayed, how values reach the shards,
which statements pin a connection (and which unpin it), and the client-session limits."""
from __future__ import annotations

from typing import Any

import pytest

from router.backend.connection import BackendTarget
from router.backend.result import ExecResult, ResultSet
from router.engine.client_limits import ClientLimiter
from router.engine.session_state import SessionBackend, pin_counts, render_value, statement_effect, variable_kind
from router.planner.special import Word
from sharding.config_model import ClientLimits
from sharding.errors import TooManyConnectionsError

T0 = BackendTarget("main", "0")


def test_variable_kinds() -> None:
    assert variable_kind("time_zone", "mysql") == "replay"
    assert variable_kind("SQL_MODE", "mysql") == "replay"
    assert variable_kind("character_set_client", "mysql") == "harmless"
    assert variable_kind("auto_increment_increment", "mysql") == "unknown"
    assert variable_kind("search_path", "postgres") == "replay"
    assert variable_kind("enable_seqscan", "postgres") == "replay"
    assert variable_kind("transaction_isolation", "postgres") == "harmless"
    assert variable_kind("myapp.tenant", "postgres") == "unknown"


def test_values_as_the_shards_receive_them() -> None:
    assert render_value("time_zone", "+01:00", "+01:00", "mysql") == "'+01:00'"
    assert render_value("group_concat_max_len", 7, 7, "mysql") == "7"
    assert render_value("x", "a'b\\c", "a'b\\c", "mysql") == "'a''b\\\\c'"
    assert render_value("x", "a'b\\c", "a'b\\c", "postgres") == "'a''b\\c'"
    assert render_value("foreign_key_checks", Word("OFF"), Word("OFF"), "mysql") == "'OFF'"
    # sql_mode: the flags that change how SQL is read stay in the router
    assert render_value("sql_mode", "", "ANSI_QUOTES,STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES", "mysql") == \
        "'STRICT_ALL_TABLES'"
    assert render_value("sql_mode", "", "ANSI", "mysql") == "'REAL_AS_FLOAT,IGNORE_SPACE,ONLY_FULL_GROUP_BY'"
    # search_path: keyspace names are the router's
    assert render_value("search_path", ("customer", "app", "$user"), None, "postgres", ["customer"]) == \
        "'app', '$user'"
    assert render_value("search_path", "customer", "customer", "postgres", ["customer"]) is None


@pytest.mark.parametrize(("sql", "engine", "effect"), [
    ("SELECT 1", "mysql", (None, None)),
    ("CREATE TEMPORARY TABLE t (a int)", "mysql", ("temporary_table", None)),
    ("/* x */ create temp table t (a int)", "postgres", ("temporary_table", None)),
    ("CREATE TABLE t (a int)", "postgres", (None, None)),
    ("SELECT GET_LOCK('a', 5)", "mysql", ("user_lock", None)),
    ("SELECT pg_advisory_lock(1)", "postgres", ("user_lock", None)),
    ("SELECT pg_advisory_xact_lock(1)", "postgres", (None, None)),  # ends with the transaction
    ("SELECT RELEASE_ALL_LOCKS()", "mysql", (None, "user_lock")),
    ("SELECT pg_advisory_unlock_all()", "postgres", (None, "user_lock")),
    ("SELECT set_config('app.user', 'x', false)", "postgres", ("session_variable", None)),
    ("LISTEN chan", "postgres", ("listen", None)),
    ("UNLISTEN *", "postgres", (None, "listen")),
    ("LOCK TABLES t WRITE", "mysql", ("table_lock", None)),
    ("LOCK TABLE t", "postgres", (None, None)),  # PostgreSQL: only inside a transaction
    ("UNLOCK TABLES", "mysql", (None, "table_lock")),
    ("PREPARE s FROM 'SELECT 1'", "mysql", ("prepared_statement", None)),
    ("PREPARE TRANSACTION 'x'", "postgres", (None, None)),
    ("DEALLOCATE ALL", "postgres", (None, "prepared_statement")),
])
def test_statement_effects(sql: str, engine: str, effect: tuple[str | None, str | None]) -> None:
    assert statement_effect(sql, engine) == effect


# --- SessionBackend over fake pools -----------------------------------------------------------------------------------
class Conn:
    def __init__(self, pools: Pools, n: int) -> None:
        self.pools, self.n = pools, n
        self.engine = "mysql"
        self.released = False
        self.broken = False
        self.dirty = False
        self.applied: dict[str, str] = {}
        self.sent: list[str] = []
        self.answer: Any = ExecResult()

    async def execute(self, sql: str, params: Any = None, *, timeout: float | None = None) -> Any:
        self.sent.append(sql)
        return self.answer

    async def sync_settings(self, desired: Any, timeout: float = 5.0) -> bool:
        self.applied = dict(desired)
        return True

    def mark_dirty(self) -> None:
        self.dirty = True

    async def release(self) -> None:
        self.released = True
        self.pools.released.append(self.n)


class Pools:
    def __init__(self) -> None:
        self.lent: list[Conn] = []
        self.released: list[int] = []

    def acquire(self, keyspace: str, shard: str, role: str = "primary", *, timeout: float | None = None,
                settings: Any = None) -> Any:
        pools = self

        class _A:
            def __await__(self) -> Any:
                async def get() -> Conn:
                    conn = Conn(pools, len(pools.lent))
                    conn.applied = dict(settings or {})
                    pools.lent.append(conn)
                    return conn
                return get().__await__()
        return _A()


def backend() -> tuple[SessionBackend, Pools]:
    pools = Pools()
    return SessionBackend(pools, "mysql", lambda ks: "mysql"), pools


async def test_plain_statements_borrow_and_return() -> None:
    b, pools = backend()
    async with b.acquire("main", "0") as conn:
        await conn.execute("SELECT 1")
    assert pools.released == [0] and not b.pins and b.at_defaults


async def test_settings_go_with_every_checkout() -> None:
    b, pools = backend()
    b.set_replayed("time_zone", "'+02:00'")
    assert not b.at_defaults
    async with b.acquire("main", "0"):
        pass
    assert pools.lent[0].applied == {"time_zone": "'+02:00'"}
    b.set_replayed("time_zone", None)
    assert b.at_defaults


async def test_a_lock_pins_until_released_and_is_counted() -> None:
    b, pools = backend()
    before = pin_counts().get("user_lock", 0)
    lease = await b.acquire("main", "0")
    lease._conn.answer = ResultSet((), [(1,)])
    await lease.execute("SELECT GET_LOCK('x', 1)")
    await lease.release()
    assert pools.released == [] and b.pin_reasons() == {"main/0/primary": ["user_lock"]}
    assert pin_counts()["user_lock"] == before + 1
    assert pools.lent[0].dirty  # reset when it finally goes back
    assert b.pinned_shards("main") == frozenset({"0"})
    again = await b.acquire("main", "0")  # the same connection while pinned
    assert again._conn is pools.lent[0]
    busy = await b.acquire("main", "0")  # lent already: a second reader gets its own
    assert busy._conn is pools.lent[1]
    await busy.release()
    await again.execute("SELECT RELEASE_ALL_LOCKS()")
    await again.release()
    assert not b.pins and pools.released == [1, 0]


async def test_a_refused_lock_does_not_pin() -> None:
    b, pools = backend()
    lease = await b.acquire("main", "0")
    lease._conn.answer = ResultSet((), [(0,)])  # GET_LOCK timed out
    await lease.execute("SELECT GET_LOCK('x', 0)")
    await lease.release()
    assert not b.pins and pools.released == [0]


async def test_unknown_variables_pin_and_are_replayed_on_new_connections() -> None:
    b, pools = backend()
    before = pin_counts().get("session_variable", 0)
    await b.set_unknown("auto_increment_increment", "2", "main", "0")
    assert pools.lent[0].sent == ["SET SESSION auto_increment_increment = 2"]
    assert b.pin_reasons() == {"main/0/primary": ["session_variable"]}
    assert pin_counts()["session_variable"] == before + 1
    async with b.acquire("customer", "-80") as conn:  # another shard: the SET first, then pinned too
        assert conn._conn.sent == ["SET SESSION auto_increment_increment = 2"]
    assert set(b.pin_reasons()) == {"main/0/primary", "customer/-80/primary"}
    await b.set_unknown("auto_increment_increment", None, "main", "0")  # back to DEFAULT: pins dropped
    assert not b.pins and sorted(pools.released) == [0, 1]


async def test_closing_the_session_returns_pinned_connections() -> None:
    b, pools = backend()
    async with b.acquire("main", "0") as conn:
        await conn.execute("CREATE TEMPORARY TABLE t (a INT)")
    assert b.pins
    await b.close()
    assert not b.pins and pools.released == [0]


# --- client limits ----------------------------------------------------------------------------------------------------
class Config:
    def __init__(self, limits: ClientLimits, per_user: dict[str, int] | None = None) -> None:
        self.limits = limits
        self.per_user = per_user or {}

    def user(self, name: str) -> Any:
        class U:
            max_connections = self.per_user.get(name)
        return U()


def test_client_limits() -> None:
    config = Config(ClientLimits(max_client_connections=3, max_user_connections=2), {"vip": 3})
    limiter = ClientLimiter(lambda: config)
    a1, a2 = limiter.admit("a"), limiter.admit("a")
    with pytest.raises(TooManyConnectionsError, match="user 'a'") as info:
        limiter.admit("a")
    assert info.value.mysql_errno == 1040 and info.value.pg_sqlstate == "53300"
    v1 = limiter.admit("vip")
    with pytest.raises(TooManyConnectionsError, match="max_client_connections"):
        limiter.admit("vip")
    a1.release()
    a1.release()  # idempotent
    limiter.admit("vip")
    assert limiter.total == 3 and limiter.refused == 2
    a2.release()
    v1.release()
    assert dict(limiter.by_user) == {"vip": 1}
    assert ClientLimiter(lambda: None).admit("x") is not None  # no config: no limits
