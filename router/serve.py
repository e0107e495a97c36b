"""``shardgate serve --config FILE``: the router process.

Loads the cluster config, starts the ``Gateway`` (snapshot, pools, planner), and listens for PostgreSQL clients
(``listeners.postgres``, default 127.0.0.1:15432) and, when the MySQL frontend is installed, MySQL clients
(``listeners.mysql``, default 127.0.0.1:15306). Runs on uvloop.

- SIGTERM / SIGINT drain: the listeners close, idle sessions end at once, busy ones when their statement or
  transaction ends (``--drain-timeout``, default 30 s), then the pools close.
- ``--workers N`` forks N worker processes that share the ports with SO_REUSEPORT, each with its own gateway.
  A PostgreSQL cancel request reaches the worker holding the session: the BackendKeyData process id names the
  worker, and workers forward cancel requests to each other over Unix sockets in a private run directory.
- SIGHUP (or the admin statement ``RELOAD``) re-reads the config file and applies users, ACLs, query rules, the
  VSchema and backends without dropping connections (``router.admin_reload``); a bad file changes nothing and its
  problems are logged. With several workers the parent passes SIGHUP on to each.
- ``--hba FILE``: ``pg_hba.conf``-style rules (``router.frontend.postgres.auth``) for PostgreSQL logins.
- ``--ready-file FILE``: written (JSON: ports, pid) once every listener accepts connections; tests wait on it.
- ``listeners.metrics`` / ``--metrics-listen HOST:PORT``: HTTP ``/metrics``, ``/ready``, ``/live``
  (``router.http_endpoints``). With ``--workers N`` worker ``i`` serves its own metrics on port + ``i`` (port 0:
  a free port each); the ready file lists them under ``metrics``.
- Logs are JSON lines by default (``--log-format text`` for plain lines; ``router.logs``); statements appear by
  fingerprint only (``router.activity``).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "main", "serve"]

log = logging.getLogger("shardgate.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the cluster config file (YAML)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes sharing the ports (default 1)")
    parser.add_argument("--pg-listen", metavar="HOST:PORT", help="PostgreSQL listener (overrides the config)")
    parser.add_argument("--mysql-listen", metavar="HOST:PORT", help="MySQL listener (overrides the config)")
    parser.add_argument("--no-mysql", action="store_true", help="do not start the MySQL listener")
    parser.add_argument("--hba", metavar="FILE", help="pg_hba.conf-style authentication rules for PostgreSQL")
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="seconds busy sessions get on SIGTERM")
    parser.add_argument("--max-message-size", type=int, default=None, help="largest PostgreSQL message (bytes)")
    parser.add_argument("--no-passthrough", action="store_true",
                        help="run every statement through the engine (no single-shard byte forwarding)")
    parser.add_argument("--pool-size", type=int, default=None,
                        help="backend connections per shard and role, at most (the pool's default otherwise)")
    parser.add_argument("--topology", action="store_true", help="follow the topology store the config names")
    parser.add_argument("--twopc-dir", help="decision log directory for transaction_mode twopc")
    parser.add_argument("--ready-file", help="write the listening ports here (JSON) once serving")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="json", choices=["json", "text"],
                        help="one JSON object per log line (default), or plain text")
    parser.add_argument("--metrics-listen", metavar="HOST:PORT",
                        help="HTTP port of /metrics, /ready and /live (overrides listeners.metrics)")


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(args: argparse.Namespace) -> int:
    from router.logs import configure

    configure(args.log_level, getattr(args, "log_format", "json"))
    from router.config_sections import load_config

    config = load_config(args.config)
    for warning in config.warnings:
        log.warning("%s", warning)
    hba = None
    if args.hba:
        from router.frontend.postgres.auth import parse_hba

        hba = parse_hba(Path(args.hba).read_text(encoding="utf-8"), args.hba)
    pg_addr = _address(args.pg_listen) if args.pg_listen else _listen(config, "postgres", "127.0.0.1:15432")
    my_addr: tuple[str, int] | None = (_address(args.mysql_listen) if args.mysql_listen
                                         else _listen(config, "mysql", "127.0.0.1:15306"))
    if args.no_mysql or not _mysql_available():
        my_addr = None
    workers = max(1, int(args.workers))
    if workers == 1:
        return _run_worker(args, config, hba, pg_addr, my_addr, 0, 1, None, args.ready_file)
    return _run_workers(args, config, hba, pg_addr, my_addr, workers)


def _metrics_address(args: argparse.Namespace | None, config: Any) -> tuple[str, int] | None:
    """The HTTP endpoints' address: ``--metrics-listen``, else ``listeners.metrics``; None: no HTTP port."""
    text = getattr(args, "metrics_listen", None) if args is not None else None
    if text:
        return _address(text)
    addr = getattr(getattr(config, "listeners", None), "metrics", None)
    return None if addr is None else (str(addr.host), int(addr.port))


def _listen(config: Any, name: str, default: str) -> tuple[str, int]:
    addr = getattr(config.listeners, name, None)
    if addr is None:
        return _address(default)
    return str(addr.host), int(addr.port)


def _mysql_available() -> bool:
    try:
        from router.frontend.mysql import server  # noqa: F401
    except ImportError:
        return False
    return True


def _reserve(addr: tuple[str, int] | None) -> tuple[tuple[str, int] | None, socket.socket | None]:
    """A port the workers can all bind (SO_REUSEPORT); port 0 becomes a concrete free port."""
    if addr is None:
        return None, None
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(addr)
    return (addr[0], s.getsockname()[1]), s


def _run_workers(args: argparse.Namespace, config: Any, hba: Any, pg_listen: tuple[str, int],
                 my_listen: tuple[str, int] | None, workers: int) -> int:
    reserved, pg_hold = _reserve(pg_listen)
    my_addr, my_hold = _reserve(my_listen)
    assert reserved is not None
    pg_addr = reserved
    run_dir = Path(tempfile.mkdtemp(prefix="shardgate-serve-"))
    children: dict[int, int] = {}
    for i in range(workers):
        ready = str(run_dir / f"ready-{i}.json")
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_DFL)
                code = _run_worker(args, config, hba, pg_addr, my_addr, i, workers, run_dir, ready)
            except BaseException:
                log.exception("worker %d failed", i)
            finally:
                os._exit(code)
        children[pid] = i
    stopping = False

    def forward(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    def forward_reload(signum: int, frame: Any) -> None:  # SIGHUP: every worker re-reads the config
        for child in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGHUP)

    signal.signal(signal.SIGHUP, forward_reload)
    if args.ready_file:
        _wait_ready(run_dir, workers, children, args.ready_file, pg_addr, my_addr)
    code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        worker = children.pop(pid, None)
        rc = os.waitstatus_to_exitcode(status)
        if rc != 0 and not stopping:
            log.error("worker %s exited with %s; stopping the others", worker, rc)
            code = 1
            forward(signal.SIGTERM, None)
    for hold in (pg_hold, my_hold):
        if hold is not None:
            hold.close()
    with contextlib.suppress(OSError):
        for p in run_dir.iterdir():
            p.unlink()
        run_dir.rmdir()
    return code


def _wait_ready(run_dir: Path, workers: int, children: dict[int, int], ready_file: str,
                pg_addr: tuple[str, int], my_addr: tuple[str, int] | None) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and children:
        if all((run_dir / f"ready-{i}.json").exists() for i in range(workers)):
            each = [json.loads((run_dir / f"ready-{i}.json").read_text(encoding="utf-8")) for i in range(workers)]
            _write_json(ready_file, {"postgres": pg_addr[1], "mysql": my_addr[1] if my_addr else None,
                                     "pid": os.getpid(), "workers": workers,
                                     "metrics": [w.get("metrics") for w in each]})
            return
        time.sleep(0.05)


def _write_json(path: str, doc: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    Path(tmp).write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)


def _run_worker(args: argparse.Namespace, config: Any, hba: Any, pg_addr: tuple[str, int],
                my_addr: tuple[str, int] | None, worker: int, workers: int, run_dir: Path | None,
                ready_file: str | None) -> int:
    import uvloop

    return uvloop.run(serve(config, args=args, hba=hba, pg_addr=pg_addr, my_addr=my_addr, worker=worker,
                            workers=workers, run_dir=run_dir, ready_file=ready_file))


async def serve(config: Any, *, args: argparse.Namespace | None = None, hba: Any = None,
                pg_addr: tuple[str, int] = ("127.0.0.1", 15432), my_addr: tuple[str, int] | None = None,
                worker: int = 0, workers: int = 1, run_dir: Path | None = None, ready_file: str | None = None,
                stop: asyncio.Event | None = None) -> int:
    """Run one worker until SIGTERM/SIGINT (or ``stop`` is set); returns the exit code."""
    from router.frontend.postgres.server import FrontendOptions, PgFrontend
    from router.gateway import Gateway

    drain_timeout = getattr(args, "drain_timeout", 30.0) if args is not None else 30.0
    pool_config = None
    if args is not None and getattr(args, "pool_size", None):
        from router.backend.pool_config import PoolConfig

        pool_config = PoolConfig(max_size=int(args.pool_size))
    gateway = Gateway(config, topology=bool(getattr(args, "topology", False)),
                      twopc_dir=getattr(args, "twopc_dir", None), pool_config=pool_config)
    await gateway.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    options = FrontendOptions(host=pg_addr[0], port=pg_addr[1], worker=worker, workers=workers,
                              reuse_port=workers > 1, cancel_dir=run_dir if workers > 1 else None,
                              drain_timeout=drain_timeout, hba=list(hba or []))
    if args is not None and getattr(args, "no_passthrough", False):
        options.passthrough = False
    if args is not None and getattr(args, "pool_size", None):
        options.passthrough_pool_size = int(args.pool_size)
    if args is not None and getattr(args, "max_message_size", None):
        options.max_message = int(args.max_message_size)
    tls = getattr(config, "tls", None)
    if tls is not None:
        options.tls_cert, options.tls_key, options.require_tls = tls.cert, tls.key, tls.require
    pg = mysql = http = None
    try:
        pg = await PgFrontend(gateway, options, config.users).start()
        if my_addr is not None:
            from router.frontend.mysql.server import start_mysql_listener

            mysql = await start_mysql_listener(gateway, config, host=my_addr[0], port=my_addr[1],
                                               reuse_port=workers > 1, passthrough=options.passthrough,
                                               passthrough_pool=pool_config)
        _watch_reload(gateway, config, [pg, mysql], workers)
        ports = {"postgres": pg.port, "mysql": getattr(mysql, "port", None), "pid": os.getpid(), "worker": worker}
        metrics_addr = _metrics_address(args, config)
        if metrics_addr is not None:
            from router.http_endpoints import start_endpoints

            port = metrics_addr[1] + worker if metrics_addr[1] else 0  # one port per worker (router.metrics)
            http = await start_endpoints(gateway, pg, mysql, metrics_addr[0], port, worker, workers)
            ports["metrics"] = http.port
        log.info("serving PostgreSQL on %s:%s%s (worker %d of %d)", pg_addr[0], pg.port,
                 f", MySQL on {my_addr[0]}:{ports['mysql']}" if my_addr is not None and mysql is not None else "",
                 worker + 1, workers)
        if ready_file:
            _write_json(ready_file, ports)
        await stop.wait()
        if http is not None:
            http.readiness.draining = True  # /ready: 503 while draining
        log.info("draining (up to %.0f s)", drain_timeout)
    finally:
        closing = []
        if pg is not None:
            closing.append(pg.close(drain_timeout))
        if mysql is not None:
            closing.append(mysql.drain(drain_timeout) if hasattr(mysql, "drain") else _close_server(mysql))
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)
        await gateway.close()
        if http is not None:
            await http.close()
        if pg is not None and pg.metrics.internal_errors:
            log.error("%d internal errors in the PostgreSQL frontend", pg.metrics.internal_errors)
    return 0


def _watch_reload(gateway: Any, config: Any, frontends: list[Any], workers: int) -> None:
    """SIGHUP and the RELOAD statement re-read the config file (``router.admin_reload``) when there is one."""
    from router.admin_reload import ConfigReloader

    source = Path(getattr(config, "source", ""))
    if not source.is_file():
        return
    reloader = ConfigReloader(gateway, source)
    reloader.signal_parent = workers > 1
    for frontend in frontends:
        if frontend is not None:
            reloader.attach_frontend(frontend)
    gateway.reloader = reloader
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps only weak references)

    def on_sighup() -> None:
        task = loop.create_task(reloader.reload_logged())
        running.add(task)
        task.add_done_callback(running.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup)


async def _close_server(server: Any) -> None:
    server.close()
    with contextlib.suppress(Exception):
        await server.wait_closed()


if __name__ == "__main__":  # ``python -m router.serve --config FILE`` (tests; people use ``shardgate serve``)
    _parser = argparse.ArgumentParser(prog="router.serve", description="the shardgate router process")
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
