"""Pieces of the single-shard fast path that need no shard: statement naming on shard connections, and which
reads are kept away from shared connections."""
from router.frontend.postgres import messages as M
from router.frontend.postgres.passthrough import _SESSION_STATE, Passthrough
from router.frontend.postgres.rawconn import RawConnection


def test_statements_are_prepared_once_per_connection_and_again_after_ddl() -> None:
    conn = RawConnection()
    name, first = conn.statement("SELECT $1", (23,), 0)
    assert first == M.fe_parse(name.decode(), "SELECT $1", (23,))
    again, nothing = conn.statement("SELECT $1", (23,), 0)
    assert again == name and nothing == b""
    other, _ = conn.statement("SELECT $1", (0,), 0)  # other declared types: another statement
    assert other != name
    renamed, messages = conn.statement("SELECT $1", (23,), 1)  # DDL went through the router
    kinds = [k for k, _ in M.read_backend(messages)]
    assert renamed != name and kinds == ["C", "C", "P"]
    conn.forget("SELECT $1", (23,))  # it failed on the shard: close it, prepare it anew
    newer, messages = conn.statement("SELECT $1", (23,), 1)
    assert newer != renamed and [k for k, _ in M.read_backend(messages)] == ["C", "P"]


def test_statement_cache_is_bounded() -> None:
    conn = RawConnection()
    for i in range(10):
        _, messages = conn.statement(f"SELECT {i}", (), 0, limit=4)
    assert len(conn.statements) == 4
    assert [k for k, _ in M.read_backend(messages)] == ["C", "P"]


def test_reads_that_touch_session_state_stay_on_the_engine() -> None:
    for sql in ("SELECT set_config('TimeZone', 'UTC', false)", "select pg_advisory_lock(1)",
                "SELECT currval('s')", "SELECT * INTO newtable FROM t", "SELECT lo_open(1, 2)"):
        assert _SESSION_STATE.search(sql), sql
    for sql in ("SELECT * FROM t WHERE id = $1", "SELECT intohere, pointer FROM t"):
        assert not _SESSION_STATE.search(sql), sql
    assert Passthrough.builtin_types((23, 25, 0)) and not Passthrough.builtin_types((23, 16385))
