"""The shared database connection layer: backend addresses (DSNs), connect, health probe.

``router/`` and ``replication/`` both reach PostgreSQL and MySQL/MariaDB through this module, so neither imports
the other. It is the only I/O in ``sharding/`` besides the topology store, and it stays small: pools, sessions and
protocol details belong to the callers.

A :class:`DSN` is a frozen value. Its password never appears in ``repr()``, ``str()`` or log lines; only
``DSN.url(with_password=True)`` writes it, for handing to a subprocess or an environment variable.

URL forms (both engines take ``?sslmode=`` / ``?ssl-mode=`` and a CA file)::

    postgresql://user:secret@127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=/etc/ca.pem
    mysql://user:secret@127.0.0.1:3306/app?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/ca.pem
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from sharding.errors import BackendUnavailableError, ConfigError

if TYPE_CHECKING:
    import aiomysql
    import asyncpg

__all__ = ["DSN", "BackendAddress", "Connection", "Engine", "ProbeResult", "TLSMode", "close", "connect",
           "execute", "fetch_all", "probe", "server_version"]

Engine: TypeAlias = Literal["postgres", "mysql"]
Connection: TypeAlias = "asyncpg.Connection | aiomysql.Connection"

DEFAULT_PORTS: dict[str, int] = {"postgres": 5432, "mysql": 3306}
_SCHEMES: dict[str, Engine] = {"postgresql": "postgres", "postgres": "postgres", "mysql": "mysql", "mariadb": "mysql"}


class TLSMode(enum.StrEnum):
    """How a connection uses TLS; the same four levels in libpq's and MySQL's spelling."""

    DISABLE = "disable"
    REQUIRE = "require"  # encrypted, server certificate not checked
    VERIFY_CA = "verify-ca"  # certificate must chain to the CA; host name not checked
    VERIFY_FULL = "verify-full"  # certificate chain and host name checked


# URL spellings per engine: libpq's sslmode values and MySQL's --ssl-mode values.
_PG_MODES = {m: m.value for m in TLSMode}
_MYSQL_MODES = {TLSMode.DISABLE: "DISABLED", TLSMode.REQUIRE: "REQUIRED", TLSMode.VERIFY_CA: "VERIFY_CA",
                TLSMode.VERIFY_FULL: "VERIFY_IDENTITY"}
_MODE_BY_NAME = {**{v: m for m, v in _PG_MODES.items()}, **{v.lower(): m for m, v in _MYSQL_MODES.items()}}
_MODE_PARAMS = ("sslmode", "ssl-mode", "ssl_mode")
_CA_PARAMS = ("sslrootcert", "ssl-ca", "ssl_ca")


@dataclass(frozen=True, slots=True)
class DSN:
    """Where one backend database lives and how to log in. ``database=""`` means the server's default."""

    engine: Engine
    host: str
    port: int
    database: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    tls_mode: TLSMode = TLSMode.DISABLE
    tls_ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in DEFAULT_PORTS:
            raise ConfigError(f"unknown database engine {self.engine!r} (expected 'postgres' or 'mysql')")
        if not self.host:
            raise ConfigError("a DSN needs a host")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} is out of range")
        if self.tls_ca_file and self.tls_mode is TLSMode.DISABLE:
            raise ConfigError("a TLS CA file is given but TLS is disabled")

    @classmethod
    def parse(cls, url: str) -> DSN:
        """``postgresql://…`` / ``mysql://…`` → DSN. Raises ConfigError naming the problem (never the password)."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"malformed DSN: {exc}") from None
        engine = _SCHEMES.get(parts.scheme.lower())
        if engine is None:
            raise ConfigError(f"unsupported DSN scheme {parts.scheme!r}: use postgresql:// or mysql://")
        if parts.fragment:
            raise ConfigError("a DSN has no #fragment")
        database = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
        if "/" in database:
            raise ConfigError(f"malformed DSN database name {database!r}")
        tls_mode, ca = TLSMode.DISABLE, None
        for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
            if key in _MODE_PARAMS:
                mode = _MODE_BY_NAME.get(value.lower())
                if mode is None:
                    raise ConfigError(f"unsupported {key}={value!r}: use one of "
                                      f"{', '.join(_PG_MODES.values())} (or MySQL's spelling)")
                tls_mode = mode
            elif key in _CA_PARAMS:
                ca = value or None
            else:
                raise ConfigError(f"unsupported DSN parameter {key!r}")
        if ca and tls_mode is TLSMode.DISABLE:
            tls_mode = TLSMode.VERIFY_FULL  # a CA file alone means "verify", as MySQL's --ssl-ca does
        return cls(engine=engine, host=parts.hostname or "", port=port or DEFAULT_PORTS[engine],
                   database=database, user=unquote(parts.username or ""),
                   password=unquote(parts.password or ""), tls_mode=tls_mode, tls_ca_file=ca)

    def url(self, *, with_password: bool = False) -> str:
        """The URL form. The password is written only when asked, else replaced by ``***``."""
        scheme = "postgresql" if self.engine == "postgres" else "mysql"
        auth = ""
        if self.user or self.password:
            auth = quote(self.user, safe="")
            if self.password:
                auth += ":" + (quote(self.password, safe="") if with_password else "***")
            auth += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        url = f"{scheme}://{auth}{host}:{self.port}"
        if self.database:
            url += "/" + quote(self.database, safe="")
        params: list[tuple[str, str]] = []
        if self.tls_mode is not TLSMode.DISABLE:
            if self.engine == "postgres":
                params.append(("sslmode", _PG_MODES[self.tls_mode]))
            else:
                params.append(("ssl-mode", _MYSQL_MODES[self.tls_mode]))
        if self.tls_ca_file:
            params.append(("sslrootcert" if self.engine == "postgres" else "ssl-ca", self.tls_ca_file))
        if params:
            url += "?" + urlencode(params, safe="/")
        return url

    def __str__(self) -> str:
        return self.url()

    def with_database(self, database: str) -> DSN:
        return dataclasses.replace(self, database=database)

    @property
    def address(self) -> str:
        """``host:port`` for log lines and error messages."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context for this DSN, or None when TLS is disabled."""
        if self.tls_mode is TLSMode.DISABLE:
            return None
        try:
            ctx = ssl.create_default_context(cafile=self.tls_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS CA file {self.tls_ca_file!r}: {exc}") from None
        if self.tls_mode is TLSMode.REQUIRE:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.tls_mode is TLSMode.VERIFY_CA:
            ctx.check_hostname = False
        return ctx


BackendAddress = DSN


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One health probe: connect, ``SELECT 1``, close. ``latency_ms`` covers the whole round."""

    ok: bool
    server_version: str | None
    latency_ms: float
    error: str | None = None


async def connect(dsn: DSN, *, timeout: float = 10.0) -> Connection:
    """Open one connection: asyncpg for ``postgres``, aiomysql (autocommit, utf8mb4) for ``mysql``.

    MySQL connections are in autocommit mode so both engines behave alike: a statement outside an explicit
    transaction commits by itself. Any failure to connect raises BackendUnavailableError (cause chained).
    """
    ssl_ctx = dsn.ssl_context()  # ConfigError (bad CA file) is the caller's mistake, not the backend's
    try:
        if dsn.engine == "postgres":
            import asyncpg

            return await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user or None,
                                         password=dsn.password or None, database=dsn.database or None,
                                         timeout=timeout, ssl=ssl_ctx or False,
                                         server_settings={"application_name": "shardgate"})
        import aiomysql

        async with asyncio.timeout(timeout):
            return await aiomysql.connect(host=dsn.host, port=dsn.port, user=dsn.user or None,
                                          password=dsn.password, db=dsn.database or None, charset="utf8mb4",
                                          autocommit=True, connect_timeout=timeout, ssl=ssl_ctx,
                                          program_name="shardgate")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise BackendUnavailableError(f"cannot connect to {dsn.engine} at {dsn.address}"
                                      f"{'/' + dsn.database if dsn.database else ''}: {_describe(exc)}") from exc


async def close(conn: Connection) -> None:
    """Close politely (Terminate / COM_QUIT); never raises."""
    try:
        if _is_pg(conn):
            await conn.close(timeout=5)
        else:
            await asyncio.wait_for(conn.ensure_closed(), 5)
    except Exception:
        _abort(conn)


async def server_version(conn: Connection) -> str:
    """The server's version string, e.g. ``15.10 (Debian 15.10-0+deb12u1)`` or ``10.11.19-MariaDB-0+deb12u1``."""
    if _is_pg(conn):
        return str(conn.get_settings().server_version)
    # MariaDB prefixes "5.5.5-" in the handshake so old replication clients accept it; the real version follows.
    return str(conn.get_server_info()).removeprefix("5.5.5-")


async def execute(conn: Connection, sql: str) -> None:
    """Run one statement without parameters (admin and test helper; use the driver for bound values)."""
    if _is_pg(conn):
        await conn.execute(sql)
        return
    async with conn.cursor() as cur:
        await cur.execute(sql)


async def fetch_all(conn: Connection, sql: str) -> list[tuple[Any, ...]]:
    """Run one query without parameters and return its rows as tuples."""
    if _is_pg(conn):
        return [tuple(r) for r in await conn.fetch(sql)]
    async with conn.cursor() as cur:
        await cur.execute(sql)
        return [tuple(r) for r in await cur.fetchall()]


async def probe(dsn: DSN, timeout: float = 5.0) -> ProbeResult:
    """Health probe: never raises (except on cancellation); ``ok=False`` carries the reason."""
    start = time.perf_counter()
    conn: Connection | None = None
    try:
        async with asyncio.timeout(timeout):
            conn = await connect(dsn, timeout=timeout)
            version = await server_version(conn)
            await fetch_all(conn, "SELECT 1")
            result = ProbeResult(True, version, _ms_since(start))
            await close(conn)
            return result
    except BaseException as exc:
        if conn is not None:
            _abort(conn)  # no polite goodbye to a server that just failed us
        if isinstance(exc, BackendUnavailableError):
            return ProbeResult(False, None, _ms_since(start), exc.message)
        if isinstance(exc, Exception):  # includes TimeoutError from the outer bound
            return ProbeResult(False, None, _ms_since(start), f"{dsn.engine} at {dsn.address}: {_describe(exc)}")
        raise  # cancellation


def _is_pg(conn: Connection) -> bool:
    return type(conn).__module__.startswith("asyncpg")


def _abort(conn: Connection) -> None:
    try:
        if _is_pg(conn):
            conn.terminate()
        else:
            conn.close()
    except Exception:
        pass


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError | asyncio.TimeoutError) and not str(exc):
        text = "timed out"
    return text


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)
