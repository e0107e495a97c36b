"""The VSchema in the topology store and the snapshots routers build from it."""
from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from sharding.config import parse_config
from sharding.errors import VersionConflictError, VSchemaError
from sharding.snapshot import ClusterSnapshot
from sharding.topology import FileTopologyStore
from sharding.topology.vschema_store import (
    VSCHEMA_KEY,
    SnapshotSource,
    load_vschema,
    save_vschema,
    seed_vschema,
    shards_from_config,
)

VSCHEMA: dict[str, Any] = {
    "keyspaces": {
        "customer": {
            "sharded": True,
            "vindexes": {"hash": {"type": "hash"}},
            "tables": {"customer": {"column_vindexes": [{"column": "id", "name": "hash"}]}},
        },
        "main": {"tables": {"product": {}}},
    }
}


def backend(port: int) -> dict[str, Any]:
    return {"engine": "postgres", "host": "127.0.0.1", "port": port, "database": "db", "user": "app"}


@pytest.fixture
def config(tmp_path: Path):  # type: ignore[no-untyped-def]
    doc = {"keyspaces": {"customer": {"shards": {"-80": backend(1), "80-": backend(2)}},
                         "main": {"shards": {"-": backend(3)}}},
           "vschema": copy.deepcopy(VSCHEMA)}
    return parse_config(doc, source="cluster.yaml", base_dir=tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> FileTopologyStore:
    return FileTopologyStore(tmp_path / "topo", poll_interval=0.02)


def with_table(name: str) -> dict[str, Any]:
    doc = copy.deepcopy(VSCHEMA)
    doc["keyspaces"]["main"]["tables"][name] = {}
    return doc


async def wait_for_errors(errors: list[Exception], n: int) -> None:
    for _ in range(500):
        if len(errors) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {n} errors, got {errors}")


async def test_save_load_and_cas(store: FileTopologyStore, config) -> None:  # type: ignore[no-untyped-def]
    assert await load_vschema(store) is None
    v1 = await save_vschema(store, config.vschema, expected_version=0)
    loaded, version = await load_vschema(store)  # type: ignore[misc]
    assert version == v1 and loaded == config.vschema
    v2 = await save_vschema(store, with_table("orders"), expected_version=v1)
    with pytest.raises(VersionConflictError):
        await save_vschema(store, with_table("stale"), expected_version=v1)
    loaded, version = await load_vschema(store)  # type: ignore[misc]
    assert version == v2 and "orders" in loaded.keyspaces["main"].tables


async def test_invalid_vschema_is_never_stored(store: FileTopologyStore) -> None:
    bad = copy.deepcopy(VSCHEMA)
    bad["keyspaces"]["customer"]["tables"]["customer"]["column_vindexes"][0]["name"] = "nope"
    with pytest.raises(VSchemaError):
        await save_vschema(store, bad, expected_version=None)
    assert await store.get(VSCHEMA_KEY) is None


async def test_seed_keeps_what_is_stored(store: FileTopologyStore, config) -> None:  # type: ignore[no-untyped-def]
    _, v1 = await seed_vschema(store, with_table("from_ddl"))
    vschema, version = await seed_vschema(store, config.vschema)  # a second router starting later
    assert version == v1 and "from_ddl" in vschema.keyspaces["main"].tables


def test_shards_from_config_carry_backends(config) -> None:  # type: ignore[no-untyped-def]
    shards = shards_from_config(config)
    snapshot = ClusterSnapshot.build(7, config.vschema, shards)
    first = snapshot.shards("customer")[0]
    assert first.name == "-80" and first.backends["primary"].port == 1
    assert first.backends["primary"].dsn().host == "127.0.0.1"


async def test_snapshot_source_follows_changes(store: FileTopologyStore, config) -> None:  # type: ignore[no-untyped-def]
    seen: list[ClusterSnapshot] = []
    errors: list[Exception] = []
    got = asyncio.Event()

    async def on_snapshot(snapshot: ClusterSnapshot) -> None:
        seen.append(snapshot)
        got.set()

    source = SnapshotSource(store, shards_from_config(config), on_snapshot=on_snapshot, seed=config.vschema,
                            on_error=errors.append)
    first = await source.start()
    assert source.current is first and first.vschema == config.vschema and first.version > 0
    try:
        await asyncio.sleep(0.05)
        assert seen == []  # the seeded VSchema is not announced twice
        v2 = await save_vschema(store, with_table("orders"), expected_version=first.version)
        await asyncio.wait_for(got.wait(), 5)
        assert [s.version for s in seen] == [v2] and source.current is seen[-1]
        assert "orders" in source.current.vschema.keyspaces["main"].tables

        # A VSchema naming a keyspace without shards is reported and ignored; routing keeps the last good one.
        orphan = with_table("x")
        orphan["keyspaces"]["lonely"] = {}
        await save_vschema(store, orphan, expected_version=v2)
        await wait_for_errors(errors, 1)
        assert "lonely" in str(errors[0]) and source.current.version == v2
        # Garbage written past save_vschema is reported and ignored too.
        await store.put(VSCHEMA_KEY, b"{not json")
        await wait_for_errors(errors, 2)
        assert "not JSON" in str(errors[1]) and source.current.version == v2
    finally:
        await source.stop()


async def test_snapshot_source_without_seed_or_stored_vschema(store: FileTopologyStore,
                                                              config) -> None:  # type: ignore[no-untyped-def]
    from sharding.errors import TopologyError

    with pytest.raises(TopologyError, match="no VSchema"):
        await SnapshotSource(store, shards_from_config(config)).start()
