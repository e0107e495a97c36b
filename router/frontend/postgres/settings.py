"""Session settings the frontend keeps itself: the parameters a PostgreSQL server reports (``ParameterStatus``:
application_name, TimeZone, DateStyle, client_encoding…), ``SET``/``SHOW``/``RESET`` of them, ``DISCARD`` and
``DEALLOCATE``. The engine keeps the rest (``SET statement_timeout``, ``SET workload``…).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from router.frontend.postgres import messages as M
from router.frontend.postgres import textfmt
from router.frontend.postgres.running import DoneRun, Running
from router.frontend.postgres.statements import Info
from sharding.errors import InvalidValueError, SyntaxError_, TransactionError, UnsupportedError

__all__ = ["CANONICAL_PARAMS", "DURATION_SETTINGS", "LOCAL_EXTRA", "REPORTED_DEFAULTS", "SessionSettings",
           "duration_in_ms"]

# The parameters a PostgreSQL server reports (GUC_REPORT) and that clients read; server_version is filled in
# from the shards at startup.
REPORTED_DEFAULTS: dict[str, str] = {
    "server_version": "15.0",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "application_name": "",
    "is_superuser": "off",
    "session_authorization": "",
    "default_transaction_read_only": "off",
    "in_hot_standby": "off",
}
LOCAL_EXTRA = {"extra_float_digits": "1", "bytea_output": "hex"}
CANONICAL_PARAMS = {k.lower(): k for k in (*REPORTED_DEFAULTS, *LOCAL_EXTRA)}
CANONICAL_PARAMS["time zone"] = "TimeZone"
_UTF8_NAMES = frozenset({"utf8", "utf-8", "unicode"})
_SET_VALUE = re.compile(r"(?:=|\bTO\b)\s*(.*?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_TIMEZONE_VALUE = re.compile(r"\bZONE\s+(.*?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)



_BACKEND_PARAMS = frozenset({"TimeZone", "DateStyle", "application_name"})  # replayed on shard connections too
DURATION_SETTINGS = frozenset({"statement_timeout", "transaction_timeout", "query_timeout"})
_UNITS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"\s*'?\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)\s*'?\s*;?\s*$", re.IGNORECASE)


def duration_in_ms(sql: str, info: Info) -> str:
    """``SET statement_timeout = '5s'`` → ``… = 5000``: the router keeps timeouts in milliseconds, PostgreSQL
    accepts units."""
    m = _SET_VALUE.search(sql)
    if m is None:
        return sql
    unit = _DURATION.fullmatch(m.group(1))
    if unit is None:
        return sql
    ms = float(unit.group(1)) * _UNITS[unit.group(2).lower()]
    return f"SET {info.name} = {int(ms) if ms == int(ms) else ms}"


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].replace(text[0] * 2, text[0])
    return text



class SessionSettings:
    """The handler's settings statements (a mixin of ``handler.Handler``)."""

    proto: Any
    session: Any
    params: dict[str, str]
    defaults: dict[str, str]
    local: dict[str, str]
    statements: dict[str, Any]
    portals: dict[str, Any]
    _timezone: Any

    if TYPE_CHECKING:  # provided by handler.Handler
        async def _park_others(self, current: Any = None) -> None: ...

        async def _close_portal(self, portal: Any) -> None: ...

    def _set_local(self, sql: str, info: Info) -> Running:
        name = CANONICAL_PARAMS[info.name.lower()]
        m = (_TIMEZONE_VALUE if info.second == "TIME" else _SET_VALUE).search(sql)
        if m is None:
            raise SyntaxError_(f"syntax error in SET {name}", position=1)
        raw = m.group(1)
        value = _unquote(raw)
        if raw.upper() in ("DEFAULT", "LOCAL"):
            value = self.defaults.get(name, self.local.get(name, ""))
        self._apply_param(name, value)
        return DoneRun("SET")

    def _apply_param(self, name: str, value: str, *, report: bool = True) -> None:
        if name == "client_encoding":
            low = _unquote(value).lower().replace("_", "")
            if low in _UTF8_NAMES:
                value = "UTF8"
            elif low == "sqlascii":
                value = "SQL_ASCII"
            else:
                raise UnsupportedError(f"client_encoding {value!r} is not supported: shardgate speaks UTF8")
        elif name == "TimeZone":
            tz = textfmt.zone(value)
            self._timezone = None if value.upper() in ("UTC", "GMT", "Z") else tz
        elif name == "DateStyle":
            if not value.upper().startswith("ISO"):
                raise UnsupportedError(f"DateStyle {value!r} is not supported: only ISO")
            value = "ISO, MDY" if "," not in value else value
        elif name == "IntervalStyle":
            if value.lower() != "postgres":
                raise UnsupportedError(f"IntervalStyle {value!r} is not supported: only postgres")
        elif name == "standard_conforming_strings":
            if value.lower() not in ("on", "true", "1", "yes"):
                raise UnsupportedError("standard_conforming_strings must stay on")
            value = "on"
        elif name == "extra_float_digits":
            try:
                n = int(value)
            except ValueError:
                raise InvalidValueError(f'invalid value for parameter "extra_float_digits": "{value}"') from None
            if not -15 <= n <= 3:
                raise InvalidValueError(f"{n} is outside the valid range for parameter \"extra_float_digits\"")
        elif name == "bytea_output":
            if value.lower() != "hex":
                raise UnsupportedError("bytea_output must stay hex")
        elif name in REPORTED_DEFAULTS and name != "application_name":
            raise UnsupportedError(f'parameter "{name}" cannot be changed')
        if name in self.params:
            if self.params[name] != value:
                self.params[name] = value
                if report:
                    self.proto.send(M.parameter_status(name, value))
        else:
            self.local[name] = value
        if name in _BACKEND_PARAMS:  # the shards must see it too (now()::text, to_char, date input)
            hook = getattr(self.session, "backend_param", None)
            if hook is not None:
                default = REPORTED_DEFAULTS.get(name) if name != "application_name" else ""
                hook(name, None if value == default else value)

    def _reset_local(self, name: str) -> None:
        canonical = CANONICAL_PARAMS[name]
        self._apply_param(canonical, self.defaults.get(canonical, LOCAL_EXTRA.get(canonical, "")))

    async def _discard(self, info: Info) -> Running:
        if info.second == "ALL":
            await self._park_others()
            if self.session.in_transaction:
                raise TransactionError("DISCARD ALL cannot run inside a transaction block")
            for portal in list(self.portals.values()):
                await self._close_portal(portal)
            self.portals.clear()
            self.statements.clear()
            for name in list(self.params):
                if name in ("application_name", "TimeZone", "client_encoding", "DateStyle"):
                    self._apply_param(name, self.defaults[name])
            await self.session.execute("RESET ALL")
        backend = getattr(self.session, "backend", None)
        if info.second in ("ALL", "TEMP", "TEMPORARY") and backend is not None and not self.session.in_transaction:
            await backend.discard(info.second)  # pinned shard connections drop what the statement names
        return DoneRun(info.tag)

    def _deallocate(self, info: Info) -> Running:
        if info.tag == "DEALLOCATE ALL":
            self.statements.clear()
        elif self.statements.pop(info.name, None) is None:
            raise _no_statement(info.name)
        return DoneRun(info.tag)


def _no_statement(name: str) -> M.PgError:
    return M.PgError(f'prepared statement "{name}" does not exist', sqlstate="26000")
