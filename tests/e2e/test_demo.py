"""``shardgate demo`` on real servers: the tour succeeds, and SIGTERM cleans everything up quickly."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.backend


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """A directory the postgres OS user can enter (pytest's demo_dir is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="shardgate-demo-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


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


def test_tour_only_routes_rows_to_their_shards(demo_dir: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "shardgate", "demo", "--tour-only", "--dir", str(demo_dir)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "customer/-80 holds customer_id [1, 2, 3, 5]" in result.stdout
    assert "customer/80- holds customer_id [4, 6, 7, 8]" in result.stdout
    assert "Route EqualUnique shards=['80-']" in result.stdout
    assert "Traceback" not in result.stderr
    assert _processes_under(demo_dir) == []


def test_sigterm_stops_the_demo_within_ten_seconds(demo_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "shardgate", "demo", "--keep-running", "--dir", str(demo_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        seen = []
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "press Ctrl-C" in line:
                break
        assert any("press Ctrl-C" in line for line in seen), "".join(seen)
        assert _processes_under(demo_dir), "the demo's servers should be running"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert time.monotonic() - started < 10
        assert proc.returncode == 0
        assert _processes_under(demo_dir) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
