"""The vindex contract: a tiny core plus optional capabilities, as Vitess's ``vindexes/vindex.go``.

``Vindex`` is what every vindex is (name, type, cost, uniqueness); the capabilities say what else it can do:
``SingleColumn`` / ``MultiColumn`` map values to destinations, ``Hashing`` gives a keyspace id for one value,
``Reversible`` goes back, ``Sequential`` maps a range (BETWEEN), ``Prefixable`` maps a LIKE prefix and ``Lookup``
describes a lookup table. The planner asks ``isinstance(v, Hashing)`` rather than checking type names. Each class
lists what it claims in ``implements`` and a test checks every registered vindex against it (the Vitess habit of
``var _ SingleColumn = (*Hash)(nil)``).

``VindexBase`` and ``FunctionalVindex`` are the shared plumbing of the built-in vindexes: parameters, unknown-
parameter warnings, equality by definition, and ``map``/``verify`` for vindexes that compute a keyspace id.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar, NamedTuple, Protocol, runtime_checkable

from sharding.destination import NO_SHARD, Destination, KeyspaceId
from sharding.errors import InvalidValueError, VSchemaError
from sharding.vindexes.values import SqlValue

if TYPE_CHECKING:
    from sharding.vindexes.lookup_params import LookupParams

__all__ = [
    "FunctionalVindex",
    "Hashing",
    "Lookup",
    "MultiColumn",
    "ParamValidating",
    "ParamWarning",
    "Prefixable",
    "Reversible",
    "Sequential",
    "SingleColumn",
    "Vindex",
    "VindexBase",
    "param_error",
]


class ParamWarning(NamedTuple):
    """A parameter worth a warning but not a refusal (Vitess logs unknown params and carries on)."""

    param: str
    message: str

    def __str__(self) -> str:
        return self.message


def param_error(vindex_name: str, param: str, message: str) -> VSchemaError:
    """The error a vindex constructor raises for a bad parameter; ``problems`` holds ``params.<param>: ...``.

    The path is relative to the vindex definition so the VSchema loader can prefix where the vindex lives.
    """
    line = f"params.{param}: {message}" if param else message
    return VSchemaError(f"vindex {vindex_name!r}: {line}", problems=[line])


# --- protocols ----------------------------------------------------------------------------------------------
@runtime_checkable
class Vindex(Protocol):
    """What every vindex is. ``cost`` orders vindexes for the planner: 0 the value is the keyspace id, 1 a
    function computes it, 10/20 a lookup table must be read (unique/non-unique)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def cost(self) -> int: ...

    @property
    def is_unique(self) -> bool: ...

    @property
    def needs_vcursor(self) -> bool: ...

    @property
    def params(self) -> Mapping[str, str]: ...


@runtime_checkable
class ParamValidating(Protocol):
    """A vindex that reports parameters it ignores (Vitess ``ParamValidating.UnknownParams``)."""

    def param_warnings(self) -> tuple[ParamWarning, ...]: ...


@runtime_checkable
class SingleColumn(Vindex, Protocol):
    """Maps one column's values: one destination per value, in order; never raises for a bad value."""

    def map(self, values: Sequence[SqlValue]) -> list[Destination]: ...

    def verify(self, values: Sequence[SqlValue], ksids: Sequence[bytes]) -> list[bool]: ...


@runtime_checkable
class MultiColumn(Vindex, Protocol):
    """Maps rows of several columns (Vitess ``MultiColumn``). Given only leading columns, a partial vindex maps
    to the key range of that prefix."""

    @property
    def column_count(self) -> int: ...

    def map_rows(self, rows: Sequence[Sequence[SqlValue]]) -> list[Destination]: ...

    def verify_rows(self, rows: Sequence[Sequence[SqlValue]], ksids: Sequence[bytes]) -> list[bool]: ...

    def partial_vindex(self) -> bool: ...


@runtime_checkable
class Hashing(Protocol):
    """Computes the keyspace id of one value; raises ``InvalidValueError`` when it cannot (Vitess ``Hashing``)."""

    def hash(self, value: SqlValue) -> bytes: ...


@runtime_checkable
class Reversible(Protocol):
    """Recovers the value from its keyspace id, to fill a vindex column on insert (Vitess ``Reversible``)."""

    def reverse(self, ksid: bytes) -> SqlValue: ...


@runtime_checkable
class Sequential(Protocol):
    """Keyspace ids keep the order of values, so ``BETWEEN a AND b`` maps to one key range (Vitess
    ``Sequential.RangeMap``)."""

    def range_map(self, start: SqlValue, end: SqlValue) -> Destination: ...


@runtime_checkable
class Prefixable(Protocol):
    """Offers a second vindex for ``LIKE 'prefix%'`` (Vitess ``Prefixable``, used by ``cfc``)."""

    def prefix_vindex(self) -> SingleColumn: ...


@runtime_checkable
class Lookup(Vindex, Protocol):
    """A vindex backed by a lookup table. Reading and writing that table is the engine's job; the vindex holds
    the table's description and the value transforms between SQL values and what the table stores."""

    @property
    def lookup(self) -> LookupParams: ...

    def from_value(self, value: SqlValue) -> SqlValue: ...

    def to_value(self, ksid: bytes) -> SqlValue: ...

    def ksid_from_to(self, to: SqlValue) -> bytes | None: ...

    def map_result(self, values: Sequence[SqlValue], results: Sequence[Sequence[SqlValue]]) -> list[Destination]: ...


# --- shared plumbing ----------------------------------------------------------------------------------------
class VindexBase:
    """Name, type, parameters and cost for the built-in vindexes; equality by definition, not identity, so two
    VSchemas parsed from the same JSON compare equal."""

    TYPE: ClassVar[str] = ""
    COST: ClassVar[int] = 1
    UNIQUE: ClassVar[bool] = True
    NEEDS_VCURSOR: ClassVar[bool] = False
    KNOWN_PARAMS: ClassVar[frozenset[str]] = frozenset()
    implements: ClassVar[tuple[type, ...]] = ()
    """The protocols this class claims; checked by the tests for every registered type."""

    __slots__ = ("_name", "_params", "_type")

    def __init__(self, name: str, params: Mapping[str, str] | None = None, *, type_name: str | None = None) -> None:
        self._name = name
        self._params: Mapping[str, str] = MappingProxyType(dict(params or {}))
        self._type = type_name or self.TYPE

    @property
    def name(self) -> str:
        return self._name

    @property
    def type(self) -> str:
        return self._type

    @property
    def cost(self) -> int:
        return self.COST

    @property
    def is_unique(self) -> bool:
        return self.UNIQUE

    @property
    def needs_vcursor(self) -> bool:
        return self.NEEDS_VCURSOR

    @property
    def params(self) -> Mapping[str, str]:
        return self._params

    def known_params(self) -> frozenset[str]:
        return self.KNOWN_PARAMS

    def unknown_params(self) -> tuple[str, ...]:
        """Parameters this vindex ignores (Vitess ``UnknownParams``)."""
        known = self.known_params()
        return tuple(sorted(p for p in self._params if p not in known))

    def param_warnings(self) -> tuple[ParamWarning, ...]:
        return tuple(
            ParamWarning(p, f"unknown param {p!r} for vindex type {self.type!r}") for p in self.unknown_params()
        )

    def _param(self, key: str, default: str = "") -> str:
        return self._params.get(key, default)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VindexBase):
            return NotImplemented
        return (type(self), self._type, self._name, dict(self._params)) == (
            type(other),
            other._type,
            other._name,
            dict(other._params),
        )

    def __hash__(self) -> int:
        return hash((type(self), self._type, self._name, tuple(sorted(self._params.items()))))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, type={self._type!r}, params={dict(self._params)!r})"


class FunctionalVindex(VindexBase):
    """A unique vindex that computes the keyspace id from the value alone (no lookup table).

    Subclasses implement ``ksid(value) -> bytes | None`` (None: no keyspace id, so no shard); ``map``, ``verify``
    and ``hash`` follow. Vindexes with a batch hash in ``cython_ext`` override ``map``.
    """

    __slots__ = ()

    def ksid(self, value: SqlValue) -> bytes | None:
        raise NotImplementedError

    def map(self, values: Sequence[SqlValue]) -> list[Destination]:
        out: list[Destination] = []
        for value in values:
            k = self.ksid(value)
            out.append(NO_SHARD if k is None else KeyspaceId(k))
        return out

    def verify(self, values: Sequence[SqlValue], ksids: Sequence[bytes]) -> list[bool]:
        """Whether each value maps to the keyspace id beside it (Vitess ``Verify``)."""
        return [isinstance(d, KeyspaceId) and d.ksid == k for d, k in zip(self.map(values), ksids, strict=True)]

    def hash(self, value: SqlValue) -> bytes:
        k = self.ksid(value)
        if k is None:
            raise InvalidValueError(f"vindex {self.name!r} ({self.type}) cannot map value {value!r}")
        return k
