"""Real PostgreSQL and MariaDB servers from the installed binaries, for tests and for ``make demo``.

The asyncpg ``cluster.py`` model: each instance lives in its own temp dir (data, socket, pid and log files), listens
on a free port on 127.0.0.1 only, and is initialised once, then started, stopped, killed and restarted as often as a
test needs (failover tests), and finally destroyed. ``LocalCluster`` starts several instances in parallel.

Running as root (CI), PostgreSQL runs as the ``postgres`` OS user and MariaDB as ``mysql``; the process we start is
the server itself (no ``runuser``/``pg_ctl`` in between), so stopping it signals exactly the PID we started.
Servers run in their own session with no inherited descriptors. An ``atexit`` hook stops whatever is still running,
and ``reap_orphans()`` removes servers left behind by a process that died without running it (SIGKILL).

Logins: PostgreSQL trusts its own Unix socket and asks TCP clients for a SCRAM password (superuser ``postgres``);
MariaDB has ``root@127.0.0.1`` and the test user ``shardgate@'%'``, both with all privileges and the instance's
password. Passwords are random per instance unless given; ``instance.dsn`` (a ``sharding.db.DSN``) never prints it.
"""
from __future__ import annotations

import abc
import asyncio
import atexit
import contextlib
import itertools
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sharding import db
from sharding.errors import BackendUnavailableError

__all__ = ["BackendUnavailableError", "LocalCluster", "LocalServer", "MariaDBInstance", "PostgresInstance",
           "create_database", "default_root_dir", "drop_database", "find_mariadb", "find_postgres_bindir",
           "reap_orphans", "run_sql"]

HOST = "127.0.0.1"
PREFERRED_PG_MAJOR = 15
DEFAULT_STARTUP_TIMEOUT = 60.0  # bounded; a healthy instance needs well under 5 s
_STATE_FILE = "shardgate-localdb.json"  # owner pid + server pid, read by reap_orphans()
_DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_T = TypeVar("_T")


# --- finding binaries ---------------------------------------------------------------------------------------
def find_postgres_bindir() -> Path:
    """``$SHARDGATE_PG_BINDIR``, else ``/usr/lib/postgresql/15/bin`` (else the newest there), else ``PATH``."""
    env = os.environ.get("SHARDGATE_PG_BINDIR")
    if env:
        if _has_pg_server(Path(env)):
            return Path(env)
        raise BackendUnavailableError(f"SHARDGATE_PG_BINDIR={env} holds no initdb and postgres")
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True,
                      key=lambda p: (p.parent.name == str(PREFERRED_PG_MAJOR), _major(p.parent.name)))
    initdb = shutil.which("initdb")
    for bindir in [*versions, *([Path(initdb).resolve().parent] if initdb else [])]:
        if _has_pg_server(bindir):
            return bindir
    raise BackendUnavailableError(
        "PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or PATH: install "
        f"postgresql-{PREFERRED_PG_MAJOR} (scripts/bootstrap.sh does) or set SHARDGATE_PG_BINDIR")


def _has_pg_server(bindir: Path) -> bool:
    return (bindir / "initdb").is_file() and (bindir / "postgres").is_file()


def find_mariadb() -> tuple[Path, Path]:
    """(mariadbd, mariadb-install-db) from ``PATH`` plus the sbin directories."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/usr/bin", "/sbin"])
    server = shutil.which("mariadbd", path=search) or shutil.which("mysqld", path=search)
    install = shutil.which("mariadb-install-db", path=search) or shutil.which("mysql_install_db", path=search)
    missing = [name for name, found in (("mariadbd", server), ("mariadb-install-db", install)) if not found]
    if missing:
        raise BackendUnavailableError(
            f"MariaDB server binaries not found ({', '.join(missing)}): install mariadb-server "
            "(scripts/bootstrap.sh does)")
    return Path(server), Path(install)  # type: ignore[arg-type]


def _major(version: str) -> float:
    try:
        return float(version)
    except ValueError:
        return -1.0


# --- ports, users, processes --------------------------------------------------------------------------------
_PORT_LOCK = threading.Lock()
_PORTS_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 right now, never handed out twice by this process."""
    with _PORT_LOCK:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, 0))
                port = int(sock.getsockname()[1])
            if port not in _PORTS_HANDED_OUT:
                _PORTS_HANDED_OUT.add(port)
                return port
    raise BackendUnavailableError("no free TCP port on 127.0.0.1")


def default_root_dir() -> Path:
    """Where instance dirs go: ``$SHARDGATE_LOCALDB_DIR``, else ``/dev/shm`` when it is roomy, else the temp dir.

    Test servers are disposable, and on tmpfs initdb takes a quarter of the time it takes on disk.
    """
    env = os.environ.get("SHARDGATE_LOCALDB_DIR")
    if env:
        return Path(env)
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize >= _MIN_SHM_BYTES and os.access(shm, os.W_OK | os.X_OK):
            return shm
    except OSError:
        pass
    return Path(tempfile.gettempdir())


_MIN_SHM_BYTES = 2 << 30  # a container's default 64 MB /dev/shm is far too small


class _RunAs:
    """The OS user a server runs as when we are root; None-like (no switch) otherwise."""

    def __init__(self, user: str | None) -> None:
        self.user = user
        self.uid = self.gid = -1
        if user is not None:
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                raise BackendUnavailableError(
                    f"running as root needs the {user!r} OS user to run the server: scripts/bootstrap.sh creates it"
                ) from None
            self.uid, self.gid = entry.pw_uid, entry.pw_gid

    def popen_kwargs(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown_tree(self, root: Path) -> None:
        if self.user is None:
            return
        for path in [root, *root.rglob("*")]:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(path, self.uid, self.gid)

    def check_reachable(self, path: Path) -> None:
        """Every ancestor of ``path`` must let the server user through; a root-only TMPDIR would not."""
        if self.user is None:
            return
        for parent in path.resolve().parents:
            st = parent.stat()
            if not st.st_mode & stat.S_IXOTH and st.st_uid != self.uid:
                raise BackendUnavailableError(
                    f"the {self.user!r} OS user cannot enter {parent} (mode {stat.filemode(st.st_mode)}): "
                    "point TMPDIR or SHARDGATE_LOCALDB_DIR at a directory it can reach")


def _run_as_for(os_user: str) -> _RunAs:
    return _RunAs(os_user if os.geteuid() == 0 else None)


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, waiting for a slow init to reap it) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (PostgreSQL's backends make themselves group leaders, so killpg misses them)."""
    kids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry.name))
    return kids


def _copy_tree(src: Path, dst: Path) -> None:
    """``cp -a`` (owners, modes, several times faster than shutil.copytree on a thousand small files)."""
    done = subprocess.run(["cp", "-a", "--", str(src), str(dst)], capture_output=True, close_fds=True, check=False)
    if done.returncode != 0:
        raise BackendUnavailableError(f"copying {src} failed: {done.stderr.decode(errors='replace').strip()}")


def _run_async(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion on a private loop in a helper thread.

    Safe from sync code and from inside a running loop alike, and it never touches the caller's current loop
    (``asyncio.run`` in the main thread would reset the loop pytest-asyncio installed).
    """
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=runner, name="shardgate-localdb-admin", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


# --- registry for the atexit safety net ---------------------------------------------------------------------
_LIVE_LOCK = threading.Lock()
_LIVE: dict[int, LocalServer] = {}


def _register(server: LocalServer) -> None:
    with _LIVE_LOCK:
        _LIVE[id(server)] = server


def _unregister(server: LocalServer) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(id(server), None)


# Pristine data dirs by configuration (see LocalServer._init_from_template); removed at exit.
_TEMPLATES_LOCK = threading.Lock()
_TEMPLATE_LOCKS: dict[tuple[object, ...], threading.Lock] = {}
_TEMPLATES: dict[tuple[object, ...], Path] = {}


@atexit.register
def _cleanup_at_exit() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE.values())
    for server in servers:
        with contextlib.suppress(Exception):
            server.destroy(timeout=10.0)
    for template in _TEMPLATES.values():
        shutil.rmtree(template.parent, ignore_errors=True)


# --- one server -----------------------------------------------------------------------------------------------
class LocalServer(abc.ABC):
    """One server process in its own temp dir. Subclasses fill in init, command line and readiness."""

    engine: ClassVar[db.Engine]
    os_user: ClassVar[str]
    stop_signal: ClassVar[int] = signal.SIGTERM
    _names: ClassVar[Iterator[int]]

    def __init__(self, name: str | None = None, *, port: int | None = None, password: str | None = None,
                 root_dir: str | os.PathLike[str] | None = None,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT) -> None:
        self.name = name or f"{self.engine}{next(type(self)._names)}"
        self.host = HOST
        self.password = password if password is not None else secrets.token_urlsafe(16)
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None  # the last start(), init included
        self._port = port
        self._port_fixed = port is not None
        self._root = Path(root_dir) if root_dir else default_root_dir()
        self._base: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._run_as = _run_as_for(self.os_user)

    # -- what callers use -----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise BackendUnavailableError(f"{self.name} has no port before start()")
        return self._port

    @property
    @abc.abstractmethod
    def user(self) -> str: ...

    @property
    @abc.abstractmethod
    def database(self) -> str: ...

    @property
    def dsn(self) -> db.DSN:
        return db.DSN(engine=self.engine, host=self.host, port=self.port, database=self.database, user=self.user,
                      password=self.password)

    def dsn_for(self, database: str) -> db.DSN:
        return self.dsn.with_database(database)

    @property
    def base_dir(self) -> Path:
        if self._base is None:
            raise BackendUnavailableError(f"{self.name} is not initialised")
        return self._base

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / f"{self.engine}.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name} {self.host}:{self._port} {state}>"

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def init(self) -> None:
        """Create the temp dir and an empty data directory (once)."""
        with self._lock:
            if self._base is not None:
                return
            self._root.mkdir(parents=True, exist_ok=True)
            self._run_as.check_reachable(self._root)
            base = Path(tempfile.mkdtemp(prefix=f"shardgate-{self.engine}-", dir=self._root))
            self._base = base
            self._write_state(None)
            _register(self)
            try:
                self.log_path.touch()
                self._run_as.chown_tree(base)
                self._init_from_template()
                self._prepare_instance()
                self._run_as.chown_tree(base)
            except BaseException:
                self.destroy()
                raise

    def start(self, timeout: float | None = None) -> LocalServer:
        """Start (initialising first if needed) and return once the DSN user can log in.

        The first start may move to another port if the chosen one was taken meanwhile; a restart keeps its port.
        """
        with self._lock:
            if self.running:
                return self
            began = time.monotonic()
            limit = timeout or self.startup_timeout
            deadline = began + limit
            self.init()
            for attempt in itertools.count():
                if self._port is None:
                    self._port = free_port()
                try:
                    self._launch(deadline, limit)
                    break
                except _PortInUse:
                    if self._port_fixed or attempt >= 4:
                        raise BackendUnavailableError(
                            f"{self.name}: port {self._port} is in use; log tail:\n{self.log_tail()}") from None
                    self._port = None
            self._port_fixed = True
            self._after_start()
            self.startup_seconds = round(time.monotonic() - began, 3)
            return self

    def stop(self, timeout: float = 20.0) -> None:
        """Clean shutdown of the PID we started (fast mode for PostgreSQL); killed if it takes over ``timeout``."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(self.stop_signal)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._kill_now(proc)
            self._proc = None
            self._write_state(None)

    def kill(self) -> None:
        """Crash the server (SIGKILL to it and its children): what a failover test wants to simulate."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            self._kill_now(proc)
            self._proc = None
            self._write_state(None)

    def restart(self, timeout: float | None = None) -> LocalServer:
        self.stop()
        return self.start(timeout)

    def destroy(self, timeout: float = 20.0) -> None:
        """Stop and remove the temp dir; a later start() initialises a fresh, empty one."""
        with self._lock:
            self.stop(timeout)
            if self._base is not None:
                _remove_stale_pg_shm(self._base)
                shutil.rmtree(self._base, ignore_errors=True)
                self._base = None
            _unregister(self)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, BackendUnavailableError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def create_database(self, name: str) -> db.DSN:
        """Create database ``name`` if it does not exist; returns its DSN."""
        return create_database(self.dsn, name)

    def drop_database(self, name: str) -> None:
        drop_database(self.dsn, name)

    def execute(self, *statements: str) -> None:
        """Run admin statements as the DSN user (a superuser) over TCP, blocking until done."""
        run_sql(self.dsn, *statements)

    # -- subclass hooks -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _init_datadir(self) -> None:
        """Create ``data_dir`` (initdb, install-db): the slow part, shared through a template."""

    @abc.abstractmethod
    def _template_key(self) -> tuple[object, ...]:
        """Everything ``_init_datadir`` depends on: instances with equal keys get copies of one data dir."""

    def _prepare_instance(self) -> None:  # noqa: B027 (optional hook)
        """Per-instance files beside a (possibly copied) data dir."""

    @abc.abstractmethod
    def _command(self) -> list[str]: ...

    @abc.abstractmethod
    def _is_ready(self, proc: subprocess.Popen[bytes], new_log: str) -> bool: ...

    def _before_launch(self) -> None:  # noqa: B027 (optional hook)
        """Write per-start configuration (the port may have changed)."""

    def _on_ready(self) -> None:  # noqa: B027 (optional hook)
        """Runs when the server accepts connections, before the DSN's login is tried."""

    def _login_dsn(self) -> db.DSN:
        """What the readiness check logs in with."""
        return self.dsn

    def _after_start(self) -> None:  # noqa: B027 (optional hook)
        """Runs once the server accepts the login."""

    # -- internals ----------------------------------------------------------------------------------------------
    def _init_from_template(self) -> None:
        """initdb / install-db once per process and configuration, then copy: 4 instances cost about 1."""
        key = (type(self).__name__, *self._template_key())
        with _TEMPLATES_LOCK:
            lock = _TEMPLATE_LOCKS.setdefault(key, threading.Lock())
        with lock:
            template = _TEMPLATES.get(key)
            if template is None or not template.is_dir():
                self._init_datadir()
                holder = Path(tempfile.mkdtemp(prefix=f"shardgate-template-{self.engine}-", dir=self._root))
                (holder / _STATE_FILE).write_text(json.dumps({"owner_pid": os.getpid(), "server_pid": None}))
                _copy_tree(self.data_dir, holder / "data")
                _TEMPLATES[key] = holder / "data"
                return
        _copy_tree(template, self.data_dir)

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C", "TZ": "UTC",
                "HOME": str(self.base_dir)}

    def _run_tool(self, argv: list[str], *, as_server_user: bool = True, timeout: float = 120.0) -> None:
        """Run an init tool with output to the log; BackendUnavailableError with the log tail if it fails."""
        kwargs = self._run_as.popen_kwargs() if as_server_user else {}
        with open(self.log_path, "ab") as log:
            try:
                done = subprocess.run(argv, cwd=self.base_dir, env=self._env(), stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=subprocess.STDOUT, close_fds=True, timeout=timeout,
                                      check=False, **kwargs)
            except subprocess.TimeoutExpired:
                raise BackendUnavailableError(f"{self.name}: {Path(argv[0]).name} timed out; log tail:\n"
                                              f"{self.log_tail()}") from None
        if done.returncode != 0:
            raise BackendUnavailableError(f"{self.name}: {Path(argv[0]).name} failed with exit code "
                                          f"{done.returncode}; log tail:\n{self.log_tail()}")

    def _launch(self, deadline: float, limit: float) -> None:
        self._before_launch()
        log_offset = self.log_path.stat().st_size
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(self._command(), cwd=self.base_dir, env=self._env(), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, close_fds=True, start_new_session=True,
                                    **self._run_as.popen_kwargs())
        self._proc = proc
        self._write_state(proc.pid)
        try:
            self._wait_ready(proc, log_offset, deadline, limit)
        except BaseException:
            self._kill_now(proc)
            self._proc = None
            self._write_state(None)
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_offset: int, deadline: float, limit: float) -> None:
        while True:
            new_log = self._read_log_from(log_offset)
            if proc.poll() is not None:
                if "Address already in use" in new_log:
                    raise _PortInUse
                raise BackendUnavailableError(f"{self.name}: server exited with code {proc.returncode} while "
                                              f"starting; log tail:\n{self.log_tail()}")
            if self._is_ready(proc, new_log):
                break
            if time.monotonic() > deadline:
                raise BackendUnavailableError(f"{self.name}: not accepting connections after "
                                              f"{limit:g} s; log tail:\n{self.log_tail()}")
            time.sleep(0.02)
        self._on_ready()
        # Ready for connections; now prove the DSN's user and password work (users are made by init scripts).
        # Once the server says it is ready a refused login will not heal: give up after a few seconds.
        last: db.ProbeResult | None = None
        login_deadline = min(deadline, time.monotonic() + 5.0)
        while time.monotonic() < login_deadline and proc.poll() is None:
            last = _run_async(lambda: db.probe(self._login_dsn(), timeout=max(1.0, deadline - time.monotonic())))
            if last.ok:
                return
            time.sleep(0.05)
        raise BackendUnavailableError(f"{self.name}: server started but login failed: "
                                      f"{last.error if last else 'server exited'}; log tail:\n{self.log_tail()}")

    def _read_log_from(self, offset: int) -> str:
        with open(self.log_path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")

    def _kill_now(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            victims = [proc.pid, *_children_of(proc.pid)]
            for pid in victims:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            # Orphaned children (not ours to wait for) must be gone before a restart reuses the data dir.
            end = time.monotonic() + 10
            while any(_pid_alive(pid) for pid in victims[1:]) and time.monotonic() < end:
                time.sleep(0.01)
        else:
            proc.wait()

    def _write_state(self, server_pid: int | None) -> None:
        if self._base is None or not self._base.exists():
            return
        state = {"owner_pid": os.getpid(), "server_pid": server_pid, "engine": self.engine, "name": self.name}
        (self._base / _STATE_FILE).write_text(json.dumps(state))


class _PortInUse(Exception):
    pass


# --- admin statements, for local and already-running servers alike ------------------------------------------------
def run_sql(dsn: db.DSN, *statements: str) -> None:
    """Run statements on one connection, blocking (from sync code or from inside a running loop)."""

    async def run() -> None:
        conn = await db.connect(dsn)
        try:
            for sql in statements:
                await db.execute(conn, sql)
        finally:
            await db.close(conn)

    _run_async(run)


def create_database(dsn: db.DSN, name: str) -> db.DSN:
    """Create database ``name`` on the server ``dsn`` names, unless it exists; returns the DSN for it."""
    _check_db_name(name)

    async def run() -> None:
        # Log in to a database that surely exists: the DSN's own may be the one being created.
        conn = await db.connect(dsn.with_database("postgres" if dsn.engine == "postgres" else ""))
        try:
            if dsn.engine == "mysql":
                await db.execute(conn, f"CREATE DATABASE IF NOT EXISTS `{name}`")
            elif not await db.fetch_all(conn, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
                await db.execute(conn, f'CREATE DATABASE "{name}"')
        finally:
            await db.close(conn)

    _run_async(run)
    return dsn.with_database(name)


def drop_database(dsn: db.DSN, name: str) -> None:
    """Drop database ``name`` if it exists (PostgreSQL: disconnecting its sessions first)."""
    _check_db_name(name)
    if dsn.engine == "mysql":
        # A session (or a prepared XA transaction) still holding locks there would make DROP wait for long.
        run_sql(dsn.with_database(""), "SET SESSION lock_wait_timeout = 10, innodb_lock_wait_timeout = 10",
                f"DROP DATABASE IF EXISTS `{name}`")
    else:
        run_sql(dsn.with_database("postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check_db_name(name: str) -> None:
    if not _DB_NAME.match(name):
        raise ValueError(f"database name {name!r}: use letters, digits and '_' (at most 63)")


# --- PostgreSQL ---------------------------------------------------------------------------------------------
class PostgresInstance(LocalServer):
    """PostgreSQL from ``initdb`` + ``postgres`` (run directly, as asyncpg's cluster.py does).

    UTF8 with the C locale, ``wal_level=logical`` (replication slots and senders available),
    ``max_prepared_transactions=64`` for two-phase commit, no fsync (a killed *process* loses nothing, a crashed
    machine may), ``wal_writer_delay=10ms`` so logical decoding sees changes quickly.
    """

    engine = "postgres"
    os_user = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: SIGTERM ("smart") would wait for every client to leave
    _names = itertools.count()

    SETTINGS: ClassVar[dict[str, str]] = {
        "max_connections": "200",
        "shared_buffers": "32MB",
        "wal_level": "logical",
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "max_prepared_transactions": "64",
        "wal_writer_delay": "10ms",
        # fsync off: nothing reaches the disk on purpose. synchronous_commit stays on: with fsync off it costs one
        # write() per commit (measured: no slower), and a killed server then keeps every commit it acknowledged
        # (failover tests kill servers) and logical decoding sees a commit at once.
        "fsync": "off",
        "synchronous_commit": "on",
        "full_page_writes": "off",
        "timezone": "UTC",
        "log_timezone": "UTC",
        "lc_messages": "C",
        "log_line_prefix": "%m [%p] %q%u@%d ",
        # Segments as files in the data dir rather than in /dev/shm: nothing outlives the temp dir after a kill.
        "dynamic_shared_memory_type": "mmap",
    }

    def __init__(self, name: str | None = None, *, user: str = "postgres", database: str = "postgres",
                 settings: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._user = user
        self._database = database
        self.settings = {**self.SETTINGS, **(settings or {})}
        self._bindir: Path | None = None
        self._password_set = False

    @property
    def user(self) -> str:
        return self._user

    @property
    def database(self) -> str:
        return self._database

    def _template_key(self) -> tuple[object, ...]:
        self._bindir = self._bindir or find_postgres_bindir()
        return (str(self._bindir), self._user)

    def _init_datadir(self) -> None:
        # No password yet: each instance sets its own through the trusted socket (_on_ready), so all share a template.
        self._bindir = self._bindir or find_postgres_bindir()
        self._run_tool([str(self._bindir / "initdb"), "-D", str(self.data_dir), "-E", "UTF8", "--locale=C",
                        "-U", self._user, "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
        (self.data_dir / "pg_hba.conf").write_text(
            "# shardgate.localdb: the Unix socket (in this temp dir) is trusted; TCP needs the password.\n"
            "local all all trust\n"
            "local replication all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host replication all 127.0.0.1/32 scram-sha-256\n")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\ninclude_if_exists = 'shardgate.conf'\n")

    def _before_launch(self) -> None:
        settings = {**self.settings, "listen_addresses": HOST, "port": str(self.port),
                    "unix_socket_directories": str(self.base_dir)}
        lines = [f"{key} = '{value.replace(chr(39), chr(39) * 2)}'" for key, value in settings.items()]
        conf = self.data_dir / "shardgate.conf"
        conf.write_text("\n".join(lines) + "\n")
        self._run_as.chown_tree(conf)

    def _command(self) -> list[str]:
        bindir = self._bindir or find_postgres_bindir()
        return [str(bindir / "postgres"), "-D", str(self.data_dir)]

    def _is_ready(self, proc: subprocess.Popen[bytes], new_log: str) -> bool:
        # postmaster.pid line 8 says "ready" once connections are accepted (what pg_ctl -w waits for).
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(proc.pid) and lines[7].strip() == "ready"

    def _login_dsn(self) -> db.DSN:
        return self.dsn.with_database("postgres")  # the DSN's own database may not exist yet

    def _on_ready(self) -> None:
        if self._password_set:
            return
        # asyncpg takes a directory as host for the Unix socket, where pg_hba.conf trusts local users.
        socket_dsn = db.DSN(engine="postgres", host=str(self.base_dir), port=self.port, user=self._user,
                            database="postgres")
        password = self.password.replace("'", "''")
        run_sql(socket_dsn, f"ALTER ROLE \"{self._user}\" PASSWORD '{password}'")
        self._password_set = True

    def _after_start(self) -> None:
        if self._database != "postgres":
            create_database(self.dsn, self._database)


# --- MariaDB --------------------------------------------------------------------------------------------------
class MariaDBInstance(LocalServer):
    """MariaDB from ``mariadb-install-db`` + ``mariadbd --no-defaults``.

    Row binlog with GTIDs (``gtid_strict_mode``, ``log_slave_updates``), a ``server_id`` unique in this process,
    utf8mb4 (``--no-defaults`` would otherwise start in latin1), small InnoDB files and relaxed flushing for speed.
    """

    engine = "mysql"
    os_user = "mysql"
    stop_signal = signal.SIGTERM
    _names = itertools.count()
    _server_ids = itertools.count(1)
    _server_id_lock = threading.Lock()

    TEST_USER = "shardgate"
    OPTIONS: ClassVar[dict[str, str]] = {
        "bind-address": HOST,
        "skip-name-resolve": "1",
        "log-bin": "mysql-bin",
        "relay-log": "relay-bin",
        "binlog-format": "ROW",
        "binlog-row-image": "FULL",
        "gtid-strict-mode": "1",
        "log-slave-updates": "1",
        "sync-binlog": "0",
        "character-set-server": "utf8mb4",
        "collation-server": "utf8mb4_general_ci",
        "default-time-zone": "+00:00",
        "max-connections": "200",
        "innodb-buffer-pool-size": "64M",
        "innodb-log-file-size": "16M",
        "innodb-flush-log-at-trx-commit": "2",
        "innodb-doublewrite": "0",
        "innodb-use-native-aio": "0",  # io_setup() fails when many instances share a container's AIO limit
        "max-allowed-packet": "64M",
    }
    # install-db runs a bootstrap server: give it the same InnoDB file sizes.
    _INSTALL_OPTIONS = ("innodb-log-file-size", "innodb-buffer-pool-size", "character-set-server",
                        "collation-server")

    def __init__(self, name: str | None = None, *, server_id: int | None = None, user: str = TEST_USER,
                 database: str = "shardgate", options: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        _check_db_name(database)
        if server_id is None:
            with self._server_id_lock:
                server_id = next(self._server_ids)
        self.server_id = server_id
        self._user = user
        self._database = database
        self.options = {**self.OPTIONS, **(options or {})}
        self._binaries: tuple[Path, Path] | None = None

    @property
    def user(self) -> str:
        return self._user

    @property
    def database(self) -> str:
        return self._database

    @property
    def socket_path(self) -> Path:
        return self.base_dir / "mysqld.sock"

    def _template_key(self) -> tuple[object, ...]:
        self._binaries = self._binaries or find_mariadb()
        return (*map(str, self._binaries), *(self.options[key] for key in self._INSTALL_OPTIONS))

    def _init_datadir(self) -> None:
        self._binaries = self._binaries or find_mariadb()
        _, install = self._binaries
        argv = [str(install), "--no-defaults", f"--datadir={self.data_dir}", "--auth-root-authentication-method=normal",
                "--skip-test-db", "--skip-name-resolve",
                *(f"--{key}={self.options[key]}" for key in self._INSTALL_OPTIONS)]
        if self._run_as.user is not None:
            argv.insert(2, f"--user={self._run_as.user}")
        self._run_tool(argv, as_server_user=False)  # install-db switches user itself (and chowns the datadir)

    def _prepare_instance(self) -> None:
        (self.base_dir / "tmp").mkdir(exist_ok=True)
        password = _mysql_string(self.password)
        user = _mysql_string(self._user)
        # Runs at every start, before "ready for connections"; kept out of the binlog so GTIDs start clean.
        (self.base_dir / "init.sql").write_text("\n".join([
            "SET sql_log_bin = 0;",
            f"ALTER USER 'root'@'localhost' IDENTIFIED BY {password};",
            f"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY {password};",
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;",
            f"CREATE USER IF NOT EXISTS {user}@'%' IDENTIFIED BY {password};",
            f"GRANT ALL PRIVILEGES ON *.* TO {user}@'%' WITH GRANT OPTION;",
            f"CREATE DATABASE IF NOT EXISTS `{self._database}`;",
            "",
        ]))

    def _command(self) -> list[str]:
        server, _ = self._binaries or find_mariadb()
        base = self.base_dir
        argv = [str(server), "--no-defaults", f"--datadir={self.data_dir}", f"--port={self.port}",
                f"--socket={self.socket_path}", f"--pid-file={base / 'mysqld.pid'}", f"--log-error={self.log_path}",
                f"--tmpdir={base / 'tmp'}", f"--init-file={base / 'init.sql'}", f"--server-id={self.server_id}",
                *(f"--{key}={value}" for key, value in self.options.items())]
        if self._run_as.user is not None:
            argv.insert(2, f"--user={self._run_as.user}")
        return argv

    def _is_ready(self, proc: subprocess.Popen[bytes], new_log: str) -> bool:
        if "ready for connections" not in new_log:
            return False
        with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=1.0):
            return True
        return False


def _mysql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


# --- several servers ------------------------------------------------------------------------------------------
class LocalCluster:
    """N PostgreSQL and M MariaDB instances, started in parallel and stopped together.

    ``with LocalCluster(postgres=2, mysql=2) as cluster: cluster.postgres[0].dsn``
    """

    def __init__(self, postgres: int = 2, mysql: int = 2, *, root_dir: str | os.PathLike[str] | None = None,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT, password: str | None = None) -> None:
        common: dict[str, Any] = {"root_dir": root_dir, "startup_timeout": startup_timeout, "password": password}
        self.root_dir = root_dir
        self.postgres: list[PostgresInstance] = [PostgresInstance(**common) for _ in range(postgres)]
        self.mysql: list[MariaDBInstance] = [MariaDBInstance(**common) for _ in range(mysql)]

    @property
    def servers(self) -> list[LocalServer]:
        return [*self.postgres, *self.mysql]

    def start(self) -> LocalCluster:
        """Start every instance concurrently; on any failure stop them all and raise one error naming each."""
        servers = self.servers
        if not servers:
            return self
        reap_orphans(self.root_dir)
        with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="shardgate-localdb") as pool:
            futures = [(server, pool.submit(server.start)) for server in servers]
            errors = [(server, future.exception()) for server, future in futures]
        failed = [(server, exc) for server, exc in errors if exc is not None]
        if failed:
            self.destroy()
            by_message: dict[str, list[str]] = {}
            for server, exc in failed:  # a missing binary fails every instance the same way: say it once
                by_message.setdefault(str(exc).removeprefix(f"{server.name}: "), []).append(server.name)
            raise BackendUnavailableError("; ".join(f"{', '.join(names)}: {message}"
                                                    for message, names in by_message.items())) from failed[0][1]
        return self

    def stop(self) -> None:
        self._each(lambda server: server.stop())

    def destroy(self) -> None:
        self._each(lambda server: server.destroy())

    def _each(self, action: Callable[[LocalServer], None]) -> None:
        servers = self.servers
        if servers:
            with ThreadPoolExecutor(max_workers=len(servers)) as pool:
                list(pool.map(action, servers))

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()


# --- leftovers of processes that died without cleaning up ------------------------------------------------------
def reap_orphans(root_dir: str | os.PathLike[str] | None = None) -> int:
    """Stop servers whose owning process is gone, and remove their temp dirs. Returns how many dirs were removed.

    Only our own temp dirs are looked at, and a server PID is signalled only while its command line still names
    that dir, so a recycled PID is never touched.
    """
    root = Path(root_dir) if root_dir else default_root_dir()
    removed = 0
    for base in root.glob("shardgate-*-*"):
        try:
            state = json.loads((base / _STATE_FILE).read_text())
            owner, server = int(state["owner_pid"]), state.get("server_pid")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if owner == os.getpid() or _pid_alive(owner):
            continue
        if server and _cmdline_mentions(int(server), base):
            _stop_foreign(int(server), signal.SIGINT if state.get("engine") == "postgres" else signal.SIGTERM)
        _remove_stale_pg_shm(base)
        shutil.rmtree(base, ignore_errors=True)
        removed += 1
    return removed


def _remove_stale_pg_shm(base: Path) -> None:
    """Remove the SysV interlock segment of a postmaster that was killed (a clean stop removes its own).

    ``postmaster.pid`` outlives a killed server; its line 7 is "key shmid". The segment is removed only when
    ``ipcs`` shows the same key and id with nothing attached.
    """
    try:
        fields = (base / "data" / "postmaster.pid").read_text().splitlines()[6].split()
        key, shmid = int(fields[0]), fields[1]
        listing = subprocess.run(["ipcs", "-m"], capture_output=True, text=True, check=False, timeout=10).stdout
    except (OSError, IndexError, ValueError, subprocess.SubprocessError):
        return
    for line in listing.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[1] == shmid and cols[0].startswith("0x") and int(cols[0], 16) == key \
                and cols[5] == "0":
            subprocess.run(["ipcrm", "-m", shmid], capture_output=True, check=False, timeout=10)


def _cmdline_mentions(pid: int, base: Path) -> bool:
    try:
        return str(base).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop_foreign(pid: int, sig: int, timeout: float = 10.0) -> None:
    children = _children_of(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
    end = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    for victim in [pid, *children]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(victim, signal.SIGKILL)
