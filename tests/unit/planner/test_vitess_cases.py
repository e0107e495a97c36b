"""Vitess conformance of routing: every case of ``../shared/vectors/vitess_routing_cases.json`` planned and compared.

For a single-route case the top primitive (Route, Update, Delete, Insert) must have Vitess's opcode, keyspace,
vindex and values; for a composite case (joins, aggregates, lookups, subqueries…) the top operator
(``OperatorType:Variant``) and every leaf route, in order. Values are compared by evaluating our plan's value
expressions with the statement's bound values (``router.planner.values.evaluate``): client bind variables bind to
markers (``:a``, ``::list``), a tuple column of a client's list (``(a, b) IN ::vals``) is what Vitess prints for it
(``vals:0``), run-time variables of joins, subqueries and lookups match any Vitess bind variable.
Inserts are compared on opcode and keyspace.

Every disagreement must be listed, with its reason, in ``vitess_known_differences.json`` ("deliberate: …" or
"missing feature: …"); a listed case that now agrees must be removed from the list, so the agreement only goes up.
The same results must hold with every keyspace, table, vindex and column name of the corpus renamed (VSchema,
queries and expectations alike): no code may know the corpus's names.

``python -m tests.unit.planner.test_vitess_cases`` prints the agreement per kind and opcode; with ``--update`` it
rewrites the known-differences list (keeping the reasons of cases still listed; new ones get the planner's error
or the mismatch, to be reviewed).
"""
from __future__ import annotations

import collections
import copy
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cython_ext.fpvalues import Param
from router.planner import Planner, SessionView, _fingerprint
from router.planner.plan import Primitive
from router.planner.values import TupleColumn, evaluate
from sharding.errors import ShardgateError
from sharding.snapshot import ClusterSnapshot
from tests.support.shared import load_vectors
from tests.unit.planner.conftest import snapshot_for

KNOWN_PATH = Path(__file__).with_name("vitess_known_differences.json")
TARGET = 0.95
_LEAF_OPERATORS = frozenset({"Route", "Update", "Delete", "Insert"})
_REASON_PREFIXES = ("deliberate: ", "missing feature: ")


# --- values ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientVar:
    """What a client bind variable (``:a``, ``::list``) binds to in this harness."""

    text: str


@dataclass(frozen=True)
class RuntimeVar:
    """The value of a run-time variable (join column, subquery result, lookup list); names are the planner's."""

    name: str


class _RuntimeEnv(dict):  # type: ignore[type-arg]
    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> RuntimeVar:
        return RuntimeVar(key)


def _client_params(values: list[Any]) -> dict[Any, Any]:
    params: dict[Any, Any] = {}
    for v in values:
        for item in v if isinstance(v, tuple) else (v,):
            if isinstance(item, Param):
                if item.is_list:
                    params[item.key] = (ClientVar(f"::{item.key}"),)
                else:
                    params[item.key] = ClientVar(f":{item.key}")
    return params


def _evaluate(expr: Any, binds: list[Any]) -> Any:
    """Our value expression's value with the harness's binds. A tuple column of a client's list parameter is what
    Vitess prints for it (``TupleBindVariable``: ``vals:0``)."""
    if isinstance(expr, TupleColumn):
        items = evaluate(expr.items, binds, _RuntimeEnv())
        if (isinstance(items, tuple) and len(items) == 1 and isinstance(items[0], ClientVar)
                and items[0].text.startswith("::")):
            return ClientVar(f"{items[0].text[2:]}:{expr.index}")
    return evaluate(expr, binds, _RuntimeEnv())


def _ours(value: Any) -> Any:
    """An evaluated value in comparable form: tuples as lists, a bound list parameter as its marker."""
    if isinstance(value, tuple):
        if len(value) == 1 and isinstance(value[0], ClientVar) and value[0].text.startswith("::"):
            return value[0]
        return [_ours(v) for v in value]
    return value


def _theirs(value: Any) -> Any:
    """A ``values_parsed`` entry in comparable form."""
    if isinstance(value, list):
        return [_theirs(v) for v in value]
    if isinstance(value, dict) and "expr" in value:
        text = value["expr"]
        if text.startswith("_binary'") and text.endswith("'"):
            return text[len("_binary'"):-1].encode()
        return ("expr", text)
    return value


def _same(ours: Any, theirs: Any) -> bool:
    if isinstance(theirs, tuple) and theirs[:1] == ("expr",):
        text = theirs[1]
        if isinstance(ours, ClientVar):
            return ours.text == text
        return isinstance(ours, RuntimeVar) and text.startswith(":")
    if isinstance(theirs, list):
        return isinstance(ours, list) and len(ours) == len(theirs) and all(map(_same, ours, theirs))
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return type(ours) is type(theirs) and ours == theirs
    if isinstance(ours, bytes) and isinstance(theirs, str) and "\ufffd" in theirs:
        return ours.decode("utf-8", "replace") == theirs  # the corpus printed a non-UTF-8 keyspace id lossily
    return bool(ours == theirs) and (ours is None) == (theirs is None)


# --- comparing plans ------------------------------------------------------------------------------------------
def _label(prim: Primitive, desc: dict[str, Any]) -> str:
    variant = desc.get("Variant")
    return f"{prim.operator_type}:{variant}" if variant and prim.operator_type not in _LEAF_OPERATORS \
        else prim.operator_type


def _leaves(prim: Primitive, include_self: bool = True) -> Iterator[Primitive]:
    if include_self and prim.operator_type in _LEAF_OPERATORS:
        yield prim
        return
    for child in prim.inputs():
        yield from _leaves(child)


def _compare_route(expected: dict[str, Any], prim: Primitive, binds: list[Any], values: bool = True) -> str | None:
    """Why ``prim`` differs from an expected route (opcode, keyspace, vindex, values), or None."""
    desc = prim.describe()
    variant = desc.get("Variant")
    keyspace = (desc.get("Keyspace") or {}).get("Name")
    where = prim.operator_type
    if variant != expected["opcode"]:
        return f"{where} opcode {variant}, Vitess {expected['opcode']}"
    if expected.get("keyspace") is not None and keyspace != expected["keyspace"]:
        return f"{where} keyspace {keyspace}, Vitess {expected['keyspace']}"
    if not values:
        return None
    if desc.get("Vindex") != expected.get("vindex"):
        return f"{where} vindex {desc.get('Vindex')}, Vitess {expected.get('vindex')}"
    if "values_parsed" in expected:
        routing = getattr(prim, "routing", None)
        if routing is None:
            return f"{where} has no routing parameters to evaluate"
        try:
            ours = [_ours(_evaluate(v, binds)) for v in routing.values]
        except Exception as exc:  # a value the harness cannot bind is a difference, not a crash of the suite
            return f"{where} values do not evaluate: {exc}"
        theirs = [_theirs(v) for v in expected["values_parsed"]]
        if not _same(ours, theirs):
            return f"{where} values {ours!r}, Vitess {expected['values']!r}"
    return None


def compare(case: dict[str, Any], root: Primitive, binds: list[Any]) -> str | None:
    """Why the plan ``root`` differs from the case, or None when it agrees."""
    desc = root.describe()
    values = case["kind"] != "insert"
    if case.get("single_route"):
        if root.operator_type not in _LEAF_OPERATORS:
            return f"top operator {_label(root, desc)}, Vitess a single {case['opcode']} route"
        return _compare_route(case, root, binds, values)
    label = _label(root, desc)
    if "input_routes" in case:  # INSERT … SELECT: the Insert on top, the SELECT's routes below it
        why = _compare_route(case, root, binds, values=False) if root.operator_type == "Insert" else \
            f"top operator {label}, Vitess Insert:{case['opcode']}"
        expected_routes = case["input_routes"]
        leaves = list(_leaves(root, include_self=False))
    else:
        why = None if label == case["opcode"] else f"top operator {label}, Vitess {case['opcode']}"
        if why is None and "vindex" in case:  # VindexLookup: the lookup's own vindex and values
            why = _compare_route({**case, "opcode": desc.get("Variant")}, root, binds)
        expected_routes = case.get("routes", [])
        leaves = list(_leaves(root))
    if why is not None:
        return why
    if len(leaves) != len(expected_routes):
        return f"{len(leaves)} leaf routes, Vitess {len(expected_routes)}"
    for i, (exp_route, leaf) in enumerate(zip(expected_routes, leaves, strict=True)):
        why = _compare_route(exp_route, leaf, binds)
        if why is not None:
            return f"route {i + 1}: {why}"
    return None


@dataclass(frozen=True)
class Outcome:
    case_id: str
    kind: str
    opcode: str
    why: str | None  # None: agrees with Vitess
    error: bool = False  # planning raised a ShardgateError (an unsupported construct)
    crash: bool = False  # planning raised anything else: a bug

    @property
    def agrees(self) -> bool:
        return self.why is None


def run_case(case: dict[str, Any], snapshot: ClusterSnapshot, planner: Planner | None = None) -> Outcome:
    session = SessionView(dialect="mysql")
    planner = planner or Planner()
    query = case["query"]
    try:
        _, values = _fingerprint(query, session)
        bound = planner.plan(query, session, snapshot, _client_params(values))
        why = compare(case, bound.plan.root, bound.binds)
    except ShardgateError as exc:
        return Outcome(case["id"], case["kind"], case["opcode"], f"{type(exc).__name__}: {exc}", error=True)
    except Exception as exc:
        return Outcome(case["id"], case["kind"], case["opcode"], f"crash: {type(exc).__name__}: {exc}", crash=True)
    return Outcome(case["id"], case["kind"], case["opcode"], why)


def run_all(cases: list[dict[str, Any]], snapshot: ClusterSnapshot) -> dict[str, Outcome]:
    planner = Planner()
    return {case["id"]: run_case(case, snapshot, planner) for case in cases}


# --- renaming every name of the corpus ------------------------------------------------------------------------
_BEFORE_TABLE = frozenset({"INTO", "INSERT", "REPLACE", "DOT", "FROM", "JOIN", "UPDATE", "TABLE"})
_TARGET_SUFFIX = re.compile(r"[:\[@].*$")
_SYSTEM = frozenset({"information_schema", "performance_schema", "mysql", "sys", "pg_catalog", "dual"})


class Renamer:
    """Renames every keyspace, table, vindex and column name of a VSchema, and of queries and expectations that
    use them, part by part (``user_id`` → ``n041_n017``): one code per ``_``-separated part, assigned in sorted
    order so names keep their order (Vitess resolves ``dual`` to the first keyspace by name)."""

    def __init__(self, vschema: dict[str, Any]) -> None:
        names: set[str] = set()
        for ks_name, ks in vschema.get("keyspaces", {}).items():
            names.add(ks_name)
            for v_name, vdef in (ks.get("vindexes") or {}).items():
                names.add(v_name)
                if vdef.get("owner"):
                    names.add(vdef["owner"])
                params = vdef.get("params") or {}
                for key in ("table", "from", "to"):
                    if params.get(key):
                        names.update(p for part in params[key].split(",") for p in part.strip().split("."))
            for t_name, tdef in (ks.get("tables") or {}).items():
                names.add(t_name)
                for cv in tdef.get("column_vindexes", tdef.get("columnVindexes", [])):
                    names.add(cv["name"])
                    names.update([cv["column"]] if cv.get("column") else cv.get("columns", []))
                names.update(c["name"] for c in tdef.get("columns", []))
                auto = tdef.get("auto_increment")
                if auto:
                    names.add(auto["column"])
                    names.update(auto["sequence"].split("."))
                if tdef.get("source"):
                    names.update(tdef["source"].split("."))
        for rule in vschema.get("routing_rules", {}).get("rules", []):
            names.update(rule["from_table"].split("@")[0].split("."))
            for to in rule["to_tables"]:
                names.update(to.split("."))
        parts = {p.lower() for n in names for p in n.split("_") if p and n.lower() not in _SYSTEM}
        self.codes = {p: f"n{i:03d}" for i, p in enumerate(sorted(parts))}
        self.exact = {n.lower() for n in names}

    def _part(self, part: str) -> str:
        code = self.codes.get(part.lower())
        if code is None:
            return part
        if part == part.lower():
            return code
        return code.upper() if part == part.upper() else code.capitalize()

    def renamable(self, name: str) -> bool:
        return name.lower() not in _SYSTEM and all(not p or p.lower() in self.codes for p in name.split("_"))

    def name(self, name: str) -> str:
        if not self.renamable(name):
            return name
        return "_".join(self._part(p) for p in name.split("_"))

    def dotted(self, name: str) -> str:
        return ".".join(self.name(p) for p in name.split("."))

    def vschema(self, vschema: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(vschema)
        keyspaces = {}
        for ks_name, ks in out.get("keyspaces", {}).items():
            vindexes = {}
            for v_name, vdef in (ks.get("vindexes") or {}).items():
                if vdef.get("owner"):
                    vdef["owner"] = self.name(vdef["owner"])
                params = vdef.get("params") or {}
                if params.get("table"):
                    params["table"] = self.dotted(params["table"])
                for key in ("from", "to"):
                    if params.get(key):
                        params[key] = ",".join(self.name(c.strip()) for c in params[key].split(","))
                vindexes[self.name(v_name)] = vdef
            if "vindexes" in ks:
                ks["vindexes"] = vindexes
            tables = {}
            for t_name, tdef in (ks.get("tables") or {}).items():
                for key in ("column_vindexes", "columnVindexes"):
                    for cv in tdef.get(key, []):
                        cv["name"] = self.name(cv["name"])
                        if cv.get("column"):
                            cv["column"] = self.name(cv["column"])
                        if cv.get("columns"):
                            cv["columns"] = [self.name(c) for c in cv["columns"]]
                for col in tdef.get("columns", []):
                    col["name"] = self.name(col["name"])
                auto = tdef.get("auto_increment")
                if auto:
                    auto["column"] = self.name(auto["column"])
                    auto["sequence"] = self.dotted(auto["sequence"])
                if tdef.get("source"):
                    tdef["source"] = self.dotted(tdef["source"])
                tables[self.name(t_name)] = tdef
            if "tables" in ks:
                ks["tables"] = tables
            keyspaces[self.name(ks_name)] = ks
        out["keyspaces"] = keyspaces
        for rule in out.get("routing_rules", {}).get("rules", []):
            table, at, tablet_type = rule["from_table"].partition("@")
            rule["from_table"] = self.dotted(table) + at + tablet_type
            rule["to_tables"] = [self.dotted(t) for t in rule["to_tables"]]
        return out

    def qualifier(self, text: str) -> str:
        """A name, or a keyspace with a target (``ks:-80``, ``ks[-]``, ``ks@replica``): the name part renamed."""
        m = _TARGET_SUFFIX.search(text)
        head, tail = (text[:m.start()], text[m.start():]) if m else (text, "")
        return self.name(head) + tail

    def query(self, sql: str) -> str:
        from sqlglot.dialects.mysql import MySQL
        from sqlglot.tokens import TokenType

        tokens = MySQL().tokenize(sql)
        if len(tokens) == 2 and tokens[0].token_type is TokenType.REPLACE and tokens[1].token_type is TokenType.STRING:
            # sqlglot's tokenizer keeps the rest of a REPLACE statement as one string: read it as an INSERT's
            head = re.match(r"\s*replace\b", sql, re.IGNORECASE)
            assert head is not None
            return sql[:head.end()] + self.query("insert" + sql[head.end():])[len("insert"):]
        out: list[str] = []
        pos = 0
        for i, tok in enumerate(tokens):
            prev = tokens[i - 1].token_type if i else None
            nxt = tokens[i + 1].token_type if i + 1 < len(tokens) else None
            named = tok.token_type in (TokenType.VAR, TokenType.IDENTIFIER)
            if not named and (tok.text.lower() not in self.exact or tok.token_type.name.endswith("STRING")
                              or tok.token_type in (TokenType.NUMBER, TokenType.PLACEHOLDER)):
                continue  # a keyword is renamed only when it is a whole name of the VSchema (``ref``)
            if prev in (TokenType.COLON, TokenType.DCOLON):
                continue  # a bind variable's name
            after_table_word = (prev.name if prev else "") in _BEFORE_TABLE
            if nxt is TokenType.L_PAREN and tok.token_type is TokenType.VAR and not after_table_word:
                continue  # a function
            new = self.qualifier(tok.text)
            if new == tok.text:
                continue
            out.append(sql[pos:tok.start])
            out.append("`" + new.replace("`", "``") + "`" if tok.token_type is TokenType.IDENTIFIER else new)
            pos = tok.end + 1
        out.append(sql[pos:])
        return "".join(out)

    def case(self, case: dict[str, Any], pinned_tables: set[str]) -> dict[str, Any]:
        out = copy.deepcopy(case)
        out["query"] = self.query(case["query"])
        pinned = any(t in pinned_tables for t in case.get("tables_used", []))

        def route(r: dict[str, Any]) -> None:
            if r.get("keyspace"):
                r["keyspace"] = self.name(r["keyspace"])
            if r.get("vindex") and not (pinned and r.get("vindex_type") == r["vindex"]):
                r["vindex"] = self.name(r["vindex"])  # the implicit vindex of a pinned table keeps its name

        route(out)
        for r in out.get("routes", []) + out.get("input_routes", []):
            route(r)
        return out


def pinned_tables(vschema: dict[str, Any]) -> set[str]:
    return {f"{ks}.{t}" for ks, kdef in vschema["keyspaces"].items() for t, tdef in (kdef.get("tables") or {}).items()
            if tdef.get("pinned")}


# --- the known differences ------------------------------------------------------------------------------------
def load_known() -> dict[str, dict[str, str]]:
    with KNOWN_PATH.open(encoding="utf-8") as fh:
        return json.load(fh)["differences"]  # type: ignore[no-any-return]


def summary(outcomes: dict[str, Outcome]) -> str:
    total = len(outcomes)
    agree = sum(o.agrees for o in outcomes.values())
    lines = [f"agreement: {agree}/{total} = {agree / total:.1%} (target {TARGET:.0%})"]
    by_kind: dict[str, list[Outcome]] = collections.defaultdict(list)
    by_opcode: dict[str, list[Outcome]] = collections.defaultdict(list)
    for o in outcomes.values():
        by_kind[o.kind].append(o)
        by_opcode[f"{o.kind}:{o.opcode}"].append(o)
    for title, groups in (("per kind", by_kind), ("per kind:opcode", by_opcode)):
        lines.append(title + ":")
        for key in sorted(groups):
            group = groups[key]
            ok = sum(o.agrees for o in group)
            errors = sum(o.error for o in group)
            lines.append(f"  {key:40s} {ok:3d}/{len(group):3d}" + (f"  ({errors} unsupported)" if errors else ""))
    return "\n".join(lines)


# --- tests ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def outcomes(routing_cases: dict[str, Any], routing_snapshot: ClusterSnapshot) -> dict[str, Outcome]:
    return run_all(routing_cases["cases"], routing_snapshot)


def test_known_differences_are_well_formed(routing_cases: dict[str, Any]) -> None:
    ids = {c["id"] for c in routing_cases["cases"]}
    known = load_known()
    assert set(known) <= ids, f"listed cases not in the corpus: {sorted(set(known) - ids)}"
    bad = [cid for cid, entry in known.items() if not entry.get("reason", "").startswith(_REASON_PREFIXES)]
    assert not bad, f"each reason starts with 'deliberate: ' or 'missing feature: ': {bad}"


def test_every_disagreement_is_listed(outcomes: dict[str, Outcome]) -> None:
    known = load_known()
    unlisted = {cid: o.why for cid, o in outcomes.items() if not o.agrees and cid not in known}
    assert not unlisted, "disagreements not in vitess_known_differences.json:\n" + "\n".join(
        f"  {cid}: {why}" for cid, why in sorted(unlisted.items()))


def test_listed_cases_still_disagree(outcomes: dict[str, Outcome]) -> None:
    known = load_known()
    fixed = sorted(cid for cid in known if cid in outcomes and outcomes[cid].agrees)
    assert not fixed, "these cases agree with Vitess now; remove them from vitess_known_differences.json: " + \
        ", ".join(fixed)


def test_no_crashes(outcomes: dict[str, Outcome]) -> None:
    crashes = {cid: o.why for cid, o in outcomes.items() if o.crash}
    assert not crashes, "planning crashed (unsupported must be a ShardgateError):\n" + "\n".join(
        f"  {cid}: {why}" for cid, why in sorted(crashes.items()))


def test_agreement_report(outcomes: dict[str, Outcome], capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print("\n" + summary(outcomes))
    assert outcomes


def test_agreement_target(outcomes: dict[str, Outcome]) -> None:
    agree = sum(o.agrees for o in outcomes.values())
    assert agree / len(outcomes) >= TARGET, f"agreement {agree}/{len(outcomes)} is below the {TARGET:.0%} target"


def test_renamed_corpus_gives_the_same_results(routing_cases: dict[str, Any],
                                               outcomes: dict[str, Outcome]) -> None:
    """No code may know the corpus's names: with every name renamed, each case agrees or disagrees as before."""
    renamer = Renamer(routing_cases["vschema"])
    snapshot = snapshot_for(renamer.vschema(routing_cases["vschema"]))
    pinned = pinned_tables(routing_cases["vschema"])
    renamed = run_all([renamer.case(c, pinned) for c in routing_cases["cases"]], snapshot)
    changed = {cid: (outcomes[cid].why, o.why) for cid, o in renamed.items() if o.agrees != outcomes[cid].agrees}
    assert not changed, "results change when names change:\n" + "\n".join(
        f"  {cid}: {a!r} -> {b!r}" for cid, (a, b) in sorted(changed.items()))


def test_renamer_renames_names_only() -> None:
    vschema = {"keyspaces": {"ks": {"sharded": True, "vindexes": {"user_idx": {"type": "hash"}},
                                    "tables": {"user_t": {"column_vindexes": [{"column": "id", "name": "user_idx"}]}}}}}
    r = Renamer(vschema)
    q = r.query("select count(id), :id, `user_t`.id from ks.user_t where id in ::id and x = 'user_t'")
    assert "count(" in q and ":id" in q and "::id" in q and "'user_t'" in q
    assert "user_t" not in q.replace("'user_t'", "") and " ks." not in q
    assert list(r.vschema(vschema)["keyspaces"]) == [r.name("ks")]


# --- command line ---------------------------------------------------------------------------------------------
# Reasons for the differences the harness finds, by what it saw; a case's reviewed reason in the list wins.
_REASONS: tuple[tuple[str, str], ...] = (
    ("No module named 'router.planner.insert'", "missing feature: INSERT planning (dml.py imports "
                                                "router.planner.insert, which is not there yet)"),
    ("cross-shard subqueries", "missing feature: cross-shard subqueries and derived tables (select.py)"),
    ("a join across shards", "missing feature: cross-shard joins (joins.py)"),
    ("cross-shard UNION", "missing feature: cross-shard UNION (select.py)"),
    (" across shards is not supported yet", "missing feature: multi-shard horizon: ORDER BY, LIMIT, GROUP BY, "
                                            "HAVING, DISTINCT, aggregates (horizon.py)"),
    ("aggregate functions across shards", "missing feature: multi-shard aggregates (horizon.py)"),
    ("Vitess VindexLookup", "missing feature: VindexLookup in SELECT plans: select.py/horizon.py must wrap their "
                            "routes with router.planner.lookup.wrap_lookup"),
    ("REPLACE INTO", "missing feature: REPLACE (dml.py)"),
    ("opcode Unsharded, Vitess Reference", "missing feature: a SELECT without tables reads dual: Vitess plans a "
                                           "Reference route; select.py still says Unsharded "
                                           "(router.planner.routing.route_tableless gives the Vitess route)"),
)


def _reason_for(o: Outcome) -> str:
    for needle, reason in _REASONS:
        if needle in (o.why or ""):
            return reason
    return "missing feature: " + (o.why or "")


def main(argv: list[str]) -> int:
    data = load_vectors("vitess_routing_cases")
    outcomes = run_all(data["cases"], snapshot_for(data["vschema"]))
    print(summary(outcomes))
    if "--update" in argv:
        known = load_known() if KNOWN_PATH.exists() else {}
        queries = {c["id"]: c["query"] for c in data["cases"]}
        automatic = {reason for _, reason in _REASONS}

        def reason(cid: str, o: Outcome) -> str:
            old = known.get(cid)
            if old is None or old["reason"] in automatic or old["reason"] == "missing feature: " + old["ours"]:
                return _reason_for(o)  # not reviewed: say what it is now
            return old["reason"]

        entries = {cid: {"reason": reason(cid, o), "query": queries[cid], "ours": o.why or ""}
                   for cid, o in sorted(outcomes.items()) if not o.agrees}
        doc = {"about": _ABOUT, "differences": entries}
        KNOWN_PATH.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {len(entries)} differences to {KNOWN_PATH}")
    if "-v" in argv:
        for cid, o in sorted(outcomes.items()):
            if not o.agrees:
                print(f"{cid}: {o.why}")
    return 0


_ABOUT = ("Cases of ../shared/vectors/vitess_routing_cases.json where shardgate's plan differs from Vitess's, each "
          "with its reason ('deliberate: ...' or 'missing feature: ...'); 'ours' is what the harness saw. Checked "
          "by tests/unit/planner/test_vitess_cases.py: a case that agrees must leave this list.")

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
