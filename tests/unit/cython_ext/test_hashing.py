"""The vindex hashes, compiled and twin, against Vitess's own vectors and independent oracles.

Every test body runs once per implementation (uvloop's ``_TestTCP`` habit, as a parametrized fixture). The
compiled module is required under ``CI=true``; elsewhere an unbuilt tree skips it. Oracles: pycryptodome DES and
the ``xxhash`` package, test-only dependencies.
"""
from __future__ import annotations

import importlib
import struct
from types import ModuleType

import pytest
import xxhash
from Crypto.Cipher import DES
from hypothesis import given, settings
from hypothesis import strategies as st

from cython_ext.pure import hashing as twin
from cython_ext.pure import shardmap as twin_shardmap
from tests.support.shared import load_vectors
from tests.support.twins import load_compiled

MASK64 = (1 << 64) - 1
U64_RANGE = st.integers(min_value=-(1 << 63), max_value=MASK64)
VINDEXES = load_vectors("vitess_vindex_vectors")["vindexes"]
_DES = DES.new(bytes(8), DES.MODE_ECB)




@pytest.fixture(scope="module", params=["cython", "python"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return load_compiled("hashing") if request.param == "cython" else twin


def des_oracle(value: int) -> bytes:
    return _DES.encrypt(struct.pack(">Q", value & MASK64))


def xxhash_oracle(value: bytes | str | int) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode()
    return xxhash.xxh64_intdigest(data).to_bytes(8, "little")


def raised(fn, *args) -> tuple[type[BaseException], str] | None:
    try:
        fn(*args)
    except Exception as exc:
        return type(exc), str(exc)
    return None


# --- Vitess vectors ------------------------------------------------------------------------------------------------


def int_cases(vindex: str) -> list[dict]:
    return [c for c in VINDEXES[vindex] if isinstance(c["input"], int)]


def test_vectors_cover_the_edges() -> None:
    inputs = {c["input"] for c in int_cases("hash")}
    assert {0, -1, MASK64, -(1 << 63), (1 << 63) - 1} <= inputs
    assert len(int_cases("reverse_bits")) >= 6
    assert len([c for c in VINDEXES["xxhash"] if isinstance(c["input"], str)]) >= 3


@pytest.mark.parametrize("case", int_cases("hash"), ids=lambda c: f"{c['input_type']}:{c['input']}")
def test_hash_vectors(impl: ModuleType, case: dict) -> None:
    ksid = bytes.fromhex(case["keyspace_id_hex"])
    assert impl.vhash(case["input"]) == ksid
    assert impl.vunhash(ksid) == case["input"] & MASK64


def test_hash_null_has_no_keyspace_id(impl: ModuleType) -> None:
    """NULL maps to DestinationNone at the vindex layer; the hash itself refuses it."""
    assert [c["destination"] for c in VINDEXES["hash"] if c["input"] is None] == ["DestinationNone"]
    with pytest.raises(TypeError):
        impl.vhash(None)


@pytest.mark.parametrize("case", VINDEXES["xxhash"], ids=lambda c: f"{c['input_type']}:{c['input']}")
def test_xxhash_vectors(impl: ModuleType, case: dict) -> None:
    value = b"" if case["input"] is None else case["input"]  # Vitess hashes NULL as its ToBytes: b""
    assert impl.xxhash_ksid(value).hex() == case["keyspace_id_hex"]


@pytest.mark.parametrize("case", int_cases("reverse_bits"), ids=lambda c: f"{c['input_type']}:{c['input']}")
def test_reverse_bits_vectors(impl: ModuleType, case: dict) -> None:
    assert impl.reverse_bits64(case["input"]).to_bytes(8, "big").hex() == case["keyspace_id_hex"]


# --- random inputs: compiled == twin == oracle ----------------------------------------------------------------------


@settings(derandomize=True, max_examples=300, deadline=None)
@given(value=U64_RANGE)
def test_vhash_matches_des(impl: ModuleType, value: int) -> None:
    ksid = impl.vhash(value)
    assert ksid == twin.vhash(value) == des_oracle(value)
    assert impl.vunhash(ksid) == value & MASK64


@settings(derandomize=True, max_examples=200, deadline=None)
@given(data=st.binary(max_size=200), seed=st.integers(min_value=0, max_value=MASK64))
def test_xxhash64_matches_oracle(impl: ModuleType, data: bytes, seed: int) -> None:
    expected = xxhash.xxh64_intdigest(data, seed)
    assert impl.xxhash64(data, seed) == twin.xxhash64(data, seed) == expected
    assert impl.xxhash64(bytearray(data), seed - (1 << 64) if seed >> 63 else seed) == expected


def test_xxhash64_every_tail_length(impl: ModuleType) -> None:
    """Lengths 0..100 walk through every stripe/8-byte/4-byte/1-byte tail combination around the 32-byte block."""
    data = bytes(range(256)) * 2
    for n in range(101):
        assert impl.xxhash64(data[:n]) == xxhash.xxh64_intdigest(data[:n]), n


@settings(derandomize=True, max_examples=300, deadline=None)
@given(value=st.one_of(st.binary(max_size=200), st.text(max_size=80), U64_RANGE, st.integers()))
def test_xxhash_ksid_matches_oracle(impl: ModuleType, value: bytes | str | int) -> None:
    assert impl.xxhash_ksid(value) == twin.xxhash_ksid(value) == xxhash_oracle(value)


def test_xxhash_ksid_decimal_text_at_digit_boundaries(impl: ModuleType) -> None:
    edges = {-(1 << 63), -(1 << 63) + 1, (1 << 63) - 1, 1 << 63, MASK64, 1 << 64, -(1 << 63) - 1}
    for k in range(21):
        edges |= {10**k - 1, 10**k, 10**k + 1, -(10**k), -(10**k) + 1}
    for value in sorted(edges):
        assert impl.xxhash_ksid(value) == xxhash_oracle(value), value
    assert impl.xxhash_ksid_many(sorted(edges)) == [xxhash_oracle(v) for v in sorted(edges)]


@settings(derandomize=True, max_examples=200, deadline=None)
@given(value=U64_RANGE)
def test_reverse_bits64(impl: ModuleType, value: int) -> None:
    u = value & MASK64
    expected = sum(1 << (63 - i) for i in range(64) if u >> i & 1)
    assert impl.reverse_bits64(value) == twin.reverse_bits64(value) == expected
    assert impl.reverse_bits64(expected) == u


# --- batches ----------------------------------------------------------------------------------------------------------


@settings(derandomize=True, max_examples=50, deadline=None)
@given(values=st.lists(U64_RANGE, max_size=40))
def test_vhash_many_is_map_of_vhash(impl: ModuleType, values: list[int]) -> None:
    expected = [des_oracle(v) for v in values]
    assert impl.vhash_many(values) == expected
    assert impl.vhash_many(tuple(values)) == expected
    assert impl.vhash_many(v for v in values) == expected


@settings(derandomize=True, max_examples=50, deadline=None)
@given(values=st.lists(st.one_of(st.binary(max_size=40), st.text(max_size=10), st.integers()), max_size=40))
def test_xxhash_ksid_many_is_map_of_xxhash_ksid(impl: ModuleType, values: list) -> None:
    expected = [xxhash_oracle(v) for v in values]
    assert impl.xxhash_ksid_many(values) == expected
    assert impl.xxhash_ksid_many(iter(values)) == expected


def shard_maps() -> list[tuple[str, object]]:
    """Each ShardMap implementation at hand (test_shardmap requires the compiled one under CI) over short start
    keys (the compiled uint64 path) and long ones (its byte-compare path)."""
    short = [b"", b"\x40", b"\x80", b"\x80\x01", b"\xc0"]
    long = [b"", b"\x40\x00\x00\x00\x00\x00\x00\x00\x01", b"\x80", b"\xc0\xff\xff\xff\xff\xff\xff\xff\xff"]
    mods: list[ModuleType] = [twin_shardmap]
    try:
        mods.append(importlib.import_module("cython_ext.shardmap"))
    except ImportError:
        pass
    return [(f"{mod.__name__}:{label}", mod.ShardMap(starts))
            for mod in mods for label, starts in (("short", short), ("long", long))]


@settings(derandomize=True, max_examples=30, deadline=None)
@given(values=st.lists(U64_RANGE, max_size=40))
def test_vhash_shards_is_find_of_vhash(impl: ModuleType, values: list[int]) -> None:
    for label, shard_map in shard_maps():
        expected = [shard_map.find(des_oracle(v)) for v in values]
        assert impl.vhash_shards(values, shard_map) == expected, label
        assert impl.vhash_shards(iter(values), shard_map) == expected, label


# --- input rules: same answers and same exceptions as the twin ------------------------------------------------------


def test_integer_range_edges(impl: ModuleType) -> None:
    for ok in (-(1 << 63), MASK64, 0):
        assert impl.vhash(ok) == des_oracle(ok)
        assert impl.reverse_bits64(ok) == twin.reverse_bits64(ok)
    for bad in (-(1 << 63) - 1, 1 << 64, 1 << 200, -(1 << 200)):
        for fn in (impl.vhash, impl.reverse_bits64, lambda v: impl.xxhash64(b"", v), lambda v: impl.vhash_many([v])):
            with pytest.raises(ValueError, match=r"out of 64-bit range"):
                fn(bad)


def test_bool_is_an_int(impl: ModuleType) -> None:
    """MySQL's TRUE is 1: bools hash as 0/1, also as xxhash decimal text."""
    assert impl.vhash(True) == impl.vhash(1)
    assert impl.vhash_many([False]) == [impl.vhash(0)]
    assert impl.xxhash_ksid(True) == impl.xxhash_ksid(b"1")
    assert impl.reverse_bits64(True) == 1 << 63


def test_int_subclass_uses_its_value(impl: ModuleType) -> None:
    class Weird(int):
        def __str__(self) -> str:
            return "not a number"

        __repr__ = __str__

    assert impl.xxhash_ksid(Weird(12)) == impl.xxhash_ksid(b"12")
    assert impl.xxhash_ksid(Weird(1 << 70)) == impl.xxhash_ksid(str(1 << 70))
    assert impl.vhash(Weird(7)) == impl.vhash(7)


class Bytes(bytes):
    pass


BAD_CALLS = [
    ("vhash", (1.0,)),
    ("vhash", (None,)),
    ("vhash", ("1",)),
    ("vhash", (1 << 64,)),
    ("vunhash", (None,)),
    ("vunhash", (bytearray(8),)),
    ("vunhash", (b"1234567",)),
    ("vunhash", (b"123456789",)),
    ("vhash_many", (5,)),
    ("vhash_many", ([1, 2, "3"],)),
    ("vhash_many", ([1, -(1 << 64)],)),
    ("reverse_bits64", (None,)),
    ("reverse_bits64", (-(1 << 64),)),
    ("xxhash64", (memoryview(b"a"),)),
    ("xxhash64", ("a",)),
    ("xxhash64", (b"a", 1.5)),
    ("xxhash64", (b"a", 1 << 64)),
    ("xxhash_ksid", (None,)),
    ("xxhash_ksid", (1.5,)),
    ("xxhash_ksid", (bytearray(b"a"),)),
    ("xxhash_ksid", ("\ud800",)),
    ("xxhash_ksid_many", (None,)),
    ("xxhash_ksid_many", ([b"a", None],)),
]


@pytest.mark.parametrize(("name", "args"), BAD_CALLS, ids=[f"{n}{a!r}" for n, a in BAD_CALLS])
def test_bad_input_raises_like_the_twin(impl: ModuleType, name: str, args: tuple) -> None:
    expected = raised(getattr(twin, name), *args)
    assert expected is not None and expected[0] in (TypeError, ValueError, UnicodeEncodeError)
    assert raised(getattr(impl, name), *args) == expected


def test_subclasses_of_bytes_are_bytes(impl: ModuleType) -> None:
    ksid = impl.vhash(42)
    assert impl.vunhash(Bytes(ksid)) == 42
    assert impl.xxhash_ksid(Bytes(b"abc")) == impl.xxhash_ksid(b"abc")


def test_public_names_match_the_twin() -> None:
    compiled = load_compiled("hashing")
    assert sorted(compiled.__all__) == sorted(twin.__all__)
    assert all(callable(getattr(compiled, name)) for name in twin.__all__)
