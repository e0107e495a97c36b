"""parse_special: statements of ours in both dialects, what is not ours, malformed ours with positions."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from router.planner.special import (
    AddAutoIncrement,
    AddColumnVindex,
    AddSequence,
    AddTable,
    Assignment,
    Begin,
    Commit,
    CreateVindex,
    DropAutoIncrement,
    DropColumnVindex,
    DropSequence,
    DropTable,
    DropVindex,
    RawExpr,
    ReleaseSavepoint,
    Reset,
    Rollback,
    RollbackToSavepoint,
    Savepoint,
    SelectNext,
    SetCharset,
    SetNames,
    SetStatement,
    SetTransaction,
    Show,
    TableName,
    Use,
    VExplain,
    Word,
    parse_special,
)
from router.planner.values import Arg
from sharding.errors import InvalidValueError, KeyRangeError, SyntaxError_, UnsupportedError

BOTH = ("mysql", "postgres")
MY = ("mysql",)
PG = ("postgres",)


def sets(*items: Any) -> SetStatement:
    return SetStatement(tuple(items))


def show(kind: str, **fields: Any) -> Show:
    return Show(kind, **fields)


T = TableName

CASES: list[tuple[tuple[str, ...], str, Any]] = [
    # --- transaction control
    (BOTH, "BEGIN", Begin()),
    (BOTH, "begin work;", Begin()),
    (PG, "BEGIN TRANSACTION", Begin()),
    (BOTH, "START TRANSACTION", Begin()),
    (MY, "START TRANSACTION READ ONLY", Begin(read_only=True)),
    (MY, "start transaction read write, with consistent snapshot", Begin(False, consistent_snapshot=True)),
    (MY, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", Begin(True, consistent_snapshot=True)),
    (PG, "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY NOT DEFERRABLE", Begin(True, "SERIALIZABLE", False)),
    (PG, "begin work isolation level read committed, read write", Begin(False, "READ COMMITTED")),
    (PG, "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, DEFERRABLE", Begin(None, "REPEATABLE READ", True)),
    (PG, "BEGIN ISOLATION LEVEL READ UNCOMMITTED", Begin(isolation="READ UNCOMMITTED")),
    (BOTH, "COMMIT", Commit()),
    (BOTH, "commit work", Commit()),
    (BOTH, "COMMIT AND CHAIN", Commit(chain=True)),
    (MY, "COMMIT WORK AND NO CHAIN NO RELEASE", Commit()),
    (MY, "COMMIT RELEASE", Commit(release=True)),
    (PG, "COMMIT TRANSACTION AND NO CHAIN", Commit()),
    (PG, "END", Commit()),
    (PG, "end transaction", Commit()),
    (BOTH, "ROLLBACK", Rollback()),
    (BOTH, "Rollback Work And Chain", Rollback(chain=True)),
    (PG, "ABORT", Rollback()),
    (PG, "abort work", Rollback()),
    (BOTH, "SAVEPOINT a", Savepoint("a")),
    (BOTH, "savepoint sp_1;", Savepoint("sp_1")),
    (MY, "SAVEPOINT `my point`", Savepoint("my point")),
    (PG, 'SAVEPOINT "My Point"', Savepoint("My Point")),
    (BOTH, "RELEASE SAVEPOINT a", ReleaseSavepoint("a")),
    (PG, "RELEASE a", ReleaseSavepoint("a")),
    (BOTH, "ROLLBACK TO SAVEPOINT a", RollbackToSavepoint("a")),
    (BOTH, "ROLLBACK WORK TO a", RollbackToSavepoint("a")),
    (PG, "ROLLBACK TRANSACTION TO SAVEPOINT a", RollbackToSavepoint("a")),
    # --- MySQL SET
    (MY, "SET autocommit=1", sets(Assignment("autocommit", 1))),
    (MY, "SET AUTOCOMMIT = ON", sets(Assignment("autocommit", Word("ON")))),
    (MY, "set autocommit = true, sql_safe_updates = FALSE", sets(Assignment("autocommit", True),
                                                               Assignment("sql_safe_updates", False))),
    (MY, "SET SESSION sql_mode = 'ANSI'", sets(Assignment("sql_mode", "ANSI"))),
    (MY, "SET LOCAL sql_mode = ''", sets(Assignment("sql_mode", ""))),
    (MY, "SET GLOBAL max_connections = 1000, sort_buffer_size = 1000000",
     sets(Assignment("max_connections", 1000, "global"), Assignment("sort_buffer_size", 1000000, "global"))),
    (MY, "SET GLOBAL a = 1, SESSION b = 2, c = 3",
     sets(Assignment("a", 1, "global"), Assignment("b", 2), Assignment("c", 3))),
    (MY, "SET PERSIST a = 1, PERSIST_ONLY b = 2",
     sets(Assignment("a", 1, "persist"), Assignment("b", 2, "persist_only"))),
    (MY, "SET @@session.time_zone = '+00:00', @@global.x = DEFAULT, @@y = NULL",
     sets(Assignment("time_zone", "+00:00"), Assignment("x", Word("DEFAULT"), "global"), Assignment("y", None))),
    (MY, "SET @@SESSION.Sql_Mode = 'X'", sets(Assignment("sql_mode", "X"))),
    (MY, "SET @MyVar = 5, @`b c` := 'x', @'d' = -2.5, @e = 1e3",
     sets(Assignment("myvar", 5, "user"), Assignment("b c", "x", "user"), Assignment("d", Decimal("-2.5"), "user"),
          Assignment("e", 1000.0, "user"))),
    (MY, "SET @a = :v1, @b = ?", sets(Assignment("a", Arg(0), "user"), Assignment("b", Arg(0), "user"))),
    (MY, "SET sql_mode = CONCAT(@@sql_mode, ',STRICT_TRANS_TABLES'), x = 1",
     sets(Assignment("sql_mode", RawExpr("CONCAT(@@sql_mode, ',STRICT_TRANS_TABLES')")), Assignment("x", 1))),
    (MY, "SET @x = (SELECT 1, 2)", sets(Assignment("x", RawExpr("(SELECT 1, 2)"), "user"))),
    (MY, "SET @h = 0x41, @b = X'41'", sets(Assignment("h", RawExpr("0x41"), "user"),
                                        Assignment("b", RawExpr("X'41'"), "user"))),
    (MY, "SET @s = 'it''s', @t = \"a\\nb\"", sets(Assignment("s", "it's", "user"), Assignment("t", "a\nb", "user"))),
    (MY, "SET workload = 'olap', transaction_mode = 'twopc', ddl_strategy = 'online', sql_select_limit = 100",
     sets(Assignment("workload", "olap"), Assignment("transaction_mode", "twopc"),
          Assignment("ddl_strategy", "online"), Assignment("sql_select_limit", 100))),
    (MY, "SET workload = olap", sets(Assignment("workload", Word("olap")))),
    (MY, "SET validate_password.policy = LOW", sets(Assignment("validate_password.policy", Word("LOW")))),
    (MY, "SET NAMES utf8mb4", sets(SetNames("utf8mb4"))),
    (MY, "SET NAMES 'UTF8MB4' COLLATE 'utf8mb4_general_ci'", sets(SetNames("utf8mb4", "utf8mb4_general_ci"))),
    (MY, "SET NAMES DEFAULT", sets(SetNames(None))),
    (MY, "SET CHARACTER SET utf8", sets(SetCharset("utf8"))),
    (MY, "SET CHARSET latin1", sets(SetCharset("latin1"))),
    (MY, "SET NAMES utf8mb4, autocommit = 0", sets(SetNames("utf8mb4"), Assignment("autocommit", 0))),
    (MY, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", SetTransaction("next", "SERIALIZABLE")),
    (MY, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY",
     SetTransaction("session", "READ COMMITTED", True)),
    (MY, "SET GLOBAL TRANSACTION READ WRITE", SetTransaction("global", None, False)),
    (MY, "SET transaction_isolation = 'READ-COMMITTED'", sets(Assignment("transaction_isolation", "READ-COMMITTED"))),
    # --- PostgreSQL SET / RESET
    (PG, "SET search_path TO \"$user\", public", sets(Assignment("search_path", ("$user", Word("public"))))),
    (PG, "SET search_path = myschema", sets(Assignment("search_path", Word("myschema")))),
    (PG, "SET SESSION statement_timeout = 5000", sets(Assignment("statement_timeout", 5000))),
    (PG, "set local statement_timeout to '5s'", sets(Assignment("statement_timeout", "5s", "local"))),
    (PG, "SET extra_float_digits = -3", sets(Assignment("extra_float_digits", -3))),
    (PG, "SET DateStyle TO ISO, MDY", sets(Assignment("datestyle", (Word("ISO"), Word("MDY"))))),
    (PG, "SET myapp.user_id = '42'", sets(Assignment("myapp.user_id", "42"))),
    (PG, "SET work_mem TO DEFAULT", sets(Assignment("work_mem", Word("DEFAULT")))),
    (PG, "SET standard_conforming_strings = on", sets(Assignment("standard_conforming_strings", Word("on")))),
    (PG, "SET application_name = E'a\\tb'", sets(Assignment("application_name", "a\tb"))),
    (PG, "SET application_name = $$it's$$", sets(Assignment("application_name", "it's"))),
    (PG, "SET TIME ZONE 'UTC'", sets(Assignment("timezone", "UTC"))),
    (PG, "SET LOCAL TIME ZONE LOCAL", sets(Assignment("timezone", Word("LOCAL"), "local"))),
    (PG, "SET TIME ZONE -7", sets(Assignment("timezone", -7))),
    (PG, "SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE",
     sets(Assignment("timezone", RawExpr("INTERVAL '+00:00' HOUR TO MINUTE")))),
    (PG, "SET SCHEMA 'app'", sets(Assignment("search_path", "app"))),
    (PG, "SET NAMES 'UTF8'", sets(Assignment("client_encoding", "UTF8"))),
    (PG, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
     SetTransaction("transaction", "SERIALIZABLE", True, True)),
    (PG, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ",
     SetTransaction("session", "REPEATABLE READ")),
    (PG, "RESET ALL", Reset(None)),
    (PG, "reset Search_Path;", Reset("search_path")),
    (PG, "RESET TIME ZONE", Reset("timezone")),
    # --- USE
    (MY, "USE ks", Use("ks")),
    (MY, "use `user`", Use("user")),
    (MY, "USE `ks:-80`", Use("ks", "-80", "shard")),
    (MY, "USE `ks:80-c0`", Use("ks", "80-c0", "shard")),
    (MY, "USE ks:0", Use("ks", "0", "shard")),
    (MY, "USE ks@replica", Use("ks", tablet_type="replica")),
    (MY, "USE `ks@RDONLY`", Use("ks", tablet_type="rdonly")),
    (MY, "USE ks@master", Use("ks", tablet_type="primary")),
    (MY, "USE ks:-80@primary", Use("ks", "-80", "shard", "primary")),
    (MY, "USE `ks:-80`@replica", Use("ks", "-80", "shard", "replica")),
    (MY, "USE `ks[-80]`", Use("ks", "-80", "key_range")),
    (MY, "USE `ks[10]`@rdonly", Use("ks", "10", "keyspace_id", "rdonly")),
    (MY, "USE @replica", Use("", tablet_type="replica")),
    (PG, 'USE "ks:-80"', Use("ks", "-80", "shard")),
    # --- SHOW (MySQL)
    (MY, "SHOW DATABASES", show("databases")),
    (MY, "show schemas like 'u%'", show("databases", like="u%")),
    (MY, "SHOW KEYSPACES", show("keyspaces")),
    (MY, "SHOW TABLES", show("tables")),
    (MY, "SHOW FULL TABLES FROM ks LIKE 'a%'", show("tables", full=True, database="ks", like="a%")),
    (MY, "SHOW TABLES IN `ks` WHERE Tables_in_ks = 'x';", show("tables", database="ks", where="Tables_in_ks = 'x'")),
    (MY, "SHOW COLUMNS FROM t", show("columns", table=T("t"))),
    (MY, "SHOW FULL FIELDS IN ks.t LIKE 'i%'", show("columns", full=True, table=T("t", "ks"), like="i%")),
    (MY, "SHOW COLUMNS FROM `my t` FROM ks", show("columns", table=T("my t"), database="ks")),
    (MY, "SHOW CREATE TABLE ks.t", show("create_table", table=T("t", "ks"))),
    (MY, "SHOW VARIABLES", show("variables")),
    (MY, "SHOW GLOBAL VARIABLES LIKE 'max%'", show("variables", scope="global", like="max%")),
    (MY, "SHOW SESSION STATUS WHERE Variable_name = 'x'",
     show("status", scope="session", where="Variable_name = 'x'")),
    (MY, "SHOW LOCAL STATUS", show("status", scope="session")),
    (MY, "SHOW WARNINGS", show("warnings")),
    (MY, "SHOW WARNINGS LIMIT 5", show("warnings", limit=5)),
    (MY, "SHOW ERRORS LIMIT 2, 5", show("errors", limit=5, offset=2)),
    (MY, "SHOW INDEX FROM t", show("index", table=T("t"))),
    (MY, "SHOW INDEXES IN t FROM ks", show("index", table=T("t"), database="ks")),
    (MY, "SHOW KEYS FROM ks.t WHERE Key_name = 'PRIMARY'",
     show("index", table=T("t", "ks"), where="Key_name = 'PRIMARY'")),
    (MY, "SHOW ENGINES", show("engines")),
    (MY, "SHOW STORAGE ENGINES", show("engines")),
    (MY, "SHOW COLLATION LIKE 'utf8%'", show("collation", like="utf8%")),
    (MY, "SHOW CHARSET", show("charset")),
    (MY, "SHOW CHARACTER SET WHERE Maxlen > 1", show("charset", where="Maxlen > 1")),
    (MY, "SHOW PROCESSLIST", show("processlist")),
    (MY, "SHOW FULL PROCESSLIST", show("processlist", full=True)),
    # --- SHOW SHARDGATE and Vitess's aliases (both dialects)
    (BOTH, "SHOW SHARDGATE KEYSPACES", show("shardgate_keyspaces")),
    (BOTH, "show shardgate shards like '-80'", show("shardgate_shards", like="-80")),
    (BOTH, "SHOW SHARDGATE VSCHEMA", show("shardgate_vschema")),
    (BOTH, "SHOW SHARDGATE VSCHEMA TABLES", show("shardgate_vschema_tables")),
    (BOTH, "SHOW SHARDGATE VSCHEMA VINDEXES", show("shardgate_vschema_vindexes")),
    (BOTH, "SHOW SHARDGATE POOLS", show("shardgate_pools")),
    (BOTH, "SHOW SHARDGATE CLIENTS", show("shardgate_clients")),
    (BOTH, "SHOW SHARDGATE QUERIES", show("shardgate_queries")),
    (BOTH, "SHOW SHARDGATE STATS", show("shardgate_stats")),
    (BOTH, "SHOW SHARDGATE RULES", show("shardgate_rules")),
    (BOTH, "SHOW VITESS_SHARDS", show("shardgate_shards")),
    (BOTH, "SHOW VITESS_KEYSPACES", show("shardgate_keyspaces")),
    (BOTH, "SHOW VSCHEMA TABLES", show("shardgate_vschema_tables")),
    (BOTH, "SHOW VSCHEMA TABLES FROM ks", show("shardgate_vschema_tables", database="ks")),
    (BOTH, "SHOW VSCHEMA VINDEXES", show("shardgate_vschema_vindexes")),
    (BOTH, "SHOW VSCHEMA VINDEXES ON ks.t", show("shardgate_vschema_vindexes", table=T("t", "ks"))),
    # --- SHOW (PostgreSQL)
    (PG, "SHOW search_path", show("variable", name="search_path")),
    (PG, "show Server_Version;", show("variable", name="server_version")),
    (PG, "SHOW myapp.setting", show("variable", name="myapp.setting")),
    (PG, "SHOW ALL", show("all_variables")),
    (PG, "SHOW TIME ZONE", show("variable", name="timezone")),
    (PG, "SHOW TRANSACTION ISOLATION LEVEL", show("variable", name="transaction_isolation")),
    (PG, "SHOW SESSION AUTHORIZATION", show("variable", name="session_authorization")),
    (PG, "SHOW tables", show("variable", name="tables")),  # a (missing) variable in PostgreSQL
    # --- VEXPLAIN
    (BOTH, "VEXPLAIN select 1", VExplain("plan", "select 1", 9)),
    (BOTH, "VEXPLAIN PLAN SELECT * FROM t WHERE id = 1", VExplain("plan", "SELECT * FROM t WHERE id = 1", 14)),
    (BOTH, "vexplain queries update t set a = 1 ;", VExplain("queries", "update t set a = 1", 17)),
    (BOTH, "VEXPLAIN ALL  insert into t values (:v1)", VExplain("all", "insert into t values (:v1)", 14)),
    # --- SELECT NEXT
    (BOTH, "SELECT NEXT VALUE FROM seq", SelectNext(T("seq"), 1)),
    (BOTH, "select next value for ks.seq", SelectNext(T("seq", "ks"), 1)),
    (BOTH, "SELECT NEXT 5 VALUES FROM seq", SelectNext(T("seq"), 5)),
    (BOTH, "SELECT NEXT :v1 VALUES FROM seq;", SelectNext(T("seq"), Arg(0))),
    (BOTH, "SELECT NEXT :v3 VALUES FOR seq", SelectNext(T("seq"), Arg(2))),
    (BOTH, "SELECT NEXT ? VALUES FROM seq", SelectNext(T("seq"), Arg(0))),
    (PG, "SELECT NEXT $2 VALUES FROM seq", SelectNext(T("seq"), Arg(1))),
    (MY, "select /*+ hint */ next 10 values from `ks`.`my seq`", SelectNext(T("my seq", "ks"), 10)),
    # --- ALTER VSCHEMA
    (BOTH, "ALTER VSCHEMA ADD TABLE ks.t", AddTable(T("t", "ks"))),
    (MY, "alter vschema add table `t`", AddTable(T("t"))),
    (BOTH, "ALTER VSCHEMA DROP TABLE t", DropTable(T("t"))),
    (BOTH, "ALTER VSCHEMA ON ks.t ADD VINDEX hash(id) USING hash",
     AddColumnVindex(T("t", "ks"), "hash", ("id",), "hash")),
    (BOTH, "ALTER VSCHEMA ON t ADD VINDEX h (a, b) USING HASH WITH k=v, k2='v 2', n=3",
     AddColumnVindex(T("t"), "h", ("a", "b"), "hash", (("k", "v"), ("k2", "v 2"), ("n", "3")))),
    (BOTH, "alter vschema on t add vindex existing(col)", AddColumnVindex(T("t"), "existing", ("col",))),
    (MY, "alter vschema on customer.corder add vindex corder_keyspace_idx(corder_id) using consistent_lookup_unique "
         "with owner=`corder`, table=`product.corder_keyspace_idx`, from=`corder_id`, to=`keyspace_id`",
     AddColumnVindex(T("corder", "customer"), "corder_keyspace_idx", ("corder_id",), "consistent_lookup_unique",
                     (("owner", "corder"), ("table", "product.corder_keyspace_idx"), ("from", "corder_id"),
                      ("to", "keyspace_id")))),
    (BOTH, "ALTER VSCHEMA ON t ADD VINDEX lk(name) USING lookup WITH table=lookup.name_idx, from=name, to=ksid",
     AddColumnVindex(T("t"), "lk", ("name",), "lookup",
                     (("table", "lookup.name_idx"), ("from", "name"), ("to", "ksid")))),
    (PG, 'ALTER VSCHEMA ON "Ks"."T" ADD VINDEX "H"("Id") USING hash',
     AddColumnVindex(T("T", "Ks"), "H", ("Id",), "hash")),
    (BOTH, "ALTER VSCHEMA ON ks.t DROP VINDEX h", DropColumnVindex(T("t", "ks"), "h")),
    (BOTH, "ALTER VSCHEMA CREATE VINDEX ks.h USING hash", CreateVindex(T("h", "ks"), "hash")),
    (BOTH, "ALTER VSCHEMA CREATE VINDEX lk USING lookup_unique WITH owner=t, table=l",
     CreateVindex(T("lk"), "lookup_unique", (("owner", "t"), ("table", "l")))),
    (BOTH, "ALTER VSCHEMA DROP VINDEX ks.h", DropVindex(T("h", "ks"))),
    (BOTH, "ALTER VSCHEMA ADD SEQUENCE product.seq", AddSequence(T("seq", "product"))),
    (BOTH, "ALTER VSCHEMA DROP SEQUENCE seq", DropSequence(T("seq"))),
    (BOTH, "ALTER VSCHEMA ON customer.customer ADD AUTO_INCREMENT customer_id USING product.customer_seq",
     AddAutoIncrement(T("customer", "customer"), "customer_id", T("customer_seq", "product"))),
    (BOTH, "ALTER VSCHEMA ON t ADD AUTO_INCREMENT id USING seq", AddAutoIncrement(T("t"), "id", T("seq"))),
    (BOTH, "ALTER VSCHEMA ON t DROP AUTO_INCREMENT", DropAutoIncrement(T("t"))),
    (BOTH, "ALTER /* c */ VSCHEMA ON t DROP AUTO_INCREMENT;", DropAutoIncrement(T("t"))),
    # --- comments, case, blanks and semicolons around our statements
    (BOTH, "  \n\tcommit", Commit()),
    (BOTH, "/* leading */ SAVEPOINT x", Savepoint("x")),
    (BOTH, "/* a */ /* b */ begin", Begin()),
    (BOTH, "-- line comment\nROLLBACK", Rollback()),
    (MY, "# hash comment\nROLLBACK", Rollback()),
    (PG, "/* outer /* nested */ still comment */ COMMIT", Commit()),
    (BOTH, "cOmMiT /* trailing */ ; ", Commit()),
    (MY, "/*!40101 SET NAMES utf8 */", sets(SetNames("utf8"))),
    (MY, "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;",
     sets(Assignment("old_sql_mode", RawExpr("@@SQL_MODE"), "user"), Assignment("sql_mode", "NO_AUTO_VALUE_ON_ZERO"))),
]

NOT_OURS: list[tuple[tuple[str, ...], str]] = [
    (BOTH, "SELECT 1"),
    (BOTH, "SELECT c FROM sbtest1 WHERE id=5"),
    (BOTH, "select nextval('s')"),
    (BOTH, "SELECT next FROM t"),
    (BOTH, "SELECT next, a FROM t"),
    (BOTH, "SELECT nextval FROM t"),
    (BOTH, "select 'SET x = 1'"),
    (BOTH, "INSERT INTO t (a) VALUES ('SHOW TABLES')"),
    (BOTH, "UPDATE t SET a = 1"),
    (BOTH, "DELETE FROM t"),
    (BOTH, "CREATE TABLE t (id int)"),
    (BOTH, "ALTER TABLE t ADD COLUMN c int"),
    (BOTH, "showx"),
    (BOTH, "settings"),
    (BOTH, "set_config"),
    (BOTH, "commits"),
    (BOTH, "user_var"),
    (BOTH, ""),
    (BOTH, "   "),
    (BOTH, "(SELECT 1)"),
    (BOTH, "/* SET x = 1 */ SELECT 1"),
    (BOTH, "-- BEGIN\nSELECT 1"),
    (BOTH, "/* unterminated comment"),
    (MY, "SHOW GRANTS"),
    (MY, "SHOW TABLE STATUS"),
    (MY, "SHOW CREATE DATABASE ks"),
    (MY, "SHOW FULL foo"),
    (MY, "SHOW GLOBAL foo"),
    (MY, "SET PASSWORD = 'x'"),
    (MY, "SET ROLE admin"),
    (MY, "SET DEFAULT ROLE admin TO u"),
    (MY, "START SLAVE"),
    (MY, "END"),  # not a MySQL statement
    (MY, "ABORT"),
    (MY, "RESET MASTER"),
    (MY, "LOCK TABLES t READ"),
    (PG, "SET ROLE admin"),
    (PG, "SET SESSION AUTHORIZATION u"),
    (PG, "SET CONSTRAINTS ALL DEFERRED"),
    (PG, "SET LOCAL ROLE admin"),
    (PG, "SET LOCAL SESSION AUTHORIZATION DEFAULT"),
    (PG, "RESET ROLE"),
    (PG, "# SET x = 1"),  # '#' is not a comment in PostgreSQL
    (MY, "\u017fet x = 1"),  # long s: "\u017f".upper() == "S", but keywords are ASCII only
]

ERRORS: list[tuple[tuple[str, ...], str, type[Exception], int | None]] = [
    # (dialects, sql, error class, 1-based position or None)
    (BOTH, "ALTER VSCHEMA ON", SyntaxError_, 17),
    (BOTH, "ALTER VSCHEMA", SyntaxError_, 14),
    (BOTH, "ALTER VSCHEMA FROB t", SyntaxError_, 15),
    (BOTH, "ALTER VSCHEMA ON t ADD VINDEX h USING hash", SyntaxError_, 33),
    (BOTH, "ALTER VSCHEMA ON t ADD VINDEX h(id", SyntaxError_, 35),
    (BOTH, "ALTER VSCHEMA CREATE VINDEX h", SyntaxError_, 30),
    (BOTH, "ALTER VSCHEMA ON t ADD AUTO_INCREMENT id", SyntaxError_, 41),
    (BOTH, "ALTER VSCHEMA ADD VINDEX h", SyntaxError_, 19),
    (BOTH, "ALTER VSCHEMA ADD TABLE t extra", SyntaxError_, 27),
    (BOTH, "ALTER VSCHEMA ON t ADD VINDEX h(id) USING hash WITH k", SyntaxError_, 54),
    (BOTH, "SHOW", SyntaxError_, 5),
    (MY, "SHOW COLUMNS", SyntaxError_, 13),
    (MY, "SHOW TABLES LIKE x", SyntaxError_, 18),
    (MY, "SHOW CREATE TABLE", SyntaxError_, 18),
    (MY, "SHOW WARNINGS LIMIT x", SyntaxError_, 21),
    (BOTH, "SHOW SHARDGATE FROB", SyntaxError_, 16),
    (BOTH, "SHOW SHARDGATE", SyntaxError_, 15),
    (BOTH, "SAVEPOINT", SyntaxError_, 10),
    (BOTH, "SAVEPOINT 'a'", SyntaxError_, 11),
    (BOTH, "RELEASE SAVEPOINT", SyntaxError_, 18),
    (BOTH, "ROLLBACK TO", SyntaxError_, 12),
    (BOTH, "COMMIT foo", SyntaxError_, 8),
    (BOTH, "BEGIN; SELECT 1", SyntaxError_, 6),
    (MY, "BEGIN READ ONLY", SyntaxError_, 7),
    (MY, "START TRANSACTION READ ONLY READ WRITE", SyntaxError_, 29),
    (MY, "START TRANSACTION READ ONLY, READ WRITE", SyntaxError_, 30),
    (PG, "BEGIN ISOLATION LEVEL SERIALIZABLE ISOLATION LEVEL READ COMMITTED", SyntaxError_, 36),
    (PG, "BEGIN ISOLATION LEVEL SOMETIMES", SyntaxError_, 23),
    (MY, "START TRANSACTION ISOLATION LEVEL SERIALIZABLE", SyntaxError_, 19),
    (MY, "SET", SyntaxError_, 4),
    (MY, "SET x", SyntaxError_, 6),
    (MY, "SET x =", SyntaxError_, 8),
    (MY, "SET x = 1,", SyntaxError_, 11),
    (MY, "SET x = 'unterminated", SyntaxError_, 9),
    (MY, "SET TRANSACTION", SyntaxError_, 16),
    (MY, "SET NAMES", SyntaxError_, 10),
    (PG, "SET x", SyntaxError_, 6),
    (PG, "SET x TO", SyntaxError_, 9),
    (PG, "SET x = 1 2", SyntaxError_, 11),
    (PG, "SET x = f(1)", SyntaxError_, 10),
    (PG, "SET TIME ZONE NULL", SyntaxError_, 15),
    (MY, "SET @x = (1", SyntaxError_, 10),
    (MY, "SET @x = 1), @y = 2", SyntaxError_, 10),
    (PG, "SET x = $$unterminated", SyntaxError_, 9),
    (BOTH, "USE", SyntaxError_, 4),
    (MY, "USE ks extra", SyntaxError_, 5),
    (MY, "USE `ks:`", SyntaxError_, 5),
    (MY, "USE `ks[-80`", SyntaxError_, 5),
    (MY, "USE ks@leader", InvalidValueError, 5),
    (MY, "USE `ks[zz]`", InvalidValueError, 5),
    (MY, "USE `ks[80-40]`", KeyRangeError, None),
    (BOTH, "VEXPLAIN", SyntaxError_, 9),
    (BOTH, "VEXPLAIN QUERIES", SyntaxError_, 17),
    (BOTH, "VEXPLAIN TRACE select 1", UnsupportedError, None),
    (BOTH, "SELECT NEXT 5 VALUES FROM", SyntaxError_, 26),
    (BOTH, "SELECT NEXT 5 VALUES seq", SyntaxError_, 22),
    (BOTH, "SELECT NEXT VALUE FROM seq WHERE 1", SyntaxError_, 28),
    (BOTH, "SELECT NEXT 1.5 VALUES FROM seq", SyntaxError_, 13),
    (BOTH, "SELECT NEXT 0 VALUES FROM seq", InvalidValueError, 13),
    (MY, "SELECT NEXT :n VALUES FROM seq", UnsupportedError, None),
    (PG, "COMMIT PREPARED 'tx1'", UnsupportedError, None),
    (PG, "ROLLBACK PREPARED 'tx1'", UnsupportedError, None),
    (PG, "SET TRANSACTION SNAPSHOT '0001'", UnsupportedError, None),
    (MY, "BEGIN NOT ATOMIC SELECT 1; END", UnsupportedError, None),
]


def _expand(cases: list[tuple[Any, ...]]) -> list[Any]:
    return [
        pytest.param(dialect, *rest, id=f"{dialect}:{rest[0]}") for dialects, *rest in cases for dialect in dialects
    ]


@pytest.mark.parametrize(("dialect", "sql", "expected"), _expand(CASES))
def test_recognised(dialect: str, sql: str, expected: Any) -> None:
    assert parse_special(sql, dialect) == expected


@pytest.mark.parametrize(("dialect", "sql"), _expand(NOT_OURS))
def test_not_ours(dialect: str, sql: str) -> None:
    assert parse_special(sql, dialect) is None


@pytest.mark.parametrize(("dialect", "sql", "error", "position"), _expand(ERRORS))
def test_errors(dialect: str, sql: str, error: type[Exception], position: int | None) -> None:
    with pytest.raises(error) as info:
        parse_special(sql, dialect)
    assert type(info.value) is error
    if position is not None:
        assert info.value.position == position  # type: ignore[attr-defined]
        if error is SyntaxError_:
            assert f"position {position}" in str(info.value)


def test_keywords_are_case_insensitive() -> None:
    for sql in ("savepoint a", "SAVEPOINT a", "SaVePoInT a"):
        assert parse_special(sql, "mysql") == Savepoint("a")
    # a quoted keyword is a name, not a keyword
    assert parse_special("SHOW `TABLES`", "mysql") is None
    assert parse_special('SAVEPOINT "begin"', "postgres") == Savepoint("begin")


def test_word_values_keep_spelling_and_are_strings() -> None:
    stmt = parse_special("SET autocommit = On, @s = 'On'", "mysql")
    assert isinstance(stmt, SetStatement)
    word, string = (item.value for item in stmt.items)  # type: ignore[union-attr]
    assert word == "On" and isinstance(word, Word) and isinstance(word, str)
    assert string == "On" and not isinstance(string, Word)


def test_mysql_string_escapes() -> None:
    stmt = parse_special(r"SET @a = 'x\'y\\z\%\0', @b = 'q''r'", "mysql")
    assert stmt == sets(Assignment("a", "x'y\\z\\%\0", "user"), Assignment("b", "q'r", "user"))


def test_postgres_strings_take_no_backslash_escapes() -> None:
    assert parse_special(r"SET application_name = 'a\b'", "postgres") == sets(Assignment("application_name", "a\\b"))


def test_vexplain_offset_points_into_the_outer_text() -> None:
    sql = "/* c */ VEXPLAIN QUERIES\n  select * from t"
    stmt = parse_special(sql, "mysql")
    assert isinstance(stmt, VExplain)
    assert sql[stmt.offset :] == stmt.sql == "select * from t"


def test_vschema_statements_describe_canonically() -> None:
    sql = "ALTER VSCHEMA ON ks.t ADD VINDEX h(a, b) USING hash WITH x=1"
    stmt = parse_special(sql, "mysql")
    assert isinstance(stmt, AddColumnVindex)
    assert stmt.describe() == "alter vschema on ks.t add vindex h(a, b) using hash with x=1"
    assert stmt.target == T("t", "ks")
    create = parse_special("alter vschema create vindex ks.h using hash", "mysql")
    assert isinstance(create, CreateVindex) and create.target == T("h", "ks")


def test_unknown_dialect() -> None:
    with pytest.raises(ValueError):
        parse_special("BEGIN", "oracle")


def test_fingerprinted_text_is_recognised() -> None:
    """The planner may hand over the fingerprint's normalized text: literals became :vN placeholders."""
    import cython_ext

    fp = cython_ext.fingerprint
    normalized, values = fp.fingerprint("select next 7 values from ks.seq", fp.MYSQL)
    expected_count = Arg(0) if values == [7] else 7  # the fingerprint may keep a number after NEXT in the key
    assert parse_special(normalized, "mysql") == SelectNext(T("seq", "ks"), expected_count)
    normalized, values = fp.fingerprint("select next ? values from ks.seq", fp.MYSQL)
    assert parse_special(normalized, "mysql") == SelectNext(T("seq", "ks"), Arg(0))
    normalized, _ = fp.fingerprint("/* x */ SET autocommit = 0", fp.MYSQL)
    assert parse_special(normalized, "mysql") == sets(Assignment("autocommit", 0))


# --- robustness ------------------------------------------------------------------------------------------------
_FRAGMENTS = [
    "SET", "SHOW", "USE", "BEGIN", "START", "TRANSACTION", "COMMIT", "ROLLBACK", "TO", "SAVEPOINT", "RELEASE", "END",
    "ABORT", "RESET", "VEXPLAIN", "SELECT", "NEXT", "VALUE", "VALUES", "FROM", "FOR", "ALTER", "VSCHEMA", "ON",
    "ADD", "DROP", "CREATE", "VINDEX", "TABLE", "SEQUENCE", "AUTO_INCREMENT", "USING", "WITH", "SESSION", "GLOBAL",
    "LOCAL", "NAMES", "CHARACTER", "ISOLATION", "LEVEL", "READ", "ONLY", "WRITE", "LIKE", "WHERE", "FULL", "ALL",
    "TIME", "ZONE", "LIMIT", "SHARDGATE", "TABLES", "COLUMNS", "ks", "t", "`q`", '"q"', "'s'", "E'\\n'", "$$x$$",
    "$1", "$0", "?", ":v1", ":n", "::", ":=", "@", "@@", "=", ",", ".", "(", ")", ";", "-", "+", "[", "]", ":",
    "1", "-80", "1.5", "1e3", "0x1F", "/*c*/", "/*!40101", "*/", "-- c\n", "#c\n", "/* unterminated", "'open",
    "`open", '"open', "\n", " ",
]  # fmt: skip


@pytest.mark.parametrize("dialect", BOTH)
def test_any_text_gives_a_statement_none_or_a_shardgate_error(dialect: str) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from router.planner.special import Statement
    from sharding.errors import ShardgateError

    texts = st.lists(st.sampled_from(_FRAGMENTS), max_size=12).map(" ".join) | st.text(max_size=40)

    @settings(max_examples=400, deadline=None, database=None)
    @given(texts)
    def check(sql: str) -> None:
        try:
            result = parse_special(sql, dialect)
        except ShardgateError as exc:
            if isinstance(exc, SyntaxError_):
                assert exc.position is not None and 1 <= exc.position <= len(sql) + 1
            return
        assert result is None or isinstance(result, Statement.__args__)  # type: ignore[attr-defined]

    check()


def test_text_led_by_another_word_is_never_ours() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    rest = st.lists(st.sampled_from(_FRAGMENTS), max_size=8).map(" ".join)

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.sampled_from(["INSERT", "UPDATE", "DELETE", "WITH", "CREATE", "DROP", "GRANT", "x"]), rest)
    def check(word: str, tail: str) -> None:
        for dialect in BOTH:
            assert parse_special(f"{word} {tail}", dialect) is None

    check()


@pytest.mark.parametrize("dialect", BOTH)
def test_the_quick_look_never_hides_a_statement_of_ours(dialect: str) -> None:
    """The first-word regex may let through text that is not ours, never the reverse: with it, the answer is the
    full parser's, or None where the full parser also found nothing of ours."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from router.planner import special
    from sharding.errors import ShardgateError

    def outcome(parse: Any, sql: str) -> Any:
        try:
            return parse(sql)
        except ShardgateError as exc:
            return (type(exc), str(exc))

    frags = [*_FRAGMENTS, "/* a /* b */ c */", "/*+ h */", "/*M!100 ", "--x", "\t", "#"]
    texts = st.lists(st.sampled_from(frags), max_size=10).map(
        lambda xs: "".join(x + (" " if i % 2 else "") for i, x in enumerate(xs))
    )
    words = special._FIRST_WORDS[dialect]

    @settings(max_examples=400, deadline=None, database=None)
    @given(texts)
    def check(sql: str) -> None:
        full = outcome(lambda s: special._Parser(s, dialect == "postgres").statement(words), sql)
        assert outcome(lambda s: parse_special(s, dialect), sql) == full

    check()
