"""Transactions over fake connections: modes, partial commits, two-phase commit and its recovery, savepoints,
the timeout killer. Each connection call is a transcript line (``begin customer/-80``)."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from router.backend.connection import BackendTarget
from router.backend.result import ExecResult, ResultSet
from router.engine.transaction import Characteristics, Transaction, TxMode
from router.engine.twopc import DecisionLog, TwoPhaseCoordinator
from sharding.errors import BackendError, BackendUnavailableError, QueryCanceledError, TransactionError

A = BackendTarget("customer", "-80")
B = BackendTarget("customer", "80-")


class FakeConn:
    def __init__(self, pools: FakePools, target: BackendTarget) -> None:
        self.pools, self.target, self.in_transaction = pools, target, False
        self.prepared: set[str] = pools.prepared.setdefault(target, set())

    def _log(self, line: str) -> None:
        self.pools.log.append(f"{line} {self.target.shard_name}")
        failure = self.pools.fail.get((line, self.target))
        if failure is not None:
            raise failure

    async def begin(self, xid: str | None = None) -> None:
        self._log(f"begin{'[' + xid + ']' if xid else ''}")
        self.in_transaction = True

    async def execute(self, sql: str, params: object = None, *, timeout: float | None = None) -> object:
        self._log(f"execute {sql} on")
        if "sleep" in sql:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.pools.cancel_event.wait(), 10)
            raise QueryCanceledError("canceled")
        return ResultSet((), []) if sql.startswith("SELECT") else ExecResult(1)

    @contextlib.asynccontextmanager
    async def stream(self, sql: str, params: object = None, *, batch_rows: int = 1000,
                     timeout: float | None = None) -> AsyncIterator[Any]:
        self.pools.log.append(f"stream {sql} on {self.target.shard_name}")

        class _Rows:
            columns = ()

            def __aiter__(self) -> AsyncIterator[Any]:
                return self._none()

            async def _none(self) -> AsyncIterator[Any]:
                return
                yield

        yield _Rows()

    async def commit(self) -> None:
        self._log("commit")
        self.in_transaction = False

    async def rollback(self) -> None:
        self._log("rollback")
        self.in_transaction = False

    async def prepare_transaction(self, xid: str) -> None:
        self._log(f"prepare[{xid}]")
        self.prepared.add(xid)
        self.in_transaction = False

    async def commit_prepared(self, xid: str) -> None:
        self._log(f"commit_prepared[{xid}]")
        self.prepared.discard(xid)

    async def rollback_prepared(self, xid: str) -> None:
        self._log(f"rollback_prepared[{xid}]")
        self.prepared.discard(xid)

    async def recover_prepared(self) -> list[str]:
        return sorted(self.prepared)

    async def cancel(self) -> bool:
        self.pools.log.append(f"cancel {self.target.shard_name}")
        self.pools.cancel_event.set()
        return True

    async def release(self) -> None:
        self.pools.log.append(f"release {self.target.shard_name}")

    def discard(self) -> None:
        pass


class _Acquire:
    def __init__(self, pools: FakePools, target: BackendTarget) -> None:
        self.pools, self.target = pools, target

    def __await__(self):  # type: ignore[no-untyped-def]
        async def get() -> FakeConn:
            return FakeConn(self.pools, self.target)
        return get().__await__()

    async def __aenter__(self) -> FakeConn:
        return FakeConn(self.pools, self.target)

    async def __aexit__(self, *exc: object) -> None:
        pass


class FakePools:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.fail: dict[tuple[str, BackendTarget], Exception] = {}
        self.prepared: dict[BackendTarget, set[str]] = {}
        self.cancel_event = asyncio.Event()

    def acquire(self, keyspace: str, shard: str, role: str = "primary", *, timeout: float | None = None,
                settings: dict[str, str] | None = None) -> _Acquire:
        if settings:
            self.log.append(f"settings {dict(settings)} {keyspace}/{shard}")
        return _Acquire(self, BackendTarget(keyspace, shard, role))


def tx(pools: FakePools, mode: TxMode = TxMode.MULTI, **kw: object) -> Transaction:
    return Transaction(pools, lambda ks: "postgres", mode, **kw)  # type: ignore[arg-type]


async def test_shards_join_lazily_and_commit_one_by_one() -> None:
    pools = FakePools()
    t = tx(pools)
    assert pools.log == []  # BEGIN sends nothing
    await t.execute(A, "UPDATE x")
    await t.execute(B, "UPDATE y")
    await t.execute(A, "UPDATE z")
    assert await t.commit() == []
    assert pools.log == ["begin customer/-80", "execute UPDATE x on customer/-80", "begin customer/80-",
                         "execute UPDATE y on customer/80-", "execute UPDATE z on customer/-80",
                         "commit customer/-80", "commit customer/80-", "release customer/-80", "release customer/80-"]


async def test_characteristics_follow_each_dialect() -> None:
    pools = FakePools()
    t = Transaction(pools, lambda ks: "mysql", characteristics=Characteristics("READ COMMITTED", True))
    await t.execute(A, "SELECT 1")
    assert pools.log[:2] == ["execute SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY on customer/-80",
                             "begin customer/-80"]
    pools2 = FakePools()
    t2 = tx(pools2, characteristics=Characteristics("SERIALIZABLE", None, True))
    await t2.execute(A, "SELECT 1")
    assert pools2.log[:2] == ["begin customer/-80",
                              "execute SET TRANSACTION ISOLATION LEVEL SERIALIZABLE DEFERRABLE on customer/-80"]


async def test_single_mode_refuses_a_second_shard() -> None:
    pools = FakePools()
    t = tx(pools, TxMode.SINGLE)
    await t.execute(A, "UPDATE x")
    with pytest.raises(TransactionError, match=r"single.*customer/-80.*customer/80-"):
        await t.execute(B, "UPDATE y")
    await t.rollback()
    assert pools.log[-2:] == ["rollback customer/-80", "release customer/-80"]


async def test_first_commit_failing_commits_nothing() -> None:
    pools = FakePools()
    pools.fail[("commit", A)] = BackendError("serialization failure", pg_sqlstate="40001")
    t = tx(pools)
    await t.execute(A, "UPDATE x")
    await t.execute(B, "UPDATE y")
    with pytest.raises(BackendError, match="nothing was committed"):
        await t.commit()
    assert "rollback customer/80-" in pools.log


async def test_later_commit_failing_is_a_partial_commit_warning() -> None:
    pools = FakePools()
    pools.fail[("commit", B)] = BackendUnavailableError("lost")
    t = tx(pools)
    await t.execute(A, "UPDATE x")
    await t.execute(B, "UPDATE y")
    warnings = await t.commit()
    assert warnings == ["partial commit: committed on customer/-80; failed on customer/80- (lost)"]


async def test_two_phase_commit_logs_the_decision_before_committing(tmp_path) -> None:
    pools = FakePools()
    coord = TwoPhaseCoordinator(tmp_path, "r1")
    t = tx(pools, TxMode.TWOPC, coordinator=coord)
    await t.execute(A, "UPDATE x")
    await t.execute(B, "UPDATE y")
    assert await t.commit() == []
    xid = t.xid
    assert [line for line in pools.log if "prepare" in line or "commit" in line] == [
        f"prepare[{xid}.0] customer/-80", f"prepare[{xid}.1] customer/80-",
        f"commit_prepared[{xid}.0] customer/-80", f"commit_prepared[{xid}.1] customer/80-"]
    assert pools.log[0] == f"begin[{xid}.0] customer/-80"  # MySQL XA needs the branch id at the start
    states = [json.loads(line)["state"] for line in (tmp_path / DecisionLog.FILE).read_text().splitlines()]
    assert states == ["prepare", "commit", "done"]


async def test_two_phase_commit_with_one_shard_is_a_plain_commit(tmp_path) -> None:
    pools = FakePools()
    t = tx(pools, TxMode.TWOPC, coordinator=TwoPhaseCoordinator(tmp_path, "r1"))
    await t.execute(A, "UPDATE x")
    await t.commit()
    assert not [line for line in pools.log if "prepare" in line]


async def test_a_failed_prepare_rolls_every_branch_back(tmp_path) -> None:
    pools = FakePools()
    coord = TwoPhaseCoordinator(tmp_path, "r1")
    t = tx(pools, TxMode.TWOPC, coordinator=coord)
    await t.execute(A, "UPDATE x")
    await t.execute(B, "UPDATE y")
    pools.fail[(f"prepare[{t.xid}.1]", B)] = BackendError("prepare refused")
    with pytest.raises(BackendError, match="two-phase commit aborted: prepare failed on customer/80-"):
        await t.commit()
    assert f"rollback_prepared[{t.xid}.0] customer/-80" in pools.log
    assert coord.log.unfinished() == {}


async def test_recovery_commits_decided_and_rolls_back_undecided(tmp_path) -> None:
    pools = FakePools()
    log = DecisionLog(tmp_path)
    def branches(xid: str) -> list[list[str]]:
        return [["customer", "-80", "primary", f"{xid}.0"], ["customer", "80-", "primary", f"{xid}.1"]]

    log.record("x1", "prepare", branches=branches("x1"))
    log.record("x1", "commit")
    log.record("x2", "prepare", branches=branches("x2"))
    log.close()
    pools.prepared = {A: {"x1.0", "x2.0"}, B: {"x1.1"}}  # x1.1 prepared; x2.1 never got prepared
    report = await TwoPhaseCoordinator(tmp_path, "r2").recover(pools)
    assert sorted(report.committed) == ["x1.0", "x1.1"]
    assert report.rolled_back == ["x2.0"]
    assert pools.prepared == {A: set(), B: set()}
    assert DecisionLog(tmp_path).unfinished() == {}


async def test_savepoints_are_single_shard_only() -> None:
    pools = FakePools()
    t = tx(pools)
    await t.savepoint("savepoint", "s1")  # before any shard: replayed on the first
    await t.execute(A, "UPDATE x")
    assert pools.log[:2] == ["begin customer/-80", 'execute SAVEPOINT "s1" on customer/-80']
    await t.savepoint("rollback_to", "s1")
    assert pools.log[-1] == 'execute ROLLBACK TO SAVEPOINT "s1" on customer/-80'
    with pytest.raises(TransactionError, match="single-shard"):
        await t.execute(B, "UPDATE y")
    with pytest.raises(TransactionError, match="no such savepoint"):
        await t.savepoint("rollback_to", "nope")


async def test_the_killer_rolls_back_a_transaction_past_its_timeout() -> None:
    pools = FakePools()
    t = tx(pools, timeout=0.05)
    await t.execute(A, "UPDATE x")
    with pytest.raises(TransactionError, match="timeout"):
        await t.execute(A, "SELECT sleep")
    await asyncio.sleep(0.05)
    assert "cancel customer/-80" in pools.log and "rollback customer/-80" in pools.log
    with pytest.raises(TransactionError, match="timeout"):
        await t.commit()


# --- commit order (consistent lookup vindexes) ---------------------------------------------------------------
L = BackendTarget("commerce", "0")


def _ends(log: list[str]) -> list[str]:
    return [line for line in log if line.split()[0] in ("commit", "rollback", "begin")]


async def test_pre_commits_before_normal_and_post_after() -> None:
    pools = FakePools()
    t = tx(pools)
    await t.execute(L, "INSERT lookup", order="pre")
    await t.execute(A, "INSERT owner")
    await t.execute(L, "DELETE lookup", order="post")
    assert t.shards == ["customer/-80"]  # pre/post connections are not shards of the transaction
    assert await t.commit() == []
    assert _ends(pools.log) == ["begin commerce/0", "begin customer/-80", "begin commerce/0",  # two connections
                                "commit commerce/0", "commit customer/-80", "commit commerce/0"]


async def test_owner_commit_failing_after_pre_fails_and_rolls_post_back() -> None:
    pools = FakePools()
    pools.fail[("commit", A)] = BackendError("owner shard failed")
    t = tx(pools)
    await t.execute(L, "INSERT lookup", order="pre")
    await t.execute(A, "INSERT owner")
    await t.execute(B, "DELETE owner")
    await t.execute(L, "DELETE lookup", order="post")
    with pytest.raises(BackendError, match="nothing was committed"):
        await t.commit()
    # The lookup row committed first (an orphan at worst); the post connection never commits.
    ends = _ends(pools.log)[4:]
    assert ends[:2] == ["commit commerce/0", "commit customer/-80"]
    assert {"rollback customer/80-", "rollback commerce/0"} <= set(ends[2:])
    assert ends.count("commit commerce/0") == 1


async def test_pre_commit_failing_commits_nothing_else() -> None:
    pools = FakePools()
    pools.fail[("commit", L)] = BackendUnavailableError("lost")
    t = tx(pools)
    await t.execute(L, "INSERT lookup", order="pre")
    await t.execute(A, "INSERT owner")
    with pytest.raises(BackendUnavailableError, match="lookup rows; nothing was committed"):
        await t.commit()
    assert "commit customer/-80" not in pools.log and "rollback customer/-80" in pools.log


async def test_post_commit_failing_is_a_warning() -> None:
    pools = FakePools()
    t = tx(pools)
    await t.execute(A, "DELETE owner")
    await t.execute(L, "DELETE lookup", order="post")
    pools.fail[("commit", L)] = BackendUnavailableError("lost")
    warnings = await t.commit()
    assert len(warnings) == 1 and "orphan lookup rows" in warnings[0] and "commerce/0" in warnings[0]
    assert "commit customer/-80" in pools.log


async def test_partial_owner_commit_rolls_post_back() -> None:
    pools = FakePools()
    pools.fail[("commit", B)] = BackendUnavailableError("lost")
    t = tx(pools)
    await t.execute(A, "DELETE owner")
    await t.execute(B, "DELETE owner")
    await t.execute(L, "DELETE lookup", order="post")
    warnings = await t.commit()
    assert warnings[0].startswith("partial commit")
    assert "rollback commerce/0" in pools.log and "commit commerce/0" not in pools.log  # orphans, never less


async def test_single_mode_allows_pre_and_post_on_other_shards() -> None:
    pools = FakePools()
    t = tx(pools, TxMode.SINGLE)
    await t.execute(L, "INSERT lookup", order="pre")
    await t.execute(A, "INSERT owner")
    await t.execute(L, "DELETE lookup", order="post")
    assert await t.commit() == []
    assert "commit commerce/0" in pools.log


async def test_rollback_and_savepoints_reach_pre_and_post() -> None:
    pools = FakePools()
    t = tx(pools)
    await t.execute(A, "INSERT owner")
    await t.savepoint("savepoint", "s1")
    await t.execute(L, "INSERT lookup", order="pre")  # joins after s1: s1 is replayed on it
    await t.savepoint("rollback_to", "s1")
    assert 'execute SAVEPOINT "s1" on commerce/0' in pools.log
    assert 'execute ROLLBACK TO SAVEPOINT "s1" on commerce/0' in pools.log
    await t.rollback()
    assert sorted(line for line in pools.log if line.startswith("rollback")) == ["rollback commerce/0",
                                                                                 "rollback customer/-80"]


async def test_two_phase_commit_prepares_pre_and_post_too(tmp_path) -> None:
    pools = FakePools()
    t = tx(pools, TxMode.TWOPC, coordinator=TwoPhaseCoordinator(tmp_path, "r1"))
    await t.execute(L, "INSERT lookup", order="pre")
    await t.execute(A, "INSERT owner")
    await t.execute(L, "DELETE lookup", order="post")
    assert await t.commit() == []
    prepares = [line for line in pools.log if line.startswith("prepare")]
    commits = [line for line in pools.log if line.startswith("commit_prepared")]
    assert len(prepares) == 3 and len(commits) == 3
    assert pools.log.index(prepares[-1]) < pools.log.index(commits[0])  # every branch prepared before any commits
