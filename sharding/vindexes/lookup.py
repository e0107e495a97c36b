"""``lookup`` and ``lookup_unique``: keyspace ids found in a lookup table (Vitess ``lookup.go``).

The table maps ``from`` column values to keyspace ids stored as raw bytes in ``to``. Running the lookup queries is
the engine's job; the vindex holds the validated parameters, the value transforms (``from_value``, ``to_value``,
``ksid_from_to``, overridden by ``lookup_hash`` and ``lookup_unicodeloosemd5_hash``) and ``map_result``, which
turns the rows found into destinations. Costs as in Vitess: 10 unique, 20 non-unique. ``LookupVindex`` also serves
plugins and tests that need another lookup type, e.g. one with a ``cost`` param.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from sharding.destination import NO_SHARD, Destination, KeyRangeDest, KeyspaceId, KeyspaceIds
from sharding.errors import RoutingError
from sharding.keyrange import FULL
from sharding.vindexes.base import Lookup, ParamWarning, VindexBase
from sharding.vindexes.lookup_params import COMMON_PARAMS, INTERNAL_PARAMS, LookupParams, parse_lookup_params
from sharding.vindexes.registry import register
from sharding.vindexes.values import SqlValue, to_bytes

__all__ = ["LookupUniqueVindex", "LookupVindex"]


class LookupVindex(VindexBase):
    """A non-unique lookup vindex; subclasses change the type, uniqueness, cost and value transforms."""

    TYPE = "lookup"
    COST = 20
    UNIQUE = False
    NEEDS_VCURSOR = True
    KNOWN_PARAMS = INTERNAL_PARAMS | COMMON_PARAMS
    implements = (Lookup,)
    __slots__ = ("_cost", "_extra", "_lookup", "_missing")

    def __init__(
        self,
        name: str,
        params: Mapping[str, str] | None = None,
        *,
        type_name: str | None = None,
        cost: int | None = None,
        extra_params: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(name, params, type_name=type_name)
        self._cost = self.COST if cost is None else cost
        self._extra = frozenset(extra_params)
        self._lookup, self._missing = parse_lookup_params(name, self.params, self.KNOWN_PARAMS)

    @property
    def cost(self) -> int:
        return self._cost

    @property
    def lookup(self) -> LookupParams:
        return self._lookup

    def known_params(self) -> frozenset[str]:
        return self.KNOWN_PARAMS | self._extra

    def param_warnings(self) -> tuple[ParamWarning, ...]:
        return self._missing + super().param_warnings()

    # --- value transforms -------------------------------------------------------------------------------------
    def from_value(self, value: SqlValue) -> SqlValue:
        """The value stored in and queried from the ``from`` column."""
        return value

    def to_value(self, ksid: bytes) -> SqlValue:
        """The value stored in the ``to`` column for a keyspace id."""
        return bytes(ksid)

    def ksid_from_to(self, to: SqlValue) -> bytes | None:
        """The keyspace id a ``to`` column value stands for (None: unusable)."""
        return to_bytes(to) if to is not None else None

    # --- mapping the rows the engine found --------------------------------------------------------------------
    def map_result(self, values: Sequence[SqlValue], results: Sequence[Sequence[SqlValue]]) -> list[Destination]:
        """Destinations for ``values`` given, for each, the ``to`` values its lookup returned (Vitess
        ``MapResult``). A write-only vindex is still being backfilled, so it cannot be trusted: every shard."""
        if self._lookup.write_only:
            return [KeyRangeDest(FULL) for _ in values]
        out: list[Destination] = []
        for value, found in zip(values, results, strict=True):
            ksids = [k for k in (self.ksid_from_to(t) for t in found) if k is not None]
            if not ksids:
                out.append(NO_SHARD)
            elif self.is_unique:
                if len(ksids) > 1:
                    raise RoutingError(
                        f"unique lookup vindex {self.name!r} found {len(ksids)} keyspace ids for value {value!r}"
                    )
                out.append(KeyspaceId(ksids[0]))
            else:
                out.append(KeyspaceIds(tuple(ksids)))
        return out


class LookupUniqueVindex(LookupVindex):
    TYPE = "lookup_unique"
    COST = 10
    UNIQUE = True
    __slots__ = ()


register("lookup", LookupVindex)
register("lookup_unique", LookupUniqueVindex)
