"""The demo's pure parts: its VSchema and config parse, rows land where the hash vindex says, the port check."""
from __future__ import annotations

import socket

import pytest

from shardgate.demo import data
from shardgate.demo.runner import check_port
from shardgate.demo.tour import format_table, summarize_plan
from sharding.config import parse_config
from sharding.errors import InvalidValueError


def test_the_vschema_has_both_engines_keyspace_pairs_with_their_own_sources() -> None:
    doc = data.load_vschema_doc()
    assert set(doc["keyspaces"]) == {"customer", "commerce", "customer_mysql", "commerce_mysql"}
    mysql = doc["keyspaces"]["customer_mysql"]
    assert mysql["tables"]["product"]["source"] == "commerce_mysql.product"
    assert mysql["tables"]["corder"]["auto_increment"]["sequence"] == "commerce_mysql.corder_seq"
    assert mysql["vindexes"]["corder_email_lookup"]["params"]["table"] == "commerce_mysql.corder_email_lookup"
    assert doc["keyspaces"]["customer"]["tables"]["product"]["source"] == "commerce.product"


def test_the_config_parses_with_one_engine_per_keyspace_and_an_admin_demo_user() -> None:
    class Server:
        host, port = "127.0.0.1", 5000

    config = parse_config(data.config_doc({s.label: Server() for s in data.SHARDS},
                                          backend_user={"postgres": "postgres", "mysql": "shardgate"}),
                          source="<test>")
    assert {ks: {s.engine for s in k.shards} for ks, k in config.keyspaces.items()} == {
        "customer": {"postgres"}, "commerce": {"postgres"}, "customer_mysql": {"mysql"}, "commerce_mysql": {"mysql"}}
    (user,) = config.users
    assert user.name == "demo" and "admin" in user.roles
    assert set(user.verifiers) == {"scram-sha-256", "mysql_native_password"}


def test_sample_rows_sit_on_the_shard_of_their_keyspace_id() -> None:
    snap = data.snapshot()
    assert data.placement(snap, "customer") == {"-80": [1, 2, 3, 5], "80-": [4, 6, 7, 8]}
    low = next(s for s in data.SHARDS if s.label == "customer_mysql/-80")
    rows = " ".join(data.sample_rows(snap, low))
    assert "(3, 'carol@example.com', 'Carol')" in rows and "'Dave'" not in rows
    unsharded = next(s for s in data.SHARDS if s.label == "commerce_mysql/0")
    lookups = [sql for sql in data.sample_rows(snap, unsharded) if "corder_email_lookup" in sql]
    assert "('carol@example.com', X'4eb190c9a2fa169c')" in lookups[0]


def test_schema_sections_split_by_keyspace_kind() -> None:
    sharded = data.schema_statements("mysql", sharded=True)
    unsharded = data.schema_statements("postgres", sharded=False)
    assert [s.split("(")[0].split()[-1] for s in sharded] == ["customer", "corder", "product"]
    assert any(s.startswith("CREATE TABLE corder_email_lookup") and "BYTEA" in s for s in unsharded)
    assert "INSERT INTO corder_seq (id, next_id, cache) VALUES (0, 1000, 100)" in unsharded


def test_summarize_plan_names_operators_keyspace_vindex_and_shards() -> None:
    doc = {"Instructions": {"OperatorType": "Limit", "Inputs": [
        {"OperatorType": "Route", "Variant": "Scatter", "Keyspace": {"Name": "customer"}, "Shards": ["-80", "80-"]},
        {"OperatorType": "Route", "Variant": "Equal", "Keyspace": {"Name": "customer"}, "Vindex": "v",
         "Shards": "after lookup in v"}]}}
    assert summarize_plan(doc) == ["    Limit", "      Route Scatter on customer -> shards -80, 80-",
                                   "      Route Equal on customer by vindex v -> after lookup in v"]
    assert format_table(["a", "bb"], [(1, None)], indent="") == ["a | bb", "--+-----", "1 | NULL", "(1 row)"]


def test_a_busy_port_is_refused_with_the_flag_to_change() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InvalidValueError, match=f"127.0.0.1:{port} is already in use.*--pg-port"):
            check_port(port, "--pg-port")
    check_port(0, "--pg-port")  # 0: a free port is picked later
