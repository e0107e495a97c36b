"""Cheap looks at a statement's first keyword, taken per execute (microseconds, no parsing).

Two decisions hang on it:

- ``changes_session``: after ``SET``, ``USE``, ``CREATE TEMPORARY``, ``LOCK TABLES``… the session differs from a
  fresh one, so the pool resets the connection before handing it to someone else. Plain reads and writes leave
  nothing behind and skip the reset round trip. State changed through functions (``set_config()``,
  ``GET_LOCK()``) is invisible here: callers that cause it say so with ``mark_dirty()``.
- ``pg_no_rows``: statements that never return rows run over PostgreSQL's simple query protocol (one round trip)
  instead of prepare + execute (two).
"""
from __future__ import annotations

__all__ = ["changes_session", "first_keyword", "pg_no_rows"]

_SESSION_WORDS = frozenset({"SET", "USE", "DECLARE", "LISTEN", "LOCK", "CALL", "DO", "DEALLOCATE", "HANDLER",
                            "RESET", "DISCARD", "LOAD"})
_PG_NO_ROWS = frozenset({"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "SET",
                         "RESET", "CREATE", "DROP", "ALTER", "TRUNCATE", "GRANT", "REVOKE", "COMMENT", "LOCK",
                         "PREPARE", "DEALLOCATE", "DISCARD", "LISTEN", "UNLISTEN", "NOTIFY", "VACUUM", "ANALYZE",
                         "CLUSTER", "REINDEX", "REFRESH", "DO", "CHECKPOINT"})
_PG_DML = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})


def first_keyword(sql: str) -> str:
    """The first word of ``sql`` in upper case, after leading blanks and comments; ``""`` when there is none."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace() or ch == "(":
            i += 1
        elif sql.startswith("--", i) or (ch == "#"):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            break
    j = i
    while j < n and (sql[j].isalpha() or sql[j] == "_"):
        j += 1
    return sql[i:j].upper()


def changes_session(sql: str) -> bool:
    """True when ``sql`` may leave session state behind (see the module docstring)."""
    word = first_keyword(sql)
    if word in _SESSION_WORDS:
        return True
    if word == "PREPARE":  # SQL-level PREPARE leaves a statement; PREPARE TRANSACTION leaves nothing
        return "TRANSACTION" not in sql[:64].upper()
    if word == "CREATE":
        head = sql[:64].upper()
        return "TEMP" in head
    return False


def pg_no_rows(sql: str) -> bool:
    """True when ``sql`` certainly returns no rows on PostgreSQL (DML without RETURNING, DDL, tx control)."""
    word = first_keyword(sql)
    if word in _PG_NO_ROWS:
        return True
    return word in _PG_DML and "RETURNING" not in sql.upper()
