"""The correctness oracle (issue 4): the same generated rows in 4 shards behind the router and in one reference
database, on PostgreSQL and on MariaDB; a generated corpus of more than 2,000 statements per engine, in fixed
families each with a minimum count (``tests.integration.oracle.corpus.FAMILIES``), must give identical results on
both sides.

- The router side is loaded through the router (sequences, lookup vindexes, reference-table copies), the reference
  side directly. Generation is deterministic: ``SHARDGATE_ORACLE_SEED`` picks another seed to explore, and
  ``SHARDGATE_ORACLE_ONLY`` (a regular expression over the SQL) runs only the matching read statements, to debug one
  failure (family minimums are then not checked).
- Every ORDER BY is total (it ends with the primary key or every group key); rows compare in order where the query
  has an ORDER BY, as multisets elsewhere, value types included (``1`` is not ``Decimal('1')``), and the column
  names must be the reference database's.
- A router error is a failure, a wrong answer is a failure; nothing is skipped or annotated away. Failures print
  the SQL and both results.
- The run prints a coverage report per family and per opcode / primitive (``pytest -s`` or ``-rP`` shows it).
- Budget: 90 s per engine (environment, load and corpus; the servers are the session's).
"""
from __future__ import annotations

import os
import time

import pytest

from tests.integration.oracle import corpus
from tests.integration.oracle.cluster import oracle_env
from tests.integration.oracle.data import SEED, generate
from tests.integration.oracle.runner import Runner, report
from tests.support.backends import DatabaseServer

pytestmark = [pytest.mark.backend]

BUDGET_SECONDS = 90.0
MIN_STATEMENTS = 2000
SHOWN_FAILURES = 40


@pytest.mark.timeout(170)
@pytest.mark.parametrize("engine", ["postgres", "mysql"])
async def test_router_matches_the_reference_database(engine: str, request: pytest.FixtureRequest) -> None:
    servers: list[DatabaseServer] = request.getfixturevalue("pg_cluster" if engine == "postgres" else "mysql_cluster")
    seed = int(os.environ.get("SHARDGATE_ORACLE_SEED", SEED))
    only = os.environ.get("SHARDGATE_ORACLE_ONLY")
    started = time.perf_counter()
    data = generate(seed)
    reads, writes = corpus.build(data, engine, seed)
    if only:
        reads, writes = corpus.only(reads, only), []
    async with oracle_env(servers, engine, data) as env:
        outcome = await Runner(env).run(reads, writes)
    elapsed = time.perf_counter() - started
    text = report(outcome, corpus.FAMILIES) + f"\n{engine}: {elapsed:.1f} s in all (seed {seed})"
    print("\n" + text)

    cov = outcome.coverage
    total = sum(cov.statements.values())
    failures = outcome.failures
    if failures:
        shown = "\n\n".join(f.render() for f in failures[:SHOWN_FAILURES])
        more = f"\n\n… and {len(failures) - SHOWN_FAILURES} more" if len(failures) > SHOWN_FAILURES else ""
        pytest.fail(f"{len(failures)} of {total} statements differ from the reference database on {engine} "
                    f"(the coverage report is in the captured stdout):\n\n{shown}{more}", pytrace=False)
    if not only:
        short = {f: (cov.writes[f] if f == "dml" else cov.statements[f]) for f in corpus.FAMILIES}
        assert all(short[f] >= n for f, n in corpus.FAMILIES.items()), f"families below their minimum: {short}"
        assert total >= MIN_STATEMENTS, f"only {total} statements ran on {engine}"
    assert elapsed <= BUDGET_SECONDS, f"the oracle took {elapsed:.1f} s on {engine} (budget {BUDGET_SECONDS:.0f} s)"
