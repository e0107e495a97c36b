"""Stub for the compiled ``cython_ext.fingerprint``; the twin ``cython_ext/pure/fingerprint.py`` is the spec."""
from decimal import Decimal
from typing import TypeAlias

from cython_ext.fpvalues import FingerprintError as FingerprintError
from cython_ext.fpvalues import Param as Param

__all__ = [
    "ANSI_QUOTES",
    "MYSQL",
    "NO_BACKSLASH_ESCAPES",
    "NO_STANDARD_CONFORMING_STRINGS",
    "POSTGRES",
    "FingerprintError",
    "Param",
    "fingerprint",
    "split_statements",
]

MYSQL: int
POSTGRES: int
ANSI_QUOTES: int
NO_BACKSLASH_ESCAPES: int
NO_STANDARD_CONFORMING_STRINGS: int
KEYWORDS: dict[str, tuple[int, int]]

Scalar: TypeAlias = int | Decimal | float | str | bytes | Param
Value: TypeAlias = Scalar | tuple[Scalar, ...]

def fingerprint(sql: str, flags: int) -> tuple[str, list[Value]]:
    """``(normalized text, values)``: value i-1 belongs to placeholder ``:vi``. Raises ``FingerprintError``."""

def split_statements(sql: str, flags: int) -> list[str]:
    """The non-empty statements of a multi-statement text, split on top-level ``;``."""
