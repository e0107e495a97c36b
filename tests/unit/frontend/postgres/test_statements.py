"""Statement classification (command tags, statements the frontend handles), auth rules, COPY parsing."""
import pytest

from router.frontend.postgres import auth
from router.frontend.postgres.copy import CsvRows, TextRows, parse_copy
from router.frontend.postgres.statements import classify, command_tag, is_system_catalog_query
from sharding.auth import make_user_entry
from sharding.config import parse_config
from sharding.errors import ConfigError, InvalidValueError, SyntaxError_, UnsupportedError


@pytest.mark.parametrize(("sql", "rows", "tag"), [
    ("select 1", 1, "SELECT 1"), ("  (SELECT 1) UNION SELECT 2", 2, "SELECT 2"), ("VALUES (1)", 1, "SELECT 1"),
    ("insert into t values (1)", 3, "INSERT 0 3"), ("UPDATE t SET a = 1", 2, "UPDATE 2"),
    ("/* hi */ delete from t", 0, "DELETE 0"), ("-- c\nselect 1", 1, "SELECT 1"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", 1, "SELECT 1"),
    ("WITH x AS (DELETE FROM t RETURNING *) INSERT INTO u SELECT * FROM x", 4, "INSERT 0 4"),
    ("begin", 0, "BEGIN"), ("START TRANSACTION", 0, "START TRANSACTION"), ("end", 0, "COMMIT"),
    ("abort", 0, "ROLLBACK"), ("rollback to savepoint a", 0, "ROLLBACK"), ("savepoint a", 0, "SAVEPOINT"),
    ("release a", 0, "RELEASE"), ("create table t (a int)", 0, "CREATE TABLE"),
    ("CREATE UNIQUE INDEX i ON t (a)", 0, "CREATE INDEX"), ("create or replace view v as select 1", 0, "CREATE VIEW"),
    ("create materialized view m as select 1", 0, "CREATE MATERIALIZED VIEW"),
    ("create temp table x (a int)", 0, "CREATE TABLE"), ("drop table if exists a, b", 0, "DROP TABLE"),
    ("alter table t add column b int", 0, "ALTER TABLE"), ("truncate t", 0, "TRUNCATE TABLE"),
    ("vacuum analyze t", 0, "VACUUM"), ("analyze t", 0, "ANALYZE"), ("set search_path = a", 0, "SET"),
    ("reset all", 0, "RESET"), ("show x", 0, "SHOW"), ("discard all", 0, "DISCARD ALL"),
    ("deallocate all", 0, "DEALLOCATE ALL"), ("DEALLOCATE PREPARE s1", 0, "DEALLOCATE"),
    ("ALTER VSCHEMA ON t ADD VINDEX hash(id) USING hash", 0, "ALTER VSCHEMA"), ("copy t from stdin", 5, "COPY 5"),
    ("frobnicate", 0, "FROBNICATE"),
])
def test_command_tags(sql: str, rows: int, tag: str) -> None:
    assert command_tag(classify(sql), rows) == tag


@pytest.mark.parametrize(("sql", "kind", "name"), [
    ("", "empty", ""), ("  -- only a comment", "empty", ""), ("/* a /* nested */ b */", "empty", ""),
    ("SET application_name = 'x'", "set", "application_name"), ("set session TimeZone to 'UTC'", "set", "timezone"),
    ("SET TIME ZONE 'UTC'", "set", "timezone"), ('set "DateStyle" = ISO', "set", "DateStyle"),
    ("SHOW client_encoding", "show", "client_encoding"), ("show time zone", "show", "timezone"),
    ("SHOW SHARDGATE SHARDS", "show_shardgate", "shards"), ("RESET timezone", "reset", "timezone"),
    ("rollback", "rollback", ""), ("ROLLBACK WORK TO SAVEPOINT x", "rollback_to", ""),
    ("deallocate s1", "deallocate", "s1"),
    ("COMMIT PREPARED 'x'", "other", ""),
])
def test_kinds_and_names(sql: str, kind: str, name: str) -> None:
    info = classify(sql)
    assert (info.kind, info.name) == (kind, name)


@pytest.mark.parametrize(("sql", "system"), [
    ("SELECT c.oid FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
     "WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default", True),
    ("select * from pg_class", True), ('SELECT * FROM "pg_catalog"."pg_type"', True),
    ("select table_name from information_schema.tables", True),
    ("select * from pg_catalog.pg_class c join customer x on true", False),
    ("select * from customer", False), ("select 1", False),
    ("select extract(year from created) from pg_catalog.pg_stat_activity", False),  # conservative
    ("SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16385' AND a.attnum > 0", True),
])
def test_system_catalog_queries(sql: str, system: bool) -> None:
    assert is_system_catalog_query(sql) is system


# --- auth rules ------------------------------------------------------------------------------------------------
def _users() -> tuple:
    doc = {
        "users": [make_user_entry("app", "s", roles=["admin"]), make_user_entry("old", "pw", methods=["md5"]),
                  make_user_entry("both", "pw", methods=["scram-sha-256"])],
        "keyspaces": {"ks": {"shards": {"0": {"engine": "postgres", "host": "h", "port": 1, "database": "d",
                                              "user": "u"}}}},
        "vschema": {"keyspaces": {"ks": {"sharded": False, "tables": {}}}},
    }
    return parse_config(doc, source="<test>").users


def test_default_methods_come_from_the_user() -> None:
    policy = auth.AuthPolicy(_users())
    assert policy.plan("app", "ks", "1.2.3.4", False).method == "scram-sha-256"
    assert policy.plan("old", "ks", "1.2.3.4", False).method == "md5"
    unknown = policy.plan("nobody", "ks", None, False)
    assert unknown.method == "scram-sha-256" and unknown.verifier.mock


def test_rules_match_type_database_user_role_and_address() -> None:
    rules = auth.parse_hba("""
        hostssl  all        all    all            scram-sha-256
        host     customer   +admin 127.0.0.0/8    trust
        host     all        old    ::1/128        password
        host     all        both   10.0.0.0/8     md5
        hostnossl all       all    all            reject
    """)
    policy = auth.AuthPolicy(_users(), rules)
    assert policy.plan("app", "customer", "127.0.0.5", False).method == "trust"
    assert policy.plan("app", "other", "127.0.0.5", False).method == "reject"
    assert policy.plan("app", "customer", "127.0.0.5", True).method == "scram-sha-256"
    assert policy.plan("old", "x", "::1", False).method == "password"
    assert policy.plan("both", "x", "10.1.1.1", False).method == "scram-sha-256"  # md5 rule, SCRAM verifier
    assert policy.plan("app", "customer", "::ffff:127.0.0.1", False).method == "trust"  # v4-mapped


def test_bad_rules_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        auth.parse_hba("local all all trust\nhost all all 1.2.3.4/99 trust\nhost all all all kerberos\n")
    assert len(info.value.problems) == 3


# --- COPY ------------------------------------------------------------------------------------------------------
def test_parse_copy_forms() -> None:
    s = parse_copy("COPY t (a, \"B\") FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';', NULL 'n', "
                   "QUOTE '''', FORCE_QUOTE *)")
    assert (s.table, s.columns, s.direction, s.format, s.header, s.delimiter, s.null, s.quote) == \
        ("t", ("a", '"B"'), "from", "csv", True, ";", "n", "'")
    s = parse_copy("copy ks.t from stdin with csv header delimiter as '|' null as ''")
    assert (s.table, s.format, s.header, s.delimiter, s.null) == ("ks.t", "csv", True, "|", "")
    s = parse_copy("COPY (select a, ')' from t where b >= 2) TO STDOUT (FORMAT csv)")
    assert s.query == "select a, ')' from t where b >= 2" and s.direction == "to"
    s = parse_copy("copy pgbench_accounts from stdin with (freeze on)")
    assert s.format == "text" and s.delimiter == "\t" and s.null == "\\N"
    assert parse_copy("COPY t FROM STDIN BINARY").format == "binary"


@pytest.mark.parametrize(("sql", "error"), [
    ("COPY t FROM '/etc/passwd'", UnsupportedError), ("COPY t TO PROGRAM 'x'", UnsupportedError),
    ("COPY t FROM STDOUT", SyntaxError_), ("COPY t FROM STDIN (FORMAT xml)", InvalidValueError),
    ("COPY t FROM STDIN (DELIMITER 'ab')", InvalidValueError), ("COPY (select 1 TO STDOUT", SyntaxError_),
    ("COPY t FROM STDIN (ON_ERROR ignore)", UnsupportedError),
])
def test_bad_copy(sql: str, error: type) -> None:
    with pytest.raises(error):
        parse_copy(sql)


def test_text_rows_across_messages() -> None:
    rows = TextRows(parse_copy("copy t from stdin"))
    out = rows.feed(b"1\ta\\tb\t\\N\n2\t")
    out += rows.feed(b"x\\\\y\\n\t\\101\\x41\n\\.\n3\tignored\n")
    assert out == [["1", "a\tb", None], ["2", "x\\y\n", "AA"]]
    assert rows.finish() == []


def test_csv_rows_with_quotes_newlines_and_nulls() -> None:
    rows = CsvRows(parse_copy("copy t from stdin (format csv, header)"))
    out = rows.feed(b'h1,h2\n1,"a,b"\n2,"multi\nline"\n3,\n4,""\n5,"say ""')
    out += rows.feed(b'hi"""\r\n6,\xc3')
    out += rows.feed(b"\xa9\n")
    out += rows.feed(b"7,last")
    out += rows.finish()
    assert out == [["1", "a,b"], ["2", "multi\nline"], ["3", None], ["4", ""], ["5", 'say "hi"'], ["6", "é"],
                   ["7", "last"]]
    with pytest.raises(InvalidValueError):
        bad = CsvRows(parse_copy("copy t from stdin (format csv)"))
        bad.feed(b'1,"open')
        bad.finish()


def test_catalog_queries_with_ctes_and_user_tables() -> None:
    introspection = ("WITH RECURSIVE typeinfo_tree(oid, depth) AS (SELECT t.oid, 0 FROM (SELECT oid FROM "
                     "pg_catalog.pg_type) AS ti, pg_catalog.pg_range r UNION ALL SELECT t.oid, 1 FROM "
                     "typeinfo_tree tt JOIN pg_catalog.pg_type t ON true) SELECT * FROM typeinfo_tree")
    assert is_system_catalog_query(introspection, frozenset({"customer"}))
    assert not is_system_catalog_query("select * from pg_catalog.pg_class c, customer x",
                                       frozenset({"customer"}))
    assert not is_system_catalog_query('select * from pg_class c, "Customer" x', frozenset({"Customer"}))
