"""The cluster config file: a valid full config, many broken ones (every problem one line), secrets kept out."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from sharding import auth
from sharding.config import (
    ClusterConfig,
    ListenAddress,
    SecretRef,
    TopologyConfig,
    load_config,
    parse_config,
)
from sharding.db import TLSMode
from sharding.errors import ConfigError
from sharding.keyrange import KeyRange

ENTRY = auth.make_user_entry("app", "app-password", roles=["admin"], scram_iterations=64, sha2_iterations=1000)
READER = auth.make_user_entry("reader", "reader-password", methods=["scram-sha-256", "mysql_native_password"],
                              scram_iterations=64)

VSCHEMA = {
    "keyspaces": {
        "customer": {
            "sharded": True,
            "vindexes": {"hash": {"type": "hash"}},
            "tables": {"customer": {"column_vindexes": [{"column": "customer_id", "name": "hash"}]}},
        },
        "main": {"sharded": False, "tables": {"product": {}}},
    }
}


def shard(port: int, database: str, **extra: Any) -> dict[str, Any]:
    return {"engine": "postgres", "host": "127.0.0.1", "port": port, "database": database, "user": "app",
            "password_env": "SG_TEST_PW", **extra}


def base_doc() -> dict[str, Any]:
    return {
        "listeners": {"postgres": "127.0.0.1:15432", "mysql": "127.0.0.1:15306", "metrics": "127.0.0.1:15000"},
        "users": [copy.deepcopy(ENTRY), copy.deepcopy(READER)],
        "keyspaces": {
            "customer": {"shards": {"-80": shard(5433, "customer_0"), "80-": shard(5434, "customer_1")}},
            "main": {"shards": {"0": shard(5435, "main")}},
        },
        "vschema": copy.deepcopy(VSCHEMA),
    }


def problems_of(doc: Any, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, source="cluster.yaml", base_dir=tmp_path)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


FULL_YAML = """\
listeners:
  postgres: "127.0.0.1:15432"
  mysql: "[::1]:15306"
  metrics: 0.0.0.0:15000
tls: {cert: certs/server.pem, key: certs/server.key, require: true}
users: %(users)s
keyspaces:
  customer:
    shards:
      -80: {engine: postgres, host: 127.0.0.1, port: 5433, database: customer_0, user: app,
            password_env: SG_TEST_PW, tls: {mode: verify-full, ca: certs/ca.pem}}
      80-: {engine: postgres, host: db1.internal, database: customer_1, user: app,
            password_file: secrets/customer_1}
  main:
    shards:
      0: {engine: postgres, host: 127.0.0.1, port: 5435, database: main, user: app}
vschema: %(vschema)s
topology: {store: file, path: ./topo-dir, poll_interval: 0.5}
"""


@pytest.fixture
def full_config_file(tmp_path: Path) -> Path:
    (tmp_path / "certs").mkdir()
    (tmp_path / "secrets").mkdir()
    for name in ("server.pem", "ca.pem"):
        write(tmp_path / "certs" / name, "-----BEGIN CERTIFICATE-----\n")
    write(tmp_path / "certs" / "server.key", "-----BEGIN PRIVATE KEY-----\n")
    write(tmp_path / "secrets" / "customer_1", "file-secret-1\n")
    text = FULL_YAML % {"users": json.dumps([ENTRY, READER]), "vschema": json.dumps(VSCHEMA)}
    return write(tmp_path / "cluster.yaml", text)


# --- a valid config ---------------------------------------------------------------------------------------
def test_full_config(full_config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(full_config_file)
    base = full_config_file.parent
    assert isinstance(config, ClusterConfig) and config.warnings == ()
    assert config.listeners.postgres == ListenAddress("127.0.0.1", 15432)
    assert str(config.listeners.mysql) == "[::1]:15306"
    assert config.listeners.metrics == ListenAddress("0.0.0.0", 15000)
    assert config.tls is not None and config.tls.require and config.tls.key == base / "certs" / "server.key"

    app = config.user("app")
    assert app is not None and app.is_admin and app.roles == frozenset({"admin"})
    assert set(app.verifiers) == set(auth.METHODS)
    assert dict(app.auth) == {"postgres": "scram-sha-256", "mysql": "caching_sha2_password"}
    method, verifier = app.verifier_for("postgres")  # type: ignore[misc]
    assert method == "scram-sha-256" and verifier.verify_password("app-password", user="app")
    reader = config.user("reader")
    assert reader is not None and not reader.is_admin
    assert dict(reader.auth) == {"postgres": "scram-sha-256", "mysql": "mysql_native_password"}
    assert config.user("nobody") is None

    customer = config.keyspaces["customer"]
    assert [s.name for s in customer.shards] == ["-80", "80-"] and customer.engine == "postgres"
    first, second = customer.shards
    assert first.key_range == KeyRange.parse("-80") and first.tls_mode is TLSMode.VERIFY_FULL
    assert first.tls_ca_file == base / "certs" / "ca.pem"
    assert second.port == 5432 and second.host == "db1.internal"  # the engine's default port
    assert second.password == SecretRef(file=base / "secrets" / "customer_1")
    main = config.keyspaces["main"]
    assert main.shards[0].key_range.is_full and main.shards[0].password is None

    assert config.topology == TopologyConfig("file", base / "topo-dir", 0.5)
    assert set(config.vschema.to_json()["keyspaces"]) == {"customer", "main"}

    monkeypatch.setenv("SG_TEST_PW", "env-secret-0")
    dsn = first.dsn()
    assert (dsn.engine, dsn.host, dsn.port, dsn.database, dsn.user) == ("postgres", "127.0.0.1", 5433,
                                                                        "customer_0", "app")
    assert dsn.password == "env-secret-0" and dsn.tls_mode is TLSMode.VERIFY_FULL
    assert second.dsn().password == "file-secret-1"  # the trailing newline of the file is not part of it
    assert main.shards[0].dsn().password == ""


def test_defaults(tmp_path: Path) -> None:
    doc = base_doc()
    del doc["listeners"]
    config = parse_config(doc, source="cluster.yaml", base_dir=tmp_path)
    assert str(config.listeners.postgres) == "127.0.0.1:15432" and str(config.listeners.mysql) == "127.0.0.1:15306"
    assert config.listeners.metrics is None and config.tls is None
    assert config.topology == TopologyConfig("file", tmp_path / "topo", 1.0)


def test_vschema_file(tmp_path: Path) -> None:
    write(tmp_path / "vschema.json", json.dumps(VSCHEMA))
    doc = base_doc()
    del doc["vschema"]
    doc["vschema_file"] = "vschema.json"
    config = parse_config(doc, source="cluster.yaml", base_dir=tmp_path)
    assert set(config.keyspaces) == {"customer", "main"}


def test_unquoted_shard_names_stay_strings(tmp_path: Path) -> None:
    # YAML would read -80 and 0 as integers and `on` as true; keys are always read as written.
    text = FULL_YAML.replace("tls: {cert: certs/server.pem, key: certs/server.key, require: true}\n", "")
    text = text.replace("password_file: secrets/customer_1", "password_env: X")
    text = text.replace(", tls: {mode: verify-full, ca: certs/ca.pem}", "")
    path = write(tmp_path / "cluster.yaml", text % {"users": "[]", "vschema": json.dumps(VSCHEMA)})
    config = load_config(path)
    assert [s.name for s in config.keyspaces["customer"].shards] == ["-80", "80-"]
    assert config.keyspaces["main"].shards[0].name == "0"


# --- broken configs: one line per problem -----------------------------------------------------------------
def test_gap_between_shards(tmp_path: Path) -> None:
    doc = base_doc()
    doc["keyspaces"]["customer"]["shards"] = {"-40": shard(1, "a"), "80-": shard(2, "b")}
    assert problems_of(doc, tmp_path) == [
        "cluster.yaml: keyspaces.customer.shards: gap between -40 and 80-: 40-80 is not covered"]


def test_overlap_and_invalid_shard_name(tmp_path: Path) -> None:
    doc = base_doc()
    doc["keyspaces"]["customer"]["shards"] = {"-80": shard(1, "a"), "40-": shard(2, "b"), "zz": shard(3, "c")}
    problems = problems_of(doc, tmp_path)
    assert problems[0].startswith("cluster.yaml: keyspaces.customer.shards.zz: invalid key range 'zz'")
    assert problems[1:] == ["cluster.yaml: keyspaces.customer.shards: overlap between -80 and 40-: "
                            "40-80 is covered twice"]


def test_bad_md5_verifier(tmp_path: Path) -> None:
    doc = base_doc()
    doc["users"][1]["verifiers"]["md5"] = "md5XYZ"
    (line,) = problems_of(doc, tmp_path)
    assert line.startswith("cluster.yaml: users[1].verifiers.md5: not an md5 verifier")


def test_clear_text_passwords_are_refused_without_echoing_them(tmp_path: Path) -> None:
    doc = base_doc()
    doc["keyspaces"]["customer"]["shards"]["-80"]["password"] = "hunter2"
    del doc["keyspaces"]["customer"]["shards"]["-80"]["password_env"]
    doc["users"][0]["password"] = "hunter3"
    doc["keyspaces"]["main"]["shards"]["0"]["password_env"] = "hunter4 with spaces"
    problems = problems_of(doc, tmp_path)
    assert problems == [
        "cluster.yaml: users[0].password: clear-text passwords are not allowed; store verifiers "
        "(made by `shardgate passwd NAME`)",
        "cluster.yaml: keyspaces.customer.shards.-80.password: clear-text passwords are not allowed; "
        "use password_env or password_file",
        "cluster.yaml: keyspaces.main.shards.0.password_env: not a valid environment variable name",
    ]
    assert "hunter" not in "\n".join(problems)


def test_unknown_keys_are_errors_with_suggestions(tmp_path: Path) -> None:
    doc = base_doc()
    doc["listeners"]["postgress"] = doc["listeners"].pop("postgres")
    doc["keyspaces"]["customer"]["shards"]["-80"]["databse"] = "x"
    doc["users"][0]["role"] = ["admin"]
    doc["topolgy"] = {}
    doc["keyspaces"]["main"]["shard"] = {}
    problems = problems_of(doc, tmp_path)
    assert problems == [
        "cluster.yaml: topolgy: unknown key; did you mean 'topology'?",
        "cluster.yaml: listeners.postgress: unknown key; did you mean 'postgres'?",
        "cluster.yaml: users[0].role: unknown key; did you mean 'roles'?",
        "cluster.yaml: keyspaces.customer.shards.-80.databse: unknown key; did you mean 'database'?",
        "cluster.yaml: keyspaces.main.shard: unknown key; did you mean 'shards'?",
    ]


def test_many_problems_at_once(tmp_path: Path) -> None:
    doc = base_doc()
    doc["listeners"] = {"postgres": "127.0.0.1:99999", "mysql": "nohost", "metrics": "127.0.0.1:15000"}
    doc["users"].append({"name": "app", "verifiers": {"scram-sha-256": "nope"}, "roles": ["admn"]})
    doc["users"][1]["auth"] = {"postgres": "caching_sha2_password", "mysql": "caching_sha2_password"}
    s = doc["keyspaces"]["customer"]["shards"]
    s["-80"].update(engine="oracle", port="5433")
    s["80-"].update(engine="mysql", host="bad host!", tls={"mode": "verify-everything"})
    doc["keyspaces"]["main"]["shards"]["-80"] = shard(1, "x")
    doc["keyspaces"]["orphan"] = {"shards": {"-": shard(1, "y")}}
    doc["vschema"]["keyspaces"]["lonely"] = {"sharded": False}
    doc["topology"] = {"store": "etcd", "poll_interval": 0}
    problems = problems_of(doc, tmp_path)
    assert problems == [
        "cluster.yaml: listeners.postgres: port 99999 is out of range 0..65535",
        "cluster.yaml: listeners.mysql: 'nohost' is not host:port (e.g. 127.0.0.1:15432 or [::1]:15432)",
        "cluster.yaml: users[1].auth.postgres: 'caching_sha2_password' is not a postgres method; "
        "expected one of: scram-sha-256, md5",
        "cluster.yaml: users[1].auth.mysql: no caching_sha2_password verifier for this user",
        "cluster.yaml: users[2].name: duplicate user 'app' (also users[0])",
        "cluster.yaml: users[2].roles[0]: unknown role 'admn'; did you mean 'admin'?",
        "cluster.yaml: users[2].verifiers.scram-sha-256: not a scram-sha-256 verifier "
        "(expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)",
        "cluster.yaml: keyspaces.customer.shards.-80.engine: unknown engine 'oracle'; expected postgres or mysql",
        "cluster.yaml: keyspaces.customer.shards.-80.port: expected an integer, got a string",
        "cluster.yaml: keyspaces.customer.shards.80-.host: 'bad host!' is not an IP address or host name",
        "cluster.yaml: keyspaces.customer.shards.80-.tls.mode: 'verify-everything' is not a TLS mode; "
        "expected one of: disable, require, verify-ca, verify-full",
        "cluster.yaml: keyspaces.main.shards: an unsharded keyspace has exactly one shard, named '-' or '0'; "
        "found 2: 0, -80",
        "cluster.yaml: keyspaces.orphan: not in the VSchema (add it under vschema.keyspaces)",
        "cluster.yaml: vschema.keyspaces.lonely: has no shards (add keyspaces.lonely.shards)",
        "cluster.yaml: topology.store: 'etcd' is not available; use 'file' (etcd is planned)",
        "cluster.yaml: topology.poll_interval: expected a number of seconds in (0, 3600]",
    ]


def test_mixed_engines_in_one_keyspace(tmp_path: Path) -> None:
    doc = base_doc()
    doc["keyspaces"]["customer"]["shards"]["80-"]["engine"] = "mysql"
    assert problems_of(doc, tmp_path) == [
        "cluster.yaml: keyspaces.customer.shards: all shards of a keyspace use one engine; found mysql, postgres"]


def test_mariadb_engine_hint_and_missing_keys(tmp_path: Path) -> None:
    doc = base_doc()
    doc["keyspaces"]["main"]["shards"]["0"] = {"engine": "mariadb", "host": "127.0.0.1"}
    problems = problems_of(doc, tmp_path)
    assert problems == [
        "cluster.yaml: keyspaces.main.shards.0: missing required key 'database'",
        "cluster.yaml: keyspaces.main.shards.0: missing required key 'user'",
        "cluster.yaml: keyspaces.main.shards.0.engine: unknown engine 'mariadb'; expected postgres or mysql "
        "(MariaDB is mysql)",
    ]


def test_listener_conflicts_and_ipv6(tmp_path: Path) -> None:
    doc = base_doc()
    doc["listeners"] = {"postgres": "127.0.0.1:15432", "mysql": "127.0.0.1:15432", "metrics": "::1:15000"}
    assert problems_of(doc, tmp_path) == [
        "cluster.yaml: listeners.metrics: '::1:15000': write an IPv6 address in brackets, e.g. [::1]:15432",
        "cluster.yaml: listeners.mysql: 127.0.0.1:15432 is already used by listeners.postgres",
    ]
    doc["listeners"] = {"metrics": "127.0.0.1:15000"}
    assert problems_of(doc, tmp_path) == [
        "cluster.yaml: listeners: no postgres or mysql listener: clients could not connect"]


def test_tls_files_must_exist(tmp_path: Path) -> None:
    doc = base_doc()
    doc["tls"] = {"cert": "missing.pem", "require": "yes"}
    doc["keyspaces"]["main"]["shards"]["0"]["tls"] = {"ca": "/nonexistent/ca.pem", "mode": "disable"}
    assert problems_of(doc, tmp_path) == [
        "cluster.yaml: tls: missing required key 'key'",
        f"cluster.yaml: tls.cert: file not found: {tmp_path / 'missing.pem'}",
        "cluster.yaml: tls.require: expected true or false, got a string",
        "cluster.yaml: keyspaces.main.shards.0.tls.ca: file not found: /nonexistent/ca.pem",
    ]


def test_user_problems(tmp_path: Path) -> None:
    doc = base_doc()
    doc["users"] = [{"name": "", "verifiers": {}}, {"name": "x", "verifiers": {"md4": "x"}}, "not-a-user",
                    {"verifiers": {"md5": "md5" + "0" * 32}}]
    assert problems_of(doc, tmp_path) == [
        "cluster.yaml: users[0].name: expected a non-empty string, got an empty string",
        "cluster.yaml: users[0].verifiers: no verifiers: the user could never log in "
        "(make them with `shardgate passwd NAME`)",
        "cluster.yaml: users[1].verifiers.md4: unknown key; did you mean 'md5'?",
        "cluster.yaml: users[2]: expected a mapping, got a string",
        "cluster.yaml: users[3]: missing required key 'name'",
    ]


def test_vschema_problems_are_prefixed(tmp_path: Path) -> None:
    doc = base_doc()
    doc["vschema"]["keyspaces"]["customer"]["tables"]["customer"]["column_vindexes"][0]["name"] = "nope"
    problems = problems_of(doc, tmp_path)
    assert problems and all(p.startswith("cluster.yaml: vschema.keyspaces.customer") for p in problems), problems
    assert any("nope" in p for p in problems)


def test_vschema_and_vschema_file_are_exclusive(tmp_path: Path) -> None:
    doc = base_doc()
    doc["vschema_file"] = "v.json"
    assert problems_of(doc, tmp_path) == ["cluster.yaml: vschema_file: give either vschema or vschema_file, not both"]
    del doc["vschema"]
    assert problems_of(doc, tmp_path) == [f"cluster.yaml: vschema_file: file not found: {tmp_path / 'v.json'}"]
    del doc["vschema_file"]
    assert problems_of(doc, tmp_path) == ["cluster.yaml: missing required key 'vschema' (or 'vschema_file')"]


def test_vschema_file_syntax_error_names_that_file(tmp_path: Path) -> None:
    write(tmp_path / "v.json", '{"keyspaces": {\n  "customer": {]\n}}')
    doc = base_doc()
    del doc["vschema"]
    doc["vschema_file"] = "v.json"
    (line,) = problems_of(doc, tmp_path)
    assert line.startswith(f"{tmp_path / 'v.json'}:2:") and "YAML syntax error" in line


def test_top_level_shapes(tmp_path: Path) -> None:
    assert problems_of([], tmp_path) == ["cluster.yaml: expected a mapping, got an empty list"]
    assert problems_of({"keyspaces": {}}, tmp_path) == [
        "cluster.yaml: missing required key 'vschema' (or 'vschema_file')",
        "cluster.yaml: keyspaces: expected a mapping of keyspace name to shards, got an empty mapping",
    ]


# --- YAML -------------------------------------------------------------------------------------------------
def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "cluster.yaml", "users:\n  - name: a\n    password: hunter2\n   x: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = info.value.problems
    assert line.startswith(f"{path}:4:") and "YAML syntax error" in line
    assert "hunter2" not in line  # PyYAML's own message quotes the line; ours does not


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "cluster.yaml", "keyspaces: {}\nusers: []\nkeyspaces: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}:3:1: YAML error: duplicate key 'keyspaces'"]


def test_yaml_merge_keys_share_shard_settings(tmp_path: Path) -> None:
    text = """\
keyspaces:
  customer:
    shards:
      -80: &pg {engine: postgres, host: 127.0.0.1, port: 5433, database: customer_0, user: app}
      80-: {<<: *pg, port: 5434, database: customer_1}
  main: {shards: {"0": {<<: *pg, database: main}}}
""" + f"vschema: {json.dumps(VSCHEMA)}\n"
    config = load_config(write(tmp_path / "cluster.yaml", text))
    second = config.keyspaces["customer"].shards[1]
    assert (second.port, second.database, second.user) == (5434, "customer_1", "app")
    assert config.keyspaces["main"].shards[0].port == 5433


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file or directory"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(write(tmp_path / "empty.yaml", "# nothing\n"))


def test_world_readable_file_with_users_warns(full_config_file: Path) -> None:
    full_config_file.chmod(0o644)
    config = load_config(full_config_file)
    assert config.warnings == (f"{full_config_file}: the file holds password verifiers but others can read it "
                               f"(mode 0644); run chmod 600",)


# --- secrets ----------------------------------------------------------------------------------------------
def test_secrets_never_in_repr_or_str(full_config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SG_TEST_PW", "env-secret-0")
    config = load_config(full_config_file)
    dsns = [s.dsn() for ks in config.keyspaces.values() for s in ks.shards]
    assert {d.password for d in dsns} == {"env-secret-0", "file-secret-1", ""}
    texts = [repr(config), str(config), *map(repr, dsns), *map(str, dsns), *map(repr, config.users),
             *(repr(v) for u in config.users for v in u.verifiers.values())]
    for text in texts:
        assert "env-secret" not in text and "file-secret" not in text and "app-password" not in text
    # Verifier key material is not printed either (it can be attacked offline).
    for user in config.users:
        for text in (repr(user), *(repr(v) for v in user.verifiers.values())):
            assert not any(v in text for v in ENTRY["verifiers"].values())  # type: ignore[union-attr]


def test_missing_secret_fails_at_connect_time_naming_it(full_config_file: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SG_TEST_PW", raising=False)
    config = load_config(full_config_file)  # loading does not need the secret
    shard_ = config.keyspaces["customer"].shards[0]
    with pytest.raises(ConfigError, match="environment variable SG_TEST_PW is not set"):
        shard_.dsn()
    (full_config_file.parent / "secrets" / "customer_1").unlink()
    assert config.check_secrets() == [
        f"{full_config_file}: keyspaces.customer.shards.-80.password_env: environment variable SG_TEST_PW is not set",
        f"{full_config_file}: keyspaces.customer.shards.80-.password_file: password file "
        f"{full_config_file.parent / 'secrets' / 'customer_1'} does not exist",
    ]
    with pytest.raises(ConfigError, match="cannot read password file"):
        config.keyspaces["customer"].shards[1].dsn()
    monkeypatch.setenv("SG_TEST_PW", "x")
    assert len(config.check_secrets()) == 1


def test_config_is_frozen(tmp_path: Path) -> None:
    config = parse_config(base_doc(), source="cluster.yaml", base_dir=tmp_path)
    with pytest.raises(AttributeError):
        config.source = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.keyspaces["x"] = None  # type: ignore[index]
    assert os.fspath(config.topology.path) == str(tmp_path / "topo")
