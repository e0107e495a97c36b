"""The PostgreSQL listener: ``asyncio.Protocol`` glue between sockets and ``PgProtocol`` + ``Handler``.

One task per connection runs the login and then the handler's loop. Back-pressure both ways:

- reading: once more than ``READ_HIGH`` bytes of whole messages wait unprocessed, the transport stops reading
  until the handler has consumed them (a message still arriving is always read to its end, up to the
  configured maximum message size, so a paused read can never wait on itself);
- writing: the transport's write buffer is bounded (``set_write_buffer_limits``); a statement streaming rows
  waits in ``drain()`` while the client is slow, and the engine stops pulling from the shards meanwhile.

Cancel: BackendKeyData carries a process id made of this worker's number and a connection counter, and a random
secret. A CancelRequest for another worker's session (``--workers N`` shares the port with SO_REUSEPORT, so it can
land anywhere) is forwarded to that worker's Unix socket (``cancel_dir``).

Draining (SIGTERM): the listener closes; idle sessions end at once with FATAL 57P01; sessions in a statement or a
transaction end when they next become idle, or at the drain deadline.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.activity import identify
from router.engine.client_limits import ClientLimiter
from router.frontend.postgres import messages as M
from router.frontend.postgres.auth import AuthPolicy, HbaRule, tls_server_end_point
from router.frontend.postgres.describe import Describer
from router.frontend.postgres.handler import Handler, Metrics
from router.frontend.postgres.passthrough import Passthrough
from router.frontend.postgres.protocol import Cancel, Login, NeedTLS, PgProtocol
from router.frontend.postgres.rawconn import RawPool
from router.frontend.postgres.settings import CANONICAL_PARAMS, DURATION_SETTINGS, REPORTED_DEFAULTS, duration_in_ms
from router.frontend.postgres.statements import classify
from sharding.errors import ShardgateError, TooManyConnectionsError, UnknownKeyspaceError

__all__ = ["FrontendOptions", "PgFrontend", "parse_database", "start_postgres_listener"]

log = logging.getLogger("shardgate.frontend.postgres")

READ_HIGH = 256 * 1024
WRITE_HIGH = 256 * 1024
WORKER_SHIFT = 24  # pid = worker << 24 | connection counter


@dataclass
class FrontendOptions:
    host: str = "127.0.0.1"
    port: int = 15432
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False
    hba: list[HbaRule] = field(default_factory=list)
    max_message: int = M.DEFAULT_MAX_MESSAGE
    max_connections: int = 10_000
    login_timeout: float = 60.0
    worker: int = 0
    workers: int = 1
    reuse_port: bool = False
    cancel_dir: Path | None = None  # where each worker listens for forwarded cancel requests
    drain_timeout: float = 30.0
    sock: Any = None  # an already bound socket (tests, inherited listeners)
    passthrough: bool = True  # forward single-shard reads to the shard as they are (see passthrough.py)
    passthrough_pool_size: int = 20  # raw shard connections per shard for that path


def parse_database(name: str, keyspaces: Mapping[str, Any]) -> tuple[str | None, str | None, str]:
    """``ks``, ``ks:shard``, ``ks@replica``, ``ks:shard@rdonly`` → (keyspace, target shard, tablet type)."""
    base, _, role = name.partition("@")
    role = role.lower() or "primary"
    if role not in ("primary", "replica", "rdonly"):
        raise UnknownKeyspaceError(f'database "{name}" does not exist (unknown tablet type {role!r})')
    keyspace, _, target = base.partition(":")
    if keyspace not in keyspaces:
        raise UnknownKeyspaceError(f'database "{name}" does not exist')
    if target:
        shards = {s.name for s in keyspaces[keyspace].shards}
        if target not in shards:
            raise UnknownKeyspaceError(f'database "{name}" does not exist (keyspace {keyspace} has no shard '
                                       f"{target})")
    return keyspace, target or None, role


class PgFrontend:
    """The listener of one worker process, and the registry of its sessions (cancel keys)."""

    def __init__(self, gateway: Any, options: FrontendOptions, users: Any = ()) -> None:
        self.gateway = gateway
        self.options = options
        self.policy = AuthPolicy(users, options.hba)
        self.metrics = Metrics()
        self.describer = Describer(gateway)
        self.passthrough: Passthrough | None = None
        if options.passthrough:
            self.passthrough = Passthrough(gateway, RawPool(options.passthrough_pool_size))
        self.reported = dict(REPORTED_DEFAULTS)
        self.server: asyncio.Server | None = None
        self.cancel_server: asyncio.Server | None = None
        self.connections: set[_Connection] = set()
        self.sessions: dict[int, tuple[int, Handler]] = {}
        self.draining = False
        self._counter = 0
        self._ssl: ssl.SSLContext | None = None
        self._channel_binding: bytes | None = None
        if options.tls_cert is not None and options.tls_key is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(options.tls_cert), str(options.tls_key))
            self._ssl = ctx
            pem = Path(options.tls_cert).read_text(encoding="ascii")
            first = pem[pem.index("-----BEGIN CERTIFICATE-----"):pem.index("-----END CERTIFICATE-----") + 25]
            self._channel_binding = tls_server_end_point(ssl.PEM_cert_to_DER_cert(first))

    # --- lifecycle ----------------------------------------------------------------------------------------------
    async def start(self) -> PgFrontend:
        await self._server_version()
        loop = asyncio.get_running_loop()
        opts = self.options
        if opts.sock is not None:
            self.server = await loop.create_server(lambda: _Connection(self), sock=opts.sock)
        else:
            self.server = await loop.create_server(lambda: _Connection(self), opts.host, opts.port,
                                                   reuse_port=opts.reuse_port or None, backlog=1024)
        if opts.cancel_dir is not None:
            path = cancel_socket(opts.cancel_dir, opts.worker)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self.cancel_server = await asyncio.start_unix_server(self._forwarded_cancel, str(path))
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _server_version(self) -> None:
        snapshot = self.gateway.snapshot
        for ks in sorted(snapshot.keyspaces):
            if self.gateway.backend_dialect(ks) != "postgres":
                continue
            try:
                async with self.gateway.pools.acquire(ks, snapshot.shards(ks)[0].name, timeout=5) as conn:
                    version = str(conn.server_version).split()[0]
            except ShardgateError:
                continue
            self.reported["server_version"] = f"{version} (shardgate)"
            return

    async def close(self, timeout: float | None = None) -> None:
        """Drain: stop accepting, end idle sessions now and busy ones when idle (or at the deadline)."""
        self.draining = True
        if self.server is not None:
            self.server.close()
        if self.cancel_server is not None:
            self.cancel_server.close()
        for conn in list(self.connections):
            conn.wake()
        deadline = self.options.drain_timeout if timeout is None else timeout
        tasks = [c.task for c in self.connections if c.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=deadline)
            for conn in list(self.connections):
                conn.terminate("terminating connection due to administrator command")
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self.options.cancel_dir is not None:
            with contextlib.suppress(OSError):
                cancel_socket(self.options.cancel_dir, self.options.worker).unlink()
        if self.passthrough is not None:
            self.passthrough.pool.close()

    # --- sessions and cancel ------------------------------------------------------------------------------------
    def register(self, handler: Handler) -> tuple[int, int]:
        self._counter = (self._counter + 1) & ((1 << WORKER_SHIFT) - 1) or 1
        pid = (self.options.worker << WORKER_SHIFT) | self._counter
        secret = secrets.randbits(32)
        self.sessions[pid] = (secret, handler)
        return pid, secret

    def unregister(self, pid: int) -> None:
        self.sessions.pop(pid, None)

    def cancel_local(self, pid: int, secret: int) -> bool:
        entry = self.sessions.get(pid)
        if entry is None or not secrets.compare_digest(entry[0].to_bytes(4, "big"), (secret & 0xFFFFFFFF)
                                                       .to_bytes(4, "big")):
            return False
        return entry[1].cancel()

    async def cancel(self, pid: int, secret: int) -> None:
        worker = pid >> WORKER_SHIFT
        if worker == self.options.worker or self.options.cancel_dir is None:
            self.cancel_local(pid, secret)
            return
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(cancel_socket(self.options.cancel_dir, worker))), 2)
        except (OSError, TimeoutError):
            return
        writer.write(struct.pack("!iI", pid, secret & 0xFFFFFFFF))
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()

    async def _forwarded_cancel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await asyncio.wait_for(reader.readexactly(8), 2)
            pid, secret = struct.unpack("!iI", data)
            self.cancel_local(pid, secret)
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            pass
        finally:
            writer.close()


def parse_options(options: str) -> list[tuple[str, str]]:
    """The settings of the startup ``options`` parameter (``PGOPTIONS``): ``-c name=value`` and
    ``--name=value``, with backslash-escaped spaces, as PostgreSQL reads them."""
    words: list[str] = []
    current, escaped = [], False
    for ch in options:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-c" and i + 1 < len(words):
            word = "--" + words[i + 1]
            i += 1
        elif word.startswith("-c"):
            word = "--" + word[2:]
        if not word.startswith("--") or "=" not in word:
            raise M.PgError(f"invalid command-line argument for server process: {word}", sqlstate="42601",
                            fatal=True)
        name, _, value = word[2:].partition("=")
        out.append((name.replace("-", "_"), value))
        i += 1
    return out


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"' if not name.replace("_", "").replace(".", "").isalnum() else name


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def cancel_socket(directory: Path, worker: int) -> Path:
    return Path(directory) / f"pg-cancel-{worker}.sock"


class _Connection(asyncio.Protocol):
    """One client socket: feeds ``PgProtocol``, runs the login and the handler, implements ``Wire``."""

    def __init__(self, frontend: PgFrontend) -> None:
        self.frontend = frontend
        self.transport: Any = None
        self.proto: PgProtocol | None = None
        self.task: asyncio.Task[None] | None = None
        self.handler: Handler | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._write_ok: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._eof = False
        self._lost = False

    # --- asyncio.Protocol ----------------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        fe = self.frontend
        peer = transport.get_extra_info("peername")
        opts = fe.options
        self.proto = PgProtocol(fe.policy, peer=peer[0] if peer else None, tls_available=fe._ssl is not None,
                                tls_required=opts.require_tls, max_message=opts.max_message)
        with contextlib.suppress(AttributeError, NotImplementedError):
            transport.set_write_buffer_limits(high=WRITE_HIGH)
        fe.connections.add(self)
        fe.metrics.connections += 1
        self.task = asyncio.get_running_loop().create_task(self._main())

    def data_received(self, data: bytes) -> None:
        proto = self.proto
        assert proto is not None
        proto.feed(data)
        if proto.buffered > READ_HIGH and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self.wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._stop_statement()
        self.wake()
        # The write side stays open: what the client sent before its EOF is still answered (as PostgreSQL does);
        # the connection ends once that is done.
        return True

    def _stop_statement(self) -> None:
        """The client is gone (or has half-closed): a statement still running is stopped now (its shard statements
        are cancelled on the servers), then the session rolls back and gives its shard connections back."""
        handler = self.handler
        if handler is not None and handler.busy and self.task is not None and not self.task.done():
            self.task.cancel()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.frontend.connections.discard(self)
        self.wake()
        w, self._write_ok = self._write_ok, None
        if w is not None and not w.done():
            w.set_result(None)
        self._stop_statement()

    def pause_writing(self) -> None:
        if self._write_ok is None:
            self._write_ok = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        w, self._write_ok = self._write_ok, None
        if w is not None and not w.done():
            w.set_result(None)

    def wake(self) -> None:
        w, self._waiter = self._waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    # --- Wire ------------------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._lost

    def flush(self) -> None:
        proto = self.proto
        if proto is not None and proto.out and not self._lost:
            self.transport.write(proto.take_output())

    async def drain(self) -> None:
        self.flush()
        while self._write_ok is not None and not self._lost:
            await self._write_ok

    async def next_event(self) -> Any:
        proto = self.proto
        assert proto is not None
        while True:
            if self._write_ok is not None and not self._lost:
                # The client is not reading its answers (a pipeline of queries it never drains): stop taking
                # its input until it does, so neither buffer grows without bound.
                await self.drain()
            if self._lost:
                return None  # nobody reads the answers: what the client sent before it left is not run
            event = proto.next_event()
            if event is not None:
                return event
            fe = self.frontend
            if fe.draining and self.handler is not None and not self.handler.session.in_transaction:
                proto.fatal("57P01", "terminating connection due to administrator command")
            self.flush()
            if proto.closing or self._lost or self._eof:
                return None
            if self._reading_paused:
                self._reading_paused = False
                self.transport.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    # --- the connection's life -----------------------------------------------------------------------------
    async def _main(self) -> None:
        fe = self.frontend
        session = None
        admission = None
        pid = 0
        try:
            if len(fe.connections) > fe.options.max_connections or fe.draining:
                exc = TooManyConnectionsError("sorry, too many clients already") if not fe.draining else None
                assert self.proto is not None
                if exc is not None:
                    self.proto.fatal(exc.pg_sqlstate, exc.message)
                else:
                    self.proto.fatal("57P03", "the database system is shutting down")
                return
            try:
                login = await asyncio.wait_for(self._login(), fe.options.login_timeout)
            except TimeoutError:
                return
            if login is None:
                return
            try:  # the router's client-session limits, over both protocols (config ``limits``)
                admission = ClientLimiter.of(fe.gateway).admit(login.user)
            except TooManyConnectionsError as exc:
                assert self.proto is not None
                self.proto.fatal(exc.pg_sqlstate, exc.message)
                return
            session, handler = await self._open_session(login)
            if handler is None:
                return
            pid, secret = fe.register(handler)
            identify(session, "postgres", self.transport.get_extra_info("peername"), pid)
            reported = dict(handler.params)
            assert self.proto is not None
            self.proto.accept(reported, pid, secret)
            self.flush()
            await handler.run()
        except asyncio.CancelledError:
            pass
        except Exception:
            fe.metrics.internal_errors += 1
            log.exception("internal error in a PostgreSQL connection")
        finally:
            if self.proto is not None:
                fe.metrics.messages += self.proto.messages
                fe.metrics.dispatched += self.proto.dispatched
            if pid:
                fe.unregister(pid)
            if admission is not None:
                admission.release()
            if session is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(session.close())
            self.flush()
            if self.transport is not None and not self._lost:
                self.transport.close()
            fe.connections.discard(self)

    async def _login(self) -> Login | None:
        proto = self.proto
        assert proto is not None
        fe = self.frontend
        while True:
            event = await self.next_event()
            if event is None:
                return None
            if isinstance(event, NeedTLS):
                self.flush()
                loop = asyncio.get_running_loop()
                assert fe._ssl is not None
                try:
                    self.transport = await loop.start_tls(self.transport, self, fe._ssl, server_side=True)
                except (OSError, ssl.SSLError, ConnectionError):
                    return None
                if self.transport is None:
                    return None
                proto.tls_started(fe._channel_binding)
            elif isinstance(event, Cancel):
                await fe.cancel(event.pid, event.secret)
                return None
            elif isinstance(event, Login):
                return event
            else:
                return None

    async def _open_session(self, login: Login) -> tuple[Any, Handler | None]:
        fe = self.frontend
        proto = self.proto
        assert proto is not None
        params = login.params
        if params.get("replication") not in (None, "false", "0", "off", "no"):
            proto.fatal("0A000", "replication connections are not supported")
            return None, None
        database = login.database
        try:
            snapshot = fe.gateway.snapshot
            if (database == login.user and database not in snapshot.keyspaces) or (database == "postgres" \
                    and "postgres" not in snapshot.keyspaces):
                keyspace, target, role = None, None, "primary"
            else:
                keyspace, target, role = parse_database(database, snapshot.keyspaces)
        except UnknownKeyspaceError as exc:
            proto.fatal("3D000", exc.message)
            return None, None
        session = fe.gateway.session("postgres", keyspace, user=login.user)
        state = session.state
        state.client_addr = proto.peer  # query rules match on it (None: a Unix socket)
        if target is not None or role != "primary":
            state.target = target
            state.tablet_type = role
            session._view = None
        reported = dict(fe.reported)
        reported["session_authorization"] = login.user
        reported["application_name"] = params.get("application_name", "")
        handler = Handler(proto, self, fe.gateway, session, describer=fe.describer, metrics=fe.metrics,
                          reported=reported, is_admin=login.is_admin, passthrough=fe.passthrough)
        handler.defaults["application_name"] = reported["application_name"]
        if reported["application_name"]:  # the shards' connections carry it while they serve this session
            session.backend_param("application_name", reported["application_name"])
        settings = [(k, v) for k, v in params.items()
                    if k not in ("user", "database", "application_name", "replication", "options")]
        try:
            settings += parse_options(params.get("options", ""))
            for name, value in settings:
                key = name.lower()
                if key in CANONICAL_PARAMS:  # ParameterStatus goes out once, with accept()
                    handler._apply_param(CANONICAL_PARAMS[key], value, report=False)
                    handler.defaults[CANONICAL_PARAMS[key]] = handler.params.get(CANONICAL_PARAMS[key], value)
                else:  # a setting the router keeps (statement_timeout, workload, …) or the engine refuses
                    sql = f"SET {_ident(name)} = {_literal(value)}"
                    if key in DURATION_SETTINGS:
                        sql = duration_in_ms(sql, classify(sql))
                    await session.execute(sql)
        except (ShardgateError, M.PgError) as exc:
            proto.fatal(exc.pg_sqlstate if isinstance(exc, ShardgateError) else exc.sqlstate, exc.message)
            return session, None
        self.handler = handler
        return session, handler

    def terminate(self, message: str) -> None:
        """Drain deadline: end the session now."""
        proto = self.proto
        if proto is not None and not self._lost:
            proto.fatal("57P01", message)
            self.flush()
        if self.task is not None:
            self.task.cancel()
        if self.transport is not None and not self._lost:
            self.transport.close()


async def start_postgres_listener(gateway: Any, config: Any, **overrides: Any) -> PgFrontend:
    """Listen for PostgreSQL clients on ``config.listeners.postgres`` (default 127.0.0.1:15432) with the config's
    users and TLS; ``overrides`` set ``FrontendOptions`` fields."""
    listen = getattr(getattr(config, "listeners", None), "postgres", None)
    options = FrontendOptions()
    if listen is not None:
        options.host, options.port = listen.host, listen.port
    tls = getattr(config, "tls", None)
    if tls is not None:
        options.tls_cert, options.tls_key, options.require_tls = tls.cert, tls.key, tls.require
    for key, value in overrides.items():
        setattr(options, key, value)
    return await PgFrontend(gateway, options, getattr(config, "users", ())).start()

