"""The offline subcommands of ``shardgate``: exact output, exit codes, and no tracebacks on bad input."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from shardgate.cli import main
from tests.support.shared import load_vectors


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_version_names_the_implementation(capsys: pytest.CaptureFixture[str]) -> None:
    import cython_ext

    code, out, _ = run(capsys, "version")
    assert code == 0
    assert f"implementation: {cython_ext.IMPLEMENTATION}" in out.splitlines()


def test_keyspace_id_hash_of_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "keyspace-id", "--vindex", "hash", "1") == (0, "1\t166b40b44aba4bd6\n", "")


def test_keyspace_id_negative_values_are_twos_complement(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keyspace-id", "--vindex", "hash", "--", "-1", "18446744073709551615")
    assert code == 0
    first, second = out.splitlines()
    assert first.split("\t")[1] == second.split("\t")[1]


def test_keyspace_id_with_shards_adds_the_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keyspace-id", "--vindex", "hash", "--shards=-80,80-", "1", "4")
    assert code == 0
    assert out.splitlines() == ["1\t166b40b44aba4bd6\t-80", "4\td2fd8867d50d2dfe\t80-"]


def test_keyspace_id_no_keyspace_id_prints_dash(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keyspace-id", "--vindex", "hash", "--shards=-80,80-", "abc")
    assert (code, out) == (0, "abc\t-\t-\n")


def test_keyspace_id_matches_every_shared_vector_for_text_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    vectors = load_vectors("vitess_vindex_vectors")["vindexes"]
    for kind in ("hash", "xxhash", "numeric", "reverse_bits", "binary_md5", "unicode_loose_md5",
                 "unicode_loose_xxhash"):
        cases = [c for c in vectors[kind] if c["input"] is not None and c.get("keyspace_id_hex")
                 and "\n" not in str(c["input"])]
        assert cases, kind
        code, out, _ = run(capsys, "keyspace-id", "--vindex", kind, "--", *[str(c["input"]) for c in cases])
        assert code == 0
        got = [line.rsplit("\t", 1)[1] for line in out.splitlines()]
        assert got == [c["keyspace_id_hex"] for c in cases], kind


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keyspace-id", "--vindex", "nope", "1"], "--vindex: unknown vindex type 'nope'"),
        (["keyspace-id", "--vindex", "hash", "--shards=-40,80-", "1"], "gap between -40 and 80-"),
        (["keyspace-id", "--vindex", "region_experimental", "--param", "region_bytes=3", "1,1"], "region_bytes"),
        (["keyspace-id", "--vindex", "hash", "--param", "oops", "1"], "expected KEY=VALUE"),
        (["keyspace-id", "--vindex", "lookup_unique", "1"], "cannot map values offline"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                message: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_vschema_validate_ok_and_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"keyspaces": {"main": {}, "user": {
        "sharded": True, "vindexes": {"h": {"type": "hash"}},
        "tables": {"t": {"column_vindexes": [{"column": "id", "name": "h"}]}}}}}))
    code, out, _ = run(capsys, "vschema", "validate", str(good))
    assert code == 0 and "ok" in out

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keyspaces": {"user": {"sharded": True, "vindexes": {"h": {"type": "hash"}}, "tables": {
        "orders": {"column_vindexes": [{"column": "id", "name": "user_idx"}]},
        "t2": {"column_vindexes": [{"column": "id", "name": "h"}], "auto_increment": {"column": "id",
                                                                                      "sequence": "nope"}}}}}}))
    code, _, err = run(capsys, "vschema", "validate", str(bad))
    lines = err.splitlines()
    assert code == 2
    assert f"{bad}: keyspaces.user.tables.orders.column_vindexes[0].name: unknown vindex 'user_idx'" in lines
    assert any("keyspaces.user.tables.t2.auto_increment.sequence" in line for line in lines)
    assert len(lines) == 2

    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json: [")
    code, _, err = run(capsys, "vschema", "validate", str(garbage))
    assert code == 2 and "invalid JSON" in err

    code, _, err = run(capsys, "vschema", "validate", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err


def test_routing_cases_vschema_validates_with_the_test_lookup_type(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.vindexes import lookup_cost_registered

    path = tmp_path / "vschema.json"
    path.write_text(json.dumps(load_vectors("vitess_routing_cases")["vschema"]))
    code, _, err = run(capsys, "vschema", "validate", str(path))
    assert code == 2 and "unknown vindex type 'lookup_cost'" in err  # the product does not know the test type
    with lookup_cost_registered():
        code, out, _ = run(capsys, "vschema", "validate", str(path))
    assert code == 0, out


def test_passwd_prints_verifiers_only(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret-pw\n"))
    code, out, _ = run(capsys, "passwd", "app", "--role", "admin", "--password-stdin")
    assert code == 0
    assert "s3cret-pw" not in out
    (entry,) = yaml.safe_load(out)
    assert entry["name"] == "app" and entry["roles"] == ["admin"]
    assert set(entry["verifiers"]) == {"scram-sha-256", "md5", "mysql_native_password", "caching_sha2_password"}

    from sharding.auth import parse_verifier

    for method, text in entry["verifiers"].items():
        assert parse_verifier(method, text).verify_password("s3cret-pw", user="app")
        assert not parse_verifier(method, text).verify_password("wrong", user="app")


def test_console_script_has_no_traceback_on_garbage() -> None:
    result = subprocess.run([sys.executable, "-m", "shardgate", "keyspace-id", "--vindex", "hash", "--bogus"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
