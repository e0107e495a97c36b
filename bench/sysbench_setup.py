"""Servers and router config for ``bench/sysbench.sh`` (run by hand, not a test).

    python bench/sysbench_setup.py servers DIR     start 2 MariaDB servers; write DIR/servers.json; stay up
                                                   until SIGTERM (then destroy them)
    python bench/sysbench_setup.py config DIR      write DIR/cluster.yaml: keyspace ``direct`` (unsharded, the
                                                   same database sysbench reads directly) and ``sharded``
                                                   (-80 on the first server, 80- on the second); user bench/bench
    python bench/sysbench_setup.py router DIR      the router for the benchmark: Gateway + MySQL listener on uvloop,
                                                   as ``router.serve`` runs them, but with backend pools of
                                                   POOL_SIZE (default 80) connections: sysbench's 64 threads each
                                                   hold a shard connection for their whole transaction, more than
                                                   the default pool of 10 (``router.serve`` has no pool option yet);
                                                   PASSTHROUGH=0 turns the single-shard fast path off (the
                                                   engine runs every statement); PROFILE=FILE writes a cProfile
                                                   (CPU time) of the router there at exit; writes DIR/ready.json
    python bench/sysbench_setup.py cpu PID         print the process's user+system CPU seconds (children too)
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def servers(directory: Path) -> None:
    from shardgate.localdb import LocalCluster

    cluster = LocalCluster(postgres=0, mysql=2, root_dir=str(directory / "db"))
    cluster.start()
    info = [{"host": s.host, "port": s.port, "user": s.user, "password": s.password} for s in cluster.mysql]
    for s in cluster.mysql:
        for name in ("sb_direct", "sb_shard"):
            s.create_database(name)
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
        return {"engine": "mysql", "host": s["host"], "port": s["port"], "database": database, "user": s["user"],
                "password_file": str(directory / f"pw{i}")}

    doc = {
        "users": [make_user_entry("bench", "bench", ["admin"], methods=["mysql_native_password"])],
        "keyspaces": {"direct": {"shards": {"0": shard(0, "sb_direct")}},
                      "sharded": {"shards": {"-80": shard(0, "sb_shard"), "80-": shard(1, "sb_shard")}}},
        "vschema": {"keyspaces": {"direct": {"sharded": False, "tables": {}},
                                  "sharded": {"sharded": True, "vindexes": {"hash": {"type": "hash"}},
                                              "tables": {}}}},
    }
    path = directory / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc))
    os.chmod(path, 0o600)


def router(directory: Path) -> None:
    import asyncio
    import logging

    import uvloop

    from router.backend.pool_config import PoolConfig
    from router.frontend.mysql.server import start_mysql_listener
    from router.gateway import Gateway
    from sharding.config import load_config

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("shardgate.frontend.mysql").setLevel(logging.INFO)

    async def run() -> None:
        config = load_config(directory / "cluster.yaml")
        gateway = Gateway(config, pool_config=PoolConfig(max_size=int(os.environ.get("POOL_SIZE", "80"))))
        await gateway.start()
        pools = PoolConfig(max_size=int(os.environ.get("POOL_SIZE", "80")))
        listener = await start_mysql_listener(gateway, config, host="127.0.0.1", port=0,
                                              passthrough=os.environ.get("PASSTHROUGH", "1") != "0",
                                              passthrough_pool=pools)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        (directory / "ready.json").write_text(json.dumps({"mysql": listener.port, "pid": os.getpid()}))
        await stop.wait()
        await listener.drain(5)
        await gateway.close()
        if listener.stats.internal_errors:
            print(f"{listener.stats.internal_errors} internal errors", file=sys.stderr)

    profile = os.environ.get("PROFILE")  # PROFILE=file: cProfile the router, stats written there at exit
    if not profile:
        uvloop.run(run())
        return
    import cProfile

    profiler = cProfile.Profile(time.process_time)  # CPU time: other processes share the cores
    profiler.enable()
    try:
        uvloop.run(run())
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


def cpu(pid: int) -> None:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
    print(f"{ticks / os.sysconf('SC_CLK_TCK'):.3f}")


if __name__ == "__main__":
    what, arg = sys.argv[1], sys.argv[2]
    if what == "servers":
        servers(Path(arg))
    elif what == "config":
        config(Path(arg))
    elif what == "router":
        router(Path(arg))
    else:
        cpu(int(arg))
