"""Shard connections that speak the PostgreSQL protocol directly, for the single-shard fast path.

``passthrough.py`` forwards a client's statement to one shard and relays the shard's answer byte for byte: no
driver decodes the rows, and no SQL is rebuilt. These connections are the client side of that exchange: startup,
authentication (trust, clear text, md5, SCRAM-SHA-256), then messages read in batches. ``RawPool`` keeps a few
per shard, lent for one statement at a time (transaction pooling: a connection goes back as soon as the shard
says ReadyForQuery with no transaction open).

Every connection is opened with the session settings the frontend reports to its clients (TimeZone UTC, DateStyle
ISO, IntervalStyle postgres, extra_float_digits 1, UTF8), so forwarded text values look exactly as the decoded
path formats them.

Engine request: this belongs in ``router/backend`` (a raw route beside the asyncpg adapters); it lives here until
the engine offers one.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import hmac
import os
import struct
from typing import Any

from router.frontend.postgres import messages as M
from router.frontend.rawproto import ByteBufferProtocol
from sharding.errors import AuthenticationError, BackendUnavailableError

__all__ = ["RawConnection", "RawPool", "open_raw"]

_I32 = struct.Struct("!i")
SESSION = {"DateStyle": "ISO, MDY", "IntervalStyle": "postgres", "TimeZone": "UTC", "extra_float_digits": "1",
           "client_encoding": "UTF8", "application_name": "shardgate"}


class RawConnection(ByteBufferProtocol):
    """One shard connection; ``read_batch()`` returns whole backend messages as ``(type, raw bytes)``."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = 0
        self.pid = 0
        self.key = 0
        # statements prepared on this connection by the fast path: (text, parameter types) -> name, oldest first
        self.statements: collections.OrderedDict[tuple[str, tuple[int, ...]], bytes] = collections.OrderedDict()
        self.generation = 0  # the schema generation the statements were prepared in
        self._names = 0
        self._forgotten: list[bytes] = []

    def statement(self, sql: str, types: tuple[int, ...], generation: int,
                  limit: int = 256) -> tuple[bytes, bytes]:
        """(name, messages to send first): the name of a statement for ``sql`` on this connection, and a Parse
        for it when it is new (with a Close of the oldest one beyond ``limit``). After DDL (a new ``generation``)
        everything is prepared again: a cached plan must not outlive the schema it was made for."""
        out = b"".join(M.fe_close("S", n.decode()) for n in self._forgotten)
        self._forgotten.clear()
        if generation != self.generation:
            out = b"".join(M.fe_close("S", n.decode()) for n in self.statements.values())
            self.statements.clear()
            self.generation = generation
        key = (sql, types)
        name = self.statements.get(key)
        if name is not None:
            self.statements.move_to_end(key)
            return name, out
        self._names += 1
        name = b"sg%d" % self._names
        self.statements[key] = name
        if len(self.statements) > limit:
            _, old = self.statements.popitem(last=False)
            out += M.fe_close("S", old.decode())
        return name, out + M.fe_parse(name.decode(), sql, types)

    def forget(self, sql: str, types: tuple[int, ...]) -> None:
        name = self.statements.pop((sql, types), None)
        if name is not None:
            self._forgotten.append(name)  # closed (whether it exists or not) before the next statement

    def send(self, data: bytes) -> None:
        self.transport.write(data)

    async def read_batch(self) -> list[tuple[int, bytes]]:
        """The whole messages received so far (waiting for at least one)."""
        while True:
            out = self._take()
            if out:
                return out
            if self.closed:
                self.broken = True
                raise BackendUnavailableError(f"shard {self.address[0]}:{self.address[1]} closed the connection")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def _take(self) -> list[tuple[int, bytes]]:
        buf, pos, n = self.buf, self.pos, len(self.buf)
        out = []
        while n - pos >= 5:
            size = _I32.unpack_from(buf, pos + 1)[0]
            end = pos + 1 + size
            if size < 4:
                self.broken = True
                raise BackendUnavailableError("malformed message from a shard")
            if end > n:
                break
            out.append((buf[pos], bytes(buf[pos:end])))
            pos = end
        if pos == n:
            buf.clear()
            self.pos = 0
        elif pos > 65536:
            del buf[:pos]
            self.pos = 0
        else:
            self.pos = pos
        return out

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.write(M.fe_terminate())
            self.transport.close()

    async def cancel(self) -> None:
        """PostgreSQL's CancelRequest for what this connection runs, on a connection of its own."""
        host, port = self.address
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
        except (OSError, TimeoutError):
            return
        writer.write(M.fe_cancel(self.pid, self.key))
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()


def _body(raw: bytes) -> bytes:
    return raw[5:]


def _error_text(raw: bytes) -> str:
    fields = M.error_fields(_body(raw))
    return f"{fields.get('C', '')} {fields.get('M', '')}".strip()


async def open_raw(host: str, port: int, user: str, password: str, database: str, *,
                   timeout: float = 10.0) -> RawConnection:
    """Connect and log in; ``BackendUnavailableError`` when the shard cannot be reached or refuses the login."""
    loop = asyncio.get_running_loop()
    try:
        _, conn = await asyncio.wait_for(loop.create_connection(RawConnection, host, port), timeout)
    except (OSError, TimeoutError) as exc:
        raise BackendUnavailableError(f"cannot connect to shard {host}:{port}: {exc}") from None
    conn.address = (host, port)
    try:
        await asyncio.wait_for(_login(conn, user, password, database), timeout)
    except (AuthenticationError, BackendUnavailableError, TimeoutError, ValueError, KeyError) as exc:
        conn.close()
        raise BackendUnavailableError(f"cannot log in to shard {host}:{port}: {exc}") from None
    return conn


async def _login(conn: RawConnection, user: str, password: str, database: str) -> None:
    conn.send(M.fe_startup({"user": user, "database": database, **SESSION}))
    scram: _Scram | None = None
    while True:
        for kind, raw in await conn.read_batch():
            body = _body(raw)
            if kind == ord("R"):
                code = _I32.unpack_from(body)[0]
                if code == 0:
                    continue
                if code == 3:
                    conn.send(M.fe_password(password.encode() + b"\0"))
                elif code == 5:
                    inner = hashlib.md5(password.encode() + user.encode()).hexdigest().encode()
                    conn.send(M.fe_password(b"md5" + hashlib.md5(inner + body[4:8]).hexdigest().encode() + b"\0"))
                elif code == 10:
                    if b"SCRAM-SHA-256\0" not in body[4:]:
                        raise AuthenticationError("the shard offers no SASL mechanism we know")
                    scram = _Scram(password)
                    conn.send(M.fe_password(scram.first()))
                elif code == 11 and scram is not None:
                    conn.send(M.fe_password(scram.final(body[4:])))
                elif code == 12 and scram is not None:
                    if not hmac.compare_digest(body[4:], b"v=" + scram.server_signature):
                        raise AuthenticationError("the shard's SCRAM signature does not match")
                else:
                    raise AuthenticationError(f"unsupported authentication request {code}")
            elif kind == ord("K"):
                conn.pid, conn.key = struct.unpack_from("!iI", body)
            elif kind == ord("E"):
                raise AuthenticationError(_error_text(raw))
            elif kind == ord("Z"):
                return
            # ParameterStatus, NoticeResponse, NegotiateProtocolVersion: nothing to do


class _Scram:
    """The client half of SCRAM-SHA-256 (no channel binding: shard connections of this path are not TLS)."""

    def __init__(self, password: str) -> None:
        from sharding.auth import saslprep

        self.password = saslprep(password)
        self.bare = b"n=,r=" + base64.b64encode(os.urandom(18))
        self.server_signature = b""

    def first(self) -> bytes:
        data = b"n,," + self.bare
        return b"SCRAM-SHA-256\0" + _I32.pack(len(data)) + data

    def final(self, server_first: bytes) -> bytes:
        attrs = dict(part.split(b"=", 1) for part in server_first.split(b","))
        if not attrs[b"r"].startswith(self.bare[5:]):
            raise AuthenticationError("the shard's SCRAM nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac("sha256", self.password, base64.b64decode(attrs[b"s"]), int(attrs[b"i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        without_proof = b"c=biws,r=" + attrs[b"r"]
        auth_message = self.bare + b"," + server_first + b"," + without_proof
        signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.server_signature = base64.b64encode(hmac.digest(hmac.digest(salted, b"Server Key", "sha256"),
                                                             auth_message, "sha256"))
        return without_proof + b",p=" + base64.b64encode(proof)


class RawPool:
    """A few raw connections per shard backend, lent one statement at a time."""

    def __init__(self, max_size: int = 20, acquire_timeout: float = 5.0) -> None:
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self._idle: dict[tuple[Any, ...], collections.deque[RawConnection]] = collections.defaultdict(
            collections.deque)
        self._count: dict[tuple[Any, ...], int] = collections.defaultdict(int)
        self._waiters: dict[tuple[Any, ...], collections.deque[asyncio.Future[RawConnection | None]]] = \
            collections.defaultdict(collections.deque)
        self.closed = False

    @staticmethod
    def key_of(spec: Any) -> tuple[Any, ...]:
        return (spec.host, spec.port, spec.database, spec.user)

    async def acquire(self, spec: Any) -> RawConnection:
        key = self.key_of(spec)
        idle = self._idle[key]
        while idle:
            lent = idle.pop()
            if not lent.closed and not lent.broken:
                return lent
            self._count[key] -= 1
        if self._count[key] < self.max_size:
            self._count[key] += 1
            try:
                dsn = spec.dsn()  # the password is read now, never kept
                return await open_raw(dsn.host, dsn.port, dsn.user, dsn.password, dsn.database)
            except BaseException:
                self._count[key] -= 1
                raise
        waiter: asyncio.Future[RawConnection | None] = asyncio.get_running_loop().create_future()
        self._waiters[key].append(waiter)
        try:
            conn: RawConnection | None = await asyncio.wait_for(waiter, self.acquire_timeout)
        except TimeoutError:
            raise BackendUnavailableError(f"no connection to shard {spec.host}:{spec.port} within "
                                          f"{self.acquire_timeout:g} s") from None
        if conn is None:  # a slot freed up instead of a connection
            return await self.acquire(spec)
        return conn

    def release(self, spec: Any, conn: RawConnection, *, reusable: bool = True) -> None:
        key = self.key_of(spec)
        waiters = self._waiters[key]
        if not reusable or conn.closed or conn.broken or self.closed:
            conn.close()
            self._count[key] -= 1
            while waiters:
                w = waiters.popleft()
                if not w.done():
                    w.set_result(None)
                    break
            return
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(conn)
                return
        self._idle[key].append(conn)

    def close(self) -> None:
        self.closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
