"""The binary protocol of prepared statements: COM_STMT_EXECUTE parameters in, binary result rows out.

Parameters (https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_execute.html): a NULL bitmap,
the new-params-bound flag, then (when it is 1) a type per parameter (type byte + 0x80 for unsigned), then the
values of the non-NULL parameters, each in its type's binary form. When the flag is 0 the types of the previous
execution of the statement apply. A parameter sent with COM_STMT_SEND_LONG_DATA has no value in the packet.

Rows: a 0x00 header, a NULL bitmap with an offset of 2 bits, then each non-NULL value in the binary form of its
column's type. Values of another Python type than the column's are converted (an ``int`` in a VARCHAR column is
sent as its text), so a mistyped column never breaks the stream.
"""
from __future__ import annotations

import datetime
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from router.backend.result import Column
from router.frontend.mysql.columns import ClientCharset, text_encoders, wire_type
from router.frontend.mysql.constants import FieldType, WireError
from router.frontend.mysql.packets import PacketError, Reader, lenenc_int

__all__ = ["binary_encoders", "binary_rows", "decode_params", "encode_param", "param_type_of"]

_F = struct.Struct("<f")
_D = struct.Struct("<d")
_ZERO_DATE = re.compile(r"\s*(\d{1,4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?)?\s*")

_STRING_TYPES = frozenset({FieldType.VARCHAR, FieldType.VAR_STRING, FieldType.STRING, FieldType.ENUM, FieldType.SET,
                           FieldType.JSON, FieldType.DECIMAL, FieldType.NEWDECIMAL})
_BYTES_TYPES = frozenset({FieldType.TINY_BLOB, FieldType.MEDIUM_BLOB, FieldType.LONG_BLOB, FieldType.BLOB,
                          FieldType.BIT, FieldType.GEOMETRY})


# --- parameters in ------------------------------------------------------------------------------------------------
def _int(r: Reader, size: int, unsigned: bool) -> int:
    raw = r.fixed(size, "an integer parameter")
    return int.from_bytes(raw, "little", signed=not unsigned)


def _temporal(r: Reader, type_: int) -> Any:
    n = r.u8("a date length")
    if n not in (0, 4, 7, 11):
        raise PacketError(f"malformed packet: a date parameter of {n} bytes", WireError.WRONG_ARGUMENTS, fatal=False)
    if n == 0:
        return "0000-00-00" if type_ == FieldType.DATE else "0000-00-00 00:00:00"
    year = r.u16()
    month, day = r.u8(), r.u8()
    hour = minute = second = micro = 0
    if n >= 7:
        hour, minute, second = r.u8(), r.u8(), r.u8()
    if n == 11:
        micro = r.u32()
    try:
        if type_ == FieldType.DATE:
            return datetime.date(year, month, day)
        return datetime.datetime(year, month, day, hour, minute, second, micro)
    except ValueError:  # a zero date or zero month: MySQL keeps it as written
        text = f"{year:04d}-{month:02d}-{day:02d}"
        if type_ != FieldType.DATE:
            text += f" {hour:02d}:{minute:02d}:{second:02d}" + (f".{micro:06d}" if micro else "")
        return text


def _time(r: Reader) -> datetime.timedelta:
    n = r.u8("a time length")
    if n not in (0, 8, 12):
        raise PacketError(f"malformed packet: a time parameter of {n} bytes", WireError.WRONG_ARGUMENTS, fatal=False)
    if n == 0:
        return datetime.timedelta(0)
    negative = r.u8()
    days = r.u32()
    hour, minute, second = r.u8(), r.u8(), r.u8()
    micro = r.u32() if n == 12 else 0
    delta = datetime.timedelta(days=days, hours=hour, minutes=minute, seconds=second, microseconds=micro)
    return -delta if negative else delta


def _text(raw: bytes, charset: ClientCharset) -> str | bytes:
    try:
        return raw.decode(charset.codec)
    except UnicodeDecodeError:
        return raw  # not text in the client's charset: a binary value


def _value(r: Reader, type_: int, unsigned: bool, charset: ClientCharset) -> Any:
    if type_ == FieldType.LONGLONG:
        return _int(r, 8, unsigned)
    if type_ in (FieldType.LONG, FieldType.INT24):
        return _int(r, 4, unsigned)
    if type_ in (FieldType.SHORT, FieldType.YEAR):
        return _int(r, 2, unsigned)
    if type_ == FieldType.TINY:
        return _int(r, 1, unsigned)
    if type_ == FieldType.DOUBLE:
        return _D.unpack(r.fixed(8, "a double parameter"))[0]
    if type_ == FieldType.FLOAT:
        return _F.unpack(r.fixed(4, "a float parameter"))[0]
    if type_ == FieldType.NULL:
        return None
    if type_ in (FieldType.DATE, FieldType.DATETIME, FieldType.TIMESTAMP, FieldType.NEWDATE):
        return _temporal(r, type_)
    if type_ == FieldType.TIME:
        return _time(r)
    raw = r.lenenc_bytes("a parameter value")
    return _convert_bytes(raw, type_, charset)


def _convert_bytes(raw: bytes, type_: int, charset: ClientCharset) -> Any:
    if type_ in (FieldType.DECIMAL, FieldType.NEWDECIMAL):
        try:
            return Decimal(raw.decode("ascii"))
        except (InvalidOperation, UnicodeDecodeError):
            return _text(raw, charset)
    if type_ in _BYTES_TYPES:
        return raw
    if type_ in _STRING_TYPES:
        return _text(raw, charset)
    raise PacketError(f"parameter type {type_} is not supported", WireError.WRONG_ARGUMENTS, fatal=False)


_INT_SIZES = {int(FieldType.LONGLONG): 8, int(FieldType.LONG): 4, int(FieldType.INT24): 4, int(FieldType.SHORT): 2,
              int(FieldType.YEAR): 2, int(FieldType.TINY): 1}
_STRINGY = frozenset(int(t) for t in (FieldType.VARCHAR, FieldType.VAR_STRING, FieldType.STRING, FieldType.ENUM,
                                      FieldType.SET, FieldType.JSON))


def decode_params(payload: bytes, pos: int, count: int, previous_types: Sequence[tuple[int, bool]] | None,
                  long_data: Mapping[int, bytes], charset: ClientCharset
                  ) -> tuple[list[Any], list[tuple[int, bool]]]:
    """The ``count`` parameter values of a COM_STMT_EXECUTE payload from ``pos`` on, and the types they used.

    Raises ``PacketError`` (not fatal: the statement fails, the connection lives) for a malformed parameter block.
    Integers and strings, what nearly every client sends, are read inline; the rest through ``Reader``.
    """
    if count == 0:
        return [], []
    end = len(payload)
    nbytes = (count + 7) >> 3
    if pos + nbytes + 1 > end:
        raise PacketError("malformed packet: the NULL bitmap runs past the end of the packet",
                          WireError.WRONG_ARGUMENTS, fatal=False)
    bitmap = payload[pos:pos + nbytes]
    bound = payload[pos + nbytes]
    pos += nbytes + 1
    if bound:
        if pos + 2 * count > end:
            raise PacketError("malformed packet: parameter types run past the end of the packet",
                              WireError.WRONG_ARGUMENTS, fatal=False)
        types = [(payload[pos + 2 * i], payload[pos + 2 * i + 1] >= 0x80) for i in range(count)]
        pos += 2 * count
    elif previous_types is not None and len(previous_types) == count:
        types = list(previous_types)
    elif long_data and len(long_data) == count:
        types = [(FieldType.BLOB, False)] * count
    else:
        raise PacketError("COM_STMT_EXECUTE without parameter types, and none bound before",
                          WireError.WRONG_ARGUMENTS, fatal=False)
    values: list[Any] = []
    append = values.append
    codec = charset.codec
    for i, (t, unsigned) in enumerate(types):
        if long_data and i in long_data:
            raw = long_data[i]
            append(_text(raw, charset) if t in _STRINGY else raw)
            continue
        if bitmap[i >> 3] & (1 << (i & 7)):
            append(None)
            continue
        size = _INT_SIZES.get(t)
        if size is not None:
            if pos + size > end:
                raise PacketError("malformed packet: an integer parameter runs past the end of the packet",
                                  WireError.WRONG_ARGUMENTS, fatal=False)
            append(int.from_bytes(payload[pos:pos + size], "little", signed=not unsigned))
            pos += size
            continue
        if t in _STRINGY and pos < end and payload[pos] < 251:
            n = payload[pos]
            if pos + 1 + n > end:
                raise PacketError("malformed packet: a string parameter runs past the end of the packet",
                                  WireError.WRONG_ARGUMENTS, fatal=False)
            raw = payload[pos + 1:pos + 1 + n]
            pos += 1 + n
            try:
                append(raw.decode(codec))
            except UnicodeDecodeError:
                append(raw)
            continue
        r = Reader(payload, pos)
        append(_value(r, t, unsigned, charset))
        pos = r.pos
    return values, types


# --- parameters out (a client's side; the tests use it) -------------------------------------------------------
def param_type_of(v: Any) -> tuple[int, bool]:
    if v is None:
        return FieldType.NULL, False
    if isinstance(v, bool):
        return FieldType.TINY, False
    if isinstance(v, int):
        return (FieldType.LONGLONG, v >= 1 << 63)
    if isinstance(v, float):
        return FieldType.DOUBLE, False
    if isinstance(v, Decimal):
        return FieldType.NEWDECIMAL, False
    if isinstance(v, datetime.datetime):
        return FieldType.DATETIME, False
    if isinstance(v, datetime.date):
        return FieldType.DATE, False
    if isinstance(v, (datetime.timedelta, datetime.time)):
        return FieldType.TIME, False
    if isinstance(v, (bytes, bytearray)):
        return FieldType.BLOB, False
    return FieldType.VAR_STRING, False


def encode_param(v: Any, type_: int, unsigned: bool = False) -> bytes:
    if type_ == FieldType.NULL or v is None:
        return b""
    if type_ in (FieldType.TINY, FieldType.SHORT, FieldType.LONG, FieldType.INT24, FieldType.LONGLONG,
                 FieldType.YEAR):
        size = _INT_SIZES[int(type_)]
        return (int(v) & ((1 << size * 8) - 1)).to_bytes(size, "little")
    if type_ == FieldType.DOUBLE:
        return _D.pack(float(v))
    if type_ == FieldType.FLOAT:
        return _F.pack(float(v))
    if type_ in (FieldType.DATE, FieldType.DATETIME, FieldType.TIMESTAMP):
        return _date_bytes(v)
    if type_ == FieldType.TIME:
        return _time_bytes(v)
    if isinstance(v, str):
        v = v.encode("utf-8")
    elif not isinstance(v, (bytes, bytearray)):
        v = str(v).encode("ascii")
    return lenenc_int(len(v)) + bytes(v)


# --- rows out ----------------------------------------------------------------------------------------------------
def _date_bytes(v: Any) -> bytes:
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.UTC).replace(tzinfo=None)
        if v.microsecond:
            return struct.pack("<BHBBBBBI", 11, v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
        if v.hour or v.minute or v.second:
            return struct.pack("<BHBBBBB", 7, v.year, v.month, v.day, v.hour, v.minute, v.second)
        return struct.pack("<BHBB", 4, v.year, v.month, v.day)
    if isinstance(v, datetime.date):
        return struct.pack("<BHBB", 4, v.year, v.month, v.day)
    m = _ZERO_DATE.fullmatch(str(v))
    if m is None:
        return b"\x00"
    y, mo, d, h, mi, s, us = (int(g) if g else 0 for g in m.groups())
    if not any((y, mo, d, h, mi, s, us)):
        return b"\x00"
    return struct.pack("<BHBBBBBI", 11, y, mo, d, h, mi, s, us)


def _time_bytes(v: Any) -> bytes:
    if isinstance(v, datetime.time):
        v = datetime.timedelta(hours=v.hour, minutes=v.minute, seconds=v.second, microseconds=v.microsecond)
    if not isinstance(v, datetime.timedelta):
        return b"\x00"
    total = (v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds
    negative = total < 0
    total = abs(total)
    secs, micro = divmod(total, 1_000_000)
    days, secs = divmod(secs, 86400)
    h, rest = divmod(secs, 3600)
    m, s = divmod(rest, 60)
    if not total:
        return b"\x00"
    if micro:
        return struct.pack("<BBIBBBI", 12, negative, days, h, m, s, micro)
    return struct.pack("<BBIBBB", 8, negative, days, h, m, s)


def _int_encoder(size: int, text: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    mask = (1 << size * 8) - 1

    def enc(v: Any) -> bytes:
        if type(v) is not int:
            try:
                v = int(v)
            except (TypeError, ValueError):
                v = int(Decimal(text(v).decode("ascii", "replace") or "0"))
        return (v & mask).to_bytes(size, "little")

    return enc


def _lenenc_encoder(text: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def enc(v: Any) -> bytes:
        b = text(v)
        n = len(b)
        return bytes((n,)) + b if n < 251 else lenenc_int(n) + b

    return enc


def binary_encoders(columns: Sequence[Column], charset: ClientCharset) -> list[Callable[[Any], bytes]]:
    texts = text_encoders(columns, charset)
    out: list[Callable[[Any], bytes]] = []
    for col, text in zip(columns, texts, strict=True):
        t = wire_type(col)
        if t == FieldType.LONGLONG:
            out.append(_int_encoder(8, text))
        elif t in (FieldType.LONG, FieldType.INT24):
            out.append(_int_encoder(4, text))
        elif t in (FieldType.SHORT, FieldType.YEAR):
            out.append(_int_encoder(2, text))
        elif t == FieldType.TINY:
            out.append(_int_encoder(1, text))
        elif t == FieldType.DOUBLE:
            out.append(lambda v: _D.pack(float(v)))
        elif t == FieldType.FLOAT:
            out.append(lambda v: _F.pack(float(v)))
        elif t in (FieldType.DATE, FieldType.NEWDATE, FieldType.DATETIME, FieldType.TIMESTAMP):
            out.append(_date_bytes if t != FieldType.DATE else _date_only)
        elif t == FieldType.TIME:
            out.append(_time_bytes)
        elif t == FieldType.NULL:
            out.append(lambda v: b"")
        else:
            out.append(_lenenc_encoder(text))
    return out


def _date_only(v: Any) -> bytes:
    if isinstance(v, datetime.datetime):
        v = v.date()
    return _date_bytes(v)


def binary_rows(rows: Sequence[Sequence[Any]], encoders: Sequence[Callable[[Any], bytes]]) -> list[bytes]:
    """Payloads of binary-protocol rows."""
    n = len(encoders)
    nbytes = (n + 9) >> 3
    out = []
    for row in rows:
        bitmap = bytearray(nbytes)
        parts = [b"\x00", b""]
        for i, v in enumerate(row):
            if v is None:
                bit = i + 2
                bitmap[bit >> 3] |= 1 << (bit & 7)
            else:
                parts.append(encoders[i](v))
        parts[1] = bytes(bitmap)
        out.append(b"".join(parts))
    return out


def read_binary_row(payload: bytes, types: Sequence[tuple[int, bool]], charset: ClientCharset) -> list[Any]:
    """A binary row back to values (tests; a client's side)."""
    r = Reader(payload)
    if r.u8() != 0:
        raise PacketError("not a binary row")
    n = len(types)
    bitmap = r.fixed((n + 9) >> 3)
    out: list[Any] = []
    for i, (t, unsigned) in enumerate(types):
        bit = i + 2
        if bitmap[bit >> 3] & (1 << (bit & 7)):
            out.append(None)
        elif t in _BYTES_TYPES:
            out.append(r.lenenc_bytes())
        else:
            out.append(_value(r, t, unsigned, charset))
    return out
