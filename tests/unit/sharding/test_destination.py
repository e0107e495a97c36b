"""Destinations and their resolution against a keyspace's shard list."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharding.destination import (
    ALL_SHARDS,
    NO_SHARD,
    KeyRangeDest,
    KeyspaceId,
    KeyspaceIds,
    key_range_from_prefix,
    resolve,
)
from sharding.errors import KeyRangeError
from sharding.keyrange import FULL, KeyRange, generate_shard_ranges


@dataclass(frozen=True)
class Ref:
    name: str
    key_range: KeyRange


def shards(*names: str) -> list[Ref]:
    return [Ref(n, KeyRange.parse(n)) for n in names]


FOUR = shards(*generate_shard_ranges(4))


def test_keyspace_id() -> None:
    assert resolve(KeyspaceId(bytes.fromhex("166b40b44aba4bd6")), FOUR) == ["-40"]
    assert resolve(KeyspaceId(b"\x40"), FOUR) == ["40-80"]  # a start bound belongs to its shard
    assert resolve(KeyspaceId(b"\x3f\xff\xff"), FOUR) == ["-40"]
    assert resolve(KeyspaceId(b""), FOUR) == ["-40"]  # the empty keyspace id (binary vindex on NULL) sorts first
    assert resolve(KeyspaceId(b"\xff" * 8), FOUR) == ["c0-"]


def test_keyspace_ids_are_deduplicated_in_shard_order() -> None:
    ksids = (b"\xc1", b"\x01", b"\x02", b"\x81")
    assert resolve(KeyspaceIds(ksids), FOUR) == ["-40", "80-c0", "c0-"]


def test_key_range() -> None:
    assert resolve(KeyRangeDest(KeyRange.parse("30-90")), FOUR) == ["-40", "40-80", "80-c0"]
    assert resolve(KeyRangeDest(KeyRange.parse("40-80")), FOUR) == ["40-80"]
    assert resolve(KeyRangeDest(FULL), FOUR) == ["-40", "40-80", "80-c0", "c0-"]


def test_all_and_none() -> None:
    assert resolve(ALL_SHARDS, FOUR) == ["-40", "40-80", "80-c0", "c0-"]
    assert resolve(NO_SHARD, FOUR) == []


def test_keyspace_id_in_a_gap_is_an_error_not_a_drop() -> None:
    holes = shards("-40", "80-")
    with pytest.raises(KeyRangeError, match="keyspace id 50 is in no shard"):
        resolve(KeyspaceId(b"\x50"), holes)
    with pytest.raises(KeyRangeError):
        resolve(KeyspaceId(b"\x01"), [])


def test_unsharded_keyspace() -> None:
    single = shards("0")
    assert resolve(KeyspaceId(b"\x99"), single) == ["0"]
    assert resolve(KeyRangeDest(KeyRange.parse("-80")), single) == ["0"]


def test_key_range_from_prefix() -> None:
    assert key_range_from_prefix(b"\x16\x6b\x40") == KeyRangeDest(KeyRange.parse("166b40-166b41"))
    assert key_range_from_prefix(b"\x01\xff") == KeyRangeDest(KeyRange.parse("01ff-02"))
    assert key_range_from_prefix(b"\xff") == KeyRangeDest(KeyRange.parse("ff-"))
    assert key_range_from_prefix(b"") == ALL_SHARDS


def test_vitess_strings() -> None:
    assert str(KeyspaceId(b"\x01\x02")) == "DestinationKeyspaceID(0102)"
    assert str(KeyspaceIds((b"\x01", b"\x02"))) == "DestinationKeyspaceIDs(01,02)"
    assert str(KeyRangeDest(KeyRange.parse("40-80"))) == "DestinationKeyRange(40-80)"
    assert str(ALL_SHARDS) == "DestinationAllShards()"
    assert str(NO_SHARD) == "DestinationNone()"


@given(n=st.integers(min_value=1, max_value=64), ksid=st.binary(max_size=9))
@settings(derandomize=True, max_examples=200)
def test_a_keyspace_id_resolves_to_the_shard_that_contains_it(n: int, ksid: bytes) -> None:
    refs = shards(*generate_shard_ranges(n))
    [name] = resolve(KeyspaceId(ksid), refs)
    assert [r.name for r in refs if r.key_range.contains(ksid)] == [name]
    assert name in resolve(key_range_from_prefix(ksid), refs)  # keys extending ksid start in its shard
