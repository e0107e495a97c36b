"""Where the server binaries are, free ports, the OS user a server runs as, and process helpers."""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sharding.errors import BackendUnavailableError

HOST = "127.0.0.1"
PREFERRED_PG_MAJOR = 15
DEFAULT_STARTUP_TIMEOUT = 60.0  # bounded; a healthy instance needs well under 5 s
_STATE_FILE = "shardgate-localdb.json"  # owner pid + server pid, read by reap_orphans()


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


class ToolAborted(Exception):
    """``run_tool`` killed its command because its abort event was set."""


def run_tool(argv: list[str], *, timeout: float, abort: threading.Event | None = None, **popen: Any) -> int:
    """Run a command to completion and return its exit code. On timeout (``subprocess.TimeoutExpired``) or once
    ``abort`` is set (``ToolAborted``) the command is killed with its whole process group (initdb and install-db
    start a bootstrap server of their own), so a Ctrl-C during a slow init does not wait for it."""
    proc = subprocess.Popen(argv, close_fds=True, start_new_session=True, **popen)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return proc.wait(0.05)
            if abort is not None and abort.is_set():
                raise ToolAborted(Path(argv[0]).name)
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(argv, timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def _copy_tree(src: Path, dst: Path, abort: threading.Event | None = None) -> None:
    """``cp -a`` (owners, modes, several times faster than shutil.copytree on a thousand small files)."""
    with tempfile.TemporaryFile() as err:
        code = run_tool(["cp", "-a", "--", str(src), str(dst)], timeout=300, abort=abort, stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=err)
        if code != 0:
            err.seek(0)
            raise BackendUnavailableError(f"copying {src} failed: {err.read().decode(errors='replace').strip()}")
