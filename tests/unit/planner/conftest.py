"""Planner test fixtures: the Vitess routing-cases VSchema as a cluster snapshot.

``routing_vschema_json`` is the VSchema of ``../shared/vectors/vitess_routing_cases.json``; ``routing_snapshot`` is
that VSchema with two shards (``-80``, ``80-``) per sharded keyspace and one (``0``) per unsharded one, as Vitess's
planner tests assume. Its ``lookup_cost`` vindexes exist only in tests, so the type is registered while the
VSchema is parsed (``tests.support.vindexes``).
"""
from __future__ import annotations

from typing import Any

import pytest

from router.planner.context import SessionView
from sharding.snapshot import ClusterSnapshot
from sharding.vschema import parse_vschema
from tests.support.shared import load_vectors
from tests.support.vindexes import lookup_cost_registered


def snapshot_for(vschema_json: dict[str, Any], version: int = 1) -> ClusterSnapshot:
    """A snapshot of ``vschema_json``: shards ``-80``/``80-`` per sharded keyspace, ``0`` per unsharded one."""
    with lookup_cost_registered():
        vschema = parse_vschema(vschema_json)
    shards = {name: (["-80", "80-"] if ks.sharded else ["0"]) for name, ks in vschema.keyspaces.items()}
    return ClusterSnapshot.build(version, vschema, shards)


@pytest.fixture(scope="session")
def routing_cases() -> dict[str, Any]:
    return load_vectors("vitess_routing_cases")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def routing_vschema_json(routing_cases: dict[str, Any]) -> dict[str, Any]:
    return routing_cases["vschema"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def routing_snapshot(routing_vschema_json: dict[str, Any]) -> ClusterSnapshot:
    return snapshot_for(routing_vschema_json)


@pytest.fixture
def mysql_session() -> SessionView:
    return SessionView(dialect="mysql")
