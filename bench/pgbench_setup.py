"""Servers, PgBouncer and router configs for ``bench/pgbench.sh`` (run by hand, not a test).

    python bench/pgbench_setup.py servers DIR     start 2 PostgreSQL servers (databases bench, shard_a on the first,
                                                  shard_b on the second); write DIR/servers.json; stay up until
                                                  SIGTERM, then destroy them
    python bench/pgbench_setup.py config DIR      write DIR/cluster.yaml (keyspace ``direct``: unsharded, the same
                                                  database pgbench reads directly; keyspace ``sharded``: -80 on the
                                                  first server, 80- on the second; user bench/bench) and
                                                  DIR/pgbouncer.ini + DIR/userlist.txt (transaction pooling)
    python bench/pgbench_setup.py cpu PID         the process's user+system CPU seconds (children included)
    python bench/pgbench_setup.py p95 PREFIX      the 95th percentile latency (ms) of pgbench's per-transaction
                                                  logs PREFIX.*
"""
from __future__ import annotations

import glob
import json
import os
import signal
import sys
import time
from pathlib import Path


def servers(directory: Path) -> None:
    from shardgate.localdb import LocalCluster

    cluster = LocalCluster(postgres=2, mysql=0, root_dir=str(directory / "db"))
    cluster.start()
    info = []
    for i, s in enumerate(cluster.postgres):
        for name in (("bench", "shard_a") if i == 0 else ("shard_b",)):
            s.create_database(name)
        info.append({"host": s.host, "port": s.port, "user": s.user, "password": s.password,
                     "socket_dir": str(getattr(s, "socket_dir", ""))})
    (directory / "servers.json").write_text(json.dumps(info))

    def stop(*_: object) -> None:
        cluster.destroy()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        time.sleep(3600)


def config(directory: Path) -> None:
    import yaml

    from sharding.auth import make_user_entry

    info = json.loads((directory / "servers.json").read_text())
    for i, s in enumerate(info):
        (directory / f"pw{i}").write_text(s["password"])
        os.chmod(directory / f"pw{i}", 0o600)

    def shard(i: int, database: str) -> dict[str, object]:
        s = info[i]
        return {"engine": "postgres", "host": s["host"], "port": s["port"], "database": database, "user": s["user"],
                "password_file": str(directory / f"pw{i}")}

    doc = {
        "users": [make_user_entry("bench", "bench", roles=["admin"], methods=["scram-sha-256"])],
        "keyspaces": {"direct": {"shards": {"0": shard(0, "bench")}},
                      "sharded": {"shards": {"-80": shard(0, "shard_a"), "80-": shard(1, "shard_b")}}},
        "vschema": {"keyspaces": {"direct": {"sharded": False, "tables": {}},
                                  "sharded": {"sharded": True, "vindexes": {"hash": {"type": "hash"}}, "tables": {}}}},
        # workers share the VSchema (and its DDL) through this store
        "topology": {"store": "file", "path": str(directory / "topo"), "poll_interval": 0.2},
        # CONSOLIDATION=0 measures the router without query consolidation (on by default)
        "consolidation": {"enabled": os.environ.get("CONSOLIDATION", "1") != "0"},
    }
    path = directory / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc))
    os.chmod(path, 0o600)
    s = info[0]
    (directory / "userlist.txt").write_text(f'"bench" "bench"\n"{s["user"]}" "{s["password"]}"\n')
    (directory / "pgbouncer.ini").write_text(f"""[databases]
bench = host={s['host']} port={s['port']} dbname=bench user={s['user']} password={s['password']}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {os.environ.get('PGBOUNCER_PORT', '16432')}
unix_socket_dir =
auth_type = plain
auth_file = {directory / 'userlist.txt'}
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
logfile = {directory / 'pgbouncer.log'}
pidfile = {directory / 'pgbouncer.pid'}
""")
    for name in ("userlist.txt", "pgbouncer.ini"):
        os.chmod(directory / name, 0o644)


def cpu(pid: int) -> None:
    """CPU seconds of the router: the process and its live worker processes (``--workers N``)."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent pid
            ticks += sum(int(v) for v in fields[11:13])  # utime stime
    print(f"{ticks / os.sysconf('SC_CLK_TCK'):.2f}")


def p95(prefix: str) -> None:
    latencies = []
    for path in glob.glob(prefix + "*"):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    latencies.append(int(parts[2]))
    if not latencies:
        print("nan")
        return
    latencies.sort()
    print(f"{latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))] / 1000:.3f}")


if __name__ == "__main__":
    command, arg = sys.argv[1], sys.argv[2]
    {"servers": lambda: servers(Path(arg)), "config": lambda: config(Path(arg)), "cpu": lambda: cpu(int(arg)),
     "p95": lambda: p95(arg)}[command]()
