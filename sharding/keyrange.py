"""Key ranges of keyspace ids, in Vitess's notation: ``-80``, ``80-``, ``40-80``, ``-`` (or ``0``) for everything.

A shard owns the half-open interval ``[start, end)`` of keyspace ids, compared bytewise; an empty start is the
lowest key and an empty end the highest (``go/vt/key/key.go``). Keyspace ids of different lengths are compared as
if padded with zero bytes, so trailing zero bytes of a bound carry no meaning: ``-80 == 00-80 == 0000-8000``
(Vitess ``key.Normalize``). ``KeyRange`` stores its bounds with trailing zeros stripped; with bounds in that form a
plain ``bytes`` comparison against a keyspace id gives the padded answer, so ``contains`` stays one comparison.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sharding.errors import KeyRangeError

__all__ = [
    "FULL",
    "KeyRange",
    "check_coverage",
    "generate_shard_ranges",
    "is_valid_shard_name",
    "next_prefix",
]

# go/vt/key/key.go: "0" or an optional hex start, a dash, an optional hex end (whole bytes only).
_SHARD_NAME = re.compile(r"0|(?:[0-9a-fA-F]{2})*-(?:[0-9a-fA-F]{2})*")


def _strip(key: bytes) -> bytes:
    return key.rstrip(b"\x00")


def next_prefix(key: bytes) -> bytes:
    """The smallest key above every key that starts with ``key``; ``b""`` (the top) if there is none.

    This is Vitess's ``addOne`` (``vindexes/cfc.go``): a prefix ``p`` maps to the range ``[p, next_prefix(p))``.
    """
    buf = bytearray(key)
    for i in range(len(buf) - 1, -1, -1):
        if buf[i] < 0xFF:
            buf[i] += 1
            return bytes(buf[: i + 1])
        # 0xff rolls over: drop it (a zero byte at the end means nothing) and carry into the byte before.
    return b""


@dataclass(frozen=True, slots=True)
class KeyRange:
    """The keyspace ids ``[start, end)``; ``b""`` as start is the lowest key, as end the highest.

    Bounds are normalized on construction (trailing zero bytes stripped), so equal ranges compare equal whatever
    spelling they came from. A range with both bounds set must not be empty.
    """

    start: bytes = b""
    end: bytes = b""

    def __post_init__(self) -> None:
        start, end = _strip(bytes(self.start)), _strip(bytes(self.end))
        if self.end and not end:
            raise KeyRangeError(f"invalid key range ending at {bytes(self.end).hex()}: no key is below it")
        if end and start >= end:
            raise KeyRangeError(f"invalid key range {start.hex()}-{end.hex()}: start must be below end")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    # --- notation ---------------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, name: str) -> KeyRange:
        """Parse a shard name: ``-80``, ``80-``, ``40-80``, and ``-`` or ``0`` for the whole keyspace."""
        if not isinstance(name, str) or not _SHARD_NAME.fullmatch(name):
            raise KeyRangeError(
                f"invalid key range {name!r}: expected hex bounds around a dash (-80, 80-, 40-80), '-' or '0'"
            )
        if name == "0":
            return FULL
        start, _, end = name.partition("-")
        return cls(bytes.fromhex(start), bytes.fromhex(end))

    def __str__(self) -> str:
        if self.is_full:
            return "-"
        return f"{self.start.hex()}-{self.end.hex()}"

    def format(self) -> str:
        """Vitess notation, lower-case hex without trailing zero bytes: ``40-80``, ``-`` for everything."""
        return str(self)

    # --- predicates -------------------------------------------------------------------------------------------
    @property
    def is_full(self) -> bool:
        """True when the range covers every keyspace id (Vitess ``KeyRangeIsComplete``)."""
        return not self.start and not self.end

    def contains(self, ksid: bytes) -> bool:
        """Whether the keyspace id falls in ``[start, end)`` (Vitess ``KeyRangeContains``)."""
        return self.start <= ksid and (not self.end or ksid < self.end)

    def __contains__(self, ksid: object) -> bool:
        return isinstance(ksid, bytes) and self.contains(ksid)

    def overlaps(self, other: KeyRange) -> bool:
        """Whether some keyspace id lies in both ranges (Vitess ``KeyRangesIntersect``)."""
        return (not self.end or other.start < self.end) and (not other.end or self.start < other.end)

    def covers(self, other: KeyRange) -> bool:
        """Whether every keyspace id of ``other`` is in this range."""
        return self.start <= other.start and (not self.end or (bool(other.end) and other.end <= self.end))

    def intersect(self, other: KeyRange) -> KeyRange | None:
        """The keyspace ids in both ranges, or None when they do not overlap."""
        if not self.overlaps(other):
            return None
        start = max(self.start, other.start)
        if not self.end:
            end = other.end
        elif not other.end:
            end = self.end
        else:
            end = min(self.end, other.end)
        return KeyRange(start, end)

    # --- splitting --------------------------------------------------------------------------------------------
    def split(self, n: int) -> list[KeyRange]:
        """Split into ``n`` contiguous parts of (nearly) equal width, as Vitess's ``GenerateShardRanges`` does.

        Bounds are counted in whole bytes: the fewest bytes that give every part at least one key value, so
        ``FULL.split(n)`` uses one byte up to 256 parts and two up to 65536; boundary ``i`` is
        ``start + floor(i * width / n)``. Powers of two split exactly (``-80`` into ``-40``, ``40-80``).
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise KeyRangeError(f"cannot split {self} into {n!r} parts: need a positive integer")
        if n == 1:
            return [self]
        nbytes = max(len(self.start), len(self.end), 1)
        while True:
            low = int.from_bytes(self.start.ljust(nbytes, b"\x00"), "big")
            high = int.from_bytes(self.end.ljust(nbytes, b"\x00"), "big") if self.end else 1 << (8 * nbytes)
            if high - low >= n:
                break
            nbytes += 1
        width = high - low
        bounds = [low + (i * width) // n for i in range(n + 1)]

        def key(value: int, is_top: bool) -> bytes:
            if is_top and not self.end:
                return b""
            return value.to_bytes(nbytes, "big")

        return [KeyRange(key(bounds[i], False), key(bounds[i + 1], i + 1 == n)) for i in range(n)]


FULL = KeyRange()
"""The whole keyspace: ``-`` (also spelled ``0`` for an unsharded keyspace's single shard)."""


def is_valid_shard_name(name: str) -> bool:
    """Whether ``name`` is a key range in Vitess notation (the shard-name rule of ``go/vt/key``)."""
    try:
        KeyRange.parse(name)
    except KeyRangeError:
        return False
    return True


def generate_shard_ranges(n: int) -> list[str]:
    """Names of ``n`` equal shards of a keyspace, identical to Vitess ``key.GenerateShardRanges``.

    ``generate_shard_ranges(2) == ["-80", "80-"]``; one byte of hex per bound up to 256 shards, two up to 65536.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1 or n > 65536:
        raise KeyRangeError(f"cannot generate {n!r} shard ranges: the count must be between 1 and 65536")
    return [str(part) for part in FULL.split(n)]


def _end_key(kr: KeyRange) -> tuple[int, bytes]:
    """Sort key for an end bound: the open end (``b""``) is above every real key."""
    return (1, b"") if not kr.end else (0, kr.end)


def check_coverage(names: Iterable[str]) -> list[str]:
    """Problems with a keyspace's shard list, one line each; empty when the shards tile the keyspace exactly.

    A keyspace's serving shards must cover every keyspace id once: a gap loses rows, an overlap sends a row to two
    shards. Each problem names the shards around it and the keys affected, e.g.
    ``gap between -40 and 80-: 40-80 is not covered`` or ``overlap between -80 and 40-c0: 40-80 is covered twice``.
    """
    problems: list[str] = []
    parsed: list[tuple[str, KeyRange]] = []
    for name in names:
        try:
            parsed.append((name, KeyRange.parse(name)))
        except KeyRangeError as exc:
            problems.append(f"invalid shard name {name!r}: {exc.message}")
    if not parsed:
        if not problems:
            problems.append("no shards: - is not covered")
        return problems

    parsed.sort(key=lambda item: (item[1].start, _end_key(item[1])))
    reach: bytes | None = b""  # everything below `reach` is covered; None once the top is covered
    reach_owner: str | None = None  # the shard whose end is `reach`
    for name, kr in parsed:
        if reach is None:  # an earlier shard already runs to the top
            problems.append(f"overlap between {reach_owner} and {name}: {kr} is covered twice")
            continue
        if kr.start > reach:
            missing = KeyRange(reach, kr.start)
            where = f"between {reach_owner} and {name}" if reach_owner else f"before {name}"
            problems.append(f"gap {where}: {missing} is not covered")
        elif kr.start < reach:
            twice = KeyRange(kr.start, reach if not kr.end or reach < kr.end else kr.end)
            problems.append(f"overlap between {reach_owner} and {name}: {twice} is covered twice")
        if not kr.end:
            reach, reach_owner = None, name
        elif kr.end > reach:
            reach, reach_owner = kr.end, name
    if reach is not None:
        problems.append(f"gap after {reach_owner}: {KeyRange(reach)} is not covered")
    return problems
