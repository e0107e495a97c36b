"""Wiring of ACLs and query rules: the ``acl:``/``rules:`` config sections, ``router.access`` (the policy the
session asks), the session hook, ``SHOW SHARDGATE RULES`` / ``RELOAD`` and the reloader. No servers: statements are
refused before any I/O, and the reloader runs against a recording gateway."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.access import AccessPolicy, GuardedRows, guard_rows
from router.acl import RowFilter
from router.admin_reload import ConfigReloader, reload_statement, replicas_serve
from router.config_sections import load_config, parse_config
from router.engine.context import Limits
from router.engine.session import Session
from router.planner import Planner
from router.planner.special import Show, parse_special
from router.rules import ALLOW, Decision
from sharding import config as sharding_config
from sharding.auth import make_user_entry
from sharding.errors import ConfigError, PermissionDeniedError, ResourceLimitError
from sharding.snapshot import ClusterSnapshot
from sharding.topology.vschema_store import shards_from_config

SHARD = {"engine": "mysql", "host": "127.0.0.1", "database": "d", "user": "u"}


def doc(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "users": [make_user_entry("root", "pw", ["admin"], methods=["mysql_native_password"]),
                  make_user_entry("bob", "pw", methods=["mysql_native_password"])],
        "keyspaces": {"ks": {"shards": {"-80": SHARD, "80-": SHARD}}, "main": {"shards": {"0": SHARD}}},
        "vschema": {"keyspaces": {
            "ks": {"sharded": True, "vindexes": {"hash": {"type": "hash"}},
                   "tables": {"t": {"column_vindexes": [{"column": "id", "name": "hash"}]},
                              "salary": {"column_vindexes": [{"column": "id", "name": "hash"}]}}},
            "main": {"sharded": False, "tables": {"product": {}}}}},
        "acl": {"keyspaces": {"ks": [{"tables": ["salary"], "read": ["root"]},
                                     {"tables": ["*"], "read": ["*"], "write": ["bob", "root"]}]}},
        "rules": [{"name": "no-big-in", "match": {"binds": ["len(bind.0) > 2"]}, "action": "deny",
                   "message": "short IN lists only"},
                  {"name": "bob-limit", "match": {"users": ["bob"], "kinds": ["select"]}, "row_limit": 10,
                   "timeout_ms": 500, "log": True}],
    }
    base.update(extra)
    return base


# --- config sections -------------------------------------------------------------------------------------------
def test_sections_are_parsed_into_the_config() -> None:
    config = parse_config(doc())
    policy = AccessPolicy.of(config)
    assert policy.acl is not None and set(policy.acl.keyspaces) == {"ks"}
    assert [r.name for r in policy.rules.rules] == ["no-big-in", "bob-limit"]
    assert set(policy.users) == {"root", "bob"}


def test_section_problems_are_reported_with_every_other_problem_one_per_line() -> None:
    bad = doc(acl={"keyspaces": {"nope": [{"tables": ["x"]}]}, "bogus": 1},
              rules=[{"name": "r", "match": {"kinds": ["selekt"]}, "action": "deny"}])
    bad["keyspaces"]["main"]["shards"]["0"] = {**SHARD, "engine": "oracle"}
    with pytest.raises(ConfigError) as info:
        parse_config(bad, source="c.yaml")
    problems = info.value.problems
    assert "c.yaml: acl.bogus: unknown key; expected one of: default, groups, keyspaces" in problems
    assert any(p.startswith("c.yaml: acl.keyspaces.nope: no keyspace 'nope'") for p in problems)
    assert any(p.startswith("c.yaml: rules[0].match.kinds[0]: unknown statement kind 'selekt'") for p in problems)
    assert any(p.startswith("c.yaml: keyspaces.main.shards.0.engine:") for p in problems)
    assert all("\n" not in p for p in problems)


def test_without_the_router_parsers_a_section_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError) as info:
        sharding_config.parse_config(doc(), source="c.yaml")
    assert any(p.startswith("c.yaml: acl: this section is checked by the router") for p in info.value.problems)
    plain = doc()
    del plain["acl"], plain["rules"]
    assert sharding_config.parse_config(plain).sections == {}


def test_acl_may_name_users_and_groups_the_users_section_lacks_as_warnings() -> None:
    config = parse_config(doc(acl={"keyspaces": {"ks": [{"tables": ["*"], "read": ["ghost"]}]}}))
    assert any("unknown user or group 'ghost'" in w for w in config.warnings)


# --- the policy -------------------------------------------------------------------------------------------------
CONFIG = parse_config(doc())
SNAPSHOT = ClusterSnapshot.build(1, CONFIG.vschema, shards_from_config(CONFIG))
PLANNER = Planner()


def bound(sql: str, dialect: str = "mysql", params: Any = None) -> Any:
    from router.planner import SessionView

    return PLANNER.plan(sql, SessionView(dialect=dialect, keyspace="ks"), SNAPSHOT, params)


def authorize(sql: str, user: str, **kw: Any) -> Decision:
    return AccessPolicy.of(CONFIG).authorize(bound(sql), user=user, client_addr="10.1.2.3", keyspace="ks",
                                             backend_dialect=lambda ks: "mysql", **kw)


def test_acl_denial_names_the_table_and_is_logged_without_literals(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shardgate.rules")
    with pytest.raises(PermissionDeniedError) as info:
        authorize("SELECT * FROM salary WHERE id = 424242", "bob")
    assert "for table 'ks.salary'" in info.value.message
    assert (info.value.mysql_errno, info.value.pg_sqlstate) == (1142, "42501")
    record = caplog.records[-1]
    assert record.event == "acl_denied" and "424242" not in record.getMessage()  # type: ignore[attr-defined]
    assert "select * from salary where id = :v1" in record.getMessage().lower()
    assert authorize("SELECT * FROM salary", "root") is not None


def test_rules_deny_settle_and_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shardgate.rules")
    with pytest.raises(PermissionDeniedError, match="short IN lists only"):
        authorize("SELECT * FROM t WHERE id IN (1, 2, 3)", "root")
    d = authorize("SELECT * FROM t WHERE id = 7777", "bob")
    assert (d.row_limit, d.timeout_ms, d.log, d.matched) == (10, 500, True, ("bob-limit",))
    assert caplog.records[-1].getMessage().count("bob-limit") == 1
    assert "7777" not in caplog.records[-1].getMessage()
    assert authorize("SELECT * FROM t WHERE id = 1", "root") is ALLOW
    caplog.clear()
    authorize("SELECT * FROM t", "bob", log_it=False)
    assert not caplog.records


def test_embedded_api_sessions_skip_the_acl_but_not_the_rules() -> None:
    assert authorize("SELECT * FROM salary", "") is ALLOW
    with pytest.raises(PermissionDeniedError, match="short IN lists"):
        authorize("SELECT * FROM t WHERE id IN (1, 2, 3)", "")


def test_unplanned_statements_are_judged_on_their_text() -> None:
    policy = AccessPolicy.of(CONFIG)
    with pytest.raises(PermissionDeniedError):
        policy.check_unplanned("SELECT relname FROM pg_catalog.pg_class", user="bob", client_addr=None,
                               keyspace="ks", kind="select")
    policy.check_unplanned("SELECT relname FROM pg_catalog.pg_class WHERE relname = 't'", user="bob",
                           client_addr=None, keyspace="ks", kind="select")
    policy.check_unplanned("SELECT relname FROM pg_catalog.pg_class", user="root", client_addr=None, keyspace="ks",
                           kind="select")


# --- rows ----------------------------------------------------------------------------------------------------------
class _Rows:
    def __init__(self, batches: list[list[tuple[Any, ...]]]) -> None:
        self.batches = batches
        self.columns = ("c",)
        self.closed = False

    def __aiter__(self) -> _Rows:
        return self

    async def __anext__(self) -> list[tuple[Any, ...]]:
        if not self.batches:
            raise StopAsyncIteration
        return self.batches.pop(0)

    async def close(self) -> None:
        self.closed = True


async def test_row_limit_fails_rather_than_truncating() -> None:
    rows = _Rows([[(1,), (2,)], [(3,)]])
    assert guard_rows(rows, ALLOW, None) is rows
    guarded = guard_rows(rows, Decision(row_limit=2, matched=("lim",)), None)
    assert isinstance(guarded, GuardedRows) and guarded.columns == ("c",)
    with pytest.raises(ResourceLimitError, match=r"Row count exceeded 2 \(row_limit of query rule lim\)"):
        await guarded.fetchall()
    assert rows.closed
    assert await guard_rows(_Rows([[(1,), (2,)]]), Decision(row_limit=2), None).fetchall() == [(1,), (2,)]


async def test_listing_filter_drops_tables_the_user_may_not_read() -> None:
    keep = RowFilter("ks", 0, lambda name: name != "salary")
    rows = _Rows([[("salary",)], [("t",), ("salary",)]])
    assert await guard_rows(rows, ALLOW, keep).fetchall() == [("t",)]


# --- the session hook ------------------------------------------------------------------------------------------
class _Host:
    """What a session needs, without pools: every statement here is refused or answered before any I/O."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.access = AccessPolicy.of(config)
        self.planner = PLANNER
        self.pools: Any = None
        self.limits = Limits()
        self.coordinator = None
        self.reloader: Any = None
        self.snapshot = ClusterSnapshot.build(1, config.vschema, shards_from_config(config))

    def backend_dialect(self, keyspace: str) -> str:
        return "mysql"


async def test_session_refuses_before_any_io_and_answers_show_rules() -> None:
    host = _Host(CONFIG)
    bob = Session(host, "mysql", "ks", user="bob")  # type: ignore[arg-type]
    with pytest.raises(PermissionDeniedError, match=r"ks\.salary"):
        await bob.execute("SELECT * FROM ks.salary")
    with pytest.raises(PermissionDeniedError, match=r"ks\.salary"):
        await bob.execute("VEXPLAIN QUERIES SELECT * FROM salary")
    with pytest.raises(PermissionDeniedError, match="needs the admin role"):
        await bob.execute("SHOW SHARDGATE RULES")
    with pytest.raises(PermissionDeniedError, match="needs the admin role"):
        await bob.execute("RELOAD")
    root = Session(host, "postgres", "ks", user="root")  # type: ignore[arg-type]
    result = await root.execute("SHOW SHARDGATE RULES")
    assert result.column_names == ["#", "name", "match", "action"]
    assert [(r[0], r[1], r[3]) for r in result] == [(0, "no-big-in", "deny"),
                                                   (1, "bob-limit", "row_limit=10 timeout_ms=500 log")]
    with pytest.raises(ConfigError, match="RELOAD needs a config file"):
        await root.execute("RELOAD")


def test_reload_is_parsed_as_an_admin_statement() -> None:
    for dialect in ("mysql", "postgres"):
        assert parse_special("RELOAD", dialect) == Show("shardgate_reload")
        assert parse_special("/* c */ reload;", dialect) == Show("shardgate_reload")
        assert parse_special("RELOADED", dialect) is None


# --- the reloader ------------------------------------------------------------------------------------------------
class _Gateway(_Host):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._topology = False
        self._vschema_version = 1
        self.track_schema = False
        self.installed: list[ClusterSnapshot] = []

    async def _install(self, snapshot: ClusterSnapshot) -> None:
        self.installed.append(snapshot)
        self.snapshot = snapshot
        self._vschema_version = snapshot.version


class _Users:
    def __init__(self) -> None:
        self.policy = type("Policy", (), {"users": {}})()


def write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    path.chmod(0o600)


async def test_reload_swaps_users_acls_rules_and_vschema_or_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, doc())
    gw = _Gateway(load_config(path))
    reloader = ConfigReloader(gw, path)
    frontend = _Users()
    reloader.attach_frontend(frontend)
    gw.reloader = reloader
    session = Session(gw, "mysql", "ks", user="root")  # type: ignore[arg-type]

    unchanged = dict((await reloader.reload()).rows)
    assert unchanged["vschema"] == unchanged["backends"] == "unchanged" and not gw.installed

    changed = doc(rules=[{"name": "only", "match": {"users": ["carol"]}, "action": "deny"}])
    changed["users"].append(make_user_entry("carol", "pw", methods=["mysql_native_password"]))
    changed["acl"]["keyspaces"]["ks"][0]["read"].append("bob")
    changed["vschema"]["keyspaces"]["main"]["tables"]["extra"] = {}
    write(path, changed)
    names, rows, _ = await reload_statement(session, "shardgate_reload")
    report = dict(rows)
    assert names == ("item", "change")
    assert report["users"] == "3 (changed)" and report["rules"] == "1 (changed)" and "changed" in report["acl"]
    assert report["vschema"] == "changed" and report["backends"] == "unchanged"
    assert set(frontend.policy.users) == {"root", "bob", "carol"}
    assert gw.installed[-1].version == 2 and "extra" in gw.snapshot.vschema.keyspaces["main"].tables
    assert gw.access.acl.allowed("bob", "ks", "salary", "read")
    assert (await session.execute("SHOW SHARDGATE RULES"))[0][1] == "only"

    write(path, {**changed, "rules": [{"name": "bad", "action": "explode"}]})
    with pytest.raises(ConfigError) as info:
        await session.execute("RELOAD")
    assert info.value.problems == [f"{path}: rules[0].action: unknown action 'explode'; expected one of: deny, "
                                   "allow (leave it out for a rule that only applies settings)"]
    assert "RELOAD failed; the running config is kept" in info.value.message
    assert [r.name for r in gw.access.rules.rules] == ["only"] and len(gw.installed) == 1


def test_route_to_replica_needs_a_replica_on_every_shard_of_a_read() -> None:
    plan = bound("SELECT * FROM t").plan
    assert not replicas_serve(plan, SNAPSHOT)
    from sharding.snapshot import Shard

    with_replicas = {name: [Shard(s.name, s.key_range, {**s.backends, "replica": (s.backends["primary"],)})
                            for s in shards] for name, shards in shards_from_config(CONFIG).items()}
    snap = ClusterSnapshot.build(2, CONFIG.vschema, with_replicas)
    assert replicas_serve(plan, snap)
    assert not replicas_serve(bound("UPDATE t SET x = 1 WHERE id = 1").plan, snap)


def test_the_acl_verdict_kept_per_plan_is_per_user_and_per_policy() -> None:
    policy = AccessPolicy.of(CONFIG)
    b = bound("SELECT * FROM salary WHERE id = 1")
    for _ in range(2):  # the second time from the kept verdict
        policy.authorize(b, user="root", client_addr=None, keyspace="ks")
        with pytest.raises(PermissionDeniedError):
            policy.authorize(b, user="bob", client_addr=None, keyspace="ks")
    stricter = parse_config(doc(acl={"keyspaces": {"ks": [{"tables": ["t"], "read": ["root"]}]}}))
    with pytest.raises(PermissionDeniedError):  # a reloaded policy judges afresh
        AccessPolicy.of(stricter).authorize(b, user="root", client_addr=None, keyspace="ks")
