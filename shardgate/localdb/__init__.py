"""Real PostgreSQL and MariaDB servers from the installed binaries, for tests and for ``make demo``.

Modules: ``host`` (binaries, ports, OS users, processes), ``server`` (``LocalServer``), ``postgres`` and ``mariadb``
(the two kinds), ``cluster`` (``LocalCluster``), ``admin`` (``run_sql``, databases), ``orphans`` (``reap_orphans``).

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

from shardgate.localdb.admin import create_database, drop_database, run_sql
from shardgate.localdb.cluster import LocalCluster
from shardgate.localdb.host import default_root_dir, find_mariadb, find_postgres_bindir, free_port
from shardgate.localdb.mariadb import MariaDBInstance
from shardgate.localdb.orphans import reap_orphans
from shardgate.localdb.postgres import PostgresInstance
from shardgate.localdb.server import LocalServer
from sharding.errors import BackendUnavailableError

__all__ = ["BackendUnavailableError", "LocalCluster", "LocalServer", "MariaDBInstance", "PostgresInstance",
           "create_database", "default_root_dir", "drop_database", "find_mariadb", "find_postgres_bindir",
           "free_port", "reap_orphans", "run_sql"]
