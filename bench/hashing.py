"""Keys per second of the vindex hashes and shard lookup, compiled against twin, in one run (by hand, not a test).

    .venv/bin/python bench/hashing.py [--keys 1000000] [--twin-keys 20000] [--repeat 5]

The compiled batch functions run over ``--keys`` keys (best of ``--repeat``); the twins are ~100x slower, so they
run over the first ``--twin-keys`` of the same inputs. Targets: hash and xxhash batch mapping >= 5 M keys/s on one
core and >= 20x their twins.
"""
from __future__ import annotations

import argparse
import importlib
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cython_ext.pure import hashing as twin
from cython_ext.pure import shardmap as twin_shardmap

TARGET_RATE = 5e6
TARGET_RATIO = 20.0


def best_rate(fn: Callable[..., Any], args: tuple, keys: int, repeat: int) -> float:
    """Keys per second of the fastest of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return keys / best


def shard_starts(count: int) -> list[bytes]:
    """Start keys of ``count`` equal shards, as Vitess names them (-40, 40-80, ...)."""
    return [b""] + [(i * (1 << 64) // count).to_bytes(8, "big").rstrip(b"\0") for i in range(1, count)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--twin-keys", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shards", type=int, default=64)
    opts = parser.parse_args(argv)
    try:  # the built extension modules themselves, not whatever the cython_ext facade picked
        compiled = importlib.import_module("cython_ext.hashing")
        compiled_shardmap = importlib.import_module("cython_ext.shardmap")
    except ImportError as exc:
        print(f"compiled modules not available ({exc}); build them first", file=sys.stderr)
        return 1

    rng = random.Random(42)
    n, tn = opts.keys, min(opts.twin_keys, opts.keys)
    ints = [rng.randrange(-(1 << 63), 1 << 63) for _ in range(n)]
    short_bytes = [rng.randbytes(rng.randrange(4, 17)) for _ in range(n)]
    starts = shard_starts(opts.shards)
    ksids = compiled.vhash_many(ints)
    maps = (compiled_shardmap.ShardMap(starts), twin_shardmap.ShardMap(starts))

    rows = [
        ("vhash_many (ints)", True, compiled.vhash_many, twin.vhash_many, lambda k: (ints[:k],)),
        ("xxhash_ksid_many (ints)", True, compiled.xxhash_ksid_many, twin.xxhash_ksid_many, lambda k: (ints[:k],)),
        ("xxhash_ksid_many (4-16 B bytes)", True, compiled.xxhash_ksid_many, twin.xxhash_ksid_many,
         lambda k: (short_bytes[:k],)),
        (f"ShardMap.find_many ({opts.shards} shards)", False, maps[0].find_many, maps[1].find_many,
         lambda k: (ksids[:k],)),
        (f"vhash_shards ({opts.shards} shards)", False, lambda v: compiled.vhash_shards(v, maps[0]),
         lambda v: twin.vhash_shards(v, maps[1]), lambda k: (ints[:k],)),
    ]
    print(f"compiled over {n:,} keys (best of {opts.repeat}), twin over {tn:,} keys (best of 2)")
    print(f"{'function':36s} {'compiled keys/s':>16s} {'twin keys/s':>13s} {'ratio':>8s}")
    missed = []
    for name, targeted, fast, slow, args in rows:
        fast_rate = best_rate(fast, args(n), n, opts.repeat)
        slow_rate = best_rate(slow, args(tn), tn, 2)
        ratio = fast_rate / slow_rate
        flag = ""
        if targeted and (fast_rate < TARGET_RATE or ratio < TARGET_RATIO):
            flag = "  below target"
            missed.append(name)
        print(f"{name:36s} {fast_rate / 1e6:13.2f} M {slow_rate / 1e3:11.1f} k {ratio:7.0f}x{flag}")
    print("targets (>= 5 M keys/s and >= 20x twin):", "missed by " + ", ".join(missed) if missed else "met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
