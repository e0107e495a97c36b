"""The asyncpg internals router.backend.postgres relies on still exist (this fails first after an upgrade)."""
import inspect

import asyncpg
from asyncpg import connect_utils
from asyncpg.cursor import Cursor


def test_connection_internals() -> None:
    conn = asyncpg.connection.Connection
    for name in ("_get_statement", "_check_open", "_drop_global_statement_cache", "reload_schema_state",
                 "get_reset_query", "add_log_listener", "is_in_transaction", "get_server_pid"):
        assert callable(getattr(conn, name)), name
    params = inspect.signature(conn._get_statement).parameters
    assert {"query", "timeout", "named", "use_cache"} <= set(params)
    assert "_stmt_exclusive_section" in conn.__slots__ and "_protocol" in conn.__slots__
    assert {"_addr", "_params", "_loop"} <= set(conn.__slots__)


def test_protocol_and_cursor_internals() -> None:
    from asyncpg.protocol import protocol

    assert hasattr(protocol.Protocol, "bind_execute")
    assert {"loop", "addr", "params", "backend_pid", "backend_secret"} <= set(
        inspect.signature(connect_utils._cancel).parameters)
    assert callable(Cursor._close_portal)
    assert hasattr(asyncpg.exceptions, "InvalidCachedStatementError")
    assert hasattr(asyncpg.exceptions, "OutdatedSchemaCacheError")
