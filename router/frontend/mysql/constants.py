"""Numbers of the MySQL client/server protocol (``include/mysql_com.h``, ``include/field_types.h``).

Only the wire-level error codes live here (a broken packet, an unknown command): errors about statements come
from ``sharding.errors`` and the frontend only translates them.
"""
from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = [
    "MAX_PACKET_CHUNK",
    "Capability",
    "Command",
    "CursorType",
    "FieldFlag",
    "FieldType",
    "ServerStatus",
    "WireError",
]

MAX_PACKET_CHUNK = 0xFFFFFF  # a payload of exactly this length continues in the next packet


class Capability(IntFlag):
    LONG_PASSWORD = 1
    FOUND_ROWS = 1 << 1
    LONG_FLAG = 1 << 2
    CONNECT_WITH_DB = 1 << 3
    NO_SCHEMA = 1 << 4
    COMPRESS = 1 << 5
    ODBC = 1 << 6
    LOCAL_FILES = 1 << 7
    IGNORE_SPACE = 1 << 8
    PROTOCOL_41 = 1 << 9
    INTERACTIVE = 1 << 10
    SSL = 1 << 11
    IGNORE_SIGPIPE = 1 << 12
    TRANSACTIONS = 1 << 13
    RESERVED = 1 << 14
    SECURE_CONNECTION = 1 << 15
    MULTI_STATEMENTS = 1 << 16
    MULTI_RESULTS = 1 << 17
    PS_MULTI_RESULTS = 1 << 18
    PLUGIN_AUTH = 1 << 19
    CONNECT_ATTRS = 1 << 20
    PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
    CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
    SESSION_TRACK = 1 << 23
    DEPRECATE_EOF = 1 << 24
    OPTIONAL_RESULTSET_METADATA = 1 << 25
    ZSTD_COMPRESSION = 1 << 26
    QUERY_ATTRIBUTES = 1 << 27


# What the router offers. Each is implemented; COMPRESS, SESSION_TRACK, QUERY_ATTRIBUTES and LOCAL_FILES are not,
# so they are not offered (SSL is added per listener when TLS is configured).
SERVER_CAPABILITIES = (
    Capability.LONG_PASSWORD | Capability.FOUND_ROWS | Capability.LONG_FLAG | Capability.CONNECT_WITH_DB
    | Capability.NO_SCHEMA | Capability.ODBC | Capability.IGNORE_SPACE | Capability.PROTOCOL_41
    | Capability.INTERACTIVE | Capability.IGNORE_SIGPIPE | Capability.TRANSACTIONS | Capability.RESERVED
    | Capability.SECURE_CONNECTION | Capability.MULTI_STATEMENTS | Capability.MULTI_RESULTS
    | Capability.PS_MULTI_RESULTS | Capability.PLUGIN_AUTH | Capability.CONNECT_ATTRS
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA | Capability.DEPRECATE_EOF
)


class ServerStatus(IntFlag):
    IN_TRANS = 1
    AUTOCOMMIT = 2
    MORE_RESULTS_EXISTS = 8
    NO_GOOD_INDEX_USED = 16
    NO_INDEX_USED = 32
    CURSOR_EXISTS = 64
    LAST_ROW_SENT = 128
    DB_DROPPED = 256
    NO_BACKSLASH_ESCAPES = 512
    METADATA_CHANGED = 1024
    QUERY_WAS_SLOW = 2048
    PS_OUT_PARAMS = 4096
    IN_TRANS_READONLY = 8192
    SESSION_STATE_CHANGED = 16384


class Command(IntEnum):
    SLEEP = 0x00
    QUIT = 0x01
    INIT_DB = 0x02
    QUERY = 0x03
    FIELD_LIST = 0x04
    CREATE_DB = 0x05
    DROP_DB = 0x06
    REFRESH = 0x07
    SHUTDOWN = 0x08
    STATISTICS = 0x09
    PROCESS_INFO = 0x0A
    CONNECT = 0x0B
    PROCESS_KILL = 0x0C
    DEBUG = 0x0D
    PING = 0x0E
    TIME = 0x0F
    DELAYED_INSERT = 0x10
    CHANGE_USER = 0x11
    BINLOG_DUMP = 0x12
    TABLE_DUMP = 0x13
    CONNECT_OUT = 0x14
    REGISTER_SLAVE = 0x15
    STMT_PREPARE = 0x16
    STMT_EXECUTE = 0x17
    STMT_SEND_LONG_DATA = 0x18
    STMT_CLOSE = 0x19
    STMT_RESET = 0x1A
    SET_OPTION = 0x1B
    STMT_FETCH = 0x1C
    DAEMON = 0x1D
    BINLOG_DUMP_GTID = 0x1E
    RESET_CONNECTION = 0x1F


class CursorType(IntFlag):
    NO_CURSOR = 0
    READ_ONLY = 1
    FOR_UPDATE = 2
    SCROLLABLE = 4
    PARAMETER_COUNT_AVAILABLE = 8  # MySQL 8.0.26+: a parameter count follows (only with QUERY_ATTRIBUTES)


class FieldType(IntEnum):
    DECIMAL = 0
    TINY = 1
    SHORT = 2
    LONG = 3
    FLOAT = 4
    DOUBLE = 5
    NULL = 6
    TIMESTAMP = 7
    LONGLONG = 8
    INT24 = 9
    DATE = 10
    TIME = 11
    DATETIME = 12
    YEAR = 13
    NEWDATE = 14
    VARCHAR = 15
    BIT = 16
    TIMESTAMP2 = 17
    DATETIME2 = 18
    TIME2 = 19
    JSON = 245
    NEWDECIMAL = 246
    ENUM = 247
    SET = 248
    TINY_BLOB = 249
    MEDIUM_BLOB = 250
    LONG_BLOB = 251
    BLOB = 252
    VAR_STRING = 253
    STRING = 254
    GEOMETRY = 255


class FieldFlag(IntFlag):
    NOT_NULL = 1
    PRI_KEY = 2
    UNIQUE_KEY = 4
    MULTIPLE_KEY = 8
    BLOB = 16
    UNSIGNED = 32
    ZEROFILL = 64
    BINARY = 128
    ENUM = 256
    AUTO_INCREMENT = 512
    TIMESTAMP = 1024
    SET = 2048
    NO_DEFAULT_VALUE = 4096
    ON_UPDATE_NOW = 8192
    NUM = 32768


class WireError(IntEnum):
    """Error numbers of the connection and packet layers (``include/mysqld_error.h``), with their SQLSTATE below."""

    CON_COUNT = 1040  # Too many connections
    HANDSHAKE = 1043  # Bad handshake
    ACCESS_DENIED = 1045
    UNKNOWN_COM = 1047  # Unknown command
    NO_SUCH_THREAD = 1094  # Unknown thread id
    KILL_DENIED = 1095  # You are not owner of thread
    NET_PACKET_TOO_LARGE = 1153
    NET_READ_ERROR = 1158
    NET_PACKETS_OUT_OF_ORDER = 1156
    UNKNOWN_STMT_HANDLER = 1243  # Unknown prepared statement handler
    WRONG_ARGUMENTS = 1210  # Incorrect arguments to mysqld_stmt_execute
    MALFORMED_PACKET = 1835
    SECURE_TRANSPORT_REQUIRED = 3159
    QUERY_INTERRUPTED = 1317
    SERVER_SHUTDOWN = 1053


WIRE_SQLSTATE: dict[int, str] = {
    WireError.CON_COUNT: "08004",
    WireError.HANDSHAKE: "08S01",
    WireError.ACCESS_DENIED: "28000",
    WireError.UNKNOWN_COM: "08S01",
    WireError.NO_SUCH_THREAD: "HY000",
    WireError.KILL_DENIED: "HY000",
    WireError.NET_PACKET_TOO_LARGE: "08S01",
    WireError.NET_READ_ERROR: "08S01",
    WireError.NET_PACKETS_OUT_OF_ORDER: "08S01",
    WireError.UNKNOWN_STMT_HANDLER: "HY000",
    WireError.WRONG_ARGUMENTS: "HY000",
    WireError.MALFORMED_PACKET: "HY000",
    WireError.SECURE_TRANSPORT_REQUIRED: "HY000",
    WireError.QUERY_INTERRUPTED: "70100",
    WireError.SERVER_SHUTDOWN: "08S01",
}
