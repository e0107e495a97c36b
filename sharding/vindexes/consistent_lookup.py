"""``consistent_lookup`` and ``consistent_lookup_unique``: lookups kept consistent with their owner table without
two-phase commit, by writing the lookup row first and verifying the owner row (Vitess ``consistent_lookup.go``).

They take the shared lookup params plus ``write_only``; autocommit and ``no_verify`` do not apply (the lookup row
must commit in the owner's transaction order).
"""
from __future__ import annotations

from sharding.vindexes.lookup import LookupVindex
from sharding.vindexes.lookup_params import INTERNAL_PARAMS
from sharding.vindexes.registry import register

__all__ = ["ConsistentLookupUniqueVindex", "ConsistentLookupVindex"]


class ConsistentLookupVindex(LookupVindex):
    TYPE = "consistent_lookup"
    KNOWN_PARAMS = INTERNAL_PARAMS | {"write_only"}
    __slots__ = ()


class ConsistentLookupUniqueVindex(ConsistentLookupVindex):
    TYPE = "consistent_lookup_unique"
    COST = 10
    UNIQUE = True
    __slots__ = ()


register("consistent_lookup", ConsistentLookupVindex)
register("consistent_lookup_unique", ConsistentLookupUniqueVindex)
