"""Golden SELECT plans of joins, subqueries and unions (``cases/join_*.json``), against the Vitess planner-test
VSchema with ``-80``/``80-`` per sharded keyspace (``lookup_cost`` registered as in Vitess's tests).

A case is ``{comment, query, plan}`` with optional ``dialect`` (the client's, default mysql) and ``backend`` (the
shards' engine; default none: they speak the client's dialect). ``plan`` is the plan's Vitess-style JSON
(``Plan.describe()``), or ``"ErrorClass: message"``. On a mismatch the actual plans of the file are written to
``actual/`` (git-ignored) for review, as Vitess's planner tests do.

``python -m tests.unit.planner.golden cases/join_x.json`` rewrites a file's plans from the current planner (to
review with ``git diff`` before committing).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from router.planner import _fingerprint, build_plan
from router.planner.context import SessionView
from sharding.errors import ShardgateError
from sharding.snapshot import ClusterSnapshot, Shard
from sharding.vschema import parse_vschema
from tests.support.shared import load_vectors
from tests.support.vindexes import lookup_cost_registered

HERE = Path(__file__).parent
ACTUAL = HERE / "actual"
_SNAPSHOTS: dict[str | None, ClusterSnapshot] = {}


def snapshot(backend: str | None = None) -> ClusterSnapshot:
    """The routing-cases snapshot; with ``backend``, every shard's primary runs that engine."""
    if backend not in _SNAPSHOTS:
        with lookup_cost_registered():
            vschema = parse_vschema(load_vectors("vitess_routing_cases")["vschema"])
        backends = {"primary": SimpleNamespace(engine=backend)} if backend else {}
        shards = {name: [Shard.from_name(s, backends) for s in (["-80", "80-"] if ks.sharded else ["0"])]
                  for name, ks in vschema.keyspaces.items()}
        _SNAPSHOTS[backend] = ClusterSnapshot.build(1, vschema, shards)
    return _SNAPSHOTS[backend]


def plan_case(case: dict[str, Any]) -> Any:
    session = SessionView(dialect=case.get("dialect", "mysql"), keyspace=case.get("keyspace"))
    try:
        normalized, values = _fingerprint(case["query"], session)
        plan = build_plan(case["query"], normalized, values, session, snapshot(case.get("backend")))
        return plan.describe()
    except ShardgateError as exc:
        return f"{type(exc).__name__}: {exc.message}"


def check_file(path: Path) -> list[str]:
    """The comments of the cases whose plan differs (actual plans written to ``actual/``)."""
    cases = json.loads(path.read_text(encoding="utf-8"))
    actual, wrong = [], []
    for case in cases:
        got = plan_case(case)
        actual.append({**case, "plan": got})
        if got != case["plan"]:
            wrong.append(case["comment"])
    if wrong:
        ACTUAL.mkdir(exist_ok=True)
        (ACTUAL / path.name).write_text(json.dumps(actual, indent=2) + "\n", encoding="utf-8")
    return wrong


def rewrite(path: Path) -> None:
    cases = json.loads(path.read_text(encoding="utf-8"))
    out = [{**case, "plan": plan_case(case)} for case in cases]
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        rewrite(Path(arg) if Path(arg).is_absolute() else HERE / arg)
