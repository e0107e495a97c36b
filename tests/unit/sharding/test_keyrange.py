"""Key ranges: Vitess notation, normalization, containment, splitting and shard-list coverage."""
from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharding.errors import KeyRangeError
from sharding.keyrange import (
    FULL,
    KeyRange,
    check_coverage,
    generate_shard_ranges,
    is_valid_shard_name,
    next_prefix,
)
from tests.support.shared import load_vectors

VECTORS = load_vectors("vitess_vindex_vectors")["key_ranges"]

keys = st.binary(max_size=6)


def padded_cmp(a: bytes, b: bytes) -> int:
    """Compare keyspace ids as Vitess does for ranges: as if padded with zero bytes."""
    width = max(len(a), len(b))
    x, y = a.ljust(width, b"\x00"), b.ljust(width, b"\x00")
    return (x > y) - (x < y)


# --- shared vectors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "names"), sorted(VECTORS["generate_shard_ranges"].items()))
def test_generate_shard_ranges_vectors(n: str, names: list[str]) -> None:
    assert generate_shard_ranges(int(n)) == names


@pytest.mark.parametrize(
    "case", VECTORS["key_range_contains"], ids=lambda c: f"{c['start']}-{c['end']}:{c['keyspace_id_hex']}"
)
def test_contains_vectors(case: dict) -> None:
    kr = KeyRange(bytes.fromhex(case["start"]), bytes.fromhex(case["end"]))
    assert kr.contains(bytes.fromhex(case["keyspace_id_hex"])) is case["contained"]


# --- parsing and formatting -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "start", "end", "text"),
    [
        ("-80", "", "80", "-80"),
        ("80-", "80", "", "80-"),
        ("40-80", "40", "80", "40-80"),
        ("-", "", "", "-"),
        ("0", "", "", "-"),
        ("00-80", "", "80", "-80"),
        ("0000-8000", "", "80", "-80"),
        ("4000-8001", "40", "8001", "40-8001"),
        ("A0-C0", "a0", "c0", "a0-c0"),
    ],
)
def test_parse_and_format(name: str, start: str, end: str, text: str) -> None:
    kr = KeyRange.parse(name)
    assert (kr.start.hex(), kr.end.hex()) == (start, end)
    assert str(kr) == kr.format() == text
    assert KeyRange.parse(text) == kr


def test_normalization_makes_spellings_equal() -> None:
    assert KeyRange.parse("-80") == KeyRange.parse("00-80") == KeyRange.parse("0000-8000")
    assert KeyRange.parse("0") == KeyRange.parse("-") == FULL
    assert FULL.is_full and not KeyRange.parse("-80").is_full


@pytest.mark.parametrize("name", ["", "80", "8-", "-8", "80-40", "80-80", "zz-", "-0g", "40-80-c0", " -80", "-00"])
def test_parse_rejects(name: str) -> None:
    with pytest.raises(KeyRangeError):
        KeyRange.parse(name)
    assert not is_valid_shard_name(name)


def test_constructor_rejects_empty_range() -> None:
    with pytest.raises(KeyRangeError):
        KeyRange(b"\x80", b"\x40")
    with pytest.raises(KeyRangeError):
        KeyRange(b"\x80", b"\x80\x00")  # equal after normalization


# --- predicates -------------------------------------------------------------------------------------------------
def test_contains_pads_with_zeros() -> None:
    kr = KeyRange.parse("8000-c0")
    assert kr.contains(b"\x80")  # 0x80 == 0x8000... once padded
    assert not kr.contains(b"\x7f\xff")
    assert not kr.contains(b"\xc0")
    assert b"\x90" in kr and "x" not in kr


@given(start=keys, end=keys, ksid=st.binary(max_size=9))
@settings(derandomize=True, max_examples=300)
def test_contains_matches_padded_order(start: bytes, end: bytes, ksid: bytes) -> None:
    try:
        kr = KeyRange(start, end)
    except KeyRangeError:
        return
    expected = padded_cmp(ksid, start) >= 0 and (not kr.end or padded_cmp(ksid, end) < 0)
    assert kr.contains(ksid) is expected


def test_overlaps_intersect_covers() -> None:
    a, b, c = KeyRange.parse("-80"), KeyRange.parse("40-c0"), KeyRange.parse("80-")
    assert a.overlaps(b) and b.overlaps(c) and not a.overlaps(c)
    assert a.intersect(b) == KeyRange.parse("40-80")
    assert b.intersect(c) == KeyRange.parse("80-c0")
    assert a.intersect(c) is None
    assert FULL.intersect(b) == b
    assert FULL.covers(a) and a.covers(KeyRange.parse("10-20")) and not a.covers(b) and not a.covers(FULL)


def test_next_prefix() -> None:
    assert next_prefix(b"\x12") == b"\x13"
    assert next_prefix(b"\x12\xff") == b"\x13"
    assert next_prefix(b"\xff\xff") == b""  # past the top: open end
    assert next_prefix(b"") == b""


# --- splitting --------------------------------------------------------------------------------------------------
def test_split_examples() -> None:
    assert [str(k) for k in KeyRange.parse("-80").split(2)] == ["-40", "40-80"]
    assert [str(k) for k in KeyRange.parse("40-80").split(4)] == ["40-50", "50-60", "60-70", "70-80"]
    assert [str(k) for k in KeyRange.parse("40-41").split(2)] == ["40-4080", "4080-41"]
    assert FULL.split(1) == [FULL]
    with pytest.raises(KeyRangeError):
        FULL.split(0)


def test_generate_shard_ranges_bounds() -> None:
    assert generate_shard_ranges(4) == ["-40", "40-80", "80-c0", "c0-"]
    names = generate_shard_ranges(300)  # past one byte: two-byte bounds, like Vitess's %04x
    assert names[0] == "-00da" and names[-1].endswith("-") and len(names) == 300
    assert check_coverage(names) == []
    with pytest.raises(KeyRangeError):
        generate_shard_ranges(0)
    with pytest.raises(KeyRangeError):
        generate_shard_ranges(65537)


def test_generate_shard_ranges_tiles_where_vitess_float_rounding_would_not() -> None:
    # Vitess computes float(i) * (256 / n): for n = 49 the last end rounds to 255 and leaves "ff-" uncovered.
    # Exact integer floors keep the tiling complete.
    assert check_coverage(generate_shard_ranges(49)) == []
    assert generate_shard_ranges(49)[-1].endswith("-")


@given(start=keys, end=keys, n=st.integers(min_value=1, max_value=70))
@settings(derandomize=True, max_examples=200)
def test_split_tiles_the_range(start: bytes, end: bytes, n: int) -> None:
    try:
        kr = KeyRange(start, end)
    except KeyRangeError:
        return
    parts = kr.split(n)
    assert len(parts) == n
    assert parts[0].start == kr.start and parts[-1].end == kr.end
    for left, right in pairwise(parts):
        assert left.end == right.start and left.end  # contiguous, non-empty
    if kr.is_full:
        assert check_coverage([str(p) for p in parts]) == []


@given(n=st.integers(min_value=1, max_value=256))
@settings(derandomize=True, max_examples=60)
def test_generated_ranges_cover_every_key_once(n: int) -> None:
    names = generate_shard_ranges(n)
    assert len(names) == n and check_coverage(names) == []
    starts = [int.from_bytes(KeyRange.parse(x).start.ljust(1, b"\x00"), "big") for x in names]
    widths = {b - a for a, b in zip(starts, [*starts[1:], 256], strict=True)}
    assert widths <= {256 // n, 256 // n + 1}  # as even as whole bytes allow
    if n & (n - 1) == 0:
        assert widths == {256 // n}  # powers of two split exactly


# --- coverage ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("names", "problems"),
    [
        (["-80", "80-"], []),
        (["0"], []),
        (["-"], []),
        (["-40", "80-"], ["gap between -40 and 80-: 40-80 is not covered"]),
        (["-80", "40-c0", "c0-"], ["overlap between -80 and 40-c0: 40-80 is covered twice"]),
        (["40-80"], ["gap before 40-80: -40 is not covered", "gap after 40-80: 80- is not covered"]),
        (["-80", "80-", "-"], ["overlap between -80 and -: -80 is covered twice",
                               "overlap between - and 80-: 80- is covered twice"]),
        (["-80", "-80", "80-"], ["overlap between -80 and -80: -80 is covered twice"]),
        ([], ["no shards: - is not covered"]),
        (["-80", "zz"], ["invalid shard name 'zz': invalid key range 'zz': expected hex bounds around a dash "
                         "(-80, 80-, 40-80), '-' or '0'", "gap after -80: 80- is not covered"]),
        (["c0-", "-40", "40-80"], ["gap between 40-80 and c0-: 80-c0 is not covered"]),
    ],
)
def test_check_coverage(names: list[str], problems: list[str]) -> None:
    assert check_coverage(names) == problems


@given(
    cuts=st.sets(st.binary(min_size=1, max_size=2).filter(lambda b: b[-1:] != b"\x00"), max_size=12),
    drop=st.integers(min_value=0, max_value=20),
)
@settings(derandomize=True, max_examples=200)
def test_coverage_of_random_tilings(cuts: set[bytes], drop: int) -> None:
    bounds = [b"", *sorted(cuts), b""]
    ranges = [KeyRange(a, b) for a, b in pairwise(bounds)]
    names = [str(r) for r in ranges]
    assert check_coverage(names) == []
    # every keyspace id is in exactly one shard
    for probe in [b"", b"\x00", b"\x7f\xff", b"\x80", b"\xff\xff\xff", *cuts]:
        assert sum(r.contains(probe) for r in ranges) == 1
    if len(names) > 1:
        victim = drop % len(names)
        problems = check_coverage(names[:victim] + names[victim + 1:])
        assert len(problems) == 1 and problems[0].startswith("gap")
        assert f"{ranges[victim]} is not covered" in problems[0]
        problems = check_coverage([*names, names[victim]])
        assert problems == [f"overlap between {names[victim]} and {names[victim]}: {names[victim]} is covered twice"]
