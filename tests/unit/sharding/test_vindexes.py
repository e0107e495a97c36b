"""Every vindex type against Vitess's keyspace-id vectors, plus params, protocols, costs and value coercion."""
from __future__ import annotations

import inspect
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import cython_ext
from sharding.destination import ALL_SHARDS, NO_SHARD, KeyRangeDest, KeyspaceId, KeyspaceIds
from sharding.errors import InternalError, InvalidValueError, RoutingError, VSchemaError
from sharding.keyrange import FULL, KeyRange
from sharding.vindexes import registry
from sharding.vindexes.base import (
    Hashing,
    Lookup,
    MultiColumn,
    Prefixable,
    Reversible,
    Sequential,
    SingleColumn,
    Vindex,
)
from sharding.vindexes.cfc import like_prefix
from sharding.vindexes.lookup import LookupVindex
from tests.support.shared import load_vectors

VECTORS = load_vectors("vitess_vindex_vectors")
LOOKUP_PARAMS = {"table": "t", "from": "f", "to": "k"}


def make(type_name: str, params: dict[str, str] | None = None, name: str = "v") -> Any:
    vindex, _ = registry.create(type_name, name, params or {})
    return vindex


def sql_value(value: Any, input_type: str, utf8_hex: str | None = None) -> Any:
    """A vector's input as the router holds it: ints, floats, str (varchar), bytes (varbinary), None (NULL)."""
    if utf8_hex is not None:
        return bytes.fromhex(utf8_hex)
    if input_type == "varbinary":
        return value.encode("utf-8")
    return value


def expected_destination(case: dict[str, Any]) -> Any:
    kind = case.get("destination")
    if kind == "DestinationNone":
        return NO_SHARD
    if kind == "DestinationAllShards":
        return ALL_SHARDS
    if kind == "DestinationKeyRange":
        kr = case["key_range"]
        return KeyRangeDest(KeyRange(bytes.fromhex(kr["start"]), bytes.fromhex(kr["end"])))
    return KeyspaceId(bytes.fromhex(case["keyspace_id_hex"]))


# --- the shared keyspace-id vectors -----------------------------------------------------------------------------
VECTOR_CASES = [
    pytest.param(family, i, case, id=f"{family}-{i}")
    for family, cases in VECTORS["vindexes"].items()
    for i, case in enumerate(cases)
]


def vector_vindex(family: str, case: dict[str, Any], tmp_path: Path) -> Any:
    """The vindex a vector family was computed with (``vindex_params``; per-case ``params`` win)."""
    spec = VECTORS["vindex_params"].get(family)
    type_name = spec["type"] if isinstance(spec, dict) else family
    params = dict(spec["params"]) if isinstance(spec, dict) and isinstance(spec.get("params"), dict) else {}
    if "json_file_content" in (spec or {}):
        path = tmp_path / "numeric_static_map.json"
        path.write_text(json.dumps(spec["json_file_content"]))
        params["json_path"] = str(path)
    params.update(case.get("params") or {})
    return make(type_name, params)


@pytest.mark.parametrize(("family", "index", "case"), VECTOR_CASES)
def test_keyspace_id_vectors(family: str, index: int, case: dict[str, Any], tmp_path: Path) -> None:
    vindex = vector_vindex(family, case, tmp_path)
    expected = expected_destination(case)
    if isinstance(case["input"], list):  # multi-column
        row = [sql_value(v, t) for v, t in zip(case["input"], case["input_type"], strict=True)]
        assert vindex.map_rows([row]) == [expected]
        if isinstance(expected, KeyspaceId):
            assert vindex.verify_rows([row], [expected.ksid]) == [True]
        return
    value = sql_value(case["input"], case["input_type"], case.get("input_utf8_hex"))
    assert vindex.map([value]) == [expected]
    assert vindex.map([value, value]) == [expected, expected]  # the batch path
    if isinstance(expected, KeyspaceId):
        assert vindex.verify([value], [expected.ksid]) == [True]
        assert vindex.verify([value], [expected.ksid + b"x"]) == [False]
        assert vindex.hash(value) == expected.ksid
        if isinstance(vindex, Reversible) and value is not None and family != "binary":
            mask = (1 << 64) - 1
            assert vindex.reverse(expected.ksid) == (value & mask if isinstance(value, int) else value)
    else:
        with pytest.raises(InvalidValueError):
            vindex.hash(value)


def test_every_vector_family_is_a_registered_type() -> None:
    for family in VECTORS["vindexes"]:
        spec = VECTORS["vindex_params"].get(family)
        type_name = spec["type"] if isinstance(spec, dict) else family
        assert type_name in registry.known_types(), family


@pytest.mark.parametrize("case", VECTORS["unicode_loose_golden"]["cases"], ids=lambda c: c["input"][:12])
def test_unicode_loose_golden(case: dict[str, Any]) -> None:
    text = case["input"]
    assert make("unicode_loose_md5").map([text]) == [KeyspaceId(bytes.fromhex(case["unicode_loose_md5_hex"]))]
    assert make("unicode_loose_xxhash").map([text]) == [KeyspaceId(bytes.fromhex(case["unicode_loose_xxhash_hex"]))]


CFC_CASES = VECTORS["derived_not_from_tests"]["cfc"]["cases"]


@pytest.mark.parametrize("case", CFC_CASES, ids=lambda c: f"{c['params']['hash']}-{c['mode']}-{c['input']}")
def test_cfc_vectors(case: dict[str, Any]) -> None:
    vindex = make("cfc", case["params"])
    value = sql_value(case["input"], case["input_type"])
    if case["mode"] == "equality":
        assert vindex.map([value]) == [expected_destination(case)]
    else:
        prefix = vindex.prefix_vindex()
        assert prefix.map([value + b"%"]) == [expected_destination(case)]
        assert not prefix.is_unique and prefix.cost == len(vindex.offsets)


@pytest.mark.parametrize(
    "case", VECTORS["lookup_unicodeloosemd5_hash_from_values"]["cases"], ids=lambda c: str(c["input"])
)
def test_lookup_unicodeloosemd5_hash_from_values(case: dict[str, Any]) -> None:
    for type_name in ("lookup_unicodeloosemd5_hash", "lookup_unicodeloosemd5_hash_unique"):
        vindex = make(type_name, LOOKUP_PARAMS)
        assert vindex.from_value(case["input"]) == case["from_column_value_uint64"]
        assert vindex.from_value(str(case["input"])) == case["from_column_value_uint64"]


# --- value coercion ---------------------------------------------------------------------------------------------
ONE_KSID = bytes.fromhex("166b40b44aba4bd6")


@pytest.mark.parametrize("value", [1, "1", b"1", 1.0, Decimal("1"), Decimal("1.000"), "+1", "0001", True])
def test_hash_reads_integers_however_they_arrive(value: Any) -> None:
    assert make("hash").map([value]) == [KeyspaceId(ONE_KSID)]


@pytest.mark.parametrize(
    "value",
    [None, 1.5, "1.5", "abc", "", " 1", "1_0", "\uff11", 2**64, -(2**63) - 1, float("nan"), float("inf"), [1], {}],
)
def test_hash_maps_non_integers_to_no_shard(value: Any) -> None:
    assert make("hash").map([value]) == [NO_SHARD]


def test_hash_negative_is_twos_complement() -> None:
    ksid = make("hash").map([-1])[0]
    assert make("hash").map(["-1", 2**64 - 1, b"18446744073709551615"]) == [ksid] * 3


def test_xxhash_hashes_text_forms() -> None:
    xx = make("xxhash")
    assert xx.map([5.0]) == xx.map([5]) == xx.map(["5"]) == xx.map([b"5"])  # a JavaScript 5 lands with 5
    assert xx.map([1.5]) == xx.map(["1.5"])
    assert xx.map([1234567.5]) == xx.map(["1.2345675e+06"])  # Go's shortest float text, as Vitess keeps it
    assert xx.map([Decimal("2.50")]) == xx.map(["2.50"])
    assert xx.map([None]) == xx.map([b""])
    assert xx.map([object()]) == [NO_SHARD]


def test_binary_identity_and_null() -> None:
    binary = make("binary")
    assert binary.map([b"\x01\x02", "ab", None, 7]) == [
        KeyspaceId(b"\x01\x02"),
        KeyspaceId(b"ab"),
        KeyspaceId(b""),
        KeyspaceId(b"7"),
    ]


def test_unicode_loose_rejects_invalid_utf8() -> None:
    assert make("unicode_loose_md5").map([b"\xff\xfe"]) == [NO_SHARD]
    assert make("unicode_loose_xxhash").map([b"\xff"]) == [NO_SHARD]


def test_batch_map_uses_the_batch_hash_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_vhash_many = cython_ext.hashing.vhash_many
    real_xx_many = cython_ext.hashing.xxhash_ksid_many

    def vhash_many(values: list[int]) -> list[bytes]:
        calls.append(f"vhash_many:{len(values)}")
        return real_vhash_many(values)

    def xxhash_ksid_many(values: list[Any]) -> list[bytes]:
        calls.append(f"xxhash_ksid_many:{len(values)}")
        return real_xx_many(values)

    monkeypatch.setattr(cython_ext.hashing, "vhash_many", vhash_many)
    monkeypatch.setattr(cython_ext.hashing, "xxhash_ksid_many", xxhash_ksid_many)
    values = [*range(50), None, "x", 1.5, object()]
    hashed = make("hash").map(values)
    assert hashed[:3] == [KeyspaceId(k) for k in real_vhash_many([0, 1, 2])]
    assert hashed[-4:] == [NO_SHARD] * 4
    assert len(make("xxhash").map(values)) == len(values)
    assert calls == ["vhash_many:50", "xxhash_ksid_many:53"]  # one call each, over the hashable values only


# --- reversible and sequential ----------------------------------------------------------------------------------
def test_reverse() -> None:
    assert make("hash").reverse(ONE_KSID) == 1
    assert make("numeric").reverse(bytes.fromhex("0000000000000007")) == 7
    assert make("reverse_bits").reverse(bytes.fromhex("c000000000000000")) == 3
    assert make("binary").reverse(b"abc") == b"abc"
    with pytest.raises(InvalidValueError):
        make("hash").reverse(b"\x01")


def test_range_map() -> None:
    numeric = make("numeric")
    one_to_three = KeyRange(bytes.fromhex("0000000000000001"), bytes.fromhex("0000000000000004"))
    assert numeric.range_map(1, 3) == KeyRangeDest(one_to_three)
    assert numeric.range_map(3, 1) == NO_SHARD
    assert numeric.range_map("x", 1) == NO_SHARD
    assert numeric.range_map(0, 2**64 - 1) == KeyRangeDest(FULL)
    assert make("binary").range_map(b"\x40", b"\x80") == KeyRangeDest(KeyRange.parse("40-81"))
    assert make("binary").range_map(b"\x40", b"\xff") == KeyRangeDest(KeyRange.parse("40-"))


# --- cfc --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        (b"abc%", b"abc"),
        (b"ab_d", b"ab"),
        (b"a\\%b%", b"a%b"),
        (b"a\\_b", b"a_b"),
        (b"a\\nb%", b"a\nb"),
        (b"a\\\\b%", b"a\\b"),
        (b"ab\\", b"ab\\"),
        (b"%", b""),
        (b"plain", b"plain"),
    ],
)
def test_like_prefix(pattern: bytes, prefix: bytes) -> None:
    assert like_prefix(pattern) == prefix


def test_cfc_without_hash_is_identity() -> None:
    cfc = make("cfc")
    assert cfc.map([b"abcd"]) == [KeyspaceId(b"abcd")]
    assert cfc.prefix_vindex().map([b"ab%"]) == [KeyRangeDest(KeyRange.parse("6162-6163"))]
    assert cfc.prefix_vindex().cost == 2


def test_cfc_key_shorter_than_its_parts_maps_nowhere() -> None:
    cfc = make("cfc", {"hash": "md5", "offsets": "[3,5]"})
    assert cfc.map([b"abcd"]) == [NO_SHARD]
    assert cfc.map([b"abcde"])[0].ksid == cfc.compute_ksid(b"abcde", prefix=True)


# --- lookups ----------------------------------------------------------------------------------------------------
def test_lookup_params_are_parsed() -> None:
    vindex = make(
        "lookup",
        {**LOOKUP_PARAMS, "from": "a, b", "autocommit": "true", "write_only": "false", "read_lock": "shared",
         "ignore_nulls": "true", "batch_lookup": "true", "no_verify": "true", "multi_shard_autocommit": "true"},
    )
    lk = vindex.lookup
    assert (lk.table, lk.from_columns, lk.to) == ("t", ("a", "b"), "k")
    assert lk.autocommit and lk.ignore_nulls and lk.batch_lookup and lk.no_verify and lk.multi_shard_autocommit
    assert not lk.write_only and lk.read_lock == "shared"
    assert make("lookup_unique", LOOKUP_PARAMS).lookup.read_lock == "exclusive"


def test_lookup_map_result() -> None:
    unique = make("lookup_unique", LOOKUP_PARAMS)
    assert unique.map_result([1, 2], [[b"\x01"], []]) == [KeyspaceId(b"\x01"), NO_SHARD]
    with pytest.raises(RoutingError):
        unique.map_result([1], [[b"\x01", b"\x02"]])
    non_unique = make("lookup", LOOKUP_PARAMS)
    assert non_unique.map_result([1], [[b"\x01", b"\x02"]]) == [KeyspaceIds((b"\x01", b"\x02"))]
    write_only = make("lookup", {**LOOKUP_PARAMS, "write_only": "true"})
    assert write_only.map_result([1, 2], [[], []]) == [KeyRangeDest(FULL), KeyRangeDest(FULL)]


@pytest.mark.parametrize("type_name", ["lookup_hash", "lookup_hash_unique", "lookup_unicodeloosemd5_hash"])
def test_hashed_lookups_store_the_number_behind_the_keyspace_id(type_name: str) -> None:
    vindex = make(type_name, LOOKUP_PARAMS)
    assert vindex.to_value(ONE_KSID) == 1
    assert vindex.ksid_from_to(1) == vindex.ksid_from_to("1") == ONE_KSID
    assert vindex.map_result([7], [[1]]) in ([KeyspaceId(ONE_KSID)], [KeyspaceIds((ONE_KSID,))])


def test_plain_lookup_stores_keyspace_id_bytes() -> None:
    vindex = make("consistent_lookup_unique", LOOKUP_PARAMS)
    assert vindex.to_value(ONE_KSID) == ONE_KSID
    assert vindex.ksid_from_to(ONE_KSID) == ONE_KSID
    assert vindex.from_value("Text") == "Text"


# --- costs, uniqueness, protocols -------------------------------------------------------------------------------
SAMPLE_PARAMS: dict[str, dict[str, str]] = {
    "binary": {},
    "binary_md5": {},
    "cfc": {"hash": "md5", "offsets": "[2]"},
    "consistent_lookup": LOOKUP_PARAMS,
    "consistent_lookup_unique": LOOKUP_PARAMS,
    "hash": {},
    "lookup": LOOKUP_PARAMS,
    "lookup_hash": LOOKUP_PARAMS,
    "lookup_hash_unique": LOOKUP_PARAMS,
    "lookup_unicodeloosemd5_hash": LOOKUP_PARAMS,
    "lookup_unicodeloosemd5_hash_unique": LOOKUP_PARAMS,
    "lookup_unique": LOOKUP_PARAMS,
    "multicol": {"column_count": "2"},
    "null": {},
    "numeric": {},
    "numeric_static_map": {"json": "{}"},
    "region_experimental": {"region_bytes": "1"},
    "reverse_bits": {},
    "unicode_loose_md5": {},
    "unicode_loose_xxhash": {},
    "xxhash": {},
}

# Vitess's costs: 0 the value is the keyspace id, 1 computed, 10/20 unique/non-unique lookup; null is a last resort.
EXPECTED = {  # type: (cost, unique, needs_vcursor)
    "binary": (0, True, False),
    "numeric": (0, True, False),
    "hash": (1, True, False),
    "xxhash": (1, True, False),
    "binary_md5": (1, True, False),
    "reverse_bits": (1, True, False),
    "unicode_loose_md5": (1, True, False),
    "unicode_loose_xxhash": (1, True, False),
    "numeric_static_map": (1, True, False),
    "region_experimental": (1, True, False),
    "cfc": (1, True, False),
    "multicol": (2, True, False),  # the sum of its column vindexes: hash + hash
    "null": (100, True, False),
    "lookup_unique": (10, True, True),
    "lookup_hash_unique": (10, True, True),
    "consistent_lookup_unique": (10, True, True),
    "lookup_unicodeloosemd5_hash_unique": (10, True, True),
    "lookup": (20, False, True),
    "lookup_hash": (20, False, True),
    "consistent_lookup": (20, False, True),
    "lookup_unicodeloosemd5_hash": (20, False, True),
}


def builtin_types() -> list[str]:
    return [t for t in registry.known_types() if t != "lookup_cost"]  # lookup_cost: registered by test_vschema


def test_every_builtin_type_has_sample_params_and_expectations() -> None:
    assert sorted(builtin_types()) == sorted(SAMPLE_PARAMS) == sorted(EXPECTED)


@pytest.mark.parametrize("type_name", sorted(EXPECTED))
def test_cost_uniqueness_and_vcursor(type_name: str) -> None:
    vindex, warnings = registry.create(type_name, "v", SAMPLE_PARAMS[type_name])
    assert (vindex.cost, vindex.is_unique, vindex.needs_vcursor) == EXPECTED[type_name]
    assert (vindex.name, vindex.type) == ("v", type_name)
    assert warnings == []


def protocol_members(proto: type) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for klass in reversed(proto.__mro__):
        if klass in (object,) or klass.__module__ == "typing":
            continue
        members.update({k: v for k, v in vars(klass).items() if not k.startswith("_")})
    return members


def assert_implements(obj: Any, proto: type) -> None:
    """``isinstance`` against the runtime protocol, and each method's parameters named as the protocol's."""
    assert isinstance(obj, proto), f"{obj!r} is not a {proto.__name__}"
    for name, member in protocol_members(proto).items():
        assert hasattr(obj, name), f"{type(obj).__name__} lacks {proto.__name__}.{name}"
        if inspect.isfunction(member):
            wanted = list(inspect.signature(member).parameters)[1:]
            got = list(inspect.signature(getattr(obj, name)).parameters)
            assert got == wanted, f"{type(obj).__name__}.{name}{got} != {proto.__name__}.{name}{wanted}"


@pytest.mark.parametrize("type_name", sorted(SAMPLE_PARAMS))
def test_registered_vindexes_satisfy_the_protocols_they_claim(type_name: str) -> None:
    """Vitess's ``var _ SingleColumn = (*Hash)(nil)``, checked for every registered type."""
    vindex = make(type_name, SAMPLE_PARAMS[type_name])
    claims = type(vindex).implements
    assert claims, f"{type_name} claims no capability"
    assert_implements(vindex, Vindex)
    for proto in claims:
        assert_implements(vindex, proto)
    assert not (SingleColumn in claims and MultiColumn in claims)
    assert (Lookup in claims) == vindex.needs_vcursor
    if Prefixable in claims:
        assert_implements(vindex.prefix_vindex(), SingleColumn)
    if Hashing in claims:
        assert vindex.is_unique and not vindex.needs_vcursor


def test_capabilities_claimed_as_vitess() -> None:
    def claims(t: str) -> set[type]:
        return set(type(make(t, SAMPLE_PARAMS[t])).implements)

    assert {Reversible, Hashing} <= claims("hash")
    assert Reversible not in claims("xxhash")
    assert {Sequential, Reversible} <= claims("numeric") and Sequential in claims("binary")
    assert claims("multicol") == {MultiColumn} == claims("region_experimental")
    assert Prefixable in claims("cfc")


# --- registry and params ----------------------------------------------------------------------------------------
def test_unknown_type_is_an_error() -> None:
    with pytest.raises(VSchemaError) as err:
        registry.create("hahs", "v", {})
    assert err.value.problems == ["type: unknown vindex type 'hahs'"]


def test_unknown_param_is_a_warning() -> None:
    vindex, warnings = registry.create("hash", "h", {"foo": "1"})
    assert vindex.unknown_params() == ("foo",)
    assert [(w.param, str(w)) for w in warnings] == [("foo", "unknown param 'foo' for vindex type 'hash'")]
    _, warnings = registry.create("consistent_lookup", "c", {**LOOKUP_PARAMS, "autocommit": "true"})
    assert [w.param for w in warnings] == ["autocommit"]  # consistent lookups cannot autocommit
    _, warnings = registry.create("multicol", "m", {"column_count": "1", "column_vindex": "numeric_static_map",
                                                    "json": "{}", "bogus": "x"})
    assert [w.param for w in warnings] == ["bogus"]  # 'json' went to the column vindex


def test_lookup_without_table_warns_but_loads() -> None:
    _, warnings = registry.create("lookup_unique", "l", {})
    assert [(w.param, str(w)) for w in warnings] == [
        ("", "missing 'table', 'from', 'to': lookups through this vindex cannot run until set")
    ]


@pytest.mark.parametrize(
    ("type_name", "params", "problem"),
    [
        ("region_experimental", {}, "params.region_bytes: missing required param (1 or 2)"),
        ("region_experimental", {"region_bytes": "3"}, "params.region_bytes: must be 1 or 2, got '3'"),
        ("multicol", {}, "params.column_count: missing required param (number of columns, 1..8)"),
        ("multicol", {"column_count": "9"}, "params.column_count: must be a number of columns from 1 to 8, got '9'"),
        ("multicol", {"column_count": "x"}, "params.column_count: must be a number of columns from 1 to 8, got 'x'"),
        ("multicol", {"column_count": "2", "column_bytes": "1,2,3"}, "params.column_bytes: 3 entries for 2 columns"),
        ("multicol", {"column_count": "2", "column_bytes": "7,2"},
         "params.column_bytes: the columns need more than the 8 bytes of a keyspace id"),
        ("multicol", {"column_count": "2", "column_vindex": "hash,lookup"},
         "params.column_vindex: column 1: 'lookup' is not a unique functional hashing vindex"),
        ("multicol", {"column_count": "1", "column_vindex": "nope"},
         "params.column_vindex: column 0: vindex 'nope': type: unknown vindex type 'nope'"),
        ("cfc", {"hash": "sha1"}, "params.hash: must be '', 'md5' or 'xxhash64', got 'sha1'"),
        ("cfc", {"hash": "md5"}, "params.offsets: required when 'hash' is set"),
        ("cfc", {"hash": "md5", "offsets": "[5,3]"},
         "params.offsets: expected sorted positive integers in brackets, e.g. [2,4], got '[5,3]'"),
        ("cfc", {"hash": "md5", "offsets": "[0]"},
         "params.offsets: expected sorted positive integers in brackets, e.g. [2,4], got '[0]'"),
        ("numeric_static_map", {}, "params.json_path: give exactly one of 'json_path' or 'json' (neither given)"),
        ("numeric_static_map", {"json": "{}", "json_path": "x"},
         "params.json_path: give exactly one of 'json_path' or 'json' (both given)"),
        ("numeric_static_map", {"json": '{"a": 1}'}, "params.json: key 'a' is not a uint64"),
        ("numeric_static_map", {"json": '{"1": -1}'}, "params.json: value -1 for key '1' is not a uint64"),
        ("numeric_static_map", {"json": "[1]"}, "params.json: expected a JSON object of uint64 -> uint64, got list"),
        ("numeric_static_map", {"json": "{}", "fallback_type": "lookup"},
         "params.fallback_type: 'lookup' is not a unique functional vindex"),
        ("lookup", {"autocommit": "yes"}, "params.autocommit: must be 'true' or 'false', got 'yes'"),
        ("lookup_unique", {"read_lock": "unknown"},
         "params.read_lock: must be one of exclusive, shared, none, got 'unknown'"),
        ("lookup", {"from": "a,,b"}, "params.from: expected comma-separated column names, got 'a,,b'"),
        ("consistent_lookup", {"write_only": "1"}, "params.write_only: must be 'true' or 'false', got '1'"),
    ],
)
def test_bad_params_are_errors(type_name: str, params: dict[str, str], problem: str) -> None:
    with pytest.raises(VSchemaError) as err:
        registry.create(type_name, "v", params)
    assert err.value.problems == [problem]


def test_numeric_static_map_json_path_errors(tmp_path: Path) -> None:
    with pytest.raises(VSchemaError, match="cannot read"):
        registry.create("numeric_static_map", "v", {"json_path": str(tmp_path / "missing.json")})
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(VSchemaError, match="is not valid JSON"):
        registry.create("numeric_static_map", "v", {"json_path": str(bad)})


def test_multicol_column_bytes_and_short_column_hashes() -> None:
    assert make("multicol", {"column_count": "3"}).column_bytes == (3, 3, 2)
    assert make("multicol", {"column_count": "2"}).column_bytes == (4, 4)
    assert make("multicol", {"column_count": "3", "column_bytes": ",2,"}).column_bytes == (3, 2, 3)
    # a binary column shorter than its share is zero-padded so the next column keeps its place
    mc = make("multicol", {"column_count": "2", "column_vindex": "binary,numeric"})
    assert mc.map_rows([[b"a", 1]]) == [KeyspaceId(b"a\x00\x00\x00\x00\x00\x00\x00")]
    assert mc.map_rows([[b"a", 1, 2]]) == [NO_SHARD]  # more columns than it has


def test_register_twice_is_a_bug_and_unregister_forgets() -> None:
    registry.register("test_only_type", lambda name, params: LookupVindex(name, params, type_name="test_only_type"))
    try:
        with pytest.raises(InternalError):
            registry.register("test_only_type", LookupVindex)
        assert make("test_only_type", LOOKUP_PARAMS).type == "test_only_type"
    finally:
        registry.unregister("test_only_type")
    assert "test_only_type" not in registry.known_types()


def test_vindexes_compare_by_definition() -> None:
    assert make("hash") == make("hash") and hash(make("hash")) == hash(make("hash"))
    assert make("hash") != make("hash", name="other")
    assert make("lookup", LOOKUP_PARAMS) != make("lookup_unique", LOOKUP_PARAMS)
    assert "hash" in repr(make("hash"))
