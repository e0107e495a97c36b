"""What the frontends' raw shard connections (PostgreSQL and MySQL fast paths) share: an asyncio protocol that
collects the bytes it receives and wakes the one reader waiting for more."""
from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["ByteBufferProtocol"]


class ByteBufferProtocol(asyncio.Protocol):
    """``buf`` grows with every ``data_received``; a reader parks on ``_waiter`` until data comes or the connection
    is lost (``closed``). ``broken``: the connection must not go back to its pool."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.buf = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.broken = False
        self.address: tuple[str, int] = ("", 0)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        w, self._waiter = self._waiter, None
        if w is not None and not w.done():
            w.set_result(None)
