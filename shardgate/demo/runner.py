"""``shardgate demo``: start the backends, load them, run the router (``router.serve.serve``), tour, serve.

Phases: the ports are checked first (a busy port fails in a second, not after the servers started); the six
servers start and are loaded; then one uvloop runs the router's ``serve()`` — the same code as ``shardgate
serve`` — whose listeners open only now, and, once it is ready, the tour's clients. SIGINT/SIGTERM at any point
stop everything: ``serve()`` drains on its own signal handlers, the servers are destroyed in ``finally``.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shardgate.demo import data

EXIT_OK, EXIT_FAILED = 0, 1
HOST = "127.0.0.1"
DEFAULT_PG_PORT, DEFAULT_MYSQL_PORT = 15432, 15306
READY_TIMEOUT = 60.0  # the router's own start (pools, schema read); the servers had theirs before
DRAIN_TIMEOUT = 3.0  # the demo's sessions are the tour's and the user's: no long statements to wait for


def say(text: str = "") -> None:
    print(text, flush=True)


def check_port(port: int, flag: str) -> None:
    """Fail now, with the flag to change, when a listener port is taken (before any server starts)."""
    from sharding.errors import InvalidValueError

    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's create_server does
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise InvalidValueError(
                f"shardgate demo: {HOST}:{port} is already in use (another demo or router running?); stop it or "
                f"pick another port with {flag} PORT") from None


class _Interrupted(Exception):
    """SIGINT/SIGTERM arrived while the servers were starting or loading."""


def run_demo(args: argparse.Namespace) -> int:
    from shardgate.demo.cluster import DemoCluster

    check_port(args.pg_port, "--pg-port")
    check_port(args.mysql_port, "--mysql-port")
    if args.pg_port and args.pg_port == args.mysql_port:
        from sharding.errors import InvalidValueError

        raise InvalidValueError("shardgate demo: --pg-port and --mysql-port must differ")

    demo = DemoCluster(root_dir=args.dir)

    def interrupted(signum: int, frame: object) -> None:
        demo.abort()  # servers still starting give up at once instead of finishing first
        raise _Interrupted

    previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
    run_dir = Path(tempfile.mkdtemp(prefix="shardgate-demo-run-"))
    started = time.monotonic()
    try:
        say("Starting 3 PostgreSQL servers (customer -80, customer 80-, commerce) and 3 MariaDB servers "
            "(customer_mysql -80, customer_mysql 80-, commerce_mysql)...")
        demo.start()
        snap = data.snapshot()
        demo.load(snap)
        say(f"Backends up with schema and sample rows in {time.monotonic() - started:.1f}s.")
        config = _config(demo)
        return _run_router(args, config, snap, run_dir, started)
    except _Interrupted:
        return EXIT_OK
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        say("Stopping the router and the demo servers...")
        demo.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.stdout.flush()


def _config(demo: Any) -> Any:
    from sharding.config import parse_config

    return parse_config(demo.config_doc(), source="<demo>")


def _run_router(args: argparse.Namespace, config: Any, snap: Any, run_dir: Path, started: float) -> int:
    import uvloop

    # serve() installs its own SIGTERM/SIGINT handlers on the loop (drain, then return); until it has, a signal
    # interrupts the loop, whose runner then cancels serve() (which closes what it opened).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _keyboard_interrupt)
    try:
        return uvloop.run(_main(args, config, snap, run_dir, started))
    except KeyboardInterrupt:  # a signal in the instant before serve() took the signals over
        return EXIT_OK


def _keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def _main(args: argparse.Namespace, config: Any, snap: Any, run_dir: Path, started: float) -> int:
    from router.serve import serve
    from shardgate.demo.tour import TourFailed, run_tour

    ready_file = run_dir / "ready.json"
    stop = asyncio.Event()
    options = argparse.Namespace(drain_timeout=DRAIN_TIMEOUT)
    router = asyncio.create_task(serve(config, args=options, pg_addr=(HOST, args.pg_port),
                                       my_addr=(HOST, args.mysql_port), ready_file=str(ready_file), stop=stop))
    ports = await _wait_ready(router, ready_file, args)
    if ports is None:  # stopped by a signal while starting
        await router
        return EXIT_OK
    pg_port, my_port = ports
    say(f"Router listening on {HOST}:{pg_port} (PostgreSQL) and {HOST}:{my_port} (MySQL), "
        f"{time.monotonic() - started:.1f}s after start.\n")
    code = EXIT_OK
    if not args.keep_running:
        tour = asyncio.create_task(run_tour(HOST, pg_port, my_port, snap))
        await asyncio.wait([tour, router], return_when=asyncio.FIRST_COMPLETED)
        if not tour.done():  # the router stopped (a signal): the tour cannot go on
            tour.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await tour
            await router
            return EXIT_OK
        try:
            tour.result()
            say("Tour finished: every answer was as expected.\n")
        except TourFailed as exc:
            say(f"Tour FAILED: {exc}")
            code = EXIT_FAILED
        except Exception as exc:  # a client error: say which, never a traceback
            say(f"Tour FAILED: {type(exc).__name__}: {exc}")
            code = EXIT_FAILED
        if args.tour_only or code != EXIT_OK:
            stop.set()
            await router
            return code
    _print_connect_help(pg_port, my_port)
    await router
    return code


async def _wait_ready(router: asyncio.Task[int], ready_file: Path, args: argparse.Namespace
                      ) -> tuple[int, int] | None:
    from sharding.errors import BackendUnavailableError, InvalidValueError

    deadline = time.monotonic() + READY_TIMEOUT
    while not ready_file.exists():
        if router.done():
            exc = router.exception()
            if exc is None:
                return None
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
                raise InvalidValueError(f"shardgate demo: a router port is already in use ({exc.strerror}); "
                                        "pick others with --pg-port and --mysql-port") from None
            raise exc
        if time.monotonic() > deadline:
            raise BackendUnavailableError(f"shardgate demo: the router did not start within {READY_TIMEOUT:g} s")
        await asyncio.sleep(0.02)
    doc = json.loads(ready_file.read_text(encoding="utf-8"))
    return int(doc["postgres"]), int(doc["mysql"])


def _print_connect_help(pg_port: int, my_port: int) -> None:
    pg_ks, pg_unsharded = data.KEYSPACES["postgres"]
    my_ks, my_unsharded = data.KEYSPACES["mysql"]
    say("Connect through the router (user demo, password demo):")
    say(f"  PGPASSWORD=demo psql -h {HOST} -p {pg_port} -U demo {pg_ks}        # or database {pg_unsharded}")
    say(f"  mysql -h {HOST} -P {my_port} -u demo -pdemo {my_ks}        # or database {my_unsharded}")
    say(f"  postgresql://demo:demo@{HOST}:{pg_port}/{pg_ks}")
    say("Try: SHOW SHARDGATE SHARDS; VEXPLAIN PLAN SELECT * FROM customer WHERE customer_id = 4;")
    say("\nRunning; press Ctrl-C to stop and remove everything.")
