"""Consistent lookup vindexes on real shards (Vitess ``consistent_lookup.go``): lookup rows are created on ``pre``
connections committed before the owner rows and deleted on ``post`` ones committed after, so the lookup table is
always a superset of its owner's values; an orphan lookup row (its owner gone) is taken over by a new owner, a
value owned by a live row is a duplicate-key error.

Keyspace ``app`` (``-80`` / ``80-``): ``users`` with primary vindex ``hash`` on ``id``, an owned non-unique
``consistent_lookup`` on ``name`` and an owned ``consistent_lookup_unique`` on ``email``; their tables live in the
unsharded keyspace ``lk``.
"""
from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from router import gateway
from sharding import db
from sharding.errors import BackendError, UnsupportedError
from sharding.snapshot import ClusterSnapshot
from sharding.vindexes import registry
from tests.integration.engine_support import make_config
from tests.support.backends import DatabaseServer, connected

pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]

VSCHEMA: dict[str, Any] = {
    "keyspaces": {
        "lk": {"sharded": False, "tables": {"name_lkp": {}, "email_lkp": {}}},
        "app": {
            "sharded": True,
            "vindexes": {
                "hash": {"type": "hash"},
                "name_vdx": {"type": "consistent_lookup", "owner": "users",
                             "params": {"table": "lk.name_lkp", "from": "name", "to": "ksid"}},
                "email_vdx": {"type": "consistent_lookup_unique", "owner": "users",
                              "params": {"table": "lk.email_lkp", "from": "email", "to": "ksid"}},
            },
            "tables": {"users": {"column_vindexes": [{"column": "id", "name": "hash"},
                                                     {"column": "name", "name": "name_vdx"},
                                                     {"column": "email", "name": "email_vdx"}]}},
        },
    }
}


@dataclass
class Env:
    engine: str
    config: Any
    snapshot: ClusterSnapshot
    lk_dsn: db.DSN
    shard_dsns: dict[str, db.DSN]
    names: list[tuple[DatabaseServer, str]]


def ksid(user_id: int) -> bytes:
    (dest,) = registry.create("hash", "hash", {})[0].map([user_id])  # type: ignore[attr-defined]
    return bytes(dest.ksid)


async def _build(servers: list[DatabaseServer], engine: str) -> Env:
    tag = secrets.token_hex(3)
    names: list[tuple[DatabaseServer, str]] = []

    def create(server: DatabaseServer, name: str) -> db.DSN:
        names.append((server, name))
        return server.create_database(name)

    shards = {"-80": create(servers[0], f"cl_{tag}_a"), "80-": create(servers[1], f"cl_{tag}_b")}
    lk = create(servers[0], f"cl_{tag}_lk")
    text = "VARCHAR(64)" if engine == "postgres" else "VARCHAR(64) COLLATE utf8mb4_general_ci"
    binary = "BYTEA" if engine == "postgres" else "VARBINARY(16)"
    for dsn in shards.values():
        async with connected(dsn) as conn:
            await db.execute(conn, f"CREATE TABLE users (id BIGINT PRIMARY KEY, name {text} NOT NULL, "
                                   f"email {text} NOT NULL)")
    async with connected(lk) as conn:
        await db.execute(conn, f"CREATE TABLE name_lkp (name {text} NOT NULL, ksid {binary} NOT NULL, "
                               "PRIMARY KEY (name, ksid))")
        await db.execute(conn, f"CREATE TABLE email_lkp (email {text} NOT NULL, ksid {binary} NOT NULL, "
                               "PRIMARY KEY (email))")
    config = make_config(engine, {"app": shards, "lk": {"0": lk}}, VSCHEMA)
    snapshot = ClusterSnapshot.build(1, config.vschema, {"app": ["-80", "80-"], "lk": ["0"]})
    return Env(engine, config, snapshot, lk, shards, names)


async def _drop(env: Env) -> None:
    for server, name in env.names:
        try:
            await asyncio.to_thread(server.drop_database, name)
        except Exception:
            pass


@pytest.fixture(scope="module")
async def pg_env(pg_cluster: list[DatabaseServer]) -> AsyncIterator[Env]:
    env = await _build(pg_cluster, "postgres")
    yield env
    await _drop(env)


@pytest.fixture(scope="module")
async def my_env(mysql_cluster: list[DatabaseServer]) -> AsyncIterator[Env]:
    env = await _build(mysql_cluster, "mysql")
    yield env
    await _drop(env)


@pytest.fixture(params=["postgres", "mysql"])
def env(request: pytest.FixtureRequest) -> Env:
    return request.getfixturevalue("pg_env" if request.param == "postgres" else "my_env")  # type: ignore[no-any-return]


@pytest.fixture
async def gw(env: Env) -> AsyncIterator[gateway.Gateway]:
    async with gateway.connect(env.config) as g:
        yield g


async def lookup_rows(env: Env, table: str, value: str) -> list[tuple[str, bytes]]:
    col = "name" if table == "name_lkp" else "email"
    async with connected(env.lk_dsn) as conn:
        rows = await db.fetch_all(conn, f"SELECT {col}, ksid FROM {table} WHERE {col} = '{value}' ORDER BY ksid")
    return [(r[0], bytes(r[1])) for r in rows]


async def put_lookup(env: Env, table: str, value: str, key: bytes) -> None:
    col = "name" if table == "name_lkp" else "email"
    lit = f"'\\x{key.hex()}'::bytea" if env.engine == "postgres" else f"X'{key.hex()}'"
    async with connected(env.lk_dsn) as conn:
        await db.execute(conn, f"INSERT INTO {table} ({col}, ksid) VALUES ('{value}', {lit})")


async def owner_ids(gw: gateway.Gateway, env: Env, where: str) -> list[int]:
    result = await gw.execute(f"SELECT id FROM users WHERE {where}", dialect=env.engine, keyspace="app")
    return sorted(int(r[0]) for r in result.rows)


class FailingCommit:
    """A transaction connection whose COMMIT fails (it rolls back for real, then raises)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def commit(self) -> None:
        await self._conn.rollback()
        raise BackendError("simulated commit failure")


def _ins(uid: int, name: str, email: str) -> str:
    return f"INSERT INTO users (id, name, email) VALUES ({uid}, '{name}', '{email}')"


async def test_insert_update_delete_keep_lookup_rows(env: Env, gw: gateway.Gateway) -> None:
    await gw.execute(_ins(1, "ann", "ann@x"), dialect=env.engine, keyspace="app")
    assert await lookup_rows(env, "name_lkp", "ann") == [("ann", ksid(1))]
    assert await lookup_rows(env, "email_lkp", "ann@x") == [("ann@x", ksid(1))]
    assert await owner_ids(gw, env, "email = 'ann@x'") == [1]
    # UPDATE moves the lookup row: the old value's row is removed, the new one points at the same row.
    await gw.execute("UPDATE users SET email = 'ann2@x' WHERE id = 1", dialect=env.engine, keyspace="app")
    assert await lookup_rows(env, "email_lkp", "ann@x") == []
    assert await lookup_rows(env, "email_lkp", "ann2@x") == [("ann2@x", ksid(1))]
    assert await owner_ids(gw, env, "email = 'ann2@x'") == [1]
    await gw.execute("DELETE FROM users WHERE id = 1", dialect=env.engine, keyspace="app")
    assert await lookup_rows(env, "email_lkp", "ann2@x") == []
    assert await lookup_rows(env, "name_lkp", "ann") == []


async def test_orphan_lookup_row_is_taken_over(env: Env, gw: gateway.Gateway) -> None:
    await put_lookup(env, "email_lkp", "orphan@x", ksid(999))  # its owner row (id 999) does not exist
    await gw.execute(_ins(5, "olga", "orphan@x"), dialect=env.engine, keyspace="app")
    assert await lookup_rows(env, "email_lkp", "orphan@x") == [("orphan@x", ksid(5))]
    assert await owner_ids(gw, env, "email = 'orphan@x'") == [5]


async def test_duplicate_with_a_live_owner_fails_and_leaves_nothing(env: Env, gw: gateway.Gateway) -> None:
    await gw.execute(_ins(10, "dora", "dup@x"), dialect=env.engine, keyspace="app")
    with pytest.raises(BackendError) as info:
        await gw.execute(_ins(11, "dave", "dup@x"), dialect=env.engine, keyspace="app")
    assert info.value.mysql_errno == 1062 and info.value.pg_sqlstate == "23505"
    assert await lookup_rows(env, "email_lkp", "dup@x") == [("dup@x", ksid(10))]
    assert await lookup_rows(env, "name_lkp", "dave") == []  # written before the failing one: rolled back
    assert await owner_ids(gw, env, "id = 11") == []


async def test_non_unique_same_ksid_duplicate_and_shared_values(env: Env, gw: gateway.Gateway) -> None:
    await put_lookup(env, "name_lkp", "same", ksid(20))  # an orphan with the very keyspace id of the new row
    await gw.execute(_ins(20, "same", "s20@x"), dialect=env.engine, keyspace="app")
    assert await lookup_rows(env, "name_lkp", "same") == [("same", ksid(20))]
    await gw.execute(_ins(21, "same", "s21@x"), dialect=env.engine, keyspace="app")  # non-unique: shared value
    assert await lookup_rows(env, "name_lkp", "same") == sorted([("same", ksid(20)), ("same", ksid(21))])
    assert await owner_ids(gw, env, "name = 'same'") == [20, 21]


async def test_rollback_removes_owner_and_lookup_rows(env: Env, gw: gateway.Gateway) -> None:
    async with gw.session(env.engine, "app") as s:
        await s.execute("BEGIN")
        await s.execute(_ins(40, "rita", "rb@x"))
        await s.execute(_ins(41, "rolf", "rb2@x"))
        await s.execute("ROLLBACK")
    assert await lookup_rows(env, "email_lkp", "rb@x") == []
    assert await lookup_rows(env, "name_lkp", "rolf") == []
    assert await owner_ids(gw, env, "id IN (40, 41)") == []


async def test_owner_commit_failure_leaves_only_an_orphan(env: Env, gw: gateway.Gateway) -> None:
    async with gw.session(env.engine, "app") as s:
        await s.execute("BEGIN")
        await s.execute(_ins(30, "fred", "fail@x"))
        tx = s.tx
        assert tx is not None and len(tx.participants) == 1 and len(tx.ordered) == 1
        (owner,) = tx.participants.values()
        owner.conn = FailingCommit(owner.conn)  # the owner shard fails at COMMIT: its rows are lost
        with pytest.raises(BackendError, match="simulated commit failure"):
            await s.execute("COMMIT")
    # The lookup rows committed first: they remain, as orphans; the owner row never made it.
    assert await owner_ids(gw, env, "id = 30") == []
    assert await lookup_rows(env, "email_lkp", "fail@x") == [("fail@x", ksid(30))]
    assert await owner_ids(gw, env, "email = 'fail@x'") == []  # reads verify the owner: the orphan is harmless
    await gw.execute(_ins(31, "fay", "fail@x"), dialect=env.engine, keyspace="app")  # and it is taken over
    assert await lookup_rows(env, "email_lkp", "fail@x") == [("fail@x", ksid(31))]


async def test_lookup_delete_commits_after_the_owner(env: Env, gw: gateway.Gateway) -> None:
    await gw.execute(_ins(50, "paul", "post@x"), dialect=env.engine, keyspace="app")
    async with gw.session(env.engine, "app") as s:
        await s.execute("BEGIN")
        await s.execute("DELETE FROM users WHERE id = 50")
        tx = s.tx
        assert tx is not None
        post = [p for (order, _t), p in tx.ordered.items() if order == "post"]
        assert len(post) == 1
        post[0].conn = FailingCommit(post[0].conn)
        await s.execute("COMMIT")  # the owner's delete is committed; only lookup cleanup failed
    assert await owner_ids(gw, env, "id = 50") == []
    assert await lookup_rows(env, "email_lkp", "post@x") == [("post@x", ksid(50))]  # a superset: an orphan
    await gw.execute(_ins(51, "pia", "post@x"), dialect=env.engine, keyspace="app")
    assert await lookup_rows(env, "email_lkp", "post@x") == [("post@x", ksid(51))]


async def test_one_transaction_creating_and_removing_a_value(env: Env, gw: gateway.Gateway) -> None:
    # Created and removed in one transaction: the removal runs where the row was created (no self-deadlock).
    async with gw.session(env.engine, "app") as s:
        await s.execute("BEGIN")
        await s.execute(_ins(60, "tina", "tx@x"))
        await s.execute("UPDATE users SET email = 'tx2@x' WHERE id = 60")
        await s.execute("UPDATE users SET email = 'tx@x' WHERE id = 60")
        await s.execute("DELETE FROM users WHERE id = 60")
        await asyncio.wait_for(s.execute("COMMIT"), 20)
    assert await lookup_rows(env, "email_lkp", "tx@x") == []
    assert await lookup_rows(env, "email_lkp", "tx2@x") == []
    assert await lookup_rows(env, "name_lkp", "tina") == []


async def test_a_value_removed_in_the_transaction_is_refused_until_commit(env: Env, gw: gateway.Gateway) -> None:
    await gw.execute(_ins(70, "ulf", "again@x"), dialect=env.engine, keyspace="app")
    async with gw.session(env.engine, "app") as s:
        await s.execute("BEGIN")
        await s.execute("DELETE FROM users WHERE id = 70")
        with pytest.raises(UnsupportedError, match="removed earlier in this transaction"):
            await asyncio.wait_for(s.execute(_ins(71, "uma", "again@x")), 20)  # a clear error, not a lock wait
        await s.execute("ROLLBACK")
    assert await lookup_rows(env, "email_lkp", "again@x") == [("again@x", ksid(70))]
    assert await owner_ids(gw, env, "email = 'again@x'") == [70]


async def test_one_statement_giving_a_unique_value_twice_fails(env: Env, gw: gateway.Gateway) -> None:
    with pytest.raises(BackendError) as info:
        await gw.execute("INSERT INTO users (id, name, email) VALUES (80, 'vic', 'twice@x'), (81, 'val', 'twice@x')",
                         dialect=env.engine, keyspace="app")
    assert info.value.mysql_errno == 1062
    assert await lookup_rows(env, "email_lkp", "twice@x") == []
    assert await owner_ids(gw, env, "id IN (80, 81)") == []
