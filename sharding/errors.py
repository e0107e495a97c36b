"""The single error hierarchy of shardgate.

Every error a client can see is a ``ShardgateError`` subclass. Each class carries a stable id (``SG1xxx``), a
category, the MySQL error number and SQLSTATE a MySQL client library expects for that kind of failure, and the
PostgreSQL SQLSTATE a PostgreSQL driver expects (Vitess's vterrors catalog, asyncpg's ``sqlstate``). Frontends
only translate; they never invent codes. ``retryable`` tells a client (and the buffering hook) that the same
statement may succeed later unchanged.
"""
from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class Category(StrEnum):
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    PERMISSION_DENIED = "permission_denied"
    UNAUTHENTICATED = "unauthenticated"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    FAILED_PRECONDITION = "failed_precondition"
    ABORTED = "aborted"
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    CANCELED = "canceled"
    UNIMPLEMENTED = "unimplemented"
    INTERNAL = "internal"


class ShardgateError(Exception):
    """Base of every shardgate error. Subclasses set the class attributes below."""

    id: ClassVar[str] = "SG0000"
    category: ClassVar[Category] = Category.INTERNAL
    mysql_errno: ClassVar[int] = 1105  # ER_UNKNOWN_ERROR
    mysql_sqlstate: ClassVar[str] = "HY000"
    pg_sqlstate: ClassVar[str] = "XX000"  # internal_error
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, position: int | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position  # 1-based character offset into the statement, for syntax errors
        self.detail = detail

    def __str__(self) -> str:
        return self.message

    def client_message(self) -> str:
        """The text sent to clients: the stable id first, as Vitess prefixes VT codes."""
        return f"{self.id}: {self.message}"


class InternalError(ShardgateError):
    """A bug: an invariant broke. Counted by the internal-error metric; never used for bad input."""

    id = "SG1000"


# --- configuration and model -------------------------------------------------------------------------------
class ConfigError(ShardgateError):
    """A configuration, VSchema or topology document is invalid. ``problems`` holds one line per problem."""

    id = "SG1001"
    category = Category.INVALID_ARGUMENT
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1105, "HY000", "F0000"  # config_file_error

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [message])


class VSchemaError(ConfigError):
    id = "SG1002"


class InvalidValueError(ShardgateError):
    """A value cannot be used as asked (e.g. a vindex given a non-integer)."""

    id = "SG1003"
    category = Category.INVALID_ARGUMENT
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1366, "HY000", "22P02"  # invalid_text_representation


class KeyRangeError(InvalidValueError):
    id = "SG1004"


class TopologyError(ShardgateError):
    """The topology store could not be read or written."""

    id = "SG1005"
    category = Category.UNAVAILABLE
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1105, "HY000", "58000"  # system_error
    retryable = True


class VersionConflictError(TopologyError):
    """A compare-and-swap write lost: someone else wrote first. Re-read and retry."""

    id = "SG1006"
    category = Category.ABORTED
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1105, "HY000", "40001"


# --- statements ---------------------------------------------------------------------------------------------
class SyntaxError_(ShardgateError):
    """The statement does not parse. ``position`` points at the offending character."""

    id = "SG2001"
    category = Category.INVALID_ARGUMENT
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1064, "42000", "42601"


class UnsupportedError(ShardgateError):
    """Valid SQL that shardgate cannot run safely. The message names the construct."""

    id = "SG2002"
    category = Category.UNIMPLEMENTED
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1235, "42000", "0A000"  # ER_NOT_SUPPORTED_YET


class UnknownTableError(ShardgateError):
    id = "SG2003"
    category = Category.NOT_FOUND
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1146, "42S02", "42P01"


class UnknownColumnError(ShardgateError):
    id = "SG2004"
    category = Category.NOT_FOUND
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1054, "42S22", "42703"


class UnknownKeyspaceError(ShardgateError):
    id = "SG2005"
    category = Category.NOT_FOUND
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1049, "42000", "3D000"  # ER_BAD_DB_ERROR / invalid_catalog_name


class NoKeyspaceSelectedError(UnknownKeyspaceError):
    """A statement needs a current keyspace and the session has none (MySQL "No database selected")."""

    id = "SG2009"
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1046, "3D000", "3D000"


class AlreadyExistsError(ShardgateError):
    """The object to create exists already (a VSchema table, vindex or sequence)."""

    id = "SG2010"
    category = Category.ALREADY_EXISTS
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1050, "42S01", "42710"  # duplicate_object


class AmbiguousError(ShardgateError):
    id = "SG2006"
    category = Category.INVALID_ARGUMENT
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1052, "23000", "42702"


class RoutingError(ShardgateError):
    """A statement cannot be routed safely (e.g. a write whose target shard is unknown)."""

    id = "SG2007"
    category = Category.FAILED_PRECONDITION
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1105, "HY000", "0A000"


class MissingVindexColumnError(RoutingError):
    id = "SG2008"
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1364, "HY000", "23502"  # field doesn't have a default


# --- access -------------------------------------------------------------------------------------------------
class AuthenticationError(ShardgateError):
    id = "SG3001"
    category = Category.UNAUTHENTICATED
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1045, "28000", "28P01"


class PermissionDeniedError(ShardgateError):
    id = "SG3002"
    category = Category.PERMISSION_DENIED
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1142, "42000", "42501"


class TooManyConnectionsError(ShardgateError):
    id = "SG3003"
    category = Category.RESOURCE_EXHAUSTED
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1040, "08004", "53300"
    retryable = True


class ResourceLimitError(ShardgateError):
    """A bounded resource (rows held in memory, waiters, packet size) would be exceeded."""

    id = "SG3004"
    category = Category.RESOURCE_EXHAUSTED
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1105, "HY000", "54000"  # program_limit_exceeded


# --- execution ----------------------------------------------------------------------------------------------
class BackendUnavailableError(ShardgateError):
    """A shard's server refused, crashed or timed out on connect."""

    id = "SG4001"
    category = Category.UNAVAILABLE
    mysql_errno, mysql_sqlstate, pg_sqlstate = 2013, "HY000", "08006"
    retryable = True


class BackendError(ShardgateError):
    """The backend answered with an error; its own codes are passed through unchanged."""

    id = "SG4002"
    category = Category.FAILED_PRECONDITION

    def __init__(self, message: str, *, mysql_errno: int | None = None, mysql_sqlstate: str | None = None,
                 pg_sqlstate: str | None = None, shard: str | None = None) -> None:
        super().__init__(message)
        self.shard = shard
        # Instance attributes shadow the class defaults with the server's own codes.
        if mysql_errno is not None:
            self.mysql_errno = mysql_errno  # type: ignore[misc]
        if mysql_sqlstate is not None:
            self.mysql_sqlstate = mysql_sqlstate  # type: ignore[misc]
        if pg_sqlstate is not None:
            self.pg_sqlstate = pg_sqlstate  # type: ignore[misc]


class QueryTimeoutError(ShardgateError):
    id = "SG4003"
    category = Category.DEADLINE_EXCEEDED
    mysql_errno, mysql_sqlstate, pg_sqlstate = 3024, "HY000", "57014"


class QueryCanceledError(ShardgateError):
    id = "SG4004"
    category = Category.CANCELED
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1317, "70100", "57014"


class TransactionError(ShardgateError):
    """A transaction-mode rule was broken (e.g. a second shard in ``single`` mode)."""

    id = "SG4005"
    category = Category.FAILED_PRECONDITION
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1105, "HY000", "25000"


class BufferTimeoutError(ShardgateError):
    """Writes to a shard stayed paused (resharding, failover) past the buffering bound."""

    id = "SG4006"
    category = Category.UNAVAILABLE
    mysql_errno, mysql_sqlstate, pg_sqlstate = 1105, "HY000", "40001"
    retryable = True


def all_error_classes() -> list[type[ShardgateError]]:
    """Every class in the hierarchy, for the catalog test (ids unique) and generated docs."""
    seen: list[type[ShardgateError]] = []
    stack: list[type[ShardgateError]] = [ShardgateError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen
