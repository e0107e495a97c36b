"""Shard connections that speak the MySQL protocol directly, for the single-shard fast path (``passthrough``).

``passthrough.py`` forwards a client's statement to one shard and relays the shard's packets to the client
without decoding rows. These connections are the client side of that exchange: the handshake (no TLS),
``mysql_native_password`` or ``caching_sha2_password`` fast authentication (an AuthSwitchRequest to either is
followed), then packets read in batches of whole frames. ``RawPool`` keeps a bounded number per shard, lent for
one statement at a time (as the engine's pools: no transaction is ever left open on them).

Session settings are the engine's (``sharding.db.connect``): character set utf8mb4 (collation 45,
utf8mb4_general_ci, in the handshake), autocommit on, the server's default sql_mode. CLIENT_DEPRECATE_EOF is asked
for when the server offers it; ``deprecate_eof`` says whether it was granted (the relay translates for clients
that differ). CLIENT_MULTI_STATEMENTS is never asked for: a forwarded text cannot carry a second statement.

Statements the fast path prepares on a connection (COM_STMT_PREPARE) stay there, at most ``MAX_STATEMENTS`` (the
oldest is closed), until DDL through the router changes the schema generation.

Engine request: this belongs in ``router/backend`` (a raw route beside the aiomysql adapter); it lives here until
the engine offers one, as the PostgreSQL frontend's ``rawconn``.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from router.frontend.rawproto import ByteBufferProtocol
from sharding.errors import AuthenticationError, BackendUnavailableError

__all__ = ["PreparedOnShard", "RawConnection", "RawPool", "open_raw"]

MAX_CHUNK = 0xFFFFFF
MAX_STATEMENTS = 256  # statements prepared per shard connection by the fast path
SWEEP_EVERY = 1024  # releases between sweeps of every shard's idle connections
COLLATION_UTF8MB4 = 45  # utf8mb4_general_ci, as aiomysql's charset="utf8mb4"
_HEAD = struct.Struct("<I")
_U16 = struct.Struct("<H")

# Capabilities we ask for (include/mysql_com.h).
LONG_PASSWORD, LONG_FLAG, CONNECT_WITH_DB, PROTOCOL_41 = 1, 1 << 2, 1 << 3, 1 << 9
TRANSACTIONS, SECURE_CONNECTION, MULTI_RESULTS, PS_MULTI_RESULTS = 1 << 13, 1 << 15, 1 << 17, 1 << 18
PLUGIN_AUTH, PLUGIN_AUTH_LENENC, DEPRECATE_EOF = 1 << 19, 1 << 21, 1 << 24
_WANTED = (LONG_PASSWORD | LONG_FLAG | CONNECT_WITH_DB | PROTOCOL_41 | TRANSACTIONS | SECURE_CONNECTION
           | MULTI_RESULTS | PS_MULTI_RESULTS | PLUGIN_AUTH | PLUGIN_AUTH_LENENC | DEPRECATE_EOF)
_STATUS_AUTOCOMMIT = 0x0002
COM_QUIT, COM_QUERY, COM_PING, COM_STMT_PREPARE, COM_STMT_CLOSE = 0x01, 0x03, 0x0E, 0x16, 0x19


def _native_scramble(password: bytes, nonce: bytes) -> bytes:
    if not password:
        return b""
    stage1 = hashlib.sha1(password).digest()
    mix = hashlib.sha1(nonce + hashlib.sha1(stage1).digest()).digest()
    return bytes(a ^ b for a, b in zip(stage1, mix, strict=True))


def _sha2_scramble(password: bytes, nonce: bytes) -> bytes:
    if not password:
        return b""
    p1 = hashlib.sha256(password).digest()
    p3 = hashlib.sha256(hashlib.sha256(p1).digest() + nonce).digest()
    return bytes(a ^ b for a, b in zip(p1, p3, strict=True))


def _scramble(plugin: str, password: bytes, nonce: bytes) -> bytes:
    if plugin == "mysql_native_password":
        return _native_scramble(password, nonce)
    if plugin == "caching_sha2_password":
        return _sha2_scramble(password, nonce)
    raise AuthenticationError(f"the shard asks for authentication plugin {plugin!r}, which the fast path does not "
                              "speak (it speaks mysql_native_password and caching_sha2_password fast auth)")


def _lenenc(data: bytes) -> bytes:
    n = len(data)
    if n < 251:
        return bytes((n,)) + data
    if n < 1 << 16:
        return b"\xfc" + _U16.pack(n) + data
    return b"\xfd" + n.to_bytes(3, "little") + data


def read_lenenc(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    """(value, position after it) of the length-encoded integer at ``pos``."""
    first = buf[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFC:
        return buf[pos + 1] | buf[pos + 2] << 8, pos + 3
    if first == 0xFD:
        return int.from_bytes(buf[pos + 1:pos + 4], "little"), pos + 4
    return int.from_bytes(buf[pos + 1:pos + 9], "little"), pos + 9


def error_of(payload: bytes | bytearray) -> tuple[int, str, str]:
    """(errno, SQLSTATE, message) of an ERR packet's payload."""
    errno = payload[1] | payload[2] << 8
    if len(payload) > 3 and payload[3] == 0x23:  # '#': SQLSTATE follows
        return errno, bytes(payload[4:9]).decode("ascii", "replace"), bytes(payload[9:]).decode("utf-8", "replace")
    return errno, "HY000", bytes(payload[3:]).decode("utf-8", "replace")


@dataclass(slots=True)
class PreparedOnShard:
    """A statement prepared on one shard connection: its id there and its parameter / column counts."""

    statement_id: int
    num_params: int
    num_columns: int


class RawConnection(ByteBufferProtocol):
    """One shard connection; ``read_payloads()`` returns the payloads of whole wire frames."""

    def __init__(self) -> None:
        super().__init__()
        self.thread_id = 0
        self.server_version = ""
        self.capabilities = 0  # what both sides agreed on
        self.status = 0
        self.created = time.monotonic()
        self.last_used = self.created
        self.queries = 0
        self.generation = 0  # the schema generation its prepared statements belong to
        self.statements: collections.OrderedDict[str, PreparedOnShard] = collections.OrderedDict()

    @property
    def deprecate_eof(self) -> bool:
        return bool(self.capabilities & DEPRECATE_EOF)

    # --- I/O -------------------------------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.closed:
            self.broken = True
            raise BackendUnavailableError(f"shard {self.address[0]}:{self.address[1]} closed the connection")
        self.transport.write(data)

    def send_command(self, payload: bytes) -> None:
        """One command packet (sequence id 0), split when it is 16 MB or more."""
        if len(payload) < MAX_CHUNK:
            self.send(_HEAD.pack(len(payload)) + payload)
            return
        parts, seq, pos = [], 0, 0
        while True:
            size = min(MAX_CHUNK, len(payload) - pos)
            parts.append(_HEAD.pack(size | seq << 24) + payload[pos:pos + size])
            seq, pos = (seq + 1) & 0xFF, pos + size
            if size < MAX_CHUNK:
                break
        self.send(b"".join(parts))

    async def read_payloads(self) -> list[bytes]:
        """The payloads of the whole frames received so far (waiting for at least one). A payload of exactly
        ``MAX_CHUNK`` bytes continues in the next one (a packet of 16 MB or more)."""
        while True:
            buf = self.buf
            n = len(buf)
            if n >= 4:
                pos = 0
                out = []
                while n - pos >= 4:
                    end = pos + 4 + (buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16)
                    if end > n:
                        break
                    out.append(bytes(buf[pos + 4:end]))
                    pos = end
                if out:
                    del buf[:pos]
                    return out
            if self.closed:
                self.broken = True
                raise BackendUnavailableError(f"shard {self.address[0]}:{self.address[1]} closed the connection")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    async def read_packet(self) -> bytes:
        """One logical packet's payload (split packets joined); for the handshake and our own exchanges."""
        parts = []
        while True:
            frames = await self._frames_one()
            payload = frames[4:]
            parts.append(payload)
            if len(payload) < MAX_CHUNK:
                return b"".join(parts)

    async def _frames_one(self) -> bytes:
        while True:
            buf = self.buf
            if len(buf) >= 4:
                end = 4 + (buf[0] | buf[1] << 8 | buf[2] << 16)
                if end <= len(buf):
                    frame = bytes(buf[:end])
                    del buf[:end]
                    return frame
            if self.closed:
                self.broken = True
                raise BackendUnavailableError(f"shard {self.address[0]}:{self.address[1]} closed the connection")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    async def simple_query(self, sql: str) -> list[list[bytes | None]]:
        """Run ``sql`` (our own statement) and return its text rows; ``BackendUnavailableError`` on ERR."""
        self.send_command(bytes((COM_QUERY,)) + sql.encode("utf-8"))
        first = await self.read_packet()
        if first[0] == 0x00:
            self.status = _U16.unpack_from(first, _ok_status_at(first))[0]
            return []
        if first[0] == 0xFF:
            errno, state, message = error_of(first)
            raise BackendUnavailableError(f"the shard refused {sql.split()[0]}: {errno} ({state}) {message}")
        count, _ = read_lenenc(first, 0)
        for _ in range(count):
            await self.read_packet()
        if not self.deprecate_eof:
            await self.read_packet()
        rows: list[list[bytes | None]] = []
        while True:
            p = await self.read_packet()
            if p[0] == 0xFE and len(p) < MAX_CHUNK:
                return rows
            if p[0] == 0xFF:
                errno, state, message = error_of(p)
                raise BackendUnavailableError(f"{errno} ({state}) {message}")
            row: list[bytes | None] = []
            pos = 0
            for _ in range(count):
                if p[pos] == 0xFB:
                    row.append(None)
                    pos += 1
                    continue
                n, pos = read_lenenc(p, pos)
                row.append(p[pos:pos + n])
                pos += n
            rows.append(row)

    async def ping(self) -> None:
        self.send_command(bytes((COM_PING,)))
        p = await self.read_packet()
        if p[0] != 0x00:
            self.broken = True
            raise BackendUnavailableError("the shard did not answer COM_PING with OK")

    async def prepare(self, sql: str, generation: int) -> PreparedOnShard:
        """The statement for ``sql`` on this connection, prepared now unless it already is (in ``generation``).
        ``BackendUnavailableError`` when the shard refuses it (the caller lets the engine run the statement)."""
        if generation != self.generation:
            self._close_statements(list(self.statements.values()))
            self.statements.clear()
            self.generation = generation
        found = self.statements.get(sql)
        if found is not None:
            self.statements.move_to_end(sql)
            return found
        self.send_command(bytes((COM_STMT_PREPARE,)) + sql.encode("utf-8"))
        first = await self.read_packet()
        if first[0] == 0xFF:
            errno, state, message = error_of(first)
            raise BackendUnavailableError(f"the shard could not prepare the statement: {errno} ({state}) {message}")
        stmt_id = _HEAD.unpack_from(first, 1)[0]
        columns, params = _U16.unpack_from(first, 5)[0], _U16.unpack_from(first, 7)[0]
        for block in (params, columns):
            if block:
                for _ in range(block):
                    await self.read_packet()
                if not self.deprecate_eof:
                    await self.read_packet()
        found = PreparedOnShard(stmt_id, params, columns)
        self.statements[sql] = found
        if len(self.statements) > MAX_STATEMENTS:
            _, old = self.statements.popitem(last=False)
            self._close_statements([old])
        return found

    def forget(self, sql: str) -> None:
        old = self.statements.pop(sql, None)
        if old is not None:
            self._close_statements([old])

    def _close_statements(self, statements: list[PreparedOnShard]) -> None:
        # COM_STMT_CLOSE has no answer: these go out in front of the next command.
        for st in statements:
            with contextlib.suppress(BackendUnavailableError):
                self.send_command(bytes((COM_STMT_CLOSE,)) + _HEAD.pack(st.statement_id))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.write(_HEAD.pack(1) + bytes((COM_QUIT,)))
            self.transport.close()


def _ok_status_at(payload: bytes) -> int:
    _, pos = read_lenenc(payload, 1)
    _, pos = read_lenenc(payload, pos)
    return pos


async def open_raw(host: str, port: int, user: str, password: str, database: str, *,
                   timeout: float = 10.0) -> RawConnection:
    """Connect and log in; ``BackendUnavailableError`` when the shard cannot be reached or refuses the login."""
    loop = asyncio.get_running_loop()
    try:
        _, conn = await asyncio.wait_for(loop.create_connection(RawConnection, host, port), timeout)
    except (OSError, TimeoutError) as exc:
        raise BackendUnavailableError(f"cannot connect to shard {host}:{port}: {exc}") from None
    conn.address = (host, port)
    sock = conn.transport.get_extra_info("socket")
    if sock is not None:  # one small command per statement: never wait for an ACK before sending it
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await asyncio.wait_for(_login(conn, user, password.encode("utf-8"), database), timeout)
        if not conn.status & _STATUS_AUTOCOMMIT:
            await asyncio.wait_for(conn.simple_query("SET autocommit = 1"), timeout)
    except (AuthenticationError, BackendUnavailableError, TimeoutError, ValueError, IndexError,
            struct.error) as exc:
        conn.close()
        raise BackendUnavailableError(f"cannot log in to shard {host}:{port}: {exc}") from None
    return conn


async def _login(conn: RawConnection, user: str, password: bytes, database: str) -> None:
    hs = await conn.read_packet()
    if hs[0] == 0xFF:
        raise AuthenticationError(error_of(hs)[2])
    if hs[0] != 10:
        raise AuthenticationError(f"unknown handshake protocol version {hs[0]}")
    end = hs.index(b"\0", 1)
    conn.server_version = hs[1:end].decode("utf-8", "replace")
    pos = end + 1
    conn.thread_id = _HEAD.unpack_from(hs, pos)[0]
    nonce = hs[pos + 4:pos + 12]
    pos += 13
    caps = _U16.unpack_from(hs, pos)[0]
    pos += 2
    plugin = "mysql_native_password"
    if len(hs) > pos:
        conn.status = _U16.unpack_from(hs, pos + 1)[0]
        caps |= _U16.unpack_from(hs, pos + 3)[0] << 16
        auth_len = hs[pos + 5]
        pos += 16  # charset, status, upper capabilities, auth data length, 10 reserved bytes
        if caps & SECURE_CONNECTION:
            rest = max(13, auth_len - 8)
            nonce += hs[pos:pos + rest].rstrip(b"\0")
            pos += rest
        if caps & PLUGIN_AUTH and pos < len(hs):
            plugin = hs[pos:].split(b"\0", 1)[0].decode("ascii", "replace")
    if not caps & PROTOCOL_41:
        raise AuthenticationError("the shard does not speak protocol 4.1")
    conn.capabilities = caps & _WANTED
    if database:
        conn.capabilities |= CONNECT_WITH_DB
    else:
        conn.capabilities &= ~CONNECT_WITH_DB
    auth = _scramble(plugin, password, nonce[:20])
    body = [struct.pack("<IIB23x", conn.capabilities, 1 << 24, COLLATION_UTF8MB4), user.encode("utf-8") + b"\0",
            _lenenc(auth) if conn.capabilities & PLUGIN_AUTH_LENENC else bytes((len(auth),)) + auth]
    if database:
        body.append(database.encode("utf-8") + b"\0")
    if conn.capabilities & PLUGIN_AUTH:
        body.append(plugin.encode("ascii") + b"\0")
    seq = 1
    conn.send(_HEAD.pack(sum(map(len, body)) | seq << 24) + b"".join(body))
    while True:
        frame = await conn._frames_one()
        seq = (frame[3] + 1) & 0xFF
        p = frame[4:]
        kind = p[0]
        if kind == 0x00:
            conn.status = _U16.unpack_from(p, _ok_status_at(p))[0]
            return
        if kind == 0xFF:
            raise AuthenticationError(error_of(p)[2])
        if kind == 0xFE:  # AuthSwitchRequest: another plugin, a new nonce
            end = p.index(b"\0", 1)
            plugin = p[1:end].decode("ascii", "replace")
            nonce = p[end + 1:].rstrip(b"\0")
            auth = _scramble(plugin, password, nonce[:20])
            conn.send(_HEAD.pack(len(auth) | seq << 24) + auth)
        elif kind == 0x01:  # AuthMoreData (caching_sha2_password)
            if p[1:2] == b"\x03":
                continue  # fast auth succeeded: OK follows
            raise AuthenticationError("the shard wants caching_sha2_password full authentication, which needs TLS "
                                      "or RSA; log the shard user in once by other means or use "
                                      "mysql_native_password for it")
        else:
            raise AuthenticationError(f"unexpected packet 0x{kind:02x} during login")


class RawPool:
    """Raw connections per shard backend, lent one statement at a time.

    Limits come from the engine's ``PoolConfig`` where they mean the same: ``max_size`` per shard,
    ``acquire_timeout``, ``connect_timeout``, ``max_lifetime``, ``idle_timeout``, ``max_queries`` and
    ``health_check_idle`` (a connection idle that long is pinged before it is lent). Idle connections are used
    newest first, so the oldest ones go idle long enough to expire when the load drops.
    """

    def __init__(self, config: Any = None) -> None:
        if config is None:
            from router.backend.pool_config import PoolConfig

            config = PoolConfig()
        self.config = config
        self._idle: dict[tuple[Any, ...], collections.deque[RawConnection]] = collections.defaultdict(
            collections.deque)
        self._count: dict[tuple[Any, ...], int] = collections.defaultdict(int)
        self._waiters: dict[tuple[Any, ...], collections.deque[asyncio.Future[RawConnection | None]]] = \
            collections.defaultdict(collections.deque)
        self.closed = False
        self.opened = 0
        self.discarded = 0
        self._releases = 0

    @staticmethod
    def key_of(spec: Any) -> tuple[Any, ...]:
        return (spec.host, spec.port, spec.database, spec.user)

    def _expired(self, conn: RawConnection, now: float) -> bool:
        c = self.config
        return (conn.closed or conn.broken or bool(c.max_lifetime and now - conn.created > c.max_lifetime)
                or bool(c.idle_timeout and now - conn.last_used > c.idle_timeout)
                or bool(c.max_queries and conn.queries >= c.max_queries))

    async def acquire(self, spec: Any) -> RawConnection:
        key = self.key_of(spec)
        idle = self._idle[key]
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if self._expired(conn, now):
                self._discard(key, conn)
                continue
            if self.config.health_check_idle and now - conn.last_used > self.config.health_check_idle:
                try:
                    await asyncio.wait_for(conn.ping(), self.config.ping_timeout)
                except (BackendUnavailableError, TimeoutError, IndexError):
                    self._discard(key, conn)
                    continue
            return conn
        if self._count[key] < self.config.max_size:
            self._count[key] += 1
            try:
                dsn = spec.dsn()  # the password is read now, never kept
                conn = await open_raw(dsn.host, dsn.port, dsn.user, dsn.password, dsn.database,
                                      timeout=self.config.connect_timeout)
            except BaseException:
                self._count[key] -= 1
                self._wake_one(key)
                raise
            self.opened += 1
            return conn
        waiter: asyncio.Future[RawConnection | None] = asyncio.get_running_loop().create_future()
        self._waiters[key].append(waiter)
        try:
            lent: RawConnection | None = await asyncio.wait_for(waiter, self.config.acquire_timeout)
        except TimeoutError:
            raise BackendUnavailableError(f"no fast-path connection to shard {spec.host}:{spec.port} within "
                                          f"{self.config.acquire_timeout:g} s") from None
        if lent is None:  # a slot freed up instead of a connection
            return await self.acquire(spec)
        return lent

    def release(self, spec: Any, conn: RawConnection, *, reusable: bool = True) -> None:
        key = self.key_of(spec)
        conn.queries += 1
        now = conn.last_used = time.monotonic()
        if not reusable or self.closed or self._expired(conn, now):
            self._discard(key, conn)
            return
        waiters = self._waiters[key]
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(conn)
                return
        idle = self._idle[key]
        idle.append(conn)
        # The oldest idle connection (left end) is the one to expire first.
        while len(idle) > 1 and self._expired(idle[0], now):
            self._discard(key, idle.popleft())
        self._releases += 1
        if self._releases % SWEEP_EVERY == 0:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Expire idle connections of every shard now and then, also of shards no statement goes to any more (a
        topology change)."""
        for key, idle in list(self._idle.items()):
            while idle and self._expired(idle[0], now):
                self._discard(key, idle.popleft())

    def _discard(self, key: tuple[Any, ...], conn: RawConnection) -> None:
        conn.close()
        self.discarded += 1
        self._count[key] -= 1
        self._wake_one(key)

    def _wake_one(self, key: tuple[Any, ...]) -> None:
        waiters = self._waiters.get(key)
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                break

    def close(self) -> None:
        self.closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
