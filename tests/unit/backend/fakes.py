"""A scripted backend for pool tests: the real AdapterBase frame (guards, reset rules) over a fake driver."""
from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

from router.backend.adapter import AdapterBase
from router.backend.connection import BackendTarget
from router.backend.errmap import Mapped, unavailable
from router.backend.result import ExecResult, ResultSet
from sharding.db import DSN
from sharding.errors import BackendError, BackendUnavailableError

DSN_A = DSN(engine="postgres", host="10.0.0.1", port=5432, database="a", user="u", password="fake-secret")
DSN_B = DSN(engine="postgres", host="10.0.0.2", port=5432, database="b", user="u", password="fake-secret")
TARGET = BackendTarget("customer", "-80", "primary")

_ids = itertools.count(1)


class FakeConn(AdapterBase):
    engine = "postgres"

    def __init__(self, target: BackendTarget, dsn: DSN) -> None:
        super().__init__(target, dsn, "fake 1.0")
        self.id = next(_ids)
        self.alive = True
        self.tx = False
        self.reset_ok = True
        self.resets = 0
        self.closed_politely = False
        self.aborted = False

    @property
    def conn_id(self) -> int:
        return self.id

    @property
    def in_transaction(self) -> bool:
        return self.tx

    def _alive(self) -> bool:
        return self.alive

    def _map(self, exc: BaseException) -> Mapped:
        if isinstance(exc, ConnectionError):
            return Mapped(unavailable(self.label, "connection lost", exc), True)
        return Mapped(BackendError(str(exc), pg_sqlstate="XX000"), False)

    async def _run(self, sql: str, params: Sequence[Any] | None) -> ResultSet | ExecResult:
        await asyncio.sleep(0)
        if not self.alive or sql == "BREAK":
            self.alive = False
            raise ConnectionResetError("reset by peer")
        if sql.startswith("SLEEP "):
            await asyncio.sleep(float(sql.split()[1]))
        if sql == "BEGIN":
            self.tx = True
        elif sql in ("COMMIT", "ROLLBACK"):
            self.tx = False
        elif sql == "FAIL":
            raise ValueError("scripted server error")
        return ExecResult(status=sql)

    async def _send_cancel(self) -> None:
        pass

    async def _reset_session(self) -> bool:
        self.resets += 1
        if not self.reset_ok:
            raise ConnectionResetError("reset failed")
        self.tx = False
        return True

    async def _ping(self) -> None:
        if not self.alive:
            raise ConnectionResetError("dead")

    async def _close(self) -> None:
        self.closed_politely = True

    def _abort(self) -> None:
        self.aborted = True

    async def begin(self, xid: str | None = None) -> None:
        await self.execute("BEGIN")


class FakeOpener:
    """Counts connect attempts; ``fail`` makes them raise as a refused server would; ``delay`` slows them."""

    def __init__(self) -> None:
        self.attempts = 0
        self.fail = False
        self.delay = 0.0
        self.opened: list[FakeConn] = []

    async def __call__(self, dsn: DSN, target: BackendTarget, *, timeout: float = 10.0) -> FakeConn:
        self.attempts += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise BackendUnavailableError(f"cannot connect to postgres at {dsn.address}: [Errno 111] refused")
        conn = FakeConn(target, dsn)
        self.opened.append(conn)
        return conn
