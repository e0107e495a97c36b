"""The client-side registry of the extended protocol: prepared statements and portals, and the row encoder they
use. Statements live in the router, not on any shard connection, so they survive transaction pooling: every
execution is planned (from the plan cache) and sent on whichever backend connection the engine uses.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from router.backend.result import Column
from router.frontend.postgres import types as T
from router.frontend.postgres.statements import Info, classify
from sharding.errors import InvalidValueError, UnsupportedError

__all__ = ["Field", "Portal", "Prepared", "RowEncoder", "fields_of", "result_formats"]

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_NULL = b"\xff\xff\xff\xff"


@dataclass(frozen=True, slots=True)
class Field:
    """One RowDescription entry."""

    name: str
    oid: int
    typmod: int = -1

    @property
    def typlen(self) -> int:
        return T.TYPLEN.get(self.oid, -1)


def fields_of(columns: Sequence[Column]) -> tuple[Field, ...]:
    """RowDescription fields of result columns (cached: a statement's columns repeat with every execution)."""
    key = tuple(columns)
    fields = _FIELDS.get(key)
    if fields is None:
        if len(_FIELDS) > 2048:
            _FIELDS.clear()
        fields = _FIELDS[key] = tuple(Field(c.name, T.column_oid(c)) for c in columns)
    return fields


_FIELDS: dict[tuple[Column, ...], tuple[Field, ...]] = {}


def result_formats(codes: Sequence[int], n: int) -> tuple[int, ...]:
    """Bind's result-format codes expanded to one per column (none: text; one: all alike)."""
    if not codes:
        return (0,) * n
    if len(codes) == 1:
        return (codes[0],) * n
    if len(codes) != n:
        raise InvalidValueError(f"bind message has {len(codes)} result formats but query has {n} columns")
    return tuple(codes)


class RowEncoder:
    """DataRow bytes for rows of one shape: one encoder per column, picked once."""

    __slots__ = ("count", "description", "encoders", "width")

    def __init__(self, fields: Sequence[Field], formats: Sequence[int], timezone: Any = None) -> None:
        encoders = []
        for f, fmt in zip(fields, formats, strict=True):
            if fmt == 1:
                enc = T.binary_encoder(f.oid)
                if enc is None:
                    raise UnsupportedError(f"binary output of type {T.oid_name(f.oid)} is not supported; "
                                           "ask for text format")
            else:
                enc = T.text_encoder(f.oid, timezone)
            encoders.append(enc)
        self.encoders = tuple(encoders)
        self.width = _I16.pack(len(encoders))
        self.count = len(encoders)
        self.description = row_description(fields, formats)  # the RowDescription of this shape, made once

    def encode(self, rows: Sequence[Sequence[Any]], out: bytearray) -> None:
        encoders, width, count = self.encoders, self.width, self.count
        pack = _I32.pack
        for row in rows:
            if len(row) != count:
                raise InvalidValueError(f"a row has {len(row)} columns where {count} were described")
            parts = [width]
            for enc, v in zip(encoders, row):  # noqa: B905 - lengths checked above; strict= costs per row
                if v is None:
                    parts.append(_NULL)
                else:
                    b = enc(v)
                    parts.append(pack(len(b)))
                    parts.append(b)
            body = b"".join(parts)
            out += b"D"
            out += pack(len(body) + 4)
            out += body


def row_description(fields: Sequence[Field], formats: Sequence[int]) -> bytes:
    from router.frontend.postgres.messages import row_description as rd

    return rd([(f.name, f.oid, f.typlen, f.typmod, fmt) for f, fmt in zip(fields, formats, strict=True)])


@dataclass(slots=True)
class Prepared:
    """A statement from Parse (or the unnamed one). ``param_types`` are what the client gave (0: infer);
    ``described`` holds the shard's answer to Describe once asked: parameter types and result fields."""

    name: str
    sql: str
    param_types: tuple[int, ...]
    info: Info
    nparams: int | None = None  # known once fingerprinted or described
    described_params: tuple[int, ...] | None = None
    described_fields: tuple[Field, ...] | None = None  # () for a statement without rows
    local: Any = None  # a frontend-answered statement's own description, when it has one

    @classmethod
    def make(cls, name: str, sql: str, param_types: Sequence[int]) -> Prepared:
        return cls(name, sql, tuple(param_types), classify(sql))

    def param_type(self, i: int) -> int:
        if i < len(self.param_types) and self.param_types[i]:
            return self.param_types[i]
        if self.described_params is not None and i < len(self.described_params):
            return self.described_params[i]
        return 0


@dataclass(slots=True)
class Portal:
    """A bound statement, possibly part-way through its rows (Execute with a row limit)."""

    name: str
    statement: Prepared
    params: list[Any]
    result_codes: tuple[int, ...]
    run: Any = None  # the open execution (handler.Running) once described or executed
    fields: tuple[Field, ...] | None = None
    encoder: RowEncoder | None = None
    pending: list[Any] = field(default_factory=list)  # rows fetched but not sent yet
    sent: int = 0
    done: bool = False
    tag: str = ""
    bind: Any = None  # the Bind message (the fast path forwards its values as the client sent them)
    relayed: bool = False  # a shard's answer was relayed for it (passthrough): Execute has nothing left to send
