"""Stub for the compiled ``cython_ext.collation``; the twin ``cython_ext/pure/collation.py`` is the spec."""
from pathlib import Path
from typing import Any

__all__ = ["DATA_PATH", "table_metadata", "unicode_loose_key"]

DATA_PATH: Path

def table_metadata() -> dict[str, Any]:
    """Where the table came from (x/text version, Unicode versions, generator); loads the table."""

def unicode_loose_key(data: bytes | bytearray | memoryview | str) -> bytes:
    """The x/text ``collate.Loose`` primary key that Vitess's unicode_loose vindexes hash (ValueError on bad UTF-8)."""
