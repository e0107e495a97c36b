"""The topology store protocol: a small versioned key-value store with watches and leases (etcd's shape).

Routers read the VSchema and shard maps from it and watch it for changes; resharding workflows keep their state
in it (one key per workflow, written with compare-and-swap so a resumed or duplicated worker cannot overwrite
newer state) and serialise themselves with ``lock``. ``FileTopologyStore`` (``file.py``) is the embedded default;
an etcd store implements the same protocol for many routers on many machines.

Keys
----
Paths of segments made of ``[A-Za-z0-9._-]`` joined by ``/``: ``keyspaces/customer/vschema``,
``workflows/customer/reshard1``. No empty segment, no leading or trailing ``/``, no ``.`` or ``..`` segment.
Prefixes in ``list`` and ``watch`` are path prefixes: ``keyspaces/customer`` matches that key itself and every key
below ``keyspaces/customer/``, never ``keyspaces/customer2``; ``""`` matches everything.

Versions
--------
A version is a positive integer, etcd's ``mod_revision``: the store-wide revision of the write that produced the
current value. Revisions only grow, across keys and across deletes, so a key deleted and created again never
returns to a version a stale writer still holds (no ABA). ``expected_version=0`` means "only if absent".
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol, runtime_checkable

from sharding.errors import TopologyError

__all__ = ["Entry", "EventKind", "Lease", "TopologyStore", "Versioned", "WatchEvent", "check_key", "check_prefix"]

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
MAX_KEY_LENGTH = 512


class Versioned(NamedTuple):
    """A value and the version that wrote it; unpacks as ``value, version = await store.get(key)``."""

    value: bytes
    version: int


class Entry(NamedTuple):
    key: str
    value: bytes
    version: int


class EventKind(StrEnum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change seen by a watch. For a delete, ``value`` is None and ``version`` is the deleting revision."""

    kind: EventKind
    key: str
    value: bytes | None = field(repr=False)
    version: int


@dataclass(slots=True)
class Lease:
    """A held lock. ``token`` is a fencing token: it grows with every acquisition of any lock in the store, so a
    workflow can write it next to its state and refuse state written under an older token.

    ``lost`` becomes true when the lease could not be renewed in time (another holder may have it now); long
    steps should call ``check()`` before each write they make under the lock.
    """

    name: str
    owner: str
    token: int
    ttl: float
    lost: bool = False

    def check(self) -> None:
        if self.lost:
            raise TopologyError(f"lock {self.name!r} was lost (not renewed within {self.ttl:g} s)")


@runtime_checkable
class TopologyStore(Protocol):
    """What routers and workflows need from a topology store. Every method may raise ``TopologyError``."""

    async def get(self, key: str) -> Versioned | None:
        """The value and version of ``key``, or None when it does not exist."""
        ...

    async def put(self, key: str, value: bytes, expected_version: int | None = None) -> int:
        """Write ``value``; returns the new version.

        ``expected_version``: None writes unconditionally; 0 only creates (the key must not exist); any other
        number writes only if it is the key's current version. A mismatch raises ``VersionConflictError``.
        """
        ...

    async def delete(self, key: str, expected_version: int | None = None) -> None:
        """Remove ``key``. Deleting a missing key with ``expected_version=None`` is a no-op; with a version it
        raises ``VersionConflictError``, as does a version mismatch."""
        ...

    async def list(self, prefix: str = "") -> list[Entry]:
        """Every key under the path ``prefix`` with its value and version, sorted by key."""
        ...

    def watch(self, prefix: str = "", *, include_existing: bool = False) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefix``, in revision order, until the iterator is closed.

        The baseline is taken when iteration starts; with ``include_existing`` the keys present then are
        delivered first as PUT events, so a reader needs no separate ``list`` and cannot miss a change in between.
        A watch reports the latest state of a key; two quick writes may be seen as one (watchers reconcile to the
        current value, they do not replay history).
        """
        ...

    def lock(self, name: str, ttl: float, *, timeout: float | None = None) -> AbstractAsyncContextManager[Lease]:
        """An exclusive lock ``name`` across processes, held while the ``async with`` body runs.

        The lease expires ``ttl`` seconds after its last renewal, so a crashed holder frees it; while the body runs
        it is renewed in the background. ``timeout`` bounds the wait (``TopologyError``); None waits forever.
        """
        ...

    async def close(self) -> None:
        """Release resources (connections, background tasks). The store is unusable afterwards."""
        ...


def check_key(key: str) -> str:
    """``key`` if it is a valid key, else ``TopologyError`` naming the problem."""
    if not isinstance(key, str) or not key:
        raise TopologyError(f"invalid topology key {key!r}: must be a non-empty string")
    _check_path(key, "key")
    return key


def check_prefix(prefix: str) -> str:
    """A path prefix with its trailing slash removed; ``""`` for everything."""
    if not isinstance(prefix, str):
        raise TopologyError(f"invalid topology prefix {prefix!r}: must be a string")
    prefix = prefix[:-1] if prefix.endswith("/") else prefix
    if prefix:
        _check_path(prefix, "prefix")
    return prefix


def _check_path(path: str, what: str) -> None:
    if len(path) > MAX_KEY_LENGTH:
        raise TopologyError(f"invalid topology {what}: longer than {MAX_KEY_LENGTH} characters")
    if path.startswith("/"):
        raise TopologyError(f"invalid topology {what} {path!r}: must be relative (no leading '/')")
    for segment in path.split("/"):
        if segment in (".", ".."):
            raise TopologyError(f"invalid topology {what} {path!r}: '.' and '..' segments are not allowed")
        if not _SEGMENT.fullmatch(segment):
            raise TopologyError(
                f"invalid topology {what} {path!r}: segments must be non-empty and use only A-Z a-z 0-9 . _ -")


def key_matches(key: str, prefix: str) -> bool:
    """Whether ``key`` is ``prefix`` or below it (path semantics; ``prefix`` already normalised)."""
    return not prefix or key == prefix or key.startswith(prefix + "/")
