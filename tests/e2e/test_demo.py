"""``shardgate demo`` on real servers, through the real router, with real clients.

- ``--tour-only``: the scripted tour (asyncpg and aiomysql through both router ports) exits 0, reports the
  right shards and leaves no server process.
- Serving mode (the default: tour, then serve): psql, the mysql CLI, asyncpg and PyMySQL connect as demo/demo
  and get the right answers; SIGTERM ends it cleanly within 10 s and leaves no server process.
- A busy port fails at once with a message naming the flag, before any server starts; SIGTERM while the servers
  are still starting ends it within 10 s too.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.backend
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """A directory the postgres and mysql OS users can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="shardgate-demo-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _processes_under(path: Path) -> list[int]:
    """PIDs whose command line names ``path`` (the demo's servers run from inside it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _demo_cmd(demo_dir: Path, pg: int, my: int, *flags: str) -> list[str]:
    return [sys.executable, "-m", "shardgate", "demo", *flags, "--pg-port", str(pg), "--mysql-port", str(my),
            "--dir", str(demo_dir)]


def _in_thread(factory: Callable[[], Any]) -> Any:
    """Run a coroutine on a private loop in a thread (the test's own loop belongs to pytest-asyncio)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_tour_only_runs_real_queries_through_both_protocols(demo_dir: Path) -> None:
    pg, my = _free_ports(2)
    started = time.monotonic()
    result = subprocess.run(_demo_cmd(demo_dir, pg, my, "--tour-only"), cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert time.monotonic() - started < 300
    assert "Traceback" not in result.stderr, result.stderr
    # Listeners open only after the backends are loaded, on the ports asked for.
    assert out.index("Backends up with schema and sample rows") < out.index(f"Router listening on 127.0.0.1:{pg} "
                                                                            f"(PostgreSQL) and 127.0.0.1:{my} (MySQL)")
    for keyspace in ("customer", "customer_mysql"):
        assert f"{keyspace}/-80 holds customer_id [1, 2, 3, 5]" in out
        assert f"{keyspace}/80- holds customer_id [4, 6, 7, 8]" in out
        assert f"Route EqualUnique on {keyspace} by vindex hash -> shard 80-" in out
        assert f"Route Equal on {keyspace} by vindex corder_email_lookup" in out
        assert f"Route Scatter on {keyspace} -> shards -80, 80-" in out
        assert f"Route Reference on {keyspace} -> shard" in out
    assert "corder_email_lookup: carol@example.com -> keyspace id 4eb190c9a2fa169c -> customer/-80" in out
    assert "corder_email_lookup: carol@example.com -> keyspace id 4eb190c9a2fa169c -> customer_mysql/-80" in out
    assert "INSERT 0 1" in out
    assert "1 row inserted, LAST_INSERT_ID() = 1000" in out  # the sequence's first id
    assert "=== PostgreSQL protocol (asyncpg)" in out and "=== MySQL protocol (aiomysql)" in out
    assert "Tour finished: every answer was as expected." in out
    assert _processes_under(demo_dir) == []
    assert not _listening(pg) and not _listening(my)


class _Demo:
    """``shardgate demo`` in serving mode, its output collected by a thread."""

    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return
            if self.proc.poll() is not None:
                self.reader.join(5)
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not printed within {timeout:g} s:\n{self.output}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _check_psql(pg: int) -> None:
    env = {**os.environ, "PGPASSWORD": "demo", "PGCONNECT_TIMEOUT": "10"}
    done = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg), "-U", "demo", "-d", "customer", "-X", "-A",
                           "-t", "-v", "ON_ERROR_STOP=1",
                           "-c", "SELECT count(*) FROM customer",
                           "-c", "SELECT name FROM customer WHERE customer_id = 4",
                           "-c", "SELECT order_id FROM corder WHERE email = 'bob@example.com'",
                           "-c", r"\dt"],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["8", "Dave", "200"], done.stdout
    assert any("|customer|table|" in line for line in lines), done.stdout


def _check_mysql_cli(my: int) -> None:
    done = subprocess.run(["mysql", "-h", "127.0.0.1", "-P", str(my), "-u", "demo", "-pdemo", "--batch",
                           "--skip-column-names", "customer_mysql", "-e",
                           "SELECT count(*) FROM customer; SELECT name FROM customer WHERE customer_id = 4; "
                           "SELECT order_id FROM corder WHERE email = 'bob@example.com'; SHOW TABLES"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["8", "Dave", "200", "corder", "customer", "product"], done.stdout


def _check_asyncpg(pg: int) -> None:
    import asyncpg

    async def go() -> tuple[Any, ...]:
        conn = await asyncpg.connect(host="127.0.0.1", port=pg, user="demo", password="demo", database="customer",
                                     timeout=30)
        try:
            by_email = await conn.fetch("SELECT order_id, customer_id FROM corder WHERE email = $1",
                                        "eve@example.com")
            point = await conn.fetchrow("SELECT email FROM customer WHERE customer_id = $1", 6)
            total = await conn.fetchval("SELECT count(*) FROM corder")
            products = await conn.fetchval("SELECT count(*) FROM product")
            return [tuple(r) for r in by_email], point["email"], total, products
        finally:
            await conn.close()

    by_email, point, total, products = _in_thread(go)
    assert by_email == [(500, 5)]
    assert point == "frank@example.com"
    assert total == 9  # 8 sample orders and the tour's sequence-backed insert
    assert products == 3


def _check_pymysql(my: int) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=my, user="demo", password="demo", database="customer_mysql",
                           autocommit=True, connect_timeout=30)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT order_id, customer_id FROM corder WHERE email = %s", ("eve@example.com",))
            assert [tuple(r) for r in cur.fetchall()] == [(500, 5)]
            cur.execute("SELECT email FROM customer WHERE customer_id = %s", (6,))
            assert cur.fetchall() == (("frank@example.com",),)
            cur.execute("SELECT count(*) FROM corder")
            assert cur.fetchall() == ((9,),)
            cur.execute("SHOW SHARDGATE SHARDS")  # "keyspace/shard" rows, or keyspace and shard columns
            shards = {"/".join(map(str, r[:2])) if len(r) > 1 else r[0] for r in cur.fetchall()}
            assert shards >= {"customer_mysql/-80", "customer_mysql/80-", "commerce_mysql/0"}, shards
            cur.execute("SELECT @@character_set_server")
            assert cur.fetchall() == (("utf8mb4",),)
    finally:
        conn.close()


def test_serving_mode_answers_real_clients_and_stops_cleanly_on_sigterm(demo_dir: Path) -> None:
    pg, my = _free_ports(2)
    demo = _Demo(_demo_cmd(demo_dir, pg, my))  # default mode: the tour, then serve until a signal
    try:
        demo.wait_for("Router listening on", 120)
        demo.wait_for("press Ctrl-C", 300)
        out = demo.output
        assert "Tour finished: every answer was as expected." in out
        assert f"PGPASSWORD=demo psql -h 127.0.0.1 -p {pg} -U demo customer" in out
        assert f"mysql -h 127.0.0.1 -P {my} -u demo -pdemo customer_mysql" in out
        assert _processes_under(demo_dir), "the demo's servers should be running"
        _check_psql(pg)
        _check_mysql_cli(my)
        _check_asyncpg(pg)
        _check_pymysql(my)
        started = time.monotonic()
        demo.proc.send_signal(signal.SIGTERM)
        assert demo.proc.wait(timeout=10) == 0, demo.output
        assert time.monotonic() - started < 10
        demo.reader.join(5)
        assert "Traceback" not in demo.output, demo.output
        assert _processes_under(demo_dir) == []
        assert not _listening(pg) and not _listening(my)
    finally:
        demo.kill()


def test_a_busy_port_fails_at_once_with_the_flag_to_change(demo_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (my,) = _free_ports(1)
        started = time.monotonic()
        result = subprocess.run(_demo_cmd(demo_dir, port, my, "--tour-only"), cwd=ROOT, capture_output=True,
                                text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert "--pg-port" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30
    assert "Starting" not in result.stdout  # no server was started
    assert _processes_under(demo_dir) == []


def test_sigterm_while_the_servers_start_stops_within_ten_seconds(demo_dir: Path) -> None:
    pg, my = _free_ports(2)
    demo = _Demo(_demo_cmd(demo_dir, pg, my, "--keep-running"))
    try:
        demo.wait_for("Starting 3 PostgreSQL servers", 60)
        time.sleep(0.5)  # inside initdb / install-db / the first starts
        started = time.monotonic()
        demo.proc.send_signal(signal.SIGTERM)
        assert demo.proc.wait(timeout=10) == 0, demo.output
        assert time.monotonic() - started < 10
        demo.reader.join(5)
        assert "Traceback" not in demo.output, demo.output
        assert _processes_under(demo_dir) == []
        assert list(demo_dir.iterdir()) == []  # server dirs and templates removed
    finally:
        demo.kill()
