"""First-keyword decisions: which statements dirty the session, which run over PostgreSQL's simple protocol."""
import pytest

from router.backend.sqlkind import changes_session, first_keyword, pg_no_rows


@pytest.mark.parametrize(("sql", "word"), [
    ("select 1", "SELECT"),
    ("  \n\tInsert into t values (1)", "INSERT"),
    ("/* route: -80 */ UPDATE t SET a = 1", "UPDATE"),
    ("-- comment\nDELETE FROM t", "DELETE"),
    ("# mysql comment\nSET @a = 1", "SET"),
    ("(SELECT 1) UNION (SELECT 2)", "SELECT"),
    ("/* unterminated", ""),
    ("", ""),
    ("with_x", "WITH_X"),
])
def test_first_keyword(sql: str, word: str) -> None:
    assert first_keyword(sql) == word


@pytest.mark.parametrize(("sql", "dirty"), [
    ("SELECT * FROM t WHERE a = 'SET'", False),
    ("INSERT INTO t VALUES (1)", False),
    ("SET search_path = x", True),
    ("set @a := 1", True),
    ("USE other", True),
    ("CREATE TEMPORARY TABLE x (a int)", True),
    ("CREATE TEMP TABLE x (a int)", True),
    ("CREATE TABLE x (a int)", False),
    ("PREPARE s FROM 'SELECT 1'", True),
    ("PREPARE TRANSACTION 'x'", False),
    ("LOCK TABLES t WRITE", True),
    ("DECLARE c CURSOR FOR SELECT 1", True),
])
def test_changes_session(sql: str, dirty: bool) -> None:
    assert changes_session(sql) is dirty


@pytest.mark.parametrize(("sql", "no_rows"), [
    ("SELECT 1", False),
    ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", False),
    ("INSERT INTO t VALUES (1)", True),
    ("INSERT INTO t VALUES (1) RETURNING id", False),
    ("update t set a = 1 returning *", False),
    ("DELETE FROM t", True),
    ("BEGIN", True),
    ("COMMIT PREPARED 'x'", True),
    ("CREATE TABLE t (a int)", True),
    ("EXPLAIN SELECT 1", False),
    ("SHOW search_path", False),
    ("VALUES (1)", False),
    ("CALL p()", False),
])
def test_pg_no_rows(sql: str, no_rows: bool) -> None:
    assert pg_no_rows(sql) is no_rows
