"""Compare shardgate's unicode_loose_key with keys that golang.org/x/text computed (a corpus from ``go run .``).

    .venv/bin/python scripts/unicode_weights/crosscheck.py scripts/unicode_weights/testdata/crosscheck.json.gz
    .venv/bin/python scripts/unicode_weights/crosscheck.py /tmp/unicode_loose_full.json.gz --impl pure

Exit status 1 when any entry differs. ``--impl`` picks ``cython_ext.collation`` (compiled),
``cython_ext.pure.collation`` (the twin) or both (default; the compiled one is skipped with a note when not built).
"""
from __future__ import annotations

import argparse
import gzip
import importlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def load_corpus(path: str | Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)["entries"]


def check(module_name: str, entries: list[dict], limit: int) -> int:
    mod = importlib.import_module(module_name)
    bad = 0
    t0 = time.perf_counter()
    for e in entries:
        data = bytes.fromhex(e["in"])
        try:
            got: str | None = mod.unicode_loose_key(data).hex()
        except ValueError:
            got = None
        want = None if e.get("invalid") else e.get("key", "")
        if got != want:
            bad += 1
            if bad <= limit:
                print(f"  {module_name}: {data!r}: got {got} want {want}")
    dt = time.perf_counter() - t0
    print(f"{module_name}: {len(entries) - bad}/{len(entries)} match ({dt:.1f}s)")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--impl", choices=("both", "pure", "compiled"), default="both")
    ap.add_argument("--show", type=int, default=20, help="mismatches to print")
    args = ap.parse_args()
    entries = load_corpus(args.corpus)
    names = []
    if args.impl in ("both", "compiled"):
        try:
            importlib.import_module("cython_ext.collation")
            names.append("cython_ext.collation")
        except ImportError:
            if args.impl == "compiled":
                raise
            print("cython_ext.collation is not built; checking the twin only")
    if args.impl in ("both", "pure"):
        names.append("cython_ext.pure.collation")
    return 1 if sum(check(n, entries, args.show) for n in names) else 0


if __name__ == "__main__":
    sys.exit(main())
