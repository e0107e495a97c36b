"""Leftovers of processes that died without cleaning up (SIGKILL): their servers and temp dirs."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from shardgate.localdb.host import _STATE_FILE, _children_of, _pid_alive, default_root_dir


# --- leftovers of processes that died without cleaning up ------------------------------------------------------
def reap_orphans(root_dir: str | os.PathLike[str] | None = None) -> int:
    """Stop servers whose owning process is gone, and remove their temp dirs. Returns how many dirs were removed.

    Only our own temp dirs are looked at, and a server PID is signalled only while its command line still names
    that dir, so a recycled PID is never touched.
    """
    root = Path(root_dir) if root_dir else default_root_dir()
    removed = 0
    for base in root.glob("shardgate-*-*"):
        try:
            state = json.loads((base / _STATE_FILE).read_text())
            owner, server = int(state["owner_pid"]), state.get("server_pid")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if owner == os.getpid() or _pid_alive(owner):
            continue
        if server and _cmdline_mentions(int(server), base):
            _stop_foreign(int(server), signal.SIGINT if state.get("engine") == "postgres" else signal.SIGTERM)
        _remove_stale_pg_shm(base)
        shutil.rmtree(base, ignore_errors=True)
        removed += 1
    return removed


def _remove_stale_pg_shm(base: Path) -> None:
    """Remove the SysV interlock segment of a postmaster that was killed (a clean stop removes its own).

    ``postmaster.pid`` outlives a killed server; its line 7 is "key shmid". The segment is removed only when
    ``ipcs`` shows the same key and id with nothing attached.
    """
    try:
        fields = (base / "data" / "postmaster.pid").read_text().splitlines()[6].split()
        key, shmid = int(fields[0]), fields[1]
        listing = subprocess.run(["ipcs", "-m"], capture_output=True, text=True, check=False, timeout=10).stdout
    except (OSError, IndexError, ValueError, subprocess.SubprocessError):
        return
    for line in listing.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[1] == shmid and cols[0].startswith("0x") and int(cols[0], 16) == key \
                and cols[5] == "0":
            subprocess.run(["ipcrm", "-m", shmid], capture_output=True, check=False, timeout=10)


def _cmdline_mentions(pid: int, base: Path) -> bool:
    try:
        return str(base).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop_foreign(pid: int, sig: int, timeout: float = 10.0) -> None:
    children = _children_of(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
    end = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    for victim in [pid, *children]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(victim, signal.SIGKILL)
