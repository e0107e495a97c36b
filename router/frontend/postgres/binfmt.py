"""The binary format (each type's ``send``/``recv`` in the PostgreSQL sources): encoders for result columns a client
asked to receive in binary, decoders for binary Bind parameters.

Decoders are strict about lengths: a parameter of the wrong size is ``InvalidValueError`` (22P03,
invalid_binary_representation, in PostgreSQL; we report 22P02), never a misread value.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import math
import struct
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from router.frontend.postgres import oids as O
from sharding.errors import InvalidValueError

__all__ = ["DECODERS", "ENCODERS", "decode_array", "decode_numeric", "encode_array", "encode_numeric"]

_EPOCH_DATE = _dt.date(2000, 1, 1)
_EPOCH = _dt.datetime(2000, 1, 1)
_EPOCH_TZ = _dt.datetime(2000, 1, 1, tzinfo=_dt.UTC)
_DATE_ORDINAL = _EPOCH_DATE.toordinal()
_INT64_MAX, _INT64_MIN = (1 << 63) - 1, -(1 << 63)
_INT32_MAX, _INT32_MIN = (1 << 31) - 1, -(1 << 31)

_h, _i, _q, _f, _d, _I = (struct.Struct(f) for f in ("!h", "!i", "!q", "!f", "!d", "!I"))


def _bad(what: str) -> InvalidValueError:
    return InvalidValueError(f"invalid binary representation of a {what} parameter")


# --- scalars ----------------------------------------------------------------------------------------------------
def _as_int(v: Any) -> int:
    if v.__class__ is int:
        return v
    if isinstance(v, str):
        return int(v.strip())
    return int(v)


def _enc_bool(v: Any) -> bytes:
    if isinstance(v, str):
        return b"\x01" if v.lower() in ("t", "true", "1", "on", "yes", "y") else b"\x00"
    return b"\x01" if v else b"\x00"


def _dec_bool(data: bytes) -> bool:
    if len(data) != 1:
        raise _bad("boolean")
    return data != b"\x00"


def _enc_int(s: struct.Struct) -> Callable[[Any], bytes]:
    pack = s.pack

    def enc(v: Any) -> bytes:
        return pack(_as_int(v))

    return enc


def _dec_fixed(s: struct.Struct, what: str) -> Callable[[bytes], Any]:
    size, unpack = s.size, s.unpack

    def dec(data: bytes) -> Any:
        if len(data) != size:
            raise _bad(what)
        return unpack(data)[0]

    return dec


def _enc_float(s: struct.Struct) -> Callable[[Any], bytes]:
    pack = s.pack

    def enc(v: Any) -> bytes:
        if isinstance(v, str):
            v = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf}.get(v.lower(), v)
        return pack(float(v))

    return enc


def _enc_text(v: Any) -> bytes:
    if v.__class__ is str:
        return v.encode()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    from router.frontend.postgres.textfmt import encode_other

    return encode_other(v)


def _dec_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValueError('invalid byte sequence for encoding "UTF8" in a parameter') from None


def _enc_bytea(v: Any) -> bytes:
    if isinstance(v, str):
        return v.encode()
    return bytes(v)


def _enc_json(v: Any) -> bytes:
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    return json.dumps(v).encode()


def _enc_jsonb(v: Any) -> bytes:
    return b"\x01" + _enc_json(v)


def _dec_jsonb(data: bytes) -> str:
    if not data or data[0] != 1:
        raise _bad("jsonb")
    return _dec_text(data[1:])


# --- numeric: sign, base-10000 digits, weight, display scale -------------------------------------------------------
_NUMERIC_POS, _NUMERIC_NEG, _NUMERIC_NAN, _NUMERIC_PINF, _NUMERIC_NINF = 0x0000, 0x4000, 0xC000, 0xD000, 0xF000


def encode_numeric(v: Any) -> bytes:
    if not isinstance(v, Decimal):
        v = Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v).strip() if isinstance(v, str) else v)
    if v.is_nan():
        return struct.pack("!hhHh", 0, 0, _NUMERIC_NAN, 0)
    if v.is_infinite():
        return struct.pack("!hhHh", 0, 0, _NUMERIC_PINF if v > 0 else _NUMERIC_NINF, 0)
    sign, digits, exp = v.as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits))
    dscale = max(0, -exp)
    if exp >= 0:
        whole, frac = text + "0" * exp, ""
    else:
        n_int = len(text) + exp
        whole, frac = (text[:n_int], text[n_int:]) if n_int > 0 else ("", "0" * (-n_int) + text)
    whole = whole.lstrip("0")
    whole = "0" * (-len(whole) % 4) + whole
    frac = frac + "0" * (-len(frac) % 4)
    groups = [int(whole[i:i + 4]) for i in range(0, len(whole), 4)]
    weight = len(groups) - 1
    groups += [int(frac[i:i + 4]) for i in range(0, len(frac), 4)]
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    if len(groups) > 0x7FFF or not -0x8000 <= weight <= 0x7FFF or dscale > 0x3FFF:
        raise InvalidValueError("numeric value out of range for the binary format")
    return struct.pack(f"!hhHh{len(groups)}H", len(groups), weight,
                       _NUMERIC_NEG if sign and groups else _NUMERIC_POS, dscale, *groups)


def decode_numeric(data: bytes) -> Decimal:
    if len(data) < 8:
        raise _bad("numeric")
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHh", data)
    if ndigits < 0 or len(data) != 8 + 2 * ndigits or dscale < 0 or dscale > 0x3FFF:
        raise _bad("numeric")
    if sign == _NUMERIC_NAN:
        return Decimal("NaN")
    if sign == _NUMERIC_PINF:
        return Decimal("Infinity")
    if sign == _NUMERIC_NINF:
        return Decimal("-Infinity")
    if sign not in (_NUMERIC_POS, _NUMERIC_NEG):
        raise _bad("numeric")
    groups = struct.unpack_from(f"!{ndigits}H", data, 8)
    if any(g > 9999 for g in groups):
        raise _bad("numeric")
    value = 0
    for g in groups:
        value = value * 10000 + g
    exp = (weight - ndigits + 1) * 4
    if exp >= -dscale:  # show exactly dscale digits after the point, as numeric_out does
        value *= 10 ** (exp + dscale)
    else:
        value //= 10 ** (-dscale - exp)
    return Decimal((1 if sign == _NUMERIC_NEG else 0, tuple(map(int, str(value))), -dscale))


# --- date and time ----------------------------------------------------------------------------------------------
def _enc_date(v: Any) -> bytes:
    if isinstance(v, str):
        v = _dt.date.fromisoformat(v.strip())
    if isinstance(v, _dt.datetime):
        v = v.date()
    if v == _dt.date.max:
        return _i.pack(_INT32_MAX)
    if v == _dt.date.min:
        return _i.pack(_INT32_MIN)
    return _i.pack(v.toordinal() - _DATE_ORDINAL)


def _dec_date(data: bytes) -> Any:
    if len(data) != 4:
        raise _bad("date")
    days = _i.unpack(data)[0]
    if days == _INT32_MAX:
        return "infinity"
    if days == _INT32_MIN:
        return "-infinity"
    try:
        return _dt.date.fromordinal(days + _DATE_ORDINAL)
    except (ValueError, OverflowError):
        raise _bad("date") from None


def _us(td: _dt.timedelta) -> int:
    return (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds


def _enc_timestamp(v: Any) -> bytes:
    if isinstance(v, str):
        v = _dt.datetime.fromisoformat(v.strip())
    if not isinstance(v, _dt.datetime):
        v = _dt.datetime.combine(v, _dt.time())
    if v.tzinfo is not None:
        v = v.astimezone(_dt.UTC).replace(tzinfo=None)
    if v == _dt.datetime.max:
        return _q.pack(_INT64_MAX)
    if v == _dt.datetime.min:
        return _q.pack(_INT64_MIN)
    return _q.pack(_us(v - _EPOCH))


def _enc_timestamptz(v: Any) -> bytes:
    if isinstance(v, str):
        v = _dt.datetime.fromisoformat(v.strip())
    if not isinstance(v, _dt.datetime):
        v = _dt.datetime.combine(v, _dt.time())
    if v.tzinfo is None:
        return _enc_timestamp(v)
    if v == _dt.datetime.max.replace(tzinfo=_dt.UTC):
        return _q.pack(_INT64_MAX)
    if v == _dt.datetime.min.replace(tzinfo=_dt.UTC):
        return _q.pack(_INT64_MIN)
    return _q.pack(_us(v - _EPOCH_TZ))


def _dec_timestamp(tz: bool) -> Callable[[bytes], Any]:
    base = _EPOCH_TZ if tz else _EPOCH

    def dec(data: bytes) -> Any:
        if len(data) != 8:
            raise _bad("timestamp")
        us = _q.unpack(data)[0]
        if us == _INT64_MAX:
            return "infinity"
        if us == _INT64_MIN:
            return "-infinity"
        try:
            return base + _dt.timedelta(microseconds=us)
        except OverflowError:
            raise _bad("timestamp") from None

    return dec


def _time_us(v: _dt.time) -> int:
    return ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond


def _enc_time(v: Any) -> bytes:
    if isinstance(v, str):
        v = _dt.time.fromisoformat(v.strip())
    if isinstance(v, _dt.timedelta):
        return _q.pack(_us(v))
    return _q.pack(_time_us(v))


def _dec_time(data: bytes) -> _dt.time:
    if len(data) != 8:
        raise _bad("time")
    us = _q.unpack(data)[0]
    if not 0 <= us <= 86_400_000_000:
        raise _bad("time")
    if us == 86_400_000_000:
        us -= 1
    s, us = divmod(us, 1_000_000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return _dt.time(h, m, s, us)


def _enc_timetz(v: Any) -> bytes:
    if isinstance(v, str):
        v = _dt.time.fromisoformat(v.strip())
    off = v.utcoffset() if v.tzinfo is not None else None
    return _q.pack(_time_us(v)) + _i.pack(-int(off.total_seconds()) if off is not None else 0)


def _dec_timetz(data: bytes) -> _dt.time:
    if len(data) != 12:
        raise _bad("time with time zone")
    t = _dec_time(data[:8])
    west = _i.unpack(data[8:])[0]
    if abs(west) > 15 * 3600 + 59 * 60:
        raise _bad("time with time zone")
    return t.replace(tzinfo=_dt.timezone(_dt.timedelta(seconds=-west)))


def _enc_interval(v: Any) -> bytes:
    if isinstance(v, _dt.timedelta):
        return struct.pack("!qii", v.seconds * 1_000_000 + v.microseconds, v.days, 0)
    raise InvalidValueError(f"cannot send {type(v).__name__} as a binary interval")


def _dec_interval(data: bytes) -> Any:
    if len(data) != 16:
        raise _bad("interval")
    us, days, months = struct.unpack("!qii", data)
    if months:  # a timedelta has no months: keep PostgreSQL's own text for the shard to read
        return f"{months} mons {days} days {us} microseconds"
    return _dt.timedelta(days=days, microseconds=us)


# --- uuid, inet ---------------------------------------------------------------------------------------------------
def _enc_uuid(v: Any) -> bytes:
    if isinstance(v, uuid.UUID):
        return v.bytes
    if isinstance(v, (bytes, bytearray)) and len(v) == 16:
        return bytes(v)
    return uuid.UUID(str(v)).bytes


def _dec_uuid(data: bytes) -> uuid.UUID:
    if len(data) != 16:
        raise _bad("uuid")
    return uuid.UUID(bytes=data)


def _enc_inet(cidr: bool) -> Callable[[Any], bytes]:
    def enc(v: Any) -> bytes:
        if isinstance(v, str):
            v = ipaddress.ip_network(v, strict=False) if cidr else ipaddress.ip_interface(v)
        if isinstance(v, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            addr, bits = v.network_address, v.prefixlen
        elif isinstance(v, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
            addr, bits = v.ip, v.network.prefixlen
        else:
            addr = ipaddress.ip_address(v)
            bits = addr.max_prefixlen
        family = 2 if addr.version == 4 else 3
        packed = addr.packed
        return bytes((family, bits, 1 if cidr else 0, len(packed))) + packed

    return enc


def _dec_inet(data: bytes) -> str:
    if len(data) < 4 or data[0] not in (2, 3) or len(data) != 4 + data[3] or data[3] not in (4, 16):
        raise _bad("inet")
    addr = ipaddress.ip_address(data[4:])
    if data[1] > addr.max_prefixlen:
        raise _bad("inet")
    return f"{addr}/{data[1]}"


# --- arrays -------------------------------------------------------------------------------------------------------
def encode_array(v: Any, inner: Callable[[Any], bytes], elem: int) -> bytes:
    items = list(v)
    dims: list[int] = []
    probe: Any = items
    while isinstance(probe, (list, tuple)):
        dims.append(len(probe))
        probe = probe[0] if probe else None
    flat: list[Any] = []

    def walk(x: Any, depth: int) -> None:
        if depth == len(dims):
            flat.append(x)
            return
        if not isinstance(x, (list, tuple)) or len(x) != dims[depth]:
            raise InvalidValueError("multidimensional arrays must have sub-arrays of the same size")
        for y in x:
            walk(y, depth + 1)

    walk(items, 0)
    if not items:
        return struct.pack("!iiI", 0, 0, elem)
    has_null = any(x is None for x in flat)
    out = [struct.pack("!iiI", len(dims), 1 if has_null else 0, elem)]
    out.extend(struct.pack("!ii", n, 1) for n in dims)
    for x in flat:
        if x is None:
            out.append(b"\xff\xff\xff\xff")
        else:
            body = inner(x)
            out.append(_i.pack(len(body)) + body)
    return b"".join(out)


def decode_array(data: bytes, inner: Callable[[bytes], Any]) -> list[Any]:
    if len(data) < 12:
        raise _bad("array")
    ndim, _flags, _elem = struct.unpack_from("!iiI", data)
    if not 0 <= ndim <= 6 or len(data) < 12 + 8 * ndim:
        raise _bad("array")
    dims = [struct.unpack_from("!ii", data, 12 + 8 * k)[0] for k in range(ndim)]
    if any(n < 0 for n in dims) or math.prod(dims) > len(data):
        raise _bad("array")
    pos = 12 + 8 * ndim
    flat: list[Any] = []
    for _ in range(math.prod(dims) if dims else 0):
        if pos + 4 > len(data):
            raise _bad("array")
        n = _i.unpack_from(data, pos)[0]
        pos += 4
        if n == -1:
            flat.append(None)
            continue
        if n < 0 or pos + n > len(data):
            raise _bad("array")
        flat.append(inner(data[pos:pos + n]))
        pos += n
    if pos != len(data):
        raise _bad("array")

    def build(depth: int, it: Any) -> list[Any]:
        if depth == len(dims) - 1:
            return [next(it) for _ in range(dims[depth])]
        return [build(depth + 1, it) for _ in range(dims[depth])]

    return build(0, iter(flat)) if dims else []


ENCODERS: dict[int, Callable[[Any], bytes]] = {
    O.BOOL: _enc_bool, O.BYTEA: _enc_bytea, O.CHAR: _enc_text, O.NAME: _enc_text, O.INT8: _enc_int(_q),
    O.INT2: _enc_int(_h), O.INT4: _enc_int(_i), O.TEXT: _enc_text, O.OID: _enc_int(_I), O.XID: _enc_int(_I),
    O.CID: _enc_int(_I), O.REGCLASS: _enc_int(_I), O.REGTYPE: _enc_int(_I), O.REGPROC: _enc_int(_I),
    O.JSON: _enc_json, O.XML: _enc_text, O.FLOAT4: _enc_float(_f), O.FLOAT8: _enc_float(_d),
    O.UNKNOWN: _enc_text, O.BPCHAR: _enc_text, O.VARCHAR: _enc_text, O.DATE: _enc_date, O.TIME: _enc_time,
    O.TIMESTAMP: _enc_timestamp, O.TIMESTAMPTZ: _enc_timestamptz, O.INTERVAL: _enc_interval, O.TIMETZ: _enc_timetz,
    O.NUMERIC: encode_numeric, O.UUID: _enc_uuid, O.JSONB: _enc_jsonb, O.INET: _enc_inet(False),
    O.CIDR: _enc_inet(True), O.VOID: lambda v: b"",
}

DECODERS: dict[int, Callable[[bytes], Any]] = {
    O.BOOL: _dec_bool, O.BYTEA: bytes, O.CHAR: _dec_text, O.NAME: _dec_text, O.INT8: _dec_fixed(_q, "bigint"),
    O.INT2: _dec_fixed(_h, "smallint"), O.INT4: _dec_fixed(_i, "integer"), O.TEXT: _dec_text,
    O.OID: _dec_fixed(_I, "oid"), O.JSON: _dec_text, O.XML: _dec_text, O.FLOAT4: _dec_fixed(_f, "real"),
    O.FLOAT8: _dec_fixed(_d, "double precision"), O.UNKNOWN: _dec_text, O.BPCHAR: _dec_text,
    O.VARCHAR: _dec_text, O.DATE: _dec_date, O.TIME: _dec_time, O.TIMESTAMP: _dec_timestamp(False),
    O.TIMESTAMPTZ: _dec_timestamp(True), O.INTERVAL: _dec_interval, O.TIMETZ: _dec_timetz,
    O.NUMERIC: decode_numeric, O.UUID: _dec_uuid, O.JSONB: _dec_jsonb, O.INET: _dec_inet, O.CIDR: _dec_inet,
}
