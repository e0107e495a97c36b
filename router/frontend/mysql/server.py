"""The MySQL listener: asyncio glue between sockets, the protocol state machine and the gateway.

``start_mysql_listener(gateway, config, host=…, port=…)`` returns a ``MysqlListener`` (an ``asyncio.AbstractServer``)
whose ``drain(timeout)`` stops accepting, closes idle connections, lets the others finish the command they run and
the transaction they are in, then closes them (all of them after ``timeout``).

Per connection: an ``asyncio.Protocol`` (``MysqlConnection``) feeds bytes to ``ServerProtocol`` and one task runs
the connection's events in order (commands never overlap, as in MySQL). Back-pressure both ways: reading pauses
while more than ``READ_HIGH`` bytes or ``MAX_PENDING_EVENTS`` commands wait, and a result set stops pulling rows
from the shards while the socket's write buffer is full (``pause_writing``).

TLS runs over memory BIOs (``ssl.SSLObject``) rather than ``loop.start_tls``: a client sends its TLS ClientHello
right after the SSLRequest without waiting, so both can arrive in one read, and the bytes after the SSLRequest must
reach the TLS layer.

Connection ids are handed out from 1 (worker w of n: w + 1, w + 1 + n, …); ``KILL [QUERY | CONNECTION] id`` (and the
mysql CLI's Ctrl-C, which sends it on a second connection) finds them in ``MysqlFrontend.connections``, or forwards
the KILL to the worker that holds the id over a Unix socket in ``kill_dir``.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.backend.pool_config import PoolConfig
from router.engine.client_limits import Admission, ClientLimiter
from router.frontend.mysql import protocol as P
from router.frontend.mysql.auth import RsaKeyPair, default_rsa_keys
from router.frontend.mysql.commands import CommandRunner, Gateway
from router.frontend.mysql.local import kill_local
from router.frontend.mysql.passthrough import Passthrough
from router.frontend.mysql.rawconn import RawPool
from sharding.config_model import ClusterConfig, UserConfig
from sharding.errors import ShardgateError, TooManyConnectionsError, UnknownKeyspaceError

__all__ = ["FrontendStats", "MysqlFrontend", "MysqlListener", "start_mysql_listener"]

log = logging.getLogger("shardgate.frontend.mysql")

READ_HIGH = 1 << 20  # pause reading above this many buffered input bytes
WRITE_HIGH = 1 << 20
WRITE_LOW = 256 << 10
MAX_CONCURRENT_PASSWORD_CHECKS = 2  # PBKDF2 full authentications in threads at once
CONNECT_TIMEOUT = 10.0  # seconds a client has to log in (MySQL's connect_timeout)


@dataclass
class FrontendStats:
    connections_total: int = 0
    connections_open: int = 0
    auth_failures: int = 0
    packets_in: int = 0
    commands_in: int = 0
    internal_errors: int = 0
    protocol_errors: int = 0
    # "IndexError in sqlglot/parser.py:_advance" -> count: where the bugs are, without statement text
    internal_error_kinds: dict[str, int] = field(default_factory=dict)

    def count_internal(self, exc: BaseException | None) -> None:
        self.internal_errors += 1
        kind = "unknown"
        if exc is not None:
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f" in {'/'.join(tb.tb_frame.f_code.co_filename.split('/')[-2:])}:{tb.tb_frame.f_code.co_name}" \
                if tb is not None else ""
            kind = f"{type(exc).__name__}{where}"
        self.internal_error_kinds[kind] = self.internal_error_kinds.get(kind, 0) + 1


class TlsLayer:
    """Server-side TLS over memory BIOs: ciphertext in, plaintext out, and the reverse."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_side=True)
        self._handshaken = False

    def receive(self, data: bytes) -> bytes:
        """Plaintext from ``data``; ``ssl.SSLError`` on a broken stream."""
        if data:
            self._in.write(data)
        if not self._handshaken:
            try:
                self._obj.do_handshake()
                self._handshaken = True
            except ssl.SSLWantReadError:
                return b""
        chunks = []
        while True:
            try:
                chunk = self._obj.read(1 << 16)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, plaintext: bytes) -> bytes:
        view = memoryview(plaintext)
        while view:
            n = self._obj.write(view)
            view = view[n:]
        return self._out.read()

    def outgoing(self) -> bytes:
        return self._out.read()


class MysqlFrontend:
    """State shared by a listener's connections: users, keys, TLS, the connection registry, counters."""

    def __init__(self, gateway: Gateway, config: ClusterConfig, settings: P.Settings, *,
                 ssl_context: ssl.SSLContext | None, rsa: RsaKeyPair | None, worker: int = 0, workers: int = 1,
                 kill_dir: Path | None = None, passthrough: Passthrough | None = None) -> None:
        self.gateway = gateway
        self.passthrough = passthrough  # the single-shard fast path, shared by the connections
        self.config = config
        self.settings = settings
        self.ssl_context = ssl_context
        self.rsa = rsa
        self.fast_cache: dict[tuple[str, str], bytes] = {}
        self.connections: dict[int, MysqlConnection] = {}
        self.stats = FrontendStats()
        self.started = time.monotonic()
        # Unique across the worker processes of one router: worker w hands out w + 1, w + 1 + workers, …
        self._first_id, self._id_step = worker + 1, max(1, workers)
        self._ids = itertools.count(self._first_id, self._id_step)
        self.password_checks = asyncio.Semaphore(MAX_CONCURRENT_PASSWORD_CHECKS)
        self.accepting = True
        self.worker, self.workers = worker, max(1, workers)
        self.kill_dir = kill_dir if self.workers > 1 else None
        self._kill_server: asyncio.AbstractServer | None = None

    # --- KILL across worker processes (connection ids say which worker holds them) ------------------------------
    def kill_socket(self, worker: int) -> Path:
        assert self.kill_dir is not None
        return self.kill_dir / f"mysql-kill-{worker}.sock"

    async def start_kill_server(self) -> None:
        if self.kill_dir is not None:
            path = self.kill_socket(self.worker)
            path.unlink(missing_ok=True)
            self._kill_server = await asyncio.start_unix_server(self._on_kill, str(path))

    async def close_kill_server(self) -> None:
        if self._kill_server is not None:
            self._kill_server.close()
            self._kill_server = None
            self.kill_socket(self.worker).unlink(missing_ok=True)

    async def _on_kill(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 2.0)
            req = json.loads(line)
            outcome = kill_local(self.connections.get(int(req["id"])), str(req["kind"]), str(req["user"]),
                                 bool(req["admin"]))
            writer.write(json.dumps({"result": outcome}).encode() + b"\n")
            await writer.drain()
        except Exception:  # a broken request from a sibling worker: it sees no answer and reports unknown
            log.debug("bad KILL request from another worker", exc_info=True)
        finally:
            writer.close()

    async def forward_kill(self, kind: str, connection_id: int, user: str, admin: bool) -> str | None:
        if self.kill_dir is None or connection_id < 1:
            return None
        owner = (connection_id - 1) % self.workers
        if owner == self.worker:
            return None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(self.kill_socket(owner))), 2.0)
            try:
                writer.write(json.dumps({"kind": kind, "id": connection_id, "user": user, "admin": admin}).encode()
                             + b"\n")
                await writer.drain()
                reply = json.loads(await asyncio.wait_for(reader.readline(), 2.0))
            finally:
                writer.close()
            return str(reply["result"])
        except (OSError, ValueError, KeyError, TimeoutError):
            return None

    def lookup(self, name: str) -> UserConfig | None:
        return self.config.user(name)

    def next_id(self) -> int:
        while True:
            cid = next(self._ids)
            if cid > 0xFFFFFFFF:  # 4 billion connections later: start again, skipping live ids
                self._ids = itertools.count(self._first_id, self._id_step)
                continue
            if cid not in self.connections:
                return cid


class MysqlConnection(asyncio.Protocol):
    """One client connection (see the module docstring); also the ``Host`` its ``CommandRunner`` uses."""

    def __init__(self, frontend: MysqlFrontend) -> None:
        self.frontend = frontend
        self.connection_id = 0
        self.peer: Any = None
        self.peer_host = ""
        self.user = ""
        self.started = frontend.started
        self.runner: CommandRunner | None = None
        self.proto: P.ServerProtocol | None = None
        self._transport: asyncio.Transport | None = None
        self._tls: TlsLayer | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._lost = False
        self._busy = False  # a command is running
        self._login_timer: asyncio.TimerHandle | None = None
        self._closing = False  # KILL CONNECTION
        self._admission: Admission | None = None  # counted against the client-session limits while logged in
        self._draining = False  # the listener drains: close when idle outside a transaction

    # --- asyncio.Protocol ------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        fe = self.frontend
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport
        assert self._transport is not None
        self._transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = peer  # (host, port, …) for the admin console's CLIENTS
        self.peer_host = peer[0] if isinstance(peer, tuple) else "localhost"
        self.connection_id = fe.next_id()
        fe.connections[self.connection_id] = self
        fe.stats.connections_total += 1
        fe.stats.connections_open += 1
        if not fe.accepting:
            self.proto = None
            transport.close()
            return
        self.proto = P.ServerProtocol(self.connection_id, fe.settings, fe.lookup, rsa=fe.rsa,
                                      fast_cache=fe.fast_cache, peer_host=self.peer_host)
        self.proto.initiate()
        self._write(self.proto.data_to_send())
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        self._login_timer = loop.call_later(CONNECT_TIMEOUT, self._login_timeout)

    def _login_timeout(self) -> None:
        self._login_timer = None
        if self.proto is not None and self.proto.phase < P.Phase.COMMAND and not self._lost:
            log.info("connection %s: no login within %.0f s", self.connection_id, CONNECT_TIMEOUT)
            self._abort()

    def data_received(self, data: bytes) -> None:
        proto = self.proto
        if proto is None or self._lost:
            return
        if self._tls is not None:
            try:
                data = self._tls.receive(data)
            except ssl.SSLError as exc:
                log.info("connection %s: TLS error: %s", self.connection_id, exc)
                self._abort()
                return
            out = self._tls.outgoing()
            if out and self._transport is not None:
                self._transport.write(out)
            if not data:
                return
        before = proto.packets_in
        proto.receive_data(data)
        self.frontend.stats.packets_in += proto.packets_in - before
        self._wake()
        # Pause while commands wait (a packet being received is never paused: the decoder bounds its size).
        if not self._reading_paused and proto.pending_events and (proto.buffered > READ_HIGH
                                                                  or proto.pending_events >= P.MAX_PENDING_EVENTS):
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None
        self.frontend.stats.connections_open -= 1
        self.frontend.connections.pop(self.connection_id, None)
        self._wake()
        w = self._writable
        if w is not None and not w.done():
            w.set_result(None)
        if self._busy and self._task is not None:
            self._task.cancel()  # the client is gone: stop its statement

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        w = self._writable
        if w is not None and not w.done():
            w.set_result(None)

    # --- Host (for the CommandRunner) ------------------------------------------------------------------------------
    async def flush(self) -> None:
        proto = self.proto
        if proto is not None:
            data = proto.data_to_send()
            if data:
                self._write(data)
        w = self._writable
        if w is not None and not w.done() and not self._lost:
            await w

    def others(self) -> Sequence[MysqlConnection]:
        return list(self.frontend.connections.values())

    def find(self, connection_id: int) -> MysqlConnection | None:
        return self.frontend.connections.get(connection_id)

    def count_internal_error(self, exc: BaseException | None = None) -> None:
        self.frontend.stats.count_internal(exc)

    async def forward_kill(self, kind: str, connection_id: int, user: str, admin: bool) -> str | None:
        return await self.frontend.forward_kill(kind, connection_id, user, admin)

    def kill_query(self) -> None:
        """KILL QUERY: interrupt the running statement (the client gets ERR 1317); the connection stays."""
        if self._busy and self._task is not None and self.runner is not None:
            self.runner.kill_requested = True
            self._task.cancel()

    def kill_connection(self) -> None:
        """KILL [CONNECTION]: end the connection, interrupting what it runs."""
        self._closing = True
        if self._busy and self._task is not None:
            self._task.cancel()
        else:
            self._wake()

    def request_close(self) -> None:
        """Drain: close once the running command (if any) is answered and no transaction is open."""
        self._draining = True
        if not self._busy:
            self._wake()

    def _may_close(self) -> bool:
        if self._closing:
            return True
        if self._draining:
            runner = self.runner
            return runner is None or not runner.session.in_transaction
        return False

    # --- internals ---------------------------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        t = self._transport
        if not data or t is None or self._lost:
            return
        if self._tls is not None:
            try:
                data = self._tls.send(data)
            except ssl.SSLError:
                self._abort()
                return
        t.write(data)

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def _run(self) -> None:
        proto = self.proto
        assert proto is not None
        try:
            while not self._lost:
                ev = proto.next_event()
                if ev is None:
                    await self.flush()
                    if proto.closed or self._may_close():
                        break
                    if self._reading_paused:
                        self._reading_paused = False
                        assert self._transport is not None
                        self._transport.resume_reading()
                    await self._wait()
                    continue
                if not await self._event(ev):
                    break
        except asyncio.CancelledError:
            if not self._lost and not self._closing:
                raise
        except Exception as exc:
            self.frontend.stats.count_internal(exc)
            log.exception("connection %s: unexpected error", self.connection_id)
        finally:
            await self._finish()

    async def _event(self, ev: Any) -> bool:
        proto = self.proto
        assert proto is not None
        runner = self.runner
        if runner is not None and not isinstance(ev, (P.Close, P.Authenticated, P.VerifyPassword)):
            self._busy = True
            try:
                keep = await runner.handle(ev)
            finally:
                self._busy = False
            self.frontend.stats.commands_in += 1
            return keep and not self._may_close()
        if isinstance(ev, P.Close):
            if ev.error is not None:
                self.frontend.stats.protocol_errors += 1
                proto.send_error(*ev.error)
            elif runner is None:
                self.frontend.stats.auth_failures += 1
            return False
        if isinstance(ev, P.StartTLS):
            ctx = self.frontend.ssl_context
            assert ctx is not None
            await self.flush()
            self._tls = TlsLayer(ctx)
            # Everything after the SSLRequest is TLS: what came with it, and what arrived before this event ran.
            early = ev.leftover + proto.take_unread()
            proto.tls_started()
            self.data_received(early)
            return True
        if isinstance(ev, P.VerifyPassword):
            async with self.frontend.password_checks:
                ok = await asyncio.to_thread(ev.step.run)
            proto.password_verified(ok)
            return True
        if isinstance(ev, P.Authenticated):
            await self._authenticated(ev)
            return True
        return True

    async def _authenticated(self, ev: P.Authenticated) -> None:
        proto = self.proto
        assert proto is not None
        fe = self.frontend
        old, self.runner = self.runner, None
        if old is not None:  # COM_CHANGE_USER: the previous session ends (its transaction is rolled back)
            await old.close()
        if self._admission is not None:
            self._admission.release()
            self._admission = None
        try:  # the router's client-session limits, over both protocols (config ``limits``)
            admission = ClientLimiter.of(fe.gateway).admit(ev.user_name)
        except TooManyConnectionsError as exc:
            proto.reject(exc.mysql_errno, exc.mysql_sqlstate, exc.client_message())
            return
        self.user = ev.user_name
        runner = CommandRunner(proto, fe.gateway, self, user=ev.user_name, user_is_admin=ev.user.is_admin,
                               server_version=fe.settings.server_version,
                               max_allowed_packet=fe.settings.max_allowed_packet, tls=self._tls is not None,
                               passthrough=fe.passthrough)
        if ev.database:
            try:
                await runner.use_database(ev.database)
            except UnknownKeyspaceError as exc:
                admission.release()
                await runner.close()
                proto.reject(exc.mysql_errno, exc.mysql_sqlstate, f"Unknown database '{ev.database}'")
                return
            except ShardgateError as exc:
                admission.release()
                await runner.close()
                proto.reject(exc.mysql_errno, exc.mysql_sqlstate, exc.client_message())
                return
        runner._sync_status()
        self.runner = runner
        self._admission = admission
        proto.accept()

    async def _finish(self) -> None:
        runner, self.runner = self.runner, None
        admission, self._admission = self._admission, None
        if admission is not None:
            admission.release()
        if runner is not None:
            try:
                await asyncio.shield(runner.close())
            except (asyncio.CancelledError, Exception):
                log.debug("connection %s: closing its session failed", self.connection_id, exc_info=True)
        if not self._lost:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), 1.0)
            if self._transport is not None:
                self._transport.close()
        self.frontend.connections.pop(self.connection_id, None)


class MysqlListener(asyncio.AbstractServer):
    """The listening socket of the MySQL frontend, with a graceful ``drain``."""

    def __init__(self, server: asyncio.Server, frontend: MysqlFrontend) -> None:
        self._server = server
        self.frontend = frontend
        self._kill_close: asyncio.Task[None] | None = None

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets)  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def stats(self) -> FrontendStats:
        return self.frontend.stats

    def close(self) -> None:
        self.frontend.accepting = False
        self._server.close()
        if self.frontend._kill_server is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: the socket file goes with the process
                self._kill_close = asyncio.get_running_loop().create_task(self.frontend.close_kill_server())

    async def wait_closed(self) -> None:
        await self._server.wait_closed()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._server.get_loop()

    def is_serving(self) -> bool:
        return self._server.is_serving()

    async def start_serving(self) -> None:
        await self._server.start_serving()

    async def serve_forever(self) -> None:
        await self._server.serve_forever()

    async def drain(self, timeout: float = 10.0) -> None:
        """Stop accepting; close each connection once it is idle outside a transaction (forcibly after ``timeout``
        seconds); then wait for the listening socket to close."""
        self.close()
        conns = list(self.frontend.connections.values())
        for conn in conns:
            conn.request_close()
        tasks = [c._task for c in conns if c._task is not None and not c._task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5.0)
        for conn in list(self.frontend.connections.values()):
            conn._abort()
        if self.frontend.passthrough is not None:
            self.frontend.passthrough.pool.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5.0)

    async def __aenter__(self) -> MysqlListener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain(timeout=5.0)


def _ssl_context(config: ClusterConfig) -> ssl.SSLContext | None:
    tls = config.tls
    if tls is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tls.cert), str(tls.key))
    return ctx


async def start_mysql_listener(gateway: Gateway, config: ClusterConfig, *, host: str = "127.0.0.1", port: int = 15306,
                               ssl_context: ssl.SSLContext | None = None, require_tls: bool | None = None,
                               rsa_key_file: str | os.PathLike[str] | None = None,
                               server_version: str = "8.0.31-shardgate", max_allowed_packet: int = 64 << 20,
                               default_auth_plugin: str = "mysql_native_password", reuse_port: bool = False,
                               backlog: int = 1024, worker: int = 0, workers: int = 1,
                               kill_dir: str | os.PathLike[str] | None = None, passthrough: bool = True,
                               passthrough_pool: PoolConfig | None = None) -> MysqlListener:
    """Listen for MySQL clients on ``host:port`` (port 0: a free one, see ``listener.port``).

    TLS comes from ``ssl_context`` or the config's ``tls`` section (``require_tls`` defaults to its ``require``).
    The RSA key pair of caching_sha2_password is read from ``rsa_key_file`` (made there if missing), or made once
    per process. ``reuse_port`` lets several worker processes share the port; ``worker``/``workers`` keep their
    connection ids apart, and with ``kill_dir`` (a private directory shared by the workers) a KILL for a connection
    of another worker is forwarded to it over a Unix socket there. ``passthrough`` forwards single-shard reads to
    the shard and relays its packets (``passthrough.py``), over raw shard connections pooled with
    ``passthrough_pool``'s limits (default ``PoolConfig()``).
    """
    ctx = ssl_context if ssl_context is not None else _ssl_context(config)
    if require_tls is None:
        require_tls = bool(config.tls is not None and config.tls.require)
    if require_tls and ctx is None:
        raise ValueError("require_tls needs TLS (a certificate and key)")
    rsa = RsaKeyPair.load_or_generate(rsa_key_file) if rsa_key_file is not None else default_rsa_keys()
    settings = P.Settings(server_version=server_version, tls_available=ctx is not None, require_tls=require_tls,
                          default_auth_plugin=default_auth_plugin, max_allowed_packet=max_allowed_packet)
    frontend = MysqlFrontend(gateway, config, settings, ssl_context=ctx, rsa=rsa, worker=worker, workers=workers,
                             kill_dir=Path(kill_dir) if kill_dir is not None else None,
                             passthrough=Passthrough(gateway, RawPool(passthrough_pool)) if passthrough else None)
    await frontend.start_kill_server()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: MysqlConnection(frontend), host, port, backlog=backlog,
                                      reuse_address=True, reuse_port=reuse_port or None)
    return MysqlListener(server, frontend)

