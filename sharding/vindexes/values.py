"""How vindexes read SQL values, following Vitess's ``sqltypes`` casts.

Values reach a vindex as Python objects: ``int``, ``float``, ``Decimal``, ``str``, ``bytes`` or ``None`` (NULL).
Two readings exist, as in Vitess:

- ``to_uint64`` for integer vindexes (``hash``, ``numeric``, ``reverse_bits``, ...; ``ToCastUint64``): an int, or
  text/bytes of a base-10 integer, as a uint64 with negatives in two's complement. An integral float or Decimal
  counts too, because clients send JavaScript numbers as doubles. Anything else (fractions, NULL, garbage,
  out of 64-bit range) is ``None``: the vindex maps it to no shard instead of raising.
- ``to_bytes`` for byte vindexes (``xxhash``, ``binary``, ``binary_md5``, ``unicode_loose_*``, ``cfc``;
  ``ToBytes``): raw bytes, UTF-8 text, an integer's decimal text, NULL as empty.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

__all__ = ["MASK64", "SqlValue", "be64", "to_bytes", "to_uint64"]

SqlValue = Any
"""A SQL value as the router holds it: int, float, Decimal, str, bytes or None."""

MASK64 = (1 << 64) - 1
_MIN_INT64 = -(1 << 63)
# Go's strconv.ParseInt/ParseUint syntax: optional sign, ASCII digits, nothing else (no spaces, no underscores).
_INT_TEXT = re.compile(rb"([+-]?)0*([0-9]{1,20})")


def _from_int(n: int) -> int | None:
    return n & MASK64 if _MIN_INT64 <= n <= MASK64 else None


def to_uint64(value: SqlValue) -> int | None:
    """The uint64 an integer vindex hashes, or None when ``value`` is not a 64-bit integer."""
    if isinstance(value, int):  # bool included: MySQL's TRUE is 1
        return _from_int(value)
    if isinstance(value, bytes | bytearray | memoryview):
        match = _INT_TEXT.fullmatch(value)
        if match is None:
            return None
        n = int(match.group(2))
        return _from_int(-n if match.group(1) == b"-" else n)
    if isinstance(value, str):
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            return None
        return to_uint64(raw)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        return _from_int(int(value))
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            return None
        return _from_int(int(value))
    return None


def be64(n: int) -> bytes:
    """The 8-byte big-endian form of a uint64: the keyspace id of ``numeric``."""
    return n.to_bytes(8, "big")


def _go_float_text(value: float) -> bytes:
    """Go's ``strconv.FormatFloat(v, 'g', -1, 64)``, the text Vitess keeps for a FLOAT64 value."""
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)  # finite
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    exponent += len(digits) - len(ds)
    sci = exponent + len(ds) - 1  # the decimal exponent of the leading digit
    head = "-" if sign else ""
    if sci < -4 or sci >= 6:  # Go uses %e past these bounds for the shortest representation
        mantissa = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{head}{mantissa}e{'-' if sci < 0 else '+'}{abs(sci):02d}".encode()
    if sci < 0:
        return f"{head}0.{'0' * (-sci - 1)}{ds}".encode()
    whole, frac = ds[: sci + 1].ljust(sci + 1, "0"), ds[sci + 1 :]
    return f"{head}{whole}{'.' + frac if frac else ''}".encode()


def to_bytes(value: SqlValue) -> bytes | None:
    """The bytes a byte-oriented vindex hashes, or None when ``value`` has no byte form.

    NULL is ``b""`` (Vitess hashes NULL as empty). An integral float is its integer's text, so ``5.0`` sent by a
    JavaScript client lands where the integer ``5`` does; other floats use Go's shortest formatting, as Vitess.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates cannot come from a SQL client
            return None
    if value is None:
        return b""
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            return b"%d" % int(value)
        return _go_float_text(value)
    if isinstance(value, Decimal):
        return str(value).encode("ascii") if value.is_finite() else None
    return None
