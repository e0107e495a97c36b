"""Microseconds per statement of the SQL fingerprint, compiled against twin against ``sqlglot.parse_one`` (by hand, not
a test).

    .venv/bin/python bench/fingerprint.py [--repeat 5] [--min-time 0.2] [--no-sqlglot]

Each figure is the best of ``--repeat`` timing runs, each run long enough to take ``--min-time`` seconds. Targets:
the compiled point select in <= 2 us and >= 40x faster than sqlglot parsing it (the planner parses only on a
plan-cache miss; the fingerprint runs on every query).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cython_ext.pure import fingerprint as twin

TARGET_US = 2.0
TARGET_RATIO = 40.0
MY, PG = twin.MYSQL, twin.POSTGRES

PAD = "'67847967377-48000963322-62604785301-91415491898-96926520291'"


def big_query() -> str:
    """About 5 KB: a reporting query with many predicates, a CASE, joins and string literals."""
    preds = " AND ".join(f"(t.c{i} = {i * 7} OR t.d{i} LIKE 'pre{i}%' OR t.e{i} BETWEEN {i} AND {i + 100})"
                         for i in range(40))
    cases = " ".join(f"WHEN t.k = {i} THEN 'label-{i}'" for i in range(30))
    return (f"SELECT t.id, u.name, CASE {cases} ELSE 'other' END AS label, SUM(t.amount) AS total "
            f"FROM orders t JOIN users u ON u.id = t.user_id AND u.status = 'active' "
            f"WHERE {preds} AND t.created_at > '2024-01-01 00:00:00' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 100")


STATEMENTS: list[tuple[str, int, str]] = [
    ("sysbench point select", MY, "SELECT c FROM sbtest1 WHERE id=5"),
    ("sysbench simple range", MY, "SELECT c FROM sbtest1 WHERE id BETWEEN 4917 AND 5016"),
    ("sysbench sum range", MY, "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 4917 AND 5016"),
    ("sysbench order range", MY, "SELECT c FROM sbtest1 WHERE id BETWEEN 4917 AND 5016 ORDER BY c"),
    ("sysbench distinct range", MY, "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 4917 AND 5016 ORDER BY c"),
    ("sysbench update index", MY, "UPDATE sbtest1 SET k=k+1 WHERE id=5012"),
    ("sysbench update non-index", MY,
     "UPDATE sbtest1 SET c='83868641912-28773972837-60736120486-75162659906-27563526494' WHERE id=5012"),
    ("sysbench delete", MY, "DELETE FROM sbtest1 WHERE id=5012"),
    ("sysbench insert", MY,
     f"INSERT INTO sbtest1 (id, k, c, pad) VALUES (5012, 4993, '83868641912-28773972837', {PAD})"),
    ("pgbench select", PG, "SELECT abalance FROM pgbench_accounts WHERE aid = 73;"),
    ("pgbench update", PG, "UPDATE pgbench_accounts SET abalance = abalance + -4210 WHERE aid = 73;"),
    ("pgbench insert", PG,
     "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 73, -4210, CURRENT_TIMESTAMP);"),
    ("IN list of 1000 items", MY, "SELECT c FROM sbtest1 WHERE id IN (" + ", ".join(map(str, range(1000))) + ")"),
    ("5 KB query", MY, big_query()),
]


def best_us(fn: Callable[[], object], repeat: int, min_time: float) -> float:
    timer = timeit.Timer(fn)
    number = 1
    while True:
        if timer.timeit(number) >= min_time:
            break
        number *= 4
    return min(timer.repeat(repeat, number)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--no-sqlglot", action="store_true", help="skip sqlglot (slow on the large statements)")
    args = parser.parse_args()

    try:
        compiled = importlib.import_module("cython_ext.fingerprint")
    except ImportError:
        sys.exit("cython_ext.fingerprint is not built: .venv/bin/cythonize -i -3 cython_ext/fingerprint.pyx")
    sqlglot = None if args.no_sqlglot else importlib.import_module("sqlglot")
    dialects = {MY: "mysql", PG: "postgres"}
    if sqlglot is not None:
        compiled_sqlglot = "sqlglotc" in sys.modules or any(m.startswith("sqlglotc") for m in sys.modules)
        print(f"sqlglot {sqlglot.__version__}{' (sqlglotc loaded)' if compiled_sqlglot else ''}")

    header = f"{'statement':28} {'bytes':>6} {'compiled us':>12} {'twin us':>10} {'sqlglot us':>11} " \
             f"{'twin/comp':>10} {'sqlglot/comp':>13}"
    print(header)
    print("-" * len(header))
    results: dict[str, tuple[float, float | None]] = {}
    for name, flags, sql in STATEMENTS:
        assert compiled.fingerprint(sql, flags) == twin.fingerprint(sql, flags), name
        c_us = best_us(lambda sql=sql, flags=flags: compiled.fingerprint(sql, flags), args.repeat, args.min_time)
        t_us = best_us(lambda sql=sql, flags=flags: twin.fingerprint(sql, flags), args.repeat, args.min_time)
        g_us = None
        if sqlglot is not None:
            dialect = dialects[flags]
            g_us = best_us(lambda sql=sql, d=dialect: sqlglot.parse_one(sql, read=d), args.repeat, args.min_time)
        results[name] = (c_us, g_us)
        g_txt = f"{g_us:11.2f}" if g_us is not None else f"{'-':>11}"
        ratio = f"{g_us / c_us:12.0f}x" if g_us is not None else f"{'-':>13}"
        print(f"{name:28} {len(sql.encode()):6d} {c_us:12.3f} {t_us:10.2f} {g_txt} {t_us / c_us:9.0f}x {ratio}")

    c_us, g_us = results["sysbench point select"]
    verdict = f"point select: {c_us:.3f} us (target <= {TARGET_US} us)"
    if g_us is not None:
        verdict += f", {g_us / c_us:.0f}x faster than sqlglot.parse_one (target >= {TARGET_RATIO:.0f}x)"
    ok = c_us <= TARGET_US and (g_us is None or g_us / c_us >= TARGET_RATIO)
    print(("OK   " if ok else "MISS ") + verdict)


if __name__ == "__main__":
    main()
