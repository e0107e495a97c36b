"""The topology store: CAS, create-only, concurrent writers (threads and processes), atomic files, watches,
locks with TTL, key validation. The embedded file store is the implementation under test."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sharding.errors import TopologyError, VersionConflictError
from sharding.topology import EventKind, FileTopologyStore, TopologyStore, open_store
from sharding.topology.store import check_key, check_prefix

REPO = Path(__file__).resolve().parents[3]
POLL = 0.02


@pytest.fixture
def store(tmp_path: Path) -> FileTopologyStore:
    return FileTopologyStore(tmp_path / "topo", poll_interval=POLL)


def test_file_store_satisfies_protocol(store: FileTopologyStore) -> None:
    assert isinstance(store, TopologyStore)


# --- get / put / delete -----------------------------------------------------------------------------------
async def test_put_get_and_versions(store: FileTopologyStore) -> None:
    assert await store.get("keyspaces/customer/vschema") is None
    v1 = await store.put("keyspaces/customer/vschema", b'{"sharded": true}')
    value, version = await store.get("keyspaces/customer/vschema")  # type: ignore[misc]
    assert (value, version) == (b'{"sharded": true}', v1) and v1 > 0
    v2 = await store.put("keyspaces/customer/vschema", b"{}")
    assert v2 > v1
    assert await store.get("keyspaces/customer/vschema") == (b"{}", v2)
    # Versions are store-wide revisions: another key's write moves on from there.
    assert await store.put("other", b"") > v2
    assert await store.get("other") == (b"", v2 + 1)


async def test_compare_and_swap(store: FileTopologyStore) -> None:
    v1 = await store.put("k", b"one")
    v2 = await store.put("k", b"two", expected_version=v1)
    with pytest.raises(VersionConflictError, match="is at version"):
        await store.put("k", b"stale", expected_version=v1)
    assert await store.get("k") == (b"two", v2)
    with pytest.raises(VersionConflictError, match="does not exist"):
        await store.put("missing", b"x", expected_version=v2)


async def test_create_only(store: FileTopologyStore) -> None:
    v1 = await store.put("wf/state", b"a", expected_version=0)
    with pytest.raises(VersionConflictError, match="expected to be absent"):
        await store.put("wf/state", b"b", expected_version=0)
    await store.delete("wf/state", expected_version=v1)
    v2 = await store.put("wf/state", b"c", expected_version=0)  # absent again: create works
    assert v2 > v1  # never back to an old version: a writer holding v1 cannot win (no ABA)
    with pytest.raises(VersionConflictError):
        await store.put("wf/state", b"d", expected_version=v1)


async def test_delete_semantics(store: FileTopologyStore) -> None:
    await store.delete("never/was")  # unconditional delete of a missing key: no-op
    with pytest.raises(VersionConflictError):
        await store.delete("never/was", expected_version=3)
    v = await store.put("k", b"x")
    with pytest.raises(VersionConflictError):
        await store.delete("k", expected_version=v + 100)
    await store.delete("k", expected_version=v)
    assert await store.get("k") is None
    assert await store.list() == []


async def test_bad_arguments(store: FileTopologyStore) -> None:
    with pytest.raises(TopologyError, match="bytes"):
        await store.put("k", "text")  # type: ignore[arg-type]
    with pytest.raises(TopologyError, match="expected_version"):
        await store.put("k", b"x", expected_version=-1)


# --- keys and listing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "..", "../x", "a//b", "a/", "a/./b", "a,v", "a b",
                                 "a\\b", "a/b\0", "é", "x" * 600])
async def test_invalid_keys_are_rejected(store: FileTopologyStore, key: str) -> None:
    with pytest.raises(TopologyError, match="invalid topology key"):
        await store.put(key, b"x")
    with pytest.raises(TopologyError, match="invalid topology key"):
        await store.get(key)
    with pytest.raises(TopologyError, match="invalid topology key"):
        check_key(key)


def test_valid_keys_and_prefixes() -> None:
    assert check_key("keyspaces/customer/shards/-80") == "keyspaces/customer/shards/-80"
    assert check_key(".hidden/a_b.c-d") == ".hidden/a_b.c-d"
    assert check_prefix("") == "" and check_prefix("a/b/") == "a/b"
    with pytest.raises(TopologyError):
        check_prefix("/a")


async def test_list_uses_path_prefixes(store: FileTopologyStore) -> None:
    for key in ("keyspaces/customer", "keyspaces/customer/vschema", "keyspaces/customer/shards/-80",
                "keyspaces/customer2/vschema", "workflows/r1"):
        await store.put(key, key.encode())
    keys = [e.key for e in await store.list("keyspaces/customer")]
    assert keys == ["keyspaces/customer", "keyspaces/customer/shards/-80", "keyspaces/customer/vschema"]
    assert [e.key for e in await store.list("keyspaces/customer/")] == keys
    assert len(await store.list("")) == 5
    assert await store.list("nothing/here") == []
    entry = (await store.list("workflows"))[0]
    assert entry.value == b"workflows/r1" and entry == ("workflows/r1", b"workflows/r1", entry.version)


async def test_a_key_and_keys_below_it_coexist(store: FileTopologyStore) -> None:
    await store.put("a/b", b"parent")
    await store.put("a/b/c", b"child")
    assert (await store.get("a/b"))[0] == b"parent"  # type: ignore[index]
    assert (await store.get("a/b/c"))[0] == b"child"  # type: ignore[index]


# --- concurrency and atomicity ----------------------------------------------------------------------------
async def _increment(store: FileTopologyStore, key: str, times: int) -> list[int]:
    won = []
    for _ in range(times):
        while True:
            current = await store.get(key)
            count, version = (int(current[0]), current[1]) if current else (0, 0)
            try:
                won.append(await store.put(key, b"%d" % (count + 1), expected_version=version))
                break
            except VersionConflictError:
                continue
    return won


async def test_concurrent_writers_threads_exactly_one_wins_per_version(tmp_path: Path) -> None:
    # Separate store objects on one directory: like two routers; their writes run on worker threads.
    stores = [FileTopologyStore(tmp_path / "topo", poll_interval=POLL, fsync=False) for _ in range(4)]
    results = await asyncio.gather(*(_increment(s, "counter", 15) for s in stores))
    wins = [v for r in results for v in r]
    assert len(wins) == len(set(wins)) == 60  # each version was produced by exactly one writer
    assert await stores[0].get("counter") == (b"60", max(wins))


async def test_concurrent_writers_two_processes(tmp_path: Path) -> None:
    root = tmp_path / "topo"
    FileTopologyStore(root)
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(REPO)!r})
        from sharding.topology import FileTopologyStore
        from sharding.errors import VersionConflictError
        async def main():
            store = FileTopologyStore({str(root)!r})
            won = []
            for _ in range(25):
                while True:
                    cur = await store.get("counter")
                    count, version = (int(cur[0]), cur[1]) if cur else (0, 0)
                    try:
                        won.append(await store.put("counter", b"%d" % (count + 1), expected_version=version))
                        break
                    except VersionConflictError:
                        pass
            print(" ".join(map(str, won)))
        asyncio.run(main())
    """)
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=subprocess.PIPE)
             for _ in range(2)]
    outs = [await asyncio.wait_for(p.communicate(), 30) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    wins = [int(v) for out, _ in outs for v in out.split()]
    assert len(wins) == len(set(wins)) == 50
    store = FileTopologyStore(root)
    assert (await store.get("counter"))[0] == b"50"  # type: ignore[index]


async def test_readers_never_see_a_partial_value(store: FileTopologyStore) -> None:
    sizes = {b"a": 300_000, b"b": 123_457}
    await store.put("big", b"a" * sizes[b"a"])
    done = False

    async def writer() -> None:
        nonlocal done
        for i in range(20):
            ch = b"ab"[i % 2 : i % 2 + 1]
            await store.put("big", ch * sizes[ch])
        done = True

    async def reader() -> int:
        seen = 0
        while not done:
            value, _ = await store.get("big")  # type: ignore[misc]
            ch = value[:1]
            assert len(value) == sizes[ch] and value.count(ch) == len(value)
            seen += 1
        return seen

    _, *counts = await asyncio.gather(writer(), reader(), reader())
    assert sum(counts) > 0
    leftovers = [p for p in (store.root / "data").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


async def test_crashed_write_leftovers_are_cleaned_and_ignored(tmp_path: Path) -> None:
    store = FileTopologyStore(tmp_path / "topo")
    v = await store.put("a/b", b"ok")
    tmp = tmp_path / "topo" / "data" / "a" / "b,v.deadbeef.tmp"
    tmp.write_bytes(b"SGTOPO1 99 put\npartial")
    assert [e.key for e in await store.list()] == ["a/b"]  # temporary files are never keys
    (tmp_path / "topo" / "revision").write_bytes(b"0")  # a lost revision counter is repaired at open
    store2 = FileTopologyStore(tmp_path / "topo")
    assert not tmp.exists()
    assert await store2.put("c", b"") > v


async def test_corrupt_file_is_an_error(store: FileTopologyStore) -> None:
    await store.put("k", b"x")
    (store.root / "data" / "k,v").write_bytes(b"garbage")
    with pytest.raises(TopologyError, match="corrupt"):
        await store.get("k")


# --- watch ------------------------------------------------------------------------------------------------
async def _collect(it, n: int) -> list:  # type: ignore[no-untyped-def]
    out = []
    async for event in it:
        out.append(event)
        if len(out) == n:
            break
    return out


async def test_watch_delivers_changes_in_order(store: FileTopologyStore) -> None:
    await store.put("keyspaces/a/vschema", b"a0")
    await store.put("elsewhere", b"x")
    watch = store.watch("keyspaces", include_existing=True)
    first = await anext(watch)
    assert (first.kind, first.key, first.value) == (EventKind.PUT, "keyspaces/a/vschema", b"a0")
    collecting = asyncio.create_task(_collect(watch, 4))
    v1 = await store.put("keyspaces/a/vschema", b"a1")
    await asyncio.sleep(POLL * 3)
    v2 = await store.put("keyspaces/b/vschema", b"b1")
    await store.put("elsewhere", b"ignored")
    await asyncio.sleep(POLL * 3)
    await store.delete("keyspaces/a/vschema")
    v4 = await store.put("keyspaces/b/vschema", b"b2")  # same poll as the delete: still ordered by revision
    events = await asyncio.wait_for(collecting, 5)
    await watch.aclose()
    assert [(e.kind, e.key, e.value) for e in events] == [
        (EventKind.PUT, "keyspaces/a/vschema", b"a1"),
        (EventKind.PUT, "keyspaces/b/vschema", b"b1"),
        (EventKind.DELETE, "keyspaces/a/vschema", None),
        (EventKind.PUT, "keyspaces/b/vschema", b"b2"),
    ]
    assert [e.version for e in events][:2] == [v1, v2] and events[3].version == v4
    assert events[1].version < events[2].version < events[3].version


async def test_watch_without_existing_sees_only_later_changes(store: FileTopologyStore) -> None:
    await store.put("k", b"before")
    watch = store.watch("k")
    task = asyncio.create_task(_collect(watch, 1))
    await asyncio.sleep(POLL * 3)  # let the watch take its baseline
    await store.put("k", b"after")
    (event,) = await asyncio.wait_for(task, 5)
    assert event.value == b"after"
    await watch.aclose()


async def test_watch_across_processes_sees_other_store_objects(tmp_path: Path) -> None:
    a = FileTopologyStore(tmp_path / "t", poll_interval=POLL)
    b = FileTopologyStore(tmp_path / "t", poll_interval=POLL)
    watch = a.watch("", include_existing=True)
    task = asyncio.create_task(_collect(watch, 1))
    await asyncio.sleep(POLL * 3)
    await b.put("from/b", b"hello")
    (event,) = await asyncio.wait_for(task, 5)
    assert (event.key, event.value) == ("from/b", b"hello")
    await watch.aclose()


# --- locks ------------------------------------------------------------------------------------------------
async def test_lock_is_exclusive(store: FileTopologyStore) -> None:
    timeline: list[str] = []

    async def worker(name: str) -> int:
        async with store.lock("workflows/customer/reshard", ttl=2) as lease:
            timeline.append(f"{name} in")
            await asyncio.sleep(0.1)
            timeline.append(f"{name} out")
            return lease.token

    tokens = await asyncio.gather(worker("a"), worker("b"))
    assert timeline in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    assert tokens[0] != tokens[1]  # fencing tokens grow with each acquisition


async def test_lock_timeout_while_held(store: FileTopologyStore) -> None:
    async with store.lock("l", ttl=5) as held:
        held.check()
        with pytest.raises(TopologyError, match="timed out"):
            async with store.lock("l", ttl=5, timeout=0.1):
                pass
    async with store.lock("l", ttl=5, timeout=0.5) as again:  # released: available at once
        assert again.token > held.token


async def test_lock_of_crashed_holder_expires_after_ttl(store: FileTopologyStore) -> None:
    # A holder that died: its lease is written but never renewed nor released.
    store._try_acquire(store.root / "locks" / "l,v", "dead-process", 0.3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with store.lock("l", ttl=1, timeout=3):
        waited = loop.time() - start
    assert 0.2 <= waited < 1.5


async def test_held_lock_is_renewed_past_its_ttl(store: FileTopologyStore) -> None:
    async with store.lock("l", ttl=0.25) as lease:
        await asyncio.sleep(0.5)  # twice the ttl: the renewer keeps it
        with pytest.raises(TopologyError, match="timed out"):
            async with store.lock("l", ttl=0.25, timeout=0.1):
                pass
        assert not lease.lost


async def test_lost_lease_is_reported(store: FileTopologyStore) -> None:
    path = store.root / "locks" / "l,v"
    async with store.lock("l", ttl=0.15) as lease:
        path.unlink()  # someone broke the lock (or it expired and was taken and released)
        await asyncio.sleep(0.2)
        assert lease.lost
        with pytest.raises(TopologyError, match="was lost"):
            lease.check()


async def test_lock_name_validation(store: FileTopologyStore) -> None:
    with pytest.raises(TopologyError, match="invalid topology key"):
        async with store.lock("../escape", ttl=1):
            pass
    with pytest.raises(TopologyError, match="ttl"):
        async with store.lock("ok", ttl=0):
            pass


# --- opening ----------------------------------------------------------------------------------------------
async def test_closed_store_refuses_work(store: FileTopologyStore) -> None:
    await store.close()
    with pytest.raises(TopologyError, match="closed"):
        await store.get("k")


def test_open_store_from_topology_config(tmp_path: Path) -> None:
    from sharding.config import TopologyConfig

    store = open_store(TopologyConfig(store="file", path=tmp_path / "t", poll_interval=0.5))
    assert isinstance(store, FileTopologyStore) and store.poll_interval == 0.5
    assert os.path.isdir(tmp_path / "t" / "data")
