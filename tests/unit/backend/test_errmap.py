"""Driver exceptions → shardgate errors with the server's own codes (no server needed: exceptions are built)."""
import asyncio

import asyncpg
import pymysql
import pytest

from router.backend.connection import check_xid
from router.backend.errmap import map_mysql_error, map_pg_error
from router.backend.mysql import ok_info
from sharding.errors import (
    BackendError,
    BackendUnavailableError,
    InternalError,
    InvalidValueError,
    QueryCanceledError,
    QueryTimeoutError,
    TooManyConnectionsError,
)

LABEL = "customer/-80/primary (postgres 127.0.0.1:5432)"


def pg(exc_class: type[Exception], message: str) -> Exception:
    exc = exc_class(message)
    exc.message = message  # type: ignore[attr-defined]
    return exc


def test_pg_server_errors_keep_sqlstate_and_get_mysql_codes() -> None:
    mapped = map_pg_error(pg(asyncpg.UniqueViolationError, "duplicate key value"), LABEL, shard="customer/-80")
    err = mapped.error
    assert isinstance(err, BackendError) and not mapped.broken
    assert (err.pg_sqlstate, err.mysql_errno, err.mysql_sqlstate) == ("23505", 1062, "23000")
    assert err.shard == "customer/-80" and err.message == "duplicate key value"
    err = map_pg_error(pg(asyncpg.UndefinedTableError, 'relation "x" does not exist'), LABEL).error
    assert (err.pg_sqlstate, err.mysql_errno, err.mysql_sqlstate) == ("42P01", 1146, "42S02")
    err = map_pg_error(pg(asyncpg.exceptions.InvalidRegularExpressionError, "bad"), LABEL).error
    assert (err.pg_sqlstate, err.mysql_errno, err.mysql_sqlstate) == ("2201B", 1105, "HY000")
    err = map_pg_error(pg(asyncpg.DataError, "bad"), LABEL).error
    assert (err.pg_sqlstate, err.mysql_sqlstate) == ("22000", "22000")  # class-level states are shared


def test_pg_cancel_and_timeout() -> None:
    exc = pg(asyncpg.QueryCanceledError, "canceling statement due to user request")
    assert isinstance(map_pg_error(exc, LABEL).error, QueryCanceledError)
    exc = pg(asyncpg.QueryCanceledError, "canceling statement due to statement timeout")
    assert isinstance(map_pg_error(exc, LABEL).error, QueryTimeoutError)
    assert isinstance(map_pg_error(exc, LABEL, canceled=True).error, QueryCanceledError)


@pytest.mark.parametrize("exc", [
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.InterfaceError("connection is closed"),
    ConnectionResetError(104, "Connection reset by peer"),
    asyncio.IncompleteReadError(b"", 5),
])
def test_pg_lost_connection_is_unavailable_and_broken(exc: Exception) -> None:
    mapped = map_pg_error(exc, LABEL)
    assert isinstance(mapped.error, BackendUnavailableError) and mapped.broken
    assert LABEL in mapped.error.message and mapped.error.retryable


def test_pg_misuse_and_client_side_errors() -> None:
    busy = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    assert isinstance(map_pg_error(busy, LABEL).error, InternalError)
    # asyncpg raises DataError (22000) itself for a bind value it cannot encode: a data exception either way
    err = map_pg_error(asyncpg.DataError("invalid input for query argument $1"), LABEL).error
    assert isinstance(err, BackendError) and err.pg_sqlstate == "22000"


def test_mysql_server_errors_keep_errno_and_sqlstate() -> None:
    exc = pymysql.err.IntegrityError(1062, "Duplicate entry '5' for key 'PRIMARY'", sqlstate="23000")
    mapped = map_mysql_error(exc, LABEL, shard="customer/-80")
    err = mapped.error
    assert isinstance(err, BackendError) and not mapped.broken
    assert (err.mysql_errno, err.mysql_sqlstate, err.pg_sqlstate, err.shard) == (1062, "23000", "23505",
                                                                                  "customer/-80")
    exc = pymysql.err.ProgrammingError(1146, "Table 'db.x' doesn't exist", sqlstate="42S02")
    err = map_mysql_error(exc, LABEL).error
    assert (err.mysql_errno, err.mysql_sqlstate, err.pg_sqlstate) == (1146, "42S02", "42P01")
    exc = pymysql.err.OperationalError(1234, "Incorrect usage", sqlstate="42000")
    assert map_mysql_error(exc, LABEL).error.pg_sqlstate == "42000"
    exc = pymysql.err.OperationalError(1234, "odd", sqlstate="HY000")
    assert map_mysql_error(exc, LABEL).error.pg_sqlstate == "XX000"


def test_mysql_special_errnos() -> None:
    canceled = pymysql.err.OperationalError(1317, "Query execution was interrupted", sqlstate="70100")
    assert isinstance(map_mysql_error(canceled, LABEL).error, QueryCanceledError)
    timeout = pymysql.err.OperationalError(1969, "Query execution was interrupted (max_statement_time exceeded)")
    assert isinstance(map_mysql_error(timeout, LABEL).error, QueryTimeoutError)
    full = pymysql.err.OperationalError(1040, "Too many connections")
    assert isinstance(map_mysql_error(full, LABEL).error, TooManyConnectionsError)


@pytest.mark.parametrize("exc", [
    pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
    pymysql.err.OperationalError(1927, "Connection was killed"),
    pymysql.err.OperationalError(2014, "Command Out of Sync"),
    pymysql.err.InterfaceError(0, "Not connected"),
    pymysql.err.InterfaceError("Cancelled during execution"),
    BrokenPipeError(32, "Broken pipe"),
])
def test_mysql_lost_connection_is_unavailable_and_broken(exc: Exception) -> None:
    mapped = map_mysql_error(exc, LABEL)
    assert isinstance(mapped.error, BackendUnavailableError) and mapped.broken


def test_xid_check_and_ok_info() -> None:
    assert check_xid("sg-12:ab.c_d") == "sg-12:ab.c_d"
    for bad in ("", "x" * 65, "a'b", "a b", None):
        with pytest.raises(InvalidValueError):
            check_xid(bad)  # type: ignore[arg-type]
    assert ok_info(b"&Records: 2  Duplicates: 0  Warnings: 0") == "Records: 2  Duplicates: 0  Warnings: 0"
    assert ok_info(b"") == "" and ok_info(None) == ""
    long = b"x" * 300
    assert ok_info(b"\xfc" + (300).to_bytes(2, "little") + long) == "x" * 300
