"""MariaDB instances for tests and the demo."""
from __future__ import annotations

import contextlib
import itertools
import signal
import socket
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from shardgate.localdb.admin import _check_db_name
from shardgate.localdb.host import HOST, find_mariadb
from shardgate.localdb.server import LocalServer


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
