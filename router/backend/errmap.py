"""Driver exceptions → shardgate errors, keeping the server's own codes.

A server error becomes ``BackendError`` carrying the server's codes unchanged (PostgreSQL SQLSTATE; MySQL errno and
SQLSTATE), plus the *other* protocol's nearest codes so a MySQL client of a PostgreSQL shard (and the reverse)
still sees a duplicate key as a duplicate key. A lost connection becomes ``BackendUnavailableError``; cancellation
and timeouts become ``QueryCanceledError`` / ``QueryTimeoutError``. ``Mapped.broken`` tells the caller that the
connection's protocol state is gone and it must be discarded, never reused.

Pure functions over exception objects: unit-tested without servers.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from sharding.errors import (
    BackendError,
    BackendUnavailableError,
    InternalError,
    QueryCanceledError,
    QueryTimeoutError,
    ShardgateError,
    TooManyConnectionsError,
)

__all__ = ["MYSQL_TO_PG", "PG_TO_MYSQL", "Mapped", "map_mysql_error", "map_pg_error", "unavailable"]


@dataclass(frozen=True, slots=True)
class Mapped:
    error: ShardgateError
    broken: bool  # the connection cannot be used again


# PostgreSQL SQLSTATE -> (MySQL errno, MySQL SQLSTATE): what a MySQL client expects for the same failure.
PG_TO_MYSQL: dict[str, tuple[int, str]] = {
    "23505": (1062, "23000"),  # unique_violation -> ER_DUP_ENTRY
    "23502": (1048, "23000"),  # not_null_violation -> ER_BAD_NULL_ERROR
    "23503": (1452, "23000"),  # foreign_key_violation -> ER_NO_REFERENCED_ROW_2
    "23514": (4025, "23000"),  # check_violation -> ER_CONSTRAINT_FAILED
    "42P01": (1146, "42S02"),  # undefined_table -> ER_NO_SUCH_TABLE
    "42703": (1054, "42S22"),  # undefined_column -> ER_BAD_FIELD_ERROR
    "42P07": (1050, "42S01"),  # duplicate_table -> ER_TABLE_EXISTS_ERROR
    "42601": (1064, "42000"),  # syntax_error -> ER_PARSE_ERROR
    "42501": (1142, "42000"),  # insufficient_privilege -> ER_TABLEACCESS_DENIED_ERROR
    "3D000": (1049, "42000"),  # invalid_catalog_name -> ER_BAD_DB_ERROR
    "40001": (1213, "40001"),  # serialization_failure -> ER_LOCK_DEADLOCK
    "40P01": (1213, "40001"),  # deadlock_detected -> ER_LOCK_DEADLOCK
    "55P03": (1205, "HY000"),  # lock_not_available -> ER_LOCK_WAIT_TIMEOUT
    "22001": (1406, "22001"),  # string_data_right_truncation -> ER_DATA_TOO_LONG
    "22003": (1264, "22003"),  # numeric_value_out_of_range -> ER_WARN_DATA_OUT_OF_RANGE
    "22012": (1365, "22012"),  # division_by_zero -> ER_DIVISION_BY_ZERO
    "22P02": (1366, "HY000"),  # invalid_text_representation -> ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
    "25P02": (1105, "25000"),  # in_failed_sql_transaction
    "42704": (1397, "XAE04"),  # undefined_object (e.g. unknown prepared transaction) -> ER_XAER_NOTA
}

# MySQL errno -> PostgreSQL SQLSTATE: what a PostgreSQL client expects for the same failure.
MYSQL_TO_PG: dict[int, str] = {
    1062: "23505", 1586: "23505",  # ER_DUP_ENTRY, ER_DUP_ENTRY_WITH_KEY_NAME
    1048: "23502", 1364: "23502",  # ER_BAD_NULL_ERROR, ER_NO_DEFAULT_FOR_FIELD
    1451: "23503", 1452: "23503",  # foreign keys
    4025: "23514",  # ER_CONSTRAINT_FAILED
    1146: "42P01", 1051: "42P01",  # ER_NO_SUCH_TABLE, ER_BAD_TABLE_ERROR
    1054: "42703",  # ER_BAD_FIELD_ERROR
    1050: "42P07",  # ER_TABLE_EXISTS_ERROR
    1064: "42601", 1149: "42601",  # parse errors
    1142: "42501", 1143: "42501", 1044: "42501", 1227: "42501",  # access denied
    1049: "3D000",  # ER_BAD_DB_ERROR
    1213: "40P01",  # ER_LOCK_DEADLOCK
    1205: "55P03",  # ER_LOCK_WAIT_TIMEOUT
    1406: "22001",  # ER_DATA_TOO_LONG
    1264: "22003", 1690: "22003",  # out of range
    1365: "22012",  # ER_DIVISION_BY_ZERO
    1366: "22P02", 1292: "22007",  # bad values
    1397: "42704",  # ER_XAER_NOTA: unknown xid
}
_STANDARD_CLASS = re.compile(r"(?!HY)[0-9A-Z]{2}000")  # class-level SQLSTATEs both protocols share (not ODBC HY)
_PG_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300"})  # admin/crash shutdown, cannot connect now, full
_MYSQL_LOST = frozenset({
    1053,  # ER_SERVER_SHUTDOWN
    1927,  # ER_CONNECTION_KILLED (MariaDB)
    2003, 2006, 2013, 2055,  # client: cannot connect, server gone, lost connection
    4031,  # ER_CLIENT_INTERACTION_TIMEOUT
})
_MYSQL_OUT_OF_SYNC = frozenset({2014, 2027})  # commands out of sync, malformed packet
_MYSQL_CANCELED = 1317  # ER_QUERY_INTERRUPTED
_MYSQL_TIMEOUT = frozenset({1969, 3024})  # MariaDB max_statement_time, MySQL max_execution_time


def unavailable(label: str, what: str, cause: BaseException | None = None) -> BackendUnavailableError:
    """A ``BackendUnavailableError`` naming the backend (``label``), never credentials or SQL."""
    detail = f": {_describe(cause)}" if cause is not None else ""
    error = BackendUnavailableError(f"{label}: {what}{detail}")
    error.shard = label  # type: ignore[attr-defined]
    return error


def map_pg_error(exc: BaseException, label: str, *, shard: str | None = None, canceled: bool = False) -> Mapped:
    """Map an asyncpg (or socket) exception raised by a statement on one connection."""
    import asyncpg

    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "XX000")
        message = str(getattr(exc, "message", "") or exc)
        if state == "57014":
            if canceled or "user request" in message:
                return Mapped(QueryCanceledError(f"{label}: query canceled"), False)
            return Mapped(QueryTimeoutError(f"{label}: {message}"), False)
        if state.startswith("08") or state in _PG_UNAVAILABLE:
            return Mapped(unavailable(label, "connection lost", exc), True)
        errno, my_state = PG_TO_MYSQL.get(state, (1105, state if _STANDARD_CLASS.fullmatch(state) else "HY000"))
        return Mapped(BackendError(message, pg_sqlstate=state, mysql_errno=errno, mysql_sqlstate=my_state,
                                   shard=shard), False)
    if isinstance(exc, asyncpg.InterfaceError) and "another operation is in progress" in str(exc):
        return Mapped(InternalError(f"{label}: connection used by two tasks at once"), False)
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError | OSError
                  | asyncio.IncompleteReadError | asyncio.TimeoutError | EOFError):
        return Mapped(unavailable(label, "connection lost", exc), True)
    return Mapped(InternalError(f"{label}: unexpected {type(exc).__name__}: {exc}"), True)


def map_mysql_error(exc: BaseException, label: str, *, shard: str | None = None, canceled: bool = False) -> Mapped:
    """Map an aiomysql/PyMySQL (or socket) exception raised by a statement on one connection."""
    import pymysql

    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int) and exc.args[0]:
        errno = int(exc.args[0])
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        state = getattr(exc, "sqlstate", None) or "HY000"
        if errno in _MYSQL_LOST:
            return Mapped(unavailable(label, "connection lost", exc), True)
        if errno in _MYSQL_OUT_OF_SYNC:
            return Mapped(unavailable(label, "protocol out of sync", exc), True)
        if errno == _MYSQL_CANCELED:
            return Mapped(QueryCanceledError(f"{label}: query canceled"), False)
        if errno in _MYSQL_TIMEOUT:
            return Mapped(QueryTimeoutError(f"{label}: {message}"), False)
        if errno == 1040:  # ER_CON_COUNT_ERROR
            return Mapped(TooManyConnectionsError(f"{label}: {message}"), True)
        pg_state = MYSQL_TO_PG.get(errno) or (state if _STANDARD_CLASS.fullmatch(state) else "XX000")
        return Mapped(BackendError(message, mysql_errno=errno, mysql_sqlstate=state, pg_sqlstate=pg_state,
                                   shard=shard), False)
    if isinstance(exc, pymysql.err.Error | OSError | asyncio.IncompleteReadError | EOFError | RuntimeError):
        # errno 0 ("Not connected", "Cancelled during execution"), sockets, LOAD DATA LOCAL refusal.
        return Mapped(unavailable(label, "connection lost", exc), True)
    if canceled:
        return Mapped(QueryCanceledError(f"{label}: query canceled"), False)
    return Mapped(InternalError(f"{label}: unexpected {type(exc).__name__}: {exc}"), True)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError | asyncio.TimeoutError) and not str(exc):
        return "timed out"
    return text
