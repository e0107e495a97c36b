"""What a session keeps on the backend side under transaction pooling: replayed settings and pinned connections.

Backend connections are shared: outside a transaction a session borrows one per statement. Two kinds of session
state must survive that:

- **Settings that can be replayed** (``SET time_zone = '+02:00'``, ``SET search_path = app``, ``work_mem``,
  ``sql_mode``…, the lists below): kept here as value text; every checkout for this session asks the pool for a
  connection with exactly these settings in effect, and the pool sends only the difference (``Pool.acquire``,
  ``AdapterBase.sync_settings``, PgDog's parameter sync). A connection going to a session with other settings gets
  them changed back on its next checkout, so nothing leaks between sessions.
- **State that cannot be moved**: temporary tables, user-level locks (``GET_LOCK``, ``pg_advisory_lock``),
  ``LOCK TABLES``, ``LISTEN``, SQL-level ``PREPARE``, and settings the router does not know how to replay
  (``unknown`` variables: they are sent as written). The connection that holds it is **pinned**: the session keeps
  it, outside transactions too, until the state is dropped (``RELEASE_ALL_LOCKS()``, ``pg_advisory_unlock_all()``,
  ``UNLISTEN *``, ``UNLOCK TABLES``, ``DEALLOCATE ALL``, ``RESET ALL``, the variable set back to ``DEFAULT``) or the
  session ends; then it is reset (``COM_RESET_CONNECTION`` / ``RESET ALL``, ``DISCARD TEMP``…) before reuse. Each
  connection pinned is counted with its reason (``pin_counts()``, and ``shardgate_pins_total{reason}``).

``SessionBackend`` is the session's view of the pools: the engine (``PoolContext``, ``Transaction``) calls its
``acquire`` exactly as it would call ``PoolSet.acquire``. A pinned connection already lent (a join reading the
same shard twice at once) is not lent twice: the second reader gets an ordinary pooled connection with the same
settings and replayed unknown variables (it does not see the pinned connection's temporary tables).
"""
from __future__ import annotations

import collections
import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from router import metrics
from router.backend.connection import BackendTarget
from router.backend.lease import Acquire
from router.backend.sqlkind import first_keyword

__all__ = ["HARMLESS", "PIN_REASONS", "SessionBackend", "pin_counts", "render_value", "statement_effect",
           "variable_kind"]

log = logging.getLogger("shardgate.engine.session_state")

PIN_REASONS = ("temporary_table", "user_lock", "table_lock", "listen", "prepared_statement", "session_variable")
_EMPTY: Mapping[str, str] = MappingProxyType({})

# Kept by the frontends or meaningless on a shared backend connection: remembered, never sent.
HARMLESS = frozenset({"names", "character_set_client", "character_set_connection", "character_set_results",
                      "client_encoding", "extra_float_digits", "net_write_timeout", "net_read_timeout",
                      "wait_timeout", "interactive_timeout", "session_track_schema", "session_track_state_change",
                      "session_track_system_variables", "session_track_gtids", "session_track_transaction_info",
                      "bytea_output", "intervalstyle", "standard_conforming_strings",
                      # isolation: the router's transactions carry it (SET TRANSACTION); the names differ between
                      # MySQL versions and MariaDB, so sending them could fail where the client expects none
                      "transaction_isolation", "tx_isolation", "transaction_read_only", "tx_read_only"})
# Settings replayed on every connection that serves the session.
_MYSQL_REPLAYED = frozenset({
    "time_zone", "sql_mode", "collation_connection", "group_concat_max_len", "div_precision_increment",
    "lc_time_names", "default_week_format", "foreign_key_checks", "unique_checks", "sql_safe_updates",
    "innodb_lock_wait_timeout", "lock_wait_timeout", "sort_buffer_size", "join_buffer_size", "tmp_table_size",
    "max_heap_table_size", "optimizer_switch", "optimizer_search_depth", "optimizer_prune_level", "big_tables",
    "sql_big_selects", "max_join_size", "cte_max_recursion_depth", "max_recursive_iterations", "long_query_time",
    "sql_notes", "sql_warnings", "max_sort_length", "updatable_views_with_limit", "sql_buffer_result",
    "innodb_strict_mode", "default_storage_engine", "default_tmp_storage_engine", "max_sp_recursion_depth",
    "block_encryption_mode", "histogram_generation_max_mem_size", "range_optimizer_max_mem_size",
    "eq_range_index_dive_limit", "explicit_defaults_for_timestamp", "completion_type", "sql_quote_show_create",
})
_PG_REPLAYED = frozenset({
    "search_path", "timezone", "datestyle", "application_name", "work_mem", "maintenance_work_mem", "temp_buffers",
    "lock_timeout", "default_transaction_isolation", "default_transaction_read_only", "default_transaction_deferrable",
    "random_page_cost", "seq_page_cost", "effective_cache_size", "effective_io_concurrency", "jit",
    "from_collapse_limit", "join_collapse_limit", "constraint_exclusion", "synchronous_commit", "row_security",
    "client_min_messages", "default_text_search_config", "lc_monetary", "lc_numeric", "lc_time", "plan_cache_mode",
    "default_statistics_target", "gin_fuzzy_search_limit", "xmloption", "cursor_tuple_fraction",
    "hash_mem_multiplier", "default_table_access_method", "default_tablespace", "temp_tablespaces",
    "check_function_bodies", "array_nulls", "backslash_quote", "escape_string_warning", "quote_all_identifiers",
    "session_replication_role", "vacuum_cost_delay", "vacuum_cost_limit", "geqo", "geqo_threshold",
    "trace_notify", "log_statement", "log_min_duration_statement",
})
_PG_REPLAYED_PREFIXES = ("enable_", "cpu_", "parallel_", "max_parallel_", "jit_", "geqo_", "min_parallel_")
# sql_mode flags that change how a statement is *read*: the router renders what it sends in its own reading, so
# the shards must not apply these (the router applies them itself, see ``Session._flags``).
_PARSE_MODES = frozenset({"ANSI_QUOTES", "NO_BACKSLASH_ESCAPES", "PIPES_AS_CONCAT", "HIGH_NOT_PRECEDENCE"})
_ANSI = ("REAL_AS_FLOAT", "PIPES_AS_CONCAT", "ANSI_QUOTES", "IGNORE_SPACE", "ONLY_FULL_GROUP_BY")


def variable_kind(name: str, dialect: str) -> str:
    """``replay`` | ``harmless`` | ``unknown`` (pinned) for a session variable the session does not keep itself."""
    key = name.lower()
    if key in HARMLESS:
        return "harmless"
    if dialect == "mysql":
        if key == "application_name":
            return "harmless"
        return "replay" if key in _MYSQL_REPLAYED else "unknown"
    if key in ("transaction_isolation", "transaction_read_only", "transaction_deferrable"):
        return "harmless"  # PostgreSQL: these describe the current transaction (SET TRANSACTION does the work)
    if key in _PG_REPLAYED or key.startswith(_PG_REPLAYED_PREFIXES):
        return "replay"
    return "unknown"


# --- values ----------------------------------------------------------------------------------------------------
def _quote(text: str, dialect: str) -> str:
    if dialect == "mysql":
        return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + text.replace("'", "''") + "'"


def _scalar(value: Any, dialect: str) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return ("1" if value else "0") if dialect == "mysql" else ("on" if value else "off")
    if isinstance(value, int | float) or type(value).__name__ == "Decimal":
        return str(value)
    return _quote(str(value), dialect)


def render_value(name: str, raw: Any, value: Any, dialect: str, keyspaces: Iterable[str] = ()) -> str | None:
    """The SQL text of a setting's value as the shards must receive it; None means "the default" (RESET).

    ``raw`` is the planner's value (a tuple for a PostgreSQL list), ``value`` the evaluated one. MySQL
    ``sql_mode`` loses the flags that change how statements are read; PostgreSQL ``search_path`` loses the names of
    keyspaces (the router's own schemas: on a shard, tables live in its default schema)."""
    key = name.lower()
    items = list(raw) if isinstance(raw, tuple) else [value]
    if dialect == "mysql" and key == "sql_mode":
        modes: list[str] = []
        for mode in str(value or "").upper().replace(" ", "").split(","):
            for part in (_ANSI if mode == "ANSI" else (mode,)):
                if part and part not in _PARSE_MODES and part not in modes:
                    modes.append(part)
        return _quote(",".join(modes), dialect)
    if dialect == "postgres" and key == "search_path":
        names = {k.lower() for k in keyspaces}
        parts = [str(i).strip() for i in items if str(i).strip()]
        if len(parts) == 1 and "," in parts[0]:
            parts = [p.strip().strip('"') for p in parts[0].split(",") if p.strip()]
        kept = [p for p in parts if p.lower() not in names]
        if not kept:
            return None
        return ", ".join(_quote(p, dialect) for p in kept)
    return ", ".join(_scalar(i, dialect) for i in items)


def set_statement(name: str, text: str | None, dialect: str) -> str:
    """``SET`` of one variable as written for a shard (None: back to its default)."""
    if dialect == "mysql":
        return f"SET SESSION {name} = {'DEFAULT' if text is None else text}"
    return f"RESET {name}" if text is None else f"SET {name} = {text}"


# --- statements that pin or unpin ---------------------------------------------------------------------------------
_LOCK_CALL = re.compile(r"\b(get_lock|pg_advisory_lock(?:_shared)?|pg_try_advisory_lock(?:_shared)?|"
                        r"release_all_locks|pg_advisory_unlock_all)\s*\(", re.IGNORECASE)
_TRY_LOCK = re.compile(r"\b(?:get_lock|pg_try_advisory_lock(?:_shared)?)\s*\(", re.IGNORECASE)  # may say no
_SET_CONFIG = re.compile(r"\bset_config\s*\(", re.IGNORECASE)
_TEMP = re.compile(r"\s*CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?TEMP(?:ORARY)?\s+TABLE\b", re.IGNORECASE)


def statement_effect(sql: str, engine: str) -> tuple[str | None, str | None]:
    """(pin reason, unpin reason) of a statement sent to a shard: what it leaves on, or drops from, its session.
    Cheap: a first-keyword look, and one regular expression only for reads that mention a lock function."""
    word = first_keyword(sql)
    if word == "SELECT" or word == "DO":
        if ("set_config" in sql or "SET_CONFIG" in sql) and _SET_CONFIG.search(sql):
            return "session_variable", None  # a setting changed by a function: the router cannot replay it
        if "lock" not in sql and "LOCK" not in sql and "Lock" not in sql:
            return None, None
        m = _LOCK_CALL.search(sql)
        if m is None:
            return None, None
        fn = m.group(1).lower()
        if fn in ("release_all_locks", "pg_advisory_unlock_all"):
            return None, "user_lock"
        return "user_lock", None
    if word == "CREATE":
        return ("temporary_table", None) if _TEMP.match(sql[sql.upper().index("CREATE"):]) else (None, None)
    if word == "LISTEN":
        return "listen", None
    if word == "UNLISTEN":
        return (None, "listen") if "*" in sql else (None, None)
    if word == "LOCK" and engine == "mysql":
        return "table_lock", None
    if word == "UNLOCK":
        return None, "table_lock"
    if word == "PREPARE" and "TRANSACTION" not in sql[:64].upper():
        return "prepared_statement", None
    if word == "DEALLOCATE" and "ALL" in sql.upper():
        return None, "prepared_statement"
    return None, None


def _lock_refused(result: Any) -> bool:
    """A one-value answer of a lock function that says no lock was taken (0, false or NULL)."""
    rows = getattr(result, "rows", None)
    if not rows or len(rows) != 1 or len(rows[0]) != 1:
        return False
    value = rows[0][0]
    return value is None or value is False or value == 0


# --- counting ----------------------------------------------------------------------------------------------------
_pins: collections.Counter[str] = collections.Counter()


def pin_counts() -> dict[str, int]:
    """Connections pinned since the process started, by reason (also ``shardgate_pins_total{reason}``)."""
    return dict(_pins)


def _count_pin(reason: str) -> None:
    _pins[reason] += 1
    metrics.pin(reason)


# --- the session's view of the pools -----------------------------------------------------------------------------
@dataclass(eq=False)
class _Pin:
    conn: Any  # router.backend.lease.PooledConnection
    reasons: set[str] = field(default_factory=set)
    in_use: bool = False


def _add_reason(pin: _Pin, reason: str) -> None:
    if reason not in pin.reasons:
        pin.reasons.add(reason)
        _count_pin(reason)


class SessionLease:
    """A connection lent to the session: pooled (released after use) or pinned (kept by the session). Watches the
    statements it runs for state that pins it; forwards everything else to the pooled connection."""

    __slots__ = ("_backend", "_conn", "_pin", "target")

    def __init__(self, backend: SessionBackend, target: BackendTarget, conn: Any, pin: _Pin | None) -> None:
        self._backend = backend
        self.target = target
        self._conn = conn
        self._pin = pin

    @property
    def pinned(self) -> bool:
        return self._pin is not None

    async def execute(self, sql: str, params: Sequence[Any] | None = None, *, timeout: float | None = None) -> Any:
        result = await self._conn.execute(sql, params, timeout=timeout)
        self._backend._observe(self, sql, result)
        return result

    def stream(self, sql: str, params: Sequence[Any] | None = None, *, batch_rows: int = 1000,
               timeout: float | None = None) -> Any:
        inner = self._conn.stream(sql, params, batch_rows=batch_rows, timeout=timeout)
        if statement_effect(sql, getattr(self._conn, "engine", self._backend.dialect))[0] == "user_lock":
            return _LockStream(inner, self, sql)  # whether a lock was taken shows in the first rows
        self._backend._observe(self, sql)  # the state may exist even if the reader stops early
        return inner

    async def release(self) -> None:
        pin = self._pin
        if pin is None:
            await self._conn.release()
            return
        pin.in_use = False
        if not pin.reasons or self._conn.released or self._conn.broken:
            await self._backend._unpin(self.target, pin)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __repr__(self) -> str:
        return f"<SessionLease {'pinned ' if self._pin else ''}{self._conn!r}>"


class _LockStream:
    """A streamed read calling a lock function: the connection is pinned unless its one value says no lock was
    taken (a stream that ends before any row pins, to be safe)."""

    def __init__(self, inner: Any, lease: SessionLease, sql: str) -> None:
        self._inner = inner
        self._lease = lease
        self._sql = sql
        self._decided = False

    def _decide(self, rows: Any) -> None:
        if not self._decided:
            self._decided = True
            self._lease._backend._observe(self._lease, self._sql, _Rows(rows) if rows is not None else None)

    async def __aenter__(self) -> _LockStream:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._inner.__aexit__(*exc)
        finally:
            self._decide(None)

    def __aiter__(self) -> _LockStream:
        return self

    async def __anext__(self) -> Any:
        try:
            batch = await self._inner.__anext__()
        except StopAsyncIteration:
            self._decide(None)
            raise
        self._decide(batch)
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Rows:
    __slots__ = ("rows",)

    def __init__(self, rows: Any) -> None:
        self.rows = rows


class SessionBackend:
    """The pools as one session sees them (see the module docstring)."""

    def __init__(self, pools: Any, dialect: str, backend_dialect: Callable[[str], str]) -> None:
        self.pools = pools
        self.dialect = dialect
        self._backend_dialect = backend_dialect
        self.settings: Mapping[str, str] = _EMPTY  # replayed settings: name -> value text (a new mapping per change)
        self.session_sets: dict[str, str] = {}  # unknown variables: name -> the SET statement pinned connections ran
        self.pins: dict[BackendTarget, _Pin] = {}

    # --- what the passthrough fast path and the admin console ask ------------------------------------------------
    @property
    def at_defaults(self) -> bool:
        """No replayed settings, no pins: any shard connection, opened with the router's defaults, can serve."""
        if self.pins or self.session_sets:
            return False
        settings = self.settings
        return not settings or (len(settings) == 1 and "application_name" in settings)  # a label, not a behaviour

    def pin_reasons(self) -> dict[str, list[str]]:
        return {str(t): sorted(p.reasons) for t, p in self.pins.items()}

    def pinned_shards(self, keyspace: str) -> frozenset[str]:
        return frozenset(t.shard for t in self.pins if t.keyspace == keyspace)

    # --- lending -------------------------------------------------------------------------------------------------
    def acquire(self, target: BackendTarget | str, shard: str | None = None, role: str = "primary", *,
                timeout: float | None = None) -> Acquire:
        if not isinstance(target, BackendTarget):
            if shard is None:
                raise TypeError("acquire(keyspace, shard, role) needs a shard")
            target = BackendTarget(target, shard, role)
        key = target
        return Acquire(lambda: self._lease(key, timeout))

    def desired(self, keyspace: str) -> Mapping[str, str]:
        if not self.settings or self._backend_dialect(keyspace) != self.dialect:
            return _EMPTY
        return self.settings

    async def _lease(self, target: BackendTarget, timeout: float | None) -> SessionLease:
        desired = self.desired(target.keyspace)
        pin = self.pins.get(target)
        if pin is not None and (pin.conn.released or pin.conn.broken):
            await self._unpin(target, pin)  # the server closed it: its state is gone with it
            pin = None
        if pin is not None and not pin.in_use:
            pin.in_use = True
            try:
                await pin.conn.sync_settings(desired)
            except BaseException:
                pin.in_use = False
                raise
            return SessionLease(self, target, pin.conn, pin)
        extra = {"settings": desired} if desired else {}  # none: the pool puts a connection back to its defaults
        conn = await self.pools.acquire(target.keyspace, target.shard, target.role, timeout=timeout, **extra)
        lease = SessionLease(self, target, conn, None)
        if self.session_sets and self._backend_dialect(target.keyspace) == self.dialect:
            try:
                for sql in self.session_sets.values():
                    await conn.execute(sql)
            except BaseException:
                await conn.release()
                raise
            if pin is None:
                self._pin(lease, "session_variable")
        return lease

    def _pin(self, lease: SessionLease, reason: str) -> None:
        pin = lease._pin
        if pin is None:
            if lease.target in self.pins:  # the target's pinned connection is busy; this one's state is lost
                log.info("session state on a second connection to %s is not kept (%s)", lease.target, reason)
                return
            pin = lease._pin = self.pins[lease.target] = _Pin(lease._conn, in_use=True)
            lease._conn.mark_dirty()  # when it goes back at last, it is reset
        _add_reason(pin, reason)

    def _observe(self, lease: SessionLease, sql: str, result: Any = None) -> None:
        pin_reason, unpin_reason = statement_effect(sql, getattr(lease._conn, "engine", self.dialect))
        if pin_reason is not None:
            if pin_reason == "user_lock" and _lock_refused(result) and _TRY_LOCK.search(sql):
                return  # GET_LOCK timed out, pg_try_advisory_lock said no: nothing is held
            self._pin(lease, pin_reason)
        elif unpin_reason is not None and lease._pin is not None:
            lease._pin.reasons.discard(unpin_reason)  # released (if nothing else holds it) when the lease ends

    async def _unpin(self, target: BackendTarget, pin: _Pin) -> None:
        if self.pins.get(target) is pin:
            del self.pins[target]
        if not pin.conn.released:
            await pin.conn.release()

    async def _drop_reason(self, reason: str) -> None:
        for target, pin in list(self.pins.items()):
            pin.reasons.discard(reason)
            if not pin.reasons and not pin.in_use:
                await self._unpin(target, pin)

    # --- settings --------------------------------------------------------------------------------------------------
    def set_replayed(self, name: str, text: str | None) -> bool:
        """Keep (or, None, forget) a replayed setting; True when it changed."""
        key = name.lower()
        current = self.settings.get(key)
        if current == text:
            return False
        changed = dict(self.settings)
        if text is None:
            changed.pop(key, None)
        else:
            changed[key] = text
        self.settings = MappingProxyType(changed) if changed else _EMPTY
        return True

    async def sync_held(self, held: Iterable[Any] = ()) -> bool:
        """Apply the settings now to the connections the session holds (its pins, its transaction's ``held``);
        False when it holds none (nothing checked the new values yet)."""
        done = False
        for target, pin in list(self.pins.items()):
            if not pin.in_use:
                await pin.conn.sync_settings(self.desired(target.keyspace))
                done = True
        for conn in held:
            target = conn.target
            await conn.sync_settings(self.desired(target.keyspace))
            done = True
        return done

    async def check(self, keyspace: str | None, shard: str | None) -> None:
        """Try the settings on one connection of ``keyspace`` (an invalid value fails here, at SET time)."""
        if keyspace is None or shard is None or self._backend_dialect(keyspace) != self.dialect:
            return
        async with self.acquire(keyspace, shard, "primary"):
            pass

    async def set_unknown(self, name: str, text: str | None, keyspace: str | None, shard: str | None,
                          held: Iterable[Any] = ()) -> None:
        """A variable the router cannot replay: run it on the connections the session holds and pin them (or pin
        one of ``keyspace`` now, so a bad value fails at SET time); later connections get it when first lent."""
        key = name.lower()
        sql = set_statement(key, text, self.dialect)
        previous = self.session_sets.get(key)
        if text is None:
            self.session_sets.pop(key, None)
        else:
            self.session_sets[key] = sql
        try:
            ran = False
            for target, pin in list(self.pins.items()):
                if self._backend_dialect(target.keyspace) == self.dialect and not pin.in_use:
                    await pin.conn.execute(sql)
                    if text is not None:
                        _add_reason(pin, "session_variable")
                    ran = True
            for conn in held:  # the transaction's connections (pinned or not): the SET belongs there now
                if isinstance(conn, SessionLease) and self._backend_dialect(conn.target.keyspace) == self.dialect:
                    await conn.execute(sql)
                    if text is not None:
                        self._pin(conn, "session_variable")
                    ran = True
            if not ran and text is not None and keyspace is not None and shard is not None \
                    and self._backend_dialect(keyspace) == self.dialect:
                async with self.acquire(keyspace, shard, "primary"):
                    pass  # lending replays the statement and pins the connection
        except BaseException:
            if previous is None:
                self.session_sets.pop(key, None)
            else:
                self.session_sets[key] = previous
            raise
        if not self.session_sets:
            await self._drop_reason("session_variable")

    async def reset_all(self) -> None:
        """``RESET ALL``: replayed settings and unknown variables go back to the defaults."""
        self.settings = _EMPTY
        had = dict(self.session_sets)
        self.session_sets.clear()
        for target, pin in list(self.pins.items()):
            if had and not pin.in_use and self._backend_dialect(target.keyspace) == self.dialect:
                for name in had:
                    with contextlib.suppress(Exception):
                        await pin.conn.execute(set_statement(name, None, self.dialect))
        await self._drop_reason("session_variable")
        await self.sync_held()

    async def discard(self, what: str) -> None:
        """PostgreSQL ``DISCARD TEMP`` / ``ALL`` (outside a transaction): TEMP drops the temporary tables of the
        pinned connections and their pins; ALL also gives every pinned connection back (its pool resets it:
        temporary tables, locks, LISTEN, prepared statements go with it), as the server would drop them."""
        if what == "ALL":
            await self.reset_all()
            await self.close()
            return
        if what in ("TEMP", "TEMPORARY"):
            for target, pin in list(self.pins.items()):
                if "temporary_table" in pin.reasons and not pin.in_use \
                        and self._backend_dialect(target.keyspace) == "postgres":
                    await pin.conn.execute("DISCARD TEMP")
            await self._drop_reason("temporary_table")

    async def close(self) -> None:
        """The session ended: every pinned connection goes back (reset by its pool before anyone reuses it)."""
        pins, self.pins = self.pins, {}
        for pin in pins.values():
            with contextlib.suppress(Exception):
                if not pin.conn.released:
                    await pin.conn.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pools, name)  # stats(), pool(), targets()… of the shared pools
