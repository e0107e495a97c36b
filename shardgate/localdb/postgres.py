"""PostgreSQL instances for tests and the demo."""
from __future__ import annotations

import itertools
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from shardgate.localdb.admin import create_database, run_sql
from shardgate.localdb.host import HOST, find_postgres_bindir
from shardgate.localdb.server import LocalServer
from sharding import db


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
