"""``LocalServer``: one server process in its own temp dir (init from a template, start, stop, kill, destroy)."""
from __future__ import annotations

import abc
import atexit
import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from shardgate.localdb.admin import _run_async, create_database, drop_database, run_sql
from shardgate.localdb.host import (
    _STATE_FILE,
    DEFAULT_STARTUP_TIMEOUT,
    HOST,
    ToolAborted,
    _children_of,
    _copy_tree,
    _pid_alive,
    _run_as_for,
    default_root_dir,
    free_port,
    run_tool,
)
from shardgate.localdb.orphans import _remove_stale_pg_shm
from sharding import db
from sharding.errors import BackendUnavailableError

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
        self._abort = threading.Event()  # set by abort(): a start() in another thread gives up
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
            self._check_abort()
            if self.running:
                return self
            began = time.monotonic()
            limit = timeout or self.startup_timeout
            deadline = began + limit
            self.init()
            self._check_abort()
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

    def abort(self) -> None:
        """Make a ``start()`` running in another thread give up within a poll interval (Ctrl-C while starting);
        the caller then destroys the server. Cleared by ``destroy()``."""
        self._abort.set()

    def _check_abort(self) -> None:
        if self._abort.is_set():
            raise BackendUnavailableError(f"{self.name}: start aborted")

    def destroy(self, timeout: float = 20.0) -> None:
        """Stop and remove the temp dir; a later start() initialises a fresh, empty one."""
        with self._lock:
            self.stop(timeout)
            if self._base is not None:
                _remove_stale_pg_shm(self._base)
                shutil.rmtree(self._base, ignore_errors=True)
                self._base = None
            _unregister(self)
            self._abort.clear()

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
            self._check_abort()  # another instance's init was aborted while this one waited for it
            template = _TEMPLATES.get(key)
            if template is None or not template.is_dir():
                self._init_datadir()
                holder = Path(tempfile.mkdtemp(prefix=f"shardgate-template-{self.engine}-", dir=self._root))
                (holder / _STATE_FILE).write_text(json.dumps({"owner_pid": os.getpid(), "server_pid": None}))
                try:
                    _copy_tree(self.data_dir, holder / "data", self._abort)
                except BaseException:
                    shutil.rmtree(holder, ignore_errors=True)
                    raise
                _TEMPLATES[key] = holder / "data"
                return
        _copy_tree(template, self.data_dir, self._abort)

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C", "TZ": "UTC",
                "HOME": str(self.base_dir)}

    def _run_tool(self, argv: list[str], *, as_server_user: bool = True, timeout: float = 120.0) -> None:
        """Run an init tool with output to the log; BackendUnavailableError with the log tail if it fails."""
        kwargs = self._run_as.popen_kwargs() if as_server_user else {}
        with open(self.log_path, "ab") as log:
            try:
                code = run_tool(argv, timeout=timeout, abort=self._abort, cwd=self.base_dir, env=self._env(),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **kwargs)
            except subprocess.TimeoutExpired:
                raise BackendUnavailableError(f"{self.name}: {Path(argv[0]).name} timed out; log tail:\n"
                                              f"{self.log_tail()}") from None
            except ToolAborted:
                raise BackendUnavailableError(f"{self.name}: start aborted") from None
        if code != 0:
            raise BackendUnavailableError(f"{self.name}: {Path(argv[0]).name} failed with exit code "
                                          f"{code}; log tail:\n{self.log_tail()}")

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
            self._check_abort()
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
            self._check_abort()
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
