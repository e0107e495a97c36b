"""Test-only vindex types. Vitess's planner tests use ``lookup_cost`` (a non-unique lookup whose cost is a
parameter); the product must not know it, so the suite registers it only while a test needs it."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sharding.vindexes import registry
from sharding.vindexes.lookup import LookupVindex


def lookup_cost_factory(name: str, params: dict[str, str]) -> LookupVindex:
    return LookupVindex(
        name, params, type_name="lookup_cost", cost=int(params.get("cost", "20")), extra_params=frozenset({"cost"})
    )


@contextlib.contextmanager
def lookup_cost_registered() -> Iterator[None]:
    registry.register("lookup_cost", lookup_cost_factory)
    try:
        yield
    finally:
        registry.unregister("lookup_cost")
