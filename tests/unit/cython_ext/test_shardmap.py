"""Keyspace id -> shard index, compiled and twin, against ``bisect`` over the sorted start keys.

Every test body runs once per implementation (uvloop's ``_TestTCP`` habit, as a parametrized fixture); the compiled
module is required under ``CI=true``.
"""
from __future__ import annotations

from bisect import bisect_right
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cython_ext.pure import shardmap as twin
from tests.support.twins import load_compiled


@pytest.fixture(scope="module", params=["cython", "python"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return load_compiled("shardmap") if request.param == "cython" else twin


def raised(fn, *args) -> tuple[type[BaseException], str] | None:
    try:
        fn(*args)
    except Exception as exc:
        return type(exc), str(exc)
    return None


# Keys up to 10 bytes: both sides of the compiled 8-byte fast path, and prefixes of each other.
KEYS = st.binary(max_size=10) | st.binary(min_size=8, max_size=8)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(others=st.lists(KEYS, max_size=30, unique=True), ksids=st.lists(KEYS, max_size=30))
def test_find_is_bisect(impl: ModuleType, others: list[bytes], ksids: list[bytes]) -> None:
    starts = sorted({b"", *others})
    ksids = ksids + starts + [s + b"\x00" for s in starts] + [s[:-1] for s in starts if s]
    shard_map = impl.ShardMap(starts)
    expected = [bisect_right(starts, k) - 1 for k in ksids]
    assert [shard_map.find(k) for k in ksids] == expected
    assert shard_map.find_many(ksids) == expected
    assert shard_map.find_many(tuple(ksids)) == expected
    assert shard_map.find_many(iter(ksids)) == expected
    assert len(shard_map) == len(starts)


def test_vitess_shard_ranges(impl: ModuleType) -> None:
    """Shards -40, 40-80, 80-c0, c0-: each boundary keyspace id belongs to the shard it starts."""
    shard_map = impl.ShardMap([b"", b"\x40", b"\x80", b"\xc0"])
    cases = {b"": 0, b"\x00" * 8: 0, b"\x3f" + b"\xff" * 7: 0, b"\x40": 1, b"\x40" + b"\x00" * 7: 1,
             b"\x7f\xff": 1, b"\x80": 2, b"\xbf" * 9: 2, b"\xc0": 3, b"\xff" * 8: 3, b"\xff" * 20: 3}
    assert {k: shard_map.find(k) for k in cases} == cases


def test_single_shard(impl: ModuleType) -> None:
    shard_map = impl.ShardMap([b""])
    assert len(shard_map) == 1
    assert shard_map.find_many([b"", b"\x00", b"\xff" * 8, b"\xff" * 16]) == [0, 0, 0, 0]
    assert shard_map.find_many([]) == []


def test_find_agrees_with_the_twin_at_every_boundary(impl: ModuleType) -> None:
    """Starts longer than 8 bytes disable the compiled uint64 path; results must not change."""
    for starts in ([b"", b"\x80"], [b"", b"\x80", b"\x80\x00\x00\x00\x00\x00\x00\x00\x00"]):
        keys = [b"\x7f" + b"\xff" * 7, b"\x80" + b"\x00" * 7, b"\x80" + b"\x00" * 8, b"\x80" + b"\x00" * 7 + b"\x01"]
        assert impl.ShardMap(starts).find_many(keys) == twin.ShardMap(starts).find_many(keys)


class Bytes(bytes):
    pass


BAD_STARTS = [
    [],
    [b"\x00"],
    [b"\x80", b""],
    [b"", b"\x80", b"\x40"],
    [b"", b"\x80", b"\x80"],
    [b"", "80"],
    [b"", bytearray(b"\x80")],
    [None],
    5,
]


@pytest.mark.parametrize("starts", BAD_STARTS, ids=repr)
def test_bad_starts_raise_like_the_twin(impl: ModuleType, starts: object) -> None:
    expected = raised(twin.ShardMap, starts)
    assert expected is not None and expected[0] in (TypeError, ValueError)
    assert raised(impl.ShardMap, starts) == expected


@pytest.mark.parametrize("ksid", [None, "80", bytearray(b"\x80"), 0x80], ids=repr)
def test_bad_keyspace_id_raises_like_the_twin(impl: ModuleType, ksid: object) -> None:
    shard_map, reference = impl.ShardMap([b"", b"\x80"]), twin.ShardMap([b"", b"\x80"])
    expected = raised(reference.find, ksid)
    assert expected is not None and expected[0] is TypeError
    assert raised(shard_map.find, ksid) == expected
    assert raised(shard_map.find_many, [b"\x00", ksid]) == raised(reference.find_many, [b"\x00", ksid])


def test_starts_may_be_any_sequence_of_bytes(impl: ModuleType) -> None:
    shard_map = impl.ShardMap(iter((Bytes(b""), Bytes(b"\x80"))))
    assert shard_map.find(Bytes(b"\x81")) == 1
    assert len(shard_map) == 2
