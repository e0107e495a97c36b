"""The embedded topology store: a directory on one machine, safe for several router processes on it.

Layout under the root directory::

    .lock                       flock(2) target: every write (put, delete, lock change) holds it exclusively;
                                a watch poll holds it shared, so it never sees half of a write
    revision                    the store-wide revision counter (decimal text)
    data/<key>,v                one file per key: header line ``SGTOPO1 <version> put|del`` then the value bytes
    locks/<name>,v              one file per held lock: the same header, then JSON {owner, expires, token}

Every file is written to a temporary name in the same directory, fsync'd, and ``os.replace``d over the old one
(then the directory is fsync'd): a reader sees the old file or the new one, never a torn write, and a crash
leaves at worst a ``*.tmp`` file that the next open removes. Key segments cannot contain ``,``, so ``,v`` names
never collide with the directories of longer keys (``a/b`` is ``data/a/b,v``; ``a/b/c`` is ``data/a/b/c,v``).

A delete writes a tombstone (``del``) carrying the deleting revision, so watchers order deletes among puts; the
tombstones are compacted away at open once older than ``tombstone_retention`` seconds.

Reads (``get``, ``list``) take no lock. Writes go through a worker thread (``asyncio.to_thread``) because
flock and fsync block. Lock leases use wall-clock expiry (``time.time()``), shared by processes on one machine.
"""
from __future__ import annotations

import asyncio
import builtins
import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from sharding.errors import TopologyError, VersionConflictError
from sharding.topology.store import (
    Entry,
    EventKind,
    Lease,
    Versioned,
    WatchEvent,
    check_key,
    check_prefix,
)

__all__ = ["FileTopologyStore"]

_MAGIC = b"SGTOPO1"
_SUFFIX = ",v"
_HEADER_MAX = 64


class _Record(NamedTuple):
    version: int
    deleted: bool
    value: bytes


def _encode(version: int, deleted: bool, value: bytes = b"") -> bytes:
    return b"%s %d %s\n" % (_MAGIC, version, b"del" if deleted else b"put") + value


def _decode(data: bytes, path: Path) -> _Record:
    header, sep, value = data.partition(b"\n")
    parts = header.split(b" ")
    if not sep or len(parts) != 3 or parts[0] != _MAGIC or parts[2] not in (b"put", b"del") \
            or not parts[1].isdigit():
        raise TopologyError(f"corrupt topology file {path}: bad header")
    return _Record(int(parts[1]), parts[2] == b"del", value)


class FileTopologyStore:
    """``TopologyStore`` on a local directory. See the module docstring for the layout and guarantees."""

    def __init__(self, root: str | os.PathLike[str], *, poll_interval: float = 0.2, fsync: bool = True,
                 tombstone_retention: float = 3600.0) -> None:
        if poll_interval <= 0:
            raise TopologyError(f"poll_interval must be positive, got {poll_interval}")
        self.root = Path(root)
        self.poll_interval = poll_interval
        self._fsync = fsync
        self._data = self.root / "data"
        self._locks = self.root / "locks"
        self._lock_file = self.root / ".lock"
        self._revision_file = self.root / "revision"
        self._closed = False
        try:
            self._data.mkdir(parents=True, exist_ok=True)
            self._locks.mkdir(exist_ok=True)
            self._recover(tombstone_retention)
        except OSError as exc:
            raise TopologyError(f"cannot open topology store at {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"FileTopologyStore({str(self.root)!r})"

    # --- the protocol ---------------------------------------------------------------------------------------
    async def get(self, key: str) -> Versioned | None:
        path = self._path(check_key(key))
        record = await asyncio.to_thread(self._read, path)
        if record is None or record.deleted:
            return None
        return Versioned(record.value, record.version)

    async def put(self, key: str, value: bytes, expected_version: int | None = None) -> int:
        path = self._path(check_key(key))
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TopologyError(f"topology values are bytes, got {type(value).__name__}")
        _check_expected(expected_version)
        return await asyncio.to_thread(self._put_sync, key, path, bytes(value), expected_version)

    async def delete(self, key: str, expected_version: int | None = None) -> None:
        path = self._path(check_key(key))
        _check_expected(expected_version)
        await asyncio.to_thread(self._delete_sync, key, path, expected_version)

    async def list(self, prefix: str = "") -> list[Entry]:
        prefix = check_prefix(prefix)
        self._check_open()
        return await asyncio.to_thread(self._list_sync, prefix)

    async def watch(self, prefix: str = "", *, include_existing: bool = False) -> AsyncIterator[WatchEvent]:
        prefix = check_prefix(prefix)
        self._check_open()
        revision, state = await asyncio.to_thread(self._scan, prefix)
        if include_existing:
            for key, (version, value) in sorted(state.items(), key=lambda kv: kv[1][0]):
                yield WatchEvent(EventKind.PUT, key, value, version)
        known = {key: version for key, (version, _) in state.items()}
        while not self._closed:
            await asyncio.sleep(self.poll_interval)
            current = await asyncio.to_thread(self._read_revision_shared)
            if current == revision:
                continue  # nothing anywhere in the store changed
            revision, state = await asyncio.to_thread(self._scan, prefix)
            events = [WatchEvent(EventKind.PUT, key, value, version)
                      for key, (version, value) in state.items() if known.get(key) != version]
            events += [WatchEvent(EventKind.DELETE, key, None, self._deleted_at(key, revision))
                       for key in known.keys() - state.keys()]
            events.sort(key=lambda e: (e.version, e.key))
            known = {key: version for key, (version, _) in state.items()}
            for event in events:
                yield event

    @contextlib.asynccontextmanager
    async def lock(self, name: str, ttl: float, *, timeout: float | None = None) -> AsyncIterator[Lease]:
        path = self._locks / (check_key(name) + _SUFFIX)
        if ttl <= 0:
            raise TopologyError(f"lock ttl must be positive, got {ttl}")
        self._check_open()
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            token = await asyncio.to_thread(self._try_acquire, path, owner, ttl)
            if token is not None:
                break
            if deadline is not None and loop.time() >= deadline:
                raise TopologyError(f"timed out after {timeout:g} s waiting for lock {name!r}")
            await asyncio.sleep(min(self.poll_interval, ttl / 4))
        lease = Lease(name, owner, token, ttl)
        renewer = asyncio.create_task(self._renew_loop(path, lease), name=f"topology-lock-renew:{name}")
        try:
            yield lease
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await asyncio.to_thread(self._release, path, owner)

    async def close(self) -> None:
        self._closed = True

    # --- maintenance ------------------------------------------------------------------------------------------
    async def compact(self, older_than: float = 0.0) -> int:
        """Remove tombstones older than ``older_than`` seconds; returns how many went."""
        return await asyncio.to_thread(self._compact, older_than)

    # --- blocking internals (worker thread) ---------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise TopologyError(f"topology store at {self.root} is closed")

    def _path(self, key: str) -> Path:
        self._check_open()
        return self._data / (key + _SUFFIX)

    @contextlib.contextmanager
    def _flock(self, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
        # A fresh open file description per use: flock excludes threads of this process from each other too.
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self, path: Path) -> _Record | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TopologyError(f"cannot read topology file {path}: {exc}") from exc
        return _decode(data, path)

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self._fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)
        if self._fsync:
            self._fsync_dir(path.parent)

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read_revision(self) -> int:
        try:
            return int(self._revision_file.read_bytes() or b"0")
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise TopologyError(f"cannot read topology revision {self._revision_file}: {exc}") from exc

    def _read_revision_shared(self) -> int:
        with self._flock(fcntl.LOCK_SH):
            return self._read_revision()

    def _next_revision(self, at_least: int = 0) -> int:
        """Allocate a revision (lock held). Written before the value it versions, so a crash can only skip one."""
        revision = max(self._read_revision(), at_least) + 1
        self._write(self._revision_file, b"%d" % revision)
        return revision

    def _put_sync(self, key: str, path: Path, value: bytes, expected: int | None) -> int:
        try:
            with self._flock():
                current = self._read(path)
                version = 0 if current is None or current.deleted else current.version
                if expected is not None and expected != version:
                    raise _conflict(key, expected, version)
                revision = self._next_revision(current.version if current else 0)
                self._write(path, _encode(revision, False, value))
                return revision
        except OSError as exc:
            raise TopologyError(f"cannot write topology key {key!r}: {exc}") from exc

    def _delete_sync(self, key: str, path: Path, expected: int | None) -> None:
        try:
            with self._flock():
                current = self._read(path)
                version = 0 if current is None or current.deleted else current.version
                if expected is not None and expected != version:
                    raise _conflict(key, expected, version)
                if current is None or current.deleted:
                    return
                self._write(path, _encode(self._next_revision(current.version), True))
        except OSError as exc:
            raise TopologyError(f"cannot delete topology key {key!r}: {exc}") from exc

    def _files(self, prefix: str) -> Iterator[tuple[str, Path]]:
        """(key, path) of every value file under ``prefix`` (tombstones included)."""
        if prefix:
            exact = self._data / (prefix + _SUFFIX)
            if exact.exists():
                yield prefix, exact
        top = self._data / prefix if prefix else self._data
        for dirpath, _dirs, files in os.walk(top):
            rel = os.path.relpath(dirpath, self._data)
            for name in files:
                if name.endswith(_SUFFIX):
                    key = name[: -len(_SUFFIX)] if rel == "." else f"{rel}/{name[: -len(_SUFFIX)]}"
                    yield key.replace(os.sep, "/"), Path(dirpath, name)

    def _list_sync(self, prefix: str) -> builtins.list[Entry]:
        entries = []
        for key, path in self._files(prefix):
            record = self._read(path)
            if record is not None and not record.deleted:
                entries.append(Entry(key, record.value, record.version))
        entries.sort(key=lambda e: e.key)
        return entries

    def _scan(self, prefix: str) -> tuple[int, dict[str, tuple[int, bytes]]]:
        """The store revision and the live keys under ``prefix`` with (version, value), all at one instant."""
        with self._flock(fcntl.LOCK_SH):
            return self._read_revision(), {e.key: (e.version, e.value) for e in self._list_sync(prefix)}

    def _deleted_at(self, key: str, revision: int) -> int:
        """The revision of ``key``'s tombstone; the store's current one if it was compacted already."""
        record = self._read(self._data / (key + _SUFFIX))
        return record.version if record is not None and record.deleted else revision

    def _try_acquire(self, path: Path, owner: str, ttl: float) -> int | None:
        with self._flock():
            holder = self._read_lock(path)
            if holder is not None and holder["owner"] != owner and holder["expires"] > time.time():
                return None
            token = self._next_revision()
            self._write(path, _encode(token, False, json.dumps(
                {"owner": owner, "expires": time.time() + ttl, "token": token}).encode()))
            return token

    def _renew(self, path: Path, lease: Lease) -> bool:
        with self._flock():
            holder = self._read_lock(path)
            if holder is None or holder["owner"] != lease.owner:
                return False  # expired and taken (or taken and released) by someone else
            self._write(path, _encode(lease.token, False, json.dumps(
                {**holder, "expires": time.time() + lease.ttl}).encode()))
            return True

    async def _renew_loop(self, path: Path, lease: Lease) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(lease.ttl / 3)
            try:
                ok = await asyncio.to_thread(self._renew, path, lease)
            except TopologyError:
                ok = loop.time() - renewed < lease.ttl  # transient: retry until the lease would have expired
                if ok:
                    continue
            if not ok:
                lease.lost = True
                return
            renewed = loop.time()

    def _release(self, path: Path, owner: str) -> None:
        with self._flock():
            holder = self._read_lock(path)
            if holder is not None and holder["owner"] == owner:
                path.unlink(missing_ok=True)

    def _read_lock(self, path: Path) -> dict[str, Any] | None:
        record = self._read(path)
        if record is None:
            return None
        try:
            holder = json.loads(record.value)
            if not isinstance(holder, dict) or not {"owner", "expires", "token"} <= holder.keys():
                raise ValueError("missing fields")
        except ValueError as exc:
            raise TopologyError(f"corrupt lock file {path}: {exc}") from exc
        return holder

    def _compact(self, older_than: float) -> int:
        removed = 0
        cutoff = time.time() - older_than
        with self._flock():
            for _key, path in list(self._files("")):
                record = self._read(path)
                if record is not None and record.deleted and path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed += 1
            self._remove_empty_dirs()
        return removed

    def _remove_empty_dirs(self) -> None:
        for dirpath, _dirs, _files in os.walk(self._data, topdown=False):
            if dirpath != str(self._data):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)  # fails (and is skipped) unless empty

    def _recover(self, tombstone_retention: float) -> None:
        """At open: drop temporary files of writes that crashed, old tombstones, and repair the revision."""
        with self._flock():
            highest = 0
            for base in (self._data, self._locks):
                for dirpath, _dirs, files in os.walk(base):
                    for name in files:
                        path = Path(dirpath, name)
                        if name.endswith(".tmp"):
                            path.unlink(missing_ok=True)  # only a crashed writer leaves these: writes hold the lock
                        elif name.endswith(_SUFFIX):
                            record = self._read(path)
                            highest = max(highest, record.version if record else 0)
            if highest > self._read_revision():
                self._write(self._revision_file, b"%d" % highest)
        self._compact(tombstone_retention)


def _check_expected(expected: int | None) -> None:
    if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool) or expected < 0):
        raise TopologyError(f"expected_version must be None or a non-negative integer, got {expected!r}")


def _conflict(key: str, expected: int, actual: int) -> VersionConflictError:
    have = "does not exist" if actual == 0 else f"is at version {actual}"
    want = "to be absent" if expected == 0 else f"version {expected}"
    return VersionConflictError(f"topology key {key!r} {have}; expected {want}")
