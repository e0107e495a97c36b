"""The text format: values as a PostgreSQL 15 server prints them, and parameter text as the router binds it.

Output settings this matches (the ones the frontend reports in ParameterStatus): DateStyle ``ISO, MDY``,
IntervalStyle ``postgres``, ``bytea_output = hex``, ``extra_float_digits = 1`` (shortest exact floats, the
default since PostgreSQL 12), TimeZone of the session (UTC unless the client set it).

Encoders are tolerant of the value's Python type: a shard of another engine, or the router's own arithmetic
(merged aggregates), can hand an ``int`` for a numeric column or a ``Decimal`` for an integer one; what counts is
what the column is declared as.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import math
import re
import struct
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from router.frontend.postgres import oids as O
from sharding.errors import InvalidValueError

__all__ = ["DECODERS", "ENCODERS", "decode_str", "encode_array", "encode_other", "format_float4",
           "format_float8", "timestamptz_encoder"]

_UTC = _dt.UTC


# --- output -------------------------------------------------------------------------------------------------------
def encode_other(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, bool):
        return b"t" if v else b"f"
    if isinstance(v, float):
        return format_float8(v).encode()
    if isinstance(v, Decimal):
        return _numeric(v)
    if isinstance(v, _dt.datetime):
        return _timestamp(v) if v.tzinfo is None else _timestamptz_in(v, _UTC)
    if isinstance(v, _dt.date):
        return v.isoformat().encode()
    if isinstance(v, _dt.time):
        return _time(v)
    if isinstance(v, _dt.timedelta):
        return _interval(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v).encode()
    return str(v).encode()


def _text(v: Any) -> bytes:
    if v.__class__ is str:
        return v.encode()
    return encode_other(v)


def _bool(v: Any) -> bytes:
    if isinstance(v, str):
        return b"t" if v.lower() in ("t", "true", "1", "on", "yes", "y") else b"f"
    return b"t" if v else b"f"


def _int(v: Any) -> bytes:
    if v.__class__ is int:
        return str(v).encode()
    if isinstance(v, bool):
        return b"1" if v else b"0"
    if isinstance(v, (float, Decimal)) and math.isfinite(v) and v == int(v):
        return str(int(v)).encode()
    return str(v).encode()


def format_float8(v: float) -> str:
    """``float8out`` with extra_float_digits 1: shortest exact digits, fixed notation for exponents -4..14."""
    if v != v:
        return "NaN"
    if v in (math.inf, -math.inf):
        return "Infinity" if v > 0 else "-Infinity"
    return _shortest(repr(float(v)), 15)


def format_float4(v: float) -> str:
    """``float4out``: the shortest digits that read back as the same float4, fixed for exponents -4..5."""
    if v != v:
        return "NaN"
    if v in (math.inf, -math.inf):
        return "Infinity" if v > 0 else "-Infinity"
    try:
        f32 = struct.unpack("!f", struct.pack("!f", v))[0]
    except OverflowError:
        return format_float8(v)
    for digits in range(1, 10):
        text = f"{f32:.{digits}g}"
        if struct.unpack("!f", struct.pack("!f", float(text)))[0] == f32:
            return _shortest(repr(float(text)), 6)
    return _shortest(repr(f32), 6)


_SCI = re.compile(r"(-?)(\d)(?:\.(\d+))?e([+-]\d+)")


def _shortest(r: str, fixed_below: int) -> str:
    """Reformat Python's shortest repr of a float the way PostgreSQL's Ryu output does."""
    m = _SCI.fullmatch(r)
    if m:
        sign, head, tail, exp_s = m.group(1), m.group(2), (m.group(3) or "").rstrip("0"), int(m.group(4))
        digits = head + tail
    else:
        sign = "-" if r.startswith("-") else ""
        body = r.lstrip("-")
        whole, _, frac = body.partition(".")
        frac = frac.rstrip("0")
        if whole.strip("0") == "":
            if not frac:
                return sign + "0"
            lead = len(frac) - len(frac.lstrip("0"))
            digits = frac.lstrip("0")
            exp_s = -lead - 1
        else:
            whole = whole.lstrip("0")
            digits = (whole + frac).rstrip("0") or "0"
            exp_s = len(whole) - 1
    if -4 <= exp_s < fixed_below:
        if exp_s < 0:
            return f"{sign}0.{'0' * (-exp_s - 1)}{digits}"
        if len(digits) <= exp_s + 1:
            return sign + digits + "0" * (exp_s + 1 - len(digits))
        return f"{sign}{digits[:exp_s + 1]}.{digits[exp_s + 1:]}"
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mant}e{'-' if exp_s < 0 else '+'}{abs(exp_s):02d}"


def _float8(v: Any) -> bytes:
    if isinstance(v, str):
        return v.encode()
    return format_float8(float(v)).encode()


def _float4(v: Any) -> bytes:
    if isinstance(v, str):
        return v.encode()
    return format_float4(float(v)).encode()


def _numeric(v: Any) -> bytes:
    if isinstance(v, Decimal):
        if v.is_nan():
            return b"NaN"
        if v.is_infinite():
            return b"Infinity" if v > 0 else b"-Infinity"
        return format(v, "f").encode()
    if isinstance(v, float):
        if not math.isfinite(v):
            return format_float8(v).encode()
        return format(Decimal(repr(v)), "f").encode()
    if isinstance(v, bool):
        return b"1" if v else b"0"
    return str(v).encode()


def _bytea(v: Any) -> bytes:
    if isinstance(v, str):
        v = v.encode()
    return b"\\x" + bytes(v).hex().encode()


def _frac(us: int) -> str:
    return f".{us:06d}".rstrip("0") if us else ""


def _date(v: Any) -> bytes:
    if isinstance(v, _dt.datetime):
        v = v.date()
    if isinstance(v, _dt.date):
        if v == _dt.date.max:
            return b"infinity"
        if v == _dt.date.min:
            return b"-infinity"
        return v.isoformat().encode()
    return str(v).encode()


def _timestamp(v: Any) -> bytes:
    if isinstance(v, _dt.datetime):
        if v == _dt.datetime.max:
            return b"infinity"
        if v == _dt.datetime.min:
            return b"-infinity"
        return (f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}"
                f"{_frac(v.microsecond)}").encode()
    if isinstance(v, _dt.date):
        return f"{v.isoformat()} 00:00:00".encode()
    return str(v).encode()


def _offset(off: _dt.timedelta | None) -> str:
    secs = int(off.total_seconds()) if off is not None else 0
    sign = "-" if secs < 0 else "+"
    secs = abs(secs)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    out = f"{sign}{h:02d}"
    if m or s:
        out += f":{m:02d}"
    if s:
        out += f":{s:02d}"
    return out


def _timestamptz_in(v: _dt.datetime, tz: _dt.tzinfo) -> bytes:
    if v == _dt.datetime.max.replace(tzinfo=_UTC):
        return b"infinity"
    if v == _dt.datetime.min.replace(tzinfo=_UTC):
        return b"-infinity"
    if v.tzinfo is None:
        v = v.replace(tzinfo=_UTC)
    try:
        local = v.astimezone(tz)
    except (OverflowError, ValueError):
        local = v
    return (f"{local.year:04d}-{local.month:02d}-{local.day:02d} {local.hour:02d}:{local.minute:02d}:"
            f"{local.second:02d}{_frac(local.microsecond)}{_offset(local.utcoffset())}").encode()


def timestamptz_encoder(timezone: Any = None) -> Callable[[Any], bytes]:
    """timestamptz prints in the session's TimeZone (a ``tzinfo``, or a name such as ``Europe/Paris``)."""
    if timezone is None:
        tz: _dt.tzinfo = _UTC
    elif isinstance(timezone, _dt.tzinfo):
        tz = timezone
    else:
        tz = zone(str(timezone))

    def enc(v: Any) -> bytes:
        if isinstance(v, _dt.datetime):
            return _timestamptz_in(v, tz)
        return str(v).encode()

    return enc


def zone(name: str) -> _dt.tzinfo:
    """A time zone by the names PostgreSQL accepts most often (IANA names, UTC/GMT/Z, ``+05:30``)."""
    key = name.strip().strip("'\"")
    if key.upper() in ("UTC", "GMT", "Z", "ZULU", "UCT", "UNIVERSAL", "ETC/UTC", "ETC/UCT"):
        return _UTC
    m = re.fullmatch(r"([+-]?)(\d{1,2})(?::(\d{2}))?", key)
    if m:
        # A bare number is an hour offset east of Greenwich, as ``SET TIME ZONE -7`` reads it.
        delta = _dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
        return _dt.timezone(-delta if m.group(1) == "-" else delta)
    try:
        return ZoneInfo(key)
    except (ValueError, OSError, KeyError) as exc:
        raise InvalidValueError(f'invalid value for parameter "TimeZone": "{name}"') from exc


def _timestamptz(v: Any) -> bytes:
    if isinstance(v, _dt.datetime):
        return _timestamptz_in(v, _UTC)
    return str(v).encode()


def _time(v: Any) -> bytes:
    if isinstance(v, _dt.time):
        out = f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}{_frac(v.microsecond)}"
        if v.tzinfo is not None:
            out += _offset(v.utcoffset())
        return out.encode()
    if isinstance(v, _dt.timedelta):  # MySQL TIME arrives as a duration
        return _clock(v).encode()
    return str(v).encode()


def _clock(td: _dt.timedelta) -> str:
    total = td.days * 86_400_000_000 + td.seconds * 1_000_000 + td.microseconds
    sign = "-" if total < 0 else ""
    total = abs(total)
    secs, us = divmod(total, 1_000_000)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{sign}{h:02d}:{m:02d}:{s:02d}{_frac(us)}"


def _interval(v: Any) -> bytes:
    """IntervalStyle postgres (``1 day 02:00:00``, ``-1 days +02:00:00``) from a duration: its days stay days."""
    if not isinstance(v, _dt.timedelta):
        return str(v).encode()
    days = v.days
    rest = _dt.timedelta(seconds=v.seconds, microseconds=v.microseconds)
    if days < 0 and rest:  # Python keeps the time part positive; PostgreSQL keeps days and time apart as given
        days += 1
        rest -= _dt.timedelta(days=1)
    parts = []
    if days:
        parts.append(f"{days} day{'s' if abs(days) != 1 else ''}")
    if rest or not days:
        clock = _clock(rest)
        if days < 0 and not clock.startswith("-"):
            clock = "+" + clock
        parts.append(clock)
    return " ".join(parts).encode()


def _uuid(v: Any) -> bytes:
    return str(v).encode()


def _json(v: Any) -> bytes:
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    return json.dumps(v).encode()


ENCODERS: dict[int, Callable[[Any], bytes]] = {
    O.BOOL: _bool, O.BYTEA: _bytea, O.CHAR: _text, O.NAME: _text, O.INT8: _int, O.INT2: _int, O.INT4: _int,
    O.TEXT: _text, O.OID: _int, O.XID: _int, O.CID: _int, O.JSON: _json, O.XML: _text, O.FLOAT4: _float4,
    O.FLOAT8: _float8, O.UNKNOWN: _text, O.BPCHAR: _text, O.VARCHAR: _text, O.DATE: _date, O.TIME: _time,
    O.TIMESTAMP: _timestamp, O.TIMESTAMPTZ: _timestamptz, O.INTERVAL: _interval, O.TIMETZ: _time,
    O.NUMERIC: _numeric, O.UUID: _uuid, O.JSONB: _json, O.INET: _text, O.CIDR: _text, O.MACADDR: _text,
    O.MONEY: _text, O.REGCLASS: _text, O.REGTYPE: _text, O.REGPROC: _text, O.VOID: lambda v: b"",
}

_ARRAY_SPECIAL = re.compile(r'[{}",\\\s]')


def encode_array(v: Any, inner: Callable[[Any], bytes], elem: int) -> bytes:
    """``{1,2,NULL}``, ``{"a b","c\\"d"}``, nested lists as nested braces (``text[]`` from a Python list)."""
    if isinstance(v, (str, bytes)):
        return v.encode() if isinstance(v, str) else v
    delim = ";" if elem == 603 else ","  # box uses ';'

    def one(item: Any) -> str:
        if item is None:
            return "NULL"
        if isinstance(item, (list, tuple)):
            return "{" + delim.join(one(x) for x in item) + "}"
        text = inner(item).decode("utf-8", "surrogateescape")
        if text == "" or text.upper() == "NULL" or _ARRAY_SPECIAL.search(text):
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return text

    return one(list(v)).encode()


# --- input (Bind parameters in text format) ------------------------------------------------------------------
def decode_str(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValueError("invalid byte sequence for encoding \"UTF8\" in a parameter") from None


_INT = re.compile(r"\s*([+-]?\d+)\s*")


def _dec_int(bits: int) -> Callable[[bytes], int]:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    name = {16: "smallint", 32: "integer", 64: "bigint"}[bits]

    def dec(data: bytes) -> int:
        text = decode_str(data)
        m = _INT.fullmatch(text)
        if m is None:
            raise InvalidValueError(f'invalid input syntax for type {name}: "{text}"')
        n = int(m.group(1))
        if not lo <= n <= hi:
            raise InvalidValueError(f'value "{text}" is out of range for type {name}')
        return n

    return dec


def _dec_oid(data: bytes) -> int:
    text = decode_str(data).strip()
    if not text.isdigit() or int(text) > 0xFFFFFFFF:
        raise InvalidValueError(f'invalid input syntax for type oid: "{text}"')
    return int(text)


_FLOAT_WORDS = {"nan": math.nan, "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf,
                "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _dec_float(data: bytes) -> float:
    text = decode_str(data).strip()
    word = _FLOAT_WORDS.get(text.lower())
    if word is not None:
        return word
    if not _FLOAT.fullmatch(text):
        raise InvalidValueError(f'invalid input syntax for type double precision: "{text}"')
    return float(text)


def _dec_numeric(data: bytes) -> Decimal:
    text = decode_str(data).strip()
    low = text.lower()
    if low == "nan":
        return Decimal("NaN")
    if low in ("infinity", "+infinity", "inf", "+inf"):
        return Decimal("Infinity")
    if low in ("-infinity", "-inf"):
        return Decimal("-Infinity")
    if not _FLOAT.fullmatch(text):
        raise InvalidValueError(f'invalid input syntax for type numeric: "{text}"')
    try:
        return Decimal(text)
    except InvalidOperation:
        raise InvalidValueError(f'invalid input syntax for type numeric: "{text}"') from None


_TRUE = frozenset({"t", "tr", "tru", "true", "y", "ye", "yes", "on", "1"})
_FALSE = frozenset({"f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0"})


def _dec_bool(data: bytes) -> bool:
    text = decode_str(data).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidValueError(f'invalid input syntax for type boolean: "{text}"')


def _dec_bytea(data: bytes) -> bytes:
    if data.startswith(b"\\x"):
        hexpart = bytes(c for c in data[2:] if c not in b" \t\n\r")
        try:
            return bytes.fromhex(hexpart.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            raise InvalidValueError("invalid hexadecimal data in a bytea parameter") from None
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c != 0x5C:
            out.append(c)
            i += 1
        elif data[i + 1:i + 2] == b"\\":
            out.append(0x5C)
            i += 2
        elif len(data) >= i + 4 and all(0x30 <= d <= 0x37 for d in data[i + 1:i + 4]):
            out.append(int(data[i + 1:i + 4], 8) & 0xFF)
            i += 4
        else:
            raise InvalidValueError("invalid input syntax for type bytea")
    return bytes(out)


def _dec_uuid(data: bytes) -> Any:
    text = decode_str(data).strip()
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidValueError(f'invalid input syntax for type uuid: "{text}"') from None


def _keep_or(parse: Callable[[str], Any]) -> Callable[[bytes], Any]:
    """Parse what Python can read exactly; anything else (``infinity``, BC dates, ``now``) stays text for the
    shard to read, as the untyped literal it becomes."""

    def dec(data: bytes) -> Any:
        text = decode_str(data)
        try:
            return parse(text.strip())
        except (ValueError, OverflowError):
            return text

    return dec


def _parse_timestamp(text: str) -> _dt.datetime:
    v = _dt.datetime.fromisoformat(text)
    if v.tzinfo is not None:
        raise ValueError("timestamp without time zone with an offset")
    return v


def _parse_timestamptz(text: str) -> _dt.datetime:
    if re.search(r"[+-]\d\d$", text):  # PostgreSQL's short '+00' offset
        text += ":00"
    v = _dt.datetime.fromisoformat(text)
    if v.tzinfo is None:
        raise ValueError("keep: the shard's TimeZone decides")
    return v


def _dec_inet(data: bytes) -> str:
    text = decode_str(data).strip()
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        raise InvalidValueError(f'invalid input syntax for type inet: "{text}"') from None
    return text


DECODERS: dict[int, Callable[[bytes], Any]] = {
    O.INT2: _dec_int(16), O.INT4: _dec_int(32), O.INT8: _dec_int(64), O.OID: _dec_oid, O.FLOAT4: _dec_float,
    O.FLOAT8: _dec_float, O.NUMERIC: _dec_numeric, O.BOOL: _dec_bool, O.BYTEA: _dec_bytea, O.UUID: _dec_uuid,
    O.DATE: _keep_or(_dt.date.fromisoformat), O.TIMESTAMP: _keep_or(_parse_timestamp),
    O.TIMESTAMPTZ: _keep_or(_parse_timestamptz), O.INET: _dec_inet,
}
