"""Two-phase commit across shards: PostgreSQL ``PREPARE TRANSACTION`` / ``COMMIT PREPARED``, MySQL/MariaDB XA.

The coordinator is the router, so its decision must survive the router: a ``DecisionLog`` (one append-only file
of JSON lines in a configured directory, each record ``fsync``-ed before the step it announces) says, per
transaction id, ``prepare`` (the branches about to be prepared), ``commit`` (the decision: every branch
prepared) or ``abort``, and ``done`` when every branch is finished. After a crash, ``recover()`` commits the
branches of transactions whose decision was ``commit`` and rolls back the prepared branches of every other
unfinished one; then the log is compacted.

Branch ids are ``<xid>.<n>``: unique per branch because two shards may be two databases of one server, and
PostgreSQL's prepared-transaction ids (and MySQL's XA ids) are per server.

Fault injection for tests: ``SHARDGATE_FAULT=after_prepare`` (every branch prepared, no decision yet) or
``after_decision`` (decision logged, nothing committed) makes the process SIGKILL itself at that point.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.backend.connection import BackendTarget
from sharding.errors import BackendError, ShardgateError, TransactionError

__all__ = ["DecisionLog", "RecoveryReport", "TwoPhaseCoordinator", "fault_point"]

log = logging.getLogger("shardgate.engine.twopc")
FAULT_ENV = "SHARDGATE_FAULT"


def fault_point(name: str) -> None:
    """Die here, hard, when ``SHARDGATE_FAULT`` names this point (tests of crash recovery)."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(137)  # pragma: no cover (SIGKILL does not return)


class DecisionLog:
    """The durable 2PC log (see the module docstring)."""

    FILE = "twopc-decisions.jsonl"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / self.FILE
        existed = self.path.exists()
        self._fh = open(self.path, "a", encoding="utf-8")
        if not existed:
            self._fsync_dir()

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def record(self, xid: str, state: str, **fields: Any) -> None:
        line = json.dumps({"xid": xid, "state": state, "at": time.time(), **fields}, sort_keys=True)
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def entries(self) -> dict[str, dict[str, Any]]:
        """Each transaction's branches and last state."""
        out: dict[str, dict[str, Any]] = {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line: the step it announced never happened
            entry = out.setdefault(rec["xid"], {"branches": [], "state": ""})
            if rec.get("branches"):
                entry["branches"] = rec["branches"]
            entry["state"] = rec["state"]
        return out

    def unfinished(self) -> dict[str, dict[str, Any]]:
        return {xid: e for xid, e in self.entries().items() if e["state"] != "done"}

    def compact(self) -> None:
        """Rewrite the log with only unfinished transactions (atomically: write, fsync, rename)."""
        keep = self.unfinished()
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for xid, e in keep.items():
                fh.write(json.dumps({"xid": xid, "state": "prepare", "branches": e["branches"]}) + "\n")
                if e["state"] != "prepare":
                    fh.write(json.dumps({"xid": xid, "state": e["state"]}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._fh.close()
        os.replace(tmp, self.path)
        self._fsync_dir()
        self._fh = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        self._fh.close()


@dataclass
class RecoveryReport:
    committed: list[str] = field(default_factory=list)  # branch ids
    rolled_back: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class TwoPhaseCoordinator:
    """Runs 2PC commits for the sessions of one router and recovers them after a crash."""

    def __init__(self, directory: str | os.PathLike[str], router_id: str = "") -> None:
        self.log = DecisionLog(directory)
        self.router_id = router_id or f"{os.getpid():x}"
        self._seq = itertools.count(1)

    def new_xid(self) -> str:
        return f"sg-{self.router_id}-{time.time_ns() // 1_000_000:x}-{next(self._seq)}"

    async def commit(self, xid: str, branches: Sequence[tuple[BackendTarget, str, Any]]) -> list[str]:
        """Prepare every branch, log the decision, commit every branch. ``branches``: (target, branch id,
        connection). Raises when the transaction was rolled back (nothing committed); returns warnings when it
        committed but some branch could not be finished yet (recovery will)."""
        self.log.record(xid, "prepare", branches=[[t.keyspace, t.shard, t.role, b] for t, b, _ in branches])
        results = await asyncio.gather(*(conn.prepare_transaction(b) for _t, b, conn in branches),
                                       return_exceptions=True)
        failed = [(t, r) for (t, _b, _c), r in zip(branches, results, strict=True) if isinstance(r, BaseException)]
        if failed:
            await self._abort(xid, branches, results)
            target, exc = failed[0]
            if isinstance(exc, ShardgateError):
                exc.message = f"two-phase commit aborted: prepare failed on {target.shard_name}: {exc.message}"
                exc.args = (exc.message,)
                raise exc
            raise TransactionError(f"two-phase commit aborted: prepare failed on {target.shard_name}: {exc}")
        fault_point("after_prepare")
        self.log.record(xid, "commit")
        fault_point("after_decision")
        results = await asyncio.gather(*(conn.commit_prepared(b) for _t, b, conn in branches),
                                       return_exceptions=True)
        warnings = [f"two-phase commit {xid}: branch on {t.shard_name} not committed yet ({r}); recovery will "
                    "commit it"
                    for (t, _b, _c), r in zip(branches, results, strict=True) if isinstance(r, BaseException)]
        if not warnings:
            self.log.record(xid, "done")
        return warnings

    async def _abort(self, xid: str, branches: Sequence[tuple[BackendTarget, str, Any]],
                     prepared: Sequence[Any]) -> None:
        self.log.record(xid, "abort")

        async def undo(branch: str, conn: Any, ok: bool) -> None:
            try:
                if ok:
                    await conn.rollback_prepared(branch)
                else:
                    await conn.rollback()
            except Exception as exc:  # the branch stays for recovery; the log says abort
                log.warning("2pc abort: %s: %s", branch, type(exc).__name__)

        await asyncio.gather(*(undo(b, c, not isinstance(r, BaseException))
                               for (_t, b, c), r in zip(branches, prepared, strict=True)))
        self.log.record(xid, "done")

    async def recover(self, pools: Any) -> RecoveryReport:
        """Finish every unfinished transaction of the log (see the module docstring)."""
        report = RecoveryReport()
        pending = self.log.unfinished()
        if not pending:
            return report
        for xid, entry in pending.items():
            decision = entry["state"] == "commit"
            all_done = True
            for ks, shard, role, branch in entry["branches"]:
                try:
                    async with pools.acquire(ks, shard, role) as conn:
                        present = branch in await conn.recover_prepared()
                        if not present:
                            continue  # finished before the crash (or never prepared)
                        if decision:
                            await conn.commit_prepared(branch)
                            report.committed.append(branch)
                        else:
                            await conn.rollback_prepared(branch)
                            report.rolled_back.append(branch)
                except (ShardgateError, OSError) as exc:
                    all_done = False
                    report.errors.append(f"{branch} on {ks}/{shard}: {exc}")
            if all_done:
                self.log.record(xid, "done")
        self.log.compact()
        return report

    def close(self) -> None:
        self.log.close()


def is_unknown_xid(exc: BaseException) -> bool:
    return isinstance(exc, BackendError) and (exc.mysql_errno == 1397 or exc.pg_sqlstate == "42704")
